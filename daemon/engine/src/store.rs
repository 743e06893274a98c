//! The store seam: how the verifier reaches user state, wherever it lives.
//!
//! The unit of atomicity is **one user**: [`Store::update`] reads the user's state, runs a rule
//! on it and writes it back, atomically with respect to every other update of that user, on
//! this node or any other sharing the store. The rule is a plain function of the state; a store
//! may run it more than once (optimistic concurrency: read a versioned record, run the rule on
//! a copy, compare-and-set, retry on conflict), so a rule must be a function of its inputs and
//! must not act outside the state and the records it is handed.
//!
//! What crosses users has its own small operations: transaction id → user, device ids,
//! IB Key device → owner, sharing requests, the mass-lockout signal; and a store shared by
//! nodes keeps the per-user rate limit ([`Store::keeps_user_limit`]), taking a request's token
//! with its update ([`Store::update_limited`]).
//!
//! Every change comes with the [`Record`]s that make it durable. A store commits them with the
//! change and returns a [`Store::Ticket`]; [`Store::durable`] resolves once they are durable
//! (the embedded store's group commit; a cluster store's replication), and only then may the
//! answer that depends on them leave.
//!
//! The methods return futures so that a networked store can wait for its server; the embedded
//! store's futures are ready at once.

use std::future::Future;
use std::sync::Arc;

use sls_protocol::{DeviceId, TxnId, Verdict};

use crate::gcra::UserQuota;
use crate::record::Record;
use crate::share::Share;
use crate::user::UserState;
use crate::StoreError;

/// A committed change: the rule's value and what to wait on before acknowledging it.
#[derive(Debug)]
pub struct Committed<T, K> {
    /// What the rule returned.
    pub value: T,
    /// `Some` if the change wrote records: wait for [`Store::durable`] before answering.
    pub ticket: Option<K>,
}

/// A user's name as the stores keep it: inline up to 24 bytes (every name of most directories),
/// so that copying one into a transaction's entry allocates nothing.
pub type UserName = compact_str::CompactString;

/// What the transaction index knows of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnEntry {
    /// Its user (inline up to 24 bytes: a transaction's entry allocates nothing).
    pub user: UserName,
    /// The device its challenge is for.
    pub device: DeviceId,
    /// Its verdict once its first answer spent it (R12: any later answer is a replay).
    pub verdict: Option<Verdict>,
}

/// What the transaction index learns from a committed change (see [`Store::update_indexed`]).
#[derive(Debug, Clone, PartialEq)]
pub enum IndexOp {
    /// A new open transaction of the user, for `device`, remembered until `until_ms`.
    Bind {
        /// The transaction.
        txn: TxnId,
        /// Its challenge's device.
        device: DeviceId,
        /// Until when it is remembered.
        until_ms: u64,
    },
    /// A transaction spent with `verdict`, remembered until `until_ms` (the replay window).
    Settle {
        /// The transaction.
        txn: TxnId,
        /// Its verdict.
        verdict: Verdict,
        /// Until when it is remembered.
        until_ms: u64,
    },
}

/// The ids a store hands out, unique across users and nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    /// Device ids.
    Device,
    /// Sharing request ids (R17).
    Share,
}

/// The most share ids [`Store::list_shares`] looks at in one call (a cut that bounds a
/// networked store's reads: ids of shares refused or cancelled are read too).
pub const SHARE_SCAN: u32 = 1024;

/// A page of sharing requests ([`Store::list_shares`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharePage {
    /// (id, share), in id order.
    pub shares: Vec<(u32, Share)>,
    /// `Some(id)`: ids above `id` may hold more; list again with `after` = `id`. `None`: no
    /// share above the last listed.
    pub next: Option<u32>,
}

/// A request's per-user rate-limit token, for a store that keeps the limit
/// ([`Store::keeps_user_limit`]): one step of GCRA ([`crate::gcra`]) at `now_ms` under `quota`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenAsk {
    /// The request's time (the core's clock).
    pub now_ms: u64,
    /// The per-user quota.
    pub quota: UserQuota,
}

/// What an update that first takes a rate-limit token came to ([`Store::update_limited`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited<T> {
    /// A token was taken and the update ran: its outcome.
    Passed(T),
    /// No token left: nothing was written (a store may have run the rule on the value it
    /// sent with the token). The request would pass `retry_after_ms`
    /// later.
    Refused {
        /// When to come back.
        retry_after_ms: u32,
    },
}

/// What [`Store::update_limited`] gives: refused, or the update's outcome (`None`: no such
/// user).
pub type LimitedUpdate<T, K> = Limited<Option<Committed<T, K>>>;

