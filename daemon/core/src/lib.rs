//! # sls-core: the verifier's rules
//!
//! The rules of SLS_RULES.md as plain functions over one user's state. Sans-IO: no store, no
//! futures, no sockets, no files, no clock and no random source of its own. A rule is handed
//! the user's [`UserState`] and a [`cx::Cx`] that carries its inputs (the time, the
//! configuration, a [`rng::Rng`] seeded by its caller) and collects its effects (the
//! [`Record`]s that make the change durable, the counts of what it did); it returns its
//! answer as a value. Given the same state and inputs it does the same thing, so a store may
//! run it again after a lost compare-and-set, and a seeded run replays exactly.
//!
//! ```text
//!  rules, one file each:  lockout (R11)  txn (R4 R5 R9 R12)  verify (R1 R5 R9 R10 R13)
//!                         push (R6 R8 R21)  grant (R13-R16 R21)  withdrawal (R3 R4)
//!                         admin (R7 R13-R16 R18-R20 R22)  share (R17)  lifecycle (R15-R17)
//!  state and records:     user  record  codec  replay (records -> state, state -> records)
//! ```
//!
//! The engine that drives the rules through a store (rate limits, the transaction index,
//! durability, the order of a request's steps) is `sls-engine`; the daemon carries out the
//! I/O.

#![warn(missing_docs)]

pub mod admin;
pub use admin::ACTIVATION_ATTEMPTS;
pub mod codec;
mod config;
pub mod cx;
mod error;
pub mod gcra;
pub mod grant;
pub mod inspect;
pub mod lifecycle;
pub mod lockout;
pub mod push;
pub mod record;
pub mod replay;
pub mod rng;
pub mod share;
pub mod txn;
pub mod user;
pub mod verify;
pub mod withdrawal;

use std::net::IpAddr;

use sls_protocol::{Challenge, DeviceId, DeviceInfo, DeviceKind, Purpose, TxnId, Verdict};

pub use config::{CoreConfig, RatePolicy};
pub use error::{Cause, CoreError, Error, StoreError};
pub use gcra::UserQuota;
pub use inspect::{canonical_identification, DeviceView, UserUpdate, UserView};
pub use lockout::recent_lockouts;
pub use push::PushAnswer;
pub use record::{DeviceState, Record};
pub use share::Share;
pub use user::UserState;

/// A frontend's `begin`.
#[derive(Debug, Clone)]
pub struct BeginRequest<'a> {
    /// The user (R10).
    pub user: &'a str,
    /// Login or withdrawal (R4).
    pub purpose: Purpose,
    /// The device picked, if any.
    pub device: Option<DeviceId>,
    /// The end user's address.
    pub client: IpAddr,
}

/// A push to deliver to an IB Key app (R6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOrder {
    /// The app's device.
    pub device: DeviceId,
    /// The user.
    pub user: String,
    /// The push's nonce.
    pub nonce: [u8; 16],
    /// What it is for.
    pub purpose: Purpose,
    /// When it expires.
    pub expires_at_ms: u64,
}

/// What `begin` answers.
#[derive(Debug, Clone, PartialEq)]
pub enum BeginResult {
    /// The devices the user may pick (R4).
    Devices(Vec<DeviceInfo>),
    /// A challenge bound to a new transaction.
    Challenge {
        /// The transaction.
        txn: TxnId,
        /// The device.
        device: DeviceInfo,
        /// What the login screen shows.
        challenge: Challenge,
        /// When the challenge expires.
        expires_at_ms: u64,
        /// The push to send, for an IB Key push login.
        push: Option<PushOrder>,
    },
    /// A verdict without a challenge (locked, rate limited, unknown, opted out...).
    Verdict(Verdict),
}

/// A user's state, for `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserStatus {
    /// Locked until (ms since the epoch), 0 if not locked.
    pub locked_until_ms: u64,
    /// Failures in the window.
    pub failures: u8,
    /// Failures left before the lock.
    pub failures_left: u8,
    /// Opted out (R18).
    pub opted_out: bool,
    /// Usable devices.
    pub devices: Vec<DeviceInfo>,
}

/// What a frontend should tell a user (the engine's `Core::notices`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notices {
    /// The user's shipped replacement DSC+, until it activates (R16).
    pub replacement: Option<DeviceId>,
    /// Whether its auto-activation approaches or is imminent (R16).
    pub activation: ActivationNotice,
    /// When it activates by itself, ms since the epoch (0 without a replacement).
    pub activates_at_ms: u64,
    /// Lockouts across users look like an attack.
    pub mass_lockout: bool,
}

/// R16: what the user should be told about a shipped replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationNotice {
    /// Nothing yet.
    None,
    /// Auto-activation is within a week.
    Approaching,
    /// Auto-activation is within a day.
    Imminent,
}

/// A new user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserSpec {
    /// Name (R10).
    pub name: String,
    /// Entity (R17a); empty: its own.
    pub entity: String,
    /// Identification data (R17a).
    pub identification: String,
    /// The account's primary user (R18).
    pub primary: bool,
    /// Account equity (R20).
    pub equity_usd: u64,
}

/// A new device.
#[derive(Clone, PartialEq)]
pub struct DeviceSpec {
    /// Kind.
    pub kind: DeviceKind,
    /// Secret: OCRA key, card secret or IB Key app key.
    pub secret: Vec<u8>,
    /// PIN (R7), empty for cards.
    pub pin: String,
    /// OCRA suite, empty for the kind's default.
    pub suite: String,
}

impl std::fmt::Debug for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the PIN.
        f.debug_struct("DeviceSpec")
            .field("kind", &self.kind)
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl Drop for DeviceSpec {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret.zeroize();
        self.pin.zeroize();
    }
}
