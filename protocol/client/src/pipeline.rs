//! One long-lived bidirectional stream with many requests in flight: the wire as it is, for
//! callers that want every request's answer as the daemon sent it (the load generator, tests).
//! [`crate::Client`] is built on it and adds timeouts, failover and typed answers.
//!
//! A writer task batches every request queued since its last write into one `write_all`; a
//! reader task decodes every frame of each read and hands each answer to the caller waiting on
//! its id. Unsolicited frames (request id 0: an IB Key app's pushes, stream-level errors) go to
//! a channel of their own.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use sls_protocol::{frame, Frame, Message, Role, PROTOCOL_VERSION};
use tokio::sync::{mpsc, oneshot};

/// Why a call on a [`Pipeline`] failed. A daemon's `Error` frame is not a `CallError`: on a
/// pipeline it is the call's answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The stream or connection is gone.
    #[error("stream closed: {0}")]
    Closed(String),
    /// The request could not be encoded (a field over its limit).
    #[error("cannot encode request: {0}")]
    Encode(#[from] sls_protocol::EncodeError),
    /// The daemon answered the handshake with something else than `Welcome`.
    #[error("handshake refused: {}", .0.type_name())]
    Handshake(Box<Message>),
    /// The answer arrived but this library cannot decode it (a daemon newer than it).
    #[error("cannot decode the answer: {0}")]
    Decode(String),
}

/// What the daemon said in `Welcome` (PROTOCOL.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcome {
    /// The protocol version agreed.
    pub version: u16,
    /// The largest frame the daemon takes, length prefix included.
    pub max_frame: u32,
    /// Answers the daemon may owe on the stream at once.
    pub max_in_flight: u32,
    /// The role the daemon sees.
    pub role: Role,
}

/// A client endpoint (one UDP socket) bound to `bind`, with socket buffers large enough for
/// bursts of handshakes.
///
/// # Errors
/// The socket cannot be bound, or there is no tokio runtime.
pub fn endpoint(bind: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(bind)?;
    let sock = socket2::SockRef::from(&socket);
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = sock.set_recv_buffer_size(8 << 20);
    let _ = sock.set_send_buffer_size(8 << 20);
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for quinn"))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)
}

/// A handshake that failed.
#[derive(Debug)]
pub struct ConnectError {
    /// The daemon's address.
    pub addr: SocketAddr,
    /// Why, as quinn says (e.g. `invalid peer certificate: …`), or none for no answer in time.
    pub reason: String,
    /// How long it was given, when nothing answered in time.
    pub waited: Option<std::time::Duration>,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.waited {
            Some(t) => write!(
                f,
                "no slsd answering at {} within {}",
                self.addr,
                crate::error::humanize(t)
            ),
            None => write!(f, "cannot connect to {}: {}", self.addr, self.reason),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Connects to a daemon at `addr`, verifying its certificate for `server_name` (a DNS name or
/// an IP address, as the certificate's subject alternative names have it). Without a timeout
/// of its own: the QUIC idle timeout of `config` ends a handshake nobody answers.
///
/// # Errors
/// The handshake failed.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
    config: quinn::ClientConfig,
) -> Result<quinn::Connection, ConnectError> {
    let err = |reason: String| ConnectError {
        addr,
        reason,
        waited: None,
    };
    endpoint
        .connect_with(config, addr, server_name)
        .map_err(|e| err(e.to_string()))?
        .await
        .map_err(|e| err(e.to_string()))
}

/// Where a daemon is: its address, the name its certificate is verified against, and how long
/// a handshake may take. What the load generator's paths connect with.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The daemon's UDP address.
    pub addr: SocketAddr,
    /// The name its certificate carries (a DNS name, or the IP address as text).
    pub server_name: String,
    /// How long a handshake may take before the daemon counts as not answering.
    pub connect_timeout: std::time::Duration,
}

impl Peer {
    /// A peer at `addr`, its certificate verified for `server_name`, 5 s to connect.
    pub fn new(addr: SocketAddr, server_name: impl Into<String>) -> Peer {
        Peer {
            addr,
            server_name: server_name.into(),
            connect_timeout: std::time::Duration::from_secs(5),
        }
    }

