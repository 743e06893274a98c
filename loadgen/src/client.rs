//! A QUIC client of `slsd`: what a login frontend, an admin tool or an IB Key app would write.
//!
//! One [`Pipeline`] is one long-lived bidirectional stream on which many requests are in flight
//! at once. A writer task batches every request queued since its last write into one
//! `write_all`; a reader task decodes every frame of each read and hands each response to the
//! caller waiting on its id. Pushes (id 0) go to a channel of their own.
//!
//! It sees only the wire, like any client: it depends on `sls-protocol`, never on the daemon.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sls_protocol::{frame, push, DeviceId, Frame, Message, Role, PROTOCOL_VERSION};
use tokio::sync::{mpsc, oneshot};

/// Why a call failed. A daemon's `Error` frame is not a `CallError`: it is the call's answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The stream or connection is gone.
    #[error("stream closed: {0}")]
    Closed(String),
    /// The request could not be encoded (a field over its limit).
    #[error("cannot encode request: {0}")]
    Encode(#[from] sls_protocol::EncodeError),
    /// The daemon answered the handshake with something else than `Welcome`.
    #[error("handshake refused: {0:?}")]
    Handshake(Box<Message>),
}

/// Errors of setting a client up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {what}: {source}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Why.
        source: rustls::pki_types::pem::Error,
    },
    /// TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// QUIC configuration failed.
    #[error("QUIC config: {0}")]
    Quic(String),
    /// Connecting failed.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The daemon's address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// Opening the stream or the version handshake failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

/// The PEM material a client needs: the daemon's CA, and for `sls/1` a role certificate.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// The CA that signed the daemon's certificate (`<data-dir>/tls/ca.pem`).
    pub ca_pem: Vec<u8>,
    /// The client's certificate and key (frontend or admin), or none for an IB Key app.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Reads `ca.pem` and, for `role` frontend or admin, `<role>.pem` and `<role>.key` from the
    /// daemon's `tls` directory.
    pub fn from_dir(dir: &std::path::Path, role: Role) -> std::io::Result<ClientTls> {
        let ca_pem = std::fs::read(dir.join("ca.pem"))?;
        let identity = match role {
            Role::Device => None,
            _ => Some((
                std::fs::read(dir.join(format!("{}.pem", role.name())))?,
                std::fs::read(dir.join(format!("{}.key", role.name())))?,
            )),
        };
        Ok(ClientTls { ca_pem, identity })
    }

    /// A quinn client configuration for `alpn`: TLS 1.3 only, no 0-RTT.
    pub fn quinn_config(&self, alpn: &[u8]) -> Result<quinn::ClientConfig, SetupError> {
        self.config(alpn, false)
    }

    /// As [`ClientTls::quinn_config`], but willing to send 0-RTT early data when the server's
    /// ticket allows it: for tests that check the daemon never does.
    pub fn quinn_config_trying_0rtt(&self, alpn: &[u8]) -> Result<quinn::ClientConfig, SetupError> {
        self.config(alpn, true)
    }

    fn config(&self, alpn: &[u8], early_data: bool) -> Result<quinn::ClientConfig, SetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca_pem) {
            let cert = cert.map_err(|source| SetupError::Pem {
                what: "CA certificate",
                source,
            })?;
            roots.add(cert)?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots);
        let mut tls = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert_pem, key_pem)) => {
                let certs = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|source| SetupError::Pem {
                        what: "client certificate",
                        source,
                    })?;
                let key =
                    PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| SetupError::Pem {
                        what: "client key",
                        source,
                    })?;
                builder.with_client_auth_cert(certs, key)?
            }
        };
        tls.alpn_protocols = vec![alpn.to_vec()];
        tls.enable_early_data = early_data;
        let quic = QuicClientConfig::try_from(tls).map_err(|e| SetupError::Quic(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(std::time::Duration::from_secs(5)));
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

/// A client endpoint on an ephemeral loopback port, with socket buffers large enough for
/// bursts of handshakes.
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

/// Connects to a daemon.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    config: quinn::ClientConfig,
) -> Result<quinn::Connection, SetupError> {
    let err = |reason: String| SetupError::Connect { addr, reason };
    endpoint
        .connect_with(config, addr, "localhost")
        .map_err(|e| err(e.to_string()))?
        .await
        .map_err(|e| err(e.to_string()))
}

/// Replies every pipeline of this process has received: the load generator's request count, for
/// its CPU per request (issue 13).
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
    entries: Vec<(u32, Option<oneshot::Sender<Message>>)>,
    free: Vec<u32>,
}

const INDEX_BITS: u32 = 20;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;

