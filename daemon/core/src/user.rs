//! One user's state: everything the rules need to know about one user, in one value. The
//! store keeps it; the rules are functions of it (see the crate docs).

use std::collections::VecDeque;

use compact_str::CompactString;
use sls_protocol::ocra::{self, OcraSuite};
use sls_protocol::{DeviceId, DeviceInfo, DeviceKind, Purpose, TxnId};
use zeroize::Zeroize;

use crate::error::CoreError;
use crate::record::{DeviceState, Record};
use crate::UserSpec;

/// One user's state.
#[derive(Debug, Default)]
pub struct UserState {
    /// Set by enrolment; a store may hand a rule a fresh, unenrolled value to create a user.
    pub enrolled: bool,
    /// Its devices, in enrolment order, in every state.
    pub devices: Vec<Device>,
    /// Times of failures since the last success, within the window (R11). Boxed: 8 bytes for
    /// the many users with no failure instead of 32.
    #[allow(clippy::box_collection)]
    pub failures: Option<Box<VecDeque<u64>>>,
    /// Locked until (ms since the epoch); 0 or past: not locked (R11).
    pub locked_until: u64,
    /// Pushes since the last success (push fatigue cap).
    pub pushes: u8,
    /// Opted out of the second factor (R18).
    pub opted_out: bool,
    /// The account's primary user (R18).
    pub primary: bool,
    /// What few users have (boxed: 8 bytes for the rest).
    pub extra: Option<Box<Extra>>,
    /// Open challenges (R12): an answered one leaves at once (the store's transaction index
    /// remembers its verdict for the replay window). Never durable: a restart voids them.
    pub txns: Vec<Txn>,
}

/// What few users have: entity data, withdrawals, an activation in progress.
#[derive(Debug, Default)]
pub struct Extra {
    /// The entity the user belongs to (R17a); empty: its own.
    pub entity: String,
    /// Identification data, canonical (R17a).
    pub identification: String,
    /// Account equity, USD (R20).
    pub equity_usd: u64,
    /// (at ms, amount USD), the last 7 days (R3).
    pub withdrawals: Vec<(u64, u64)>,
    /// (transaction, at ms, amount USD) of the withdrawals above confirmed by a transaction's
    /// answer: the frontend may release one that did not execute (`ReleaseWithdrawal`).
    pub withdrawn_by: Vec<(u128, u64, u64)>,
    /// (the token's digest, started at ms) of an IB Key activation in progress (R22).
    pub activation: Option<([u8; 32], u64)>,
    /// Wrong tokens given for that activation: at [`crate::admin::ACTIVATION_ATTEMPTS`] it is
    /// void (R22 bounded: a token cannot be guessed by retrying).
    pub activation_wrong: u8,
}

/// An enrolled device.
#[derive(Debug)]
pub struct Device {
    /// Its id, unique across users.
    pub id: u32,
    /// Its kind.
    pub kind: DeviceKind,
    /// Where it is in its life (R15, R16).
    pub state: DeviceState,
    /// Its OCRA suite, for the kinds that answer OCRA questions.
    pub suite: Option<OcraSuite>,
    /// The secret then the PIN's hash, in one allocation (memory per user); wiped on drop.
    material: Box<[u8]>,
    pin_len: u8,
    /// When it entered its state (ms since the epoch).
    pub since_ms: u64,
    /// SCC positions asked recently; only cards have them (8 bytes for the others, not 24).
    #[allow(clippy::box_collection)]
    pub recent: Option<Box<Vec<u16>>>,
    /// For a share copy (R17), the device it is a copy of: the copy is usable only while
    /// that device is ([`crate::lifecycle`]). Boxed: 8 bytes for the many devices that are
    /// no copy.
    pub source: Option<Box<Source>>,
}

/// Where a share copy comes from (R17): its owner's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The owner's name.
    pub owner: String,
    /// The owner's device.
    pub device: u32,
}

