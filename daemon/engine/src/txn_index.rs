//! The embedded store's transaction index: an open challenge's user and device, and for the
//! replay window the verdict of a spent one (R12).
//!
//! Two maps, because their entries live differently:
//!
//! ```text
//!  Begin ─▶ open  (the logins in flight: thousands; read by the answer, small, in cache)
//!  Answer ─▶ spent (every login of the last replay window: rate × window, millions at a
//!            million logins a second; written once, read by a replay or an Await)
//!  sweep ─▶ both, past their deadlines
//! ```
//!
//! Kept apart, the map every answer reads stays small; the large one is touched once per login,
//! when its entry moves there. A spent entry is written before its open one is removed, so a
//! reader finds the transaction in one or the other throughout.
//!
//! An answer does not write to the large map itself: that write is a cache miss, and behind a
//! lock's release it stalled the answer for the whole miss (10% of the daemon's CPU at 300 k
//! logins/s). It writes to `recent`, small and in cache, and every [`FLUSH_AT`] spent ones move
//! to the newest generation in one loop, with no atomic between two inserts, so that their
//! misses overlap. `recent` stays locked until the batch is in its generation, whose lock is
//! taken before: a reader, who looks in `recent` then in the generations, finds it in one.
//! `recent` is sharded by thread (a thread's shard is its own unless more than
//! [`RECENT_SHARDS`] threads answer: the first ones each get one, round robin), so that
//! endpoints on several cores do not take turns on one lock at every answer. A lookup of a
//! transaction that is not open (a replay, an `Await` after the answer, an unknown id) takes
//! each shard's lock in turn.
//!
//! The spent ones are kept in generations, one per sweep (a second in the daemon): a sweep drops
//! the oldest generations whose every entry is past its deadline, whole, after taking them out
//! under a lock held for a few pointer moves. No sweep walks the spent entries under a lock a
//! login needs (a `retain` over a million entries held each shard for milliseconds, and the
//! logins waiting behind it made the tail of the latency at a quarter of the peak rate).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use std::collections::HashMap;

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use sls_protocol::{DeviceId, TxnId, Verdict};

use crate::store::{TxnEntry, UserName};

type Map<V> = DashMap<u128, V, ahash::RandomState>;
type Spent = HashMap<u128, (Bound, Verdict), ahash::RandomState>;

/// How many spent transactions a shard of `recent` gathers before they move to their
/// generation: enough for their misses to overlap, few enough that a flush (tens of µs) does
/// not hold up the requests behind it (with 2,048 the CPU was the same and the p99 of an open
/// loop at a quarter of the peak higher: 1,242 against 1,134 µs, medians of 3).
const FLUSH_AT: usize = 256;

/// Shards of `recent`: threads beyond these share them, round robin.
const RECENT_SHARDS: usize = 8;

thread_local! {
    static RECENT_SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % RECENT_SHARDS
    };
}

/// A shard of `recent`, on cache lines of its own.
#[derive(Default)]
#[repr(align(128))]
struct Recent(Mutex<Spent>);

struct Bound {
    user: UserName,
    device: u32,
    /// Until when it is remembered, ms since the epoch.
    until: u64,
}

/// Spent transactions of one stretch of time.
struct Generation {
    spent: RwLock<Spent>,
    /// The latest deadline of its entries: once past, the generation is dropped whole.
    until: AtomicU64,
}

impl Generation {
    /// A generation with room for `n` entries: sized as the last one, it does not grow (and
    /// rehash, on a login's path) while it fills. It takes `spare`, the emptied table of a
    /// generation dropped before, when that is large enough.
    fn with_capacity(n: usize, spare: Option<Spent>) -> Generation {
        let table = match spare {
            Some(t) if t.capacity() >= n => t,
            _ => HashMap::with_capacity_and_hasher(n, ahash::RandomState::new()),
        };
        Generation {
            spent: RwLock::new(table),
            until: AtomicU64::new(0),
        }
    }
}