    /// Connects within the connect timeout; past it, the error says `no slsd answering at ADDR
    /// within T`.
    ///
    /// # Errors
    /// The handshake failed or took too long.
    pub async fn connect(
        &self,
        endpoint: &quinn::Endpoint,
        config: quinn::ClientConfig,
    ) -> Result<quinn::Connection, ConnectError> {
        let t = self.connect_timeout;
        match tokio::time::timeout(t, connect(endpoint, self.addr, &self.server_name, config)).await
        {
            Ok(r) => r,
            Err(_) => Err(ConnectError {
                addr: self.addr,
                reason: "timed out".into(),
                waited: Some(t),
            }),
        }
    }
}

/// An IB Key app's proof of possession on `pipe` (PROTOCOL.md §5.2): `DeviceHello`, then
/// `DeviceProve` with the key's MAC over the nonce. The daemon then pushes that device's logins
/// to this stream.
///
/// # Errors
/// [`crate::ClientError::Refused`] with `BAD_PROOF` (a wrong key, a device not enrolled), or
/// the stream ended.
pub async fn prove_device(
    pipe: &Pipeline,
    device: sls_protocol::DeviceId,
    secret: &[u8],
) -> Result<(), crate::ClientError> {
    use crate::error::unexpected;
    let lost = |e: CallError| crate::ClientError::Lost(e.to_string());
    let nonce = match pipe
        .call(Message::DeviceHello { device })
        .await
        .map_err(lost)?
    {
        Message::DeviceNonce { nonce } => nonce,
        other => return Err(unexpected(other)),
    };
    let proof = sls_protocol::push::device_proof(secret, device, &nonce);
    match pipe
        .call(Message::DeviceProve { proof })
        .await
        .map_err(lost)?
    {
        Message::Done {} => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// Replies every pipeline of this process has received: the load generator's request count, for
/// its CPU per request.
static REPLIES: AtomicU64 = AtomicU64::new(0);

/// Replies received so far by every [`Pipeline`] of this process.
pub fn replies() -> u64 {
    REPLIES.load(Ordering::Relaxed)
}

type Waiters = Arc<Mutex<Slots>>;

/// The calls waiting for their replies, in a slab: a request id is its slot's index + 1 in its
/// low 20 bits and the slot's generation above, so a reply finds its caller by indexing, and a
/// stray reply to a reused slot is told apart. Each batch of writes or reads takes the lock once.
#[derive(Default)]
struct Slots {
    entries: Vec<(u32, Option<Reply>)>,
    free: Vec<u32>,
    /// The reader stopped: no answer will come, so no call is taken.
    closed: bool,
}

const INDEX_BITS: u32 = 20;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;

impl Slots {
    /// Keeps `reply` and returns its request id (never 0).
    fn insert(&mut self, reply: Reply) -> Option<u32> {
        if self.closed {
            return None;
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.entries.len() < INDEX_MASK as usize => {
                self.entries.push((0, None));
                self.entries.len() as u32 - 1
            }
            None => return None,
        };
        let entry = &mut self.entries[index as usize];
        entry.0 = (entry.0 + 1) & (u32::MAX >> INDEX_BITS);
        entry.1 = Some(reply);
        Some((entry.0 << INDEX_BITS) | (index + 1))
    }

    /// The caller waiting on request `id`, if any; its slot is free again.
    fn remove(&mut self, id: u32) -> Option<Reply> {
        let index = (id & INDEX_MASK).checked_sub(1)?;
        let entry = self.entries.get_mut(index as usize)?;
        if entry.0 != id >> INDEX_BITS {
            return None;
        }
        let reply = entry.1.take()?;
        self.free.push(index);
        Some(reply)
    }

    /// Drops every waiting caller (each call fails) and takes no more.
    fn close(&mut self) {
        self.entries.clear();
        self.free.clear();
        self.closed = true;
    }
}

/// Where a call's answer goes: the daemon's message, or why there is none.
type Reply = oneshot::Sender<Result<Message, CallError>>;

struct Request {
    message: Message,
    reply: Reply,
}

/// One long-lived stream with many requests in flight. Cheap to clone; every clone shares the
/// stream.
#[derive(Clone)]
pub struct Pipeline {
    tx: mpsc::UnboundedSender<Request>,
    welcome: Welcome,
    /// The reader stopped (the stream's receive side ended or lost framing).
    read_done: Arc<std::sync::atomic::AtomicBool>,
}

/// Frames the daemon sends unsolicited (request id 0): pushes, and stream-level errors.
pub type Pushes = mpsc::UnboundedReceiver<Message>;

impl Pipeline {
    /// Opens a stream on `conn` and does the version handshake. Returns the pipeline, the role
    /// the daemon sees, and the channel of unsolicited frames.
    ///
    /// # Errors
    /// The stream could not be opened, or the daemon did not answer `Welcome`.
    pub async fn open(
        conn: &quinn::Connection,
        agent: &str,
    ) -> Result<(Pipeline, Pushes), CallError> {
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| CallError::Closed(e.to_string()))?;
        let waiters: Waiters = Arc::default();
        let (tx, rx) = mpsc::unbounded_channel();
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let read_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        tokio::spawn(write_loop(send, rx, waiters.clone()));
        tokio::spawn(read_loop(recv, waiters, push_tx, read_done.clone()));
        let mut pipe = Pipeline {
            tx,
            read_done,
            welcome: Welcome {
                version: 0,
                max_frame: 0,
                max_in_flight: 0,
                role: Role::Frontend,
            },
        };
        let hello = Message::Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            // The field's limit is in bytes: a longer name (in any script) is clipped at a char
            // boundary rather than making the handshake fail to encode.
            agent: sls_protocol::clip_text(agent, sls_protocol::limits::MAX_TEXT),
        };
        match pipe.call(hello).await? {
            Message::Welcome {
                version,
                max_frame,
                max_in_flight,
                role,
            } => {
                pipe.welcome = Welcome {
                    version,
                    max_frame,
                    max_in_flight,
                    role,
                }
            }
            other => return Err(CallError::Handshake(Box::new(other))),
        }
        Ok((pipe, push_rx))
    }

    /// The role the daemon granted this connection.
    pub fn role(&self) -> Role {
        self.welcome.role
    }

    /// The daemon's `Welcome` on this stream.
    pub fn welcome(&self) -> Welcome {
        self.welcome
    }

    /// Whether the stream is gone (its writer or its reader stopped): every later call fails.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.read_done.load(Ordering::Relaxed)
    }

