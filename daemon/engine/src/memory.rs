//! The embedded store: every user's state in this process's memory, each under its own mutex,
//! with a [`Journal`] that makes the records durable (the daemon's journal and snapshots; none
//! in tests and benches). The default store: zero setup, today's speed.
//!
//! An update holds the user's mutex while the rule runs and while its records are queued on
//! the journal, so the journal's order is the order of the changes, user by user. The mutex
//! is held for a rule only (about a microsecond), never across I/O: the journal only queues.

use std::collections::VecDeque;
use std::future::{ready, Future};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use sls_protocol::{DeviceId, DeviceKind, TxnId, Verdict};

use crate::record::Record;
use crate::share::Share;
use crate::store::{
    Committed, IndexOp, Sequence, SharePage, Store, TxnEntry, UserName, SHARE_SCAN,
};
use crate::txn_index::TxnIndex;
use crate::user::UserState;
use crate::users::Users;
use crate::CoreConfig;
use crate::StoreError;

/// Where the embedded store makes records durable.
pub trait Journal: Send + Sync + 'static {
    /// What [`Journal::durable`] waits for.
    type Ticket: Copy + Ord + Send + Sync + std::fmt::Debug + 'static;

    /// Whether the journal accepts a change now (it may refuse while its writes fail, and
    /// accept again once they succeed): checked before a rule changes anything, so that a
    /// refused change is not made in memory either. Once it has said yes, [`Journal::append`]
    /// should not refuse for a reason this could have seen: the change is then already made
    /// in memory, and memory must never hold less than the journal.
    ///
    /// # Errors
    /// The journal failed or is closed.
    fn healthy(&self) -> Result<(), StoreError>;

    /// Queues `records` (called under the user's mutex: must not block on the disk).
    ///
    /// # Errors
    /// The journal refused them.
    fn append(&self, records: &[Record]) -> Result<Self::Ticket, StoreError>;

    /// Resolves once everything up to `ticket` is durable.
    fn durable(&self, ticket: Self::Ticket) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The ticket of the last record queued so far, if any: durable, it covers every change
    /// made before this call.
    fn appended(&self) -> Option<Self::Ticket> {
        None
    }
}

/// No journal: state lives as long as the process (tests, benches).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoJournal;

impl Journal for NoJournal {
    type Ticket = u64;
    fn healthy(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn append(&self, _: &[Record]) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn durable(&self, _: u64) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(Ok(()))
    }
}

type Map<K, V> = DashMap<K, V, ahash::RandomState>;

/// The embedded store.
pub struct MemoryStore<J: Journal = NoJournal> {
    config: CoreConfig,
    journal: J,
    /// Users by name, each in one allocation with its name (`users.rs`).
    users: Users,
    /// Transaction → its user, device, verdict once spent, and until when it is remembered.
    txns: TxnIndex,
    next_device: AtomicU32,
    next_share: AtomicU32,
    ib_owner: Map<u32, Arc<str>>,
    shares: Map<u32, Share>,
    lock_times: Mutex<VecDeque<u64>>,
    /// Held shared by every update; all held exclusively while a snapshot rotates the journal
    /// and captures the state, so that the two agree.
    pause: Pause,
}

/// A read-write lock split in shards, one per thread (round robin): an update takes its
/// thread's shard shared, so two threads never bounce one cache line per request; a snapshot
/// takes every shard exclusively.
struct Pause(Box<[Padded]>);

#[repr(align(128))]
struct Padded(RwLock<()>);

const PAUSE_SHARDS: usize = 16;

thread_local! {
    static PAUSE_SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % PAUSE_SHARDS
    };
}

impl Pause {
    fn new() -> Pause {
        Pause((0..PAUSE_SHARDS).map(|_| Padded(RwLock::new(()))).collect())
    }

    fn read(&self) -> parking_lot::RwLockReadGuard<'_, ()> {
        let i = PAUSE_SHARD.with(|i| *i);
        self.0[i].0.read()
    }

    fn write(&self) -> Vec<parking_lot::RwLockWriteGuard<'_, ()>> {
        self.0.iter().map(|p| p.0.write()).collect()
    }
}

