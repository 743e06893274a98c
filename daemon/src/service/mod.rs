//! The QUIC service: [`bind`] opens the store, replays it into the core and binds the endpoints
//! (`--endpoints`, each on a thread and a `current_thread` runtime of its own); [`Bound::run`]
//! serves until shutdown, drains every endpoint, and closes the journal.
//!
//! The modules, by concern; each uses only those listed after it (no cycle):
//!
//! ```text
//!  endpoints    sockets, a thread + runtime each, the drain   ─▶ accept, state
//!  accept       accept loop, connection tasks                 ─▶ stream, opened, tls, limits, state
//!  stream       the per-stream loop: batches, durable waits   ─▶ handlers, nodes, answers, reply, limits, state
//!  handlers     message ─▶ core                               ─▶ admin, nodes, awaits, answers, opened, reply, state
//!  admin        the admin tool's requests, an app's proof     ─▶ admin_audit, proof, answers, idempotent, reply, state
//!  admin_audit  admin changes in the trail, its read          ─▶ answers, reply, state
//!  proof        DeviceProve, throttled per address            ─▶ reply, state
//!  background   sweeper, snapshotter, metrics, bus listener   ─▶ nodes, state
//!  nodes        notes to the other nodes (push, presence)     ─▶ awaits, state
//!  awaits       parked Awaits, wake                           ─▶ answers, reply, state
//!  answers      error frames, store failures, tickets         ─▶ reply, state
//!  state        shared State, limits, Peer, counts            ─▶ idempotent, opened, limits, throttle (core, store, metrics)
//!  idempotent   admin writes run once per key                 ─▶ reply
//!  reply        answers now or owed later                     ─▶ (protocol only)
//!  opened       open challenges per connection                ─▶ (backend only)
//!  limits       admission: live, per-address, unproven caps   ─▶ (config, protocol only)
//!  throttle     failures per source address                   ─▶ (nothing)
//!  tls          certificates, roles                           ─▶ (protocol only)
//! ```

pub mod accept;
pub mod admin;
pub mod admin_audit;
pub mod answers;
pub mod awaits;
pub mod background;
pub mod endpoints;
pub mod handlers;
pub mod idempotent;
pub mod limits;
pub mod nodes;
pub mod opened;
pub mod proof;
pub mod reply;
pub mod state;
pub mod stream;
pub mod throttle;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::backend::Backend;
use crate::config::{Config, RedisChoice, StoreChoice};
use crate::engine::{Core, MemoryStore, Record, SystemClock, SystemEntropy};
use crate::journal::{DirLock, Journal, JournalConfig};
use crate::metrics::Metrics;
use state::{ServiceLimits, State};

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store failed to open.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// Another slsd holds the data directory, or its lock could not be taken.
    #[error(transparent)]
    Lock(#[from] crate::journal::LockError),
    /// The Redis store could not be reached, or its seal key read.
    #[error("redis store: {0}")]
    Redis(String),
    /// A journal record could not be decoded: refusing to start on a state we cannot read.
    #[error("journal record {index} cannot be decoded: {why}")]
    Record {
        /// Its position in the replay.
        index: usize,
        /// Why.
        why: String,
    },
    /// The audit trail's directory could not be read or written.
    #[error("audit trail: {0}")]
    Audit(String),
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A UDP socket could not be bound, or an endpoint (its thread, runtime) made.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An endpoint's thread ended while serving (a bug; those listed panicked): the daemon
    /// drained and stopped.
    #[error(
        "an endpoint's thread ended while serving (a bug; panicked: {0:?}): drained and stopped"
    )]
    Endpoint(Vec<usize>),
}

/// A bound daemon, before it serves: what `main` prints and tests read.
pub struct Bound {
    /// The QUIC address actually bound (port 0 resolved).
    pub addr: SocketAddr,
    /// Certificates created by this start.
    pub created: Vec<std::path::PathBuf>,
    /// The certificates' directory.
    pub tls_dir: std::path::PathBuf,
    /// Records replayed, and damage cut off the journal's tail (0 on a shared store).
    pub replayed: usize,
    /// What the store is, for the start-up line.
    pub store: String,
    state: Serving,
    endpoints: endpoints::Endpoints,
    config: Config,
    /// The bus and the queue its publisher drains (a shared store only).
    publisher: Option<background::Publisher>,
    /// The data directory's lock, held until the journal is closed.
    lock: DirLock,
}

