//! The audit trail on the cluster: one capped list per user,
//! `{P:u:<name>}a`, in the user's slot (the same hash tag), of encoded
//! [`sls_protocol::AuditEntry`]s, oldest first. Each append is `RPUSH`, `LTRIM` to the newest
//! `keep`, and `PEXPIRE` to the retention age, in one `MULTI` on that slot; the list expires
//! whole once its newest entry is past the age. Entries hold names, ids, times and verdicts,
//! never a secret: not sealed, like the other index keys.

use sls_engine::StoreError;

use crate::{unavailable, Command, RedisStore};

impl RedisStore {
    /// Appends `entries` (encoded, oldest first) to `user`'s trail, keeping the newest `keep`
    /// for `max_age_ms` after the last append.
    ///
    /// # Errors
    /// Redis ([`StoreError::Unavailable`]).
    pub async fn audit_append(
        &self,
        user: &str,
        entries: &[Vec<u8>],
        keep: usize,
        max_age_ms: u64,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let key = self.keys.audit(user);
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let mut c = self.conn(Command::Other);
        let () = redis::pipe()
            .atomic()
            .cmd("RPUSH")
            .arg(&key)
            .arg(entries)
            .ignore()
            .cmd("LTRIM")
            .arg(&key)
            .arg(-keep)
            .arg(-1)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(max_age_ms)
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// `user`'s trail, encoded, oldest first.
    ///
    /// # Errors
    /// Redis ([`StoreError::Unavailable`]).
    pub async fn audit_read(&self, user: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let key = self.keys.audit(user);
        let mut c = self.conn(Command::Other);
        redis::cmd("LRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut c)
            .await
            .map_err(unavailable)
    }
}