impl Drop for Device {
    fn drop(&mut self) {
        self.material.zeroize();
    }
}

/// An open challenge.
#[derive(Debug, Clone)]
pub struct Txn {
    /// The transaction.
    pub id: TxnId,
    /// The device its challenge is for.
    pub device: u32,
    /// Login or withdrawal (R4).
    pub purpose: Purpose,
    /// When its challenge expires (ms since the epoch).
    pub expires_ms: u64,
    /// What its answer is judged against.
    pub challenge: TxnChallenge,
}

/// What a transaction's answer is judged against.
#[derive(Debug, Clone)]
pub enum TxnChallenge {
    /// A question (OCRA) or an SMS passcode of up to 64 ASCII characters: inline up to 24 (a
    /// DSC+'s 6 digits), so that an open challenge takes one cache line, not two.
    Question(CompactString),
    /// SCC grid positions (R9).
    Positions(Box<[u16]>),
    /// A push: the number shown on the login screen and the push's nonce (R6).
    Push {
        /// The number shown.
        number: u8,
        /// The push's nonce.
        nonce: [u8; 16],
    },
    /// A temporary code (R13).
    Code,
}

impl TxnChallenge {
    /// A question or passcode, cut at 64 bytes on a character boundary.
    pub fn question(q: &str) -> TxnChallenge {
        // At most 64 bytes, cut on a character boundary (questions and codes are ASCII).
        let end = (0..=q.len().min(64))
            .rev()
            .find(|&i| q.is_char_boundary(i))
            .unwrap_or(0);
        TxnChallenge::Question(CompactString::from(&q[..end]))
    }
}

/// A device's OCRA suite: the given text, or the kind's default when empty; `None` for kinds
/// that answer without OCRA (cards, codes, SMS).
pub fn device_suite(kind: DeviceKind, text: &str) -> Result<Option<OcraSuite>, ocra::OcraError> {
    match default_suite(kind) {
        None => Ok(None),
        Some(d) => Some(if text.is_empty() { d } else { text }.parse()).transpose(),
    }
}

fn default_suite(kind: DeviceKind) -> Option<&'static str> {
    match kind {
        DeviceKind::DscPlus | DeviceKind::Dsc | DeviceKind::Gold | DeviceKind::Platinum => {
            Some(ocra::DSC_PLUS_DEFAULT_SUITE)
        }
        DeviceKind::IbKey => Some(ocra::IB_KEY_DEFAULT_SUITE),
        _ => None,
    }
}

impl Device {
    /// A device from its parts.
    pub fn new(
        id: u32,
        kind: DeviceKind,
        state: DeviceState,
        suite: Option<OcraSuite>,
        secret: &[u8],
        pin_hash: &[u8],
        since_ms: u64,
    ) -> Device {
        let mut m = Vec::with_capacity(secret.len() + pin_hash.len());
        m.extend_from_slice(secret);
        m.extend_from_slice(pin_hash);
        Device {
            id,
            kind,
            state,
            suite,
            material: m.into_boxed_slice(),
            pin_len: pin_hash.len() as u8,
            since_ms,
            recent: None,
            source: None,
        }
    }

    /// A new device with the same credential (R17: the requester's use of a shared device),
    /// usable only while `owner`'s device `self` is.
    pub fn copy_as(&self, id: u32, since_ms: u64, owner: &str) -> Device {
        let mut d = Device::new(
            id,
            self.kind,
            DeviceState::Active,
            self.suite,
            self.secret(),
            self.pin_hash(),
            since_ms,
        );
        d.source = Some(Box::new(Source {
            owner: owner.to_owned(),
            device: self.id,
        }));
        d
    }

    /// The same device again, share source included (a rule that a store may run more than
    /// once takes a fresh one each run).
    pub fn twin(&self) -> Device {
        let mut d = Device::new(
            self.id,
            self.kind,
            self.state,
            self.suite,
            self.secret(),
            self.pin_hash(),
            self.since_ms,
        );
        d.source = self.source.clone();
        d
    }

