//! R17, driven: sharing a physical device between user names, each step one user's atomic
//! update or a read, the share its own record (`Store::update_share`); the rules are in
//! `share.rs`.

use std::net::IpAddr;

use sls_protocol::{DeviceId, TxnId, Verdict};

use crate::engine::Outcome;
use crate::share::{
    facts, give_back, prerequisites, shareable, take_over, Facts, Share, APPROVED, CANCELLED,
    PENDING, REFUSED,
};
use crate::store::{Sequence, Store};
use crate::Core;
use crate::{CoreError, Error};

/// The share's id and whether it is pending, or why the request was refused after the owner's
/// answer was judged (the outcome's ticket covers the failure it may have recorded).
pub type ShareResult = Result<(u32, bool), CoreError>;

/// R17, driven: each step one user's atomic update or a read; the share its own record.
impl<S: Store> Core<S> {
    async fn facts_of(&self, name: &str, now: u64) -> Result<Facts, Error> {
        let cfg = self.config();
        Ok(self
            .store()
            .read(name, |u| facts(u, now, cfg))
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
        if requester == owner {
            // R17 shares a device between user names: with itself it would only deactivate
            // the user's own card and add a copy of it.
            return Err(CoreError::SelfShare.into());
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
            match self.approve(&mut share).await {
                Ok(t) => ticket = self.0.store.later(ticket, t),
                // Refused by the requester's device cap: the owner's answer still stands.
                Err(Error::Core(e)) => return refused(e, ticket),
                Err(e) => return Err(e),
            }
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

    /// Gives the requester a copy of the owner's device, which follows its source (R17,
    /// `lifecycle`); returns the ticket of the change.
    async fn approve(&self, share: &mut Share) -> Result<Option<S::Ticket>, Error> {
        let copy_id = self.store().next_id(Sequence::Device).await?;
        let now = self.now_ms();
        let owner = share.owner.clone();
        let copy = self
            .store()
            .read(&share.owner, |u| {
                u.device(share.device)
                    .map(|d| d.copy_as(copy_id, now, &owner))
            })
            .await?
            .ok_or(CoreError::UnknownUser)??;
        let shared_from = share.device;
        let out = self
            .change_user(&share.requester.clone(), |u, cx| {
                // The store may run this more than once: each run takes its own copy.
                let c = copy.twin();
                take_over(u, c, shared_from, cx)
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
            // R17 holds at the decision, not only at the request: (a)-(c) and the device's
            // state again (a temporary code issued meanwhile refuses it, R17(b)). A refused
            // approval leaves the share pending (compliance may refuse it, or decide later).
            let now = self.now_ms();
            let cfg = self.config();
            let req = self.facts_of(&share.requester, now).await?;
            let own = self.facts_of(&share.owner, now).await?;
            let device = DeviceId(share.device);
            let level = self
                .store()
                .read(&share.owner, |u| shareable(u, device, now, cfg))
                .await?
                .ok_or(CoreError::UnknownUser)??;
            prerequisites(&req, &own, level)?;
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

    /// The live shares (pending, or approved too unless `pending_only`) with ids above
    /// `after`, in id order, at most `max`, for compliance (R17); with where to list on from
    /// (`Store::list_shares`).
    ///
    /// # Errors
    /// The store.
    pub async fn list_shares(
        &self,
        pending_only: bool,
        after: u32,
        max: usize,
    ) -> Result<crate::store::SharePage, Error> {
        Ok(self
            .store()
            .list_shares(after, max, |s| !pending_only || s.state == PENDING)
            .await?)
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
