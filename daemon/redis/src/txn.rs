//! The transaction index: a hash per transaction id, `PX` until its deadline.

use std::sync::Arc;

use bytes::BytesMut;
use redis::AsyncCommands;
use sls_engine::{IndexOp, StoreError, TxnEntry, UserName};
use sls_protocol::field::{Field, Reader};
use sls_protocol::{DeviceId, TxnId, Verdict};

use crate::read::Fields;
use crate::{unavailable, Command, RedisStore};

fn damaged(what: &str) -> StoreError {
    StoreError::Damaged(format!("transaction index: {what}").into())
}

pub(crate) fn encode_verdict(v: &Verdict) -> Result<Vec<u8>, StoreError> {
    let mut w = BytesMut::new();
    v.put(&mut w, 0)
        .map_err(|e| StoreError::Unavailable(sls_engine::Cause::of("verdict", e)))?;
    Ok(w.to_vec())
}

fn decode_verdict(b: &[u8]) -> Result<Verdict, StoreError> {
    let mut r = Reader::new(b);
    let v = Verdict::get(&mut r, 0).map_err(|_| damaged("verdict"))?;
    if r.remaining() != 0 {
        return Err(damaged("verdict"));
    }
    Ok(v)
}

type TxnFields = (Option<String>, Option<u32>, Option<u64>, Option<Vec<u8>>);

/// What this node knows of a transaction it bound: enough to answer it without asking Redis
/// ([`sls_engine::Store::txn_to_answer`]).
#[derive(Debug)]
pub(crate) struct Bound {
    /// Until when it is remembered (its deadline; after it is spent, the replay window's).
    pub(crate) until_ms: u64,
    user: UserName,
    device: DeviceId,
    /// Its verdict once this node spent it.
    verdict: Option<Verdict>,
}

impl RedisStore {
    /// Milliseconds from the store's clock's now to `until_ms`, at least 1.
    pub(crate) fn ttl_ms(&self, until_ms: u64) -> u64 {
        let now = u64::try_from(self.config.clock.now().as_millis()).unwrap_or(u64::MAX);
        until_ms.saturating_sub(now).max(1)
    }

    /// The transaction and, in the same round trip, its user's versioned value, kept in the
    /// cache for the update that follows (an answer's: `update.rs`).
    pub(crate) async fn txn_get_now(
        &self,
        txn: TxnId,
        now_ms: u64,
    ) -> Result<Option<TxnEntry>, StoreError> {
        let mut c = self.conn(Command::TxnRead);
        let around = self.keys.user("");
        let cut = around.len().saturating_sub(1);
        let reply: Vec<redis::Value> = self
            .scripts
            .txn_and_user
            .key(self.keys.txn(txn))
            .arg(&around[..cut])
            .arg(&around[cut..])
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        let mut reply = reply.into_iter();
        let fields = reply.next().ok_or_else(|| damaged("reply"))?;
        let (user, device, until, verdict): TxnFields =
            redis::from_redis_value(fields).map_err(|_| damaged("fields"))?;
        let (Some(user), Some(device), Some(until)) = (user, device, until) else {
            return Ok(None);
        };
        if let (Some(value), Some(key)) = (reply.next(), reply.next()) {
            let fields: Fields = redis::from_redis_value(value).map_err(|_| damaged("user"))?;
            let key: Vec<u8> = redis::from_redis_value(key).map_err(|_| damaged("user key"))?;
            if key == self.keys.user(&user) {
                let value = self.opened(&key, fields)?;
                self.cache.put(&key, value);
            }
        }
        if until <= now_ms {
            return Ok(None);
        }
        let verdict = verdict.as_deref().map(decode_verdict).transpose()?;
        Ok(Some(TxnEntry {
            user: user.into(),
            device: DeviceId(device),
            verdict,
        }))
    }

