//! The QUIC endpoints (`--endpoints N`): N UDP sockets on one port, each served by a quinn
//! endpoint on a `current_thread` runtime of its own, on a thread of its own. That runtime runs
//! the connections its endpoint accepts and every task they spawn (handshakes, streams, durable
//! waits, parked `Await`s: `state.tasks.spawn` spawns on the runtime it is called from), so no
//! wake-up crosses a thread on the request path. The first endpoint's runtime also carries the
//! Redis store's connection (a shared store), so that a request's round trips to the cluster
//! stay on its thread with one endpoint. The multi-thread runtime (`--threads`) keeps the
//! background work (sweeps, snapshots, metrics, the Redis store's bus).
//!
//! One endpoint (the default) binds its socket as before, without `SO_REUSEPORT`: a client whose
//! address changes mid-connection (NAT rebinding) keeps its connection. From 2 the sockets are
//! bound with `SO_REUSEPORT` (Linux), and the kernel hands each datagram to one of them by a
//! hash of its addresses and ports: one client socket always lands on the same endpoint, and a
//! client whose address or port changes lands on one that does not know its connection (a
//! stateless reset ends it).
//!
//! ```text
//!  bind   ─▶ socket 0 (port 0 resolved) ─▶ sockets 1..N on its port ─▶ a thread each:
//!            runtime, quinn endpoint (the start fails if one does) ─▶ waits to be started
//!  serve  ─▶ start them ─▶ each accepts (accept.rs) ─▶ shutdown (or a thread died)
//!         ─▶ drain: cancel `stopping` (every accept loop ends, streams send what they owe)
//!            ─▶ wait for every tracked task, at most the grace ─▶ close every endpoint
//!            ─▶ join every thread
//! ```
//!
//! Shared by every endpoint: the [`State`] (the core, the store, the metrics, the task tracker,
//! `stopping`) and with it the admission limits, which are per process, not per endpoint.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::accept;
use super::state::State;
use super::ServiceError;
use crate::backend::Backend;

/// How long a closed endpoint waits for its peers to learn of the close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The bound endpoints, each on its thread, waiting for [`Endpoints::serve`]. Dropped without
/// serving, their threads end.
pub struct Endpoints {
    /// The address they share (port 0 resolved).
    pub addr: SocketAddr,
    threads: Vec<Thread>,
    /// Cancelled once the drain is over: every endpoint closes.
    close: CancellationToken,
    /// Cancelled when any endpoint's thread ends, however it ends (a panic included).
    ended: CancellationToken,
}

/// One endpoint's thread.
struct Thread {
    index: usize,
    /// Sent to start accepting; dropped unsent, the thread ends.
    start: Option<oneshot::Sender<()>>,
    join: std::thread::JoinHandle<()>,
}

/// A UDP socket on `addr` with large buffers (the default 208 KiB dropped bursts of handshakes
/// on this kind of machine), and `SO_REUSEPORT` when the port is `shared` by several endpoints.
fn socket(addr: SocketAddr, shared: bool) -> Result<std::net::UdpSocket, ServiceError> {
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
    if shared {
        reuse_port(&s).map_err(bind)?;
    }
    s.bind(&addr.into()).map_err(bind)?;
    Ok(s.into())
}

#[cfg(target_os = "linux")]
fn reuse_port(s: &socket2::Socket) -> std::io::Result<()> {
    s.set_reuse_port(true)
}

/// The configuration refuses more than one endpoint here; this is the last guard.
#[cfg(not(target_os = "linux"))]
fn reuse_port(_: &socket2::Socket) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "more than one endpoint needs SO_REUSEPORT's spreading, which slsd uses on Linux only",
    ))
}

/// The endpoints' configuration: one stateless-reset key and one connection-id key for all of
/// them. A packet of a client that lands on an endpoint that does not know its connection (its
/// address changed) carries a connection id that endpoint recognises as the daemon's, so it
/// answers with a stateless reset, which the client recognises (the token is the same as its
/// own endpoint's): the connection ends at once rather than at its idle timeout. With quinn's
/// defaults, each endpoint would have keys of its own and drop such a packet without a word.
fn endpoint_config() -> quinn::EndpointConfig {
    let mut config = quinn::EndpointConfig::default();
    let key: u64 = rand::random();
    config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(key)));
    config
}

