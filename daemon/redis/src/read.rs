//! Reading a versioned value (a user's state, a share), opened under the seal key; and this
//! node's cache of the users' values it last read or wrote, which an update starts from
//! instead of reading again.
//!
//! **Why a cache is safe here**: nothing is ever decided on a cached value alone. An update
//! that starts from one writes only through the compare-and-set on the version it holds, so a
//! value another node has changed since is refused by Redis, which sends back the current one
//! in the same reply; and an update whose rule would write nothing from a cached value reads
//! again and runs the rule on what it read (`store.rs`). The cache saves the read of a user
//! this node served last (the second step of a login always is), nothing else.
//!
//! **Bounded**: at most [`RedisConfig::cache_users`](crate::RedisConfig) values, over
//! [`SHARDS`] shards of two generations each (see `Shard`): a value outlives at least a
//! generation's worth of values put after it into its shard (on average, half the bound). The values are users' encoded states, secrets included, as
//! the embedded store keeps every user in memory; they are wiped when dropped.

use std::collections::HashMap;
use std::hash::BuildHasher;

use parking_lot::Mutex;
use zeroize::Zeroizing;

use sls_engine::StoreError;

use crate::{unavailable, RedisStore};

/// Which write set a versioned value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    /// The key's writes so far (0: never written); orders what this node learns of a key.
    pub(crate) n: u64,
    /// The id of the write that set it ([`Version::NEVER`]: never written), unique per write
    /// and per node: the compare-and-set's condition. A count can come back after a failover
    /// lost the last writes, and another node's write would then match it (ABA); an id cannot.
    pub(crate) w: Box<str>,
}

impl Version {
    /// The `w` of a key never written.
    pub(crate) const NEVER: &'static str = "0";

    pub(crate) fn never() -> Version {
        Version {
            n: 0,
            w: Version::NEVER.into(),
        }
    }
}

/// A versioned value as read: its version and its bytes (`None`: absent, or deleted).
#[derive(Clone)]
pub(crate) struct Versioned {
    pub(crate) version: Version,
    pub(crate) value: Option<Zeroizing<Vec<u8>>>,
}

/// The fields `v`, `s`, `w` of a versioned hash, as Redis sent them.
pub(crate) type Fields = (Option<u64>, Option<Vec<u8>>, Option<String>);

/// The next element of a script's reply (`what`, for the error), if there is one.
pub(crate) fn next_field<T: redis::FromRedisValue>(
    reply: &mut impl Iterator<Item = redis::Value>,
    what: &str,
) -> Result<Option<T>, StoreError> {
    reply
        .next()
        .map(redis::from_redis_value)
        .transpose()
        .map_err(|e| StoreError::Damaged(format!("{what}: {e}").into()))
}

impl RedisStore {
    /// A versioned value, opened (see [`crate::seal`]).
    pub(crate) async fn read_versioned(&self, key: &[u8]) -> Result<Versioned, StoreError> {
        let mut c = self.conn(crate::Command::Read);
        let fields: Fields = redis::cmd("HMGET")
            .arg(key)
            .arg(&["v", "s", "w"])
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        self.opened(key, fields)
    }

    /// `v`, `s`, `w` of the hash at `key`, its value opened. A tombstone (deleted: a version,
    /// no value) is absent, at its version.
    pub(crate) fn opened(&self, key: &[u8], (n, s, w): Fields) -> Result<Versioned, StoreError> {
        let version = match w {
            Some(w) => Version {
                n: n.unwrap_or(0),
                w: w.into(),
            },
            None => Version::never(),
        };
        let value = s.map(|s| self.sealer.open(key, &s)).transpose()?;
        Ok(Versioned { version, value })
    }
}

/// Shards of the cache; each is locked on its own.
pub(crate) const SHARDS: usize = 16;

/// Values by user key.
type Map = HashMap<Box<[u8]>, Versioned>;

/// One shard: two generations. What is put or found goes into `young`; when `young` is full it
/// becomes `old` and the old `old` is dropped. So a value lives at least until a generation of
/// other values came into its shard after it (an approximate LRU at O(1) a call): a login's
/// answer, seconds after its `begin`, finds the value the `begin` wrote unless the node served
/// about half `cache_users` other users in between.
#[derive(Default)]
struct Shard {
    young: Map,
    old: Map,
}

