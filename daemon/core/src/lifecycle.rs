//! A device's life after enrolment: client services revoke a device for good or suspend it
//! until resumed (a lost, stolen or damaged card is stopped at once), and a share
//! copy follows its source (R17): it is usable only while the owner's device it copies is.
//!
//! **How a copy follows its source.** A copy lives in the requester's state; its source in
//! the owner's. The unit of atomicity is one user (the Redis store runs a rule with a
//! compare-and-set on that one user's value), so a change of the owner cannot write the
//! requester's copy in the same step, and copying each change over afterwards would leave a
//! window (and, after a crash between the two writes, a copy that never stops), and could not
//! follow R16's auto-activation at all, which happens by the clock with no change written.
//! So nothing is copied over: the copy keeps only where it comes from ([`Source`](crate::user::Source)), and every
//! use of it reads the source's standing first, from the owner's committed state, at the
//! request's `now` ([`source_state`]): a `Begin` or `Answer` for a user who holds a copy reads
//! the owners of its copies, then runs the rule with what it read ([`Sources`]). What the
//! owner's state says is the truth: replaced (by `Activate` or by the 21-day
//! auto-activation, R16), retired, revoked, suspended or removed stops the copy; resumed
//! resumes it. A request that began after the owner's change was answered reads that change.
//! The cost is one read per copy, and only for users who hold one.

use sls_protocol::{DeviceId, Grant};

use crate::config::CoreConfig;
use crate::cx::Cx;
use crate::error::CoreError;
use crate::grant;
use crate::record::{DeviceState, Record, REASONS};
use crate::user::{Device, UserState};

/// What a source (the owner's device a share copy copies) is at the moment of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// Usable: so is the copy.
    Usable,
    /// Revoked: the copy answers as revoked.
    Revoked,
    /// Suspended: the copy answers as suspended, until the source is resumed.
    Suspended,
    /// Anything else (replaced, retired, removed, the owner gone): the copy is not usable.
    Stopped,
}

/// The standing of a user's share copies' sources, read before the rule runs: copy id →
/// source state. A copy not in it is not usable (fail closed).
#[derive(Debug, Clone, Default)]
pub struct Sources(pub Vec<(u32, SourceState)>);

/// A copy whose source must be read: (copy id, owner, owner's device).
pub type Need = (u32, String, u32);

/// What a device is at `now`, for the rules that use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Usable, with this grant.
    Usable(Grant),
    /// Revoked (or a copy of a revoked device).
    Revoked,
    /// Suspended (or a copy of a suspended device).
    Suspended,
    /// Not usable for another reason (R13-R16: ordered, shipped, replaced, voided, expired).
    Unusable,
}

impl Standing {
    /// The grant, if usable.
    pub fn grant(self) -> Option<Grant> {
        match self {
            Standing::Usable(g) => Some(g),
            _ => None,
        }
    }
}

/// `d`'s standing at `now`, with what is known of the sources of copies.
pub fn standing(
    u: &UserState,
    d: &Device,
    now: u64,
    cfg: &CoreConfig,
    sources: &Sources,
) -> Standing {
    match d.state {
        DeviceState::Revoked => return Standing::Revoked,
        DeviceState::Suspended => return Standing::Suspended,
        _ => {}
    }
    let Some(g) = grant::usable(u, d, now, cfg) else {
        return Standing::Unusable;
    };
    if d.source.is_none() {
        return Standing::Usable(g);
    }
    match sources
        .0
        .iter()
        .find(|(id, _)| *id == d.id)
        .map(|(_, s)| *s)
    {
        Some(SourceState::Usable) => Standing::Usable(g),
        Some(SourceState::Revoked) => Standing::Revoked,
        Some(SourceState::Suspended) => Standing::Suspended,
        Some(SourceState::Stopped) | None => Standing::Unusable,
    }
}

/// The owner's device `device`'s state as a source (R17), at `now`.
pub fn source_state(owner: &UserState, device: u32, now: u64, cfg: &CoreConfig) -> SourceState {
    let Ok(d) = owner.device(device) else {
        return SourceState::Stopped;
    };
    match d.state {
        DeviceState::Revoked => SourceState::Revoked,
        DeviceState::Suspended => SourceState::Suspended,
        // A copy is never shared again (`share::shareable`), so a source is no copy.
        _ if d.source.is_none() && grant::usable(owner, d, now, cfg).is_some() => {
            SourceState::Usable
        }
        _ => SourceState::Stopped,
    }
}

/// The copies among `u`'s devices whose source a request must read: `only` the one device a
/// request names, or all that could be usable (a list of devices).
pub fn needs(u: &UserState, only: Option<u32>, now: u64, cfg: &CoreConfig) -> Vec<Need> {
    u.devices
        .iter()
        .filter(|d| only.is_none_or(|id| id == d.id))
        .filter(|d| grant::usable(u, d, now, cfg).is_some())
        .filter_map(|d| {
            let s = d.source.as_deref()?;
            Some((d.id, s.owner.clone(), s.device))
        })
        .collect()
}

/// The copy an open transaction's answer needs the source of, if its device is a copy.
pub fn txn_source(u: &UserState, txn: sls_protocol::TxnId) -> Option<Need> {
    let t = u.txn(txn)?;
    let d = u.device(t.device).ok()?;
    let s = d.source.as_deref()?;
    Some((d.id, s.owner.clone(), s.device))
}

