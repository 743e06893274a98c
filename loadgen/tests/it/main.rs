//! sls-loadgen's one integration-test binary (one link, one run): the load generator against
//! a real slsd, and the device emulator as a user runs it. A new concern is a new module here;
//! one that needs a daemon starts it with [`slsd`].

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod against_slsd;
mod batched;
mod device_cli;
mod live_metrics;
mod merge_compare;
mod open_loop;
mod pipelines;
mod reach;
mod report_html;
mod stopping;
mod thresholds;

use sls_loadgen::daemon::{find_slsd, Daemon, GENEROUS_LIMITS};

/// A real slsd (built if need be, see [`find_slsd`]) on a free loopback port, in a temporary
/// data directory of its own: generous rate limits, warnings only in its log, then `extra`.
pub fn slsd(extra: &[&str]) -> Daemon {
    let flags = [&GENEROUS_LIMITS[..], &["--log", "warn"], extra].concat();
    Daemon::start_temp(&find_slsd().unwrap(), &flags).unwrap()
}