    /// [`sls_engine::Store::txn_to_answer`]: from what this node bound and settled while it
    /// remembers it; else from Redis.
    pub(crate) async fn txn_to_answer_now(
        &self,
        txn: TxnId,
        now_ms: u64,
    ) -> Result<Option<TxnEntry>, StoreError> {
        if let Some(b) = self.bound.lock().get(&txn.0) {
            if b.until_ms > now_ms {
                return Ok(Some(TxnEntry {
                    user: b.user.clone(),
                    device: b.device,
                    verdict: b.verdict,
                }));
            }
        }
        self.txn_get_now(txn, now_ms).await
    }

    /// Notes locally that this node bound `txn` for `user`'s `device` until `until_ms`.
    fn note_bound(&self, txn: TxnId, user: &str, device: DeviceId, until_ms: u64) {
        self.bound.lock().insert(
            txn.0,
            Bound {
                until_ms,
                user: user.into(),
                device,
                verdict: None,
            },
        );
    }

    /// Notes locally that this node spent `txn` with `verdict`, remembered until `until_ms`.
    fn note_settled(&self, txn: TxnId, verdict: Verdict, until_ms: u64) {
        if let Some(b) = self.bound.lock().get_mut(&txn.0) {
            b.until_ms = until_ms;
            b.verdict = Some(verdict);
        }
    }

    pub(crate) async fn txn_bind_now(
        &self,
        txn: TxnId,
        user: &str,
        device: DeviceId,
        until_ms: u64,
    ) -> Result<(), StoreError> {
        let mut c = self.conn(Command::Other);
        let fresh: i64 = self
            .scripts
            .bind
            .key(self.keys.txn(txn))
            .arg(user)
            .arg(device.0)
            .arg(until_ms)
            .arg(self.ttl_ms(until_ms))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        if fresh == 1 {
            self.note_bound(txn, user, device, until_ms);
        }
        Ok(())
    }

    pub(crate) async fn txn_settle_now(
        &self,
        txn: TxnId,
        verdict: Verdict,
        until_ms: u64,
    ) -> Result<(), StoreError> {
        let mut c = self.conn(Command::Other);
        let settled: i64 = self
            .scripts
            .settle
            .key(self.keys.txn(txn))
            .arg(encode_verdict(&verdict)?)
            .arg(until_ms)
            .arg(self.ttl_ms(until_ms))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        if settled == 1 {
            self.note_settled(txn, verdict, until_ms);
        }
        Ok(())
    }

    /// Forgets locally the transactions past their deadline (Redis expires the keys).
    pub(crate) fn sweep_now(&self, now_ms: u64) -> usize {
        let mut bound = self.bound.lock();
        let before = bound.len();
        bound.retain(|_, b| b.until_ms > now_ms);
        before - bound.len()
    }

    pub(crate) async fn owner_of(&self, device: DeviceId) -> Result<Option<Arc<str>>, StoreError> {
        let mut c = self.conn(Command::Other);
        let o: Option<String> = c
            .get(self.keys.ib_owner(device.0))
            .await
            .map_err(unavailable)?;
        Ok(o.map(Arc::from))
    }
}

/// The transaction an index operation is about.
pub(crate) fn op_txn(op: &IndexOp) -> TxnId {
    match op {
        IndexOp::Bind { txn, .. } | IndexOp::Settle { txn, .. } => *txn,
    }
}

impl RedisStore {
    /// The transaction index's `op`, on its own (its key is not in the user's slot).
    pub(crate) async fn index_apart(&self, user: &str, op: &IndexOp) -> Result<(), StoreError> {
        match op.clone() {
            IndexOp::Bind {
                txn,
                device,
                until_ms,
            } => self.txn_bind_now(txn, user, device, until_ms).await,
            IndexOp::Settle {
                txn,
                verdict,
                until_ms,
            } => self.txn_settle_now(txn, verdict, until_ms).await,
        }
    }

    /// What this node notes of `op` once it was written with `user`'s change.
    pub(crate) fn indexed(&self, user: &str, op: &IndexOp) {
        match op {
            IndexOp::Bind {
                txn,
                device,
                until_ms,
            } => self.note_bound(*txn, user, *device, *until_ms),
            IndexOp::Settle {
                txn,
                verdict,
                until_ms,
            } => self.note_settled(*txn, *verdict, *until_ms),
        }
    }
}