fn reason_ok(reason: u8) -> Result<(), CoreError> {
    if REASONS.contains(&reason) {
        Ok(())
    } else {
        Err(CoreError::InvalidCredential(
            "reason: 1 lost, 2 stolen, 3 damaged, 4 other".into(),
        ))
    }
}

/// Client services stop `device` at once: revoked for good (`suspend` false) or suspended
/// until resumed. Its open challenges are void from now (an answer to one is `expired`,
/// [`crate::txn`]), every share copy of it stops with it (read at each use, above), and the
/// user's temporary access is untouched: a temporary code or an Online SCC can be issued and
/// used (R13, R14).
///
/// # Errors
/// Unknown device; a reason out of range; already revoked; suspending a device not active
/// (already suspended: `DeviceSuspended`; replaced: `DeviceRetired`).
pub fn stop(
    u: &mut UserState,
    device: DeviceId,
    suspend: bool,
    reason: u8,
    cx: &mut Cx<'_>,
) -> Result<(), CoreError> {
    reason_ok(reason)?;
    let d = u.device_mut(device.0)?;
    match d.state {
        DeviceState::Revoked => return Err(CoreError::DeviceRevoked),
        DeviceState::Suspended if suspend => return Err(CoreError::DeviceSuspended),
        DeviceState::Replaced if suspend => return Err(CoreError::DeviceRetired),
        DeviceState::Active => {}
        _ if suspend => {
            return Err(CoreError::InvalidState(
                "only an active device is suspended",
            ));
        }
        _ => {}
    }
    let state = if suspend {
        DeviceState::Suspended
    } else {
        DeviceState::Revoked
    };
    d.state = state;
    cx.records.push(Record::Stopped {
        user: cx.user.to_owned(),
        id: device,
        state,
        reason,
        at_ms: cx.now,
    });
    // Its open challenges are void for good: they expire now, so that a resume brings the
    // device back but not a challenge shown before the stop (answered `expired`).
    for t in u.txns.iter_mut().filter(|t| t.device == device.0) {
        t.expires_ms = t.expires_ms.min(cx.now);
    }
    Ok(())
}

/// Client services resume a suspended device (and so its share copies). A device replaced
/// while suspended (R16) stays retired; a revoked one never comes back.
///
/// # Errors
/// Unknown device; revoked; retired; not suspended.
pub fn resume(u: &mut UserState, device: DeviceId, cx: &mut Cx<'_>) -> Result<(), CoreError> {
    let d = u.device_mut(device.0)?;
    match d.state {
        DeviceState::Suspended => {}
        DeviceState::Revoked => return Err(CoreError::DeviceRevoked),
        DeviceState::Replaced => return Err(CoreError::DeviceRetired),
        _ => return Err(CoreError::InvalidState("only a suspended device resumes")),
    }
    d.state = DeviceState::Active;
    cx.records.push(Record::Stopped {
        user: cx.user.to_owned(),
        id: device,
        state: DeviceState::Active,
        reason: 0,
        at_ms: cx.now,
    });
    Ok(())
}

/// Client services remove `device` for good, whatever its state: it leaves the user's devices
/// (the cap counts it no more). Its open challenges are void from now (an answer to one finds
/// no device: `unknown`, not counted, [`crate::txn`]), and every share copy of it stops, as at
/// revocation (its source is gone, read at each use, above). A share copy itself is not
/// removed this way: cancelling its share does that and gives back the requester's devices.
///
/// # Errors
/// Unknown device; a share copy.
pub fn remove(u: &mut UserState, device: DeviceId, cx: &mut Cx<'_>) -> Result<(), CoreError> {
    if u.device(device.0)?.source.is_some() {
        return Err(CoreError::InvalidState(
            "a share copy is removed by cancelling its share",
        ));
    }
    u.devices.retain(|d| d.id != device.0);
    cx.records.push(Record::DeviceRemoved {
        user: cx.user.to_owned(),
        id: device,
    });
    Ok(())
}

/// Why a device cannot be made active again by `Reactivate` or `Activate`, if it cannot
/// (R16: a revoked, suspended or retired device does not come back that way).
pub fn refuse_reactivation(d: &Device) -> Result<(), CoreError> {
    match d.state {
        DeviceState::Revoked => Err(CoreError::DeviceRevoked),
        DeviceState::Suspended => Err(CoreError::DeviceSuspended),
        _ => Ok(()),
    }
}

/// Devices that count towards the cap per user: those that are or may become usable again
/// (not revoked, not replaced, no voided temporary device).
pub fn counted(u: &UserState) -> usize {
    u.devices
        .iter()
        .filter(|d| match d.state {
            DeviceState::Revoked | DeviceState::Replaced => false,
            DeviceState::Inactive => !d.kind.is_temporary(),
            _ => true,
        })
        .count()
}

/// The cap on devices per user, before a new one is added.
///
/// # Errors
/// `TooManyDevices` at the cap.
pub fn room(u: &UserState, cfg: &CoreConfig) -> Result<(), CoreError> {
    if counted(u) >= cfg.max_devices_per_user {
        return Err(CoreError::TooManyDevices);
    }
    Ok(())
}
