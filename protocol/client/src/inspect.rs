//! The admin reads of version 3: the audit trail, every device of a user, a user's
//! account, failures and withdrawals; the account's update; and idempotent admin writes.

use sls_protocol::{AuditEntry, DeviceDetail, DeviceId, Message, ShareInfo};

use crate::client::Client;
use crate::error::{unexpected, ClientError};

/// One page of a user's audit trail, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The entries (at most 64).
    pub entries: Vec<AuditEntry>,
    /// More entries follow: ask again with `next_since_ms` and `next_skip`.
    pub more: bool,
    /// Where the next page starts.
    pub next_since_ms: u64,
    /// Entries of that millisecond already read.
    pub next_skip: u16,
}

/// A user's account, failures, lock and withdrawals (`UserDetail`, v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDetails {
    /// The entity (R17a).
    pub entity: String,
    /// Identification data, in its canonical form (PROTOCOL.md §4).
    pub identification: String,
    /// The account's primary user (R18).
    pub primary: bool,
    /// Account equity, USD (R20).
    pub equity_usd: u64,
    /// Opted out (R18).
    pub opted_out: bool,
    /// The failures in the lockout window, oldest first (R11).
    pub failures_ms: Vec<u64>,
    /// When the lock lifts, 0 when not locked (R11).
    pub locked_until_ms: u64,
    /// Withdrawn in the last day, USD (R3).
    pub withdrawn_day_usd: u64,
    /// Withdrawn in the last five business days, USD (R3).
    pub withdrawn_5bd_usd: u64,
    /// Left today with the most protective usable device (`u64::MAX`: unlimited).
    pub left_day_usd: u64,
    /// Left in the five business days with it.
    pub left_5bd_usd: u64,
}

/// The fields of a user to change (`UpdateUser`, v3); `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// The entity (R17a).
    pub entity: Option<String>,
    /// Identification data (R17a), stored in its canonical form.
    pub identification: Option<String>,
    /// The account's primary user (R18).
    pub primary: Option<bool>,
    /// Account equity, USD (R20).
    pub equity_usd: Option<u64>,
}

impl Client {
    /// A page of `user`'s audit trail from `since_ms`, leaving out the first `skip` entries of
    /// that millisecond, at most `limit` (v3). Sent again on another node if need be (a read).
    ///
    /// ```no_run
    /// # async fn f(admin: sls_client::Client) -> Result<(), sls_client::ClientError> {
    /// let (mut since, mut skip) = (0, 0);
    /// loop {
    ///     let page = admin.audit_read("alice", since, skip, 64).await?;
    ///     for e in &page.entries {
    ///         println!("{}", e.to_json());
    ///     }
    ///     if !page.more { break }
    ///     (since, skip) = (page.next_since_ms, page.next_skip);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `BAD_CHARACTER`, or no answer.
    pub async fn audit_read(
        &self,
        user: &str,
        since_ms: u64,
        skip: u16,
        limit: u16,
    ) -> Result<AuditPage, ClientError> {
        match self
            .call(Message::AuditRead {
                user: user.into(),
                since_ms,
                skip,
                limit,
            })
            .await?
        {
            Message::AuditEntries {
                entries,
                more,
                next_since_ms,
                next_skip,
            } => Ok(AuditPage {
                entries,
                more,
                next_since_ms,
                next_skip,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Every device of `user`, in every state (v3).
    ///
    /// # Errors
    /// `UNKNOWN_USER`, …
    pub async fn list_devices(&self, user: &str) -> Result<Vec<DeviceDetail>, ClientError> {
        match self
            .call(Message::ListDevices { user: user.into() })
            .await?
        {
            Message::DeviceList { devices } => Ok(devices),
            other => Err(unexpected(other)),
        }
    }

    /// Removes `user`'s `device` for good: its open challenges void, its share copies stop
    /// (R17) (v3).
    ///
    /// # Errors
    /// `UNKNOWN_USER`, `UNKNOWN_DEVICE`, `INVALID_STATE` (a share copy: cancel its share), …
    pub async fn remove_device(&self, user: &str, device: DeviceId) -> Result<(), ClientError> {
        match self
            .call(Message::RemoveDevice {
                user: user.into(),
                device,
            })
            .await?
        {
            Message::Done {} => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// A page of the live shares (R17), pending only or approved too, with ids above `after`
    /// (0: from the first), and where the next page starts (0: none follows) (v3).
    ///
    /// # Errors
    /// `UNAVAILABLE`, …
    pub async fn list_shares(
        &self,
        pending_only: bool,
        after: u32,
    ) -> Result<(Vec<ShareInfo>, u32), ClientError> {
        match self
            .call(Message::ListShares {
                pending_only,
                after,
            })
            .await?
        {
            Message::Shares { shares, next } => Ok((shares, next)),
            other => Err(unexpected(other)),
        }
    }

    /// `user`'s account, failures and lock, withdrawals used and left (v3).
    ///
    /// # Errors
    /// `UNKNOWN_USER`, …
    pub async fn user_detail(&self, user: &str) -> Result<UserDetails, ClientError> {
        match self.call(Message::UserDetail { user: user.into() }).await? {
            Message::UserDetails {
                entity,
                identification,
                primary,
                equity_usd,
                opted_out,
                failures_ms,
                locked_until_ms,
                withdrawn_day_usd,
                withdrawn_5bd_usd,
                left_day_usd,
                left_5bd_usd,
            } => Ok(UserDetails {
                entity,
                identification,
                primary,
                equity_usd,
                opted_out,
                failures_ms,
                locked_until_ms,
                withdrawn_day_usd,
                withdrawn_5bd_usd,
                left_day_usd,
                left_5bd_usd,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Sets the fields given of `user`'s account (v3).
    ///
    /// # Errors
    /// `UNKNOWN_USER`, …
    pub async fn update_user(&self, user: &str, update: &UserUpdate) -> Result<(), ClientError> {
        match self
            .call(Message::UpdateUser {
                user: user.into(),
                entity: update.entity.clone(),
                identification: update.identification.clone(),
                primary: update.primary,
                equity_usd: update.equity_usd,
            })
            .await?
        {
            Message::Done {} => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Sends the admin write `inner` made idempotent by `key` (v3, `Idempotent`): the node
    /// answers a key it has answered before (for `idempotency_ttl`, 24 h) with that first
    /// answer and does nothing again. After [`ClientError::Lost`] or a timeout, send the same
    /// `inner` with the same `key` again: nothing is made twice **on that node**. The daemon
    /// keeps keys per node (PROTOCOL.md §4): this client reconnects to the same node first, but
    /// if that node is down it moves on, and another node does not know the key. Check
    /// [`Client::connected_node`] before sending again when that matters.
    ///
    /// # Errors
    /// `IDEMPOTENCY_KEY_REUSED` (the key went with another request), `IDEMPOTENCY_IN_PROGRESS`
    /// (the first is still being handled: ask again), or the inner request's refusal.
    pub async fn call_idempotent(
        &self,
        key: [u8; 16],
        inner: &Message,
    ) -> Result<Message, ClientError> {
        self.call(Message::idempotent(key, inner)?).await
    }
}
