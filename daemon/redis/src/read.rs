//! Reading a versioned value (a user's state, a share): from Redis, opened under the seal key;
//! or, for a user whose transaction an answer just read, from what that read brought in the
//! same round trip ([`crate::keys::TXN_AND_USER`]), so that the answer's update does not read
//! again.

use zeroize::Zeroizing;

use sls_core::StoreError;

use crate::{unavailable, RedisStore};

/// A versioned value as read: its version (0: absent) and its bytes.
pub(crate) type Versioned = (u64, Option<Zeroizing<Vec<u8>>>);

/// A user's versioned value as an answer's read of its transaction brought it, still sealed.
pub(crate) struct Prefetched {
    pub(crate) version: u64,
    pub(crate) sealed: Option<Vec<u8>>,
}

/// Most prefetched values kept. Each is taken by the update that follows its read; those no
/// update took (an answer that changed nothing) are dropped together past this.
pub(crate) const PREFETCH_MAX: usize = 4096;

impl RedisStore {
    /// A versioned value, opened (see [`crate::seal`]).
    pub(crate) async fn read_versioned(&self, key: &[u8]) -> Result<Versioned, StoreError> {
        let mut c = self.conn();
        let (v, s): (Option<u64>, Option<Vec<u8>>) = redis::cmd("HMGET")
            .arg(key)
            .arg(&["v", "s"])
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        // A tombstone (deleted: a version, no value) is absent, at its version.
        Ok(match s {
            Some(s) => (v.unwrap_or(0), Some(self.sealer.open(key, &s)?)),
            None => (v.unwrap_or(0), None),
        })
    }

    /// What [`RedisStore::txn_get_now`] read of the user at `key`, opened; once. A value read
    /// earlier may be stale: an update starting from it writes only through the
    /// compare-and-set on its version, and reads again for anything else.
    pub(crate) fn take_prefetched(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        let Some(p) = self.prefetched.lock().remove(key) else {
            return Ok(None);
        };
        Ok(Some(match p.sealed {
            Some(s) => (p.version, Some(self.sealer.open(key, &s)?)),
            None => (p.version, None),
        }))
    }
}
