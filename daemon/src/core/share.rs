//! R17: sharing a physical device between user names.
//!
//! The requesting user (not the owner) gives the owner's answer to a challenge of the device;
//! then all must hold: (a) the same entity, or entities with the same identification data;
//! (b) no participant has a temporary device; (c) the device is the most protective physical
//! device among the participants'. Same entity: approved at once. Different entities with the
//! same identification: pending until compliance decides. An approved share gives the requester
//! the use of the device, and makes the requester's own physical devices redundant (inactive)
//! until the share is cancelled.
//!
//! **Choice:** a user with no entity is its own entity; identification data must be non-empty to
//! match.

use std::net::IpAddr;

use sls_protocol::{DeviceId, DeviceKind, SecurityLevel, TxnId, Verdict};

use super::{material, Core, CoreError, Device, DeviceState, Outcome, Record};

/// The share's id and whether it is pending, or why the request was refused after the owner's
/// answer was judged (the outcome's records are journalled either way).
pub type ShareResult = Result<(u32, bool), CoreError>;

/// A sharing request and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Share {
    pub requester: String,
    pub owner: String,
    pub device: u32,
    pub copy: u32,
    pub state: u8,
    pub deactivated: Vec<u32>,
}

pub(super) const PENDING: u8 = 0;
pub(super) const APPROVED: u8 = 1;
pub(super) const REFUSED: u8 = 2;
pub(super) const CANCELLED: u8 = 3;

struct Facts {
    entity: String,
    identification: String,
    temporary: bool,
    best_physical: SecurityLevel,
}

impl Share {
    fn record(&self, id: u32) -> Record {
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
}

impl Core {
    fn facts(&self, name: &str, now: u64) -> Result<Facts, CoreError> {
        self.with_user(name, |u| {
            let x = u.extra.as_deref();
            let usable = |d: &&Device| self.usable(d, now).is_some();
            Ok(Facts {
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
            })
        })
    }

    /// `requester` asks to use `owner`'s physical `device`, proven by the owner's answer to
    /// `txn` (a challenge of that device). The owner's answer counts like any answer (R11).
    /// Returns the share's id and whether it waits for compliance.
    ///
    /// # Errors
    /// Unknown users or device; (a) `DifferentIdentification`; (b) `TemporaryDevice`;
    /// (c) `LessSecureDevice`; a wrong owner answer: `OwnerNotVerified` (inside the outcome, so
    /// that the failure it recorded is still made durable).
    #[allow(clippy::too_many_arguments)]
    pub fn share_request(
        &self,
        requester: &str,
        owner: &str,
        device: DeviceId,
        txn: TxnId,
        answer: &str,
        client: IpAddr,
    ) -> Result<Outcome<ShareResult>, CoreError> {
        let now = self.now_ms();
        let req = self.facts(requester, now)?;
        let own = self.facts(owner, now)?;
        let shared_level = self.with_user(owner, |u| {
            let d = u
                .devices
                .iter()
                .find(|d| d.id == device.0)
                .ok_or(CoreError::UnknownDevice)?;
            if !d.kind.is_physical() {
                return Err(CoreError::InvalidState(
                    "only a physical device is shared (IB Key uses R8)",
                ));
            }
            if self.usable(d, now).is_none() {
                return Err(CoreError::InvalidState("the device is not active"));
            }
            Ok(d.kind.level())
        })?;
        // The owner's answer, to a challenge of this very device.
        let bound = self
            .0
            .txns
            .get(&txn.0)
            .is_some_and(|t| &*t.user == owner && t.device == device.0);
        if !bound {
            return Ok(Outcome::new(Err(CoreError::OwnerNotVerified), Vec::new()));
        }
        let verified = self.answer(txn, answer, client);
        let mut records = verified.records;
        if !matches!(verified.value, Verdict::Accepted { .. }) {
            return Ok(Outcome::new(Err(CoreError::OwnerNotVerified), records));
        }
        let same_entity = req.entity == own.entity;
        let same_identification =
            !req.identification.is_empty() && req.identification == own.identification;
        if !same_entity && !same_identification {
            return Ok(Outcome::new(
                Err(CoreError::DifferentIdentification),
                records,
            ));
        }
        if req.temporary || own.temporary {
            return Ok(Outcome::new(Err(CoreError::TemporaryDevice), records));
        }
        if shared_level < req.best_physical.max(own.best_physical) {
            return Ok(Outcome::new(Err(CoreError::LessSecureDevice), records));
        }
        let id = self
            .0
            .next_share
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut share = Share {
            requester: requester.to_owned(),
            owner: owner.to_owned(),
            device: device.0,
            copy: 0,
            state: PENDING,
            deactivated: Vec::new(),
        };
        if same_entity {
            self.approve(&mut share, now, &mut records)?;
        }
        records.push(share.record(id));
        let pending = share.state == PENDING;
        self.0.shares.insert(id, share);
        Ok(Outcome::new(Ok((id, pending)), records))
    }

