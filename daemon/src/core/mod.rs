//! # The verifier core
//!
//! Every decision of a verification, and no I/O: no sockets, no files, no clock reads (time
//! comes from the injected [`Clock`]). The service calls it; tests drive it with a
//! [`FakeClock`]; benches measure it alone.
//!
//! ```text
//!   begin ──▶ rate limits ─▶ user (locked? opted out?) ─▶ usable devices (R4, R13-R16)
//!             ─▶ challenge bound to user + device + txn (R5, R6, R9, R12)
//!   answer ─▶ rate limits ─▶ txn (spent? expired?) ─▶ user lock held:
//!             format (R10) ─▶ constant-time verify ─▶ accepted | failure (R11)
//! ```
//!
//! **Exactness under concurrency (R11).** Every change to one user's state happens under that
//! user's own mutex, including marking a transaction spent. So when many answers for one user
//! race, they are evaluated one at a time: at most the threshold of failures is ever evaluated
//! before the lock holds, and a correct answer that loses the race to the 10th failure sees the
//! lock. The mutex is held for a verification only (about a microsecond), never across I/O.
//!
//! **Durability.** Each state-changing call returns the [`Record`]s to make durable; the service
//! journals them and sends the reply only once they are on disk. Replaying the records with
//! [`Core::apply`] rebuilds the same state.

pub mod clock;
pub mod record;
mod share;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;
use rand::Rng;
use sls_protocol::card::{self, CardLayout};
use sls_protocol::codes;
use sls_protocol::ocra::{self, OcraInput, OcraSuite};
use sls_protocol::{
    push, ApprovalMethod, Challenge, DeviceId, DeviceInfo, DeviceKind, Grant, GrantKind, Limits,
    Purpose, SecurityLevel, Status, TxnId, Verdict,
};

pub use clock::{Clock, FakeClock, GovernorClock, SystemClock};
pub use record::{DeviceState, Record};

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Rate-limit quotas: requests per second and bursts; 0 turns a limit off.
#[derive(Debug, Clone, PartialEq)]
pub struct RatePolicy {
    /// Per user (begin, answer, password failure).
    pub per_user: u32,
    /// Per user, burst.
    pub per_user_burst: u32,
    /// Per end-user address, as the frontend reports it.
    pub per_client: u32,
    /// Per address, burst.
    pub per_client_burst: u32,
    /// For the whole daemon.
    pub global: u32,
}

impl Default for RatePolicy {
    fn default() -> RatePolicy {
        RatePolicy {
            per_user: 5,
            per_user_burst: 40,
            per_client: 50,
            per_client_burst: 200,
            global: 0,
        }
    }
}

/// The core's configuration: the rules' numbers, with the articles' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreConfig {
    /// R11: failures that lock (10).
    pub lockout_threshold: u8,
    /// R11: the window the failures must fall in (24 h).
    pub lockout_window: Duration,
    /// R11: how long the lock lasts after the last failure (24 h).
    pub lock_duration: Duration,
    /// R11 choice: whether attempts while locked extend the lock (default no).
    pub extend_lock_while_locked: bool,
    /// R10 choice: whether a malformed answer counts as a failure (default yes).
    pub malformed_counts: bool,
    /// R12: a challenge's life (2 minutes).
    pub challenge_ttl: Duration,
    /// Most open transactions at once.
    pub max_open_txns: usize,
    /// R12: how long an answered challenge is remembered to call a second answer `replayed`
    /// (after that it is refused as `unknown`).
    pub replay_window: Duration,
    /// Rate limits.
    pub rates: RatePolicy,
    /// Push fatigue: most pushes since the last success before push is refused for the
    /// fallback challenge (the user must type a challenge instead).
    pub push_cap: u8,
    /// Mass-lockout signal: this many lockouts across users ...
    pub mass_lockout_threshold: u32,
    /// ... within this window.
    pub mass_lockout_window: Duration,
    /// R13: a temporary code's full access (2 days).
    pub temp_full: Duration,
    /// R13: then Client Portal only (10 more days).
    pub temp_portal: Duration,
    /// R14: an Online SCC's life (21 days).
    pub online_scc_life: Duration,
    /// R16: auto-activation after shipment (3 weeks).
    pub auto_activation: Duration,
    /// R20: least equity to order a DSC+ (USD 1M).
    pub dsc_plus_min_equity: u64,
    /// R21: IB Key with PIN grants trading for 12 h.
    pub grant_pin: Duration,
    /// R21: IB Key with biometrics grants trading for more than 30 h.
    pub grant_biometric: Duration,
    /// R22: an activation token's life.
    pub activation_token_life: Duration,
    /// The Security Code Card's layout (R9).
    pub card: CardLayout,
    /// SCC positions remembered per card to avoid asking them again.
    pub card_recent: usize,
}

impl Default for CoreConfig {
    fn default() -> CoreConfig {
        CoreConfig {
            lockout_threshold: 10,
            lockout_window: Duration::from_secs(24 * 3600),
            lock_duration: Duration::from_secs(24 * 3600),
            extend_lock_while_locked: false,
            malformed_counts: true,
            challenge_ttl: Duration::from_secs(120),
            max_open_txns: 2_000_000,
            replay_window: Duration::from_secs(5),
            rates: RatePolicy::default(),
            push_cap: 5,
            mass_lockout_threshold: 100,
            mass_lockout_window: Duration::from_secs(60),
            temp_full: Duration::from_secs(2 * 24 * 3600),
            temp_portal: Duration::from_secs(10 * 24 * 3600),
            online_scc_life: Duration::from_secs(21 * 24 * 3600),
            auto_activation: Duration::from_secs(21 * 24 * 3600),
            dsc_plus_min_equity: 1_000_000,
            grant_pin: Duration::from_secs(12 * 3600),
            grant_biometric: Duration::from_secs(30 * 3600),
            activation_token_life: Duration::from_secs(15 * 60),
            card: CardLayout::default(),
            card_recent: 20,
        }
    }
}

/// A request the core refused (admin calls, R10 names): each maps to one wire [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// R10.
    #[error("BAD CHARACTER")]
    BadCharacter,
    /// No such user.
    #[error("unknown user")]
    UnknownUser,
    /// No such device.
    #[error("unknown device")]
    UnknownDevice,
    /// Already exists.
    #[error("already exists")]
    AlreadyExists,
    /// The state forbids it.
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
    /// R7.
    #[error("invalid PIN: {0}")]
    InvalidPin(&'static str),
    /// A key or suite is unusable.
    #[error("invalid credential: {0}")]
    InvalidCredential(String),
    /// R17(c).
    #[error("Less secure device")]
    LessSecureDevice,
    /// R17(a).
    #[error("Different identification information")]
    DifferentIdentification,
    /// R17(b).
    #[error("a participant has a temporary device")]
    TemporaryDevice,
    /// R18: names the user who holds the right.
    #[error("only the primary user {primary} may opt back in")]
    NotPrimaryUser {
        /// The primary user.
        primary: String,
    },
    /// R22.
    #[error("bad activation token")]
    BadToken,
    /// R22.
    #[error("bad phone number: digits only, no trunk prefix")]
    BadPhone,
    /// A bound is reached.
    #[error("capacity reached")]
    Capacity,
    /// R17: the owner's answer was wrong.
    #[error("owner's answer rejected")]
    OwnerNotVerified,
    /// R20.
    #[error("equity under the DSC+ threshold")]
    NotEligible,
}

impl CoreError {
    /// The wire status.
    pub fn status(&self) -> Status {
        match self {
            CoreError::BadCharacter => Status::BAD_CHARACTER,
            CoreError::UnknownUser => Status::UNKNOWN_USER,
            CoreError::UnknownDevice => Status::UNKNOWN_DEVICE,
            CoreError::AlreadyExists => Status::ALREADY_EXISTS,
            CoreError::InvalidState(_) => Status::INVALID_STATE,
            CoreError::InvalidPin(_) => Status::INVALID_PIN,
            CoreError::InvalidCredential(_) => Status::INVALID_CREDENTIAL,
            CoreError::LessSecureDevice => Status::LESS_SECURE_DEVICE,
            CoreError::DifferentIdentification => Status::DIFFERENT_IDENTIFICATION,
            CoreError::TemporaryDevice => Status::TEMPORARY_DEVICE,
            CoreError::NotPrimaryUser { .. } => Status::NOT_PRIMARY_USER,
            CoreError::BadToken => Status::BAD_TOKEN,
            CoreError::BadPhone => Status::BAD_PHONE,
            CoreError::Capacity => Status::CAPACITY,
            CoreError::OwnerNotVerified => Status::OWNER_NOT_VERIFIED,
            CoreError::NotEligible => Status::NOT_ELIGIBLE,
        }
    }
}

