//! The records the journal makes durable: every change of state that must survive a crash
//! (enrolments, device states, failures, resets). Open transactions are not recorded: a restart
//! voids them and users start over (R12).
//!
//! Encoding: a tag byte, then the fields in the wire format's encodings (`sls_protocol::field`).
//! Decoding any byte string gives a record or an error, never a panic.

use bytes::BytesMut;
use sls_protocol::field::{Field, Reader};
use sls_protocol::{DecodeError, DeviceId, DeviceKind, EncodeError, TxnId};

/// Limits of recorded fields (the wire's, so that a recorded value always re-encodes).
const NAME: usize = sls_protocol::limits::MAX_USER;
const TEXT: usize = sls_protocol::limits::MAX_TEXT;
const SECRET: usize = sls_protocol::limits::MAX_SECRET;

/// A device's lifecycle state (R15, R16, R17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DeviceState {
    /// Usable.
    Active = 1,
    /// Ordered, not shipped (R16).
    Ordered = 2,
    /// Shipped; activates by itself 3 weeks after shipment (R16).
    Shipped = 3,
    /// Not usable: voided (R15), made redundant by sharing (R17), or deactivated.
    Inactive = 4,
    /// Reported lost.
    Lost = 5,
    /// Replaced by a newer device (R16).
    Replaced = 6,
    /// Revoked by client services (lost, stolen, damaged, other): never usable again, nor any
    /// share copy of it (R17).
    Revoked = 7,
    /// Suspended by client services until resumed: not usable meanwhile, nor any share copy
    /// of it (R17).
    Suspended = 8,
}

impl DeviceState {
    fn from_code(c: u8) -> Option<DeviceState> {
        Some(match c {
            1 => DeviceState::Active,
            2 => DeviceState::Ordered,
            3 => DeviceState::Shipped,
            4 => DeviceState::Inactive,
            5 => DeviceState::Lost,
            6 => DeviceState::Replaced,
            7 => DeviceState::Revoked,
            8 => DeviceState::Suspended,
            _ => return None,
        })
    }

    /// The state a code names (the journal's and the cluster store's encodings).
    pub fn decode(c: u8) -> Result<DeviceState, DecodeError> {
        DeviceState::from_code(c).ok_or(DecodeError::Invalid("device state"))
    }
}

/// Why a device was revoked or suspended (`RevokeDevice.reason`).
pub const REASONS: std::ops::RangeInclusive<u8> = 1..=4;

