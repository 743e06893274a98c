//! `impl Store for RedisStore`, fences (durability is in `durable.rs`) and the small operations
//! across users; updates are in `update.rs`.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::AsyncCommands;
use sls_engine::{
    Committed, IndexOp, Limited, LimitedUpdate, Record, Sequence, Share, SharePage, Store,
    StoreError, TokenAsk, TxnEntry, UserState, SHARE_SCAN,
};
use sls_protocol::{DeviceId, TxnId, Verdict};

use crate::durable::Ticket;
use crate::{unavailable, Command, RedisStore};

impl RedisStore {
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
        let mut c = self.conn(Command::Other);
        let () = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("PX")
            .arg(1000)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(if decoy {
            Some(self.next_ticket(&key, false))
        } else {
            self.written(&[], None, &key, false)
        })
    }

    async fn next_id_now(&self, seq: Sequence) -> Result<u32, StoreError> {
        let name = match seq {
            Sequence::Device => "device",
            Sequence::Share => "share",
        };
        let key = self.keys.sequence(name);
        let mut c = self.conn(Command::Other);
        let n: u64 = c.incr(&key, 1).await.map_err(unavailable)?;
        // An id is on the replicas before it is used: a failover that lost the `INCR` would
        // hand it out again. (The request's own ticket names its user's slot, not this one.)
        self.durable_now(self.next_ticket(&key, false)).await?;
        match u32::try_from(n) {
            Ok(id) if id != u32::MAX => Ok(id),
            _ => Err(StoreError::Unavailable(
                format!("{seq:?} ids exhausted").into(),
            )),
        }
    }

    /// [`Store::list_shares`]: the ids handed out after `after` (at most [`SHARE_SCAN`]), read
    /// 32 at a time, each share's value opened as an update's read would.
    async fn list_shares_now<F>(
        &self,
        after: u32,
        max: usize,
        keep: F,
    ) -> Result<SharePage, StoreError>
    where
        F: Fn(&Share) -> bool,
    {
        let mut c = self.conn(Command::Other);
        let last: Option<u64> = c
            .get(self.keys.sequence("share"))
            .await
            .map_err(unavailable)?;
        let last = u32::try_from(last.unwrap_or(0)).unwrap_or(u32::MAX);
        let end = after.saturating_add(SHARE_SCAN).min(last);
        let mut shares = Vec::new();
        let mut id = after;
        while id < end {
            let upto = id.saturating_add(32).min(end);
            let reads = (id + 1..=upto).map(|n| async move {
                let key = self.keys.share(n);
                (n, self.read_versioned(&key).await)
            });
            for (n, read) in futures_util::future::join_all(reads).await {
                let Some(bytes) = read?.value else { continue };
                let share = Share::decode(&bytes)
                    .map_err(|e| StoreError::Damaged(format!("share {n}: {e}").into()))?;
                if share.is_live() && keep(&share) {
                    if shares.len() == max {
                        // One more than a page: the page ends at the last one kept.
                        let next = shares.last().map(|(id, _)| *id);
                        return Ok(SharePage { shares, next });
                    }
                    shares.push((n, share));
                }
            }
            id = upto;
        }
        Ok(SharePage {
            shares,
            next: (end < last).then_some(end),
        })
    }

    async fn primary_now(&self, entity: &str) -> Result<Option<String>, StoreError> {
        if entity.is_empty() {
            return Ok(None);
        }
        let mut c = self.conn(Command::Other);
        c.get(self.keys.primary(entity)).await.map_err(unavailable)
    }

    /// Notes a lockout in the cluster's sorted set of lockout times, apart from the answer
    /// that locked: the set is one key, on one master, and a user of another shard must not
    /// wait for that master (frozen, failed) to hear that its lock stands. Counts at once what
    /// this node knows (its own notes and the set as last read); the set's reply, when it
    /// comes, replaces that if it holds as many or more (a reply to an earlier note does not
    /// undo a later one). A note that fails is missing from the mass-lockout signal, and said
    /// in a warning; the user's lock is in its own state, written before.
    async fn note_lockout_now(&self, at_ms: u64, window_ms: u64) -> Result<usize, StoreError> {
        let n = self.noted.fetch_add(1, Ordering::Relaxed);
        let member = format!("{at_ms}:{:x}:{n}", self.nonce);
        let count = {
            let mut known = self.lockouts.lock();
            known.push_back(at_ms);
            sls_engine::recent_lockouts(&mut known, at_ms, window_ms)
        };
        let mut c = self.conn(Command::Other);
        let script = self.scripts.note_lockout.clone();
        let key = self.keys.lockouts();
        let lockouts = self.lockouts.clone();
        tokio::spawn(async move {
            let members: Vec<String> = match script
                .key(key)
                .arg(at_ms)
                .arg(member)
                .arg(window_ms)
                .invoke_async(&mut c)
                .await
            {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("a lockout not noted in the mass-lockout signal: redis: {e}");
                    return;
                }
            };
            let times: std::collections::VecDeque<u64> = members
                .iter()
                .filter_map(|m| m.split(':').next()?.parse().ok())
                .collect();
            let mut known = lockouts.lock();
            sls_engine::recent_lockouts(&mut known, at_ms, window_ms);
            if times.len() >= known.len() {
                *known = times;
            }
        });
        Ok(count)
    }
}