/// A value and the records to make durable before it is sent.
#[derive(Debug)]
pub struct Outcome<T> {
    /// The value.
    pub value: T,
    /// Records to journal first (empty for reads).
    pub records: Vec<Record>,
}

impl<T> Outcome<T> {
    fn new(value: T, records: Vec<Record>) -> Outcome<T> {
        Outcome { value, records }
    }
    fn bare(value: T) -> Outcome<T> {
        Outcome {
            value,
            records: Vec::new(),
        }
    }
}

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
#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug)]
struct Device {
    id: u32,
    kind: DeviceKind,
    state: DeviceState,
    suite: Option<OcraSuite>,
    /// The secret then the PIN's hash, in one allocation (memory per user).
    material: Box<[u8]>,
    pin_len: u8,
    since_ms: u64,
    /// SCC positions asked recently; only cards have them (8 bytes for the others, not 24).
    #[allow(clippy::box_collection)]
    recent: Option<Box<Vec<u16>>>,
}

fn material(secret: &[u8], pin_hash: &[u8]) -> (Box<[u8]>, u8) {
    let mut m = Vec::with_capacity(secret.len() + pin_hash.len());
    m.extend_from_slice(secret);
    m.extend_from_slice(pin_hash);
    (m.into_boxed_slice(), pin_hash.len() as u8)
}

impl Device {
    /// Moves the device to `state` and returns the record that makes the move durable.
    fn set_state(&mut self, user: &str, state: DeviceState, at_ms: u64) -> Record {
        self.state = state;
        Record::DeviceState {
            user: user.to_owned(),
            id: DeviceId(self.id),
            state,
            at_ms,
        }
    }

    fn secret(&self) -> &[u8] {
        &self.material[..self.material.len() - self.pin_len as usize]
    }

    fn pin_hash(&self) -> &[u8] {
        &self.material[self.material.len() - self.pin_len as usize..]
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            id: DeviceId(self.id),
            kind: self.kind,
            limits: self.kind.level().limits(),
        }
    }

    fn suite_text(&self) -> String {
        match (self.kind, self.suite) {
            (DeviceKind::DscPlus, Some(s)) if s.to_string() == ocra::DSC_PLUS_DEFAULT_SUITE => {
                String::new()
            }
            (DeviceKind::IbKey, Some(s)) if s.to_string() == ocra::IB_KEY_DEFAULT_SUITE => {
                String::new()
            }
            (_, Some(s)) => s.to_string(),
            (_, None) => String::new(),
        }
    }

    fn record(&self, user: &str) -> Record {
        Record::Device {
            user: user.to_owned(),
            id: DeviceId(self.id),
            kind: self.kind,
            state: self.state,
            secret: self.secret().to_vec(),
            pin_hash: self.pin_hash().to_vec(),
            suite: self.suite_text(),
            since_ms: self.since_ms,
            shared_from: 0,
        }
    }
}

#[derive(Debug, Default)]
struct Extra {
    entity: String,
    identification: String,
    equity_usd: u64,
    withdrawals: Vec<(u64, u64)>,
    activation: Option<(u64, u64)>,
}

#[derive(Debug, Default)]
struct User {
    devices: Vec<Device>,
    /// Times of failures since the last success, within the window (R11). Boxed: 8 bytes for
    /// the many users with no failure instead of 32.
    #[allow(clippy::box_collection)]
    failures: Option<Box<VecDeque<u64>>>,
    locked_until: u64,
    pushes: u8,
    opted_out: bool,
    primary: bool,
    extra: Option<Box<Extra>>,
}

#[derive(Debug, Clone)]
enum TxnChallenge {
    /// A question of up to 64 ASCII characters, inline: answering copies it out of the
    /// transaction map without an allocation.
    Question([u8; 64], u8),
    Positions(Box<[u16]>),
    Push {
        number: u8,
        nonce: [u8; 16],
    },
    Code,
}

#[derive(Debug, Clone)]
struct Txn {
    /// Shared, so that answering takes it out of the map with a reference count, not a copy.
    user: Arc<str>,
    device: u32,
    purpose: Purpose,
    expires_ms: u64,
    challenge: TxnChallenge,
    /// `Some` once answered: the verdict (for `await`); any later answer is a replay (R12).
    done: Option<Verdict>,
    /// When it was answered (ms), 0 while open.
    done_at: u64,
}

type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, GovernorClock, NoOpMiddleware<Duration>>;
type Direct = RateLimiter<NotKeyed, InMemoryState, GovernorClock, NoOpMiddleware<Duration>>;

struct Limiters {
    per_user: Option<Keyed<u64>>,
    per_client: Option<Keyed<IpAddr>>,
    global: Option<Direct>,
}

fn quota(per_sec: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_sec)?;
    let burst = NonZeroU32::new(burst.max(per_sec)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
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

struct Shared {
    config: CoreConfig,
    clock: Arc<dyn Clock>,
    /// Users by name. The value is boxed: a table slot is then 24 bytes, and the table's load
    /// factor (44% to 88%) multiplies slot size, not user size.
    users: DashMap<Box<str>, Box<Mutex<User>>, ahash::RandomState>,
    txns: DashMap<u128, Txn, ahash::RandomState>,
    open_txns: AtomicUsize,
    next_device: AtomicU32,
    /// IB Key devices → owner, for the app's connection and push answers.
    ib_owner: DashMap<u32, Box<str>, ahash::RandomState>,
    /// Sharing requests (R17).
    shares: DashMap<u32, share::Share, ahash::RandomState>,
    next_share: AtomicU32,
    limiters: Limiters,
    user_key: ahash::RandomState,
    counters: Counters,
    lock_times: Mutex<VecDeque<u64>>,
    token_key: [u8; 32],
    token_nonce: AtomicU64,
}

/// The verifier. Cheap to clone: every clone shares the same state.
#[derive(Clone)]
pub struct Core(Arc<Shared>);

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("users", &self.0.users.len())
            .finish()
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// A device's OCRA suite: the given text, or the kind's default when empty; `None` for kinds
/// that answer without OCRA (cards, codes, SMS).
fn device_suite(kind: DeviceKind, text: &str) -> Result<Option<OcraSuite>, ocra::OcraError> {
    match default_suite(kind) {
        None => Ok(None),
        Some(d) => Some(if text.is_empty() { d } else { text }.parse()).transpose(),
    }
}

fn default_suite(kind: DeviceKind) -> Option<&'static str> {
    match kind {
        DeviceKind::DscPlus | DeviceKind::Dsc | DeviceKind::Gold | DeviceKind::Platinum => {
            Some(ocra::DSC_PLUS_DEFAULT_SUITE)
        }
        DeviceKind::IbKey => Some(ocra::IB_KEY_DEFAULT_SUITE),
        _ => None,
    }
}

/// R7: a DSC+ PIN is exactly 4 digits; an IB Key PIN 4 to 6 printable characters.
fn check_pin(kind: DeviceKind, pin: &str) -> Result<(), CoreError> {
    match kind {
        DeviceKind::DscPlus if pin.len() == 4 && pin.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        DeviceKind::DscPlus => Err(CoreError::InvalidPin("a DSC+ PIN is 4 digits")),
        DeviceKind::IbKey
            if (4..=6).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(())
        }
        DeviceKind::IbKey => Err(CoreError::InvalidPin(
            "an IB Key PIN is 4 to 6 letters, digits or special characters",
        )),
        _ => Ok(()),
    }
}