impl Endpoints {
    /// Binds `n` sockets on `listen` (port 0: the port the first one got, for all of them) and
    /// starts a thread per socket, which makes its runtime and its quinn endpoint and waits for
    /// [`Endpoints::serve`]. Quinn takes handshakes from then on; they wait to be accepted.
    ///
    /// # Errors
    /// [`ServiceError::Bind`] when any socket, thread, runtime or endpoint cannot be made; the
    /// threads already started then end.
    pub async fn bind<B: Backend>(
        listen: SocketAddr,
        n: usize,
        server: &quinn::ServerConfig,
        state: &State<B>,
    ) -> Result<Endpoints, ServiceError> {
        let shared = n > 1;
        let first = socket(listen, shared)?;
        let addr = first.local_addr().map_err(|source| ServiceError::Bind {
            addr: listen,
            source,
        })?;
        let mut sockets = vec![first];
        for _ in 1..n {
            sockets.push(socket(addr, shared)?);
        }
        let config = endpoint_config();
        let mut endpoints = Endpoints {
            addr,
            threads: Vec::with_capacity(n),
            close: CancellationToken::new(),
            ended: CancellationToken::new(),
        };
        for (index, socket) in sockets.into_iter().enumerate() {
            let failed = |why: String| ServiceError::Bind {
                addr,
                source: std::io::Error::other(format!("endpoint {index}: {why}")),
            };
            let (ready_tx, ready) = oneshot::channel();
            let (start, started) = oneshot::channel();
            let one = One {
                index,
                socket,
                config: config.clone(),
                server: server.clone(),
                state: state.clone(),
                close: endpoints.close.clone(),
            };
            let ended = endpoints.ended.clone();
            let join = std::thread::Builder::new()
                .name(format!("slsd-endpoint-{index}"))
                .spawn(move || {
                    // However this thread ends, `serve` hears of it.
                    let _ended = ended.drop_guard();
                    one.thread(ready_tx, started);
                })
                .map_err(|e| failed(format!("cannot start its thread: {e}")))?;
            endpoints.threads.push(Thread {
                index,
                start: Some(start),
                join,
            });
            match ready.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(failed(e.to_string())),
                Err(_) => return Err(failed("its thread ended at start".into())),
            }
        }
        info!(endpoints = n, %addr, reuse_port = shared, "QUIC endpoints bound");
        Ok(endpoints)
    }

    /// Starts accepting on every endpoint and serves until `shutdown` resolves (or an
    /// endpoint's thread ends, a bug); then drains, closes every endpoint and joins their
    /// threads. Returns once all of them are done.
    ///
    /// # Errors
    /// [`ServiceError::Endpoint`]: an endpoint's thread ended while serving (a panic); the
    /// others were drained and closed all the same.
    pub async fn serve<B: Backend>(
        mut self,
        state: &State<B>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServiceError> {
        for t in &mut self.threads {
            if let Some(start) = t.start.take() {
                let _ = start.send(());
            }
        }
        let died = tokio::select! {
            () = shutdown => false,
            () = self.ended.cancelled() => true,
        };
        if died {
            error!("an endpoint's thread ended while serving (a bug): shutting down");
        }
        drain(state).await;
        self.close.cancel();
        let mut panicked = Vec::new();
        for t in self.threads {
            let index = t.index;
            let joined = tokio::task::spawn_blocking(move || t.join.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                panicked.push(index);
            }
        }
        if died || !panicked.is_empty() {
            return Err(ServiceError::Endpoint(panicked));
        }
        Ok(())
    }
}

/// Shutdown, for every endpoint at once: refuse new requests and stop accepting (`stopping`),
/// let every stream send what it owes and end, and wait for every tracked task under the grace
/// deadline. The endpoints close after it.
async fn drain<B: Backend>(state: &State<B>) {
    info!("shutting down: draining in-flight requests");
    state.stopping.cancel();
    state.tasks.close();
    if tokio::time::timeout(state.limits.grace, state.tasks.wait())
        .await
        .is_err()
    {
        warn!(
            tasks = state.tasks.len(),
            in_flight = state.in_flight.load(Ordering::Acquire),
            awaits = state.waiting.load(Ordering::Acquire),
            "grace period over: closing with work outstanding"
        );
    }
}

/// What one endpoint's thread owns.
struct One<B: Backend> {
    index: usize,
    socket: std::net::UdpSocket,
    config: quinn::EndpointConfig,
    server: quinn::ServerConfig,
    state: State<B>,
    close: CancellationToken,
}

impl<B: Backend> One<B> {
    /// The thread: its runtime, serving until closed. The tasks a grace period over left are
    /// dropped with the runtime.
    fn thread(self, ready: oneshot::Sender<std::io::Result<()>>, started: oneshot::Receiver<()>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        runtime.block_on(self.serve(ready, started));
    }

    /// The endpoint, made on this thread's runtime (its driver and its connections run here);
    /// then, once started, its accept loop until `stopping`, and its close once the drain is
    /// over.
    async fn serve(
        self,
        ready: oneshot::Sender<std::io::Result<()>>,
        started: oneshot::Receiver<()>,
    ) {
        let One {
            index,
            socket,
            config,
            server,
            state,
            close,
        } = self;
        let endpoint =
            match quinn::Endpoint::new(config, Some(server), socket, Arc::new(quinn::TokioRuntime))
            {
                Ok(e) => e,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
        // The first endpoint's thread carries the Redis store's connection too (a shared store).
        let home = index == 0;
        if home {
            state.core.store().home_here().await;
        }
        // The shared store's probes (readiness, and the watchdog that rebuilds a cluster
        // connection that stopped sending) run here too: a rebuilt connection's tasks run on
        // the runtime that makes it. Stopped before the store leaves this runtime.
        let probes = home.then(|| tokio::spawn(probe_loop(state.clone())));
        let _ = ready.send(Ok(()));
        if started.await.is_err() {
            if let Some(p) = probes {
                p.abort();
            }
            if home {
                state.core.store().leave_home();
            }
            return;
        }
        accept::accept_loop(&state, &endpoint, index).await;
        close.cancelled().await;
        if let Some(p) = probes {
            p.abort();
        }
        if home {
            // Drained: what runs after this thread (the background's last work) goes through
            // the background runtime's connection.
            state.core.store().leave_home();
        }
        endpoint.close(quinn::VarInt::from_u32(0), b"shutting down");
        let _ = tokio::time::timeout(CLOSE_WAIT, endpoint.wait_idle()).await;
    }
}

/// The Redis store's probe rounds, one every [`sls_redis::health::PROBE_EVERY`] after the last
/// ended; nothing with the embedded store.
async fn probe_loop<B: Backend>(state: State<B>) {
    let Some(r) = state.core.store().redis() else {
        return;
    };
    loop {
        r.probe().await;
        tokio::time::sleep(sls_redis::health::PROBE_EVERY).await;
    }
}
