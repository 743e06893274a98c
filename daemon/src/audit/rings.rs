//! The embedded store's trail in memory: per user, the newest `keep` encoded entries (without
//! the user and node, which the reader puts back), none older than `max_age_ms`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

/// One user's entries: (time, encoded entry), oldest first.
type Ring = VecDeque<(u64, Box<[u8]>)>;

/// Every user's entries.
pub struct Rings {
    keep: usize,
    max_age_ms: u64,
    users: DashMap<Box<str>, Ring, ahash::RandomState>,
    /// Bytes of entries held (the writer compacts its file against it).
    pub bytes: AtomicU64,
    /// Entries held.
    pub entries: AtomicU64,
}

impl Rings {
    /// Empty rings.
    pub fn new(keep: usize, max_age_ms: u64) -> Rings {
        Rings {
            keep,
            max_age_ms,
            users: DashMap::with_hasher(ahash::RandomState::new()),
            bytes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
        }
    }

    /// Adds `user`'s entry at `at_ms`, dropping the oldest past `keep` or the age. An entry
    /// equal to one already held at the same millisecond is not added twice (a start reads a
    /// compaction's file and the appends that raced it).
    pub fn push(&self, user: &str, at_ms: u64, bytes: &[u8]) {
        // The key is allocated only for a user's first entry.
        let mut ring = match self.users.get_mut(user) {
            Some(ring) => ring,
            None => self.users.entry(user.into()).or_default(),
        };
        if ring
            .iter()
            .rev()
            .take_while(|(t, _)| *t == at_ms)
            .any(|(_, b)| &**b == bytes)
        {
            return;
        }
        ring.push_back((at_ms, bytes.into()));
        self.add(1, bytes.len(), true);
        let oldest = at_ms.saturating_sub(self.max_age_ms);
        while ring.len() > self.keep || ring.front().is_some_and(|(t, _)| *t < oldest) {
            if let Some((_, b)) = ring.pop_front() {
                self.add(1, b.len(), false);
            }
        }
    }

    fn add(&self, n: u64, bytes: usize, up: bool) {
        let b = bytes as u64;
        if up {
            self.entries.fetch_add(n, Ordering::Relaxed);
            self.bytes.fetch_add(b, Ordering::Relaxed);
        } else {
            self.entries.fetch_sub(n, Ordering::Relaxed);
            self.bytes.fetch_sub(b, Ordering::Relaxed);
        }
    }

    /// `user`'s entries at or after `since_ms`, oldest first.
    pub fn since(&self, user: &str, since_ms: u64) -> Vec<Vec<u8>> {
        self.users.get(user).map_or_else(Vec::new, |ring| {
            ring.iter()
                .filter(|(t, _)| *t >= since_ms)
                .map(|(_, b)| b.to_vec())
                .collect()
        })
    }

    /// Drops entries past the age at `now_ms`, and users left with none.
    pub fn sweep(&self, now_ms: u64) {
        let oldest = now_ms.saturating_sub(self.max_age_ms);
        self.users.retain(|_, ring| {
            while ring.front().is_some_and(|(t, _)| *t < oldest) {
                if let Some((_, b)) = ring.pop_front() {
                    self.add(1, b.len(), false);
                }
            }
            !ring.is_empty()
        });
    }

    /// Forgets `user` (removed).
    pub fn forget(&self, user: &str) {
        if let Some((_, ring)) = self.users.remove(user) {
            for (_, b) in ring {
                self.add(1, b.len(), false);
            }
        }
    }

    /// Calls `f` with every user's entries, user by user (a compaction's copy).
    pub fn each(&self, mut f: impl FnMut(&str, &[u8])) {
        for r in &self.users {
            for (_, b) in r.value() {
                f(r.key(), b);
            }
        }
    }
}