/// The embedded store: opens the journal and replays it.
fn open_embedded(config: &Config) -> Result<(MemoryStore<Journal>, Journal, usize), ServiceError> {
    let mut sc = JournalConfig::new(config.data_dir.join("journal"));
    sc.fsync = config.fsync;
    sc.repair = config.repair;
    let (store, replay) = Journal::open(sc)?;
    if let Some(t) = &replay.tail {
        let saved = t.saved.as_deref().unwrap_or(std::path::Path::new("-"));
        warn!(file = %t.file.display(), offset = t.offset, bytes = t.bytes_dropped, saved = %saved.display(), "journal's final write torn (a crash during a write never acknowledged): cut off, its bytes saved aside");
    }
    for t in &replay.repaired {
        let saved = t.saved.as_deref().unwrap_or(std::path::Path::new("-"));
        warn!(file = %t.file.display(), offset = t.offset, bytes = t.bytes_dropped, kind = ?t.kind, saved = %saved.display(), "--repair: journal cut at the damage, the file copied aside first");
    }
    let users = MemoryStore::with_journal(config.core.clone(), store.clone());
    for (index, bytes) in replay.records.iter().enumerate() {
        let rec = Record::decode(bytes).map_err(|e| ServiceError::Record {
            index,
            why: e.to_string(),
        })?;
        users.apply(&rec);
    }
    Ok((users, store, replay.records.len()))
}

/// The Redis store: loads the seal key (creates the default one for development) and
/// connects to the cluster.
async fn open_redis(r: &RedisChoice) -> Result<sls_redis::RedisStore, ServiceError> {
    let seal = if r.create_seal_key {
        let existed = r.seal_key.exists();
        let key = sls_redis::SealKey::load_or_create(&r.seal_key)
            .map_err(|e| ServiceError::Redis(e.to_string()))?;
        if !existed {
            warn!(file = %r.seal_key.display(), "created a new seal key: every node of this cluster needs this same file (--seal-key)");
        }
        key
    } else {
        sls_redis::SealKey::load(&r.seal_key).map_err(|e| ServiceError::Redis(e.to_string()))?
    };
    let mut rc = sls_redis::RedisConfig::new(r.nodes.clone(), r.prefix.clone(), seal);
    rc.wait_replicas = r.wait_replicas;
    rc.wait_timeout = r.wait_timeout;
    rc.io_timeout = r.response_timeout;
    rc.connect_timeout = r.connect_timeout;
    rc.cache_users = r.cache_users;
    sls_redis::RedisStore::connect(rc)
        .await
        .map_err(|e| ServiceError::Redis(e.to_string()))
}

/// Opens the store (replays the journal into a new core, or connects to the cluster), loads
/// or creates the certificates and binds the endpoint.
///
/// # Errors
/// Store damage, undecodable records, an unreachable cluster, TLS or bind failures.
pub async fn bind(config: Config) -> Result<Bound, ServiceError> {
    // Before anything is made: a --tls-dir given must be there (a typo would otherwise start a
    // node with a CA of its own, which the frontends do not trust), unless --init-tls.
    if !config.create_tls_dir && !config.tls_dir.exists() {
        return Err(tls::TlsError::Missing(config.tls_dir.clone()).into());
    }
    // Both stores keep files there (the journal; the seal key and certificates): one daemon
    // per data directory.
    let lock = DirLock::acquire(&config.data_dir)?;
    // The service is built for the store chosen (one build of it per store, `Backend`).
    match &config.store {
        StoreChoice::Embedded => {
            let (users, journal, replayed) = open_embedded(&config)?;
            let (state, half) = bind_on(&config, users, Some(journal), None).await?;
            Ok(Bound::new(
                config,
                Serving::Embedded(state),
                half,
                replayed,
                lock,
            ))
        }
        StoreChoice::Redis(r) => {
            // The seal key's default file and the certificates live there.
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                ServiceError::Redis(format!("cannot create {}: {e}", config.data_dir.display()))
            })?;
            let redis = open_redis(r).await?;
            let bus = redis.bus();
            let (state, half) = bind_on(&config, redis, None, Some(bus)).await?;
            Ok(Bound::new(config, Serving::Redis(state), half, 0, lock))
        }
    }
}

/// What [`bind_on`] makes besides the state: the endpoints, the certificates and the bus's
/// publisher.
struct Half {
    endpoints: endpoints::Endpoints,
    pki: tls::Pki,
    publisher: Option<background::Publisher>,
}

