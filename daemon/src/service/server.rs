//! The QUIC service: accepts connections, tells roles apart, and runs one loop per stream that
//! decodes pipelined frames, asks the core, makes the records durable, and writes the answers.
//!
//! ```text
//!  accept ─▶ connection task (role from ALPN + certificate)
//!              └─▶ stream task: read ─▶ decode all frames ─▶ core (sync, µs)
//!                                   ─▶ journal: append records, one durable wait per batch
//!                                   ─▶ one write for every answer of the batch
//! ```
//!
//! A request whose answer must wait (a frontend's `Await` on a push) is parked on its own task
//! and answered later on the same stream; everything else is answered in the batch it came in.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dashmap::DashMap;
use sls_protocol::{frame, Frame, Message, Role, Status, TxnId, PROTOCOL_VERSION};
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn};

use crate::core::Core;
use crate::metrics::Metrics;
use crate::store::Store;

/// Limits of the service.
#[derive(Debug, Clone)]
pub struct ServiceLimits {
    /// Most requests in flight on one stream (announced in `Welcome`).
    pub max_in_flight: u32,
    /// Most parked `Await`s at once, daemon-wide.
    pub max_waiting: usize,
    /// Longest `Await` honoured.
    pub max_await: Duration,
    /// How long shutdown waits for in-flight requests.
    pub grace: Duration,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits {
            max_in_flight: 1024,
            max_waiting: 100_000,
            max_await: Duration::from_secs(120),
            grace: Duration::from_secs(5),
        }
    }
}

/// What every connection shares. Cheap to clone.
#[derive(Clone)]
pub struct State(Arc<Shared>);

/// The shared part of [`State`].
pub struct Shared {
    /// The verifier.
    pub core: Core,
    /// The journal.
    pub store: Store,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Limits.
    pub limits: ServiceLimits,
    /// Connected IB Key apps: where to push.
    pub devices: DashMap<sls_protocol::DeviceId, mpsc::UnboundedSender<Message>>,
    /// Frontends waiting for a push decision, by transaction.
    pub waiters: DashMap<TxnId, Arc<Notify>>,
    waiting: AtomicUsize,
    /// Open connections.
    pub connections: AtomicU64,
    /// Set when shutdown begins: new requests are refused with SHUTTING_DOWN.
    pub draining: std::sync::atomic::AtomicBool,
    /// Requests being handled right now (shutdown waits for zero).
    pub in_flight: AtomicUsize,
    /// Held shared while a batch changes the core and journals its records; held exclusively
    /// to rotate the journal and capture a snapshot, so that the two agree.
    pub pause: parking_lot::RwLock<()>,
}

impl State {
    /// A new state.
    pub fn new(core: Core, store: Store, metrics: Arc<Metrics>, limits: ServiceLimits) -> State {
        State(Arc::new(Shared {
            core,
            store,
            metrics,
            limits,
            devices: DashMap::new(),
            waiters: DashMap::new(),
            waiting: AtomicUsize::new(0),
            connections: AtomicU64::new(0),
            draining: std::sync::atomic::AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            pause: parking_lot::RwLock::new(()),
        }))
    }
}

impl std::ops::Deref for State {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Per-connection facts the handlers need.
pub struct Peer {
    /// The role the daemon gave the peer.
    pub role: Role,
    /// The peer's address.
    pub addr: SocketAddr,
    /// For an IB Key app: the device it claims, and whether it proved it.
    /// For an IB Key app: the device it is proving and the nonce it must sign.
    pub pending: Option<(sls_protocol::DeviceId, [u8; 32])>,
    /// For an IB Key app: the devices it proved (several users, R8).
    pub proven: Vec<sls_protocol::DeviceId>,
}

/// Serves one accepted connection until it closes.
pub async fn serve_connection(state: State, conn: quinn::Connection, role: Role) {
    let addr = conn.remote_address();
    state.connections.fetch_add(1, Ordering::Relaxed);
    state.metrics.connection_opened(role);
    debug!(%addr, role = role.name(), "connection");
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let state = state.clone();
                tokio::spawn(serve_stream(
                    state,
                    send,
                    recv,
                    Peer {
                        role,
                        addr,
                        pending: None,
                        proven: Vec::new(),
                    },
                ));
            }
            Err(e) => {
                debug!(%addr, "connection closed: {e}");
                break;
            }
        }
    }
    state.connections.fetch_sub(1, Ordering::Relaxed);
    state.metrics.connection_closed(role);
}

/// What handling one request produced.
pub enum Reply {
    /// Answer now, in this batch.
    Now(Message),
    /// Answer later: a parked task sends it on `late`.
    Later,
}

