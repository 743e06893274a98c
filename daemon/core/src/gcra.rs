//! The per-user rate limit's arithmetic, for a store shared by several nodes: GCRA (the
//! generic cell rate algorithm) as a plain function, written and tested once here; the cluster
//! store's Lua script (sls-redis, `keys::TAKE_USER_TOKEN`) mirrors it line for line.
//!
//! It is the algorithm governor runs for the node's own limiters (`limits.rs`), with the
//! same numbers, so that one node behaves the same on either store: a key keeps one
//! timestamp, its *theoretical arrival time* (TAT); a request at `now` passes unless
//! `now < TAT − tolerance`, and then moves the TAT to `max(TAT, now) + interval`. `burst`
//! requests pass at once; then one per `interval`.
//!
//! ```text
//!   interval = 1 s / per_user        tolerance = interval × (burst − 1)
//!   ──────────────┬───────────────────────────┬──────────▶ time
//!            TAT − tolerance                  TAT
//!   now before it: refused, retry after (TAT − tolerance − now)
//! ```
//!
//! Time is in microseconds (an interval of 1 s / 3 is not a whole number of milliseconds);
//! a timestamp of 2026 is about 1.8·10¹⁵ µs, exact in Lua's doubles (up to 2⁵³).

use crate::config::RatePolicy;

/// The per-user quota in GCRA's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserQuota {
    /// What one request costs at the sustained rate: 1 s / `per_user`, in µs (at least 1).
    pub interval_us: u64,
    /// Requests that may come at once (at least 1).
    pub burst: u32,
}

impl UserQuota {
    /// The per-user quota of `rates`; `None` if the limit is off (`per_user` 0). The burst is
    /// at least the rate, as for the node's own limiter.
    pub fn of(rates: &RatePolicy) -> Option<UserQuota> {
        if rates.per_user == 0 {
            return None;
        }
        Some(UserQuota {
            interval_us: (1_000_000 / u64::from(rates.per_user)).max(1),
            burst: rates.per_user_burst.max(rates.per_user),
        })
    }

    /// How far the TAT may run ahead of now: `interval × (burst − 1)`.
    pub fn tolerance_us(&self) -> u64 {
        self.interval_us
            .saturating_mul(u64::from(self.burst.saturating_sub(1)))
    }
}

/// One request at `now_us` against the TAT kept for its key (`None`: none kept, or expired).
/// `Ok(new TAT)` if it passes: keep that until it is reached (then it means nothing more than
/// none). `Err(wait µs)` if it does not: nothing changes.
///
/// # Errors
/// `Err(wait)`: the request is over the quota; it would pass `wait` µs later.
pub fn gcra(tat_us: Option<u64>, now_us: u64, quota: UserQuota) -> Result<u64, u64> {
    let tat = tat_us.unwrap_or(now_us);
    let earliest = tat.saturating_sub(quota.tolerance_us());
    if now_us < earliest {
        return Err(earliest - now_us);
    }
    Ok(tat.max(now_us).saturating_add(quota.interval_us))
}

/// A wait as a `RateLimited` verdict's `retry_after_ms`: rounded up (a retry that soon
/// passes), at least 1.
pub fn retry_after_ms(wait_us: u64) -> u32 {
    u32::try_from(wait_us.div_ceil(1000))
        .unwrap_or(u32::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn quota(per_user: u32, burst: u32) -> UserQuota {
        UserQuota::of(&RatePolicy {
            per_user,
            per_user_burst: burst,
            ..RatePolicy::default()
        })
        .unwrap()
    }

    #[test]
    fn burst_at_once_then_one_per_interval() {
        let q = quota(5, 40);
        assert_eq!(
            (q.interval_us, q.burst, q.tolerance_us()),
            (200_000, 40, 7_800_000)
        );
        let now = 1_795_478_400_000_000;
        let mut tat = None;
        for _ in 0..40 {
            tat = Some(gcra(tat, now, q).unwrap());
        }
        assert_eq!(gcra(tat, now, q), Err(200_000));
        assert_eq!(retry_after_ms(200_000), 200);
        assert_eq!(gcra(tat, now + 199_999, q), Err(1));
        assert_eq!(retry_after_ms(1), 1);
        let t = gcra(tat, now + 200_000, q).unwrap();
        assert_eq!(gcra(Some(t), now + 200_000, q), Err(200_000));
        // Long idle: as if nothing was kept.
        assert_eq!(
            gcra(Some(t), now + 60_000_000, q),
            gcra(None, now + 60_000_000, q)
        );
    }

    #[test]
    fn the_quota_follows_the_policy() {
        assert_eq!(
            UserQuota::of(&RatePolicy {
                per_user: 0,
                ..RatePolicy::default()
            }),
            None
        );
        // A burst under the rate is the rate; a rate past 1 MHz still costs 1 µs.
        assert_eq!(quota(10, 3).burst, 10);
        assert_eq!(quota(3, 6).interval_us, 333_333);
        assert_eq!(quota(u32::MAX, 0).interval_us, 1);
        assert_eq!(quota(1, 1).tolerance_us(), 0);
    }
}
