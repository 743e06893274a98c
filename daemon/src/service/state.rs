//! What every connection and stream shares: the core, the journal, the limits, the tracker of
//! every task the service spawns, the shutdown signal, and the counts that the limits read.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use sls_protocol::{DeviceId, Message, Role, TxnId};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::limits::Admission;
use super::opened::Opened;
use super::throttle::Failures;
use crate::backend::Backend;
use crate::config::AdmissionPolicy;
use crate::engine::Core;
use crate::journal::Journal;
use crate::metrics::Metrics;

/// The verifier over the daemon's store (embedded, or a Redis Cluster shared with other nodes).
pub type Verifier<B> = Core<B>;

/// What the daemon's store hands out to wait on before an answer leaves (a journal position on
/// the embedded store; a round of replica acknowledgements on a Redis Cluster).
pub type Ticket<B> = <B as crate::engine::Store>::Ticket;

/// Limits of the service.
#[derive(Debug, Clone)]
pub struct ServiceLimits {
    /// Most requests in flight on one stream (announced in `Welcome`).
    pub max_in_flight: u32,
    /// Most parked `Await`s at once, daemon-wide.
    pub max_waiting: usize,
    /// Longest `Await` honoured.
    pub max_await: Duration,
    /// How often a parked `Await` looks at the store even without a wake (nodes sharing a
    /// store: a wake from another node may be lost); `None`: only when woken.
    pub await_poll: Option<Duration>,
    /// How long shutdown waits for the work in flight.
    pub grace: Duration,
    /// The bounds on connections and streams.
    pub admission: AdmissionPolicy,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits {
            max_in_flight: 1024,
            max_waiting: 100_000,
            max_await: Duration::from_secs(120),
            await_poll: None,
            grace: Duration::from_secs(5),
            admission: AdmissionPolicy::default(),
        }
    }
}

/// What every connection shares. Cheap to clone.
pub struct State<B: Backend>(Arc<Shared<B>>);

impl<B: Backend> Clone for State<B> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

/// The shared part of [`State`].
pub struct Shared<B: Backend> {
    /// The verifier.
    pub core: Verifier<B>,
    /// The audit trail, also the core's sink.
    pub audit: Arc<crate::audit::AuditLog>,
    /// Admin writes' first answers by idempotency key.
    pub idempotent: super::idempotent::Keys<Ticket<B>>,
    /// The journal (the embedded store's; none on a shared store).
    pub journal: Option<Journal>,
    /// The queue of notes to the other nodes sharing the store, drained by the publisher
    /// task (none for the embedded store).
    pub bus: Option<mpsc::Sender<Vec<u8>>>,
    /// This node's id on the bus (random per start).
    pub node: u64,
    /// IB Key devices connected to other nodes, as they announced them: node and until when.
    pub remote: DashMap<DeviceId, (u64, std::time::Instant), ahash::RandomState>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Limits.
    pub limits: ServiceLimits,
    /// Connected IB Key apps: where to push.
    pub devices: DashMap<DeviceId, mpsc::UnboundedSender<Message>, ahash::RandomState>,
    /// Frontends waiting for a push decision, by transaction.
    pub waiters: DashMap<TxnId, Arc<Notify>>,
    /// Parked `Await`s, daemon-wide (each held by a [`Held`] in its task).
    pub waiting: Arc<AtomicUsize>,
    /// Open connections.
    pub connections: AtomicU64,
    /// Who may hold a connection: the live, per-address, unproven and handshake counts.
    pub admission: Admission,
    /// Failed `DeviceProve`s per address (`--proof-failures-per-address`).
    pub proof_failures: Failures,
    /// Requests being handled right now (each held by a [`Held`], so that a panic cannot leak
    /// one). Reported when the drain's grace period runs out.
    pub in_flight: Arc<AtomicUsize>,
    /// Every task of the service: connections (and their handshakes), streams, durable waits
    /// and parked `Await`s. The drain closes it and waits for it to empty.
    pub tasks: TaskTracker,
    /// Cancelled when shutdown begins: new requests are refused with SHUTTING_DOWN, streams
    /// stop reading and end once they have sent what they owe, parked `Await`s answer now.
    pub stopping: CancellationToken,
}

