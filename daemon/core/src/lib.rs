//! # sls-core: the verifier
//!
//! The rules of SLS_RULES.md as plain functions over one user's state, and the store seam
//! through which they reach it. No I/O: no sockets, no files, no tokio, no clock reads (time
//! comes from the injected [`Clock`], randomness from the injected [`Entropy`]).
//!
//! ```text
//!            ┌──────────── Core<S: Store> (rate limits, counters, the order of the steps) ──┐
//!  begin ───▶│ limits ─▶ store.update(user, |state| txn::begin(state, ..))  ─▶ txn index     │
//!  answer ──▶│ limits ─▶ txn index ─▶ store.update(user, |state| txn::answer(state, ..))     │
//!            └──────────────────────────────────────────────────────────────────────────────┘
//!    rules, one file each:  lockout (R11)  txn (R4 R5 R9 R12)  verify (R1 R5 R9 R10 R13)
//!                           push (R6 R8 R21)  grant (R13-R16 R21)  withdrawal (R3 R4)
//!                           admin (R7 R13-R16 R18-R20 R22)  share (R17)
//!    stores:  MemoryStore<Journal> (embedded: memory + the daemon's journal), any other Store
//! ```
//!
//! **Exactness under concurrency (R11).** Every change to one user happens inside one atomic
//! [`Store::update`] of that user, including spending a transaction. When many answers for one
//! user race, they are judged one at a time: at most the threshold of failures is ever
//! evaluated before the lock holds.
//!
//! **Durability.** Every change comes with the [`Record`]s that make it durable, committed by
//! the store with the change; an answer that depends on them waits for [`Store::durable`].
//! Replaying the records ([`MemoryStore::apply`]) rebuilds the same state.

#![warn(missing_docs)]

mod admin;
pub use admin::ACTIVATION_ATTEMPTS;
mod app;
pub mod audit;
pub mod clock;
pub mod codec;
mod config;
pub mod cx;
mod engine;
pub mod entropy;
mod error;
mod follow;
pub mod gcra;
mod grant;
mod inspect;
mod lifecycle;
mod limits;
mod lockout;
mod login;
mod memory;
mod push;
pub mod record;
mod replay;
mod services;
mod shadow;
pub mod share;
mod sharing;
mod store;
mod txn;
mod txn_index;
mod user;
mod users;
mod verify;
mod withdrawal;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;

use sls_protocol::{Challenge, DeviceId, DeviceInfo, DeviceKind, Purpose, TxnId, Verdict};

pub use audit::AuditSink;
pub use clock::{Clock, FakeClock, GovernorClock, SystemClock};
pub use config::{CoreConfig, RatePolicy};
pub use engine::{Core, Outcome};
pub use entropy::{Entropy, SeededEntropy, SystemEntropy};
pub use error::{CoreError, Error, StoreError};
pub use gcra::UserQuota;
pub use inspect::{canonical_identification, DeviceView, UserUpdate, UserView};
pub use lockout::recent_lockouts;
pub use memory::{Journal, MemoryStore, NoJournal};
pub use push::PushAnswer;
pub use record::{DeviceState, Record};
pub use share::Share;
pub use sharing::ShareResult;
pub use store::{
    Committed, IndexOp, Limited, LimitedUpdate, Sequence, SharePage, Store, TokenAsk, TxnEntry,
    UserName, SHARE_SCAN,
};
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

/// What a frontend should tell a user ([`Core::notices`]).
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

/// Counters of the core, for stats and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Failures evaluated (wrong answers, malformed answers, password failures) (R11).
    pub failures_evaluated: AtomicU64,
    /// Users locked (R11).
    pub lockouts: AtomicU64,
    /// Requests refused while locked.
    pub refused_locked: AtomicU64,
    /// Accepted verifications.
    pub accepted: AtomicU64,
    /// Replays refused (R12).
    pub replays: AtomicU64,
    /// Rate-limited requests.
    pub rate_limited: AtomicU64,
    /// Pushes sent (R6).
    pub pushes: AtomicU64,
    /// Pushes refused by the fatigue cap (fallback challenge given instead).
    pub push_capped: AtomicU64,
    /// Expired challenges answered.
    pub expired: AtomicU64,
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
