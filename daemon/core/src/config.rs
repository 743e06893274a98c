//! The core's configuration: the rules' numbers, with the articles' defaults. Plain data.

use std::time::Duration;

use sls_protocol::card::CardLayout;

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
    /// Most open transactions of one user: past it, a `begin` voids the user's oldest.
    pub max_open_per_user: usize,
    /// Most devices one user holds that are or may become usable again (not revoked,
    /// replaced or a voided temporary one): past it, enrolling, issuing or sharing one more is
    /// refused (`TooManyDevices`). At most 64, the bound of the wire's device lists.
    pub max_devices_per_user: usize,
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
    /// Most unknown names whose password failures are counted like a real user's, so that
    /// the countdown does not tell them apart (no user enumeration; about 150 bytes each).
    pub max_shadow_names: usize,
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
            max_open_per_user: 1024,
            max_devices_per_user: 32,
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
            max_shadow_names: 100_000,
        }
    }
}
