//! Stopping a run before its end: when a connection to the daemon is lost, or (with
//! `--abort-on-fail`) when a threshold is already lost, like k6's `abortOnFail`.
//!
//! ```text
//!  connection watchers (conn.closed()) ─┐
//!  progress tick: thresholds so far ────┼─▶ Abort::stop(Stopped) ─▶ the load loops end,
//!                                       ┘                           the progress line says why
//! ```
//!
//! **When a threshold is already lost.** At each progress tick (once a second) the thresholds
//! are judged on the measured steps so far (the run's counts and histograms from the window's
//! start). A failing threshold is *already lost* when no later step can be expected to save
//! it:
//! - `unexpected` and `max` with `<`, `<=` (or `==` once past the value): they only grow, so
//!   once past the bound they stay past it; no minimum of steps;
//! - a latency percentile (`p50` … `p99.9`) or `errors` with `<` or `<=`: once its scope has
//!   [`MIN_STEPS`] steps or more and the value so far is past the bound (`errors==0` too, once
//!   an error happened);
//! - `rate`, and every lower bound (`>`, `>=`), are judged at the end only: a run that stops
//!   early cannot say what its whole window would have done.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::report::{ScenarioSummary, Summary};
use crate::threshold::{observe, Metric, Op, Percentile, Threshold};

/// Steps a threshold's scope must hold before a percentile or an error share so far can count
/// as lost.
pub const MIN_STEPS: u64 = 100;

/// Why a run stopped before its end.
#[derive(Debug, Clone, PartialEq)]
pub enum Stopped {
    /// A connection to the daemon closed mid-run (the daemon died, or stayed silent for the
    /// connection's idle timeout, or closed it).
    ConnectionLost {
        /// The daemon's address.
        addr: SocketAddr,
        /// Why, as QUIC says.
        reason: String,
    },
    /// A threshold already lost (`--abort-on-fail`).
    ThresholdLost {
        /// The threshold as written.
        threshold: String,
        /// Its value over the steps so far, in its unit.
        observed: f64,
        /// That unit (as in `summary.json`: `us`, `fraction`, `count`).
        unit: &'static str,
        /// The steps of its scope so far.
        steps: u64,
    },
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::ConnectionLost { addr, reason } => {
                write!(f, "connection lost to slsd at {addr}: {reason}")
            }
            Stopped::ThresholdLost {
                threshold,
                observed,
                unit,
                steps,
            } => {
                let value = match *unit {
                    "us" => format!("{observed:.0} µs"),
                    "fraction" => format!("{:.3}%", observed * 100.0),
                    _ => format!("{observed}"),
                };
                write!(
                    f,
                    "threshold {threshold} already lost: {value} over the {steps} steps so far \
                     (--abort-on-fail)"
                )
            }
        }
    }
}

/// A run's stop switch: cheap to clone; the first reason given wins.
#[derive(Clone)]
pub struct Abort(Arc<watch::Sender<Option<Stopped>>>);

impl Default for Abort {
    fn default() -> Abort {
        Abort(Arc::new(watch::channel(None).0))
    }
}