/// Open and spent transactions.
pub(crate) struct TxnIndex {
    open: Map<Bound>,
    /// Spent since their shard's last flush: [`FLUSH_AT`] a shard, give or take what threads
    /// sharing a shard add between the insert that fills it and its flush.
    recent: Box<[Recent]>,
    /// The table of a generation dropped, emptied, for a new one to fill: its pages are the
    /// process's already, so that filling it faults none in on a login's path (a fresh 16 MB
    /// table faulted in 4,000 pages a second, up to one a spent entry in a flush), and none is
    /// handed back to the kernel each second.
    spare: Mutex<Option<Spent>>,
    /// Oldest first; the last takes what is spent now. Never empty.
    spent: RwLock<VecDeque<Generation>>,
    /// `open`'s length, kept apart: a `DashMap`'s `len` locks every shard, and every `Begin`
    /// checks the bound of open challenges.
    open_count: AtomicUsize,
}

impl TxnIndex {
    pub(crate) fn new() -> TxnIndex {
        TxnIndex {
            open: DashMap::with_hasher(ahash::RandomState::new()),
            recent: (0..RECENT_SHARDS).map(|_| Recent::default()).collect(),
            spare: Mutex::new(None),
            spent: RwLock::new(VecDeque::from([Generation::with_capacity(0, None)])),
            open_count: AtomicUsize::new(0),
        }
    }

    /// A challenge begun for `user`'s `device`. Its id is 128 random bits the core drew: never
    /// one it gave before.
    pub(crate) fn bind(&self, txn: TxnId, user: &str, device: DeviceId, until_ms: u64) {
        if let dashmap::Entry::Vacant(v) = self.open.entry(txn.0) {
            v.insert(Bound {
                user: UserName::from(user),
                device: device.0,
                until: until_ms,
            });
            self.open_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `txn` was spent with `verdict`: remembered so until `until_ms`.
    pub(crate) fn settle(&self, txn: TxnId, verdict: Verdict, until_ms: u64) {
        let Some(bound) = self.open.get(&txn.0).map(|b| Bound {
            user: b.user.clone(),
            device: b.device,
            until: until_ms,
        }) else {
            // Spent already: its verdict changes where it is. One shard at a time: an entry
            // never moves between shards, and one a flush is moving is in its generation by
            // the time its shard's lock is free.
            for Recent(recent) in self.recent.iter() {
                if let Some(s) = recent.lock().get_mut(&txn.0) {
                    s.1 = verdict;
                    s.0.until = until_ms;
                }
            }
            let generations = self.spent.read();
            for g in generations.iter() {
                if let Some(s) = g.spent.write().get_mut(&txn.0) {
                    s.1 = verdict;
                    s.0.until = until_ms;
                    g.until.fetch_max(until_ms, Ordering::Relaxed);
                }
            }
            return;
        };
        let shard = RECENT_SHARD.with(|i| *i);
        let full = self.recent.get(shard).is_some_and(|r| {
            let mut recent = r.0.lock();
            recent.insert(txn.0, (bound, verdict));
            recent.len() >= FLUSH_AT
        });
        if self.open.remove(&txn.0).is_some() {
            self.open_count.fetch_sub(1, Ordering::Relaxed);
        }
        if full {
            self.flush(shard);
        }
    }

    /// Moves the recently spent of shard `shard` to the newest generation.
    fn flush(&self, shard: usize) {
        let Some(Recent(recent)) = self.recent.get(shard) else {
            return;
        };
        let mut recent = recent.lock();
        let generations = self.spent.read();
        let Some(now) = generations.back() else {
            return;
        };
        let mut spent = now.spent.write();
        let mut latest = 0;
        for (txn, s) in recent.drain() {
            latest = latest.max(s.0.until);
            spent.insert(txn, s);
        }
        now.until.fetch_max(latest, Ordering::Relaxed);
    }

    /// What the index knows of `txn` at `now_ms`.
    pub(crate) fn get(&self, txn: TxnId, now_ms: u64) -> Option<TxnEntry> {
        let entry = |b: &Bound, verdict: Option<Verdict>| {
            (b.until > now_ms).then(|| TxnEntry {
                user: b.user.clone(),
                device: DeviceId(b.device),
                verdict,
            })
        };
        if let Some(b) = self.open.get(&txn.0) {
            return entry(&b, None);
        }
        for Recent(recent) in self.recent.iter() {
            if let Some(s) = recent.lock().get(&txn.0) {
                return entry(&s.0, Some(s.1));
            }
        }
        let generations = self.spent.read();
        generations
            .iter()
            .rev()
            .find_map(|g| g.spent.read().get(&txn.0).map(|s| entry(&s.0, Some(s.1))))
            .flatten()
    }

    /// Challenges open now.
    pub(crate) fn open(&self) -> usize {
        self.open_count.load(Ordering::Relaxed)
    }

    /// Forgets what is past its deadline at `now_ms`; hands the user of each challenge
    /// abandoned open to `abandoned` (their state still holds it). Returns how many it forgot.
    pub(crate) fn sweep(&self, now_ms: u64, mut abandoned: impl FnMut(UserName)) -> usize {
        let mut gone = 0usize;
        self.open.retain(|_, b| {
            let keep = b.until > now_ms;
            if !keep {
                gone += 1;
                abandoned(b.user.clone());
            }
            keep
        });
        let _ = self
            .open_count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(gone))
            });
        // The recently spent join the generation of this last second, so that they are
        // forgotten with it.
        (0..RECENT_SHARDS).for_each(|shard| self.flush(shard));
        // The generations wholly past their deadline are taken out under the lock and emptied
        // after it (the largest table kept as the spare, the others freed); a new one begins
        // if the last took anything.
        let mut past = Vec::new();
        {
            let spare = self.spare.lock().take();
            let mut generations = self.spent.write();
            while generations
                .front()
                .is_some_and(|g| g.until.load(Ordering::Relaxed) <= now_ms)
            {
                past.extend(generations.pop_front());
            }
            let last = generations.back().map_or(0, |g| g.spent.read().len());
            if generations.is_empty() || last > 0 {
                generations.push_back(Generation::with_capacity(last, spare));
            } else {
                *self.spare.lock() = spare;
            }
        }
        let forgotten = past
            .iter()
            .map(|g| g.spent.read().len())
            .fold(gone, usize::saturating_add);
        let largest = past
            .into_iter()
            .map(|g| g.spent.into_inner())
            .max_by_key(HashMap::capacity);
        if let Some(mut table) = largest {
            table.clear();
            let mut spare = self.spare.lock();
            if spare
                .as_ref()
                .is_none_or(|s| s.capacity() < table.capacity())
            {
                *spare = Some(table);
            }
        }
        forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r12_a_transaction_is_open_then_spent_then_forgotten() {
        let ix = TxnIndex::new();
        let (txn, dev) = (TxnId(7), DeviceId(3));
        ix.bind(txn, "ann", dev, 1_000);
        assert_eq!(ix.open(), 1);
        let e = ix.get(txn, 10).expect("open");
        assert_eq!((&*e.user, e.device, e.verdict), ("ann", dev, None));
        ix.settle(txn, Verdict::Replayed, 500);
        assert_eq!(ix.open(), 0, "a spent challenge is not open");
        let e = ix.get(txn, 10).expect("spent");
        assert_eq!((&*e.user, e.verdict), ("ann", Some(Verdict::Replayed)));
        // Spent, it is remembered until its own deadline, not the challenge's.
        assert!(ix.get(txn, 500).is_none());
        let mut users = Vec::new();
        assert_eq!(ix.sweep(500, |u| users.push(u)), 1);
        assert!(users.is_empty(), "a spent challenge was not abandoned");
        assert!(ix.get(txn, 0).is_none());
    }

