//! The client-services side of [`Core`]: enrolment and the device lifecycle (R7, R10, R11
//! unlock, R13-R16, R18-R20, R22), each one user's atomic update through the store; the rules
//! themselves are in `admin.rs` and `lockout.rs`.

use std::net::IpAddr;

use sls_protocol::{DeviceId, TxnId, Verdict};

use crate::engine::Outcome;
use crate::error::{CoreError, Error, StoreError};
use crate::share::{
    facts, give_back, prerequisites, shareable, take_over, Facts, Share, APPROVED, CANCELLED,
    PENDING, REFUSED,
};
use crate::store::{Sequence, Store};
use crate::{admin, grant, lockout, ActivationNotice, Core, DeviceSpec, Notices, UserSpec};

/// The share's id and whether it is pending, or why the request was refused after the owner's
/// answer was judged (the outcome's ticket covers the failure it may have recorded).
pub type ShareResult = Result<(u32, bool), CoreError>;

impl<S: Store> Core<S> {
    async fn device_id(&self) -> Result<u32, StoreError> {
        self.0.store.next_id(Sequence::Device).await
    }

    /// Enrols a user (R10, R17, R18, R20).
    ///
    /// # Errors
    /// R10 name; an existing user; the store.
    pub async fn enrol_user(&self, spec: &UserSpec) -> Result<Outcome<(), S::Ticket>, Error> {
        if !sls_protocol::valid_user_name(&spec.name) {
            return Err(CoreError::BadCharacter.into());
        }
        let out = self
            .change(&spec.name, true, |u, cx| admin::enrol_user(u, spec, cx))
            .await?
            .ok_or(StoreError::Unavailable("user not created".into()))?;
        Ok(Outcome {
            value: out.value?,
            ticket: out.ticket,
        })
    }

    /// Enrols an active device for a user; several per user (R4, R7, R20).
    ///
    /// # Errors
    /// Unknown user, R7 PIN, bad key or suite, R20; the store.
    pub async fn enrol_device(
        &self,
        user: &str,
        spec: &DeviceSpec,
    ) -> Result<Outcome<DeviceId, S::Ticket>, Error> {
        let id = self.device_id().await?;
        self.change_user(user, |u, cx| admin::enrol_device(u, id, spec, cx))
            .await
    }

    /// Enrols many users and devices (R19 bulk): each record creates its user if new (its own
    /// entity, primary) and adds the device. One result per record, in order.
    ///
    /// # Errors
    /// The store.
    pub async fn enrol_bulk(
        &self,
        records: &[sls_protocol::BulkRecord],
    ) -> Result<Outcome<Vec<Result<DeviceId, CoreError>>, S::Ticket>, StoreError> {
        let mut out = Vec::with_capacity(records.len());
        let mut ticket = None;
        for r in records {
            if !sls_protocol::valid_user_name(&r.user) {
                out.push(Err(CoreError::BadCharacter));
                continue;
            }
            let spec = DeviceSpec {
                kind: r.kind,
                secret: r.secret.clone(),
                pin: r.pin.clone(),
                suite: r.suite.clone(),
            };
            let id = self.device_id().await?;
            let c = self
                .change(&r.user, true, |u, cx| {
                    admin::enrol_bulk_one(u, id, &spec, cx)
                })
                .await?;
            match c {
                Some(c) => {
                    ticket = self.0.store.later(ticket, c.ticket);
                    out.push(c.value);
                }
                None => out.push(Err(CoreError::UnknownUser)),
            }
        }
        Ok(Outcome { value: out, ticket })
    }

    /// Issues a temporary code (R13): full access for 2 days, then Client Portal only for 10.
    /// Returns the device, the code, and its two deadlines.
    ///
    /// # Errors
    /// Unknown user; the store.
    pub async fn issue_temp_code(
        &self,
        user: &str,
    ) -> Result<Outcome<(DeviceId, String, u64, u64), S::Ticket>, Error> {
        let id = self.device_id().await?;
        self.change_user(user, |u, cx| {
            let (code, full, portal) = admin::issue_temp_code(u, id, cx);
            Ok((DeviceId(id), code, full, portal))
        })
        .await
    }

