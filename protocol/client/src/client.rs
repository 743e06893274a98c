//! [`Client`]: one connection at a time to one of the configured nodes, with the failover,
//! retries and timeouts PROTOCOL.md asks of a client.
//!
//! - **Connect**: nodes are tried in order from the last one that worked; each gets
//!   `connect_timeout` for its handshake and `Hello`/`Welcome`. When every node failed, the
//!   next round waits a back-off (doubling from `backoff.0` to `backoff.1`, with jitter).
//! - **Calls**: each has `call_timeout` in all. In flight on the stream are at most
//!   `Welcome.max_in_flight` calls (a call that timed out gives its place back while the daemon
//!   may still owe its answer: a `TOO_MANY_IN_FLIGHT` that follows is waited out and sent again).
//! - **Retries** (PROTOCOL.md §1.1, §4 "UNAVAILABLE", §8): a request the daemon did not handle
//!   (`SHUTTING_DOWN`; a `rate_limited` verdict, waited out) is sent again, on the next node
//!   for `SHUTTING_DOWN`. A request that may have been handled (connection lost, `UNAVAILABLE`)
//!   is sent again only when doing so is safe: reads, and a `Begin` without a device
//!   ([`repeatable`]); after a lost connection the same node is tried first, then the next;
//!   after `UNAVAILABLE`, the next node. A `PasswordFailed` that may have been handled is never
//!   sent twice: the caller gets [`ClientError::Lost`] or the refusal. An `Answer` whose reply
//!   did not come is followed by a `TxnVerdict` on the next node ([`Client::answer`]): sent
//!   again only if that says the challenge is still open, where one answer spends it (R12).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sls_protocol::{DeviceId, Message, Status, Verdict};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::config::ClientConfig;
use crate::error::{humanize, ClientError, SetupError, Unreachable};
use crate::pipeline::{self, CallError, Pipeline, Pushes};
use crate::tls::alpn_of;

/// A client of one sls deployment (one or several nodes). Cheap to clone: clones share the
/// connection. Every method is safe to call from many tasks at once.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use sls_client::{Client, ClientConfig, ClientTls, Role};
/// let tls = ClientTls::from_dir("sls-data/tls".as_ref(), Role::Frontend)?;
/// let client = Client::connect(ClientConfig::new(["127.0.0.1:7443"], tls)?).await?;
/// let status = client.status("alice").await?;
/// println!("locked until {}", status.locked_until_ms);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    config: ClientConfig,
    quinn: quinn::ClientConfig,
    endpoint: quinn::Endpoint,
    /// The session calls go to; replaced when it fails. Never held across an await.
    current: Mutex<Option<Arc<Session>>>,
    /// One reconnect at a time, and its back-off.
    connecting: tokio::sync::Mutex<Backoff>,
    /// The node to try first.
    next: AtomicUsize,
    /// An IB Key app's proven devices, proven again on every new connection.
    proven: Mutex<Vec<(DeviceId, Zeroizing<Vec<u8>>)>>,
    /// Where an IB Key app's pushes go, from whichever connection brings them.
    pushes: mpsc::UnboundedSender<Message>,
    /// Held across `recv` (cancel-safe: a dropped `next_push` loses nothing).
    pushes_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>,
}

struct Session {
    node: usize,
    conn: quinn::Connection,
    pipe: Pipeline,
    permits: Semaphore,
}

impl Session {
    fn alive(&self) -> bool {
        !self.pipe.is_closed() && self.conn.close_reason().is_none()
    }
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
}

/// Whether a request may be sent again after it may have been handled: it reads, or creates
/// only a challenge the user will never see (PROTOCOL.md §4): a `Begin` without a device, a
/// `BeginTyped`. A `Begin` with a device is not: for an IB Key whose app is connected it sends
/// a push, and a second one would show the user two (and count towards push fatigue, R6).
pub fn repeatable(message: &Message) -> bool {
    matches!(
        message,
        Message::Ping {}
            | Message::Begin { device: None, .. }
            | Message::BeginTyped { .. }
            | Message::Await { .. }
            | Message::TxnVerdict { .. }
            | Message::Status { .. }
            | Message::Notices { .. }
            | Message::GetStats {}
            | Message::AuditRead { .. }
            | Message::ListDevices { .. }
            | Message::UserDetail { .. }
            | Message::ListShares { .. }
    )
}

