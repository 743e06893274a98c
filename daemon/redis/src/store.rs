//! `impl Store for RedisStore`: versioned compare-and-set of one user, and the small
//! operations across users.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::cluster_routing::{AggregateOp, MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::AsyncCommands;
use sls_core::{
    Committed, IndexOp, Record, Sequence, Share, Store, StoreError, TxnEntry, UserQuota, UserState,
    UserToken,
};
use sls_protocol::{DeviceId, DeviceKind, TxnId, Verdict};
use zeroize::Zeroizing;

use crate::txn::op_txn;
use crate::{unavailable, RedisStore};

fn damaged(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Damaged(format!("{what}: {e}"))
}

impl RedisStore {
    fn stripe(&self, user: &str) -> &tokio::sync::Mutex<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        user.hash(&mut h);
        &self.stripes[(h.finish() as usize) % self.stripes.len()]
    }

    /// Compare-and-set: `true` if `key` was still at `version` and now holds `value`, sealed
    /// (deleted if empty).
    async fn cas(&self, key: &[u8], version: u64, value: &[u8]) -> Result<bool, StoreError> {
        self.cas_indexed(key, version, value, None).await
    }

    /// [`RedisStore::cas`], and the transaction index's `op` in the same script when its key
    /// is in `key`'s slot.
    async fn cas_indexed(
        &self,
        key: &[u8],
        version: u64,
        value: &[u8],
        op: Option<(&str, &IndexOp)>,
    ) -> Result<bool, StoreError> {
        let sealed = if value.is_empty() {
            Vec::new()
        } else {
            self.sealer.seal(key, value)?
        };
        let write = format!(
            "{:x}:{}",
            self.nonce,
            self.writes.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = self.conn();
        let mut inv = self.scripts.cas.key(key);
        inv.arg(version).arg(sealed).arg(write);
        match op {
            None => {}
            Some((
                user,
                IndexOp::Bind {
                    txn,
                    device,
                    until_ms,
                },
            )) => {
                inv.key(self.keys.txn(*txn))
                    .arg("b")
                    .arg(user)
                    .arg(device.0)
                    .arg(*until_ms)
                    .arg(self.ttl_ms(*until_ms));
            }
            Some((
                _,
                IndexOp::Settle {
                    txn,
                    verdict,
                    until_ms,
                },
            )) => {
                inv.key(self.keys.txn(*txn))
                    .arg("s")
                    .arg(crate::txn::encode_verdict(verdict)?)
                    .arg(*until_ms)
                    .arg(self.ttl_ms(*until_ms));
            }
        }
        let r: i64 = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        Ok(r >= 0)
    }

    fn ticket(&self, records: &[Record]) -> Option<u64> {
        (!records.is_empty()).then(|| self.tickets.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// A write's ticket: with replicas to wait for, every write waits (an accepted answer
    /// spends its challenge, R12) but a `begin`'s (a BIND, nothing recorded): a failover that
    /// lost it loses an open challenge, as a restart does; the answer's wait covers it.
    fn written(&self, records: &[Record], op: Option<&IndexOp>) -> Option<u64> {
        let opened = records.is_empty() && matches!(op, Some(IndexOp::Bind { .. }));
        if self.config.wait_replicas == 0 || opened {
            return self.ticket(records);
        }
        Some(self.tickets.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Tries again after a lost compare-and-set, a little later each time.
    async fn backoff(&self, attempt: u32) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
        let n = self.conflicts.load(Ordering::Relaxed);
        // Up to 8 ms, jittered per node so that two nodes do not retry in step.
        let ms = u64::from(attempt.min(8)) + (self.nonce.wrapping_add(n) % 3);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }

    /// The indexes kept from committed records: IB Key device → owner, entity → primary.
    async fn index(&self, records: &[Record]) -> Result<(), StoreError> {
        let mut c = self.conn();
        for r in records {
            match r {
                Record::Device {
                    user,
                    id,
                    kind: DeviceKind::IbKey,
                    ..
                } => {
                    let () = c
                        .set(self.keys.ib_owner(id.0), user)
                        .await
                        .map_err(unavailable)?;
                }
                Record::User {
                    name,
                    entity,
                    primary: true,
                    ..
                } if !entity.is_empty() => {
                    let () = c
                        .set(self.keys.primary(entity), name)
                        .await
                        .map_err(unavailable)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn update_now<T, F, I>(
        &self,
        user: &str,
        create: bool,
        mut rule: F,
        index: I,
    ) -> Result<Option<Committed<T, u64>>, StoreError>
    where
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T,
        I: Fn(&T) -> Option<IndexOp>,
    {
        let _local = self.stripe(user).lock().await;
        let key = self.keys.user(user);
        // What an answer's read of its transaction brought: written only through the
        // compare-and-set; any other outcome reads again (no decision on a stale read).
        let mut prefetched = self.take_prefetched(&key)?;
        for attempt in 0..self.config.max_tries {
            let fetched = prefetched.is_some();
            let (version, old) = match prefetched.take() {
                Some(p) => p,
                None => self.read_versioned(&key).await?,
            };
            let mut state = match &old {
                Some(b) => UserState::decode(b).map_err(|e| damaged("user state", e))?,
                None if create => UserState::default(),
                None if fetched => continue,
                None => return Ok(None),
            };
            let mut records = Vec::new();
            let value = rule(&mut state, &mut records);
            let mut new = Zeroizing::new(Vec::with_capacity(state.encoded_len_hint()));
            state.encode(&mut new);
            let unchanged = records.is_empty() && old.as_deref().is_some_and(|o| **o == *new);
            if fetched && (unchanged || (old.is_none() && !state.is_enrolled())) {
                continue;
            }
            if old.is_none() && !state.is_enrolled() {
                return Ok(Some(Committed {
                    value,
                    ticket: None,
                }));
            }
            let op = index(&value);
            if unchanged {
                // Nothing changed: what was read is the state this answer is based on.
                if let Some(op) = &op {
                    self.index_apart(user, op).await?;
                }
                return Ok(Some(Committed {
                    value,
                    ticket: None,
                }));
            }
            // The index's entry goes in the same script when it lives in the user's slot (ids
            // made for this user do); else right after.
            let beside = op
                .as_ref()
                .filter(|op| {
                    crate::keys::slot(&self.keys.txn(op_txn(op))) == crate::keys::slot(&key)
                })
                .map(|op| (user, op));
            if !self.cas_indexed(&key, version, &new, beside).await? {
                if !fetched {
                    self.backoff(attempt).await;
                }
                continue;
            }
            if let Some(op) = &op {
                if beside.is_some() {
                    self.indexed(op);
                } else {
                    self.index_apart(user, op).await?;
                }
            }
            if old.is_none() {
                let mut c = self.conn();
                let n: u64 = c.incr(self.keys.users(), 1).await.map_err(unavailable)?;
                self.users
                    .fetch_max(usize::try_from(n).unwrap_or(usize::MAX), Ordering::Relaxed);
            }
            self.index(&records).await?;
            return Ok(Some(Committed {
                value,
                ticket: self.written(&records, op.as_ref()),
            }));
        }
        Err(StoreError::Unavailable(format!(
            "user {user:?}: {} compare-and-set conflicts in a row",
            self.config.max_tries
        )))
    }

    async fn read_now<T, F>(&self, user: &str, read: F) -> Result<Option<T>, StoreError>
    where
        F: FnOnce(&UserState) -> T,
    {
        let (_, bytes) = self.read_versioned(&self.keys.user(user)).await?;
        match bytes {
            None => Ok(None),
            Some(b) => {
                let u = UserState::decode(&b).map_err(|e| damaged("user state", e))?;
                Ok(Some(read(&u)))
            }
        }
    }

    async fn update_share_now<T, F>(
        &self,
        id: u32,
        mut change: F,
    ) -> Result<Committed<T, u64>, StoreError>
    where
        F: FnMut(&mut Option<Share>, &mut Vec<Record>) -> T,
    {
        let key = self.keys.share(id);
        for attempt in 0..self.config.max_tries {
            let (version, old) = self.read_versioned(&key).await?;
            let mut share = old
                .as_deref()
                .map(|b| Share::decode(b))
                .transpose()
                .map_err(|e| damaged("share", e))?;
            let before = share.clone();
            let mut records = Vec::new();
            let value = change(&mut share, &mut records);
            if records.is_empty() && share == before {
                return Ok(Committed {
                    value,
                    ticket: None,
                });
            }
            let mut new = Vec::new();
            if let Some(s) = &share {
                s.encode(&mut new);
            } else if old.is_none() {
                // Absent and still absent.
                return Ok(Committed {
                    value,
                    ticket: self.ticket(&records),
                });
            }
            if !self.cas(&key, version, &new).await? {
                self.backoff(attempt).await;
                continue;
            }
            return Ok(Committed {
                value,
                ticket: self.written(&records, None),
            });
        }
        Err(StoreError::Unavailable(format!(
            "share {id}: {} compare-and-set conflicts in a row",
            self.config.max_tries
        )))
    }

    /// With [`RedisConfig::wait_replicas`](crate::RedisConfig) `> 0`: resolves once a `WAIT`
    /// round that began after `ticket`'s write has seen that many replicas of every master
    /// acknowledge this node's writes (group commit: one round covers every write before it).
    ///
    /// `WAIT` blocks the connection it is sent on until the replicas answer, and it must be
    /// the connection that wrote: one `WAIT` per write would serialise this node's whole
    /// traffic to a master behind each. One round at a time, for everything written so far,
    /// keeps the connection pipelined. A round goes to every master, as tickets are ordered
    /// and do not say which master took their write: a shard without its replica refuses
    /// every change until it has one again.
    async fn durable_now(&self, ticket: u64) -> Result<(), StoreError> {
        if self.config.wait_replicas == 0 {
            return Ok(());
        }
        let failed =
            || StoreError::Unavailable("WAIT: the round that covered this write failed".into());
        loop {
            if self.replicated.load(Ordering::Acquire) >= ticket {
                return Ok(());
            }
            if self.failed_through.load(Ordering::Acquire) >= ticket {
                return Err(failed());
            }
            let _round = self.wait_round.lock().await;
            if self.replicated.load(Ordering::Acquire) >= ticket {
                return Ok(());
            }
            // A round that failed while this one queued answers for it too: the waiters of a
            // lost replica are refused together, not one timeout after another.
            if self.failed_through.load(Ordering::Acquire) >= ticket {
                return Err(failed());
            }
            // Every ticket handed out so far is a write the masters have answered.
            let upto = self.tickets.load(Ordering::Acquire);
            if let Err(e) = self.wait_all_masters().await {
                self.failed_through.fetch_max(upto, Ordering::AcqRel);
                return Err(e);
            }
            self.replicated.fetch_max(upto, Ordering::AcqRel);
        }
    }

    /// With replicas to wait for: a write of this node's in `user`'s slot (a short-lived
    /// marker), and its ticket. Replication is ordered per master, so once this write is on
    /// the replicas, so is every change of the user another node made before it.
    /// [`Store::fence`]; as a `decoy`, a write of its own even with no replica to wait for,
    /// and a ticket as a failure's record would get ([`Store::decoy`]).
    async fn fence_now(&self, user: &str, decoy: bool) -> Result<Option<u64>, StoreError> {
        if self.config.wait_replicas == 0 && !decoy {
            return Ok(None);
        }
        let mut key = self.keys.user(user);
        key.push(b'f');
        let mut c = self.conn();
        let () = redis::cmd("SET")
            .arg(key)
            .arg(1)
            .arg("PX")
            .arg(1000)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(if decoy {
            Some(self.tickets.fetch_add(1, Ordering::AcqRel) + 1)
        } else {
            self.written(&[], None)
        })
    }

    async fn wait_all_masters(&self) -> Result<(), StoreError> {
        let mut c = self.conn();
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(self.config.wait_replicas)
            .arg(u64::try_from(self.config.wait_timeout.as_millis()).unwrap_or(u64::MAX));
        let routing = RoutingInfo::MultiNode((
            MultipleNodeRoutingInfo::AllMasters,
            Some(ResponsePolicy::Aggregate(AggregateOp::Min)),
        ));
        let acked = c.route_command(cmd, routing).await.map_err(unavailable)?;
        let acked: i64 = redis::from_redis_value(acked)
            .map_err(|e| StoreError::Unavailable(format!("WAIT: {e}")))?;
        if usize::try_from(acked).unwrap_or(0) < self.config.wait_replicas {
            return Err(StoreError::Unavailable(format!(
                "WAIT: {acked} of {} replicas acknowledged",
                self.config.wait_replicas
            )));
        }
        Ok(())
    }

    async fn next_id_now(&self, seq: Sequence) -> Result<u32, StoreError> {
        let name = match seq {
            Sequence::Device => "device",
            Sequence::Share => "share",
        };
        let mut c = self.conn();
        let n: u64 = c
            .incr(self.keys.sequence(name), 1)
            .await
            .map_err(unavailable)?;
        match u32::try_from(n) {
            Ok(id) if id != u32::MAX => Ok(id),
            _ => Err(StoreError::Unavailable(format!("{seq:?} ids exhausted"))),
        }
    }

    async fn primary_now(&self, entity: &str) -> Result<Option<String>, StoreError> {
        if entity.is_empty() {
            return Ok(None);
        }
        let mut c = self.conn();
        c.get(self.keys.primary(entity)).await.map_err(unavailable)
    }

    async fn note_lockout_now(&self, at_ms: u64, window_ms: u64) -> Result<usize, StoreError> {
        let n = self.noted.fetch_add(1, Ordering::Relaxed);
        let member = format!("{at_ms}:{:x}:{n}", self.nonce);
        let mut c = self.conn();
        let members: Vec<String> = self
            .scripts
            .note_lockout
            .key(self.keys.lockouts())
            .arg(at_ms)
            .arg(member)
            .arg(window_ms)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        let times: std::collections::VecDeque<u64> = members
            .iter()
            .filter_map(|m| m.split(':').next()?.parse().ok())
            .collect();
        let count = times.len();
        *self.lockouts.lock() = times;
        Ok(count)
    }
}

impl Store for RedisStore {
    type Ticket = u64;

    fn update<T, F>(
        &self,
        user: &str,
        create: bool,
        rule: F,
    ) -> impl Future<Output = Result<Option<Committed<T, u64>>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
    {
        self.update_now(user, create, rule, |_| None)
    }

    fn update_indexed<T, F, I>(
        &self,
        user: &str,
        create: bool,
        rule: F,
        index: I,
    ) -> impl Future<Output = Result<Option<Committed<T, u64>>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
        I: Fn(&T) -> Option<IndexOp> + Send + Sync,
    {
        self.update_now(user, create, rule, index)
    }

    fn txn_slot(&self, user: &str) -> Option<u16> {
        Some(self.keys.user_slot(user))
    }

    fn read<T, F>(
        &self,
        user: &str,
        read: F,
    ) -> impl Future<Output = Result<Option<T>, StoreError>> + Send
    where
        T: Send,
        F: FnOnce(&UserState) -> T + Send,
    {
        self.read_now(user, read)
    }

    fn durable(&self, ticket: u64) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.durable_now(ticket)
    }

    fn fence(&self, user: &str) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        self.fence_now(user, false)
    }

    fn decoy(&self, user: &str) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        self.fence_now(user, true)
    }

    fn txn_get(
        &self,
        txn: TxnId,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<TxnEntry>, StoreError>> + Send {
        self.txn_get_now(txn, now_ms)
    }

    fn txn_bind(
        &self,
        txn: TxnId,
        user: &str,
        device: DeviceId,
        until_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.txn_bind_now(txn, user, device, until_ms)
    }

    fn txn_settle(
        &self,
        txn: TxnId,
        verdict: Verdict,
        until_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.txn_settle_now(txn, verdict, until_ms)
    }

    fn open_txns(&self) -> usize {
        self.bound.lock().len()
    }

    fn sweep(&self, now_ms: u64) -> usize {
        self.sweep_now(now_ms)
    }

    fn next_id(&self, seq: Sequence) -> impl Future<Output = Result<u32, StoreError>> + Send {
        self.next_id_now(seq)
    }

    fn device_owner(
        &self,
        device: DeviceId,
    ) -> impl Future<Output = Result<Option<Arc<str>>, StoreError>> + Send {
        self.owner_of(device)
    }

    fn update_share<T, F>(
        &self,
        id: u32,
        change: F,
    ) -> impl Future<Output = Result<Committed<T, u64>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut Option<Share>, &mut Vec<Record>) -> T + Send,
    {
        self.update_share_now(id, change)
    }

    fn primary_of(
        &self,
        entity: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        self.primary_now(entity)
    }

    fn note_lockout(
        &self,
        at_ms: u64,
        window_ms: u64,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        self.note_lockout_now(at_ms, window_ms)
    }

    fn recent_lockouts(&self, now_ms: u64, window_ms: u64) -> usize {
        sls_core::recent_lockouts(&mut self.lockouts.lock(), now_ms, window_ms)
    }

    fn user_count(&self) -> usize {
        self.users.load(Ordering::Relaxed)
    }

    fn take_user_token(
        &self,
        user: &str,
        now_ms: u64,
        quota: UserQuota,
    ) -> impl Future<Output = Result<UserToken, StoreError>> + Send {
        self.take_user_token_now(user, now_ms, quota)
    }
}
