//! A histogram of durations in fixed buckets, kept in plain atomics: an observation is a search
//! over a short sorted array and two relaxed adds, no lock. Read at scrape time, where the
//! count is the buckets' sum (so `+Inf` and `_count` always agree, even mid-update).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in nanoseconds (1 µs to 1 s: an answer is handled in a few
/// µs); one more bucket above them.
pub const BOUNDS_NS: [u64; 18] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// Observations by bucket, and their sum.
#[derive(Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    /// Sum of the observations, in nanoseconds (wraps after 584 years of summed time).
    sum_ns: AtomicU64,
}

/// A histogram as read at one scrape.
pub struct Reading {
    /// Sum of the observations, in seconds.
    pub sum_seconds: f64,
    /// Observations.
    pub count: u64,
    /// Upper bound in seconds (the last `+Inf`) and the observations in that bucket alone.
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    /// One observation.
    pub fn observe(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS.partition_point(|b| *b < ns);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observations so far (a scrape-time sum, not for the hot path).
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The histogram now.
    pub fn read(&self) -> Reading {
        let mut buckets = Vec::with_capacity(self.buckets.len());
        let mut count = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            count += n;
            let bound = BOUNDS_NS
                .get(i)
                .map_or(f64::INFINITY, |ns| *ns as f64 / 1e9);
            buckets.push((bound, n));
        }
        Reading {
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_nanos(10));
        h.observe(Duration::from_micros(5)); // on a bound: that bucket (le)
        h.observe(Duration::from_micros(6));
        h.observe(Duration::from_secs(5)); // above every bound
        let r = h.read();
        assert_eq!(r.count, 4);
        assert_eq!(r.buckets[0], (1e-6, 1));
        assert_eq!(r.buckets[1], (2.5e-6, 0));
        assert_eq!(r.buckets[2], (5e-6, 1));
        assert_eq!(r.buckets[3], (1e-5, 1));
        assert_eq!(r.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((r.sum_seconds - 5.000_011_01).abs() < 1e-9);
    }
}