impl<J: Journal> std::fmt::Debug for MemoryStore<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("users", &self.users.len())
            .finish()
    }
}

impl MemoryStore<NoJournal> {
    /// A store with no journal.
    pub fn new(config: CoreConfig) -> MemoryStore<NoJournal> {
        MemoryStore::with_journal(config, NoJournal)
    }
}

impl<J: Journal> MemoryStore<J> {
    /// A store that journals its changes. `config` gives the rules' numbers replay needs (the
    /// lockout window).
    pub fn with_journal(config: CoreConfig, journal: J) -> MemoryStore<J> {
        MemoryStore {
            config,
            journal,
            users: Users::new(),
            txns: TxnIndex::new(),
            next_device: AtomicU32::new(1),
            next_share: AtomicU32::new(1),
            ib_owner: DashMap::with_hasher(ahash::RandomState::new()),
            shares: DashMap::with_hasher(ahash::RandomState::new()),
            lock_times: Mutex::new(VecDeque::new()),
            pause: Pause::new(),
        }
    }

    /// The journal.
    pub fn journal(&self) -> &J {
        &self.journal
    }

    fn index(&self, records: &[Record]) {
        for r in records {
            if let Record::Device {
                user,
                id,
                kind: DeviceKind::IbKey,
                ..
            } = r
            {
                self.ib_owner.insert(id.0, user.as_str().into());
            }
        }
    }

    /// Runs `rule` under the user's mutex, commits its records, and writes what `index` makes
    /// of its value to the transaction index before the mutex is released: whoever reads the
    /// user without the transaction the rule spent finds its verdict in the index (an `Await`
    /// reading in between would otherwise know neither, and answer `unknown`).
    fn update_now<T, F, I>(
        &self,
        name: &str,
        create: bool,
        mut rule: F,
        index: I,
    ) -> Result<Option<Committed<T, J::Ticket>>, StoreError>
    where
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T,
        I: Fn(&T) -> Option<IndexOp>,
    {
        self.journal.healthy()?;
        let _paused = self.pause.read();
        let mut records = Vec::new();
        let commit = |records: &Vec<Record>, value: &T| -> Result<Option<J::Ticket>, StoreError> {
            let ticket = if records.is_empty() {
                None
            } else {
                let ticket = self.journal.append(records)?;
                self.index(records);
                Some(ticket)
            };
            match index(value) {
                Some(IndexOp::Bind {
                    txn,
                    device,
                    until_ms,
                }) => self.bind_now(txn, name, device, until_ms),
                Some(IndexOp::Settle {
                    txn,
                    verdict,
                    until_ms,
                }) => self.settle_now(txn, verdict, until_ms),
                None => {}
            }
            Ok(ticket)
        };
        if let Some(entry) = self.users.get(name) {
            let mut u = entry.key().lock();
            let value = rule(&mut u, &mut records);
            let ticket = commit(&records, &value)?;
            return Ok(Some(Committed { value, ticket }));
        }
        if !create {
            return Ok(None);
        }
        match self.users.entry(name) {
            dashmap::Entry::Occupied(e) => {
                let mut u = e.key().lock();
                let value = rule(&mut u, &mut records);
                let ticket = commit(&records, &value)?;
                Ok(Some(Committed { value, ticket }))
            }
            dashmap::Entry::Vacant(v) => {
                // A fresh state, kept only if the rule enrolled it and its records committed.
                let (value, ticket) = {
                    let mut u = v.key().lock();
                    let value = rule(&mut u, &mut records);
                    if !u.is_enrolled() {
                        return Ok(Some(Committed {
                            value,
                            ticket: None,
                        }));
                    }
                    let ticket = commit(&records, &value)?;
                    (value, ticket)
                };
                v.insert(());
                Ok(Some(Committed { value, ticket }))
            }
        }
    }

    fn bind_now(&self, txn: TxnId, user: &str, device: DeviceId, until_ms: u64) {
        self.txns.bind(txn, user, device, until_ms);
    }

    fn settle_now(&self, txn: TxnId, verdict: Verdict, until_ms: u64) {
        self.txns.settle(txn, verdict, until_ms);
    }

