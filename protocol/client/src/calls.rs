//! The typed calls: one method per request of PROTOCOL.md §4, each returning what that request
//! is answered with. Frontend calls first, then the admin calls, then the IB Key app's.

use std::net::IpAddr;
use std::time::Duration;

use sls_protocol::{
    ApprovalMethod, BulkOutcome, BulkRecord, Challenge, Counter, DeviceId, DeviceInfo, DeviceKind,
    Message, Purpose, TxnId, Verdict,
};

use crate::client::Client;
use crate::error::{unexpected, ClientError};

/// What a `Begin` is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Begun {
    /// Without a device: the devices to offer the user (R4), always a list.
    Devices(Vec<DeviceInfo>),
    /// With a device: a challenge to show (R5, R6, R9).
    Challenge(Issued),
    /// A verdict at once: `locked`, `accepted` (opted out, R18), `unknown`,
    /// `needs_stronger_device`, `rate_limited`.
    Judged(Verdict),
}

/// A challenge bound to a new transaction (R12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The transaction to answer or await.
    pub txn: TxnId,
    /// The device asked.
    pub device: DeviceInfo,
    /// What the login screen shows.
    pub challenge: Challenge,
    /// When the challenge expires, ms since the Unix epoch.
    pub expires_at_ms: u64,
}

/// A user's state, as `Status` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStatus {
    /// When the lock lifts (ms since the epoch), or 0 when not locked (R11).
    pub locked_until_ms: u64,
    /// Failures in the window.
    pub failures: u8,
    /// Failures left before the lock.
    pub failures_left: u8,
    /// Opted out of SLS (R18).
    pub opted_out: bool,
    /// The usable devices.
    pub devices: Vec<DeviceInfo>,
}

/// What a frontend should tell a user (v2, R16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNotices {
    /// A shipped replacement DSC+ that has not activated yet.
    pub replacement: Option<DeviceId>,
    /// 0 nothing, 1 auto-activation within 7 days, 2 within a day.
    pub activation: u8,
    /// When the replacement activates by itself, ms since the epoch.
    pub activates_at_ms: u64,
    /// The mass-lockout signal.
    pub mass_lockout: bool,
}

/// A user to enrol (R10, R17, R18, R20). [`NewUser::new`] gives a primary user with no
/// entity, no identification and equity 0 (not known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The name (R10: a-z, 0-9).
    pub user: String,
    /// The entity (R17a); empty for an account of its own.
    pub entity: String,
    /// Identification data (R17a).
    pub identification: String,
    /// The account's primary user (R18).
    pub primary: bool,
    /// Account equity in USD (R20), 0 if not known.
    pub equity_usd: u64,
}

impl NewUser {
    /// A primary user with no entity, no identification and equity 0.
    pub fn new(user: impl Into<String>) -> NewUser {
        NewUser {
            user: user.into(),
            entity: String::new(),
            identification: String::new(),
            primary: true,
            equity_usd: 0,
        }
    }
}

/// A temporary code (R13).
#[derive(Clone, PartialEq, Eq)]
pub struct TempCode {
    /// Its device id.
    pub device: DeviceId,
    /// The code, to give the user.
    pub code: String,
    /// Full access until, ms since the epoch.
    pub full_until_ms: u64,
    /// Client Portal access until, ms since the epoch.
    pub portal_until_ms: u64,
}

impl std::fmt::Debug for TempCode {
    // The code is a credential: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempCode")
            .field("device", &self.device)
            .field("full_until_ms", &self.full_until_ms)
            .field("portal_until_ms", &self.portal_until_ms)
            .finish_non_exhaustive()
    }
}

/// A share as the daemon holds it (R17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// Its id.
    pub share: u32,
    /// Waiting for compliance (`ShareDecide`).
    pub pending: bool,
}

fn done(m: Message) -> Result<(), ClientError> {
    match m {
        Message::Done {} => Ok(()),
        other => Err(unexpected(other)),
    }
}

fn judged(m: Message) -> Result<Verdict, ClientError> {
    match m {
        Message::Judged { verdict } => Ok(verdict),
        other => Err(unexpected(other)),
    }
}

fn enrolled(m: Message) -> Result<DeviceId, ClientError> {
    match m {
        Message::Enrolled { device } => Ok(device),
        other => Err(unexpected(other)),
    }
}

fn begun(m: Message) -> Result<Begun, ClientError> {
    match m {
        Message::Devices { devices } => Ok(Begun::Devices(devices)),
        Message::ChallengeIssued {
            txn,
            device,
            challenge,
            expires_at_ms,
        } => Ok(Begun::Challenge(Issued {
            txn,
            device,
            challenge,
            expires_at_ms,
        })),
        Message::Judged { verdict } => Ok(Begun::Judged(verdict)),
        other => Err(unexpected(other)),
    }
}

