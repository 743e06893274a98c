//! The client-services side of [`Core`]: enrolment and the device lifecycle (R7, R10, R11
//! unlock, R13-R16, R18-R20, R22), each one user's atomic update through the store; the rules
//! themselves are in `admin.rs` and `lockout.rs`.

use sls_protocol::DeviceId;

use crate::engine::Outcome;
use crate::store::{Sequence, Store};
use crate::{
    admin, grant, lifecycle, lockout, ActivationNotice, Core, DeviceSpec, Notices, UserSpec,
};
use crate::{CoreError, Error, StoreError};

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
            let (code, full, portal) = admin::issue_temp_code(u, id, cx)?;
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
            // Name who holds the right; an account with none is told so (never the refused
            // user as its primary): client services may then override (`opt_in_override`).
            let primary = match self.account_primary(user, &entity).await? {
                Some(primary) => primary,
                None => return Err(CoreError::NoPrimaryUser.into()),
            };
            return Err(CoreError::NotPrimaryUser { primary }.into());
        }
        self.change_user(user, |u, cx| {
            admin::set_opted_out(u, false, cx);
            Ok(())
        })
        .await
    }

    /// The primary user of `user`'s account (R18): of its entity, or itself when it has no
    /// entity and is primary; `None` when the account has none.
    async fn account_primary(&self, user: &str, entity: &str) -> Result<Option<String>, Error> {
        if entity.is_empty() {
            let primary = self
                .0
                .store
                .read(user, |u| u.primary)
                .await?
                .ok_or(CoreError::UnknownUser)?;
            return Ok(primary.then(|| user.to_owned()));
        }
        Ok(self.0.store.primary_of(entity).await?)
    }

    /// Client services opt `user` back in when its account has no primary user who could
    /// (R18: otherwise such an account could never opt back in).
    ///
    /// # Errors
    /// Unknown user; the account has a primary user (`HasPrimaryUser`: that user opts in);
    /// the store.
    pub async fn opt_in_override(&self, user: &str) -> Result<Outcome<(), S::Ticket>, Error> {
        if !sls_protocol::valid_user_name(user) {
            return Err(CoreError::BadCharacter.into());
        }
        let entity = self
            .0
            .store
            .read(user, |u| u.entity().to_owned())
            .await?
            .ok_or(CoreError::UnknownUser)?;
        if self.account_primary(user, &entity).await?.is_some() {
            return Err(CoreError::HasPrimaryUser.into());
        }
        self.change_user(user, |u, cx| {
            admin::set_opted_out(u, false, cx);
            Ok(())
        })
        .await
    }

    /// Client services revoke (for good) or suspend (until resumed) one device at once, for
    /// `reason` (1 lost, 2 stolen, 3 damaged, 4 other): it and every share copy of it stop
    /// (R17), its open challenges are void; temporary access stays (R13, R14).
    ///
    /// # Errors
    /// Unknown user or device; a reason out of range; already revoked; suspending a device
    /// not active; the store.
    pub async fn revoke_device(
        &self,
        user: &str,
        device: DeviceId,
        suspend: bool,
        reason: u8,
    ) -> Result<Outcome<(), S::Ticket>, Error> {
        self.change_user(user, |u, cx| {
            lifecycle::stop(u, device, suspend, reason, cx)
        })
        .await
    }

    /// Client services remove a device for good: its open challenges void, its share copies
    /// stop (R17, `lifecycle::remove`).
    ///
    /// # Errors
    /// Unknown user or device; a share copy (cancel its share); the store.
    pub async fn remove_device(
        &self,
        user: &str,
        device: DeviceId,
    ) -> Result<Outcome<(), S::Ticket>, Error> {
        self.change_user(user, |u, cx| lifecycle::remove(u, device, cx))
            .await
    }

    /// Client services resume a suspended device, and so its share copies (R17).
    ///
    /// # Errors
    /// Unknown user or device; revoked; retired; not suspended; the store.
    pub async fn resume_device(
        &self,
        user: &str,
        device: DeviceId,
    ) -> Result<Outcome<(), S::Ticket>, Error> {
        self.change_user(user, |u, cx| lifecycle::resume(u, device, cx))
            .await
    }

    /// R3: the frontend releases the withdrawal that transaction `txn` confirmed and that did
    /// not execute: it no longer counts towards the user's limits.
    ///
    /// # Errors
    /// R10 name; no such withdrawal of the user (an unknown name too: no user enumeration);
    /// the store.
    pub async fn release_withdrawal(
        &self,
        user: &str,
        txn: sls_protocol::TxnId,
    ) -> Result<Outcome<(), S::Ticket>, Error> {
        match self
            .change_user(user, |u, cx| crate::withdrawal::release(u, txn, cx))
            .await
        {
            Err(Error::Core(CoreError::UnknownUser)) => Err(CoreError::UnknownWithdrawal.into()),
            other => other,
        }
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
