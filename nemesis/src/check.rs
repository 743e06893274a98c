//! The checks. Each user's requests go one at a time, so its acknowledged verdicts have an
//! order; a [`Tally`] follows them as they come and keeps what the end must find in the store:
//!
//! - **no acknowledged failure lost** (R11): the failures a node counts at the end are at least
//!   the `Rejected` verdicts acknowledged since the last success that may have happened (an
//!   acknowledged `Accepted`, or a right answer whose verdict never came back);
//! - **no acknowledged lock lost** (R11): a user any node answered `Locked` is locked on every
//!   node at the end, and on a node with no cache;
//! - **no lock with fewer than 10 failures**: a locked user counts at least the threshold, and
//!   no lock is acknowledged before the threshold of wrong answers that may have counted since
//!   the last acknowledged success;
//! - **no right answer accepted for a locked user** (R11), **no replay accepted** (R12: a
//!   challenge is accepted at most once, whichever node is asked).

use std::collections::HashMap;

use crate::history::{Intent, Outcome};

/// The lockout threshold slsd runs with here (its default, R11).
pub const THRESHOLD: u32 = 10;

/// One user's acknowledged history, folded.
#[derive(Debug, Default)]
pub struct Tally {
    /// The user.
    pub user: String,
    /// Acknowledged `Rejected` since the last success that may have happened: a lower bound
    /// of the count.
    pub rejected_since_success: u32,
    /// Wrong answers that may have counted since the last acknowledged success: an upper
    /// bound of the count (no lock may come before it reaches the threshold).
    pub maybe_failures: u32,
    /// When (ms) the first `Locked` was acknowledged.
    pub locked_at_ms: Option<u64>,
    /// Challenges accepted (R12: at most once each): when (ms) and by which node.
    accepted: HashMap<String, (u64, usize)>,
    /// Counts for the summary.
    pub counts: Counts,
    /// What broke, in words.
    pub violations: Vec<String>,
}

/// What the storm got acknowledged, summed over users.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Counts {
    /// Requests sent.
    pub requests: u64,
    /// Acknowledged `Rejected` verdicts.
    pub rejected: u64,
    /// Acknowledged `Accepted` verdicts.
    pub accepted: u64,
    /// Users with an acknowledged lock.
    pub locked_users: u64,
    /// Replays sent (a challenge answered again after its acknowledged acceptance).
    pub replays: u64,
    /// Right answers sent after the user's acknowledged lock.
    pub right_while_locked: u64,
    /// Answers with no verdict (an `Error` frame, a timeout, a lost connection).
    pub indeterminate: u64,
}

impl Counts {
    /// Adds `o`.
    pub fn add(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.rejected += o.rejected;
        self.accepted += o.accepted;
        self.locked_users += o.locked_users;
        self.replays += o.replays;
        self.right_while_locked += o.right_while_locked;
        self.indeterminate += o.indeterminate;
    }
}

impl Tally {
    /// A user with no history yet.
    pub fn new(user: &str) -> Tally {
        Tally {
            user: user.to_owned(),
            ..Tally::default()
        }
    }

    /// Folds one request of this user (sent at `t_ms` to `node`) and its outcome.
    pub fn observe(
        &mut self,
        t_ms: u64,
        node: usize,
        intent: Intent,
        txn: Option<&str>,
        o: &Outcome,
    ) {
        self.counts.requests += 1;
        if o.indeterminate() && intent != Intent::Begin {
            self.counts.indeterminate += 1;
        }
        match intent {
            Intent::Replay => self.counts.replays += 1,
            Intent::RightWhileLocked => self.counts.right_while_locked += 1,
            _ => {}
        }
        if o.is("locked") {
            if intent == Intent::Wrong && self.locked_at_ms.is_none() {
                self.maybe_failures += 1;
            }
            self.lock(t_ms, node);
            return;
        }
        match intent {
            Intent::Begin => {}
            Intent::Wrong => {
                if o.is("rejected") {
                    self.counts.rejected += 1;
                    self.rejected_since_success += 1;
                    self.maybe_failures += 1;
                    if let Outcome::Rejected(left) = o {
                        self.check_left(t_ms, node, *left);
                    }
                } else if o.indeterminate() {
                    self.maybe_failures += 1;
                }
            }
            Intent::Right | Intent::Replay | Intent::RightWhileLocked => {
                if o.is("accepted") {
                    self.accepted(t_ms, node, txn.unwrap_or("?"));
                } else if o.indeterminate() && intent == Intent::Right {
                    // It may have been accepted: the count may have started over.
                    self.rejected_since_success = 0;
                } else if o.is("rejected") {
                    self.violations.push(format!(
                        "{}: a right answer (txn {}) was rejected by node {node} at {t_ms} ms",
                        self.user,
                        txn.unwrap_or("?")
                    ));
                }
            }
        }
    }

    /// A `Rejected` verdict says how many failures are left: the count it was judged with
    /// is at least the acknowledged failures since the last success that may have happened.
    fn check_left(&mut self, t_ms: u64, node: usize, left: u8) {
        let count = THRESHOLD.saturating_sub(u32::from(left));
        if count < self.rejected_since_success {
            self.violations.push(format!(
                "{}: node {node} rejected an answer at {t_ms} ms with {left} failures left (a \
                 count of {count}), after {} acknowledged failures since its last success \
                 (acknowledged failure lost, R11)",
                self.user, self.rejected_since_success
            ));
            // Counted once: follow the store from here.
            self.rejected_since_success = count;
        }
    }

