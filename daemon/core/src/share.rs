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
//! **Choice:** a user with no entity is its own entity; identification data must be non-empty
//! to match.
//!
//! A share touches two users; each step is one user's atomic update, and the share itself is
//! its own record ([`Store::update_share`]).

use std::net::IpAddr;

use sls_protocol::{DeviceId, DeviceKind, SecurityLevel, TxnId, Verdict};

use crate::config::CoreConfig;
use crate::cx::Cx;
use crate::engine::{later as later_ticket, Outcome};
use crate::error::{CoreError, Error};
use crate::record::{DeviceState, Record};
use crate::store::{Sequence, Store};
use crate::user::{Device, UserState};
use crate::{grant, Core};

/// The share's id and whether it is pending, or why the request was refused after the owner's
/// answer was judged (the outcome's ticket covers the failure it may have recorded).
pub type ShareResult = Result<(u32, bool), CoreError>;

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
pub(crate) struct Facts {
    entity: String,
    identification: String,
    temporary: bool,
    best_physical: SecurityLevel,
}

/// One participant's facts at `now`.
pub(crate) fn facts(u: &UserState, name: &str, now: u64, cfg: &CoreConfig) -> Facts {
    let x = u.extra.as_deref();
    let usable = |d: &&Device| grant::usable(d, now, cfg).is_some();
    Facts {
        entity: x
            .map(|x| x.entity.clone())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| name.to_owned()),
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
/// Unknown device; not physical (IB Key uses R8); not active.
pub(crate) fn shareable(
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
    if grant::usable(d, now, cfg).is_none() {
        return Err(CoreError::InvalidState("the device is not active"));
    }
    Ok(d.kind.level())
}

/// (a), (b), (c), in that order.
///
/// # Errors
/// The first prerequisite that fails, by its name.
pub(crate) fn prerequisites(
    req: &Facts,
    own: &Facts,
    shared: SecurityLevel,
) -> Result<bool, CoreError> {
    let same_entity = req.entity == own.entity;
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
pub(crate) fn take_over(
    u: &mut UserState,
    copy: Device,
    shared_from: u32,
    cx: &mut Cx<'_>,
) -> Vec<u32> {
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
    cx.records.push(u.add_device(cx.user, copy, shared_from));
    deactivated
}

/// The requester gives the copy back and gets its own devices back.
pub(crate) fn give_back(u: &mut UserState, share: &Share, cx: &mut Cx<'_>) {
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

impl<S: Store> Core<S> {
    async fn facts_of(&self, name: &str, now: u64) -> Result<Facts, Error> {
        let cfg = self.config();
        Ok(self
            .store()
            .read(name, |u| facts(u, name, now, cfg))
            .await?
            .ok_or(CoreError::UnknownUser)?)
    }

    /// `requester` asks to use `owner`'s physical `device`, proven by the owner's answer to
    /// `txn` (a challenge of that device). The owner's answer counts like any answer (R11).
    /// Returns the share's id and whether it waits for compliance.
    ///
    /// # Errors
    /// Unknown users or device; the store. The prerequisites, (a) `DifferentIdentification`,
    /// (b) `TemporaryDevice`, (c) `LessSecureDevice`, and a wrong owner answer,
    /// `OwnerNotVerified`, are inside the outcome, so that the failure it recorded is still
    /// made durable.
    pub async fn share_request(
        &self,
        requester: &str,
        owner: &str,
        device: DeviceId,
        txn: TxnId,
        answer: &str,
        client: IpAddr,
    ) -> Result<Outcome<ShareResult, S::Ticket>, Error> {
        for name in [requester, owner] {
            if !sls_protocol::valid_user_name(name) {
                return Err(CoreError::BadCharacter.into());
            }
        }
        let now = self.now_ms();
        let cfg = self.config();
        let req = self.facts_of(requester, now).await?;
        let own = self.facts_of(owner, now).await?;
        let shared_level = self
            .store()
            .read(owner, |u| shareable(u, device, now, cfg))
            .await?
            .ok_or(CoreError::UnknownUser)??;
        // The owner's answer, to a challenge of this very device.
        let bound = self
            .store()
            .txn_user(txn)
            .await?
            .is_some_and(|u| &*u == owner)
            && self.txn_device(txn).await? == Some(device);
        let refused = |e, ticket| {
            Ok(Outcome {
                value: Err(e),
                ticket,
            })
        };
        if !bound {
            return refused(CoreError::OwnerNotVerified, None);
        }
        let verified = self.answer(txn, answer, client).await?;
        let mut ticket = verified.ticket;
        if !matches!(verified.value, Verdict::Accepted { .. }) {
            return refused(CoreError::OwnerNotVerified, ticket);
        }
        let same_entity = match prerequisites(&req, &own, shared_level) {
            Ok(same) => same,
            Err(e) => return refused(e, ticket),
        };
        let id = self.store().next_id(Sequence::Share).await?;
        let mut share = Share {
            requester: requester.to_owned(),
            owner: owner.to_owned(),
            device: device.0,
            copy: 0,
            state: PENDING,
            deactivated: Vec::new(),
        };
        if same_entity {
            ticket = later_ticket(ticket, self.approve(&mut share).await?);
        }
        let pending = share.state == PENDING;
        let put = self
            .store()
            .update_share(id, |slot, records| {
                records.push(share.record(id));
                *slot = Some(share.clone());
            })
            .await?;
        Ok(Outcome {
            value: Ok((id, pending)),
            ticket: later_ticket(ticket, put.ticket),
        })
    }

    /// Gives the requester a copy of the owner's device; returns the ticket of the change.
    async fn approve(&self, share: &mut Share) -> Result<Option<S::Ticket>, Error> {
        let copy_id = self.store().next_id(Sequence::Device).await?;
        let now = self.now_ms();
        let copy = self
            .store()
            .read(&share.owner, |u| {
                u.device(share.device).map(|d| d.copy_as(copy_id, now))
            })
            .await?
            .ok_or(CoreError::UnknownUser)??;
        let mut copy = Some(copy);
        let shared_from = share.device;
        let out = self
            .change_user(&share.requester.clone(), |u, cx| {
                let c = copy
                    .take()
                    .ok_or(CoreError::InvalidState("share retried"))?;
                Ok(take_over(u, c, shared_from, cx))
            })
            .await?;
        share.deactivated = out.value;
        share.copy = copy_id;
        share.state = APPROVED;
        Ok(out.ticket)
    }

    /// Compliance approves or refuses a pending share (R17).
    ///
    /// # Errors
    /// No such pending share; the store.
    pub async fn share_decide(
        &self,
        id: u32,
        approve: bool,
    ) -> Result<Outcome<(), S::Ticket>, Error> {
        let mut share = self
            .pending_share(id, &[PENDING], "the share is not pending")
            .await?;
        let mut ticket = None;
        if approve {
            ticket = self.approve(&mut share).await?;
        } else {
            share.state = REFUSED;
        }
        let put = self.put_share(id, &share).await?;
        Ok(Outcome {
            value: (),
            ticket: later_ticket(ticket, put),
        })
    }

    /// Cancels a share: the requester loses the device and gets back its own (R17).
    ///
    /// # Errors
    /// No such share, or it is over; the store.
    pub async fn share_cancel(&self, id: u32) -> Result<Outcome<(), S::Ticket>, Error> {
        let mut share = self
            .pending_share(id, &[PENDING, APPROVED], "the share is over")
            .await?;
        let mut ticket = None;
        if share.state == APPROVED {
            let s = share.clone();
            ticket = self
                .change_user(&share.requester.clone(), |u, cx| {
                    give_back(u, &s, cx);
                    Ok(())
                })
                .await?
                .ticket;
        }
        share.state = CANCELLED;
        let put = self.put_share(id, &share).await?;
        Ok(Outcome {
            value: (),
            ticket: later_ticket(ticket, put),
        })
    }

    async fn pending_share(
        &self,
        id: u32,
        states: &[u8],
        why: &'static str,
    ) -> Result<Share, Error> {
        let share = self
            .store()
            .update_share(id, |slot, _| slot.clone())
            .await?
            .value
            .ok_or(CoreError::UnknownDevice)?;
        if !states.contains(&share.state) {
            return Err(CoreError::InvalidState(why).into());
        }
        Ok(share)
    }

    async fn put_share(&self, id: u32, share: &Share) -> Result<Option<S::Ticket>, Error> {
        Ok(self
            .store()
            .update_share(id, |slot, records| {
                records.push(share.record(id));
                *slot = Some(share.clone());
            })
            .await?
            .ticket)
    }
}
