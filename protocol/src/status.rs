//! Wire status codes: a newtype over `u16`, so that a client reads a code newer than itself.
//!
//! Codes below 0x0100 are errors of the frame or the connection; codes from 0x0100 are errors
//! of a request that the daemon understood and refused. A verification's outcome is never a
//! status: it is a [`crate::Verdict`].

use core::fmt;

/// A numbered error code carried by an `Error` frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Status(pub u16);

macro_rules! statuses {
    ($($(#[$m:meta])* $name:ident = $val:expr => $text:expr,)+) => {
        impl Status {
            $($(#[$m])* pub const $name: Status = Status($val);)+

            /// Every code this version knows.
            pub const KNOWN: &'static [Status] = &[$(Status::$name,)+];

            /// The code's name as PROTOCOL.md §6 writes it (`UNKNOWN_USER`), or `None` for a
            /// code newer than this library.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)+
                    _ => None,
                }
            }

            /// A short stable description, or `None` for a code newer than this library.
            pub const fn describe(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some($text),)+
                    _ => None,
                }
            }
        }
    };
}

statuses! {
    /// The frame could not be decoded: a length field disagrees with the bytes, or a field is
    /// out of its range.
    MALFORMED_FRAME = 0x0001 => "malformed frame",
    /// The frame's length exceeds [`crate::limits::MAX_FRAME`].
    FRAME_TOO_LARGE = 0x0002 => "frame too large",
    /// The message type is not known to the daemon.
    UNKNOWN_TYPE = 0x0003 => "unknown message type",
    /// No protocol version is common to both sides, or a request came before `Hello`.
    VERSION = 0x0004 => "unsupported version or no hello",
    /// The message is not allowed to the peer's role (e.g. an admin call from a frontend).
    FORBIDDEN = 0x0005 => "forbidden for this role",
    /// A text field is not valid UTF-8.
    INVALID_UTF8 = 0x0006 => "invalid utf-8",
    /// Too many requests in flight on this connection.
    TOO_MANY_IN_FLIGHT = 0x0007 => "too many requests in flight",
    /// The daemon is shutting down; retry on another.
    SHUTTING_DOWN = 0x0008 => "shutting down",
    /// The daemon failed; the request may or may not have taken effect.
    INTERNAL = 0x0009 => "internal error",
    /// The message was sent the wrong way (a response from a client).
    UNEXPECTED = 0x000a => "unexpected message",
    /// The daemon cannot reach or write its state store (its journal's disk, its Redis
    /// cluster): the request was refused, its answer not given as if recorded. Retry later or
    /// on another node.
    UNAVAILABLE = 0x000b => "state store unavailable",
    /// R10: a user name with a character other than a-z and 0-9.
    BAD_CHARACTER = 0x0100 => "BAD CHARACTER",
    /// No such user (admin calls only: frontends get verdicts, never this).
    UNKNOWN_USER = 0x0101 => "unknown user",
    /// No such device for this user.
    UNKNOWN_DEVICE = 0x0102 => "unknown device",
    /// The user or device already exists.
    ALREADY_EXISTS = 0x0103 => "already exists",
    /// The device is in a state that does not allow the operation.
    INVALID_STATE = 0x0104 => "invalid state",
    /// A PIN breaks R7: a DSC+ PIN is 4 digits, an IB Key PIN 4 to 6 characters.
    INVALID_PIN = 0x0105 => "invalid PIN",
    /// A key, suite or other credential parameter is invalid.
    INVALID_CREDENTIAL = 0x0106 => "invalid credential",
    /// R17(c): the shared device is not the most protective among the participants'.
    LESS_SECURE_DEVICE = 0x0107 => "Less secure device",
    /// R17(a): the users share neither entity nor identification data.
    DIFFERENT_IDENTIFICATION = 0x0108 => "Different identification information",
    /// R17(b): a participant holds a temporary device.
    TEMPORARY_DEVICE = 0x0109 => "a participant has a temporary device",
    /// R18: only the primary user may opt back in.
    NOT_PRIMARY_USER = 0x010a => "not the primary user",
    /// R22: the activation token is wrong or expired.
    BAD_TOKEN = 0x010b => "bad activation token",
    /// R22: a phone number must be digits only, with no trunk prefix.
    BAD_PHONE = 0x010c => "bad phone number",
    /// A bound of the daemon's (users, devices, open transactions) is reached.
    CAPACITY = 0x010d => "capacity reached",
    /// The IB Key app failed to prove possession of its key.
    BAD_PROOF = 0x010e => "bad proof of possession",
    /// The owner's answer given for a sharing request (R17) is wrong.
    OWNER_NOT_VERIFIED = 0x010f => "owner's answer rejected",
    /// R20: the account's equity is under the DSC+ threshold.
    NOT_ELIGIBLE = 0x0110 => "not eligible",
    /// Too many failed attempts from this address (`DeviceProve`): refused without being
    /// checked; try again later.
    RATE_LIMITED = 0x0111 => "rate limited",
    /// The device was revoked (lost, stolen, damaged, other): it, and every share copy of it
    /// (R17), is never usable again; a `Begin` naming it gets this (version 3).
    DEVICE_REVOKED = 0x0120 => "device revoked",
    /// The device is suspended until resumed: it, and every share copy of it (R17), is not
    /// usable meanwhile; a `Begin` naming it gets this (version 3).
    DEVICE_SUSPENDED = 0x0121 => "device suspended",
    /// R17: a user cannot share a device with itself (requester and owner are one user).
    SELF_SHARE = 0x0122 => "requester is the owner",
    /// The user holds as many devices as the daemon allows (`--max-devices-per-user`).
    TOO_MANY_DEVICES = 0x0123 => "too many devices",
    /// R16: the device was replaced (retired) by a newer one and does not come back.
    DEVICE_RETIRED = 0x0124 => "device retired",
    /// R3: no withdrawal of this user is recorded under that transaction.
    UNKNOWN_WITHDRAWAL = 0x0125 => "no such withdrawal",
    /// R18: the account has a primary user; the override is only for an account without.
    HAS_PRIMARY_USER = 0x0126 => "the account has a primary user",
    // ---- version 3: idempotent admin writes (0x0130-0x013f) ----
    /// `Idempotent`: the key was used before with another request (type or fields): nothing
    /// was done.
    IDEMPOTENCY_KEY_REUSED = 0x0130 => "idempotency key reused for another request",
    /// `Idempotent`: the first request with this key is still being handled: ask again
    /// later for its answer.
    IDEMPOTENCY_IN_PROGRESS = 0x0131 => "idempotency key in progress",
    /// `Idempotent`: the inner request is not an admin request (or is itself `Idempotent`).
    NOT_IDEMPOTENT = 0x0132 => "not an admin request",
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.describe() {
            Some(text) => write!(f, "Status({:#06x} {text})", self.0),
            None => write!(f, "Status({:#06x})", self.0),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.describe() {
            Some(text) => f.write_str(text),
            None => write!(f, "status {:#06x}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_described() {
        let mut seen = std::collections::HashSet::new();
        for s in Status::KNOWN {
            assert!(seen.insert(s.0), "duplicate code {s:?}");
            assert!(s.describe().is_some());
        }
        assert_eq!(Status(0xfff0).describe(), None);
        assert_eq!(Status::BAD_CHARACTER.to_string(), "BAD CHARACTER");
    }
}
