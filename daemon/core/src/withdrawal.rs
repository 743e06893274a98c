//! R3 and R4: withdrawal limits by device. A withdrawal needs a device whose daily and
//! five-business-day limits cover it plus what was already withdrawn; a confirmed withdrawal
//! is recorded.
//!
//! **Choices:** a day is the last 24 hours. Five business days are the current day and the
//! days back to the fifth business day (Monday to Friday) that began since a withdrawal's
//! day: a withdrawal counts until the fifth business day after the day it was made begins, so
//! a weekend inside the window stretches it, and one made on a weekend counts through the
//! Thursday after. Days are UTC days; no holidays are known to the daemon.

use sls_protocol::{Limits, Purpose, SecurityLevel, TxnId};

use crate::cx::Cx;
use crate::error::CoreError;
use crate::record::Record;
use crate::user::UserState;

const DAY_MS: u64 = 24 * 3_600_000;
/// How long a withdrawal is kept: five business days never span more than 7 calendar days.
const KEEP_MS: u64 = 7 * DAY_MS;

/// Whether the UTC day `day` (days since 1970-01-01, a Thursday) is a business day.
fn is_business_day(day: u64) -> bool {
    // 0 = Monday.
    (day + 3) % 7 < 5
}

/// Business days that began after the day of `at` up to the day of `now`.
fn business_days_since(at: u64, now: u64) -> u64 {
    let (from, to) = (at / DAY_MS, now / DAY_MS);
    // Bounded: past 7 days the count is already past 5.
    (from.saturating_add(1)..=to.min(from.saturating_add(8)))
        .filter(|d| is_business_day(*d))
        .count() as u64
}

/// Whether a withdrawal made at `at` still counts in the five business days at `now`.
pub fn in_five_business_days(at: u64, now: u64) -> bool {
    business_days_since(at, now) < 5
}

/// What was withdrawn in the last day and in the last five business days.
pub fn withdrawn(u: &UserState, now: u64) -> (u64, u64) {
    let Some(x) = &u.extra else { return (0, 0) };
    let mut day = 0u64;
    let mut week = 0u64;
    for (at, amount) in &x.withdrawals {
        if now.saturating_sub(*at) < DAY_MS {
            day = day.saturating_add(*amount);
        }
        if in_five_business_days(*at, now) {
            week = week.saturating_add(*amount);
        }
    }
    (day, week)
}

/// Whether `limits` cover `amount` on top of `used`.
pub fn covers(limits: Limits, amount: u64, used: (u64, u64)) -> bool {
    amount.saturating_add(used.0) <= limits.per_day_usd
        && amount.saturating_add(used.1) <= limits.per_5_business_days_usd
}

/// Whether a device of `level` may be used for `purpose`.
pub fn allows(level: SecurityLevel, purpose: Purpose, used: (u64, u64)) -> bool {
    match purpose {
        Purpose::Login => true,
        Purpose::Withdrawal { amount_usd } => covers(level.limits(), amount_usd, used),
    }
}

/// The least security level whose limits cover `amount`.
pub fn required_level(amount: u64, used: (u64, u64)) -> SecurityLevel {
    [
        SecurityLevel::None,
        SecurityLevel::Scc,
        SecurityLevel::IbKey,
        SecurityLevel::Dsc,
        SecurityLevel::Top,
    ]
    .into_iter()
    .find(|l| covers(l.limits(), amount, used))
    .unwrap_or(SecurityLevel::Top)
}

/// R3/R4 when a withdrawal is confirmed by a device of `level`: `Some(verdict)` if its limits
/// no longer cover it. `begin` judged them with what was withdrawn then; another withdrawal
/// confirmed since may have used them up.
pub fn still_covered(
    u: &UserState,
    level: SecurityLevel,
    purpose: Purpose,
    now: u64,
) -> Option<sls_protocol::Verdict> {
    let Purpose::Withdrawal { amount_usd } = purpose else {
        return None;
    };
    let used = withdrawn(u, now);
    (!allows(level, purpose, used)).then(|| sls_protocol::Verdict::NeedsStrongerDevice {
        required: required_level(amount_usd, used),
    })
}