impl Core {
    /// A core with no users.
    pub fn new(config: CoreConfig, clock: Arc<dyn Clock>) -> Core {
        let gclock = GovernorClock(clock.clone());
        let r = &config.rates;
        let limiters = Limiters {
            per_user: quota(r.per_user, r.per_user_burst)
                .map(|q| RateLimiter::dashmap_with_clock(q, gclock.clone())),
            per_client: quota(r.per_client, r.per_client_burst)
                .map(|q| RateLimiter::dashmap_with_clock(q, gclock.clone())),
            global: quota(r.global, r.global)
                .map(|q| RateLimiter::direct_with_clock(q, gclock.clone())),
        };
        let mut token_key = [0u8; 32];
        rand::thread_rng().fill(&mut token_key);
        Core(Arc::new(Shared {
            config,
            clock,
            users: DashMap::with_hasher(ahash::RandomState::new()),
            txns: DashMap::with_hasher(ahash::RandomState::new()),
            open_txns: AtomicUsize::new(0),
            next_device: AtomicU32::new(1),
            ib_owner: DashMap::with_hasher(ahash::RandomState::new()),
            shares: DashMap::with_hasher(ahash::RandomState::new()),
            next_share: AtomicU32::new(1),
            limiters,
            user_key: ahash::RandomState::with_seeds(1, 2, 3, 4),
            counters: Counters::default(),
            lock_times: Mutex::new(VecDeque::new()),
            token_key,
            token_nonce: AtomicU64::new(1),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.0.config
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.0.counters
    }

    fn now_ms(&self) -> u64 {
        ms(self.0.clock.now())
    }

    /// Enrolled users.
    pub fn user_count(&self) -> usize {
        self.0.users.len()
    }

    /// Open transactions.
    pub fn open_txns(&self) -> usize {
        self.0.open_txns.load(Ordering::Relaxed)
    }

    // ---- rate limits ----------------------------------------------------------------------

    fn retry_after(&self, not_until: governor::NotUntil<Duration>) -> Verdict {
        self.0.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        let wait = not_until.wait_time_from(self.0.clock.now());
        Verdict::RateLimited {
            retry_after_ms: (wait.as_millis() as u32).max(1),
        }
    }

    fn limit_client(&self, client: IpAddr) -> Option<Verdict> {
        let l = &self.0.limiters;
        if let Some(g) = &l.global {
            if let Err(n) = g.check() {
                return Some(self.retry_after(n));
            }
        }
        if let Some(c) = &l.per_client {
            if let Err(n) = c.check_key(&client) {
                return Some(self.retry_after(n));
            }
        }
        None
    }

    fn limit_user(&self, user: &str) -> Option<Verdict> {
        let l = self.0.limiters.per_user.as_ref()?;
        let key = self.0.user_key.hash_one(user);
        l.check_key(&key).err().map(|n| self.retry_after(n))
    }

    // ---- lockout (R11) -------------------------------------------------------------------------

    fn is_locked(&self, u: &User, now: u64) -> bool {
        u.locked_until > now
    }

    /// Evaluates one failure for `user`, under its lock.
    fn fail(&self, name: &str, u: &mut User, now: u64, records: &mut Vec<Record>) -> Verdict {
        self.0
            .counters
            .failures_evaluated
            .fetch_add(1, Ordering::Relaxed);
        records.push(Record::Failure {
            user: name.to_owned(),
            at_ms: now,
        });
        self.apply_failure(u, now, true)
    }

    fn apply_failure(&self, u: &mut User, now: u64, live: bool) -> Verdict {
        let cfg = &self.0.config;
        let window = ms(cfg.lockout_window);
        let log = u.failures.get_or_insert_with(Default::default);
        // A failure counts while it is less than the window old: "within any 24-hour period".
        while log
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= window)
        {
            log.pop_front();
        }
        log.push_back(now);
        let count = log.len();
        let threshold = cfg.lockout_threshold as usize;
        if count >= threshold {
            // R11: locked until 24 h after the last failure.
            u.locked_until = now + ms(cfg.lock_duration);
            if live {
                self.0.counters.lockouts.fetch_add(1, Ordering::Relaxed);
                let mut times = self.0.lock_times.lock();
                times.push_back(now);
                while times
                    .front()
                    .is_some_and(|t| now.saturating_sub(*t) > ms(cfg.mass_lockout_window))
                {
                    times.pop_front();
                }
            }
            Verdict::Locked {
                until_ms: u.locked_until,
            }
        } else {
            Verdict::Rejected {
                failures_left: (threshold - count) as u8,
            }
        }
    }

    fn failures_in_window(&self, u: &User, now: u64) -> usize {
        let window = ms(self.0.config.lockout_window);
        u.failures.as_ref().map_or(0, |log| {
            log.iter()
                .filter(|t| now.saturating_sub(**t) < window)
                .count()
        })
    }

    /// Refuses a request of a locked user; by default without extending the lock (R11).
    fn refuse_locked(
        &self,
        name: &str,
        u: &mut User,
        now: u64,
        records: &mut Vec<Record>,
    ) -> Verdict {
        self.0
            .counters
            .refused_locked
            .fetch_add(1, Ordering::Relaxed);
        if self.0.config.extend_lock_while_locked {
            return self.fail(name, u, now, records);
        }
        Verdict::Locked {
            until_ms: u.locked_until,
        }
    }

    fn succeed(&self, name: &str, u: &mut User, records: &mut Vec<Record>) {
        self.0.counters.accepted.fetch_add(1, Ordering::Relaxed);
        u.pushes = 0;
        if u.failures.take().is_some() {
            records.push(Record::Reset {
                user: name.to_owned(),
            });
        }
    }

    // ---- devices -----------------------------------------------------------------------------

    /// The grant a device gives at `now`, or `None` if it is not usable (R13-R16).
    fn usable(&self, d: &Device, now: u64) -> Option<Grant> {
        let cfg = &self.0.config;
        let active = match d.state {
            DeviceState::Active => true,
            // R16: a shipped replacement activates by itself 3 weeks after shipment.
            DeviceState::Shipped => now >= d.since_ms + ms(cfg.auto_activation),
            _ => false,
        };
        if !active {
            return None;
        }
        let left = |until: u64| ((until.saturating_sub(now)) / 1000) as u32;
        match d.kind {
            DeviceKind::TempCode => {
                let full = d.since_ms + ms(cfg.temp_full);
                let portal = full + ms(cfg.temp_portal);
                if now < full {
                    Some(Grant {
                        kind: GrantKind::Temporary,
                        valid_secs: left(full),
                    })
                } else if now < portal {
                    Some(Grant {
                        kind: GrantKind::PortalOnly,
                        valid_secs: left(portal),
                    })
                } else {
                    None
                }
            }
            DeviceKind::OnlineScc => {
                let end = d.since_ms + ms(cfg.online_scc_life);
                (now < end).then(|| Grant {
                    kind: GrantKind::Temporary,
                    valid_secs: left(end),
                })
            }
            DeviceKind::Sms => Some(Grant {
                kind: GrantKind::Temporary,
                valid_secs: 0,
            }),
            _ => Some(Grant {
                kind: GrantKind::Session,
                valid_secs: 0,
            }),
        }
    }

    fn withdrawn(&self, u: &User, now: u64) -> (u64, u64) {
        // Choice: a day is the last 24 h; five business days are the last 7 calendar days.
        let Some(x) = &u.extra else { return (0, 0) };
        let mut day = 0u64;
        let mut week = 0u64;
        for (at, amount) in &x.withdrawals {
            let age = now.saturating_sub(*at);
            if age < DAY_MS {
                day = day.saturating_add(*amount);
            }
            if age < 7 * DAY_MS {
                week = week.saturating_add(*amount);
            }
        }
        (day, week)
    }

    fn covers(limits: Limits, amount: u64, used: (u64, u64)) -> bool {
        amount.saturating_add(used.0) <= limits.per_day_usd
            && amount.saturating_add(used.1) <= limits.per_5_business_days_usd
    }

    fn required_level(amount: u64, used: (u64, u64)) -> SecurityLevel {
        [
            SecurityLevel::None,
            SecurityLevel::Scc,
            SecurityLevel::IbKey,
            SecurityLevel::Dsc,
            SecurityLevel::Top,
        ]
        .into_iter()
        .find(|l| Self::covers(l.limits(), amount, used))
        .unwrap_or(SecurityLevel::Top)
    }

    // ---- frontend ------------------------------------------------------------------------------

    /// Begins a login or a withdrawal (R4, R5, R6, R9, R12). `push_ready` says whether an IB Key
    /// device's app is connected to receive a push.
    ///
    /// # Errors
    /// A user name that breaks R10 (`BAD CHARACTER`); open transactions at capacity.
    pub fn begin(
        &self,
        req: &BeginRequest<'_>,
        push_ready: &dyn Fn(DeviceId) -> bool,
    ) -> Result<Outcome<BeginResult>, CoreError> {
        if !sls_protocol::valid_user_name(req.user) {
            return Err(CoreError::BadCharacter);
        }
        if let Some(v) = self
            .limit_client(req.client)
            .or_else(|| self.limit_user(req.user))
        {
            return Ok(Outcome::bare(BeginResult::Verdict(v)));
        }
        let Some(entry) = self.0.users.get(req.user) else {
            return Ok(Outcome::bare(BeginResult::Verdict(Verdict::Unknown)));
        };
        let now = self.now_ms();
        let mut records = Vec::new();
        let mut u = entry.lock();
        if self.is_locked(&u, now) {
            let v = self.refuse_locked(req.user, &mut u, now, &mut records);
            return Ok(Outcome::new(BeginResult::Verdict(v), records));
        }
        if u.opted_out {
            // R18: an opted-out user logs in without a device, with the "none" limits.
            let level = SecurityLevel::None;
            let verdict = match req.purpose {
                Purpose::Withdrawal { amount_usd }
                    if !Self::covers(level.limits(), amount_usd, self.withdrawn(&u, now)) =>
                {
                    Verdict::NeedsStrongerDevice {
                        required: Self::required_level(amount_usd, self.withdrawn(&u, now)),
                    }
                }
                _ => Verdict::Accepted {
                    device: DeviceId(0),
                    kind: DeviceKind::NoDevice,
                    level,
                    limits: level.limits(),
                    grant: Grant {
                        kind: GrantKind::Session,
                        valid_secs: 0,
                    },
                },
            };
            return Ok(Outcome::bare(BeginResult::Verdict(verdict)));
        }
        let used = self.withdrawn(&u, now);
        let covers = |d: &Device| match req.purpose {
            Purpose::Login => true,
            Purpose::Withdrawal { amount_usd } => {
                Self::covers(d.kind.level().limits(), amount_usd, used)
            }
        };
        let Some(wanted) = req.device else {
            let devices: Vec<DeviceInfo> = u
                .devices
                .iter()
                .filter(|d| self.usable(d, now).is_some() && covers(d))
                .map(Device::info)
                .collect();
            if devices.is_empty() {
                if let Purpose::Withdrawal { amount_usd } = req.purpose {
                    let required = Self::required_level(amount_usd, used);
                    return Ok(Outcome::bare(BeginResult::Verdict(
                        Verdict::NeedsStrongerDevice { required },
                    )));
                }
            }
            return Ok(Outcome::bare(BeginResult::Devices(devices)));
        };
        let pushes = u.pushes;
        let Some(d) = u.devices.iter_mut().find(|d| d.id == wanted.0) else {
            return Ok(Outcome::bare(BeginResult::Verdict(Verdict::Unknown)));
        };
        if self.usable(d, now).is_none() {
            return Ok(Outcome::bare(BeginResult::Verdict(Verdict::Unknown)));
        }
        if let Purpose::Withdrawal { amount_usd } = req.purpose {
            if !Self::covers(d.kind.level().limits(), amount_usd, used) {
                let required = Self::required_level(amount_usd, used);
                return Ok(Outcome::bare(BeginResult::Verdict(
                    Verdict::NeedsStrongerDevice { required },
                )));
            }
        }
        if self.0.open_txns.load(Ordering::Relaxed) >= self.0.config.max_open_txns {
            return Err(CoreError::Capacity);
        }
        let mut rng = rand::thread_rng();
        let info = d.info();
        let expires_ms = now + ms(self.0.config.challenge_ttl);
        let txn_id = TxnId(rng.gen());
        let (challenge, stored, push) = match d.kind {
            DeviceKind::IbKey if push_ready(info.id) && pushes < self.0.config.push_cap => {
                let number = rng.gen_range(0..100u8);
                let nonce: [u8; 16] = rng.gen();
                self.0.counters.pushes.fetch_add(1, Ordering::Relaxed);
                let order = PushOrder {
                    device: info.id,
                    user: req.user.to_owned(),
                    nonce,
                    purpose: req.purpose,
                    expires_at_ms: expires_ms,
                };
                (
                    Challenge::Push { number },
                    TxnChallenge::Push { number, nonce },
                    Some(order),
                )
            }
            DeviceKind::DscPlus
            | DeviceKind::Dsc
            | DeviceKind::Gold
            | DeviceKind::Platinum
            | DeviceKind::IbKey => {
                if d.kind == DeviceKind::IbKey && push_ready(info.id) {
                    // Push fatigue: past the cap the user must type a challenge.
                    self.0.counters.push_capped.fetch_add(1, Ordering::Relaxed);
                }
                let Some(suite) = d.suite else {
                    return Ok(Outcome::bare(BeginResult::Verdict(Verdict::Unknown)));
                };
                let q = random_question(&suite, &mut rng);
                (Challenge::Numeric(q.clone()), question_buf(&q), None)
            }
            DeviceKind::Scc | DeviceKind::OnlineScc => {
                let recent = d.recent.get_or_insert_with(Default::default);
                let positions = card::choose_positions(&self.0.config.card, recent, || rng.gen());
                recent.extend_from_slice(&positions);
                let excess = recent.len().saturating_sub(self.0.config.card_recent);
                recent.drain(..excess);
                (
                    Challenge::Positions(positions.clone()),
                    TxnChallenge::Positions(positions.into_boxed_slice()),
                    None,
                )
            }
            DeviceKind::Sms => {
                // R1: a one-time passcode for the frontend to send; kept in the transaction
                // to be compared with what the user types.
                let code = codes::sms_code(d.secret(), rng.gen());
                (
                    Challenge::Sms { code: code.clone() },
                    question_buf(&code),
                    None,
                )
            }
            DeviceKind::TempCode | DeviceKind::NoDevice => {
                (Challenge::Code, TxnChallenge::Code, None)
            }
        };
        if push.is_some() {
            u.pushes = u.pushes.saturating_add(1);
        }
        drop(u);
        drop(entry);
        self.0.open_txns.fetch_add(1, Ordering::Relaxed);
        self.0.txns.insert(
            txn_id.0,
            Txn {
                user: req.user.into(),
                device: info.id.0,
                purpose: req.purpose,
                expires_ms,
                challenge: stored,
                done: None,
                done_at: 0,
            },
        );
        Ok(Outcome::new(
            BeginResult::Challenge {
                txn: txn_id,
                device: info,
                challenge,
                expires_at_ms: expires_ms,
                push,
            },
            records,
        ))
    }

    /// Judges an answer to a transaction's challenge (R5, R9, R10, R11, R12, R13).
    pub fn answer(&self, txn: TxnId, response: &str, client: IpAddr) -> Outcome<Verdict> {
        if let Some(v) = self.limit_client(client) {
            return Outcome::bare(v);
        }
        // Copy what is needed, so that no transaction shard lock is held while the user's is
        // taken (the order is always user, then transaction).
        let Some((user, device, purpose, expires_ms, challenge)) =
            self.0.txns.get(&txn.0).map(|t| {
                (
                    t.user.clone(),
                    t.device,
                    t.purpose,
                    t.expires_ms,
                    t.challenge.clone(),
                )
            })
        else {
            return Outcome::bare(Verdict::Unknown);
        };
        if matches!(challenge, TxnChallenge::Push { .. }) {
            // A push is answered by the app, not the frontend.
            return Outcome::bare(Verdict::Unknown);
        }
        if let Some(v) = self.limit_user(&user) {
            return Outcome::bare(v);
        }
        let Some(entry) = self.0.users.get(&*user) else {
            return Outcome::bare(Verdict::Unknown);
        };
        let now = self.now_ms();
        let mut records = Vec::new();
        let mut u = entry.lock();
        if self.is_locked(&u, now) {
            let v = self.refuse_locked(&user, &mut u, now, &mut records);
            return Outcome::new(v, records);
        }
        // Under the user's lock: the transaction is spent by its first answer (R12).
        match self.0.txns.get_mut(&txn.0) {
            Some(t) if t.done.is_some() => {
                self.0.counters.replays.fetch_add(1, Ordering::Relaxed);
                return Outcome::bare(Verdict::Replayed);
            }
            Some(mut t) if now >= expires_ms => {
                t.done = Some(Verdict::Expired);
                t.done_at = now;
                self.0.counters.expired.fetch_add(1, Ordering::Relaxed);
                return Outcome::bare(Verdict::Expired);
            }
            Some(mut t) => {
                t.done = Some(Verdict::Pending);
                t.done_at = now;
            }
            None => return Outcome::bare(Verdict::Unknown),
        }
        let verdict = self.judge(
            &user,
            &mut u,
            device,
            purpose,
            &challenge,
            response,
            now,
            &mut records,
        );
        if let Some(mut t) = self.0.txns.get_mut(&txn.0) {
            t.done = Some(verdict);
        }
        drop(u);
        Outcome::new(verdict, records)
    }

    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        name: &str,
        u: &mut User,
        device: u32,
        purpose: Purpose,
        challenge: &TxnChallenge,
        response: &str,
        now: u64,
        records: &mut Vec<Record>,
    ) -> Verdict {
        let Some(d) = u.devices.iter().find(|d| d.id == device) else {
            return Verdict::Unknown;
        };
        let Some(grant) = self.usable(d, now) else {
            return Verdict::Expired;
        };
        // Canonical form is the exact form (R10): a padded, spaced or re-cased answer is
        // malformed, never normalised into a right one, so it cannot dodge the counters.
        let (well_formed, right) = match (challenge, d.kind) {
            (TxnChallenge::Question(buf, len), DeviceKind::Sms) => {
                let expected = std::str::from_utf8(&buf[..*len as usize]).unwrap_or("");
                let formed = response.len() == 6 && response.bytes().all(|b| b.is_ascii_digit());
                (formed, formed && codes::codes_equal(expected, response))
            }
            (TxnChallenge::Question(buf, len), _) => match d.suite {
                Some(suite) => {
                    let pin = suite.pin.map(|_| d.pin_hash());
                    let input = OcraInput {
                        counter: 0,
                        question: std::str::from_utf8(&buf[..*len as usize]).unwrap_or(""),
                        pin_hash: pin,
                        session: None,
                        timestamp: None,
                    };
                    let formed = suite.check_answer_format(response).is_ok();
                    (
                        formed,
                        formed && suite.verify(d.secret(), &input, response).unwrap_or(false),
                    )
                }
                None => (false, false),
            },
            (TxnChallenge::Positions(p), _) => {
                let layout = &self.0.config.card;
                let formed = response.len() == p.len() * layout.code_digits as usize
                    && response.bytes().all(|b| b.is_ascii_digit());
                (
                    formed,
                    formed && card::verify(d.secret(), layout, p, response),
                )
            }
            (TxnChallenge::Code, DeviceKind::TempCode) => {
                let formed = codes::check_temp_code_format(response).is_ok();
                let digest: Option<[u8; 32]> = d.secret().try_into().ok();
                (
                    formed,
                    formed && digest.is_some_and(|dg| codes::temp_code_matches(&dg, response)),
                )
            }
            _ => (false, false),
        };
        if !well_formed {
            if self.0.config.malformed_counts {
                return match self.fail(name, u, now, records) {
                    locked @ Verdict::Locked { .. } => locked,
                    _ => Verdict::Malformed,
                };
            }
            return Verdict::Malformed;
        }
        if !right {
            return self.fail(name, u, now, records);
        }
        let grant = match d.kind {
            // R21: the IB Key PIN typed into the app (fallback) grants 12 hours of trading.
            DeviceKind::IbKey => Grant {
                kind: GrantKind::TradingPin,
                valid_secs: self.0.config.grant_pin.as_secs() as u32,
            },
            _ => grant,
        };
        let info = d.info();
        self.succeed(name, u, records);
        self.record_withdrawal(name, u, purpose, now, records);
        Verdict::Accepted {
            device: info.id,
            kind: info.kind,
            level: info.kind.level(),
            limits: info.limits,
            grant,
        }
    }

    fn record_withdrawal(
        &self,
        name: &str,
        u: &mut User,
        purpose: Purpose,
        now: u64,
        records: &mut Vec<Record>,
    ) {
        if let Purpose::Withdrawal { amount_usd } = purpose {
            let x = u.extra.get_or_insert_with(Default::default);
            x.withdrawals
                .retain(|(at, _)| now.saturating_sub(*at) < 7 * DAY_MS);
            x.withdrawals.push((now, amount_usd));
            records.push(Record::Withdrawal {
                user: name.to_owned(),
                amount_usd,
                at_ms: now,
            });
        }
    }

    /// A failed password reported by the frontend counts as a failed attempt (R11).
    ///
    /// # Errors
    /// A user name that breaks R10.
    pub fn password_failed(
        &self,
        user: &str,
        client: IpAddr,
    ) -> Result<Outcome<Verdict>, CoreError> {
        if !sls_protocol::valid_user_name(user) {
            return Err(CoreError::BadCharacter);
        }
        if let Some(v) = self.limit_client(client).or_else(|| self.limit_user(user)) {
            return Ok(Outcome::bare(v));
        }
        let Some(entry) = self.0.users.get(user) else {
            // No user enumeration: an unknown user looks like a known one with a fresh count.
            return Ok(Outcome::bare(Verdict::Rejected {
                failures_left: self.0.config.lockout_threshold - 1,
            }));
        };
        let now = self.now_ms();
        let mut records = Vec::new();
        let mut u = entry.lock();
        let v = if self.is_locked(&u, now) {
            self.refuse_locked(user, &mut u, now, &mut records)
        } else {
            self.fail(user, &mut u, now, &mut records)
        };
        Ok(Outcome::new(v, records))
    }

    /// A user's state.
    ///
    /// # Errors
    /// A user name that breaks R10.
    pub fn status(&self, user: &str) -> Result<Option<UserStatus>, CoreError> {
        if !sls_protocol::valid_user_name(user) {
            return Err(CoreError::BadCharacter);
        }
        let Some(entry) = self.0.users.get(user) else {
            return Ok(None);
        };
        let now = self.now_ms();
        let u = entry.lock();
        let failures = self.failures_in_window(&u, now) as u8;
        Ok(Some(UserStatus {
            locked_until_ms: if self.is_locked(&u, now) {
                u.locked_until
            } else {
                0
            },
            failures,
            failures_left: self.0.config.lockout_threshold.saturating_sub(failures),
            opted_out: u.opted_out,
            devices: u
                .devices
                .iter()
                .filter(|d| self.usable(d, now).is_some())
                .map(Device::info)
                .collect(),
        }))
    }

    // ---- IB Key app ----------------------------------------------------------------------------

    /// Whether `proof` proves that the app holds `device`'s key, for `nonce`.
    pub fn device_authenticate(&self, device: DeviceId, nonce: &[u8; 32], proof: &[u8]) -> bool {
        let Some(owner) = self.0.ib_owner.get(&device.0).map(|o| o.clone()) else {
            return false;
        };
        let Some(entry) = self.0.users.get(&*owner) else {
            return false;
        };
        let u = entry.lock();
        let now = self.now_ms();
        u.devices
            .iter()
            .find(|d| d.id == device.0 && d.kind == DeviceKind::IbKey)
            .is_some_and(|d| {
                self.usable(d, now).is_some()
                    && push::device_proof_verify(d.secret(), device, nonce, proof)
            })
    }

    /// The app's answer to a push (R6): its MAC, the number the user typed, approve or decline.
    /// An app can answer only its own device's pushes.
    pub fn push_answer(
        &self,
        device: DeviceId,
        txn: TxnId,
        approve: bool,
        method: ApprovalMethod,
        number: u8,
        mac: &[u8],
    ) -> Outcome<Verdict> {
        let Some((user, tdev, purpose, expires_ms, challenge)) = self.0.txns.get(&txn.0).map(|t| {
            (
                t.user.clone(),
                t.device,
                t.purpose,
                t.expires_ms,
                t.challenge.clone(),
            )
        }) else {
            return Outcome::bare(Verdict::Unknown);
        };
        let TxnChallenge::Push {
            number: shown,
            nonce,
        } = challenge
        else {
            return Outcome::bare(Verdict::Unknown);
        };
        if tdev != device.0 {
            return Outcome::bare(Verdict::Unknown);
        }
        let Some(entry) = self.0.users.get(&*user) else {
            return Outcome::bare(Verdict::Unknown);
        };
        let now = self.now_ms();
        let mut records = Vec::new();
        let mut u = entry.lock();
        let verdict = 'judge: {
            if self.is_locked(&u, now) {
                break 'judge self.refuse_locked(&user, &mut u, now, &mut records);
            }
            match self.0.txns.get(&txn.0) {
                Some(t) if t.done.is_some() => {
                    self.0.counters.replays.fetch_add(1, Ordering::Relaxed);
                    return Outcome::bare(Verdict::Replayed);
                }
                Some(_) => {}
                None => return Outcome::bare(Verdict::Unknown),
            }
            if now >= expires_ms {
                self.0.counters.expired.fetch_add(1, Ordering::Relaxed);
                break 'judge Verdict::Expired;
            }
            let Some(d) = u.devices.iter().find(|d| d.id == device.0) else {
                break 'judge Verdict::Unknown;
            };
            if self.usable(d, now).is_none() {
                break 'judge Verdict::Unknown;
            }
            let genuine =
                push::push_verify(d.secret(), txn, &user, number, &nonce, method, approve, mac);
            if !genuine {
                // Not signed by the app's key: a forgery counts as a failed attempt.
                break 'judge self.fail(&user, &mut u, now, &mut records);
            }
            if !approve {
                break 'judge Verdict::Declined;
            }
            if number != shown {
                // Number matching: the user approved a push they were not looking at.
                break 'judge self.fail(&user, &mut u, now, &mut records);
            }
            let info = d.info();
            let grant = match method {
                ApprovalMethod::Pin => Grant {
                    kind: GrantKind::TradingPin,
                    valid_secs: self.0.config.grant_pin.as_secs() as u32,
                },
                ApprovalMethod::Biometric => Grant {
                    kind: GrantKind::TradingBiometric,
                    valid_secs: self.0.config.grant_biometric.as_secs() as u32,
                },
            };
            self.succeed(&user, &mut u, &mut records);
            self.record_withdrawal(&user, &mut u, purpose, now, &mut records);
            Verdict::Accepted {
                device: info.id,
                kind: info.kind,
                level: info.kind.level(),
                limits: info.limits,
                grant,
            }
        };
        if let Some(mut t) = self.0.txns.get_mut(&txn.0) {
            t.done = Some(verdict);
            t.done_at = now;
        }
        drop(u);
        Outcome::new(verdict, records)
    }