    #[test]
    fn r12_spent_transactions_outlive_the_sweeps_before_their_deadline_and_no_more() {
        let ix = TxnIndex::new();
        // One spent each second, each remembered for 5 s (the replay window).
        for t in 0..20u64 {
            let (txn, now) = (TxnId(u128::from(t)), t * 1_000);
            ix.bind(txn, "dee", DeviceId(1), now + 120_000);
            ix.settle(txn, Verdict::Expired, now + 5_000);
            ix.sweep(now, |_| {});
            for back in 0..5 {
                let seen = t
                    .checked_sub(back)
                    .map(|s| ix.get(TxnId(u128::from(s)), now));
                assert!(
                    seen.is_none_or(|e| e.is_some()),
                    "spent {back} s ago, at {t} s"
                );
            }
            // Dropped whole once past: a few generations, not one per second for ever.
            assert!(
                ix.spent.read().len() <= 7,
                "{} generations",
                ix.spent.read().len()
            );
        }
        assert!(ix.get(TxnId(0), 19_000).is_none());
        assert_eq!(ix.open(), 0);
    }

    #[test]
    fn r12_a_spent_transaction_is_found_while_its_batch_moves_to_its_generation() {
        let ix = std::sync::Arc::new(TxnIndex::new());
        let first = TxnId(u128::MAX);
        ix.bind(first, "eve", DeviceId(1), 10_000);
        ix.settle(first, Verdict::Replayed, 10_000);
        let reader = {
            let ix = std::sync::Arc::clone(&ix);
            std::thread::spawn(move || {
                let mut seen = 0u32;
                while seen < 200_000 {
                    let e = ix.get(first, 0).map(|e| e.verdict);
                    assert_eq!(e, Some(Some(Verdict::Replayed)), "after {seen} reads");
                    seen += 1;
                }
            })
        };
        // Enough spent ones for several flushes while the reader reads.
        for t in 0..(4 * FLUSH_AT as u128) {
            ix.bind(TxnId(t), "fay", DeviceId(2), 10_000);
            ix.settle(TxnId(t), Verdict::Rejected { failures_left: 3 }, 10_000);
        }
        reader
            .join()
            .expect("the reader saw the transaction throughout");
        let held: usize = ix.recent.iter().map(|r| r.0.lock().len()).sum();
        assert!(held < FLUSH_AT, "flushed as it filled");
        for t in 0..(4 * FLUSH_AT as u128) {
            let e = ix.get(TxnId(t), 0).expect("spent");
            let rejected = Verdict::Rejected { failures_left: 3 };
            assert_eq!((&*e.user, e.verdict), ("fay", Some(rejected)));
        }
        // A verdict changes wherever its transaction is: in its generation, or still recent.
        let recent = TxnId(4 * FLUSH_AT as u128 - 1);
        for txn in [TxnId(0), recent] {
            ix.settle(txn, Verdict::Expired, 20_000);
            assert_eq!(
                ix.get(txn, 15_000).and_then(|e| e.verdict),
                Some(Verdict::Expired)
            );
        }
    }