/// This node's last known value of each user it served (see the module docs).
pub(crate) struct UserCache {
    shards: Box<[Mutex<Shard>]>,
    /// Values a generation of a shard holds; 0: nothing is kept.
    per_generation: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl UserCache {
    /// A cache of at most `users` values in all (0: none).
    pub(crate) fn new(users: usize) -> UserCache {
        UserCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_generation: users / SHARDS / 2,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// The value last known at `key`, if any.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Versioned> {
        let mut shard = self.shard(key).lock();
        if let Some(v) = shard.young.get(key) {
            return Some(v.clone());
        }
        let (key, v) = shard.old.remove_entry(key)?;
        self.keep_young(&mut shard, key, v.clone());
        Some(v)
    }

    /// Keeps `value`, as read, as the one at `key`, unless one of a later write is kept
    /// already (a read may come back after an update of this node wrote past it).
    pub(crate) fn put(&self, key: &[u8], value: Versioned) {
        self.keep(key, value, false);
    }

    /// Keeps `value`, which this node has just written, as the one at `key`: whatever was kept
    /// (after a failover that lost writes, the count of a kept value may exceed Redis's).
    pub(crate) fn put_written(&self, key: &[u8], value: Versioned) {
        self.keep(key, value, true);
    }

    fn keep(&self, key: &[u8], value: Versioned, written: bool) {
        if self.per_generation == 0 {
            return;
        }
        let mut shard = self.shard(key).lock();
        let kept = shard.young.get(key).or_else(|| shard.old.get(key));
        if !written && kept.is_some_and(|kept| kept.version.n > value.version.n) {
            return;
        }
        shard.old.remove(key);
        self.keep_young(&mut shard, key.into(), value);
    }

    fn keep_young(&self, shard: &mut Shard, key: Box<[u8]>, value: Versioned) {
        if shard.young.len() >= self.per_generation && !shard.young.contains_key(&key) {
            shard.old = std::mem::take(&mut shard.young);
        }
        shard.young.insert(key, value);
    }

    /// Forgets the value at `key`.
    pub(crate) fn forget(&self, key: &[u8]) {
        let mut shard = self.shard(key).lock();
        shard.young.remove(key);
        shard.old.remove(key);
    }

    /// Values kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock();
                s.young.len() + s.old.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(n: u64, w: &str, value: &[u8]) -> Versioned {
        Versioned {
            version: Version { n, w: w.into() },
            value: Some(Zeroizing::new(value.to_vec())),
        }
    }

    #[test]
    fn a_value_is_replaced_by_a_later_write_only() {
        let c = UserCache::new(100);
        c.put(b"k", at(2, "a:2", b"two"));
        c.put(b"k", at(1, "a:1", b"one"));
        assert_eq!(c.get(b"k").map(|v| v.version.w), Some("a:2".into()));
        // The same count from another write: a failover lost the first; the later read wins.
        c.put(b"k", at(2, "b:7", b"other"));
        let kept = c.get(b"k").expect("kept");
        assert_eq!(
            (&*kept.version.w, kept.value.as_deref().map(|v| &v[..])),
            ("b:7", Some(&b"other"[..]))
        );
        // This node kept count 5, of writes a failover lost: Redis is back at 3, and this
        // node's own next write, count 4, replaces it (a read of count 4 would not).
        c.put(b"k", at(5, "a:5", b"five"));
        c.put(b"k", at(4, "b:8", b"read"));
        assert_eq!(c.get(b"k").map(|v| v.version.w), Some("a:5".into()));
        c.put_written(b"k", at(4, "a:9", b"after the failover"));
        assert_eq!(c.get(b"k").map(|v| v.version.w), Some("a:9".into()));
        c.forget(b"k");
        assert!(c.get(b"k").is_none());
    }

    #[test]
    fn the_cache_keeps_no_more_than_its_bound() {
        let c = UserCache::new(64);
        for i in 0..10_000u32 {
            c.put(&i.to_be_bytes(), at(1, "a:1", b"x"));
        }
        assert!(c.len() <= 64, "{}", c.len());
        assert!(c.len() > 0);
        let none = UserCache::new(0);
        none.put(b"k", at(1, "a:1", b"x"));
        assert!(none.get(b"k").is_none());
    }

    #[test]
    fn a_value_outlives_a_generation_of_others_and_a_used_one_longer() {
        // 16 shards × 2 generations × 100. A value survives at least the 100 puts into its
        // shard that follow it: 800 puts in all bring ~50 to each shard (100 is 7 standard
        // deviations away), and the shards are drawn at random each run.
        let c = UserCache::new(3_200);
        let key = |i: u32| i.to_be_bytes();
        c.put(b"first", at(1, "a:1", b"x"));
        for i in 0..800 {
            c.put(&key(i), at(1, "a:1", b"x"));
        }
        assert!(c.get(b"first").is_some(), "lost within a generation");
        // Found again, it is young again, round after round; a value put once is gone after
        // 6,400 more (~400 into its shard, where 200 are sure to drop it).
        c.put(b"second", at(1, "a:1", b"x"));
        for round in 0..8u32 {
            for i in 0..800 {
                c.put(&key(10_000 * (round + 1) + i), at(1, "a:1", b"x"));
            }
            assert!(
                c.get(b"first").is_some(),
                "a used value lost, round {round}"
            );
        }
        assert!(
            c.get(b"second").is_none(),
            "an unused value kept past the bound"
        );
    }
}