/// The loop of one stream.
async fn serve_stream(
    state: State,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut peer: Peer,
) {
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut records: Vec<Vec<u8>> = Vec::new();
    let (late_tx, mut late_rx) = mpsc::unbounded_channel::<(u32, Message)>();
    let (push_tx, mut push_rx) = mpsc::unbounded_channel::<Message>();
    let mut hello = false;
    let parked = Arc::new(AtomicUsize::new(0));
    let mut registered: Vec<sls_protocol::DeviceId> = Vec::new();
    loop {
        tokio::select! {
            chunk = recv.read_chunk(64 * 1024, true) => {
                match chunk {
                    Ok(Some(chunk)) => inbuf.extend_from_slice(&chunk.bytes),
                    Ok(None) | Err(_) => break,
                }
            }
            Some((id, msg)) = late_rx.recv() => {
                encode_or_internal(id, &msg, &mut out);
                while let Ok((id, msg)) = late_rx.try_recv() {
                    encode_or_internal(id, &msg, &mut out);
                }
                if send.write_all(&out).await.is_err() { break; }
                out.clear();
                continue;
            }
            Some(push) = push_rx.recv() => {
                encode_or_internal(0, &push, &mut out);
                while let Ok(push) = push_rx.try_recv() {
                    encode_or_internal(0, &push, &mut out);
                }
                if send.write_all(&out).await.is_err() { break; }
                out.clear();
                continue;
            }
        }
        let started = Instant::now();
        let mut fatal = false;
        let mut answered = 0usize;
        let mut last_lsn = None;
        let mut failed = false;
        // Answers whose request changed durable state: sent once their records are on disk.
        let mut after_durable: Vec<(u32, Message)> = Vec::new();
        {
            let _paused = state.pause.read();
            loop {
                match frame::decode(&mut inbuf) {
                    Ok(None) => break,
                    Ok(Some(Frame { id, message })) => {
                        answered += 1;
                        if state.draining.load(Ordering::Relaxed) {
                            error_frame(id, Status::SHUTTING_DOWN, "shutting down", &mut out);
                            continue;
                        }
                        if !hello {
                            match message {
                                Message::Hello {
                                    min_version,
                                    max_version,
                                    ..
                                } if min_version <= PROTOCOL_VERSION
                                    && PROTOCOL_VERSION <= max_version =>
                                {
                                    hello = true;
                                    encode_or_internal(
                                        id,
                                        &Message::Welcome {
                                            version: PROTOCOL_VERSION,
                                            max_frame: sls_protocol::limits::MAX_FRAME as u32,
                                            max_in_flight: state.limits.max_in_flight,
                                            role: peer.role,
                                        },
                                        &mut out,
                                    );
                                }
                                Message::Hello { .. } => {
                                    error_frame(
                                        id,
                                        Status::VERSION,
                                        "no common protocol version",
                                        &mut out,
                                    );
                                    fatal = true;
                                    break;
                                }
                                _ => error_frame(
                                    id,
                                    Status::VERSION,
                                    "the first frame of a stream must be Hello",
                                    &mut out,
                                ),
                            }
                            continue;
                        }
                        if !message.access().allows(peer.role) {
                            let status = if message.access() == sls_protocol::Access::Server {
                                Status::UNEXPECTED
                            } else {
                                Status::FORBIDDEN
                            };
                            state.metrics.frame_error(status);
                            error_frame(id, status, "not allowed for this role", &mut out);
                            continue;
                        }
                        if parked.load(Ordering::Relaxed) >= state.limits.max_in_flight as usize {
                            error_frame(
                                id,
                                Status::TOO_MANY_IN_FLIGHT,
                                "too many requests in flight",
                                &mut out,
                            );
                            continue;
                        }
                        state.in_flight.fetch_add(1, Ordering::Relaxed);
                        let t0 = Instant::now();
                        let kind = message.type_code();
                        let before = records.len();
                        let reply = super::handlers::handle(
                            &state,
                            &mut peer,
                            id,
                            message,
                            &mut records,
                            &late_tx,
                            &parked,
                        );
                        state.in_flight.fetch_sub(1, Ordering::Relaxed);
                        if let Reply::Now(msg) = reply {
                            state.metrics.request(kind, &msg, t0.elapsed());
                            if records.len() > before {
                                after_durable.push((id, msg));
                            } else {
                                encode_or_internal(id, &msg, &mut out);
                            }
                        }
                        // An app that just proved its key starts receiving pushes on this stream.
                        for dev in peer.proven.iter().skip(registered.len()) {
                            state.devices.insert(*dev, push_tx.clone());
                            registered.push(*dev);
                            debug!(device = %dev, "IB Key app connected");
                        }
                    }
                    Err(e) => {
                        state.metrics.frame_error(e.status());
                        error_frame(e.id, e.status(), &e.kind.to_string(), &mut out);
                        if !e.recoverable() {
                            fatal = true;
                            break;
                        }
                    }
                }
            }
            // Group commit: every record of the batch is queued now; the answers that depend on
            // them leave once the journal's writer has synced them (with other streams' records).
            for r in records.drain(..) {
                match state.store.append(&r) {
                    Ok(lsn) => last_lsn = Some(lsn),
                    Err(e) => {
                        warn!("journal append failed: {e}");
                        failed = true;
                    }
                }
            }
        }
        if !after_durable.is_empty() {
            let store = state.store.clone();
            let late = late_tx.clone();
            let parked = parked.clone();
            parked.fetch_add(after_durable.len(), Ordering::Relaxed);
            tokio::spawn(async move {
                let durable = match (failed, last_lsn) {
                    (false, Some(lsn)) => store.durable(lsn).await.map_err(|e| e.to_string()),
                    _ => Err("append refused".to_owned()),
                };
                if let Err(e) = &durable {
                    warn!("journal: {e}");
                }
                parked.fetch_sub(after_durable.len(), Ordering::Relaxed);
                for (id, msg) in after_durable {
                    // Nothing that could not be made durable is acknowledged.
                    let msg = match &durable {
                        Ok(()) => msg,
                        Err(_) => Message::Error {
                            status: Status::INTERNAL,
                            message: "state could not be made durable".into(),
                        },
                    };
                    let _ = late.send((id, msg));
                }
            });
        }
        if !out.is_empty() {
            if send.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        if answered > 0 {
            state.metrics.batch(answered, started.elapsed());
        }
        if fatal {
            let _ = send.finish();
            break;
        }
    }
    for dev in registered {
        state
            .devices
            .remove_if(&dev, |_, tx| tx.same_channel(&push_tx));
    }
}

fn encode_or_internal(id: u32, msg: &Message, out: &mut BytesMut) {
    if let Err(e) = frame::encode(id, msg, out) {
        warn!("cannot encode {}: {e}", msg.type_name());
        error_frame(id, Status::INTERNAL, "response could not be encoded", out);
    }
}

/// Appends an `Error` frame.
pub fn error_frame(id: u32, status: Status, text: &str, out: &mut BytesMut) {
    let mut message = text.to_owned();
    message.truncate(sls_protocol::limits::MAX_TEXT);
    while !message.is_char_boundary(message.len()) {
        message.pop();
    }
    // An Error frame with a short message always encodes.
    let _ = frame::encode(id, &Message::Error { status, message }, out);
}

/// Parks a frontend's `Await` until the push is answered, expires or the timeout passes.
pub fn park_await(
    state: &State,
    id: u32,
    txn: TxnId,
    timeout: Duration,
    late: &mpsc::UnboundedSender<(u32, Message)>,
    parked: &Arc<AtomicUsize>,
) -> Reply {
    if state.waiting.load(Ordering::Relaxed) >= state.limits.max_waiting {
        return Reply::Now(Message::Error {
            status: Status::CAPACITY,
            message: "too many awaits".into(),
        });
    }
    let notify = state
        .waiters
        .entry(txn)
        .or_insert_with(|| Arc::new(Notify::new()))
        .clone();
    let state2 = state.clone();
    let late = late.clone();
    let parked = parked.clone();
    parked.fetch_add(1, Ordering::Relaxed);
    state.waiting.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout.min(state2.limits.max_await);
        let verdict = loop {
            let notified = notify.notified();
            let v = state2.core.txn_verdict(txn);
            if v != sls_protocol::Verdict::Pending {
                break v;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break state2.core.txn_verdict(txn);
            }
        };
        state2
            .waiters
            .remove_if(&txn, |_, n| Arc::strong_count(n) <= 2);
        state2.waiting.fetch_sub(1, Ordering::Relaxed);
        parked.fetch_sub(1, Ordering::Relaxed);
        let _ = late.send((id, Message::Judged { verdict }));
    });
    Reply::Later
}

/// Wakes the frontends awaiting `txn`.
pub fn wake(state: &State, txn: TxnId) {
    if let Some(n) = state.waiters.get(&txn) {
        n.notify_waiters();
    }
}

/// Accepts connections until `shutdown` resolves, then drains.
pub async fn accept_loop(
    state: State,
    endpoint: quinn::Endpoint,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let state = state.clone();
                tokio::spawn(async move {
                    let conn = match incoming.await {
                        Ok(c) => c,
                        Err(e) => {
                            debug!("handshake failed: {e}");
                            return;
                        }
                    };
                    match super::tls::role_of(&conn) {
                        Ok(role) => serve_connection(state, conn, role).await,
                        Err(e) => {
                            debug!(addr = %conn.remote_address(), "refused: {e}");
                            conn.close(quinn::VarInt::from_u32(0x101), b"no valid role certificate");
                        }
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    info!("shutting down: draining in-flight requests");
    state.draining.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + state.limits.grace;
    while (state.in_flight.load(Ordering::Relaxed) > 0 || state.waiting.load(Ordering::Relaxed) > 0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    endpoint.close(quinn::VarInt::from_u32(0), b"shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}
