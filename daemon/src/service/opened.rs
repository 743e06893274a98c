//! The open challenges one connection began (`--max-open-per-connection`), so that one frontend
//! cannot fill the daemon's cap of open challenges (`--max-open-txns`) with challenges it never
//! answers and lock the others out until they expire.
//!
//! ```text
//!  Begin ─▶ reserve(): expired ones dropped; at the cap, up to PROBES of the oldest asked of
//!           the core (answered on any node, voided, forgotten: dropped) ─▶ still at the cap:
//!           Error CAPACITY ─▶ else the core's begin ─▶ a challenge: added (txn, expiry)
//! ```
//!
//! A challenge counts from its `Begin` until it expires (by this node's clock, the challenge
//! life after its `Begin`), or until a probe finds it answered or voided: a connection at its
//! cap frees the places of the challenges it answered as it asks for more. The lock is never
//! held across an await; a place is reserved across the core's `begin`, so concurrent streams
//! of one connection cannot both take the last one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sls_protocol::{TxnId, Verdict};

use crate::backend::Backend;
use crate::core::Core;

/// Most of a connection's oldest challenges asked of the core per `Begin` at the cap.
pub const PROBES: usize = 16;

#[derive(Default)]
struct Inner {
    /// (transaction, when it stops counting), in the order begun: the expiries are in order.
    open: VecDeque<(TxnId, Instant)>,
    /// Places reserved by `Begin`s in progress.
    reserved: usize,
    /// Where the next probe starts (the oldest ones may all be open: the probes walk on).
    cursor: usize,
}

impl Inner {
    fn prune(&mut self, now: Instant) {
        while self.open.front().is_some_and(|&(_, until)| until <= now) {
            self.open.pop_front();
            self.cursor = self.cursor.saturating_sub(1);
        }
    }

    fn held(&self) -> usize {
        self.open.len().saturating_add(self.reserved)
    }
}

/// One connection's open challenges. Shared by its streams.
#[derive(Default)]
pub struct Opened(Mutex<Inner>);

/// A place reserved for a `Begin` in progress; given back when dropped.
#[must_use = "the place is held until this is dropped"]
pub struct Place<'a>(&'a Opened);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut i = self.0 .0.lock();
        i.reserved = i.reserved.saturating_sub(1);
    }
}

impl Place<'_> {
    /// The `Begin` issued `txn`, which stops counting at `until` at the latest.
    pub fn issued(self, txn: TxnId, until: Instant) {
        self.0 .0.lock().open.push_back((txn, until));
    }
}

impl Opened {
    /// Challenges counted now (tests and stats).
    pub fn len(&self) -> usize {
        self.0.lock().open.len()
    }

    /// Whether none is counted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn try_reserve(&self, cap: usize, now: Instant) -> Result<Place<'_>, Vec<TxnId>> {
        let mut i = self.0.lock();
        i.prune(now);
        if i.held() < cap {
            i.reserved = i.reserved.saturating_add(1);
            return Ok(Place(self));
        }
        let n = i.open.len();
        if n == 0 {
            return Err(Vec::new());
        }
        let start = i.cursor % n;
        let probes = (0..PROBES.min(n))
            .filter_map(|k| i.open.get((start + k) % n).map(|&(t, _)| t))
            .collect();
        i.cursor = (start + PROBES.min(n)) % n;
        Err(probes)
    }

    /// A place for one more challenge on this connection (of at most `cap`), or `None`.
    pub async fn reserve(&self, core: &Core<Backend>, cap: usize) -> Option<Place<'_>> {
        let probes = match self.try_reserve(cap, Instant::now()) {
            Ok(place) => return Some(place),
            Err(probes) => probes,
        };
        let mut done = Vec::new();
        for txn in probes {
            // A store error: not known to be spent, still counted.
            if let Ok(v) = core.txn_verdict(txn).await {
                if !matches!(v, Verdict::Pending) {
                    done.push(txn);
                }
            }
        }
        if !done.is_empty() {
            let mut i = self.0.lock();
            i.open.retain(|(t, _)| !done.contains(t));
        }
        self.try_reserve(cap, Instant::now()).ok()
    }
}

/// When a challenge begun now stops counting: after its life.
pub fn until(ttl: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(ttl).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_given_back_and_expired_ones_stop_counting() {
        let o = Opened::default();
        let t0 = Instant::now();
        let a = o.try_reserve(2, t0).ok().unwrap();
        let b = o.try_reserve(2, t0).ok().unwrap();
        assert_eq!(o.try_reserve(2, t0).err().map(|p| p.len()), Some(0));
        drop(b);
        a.issued(TxnId(1), t0 + Duration::from_secs(1));
        let c = o.try_reserve(2, t0).ok().unwrap();
        c.issued(TxnId(2), t0 + Duration::from_secs(2));
        assert_eq!(o.try_reserve(2, t0).err(), Some(vec![TxnId(1), TxnId(2)]));
        let t1 = t0 + Duration::from_secs(1);
        assert!(o.try_reserve(2, t1).is_ok());
        assert_eq!(o.len(), 1);
    }
}
