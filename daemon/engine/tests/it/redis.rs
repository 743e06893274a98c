//! The rule suite on the cluster store: a real 6-node Redis Cluster (3 masters, 3 replicas)
//! started on free ports by `scripts/redis-cluster.sh` for the one test that runs every rule,
//! and stopped by pid when that test ends, whatever happened. Each rule test gets its own key
//! prefix, so none sees another's keys.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use sls_engine::*;
use sls_loadgen::redis_cluster::RedisCluster;
use sls_protocol::{DeviceId, TxnId, Verdict};
use sls_redis::{RedisConfig, RedisStore, SealKey, Ticket};

use crate::harness::Kind;

/// The cluster store, with the records of every committed change kept for the tests to read
/// (the store itself keeps none: the records of the run that was committed, as a journal
/// would have been given them).
pub struct Tapped {
    pub inner: RedisStore,
    records: Mutex<Vec<Record>>,
}

/// The cluster store's kind.
pub struct Redis;

/// `rule`, noting in `last` the records of its last run (the one a store commits).
fn tapping<'a, T>(
    mut rule: impl FnMut(&mut UserState, &mut Vec<Record>) -> T + Send + 'a,
    last: &'a Mutex<Vec<Record>>,
) -> impl FnMut(&mut UserState, &mut Vec<Record>) -> T + Send + 'a {
    move |u, r| {
        let v = rule(u, r);
        *last.lock() = r.clone();
        v
    }
}

impl Tapped {
    /// Keeps the records of a change that was committed durably.
    fn keep<T>(&self, last: Mutex<Vec<Record>>, committed: Option<&Committed<T, Ticket>>) {
        if committed.is_some_and(|c| c.ticket.is_some()) {
            self.records.lock().extend(last.into_inner());
        }
    }
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// The seed nodes of the running cluster.
pub static NODES: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// A key prefix no other store of this run uses.
pub fn fresh_prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "t{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_007
    )
}

/// The seal key of every store of this run (each node of one prefix must have the same).
pub fn test_seal_key() -> SealKey {
    static KEY: OnceLock<SealKey> = OnceLock::new();
    KEY.get_or_init(SealKey::generate).clone()
}

/// A store on the running cluster under `prefix`, on `clock`, waiting for `wait_replicas`.
pub fn tapped(prefix: &str, clock: &FakeClock, wait_replicas: usize) -> Tapped {
    tapped_with(prefix, clock, wait_replicas, test_seal_key())
}

/// [`tapped`], with values sealed under `seal`.
pub fn tapped_with(prefix: &str, clock: &FakeClock, wait_replicas: usize, seal: SealKey) -> Tapped {
    let mut config = RedisConfig::new(NODES.lock().clone(), prefix, seal);
    config.clock = Arc::new(clock.clone());
    config.wait_replicas = wait_replicas;
    let inner = runtime()
        .block_on(RedisStore::connect(config))
        .expect("the test cluster is up");
    Tapped {
        inner,
        records: Mutex::new(Vec::new()),
    }
}

impl Kind for Redis {
    type S = Tapped;
    fn store(_: &CoreConfig, clock: &FakeClock) -> Tapped {
        tapped(&fresh_prefix(), clock, 0)
    }
    fn take_records(store: &Tapped) -> Vec<Record> {
        std::mem::take(&mut *store.records.lock())
    }
    fn block_on<F: Future>(f: F) -> F::Output {
        runtime().handle().block_on(f)
    }
}

impl Store for Tapped {
    type Ticket = Ticket;

    fn join_tickets(&self, a: Ticket, b: Ticket) -> Ticket {
        self.inner.join_tickets(a, b)
    }

    async fn update<T, F>(
        &self,
        user: &str,
        create: bool,
        rule: F,
    ) -> Result<Option<Committed<T, Ticket>>, StoreError>
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
    {
        self.update_indexed(user, create, rule, |_| None).await
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
        let last = Mutex::new(Vec::new());
        let out = self
            .inner
            .update_indexed(user, create, tapping(rule, &last), index)
            .await?;
        self.keep(last, out.as_ref());
        Ok(out)
    }

    fn keeps_user_limit(&self) -> bool {
        self.inner.keeps_user_limit()
    }

    async fn update_limited<T, F, I>(
        &self,
        user: &str,
        create: bool,
        token: TokenAsk,
        rule: F,
        index: I,
    ) -> Result<LimitedUpdate<T, Ticket>, StoreError>
    where
        T: Send,
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T + Send,
        I: Fn(&T) -> Option<IndexOp> + Send + Sync,
    {
        let last = Mutex::new(Vec::new());
        let out = self
            .inner
            .update_limited(user, create, token, tapping(rule, &last), index)
            .await?;
        if let Limited::Passed(c) = &out {
            self.keep(last, c.as_ref());
        }
        Ok(out)
    }

