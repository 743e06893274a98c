//! How answers are printed: a line for people, a JSON object for scripts.

use serde_json::{json, Value};
use sls_client::{
    AuditEntry, Counter, DeviceDetail, DeviceInfo, ShareInfo, Status, UserDetails, UserNotices,
    UserStatus,
};

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

/// `audit USER`: the entries as the export renders them (PROTOCOL.md §4, "Audit").
pub fn audit(user: &str, entries: &[AuditEntry]) -> Done {
    let objects: Vec<Value> = entries
        .iter()
        .filter_map(|e| serde_json::from_str(&e.to_json()).ok())
        .collect();
    let lines: Vec<String> = objects
        .iter()
        .map(|o| {
            let field = |k: &str| match &o[k] {
                Value::Null => "-".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let at = o["at_ms"].as_u64().map(time_text).unwrap_or_default();
            let outcome = match (&o["verdict"], &o["status"]) {
                (Value::Null, Value::Null) => "done".to_string(),
                (Value::Null, _) => format!("refused {}", field("status")),
                (v, _) => v.to_string(),
            };
            format!(
                "{at}  {:<16} device {:<4} from {:<15} {outcome}  (node {})",
                field("event"),
                field("device"),
                field("client"),
                field("node")
            )
        })
        .collect();
    Done {
        json: json!({"user": user, "entries": objects}),
        text: if lines.is_empty() {
            format!("{user}: no audit entries")
        } else {
            lines.join("\n")
        },
    }
}

/// `devices USER`.
pub fn devices(user: &str, devices: &[DeviceDetail]) -> Done {
    let state = |s: u8| match s {
        1 => "active".to_string(),
        2 => "ordered".into(),
        3 => "shipped".into(),
        4 => "inactive".into(),
        5 => "lost".into(),
        6 => "replaced".into(),
        7 => "revoked".into(),
        8 => "suspended".into(),
        n => format!("state {n}"),
    };
    Done {
        json: json!({"user": user, "devices": devices.iter().map(|d| json!({
            "id": d.id.0, "kind": d.kind.name(), "state": state(d.state), "state_code": d.state,
            "since_ms": d.since_ms, "since": time(d.since_ms), "usable": d.usable,
            "shared_from": d.shared_from.as_ref().map(|s| json!({
                "owner": s.owner, "device": s.device.0,
            })),
        })).collect::<Vec<_>>()}),
        text: devices
            .iter()
            .map(|d| {
                format!(
                    "{user}: device {} {} {} since {}{}{}",
                    d.id.0,
                    d.kind.name(),
                    state(d.state),
                    time_text(d.since_ms),
                    if d.usable { ", usable" } else { "" },
                    d.shared_from
                        .as_ref()
                        .map(|s| format!(", shared from {} device {}", s.owner, s.device.0))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// `shares`.
pub fn shares(shares: &[ShareInfo]) -> Done {
    let state = |pending: bool| if pending { "pending" } else { "approved" };
    Done {
        json: json!({"shares": shares.iter().map(|s| json!({
            "share": s.share, "requester": s.requester, "owner": s.owner,
            "device": s.device.0, "state": state(s.pending),
        })).collect::<Vec<_>>()}),
        text: if shares.is_empty() {
            "no shares".into()
        } else {
            shares
                .iter()
                .map(|s| {
                    format!(
                        "share {}: {} uses {}'s device {}, {}",
                        s.share,
                        s.requester,
                        s.owner,
                        s.device.0,
                        state(s.pending)
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        },
    }
}

/// `detail USER`.
pub fn detail(user: &str, d: &UserDetails) -> Done {
    Done {
        json: json!({"user": user, "entity": d.entity, "identification": d.identification,
            "primary": d.primary, "equity_usd": d.equity_usd, "opted_out": d.opted_out,
            "failures_ms": d.failures_ms, "locked_until_ms": d.locked_until_ms,
            "locked_until": time(d.locked_until_ms),
            "withdrawn_day_usd": d.withdrawn_day_usd, "withdrawn_5bd_usd": d.withdrawn_5bd_usd,
            "left_day_usd": limit(d.left_day_usd), "left_5bd_usd": limit(d.left_5bd_usd)}),
        text: format!(
            "{user}: entity {:?}, identification {:?}, primary {}, equity {} USD{}; {} failures in the window{}; withdrawn {} USD today, {} in 5 business days",
            d.entity,
            d.identification,
            d.primary,
            d.equity_usd,
            if d.opted_out { ", opted out" } else { "" },
            d.failures_ms.len(),
            if d.locked_until_ms != 0 {
                format!(", locked until {}", time_text(d.locked_until_ms))
            } else {
                String::new()
            },
            d.withdrawn_day_usd,
            d.withdrawn_5bd_usd
        ),
    }
}
