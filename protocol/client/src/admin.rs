//! The admin calls (an admin certificate): enrolment, temporary access, the device lifecycle,
//! sharing, opting out and in, unlocks, the daemon's counters, IB Key activation.

use sls_protocol::{BulkOutcome, BulkRecord, Counter, DeviceId, DeviceKind, Message, TxnId};

use crate::calls::{done, enrolled, NewUser, Share, TempCode};
use crate::client::Client;
use crate::error::{unexpected, ClientError};

/// Admin calls (an admin certificate; a frontend's is refused `FORBIDDEN`).
impl Client {
    /// Enrols a user.
    ///
    /// # Errors
    /// `ALREADY_EXISTS`, `BAD_CHARACTER`, …
    pub async fn enrol_user(&self, user: &NewUser) -> Result<(), ClientError> {
        done(
            self.call(Message::EnrolUser {
                user: user.user.clone(),
                entity: user.entity.clone(),
                identification: user.identification.clone(),
                primary: user.primary,
                equity_usd: user.equity_usd,
            })
            .await?,
        )
    }

    /// Enrols a device for a user (R4: several per user); `suite` empty for the kind's default.
    ///
    /// # Errors
    /// `UNKNOWN_USER`, `INVALID_PIN` (R7), `INVALID_CREDENTIAL`, …
    pub async fn enrol_device(
        &self,
        user: &str,
        kind: DeviceKind,
        secret: &[u8],
        pin: &str,
        suite: &str,
    ) -> Result<DeviceId, ClientError> {
        enrolled(
            self.call(Message::EnrolDevice {
                user: user.into(),
                kind,
                secret: secret.to_vec(),
                pin: pin.into(),
                suite: suite.into(),
            })
            .await?,
        )
    }

    /// Many users and devices at once: one outcome per record, in order.
    ///
    /// # Errors
    /// No answer, or the whole batch refused.
    pub async fn enrol_bulk(
        &self,
        records: Vec<BulkRecord>,
    ) -> Result<Vec<BulkOutcome>, ClientError> {
        match self.call(Message::EnrolBulk { records }).await? {
            Message::BulkEnrolled { outcomes } => Ok(outcomes),
            other => Err(unexpected(other)),
        }
    }

