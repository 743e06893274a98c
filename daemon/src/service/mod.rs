//! The QUIC service: the endpoint, the roles, the stream loops, and [`run`], which wires the
//! core, the store and the endpoint together and drains on shutdown.

pub mod handlers;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::config::Config;
use crate::core::{Core, Record, SystemClock};
use crate::metrics::Metrics;
use crate::store::{Store, StoreConfig};
use server::{ServiceLimits, State};

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store failed to open.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A journal record could not be decoded: refusing to start on a state we cannot read.
    #[error("journal record {index} cannot be decoded: {why}")]
    Record {
        /// Its position in the replay.
        index: usize,
        /// Why.
        why: String,
    },
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A bound daemon, before it serves: what `main` prints and tests read.
pub struct Bound {
    /// The QUIC address actually bound (port 0 resolved).
    pub addr: SocketAddr,
    /// Certificates created by this start.
    pub created: Vec<std::path::PathBuf>,
    /// The certificates' directory.
    pub tls_dir: std::path::PathBuf,
    /// Records replayed, and damage cut off the journal's tail.
    pub replayed: usize,
    state: State,
    endpoint: quinn::Endpoint,
    config: Config,
}

/// The UDP socket, with large buffers: the default 208 KiB dropped bursts of handshakes on this
/// kind of machine.
fn socket(addr: SocketAddr) -> Result<std::net::UdpSocket, ServiceError> {
    let bind = |source| ServiceError::Bind { addr, source };
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
        .map_err(bind)?;
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(8 << 20);
    s.bind(&addr.into()).map_err(bind)?;
    Ok(s.into())
}

/// Opens the store, replays it into a new core, loads or creates the certificates and binds
/// the endpoint.
///
/// # Errors
/// Store damage, undecodable records, TLS or bind failures.
pub fn bind(config: Config) -> Result<Bound, ServiceError> {
    let core = Core::new(config.core.clone(), Arc::new(SystemClock));
    let mut sc = StoreConfig::new(config.data_dir.join("journal"));
    sc.fsync = config.fsync;
    let (store, replay) = Store::open(sc)?;
    if let Some(t) = &replay.tail {
        warn!(file = %t.file.display(), offset = t.offset, bytes = t.bytes_dropped, kind = ?t.kind, "journal tail damaged (a write the crash interrupted, never acknowledged): cut off");
    }
    for (index, bytes) in replay.records.iter().enumerate() {
        let rec = Record::decode(bytes).map_err(|e| ServiceError::Record {
            index,
            why: e.to_string(),
        })?;
        core.apply(&rec);
    }
    let pki = tls::Pki::load_or_create(&config.data_dir)?;
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
    server_config.max_incoming(config.max_connections);
    let sock = socket(config.listen)?;
    let runtime = quinn::default_runtime().ok_or_else(|| ServiceError::Bind {
        addr: config.listen,
        source: std::io::Error::other("no tokio runtime"),
    })?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server_config),
        sock,
        runtime,
    )
    .map_err(|source| ServiceError::Bind {
        addr: config.listen,
        source,
    })?;
    let addr = endpoint.local_addr().map_err(|source| ServiceError::Bind {
        addr: config.listen,
        source,
    })?;
    let limits = ServiceLimits {
        grace: config.grace,
        ..ServiceLimits::default()
    };
    let state = State::new(core, store, Arc::new(Metrics::default()), limits);
    Ok(Bound {
        addr,
        created: pki.created.clone(),
        tls_dir: pki.dir.clone(),
        replayed: replay.records.len(),
        state,
        endpoint,
        config,
    })
}

impl Bound {
    /// Serves until `shutdown` resolves, then drains in-flight requests under the grace
    /// deadline, flushes the journal and closes the endpoint.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let Bound {
            state,
            endpoint,
            config,
            ..
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // Sweeper: expired transactions and idle limiter state.
        let sweeper = {
            let state = state.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => { state.core.sweep(); }
                        _ = stop.changed() => break,
                    }
                }
            })
        };
        // Snapshots bound the journal.
        let snapshotter = {
            let state = state.clone();
            let mut stop = stop_rx.clone();
            let limit = config.snapshot_bytes;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.changed() => break,
                    }
                    if state.store.stats().journal_bytes < limit {
                        continue;
                    }
                    let st = state.clone();
                    let result = tokio::task::spawn_blocking(
                        move || -> Result<usize, crate::store::StoreError> {
                            let (target, records) = {
                                let _paused = st.pause.write();
                                let target = st.store.rotate()?;
                                (target, st.core.snapshot_records())
                            };
                            let encoded: Vec<Vec<u8>> = records
                                .iter()
                                .filter_map(|r| {
                                    let mut b = Vec::new();
                                    r.encode(&mut b).ok().map(|()| b)
                                })
                                .collect();
                            st.store.write_snapshot(target, &encoded)?;
                            Ok(encoded.len())
                        },
                    )
                    .await;
                    match result {
                        Ok(Ok(n)) => info!(records = n, "snapshot written"),
                        Ok(Err(e)) => warn!("snapshot failed: {e}"),
                        Err(e) => warn!("snapshot task failed: {e}"),
                    }
                }
            })
        };
        let metrics = config.metrics.map(|addr| {
            let st = state.clone();
            let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || {
                let stats = st.core.stats();
                let extra: Vec<(&str, &str, u64)> = stats
                    .iter()
                    .map(|(n, v)| {
                        (
                            *n,
                            if matches!(
                                *n,
                                "users"
                                    | "open_transactions"
                                    | "lockouts_recent_window"
                                    | "mass_lockout_alert"
                            ) {
                                "gauge"
                            } else {
                                "counter"
                            },
                            *v,
                        )
                    })
                    .collect();
                st.metrics.render(&extra)
            });
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                if let Err(e) = crate::metrics::serve(addr, render, async move {
                    let _ = stop.changed().await;
                })
                .await
                {
                    warn!("metrics on {addr}: {e}");
                }
            })
        });
        server::accept_loop(state.clone(), endpoint, shutdown).await;
        let _ = stop_tx.send(true);
        let _ = sweeper.await;
        let _ = snapshotter.await;
        if let Some(m) = metrics {
            let _ = m.await;
        }
        state.store.close();
        info!("stopped");
    }
}
