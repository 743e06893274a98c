//! What a device grants, and whether it is usable at all: R13 (temporary code: 2 days full,
//! then 10 days Client Portal only), R14 (Online SCC: 21 days), R16 (a shipped replacement
//! activates itself 3 weeks after shipment), R1 (SMS is temporary), R21 (IB Key trading
//! grants: 12 h with the PIN, 30 h with biometrics).

use sls_protocol::{ApprovalMethod, DeviceKind, Grant, GrantKind};

use crate::config::CoreConfig;
use crate::cx::after;
use crate::record::DeviceState;
use crate::user::{Device, UserState};

/// When a shipped replacement activates by itself (R16: 3 weeks after shipment), if it is
/// shipped.
pub fn auto_activation_at(d: &Device, cfg: &CoreConfig) -> Option<u64> {
    (d.state == DeviceState::Shipped).then(|| after(d.since_ms, cfg.auto_activation))
}

/// Whether `d` is one of the devices an activation of `new` stops (R15, R16): a temporary
/// code or Online SCC, or an active physical device of the same kind.
pub fn stopped_by(d: &Device, new: &Device) -> bool {
    d.id != new.id
        && d.state == DeviceState::Active
        && (matches!(d.kind, DeviceKind::TempCode | DeviceKind::OnlineScc)
            || (d.kind == new.kind && d.kind.is_physical()))
}

/// The grant `u`'s device `d` gives at `now`, or `None` if it is not usable.
///
/// R16 is exact to the millisecond without a timer: a replacement past its auto-activation
/// time is active, and what its activation stops (R15) is stopped from that moment, before
/// any change to the user writes it down ([`crate::admin::auto_activate`] does, at the next).
pub fn usable(u: &UserState, d: &Device, now: u64, cfg: &CoreConfig) -> Option<Grant> {
    let active = match d.state {
        DeviceState::Active => !u
            .devices
            .iter()
            .any(|r| auto_activation_at(r, cfg).is_some_and(|at| now >= at) && stopped_by(d, r)),
        DeviceState::Shipped => auto_activation_at(d, cfg).is_some_and(|at| now >= at),
        _ => false,
    };
    if !active {
        return None;
    }
    let left = |until: u64| u32::try_from(until.saturating_sub(now) / 1000).unwrap_or(u32::MAX);
    match d.kind {
        DeviceKind::TempCode => {
            let full = after(d.since_ms, cfg.temp_full);
            let portal = after(full, cfg.temp_portal);
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
            let end = after(d.since_ms, cfg.online_scc_life);
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

/// R21: the trading grant of an IB Key approval.
pub fn ib_key(method: ApprovalMethod, cfg: &CoreConfig) -> Grant {
    let secs = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    match method {
        ApprovalMethod::Pin => Grant {
            kind: GrantKind::TradingPin,
            valid_secs: secs(cfg.grant_pin),
        },
        ApprovalMethod::Biometric => Grant {
            kind: GrantKind::TradingBiometric,
            valid_secs: secs(cfg.grant_biometric),
        },
    }
}