    /// Issues a temporary code (R13).
    ///
    /// # Errors
    /// `UNKNOWN_USER`, …
    pub async fn issue_temp_code(&self, user: &str) -> Result<TempCode, ClientError> {
        match self
            .call(Message::IssueTempCode { user: user.into() })
            .await?
        {
            Message::TempCodeIssued {
                device,
                code,
                full_until_ms,
                portal_until_ms,
            } => Ok(TempCode {
                device,
                code,
                full_until_ms,
                portal_until_ms,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Issues an Online SCC (R14): its device, its secret (to print the grid), its expiry.
    ///
    /// # Errors
    /// `UNKNOWN_USER`, …
    pub async fn issue_online_scc(
        &self,
        user: &str,
    ) -> Result<(DeviceId, Vec<u8>, u64), ClientError> {
        match self
            .call(Message::IssueOnlineScc { user: user.into() })
            .await?
        {
            Message::OnlineSccIssued {
                device,
                secret,
                expires_at_ms,
            } => Ok((device, secret, expires_at_ms)),
            other => Err(unexpected(other)),
        }
    }

    /// Reactivates a permanent device; voids the temporary ones (R15).
    ///
    /// # Errors
    /// `UNKNOWN_DEVICE`, `INVALID_STATE`, …
    pub async fn reactivate(&self, user: &str, device: DeviceId) -> Result<(), ClientError> {
        done(
            self.call(Message::Reactivate {
                user: user.into(),
                device,
            })
            .await?,
        )
    }

    /// Orders a replacement DSC+ with a new PIN (R16): its device id.
    ///
    /// # Errors
    /// `NOT_ELIGIBLE` (R20), `INVALID_PIN`, …
    pub async fn order_replacement(
        &self,
        user: &str,
        secret: &[u8],
        pin: &str,
    ) -> Result<DeviceId, ClientError> {
        enrolled(
            self.call(Message::OrderReplacement {
                user: user.into(),
                secret: secret.to_vec(),
                pin: pin.into(),
            })
            .await?,
        )
    }

    /// A replacement has shipped: it activates by itself 3 weeks later (R16).
    ///
    /// # Errors
    /// `INVALID_STATE` for a device not ordered, …
    pub async fn ship(&self, user: &str, device: DeviceId) -> Result<(), ClientError> {
        done(
            self.call(Message::Ship {
                user: user.into(),
                device,
            })
            .await?,
        )
    }

    /// The user activated a device (R16).
    ///
    /// # Errors
    /// `INVALID_STATE` for a replacement not shipped, …
    pub async fn activate(&self, user: &str, device: DeviceId) -> Result<(), ClientError> {
        done(
            self.call(Message::Activate {
                user: user.into(),
                device,
            })
            .await?,
        )
    }

    /// `requester` asks to share `owner`'s device, proven by the owner's answer to `txn` (R17).
    ///
    /// # Errors
    /// The R17 refusals (`DIFFERENT_IDENTIFICATION`, `TEMPORARY_DEVICE`, …).
    pub async fn share_request(
        &self,
        requester: &str,
        owner: &str,
        device: DeviceId,
        txn: TxnId,
        answer: &str,
    ) -> Result<Share, ClientError> {
        match self
            .call(Message::ShareRequest {
                requester: requester.into(),
                owner: owner.into(),
                device,
                txn,
                answer: answer.into(),
            })
            .await?
        {
            Message::ShareState { share, pending } => Ok(Share { share, pending }),
            other => Err(unexpected(other)),
        }
    }

    /// Compliance approves or refuses a pending share (R17).
    ///
    /// # Errors
    /// `UNKNOWN_DEVICE`, `INVALID_STATE`, …
    pub async fn share_decide(&self, share: u32, approve: bool) -> Result<(), ClientError> {
        done(self.call(Message::ShareDecide { share, approve }).await?)
    }

    /// Cancels a share; the requester's own devices come back (R17).
    ///
    /// # Errors
    /// `UNKNOWN_DEVICE`, `INVALID_STATE`.
    pub async fn share_cancel(&self, share: u32) -> Result<(), ClientError> {
        done(self.call(Message::ShareCancel { share }).await?)
    }

    /// The user opts out of SLS (R18).
    ///
    /// # Errors
    /// `UNKNOWN_USER`, …
    pub async fn opt_out(&self, user: &str) -> Result<(), ClientError> {
        done(self.call(Message::OptOut { user: user.into() }).await?)
    }

    /// `by` opts `user` back in (R18: only the primary user may).
    ///
    /// # Errors
    /// `NOT_PRIMARY_USER`, …
    pub async fn opt_in(&self, user: &str, by: &str) -> Result<(), ClientError> {
        done(
            self.call(Message::OptIn {
                user: user.into(),
                by: by.into(),
            })
            .await?,
        )
    }

    /// Revokes a device for good (`suspend` false) or suspends it until
    /// [`Client::resume_device`] (v3): from the answer on, the device and every share copy of
    /// it are refused (`DEVICE_REVOKED`, `DEVICE_SUSPENDED`) and its open challenges are void.
    /// `reason`: 1 lost, 2 stolen, 3 damaged, 4 other (PROTOCOL.md §4).
    ///
    /// # Errors
    /// `UNKNOWN_DEVICE`, `INVALID_STATE`, …
    pub async fn revoke_device(
        &self,
        user: &str,
        device: DeviceId,
        suspend: bool,
        reason: u8,
    ) -> Result<(), ClientError> {
        done(
            self.call(Message::RevokeDevice {
                user: user.into(),
                device,
                suspend,
                reason,
            })
            .await?,
        )
    }

    /// Resumes a suspended device (v3); a revoked one never comes back.
    ///
    /// # Errors
    /// `DEVICE_REVOKED`, `INVALID_STATE`, …
    pub async fn resume_device(&self, user: &str, device: DeviceId) -> Result<(), ClientError> {
        done(
            self.call(Message::ResumeDevice {
                user: user.into(),
                device,
            })
            .await?,
        )
    }

    /// Opts back in a user whose account has no primary user (v3, R18: the admin override).
    ///
    /// # Errors
    /// `HAS_PRIMARY_USER` when the account has one (it must opt the user in), …
    pub async fn opt_in_override(&self, user: &str) -> Result<(), ClientError> {
        done(
            self.call(Message::OptInOverride { user: user.into() })
                .await?,
        )
    }

    /// Lifts a lockout (R11): the failures are forgotten.
    ///
    /// ```no_run
    /// # async fn f(admin: sls_client::Client) -> Result<(), sls_client::ClientError> {
    /// admin.unlock("alice").await?;
    /// assert_eq!(admin.status("alice").await?.locked_until_ms, 0);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `UNKNOWN_USER`, …
    pub async fn unlock(&self, user: &str) -> Result<(), ClientError> {
        done(self.call(Message::Unlock { user: user.into() }).await?)
    }

    /// The daemon's counters, by name (PROTOCOL.md §4, "Stats counters").
    ///
    /// # Errors
    /// No answer, or a refusal.
    pub async fn stats(&self) -> Result<Vec<Counter>, ClientError> {
        match self.call(Message::GetStats {}).await? {
            Message::Stats { counters } => Ok(counters),
            other => Err(unexpected(other)),
        }
    }

    /// Starts IB Key activation (R22): the token, for the caller to send by SMS to `phone`.
    ///
    /// # Errors
    /// `BAD_PHONE`, `UNKNOWN_USER`, …
    pub async fn activation_start(&self, user: &str, phone: &str) -> Result<String, ClientError> {
        match self
            .call(Message::ActivationStart {
                user: user.into(),
                phone: phone.into(),
            })
            .await?
        {
            Message::ActivationToken { token } => Ok(token),
            other => Err(unexpected(other)),
        }
    }

    /// Finishes IB Key activation with the token, the app's key and PIN (R22).
    ///
    /// # Errors
    /// `BAD_TOKEN`, `INVALID_PIN`, …
    pub async fn activate_ib_key(
        &self,
        user: &str,
        token: &str,
        key: &[u8],
        pin: &str,
    ) -> Result<DeviceId, ClientError> {
        enrolled(
            self.call(Message::ActivateIbKey {
                user: user.into(),
                token: token.into(),
                key: key.to_vec(),
                pin: pin.into(),
            })
            .await?,
        )
    }
}
