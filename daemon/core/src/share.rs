//! R17: sharing a physical device between user names.
//!
//! The requesting user (not the owner) gives the owner's answer to a challenge of the device;
//! then all must hold: (a) the same entity, or entities with the same identification data;
//! (b) no participant has a temporary device; (c) the device is the most protective physical
//! device among the participants'. Same entity: approved at once. Different entities with the
//! same identification: pending until compliance decides. An approved share gives the requester
//! the use of the device (a copy of its credential), and makes the requester's own physical
//! devices redundant (inactive) until the share is cancelled.
//!
//! **Choice:** a user with no entity is an account of its own (PROTOCOL.md §4, "Accounts"):
//! it shares an entity with nobody, whatever its name; identification data must be non-empty
//! to match. A user never shares with itself (`SelfShare`).
//!
//! A copy follows its source: it is usable only while the owner's device is (replaced,
//! retired, revoked or suspended stops it; resumed resumes it): see `lifecycle`.
//!
//! A share touches two users; each step is one user's atomic update, and the share itself is
//! its own record (`Store::update_share`); the steps are driven in `services.rs`.

use sls_protocol::{DeviceId, DeviceKind, SecurityLevel};

use crate::config::CoreConfig;
use crate::cx::Cx;
use crate::error::CoreError;
use crate::grant;
use crate::record::{DeviceState, Record};
use crate::user::{Device, UserState};

/// A sharing request and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The user asking to use the device.
    pub requester: String,
    /// The device's owner.
    pub owner: String,
    /// The owner's device.
    pub device: u32,
    /// The requester's copy, 0 until approved.
    pub copy: u32,
    /// [`PENDING`], [`APPROVED`], [`REFUSED`] or [`CANCELLED`].
    pub state: u8,
    /// The requester's own devices made redundant, to reactivate on cancel.
    pub deactivated: Vec<u32>,
}

/// Waiting for compliance.
pub const PENDING: u8 = 0;
/// In use.
pub const APPROVED: u8 = 1;
/// Refused by compliance.
pub const REFUSED: u8 = 2;
/// Cancelled.
pub const CANCELLED: u8 = 3;

impl Share {
    /// The record of this share under `id`.
    pub fn record(&self, id: u32) -> Record {
        Record::Share {
            id,
            requester: self.requester.clone(),
            owner: self.owner.clone(),
            device: DeviceId(self.device),
            copy: self.copy,
            state: self.state,
            deactivated: self.deactivated.clone(),
        }
    }

    /// The share a record describes.
    pub fn from_record(r: &Record) -> Option<Share> {
        match r {
            Record::Share {
                requester,
                owner,
                device,
                copy,
                state,
                deactivated,
                ..
            } => Some(Share {
                requester: requester.clone(),
                owner: owner.clone(),
                device: device.0,
                copy: *copy,
                state: *state,
                deactivated: deactivated.clone(),
            }),
            _ => None,
        }
    }

    /// Pending or approved (what a snapshot keeps).
    pub fn is_live(&self) -> bool {
        matches!(self.state, PENDING | APPROVED)
    }
}

/// What the prerequisites look at, of one participant.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `None`: no entity, an account of its own (never the same as another's).
    entity: Option<String>,
    identification: String,
    temporary: bool,
    best_physical: SecurityLevel,
}

/// One participant's facts at `now`.
pub fn facts(u: &UserState, now: u64, cfg: &CoreConfig) -> Facts {
    let x = u.extra.as_deref();
    let usable = |d: &&Device| grant::usable(u, d, now, cfg).is_some();
    Facts {
        entity: x.map(|x| x.entity.clone()).filter(|e| !e.is_empty()),
        identification: x.map(|x| x.identification.clone()).unwrap_or_default(),
        temporary: u
            .devices
            .iter()
            .filter(usable)
            .any(|d| matches!(d.kind, DeviceKind::TempCode | DeviceKind::OnlineScc)),
        best_physical: u
            .devices
            .iter()
            .filter(usable)
            .filter(|d| d.kind.is_physical())
            .map(|d| d.kind.level())
            .max()
            .unwrap_or(SecurityLevel::None),
    }
}

/// The shared device's level, if it can be shared at all.
///
/// # Errors
/// Unknown device; not physical (IB Key uses R8); a share copy (shared from its owner's
/// device only); revoked or suspended; not active.
pub fn shareable(
    u: &UserState,
    device: DeviceId,
    now: u64,
    cfg: &CoreConfig,
) -> Result<SecurityLevel, CoreError> {
    let d = u.device(device.0)?;
    if !d.kind.is_physical() {
        return Err(CoreError::InvalidState(
            "only a physical device is shared (IB Key uses R8)",
        ));
    }
    if d.source.is_some() {
        return Err(CoreError::InvalidState(
            "a share copy is not shared again: share the owner's device",
        ));
    }
    match d.state {
        DeviceState::Revoked => return Err(CoreError::DeviceRevoked),
        DeviceState::Suspended => return Err(CoreError::DeviceSuspended),
        _ => {}
    }
    if grant::usable(u, d, now, cfg).is_none() {
        return Err(CoreError::InvalidState("the device is not active"));
    }
    Ok(d.kind.level())
}

/// (a), (b), (c), in that order.
///
/// # Errors
/// The first prerequisite that fails, by its name.
pub fn prerequisites(req: &Facts, own: &Facts, shared: SecurityLevel) -> Result<bool, CoreError> {
    let same_entity = req.entity.is_some() && req.entity == own.entity;
    let same_identification =
        !req.identification.is_empty() && req.identification == own.identification;
    if !same_entity && !same_identification {
        return Err(CoreError::DifferentIdentification);
    }
    if req.temporary || own.temporary {
        return Err(CoreError::TemporaryDevice);
    }
    if shared < req.best_physical.max(own.best_physical) {
        return Err(CoreError::LessSecureDevice);
    }
    Ok(same_entity)
}

/// The requester takes the copy: its own physical devices become redundant. Returns them.
///
/// # Errors
/// The requester holds as many devices as allowed.
pub fn take_over(
    u: &mut UserState,
    copy: Device,
    shared_from: u32,
    cx: &mut Cx<'_>,
) -> Result<Vec<u32>, CoreError> {
    crate::lifecycle::room(u, cx.cfg)?;
    let mut deactivated = Vec::new();
    for d in u
        .devices
        .iter_mut()
        .filter(|d| d.kind.is_physical() && d.state == DeviceState::Active)
    {
        deactivated.push(d.id);
        cx.records
            .push(d.set_state(cx.user, DeviceState::Inactive, cx.now));
    }
    let source = copy.source_record(cx.user);
    cx.records.push(u.add_device(cx.user, copy, shared_from));
    cx.records.extend(source);
    Ok(deactivated)
}

/// The requester gives the copy back and gets its own devices back.
pub fn give_back(u: &mut UserState, share: &Share, cx: &mut Cx<'_>) {
    u.devices.retain(|d| d.id != share.copy);
    cx.records.push(Record::DeviceRemoved {
        user: cx.user.to_owned(),
        id: DeviceId(share.copy),
    });
    for d in u
        .devices
        .iter_mut()
        .filter(|d| share.deactivated.contains(&d.id))
    {
        cx.records
            .push(d.set_state(cx.user, DeviceState::Active, cx.now));
    }
}
