//! Admission: which connections the daemon holds, and what a peer may hold of its memory
//! before it has proven anything.
//!
//! ```text
//!  Incoming ─▶ not validated, and handshakes ≥ retry_above or the address's handshake
//!              rate spent                                  ─▶ stateless retry
//!           ─▶ the (validated) address's handshake rate spent ─▶ refused
//!           ─▶ handshakes ≥ max_handshakes                 ─▶ refused
//!           ─▶ handshake ─▶ admit(ip, device?) ─▶ Slot (live; unproven for an IB Key app)
//!                                             └▶ closed: BUSY / ADDRESS_BUSY / UNPROVEN_BUSY
//!  Slot::proven: an unproven slot becomes a plain live one; dropping a slot frees it
//! ```
//!
//! Every count is kept under one lock, taken for a few map operations per connection (never
//! per request, never across an await), so a cap is exact: no two connections both take the
//! last place.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sls_protocol::CloseCode;

use crate::config::AdmissionPolicy;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The daemon holds `max_connections`.
    Busy,
    /// The address holds `per_address`.
    AddressBusy,
    /// Unproven IB Key app connections: the address's or the daemon's cap.
    Unproven,
}

impl Refusal {
    /// The code the connection is closed with.
    pub fn code(self) -> CloseCode {
        match self {
            Refusal::Busy => CloseCode::BUSY,
            Refusal::AddressBusy => CloseCode::ADDRESS_BUSY,
            Refusal::Unproven => CloseCode::UNPROVEN_BUSY,
        }
    }
}

/// Events counted for the stats and the metrics.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// A connection closed with BUSY.
    RefusedBusy,
    /// A connection closed with ADDRESS_BUSY.
    RefusedAddress,
    /// A connection closed with UNPROVEN_BUSY.
    RefusedUnproven,
    /// A handshake refused: too many in progress.
    RefusedHandshake,
    /// A handshake refused: its address's handshake rate spent.
    RefusedHandshakeRate,
    /// A stateless retry sent.
    Retry,
    /// A connection closed with PROOF_TIMEOUT.
    ProofTimeout,
    /// A stream reset with FRAME_TIMEOUT.
    FrameTimeout,
    /// A stream stopped with FRAMING_LOST.
    FramingLost,
}

const EVENTS: [&str; 9] = [
    "refused_busy",
    "refused_address",
    "refused_unproven",
    "refused_handshakes",
    "refused_handshake_rate",
    "retries",
    "proof_timeouts",
    "frame_timeouts",
    "framing_lost",
];

#[derive(Default)]
struct PerAddr {
    live: usize,
    unproven: usize,
}

/// Token buckets of handshakes for one address: any, and validated ones.
struct Bucket {
    any: f64,
    validated: f64,
    at: Instant,
}

/// Buckets of addresses not seen for this long are full again, and forgotten.
const BUCKET_IDLE: Duration = Duration::from_secs(2);
/// Most addresses with a bucket.
const MAX_BUCKETS: usize = 65_536;

#[derive(Default)]
struct Table {
    live: usize,
    unproven: usize,
    by_addr: HashMap<IpAddr, PerAddr>,
    buckets: HashMap<IpAddr, Bucket>,
    /// When idle buckets were last forgotten.
    pruned: Option<Instant>,
}

struct Inner {
    policy: AdmissionPolicy,
    table: Mutex<Table>,
    handshakes: AtomicUsize,
    /// Bytes of partial frames held by every stream.
    partial: AtomicUsize,
    events: [AtomicU64; EVENTS.len()],
}

/// The admission counts of the daemon. Cheap to clone.
#[derive(Clone)]
pub struct Admission(Arc<Inner>);

impl Admission {
    /// No connection yet.
    pub fn new(policy: AdmissionPolicy) -> Admission {
        Admission(Arc::new(Inner {
            policy,
            table: Mutex::new(Table::default()),
            handshakes: AtomicUsize::new(0),
            partial: AtomicUsize::new(0),
            events: Default::default(),
        }))
    }

    /// The policy.
    pub fn policy(&self) -> &AdmissionPolicy {
        &self.0.policy
    }

