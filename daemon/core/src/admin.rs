//! Enrolment and the device lifecycle, as client services and the enrolment paths drive them:
//! R7 (PINs), R10 (names), R13 (temporary codes), R14 (Online SCC), R15 (reactivation voids
//! temporary devices), R16 (replacements), R18 (opting out and back in), R19 (enrolment
//! paths), R20 (DSC+ equity threshold), R22 (IB Key activation and recovery), R1 (SMS ends
//! with IB Key activation).
//!
//! Device ids are allocated by the store before the rule runs (they are unique across users),
//! and passed in.

use rand::Rng;
use sls_protocol::codes;
use sls_protocol::ocra::{self, OcraSuite};
use sls_protocol::{DeviceId, DeviceKind};

use crate::cx::{after, Cx};
use crate::error::CoreError;
use crate::grant;
use crate::lifecycle;
use crate::record::{DeviceState, Record};
use crate::user::{device_suite, Device, UserState};
use crate::{ActivationNotice, DeviceSpec, UserSpec};

const DAY_MS: u64 = 24 * 3_600_000;

/// R7: a DSC+ PIN is exactly 4 digits; an IB Key PIN 4 to 6 printable characters.
pub fn check_pin(kind: DeviceKind, pin: &str) -> Result<(), CoreError> {
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

/// A device from its enrolment data (R7 PIN, suite, secret length).
///
/// # Errors
/// R7 PIN, a bad suite, a secret not 1 to 64 bytes.
pub fn build_device(
    id: u32,
    spec: &DeviceSpec,
    state: DeviceState,
    since_ms: u64,
) -> Result<Device, CoreError> {
    if spec.kind == DeviceKind::NoDevice {
        // R18: "none" is how an opted-out user logs in (OptOut), not a device to answer with.
        return Err(CoreError::InvalidCredential(
            "kind none is not a device: opt the user out".into(),
        ));
    }
    check_pin(spec.kind, &spec.pin)?;
    let suite = device_suite(spec.kind, &spec.suite)
        .map_err(|e| CoreError::InvalidCredential(e.to_string()))?;
    if spec.secret.is_empty() || spec.secret.len() > sls_protocol::limits::MAX_SECRET {
        return Err(CoreError::InvalidCredential(
            "secret of 1 to 64 bytes".into(),
        ));
    }
    let pin_hash = match suite.and_then(|s: OcraSuite| s.pin) {
        Some(alg) => ocra::pin_hash(alg, spec.pin.as_bytes()).as_bytes().to_vec(),
        None => Vec::new(),
    };
    Ok(Device::new(
        id,
        spec.kind,
        state,
        suite,
        &spec.secret,
        &pin_hash,
        since_ms,
    ))
}

/// Enrols a user.
///
/// # Errors
/// The user exists.
pub fn enrol_user(u: &mut UserState, spec: &UserSpec, cx: &mut Cx<'_>) -> Result<(), CoreError> {
    if u.enrolled {
        return Err(CoreError::AlreadyExists);
    }
    // R17(a): one person written two ways is one identification.
    let spec = &UserSpec {
        identification: crate::inspect::canonical_identification(&spec.identification),
        ..spec.clone()
    };
    u.enrol(spec);
    cx.records.push(Record::User {
        name: spec.name.clone(),
        entity: spec.entity.clone(),
        identification: spec.identification.clone(),
        primary: spec.primary,
        equity_usd: spec.equity_usd,
    });
    Ok(())
}

/// R20: ordering a DSC+ needs the equity threshold, when the user has equity data (fleets
/// enrolled in bulk have none).
fn dsc_plus_eligible(u: &UserState, cx: &Cx<'_>) -> Result<(), CoreError> {
    match &u.extra {
        Some(x) if x.equity_usd > 0 && x.equity_usd < cx.cfg.dsc_plus_min_equity => {
            Err(CoreError::NotEligible)
        }
        _ => Ok(()),
    }
}

/// Enrols an active device; several per user (R4). A DSC+ needs the equity threshold (R20).
///
/// # Errors
/// R7 PIN, bad key or suite, R20.
pub fn enrol_device(
    u: &mut UserState,
    id: u32,
    spec: &DeviceSpec,
    cx: &mut Cx<'_>,
) -> Result<DeviceId, CoreError> {
    if spec.kind == DeviceKind::DscPlus {
        dsc_plus_eligible(u, cx)?;
    }
    lifecycle::room(u, cx.cfg)?;
    let d = build_device(id, spec, DeviceState::Active, cx.now)?;
    cx.records.push(u.add_device(cx.user, d, 0));
    Ok(DeviceId(id))
}

/// R19 bulk path: creates the user if new (its own entity, primary) and adds the device.
///
/// # Errors
/// As [`build_device`].
pub fn enrol_bulk_one(
    u: &mut UserState,
    id: u32,
    spec: &DeviceSpec,
    cx: &mut Cx<'_>,
) -> Result<DeviceId, CoreError> {
    let d = build_device(id, spec, DeviceState::Active, cx.now)?;
    lifecycle::room(u, cx.cfg)?;
    if !u.enrolled {
        let spec = UserSpec {
            name: cx.user.to_owned(),
            primary: true,
            ..UserSpec::default()
        };
        enrol_user(u, &spec, cx)?;
    }
    cx.records.push(u.add_device(cx.user, d, 0));
    Ok(DeviceId(id))
}

/// R13: a temporary code: full access for 2 days, then Client Portal only for 10. Returns the
/// code and its two deadlines. **Choice:** a user holds one temporary code at a time: a new
/// one voids the previous (client services give the code they just read out; an older one,
/// perhaps given to someone else, must not stay valid beside it).
///
/// # Errors
/// The cap on devices (the voided code does not count).
pub fn issue_temp_code(
    u: &mut UserState,
    id: u32,
    cx: &mut Cx<'_>,
) -> Result<(String, u64, u64), CoreError> {
    let previous = |d: &Device| d.kind == DeviceKind::TempCode && d.state == DeviceState::Active;
    let voided = u.devices.iter().filter(|d| previous(d)).count();
    if lifecycle::counted(u).saturating_sub(voided) >= cx.cfg.max_devices_per_user {
        return Err(CoreError::TooManyDevices);
    }
    for d in u.devices.iter_mut().filter(|d| previous(d)) {
        cx.records
            .push(d.set_state(cx.user, DeviceState::Inactive, cx.now));
    }
    let code = codes::temp_code_from_entropy(cx.rng.gen());
    let d = Device::new(
        id,
        DeviceKind::TempCode,
        DeviceState::Active,
        None,
        &codes::code_digest(&code),
        &[],
        cx.now,
    );
    cx.records.push(u.add_device(cx.user, d, 0));
    let full = after(cx.now, cx.cfg.temp_full);
    Ok((code, full, after(full, cx.cfg.temp_portal)))
}

/// R14: an Online SCC, full access for 21 days. Returns the card's secret and its expiry.
///
/// # Errors
/// Never for a sound configuration (the secret is 32 bytes).
pub fn issue_online_scc(
    u: &mut UserState,
    id: u32,
    cx: &mut Cx<'_>,
) -> Result<(Vec<u8>, u64), CoreError> {
    lifecycle::room(u, cx.cfg)?;
    let secret: [u8; 32] = cx.rng.gen();
    let spec = DeviceSpec {
        kind: DeviceKind::OnlineScc,
        secret: secret.to_vec(),
        pin: String::new(),
        suite: String::new(),
    };
    let d = build_device(id, &spec, DeviceState::Active, cx.now)?;
    cx.records.push(u.add_device(cx.user, d, 0));
    Ok((secret.to_vec(), after(cx.now, cx.cfg.online_scc_life)))
}

/// R15: voids the user's temporary devices, as of `at`.
fn void_temporary(u: &mut UserState, at: u64, cx: &mut Cx<'_>) {
    for d in u.devices.iter_mut().filter(|d| {
        matches!(d.kind, DeviceKind::TempCode | DeviceKind::OnlineScc)
            && d.state == DeviceState::Active
    }) {
        cx.records
            .push(d.set_state(cx.user, DeviceState::Inactive, at));
    }
}

/// R15: reactivates a permanent device; its temporary code and Online SCC stop at once. It
/// follows R16's states: a replacement not active yet becomes so by `Activate` once shipped
/// (or by itself), never by `Reactivate` beside the card it replaces; a card replaced by a
/// newer one is retired for good; a revoked one never comes back, a suspended one by
/// `ResumeDevice` only.
///
/// # Errors
/// Unknown device; a temporary device; ordered or shipped (`InvalidState`); replaced
/// (`DeviceRetired`); revoked; suspended.
pub fn reactivate(u: &mut UserState, device: DeviceId, cx: &mut Cx<'_>) -> Result<(), CoreError> {
    let d = u.device_mut(device.0)?;
    if d.kind.is_temporary() {
        return Err(CoreError::InvalidState(
            "a temporary device cannot be reactivated",
        ));
    }
    lifecycle::refuse_reactivation(d)?;
    match d.state {
        DeviceState::Replaced => return Err(CoreError::DeviceRetired),
        DeviceState::Ordered | DeviceState::Shipped => {
            return Err(CoreError::InvalidState(
                "a replacement becomes active by Activate once shipped, or by itself (R16)",
            ));
        }
        _ => {}
    }
    cx.records
        .push(d.set_state(cx.user, DeviceState::Active, cx.now));
    void_temporary(u, cx.now, cx);
    Ok(())
}

/// R16: orders a replacement DSC+ with a new 4-digit PIN (R20 applies).
///
/// # Errors
/// R7 PIN, R20.
pub fn order_replacement(
    u: &mut UserState,
    id: u32,
    secret: &[u8],
    pin: &str,
    cx: &mut Cx<'_>,
) -> Result<DeviceId, CoreError> {
    dsc_plus_eligible(u, cx)?;
    lifecycle::room(u, cx.cfg)?;
    let spec = DeviceSpec {
        kind: DeviceKind::DscPlus,
        secret: secret.to_vec(),
        pin: pin.to_owned(),
        suite: String::new(),
    };
    let d = build_device(id, &spec, DeviceState::Ordered, cx.now)?;
    cx.records.push(u.add_device(cx.user, d, 0));
    Ok(DeviceId(id))
}

/// R16: an ordered replacement is shipped; it activates by itself 3 weeks later.
///
/// # Errors
/// Unknown device; not ordered.
pub fn ship(u: &mut UserState, device: DeviceId, cx: &mut Cx<'_>) -> Result<(), CoreError> {
    let d = u.device_mut(device.0)?;
    if d.state != DeviceState::Ordered {
        return Err(CoreError::InvalidState("only an ordered device ships"));
    }
    d.since_ms = cx.now;
    cx.records
        .push(d.set_state(cx.user, DeviceState::Shipped, cx.now));
    Ok(())
}

/// R15, R16: the user activates a device: older devices of the same kind are replaced, and
/// temporary devices stop at once. A replacement activates once shipped: one still ordered is
/// not in the user's hands, and activating it would retire the card the user logs in with.
///
/// # Errors
/// Unknown device; a replacement not shipped yet.
pub fn activate(u: &mut UserState, device: DeviceId, cx: &mut Cx<'_>) -> Result<(), CoreError> {
    lifecycle::refuse_reactivation(u.device(device.0)?)?;
    if u.device(device.0)?.state == DeviceState::Ordered {
        return Err(CoreError::InvalidState(
            "a replacement activates once shipped",
        ));
    }
    activate_at(u, device.0, cx.now, cx);
    Ok(())
}

/// [`activate`] as of `at`.
fn activate_at(u: &mut UserState, id: u32, at: u64, cx: &mut Cx<'_>) {
    let kind = u.devices.iter().find(|d| d.id == id).map(|d| d.kind);
    for d in u.devices.iter_mut() {
        if d.id == id {
            cx.records
                .push(d.set_state(cx.user, DeviceState::Active, at));
        } else if Some(d.kind) == kind
            && d.kind.is_physical()
            && matches!(d.state, DeviceState::Active | DeviceState::Suspended)
        {
            // A suspended predecessor is retired too: resuming it must not bring it back
            // beside its replacement (R16).
            cx.records
                .push(d.set_state(cx.user, DeviceState::Replaced, at));
        }
    }
    void_temporary(u, at, cx);
}

/// R16: a shipped replacement past its three weeks activates by itself, as if the user had
/// activated it at that moment: the old card is replaced and the temporary devices stop (R15).
/// Run before every change to a user, so the state written down is the state the rules have
/// been reading since that moment ([`crate::grant::usable`]).
pub fn auto_activate(u: &mut UserState, cx: &mut Cx<'_>) {
    loop {
        let due = u
            .devices
            .iter()
            .filter_map(|d| Some((grant::auto_activation_at(d, cx.cfg)?, d.id)))
            .filter(|(at, _)| *at <= cx.now)
            .min();
        let Some((at, id)) = due else { return };
        activate_at(u, id, at, cx);
    }
}

/// R16: what the user should be told about a shipped device.
///
/// # Errors
/// Unknown device.
pub fn activation_notice(
    u: &UserState,
    device: DeviceId,
    now: u64,
    cfg: &crate::CoreConfig,
) -> Result<ActivationNotice, CoreError> {
    let d = u.device(device.0)?;
    if d.state != DeviceState::Shipped {
        return Ok(ActivationNotice::None);
    }
    let left = after(d.since_ms, cfg.auto_activation).saturating_sub(now);
    Ok(if left == 0 || left > 7 * DAY_MS {
        ActivationNotice::None
    } else if left <= DAY_MS {
        ActivationNotice::Imminent
    } else {
        ActivationNotice::Approaching
    })
}

/// R18: opts the user out of SLS, or back in.
pub fn set_opted_out(u: &mut UserState, out: bool, cx: &mut Cx<'_>) {
    u.opted_out = out;
    cx.records.push(Record::OptOut {
        user: cx.user.to_owned(),
        out,
    });
}

/// Wrong tokens an IB Key activation (R22) takes: the last one voids it, and `ActivationStart`
/// must send a new token.
pub const ACTIVATION_ATTEMPTS: u8 = 5;

/// R22: starts IB Key activation or recovery: returns the token to send by SMS to `phone`
/// (digits only, no trunk prefix). Only the token's digest is kept.
///
/// # Errors
/// A bad phone number.
pub fn activation_start(
    u: &mut UserState,
    phone: &str,
    cx: &mut Cx<'_>,
) -> Result<String, CoreError> {
    if phone.len() < 6
        || phone.len() > 15
        || !phone.bytes().all(|b| b.is_ascii_digit())
        || phone.starts_with('0')
    {
        return Err(CoreError::BadPhone);
    }
    let key: [u8; 32] = cx.rng.gen();
    let token = codes::activation_token(&key, 0);
    let x = u.extra.get_or_insert_with(Default::default);
    x.activation = Some((codes::code_digest(&token), cx.now));
    x.activation_wrong = 0;
    Ok(token)
}

/// R22: finishes IB Key activation or recovery with the token, the app's key and PIN. A
/// recovery replaces the user's previous IB Key; R1: SMS ends with IB Key activation.
///
/// # Errors
/// Bad or expired token, R7 PIN, a bad key.
pub fn activate_ib_key(
    u: &mut UserState,
    id: u32,
    token: &str,
    key: &[u8],
    pin: &str,
    cx: &mut Cx<'_>,
) -> Result<DeviceId, CoreError> {
    let (digest, at) = u
        .extra
        .as_ref()
        .and_then(|x| x.activation)
        .ok_or(CoreError::BadToken)?;
    if cx.now.saturating_sub(at) > crate::cx::ms(cx.cfg.activation_token_life) {
        return Err(CoreError::BadToken);
    }
    if !codes::temp_code_matches(&digest, token) {
        // R22 bounded: the activation is void after its last allowed wrong token; a new
        // `ActivationStart` sends a new token. The answer stays `BadToken` either way.
        if let Some(x) = u.extra.as_mut() {
            x.activation_wrong = x.activation_wrong.saturating_add(1);
            if x.activation_wrong >= ACTIVATION_ATTEMPTS {
                x.activation = None;
                x.activation_wrong = 0;
            }
        }
        return Err(CoreError::BadToken);
    }
    let spec = DeviceSpec {
        kind: DeviceKind::IbKey,
        secret: key.to_vec(),
        pin: pin.to_owned(),
        suite: String::new(),
    };
    let d = build_device(id, &spec, DeviceState::Active, cx.now)?;
    let retired = u
        .devices
        .iter()
        .filter(|o| {
            matches!(o.kind, DeviceKind::IbKey | DeviceKind::Sms) && o.state == DeviceState::Active
        })
        .count();
    if lifecycle::counted(u).saturating_sub(retired) >= cx.cfg.max_devices_per_user {
        return Err(CoreError::TooManyDevices);
    }
    for old in u.devices.iter_mut().filter(|o| {
        matches!(o.kind, DeviceKind::IbKey | DeviceKind::Sms) && o.state == DeviceState::Active
    }) {
        let to = if old.kind == DeviceKind::IbKey {
            DeviceState::Replaced
        } else {
            DeviceState::Inactive
        };
        cx.records.push(old.set_state(cx.user, to, cx.now));
    }
    if let Some(x) = u.extra.as_mut() {
        x.activation = None;
        x.activation_wrong = 0;
    }
    // R15: an activated (or recovered) IB Key is a permanent device again: the temporary
    // code and the Online SCC stop at once.
    void_temporary(u, cx.now, cx);
    cx.records.push(u.add_device(cx.user, d, 0));
    Ok(DeviceId(id))
}
