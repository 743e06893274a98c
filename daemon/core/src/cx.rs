//! What every rule is given besides the user's state: the configuration, `now`, the random
//! source, where to put the records to make durable, and a tally for the counters.

use rand::RngCore;

use crate::config::CoreConfig;
use crate::record::Record;

/// A rule's context for one user.
pub struct Cx<'a> {
    /// The rules' numbers.
    pub cfg: &'a CoreConfig,
    /// Now, ms since the epoch.
    pub now: u64,
    /// The user's name (records carry it).
    pub user: &'a str,
    /// Randomness (ids, challenges, codes).
    pub rng: &'a mut dyn RngCore,
    /// Records to make durable before the result is sent.
    pub records: &'a mut Vec<Record>,
    /// What happened, for the counters (added only once the change is committed).
    pub tally: &'a mut Tally,
}

/// Events of one rule's run, counted once its change is committed (a store that retries a
/// rule counts only the run that stuck).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Failures evaluated (R11).
    pub failures: u32,
    /// Users newly locked (R11).
    pub lockouts: u32,
    /// Requests refused while locked.
    pub refused_locked: u32,
    /// Accepted verifications.
    pub accepted: u32,
    /// Replays refused (R12).
    pub replays: u32,
    /// Expired challenges answered.
    pub expired: u32,
    /// Pushes sent (R6).
    pub pushes: u32,
    /// Pushes refused by the fatigue cap.
    pub push_capped: u32,
}

/// A duration in milliseconds, saturating (a duration from config never wraps a deadline).
pub(crate) fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `at + d`, saturating.
pub(crate) fn after(at: u64, d: std::time::Duration) -> u64 {
    at.saturating_add(ms(d))
}