impl Client {
    /// Connects to the first node of `config` that answers (in order).
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] naming each node and why; [`ClientError::Role`] when the
    /// daemon granted another role than asked; [`ClientError::Setup`] for bad certificates.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let client = Client::new(config)?;
        let nodes = client.shared.config.nodes.len() as u32;
        // One round over every node, each with its whole connect timeout.
        let deadline = after(
            client
                .shared
                .config
                .connect_timeout
                .saturating_mul(nodes.max(1)),
        );
        client.session(deadline).await?;
        Ok(client)
    }

    /// A client that connects at its first call.
    ///
    /// # Errors
    /// Bad certificates, or the UDP socket cannot be opened.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        for (what, t) in [
            ("connect timeout", config.connect_timeout),
            ("call timeout", config.call_timeout),
            ("idle timeout", config.idle_timeout),
        ] {
            if t.is_zero() || t > MAX_TIMEOUT {
                return Err(SetupError::Config(format!(
                    "the {what} must be more than 0 and at most a day, not {t:?}"
                ))
                .into());
            }
        }
        let quinn = config
            .tls
            .quinn_config_idle(alpn_of(config.role), config.idle_timeout)?;
        let bind = config.bind.unwrap_or_else(|| {
            let v6 = config
                .nodes
                .first()
                .is_some_and(|n| n.host.parse::<std::net::Ipv6Addr>().is_ok());
            if v6 {
                "[::]:0".parse().unwrap_or(([0, 0, 0, 0], 0).into())
            } else {
                ([0, 0, 0, 0], 0).into()
            }
        });
        let endpoint = pipeline::endpoint(bind).map_err(SetupError::Socket)?;
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Client {
            shared: Arc::new(Shared {
                config,
                quinn,
                endpoint,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(Backoff::default()),
                next: AtomicUsize::new(0),
                proven: Mutex::new(Vec::new()),
                pushes: tx,
                pushes_rx: tokio::sync::Mutex::new(rx),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// The node the client is connected to now, if any.
    pub fn connected_node(&self) -> Option<String> {
        let s = self.current()?;
        self.shared.config.nodes.get(s.node).map(|n| n.to_string())
    }

    /// The `Welcome` of the current connection, if any.
    pub fn welcome(&self) -> Option<pipeline::Welcome> {
        self.current().map(|s| s.pipe.welcome())
    }

    /// Closes the connection (in-flight calls fail); the next call connects again.
    pub fn disconnect(&self) {
        if let Ok(mut cur) = self.shared.current.lock() {
            if let Some(s) = cur.take() {
                s.conn.close(0u32.into(), b"client disconnect");
            }
        }
    }

    /// Sends any request and returns the daemon's answer, with the retries and failover above.
    /// An `Error` frame is [`ClientError::Refused`]. The typed methods ([`Client::begin`], …)
    /// are built on it.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn call(&self, message: Message) -> Result<Message, ClientError> {
        let extra = match &message {
            Message::Await { timeout_ms, .. } => Duration::from_millis(u64::from(*timeout_ms)),
            _ => Duration::ZERO,
        };
        self.call_until(
            message,
            Instant::now() + self.shared.config.call_timeout + extra,
        )
        .await
    }

    pub(crate) async fn call_until(
        &self,
        message: Message,
        deadline: Instant,
    ) -> Result<Message, ClientError> {
        let timeout = self.shared.config.call_timeout;
        let repeatable = repeatable(&message);
        let nodes = self.shared.config.nodes.len();
        // Nodes that answered UNAVAILABLE to this call: each is asked once.
        let mut unavailable = 0;
        let mut message = message;
        loop {
            let session = self.session(deadline).await?;
            // An `Await` sent again waits only for what is left of its call.
            if let Message::Await { timeout_ms, .. } = &mut message {
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .saturating_sub(timeout);
                *timeout_ms =
                    (*timeout_ms).min(u32::try_from(left.as_millis()).unwrap_or(u32::MAX));
            }
            let permit = tokio::time::timeout_at(deadline, session.permits.acquire())
                .await
                .map_err(|_| ClientError::Timeout(timeout))?;
            let sent = tokio::time::timeout_at(deadline, session.pipe.call(message.clone())).await;
            drop(permit);
            let answer = match sent {
                Err(_) => return Err(ClientError::Timeout(timeout)),
                Ok(Err(CallError::Encode(e))) => return Err(ClientError::Encode(e)),
                Ok(Err(CallError::Decode(e))) => return Err(ClientError::Decode(e)),
                Ok(Err(CallError::Handshake(m))) => return Err(ClientError::Unexpected(m)),
                Ok(Err(CallError::Closed(why))) => {
                    // The same node first (an idempotent write's key lives there), unless it
                    // said it is shutting down.
                    self.forget(&session, shutting_down(&session.conn));
                    if repeatable {
                        continue;
                    }
                    return Err(ClientError::Lost(why));
                }
                Ok(Ok(answer)) => answer,
            };
            match answer {
                Message::Error { status, message } => match status {
                    // Not handled (PROTOCOL.md §2, order of checks): another node may.
                    Status::SHUTTING_DOWN => {
                        self.forget(&session, true);
                        continue;
                    }
                    Status::TOO_MANY_IN_FLIGHT => {
                        sleep_within(Duration::from_millis(10), deadline, timeout).await?;
                        continue;
                    }
                    Status::UNAVAILABLE if repeatable && unavailable + 1 < nodes => {
                        unavailable += 1;
                        self.forget(&session, true);
                        continue;
                    }
                    _ => return Err(ClientError::Refused { status, message }),
                },
                Message::Judged {
                    verdict: Verdict::RateLimited { retry_after_ms },
                } if self.shared.config.wait_rate_limited => {
                    // A rate-limited request did nothing (PROTOCOL.md §8): wait as told.
                    let wait = Duration::from_millis(u64::from(retry_after_ms.max(1)));
                    if Instant::now() + wait >= deadline {
                        return Ok(Message::Judged {
                            verdict: Verdict::RateLimited { retry_after_ms },
                        });
                    }
                    tokio::time::sleep(wait).await;
                }
                other => return Ok(other),
            }
        }
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.shared.current.lock().ok()?.clone()
    }

    /// Connects if there is no live connection, within `deadline`: the index of the node the
    /// next call goes to.
    pub(crate) async fn connected(&self, deadline: Instant) -> Result<usize, ClientError> {
        Ok(self.session(deadline).await?.node)
    }

    /// Moves the next call past `node` (the index [`Client::connected`] gave), whether it is
    /// still connected, was forgotten since, or another node already took its place.
    pub(crate) fn leave(&self, node: usize) {
        match self.current() {
            Some(s) if s.node == node => self.forget(&s, true),
            Some(_) => {}
            None => {
                let n = self.shared.config.nodes.len().max(1);
                let _ = self.shared.next.compare_exchange(
                    node,
                    (node + 1) % n,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Stops using `session`; with `advance`, the next connect starts at the next node.
    fn forget(&self, session: &Arc<Session>, advance: bool) {
        if let Ok(mut cur) = self.shared.current.lock() {
            if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, session)) {
                *cur = None;
                if advance {
                    let n = self.shared.config.nodes.len().max(1);
                    self.shared
                        .next
                        .store((session.node + 1) % n, Ordering::Relaxed);
                }
            }
        }
    }

    /// The live session, connecting (one task at a time) when there is none.
    async fn session(&self, deadline: Instant) -> Result<Arc<Session>, ClientError> {
        let timeout = self.shared.config.call_timeout;
        match self.current() {
            Some(s) if s.alive() => return Ok(s),
            Some(s) => self.forget(&s, shutting_down(&s.conn)),
            None => {}
        }
        let mut backoff = tokio::time::timeout_at(deadline, self.shared.connecting.lock())
            .await
            .map_err(|_| ClientError::Timeout(timeout))?;
        // Another task may have connected while this one waited.
        if let Some(s) = self.current().filter(|s| s.alive()) {
            return Ok(s);
        }
        if let Some(at) = backoff.not_before {
            if at >= deadline {
                return Err(ClientError::Unreachable(Unreachable {
                    attempts: vec![(
                        "every node".into(),
                        "all failed just before; waiting out the back-off".into(),
                    )],
                }));
            }
            tokio::time::sleep_until(at).await;
        }
        match self.connect_round(deadline).await {
            Ok(s) => {
                *backoff = Backoff::default();
                let s = Arc::new(s);
                if let Ok(mut cur) = self.shared.current.lock() {
                    *cur = Some(s.clone());
                }
                Ok(s)
            }
            Err(e) => {
                backoff.failures = backoff.failures.saturating_add(1);
                let (least, most) = self.shared.config.backoff;
                let exp = least
                    .saturating_mul(1u32 << backoff.failures.min(16))
                    .min(most);
                // Jitter: between half and all of it.
                let jitter = rand::random::<f64>() * 0.5 + 0.5;
                backoff.not_before = Some(Instant::now() + exp.mul_f64(jitter));
                Err(e)
            }
        }
    }

    /// Tries every node once, from the preferred one.
    async fn connect_round(&self, deadline: Instant) -> Result<Session, ClientError> {
        let config = &self.shared.config;
        let n = config.nodes.len();
        let first = self.shared.next.load(Ordering::Relaxed) % n.max(1);
        let mut attempts = Vec::new();
        for i in 0..n {
            let index = (first + i) % n;
            let node = &config.nodes[index];
            let now = Instant::now();
            if now >= deadline {
                attempts.push((node.to_string(), "no time left in the call".into()));
                continue;
            }
            let node_deadline =
                deadline.min(now.checked_add(config.connect_timeout).unwrap_or(deadline));
            match tokio::time::timeout_at(node_deadline, self.connect_node(index)).await {
                Ok(Ok(s)) => {
                    self.shared.next.store(index, Ordering::Relaxed);
                    return Ok(s);
                }
                Ok(Err(NodeError::Fatal(e))) => return Err(e),
                Ok(Err(NodeError::Failed(why))) => attempts.push((node.to_string(), why)),
                Err(_) => attempts.push((
                    node.to_string(),
                    format!(
                        "within {}",
                        humanize(node_deadline.saturating_duration_since(now))
                    ),
                )),
            }
        }
        Err(ClientError::Unreachable(Unreachable { attempts }))
    }

    async fn connect_node(&self, index: usize) -> Result<Session, NodeError> {
        let config = &self.shared.config;
        let node = &config.nodes[index];
        let addrs: Vec<_> = tokio::net::lookup_host((node.host.as_str(), node.port))
            .await
            .map_err(|e| NodeError::Failed(format!("cannot resolve {}: {e}", node.host)))?
            .collect();
        let local_v6 = self.shared.endpoint.local_addr().is_ok_and(|a| a.is_ipv6());
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv6() == local_v6)
            .or(addrs.first())
            .copied()
            .ok_or_else(|| NodeError::Failed(format!("{} has no address", node.host)))?;
        let conn = pipeline::connect(
            &self.shared.endpoint,
            addr,
            config.name_for(node),
            self.shared.quinn.clone(),
        )
        .await
        .map_err(|e| NodeError::Failed(e.reason))?;
        let (pipe, pushes) = Pipeline::open(&conn, &config.agent)
            .await
            .map_err(|e| NodeError::Failed(e.to_string()))?;
        let welcome = pipe.welcome();
        if welcome.role != config.role {
            return Err(NodeError::Fatal(ClientError::Role {
                asked: config.role,
                granted: welcome.role,
            }));
        }
        let proven: Vec<_> = self
            .shared
            .proven
            .lock()
            .map(|p| p.iter().map(|(d, s)| (*d, s.clone())).collect())
            .unwrap_or_default();
        for (device, secret) in proven {
            pipeline::prove_device(&pipe, device, &secret)
                .await
                .map_err(|e| match e {
                    ClientError::Refused { .. } => NodeError::Fatal(e),
                    other => NodeError::Failed(other.to_string()),
                })?;
        }
        forward_pushes(pushes, self.shared.pushes.clone());
        Ok(Session {
            node: index,
            conn,
            pipe,
            // Never under 256 (PROTOCOL.md §1); a daemon that says 0 gets one at a time.
            permits: Semaphore::new((welcome.max_in_flight as usize).max(1)),
        })
    }

    /// Proves possession of `device`'s key on the connection (an IB Key app, PROTOCOL.md
    /// §5.2), and again on every connection after a reconnect; the daemon then pushes that
    /// device's logins to this client ([`Client::next_push`]).
    ///
    /// # Errors
    /// [`ClientError::Refused`] with `BAD_PROOF` for a wrong key or a device not enrolled.
    pub async fn prove_device(&self, device: DeviceId, secret: &[u8]) -> Result<(), ClientError> {
        let deadline = after(self.shared.config.call_timeout);
        let session = self.session(deadline).await?;
        tokio::time::timeout_at(
            deadline,
            pipeline::prove_device(&session.pipe, device, secret),
        )
        .await
        .map_err(|_| ClientError::Timeout(self.shared.config.call_timeout))??;
        if let Ok(mut p) = self.shared.proven.lock() {
            p.retain(|(d, _)| *d != device);
            p.push((device, Zeroizing::new(secret.to_vec())));
        }
        Ok(())
    }

    /// The next frame the daemon sent unsolicited (a `Push` to an IB Key app), from whichever
    /// connection; `None` once the client is dropped. Cancel-safe: a call dropped while it
    /// waits (a `select!`, a timeout) loses no push.
    pub async fn next_push(&self) -> Option<Message> {
        self.shared.pushes_rx.lock().await.recv().await
    }
}

/// The longest timeout a client takes: a day.
const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// `d` from now (the timeouts are at most a day, [`MAX_TIMEOUT`]).
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or(now + MAX_TIMEOUT)
}

/// Whether the daemon closed `conn` because it is shutting down (PROTOCOL.md §1.1).
fn shutting_down(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(c))
            if c.error_code.into_inner() == sls_protocol::CloseCode::SHUTTING_DOWN.value()
    )
}

