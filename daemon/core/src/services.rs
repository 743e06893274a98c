//! The client-services side of [`Core`]: enrolment and the device lifecycle (R7, R10, R11
//! unlock, R13-R16, R18-R20, R22), each one user's atomic update through the store; the rules
//! themselves are in `admin.rs` and `lockout.rs`.

use sls_protocol::DeviceId;

use crate::engine::{later, Outcome};
use crate::error::{CoreError, Error, StoreError};
use crate::store::{Sequence, Store};
use crate::{admin, lockout, ActivationNotice, Core, DeviceSpec, UserSpec};

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
                    ticket = later(ticket, c.ticket);
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
            .read(by, |b| b.primary && (b.entity() == entity || by == user))
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
