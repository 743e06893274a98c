//! The range of every setting, checked once at start: a value out of range is refused with a
//! one-line error naming the setting, never wrapped, clamped or left for the rules to trip on.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::ConfigError;

/// The longest duration any setting accepts: 3650 days. Anything longer is a typo, and the
/// core adds durations to its clock in `u64` milliseconds, the service to an `Instant`.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// `--max-open-txns`: 1 to 100 million (about 200 bytes each).
pub const OPEN_TXNS: RangeInclusive<usize> = 1..=100_000_000;
/// `--snapshot-bytes`: 4 KiB to 1 TiB of journal.
pub const SNAPSHOT_BYTES: RangeInclusive<u64> = 4096..=1 << 40;
/// `--threads`.
pub const THREADS: RangeInclusive<usize> = 1..=256;
/// `--endpoints`: a thread and a socket each.
pub const ENDPOINTS: RangeInclusive<usize> = 1..=256;
/// `--lockout-threshold` (R11).
pub const LOCKOUT_THRESHOLD: RangeInclusive<u8> = 1..=u8::MAX;
/// `--idle-timeout`: 0 would keep a silent peer's connection for ever.
pub const IDLE_TIMEOUT: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(3600);
/// `--challenge-ttl` (R12: 2 minutes): within a day.
pub const CHALLENGE_TTL: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(86_400);
/// `--lockout-window` (R11).
pub const LOCKOUT_WINDOW: RangeInclusive<Duration> = Duration::from_secs(1)..=MAX_DURATION;
/// `--grace`: 0 closes at once.
pub const GRACE: RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(3600);

/// `value`, or `default` when not given, refused outside `range`.
pub fn number_in<T: PartialOrd + Display + Copy>(
    field: &'static str,
    value: Option<T>,
    default: T,
    range: RangeInclusive<T>,
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if !range.contains(&v) {
        return Err(ConfigError::Invalid {
            field,
            why: format!("{v} is out of range: {} to {}", range.start(), range.end()),
        });
    }
    Ok(v)
}

/// `value`, or `default` when not given, refused outside `range`.
pub fn duration_in(
    field: &'static str,
    value: Option<Duration>,
    default: Duration,
    range: RangeInclusive<Duration>,
) -> Result<Duration, ConfigError> {
    let d = value.unwrap_or(default);
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if d > *range.end() {
        return Err(ConfigError::Invalid {
            field,
            why: format!(
                "{} is longer than the most allowed, {}",
                show(d),
                show(*range.end())
            ),
        });
    }
    if d < *range.start() {
        return Err(ConfigError::Invalid {
            field,
            why: format!(
                "{} is shorter than the least allowed, {}",
                show(d),
                show(*range.start())
            ),
        });
    }
    Ok(d)
}

/// A rate given explicitly and its burst, two seconds' worth; refused when that overflows.
pub fn rate_and_burst(field: &'static str, rate: u32) -> Result<(u32, u32), ConfigError> {
    let burst = rate.checked_mul(2).ok_or_else(|| ConfigError::Invalid {
        field,
        why: format!("{rate} is more than the most allowed, {}", u32::MAX / 2),
    })?;
    Ok((rate, burst))
}
