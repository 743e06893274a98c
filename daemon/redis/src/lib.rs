//! The cluster store: [`sls_engine::Store`] on Redis Cluster (7.x; Valkey speaks the same
//! protocol), so that several slsd nodes share every user's state and the rules stay exact
//! across them. The rules are the core's, run here on a copy of the user's state.
//!
//! **One user = one key** (`{P:u:<name>}`, see [`keys`] for the whole layout): a hash
//! of a write count, the user's encoded state ([`sls_core::codec`]) and the id of the write
//! that set it. An update runs the rule on a copy of the state and writes it back with a
//! compare-and-set on that write id in a short Lua script ([`keys::CAS`]); if another node
//! wrote in between, the script refuses and answers with the value as it is now, and the rule
//! runs again on that (up to [`RedisConfig::max_tries`], then [`StoreError::Unavailable`]). A
//! rule that changed nothing writes nothing. Updates of one user from this node are also
//! serialised by a local lock of that user's own (not a stripe shared with other users: a
//! frozen master's user would hold up the users of other shards who share it), so the
//! compare-and-set only ever conflicts across nodes.
//!
//! **Where an update starts** (`update.rs`, `read.rs`): from the value this node last read or
//! wrote of the user, when it keeps one ([`RedisConfig::cache_users`]), else from a read
//! (`HMGET`). A cached value is a guess the compare-and-set proves; a rule that would write
//! nothing from a guess reads and runs again, so nothing is decided on a stale value. An
//! answer takes the transaction from what this node bound ([`sls_engine::Store::txn_to_answer`]),
//! else reads it with its user in one round trip ([`keys::TXN_AND_USER`]: the transaction
//! lives in its user's slot). A login whose user's requests reach one node is two round trips:
//! the `begin`'s write and the answer's.
//!
//! **What crosses users**: a key per transaction id with `PX` expiry (its absolute deadline is
//! kept too and checked against the caller's `now`, as the embedded store does), an `INCR`
//! counter per id sequence, a key per IB Key device and per entity's primary user (written
//! after the commit that recorded them), a key per sharing request with the same
//! compare-and-set, a sorted set of lockout times.
//!
//! **Not atomic with a user's commit** (each is another slot): the IB Key owner and primary
//! keys and the user counter are written right after the compare-and-set that committed the
//! records behind them. If Redis fails in between, the request is refused (an error) though
//! the user's change stands; the index is then missing until that record is written again.
//! A transaction id is bound after the `begin` that opened it: a failure in between leaves an
//! open challenge nobody can answer, pruned from the user's state by a later update.
//!
//! **Local gauges** (the trait's synchronous methods cannot ask Redis): [`Store::open_txns`]
//! counts the transactions this node bound and has not yet seen expire ([`Store::sweep`]
//! forgets them locally; Redis expires the keys itself); [`Store::recent_lockouts`] counts the
//! lockout times the last [`Store::note_lockout`] of this node brought back, and this node's
//! own since (the set's write does not hold up the answer that locked: `store.rs`); and
//! [`Store::user_count`] is the cluster's creation counter as this node last saw it. All three
//! are per node, approximate across nodes.
//!
//! **Durability** (`durable.rs`): a ticket is a local sequence number and the slot of its
//! write, handed out once the master has answered the write. With
//! [`RedisConfig::wait_replicas`] `> 0`, [`Store::durable`] waits for a `WAIT n timeout`
//! round of the master of the ticket's slot (of each slot's master, for a ticket that joined
//! several), begun after the ticket: each master has its own rounds, one at a time, each
//! covering every write before it (group commit per shard). It refuses
//! ([`StoreError::Unavailable`]) unless that master, serving the slot by its own `CLUSTER
//! SLOTS` then, acknowledged `n` replicas: the change then stands in Redis but its answer is
//! never given as if recorded. A shard that lost its replica, or whose master is frozen,
//! refuses or holds up its own users' changes only; the other shards' rounds go on.
//! With 0,
//! the masters' AOF (`appendfsync always`) is the durability, and a failover can lose the last
//! changes that had not reached the replica.
//!
//! **The per-user rate limit** is kept here too, so that it is exact across nodes: GCRA in
//! Lua on a key in the user's slot, taken in the same script as the request's read or write of
//! its user ([`Store::update_limited`], `limit.rs`): no round trip of its own. The per-address
//! and node-wide limits stay per node.
//!
//! **Secrets at rest** ([`seal`]): a user's state holds their devices' secrets, so every
//! versioned value (user states, sharing requests) is sealed with AES-256-GCM under the
//! [`SealKey`] of [`RedisConfig::seal`], bound to its Redis key. The other keys hold names,
//! ids and times, nothing secret.
//!
//! **Failure**: any Redis error, an unreachable cluster or a damaged value (one that does not
//! open under the seal key) is a [`StoreError`]; never a panic, never an answer as if recorded
//! (fail closed), never a value read as plain.