    /// Applies a journalled record (start-up replay). Records of unknown users are skipped:
    /// the journal is the only writer, so they cannot occur in a sound journal.
    pub fn apply(&self, record: &Record) {
        match record {
            Record::User { name, .. } => {
                let entry = self.users.get_or_create(name);
                crate::replay::apply(&mut entry.key().lock(), record, &self.config);
            }
            Record::Share { id, .. } => {
                if let Some(s) = Share::from_record(record) {
                    self.next_share
                        .fetch_max(id.saturating_add(1), Ordering::Relaxed);
                    self.shares.insert(*id, s);
                }
            }
            Record::Device { user, id, .. }
            | Record::DeviceState { user, id, .. }
            | Record::Stopped { user, id, .. }
            | Record::Source { user, id, .. }
            | Record::DeviceRemoved { user, id } => {
                self.next_device
                    .fetch_max(id.0.saturating_add(1), Ordering::Relaxed);
                self.apply_to(user, record);
            }
            Record::Failure { user, .. }
            | Record::Reset { user }
            | Record::OptOut { user, .. }
            | Record::Withdrawal { user, .. }
            | Record::WithdrawalTxn { user, .. }
            | Record::WithdrawalReleased { user, .. } => self.apply_to(user, record),
            Record::Decoy { .. } => {}
        }
    }

    fn apply_to(&self, user: &str, record: &Record) {
        if let Some(e) = self.users.get(user) {
            crate::replay::apply(&mut e.key().lock(), record, &self.config);
            self.index(std::slice::from_ref(record));
        }
    }

    /// Runs `rotate` (the journal's rotation) and captures the whole durable state as records
    /// while no update runs, so that the snapshot is the state at the rotation exactly.
    ///
    /// # Errors
    /// `rotate`'s.
    pub fn snapshot<R, E>(
        &self,
        rotate: impl FnOnce() -> Result<R, E>,
    ) -> Result<(R, Vec<Record>), E> {
        let _paused = self.pause.write();
        let r = rotate()?;
        let mut out = Vec::with_capacity(self.users.len() * 2);
        for e in self.users.iter() {
            crate::replay::records(&e.key().lock(), e.key().name(), &mut out);
        }
        for s in self.shares.iter() {
            if s.is_live() {
                out.push(s.record(*s.key()));
            }
        }
        Ok((r, out))
    }
}

impl<J: Journal> Store for MemoryStore<J> {
    type Ticket = J::Ticket;

    fn update<T, F>(
        &self,
        user: &str,
        create: bool,
        rule: F,
    ) -> impl Future<Output = Result<Option<Committed<T, J::Ticket>>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
    {
        ready(self.update_now(user, create, rule, |_| None))
    }

    fn update_indexed<T, F, I>(
        &self,
        user: &str,
        create: bool,
        rule: F,
        index: I,
    ) -> impl Future<Output = Result<Option<Committed<T, J::Ticket>>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
        I: Fn(&T) -> Option<IndexOp> + Send + Sync,
    {
        ready(self.update_now(user, create, rule, index))
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
        ready(Ok(self.users.get(user).map(|e| read(&e.key().lock()))))
    }

