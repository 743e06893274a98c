//! sls-daemon's integration tests in one binary (one link, one run): the real `slsd` on
//! loopback spoken to over QUIC (`e2e`, `reliability`, device sharing in `sharing`, shutdown's
//! drain in `drain` and `long_error_text`), and the journal on real files (`store`). These are
//! all of this crate's integration tests; the rules themselves are tested in sls-core
//! (`daemon/core/tests/it`).
//!
//! A new test module plugs in with one `mod` line below. One that needs a daemon starts it with
//! [`slsd`] and drives it with `sls_loadgen::harness` (connect with a role, enrol, log in), as
//! the modules here do; it never starts or signals a process of its own by name.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod drain;
mod e2e;
mod long_error_text;
mod reliability;
mod sharing;
mod store;

use std::path::Path;

use sls_loadgen::daemon::Daemon;

/// This crate's `slsd`, started with `flags` on a free loopback port in a temporary data
/// directory of its own, removed when the handle drops ([`Daemon::restart`] starts it again in
/// the same directory).
pub fn slsd(flags: &[&str]) -> Daemon {
    Daemon::start_temp(Path::new(env!("CARGO_BIN_EXE_slsd")), flags).unwrap()
}