    /// The record that makes this device's source durable, for a share copy (R17).
    pub fn source_record(&self, user: &str) -> Option<Record> {
        self.source.as_deref().map(|s| Record::Source {
            user: user.to_owned(),
            id: DeviceId(self.id),
            owner: s.owner.clone(),
            device: DeviceId(s.device),
        })
    }

    /// Moves the device to `state` and returns the record that makes the move durable.
    pub fn set_state(&mut self, user: &str, state: DeviceState, at_ms: u64) -> Record {
        self.state = state;
        Record::DeviceState {
            user: user.to_owned(),
            id: DeviceId(self.id),
            state,
            at_ms,
        }
    }

    /// The device's secret.
    pub fn secret(&self) -> &[u8] {
        &self.material[..self.material.len() - self.pin_len as usize]
    }

    /// The hash of the device's PIN (empty for cards).
    pub fn pin_hash(&self) -> &[u8] {
        &self.material[self.material.len() - self.pin_len as usize..]
    }

    /// Its id and kind, as the protocol shows them.
    pub fn info(&self) -> DeviceInfo {
        DeviceInfo {
            id: DeviceId(self.id),
            kind: self.kind,
            limits: self.kind.level().limits(),
        }
    }

    fn suite_text(&self) -> String {
        match (default_suite(self.kind), self.suite) {
            (Some(d), Some(s)) if s.to_string() == d => String::new(),
            (_, Some(s)) => s.to_string(),
            (_, None) => String::new(),
        }
    }

    /// The record that enrols this device as it is now.
    pub fn record(&self, user: &str, shared_from: u32) -> Record {
        Record::Device {
            user: user.to_owned(),
            id: DeviceId(self.id),
            kind: self.kind,
            state: self.state,
            secret: self.secret().to_vec(),
            pin_hash: self.pin_hash().to_vec(),
            suite: self.suite_text(),
            since_ms: self.since_ms,
            shared_from,
        }
    }
}

impl UserState {
    /// A new user from its enrolment (R17, R18, R20).
    pub fn enrol(&mut self, spec: &UserSpec) {
        self.enrolled = true;
        self.primary = spec.primary;
        self.extra =
            (!spec.entity.is_empty() || !spec.identification.is_empty() || spec.equity_usd > 0)
                .then(|| {
                    Box::new(Extra {
                        entity: spec.entity.clone(),
                        identification: spec.identification.clone(),
                        equity_usd: spec.equity_usd,
                        ..Extra::default()
                    })
                });
    }

    /// Whether the user exists (a store may hand a rule a fresh value to create one).
    pub fn is_enrolled(&self) -> bool {
        self.enrolled
    }

    /// Device `id` of this user.
    pub fn device(&self, id: u32) -> Result<&Device, CoreError> {
        self.devices
            .iter()
            .find(|d| d.id == id)
            .ok_or(CoreError::UnknownDevice)
    }

    /// Device `id` of this user, to change.
    pub fn device_mut(&mut self, id: u32) -> Result<&mut Device, CoreError> {
        self.devices
            .iter_mut()
            .find(|d| d.id == id)
            .ok_or(CoreError::UnknownDevice)
    }

    /// Adds a device and returns the record that enrols it.
    pub fn add_device(&mut self, name: &str, d: Device, shared_from: u32) -> Record {
        let rec = d.record(name, shared_from);
        self.devices.retain(|x| x.id != d.id);
        self.devices.reserve_exact(1);
        self.devices.push(d);
        rec
    }

    /// The entity (R17a); empty: its own.
    pub fn entity(&self) -> &str {
        self.extra.as_deref().map_or("", |x| x.entity.as_str())
    }

    /// Open transaction `id`.
    pub fn txn(&self, id: TxnId) -> Option<&Txn> {
        self.txns.iter().find(|t| t.id == id)
    }
}