/// One durable change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A user was enrolled (R10, R17, R18, R20).
    User {
        /// Name.
        name: String,
        /// Entity (R17a).
        entity: String,
        /// Identification data (R17a).
        identification: String,
        /// Primary user of the account (R18).
        primary: bool,
        /// Account equity, USD (R20).
        equity_usd: u64,
    },
    /// A device was enrolled or issued.
    Device {
        /// Owner.
        user: String,
        /// Id.
        id: DeviceId,
        /// Kind.
        kind: DeviceKind,
        /// State.
        state: DeviceState,
        /// Secret (OCRA key, card secret, app key) or a temporary code's digest.
        secret: Vec<u8>,
        /// PIN hash, empty if none.
        pin_hash: Vec<u8>,
        /// OCRA suite, empty for the kind's default.
        suite: String,
        /// When issued or shipped, ms since the epoch (temporary devices, R13, R14, R16).
        since_ms: u64,
        /// The device this one is a shared use of (R17), or 0.
        shared_from: u32,
    },
    /// A device changed state at `at_ms`.
    DeviceState {
        /// Owner.
        user: String,
        /// Id.
        id: DeviceId,
        /// New state.
        state: DeviceState,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// A device was removed (a cancelled share, R17).
    DeviceRemoved {
        /// Owner.
        user: String,
        /// Id.
        id: DeviceId,
    },
    /// Client services revoked, suspended or resumed a device (`state` Revoked, Suspended or
    /// Active) at `at_ms`, for `reason` (1 lost, 2 stolen, 3 damaged, 4 other; 0 on resume).
    Stopped {
        /// Owner.
        user: String,
        /// Id.
        id: DeviceId,
        /// New state.
        state: DeviceState,
        /// Why.
        reason: u8,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// Device `id` of `user` is a share copy of `owner`'s device `device` (R17): usable only
    /// while that device is.
    Source {
        /// The copy's holder (the requester).
        user: String,
        /// The copy.
        id: DeviceId,
        /// The source's owner.
        owner: String,
        /// The source device.
        device: DeviceId,
    },
    /// A failed attempt (R11).
    Failure {
        /// User.
        user: String,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// The failure count was reset: a success, or an unlock by client services (R11).
    Reset {
        /// User.
        user: String,
    },
    /// Opted out of SLS, or back in (R18).
    OptOut {
        /// User.
        user: String,
        /// Out (true) or back in.
        out: bool,
    },
    /// A sharing request changed state (R17).
    Share {
        /// The share's id.
        id: u32,
        /// The user asking to use the device.
        requester: String,
        /// The device's owner.
        owner: String,
        /// The owner's device.
        device: DeviceId,
        /// The requester's copy of it, 0 until approved.
        copy: u32,
        /// 0 pending, 1 approved, 2 refused, 3 cancelled.
        state: u8,
        /// The requester's own devices made redundant by the share, to reactivate on cancel.
        deactivated: Vec<u32>,
    },
    /// A withdrawal was confirmed (R3).
    Withdrawal {
        /// User.
        user: String,
        /// Amount, USD.
        amount_usd: u64,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// The withdrawal just recorded ([`Record::Withdrawal`]) was confirmed by transaction
    /// `txn` (R3): the frontend may release it.
    WithdrawalTxn {
        /// User.
        user: String,
        /// The transaction whose answer confirmed it.
        txn: TxnId,
        /// Amount, USD.
        amount_usd: u64,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// The withdrawal confirmed by `txn` did not execute: it no longer counts (R3).
    WithdrawalReleased {
        /// User.
        user: String,
        /// The transaction whose answer confirmed it.
        txn: TxnId,
        /// Its amount, USD.
        amount_usd: u64,
        /// When it was recorded, ms since the epoch.
        at_ms: u64,
    },
    /// Nothing: written for an unknown name's failure, as long as a real user's
    /// [`Record::Failure`], so that both answers wait for the same write (no user
    /// enumeration). Skipped by replay.
    Decoy {
        /// As many bytes as the name.
        filler: String,
    },
}

macro_rules! put {
    ($w:expr; $($v:expr, $max:expr);* $(;)?) => {{ $( Field::put($v, $w, $max)?; )* }};
}

impl Record {
    /// Appends the encoding.
    ///
    /// # Errors
    /// A field over its limit (never for records the core built).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut w = BytesMut::new();
        match self {
            Record::User {
                name,
                entity,
                identification,
                primary,
                equity_usd,
            } => {
                put!(&mut w; &1u8, 0; name, NAME; entity, TEXT; identification, TEXT; primary, 0; equity_usd, 0)
            }
            Record::Device {
                user,
                id,
                kind,
                state,
                secret,
                pin_hash,
                suite,
                since_ms,
                shared_from,
            } => {
                put!(&mut w; &2u8, 0; user, NAME; id, 0; kind, 0; &(*state as u8), 0; secret, SECRET; pin_hash, SECRET; suite, TEXT; since_ms, 0; shared_from, 0)
            }
            Record::DeviceState {
                user,
                id,
                state,
                at_ms,
            } => {
                put!(&mut w; &3u8, 0; user, NAME; id, 0; &(*state as u8), 0; at_ms, 0)
            }
            Record::DeviceRemoved { user, id } => put!(&mut w; &4u8, 0; user, NAME; id, 0),
            Record::Failure { user, at_ms } => put!(&mut w; &5u8, 0; user, NAME; at_ms, 0),
            Record::Stopped {
                user,
                id,
                state,
                reason,
                at_ms,
            } => {
                put!(&mut w; &12u8, 0; user, NAME; id, 0; &(*state as u8), 0; reason, 0; at_ms, 0)
            }
            Record::Source {
                user,
                id,
                owner,
                device,
            } => put!(&mut w; &11u8, 0; user, NAME; id, 0; owner, NAME; device, 0),
            Record::WithdrawalTxn {
                user,
                txn,
                amount_usd,
                at_ms,
            } => put!(&mut w; &13u8, 0; user, NAME; txn, 0; amount_usd, 0; at_ms, 0),
            Record::WithdrawalReleased {
                user,
                txn,
                amount_usd,
                at_ms,
            } => put!(&mut w; &14u8, 0; user, NAME; txn, 0; amount_usd, 0; at_ms, 0),
            Record::Decoy { filler } => put!(&mut w; &10u8, 0; filler, NAME; &0u64, 0),
            Record::Reset { user } => put!(&mut w; &6u8, 0; user, NAME),
            Record::OptOut { user, out: o } => put!(&mut w; &7u8, 0; user, NAME; o, 0),
            Record::Withdrawal {
                user,
                amount_usd,
                at_ms,
            } => {
                put!(&mut w; &8u8, 0; user, NAME; amount_usd, 0; at_ms, 0)
            }
            Record::Share {
                id,
                requester,
                owner,
                device,
                copy,
                state,
                deactivated,
            } => {
                put!(&mut w; &9u8, 0; id, 0; requester, NAME; owner, NAME; device, 0; copy, 0; state, 0; deactivated, sls_protocol::limits::MAX_LIST)
            }
        }
        out.extend_from_slice(&w);
        Ok(())
    }

    /// Decodes one record that fills `bytes` exactly.
    ///
    /// # Errors
    /// Unknown tag, a field out of range, trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
        let mut r = Reader::new(bytes);
        let r = &mut r;
        let s = |r: &mut Reader<'_>, max| String::get(r, max);
        let rec = match u8::get(r, 0)? {
            1 => Record::User {
                name: s(r, NAME)?,
                entity: s(r, TEXT)?,
                identification: s(r, TEXT)?,
                primary: bool::get(r, 0)?,
                equity_usd: u64::get(r, 0)?,
            },
            2 => Record::Device {
                user: s(r, NAME)?,
                id: DeviceId::get(r, 0)?,
                kind: DeviceKind::get(r, 0)?,
                state: DeviceState::from_code(u8::get(r, 0)?)
                    .ok_or(DecodeError::Invalid("device state"))?,
                secret: Vec::get(r, SECRET)?,
                pin_hash: Vec::get(r, SECRET)?,
                suite: s(r, TEXT)?,
                since_ms: u64::get(r, 0)?,
                shared_from: u32::get(r, 0)?,
            },
            3 => Record::DeviceState {
                user: s(r, NAME)?,
                id: DeviceId::get(r, 0)?,
                state: DeviceState::from_code(u8::get(r, 0)?)
                    .ok_or(DecodeError::Invalid("device state"))?,
                at_ms: u64::get(r, 0)?,
            },
            4 => Record::DeviceRemoved {
                user: s(r, NAME)?,
                id: DeviceId::get(r, 0)?,
            },
            5 => Record::Failure {
                user: s(r, NAME)?,
                at_ms: u64::get(r, 0)?,
            },
            6 => Record::Reset { user: s(r, NAME)? },
            10 => {
                let filler = s(r, NAME)?;
                u64::get(r, 0)?;
                Record::Decoy { filler }
            }
            7 => Record::OptOut {
                user: s(r, NAME)?,
                out: bool::get(r, 0)?,
            },
            8 => Record::Withdrawal {
                user: s(r, NAME)?,
                amount_usd: u64::get(r, 0)?,
                at_ms: u64::get(r, 0)?,
            },
            9 => Record::Share {
                id: u32::get(r, 0)?,
                requester: s(r, NAME)?,
                owner: s(r, NAME)?,
                device: DeviceId::get(r, 0)?,
                copy: u32::get(r, 0)?,
                state: u8::get(r, 0)?,
                deactivated: Vec::get(r, sls_protocol::limits::MAX_LIST)?,
            },
            11 => Record::Source {
                user: s(r, NAME)?,
                id: DeviceId::get(r, 0)?,
                owner: s(r, NAME)?,
                device: DeviceId::get(r, 0)?,
            },
            12 => Record::Stopped {
                user: s(r, NAME)?,
                id: DeviceId::get(r, 0)?,
                state: DeviceState::decode(u8::get(r, 0)?)?,
                reason: u8::get(r, 0)?,
                at_ms: u64::get(r, 0)?,
            },
            13 => Record::WithdrawalTxn {
                user: s(r, NAME)?,
                txn: TxnId::get(r, 0)?,
                amount_usd: u64::get(r, 0)?,
                at_ms: u64::get(r, 0)?,
            },
            14 => Record::WithdrawalReleased {
                user: s(r, NAME)?,
                txn: TxnId::get(r, 0)?,
                amount_usd: u64::get(r, 0)?,
                at_ms: u64::get(r, 0)?,
            },
            _ => return Err(DecodeError::Invalid("record tag")),
        };
        match r.remaining() {
            0 => Ok(rec),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

/// A device record carries a secret and a PIN hash: wiped when the record is dropped (once
/// journalled or replayed).
impl Drop for Record {
    fn drop(&mut self) {
        if let Record::Device {
            secret, pin_hash, ..
        } = self
        {
            zeroize::Zeroize::zeroize(secret);
            zeroize::Zeroize::zeroize(pin_hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_round_trip() {
        let all = vec![
            Record::User {
                name: "alice".into(),
                entity: "e1".into(),
                identification: "id".into(),
                primary: true,
                equity_usd: 5,
            },
            Record::Device {
                user: "alice".into(),
                id: DeviceId(3),
                kind: DeviceKind::DscPlus,
                state: DeviceState::Shipped,
                secret: vec![1; 32],
                pin_hash: vec![2; 20],
                suite: String::new(),
                since_ms: 9,
                shared_from: 0,
            },
            Record::DeviceState {
                user: "alice".into(),
                id: DeviceId(3),
                state: DeviceState::Active,
                at_ms: 10,
            },
            Record::DeviceRemoved {
                user: "alice".into(),
                id: DeviceId(3),
            },
            Record::Failure {
                user: "bob".into(),
                at_ms: 11,
            },
            Record::Reset { user: "bob".into() },
            Record::OptOut {
                user: "bob".into(),
                out: true,
            },
            Record::Withdrawal {
                user: "bob".into(),
                amount_usd: 1_000,
                at_ms: 12,
            },
            Record::Decoy {
                filler: "---".into(),
            },
            Record::Stopped {
                user: "alice".into(),
                id: DeviceId(3),
                state: DeviceState::Revoked,
                reason: 2,
                at_ms: 13,
            },
            Record::Source {
                user: "bob".into(),
                id: DeviceId(4),
                owner: "alice".into(),
                device: DeviceId(3),
            },
            Record::WithdrawalTxn {
                user: "bob".into(),
                txn: TxnId(7 << 100),
                amount_usd: 5,
                at_ms: 14,
            },
            Record::WithdrawalReleased {
                user: "bob".into(),
                txn: TxnId(7 << 100),
                amount_usd: 5,
                at_ms: 14,
            },
        ];
        for r in all {
            let mut buf = Vec::new();
            r.encode(&mut buf).unwrap();
            assert_eq!(Record::decode(&buf).unwrap(), r);
            assert!(Record::decode(&buf[..buf.len() - 1]).is_err());
            buf.push(0);
            assert!(Record::decode(&buf).is_err());
        }
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Record::decode(&bytes);
        }
    }
}
