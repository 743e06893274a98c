//! The rule suite's harness: a [`Rig`] drives a [`Core`] over the store of a [`Kind`] with a
//! fake clock and a seeded random source, and blocks on the core's futures (a store's futures
//! resolve without a runtime for the embedded store; [`Kind::block_on`] is the hook for a store that needs one). Every rule test is generic over the
//! kind, so a new store runs the very same suite by adding its kind to `main.rs`.

use std::sync::Arc;

use parking_lot::Mutex;
use sls_engine::*;
use sls_protocol::*;

/// A store the suite runs against.
pub trait Kind: 'static {
    /// The store.
    type S: Store;
    /// A new, empty store; `clock` is the core's.
    fn store(config: &CoreConfig, clock: &FakeClock) -> Self::S;
    /// The records committed since the last call (for the tests that check what is made
    /// durable).
    fn take_records(store: &Self::S) -> Vec<Record>;
    /// Drives one of the core's futures to completion on this thread. The embedded store's
    /// futures are ready at once; a networked store's need its runtime.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        pollster::block_on(f)
    }
}

/// A journal that keeps what it is given, for the tests to read.
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Vec<Record>>);

impl Journal for Recorder {
    type Ticket = u64;
    fn healthy(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn append(&self, records: &[Record]) -> Result<u64, StoreError> {
        let mut all = self.0.lock();
        all.extend_from_slice(records);
        Ok(all.len() as u64)
    }
    fn durable(&self, _: u64) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        std::future::ready(Ok(()))
    }
}

/// The embedded store (memory + journal).
pub struct Embedded;

impl Kind for Embedded {
    type S = MemoryStore<Recorder>;
    fn store(config: &CoreConfig, _: &FakeClock) -> Self::S {
        MemoryStore::with_journal(config.clone(), Recorder::default())
    }
    fn take_records(store: &Self::S) -> Vec<Record> {
        std::mem::take(&mut *store.journal().0.lock())
    }
}

/// A result and the records it committed.
#[derive(Debug)]
pub struct Out<T> {
    pub value: T,
    pub records: Vec<Record>,
    /// Whether the answer waits for a write to be durable before it leaves.
    pub waits: bool,
}

/// The core under test.
pub struct Rig<K: Kind> {
    pub core: Core<K::S>,
}

impl<K: Kind> Clone for Rig<K> {
    fn clone(&self) -> Self {
        Rig {
            core: self.core.clone(),
        }
    }
}

fn core_err(e: Error) -> CoreError {
    match e {
        Error::Core(e) => e,
        Error::Store(e) => panic!("the store failed: {e}"),
    }
}

impl<K: Kind> Rig<K> {
    /// A core with `config`, `clock` and a fixed seed.
    pub fn new(config: CoreConfig, clock: &FakeClock) -> Rig<K> {
        let store = K::store(&config, clock);
        Rig {
            core: Core::new(
                config,
                store,
                Arc::new(clock.clone()),
                Arc::new(SeededEntropy::new(0x5151)),
            ),
        }
    }

    fn out<T, Tk>(&self, o: Outcome<T, Tk>) -> Out<T> {
        Out {
            waits: o.ticket.is_some(),
            value: o.value,
            records: K::take_records(self.core.store()),
        }
    }

    fn res<T, Tk>(&self, r: Result<Outcome<T, Tk>, Error>) -> Result<Out<T>, CoreError> {
        match r {
            Ok(o) => Ok(self.out(o)),
            Err(e) => Err(core_err(e)),
        }
    }

