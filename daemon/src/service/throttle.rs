//! Failures per source address: a token bucket per IP address of the failed attempts it may
//! make (`DeviceProve` on the device ALPN, which has no certificate to hold to account).
//!
//! ```text
//!  DeviceProve from ip ─▶ allowed(ip)? ─ no ─▶ Error RATE_LIMITED (the proof is not checked)
//!                                      └ yes ─▶ checked; wrong ─▶ failed(ip) spends a token
//! ```
//!
//! The table is bounded like the handshake buckets of [`super::limits`]: at most
//! [`MAX_ADDRESSES`] addresses, the idle ones (full again) forgotten at most once a second; while
//! it is full of busy ones, a new address is refused (an attacker spread over that many
//! addresses is already past what a per-address limit can do).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Most addresses with a bucket.
pub const MAX_ADDRESSES: usize = 65_536;
/// A bucket's burst, in seconds' worth of its rate.
const BURST_SECONDS: f64 = 5.0;

struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
struct Table {
    buckets: HashMap<IpAddr, Bucket>,
    pruned: Option<Instant>,
}

/// Failed attempts per address: `rate` a second, a burst of five seconds' worth; 0: no limit.
pub struct Failures {
    rate: u32,
    table: Mutex<Table>,
}

impl Failures {
    /// No failure yet.
    pub fn new(rate: u32) -> Failures {
        Failures {
            rate,
            table: Mutex::new(Table::default()),
        }
    }

    fn burst(&self) -> f64 {
        f64::from(self.rate) * BURST_SECONDS
    }

    /// `b` refilled up to `now`.
    fn refill(&self, b: &mut Bucket, now: Instant) {
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * f64::from(self.rate);
        b.tokens = (b.tokens + refill).min(self.burst());
        b.at = now;
    }

    /// How long an idle bucket takes to be full again.
    fn idle(&self) -> Duration {
        Duration::from_secs_f64(BURST_SECONDS + 1.0)
    }

    /// Whether `ip` may make an attempt at `now` (it has a failure left to spend).
    pub fn allowed(&self, ip: IpAddr, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let mut t = self.table.lock();
        match t.buckets.get_mut(&ip) {
            None => true,
            Some(b) => {
                self.refill(b, now);
                b.tokens >= 1.0
            }
        }
    }

    /// `ip` failed at `now`: one token spent.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        if self.rate == 0 {
            return;
        }
        let mut t = self.table.lock();
        if !t.buckets.contains_key(&ip) && t.buckets.len() >= MAX_ADDRESSES {
            let due = t
                .pruned
                .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
            if due {
                t.pruned = Some(now);
                let idle = self.idle();
                t.buckets
                    .retain(|_, b| now.saturating_duration_since(b.at) < idle);
            }
            if t.buckets.len() >= MAX_ADDRESSES {
                return;
            }
        }
        let burst = self.burst();
        let b = t.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        self.refill(b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn an_address_gets_its_burst_of_failures_then_its_rate_and_others_are_untouched() {
        let f = Failures::new(2);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(f.allowed(A, t0));
            f.failed(A, t0);
        }
        assert!(!f.allowed(A, t0));
        assert!(f.allowed(B, t0));
        let t1 = t0 + Duration::from_millis(500);
        assert!(f.allowed(A, t1));
        f.failed(A, t1);
        assert!(!f.allowed(A, t1));
    }

    #[test]
    fn zero_turns_it_off_and_the_table_stays_bounded() {
        let off = Failures::new(0);
        let t0 = Instant::now();
        for _ in 0..100 {
            off.failed(A, t0);
        }
        assert!(off.allowed(A, t0));
        let f = Failures::new(1);
        for i in 0..u32::try_from(MAX_ADDRESSES).unwrap() {
            f.failed(IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i))), t0);
        }
        let new = IpAddr::V6(std::net::Ipv6Addr::from(u128::MAX));
        f.failed(new, t0);
        assert_eq!(f.table.lock().buckets.len(), MAX_ADDRESSES);
        // Once the others are idle (full again), they are forgotten.
        f.failed(new, t0 + Duration::from_secs(7));
        assert_eq!(f.table.lock().buckets.len(), 1);
    }
}
