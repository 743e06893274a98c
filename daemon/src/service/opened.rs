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
//! life after its `Begin`), until an answer on this connection spends it, or until a probe
//! finds it answered or voided: answered elsewhere (another connection, another node), it is
//! freed when this connection, at its cap, asks for more. The lock is never held across an
//! await; a place is reserved across the core's `begin`, so concurrent streams of one
//! connection cannot both take the last one. Every operation is O(1) amortised: a frontend that
//! answers what it begins never meets its cap, however fast it logs users in.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sls_protocol::{TxnId, Verdict};

use crate::backend::Backend;
use crate::engine::Core;

/// Most of a connection's oldest challenges asked of the core per `Begin` at the cap.
pub const PROBES: usize = 16;

#[derive(Default)]
struct Inner {
    /// The challenges counted, and when each stops counting.
    open: HashMap<TxnId, Instant, ahash::RandomState>,
    /// The same in the order begun (so their expiries are in order), with some already spent:
    /// those are skipped, and dropped once they are half the queue.
    order: VecDeque<(TxnId, Instant)>,
    /// Places reserved by `Begin`s in progress.
    reserved: usize,
    /// Where the next probe starts in `order` (the oldest ones may all be open: probes walk on).
    cursor: usize,
}

impl Inner {
    fn prune(&mut self, now: Instant) {
        while let Some(&(txn, until)) = self.order.front() {
            if until > now {
                break;
            }
            self.order.pop_front();
            self.open.remove(&txn);
            self.cursor = self.cursor.saturating_sub(1);
        }
    }

    fn forget(&mut self, txn: TxnId) {
        if self.open.remove(&txn).is_none() {
            return;
        }
        if self.order.len() > 64 && self.order.len() / 2 > self.open.len() {
            let open = &self.open;
            self.order.retain(|(t, _)| open.contains_key(t));
            self.cursor = 0;
        }
    }

    fn held(&self) -> usize {
        self.open.len().saturating_add(self.reserved)
    }
}

/// One connection's open challenges. Shared by its streams.
#[derive(Default)]
pub struct Opened(Mutex<Inner>);

/// A place reserved for a `Begin` in progress, and when; given back when dropped, or taken by
/// the challenge issued ([`Place::issued`]).
#[must_use = "the place is held until this is dropped"]
pub struct Place<'a>(Option<&'a Opened>, Instant);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if let Some(opened) = self.0 {
            let mut i = opened.0.lock();
            i.reserved = i.reserved.saturating_sub(1);
        }
    }
}

impl Place<'_> {
    /// The `Begin` issued `txn`, which stops counting after `life` (from the reservation) at
    /// the latest. The challenge takes the place under the same lock that gives it back.
    pub fn issued(mut self, txn: TxnId, life: Duration) {
        let until = self.1.checked_add(life).unwrap_or(self.1);
        if let Some(opened) = self.0.take() {
            let mut i = opened.0.lock();
            i.reserved = i.reserved.saturating_sub(1);
            i.open.insert(txn, until);
            i.order.push_back((txn, until));
        }
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

    /// An answer on this connection judged `txn` with `verdict`: unless the verdict left the
    /// challenge open (the user locked, the answer rate-limited), it no longer counts.
    pub fn answered(&self, txn: TxnId, verdict: &Verdict) {
        if !matches!(
            verdict,
            Verdict::Locked { .. } | Verdict::RateLimited { .. }
        ) {
            self.0.lock().forget(txn);
        }
    }

    fn try_reserve(&self, cap: usize, now: Instant) -> Result<Place<'_>, Vec<TxnId>> {
        let mut i = self.0.lock();
        i.prune(now);
        if i.held() < cap {
            i.reserved = i.reserved.saturating_add(1);
            return Ok(Place(Some(self), now));
        }
        let n = i.order.len();
        if n == 0 {
            return Err(Vec::new());
        }
        let start = i.cursor % n;
        let probes: Vec<TxnId> = (0..n)
            .filter_map(|k| i.order.get((start + k) % n).map(|&(t, _)| t))
            .filter(|t| i.open.contains_key(t))
            .take(PROBES)
            .collect();
        i.cursor = (start + PROBES.min(n)) % n;
        Err(probes)
    }

    /// A place for one more challenge on this connection (of at most `cap`), or `None`.
    pub async fn reserve<B: Backend>(&self, core: &Core<B>, cap: usize) -> Option<Place<'_>> {
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
            for txn in done {
                i.forget(txn);
            }
        }
        self.try_reserve(cap, Instant::now()).ok()
    }
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
        a.issued(TxnId(1), Duration::from_secs(1));
        let c = o.try_reserve(2, t0).ok().unwrap();
        c.issued(TxnId(2), Duration::from_secs(2));
        assert_eq!(o.try_reserve(2, t0).err(), Some(vec![TxnId(1), TxnId(2)]));
        let t1 = t0 + Duration::from_secs(1);
        assert!(o.try_reserve(2, t1).is_ok());
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn a_challenge_answered_on_its_connection_stops_counting_at_once() {
        let o = Opened::default();
        let t0 = Instant::now();
        let life = Duration::from_secs(120);
        // Far more logins than the cap, each answered: the cap is never met (before, every
        // answered challenge counted for its whole life, and the connection met its cap).
        for n in 0..10_000u128 {
            let place = o.try_reserve(100, t0).expect("a place");
            place.issued(TxnId(n), life);
            let verdict = if n % 2 == 0 {
                Verdict::Rejected { failures_left: 9 }
            } else {
                Verdict::Expired
            };
            o.answered(TxnId(n), &verdict);
        }
        assert_eq!(o.len(), 0);
        // The queue of the order begun is compacted as it goes, not kept for the life.
        assert!(o.0.lock().order.len() <= 130, "{}", o.0.lock().order.len());
        // A verdict that leaves the challenge open keeps it counted, and probed at the cap.
        let place = o.try_reserve(1, t0).expect("a place");
        place.issued(TxnId(7_777), life);
        o.answered(TxnId(7_777), &Verdict::RateLimited { retry_after_ms: 5 });
        o.answered(TxnId(7_777), &Verdict::Locked { until_ms: 1 });
        assert_eq!(o.len(), 1);
        assert_eq!(o.try_reserve(1, t0).err(), Some(vec![TxnId(7_777)]));
    }
}
