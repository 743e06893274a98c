//! The audit trail's settings and the idempotency window of admin writes
//! (item 5), range-checked like the others.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::ranges::{duration_in, number_in};
use super::{ConfigError, Settings};

/// `audit_keep`: entries kept per user; 0 turns the trail off.
pub const AUDIT_KEEP: RangeInclusive<usize> = 0..=100_000;
/// `audit_max_age`: an hour to ten years.
pub const AUDIT_MAX_AGE: RangeInclusive<Duration> =
    Duration::from_secs(3600)..=super::ranges::MAX_DURATION;
/// `idempotency_ttl`: a minute to a week.
pub const IDEMPOTENCY_TTL: RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(7 * 86_400);
/// The longest `node_name`: the wire's text limit.
pub const NODE_NAME_MAX: usize = sls_protocol::limits::MAX_TEXT;

/// The validated audit and idempotency settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Entries kept per user, newest (0: no trail).
    pub keep: usize,
    /// Entries older than this are dropped.
    pub max_age: Duration,
    /// This node's name in every entry.
    pub node: String,
    /// How long an admin write's idempotency key and answer are kept.
    pub idempotency_ttl: Duration,
}

impl AuditConfig {
    /// The defaults: 200 entries, 90 days, the host's name, 24 hours.
    pub fn defaults() -> AuditConfig {
        AuditConfig {
            keep: 200,
            max_age: Duration::from_secs(90 * 86_400),
            node: host_name(),
            idempotency_ttl: Duration::from_secs(86_400),
        }
    }
}

/// The host's name (`/proc/sys/kernel/hostname`), or `slsd`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.len() <= NODE_NAME_MAX)
        .unwrap_or_else(|| "slsd".into())
}

/// The audit settings of `s`.
///
/// # Errors
/// A setting out of its range, named.
pub fn apply(s: &Settings) -> Result<AuditConfig, ConfigError> {
    let d = AuditConfig::defaults();
    let node = match &s.node_name {
        None => d.node,
        Some(n) if n.is_empty() || n.len() > NODE_NAME_MAX || n.chars().any(char::is_control) => {
            return Err(ConfigError::Invalid {
                field: "node_name",
                why: format!("{n:?}: 1 to {NODE_NAME_MAX} bytes, no control characters"),
            })
        }
        Some(n) => n.clone(),
    };
    Ok(AuditConfig {
        keep: number_in("audit_keep", s.audit_keep, d.keep, AUDIT_KEEP)?,
        max_age: duration_in("audit_max_age", s.audit_max_age, d.max_age, AUDIT_MAX_AGE)?,
        node,
        idempotency_ttl: duration_in(
            "idempotency_ttl",
            s.idempotency_ttl,
            d.idempotency_ttl,
            IDEMPOTENCY_TTL,
        )?,
    })
}