/// Records a confirmed withdrawal: at the moment its second factor is accepted (the answer or
/// push approval of transaction `txn`, or an opted-out user's `Begin`, which has none).
pub fn record(u: &mut UserState, purpose: Purpose, txn: Option<TxnId>, cx: &mut Cx<'_>) {
    if let Purpose::Withdrawal { amount_usd } = purpose {
        let now = cx.now;
        let x = u.extra.get_or_insert_with(Default::default);
        x.withdrawals
            .retain(|(at, _)| now.saturating_sub(*at) < KEEP_MS);
        x.withdrawn_by
            .retain(|(_, at, _)| now.saturating_sub(*at) < KEEP_MS);
        x.withdrawals.push((now, amount_usd));
        cx.records.push(Record::Withdrawal {
            user: cx.user.to_owned(),
            amount_usd,
            at_ms: now,
        });
        if let Some(txn) = txn {
            x.withdrawn_by.push((txn.0, now, amount_usd));
            cx.records.push(Record::WithdrawalTxn {
                user: cx.user.to_owned(),
                txn,
                amount_usd,
                at_ms: now,
            });
        }
    }
}

/// R3: the withdrawal confirmed by `txn` did not execute (the frontend says so): it no longer
/// counts towards the limits. Once only: a second release of it is `UnknownWithdrawal`.
///
/// # Errors
/// No withdrawal of the user under `txn` (never one, released already, or past the 7 days
/// withdrawals are kept).
pub fn release(u: &mut UserState, txn: TxnId, cx: &mut Cx<'_>) -> Result<(), CoreError> {
    let x = u.extra.as_mut().ok_or(CoreError::UnknownWithdrawal)?;
    let i = x
        .withdrawn_by
        .iter()
        .position(|(t, _, _)| *t == txn.0)
        .ok_or(CoreError::UnknownWithdrawal)?;
    let (_, at_ms, amount_usd) = x.withdrawn_by.swap_remove(i);
    if let Some(j) = x.withdrawals.iter().position(|w| *w == (at_ms, amount_usd)) {
        x.withdrawals.remove(j);
    }
    cx.records.push(Record::WithdrawalReleased {
        user: cx.user.to_owned(),
        txn,
        amount_usd,
        at_ms,
    });
    Ok(())
}

/// Replay: a withdrawal released (see [`release`]).
pub fn replay_release(u: &mut UserState, txn: TxnId, at_ms: u64, amount_usd: u64) {
    if let Some(x) = u.extra.as_mut() {
        x.withdrawn_by.retain(|(t, _, _)| *t != txn.0);
        if let Some(j) = x.withdrawals.iter().position(|w| *w == (at_ms, amount_usd)) {
            x.withdrawals.remove(j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23, a Monday, 00:00 UTC, in ms.
    const MONDAY: u64 = 1_795_392_000_000;

    fn day(n: u64) -> u64 {
        MONDAY + n * DAY_MS
    }

    #[test]
    fn the_calendar_is_right() {
        // Monday 2026-11-23 .. Sunday 2026-11-29.
        let week: Vec<bool> = (0..7).map(|n| is_business_day(day(n) / DAY_MS)).collect();
        assert_eq!(week, [true, true, true, true, true, false, false]);
    }

    #[test]
    fn five_business_days_stretch_over_a_weekend() {
        let noon = 12 * 3_600_000;
        // Made on a Wednesday: counts through the next Tuesday, not on Wednesday.
        let wed = day(2) + noon;
        assert!(in_five_business_days(wed, day(8) + DAY_MS - 1));
        assert!(!in_five_business_days(wed, day(9)));
        // Made on a Saturday: counts through Thursday (four business days began since),
        // not on Friday, which seven calendar days would have kept.
        let sat = day(5) + noon;
        assert!(in_five_business_days(sat, day(10) + noon));
        assert!(!in_five_business_days(sat, day(11) + noon));
        // Made on a Friday: counts through the next Thursday.
        let fri = day(4) + noon;
        assert!(in_five_business_days(fri, day(10) + DAY_MS - 1));
        assert!(!in_five_business_days(fri, day(11)));
        // Always within what is kept.
        for made in 0..7 {
            let at = day(made) + noon;
            for later in 0..(14 * 24) {
                let now = at + later * 3_600_000;
                if in_five_business_days(at, now) {
                    assert!(now - at < KEEP_MS, "{made} {later}");
                }
            }
        }
    }
}
