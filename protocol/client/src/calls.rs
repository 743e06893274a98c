//! The typed calls: one method per request of PROTOCOL.md §4, each returning what that request
//! is answered with: the frontend's here, the admin's in `admin.rs`, the IB Key app's in
//! `app.rs`.

use std::net::IpAddr;
use std::time::Duration;

use sls_protocol::{Challenge, DeviceId, DeviceInfo, Message, Purpose, TxnId, Verdict};

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

pub(crate) fn done(m: Message) -> Result<(), ClientError> {
    match m {
        Message::Done {} => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// Whether `e` leaves a request's outcome unknown: no answer came, or the store failed.
fn unanswered(e: &ClientError) -> bool {
    matches!(e, ClientError::Lost(_) | ClientError::Timeout(_))
        || e.status() == Some(sls_protocol::Status::UNAVAILABLE)
}

pub(crate) fn judged(m: Message) -> Result<Verdict, ClientError> {
    match m {
        Message::Judged { verdict } => Ok(verdict),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn enrolled(m: Message) -> Result<DeviceId, ClientError> {
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

    /// The user's answer to a challenge. When its answer does not come (the connection lost,
    /// no reply within [`crate::ClientConfig::answer_wait`], `UNAVAILABLE`), the client asks
    /// the next node for the
    /// transaction's verdict ([`Client::txn_verdict`], PROTOCOL.md §4 "TxnVerdict"): a verdict
    /// recorded is returned as if the answer had come; `pending` (judged nowhere: the
    /// challenge is still open) sends the same answer once more, where its first arrival
    /// spends the challenge (R12); `unknown` gives the first error back (the answer may have
    /// been judged: begin again).
    ///
    /// # Errors
    /// No answer and no verdict to read, or a refusal.
    pub async fn answer(
        &self,
        txn: TxnId,
        response: &str,
        client: IpAddr,
    ) -> Result<Verdict, ClientError> {
        let answer = Message::Answer {
            txn,
            response: response.into(),
            client,
        };
        let config = self.config();
        let wait = config.answer_wait.min(config.call_timeout);
        // Connecting is not waiting for the reply: an answer not sent yet may go to any node,
        // so reaching one has the call's whole time, as other calls have; the wait for the
        // reply starts once there is a connection to send it on.
        let node = self
            .connected(tokio::time::Instant::now() + config.call_timeout)
            .await?;
        match self
            .call_until(answer.clone(), tokio::time::Instant::now() + wait)
            .await
        {
            Ok(m) => judged(m),
            Err(e) if unanswered(&e) => self.recover_answer(txn, answer, e, node).await,
            Err(e) => Err(e),
        }
    }

    /// After `lost`, an `Answer` sent to `node` whose reply never came: reads its transaction's
    /// verdict on the next node (`node` may be dead), as [`Client::answer`] says.
    async fn recover_answer(
        &self,
        txn: TxnId,
        answer: Message,
        lost: ClientError,
        node: usize,
    ) -> Result<Verdict, ClientError> {
        self.leave(node);
        let verdict = match self.txn_verdict(txn).await {
            Ok(Verdict::Pending) => match self.call(answer).await.and_then(judged) {
                // Spent meanwhile by the first arrival, on some node: its verdict.
                Ok(Verdict::Replayed) => self.txn_verdict(txn).await,
                other => return other,
            },
            other => other,
        };
        match verdict {
            Ok(Verdict::Unknown | Verdict::Pending | Verdict::Replayed) | Err(_) => Err(lost),
            Ok(v) => Ok(v),
        }
    }

    /// The verdict of transaction `txn` as it stands (version 4; R12), changing nothing: the
    /// verdict its first answer got (for the daemon's replay window, 5 s by default, after
    /// it), `pending` or `expired` while it is open, `unknown` if the daemon does not know it.
    /// Any node of the deployment answers it.
    ///
    /// # Errors
    /// No answer, or a refusal (`UNAVAILABLE`: the verdict could not be read, or not made
    /// durable).
    pub async fn txn_verdict(&self, txn: TxnId) -> Result<Verdict, ClientError> {
        judged(self.call(Message::TxnVerdict { txn }).await?)
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
