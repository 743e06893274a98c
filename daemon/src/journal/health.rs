//! The journal's health: ready, or failing since a write or sync error while the writer
//! retries. One log line when it starts failing, one when it recovers (how long, how many
//! retries), and a reminder at most every [`REMIND`] in between: never one per append.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::warn;

use super::JournalError;
use crate::logging::Throttle;

/// How often a journal that keeps failing says so again.
const REMIND: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Failing {
    cause: String,
    since: Instant,
    retries: u64,
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct Health {
    failing: AtomicBool,
    state: Mutex<Option<Failing>>,
    /// Retries since start, across every failing spell.
    retries: AtomicU64,
    /// Failing spells since start.
    spells: AtomicU64,
    remind: Throttle,
}

impl Health {
    pub(super) fn new() -> Health {
        Health {
            failing: AtomicBool::new(false),
            state: Mutex::new(None),
            retries: AtomicU64::new(0),
            spells: AtomicU64::new(0),
            remind: Throttle::new(REMIND),
        }
    }

    /// Whether the journal writes now.
    pub(super) fn ready(&self) -> bool {
        !self.failing.load(Ordering::Acquire)
    }

    /// `Err(Unavailable)` while failing.
    pub(super) fn check(&self) -> Result<(), JournalError> {
        if self.ready() {
            return Ok(());
        }
        Err(JournalError::Unavailable(self.cause().unwrap_or_default()))
    }

    /// Why it fails, while it does.
    pub(super) fn cause(&self) -> Option<String> {
        self.state.lock().as_ref().map(|f| f.cause.clone())
    }

    /// A write or sync failed with `cause`; the writer will retry.
    pub(super) fn failed(&self, cause: String) {
        let mut s = self.state.lock();
        match &mut *s {
            None => {
                warn!(
                    cause = %cause,
                    "journal write failed: refusing changes (UNAVAILABLE) and retrying until it succeeds"
                );
                // The next reminder comes a whole period after this line.
                let _ = self.remind.allow();
                self.spells.fetch_add(1, Ordering::Relaxed);
                self.retries.fetch_add(1, Ordering::Relaxed);
                *s = Some(Failing {
                    cause,
                    since: Instant::now(),
                    retries: 1,
                });
                self.failing.store(true, Ordering::Release);
            }
            Some(f) => {
                f.retries = f.retries.saturating_add(1);
                self.retries.fetch_add(1, Ordering::Relaxed);
                if self.remind.allow().is_some() {
                    warn!(
                        cause = %cause,
                        failing_for = ?f.since.elapsed(),
                        retries = f.retries,
                        "journal still failing"
                    );
                }
                f.cause = cause;
            }
        }
    }

    /// A write and sync succeeded: ready again if it was failing.
    pub(super) fn succeeded(&self) {
        if self.ready() {
            return;
        }
        let mut s = self.state.lock();
        if let Some(f) = s.take() {
            warn!(
                after = ?f.since.elapsed(),
                retries = f.retries,
                last_cause = %f.cause,
                "journal writes resumed: accepting changes again"
            );
        }
        self.failing.store(false, Ordering::Release);
    }

    /// Marks it failing for good with `cause` (the writer gave up at close).
    pub(super) fn stopped(&self, cause: String) {
        let mut s = self.state.lock();
        let since = s.as_ref().map_or_else(Instant::now, |f| f.since);
        let retries = s.as_ref().map_or(0, |f| f.retries);
        *s = Some(Failing {
            cause,
            since,
            retries,
        });
        self.failing.store(true, Ordering::Release);
    }

    /// Writes retried since start (each failed attempt is retried).
    pub(super) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Failing spells since start.
    pub(super) fn spells(&self) -> u64 {
        self.spells.load(Ordering::Relaxed)
    }
}