    fn txn_slot(&self, user: &str) -> Option<u16> {
        self.inner.txn_slot(user)
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
        self.inner.read(user, read)
    }

    fn durable(&self, ticket: Ticket) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.durable(ticket)
    }

    // A default method not forwarded would silently test the default instead of the store.
    fn fence(&self, user: &str) -> impl Future<Output = Result<Option<Ticket>, StoreError>> + Send {
        self.inner.fence(user)
    }

    fn decoy(&self, user: &str) -> impl Future<Output = Result<Option<Ticket>, StoreError>> + Send {
        self.inner.decoy(user)
    }

    fn txn_get(
        &self,
        txn: TxnId,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<TxnEntry>, StoreError>> + Send {
        self.inner.txn_get(txn, now_ms)
    }

    fn txn_to_answer(
        &self,
        txn: TxnId,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<TxnEntry>, StoreError>> + Send {
        self.inner.txn_to_answer(txn, now_ms)
    }

    fn txn_bind(
        &self,
        txn: TxnId,
        user: &str,
        device: DeviceId,
        until_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.txn_bind(txn, user, device, until_ms)
    }

    fn txn_settle(
        &self,
        txn: TxnId,
        verdict: Verdict,
        until_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.txn_settle(txn, verdict, until_ms)
    }

    fn open_txns(&self) -> usize {
        self.inner.open_txns()
    }

    fn sweep(&self, now_ms: u64) -> usize {
        self.inner.sweep(now_ms)
    }

    fn next_id(&self, seq: Sequence) -> impl Future<Output = Result<u32, StoreError>> + Send {
        self.inner.next_id(seq)
    }

    fn device_owner(
        &self,
        device: DeviceId,
    ) -> impl Future<Output = Result<Option<Arc<str>>, StoreError>> + Send {
        self.inner.device_owner(device)
    }

    async fn update_share<T, F>(
        &self,
        id: u32,
        mut change: F,
    ) -> Result<Committed<T, Ticket>, StoreError>
    where
        T: Send,
        F: FnMut(&mut Option<Share>, &mut Vec<Record>) -> T + Send,
    {
        let last = Mutex::new(Vec::new());
        let out = self
            .inner
            .update_share(id, |s, r| {
                let v = change(s, r);
                *last.lock() = r.clone();
                v
            })
            .await?;
        if out.ticket.is_some() {
            self.records.lock().extend(last.into_inner());
        }
        Ok(out)
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
        self.inner.list_shares(after, max, keep)
    }

    fn primary_of(
        &self,
        entity: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        self.inner.primary_of(entity)
    }

    fn note_lockout(
        &self,
        at_ms: u64,
        window_ms: u64,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        self.inner.note_lockout(at_ms, window_ms)
    }

    fn recent_lockouts(&self, now_ms: u64, window_ms: u64) -> usize {
        self.inner.recent_lockouts(now_ms, window_ms)
    }

    fn user_count(&self) -> usize {
        self.inner.user_count()
    }
}

/// The running cluster (the one harness's, `sls_loadgen::redis_cluster`), while it runs.
static CLUSTER: Mutex<Option<RedisCluster>> = Mutex::new(None);

/// The guard of the one test that runs on a cluster: stops it when dropped.
pub struct Cluster;

impl Cluster {
    pub fn start() -> Cluster {
        let cluster = RedisCluster::start().expect("the test cluster starts");
        *NODES.lock() = cluster.nodes();
        *CLUSTER.lock() = Some(cluster);
        Cluster
    }
}

/// Runs `f` on the running cluster (to crash and restart its nodes).
pub fn with_cluster<T>(f: impl FnOnce(&RedisCluster) -> T) -> T {
    f(CLUSTER.lock().as_ref().expect("the test cluster runs"))
}

/// Stops the running cluster now (its guard then finds nothing left to stop).
pub fn stop_cluster() {
    drop(CLUSTER.lock().take());
}

impl Drop for Cluster {
    fn drop(&mut self) {
        stop_cluster();
    }
}

/// Runs one rule test; `Err` with its panic message if it failed.
pub fn run(name: &str, test: fn()) -> Result<Duration, String> {
    let start = std::time::Instant::now();
    std::panic::catch_unwind(test)
        .map(|()| start.elapsed())
        .map_err(|e| {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            format!("{name}: {msg}")
        })
}