/// Frontend calls (a frontend or an admin certificate).
impl Client {
    /// After the password: the user's devices (`device` none), or a challenge for one (R4,
    /// R5, R6, R9). `client` is the end user's address, for rate limits. Sent again on another
    /// node when the first may not have answered (a `Begin` only creates a challenge).
    ///
    /// ```no_run
    /// # async fn f(client: sls_client::Client) -> Result<(), sls_client::ClientError> {
    /// use sls_client::{Begun, Purpose};
    /// let ip = "203.0.113.9".parse().unwrap();
    /// if let Begun::Devices(devices) = client.begin("alice", Purpose::Login, None, ip).await? {
    ///     // Show them; the user picks one, then `begin` again with its id.
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ClientError::Refused`] (e.g. `BAD_CHARACTER` for a name outside R10), or no answer.
    pub async fn begin(
        &self,
        user: &str,
        purpose: Purpose,
        device: Option<DeviceId>,
        client: IpAddr,
    ) -> Result<Begun, ClientError> {
        begun(
            self.call(Message::Begin {
                user: user.into(),
                purpose,
                device,
                client,
            })
            .await?,
        )
    }

    /// As [`Client::begin`], asking for the typed challenge instead of a push (v2, R6: "Click
    /// here if you do not receive the notification").
    ///
    /// # Errors
    /// As [`Client::begin`].
    pub async fn begin_typed(
        &self,
        user: &str,
        purpose: Purpose,
        device: Option<DeviceId>,
        client: IpAddr,
    ) -> Result<Begun, ClientError> {
        begun(
            self.call(Message::BeginTyped {
                user: user.into(),
                purpose,
                device,
                client,
            })
            .await?,
        )
    }

    /// The user's answer to a challenge. Never sent twice: if the connection is lost before
    /// the verdict, [`ClientError::Lost`] (the answer may have been judged; begin again).
    ///
    /// # Errors
    /// No answer, or a refusal.
    pub async fn answer(
        &self,
        txn: TxnId,
        response: &str,
        client: IpAddr,
    ) -> Result<Verdict, ClientError> {
        judged(
            self.call(Message::Answer {
                txn,
                response: response.into(),
                client,
            })
            .await?,
        )
    }

    /// Waits up to `wait` (at most 120 s) for the IB Key app's decision on a push (R6):
    /// `pending` if none came.
    ///
    /// # Errors
    /// No answer, or a refusal.
    pub async fn await_push(&self, txn: TxnId, wait: Duration) -> Result<Verdict, ClientError> {
        let timeout_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        judged(self.call(Message::Await { txn, timeout_ms }).await?)
    }

    /// The user's password was wrong: counts towards the lock (R11).
    ///
    /// # Errors
    /// No answer, or a refusal.
    pub async fn password_failed(
        &self,
        user: &str,
        client: IpAddr,
    ) -> Result<Verdict, ClientError> {
        judged(
            self.call(Message::PasswordFailed {
                user: user.into(),
                client,
            })
            .await?,
        )
    }

    /// A withdrawal confirmed by `txn`'s accepted answer did not execute: it no longer counts
    /// towards the user's limits (v3, R3).
    ///
    /// # Errors
    /// `UNKNOWN_WITHDRAWAL` when `txn` recorded no withdrawal of the user, …
    pub async fn release_withdrawal(&self, user: &str, txn: TxnId) -> Result<(), ClientError> {
        done(
            self.call(Message::ReleaseWithdrawal {
                user: user.into(),
                txn,
            })
            .await?,
        )
    }

    /// Whether the user is locked and until when, the failures, the usable devices.
    ///
    /// # Errors
    /// No answer, or a refusal.
    pub async fn status(&self, user: &str) -> Result<UserStatus, ClientError> {
        match self.call(Message::Status { user: user.into() }).await? {
            Message::UserStatus {
                locked_until_ms,
                failures,
                failures_left,
                opted_out,
                devices,
            } => Ok(UserStatus {
                locked_until_ms,
                failures,
                failures_left,
                opted_out,
                devices,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// What to tell the user (v2, R16) and the mass-lockout signal.
    ///
    /// # Errors
    /// No answer, or a refusal.
    pub async fn notices(&self, user: &str) -> Result<UserNotices, ClientError> {
        match self.call(Message::Notices { user: user.into() }).await? {
            Message::UserNotices {
                replacement,
                activation,
                activates_at_ms,
                mass_lockout,
            } => Ok(UserNotices {
                replacement,
                activation,
                activates_at_ms,
                mass_lockout,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Liveness of the current node.
    ///
    /// # Errors
    /// No answer.
    pub async fn ping(&self) -> Result<(), ClientError> {
        match self.call(Message::Ping {}).await? {
            Message::Pong {} => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

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

/// A login awaiting the IB Key app's approval (R6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The transaction.
    pub txn: TxnId,
    /// The user logging in.
    pub user: String,
    /// The push's nonce, signed in the answer.
    pub nonce: [u8; 16],
    /// Login or withdrawal.
    pub purpose: Purpose,
    /// When it expires, ms since the epoch.
    pub expires_at_ms: u64,
}

/// IB Key app calls (a client without a certificate, [`Client::prove_device`] first).
impl Client {
    /// The next push to this app, from whichever connection brought it; `None` once the
    /// client is gone. Frames other than pushes are skipped.
    pub async fn push(&self) -> Option<Push> {
        loop {
            if let Message::Push {
                txn,
                user,
                nonce,
                purpose,
                expires_at_ms,
            } = self.next_push().await?
            {
                return Some(Push {
                    txn,
                    user,
                    nonce,
                    purpose,
                    expires_at_ms,
                });
            }
        }
    }

    /// Approves (with the number the user typed from the login screen) or declines a push,
    /// signed with the device's key (PROTOCOL.md §5.3). Never sent twice.
    ///
    /// # Errors
    /// No answer, or a refusal (`FORBIDDEN` before any device is proven).
    pub async fn answer_push(
        &self,
        push: &Push,
        secret: &[u8],
        approve: bool,
        method: ApprovalMethod,
        number: u8,
    ) -> Result<Verdict, ClientError> {
        let mac = sls_protocol::push::push_mac(
            secret,
            push.txn,
            &push.user,
            number,
            &push.nonce,
            method,
            approve,
        );
        judged(
            self.call(Message::PushAnswer {
                txn: push.txn,
                approve,
                method,
                number,
                mac,
            })
            .await?,
        )
    }
}