/// Where user state lives. See the module docs.
pub trait Store: Send + Sync + 'static {
    /// What [`Store::durable`] waits for; several are made one with [`Store::join_tickets`].
    type Ticket: Copy + Ord + Send + Sync + std::fmt::Debug + 'static;

    /// One ticket for the writes of two: waiting for it waits for both (a request, or a batch
    /// of them, that wrote several times). The default, for tickets whose order is the order
    /// of durability (a journal's positions): the greater. A store whose tickets name where
    /// their write went (the Redis store: its slot, so that a shard that lost its replica
    /// refuses only its own writes) joins them into one that waits for every place.
    fn join_tickets(&self, a: Self::Ticket, b: Self::Ticket) -> Self::Ticket {
        a.max(b)
    }

    /// [`Store::join_tickets`] of what two steps produced, if anything.
    fn later(&self, a: Option<Self::Ticket>, b: Option<Self::Ticket>) -> Option<Self::Ticket> {
        match (a, b) {
            (Some(a), Some(b)) => Some(self.join_tickets(a, b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs `rule` on `user`'s state atomically and commits the change with the records the
    /// rule pushed. `None` if the user does not exist and `create` is false. With `create`, a
    /// missing user is handed to the rule as a fresh [`UserState`]; it is kept only if the rule
    /// enrolled it.
    fn update<T, F>(
        &self,
        user: &str,
        create: bool,
        rule: F,
    ) -> impl Future<Output = Result<Option<Committed<T, Self::Ticket>>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send;

    /// As [`Store::update`], then what the committed value tells the transaction index
    /// (`index`). A store read concurrently writes it before the change can be read (the
    /// embedded store under the user's mutex; a cluster store in the same atomic step, when
    /// the transaction lives beside its user, [`Store::txn_slot`]): whoever reads the user
    /// without a transaction its answer spent must find the verdict in the index, or an
    /// `Await` reading in between answers `unknown`. The default writes it right after, with
    /// [`Store::txn_bind`] or [`Store::txn_settle`].
    fn update_indexed<T, F, I>(
        &self,
        user: &str,
        create: bool,
        rule: F,
        index: I,
    ) -> impl Future<Output = Result<Option<Committed<T, Self::Ticket>>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
        I: Fn(&T) -> Option<IndexOp> + Send + Sync,
    {
        async move {
            let committed = self.update(user, create, rule).await?;
            if let Some(op) = committed.as_ref().and_then(|c| index(&c.value)) {
                match op {
                    IndexOp::Bind {
                        txn,
                        device,
                        until_ms,
                    } => self.txn_bind(txn, user, device, until_ms).await?,
                    IndexOp::Settle {
                        txn,
                        verdict,
                        until_ms,
                    } => self.txn_settle(txn, verdict, until_ms).await?,
                }
            }
            Ok(committed)
        }
    }

    /// The shard `user`'s transaction ids should carry in their top bits
    /// ([`crate::cx::TXN_SLOT_BITS`]), so that their index entries can live beside the user;
    /// `None` (the default): ids are all random.
    fn txn_slot(&self, user: &str) -> Option<u16> {
        let _ = user;
        None
    }

    /// Reads `user`'s state. `None` if there is no such user.
    fn read<T, F>(
        &self,
        user: &str,
        read: F,
    ) -> impl Future<Output = Result<Option<T>, StoreError>> + Send
    where
        T: Send,
        F: FnOnce(&UserState) -> T + Send;

    /// Waits until the records behind `ticket` are durable.
    fn durable(&self, ticket: Self::Ticket) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A ticket that, once [`Store::durable`], covers every change of `user` this node can
    /// read now, its own or another node's (`None`: nothing to wait for). Before an answer that
    /// reports a change this node did not make, such as a push decided through another
    /// connection, or another node (R6), so that it is never reported before it is durable.
    fn fence(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Option<Self::Ticket>, StoreError>> + Send {
        let _ = user;
        std::future::ready(Ok(None))
    }

    /// A ticket for a write of the size of `user`'s failure record that changes nothing: an
    /// unknown name's answer waits for it as a real user's waits for its record, so that the
    /// time to answer does not tell them apart (`None`: nothing to wait for). By default the
    /// [`Store::fence`], which for a shared store is a write of its own.
    fn decoy(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Option<Self::Ticket>, StoreError>> + Send {
        self.fence(user)
    }

    /// What the index knows of `txn`, while it is remembered (until its deadline, given
    /// `now_ms`).
    fn txn_get(
        &self,
        txn: TxnId,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<TxnEntry>, StoreError>> + Send;

    /// What an answer needs of `txn` before it updates the transaction's user: as
    /// [`Store::txn_get`], but a store may answer from what this node itself bound and settled
    /// rather than ask. An entry given as open need not be: the answer's update proves it,
    /// since a transaction spent since (here or on another node) is no longer in its user's
    /// state, and the rule then answers `Replayed` (R12). The default asks
    /// [`Store::txn_get`].
    fn txn_to_answer(
        &self,
        txn: TxnId,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<TxnEntry>, StoreError>> + Send {
        self.txn_get(txn, now_ms)
    }

    /// Remembers a new open transaction of `user` for `device` until `until_ms`.
    fn txn_bind(
        &self,
        txn: TxnId,
        user: &str,
        device: DeviceId,
        until_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records the verdict of a spent transaction and remembers it only until `until_ms` (the
    /// replay window).
    fn txn_settle(
        &self,
        txn: TxnId,
        verdict: Verdict,
        until_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Transactions open now, the bound of open transactions (`max_open_txns`) is checked
    /// against it. The embedded store counts those begun and neither spent nor past their life
    /// (the spent ones it remembers for the replay window are the login rate times the window,
    /// and must not refuse logins at a high rate); the Redis store, those this node bound, until
    /// their deadline.
    fn open_txns(&self) -> usize;

    /// Forgets transaction ids past their deadline; returns how many.
    fn sweep(&self, now_ms: u64) -> usize;

    /// A new id from `seq`.
    fn next_id(&self, seq: Sequence) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// The user who owns IB Key `device` (kept from the device records the store commits).
    fn device_owner(
        &self,
        device: DeviceId,
    ) -> impl Future<Output = Result<Option<Arc<str>>, StoreError>> + Send;

    /// Runs `change` on sharing request `id` atomically (`None`: no such request; set it to
    /// create one) and commits it with its records.
    fn update_share<T, F>(
        &self,
        id: u32,
        change: F,
    ) -> impl Future<Output = Result<Committed<T, Self::Ticket>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut Option<Share>, &mut Vec<Record>) -> T + Send;

    /// The live sharing requests (pending or approved) with ids above `after` that `keep`
    /// keeps, in id order: at most `max`, looking at no more than [`SHARE_SCAN`] ids; with
    /// where to go on from ([`SharePage::next`]).
    fn list_shares<F>(
        &self,
        after: u32,
        max: usize,
        keep: F,
    ) -> impl Future<Output = Result<SharePage, StoreError>> + Send
    where
        F: Fn(&Share) -> bool + Send + Sync;

    /// The primary user of `entity` (R18), if any.
    fn primary_of(
        &self,
        entity: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Notes a lockout at `at_ms` and returns the lockouts of the last `window_ms`, across
    /// users (the mass-lockout signal).
    fn note_lockout(
        &self,
        at_ms: u64,
        window_ms: u64,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Lockouts of the last `window_ms` before `now_ms`, across users.
    fn recent_lockouts(&self, now_ms: u64, window_ms: u64) -> usize;

    /// Enrolled users (a gauge; a networked store may estimate).
    fn user_count(&self) -> usize;

    /// Whether the store keeps the per-user rate limit, so that it is exact across every node
    /// sharing the store: the engine then hands each limited request's token to
    /// [`Store::update_limited`], which must take it. `false` (the default, a store one node
    /// owns: the embedded store): the node's own limiter decides, in memory, as fast as before.
    fn keeps_user_limit(&self) -> bool {
        false
    }

    /// As [`Store::update_indexed`], once one of `user`'s rate-limit tokens is taken under
    /// `token` (GCRA, [`crate::gcra`]); if none is left, [`Limited::Refused`] and nothing is
    /// written. A user's name is enough: unknown users are limited exactly like known ones
    /// (the limiter tells nothing of who exists). A store may take the token in the same round
    /// trip as the update's first read or write (the Redis store does, in the same script).
    ///
    /// Called only when [`Store::keeps_user_limit`]. The default takes no token, so it answers
    /// [`StoreError::Damaged`] for a store that says it keeps the limit: such a store must
    /// override both.
    fn update_limited<T, F, I>(
        &self,
        user: &str,
        create: bool,
        token: TokenAsk,
        rule: F,
        index: I,
    ) -> impl Future<Output = Result<LimitedUpdate<T, Self::Ticket>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
        I: Fn(&T) -> Option<IndexOp> + Send + Sync,
    {
        let _ = token;
        async move {
            // Never a limit skipped in silence: a store that keeps it must take its token.
            if self.keeps_user_limit() {
                return Err(StoreError::Damaged(
                    "this store keeps the per-user limit but cannot take its token".into(),
                ));
            }
            self.update_indexed(user, create, rule, index)
                .await
                .map(Limited::Passed)
        }
    }
}
