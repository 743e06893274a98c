//! How answers are printed: a line for people, a JSON object for scripts.

use serde_json::{json, Value};
use sls_client::{Counter, DeviceInfo, Status, UserNotices, UserStatus};

use crate::Done;

/// The status's name as PROTOCOL.md §6 writes it (`UNKNOWN_USER`), or its code.
pub fn status_name(s: Status) -> String {
    s.name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:#06x}", s.0))
}

/// A time in ms since the epoch as RFC 3339 (UTC), or null for 0.
pub fn time(ms: u64) -> Value {
    if ms == 0 {
        return Value::Null;
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    json!(humantime::format_rfc3339_millis(t).to_string())
}

fn time_text(ms: u64) -> String {
    match time(ms) {
        Value::String(s) => s,
        _ => "-".into(),
    }
}

fn limit(usd: u64) -> Value {
    if usd == u64::MAX {
        Value::Null
    } else {
        json!(usd)
    }
}

fn device(d: &DeviceInfo) -> Value {
    json!({"id": d.id.0, "kind": d.kind.name(),
        "per_day_usd": limit(d.limits.per_day_usd),
        "per_5_business_days_usd": limit(d.limits.per_5_business_days_usd)})
}

/// `status USER`.
pub fn status(user: &str, s: &UserStatus) -> Done {
    let locked = s.locked_until_ms != 0;
    let devices: Vec<String> = s
        .devices
        .iter()
        .map(|d| format!("{} {}", d.id.0, d.kind.name()))
        .collect();
    let lock = if locked {
        format!("locked until {}", time_text(s.locked_until_ms))
    } else {
        "not locked".into()
    };
    Done {
        json: json!({"user": user, "locked": locked, "locked_until_ms": s.locked_until_ms,
            "locked_until": time(s.locked_until_ms), "failures": s.failures,
            "failures_left": s.failures_left, "opted_out": s.opted_out,
            "devices": s.devices.iter().map(device).collect::<Vec<_>>()}),
        text: format!(
            "{user}: {lock}, {} failures ({} left){}; devices: {}",
            s.failures,
            s.failures_left,
            if s.opted_out { ", opted out" } else { "" },
            if devices.is_empty() {
                "none".into()
            } else {
                devices.join(", ")
            }
        ),
    }
}

/// `notices USER`.
pub fn notices(user: &str, n: &UserNotices) -> Done {
    let activation = ["none", "approaching", "imminent"]
        .get(usize::from(n.activation))
        .copied()
        .unwrap_or("unknown");
    Done {
        json: json!({"user": user, "replacement": n.replacement.map(|d| d.0),
            "activation": activation, "activates_at_ms": n.activates_at_ms,
            "activates_at": time(n.activates_at_ms), "mass_lockout": n.mass_lockout}),
        text: match n.replacement {
            Some(d) => format!(
                "{user}: replacement device {} activates at {} ({activation}); mass lockout {}",
                d.0,
                time_text(n.activates_at_ms),
                n.mass_lockout
            ),
            None => format!("{user}: nothing to tell; mass lockout {}", n.mass_lockout),
        },
    }
}

/// `stats`.
pub fn stats(counters: &[Counter]) -> Done {
    let mut map = serde_json::Map::new();
    let mut text = Vec::with_capacity(counters.len());
    for c in counters {
        map.insert(c.name.clone(), json!(c.value));
        text.push(format!("{:<32} {}", c.name, c.value));
    }
    Done {
        json: Value::Object(map),
        text: text.join("\n"),
    }
}