impl Store for RedisStore {
    type Ticket = Ticket;

    fn join_tickets(&self, a: Ticket, b: Ticket) -> Ticket {
        Ticket(self.join_now(a.0, b.0))
    }

    fn update<T, F>(
        &self,
        user: &str,
        create: bool,
        rule: F,
    ) -> impl Future<Output = Result<Option<Committed<T, Ticket>>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
    {
        self.update_indexed(user, create, rule, |_| None)
    }

    async fn update_indexed<T, F, I>(
        &self,
        user: &str,
        create: bool,
        rule: F,
        index: I,
    ) -> Result<Option<Committed<T, Ticket>>, StoreError>
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
        I: Fn(&T) -> Option<IndexOp> + Send + Sync,
    {
        match self.update_now(user, create, None, rule, index).await? {
            Limited::Passed(committed) => Ok(committed.map(opaque)),
            Limited::Refused { .. } => Err(StoreError::Damaged(
                "a rate-limit refusal where no token was asked".into(),
            )),
        }
    }

    fn keeps_user_limit(&self) -> bool {
        true
    }

    fn update_limited<T, F, I>(
        &self,
        user: &str,
        create: bool,
        token: TokenAsk,
        rule: F,
        index: I,
    ) -> impl Future<Output = Result<LimitedUpdate<T, Ticket>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
        I: Fn(&T) -> Option<IndexOp> + Send + Sync,
    {
        let update = self.update_now(user, create, Some(token), rule, index);
        async move {
            Ok(match update.await? {
                Limited::Passed(committed) => Limited::Passed(committed.map(opaque)),
                Limited::Refused { retry_after_ms } => Limited::Refused { retry_after_ms },
            })
        }
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

    fn durable(&self, ticket: Ticket) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.durable_now(ticket.0)
    }

    async fn fence(&self, user: &str) -> Result<Option<Ticket>, StoreError> {
        Ok(self.fence_now(user, false).await?.map(Ticket))
    }

    async fn decoy(&self, user: &str) -> Result<Option<Ticket>, StoreError> {
        Ok(self.fence_now(user, true).await?.map(Ticket))
    }

    fn txn_get(
        &self,
        txn: TxnId,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<TxnEntry>, StoreError>> + Send {
        self.txn_get_now(txn, now_ms)
    }

    fn txn_to_answer(
        &self,
        txn: TxnId,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<TxnEntry>, StoreError>> + Send {
        self.txn_to_answer_now(txn, now_ms)
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
    ) -> impl Future<Output = Result<Committed<T, Ticket>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut Option<Share>, &mut Vec<Record>) -> T + Send,
    {
        let update = self.update_share_now(id, change);
        async move { update.await.map(opaque) }
    }

    fn list_shares<F>(
        &self,
        after: u32,
        max: usize,
        keep: F,
    ) -> impl Future<Output = Result<SharePage, StoreError>> + Send
    where
        F: Fn(&Share) -> bool + Send + Sync,
    {
        self.list_shares_now(after, max, keep)
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
        sls_engine::recent_lockouts(&mut self.lockouts.lock(), now_ms, window_ms)
    }

    fn user_count(&self) -> usize {
        self.users.load(Ordering::Relaxed)
    }
}

/// A committed change's ticket, made opaque for the engine ([`Ticket`]).
fn opaque<T>(c: Committed<T, u64>) -> Committed<T, Ticket> {
    Committed {
        value: c.value,
        ticket: c.ticket.map(Ticket),
    }
}