    /// The device a transaction's challenge is for.
    pub fn txn_device(&self, txn: TxnId) -> Option<DeviceId> {
        self.0.txns.get(&txn.0).map(|t| DeviceId(t.device))
    }

    /// What a frontend's `await` reports for a transaction (R6).
    pub fn txn_verdict(&self, txn: TxnId) -> Verdict {
        let now = self.now_ms();
        match self.0.txns.get(&txn.0) {
            None => Verdict::Unknown,
            Some(t) => match t.done {
                Some(v) if v != Verdict::Pending => v,
                _ if now >= t.expires_ms => Verdict::Expired,
                _ => Verdict::Pending,
            },
        }
    }

    /// Reclaims transactions past their life (kept one more life so that late answers read
    /// `replayed`/`expired`, not `unknown`) and idle limiter state. Returns transactions removed.
    pub fn sweep(&self) -> usize {
        let now = self.now_ms();
        let ttl = ms(self.0.config.challenge_ttl);
        let before = self.0.txns.len();
        let replay_window = ms(self.0.config.replay_window);
        // Open transactions stay one more life past expiry (a late answer reads `expired`);
        // answered ones stay `replay_window` (a replay reads `replayed`), after which a replay
        // is still refused, as `unknown`: memory stays bounded by the answer rate times the
        // window, not times the challenge's life.
        self.0.txns.retain(|_, t| {
            t.expires_ms + ttl > now && (t.done_at == 0 || t.done_at + replay_window > now)
        });
        let removed = before.saturating_sub(self.0.txns.len());
        self.0.open_txns.fetch_sub(
            removed.min(self.0.open_txns.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if let Some(l) = &self.0.limiters.per_user {
            l.retain_recent();
        }
        if let Some(l) = &self.0.limiters.per_client {
            l.retain_recent();
        }
        removed
    }

    /// Whether a burst of lockouts across users looks like a mass-lockout attack.
    pub fn mass_lockout(&self) -> (usize, bool) {
        let now = self.now_ms();
        let window = ms(self.0.config.mass_lockout_window);
        let mut times = self.0.lock_times.lock();
        while times
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > window)
        {
            times.pop_front();
        }
        (
            times.len(),
            times.len() as u32 >= self.0.config.mass_lockout_threshold,
        )
    }

    /// Counters by name, for the stats call and metrics.
    pub fn stats(&self) -> Vec<(&'static str, u64)> {
        let c = &self.0.counters;
        let (recent, alert) = self.mass_lockout();
        vec![
            ("users", self.0.users.len() as u64),
            ("open_transactions", self.open_txns() as u64),
            ("accepted", c.accepted.load(Ordering::Relaxed)),
            (
                "failures_evaluated",
                c.failures_evaluated.load(Ordering::Relaxed),
            ),
            ("lockouts", c.lockouts.load(Ordering::Relaxed)),
            ("refused_locked", c.refused_locked.load(Ordering::Relaxed)),
            ("replays", c.replays.load(Ordering::Relaxed)),
            ("rate_limited", c.rate_limited.load(Ordering::Relaxed)),
            ("expired", c.expired.load(Ordering::Relaxed)),
            ("pushes", c.pushes.load(Ordering::Relaxed)),
            ("push_capped", c.push_capped.load(Ordering::Relaxed)),
            ("lockouts_recent_window", recent as u64),
            ("mass_lockout_alert", u64::from(alert)),
        ]
    }

    // ---- admin ---------------------------------------------------------------------------------

    fn new_device_id(&self) -> u32 {
        self.0.next_device.fetch_add(1, Ordering::Relaxed)
    }

    /// Enrols a user (R10, R17, R18, R20).
    ///
    /// # Errors
    /// R10 name; an existing user.
    pub fn enrol_user(&self, spec: &UserSpec) -> Result<Outcome<()>, CoreError> {
        if !sls_protocol::valid_user_name(&spec.name) {
            return Err(CoreError::BadCharacter);
        }
        let rec = Record::User {
            name: spec.name.clone(),
            entity: spec.entity.clone(),
            identification: spec.identification.clone(),
            primary: spec.primary,
            equity_usd: spec.equity_usd,
        };
        match self.0.users.entry(spec.name.as_str().into()) {
            dashmap::Entry::Occupied(_) => Err(CoreError::AlreadyExists),
            dashmap::Entry::Vacant(v) => {
                v.insert(Box::new(Mutex::new(Self::user_from(spec))));
                Ok(Outcome::new((), vec![rec]))
            }
        }
    }

    fn user_from(spec: &UserSpec) -> User {
        let extra =
            (!spec.entity.is_empty() || !spec.identification.is_empty() || spec.equity_usd > 0)
                .then(|| {
                    Box::new(Extra {
                        entity: spec.entity.clone(),
                        identification: spec.identification.clone(),
                        equity_usd: spec.equity_usd,
                        ..Extra::default()
                    })
                });
        User {
            primary: spec.primary,
            extra,
            ..User::default()
        }
    }

    fn build_device(
        &self,
        spec: &DeviceSpec,
        state: DeviceState,
        since_ms: u64,
    ) -> Result<Device, CoreError> {
        check_pin(spec.kind, &spec.pin)?;
        let suite = device_suite(spec.kind, &spec.suite)
            .map_err(|e| CoreError::InvalidCredential(e.to_string()))?;
        if spec.secret.is_empty() || spec.secret.len() > sls_protocol::limits::MAX_SECRET {
            return Err(CoreError::InvalidCredential(
                "secret of 1 to 64 bytes".into(),
            ));
        }
        let pin_hash: Box<[u8]> = match suite.and_then(|s: OcraSuite| s.pin) {
            Some(alg) => ocra::pin_hash(alg, spec.pin.as_bytes()).as_bytes().into(),
            None => Box::new([]),
        };
        Ok(Device {
            id: self.new_device_id(),
            kind: spec.kind,
            state,
            suite,
            material: material(&spec.secret, &pin_hash).0,
            pin_len: pin_hash.len() as u8,
            since_ms,
            recent: None,
        })
    }

    /// R20: ordering a DSC+ needs the equity threshold, when the user has equity data (fleets
    /// enrolled in bulk have none).
    fn dsc_plus_eligible(&self, u: &User) -> Result<(), CoreError> {
        match &u.extra {
            Some(x) if x.equity_usd > 0 && x.equity_usd < self.0.config.dsc_plus_min_equity => {
                Err(CoreError::NotEligible)
            }
            _ => Ok(()),
        }
    }

    fn with_user<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut User) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        if !sls_protocol::valid_user_name(name) {
            return Err(CoreError::BadCharacter);
        }
        let entry = self.0.users.get(name).ok_or(CoreError::UnknownUser)?;
        let mut u = entry.lock();
        f(&mut u)
    }

    fn add_device(&self, name: &str, u: &mut User, d: Device) -> (DeviceId, Record) {
        let rec = d.record(name);
        let id = DeviceId(d.id);
        if d.kind == DeviceKind::IbKey {
            self.0.ib_owner.insert(d.id, name.into());
        }
        u.devices.reserve_exact(1);
        u.devices.push(d);
        (id, rec)
    }

    /// Enrols an active device for a user; several per user (R4). A DSC+ needs the equity
    /// threshold (R20) unless the user was enrolled without equity data (fleets, migrations).
    ///
    /// # Errors
    /// Unknown user, R7 PIN, bad key or suite, R20.
    pub fn enrol_device(
        &self,
        user: &str,
        spec: &DeviceSpec,
    ) -> Result<Outcome<DeviceId>, CoreError> {
        let now = self.now_ms();
        self.with_user(user, |u| {
            if spec.kind == DeviceKind::DscPlus {
                self.dsc_plus_eligible(u)?;
            }
            let d = self.build_device(spec, DeviceState::Active, now)?;
            let (id, rec) = self.add_device(user, u, d);
            Ok(Outcome::new(id, vec![rec]))
        })
    }

    /// Enrols many users and devices: each record creates its user if new (its own entity,
    /// primary) and adds the device. One outcome per record, in order.
    pub fn enrol_bulk(
        &self,
        records: &[sls_protocol::BulkRecord],
    ) -> Outcome<Vec<Result<DeviceId, CoreError>>> {
        let now = self.now_ms();
        let mut out = Vec::with_capacity(records.len());
        let mut recs = Vec::with_capacity(records.len() * 2);
        for r in records {
            if !sls_protocol::valid_user_name(&r.user) {
                out.push(Err(CoreError::BadCharacter));
                continue;
            }
            let spec = DeviceSpec {
                kind: r.kind,
                secret: r.secret.clone(),
                pin: r.pin.clone(),
                suite: r.suite.clone(),
            };
            let device = match self.build_device(&spec, DeviceState::Active, now) {
                Ok(d) => d,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            let entry = self
                .0
                .users
                .entry(r.user.as_str().into())
                .or_insert_with(|| {
                    recs.push(Record::User {
                        name: r.user.clone(),
                        entity: String::new(),
                        identification: String::new(),
                        primary: true,
                        equity_usd: 0,
                    });
                    Box::new(Mutex::new(User {
                        primary: true,
                        ..User::default()
                    }))
                });
            let mut u = entry.lock();
            let (id, rec) = self.add_device(&r.user, &mut u, device);
            recs.push(rec);
            out.push(Ok(id));
        }
        Outcome::new(out, recs)
    }

    /// Issues a temporary code (R13): full access for 2 days, then Client Portal only for 10.
    /// Returns the device, the code, and its two deadlines.
    ///
    /// # Errors
    /// Unknown user.
    pub fn issue_temp_code(
        &self,
        user: &str,
    ) -> Result<Outcome<(DeviceId, String, u64, u64)>, CoreError> {
        let now = self.now_ms();
        let code = codes::temp_code_from_entropy(rand::thread_rng().gen());
        self.with_user(user, |u| {
            let d = Device {
                id: self.new_device_id(),
                kind: DeviceKind::TempCode,
                state: DeviceState::Active,
                suite: None,
                material: material(&codes::code_digest(&code), &[]).0,
                pin_len: 0,
                since_ms: now,
                recent: None,
            };
            let (id, rec) = self.add_device(user, u, d);
            let full = now + ms(self.0.config.temp_full);
            let portal = full + ms(self.0.config.temp_portal);
            Ok(Outcome::new((id, code.clone(), full, portal), vec![rec]))
        })
    }

    /// Issues an Online SCC (R14, R19): full access for 21 days. Returns the device, the card's
    /// secret (to print its grid) and its expiry.
    ///
    /// # Errors
    /// Unknown user.
    pub fn issue_online_scc(
        &self,
        user: &str,
    ) -> Result<Outcome<(DeviceId, Vec<u8>, u64)>, CoreError> {
        let now = self.now_ms();
        let secret: [u8; 32] = rand::thread_rng().gen();
        self.with_user(user, |u| {
            let spec = DeviceSpec {
                kind: DeviceKind::OnlineScc,
                secret: secret.to_vec(),
                pin: String::new(),
                suite: String::new(),
            };
            let d = self.build_device(&spec, DeviceState::Active, now)?;
            let (id, rec) = self.add_device(user, u, d);
            Ok(Outcome::new(
                (id, secret.to_vec(), now + ms(self.0.config.online_scc_life)),
                vec![rec],
            ))
        })
    }

    /// Voids the user's temporary devices (R15).
    fn void_temporary(&self, name: &str, u: &mut User, now: u64, recs: &mut Vec<Record>) {
        for d in u.devices.iter_mut().filter(|d| {
            matches!(d.kind, DeviceKind::TempCode | DeviceKind::OnlineScc)
                && d.state == DeviceState::Active
        }) {
            recs.push(d.set_state(name, DeviceState::Inactive, now));
        }
    }

    /// Reactivates a permanent device; its temporary code and Online SCC stop at once (R15).
    ///
    /// # Errors
    /// Unknown user or device; a temporary device.
    pub fn reactivate(&self, user: &str, device: DeviceId) -> Result<Outcome<()>, CoreError> {
        let now = self.now_ms();
        self.with_user(user, |u| {
            let d = u
                .devices
                .iter_mut()
                .find(|d| d.id == device.0)
                .ok_or(CoreError::UnknownDevice)?;
            if d.kind.is_temporary() {
                return Err(CoreError::InvalidState(
                    "a temporary device cannot be reactivated",
                ));
            }
            let mut recs = vec![d.set_state(user, DeviceState::Active, now)];
            self.void_temporary(user, u, now, &mut recs);
            Ok(Outcome::new((), recs))
        })
    }

    /// Orders a replacement DSC+ with a new 4-digit PIN (R16, R20).
    ///
    /// # Errors
    /// Unknown user, R7 PIN, R20.
    pub fn order_replacement(
        &self,
        user: &str,
        secret: &[u8],
        pin: &str,
    ) -> Result<Outcome<DeviceId>, CoreError> {
        let now = self.now_ms();
        self.with_user(user, |u| {
            self.dsc_plus_eligible(u)?;
            let spec = DeviceSpec {
                kind: DeviceKind::DscPlus,
                secret: secret.to_vec(),
                pin: pin.to_owned(),
                suite: String::new(),
            };
            let d = self.build_device(&spec, DeviceState::Ordered, now)?;
            let (id, rec) = self.add_device(user, u, d);
            Ok(Outcome::new(id, vec![rec]))
        })
    }

    /// Marks an ordered replacement shipped: it activates by itself 3 weeks later (R16).
    ///
    /// # Errors
    /// Unknown user or device; not ordered.
    pub fn ship(&self, user: &str, device: DeviceId) -> Result<Outcome<()>, CoreError> {
        let now = self.now_ms();
        self.with_user(user, |u| {
            let d = u
                .devices
                .iter_mut()
                .find(|d| d.id == device.0)
                .ok_or(CoreError::UnknownDevice)?;
            if d.state != DeviceState::Ordered {
                return Err(CoreError::InvalidState("only an ordered device ships"));
            }
            d.since_ms = now;
            Ok(Outcome::new(
                (),
                vec![d.set_state(user, DeviceState::Shipped, now)],
            ))
        })
    }

    /// The user activates a device: older devices of the same kind are replaced, and temporary
    /// devices stop at once (R15, R16).
    ///
    /// # Errors
    /// Unknown user or device.
    pub fn activate(&self, user: &str, device: DeviceId) -> Result<Outcome<()>, CoreError> {
        let now = self.now_ms();
        self.with_user(user, |u| {
            let kind = u
                .devices
                .iter()
                .find(|d| d.id == device.0)
                .ok_or(CoreError::UnknownDevice)?
                .kind;
            let mut recs = Vec::new();
            for d in u.devices.iter_mut() {
                if d.id == device.0 {
                    recs.push(d.set_state(user, DeviceState::Active, now));
                } else if d.kind == kind && d.kind.is_physical() && d.state == DeviceState::Active {
                    recs.push(d.set_state(user, DeviceState::Replaced, now));
                }
            }
            self.void_temporary(user, u, now, &mut recs);
            Ok(Outcome::new((), recs))
        })
    }

    /// R16: what the user should be told about a shipped device.
    ///
    /// # Errors
    /// Unknown user or device.
    pub fn activation_notice(
        &self,
        user: &str,
        device: DeviceId,
    ) -> Result<ActivationNotice, CoreError> {
        let now = self.now_ms();
        self.with_user(user, |u| {
            let d = u
                .devices
                .iter()
                .find(|d| d.id == device.0)
                .ok_or(CoreError::UnknownDevice)?;
            if d.state != DeviceState::Shipped {
                return Ok(ActivationNotice::None);
            }
            let due = d.since_ms + ms(self.0.config.auto_activation);
            let left = due.saturating_sub(now);
            Ok(if left == 0 || left > 7 * DAY_MS {
                ActivationNotice::None
            } else if left <= DAY_MS {
                ActivationNotice::Imminent
            } else {
                ActivationNotice::Approaching
            })
        })
    }

    /// Opts a user out of SLS (R18).
    ///
    /// # Errors
    /// Unknown user.
    pub fn opt_out(&self, user: &str) -> Result<Outcome<()>, CoreError> {
        self.with_user(user, |u| {
            u.opted_out = true;
            Ok(Outcome::new(
                (),
                vec![Record::OptOut {
                    user: user.to_owned(),
                    out: true,
                }],
            ))
        })
    }

    /// Opts a user back in: only the account's primary user may (R18).
    ///
    /// # Errors
    /// Unknown user; `by` is not the primary user (the error names who is).
    pub fn opt_in(&self, user: &str, by: &str) -> Result<Outcome<()>, CoreError> {
        let entity = self.with_user(user, |u| {
            Ok(u.extra
                .as_ref()
                .map(|x| x.entity.clone())
                .unwrap_or_default())
        })?;
        let by_ok = self.with_user(by, |b| {
            let same = b
                .extra
                .as_ref()
                .map(|x| x.entity.as_str())
                .unwrap_or_default()
                == entity;
            Ok(b.primary && (same || by == user))
        })?;
        if !by_ok {
            let primary = self
                .primary_of(&entity, user)
                .unwrap_or_else(|| user.to_owned());
            return Err(CoreError::NotPrimaryUser { primary });
        }
        self.with_user(user, |u| {
            u.opted_out = false;
            Ok(Outcome::new(
                (),
                vec![Record::OptOut {
                    user: user.to_owned(),
                    out: false,
                }],
            ))
        })
    }

    fn primary_of(&self, entity: &str, fallback: &str) -> Option<String> {
        if entity.is_empty() {
            return Some(fallback.to_owned());
        }
        self.0.users.iter().find_map(|e| {
            let u = e.value().lock();
            (u.primary && u.extra.as_ref().is_some_and(|x| x.entity == entity))
                .then(|| e.key().to_string())
        })
    }

    /// Client services lift a lock after verifying identity (R11).
    ///
    /// # Errors
    /// Unknown user.
    pub fn unlock(&self, user: &str) -> Result<Outcome<()>, CoreError> {
        self.with_user(user, |u| {
            u.failures = None;
            u.locked_until = 0;
            Ok(Outcome::new(
                (),
                vec![Record::Reset {
                    user: user.to_owned(),
                }],
            ))
        })
    }

    /// Starts IB Key activation or recovery (R22): returns the token to send by SMS to `phone`
    /// (digits only, no trunk prefix).
    ///
    /// # Errors
    /// Unknown user, bad phone number.
    pub fn activation_start(&self, user: &str, phone: &str) -> Result<Outcome<String>, CoreError> {
        if phone.len() < 6
            || phone.len() > 15
            || !phone.bytes().all(|b| b.is_ascii_digit())
            || phone.starts_with('0')
        {
            return Err(CoreError::BadPhone);
        }
        let now = self.now_ms();
        let nonce = self.0.token_nonce.fetch_add(1, Ordering::Relaxed);
        let token = codes::activation_token(&self.0.token_key, nonce);
        self.with_user(user, |u| {
            u.extra.get_or_insert_with(Default::default).activation = Some((nonce, now));
            Ok(Outcome::bare(token.clone()))
        })
    }

    /// Finishes IB Key activation or recovery (R22): the token, the app's key and PIN. A
    /// recovery replaces the user's previous IB Key (the app re-registers its key).
    ///
    /// # Errors
    /// Unknown user, bad or expired token, R7 PIN.
    pub fn activate_ib_key(
        &self,
        user: &str,
        token: &str,
        key: &[u8],
        pin: &str,
    ) -> Result<Outcome<DeviceId>, CoreError> {
        let now = self.now_ms();
        self.with_user(user, |u| {
            let (nonce, at) = u
                .extra
                .as_ref()
                .and_then(|x| x.activation)
                .ok_or(CoreError::BadToken)?;
            let expected = codes::activation_token(&self.0.token_key, nonce);
            if now.saturating_sub(at) > ms(self.0.config.activation_token_life)
                || !codes::codes_equal(&expected, token)
            {
                return Err(CoreError::BadToken);
            }
            let spec = DeviceSpec {
                kind: DeviceKind::IbKey,
                secret: key.to_vec(),
                pin: pin.to_owned(),
                suite: String::new(),
            };
            let d = self.build_device(&spec, DeviceState::Active, now)?;
            let mut recs = Vec::new();
            for old in u
                .devices
                .iter_mut()
                .filter(|o| o.kind == DeviceKind::IbKey && o.state == DeviceState::Active)
            {
                recs.push(old.set_state(user, DeviceState::Replaced, now));
            }
            // R1: SMS is temporary until IB Key is activated.
            for sms in u
                .devices
                .iter_mut()
                .filter(|o| o.kind == DeviceKind::Sms && o.state == DeviceState::Active)
            {
                recs.push(sms.set_state(user, DeviceState::Inactive, now));
            }
            if let Some(x) = u.extra.as_mut() {
                x.activation = None;
            }
            let (id, rec) = self.add_device(user, u, d);
            recs.push(rec);
            Ok(Outcome::new(id, recs))
        })
    }

    // ---- durability ----------------------------------------------------------------------------

    /// Applies a journalled record (start-up replay). Unknown users or devices in a record are
    /// skipped: the journal is the only writer, so they cannot occur in a sound journal.
    pub fn apply(&self, record: &Record) {
        match record {
            Record::User {
                name,
                entity,
                identification,
                primary,
                equity_usd,
            } => {
                let spec = UserSpec {
                    name: name.clone(),
                    entity: entity.clone(),
                    identification: identification.clone(),
                    primary: *primary,
                    equity_usd: *equity_usd,
                };
                self.0
                    .users
                    .entry(name.as_str().into())
                    .or_insert_with(|| Box::new(Mutex::new(Self::user_from(&spec))));
            }
            Record::Device {
                user,
                id,
                kind,
                state,
                secret,
                pin_hash,
                suite,
                since_ms,
                shared_from: _,
            } => {
                let suite = device_suite(*kind, suite).ok().flatten();
                let d = Device {
                    id: id.0,
                    kind: *kind,
                    state: *state,
                    suite,
                    material: material(secret, pin_hash).0,
                    pin_len: pin_hash.len() as u8,
                    since_ms: *since_ms,
                    recent: None,
                };
                self.0.next_device.fetch_max(id.0 + 1, Ordering::Relaxed);
                if let Some(e) = self.0.users.get(user.as_str()) {
                    let mut u = e.lock();
                    u.devices.retain(|x| x.id != id.0);
                    if *kind == DeviceKind::IbKey {
                        self.0.ib_owner.insert(id.0, user.as_str().into());
                    }
                    u.devices.reserve_exact(1);
                    u.devices.push(d);
                }
            }
            Record::DeviceState {
                user,
                id,
                state,
                at_ms,
            } => {
                if let Some(e) = self.0.users.get(user.as_str()) {
                    if let Some(d) = e.lock().devices.iter_mut().find(|d| d.id == id.0) {
                        d.state = *state;
                        if *state == DeviceState::Shipped {
                            d.since_ms = *at_ms;
                        }
                    }
                }
            }
            Record::DeviceRemoved { user, id } => {
                if let Some(e) = self.0.users.get(user.as_str()) {
                    e.lock().devices.retain(|d| d.id != id.0);
                }
            }
            Record::Failure { user, at_ms } => {
                if let Some(e) = self.0.users.get(user.as_str()) {
                    self.apply_failure(&mut e.lock(), *at_ms, false);
                }
            }
            Record::Reset { user } => {
                if let Some(e) = self.0.users.get(user.as_str()) {
                    let mut u = e.lock();
                    u.failures = None;
                    u.locked_until = 0;
                }
            }
            Record::OptOut { user, out } => {
                if let Some(e) = self.0.users.get(user.as_str()) {
                    e.lock().opted_out = *out;
                }
            }
            Record::Share {
                id,
                requester,
                owner,
                device,
                copy,
                state,
                deactivated,
            } => {
                self.apply_share(
                    *id,
                    share::Share {
                        requester: requester.clone(),
                        owner: owner.clone(),
                        device: device.0,
                        copy: *copy,
                        state: *state,
                        deactivated: deactivated.clone(),
                    },
                );
            }
            Record::Withdrawal {
                user,
                amount_usd,
                at_ms,
            } => {
                if let Some(e) = self.0.users.get(user.as_str()) {
                    e.lock()
                        .extra
                        .get_or_insert_with(Default::default)
                        .withdrawals
                        .push((*at_ms, *amount_usd));
                }
            }
        }
    }

    /// The whole durable state as records; replaying them rebuilds it.
    pub fn snapshot_records(&self) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.0.users.len() * 2);
        for e in self.0.users.iter() {
            let name = e.key().to_string();
            let u = e.value().lock();
            let x = u.extra.as_deref();
            out.push(Record::User {
                name: name.clone(),
                entity: x.map(|x| x.entity.clone()).unwrap_or_default(),
                identification: x.map(|x| x.identification.clone()).unwrap_or_default(),
                primary: u.primary,
                equity_usd: x.map_or(0, |x| x.equity_usd),
            });
            for d in &u.devices {
                out.push(d.record(&name));
            }
            if let Some(log) = &u.failures {
                for t in log.iter() {
                    out.push(Record::Failure {
                        user: name.clone(),
                        at_ms: *t,
                    });
                }
            }
            if u.opted_out {
                out.push(Record::OptOut {
                    user: name.clone(),
                    out: true,
                });
            }
            for (at, amount) in x.map(|x| x.withdrawals.as_slice()).unwrap_or_default() {
                out.push(Record::Withdrawal {
                    user: name.clone(),
                    amount_usd: *amount,
                    at_ms: *at,
                });
            }
        }
        out.extend(self.share_records());
        out
    }
}

fn question_buf(q: &str) -> TxnChallenge {
    let mut buf = [0u8; 64];
    let len = q.len().min(64);
    buf[..len].copy_from_slice(&q.as_bytes()[..len]);
    TxnChallenge::Question(buf, len as u8)
}

/// A random question of the suite's length and format.
fn random_question(suite: &OcraSuite, rng: &mut impl Rng) -> String {
    let len = suite.question_len as usize;
    const ALNUM: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..len)
        .map(|_| match suite.question {
            ocra::QuestionFormat::Numeric => char::from(b'0' + rng.gen_range(0..10u8)),
            ocra::QuestionFormat::Hex => char::from(b"0123456789ABCDEF"[rng.gen_range(0..16usize)]),
            ocra::QuestionFormat::Alpha => char::from(ALNUM[rng.gen_range(0..ALNUM.len())]),
        })
        .collect()
}