    pub fn config(&self) -> &CoreConfig {
        self.core.config()
    }
    pub fn counters(&self) -> &Counters {
        self.core.counters()
    }
    pub fn mass_lockout(&self) -> (usize, bool) {
        self.core.mass_lockout()
    }
    pub fn open_txns(&self) -> usize {
        self.core.open_txns()
    }
    pub fn sweep(&self) -> usize {
        self.core.sweep()
    }
    pub fn begin(
        &self,
        req: &BeginRequest<'_>,
        ready: bool,
    ) -> Result<Out<BeginResult>, CoreError> {
        self.res(K::block_on(self.core.begin(req, ready)))
    }
    pub fn answer(&self, txn: TxnId, response: &str, client: std::net::IpAddr) -> Out<Verdict> {
        let o = K::block_on(self.core.answer(txn, response, client)).expect("store");
        self.out(o)
    }
    pub fn password_failed(
        &self,
        user: &str,
        client: std::net::IpAddr,
    ) -> Result<Out<Verdict>, CoreError> {
        self.res(K::block_on(self.core.password_failed(user, client)))
    }
    pub fn status(&self, user: &str) -> Result<UserStatus, CoreError> {
        K::block_on(self.core.status(user)).map_err(core_err)
    }
    pub fn device_authenticate(&self, device: DeviceId, nonce: &[u8; 32], proof: &[u8]) -> bool {
        K::block_on(self.core.device_authenticate(device, nonce, proof)).expect("store")
    }
    pub fn push_answer(
        &self,
        device: DeviceId,
        txn: TxnId,
        approve: bool,
        method: ApprovalMethod,
        number: u8,
        mac: &[u8],
    ) -> Out<Verdict> {
        let o = K::block_on(
            self.core
                .push_answer(device, txn, approve, method, number, mac),
        )
        .expect("store");
        self.out(o)
    }
    pub fn txn_verdict(&self, txn: TxnId) -> Verdict {
        K::block_on(self.core.txn_verdict(txn)).expect("store")
    }
    pub fn enrol_user(&self, spec: &UserSpec) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.enrol_user(spec)))
    }
    pub fn enrol_device(&self, user: &str, spec: &DeviceSpec) -> Result<Out<DeviceId>, CoreError> {
        self.res(K::block_on(self.core.enrol_device(user, spec)))
    }
    pub fn enrol_bulk(&self, records: &[BulkRecord]) -> Out<Vec<Result<DeviceId, CoreError>>> {
        let o = K::block_on(self.core.enrol_bulk(records)).expect("store");
        self.out(o)
    }
    pub fn issue_temp_code(
        &self,
        user: &str,
    ) -> Result<Out<(DeviceId, String, u64, u64)>, CoreError> {
        self.res(K::block_on(self.core.issue_temp_code(user)))
    }
    pub fn issue_online_scc(&self, user: &str) -> Result<Out<(DeviceId, Vec<u8>, u64)>, CoreError> {
        self.res(K::block_on(self.core.issue_online_scc(user)))
    }
    pub fn reactivate(&self, user: &str, device: DeviceId) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.reactivate(user, device)))
    }
    pub fn order_replacement(
        &self,
        user: &str,
        secret: &[u8],
        pin: &str,
    ) -> Result<Out<DeviceId>, CoreError> {
        self.res(K::block_on(self.core.order_replacement(user, secret, pin)))
    }
    pub fn ship(&self, user: &str, device: DeviceId) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.ship(user, device)))
    }
    pub fn activate(&self, user: &str, device: DeviceId) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.activate(user, device)))
    }
    pub fn activation_notice(
        &self,
        user: &str,
        device: DeviceId,
    ) -> Result<ActivationNotice, CoreError> {
        K::block_on(self.core.activation_notice(user, device)).map_err(core_err)
    }
    pub fn opt_out(&self, user: &str) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.opt_out(user)))
    }
    pub fn opt_in(&self, user: &str, by: &str) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.opt_in(user, by)))
    }
    pub fn unlock(&self, user: &str) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.unlock(user)))
    }
    pub fn activation_start(&self, user: &str, phone: &str) -> Result<Out<String>, CoreError> {
        self.res(K::block_on(self.core.activation_start(user, phone)))
    }
    pub fn activate_ib_key(
        &self,
        user: &str,
        token: &str,
        key: &[u8],
        pin: &str,
    ) -> Result<Out<DeviceId>, CoreError> {
        self.res(K::block_on(
            self.core.activate_ib_key(user, token, key, pin),
        ))
    }
    pub fn share_request(
        &self,
        requester: &str,
        owner: &str,
        device: DeviceId,
        txn: TxnId,
        answer: &str,
        client: std::net::IpAddr,
    ) -> Result<Out<ShareResult>, CoreError> {
        self.res(K::block_on(
            self.core
                .share_request(requester, owner, device, txn, answer, client),
        ))
    }
    pub fn share_decide(&self, id: u32, approve: bool) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.share_decide(id, approve)))
    }
    pub fn share_cancel(&self, id: u32) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.share_cancel(id)))
    }
    pub fn revoke_device(
        &self,
        user: &str,
        device: DeviceId,
        suspend: bool,
        reason: u8,
    ) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(
            self.core.revoke_device(user, device, suspend, reason),
        ))
    }
    pub fn resume_device(&self, user: &str, device: DeviceId) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.resume_device(user, device)))
    }
    pub fn remove_device(&self, user: &str, device: DeviceId) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.remove_device(user, device)))
    }
    pub fn opt_in_override(&self, user: &str) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.opt_in_override(user)))
    }
    pub fn release_withdrawal(&self, user: &str, txn: TxnId) -> Result<Out<()>, CoreError> {
        self.res(K::block_on(self.core.release_withdrawal(user, txn)))
    }
}

impl Rig<Embedded> {
    /// The embedded store's whole state as records (a snapshot).
    pub fn snapshot_records(&self) -> Vec<Record> {
        let (_, records) = self
            .core
            .store()
            .snapshot(|| Ok::<(), ()>(()))
            .expect("no rotation to fail");
        records
    }
    /// Replays one record into the embedded store.
    pub fn apply(&self, record: &Record) {
        self.core.store().apply(record);
    }
}