    fn accepted(&mut self, t_ms: u64, node: usize, txn: &str) {
        self.counts.accepted += 1;
        if let Some(at) = self.locked_at_ms {
            self.violations.push(format!(
                "{}: a right answer (txn {txn}) was accepted by node {node} at {t_ms} ms, \
                 after its lock was acknowledged at {at} ms (R11)",
                self.user
            ));
        }
        if let Some((first, by)) = self.accepted.insert(txn.to_owned(), (t_ms, node)) {
            self.violations.push(format!(
                "{}: challenge {txn}, accepted by node {by} at {first} ms, was accepted again by \
                 node {node} at {t_ms} ms (replay, R12)",
                self.user
            ));
        }
        self.rejected_since_success = 0;
        self.maybe_failures = 0;
    }

    fn lock(&mut self, t_ms: u64, node: usize) {
        if self.locked_at_ms.is_some() {
            return;
        }
        self.locked_at_ms = Some(t_ms);
        self.counts.locked_users += 1;
        if self.maybe_failures < THRESHOLD {
            self.violations.push(format!(
                "{}: locked by node {node} at {t_ms} ms after at most {} failures since its \
                 last acknowledged success (R11 locks at {THRESHOLD})",
                self.user, self.maybe_failures
            ));
        }
    }

    /// Checks what `node` (a name: `node 1`, `fresh node`) reads for this user at the end:
    /// `failures` counted, locked until `locked_until_ms`, at `now_ms` (wall clock).
    pub fn check_status(&mut self, node: &str, failures: u8, locked_until_ms: u64, now_ms: u64) {
        let failures = u32::from(failures);
        let locked = locked_until_ms > now_ms;
        if failures < self.rejected_since_success {
            self.violations.push(format!(
                "{}: {} acknowledged failures since its last success, {node} counts {failures} \
                 (acknowledged failure lost, R11)",
                self.user, self.rejected_since_success
            ));
        }
        if let Some(at) = self.locked_at_ms {
            if !locked {
                self.violations.push(format!(
                    "{}: its lock was acknowledged at {at} ms, {node} does not hold it \
                     (acknowledged lock lost, R11)",
                    self.user
                ));
            }
        }
        if locked && failures < THRESHOLD {
            self.violations.push(format!(
                "{}: {node} holds a lock with {failures} failures counted (R11 locks at \
                 {THRESHOLD})",
                self.user
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str) -> Outcome {
        Outcome::Verdict(name.into())
    }

    #[test]
    fn r11_a_lost_failure_and_a_lost_lock_are_caught() {
        let mut t = Tally::new("u");
        for _ in 0..9 {
            t.observe(1, 0, Intent::Wrong, Some("a"), &v("rejected"));
        }
        t.observe(2, 1, Intent::Wrong, Some("b"), &v("locked"));
        assert!(t.violations.is_empty(), "{:?}", t.violations);
        t.check_status("node 0", 10, u64::MAX, 5);
        assert!(t.violations.is_empty(), "{:?}", t.violations);
        t.check_status("node 1", 8, 0, 5);
        assert_eq!(t.violations.len(), 2, "{:?}", t.violations);
    }

    #[test]
    fn r11_a_rejection_that_counts_fewer_failures_than_acknowledged_is_caught() {
        let mut t = Tally::new("u");
        for left in [9, 8, 7] {
            t.observe(1, 0, Intent::Wrong, Some("a"), &Outcome::Rejected(left));
        }
        assert!(t.violations.is_empty(), "{:?}", t.violations);
        t.observe(2, 1, Intent::Wrong, Some("b"), &Outcome::Rejected(7));
        assert_eq!(t.violations.len(), 1, "{:?}", t.violations);
    }

    #[test]
    fn r11_a_right_answer_whose_verdict_was_lost_may_have_reset_the_count() {
        let mut t = Tally::new("u");
        t.observe(1, 0, Intent::Wrong, Some("a"), &v("rejected"));
        t.observe(
            2,
            0,
            Intent::Right,
            Some("b"),
            &Outcome::Lost("timeout".into()),
        );
        t.observe(3, 0, Intent::Wrong, Some("c"), &v("rejected"));
        t.check_status("node 0", 1, 0, 5);
        assert!(t.violations.is_empty(), "{:?}", t.violations);
    }

    #[test]
    fn r11_an_early_lock_and_a_right_answer_after_the_lock_are_caught() {
        let mut t = Tally::new("u");
        t.observe(1, 0, Intent::Wrong, Some("a"), &v("rejected"));
        t.observe(2, 0, Intent::Begin, None, &v("locked"));
        t.observe(3, 1, Intent::RightWhileLocked, Some("h"), &v("accepted"));
        assert_eq!(t.violations.len(), 2, "{:?}", t.violations);
    }

    #[test]
    fn r12_a_challenge_accepted_twice_is_caught() {
        let mut t = Tally::new("u");
        t.observe(1, 0, Intent::Right, Some("a"), &v("accepted"));
        t.observe(2, 1, Intent::Replay, Some("a"), &v("replayed"));
        assert!(t.violations.is_empty());
        t.observe(3, 1, Intent::Replay, Some("a"), &v("accepted"));
        assert_eq!(t.violations.len(), 1, "{:?}", t.violations);
    }
}
