//! The rules' choices and numbers that SLS_RULES.md calls configurable (R6, R10, R11, R13,
//! R14, R16, R20, R21, R22, the mass-lockout signal), from the settings onto the core's
//! configuration, each range-checked. The defaults are the articles' ([`CoreConfig::default`]).

use std::ops::RangeInclusive;
use std::time::Duration;

use super::ranges::{duration_in, number_in};
use super::{ConfigError, Settings};
use crate::engine::CoreConfig;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// `core` with the rule settings of `s` laid over it.
///
/// # Errors
/// A setting out of its range, named.
pub fn apply(s: &Settings, core: CoreConfig) -> Result<CoreConfig, ConfigError> {
    let d = |field, value, default, range: RangeInclusive<Duration>| {
        duration_in(field, value, default, range)
    };
    Ok(CoreConfig {
        malformed_counts: s.malformed_counts.unwrap_or(core.malformed_counts),
        extend_lock_while_locked: s
            .extend_lock_while_locked
            .unwrap_or(core.extend_lock_while_locked),
        push_cap: s.push_cap.unwrap_or(core.push_cap),
        mass_lockout_threshold: number_in(
            "mass_lockout_threshold",
            s.mass_lockout_threshold,
            core.mass_lockout_threshold,
            1..=1_000_000,
        )?,
        mass_lockout_window: d(
            "mass_lockout_window",
            s.mass_lockout_window,
            core.mass_lockout_window,
            Duration::from_secs(1)..=DAY,
        )?,
        dsc_plus_min_equity: s.dsc_plus_min_equity.unwrap_or(core.dsc_plus_min_equity),
        // The wire's device lists hold at most 64 (`MAX_LIST`): a user's usable devices,
        // which the cap bounds, must always fit.
        max_devices_per_user: number_in(
            "max_devices_per_user",
            s.max_devices_per_user,
            core.max_devices_per_user,
            1..=sls_protocol::limits::MAX_LIST,
        )?,
        temp_full: d(
            "temp_code_full",
            s.temp_code_full,
            core.temp_full,
            HOUR..=days(30),
        )?,
        temp_portal: d(
            "temp_code_portal",
            s.temp_code_portal,
            core.temp_portal,
            Duration::ZERO..=days(90),
        )?,
        online_scc_life: d(
            "online_scc_life",
            s.online_scc_life,
            core.online_scc_life,
            DAY..=days(90),
        )?,
        auto_activation: d(
            "auto_activation",
            s.auto_activation,
            core.auto_activation,
            DAY..=days(90),
        )?,
        grant_pin: d("grant_pin", s.grant_pin, core.grant_pin, MINUTE..=days(7))?,
        grant_biometric: d(
            "grant_biometric",
            s.grant_biometric,
            core.grant_biometric,
            MINUTE..=days(7),
        )?,
        activation_token_life: d(
            "activation_token_life",
            s.activation_token_life,
            core.activation_token_life,
            MINUTE..=DAY,
        )?,
        ..core
    })
}