impl Slots {
    /// Keeps `reply` and returns its request id (never 0).
    fn insert(&mut self, reply: oneshot::Sender<Message>) -> Option<u32> {
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
    fn remove(&mut self, id: u32) -> Option<oneshot::Sender<Message>> {
        let index = (id & INDEX_MASK).checked_sub(1)?;
        let entry = self.entries.get_mut(index as usize)?;
        if entry.0 != id >> INDEX_BITS {
            return None;
        }
        let reply = entry.1.take()?;
        self.free.push(index);
        Some(reply)
    }

    /// Drops every waiting caller: each call fails.
    fn clear(&mut self) {
        self.entries.clear();
        self.free.clear();
    }
}

struct Request {
    message: Message,
    reply: oneshot::Sender<Message>,
}

/// One long-lived stream with many requests in flight. Cheap to clone; every clone shares the
/// stream.
#[derive(Clone)]
pub struct Pipeline {
    tx: mpsc::UnboundedSender<Request>,
    role: Role,
}

/// Frames the daemon sends unsolicited (request id 0): pushes, and stream-level errors.
pub type Pushes = mpsc::UnboundedReceiver<Message>;

impl Pipeline {
    /// Opens a stream on `conn` and does the version handshake. Returns the pipeline, the role
    /// the daemon sees, and the channel of unsolicited frames.
    pub async fn open(
        conn: &quinn::Connection,
        agent: &str,
    ) -> Result<(Pipeline, Pushes), SetupError> {
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| CallError::Closed(e.to_string()))?;
        let waiters: Waiters = Arc::default();
        let (tx, rx) = mpsc::unbounded_channel();
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(send, rx, waiters.clone()));
        tokio::spawn(read_loop(recv, waiters, push_tx));
        let mut pipe = Pipeline {
            tx,
            role: Role::Frontend,
        };
        let hello = Message::Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            // The field's limit is in bytes: a longer name (in any script) is clipped at a char
            // boundary rather than making the handshake fail to encode.
            agent: sls_protocol::clip_text(agent, sls_protocol::limits::MAX_TEXT),
        };
        match pipe.call(hello).await? {
            Message::Welcome { role, .. } => pipe.role = role,
            other => return Err(CallError::Handshake(Box::new(other)).into()),
        }
        Ok((pipe, push_rx))
    }

    /// The role the daemon granted this connection.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Sends a request and waits for its response (which may be an `Error` frame).
    pub async fn call(&self, message: Message) -> Result<Message, CallError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { message, reply })
            .map_err(|_| CallError::Closed("writer gone".into()))?;
        rx.await
            .map_err(|_| CallError::Closed("no response before the stream ended".into()))
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
        {
            let Ok(mut slots) = waiters.lock() else { break };
            for Request { message, reply } in batch.drain(..) {
                // Dropping `reply` (no free slot, or a message that cannot be encoded) tells
                // the caller its call failed.
                let Some(id) = slots.insert(reply) else {
                    continue;
                };
                if frame::encode(id, &message, &mut buf).is_err() {
                    drop(slots.remove(id));
                }
            }
        }
        if send.write_all(&buf).await.is_err() {
            break;
        }
        buf.clear();
    }
    let _ = send.finish();
}

async fn read_loop(
    mut recv: quinn::RecvStream,
    waiters: Waiters,
    pushes: mpsc::UnboundedSender<Message>,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut replies = Vec::with_capacity(256);
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
                Err(e) if e.recoverable() => continue,
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
                .filter_map(|(id, m)| slots.remove(id).map(|w| (w, m)))
                .collect(),
            Err(_) => break 'read,
        };
        for (waiter, message) in woken {
            let _ = waiter.send(message);
        }
        if broken {
            break;
        }
    }
    // Fail every call still waiting: dropping their senders wakes them with an error.
    if let Ok(mut w) = waiters.lock() {
        w.clear();
    }
}

/// An IB Key app's hello on `app`: proves it holds `device`'s `secret`, after which the daemon
/// pushes that device's logins to this app.
pub async fn prove_device(app: &Pipeline, device: DeviceId, secret: &[u8]) -> anyhow::Result<()> {
    let nonce = match app.call(Message::DeviceHello { device }).await? {
        Message::DeviceNonce { nonce } => nonce,
        other => anyhow::bail!("device hello for {device:?}: {other:?}"),
    };
    let proof = push::device_proof(secret, device, &nonce);
    match app.call(Message::DeviceProve { proof }).await? {
        Message::Done {} => Ok(()),
        other => anyhow::bail!("device proof for {device:?}: {other:?}"),
    }
}
