//! Rate limits (governor): per user, per end-user address as the frontend reports it, and for
//! the whole node.
//!
//! The per-address and node-wide limits are per node: with several nodes, size them for the
//! node's share. The per-user limit is exact across nodes when the store is shared: the store
//! keeps it ([`Store::keeps_user_limit`], GCRA from [`crate::gcra`]) and the node's own
//! per-user limiter here serves only a store that is not shared (the embedded store).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use sls_protocol::Verdict;

use crate::clock::{Clock, GovernorClock};
use crate::gcra::UserQuota;
#[cfg(doc)]
use crate::store::Store;
use crate::RatePolicy;

type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, GovernorClock, NoOpMiddleware<Duration>>;
type Direct = RateLimiter<NotKeyed, InMemoryState, GovernorClock, NoOpMiddleware<Duration>>;

/// The node's limiters.
pub(crate) struct Limiters {
    clock: Arc<dyn Clock>,
    per_user: Option<Keyed<u64>>,
    per_client: Option<Keyed<IpAddr>>,
    global: Option<Direct>,
    /// Users are keyed by a hash of their name (fixed seeds: the same on every start).
    user_key: ahash::RandomState,
    /// The per-user quota, for a shared store's limiter; `None`: off.
    pub user_quota: Option<UserQuota>,
}

fn quota(per_sec: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_sec)?;
    let burst = NonZeroU32::new(burst.max(per_sec)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl Limiters {
    pub fn new(r: &RatePolicy, clock: Arc<dyn Clock>) -> Limiters {
        let gclock = GovernorClock(clock.clone());
        Limiters {
            per_user: quota(r.per_user, r.per_user_burst)
                .map(|q| RateLimiter::dashmap_with_clock(q, gclock.clone())),
            per_client: quota(r.per_client, r.per_client_burst)
                .map(|q| RateLimiter::dashmap_with_clock(q, gclock.clone())),
            global: quota(r.global, r.global)
                .map(|q| RateLimiter::direct_with_clock(q, gclock.clone())),
            clock,
            user_key: ahash::RandomState::with_seeds(1, 2, 3, 4),
            user_quota: UserQuota::of(r),
        }
    }

    fn retry_after(&self, not_until: governor::NotUntil<Duration>) -> Verdict {
        let wait = not_until.wait_time_from(self.clock.now());
        Verdict::RateLimited {
            retry_after_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1),
        }
    }

    /// The node-wide and per-address limits.
    pub fn client(&self, client: IpAddr) -> Option<Verdict> {
        if let Some(Err(n)) = self.global.as_ref().map(|g| g.check()) {
            return Some(self.retry_after(n));
        }
        if let Some(Err(n)) = self.per_client.as_ref().map(|c| c.check_key(&client)) {
            return Some(self.retry_after(n));
        }
        None
    }

    /// The per-user limit, this node's own.
    pub fn user(&self, user: &str) -> Option<Verdict> {
        let l = self.per_user.as_ref()?;
        let key = self.user_key.hash_one(user);
        l.check_key(&key).err().map(|n| self.retry_after(n))
    }

    /// Forgets idle limiter state.
    pub fn sweep(&self) {
        if let Some(l) = &self.per_user {
            l.retain_recent();
        }
        if let Some(l) = &self.per_client {
            l.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use proptest::prelude::*;
    use sls_core::gcra::{gcra, retry_after_ms};

    use super::*;
    use crate::clock::FakeClock;

    proptest! {
        /// The same decisions as governor's limiter (the node's own), for any arrivals, with a
        /// rate whose interval is a whole number of microseconds.
        #[test]
        fn decides_as_governor_does(
            per_user in prop::sample::select(vec![1u32, 2, 4, 5, 8, 10, 16, 20, 25, 50, 100, 1000]),
            burst in 0u32..50,
            steps in prop::collection::vec(0u64..400_000, 1..300),
        ) {
            let rates = RatePolicy { per_user, per_user_burst: burst, ..RatePolicy::default() };
            let q = UserQuota::of(&rates).unwrap();
            let clock = FakeClock::default();
            let limiters = Limiters::new(&rates, Arc::new(clock.clone()));
            let mut tat = None;
            for step in steps {
                clock.advance(std::time::Duration::from_micros(step));
                let now = u64::try_from(clock.now().as_micros()).unwrap();
                let theirs = limiters.user("ann");
                let ours = gcra(tat, now, q);
                prop_assert_eq!(theirs.is_none(), ours.is_ok(), "at {}", now);
                if let Ok(t) = ours {
                    tat = Some(t);
                }
                if let (Some(sls_protocol::Verdict::RateLimited { retry_after_ms: g }), Err(w)) = (theirs, ours) {
                    // governor rounds down, this rounds up.
                    prop_assert!(retry_after_ms(w) == g || retry_after_ms(w) == g + 1, "{} vs {}", w, g);
                }
            }
        }
    }
}