enum NodeError {
    /// This node failed: try the next.
    Failed(String),
    /// No node will do better (a role not granted, a proof refused).
    Fatal(ClientError),
}

fn forward_pushes(mut from: Pushes, to: mpsc::UnboundedSender<Message>) {
    tokio::spawn(async move {
        while let Some(m) = from.recv().await {
            if to.send(m).is_err() {
                break;
            }
        }
    });
}

async fn sleep_within(
    wait: Duration,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), ClientError> {
    if Instant::now() + wait >= deadline {
        return Err(ClientError::Timeout(timeout));
    }
    tokio::time::sleep(wait).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sls_protocol::{Purpose, TxnId};

    #[test]
    fn only_reads_and_begins_are_sent_again_after_a_lost_connection() {
        let ip = std::net::IpAddr::from([192, 0, 2, 1]);
        let begin = Message::Begin {
            user: "alice".into(),
            purpose: Purpose::Login,
            device: None,
            client: ip,
        };
        assert!(repeatable(&begin));
        // A Begin on a device may have pushed to the user's phone: never twice (R6).
        let on_device = Message::Begin {
            user: "alice".into(),
            purpose: Purpose::Login,
            device: Some(sls_protocol::DeviceId(2)),
            client: ip,
        };
        assert!(!repeatable(&on_device));
        assert!(repeatable(&Message::Status {
            user: "alice".into()
        }));
        // Judged, or counted, perhaps: never twice (PROTOCOL.md §4, "UNAVAILABLE").
        let answer = Message::Answer {
            txn: TxnId(7),
            response: "12345678".into(),
            client: ip,
        };
        assert!(!repeatable(&answer));
        // Its verdict is read (TxnVerdict) instead, as often as need be: it changes nothing.
        assert!(repeatable(&Message::TxnVerdict { txn: TxnId(7) }));
        assert!(!repeatable(&Message::PasswordFailed {
            user: "alice".into(),
            client: ip
        }));
        assert!(!repeatable(&Message::Unlock {
            user: "alice".into()
        }));
    }

    #[test]
    fn an_unreachable_deployment_names_every_node_and_why() {
        let e = ClientError::Unreachable(Unreachable {
            attempts: vec![
                ("10.0.0.1:7443".into(), "within 5s".into()),
                (
                    "sls-b:7443".into(),
                    "cannot resolve sls-b: no such host".into(),
                ),
            ],
        });
        assert_eq!(
            e.to_string(),
            "no slsd answering at 10.0.0.1:7443 within 5s; at sls-b:7443 (cannot resolve sls-b: no such host)"
        );
        assert_eq!(humanize(Duration::from_micros(999_990)), "1s");
        assert_eq!(humanize(Duration::from_millis(1500)), "1.5s");
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
    }
}
