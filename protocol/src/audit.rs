//! The audit trail's entry (protocol version 3): one verdict or one admin
//! change, as `AuditEntries` carries it and as the JSON-lines export writes it.
//!
//! An entry never holds a secret, a PIN, an answer or a code: only who, what, when, from where
//! and the outcome. `AuditEntry::to_json` (in `export`) renders it as one JSON object on one
//! line, for a SIEM.

use std::net::IpAddr;

use bytes::BytesMut;

use crate::error::{DecodeError, EncodeError};
use crate::field::{Field, Reader};
use crate::limits::{MAX_TEXT, MAX_USER};
use crate::status::Status;
use crate::types::{DeviceId, Purpose, TxnId, Verdict};

/// The most entries one `AuditEntries` answer carries (and the largest `AuditRead.limit`
/// honoured): 64 entries of at most 400 bytes each fit a frame.
pub const MAX_AUDIT_PAGE: usize = 64;

/// One event of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AuditEntry {
    /// When the daemon decided, ms since the Unix epoch.
    pub at_ms: u64,
    /// The user (R10).
    pub user: String,
    /// The request's message type code (`Answer` 0x0011, `Unlock` 0x005e, …).
    pub event: u16,
    /// The device concerned, if any.
    pub device: Option<DeviceId>,
    /// The login transaction, if any: a `Begin`'s entry and its `Answer`'s share it.
    pub txn: Option<TxnId>,
    /// The end user's address as the frontend gave it (logins), or the admin tool's or the
    /// IB Key app's address as the daemon saw it.
    pub client: Option<IpAddr>,
    /// What the transaction is for (R4), where the request says.
    pub purpose: Option<Purpose>,
    /// The verdict sent (verifications); its grant for an accepted one (R13, R14, R21).
    pub verdict: Option<Verdict>,
    /// An admin change refused with this status; `None` with no verdict: the change was made.
    pub status: Option<Status>,
    /// The node (`node_name`) that decided.
    pub node: String,
}

impl Field for AuditEntry {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        self.at_ms.put(w, 0)?;
        self.user.put(w, MAX_USER)?;
        self.event.put(w, 0)?;
        self.device.put(w, 0)?;
        self.txn.put(w, 0)?;
        self.client.put(w, 0)?;
        self.purpose.put(w, 0)?;
        self.verdict.put(w, 0)?;
        self.status.put(w, 0)?;
        self.node.put(w, MAX_TEXT)
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        Ok(AuditEntry {
            at_ms: u64::get(r, 0)?,
            user: String::get(r, MAX_USER)?,
            event: u16::get(r, 0)?,
            device: Option::get(r, 0)?,
            txn: Option::get(r, 0)?,
            client: Option::get(r, 0)?,
            purpose: Option::get(r, 0)?,
            verdict: Option::get(r, 0)?,
            status: Option::get(r, 0)?,
            node: String::get(r, MAX_TEXT)?,
        })
    }
}

impl AuditEntry {
    /// The entry's wire encoding (the journal of the audit trail stores it as is).
    ///
    /// # Errors
    /// A field over its limit.
    pub fn encode(&self, w: &mut BytesMut) -> Result<(), EncodeError> {
        self.put(w, 0)
    }

    /// Decodes one entry from the whole of `bytes`.
    ///
    /// # Errors
    /// Bytes that are not exactly one entry.
    pub fn decode(bytes: &[u8]) -> Result<AuditEntry, DecodeError> {
        let mut r = Reader::new(bytes);
        let e = AuditEntry::get(&mut r, 0)?;
        match r.remaining() {
            0 => Ok(e),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    /// The outcome in one word: the verdict's name; `challenge` (a `Begin` that issued one);
    /// `done` (an admin change made) or `refused` (one refused, with its `status`).
    pub fn outcome(&self) -> &'static str {
        match (&self.verdict, self.status) {
            (Some(v), _) => v.name(),
            (None, Some(_)) => "refused",
            (None, None) if self.txn.is_some() => "challenge",
            (None, None) => "done",
        }
    }
}

/// One device as `DeviceList` carries it (version 3): every state, not only usable ones.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct DeviceDetail {
    /// Its id.
    pub id: DeviceId,
    /// Its kind.
    pub kind: crate::types::DeviceKind,
    /// Its state: 1 active, 2 ordered, 3 shipped, 4 inactive, 5 lost, 6 replaced (later
    /// versions may add states: a client shows an unknown one by its number).
    pub state: u8,
    /// When it was enrolled, issued or last changed state, ms since the Unix epoch.
    pub since_ms: u64,
    /// Whether a `Begin` with it would issue a challenge now.
    pub usable: bool,
    /// For a share copy (R17), the device it copies: the owner's user name and device id;
    /// `None` for a device of the user's own.
    pub shared_from: Option<ShareSource>,
}

/// Where a share copy comes from (R17): its owner and the owner's device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ShareSource {
    /// The owner's user name (R10).
    pub owner: String,
    /// The owner's device.
    pub device: DeviceId,
}

impl Field for ShareSource {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        self.owner.put(w, MAX_USER)?;
        self.device.put(w, 0)
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        Ok(ShareSource {
            owner: String::get(r, MAX_USER)?,
            device: DeviceId::get(r, 0)?,
        })
    }
}

impl Field for DeviceDetail {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        self.id.put(w, 0)?;
        self.kind.put(w, 0)?;
        self.state.put(w, 0)?;
        self.since_ms.put(w, 0)?;
        self.usable.put(w, 0)?;
        self.shared_from.put(w, 0)
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        Ok(DeviceDetail {
            id: DeviceId::get(r, 0)?,
            kind: crate::types::DeviceKind::get(r, 0)?,
            state: u8::get(r, 0)?,
            since_ms: u64::get(r, 0)?,
            usable: bool::get(r, 0)?,
            shared_from: Option::get(r, 0)?,
        })
    }
}

/// One sharing request as `Shares` carries it (version 3, R17).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ShareInfo {
    /// The share's id (as `ShareState` gave it; `ShareDecide`, `ShareCancel` take it).
    pub share: u32,
    /// The user asking to use the device.
    pub requester: String,
    /// The device's owner.
    pub owner: String,
    /// The owner's device.
    pub device: DeviceId,
    /// Waiting for compliance (else approved).
    pub pending: bool,
}

impl Field for ShareInfo {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        self.share.put(w, 0)?;
        self.requester.put(w, MAX_USER)?;
        self.owner.put(w, MAX_USER)?;
        self.device.put(w, 0)?;
        self.pending.put(w, 0)
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        Ok(ShareInfo {
            share: u32::get(r, 0)?,
            requester: String::get(r, MAX_USER)?,
            owner: String::get(r, MAX_USER)?,
            device: DeviceId::get(r, 0)?,
            pending: bool::get(r, 0)?,
        })
    }
}