    fn durable(&self, ticket: J::Ticket) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.journal.durable(ticket)
    }

    fn fence(
        &self,
        _user: &str,
    ) -> impl Future<Output = Result<Option<J::Ticket>, StoreError>> + Send {
        ready(Ok(self.journal.appended()))
    }

    fn decoy(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Option<J::Ticket>, StoreError>> + Send {
        let decoy = Record::Decoy {
            filler: "-".repeat(user.len()),
        };
        ready(
            self.journal
                .healthy()
                .and_then(|()| self.journal.append(&[decoy]))
                .map(Some),
        )
    }

    fn txn_get(
        &self,
        txn: TxnId,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<TxnEntry>, StoreError>> + Send {
        ready(Ok(self.txns.get(txn, now_ms)))
    }

    fn txn_bind(
        &self,
        txn: TxnId,
        user: &str,
        device: DeviceId,
        until_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.bind_now(txn, user, device, until_ms);
        ready(Ok(()))
    }

    fn txn_settle(
        &self,
        txn: TxnId,
        verdict: Verdict,
        until_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.settle_now(txn, verdict, until_ms);
        ready(Ok(()))
    }

    fn open_txns(&self) -> usize {
        self.txns.open()
    }

    fn sweep(&self, now_ms: u64) -> usize {
        // The users of challenges abandoned open: their state still holds them.
        let mut abandoned: Vec<UserName> = Vec::new();
        let removed = self.txns.sweep(now_ms, |user| abandoned.push(user));
        for name in abandoned {
            if let Some(e) = self.users.get(&name) {
                let mut u = e.key().lock();
                crate::txn::prune(&mut u, now_ms, &self.config);
                if u.txns.is_empty() {
                    // Give the memory back: this user may not log in again for a long time.
                    u.txns = Vec::new();
                }
            }
        }
        removed
    }

    fn next_id(&self, seq: Sequence) -> impl Future<Output = Result<u32, StoreError>> + Send {
        let counter = match seq {
            Sequence::Device => &self.next_device,
            Sequence::Share => &self.next_share,
        };
        let id = counter.fetch_add(1, Ordering::Relaxed);
        ready(if id == u32::MAX {
            Err(StoreError::Unavailable(
                format!("{seq:?} ids exhausted").into(),
            ))
        } else {
            Ok(id)
        })
    }

    fn device_owner(
        &self,
        device: DeviceId,
    ) -> impl Future<Output = Result<Option<Arc<str>>, StoreError>> + Send {
        ready(Ok(self.ib_owner.get(&device.0).map(|o| o.clone())))
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
        let end = after.saturating_add(SHARE_SCAN);
        let mut shares: Vec<(u32, Share)> = self
            .shares
            .iter()
            .filter(|s| *s.key() > after && *s.key() <= end && s.is_live() && keep(s.value()))
            .map(|s| (*s.key(), s.value().clone()))
            .collect();
        shares.sort_unstable_by_key(|(id, _)| *id);
        let last = self.next_share.load(Ordering::Relaxed).saturating_sub(1);
        let next = if shares.len() > max {
            shares.truncate(max);
            shares.last().map(|(id, _)| *id)
        } else {
            (end < last).then_some(end)
        };
        ready(Ok(SharePage { shares, next }))
    }

    fn update_share<T, F>(
        &self,
        id: u32,
        mut change: F,
    ) -> impl Future<Output = Result<Committed<T, J::Ticket>, StoreError>> + Send
    where
        T: Send,
        F: FnMut(&mut Option<Share>, &mut Vec<Record>) -> T + Send,
    {
        let result = (|| {
            self.journal.healthy()?;
            let _paused = self.pause.read();
            let mut records = Vec::new();
            let value = match self.shares.entry(id) {
                dashmap::Entry::Occupied(mut e) => {
                    let mut s = Some(e.get().clone());
                    let value = change(&mut s, &mut records);
                    match s {
                        Some(s) => *e.get_mut() = s,
                        None => {
                            e.remove();
                        }
                    }
                    value
                }
                dashmap::Entry::Vacant(v) => {
                    let mut s = None;
                    let value = change(&mut s, &mut records);
                    if let Some(s) = s {
                        v.insert(s);
                    }
                    value
                }
            };
            let ticket = if records.is_empty() {
                None
            } else {
                Some(self.journal.append(&records)?)
            };
            Ok(Committed { value, ticket })
        })();
        ready(result)
    }

    fn primary_of(
        &self,
        entity: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        ready(Ok(self.users.iter().find_map(|e| {
            let u = e.key().lock();
            (u.primary && !entity.is_empty() && u.entity() == entity)
                .then(|| e.key().name().to_string())
        })))
    }

    fn note_lockout(
        &self,
        at_ms: u64,
        window_ms: u64,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        let mut times = self.lock_times.lock();
        times.push_back(at_ms);
        ready(Ok(crate::lockout::recent_lockouts(
            &mut times, at_ms, window_ms,
        )))
    }

    fn recent_lockouts(&self, now_ms: u64, window_ms: u64) -> usize {
        crate::lockout::recent_lockouts(&mut self.lock_times.lock(), now_ms, window_ms)
    }

    fn user_count(&self) -> usize {
        self.users.len()
    }
}