    /// Counts `event`.
    pub fn count(&self, event: Event) {
        self.0.events[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a client whose address is not validated should be sent a stateless retry.
    pub fn should_retry(&self, validated: bool) -> bool {
        !validated && self.0.handshakes.load(Ordering::Acquire) >= self.0.policy.retry_above
    }

    /// Whether `ip` may begin a handshake at `now`, spending one of its tokens if so:
    /// `--handshakes-per-address` a second, a burst of twice that. An address that has been
    /// validated (a retry came back) spends from a bucket of its own, which a spoofed source
    /// cannot reach: it can only make the real one's handshakes go through a retry.
    pub fn handshake_rate(&self, ip: IpAddr, now: Instant, validated: bool) -> bool {
        let rate = self.0.policy.handshakes_per_address;
        if rate == 0 {
            return true;
        }
        let rate = f64::from(rate);
        let burst = 2.0 * rate;
        let mut t = self.0.table.lock();
        if !t.buckets.contains_key(&ip) && t.buckets.len() >= MAX_BUCKETS {
            // Forget the idle ones, at most once a second (a scan per packet would be the
            // attack); while the table is full of busy ones, a new address is sent a retry
            // (no state) or, once validated, let through.
            let due = t
                .pruned
                .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
            if due {
                t.pruned = Some(now);
                t.buckets
                    .retain(|_, b| now.saturating_duration_since(b.at) < BUCKET_IDLE);
            }
            if t.buckets.len() >= MAX_BUCKETS {
                return validated;
            }
        }
        let b = t.buckets.entry(ip).or_insert(Bucket {
            any: burst,
            validated: burst,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * rate;
        b.any = (b.any + refill).min(burst);
        b.validated = (b.validated + refill).min(burst);
        b.at = now;
        let tokens = if validated {
            &mut b.validated
        } else {
            &mut b.any
        };
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }

    /// A place for one more handshake, or `None` when `max_handshakes` are in progress.
    pub fn handshake(&self) -> Option<Handshake> {
        let max = self.0.policy.max_handshakes;
        self.0
            .handshakes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n.saturating_add(1))
            })
            .ok()?;
        Some(Handshake(self.clone()))
    }

    /// A live connection from `ip` (unproven when `device`), or why not.
    ///
    /// # Errors
    /// The cap that is full.
    pub fn admit(&self, ip: IpAddr, device: bool) -> Result<Slot, Refusal> {
        let p = &self.0.policy;
        let mut t = self.0.table.lock();
        if t.live >= p.max_connections {
            return Err(Refusal::Busy);
        }
        let (live, unproven) = t.by_addr.get(&ip).map_or((0, 0), |a| (a.live, a.unproven));
        if live >= p.per_address {
            return Err(Refusal::AddressBusy);
        }
        if device && (t.unproven >= p.max_unproven || unproven >= p.unproven_per_address) {
            return Err(Refusal::Unproven);
        }
        t.live = t.live.saturating_add(1);
        let a = t.by_addr.entry(ip).or_default();
        a.live = a.live.saturating_add(1);
        if device {
            a.unproven = a.unproven.saturating_add(1);
            t.unproven = t.unproven.saturating_add(1);
        }
        Ok(Slot {
            admission: self.clone(),
            ip,
            unproven: device,
        })
    }

    /// A stream's holder of the partial-frame bytes count.
    pub fn partial(&self) -> Partial {
        Partial {
            admission: self.clone(),
            held: 0,
        }
    }

    /// The counts, by name: live, unproven, handshakes, partial bytes, then the events.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let (live, unproven) = {
            let t = self.0.table.lock();
            (t.live, t.unproven)
        };
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let mut out = vec![
            ("connections_live", as_u64(live)),
            ("connections_unproven", as_u64(unproven)),
            (
                "handshakes",
                as_u64(self.0.handshakes.load(Ordering::Acquire)),
            ),
            (
                "partial_frame_bytes",
                as_u64(self.0.partial.load(Ordering::Acquire)),
            ),
        ];
        for (name, n) in EVENTS.iter().zip(&self.0.events) {
            out.push((name, n.load(Ordering::Relaxed)));
        }
        out
    }

    fn release(&self, ip: IpAddr, live: bool, unproven: bool) {
        let mut t = self.0.table.lock();
        if live {
            t.live = t.live.saturating_sub(1);
        }
        if unproven {
            t.unproven = t.unproven.saturating_sub(1);
        }
        if let Some(a) = t.by_addr.get_mut(&ip) {
            if live {
                a.live = a.live.saturating_sub(1);
            }
            if unproven {
                a.unproven = a.unproven.saturating_sub(1);
            }
            if a.live == 0 {
                t.by_addr.remove(&ip);
            }
        }
    }
}

/// One handshake in progress, until dropped.
#[must_use = "the handshake is counted until this is dropped"]
pub struct Handshake(Admission);