mod audit;
pub mod bus;
mod durable;
pub mod health;
pub mod keys;
mod limit;
mod read;
mod rounds;
pub mod seal;
mod slots;
mod store;
mod txn;
mod update;
mod written_on;

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::Script;
#[cfg(doc)]
use sls_engine::Store;
use sls_engine::{Clock, StoreError, SystemClock};

pub use crate::durable::Ticket;
use crate::keys::Keys;
use crate::seal::Sealer;
pub use crate::seal::{SealKey, SealKeyError};

/// How to reach the cluster and how the store behaves.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Seed nodes, `redis://host:port` each.
    pub nodes: Vec<String>,
    /// Put before every key (a deployment's namespace; tests use a random one).
    pub prefix: String,
    /// Replicas each master must acknowledge before a ticket is durable (`WAIT`); 0: none.
    pub wait_replicas: usize,
    /// How long `WAIT` may take.
    pub wait_timeout: Duration,
    /// Compare-and-set attempts of one update before it is refused as unavailable.
    pub max_tries: u32,
    /// How long a command may wait for its reply, retries and redirects included (slsd's
    /// `--redis-response-timeout`): a request to a master that does not answer is refused
    /// after it. At least `wait_timeout` and a little more is used (a `WAIT`'s reply).
    pub io_timeout: Duration,
    /// How long connecting to a node may take.
    pub connect_timeout: Duration,
    /// The clock the transaction keys' time to live is computed with (the core's).
    pub clock: Arc<dyn Clock>,
    /// The key every value that holds secrets is sealed with; every node sharing the prefix
    /// must be given the same.
    pub seal: SealKey,
    /// Users whose last known value this node keeps, to start their next update from
    /// (`read.rs`; about 300 bytes each); 0: every update reads first.
    pub cache_users: usize,
}

impl RedisConfig {
    /// Defaults for `nodes` under `prefix`, values sealed with `seal`: no replica wait (500 ms
    /// when asked for), 64 tries, 2 s to connect and for a reply, [`RedisConfig::CACHE_USERS`] users cached.
    pub fn new(nodes: Vec<String>, prefix: impl Into<String>, seal: SealKey) -> RedisConfig {
        RedisConfig {
            nodes,
            prefix: prefix.into(),
            seal,
            wait_replicas: 0,
            wait_timeout: Duration::from_millis(500),
            max_tries: 64,
            io_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            clock: Arc::new(SystemClock),
            cache_users: RedisConfig::CACHE_USERS,
        }
    }

    /// The default of [`RedisConfig::cache_users`]: about 30 MB.
    pub const CACHE_USERS: usize = 100_000;
}

/// Scripts, loaded once per store (`EVALSHA`, `EVAL` on a miss).
struct Scripts {
    cas: Script,
    bind: Script,
    settle: Script,
    txn_and_user: Script,
    note_lockout: Script,
    take_user_token: Script,
    read_limited: Script,
}