impl<B: Backend> State<B> {
    /// A new state.
    pub fn new(
        core: Verifier<B>,
        journal: Option<Journal>,
        bus: Option<mpsc::Sender<Vec<u8>>>,
        metrics: Arc<Metrics>,
        limits: ServiceLimits,
        audit: Arc<crate::audit::AuditLog>,
        idempotent: super::idempotent::Keys<Ticket<B>>,
    ) -> State<B> {
        State(Arc::new(Shared {
            core,
            audit,
            idempotent,
            journal,
            bus,
            node: rand::random(),
            remote: DashMap::with_hasher(ahash::RandomState::new()),
            metrics,
            admission: Admission::new(limits.admission.clone()),
            proof_failures: Failures::new(limits.admission.proof_failures_per_address),
            limits,
            devices: DashMap::with_hasher(ahash::RandomState::new()),
            waiters: DashMap::new(),
            waiting: Arc::new(AtomicUsize::new(0)),
            connections: AtomicU64::new(0),
            in_flight: Arc::new(AtomicUsize::new(0)),
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
        }))
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.stopping.is_cancelled()
    }
}

impl<B: Backend> std::ops::Deref for State<B> {
    type Target = Shared<B>;
    fn deref(&self) -> &Shared<B> {
        &self.0
    }
}

/// Per-stream facts the handlers need.
pub struct Peer {
    /// The role the daemon gave the peer.
    pub role: Role,
    /// The peer's address.
    pub addr: SocketAddr,
    /// For an IB Key app: the device it is proving and the nonce it must sign.
    pub pending: Option<(DeviceId, [u8; 32])>,
    /// For an IB Key app: the devices it proved (several users, R8).
    pub proven: Vec<DeviceId>,
    /// The connection's: cancelled once any of its streams has proven a key (at once for a
    /// role certificate). Until then its frames are held to `MAX_FRAME_UNPROVEN`.
    pub proof: CancellationToken,
    /// The connection's open challenges (`--max-open-per-connection`), shared by its streams.
    pub opened: Arc<Opened>,
}

impl Peer {
    /// A peer on a connection whose `proof` token says whether it has proven a key.
    pub fn new(
        role: Role,
        addr: SocketAddr,
        proof: CancellationToken,
        opened: Arc<Opened>,
    ) -> Peer {
        Peer {
            role,
            addr,
            pending: None,
            proven: Vec::new(),
            proof,
            opened,
        }
    }

    /// The longest frame this stream may send now.
    pub fn max_frame(&self) -> usize {
        if self.proof.is_cancelled() {
            sls_protocol::limits::MAX_FRAME
        } else {
            sls_protocol::limits::MAX_FRAME_UNPROVEN
        }
    }
}

/// `n` units of a count, held until dropped: the count goes back down however the holder ends
/// (returns, panics, or its task is cancelled).
#[must_use = "the count goes back down when this is dropped"]
pub struct Held {
    count: Arc<AtomicUsize>,
    n: usize,
}

impl Held {
    /// Adds `n` to `count` until the result is dropped.
    pub fn new(count: &Arc<AtomicUsize>, n: usize) -> Held {
        count.fetch_add(n, Ordering::AcqRel);
        Held {
            count: Arc::clone(count),
            n,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.count.fetch_sub(self.n, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_count_goes_back_down_even_when_its_holder_panics() {
        let count = Arc::new(AtomicUsize::new(0));
        let a = Held::new(&count, 2);
        assert_eq!(count.load(Ordering::Acquire), 2);
        let c = Arc::clone(&count);
        let r = std::panic::catch_unwind(move || {
            let _b = Held::new(&c, 1);
            assert_eq!(c.load(Ordering::Acquire), 3);
            panic!("a handler's bug");
        });
        assert!(r.is_err());
        assert_eq!(count.load(Ordering::Acquire), 2);
        drop(a);
        assert_eq!(count.load(Ordering::Acquire), 0);
    }
}