    fn approve(
        &self,
        share: &mut Share,
        now: u64,
        records: &mut Vec<Record>,
    ) -> Result<(), CoreError> {
        let copy = self.with_user(&share.owner, |u| {
            let d = u
                .devices
                .iter()
                .find(|d| d.id == share.device)
                .ok_or(CoreError::UnknownDevice)?;
            Ok(Device {
                id: self.new_device_id(),
                kind: d.kind,
                state: DeviceState::Active,
                suite: d.suite,
                material: material(d.secret(), d.pin_hash()).0,
                pin_len: d.pin_len,
                since_ms: now,
                recent: None,
            })
        })?;
        let requester = share.requester.clone();
        self.with_user(&requester, |u| {
            for d in u
                .devices
                .iter_mut()
                .filter(|d| d.kind.is_physical() && d.state == DeviceState::Active)
            {
                share.deactivated.push(d.id);
                records.push(d.set_state(&requester, DeviceState::Inactive, now));
            }
            share.copy = copy.id;
            let mut rec = copy.record(&requester);
            if let Record::Device { shared_from, .. } = &mut rec {
                *shared_from = share.device;
            }
            records.push(rec);
            u.devices.reserve_exact(1);
            u.devices.push(copy);
            Ok(())
        })?;
        share.state = APPROVED;
        Ok(())
    }

    /// Compliance approves or refuses a pending share (R17).
    ///
    /// # Errors
    /// No such pending share.
    pub fn share_decide(&self, id: u32, approve: bool) -> Result<Outcome<()>, CoreError> {
        let now = self.now_ms();
        let mut share = self
            .0
            .shares
            .get(&id)
            .map(|s| s.clone())
            .ok_or(CoreError::UnknownDevice)?;
        if share.state != PENDING {
            return Err(CoreError::InvalidState("the share is not pending"));
        }
        let mut records = Vec::new();
        if approve {
            self.approve(&mut share, now, &mut records)?;
        } else {
            share.state = REFUSED;
        }
        records.push(share.record(id));
        self.0.shares.insert(id, share);
        Ok(Outcome::new((), records))
    }

    /// Cancels a share: the requester loses the device and gets back its own (R17).
    ///
    /// # Errors
    /// No such share.
    pub fn share_cancel(&self, id: u32) -> Result<Outcome<()>, CoreError> {
        let now = self.now_ms();
        let mut share = self
            .0
            .shares
            .get(&id)
            .map(|s| s.clone())
            .ok_or(CoreError::UnknownDevice)?;
        if !matches!(share.state, PENDING | APPROVED) {
            return Err(CoreError::InvalidState("the share is over"));
        }
        let mut records = Vec::new();
        if share.state == APPROVED {
            let requester = share.requester.clone();
            self.with_user(&requester, |u| {
                u.devices.retain(|d| d.id != share.copy);
                records.push(Record::DeviceRemoved {
                    user: requester.clone(),
                    id: DeviceId(share.copy),
                });
                for d in u
                    .devices
                    .iter_mut()
                    .filter(|d| share.deactivated.contains(&d.id))
                {
                    records.push(d.set_state(&requester, DeviceState::Active, now));
                }
                Ok(())
            })?;
        }
        share.state = CANCELLED;
        records.push(share.record(id));
        self.0.shares.insert(id, share);
        Ok(Outcome::new((), records))
    }

    pub(super) fn apply_share(&self, id: u32, share: Share) {
        self.0
            .next_share
            .fetch_max(id + 1, std::sync::atomic::Ordering::Relaxed);
        self.0.shares.insert(id, share);
    }

    pub(super) fn share_records(&self) -> Vec<Record> {
        self.0
            .shares
            .iter()
            .filter(|s| matches!(s.state, PENDING | APPROVED))
            .map(|s| s.record(*s.key()))
            .collect()
    }
}