impl Drop for Handshake {
    fn drop(&mut self) {
        self.0 .0.handshakes.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One live connection's place, until dropped.
#[must_use = "the connection is counted until this is dropped"]
pub struct Slot {
    admission: Admission,
    ip: IpAddr,
    unproven: bool,
}

impl Slot {
    /// Whether this is an IB Key app connection that has proven no key yet.
    pub fn is_unproven(&self) -> bool {
        self.unproven
    }

    /// The connection proved a key: it no longer counts as unproven.
    pub fn proven(&mut self) {
        if self.unproven {
            self.unproven = false;
            self.admission.release(self.ip, false, true);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(self.ip, true, self.unproven);
    }
}

/// The bytes of a partial frame one stream holds, counted daemon-wide until dropped.
pub struct Partial {
    admission: Admission,
    held: usize,
}

impl Partial {
    /// The stream now holds `n` bytes.
    pub fn set(&mut self, n: usize) {
        let c = &self.admission.0.partial;
        if n > self.held {
            c.fetch_add(n - self.held, Ordering::AcqRel);
        } else {
            c.fetch_sub(self.held - n, Ordering::AcqRel);
        }
        self.held = n;
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AdmissionPolicy {
        AdmissionPolicy {
            max_connections: 4,
            per_address: 3,
            max_unproven: 2,
            unproven_per_address: 1,
            ..AdmissionPolicy::default()
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
    const C: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3));

    #[test]
    fn every_cap_holds_and_a_dropped_slot_frees_its_place() {
        let adm = Admission::new(policy());
        let a1 = adm.admit(A, false).unwrap();
        let _a2 = adm.admit(A, false).unwrap();
        let mut a3 = adm.admit(A, true).unwrap();
        assert_eq!(adm.admit(A, false).err(), Some(Refusal::AddressBusy));
        // B's first unproven takes the daemon's second and last unproven place.
        let b1 = adm.admit(B, true).unwrap();
        assert_eq!(adm.admit(C, true).err(), Some(Refusal::Busy));
        drop(a1);
        assert_eq!(adm.admit(C, true).err(), Some(Refusal::Unproven));
        a3.proven();
        assert_eq!(adm.admit(B, true).err(), Some(Refusal::Unproven));
        let c1 = adm.admit(C, true).unwrap();
        drop((a3, b1, c1));
        let counts: HashMap<_, _> = adm.counters().into_iter().collect();
        assert_eq!(counts["connections_live"], 1);
        assert_eq!(counts["connections_unproven"], 0);
    }

    #[test]
    fn handshakes_are_capped_and_retry_starts_at_its_threshold() {
        let adm = Admission::new(AdmissionPolicy {
            max_handshakes: 2,
            retry_above: 1,
            ..AdmissionPolicy::default()
        });
        assert!(!adm.should_retry(false));
        let h1 = adm.handshake().unwrap();
        assert!(adm.should_retry(false));
        assert!(!adm.should_retry(true));
        let _h2 = adm.handshake().unwrap();
        assert!(adm.handshake().is_none());
        drop(h1);
        assert!(adm.handshake().is_some());
    }

    #[test]
    fn an_address_gets_its_burst_then_its_rate() {
        let adm = Admission::new(AdmissionPolicy {
            handshakes_per_address: 2,
            ..AdmissionPolicy::default()
        });
        let t0 = Instant::now();
        for _ in 0..4 {
            assert!(adm.handshake_rate(A, t0, false));
        }
        assert!(!adm.handshake_rate(A, t0, false));
        // A validated address has its own bucket: unvalidated (maybe spoofed) ones did not
        // spend it.
        for _ in 0..4 {
            assert!(adm.handshake_rate(A, t0, true));
        }
        assert!(!adm.handshake_rate(A, t0, true));
        assert!(adm.handshake_rate(B, t0, true));
        let t1 = t0 + Duration::from_millis(500);
        assert!(adm.handshake_rate(A, t1, true));
        assert!(!adm.handshake_rate(A, t1, true));
    }

    #[test]
    fn a_table_full_of_busy_addresses_sends_a_new_one_through_a_retry() {
        let adm = Admission::new(AdmissionPolicy {
            handshakes_per_address: 1,
            ..AdmissionPolicy::default()
        });
        let t0 = Instant::now();
        for i in 0..u32::try_from(MAX_BUCKETS).unwrap() {
            let ip = IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i)));
            assert!(adm.handshake_rate(ip, t0, false));
        }
        let new = IpAddr::V6(std::net::Ipv6Addr::from(u128::MAX));
        assert!(!adm.handshake_rate(new, t0, false));
        assert!(adm.handshake_rate(new, t0, true));
        // Idle ones are forgotten, and the new one gets a bucket.
        let later = t0 + Duration::from_secs(3);
        assert!(adm.handshake_rate(new, later, false));
        assert!(adm.0.table.lock().buckets.len() == 1);
    }

    #[test]
    fn partial_bytes_go_back_to_zero_when_the_stream_ends() {
        let adm = Admission::new(AdmissionPolicy::default());
        let mut p = adm.partial();
        p.set(100);
        p.set(40);
        let mut q = adm.partial();
        q.set(7);
        let n = |adm: &Admission| adm.counters()[3].1;
        assert_eq!(n(&adm), 47);
        drop(p);
        assert_eq!(n(&adm), 7);
        drop(q);
        assert_eq!(n(&adm), 0);
    }
}
