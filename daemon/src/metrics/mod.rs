//! The daemon's metrics, by the Prometheus conventions, served on `--metrics ADDR`.
//!
//! The hot path touches plain atomics only: [`Metrics`] keeps them in arrays indexed by
//! request type and verdict, resolved once at startup, so a request costs no map lookup and no
//! lock. At scrape time [`expose`] reads them, with the counts owned elsewhere (the core's, the
//! admission's, the journal's: a [`Readings`] the service hands over), and writes the
//! OpenMetrics text through `prometheus-client`; [`process`] adds the process's own (memory,
//! CPU, start time) and [`http`] serves `/metrics`, `/healthz` and `/readyz`. Every label
//! value comes from a fixed set (message types, verdict kinds, roles, status codes), never
//! from user data.
//!
//! ```text
//!  http       axum endpoint: /metrics /healthz /readyz      ─▶ expose
//!  expose     the Collector: families, names, help, labels  ─▶ histogram, process, (mod)
//!  process    /proc/self: RSS, CPU, start time              ─▶ (none)
//!  histogram  fixed-bucket atomic histogram                 ─▶ (none)
//! ```

pub mod expose;
pub mod histogram;
pub mod http;
pub mod process;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use sls_protocol::{Access, Message, Role, Status, Verdict};

pub use expose::{Readings, RedisReadings, StoreReadings};
use histogram::Histogram;

/// The `verdict` label's values, in the order the per-verdict slots are kept: the protocol's
/// verdict kinds, then `none` (an answer that carries no verdict) and `error` (an `Error`
/// frame).
pub const VERDICTS: [&str; 13] = [
    "accepted",
    "rejected",
    "locked",
    "rate_limited",
    "expired",
    "replayed",
    "unknown",
    "malformed",
    "needs_stronger_device",
    "pending",
    "declined",
    "none",
    "error",
];

/// Of [`VERDICTS`], how many are the protocol's verdict kinds.
pub const VERDICT_KINDS: usize = 11;

/// The slot of a reply's verdict in [`VERDICTS`].
fn verdict_slot(reply: &Message) -> usize {
    match reply {
        Message::Judged { verdict } => match verdict {
            Verdict::Accepted { .. } => 0,
            Verdict::Rejected { .. } => 1,
            Verdict::Locked { .. } => 2,
            Verdict::RateLimited { .. } => 3,
            Verdict::Expired => 4,
            Verdict::Replayed => 5,
            Verdict::Unknown => 6,
            Verdict::Malformed => 7,
            Verdict::NeedsStrongerDevice { .. } => 8,
            Verdict::Pending => 9,
            Verdict::Declined => 10,
        },
        Message::Error { .. } => 12,
        _ => 11,
    }
}

/// The statuses a refused frame is counted under ([`Metrics::frame_error`]): written at 0 from
/// the start, so that a board's panel of frame errors reads 0, not "no data", until the first.
pub const FRAME_ERROR_STATUSES: [Status; 6] = [
    Status::MALFORMED_FRAME,
    Status::FRAME_TOO_LARGE,
    Status::UNKNOWN_TYPE,
    Status::FORBIDDEN,
    Status::INVALID_UTF8,
    Status::UNEXPECTED,
];

/// The roles, in the order the connection gauges are kept.
pub const ROLES: [Role; 3] = [Role::Frontend, Role::Admin, Role::Device];

fn role_slot(role: Role) -> usize {
    match role {
        Role::Frontend => 0,
        Role::Admin => 1,
        Role::Device => 2,
    }
}

/// The `type` label's values: the request types a client may send (the daemon's own types are
/// never requests), in protocol order.
pub fn request_types() -> impl Iterator<Item = (u16, &'static str)> {
    Message::TYPES
        .iter()
        .filter(|(code, _, access)| *access != Access::Server && *code < 0x100)
        .map(|(code, name, _)| (*code, *name))
}

/// Per request type and verdict: the handling time and the wait before it.
#[derive(Default)]
struct Timings {
    /// From the start of the request's handling to its answer.
    handling: Histogram,
    /// From the read that brought the request in to the start of its handling (behind the
    /// requests before it in the same read).
    queued: Histogram,
}

