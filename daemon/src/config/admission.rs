//! The bounds on connections and streams (`--max-connections` and the admission settings
//! after it in [`Settings`]), validated into an [`AdmissionPolicy`].

use std::time::Duration;

use super::ranges::{duration_in, number_in};
use super::{ConfigError, Settings};

/// Most `--max-connections` (and so of every count below it).
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// Most `--max-handshakes`.
pub const MAX_HANDSHAKES: usize = 65_536;
/// Most `--handshakes-per-address`.
pub const MAX_HANDSHAKE_RATE: u32 = 1_000_000;
/// The most `--proof-failures-per-address` (a second).
pub const MAX_PROOF_FAILURE_RATE: u32 = 1_000;
/// Shortest `--frame-timeout` and `--prove-timeout`.
pub const MIN_DEADLINE: Duration = Duration::from_millis(10);
/// Longest `--frame-timeout` and `--prove-timeout`.
pub const MAX_DEADLINE: Duration = Duration::from_secs(600);

/// Who may hold a connection, and how long a peer may hold the daemon's memory without
/// finishing what it started. Plain data; the service enforces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionPolicy {
    /// Most live (handshake done) connections; more are closed with `BUSY`.
    pub max_connections: usize,
    /// Most live connections from one IP address; more are closed with `ADDRESS_BUSY`.
    pub per_address: usize,
    /// Most IB Key app connections that have proven no key yet, in all.
    pub max_unproven: usize,
    /// Most of those from one IP address.
    pub unproven_per_address: usize,
    /// Most handshakes in progress (also quinn's queue of connections not yet taken); more
    /// are refused (`CONNECTION_REFUSED`).
    pub max_handshakes: usize,
    /// Handshakes in progress from which a client whose address is not validated is sent a
    /// stateless retry first (0: always).
    pub retry_above: usize,
    /// New handshakes per second from one IP address (burst twice that); 0: no limit.
    pub handshakes_per_address: u32,
    /// How long a frame begun on a stream may take to complete.
    pub frame_timeout: Duration,
    /// How long an IB Key app connection may take to prove a key.
    pub prove_timeout: Duration,
    /// Most open challenges begun on one connection; past it `Begin` answers `CAPACITY`.
    pub max_open_per_connection: usize,
    /// Failed `DeviceProve`s per second from one IP address (burst five times that); past it
    /// `DeviceProve` answers `RATE_LIMITED`; 0: no limit.
    pub proof_failures_per_address: u32,
}

impl Default for AdmissionPolicy {
    fn default() -> Self {
        AdmissionPolicy {
            max_connections: 20_000,
            per_address: 1_000,
            max_unproven: 1_000,
            unproven_per_address: 32,
            max_handshakes: 1_024,
            retry_above: 64,
            handshakes_per_address: 100,
            frame_timeout: Duration::from_secs(5),
            prove_timeout: Duration::from_secs(10),
            max_open_per_connection: 250_000,
            proof_failures_per_address: 2,
        }
    }
}

/// `value` (or `default`, clipped to `max`) when within `min..=max`.
fn count(
    field: &'static str,
    value: Option<usize>,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    number_in(field, value, default.clamp(min, max), min..=max)
}

fn deadline(
    field: &'static str,
    value: Option<Duration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    duration_in(field, value, default, MIN_DEADLINE..=MAX_DEADLINE)
}

/// The admission settings of `s`, or their defaults, range-checked against each other: a cap
/// is at most the cap it refines (per address ≤ in all, unproven ≤ live).
///
/// # Errors
/// A setting out of its range, named.
pub fn policy(s: &Settings) -> Result<AdmissionPolicy, ConfigError> {
    let d = AdmissionPolicy::default();
    let max_connections = count(
        "max_connections",
        s.max_connections,
        d.max_connections,
        1,
        MAX_CONNECTIONS,
    )?;
    let per_address = count(
        "max_connections_per_address",
        s.max_connections_per_address,
        d.per_address,
        1,
        max_connections,
    )?;
    let max_unproven = count(
        "max_unproven",
        s.max_unproven,
        d.max_unproven,
        1,
        max_connections,
    )?;
    let unproven_per_address = count(
        "max_unproven_per_address",
        s.max_unproven_per_address,
        d.unproven_per_address,
        1,
        max_unproven.min(per_address),
    )?;
    let max_handshakes = count(
        "max_handshakes",
        s.max_handshakes,
        d.max_handshakes,
        1,
        MAX_HANDSHAKES,
    )?;
    let retry_above = count(
        "retry_above",
        s.retry_above,
        d.retry_above,
        0,
        max_handshakes,
    )?;
    Ok(AdmissionPolicy {
        max_connections,
        per_address,
        max_unproven,
        unproven_per_address,
        max_handshakes,
        retry_above,
        handshakes_per_address: number_in(
            "handshakes_per_address",
            s.handshakes_per_address,
            d.handshakes_per_address,
            0..=MAX_HANDSHAKE_RATE,
        )?,
        frame_timeout: deadline("frame_timeout", s.frame_timeout, d.frame_timeout)?,
        prove_timeout: deadline("prove_timeout", s.prove_timeout, d.prove_timeout)?,
        // Checked against --max-open-txns by `Config::from_args`, which knows it.
        max_open_per_connection: d.max_open_per_connection,
        proof_failures_per_address: number_in(
            "proof_failures_per_address",
            s.proof_failures_per_address,
            d.proof_failures_per_address,
            0..=MAX_PROOF_FAILURE_RATE,
        )?,
    })
}
