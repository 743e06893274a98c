//! Where the daemon keeps user state: the embedded store (this process's memory, made durable
//! by the journal in the data directory; the default) or a Redis Cluster shared by several
//! nodes (`--store redis://…`). One [`Backend`] dispatches the core's [`Store`] seam to either,
//! so the service and the rules are the same code over both.

use std::sync::Arc;

use sls_engine::{
    Committed, IndexOp, LimitedUpdate, Record, Sequence, Share, SharePage, Store, StoreError,
    TokenAsk, TxnEntry, UserState,
};
use sls_protocol::{DeviceId, TxnId, Verdict};
use sls_redis::RedisStore;

use crate::engine::MemoryStore;
use crate::store::Store as Journal;

/// The store behind the daemon's core.
// One per process, inside the core: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Backend {
    /// Memory and the journal of this node's data directory.
    Embedded(MemoryStore<Journal>),
    /// A Redis Cluster shared with the other nodes.
    Redis(RedisStore),
}

impl Backend {
    /// The embedded store, if that is this daemon's.
    pub fn embedded(&self) -> Option<&MemoryStore<Journal>> {
        match self {
            Backend::Embedded(m) => Some(m),
            Backend::Redis(_) => None,
        }
    }

    /// Whether state is shared with other nodes.
    pub fn is_shared(&self) -> bool {
        matches!(self, Backend::Redis(_))
    }

    /// Called on the thread that serves requests, before it accepts any: the Redis store's
    /// connection moves to this thread's runtime, so that a request's round trips wake no
    /// other thread ([`RedisStore::home_here`]). If that fails, the store keeps the connection
    /// it made at start, on the background runtime.
    pub async fn home_here(&self) {
        if let Backend::Redis(r) = self {
            if let Err(e) = r.home_here().await {
                tracing::warn!("the Redis connection stays on the background threads: {e}");
            }
        }
    }

    /// The serving thread is ending: the Redis store goes back to its first connection.
    pub fn leave_home(&self) {
        if let Backend::Redis(r) = self {
            r.leave_home();
        }
    }
}

/// Awaits the same call on whichever store this is. The Redis store's futures are boxed: they
/// are large (a cluster client's state), and unboxed they would size every future the core
/// builds over the embedded store too, to be copied on every request.
macro_rules! either_await {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Backend::Embedded($s) => $call.await,
            Backend::Redis($s) => Box::pin($call).await,
        }
    };
}

/// Runs the same call on whichever store this is.
macro_rules! either {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Backend::Embedded($s) => $call,
            Backend::Redis($s) => $call,
        }
    };
}

impl Store for Backend {
    // Both stores hand out ordered u64 tickets (the journal's position, the Redis store's
    // sequence); a ticket is only ever given back to the store that made it.
    type Ticket = u64;

    fn join_tickets(&self, a: u64, b: u64) -> u64 {
        either!(self, s => s.join_tickets(a, b))
    }

    async fn update<T, F>(
        &self,
        user: &str,
        create: bool,
        rule: F,
    ) -> Result<Option<Committed<T, u64>>, StoreError>
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
    {
        either_await!(self, s => s.update(user, create, rule))
    }

    async fn update_indexed<T, F, I>(
        &self,
        user: &str,
        create: bool,
        rule: F,
        index: I,
    ) -> Result<Option<Committed<T, u64>>, StoreError>
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
        I: Fn(&T) -> Option<IndexOp> + Send + Sync,
    {
        either_await!(self, s => s.update_indexed(user, create, rule, index))
    }

    fn txn_slot(&self, user: &str) -> Option<u16> {
        either!(self, s => s.txn_slot(user))
    }

    async fn read<T, F>(&self, user: &str, read: F) -> Result<Option<T>, StoreError>
    where
        T: Send,
        F: FnOnce(&UserState) -> T + Send,
    {
        either_await!(self, s => s.read(user, read))
    }

    async fn durable(&self, ticket: u64) -> Result<(), StoreError> {
        either_await!(self, s => s.durable(ticket))
    }

    async fn fence(&self, user: &str) -> Result<Option<u64>, StoreError> {
        either_await!(self, s => s.fence(user))
    }

    async fn decoy(&self, user: &str) -> Result<Option<u64>, StoreError> {
        either_await!(self, s => s.decoy(user))
    }

    async fn txn_get(&self, txn: TxnId, now_ms: u64) -> Result<Option<TxnEntry>, StoreError> {
        either_await!(self, s => s.txn_get(txn, now_ms))
    }

    async fn txn_to_answer(&self, txn: TxnId, now_ms: u64) -> Result<Option<TxnEntry>, StoreError> {
        either_await!(self, s => s.txn_to_answer(txn, now_ms))
    }

    async fn txn_bind(
        &self,
        txn: TxnId,
        user: &str,
        device: DeviceId,
        until_ms: u64,
    ) -> Result<(), StoreError> {
        either_await!(self, s => s.txn_bind(txn, user, device, until_ms))
    }

    async fn txn_settle(
        &self,
        txn: TxnId,
        verdict: Verdict,
        until_ms: u64,
    ) -> Result<(), StoreError> {
        either_await!(self, s => s.txn_settle(txn, verdict, until_ms))
    }

    fn open_txns(&self) -> usize {
        either!(self, s => s.open_txns())
    }

    fn sweep(&self, now_ms: u64) -> usize {
        either!(self, s => s.sweep(now_ms))
    }

    async fn next_id(&self, seq: Sequence) -> Result<u32, StoreError> {
        either_await!(self, s => s.next_id(seq))
    }

    async fn device_owner(&self, device: DeviceId) -> Result<Option<Arc<str>>, StoreError> {
        either_await!(self, s => s.device_owner(device))
    }

    async fn update_share<T, F>(&self, id: u32, change: F) -> Result<Committed<T, u64>, StoreError>
    where
        T: Send,
        F: FnMut(&mut Option<Share>, &mut Vec<Record>) -> T + Send,
    {
        either_await!(self, s => s.update_share(id, change))
    }

    async fn list_shares<F>(&self, after: u32, max: usize, keep: F) -> Result<SharePage, StoreError>
    where
        F: Fn(&Share) -> bool + Send + Sync,
    {
        either_await!(self, s => s.list_shares(after, max, keep))
    }

    async fn primary_of(&self, entity: &str) -> Result<Option<String>, StoreError> {
        either_await!(self, s => s.primary_of(entity))
    }

    async fn note_lockout(&self, at_ms: u64, window_ms: u64) -> Result<usize, StoreError> {
        either_await!(self, s => s.note_lockout(at_ms, window_ms))
    }

    fn recent_lockouts(&self, now_ms: u64, window_ms: u64) -> usize {
        either!(self, s => s.recent_lockouts(now_ms, window_ms))
    }

    fn user_count(&self) -> usize {
        either!(self, s => s.user_count())
    }

    fn keeps_user_limit(&self) -> bool {
        either!(self, s => s.keeps_user_limit())
    }

    async fn update_limited<T, F, I>(
        &self,
        user: &str,
        create: bool,
        token: TokenAsk,
        rule: F,
        index: I,
    ) -> Result<LimitedUpdate<T, u64>, StoreError>
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
        I: Fn(&T) -> Option<IndexOp> + Send + Sync,
    {
        either_await!(self, s => s.update_limited(user, create, token, rule, index))
    }
}