    /// Issues an Online SCC (R14, R19): full access for 21 days. Returns the device, the
    /// card's secret (to print its grid) and its expiry.
    ///
    /// # Errors
    /// Unknown user; the store.
    pub async fn issue_online_scc(
        &self,
        user: &str,
    ) -> Result<Outcome<(DeviceId, Vec<u8>, u64), S::Ticket>, Error> {
        let id = self.device_id().await?;
        self.change_user(user, |u, cx| {
            let (secret, until) = admin::issue_online_scc(u, id, cx)?;
            Ok((DeviceId(id), secret, until))
        })
        .await
    }

    /// Reactivates a permanent device; its temporary code and Online SCC stop at once (R15).
    ///
    /// # Errors
    /// Unknown user or device; a temporary device; the store.
    pub async fn reactivate(
        &self,
        user: &str,
        device: DeviceId,
    ) -> Result<Outcome<(), S::Ticket>, Error> {
        self.change_user(user, |u, cx| admin::reactivate(u, device, cx))
            .await
    }

    /// Orders a replacement DSC+ with a new 4-digit PIN (R16, R20).
    ///
    /// # Errors
    /// Unknown user, R7 PIN, R20; the store.
    pub async fn order_replacement(
        &self,
        user: &str,
        secret: &[u8],
        pin: &str,
    ) -> Result<Outcome<DeviceId, S::Ticket>, Error> {
        let id = self.device_id().await?;
        self.change_user(user, |u, cx| {
            admin::order_replacement(u, id, secret, pin, cx)
        })
        .await
    }

    /// Marks an ordered replacement shipped: it activates by itself 3 weeks later (R16).
    ///
    /// # Errors
    /// Unknown user or device; not ordered; the store.
    pub async fn ship(
        &self,
        user: &str,
        device: DeviceId,
    ) -> Result<Outcome<(), S::Ticket>, Error> {
        self.change_user(user, |u, cx| admin::ship(u, device, cx))
            .await
    }

    /// The user activates a device: older devices of the same kind are replaced, and
    /// temporary devices stop at once (R15, R16).
    ///
    /// # Errors
    /// Unknown user or device; the store.
    pub async fn activate(
        &self,
        user: &str,
        device: DeviceId,
    ) -> Result<Outcome<(), S::Ticket>, Error> {
        self.change_user(user, |u, cx| admin::activate(u, device, cx))
            .await
    }

    /// R16: what the user should be told about a shipped device.
    ///
    /// # Errors
    /// Unknown user or device; the store.
    pub async fn activation_notice(
        &self,
        user: &str,
        device: DeviceId,
    ) -> Result<ActivationNotice, Error> {
        let now = self.now_ms();
        let cfg = &self.0.config;
        self.0
            .store
            .read(user, |u| admin::activation_notice(u, device, now, cfg))
            .await?
            .ok_or(CoreError::UnknownUser)?
            .map_err(Error::from)
    }

    /// What a frontend should tell `user` (R16: the shipped replacement, when it activates by
    /// itself and whether that approaches or is imminent), and the mass-lockout signal. An
    /// unknown name has nothing to be told, as a known user with no replacement.
    ///
    /// # Errors
    /// A user name that breaks R10; the store.
    pub async fn notices(&self, user: &str) -> Result<Notices, Error> {
        if !sls_protocol::valid_user_name(user) {
            return Err(CoreError::BadCharacter.into());
        }
        let now = self.now_ms();
        let cfg = &self.0.config;
        let shipped = self
            .0
            .store
            .read(user, |u| {
                let d = u
                    .devices
                    .iter()
                    .find(|d| grant::auto_activation_at(d, cfg).is_some_and(|at| at > now))?;
                let notice = admin::activation_notice(u, DeviceId(d.id), now, cfg).ok()?;
                Some((DeviceId(d.id), notice, grant::auto_activation_at(d, cfg)?))
            })
            .await?
            .flatten();
        let (replacement, activation, activates_at_ms) = match shipped {
            Some((d, notice, at)) => (Some(d), notice, at),
            None => (None, ActivationNotice::None, 0),
        };
        Ok(Notices {
            replacement,
            activation,
            activates_at_ms,
            mass_lockout: self.mass_lockout().1,
        })
    }

