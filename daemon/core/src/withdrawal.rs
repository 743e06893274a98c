//! R3 and R4: withdrawal limits by device. A withdrawal needs a device whose daily and
//! five-business-day limits cover it plus what was already withdrawn; a confirmed withdrawal
//! is recorded.
//!
//! **Choice:** a day is the last 24 hours; five business days are the last 7 calendar days.

use sls_protocol::{Limits, Purpose, SecurityLevel};

use crate::cx::Cx;
use crate::record::Record;
use crate::user::UserState;

const DAY_MS: u64 = 24 * 3_600_000;
const WEEK_MS: u64 = 7 * DAY_MS;

/// What was withdrawn in the last day and the last week.
pub fn withdrawn(u: &UserState, now: u64) -> (u64, u64) {
    let Some(x) = &u.extra else { return (0, 0) };
    let mut day = 0u64;
    let mut week = 0u64;
    for (at, amount) in &x.withdrawals {
        let age = now.saturating_sub(*at);
        if age < DAY_MS {
            day = day.saturating_add(*amount);
        }
        if age < WEEK_MS {
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

/// Records a confirmed withdrawal.
pub fn record(u: &mut UserState, purpose: Purpose, cx: &mut Cx<'_>) {
    if let Purpose::Withdrawal { amount_usd } = purpose {
        let now = cx.now;
        let x = u.extra.get_or_insert_with(Default::default);
        x.withdrawals
            .retain(|(at, _)| now.saturating_sub(*at) < WEEK_MS);
        x.withdrawals.push((now, amount_usd));
        cx.records.push(Record::Withdrawal {
            user: cx.user.to_owned(),
            amount_usd,
            at_ms: now,
        });
    }
}