/// The service on `backend`: the engine over it, the certificates, the audit trail, the state
/// every connection shares, and the endpoints bound.
async fn bind_on<B: Backend>(
    config: &Config,
    backend: B,
    journal: Option<Journal>,
    bus: Option<sls_redis::bus::Bus>,
) -> Result<(State<B>, Half), ServiceError> {
    let core = Core::new(
        config.core.clone(),
        backend,
        Arc::new(SystemClock),
        Arc::new(SystemEntropy),
    );
    let pki = tls::Pki::load_or_create_in(&config.tls_dir)?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(config.idle_timeout)
                .unwrap_or_else(|_| quinn::IdleTimeout::from(quinn::VarInt::from_u32(30_000))),
        ))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(64))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
        .stream_receive_window(quinn::VarInt::from_u32(1 << 20))
        .receive_window(quinn::VarInt::from_u32(8 << 20))
        .send_window(8 << 20);
    let mut server_config = pki.server_config(Arc::new(transport))?;
    // quinn's queue of connections not yet taken by the accept loop, one per endpoint; the
    // accept loops bound the handshakes they have taken by the same number (for the whole
    // process), and the live connections separately.
    server_config.max_incoming(config.admission.max_handshakes);
    let limits = ServiceLimits {
        grace: config.grace,
        admission: config.admission.clone(),
        await_poll: bus.is_some().then_some(nodes::POLL),
        ..ServiceLimits::default()
    };
    let (queue, publisher) = match bus {
        Some(bus) => {
            let (tx, rx) = tokio::sync::mpsc::channel(nodes::QUEUE);
            (Some(tx), Some((bus, rx)))
        }
        None => (None, None),
    };
    let audit = match &config.store {
        StoreChoice::Embedded => Arc::new(
            crate::audit::AuditLog::embedded(
                &config.audit,
                &config.data_dir.join("audit"),
                config.fsync,
            )
            .map_err(|e| ServiceError::Audit(e.to_string()))?,
        ),
        StoreChoice::Redis(_) => {
            let (log, queue) = crate::audit::AuditLog::redis(&config.audit);
            let log = Arc::new(log);
            tokio::spawn(crate::audit::drain_to_redis(
                log.clone(),
                core.clone(),
                queue,
            ));
            log
        }
    };
    if audit.is_on() {
        core.set_audit(audit.clone());
    }
    let idempotent = idempotent::Keys::new(config.audit.idempotency_ttl);
    let metrics = Arc::new(Metrics::new(config.endpoints));
    let state = State::new(core, journal, queue, metrics, limits, audit, idempotent);
    let endpoints =
        endpoints::Endpoints::bind(config.listen, config.endpoints, &server_config, &state).await?;
    Ok((
        state,
        Half {
            endpoints,
            pki,
            publisher,
        },
    ))
}

/// The state of the service, built for the store chosen.
enum Serving {
    /// On the embedded store.
    Embedded(State<MemoryStore<Journal>>),
    /// On a Redis Cluster.
    Redis(State<sls_redis::RedisStore>),
}

impl Bound {
    fn new(config: Config, state: Serving, half: Half, replayed: usize, lock: DirLock) -> Bound {
        let Half {
            endpoints,
            pki,
            publisher,
        } = half;
        Bound {
            addr: endpoints.addr,
            created: pki.created.clone(),
            tls_dir: pki.dir.clone(),
            replayed,
            store: match &config.store {
                StoreChoice::Embedded => format!("{replayed} records replayed"),
                StoreChoice::Redis(r) => format!(
                    "state in the Redis cluster at {} under the prefix {:?} (waiting for {} replica(s))",
                    r.nodes.join(","),
                    r.prefix,
                    r.wait_replicas
                ),
            },
            state,
            endpoints,
            config,
            publisher,
            lock,
        }
    }

    /// Serves until `shutdown` resolves, then drains (every endpoint stops accepting, every
    /// tracked task ends under the grace deadline), closes every endpoint and joins their
    /// threads, stops the background tasks and closes the journal.
    ///
    /// # Errors
    /// [`ServiceError::Endpoint`]: an endpoint's thread ended while serving; the rest was
    /// drained and stopped as on a shutdown.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServiceError> {
        let Bound {
            state,
            endpoints,
            config,
            publisher,
            lock,
            ..
        } = self;
        let served = match state {
            Serving::Embedded(state) => {
                serve_on(&state, endpoints, &config, publisher, shutdown).await
            }
            Serving::Redis(state) => {
                serve_on(&state, endpoints, &config, publisher, shutdown).await
            }
        };
        drop(lock);
        info!("stopped");
        served
    }
}

/// Serves on `state` until `shutdown`, then drains and stops the background tasks (see
/// [`Bound::run`]).
async fn serve_on<B: Backend>(
    state: &State<B>,
    endpoints: endpoints::Endpoints,
    config: &Config,
    publisher: Option<background::Publisher>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServiceError> {
    // Background tasks stop after the drain: the journal they snapshot is final by then.
    let background = TaskTracker::new();
    let stop = CancellationToken::new();
    background::spawn(&background, state, config, publisher, &stop);
    let served = endpoints.serve(state, shutdown).await;
    stop.cancel();
    background.close();
    background.wait().await;
    if let Some(journal) = &state.journal {
        journal.close();
    }
    served
}