impl Abort {
    /// Stops the run for `why`, unless it was stopped already. Whether this call stopped it.
    pub fn stop(&self, why: Stopped) -> bool {
        self.0.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(why);
                true
            } else {
                false
            }
        })
    }

    /// Why the run was stopped, if it was.
    pub fn reason(&self) -> Option<Stopped> {
        self.0.borrow().clone()
    }

    /// Whether the run was stopped.
    pub fn is_stopped(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Waits until the run is stopped.
    pub async fn stopped(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`: waiting cannot fail while we hold it.
        let _ = rx.wait_for(Option::is_some).await;
    }
}

/// What watches a run besides its clock.
#[derive(Clone)]
pub struct Watch {
    /// The stop switch the load loops and the progress line obey.
    pub abort: Abort,
    /// The thresholds that stop the run once already lost (`--abort-on-fail`); empty: none.
    pub abort_on: Vec<Threshold>,
    /// How long the daemon may stay silent before a connection to it counts as lost (the
    /// QUIC idle timeout of the frontends' and the admin's connections).
    pub lost_after: Duration,
}

impl Default for Watch {
    /// No threshold stops the run; a connection is lost after 30 s of silence.
    fn default() -> Watch {
        Watch {
            abort: Abort::default(),
            abort_on: Vec::new(),
            lost_after: Duration::from_secs(30),
        }
    }
}

/// Whether `t`, judged on `s` (its scope's summary so far), is already lost (see the module
/// documentation); its value so far if so.
pub fn already_lost(t: &Threshold, s: &ScenarioSummary) -> Option<f64> {
    let observed = observe(t.metric, s)?;
    if t.op.holds(observed, t.limit) {
        return None;
    }
    let lost = match (t.metric, t.op) {
        (Metric::Unexpected | Metric::Latency(Percentile::Max), Op::Lt | Op::Le) => true,
        (Metric::Unexpected | Metric::Latency(Percentile::Max), Op::Eq) => observed > t.limit,
        (Metric::Latency(_) | Metric::Errors, Op::Lt | Op::Le) => s.count >= MIN_STEPS,
        (Metric::Errors, Op::Eq) => t.limit == 0.0 && observed > 0.0,
        _ => false,
    };
    lost.then_some(observed)
}

/// The first of `thresholds` already lost on `so_far` (a summary of the steps so far), as the
/// reason to stop.
pub fn first_lost(thresholds: &[Threshold], so_far: &Summary) -> Option<Stopped> {
    thresholds.iter().find_map(|t| {
        let s = match t.scope {
            None => Some(&so_far.overall),
            Some(sc) => so_far.scenarios.iter().find(|s| s.name == sc.name()),
        }?;
        already_lost(t, s).map(|observed| Stopped::ThresholdLost {
            threshold: t.text.clone(),
            observed,
            unit: t.metric.unit(),
            steps: s.count,
        })
    })
}

/// Watches `conns` (to the daemon) while the returned set lives: the first to close stops the
/// run with [`Stopped::ConnectionLost`]. Dropping the set stops watching (before the run closes
/// them itself).
pub fn watch_connections(conns: &[quinn::Connection], abort: &Abort) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for conn in conns {
        let (conn, abort) = (conn.clone(), abort.clone());
        set.spawn(async move {
            let reason = conn.closed().await;
            abort.stop(Stopped::ConnectionLost {
                addr: conn.remote_address(),
                reason: reason.to_string(),
            });
        });
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Latency;

    fn scope(count: u64, errors: u64, unexpected: u64, p99: u64, max: u64) -> ScenarioSummary {
        let mut s = ScenarioSummary::empty("dsc_plus");
        s.count = count;
        s.ok = count - errors - unexpected;
        s.errors.insert("rejected".into(), errors);
        s.unexpected_errors = unexpected;
        s.latency_us = Latency {
            p50: p99 / 2,
            p90: p99,
            p99,
            p999: max,
            max,
            mean: p99 as f64 / 2.0,
        };
        s
    }

    fn lost(t: &str, s: &ScenarioSummary) -> bool {
        already_lost(&t.parse().unwrap(), s).is_some()
    }

    #[test]
    fn counts_and_the_maximum_are_lost_at_once_past_their_bound() {
        let few = scope(3, 0, 1, 900, 2_000);
        assert!(lost("unexpected==0", &few));
        assert!(lost("unexpected<1", &few));
        assert!(lost("max<1ms", &few));
        // Still reachable: a count may yet grow to its bound.
        assert!(!lost("unexpected==2", &few));
        assert!(!lost("max>=1s", &few));
    }

    #[test]
    fn percentiles_and_error_shares_need_enough_steps() {
        let early = scope(MIN_STEPS - 1, 50, 0, 9_000, 9_000);
        assert!(!lost("p99<5ms", &early));
        assert!(!lost("errors<1%", &early));
        let enough = scope(MIN_STEPS, 50, 0, 9_000, 9_000);
        assert!(lost("p99<5ms", &enough));
        assert!(lost("errors<1%", &enough));
        assert!(lost("errors==0", &scope(10, 1, 0, 1, 1)));
        // Holding, or a bound the rest of the run may still meet: not lost.
        assert!(!lost("p99<10ms", &enough));
        assert!(!lost("p50>5ms", &enough));
        assert!(!lost("rate>=1000000", &enough));
    }
}