    /// Opts a user out of SLS (R18).
    ///
    /// # Errors
    /// Unknown user; the store.
    pub async fn opt_out(&self, user: &str) -> Result<Outcome<(), S::Ticket>, Error> {
        self.change_user(user, |u, cx| {
            admin::set_opted_out(u, true, cx);
            Ok(())
        })
        .await
    }

    /// Opts a user back in: only the account's primary user may (R18).
    ///
    /// # Errors
    /// Unknown user; `by` is not the primary user (the error names who is); the store.
    pub async fn opt_in(&self, user: &str, by: &str) -> Result<Outcome<(), S::Ticket>, Error> {
        for name in [user, by] {
            if !sls_protocol::valid_user_name(name) {
                return Err(CoreError::BadCharacter.into());
            }
        }
        let entity = self
            .0
            .store
            .read(user, |u| u.entity().to_owned())
            .await?
            .ok_or(CoreError::UnknownUser)?;
        let by_ok = self
            .0
            .store
            // Users without entity data share no account: each is its own (R18).
            .read(by, |b| {
                b.primary && (by == user || (!entity.is_empty() && b.entity() == entity))
            })
            .await?
            .ok_or(CoreError::UnknownUser)?;
        if !by_ok {
            let primary = if entity.is_empty() {
                user.to_owned()
            } else {
                self.0
                    .store
                    .primary_of(&entity)
                    .await?
                    .unwrap_or_else(|| user.to_owned())
            };
            return Err(CoreError::NotPrimaryUser { primary }.into());
        }
        self.change_user(user, |u, cx| {
            admin::set_opted_out(u, false, cx);
            Ok(())
        })
        .await
    }

    /// Client services lift a lock after verifying identity (R11).
    ///
    /// # Errors
    /// Unknown user; the store.
    pub async fn unlock(&self, user: &str) -> Result<Outcome<(), S::Ticket>, Error> {
        self.change_user(user, |u, cx| {
            lockout::unlock(u, cx);
            Ok(())
        })
        .await
    }

    /// Starts IB Key activation or recovery (R22): returns the token to send by SMS to
    /// `phone` (digits only, no trunk prefix).
    ///
    /// # Errors
    /// Unknown user, bad phone number; the store.
    pub async fn activation_start(
        &self,
        user: &str,
        phone: &str,
    ) -> Result<Outcome<String, S::Ticket>, Error> {
        self.change_user(user, |u, cx| admin::activation_start(u, phone, cx))
            .await
    }

    /// Finishes IB Key activation or recovery (R22): the token, the app's key and PIN.
    ///
    /// # Errors
    /// Unknown user, bad or expired token, R7 PIN; the store.
    pub async fn activate_ib_key(
        &self,
        user: &str,
        token: &str,
        key: &[u8],
        pin: &str,
    ) -> Result<Outcome<DeviceId, S::Ticket>, Error> {
        let id = self.device_id().await?;
        self.change_user(user, |u, cx| {
            admin::activate_ib_key(u, id, token, key, pin, cx)
        })
        .await
    }
}

/// R17, driven: each step one user's atomic update or a read; the share its own record.
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
            .txn_get(txn, now)
            .await?
            .is_some_and(|e| &*e.user == owner && e.device == device);
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
            ticket = self.0.store.later(ticket, self.approve(&mut share).await?);
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
            ticket: self.0.store.later(ticket, put.ticket),
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
            ticket: self.0.store.later(ticket, put),
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
            ticket: self.0.store.later(ticket, put),
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