/// The cluster store. See the crate docs.
pub struct RedisStore {
    /// Made at connect, on the runtime that connected; what [`RedisStore::conn`] gives until a
    /// runtime makes its own the home ([`RedisStore::home_here`]), and again after it leaves.
    conn: ClusterConnection,
    /// The connection made on the runtime that serves the requests, when one did (or the
    /// watchdog's, `health.rs`); shared with the bus, whose publishes follow it.
    home: Arc<parking_lot::RwLock<Option<ClusterConnection>>>,
    /// The `WAIT` rounds' own connection (made at connect; the home runtime's, once it made
    /// one): a `WAIT` blocks the connection it is sent on, and on the requests' connection it
    /// held up every write to that master for the whole round ([`durable`]).
    round_conn: ClusterConnection,
    round_home: parking_lot::RwLock<Option<ClusterConnection>>,
    /// Makes the home connection.
    client: ClusterClient,
    keys: Keys,
    config: RedisConfig,
    scripts: Scripts,
    /// Seals and opens the versioned values (its nonce prefix is drawn at each start).
    sealer: Sealer,
    /// Local serialisation of one user's updates: a lock per user (`update.rs`).
    updating: Mutex<update::Updating>,
    /// The place of the last ticket handed out ([`durable`]).
    tickets: AtomicU64,
    /// The `WAIT` rounds: the slot map, each master's rounds, the joined tickets.
    shards: durable::Shards,
    /// The users' values this node last read or wrote: where an update starts (`update.rs`).
    cache: read::UserCache,
    /// Transactions bound by this node, by id (the `open_txns` gauge; an answer's entry).
    bound: Mutex<std::collections::HashMap<u128, txn::Bound>>,
    /// Lockout times as the last `note_lockout` saw them, and this node's since (`store.rs`).
    lockouts: Arc<Mutex<std::collections::VecDeque<u64>>>,
    /// Users created, as last seen.
    users: AtomicUsize,
    /// Makes this node's lockout members unique.
    nonce: u64,
    noted: AtomicU64,
    /// Makes this node's compare-and-set write ids unique (with `nonce`).
    writes: AtomicU64,
    /// Compare-and-sets lost to another node.
    conflicts: AtomicU64,
    /// Commands sent, by what for ([`Command`]; each [`RedisStore::conn`] is one).
    sent: [AtomicU64; Command::ALL.len()],
    /// Compare-and-sets refused because the cache's guess was stale.
    stale: AtomicU64,
    /// What the probes found (`health.rs`): readiness, and the watchdog's rebuilds.
    health: Mutex<health::Health>,
}

/// What a command this store sent to the cluster was for (see [`RedisStore::commands`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// A versioned value's read (`HMGET`: a user, a share).
    Read,
    /// A transaction's read with its user's value ([`keys::TXN_AND_USER`]).
    TxnRead,
    /// A compare-and-set of a value alone ([`keys::CAS`]).
    Cas,
    /// A compare-and-set with its new transaction's entry (a `begin`).
    CasBind,
    /// A compare-and-set with its spent transaction's verdict (an answer).
    CasSettle,
    /// A `WAIT` round of one master (a mark, `CLUSTER MYID`, `CLUSTER SLOTS` and `WAIT` in
    /// one pipeline on the rounds' own connection).
    Wait,
    /// A per-user rate-limit token alone ([`keys::TAKE_USER_TOKEN`]); a token taken with a
    /// read or a compare-and-set counts as that.
    Token,
    /// Anything else: a transaction's entry written apart, the indexes, ids, lockouts,
    /// fences.
    Other,
}

impl Command {
    /// Every kind, in the order of [`RedisStore::commands`].
    pub const ALL: [Command; 8] = [
        Command::Read,
        Command::TxnRead,
        Command::Cas,
        Command::CasBind,
        Command::CasSettle,
        Command::Wait,
        Command::Token,
        Command::Other,
    ];

    /// Its name, as a metric's label.
    pub fn name(self) -> &'static str {
        match self {
            Command::Read => "read",
            Command::TxnRead => "txn_read",
            Command::Cas => "cas",
            Command::CasBind => "cas_bind",
            Command::CasSettle => "cas_settle",
            Command::Wait => "wait",
            Command::Token => "token",
            Command::Other => "other",
        }
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("nodes", &self.config.nodes)
            .field("prefix", &self.config.prefix)
            .finish()
    }
}

pub(crate) fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(sls_engine::Cause::of("redis", e))
}

/// A cluster client of `config`'s settings that starts from `nodes` (`redis://host:port`).
pub(crate) fn cluster_client(
    config: &RedisConfig,
    nodes: Vec<String>,
) -> Result<ClusterClient, StoreError> {
    ClusterClientBuilder::new(nodes)
        // Small requests, pipelined from many tasks: without TCP_NODELAY, Nagle's
        // algorithm holds each behind the server's delayed ACK (~40 ms a round trip).
        .tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true))
        .connection_timeout(config.connect_timeout)
        // A WAIT may take its whole timeout: the reply timeout must outlast it.
        .response_timeout(
            config.io_timeout.max(
                config
                    .wait_timeout
                    .saturating_add(Duration::from_millis(100)),
            ),
        )
        .retries(3)
        .build()
        .map_err(unavailable)
}