/// The daemon's metrics: what the hot path counts.
pub struct Metrics {
    /// A request type's code (low byte; request codes are `0x00NN`) to its slot in
    /// [`request_types`] order, plus one; 0 for a code that is not a request type.
    type_of_code: [u8; 256],
    /// The request types' names, by slot.
    types: Vec<&'static str>,
    /// Timings by `type slot * VERDICTS.len() + verdict slot`.
    timings: Box<[Timings]>,
    /// Time answers that changed state waited for their change to be durable.
    durable: Histogram,
    frame_errors: Mutex<BTreeMap<u16, u64>>,
    connections: [AtomicU64; ROLES.len()],
    /// Connections whose handshake completed, by the QUIC endpoint (`--endpoints`) that took
    /// them.
    accepted: Box<[AtomicU64]>,
    batches: AtomicU64,
    batched_frames: AtomicU64,
    bus_dropped: AtomicU64,
}

impl Default for Metrics {
    /// The metrics of a daemon with one endpoint.
    fn default() -> Metrics {
        Metrics::new(1)
    }
}

impl Metrics {
    /// The metrics of a daemon serving on `endpoints` QUIC endpoints.
    #[must_use]
    pub fn new(endpoints: usize) -> Metrics {
        let mut type_of_code = [0u8; 256];
        let mut types = Vec::new();
        for (code, name) in request_types() {
            types.push(name);
            // Fewer than 255 request types: the slot fits (checked by a test).
            type_of_code[usize::from(code)] = u8::try_from(types.len()).unwrap_or(0);
        }
        Metrics {
            timings: (0..types.len() * VERDICTS.len())
                .map(|_| Timings::default())
                .collect(),
            type_of_code,
            types,
            durable: Histogram::default(),
            frame_errors: Mutex::new(FRAME_ERROR_STATUSES.iter().map(|s| (s.0, 0)).collect()),
            connections: Default::default(),
            accepted: (0..endpoints).map(|_| AtomicU64::new(0)).collect(),
            batches: AtomicU64::new(0),
            batched_frames: AtomicU64::new(0),
            bus_dropped: AtomicU64::new(0),
        }
    }

    /// A connection's handshake completed on endpoint `endpoint` (one relaxed add; an index
    /// past the endpoints counted is ignored).
    pub fn endpoint_accepted(&self, endpoint: usize) {
        if let Some(n) = self.accepted.get(endpoint) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection of `role` opened.
    pub fn connection_opened(&self, role: Role) {
        self.connections[role_slot(role)].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection of `role` closed.
    pub fn connection_closed(&self, role: Role) {
        self.connections[role_slot(role)].fetch_sub(1, Ordering::Relaxed);
    }

    /// One request of type `type_code` answered with `reply`: it waited `queued` after its
    /// read, and its handling took `took`. Four relaxed atomic adds.
    pub fn request(&self, type_code: u16, reply: &Message, queued: Duration, took: Duration) {
        let Some(t) = usize::from(*self.type_of_code.get(usize::from(type_code)).unwrap_or(&0))
            .checked_sub(1)
        else {
            return;
        };
        if let Some(slot) = self.timings.get(t * VERDICTS.len() + verdict_slot(reply)) {
            slot.handling.observe(took);
            slot.queued.observe(queued);
        }
    }

    /// Answers that changed state waited `took` for their change to be durable.
    pub fn durable_wait(&self, took: Duration) {
        self.durable.observe(took);
    }

    /// A frame refused with `status` (not the hot path: a lock is fine here).
    pub fn frame_error(&self, status: Status) {
        *self.frame_errors.lock().entry(status.0).or_default() += 1;
    }

    /// A note to the other nodes dropped: the bus's queue was full.
    pub fn bus_dropped(&self) {
        self.bus_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// One read's worth of frames handled together.
    pub fn batch(&self, frames: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_frames
            .fetch_add(frames as u64, Ordering::Relaxed);
    }

    /// The timings of request type slot `t` and verdict slot `v`.
    fn timings(&self, t: usize, v: usize) -> Option<&Timings> {
        self.timings.get(t * VERDICTS.len() + v)
    }
}

#[cfg(test)]
mod tests;
