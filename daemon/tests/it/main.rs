//! sls-daemon's integration tests in one binary (one link, one run): the real `slsd` on
//! loopback spoken to over QUIC (`e2e`, `reliability`, device sharing in `sharing`, shutdown's
//! drain in `drain` and `long_error_text`, several endpoints on one port in `endpoints`), and
//! the journal on real files (`store`). These are all of this crate's integration tests; the
//! rules themselves are tested in sls-core (`daemon/engine/tests/it`).
//!
//! A new test module plugs in with one `mod` line below. One that needs a daemon starts it with
//! [`slsd`] and drives it with `sls_loadgen::harness` (connect with a role, enrol, log in), as
//! the modules here do; it never starts or signals a process of its own by name. [`within`] and
//! [`call`] bound a step by a timeout; [`stop_timed`] measures a SIGTERM shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod audit;
mod bounds;
mod client;
mod cluster;
mod dashboard;
mod disk_full;
mod drain;
mod e2e;
mod endpoints;
mod enumeration;
mod inspect;
mod limits;
mod long_error_text;
mod metrics;
mod operator;
mod prometheus;
mod reliability;
mod revocation;
mod sharing;
mod slsctl;
mod storage_faults;
mod store;
mod windows;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use sls_client::pipeline::Pipeline;
use sls_loadgen::daemon::Daemon;
use sls_protocol::Message;

/// This crate's `slsd`, started with `flags` on a free loopback port in a temporary data
/// directory of its own, removed when the handle drops ([`Daemon::restart`] starts it again in
/// the same directory).
pub fn slsd(flags: &[&str]) -> Daemon {
    Daemon::start_temp(Path::new(env!("CARGO_BIN_EXE_slsd")), flags).unwrap()
}

/// `step` (a call, or a harness step of a few calls), which must succeed within 10 s: the
/// daemon answers in milliseconds, and one that stops answering fails the test instead of
/// hanging it.
pub async fn within<T, E: std::fmt::Debug>(step: impl Future<Output = Result<T, E>>) -> T {
    tokio::time::timeout(Duration::from_secs(10), step)
        .await
        .expect("answered within 10 s")
        .expect("answered")
}

/// `m` on `p`, answered within 10 s (see [`within`]); a daemon's `Error` frame is an answer.
pub async fn call(p: &Pipeline, m: Message) -> Message {
    within(p.call(m)).await
}

/// Stops `d` with SIGTERM ([`Daemon::stop`], SIGKILL after 30 s) off the runtime's threads:
/// whether it exited cleanly, and how long it took.
pub async fn stop_timed(mut d: Daemon) -> (bool, Duration) {
    tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        let clean = d.stop(Duration::from_secs(30));
        (clean, t0.elapsed())
    })
    .await
    .unwrap()
}