impl RedisStore {
    /// Connects to the cluster, and checks that this node's seal key is the one the cluster's
    /// values are sealed with (the first node to connect under a prefix leaves a sealed check
    /// value; every later one must open it), so that a node given the wrong key refuses to
    /// start instead of failing every user later.
    ///
    /// # Errors
    /// A bad node address, or no node answered ([`StoreError::Unavailable`]); another seal key
    /// ([`StoreError::Damaged`]).
    pub async fn connect(config: RedisConfig) -> Result<RedisStore, StoreError> {
        let store = RedisStore::connect_unchecked(config).await?;
        store.check_seal_key().await?;
        Ok(store)
    }

    /// The connection commands go out on: the home one when a runtime made it, else the one
    /// made at connect. A cheap handle (the connection's tasks run where it was made). Taken
    /// once per command (or pipeline, or script) `what` is for: [`RedisStore::commands`]
    /// counts them.
    fn conn(&self, what: Command) -> ClusterConnection {
        self.sent[what as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.handle()
    }

    /// The connection handle [`RedisStore::conn`] gives, counting nothing (the probes').
    fn handle(&self) -> ClusterConnection {
        match &*self.home.read() {
            Some(home) => home.clone(),
            None => self.conn.clone(),
        }
    }

    /// Makes a connection on the runtime this is called from and sends every later command
    /// through it: the connection's tasks (routing, the socket to each master) then run on
    /// that runtime. slsd calls it on the thread that serves the requests, before it accepts
    /// any: a request's round trips then wake no other thread. The `WAIT` rounds get a
    /// connection of their own there too.
    ///
    /// # Errors
    /// No node answered; the connection made at connect stays in use.
    pub async fn home_here(&self) -> Result<(), StoreError> {
        let conn = self
            .client
            .get_async_connection()
            .await
            .map_err(unavailable)?;
        let rounds = self
            .client
            .get_async_connection()
            .await
            .map_err(unavailable)?;
        *self.home.write() = Some(conn);
        *self.round_home.write() = Some(rounds);
        Ok(())
    }

    /// Back to the connections made at connect: the home runtime is ending, and its tasks with
    /// it. Called once the requests are drained.
    pub fn leave_home(&self) {
        *self.home.write() = None;
        *self.round_home.write() = None;
    }

    /// The connection the `WAIT` rounds go out on: the home runtime's, else the one made at
    /// connect.
    fn round_handle(&self) -> ClusterConnection {
        match &*self.round_home.read() {
            Some(home) => home.clone(),
            None => self.round_conn.clone(),
        }
    }

    async fn check_seal_key(&self) -> Result<(), StoreError> {
        const CHECK: &[u8] = b"sls seal key check, format 1";
        let key = self.keys.seal_check();
        let sealed = self.sealer.seal(&key, CHECK)?;
        let mut c = self.conn(Command::Other);
        let (_, value): (Option<String>, Vec<u8>) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(sealed)
            .arg("NX")
            .cmd("GET")
            .arg(&key)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        match self.sealer.open(&key, &value) {
            Ok(plain) if plain.as_slice() == CHECK => Ok(()),
            _ => Err(StoreError::Damaged(format!(
                "this node's seal key is not the one the values under the prefix {:?} are sealed with: give every node the same key file",
                self.config.prefix
            ).into())),
        }
    }

    async fn connect_unchecked(config: RedisConfig) -> Result<RedisStore, StoreError> {
        let client = cluster_client(&config, config.nodes.clone())?;
        let conn = client.get_async_connection().await.map_err(unavailable)?;
        let round_conn = client.get_async_connection().await.map_err(unavailable)?;
        // The write ids' prefix: a compare-and-set takes a value whose `w` is its own id for
        // its own earlier send, so two nodes must never share one. 64 bits from the OS's
        // random source, per start (a clock and a pid repeat across containers).
        let nonce: u64 = rand::random();
        Ok(RedisStore {
            conn,
            home: Arc::new(parking_lot::RwLock::new(None)),
            round_conn,
            round_home: parking_lot::RwLock::new(None),
            client,
            keys: Keys::new(&config.prefix),
            scripts: Scripts {
                cas: Script::new(keys::CAS),
                bind: Script::new(keys::BIND),
                settle: Script::new(keys::SETTLE),
                txn_and_user: Script::new(keys::TXN_AND_USER),
                note_lockout: Script::new(keys::NOTE_LOCKOUT),
                take_user_token: Script::new(keys::TAKE_USER_TOKEN),
                read_limited: Script::new(keys::READ_LIMITED),
            },
            sealer: Sealer::new(&config.seal),
            cache: read::UserCache::new(config.cache_users),
            config,
            updating: Mutex::new(update::Updating::default()),
            tickets: AtomicU64::new(0),
            shards: durable::Shards::default(),
            bound: Mutex::new(std::collections::HashMap::new()),
            lockouts: Arc::new(Mutex::new(std::collections::VecDeque::new())),
            users: AtomicUsize::new(0),
            nonce,
            noted: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            sent: Default::default(),
            stale: AtomicU64::new(0),
            health: Mutex::new(health::Health::default()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Compare-and-sets this store lost to another writer of the same key (a gauge).
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Commands (a script, a pipeline: one round trip each) this store has sent to the
    /// cluster, by what they were for, in the order of [`Command::ALL`]; a `WAIT` round counts
    /// once per master it went to. As this store asked for them: the client's own
    /// re-sends (after a redirection, a `NOSCRIPT`, a timeout) are not counted, nor the bus's
    /// messages ([`RedisStore::bus`]).
    pub fn commands(&self) -> [(Command, u64); Command::ALL.len()] {
        Command::ALL.map(|c| {
            (
                c,
                self.sent[c as usize].load(std::sync::atomic::Ordering::Relaxed),
            )
        })
    }

    /// Every command [`RedisStore::commands`] counts, in all.
    pub fn round_trips(&self) -> u64 {
        self.commands().iter().map(|(_, n)| n).sum()
    }

    /// Compare-and-sets refused because this node's cached value of the user was stale
    /// (another node wrote since): each cost a round trip, and its reply was the current value.
    pub fn stale_guesses(&self) -> u64 {
        self.stale.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_cluster_is_unavailable_not_a_panic() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        // Port 1 on loopback: nothing listens there.
        let mut config =
            RedisConfig::new(vec!["redis://127.0.0.1:1".into()], "x", SealKey::generate());
        config.io_timeout = Duration::from_millis(200);
        config.connect_timeout = Duration::from_millis(200);
        let r = rt.block_on(RedisStore::connect(config));
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    }

    #[test]
    fn keys_are_one_hash_tag_under_the_prefix() {
        let k = Keys::new("p");
        assert_eq!(k.user("ann"), b"{p:u:ann}");
        assert_eq!(k.lockouts(), b"{p:lockouts:}");
    }

    #[test]
    fn slots_are_redis_clusters() {
        // From the Redis Cluster specification, and `CLUSTER KEYSLOT` on redis-server 7.0.
        assert_eq!(keys::slot(b"123456789"), 0x31c3);
        assert_eq!(keys::slot(b"foo"), 12182);
        assert_eq!(keys::slot(b"{user1000}.following"), keys::slot(b"user1000"));
        assert_eq!(keys::slot(b"foo{}{bar}"), keys::slot(b"foo{}{bar}"));
    }

    #[test]
    fn a_transaction_made_for_a_user_lives_in_the_users_slot() {
        let k = Keys::new("p");
        for user in ["ann", "bob", "a-very-long-user-name-0123456789"] {
            let slot = k.user_slot(user);
            assert_eq!(slot, keys::slot(&k.user(user)));
            for random in [0u128, u128::MAX, 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef] {
                let shift = 128 - sls_core::cx::TXN_SLOT_BITS;
                let id = (random & (u128::MAX >> sls_core::cx::TXN_SLOT_BITS))
                    | (u128::from(slot) << shift);
                let key = k.txn(sls_protocol::TxnId(id));
                assert_eq!(keys::slot(&key), slot, "{}", String::from_utf8_lossy(&key));
                assert!(key.ends_with(format!(":t:{id:032x}").as_bytes()));
            }
        }
    }
}
