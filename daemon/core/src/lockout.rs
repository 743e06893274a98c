//! R11: ten failed attempts within any 24 hours lock the user for 24 hours after the last
//! failure. Wrong answers, malformed answers (R10, by default), forged or mismatched push
//! approvals and failed passwords reported by the frontend all count; a success resets the
//! count; client services may unlock.
//!
//! **Exactness under concurrency.** These functions run inside the store's atomic update of
//! one user, so when answers for one user race, they are judged one at a time: at most the
//! threshold of failures is ever evaluated before the lock holds, and a right answer that
//! loses the race to the 10th failure sees the lock.

use std::collections::VecDeque;

use sls_protocol::Verdict;

use crate::config::CoreConfig;
use crate::cx::{after, ms, Cx};
use crate::record::Record;
use crate::user::UserState;

/// Whether the user is locked at `now`.
pub fn is_locked(u: &UserState, now: u64) -> bool {
    u.locked_until > now
}

/// Evaluates and records one failure.
pub fn fail(u: &mut UserState, cx: &mut Cx<'_>) -> Verdict {
    cx.tally.failures += 1;
    cx.records.push(Record::Failure {
        user: cx.user.to_owned(),
        at_ms: cx.now,
    });
    let was_locked = is_locked(u, cx.now);
    let v = count_failure(u, cx.now, cx.cfg);
    if matches!(v, Verdict::Locked { .. }) && !was_locked {
        cx.tally.lockouts += 1;
    }
    v
}

/// Counts a failure at `at` (live, or replayed from the journal).
pub fn count_failure(u: &mut UserState, at: u64, cfg: &CoreConfig) -> Verdict {
    let window = ms(cfg.lockout_window);
    let log = u.failures.get_or_insert_with(Default::default);
    // A failure counts while it is less than the window old: "within any 24-hour period".
    while log.front().is_some_and(|t| at.saturating_sub(*t) >= window) {
        log.pop_front();
    }
    log.push_back(at);
    let count = log.len();
    let threshold = usize::from(cfg.lockout_threshold);
    if count >= threshold {
        // Locked until 24 h after the last failure.
        u.locked_until = after(at, cfg.lock_duration);
        Verdict::Locked {
            until_ms: u.locked_until,
        }
    } else {
        Verdict::Rejected {
            failures_left: u8::try_from(threshold - count).unwrap_or(u8::MAX),
        }
    }
}

/// Failures in the window at `now`.
pub fn failures_in_window(u: &UserState, now: u64, cfg: &CoreConfig) -> usize {
    let window = ms(cfg.lockout_window);
    u.failures.as_ref().map_or(0, |log| {
        log.iter()
            .filter(|t| now.saturating_sub(**t) < window)
            .count()
    })
}

/// Refuses a request of a locked user; by default without extending the lock.
pub fn refuse_locked(u: &mut UserState, cx: &mut Cx<'_>) -> Verdict {
    cx.tally.refused_locked += 1;
    if cx.cfg.extend_lock_while_locked {
        return fail(u, cx);
    }
    Verdict::Locked {
        until_ms: u.locked_until,
    }
}

/// A success: the count starts over (and the push fatigue count).
pub fn succeed(u: &mut UserState, cx: &mut Cx<'_>) {
    cx.tally.accepted += 1;
    u.pushes = 0;
    if u.failures.take().is_some() {
        cx.records.push(Record::Reset {
            user: cx.user.to_owned(),
        });
    }
}

/// Forgets the failures and lifts the lock.
pub fn reset(u: &mut UserState) {
    u.failures = None;
    u.locked_until = 0;
}

/// A failed password reported by the frontend counts as a failed attempt.
pub fn password_failed(u: &mut UserState, cx: &mut Cx<'_>) -> Verdict {
    if is_locked(u, cx.now) {
        refuse_locked(u, cx)
    } else {
        fail(u, cx)
    }
}

/// Client services lift a lock after verifying the user's identity.
pub fn unlock(u: &mut UserState, cx: &mut Cx<'_>) {
    reset(u);
    cx.records.push(Record::Reset {
        user: cx.user.to_owned(),
    });
}

/// The mass-lockout signal's count: forgets lockout times more than `window_ms` before
/// `now_ms` and returns how many remain (a store keeps `times` oldest first).
pub fn recent_lockouts(times: &mut VecDeque<u64>, now_ms: u64, window_ms: u64) -> usize {
    while times
        .front()
        .is_some_and(|t| now_ms.saturating_sub(*t) > window_ms)
    {
        times.pop_front();
    }
    times.len()
}