    #[test]
    fn r12_a_forgotten_generations_table_is_emptied_and_filled_again() {
        let ix = TxnIndex::new();
        let spend = |from: u128, n: u128, until: u64| {
            for t in from..from + n {
                ix.bind(TxnId(t), "hal", DeviceId(1), until);
                ix.settle(TxnId(t), Verdict::Expired, until);
            }
        };
        spend(0, 5_000, 1_000);
        ix.sweep(0, |_| {}); // those 5,000 are a generation; a new one begins
        spend(5_000, 5_000, 2_000);
        assert_eq!(
            ix.sweep(1_500, |_| {}),
            5_000,
            "the first generation forgotten"
        );
        let room = ix.spare.lock().as_ref().map(|t| (t.len(), t.capacity()));
        assert!(
            room.is_some_and(|(len, cap)| len == 0 && cap >= 5_000),
            "{room:?}"
        );
        assert!(ix.get(TxnId(1), 0).is_none(), "nothing of it is left");
        // The next generation to begin takes it (one begins once the last took anything), and
        // what it holds is found.
        spend(10_000, 10, 3_000);
        ix.sweep(1_600, |_| {});
        assert!(ix.spare.lock().is_none(), "taken by the new generation");
        spend(20_000, 10, 3_000);
        ix.sweep(1_700, |_| {});
        assert!(ix.get(TxnId(10_003), 0).is_some());
        assert!(ix.get(TxnId(20_003), 0).is_some());
        assert!(
            ix.get(TxnId(5_003), 0).is_some(),
            "not yet past its deadline"
        );
    }

    #[test]
    fn an_abandoned_challenge_is_swept_with_its_user_named() {
        let ix = TxnIndex::new();
        ix.bind(TxnId(1), "bo", DeviceId(1), 100);
        ix.bind(TxnId(2), "cy", DeviceId(2), 300);
        let mut users = Vec::new();
        assert_eq!(ix.sweep(200, |u| users.push(u)), 1);
        assert_eq!(users, vec![UserName::from("bo")]);
        assert_eq!(ix.open(), 1);
        // A settle of a forgotten transaction changes nothing.
        ix.settle(TxnId(1), Verdict::Expired, 900);
        assert!(ix.get(TxnId(1), 0).is_none());
    }
}