    /// Sends a request and waits for its response (which may be an `Error` frame).
    ///
    /// # Errors
    /// The stream ended before the answer, or the request could not be encoded.
    pub async fn call(&self, message: Message) -> Result<Message, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { message, reply })
            .map_err(|_| CallError::Closed("writer gone".into()))?;
        rx.await
            .map_err(|_| CallError::Closed("no response before the stream ended".into()))?
    }
}

async fn write_loop(
    mut send: quinn::SendStream,
    mut rx: mpsc::UnboundedReceiver<Request>,
    waiters: Waiters,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 1024).await > 0 {
        // The first request woke this task before the other callers already woken had run:
        // let them queue theirs, so that one write (and one packet) carries them all.
        tokio::task::yield_now().await;
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        {
            let Ok(mut slots) = waiters.lock() else { break };
            for Request { message, reply } in batch.drain(..) {
                let Some(id) = slots.insert(reply) else {
                    // The reply was dropped with the full slab: the call fails as closed.
                    continue;
                };
                if let Err(e) = frame::encode(id, &message, &mut buf) {
                    if let Some(reply) = slots.remove(id) {
                        let _ = reply.send(Err(CallError::Encode(e)));
                    }
                }
            }
        }
        let written = send.write_all(&buf).await;
        // Answers, PINs and keys do not stay in memory after their frame left.
        buf.fill(0);
        buf.clear();
        if written.is_err() {
            break;
        }
    }
    let _ = send.finish();
}

async fn read_loop(
    mut recv: quinn::RecvStream,
    waiters: Waiters,
    pushes: mpsc::UnboundedSender<Message>,
    read_done: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut replies = Vec::with_capacity(256);
    let mut undecodable: Vec<(u32, String)> = Vec::new();
    'read: loop {
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            _ => break,
        }
        let mut broken = false;
        loop {
            match frame::decode(&mut buf) {
                Ok(Some(Frame { id: 0, message })) => {
                    let _ = pushes.send(message);
                }
                Ok(Some(Frame { id, message })) => replies.push((id, message)),
                Ok(None) => break,
                // An answer this library cannot read: its caller is told at once.
                Err(e) if e.recoverable() => {
                    if e.id != 0 {
                        undecodable.push((e.id, e.to_string()));
                    }
                    continue;
                }
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        REPLIES.fetch_add(replies.len() as u64, Ordering::Relaxed);
        // One lock for the read's replies; the callers are woken outside it.
        let woken: Vec<_> = match waiters.lock() {
            Ok(mut slots) => replies
                .drain(..)
                .map(|(id, m)| (id, Ok(m)))
                .chain(
                    undecodable
                        .drain(..)
                        .map(|(id, e)| (id, Err(CallError::Decode(e)))),
                )
                .filter_map(|(id, m)| slots.remove(id).map(|w| (w, m)))
                .collect(),
            Err(_) => break 'read,
        };
        for (waiter, answer) in woken {
            let _ = waiter.send(answer);
        }
        if broken {
            break;
        }
    }
    // Fail every call still waiting: dropping their senders wakes them with an error.
    if let Ok(mut w) = waiters.lock() {
        w.close();
    }
    read_done.store(true, Ordering::Relaxed);
}
