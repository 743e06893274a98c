//! QUIC application error codes: the code of a `CONNECTION_CLOSE` the daemon sends, and of a
//! `RESET_STREAM` / `STOP_SENDING` on one stream. A newtype over the wire's varint (held as
//! `u32`: every code fits), so that a client reads a code newer than itself.
//!
//! PROTOCOL.md §1.1 says when each is sent and what a client should do.

use core::fmt;

/// A QUIC application error code sent by the daemon.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u32);

macro_rules! codes {
    ($($(#[$m:meta])* $name:ident = $val:expr => $text:expr,)+) => {
        impl CloseCode {
            $($(#[$m])* pub const $name: CloseCode = CloseCode($val);)+

            /// Every code this version knows.
            pub const KNOWN: &'static [CloseCode] = &[$(CloseCode::$name,)+];

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

codes! {
    /// Connection: the daemon is shutting down.
    SHUTTING_DOWN = 0x000 => "shutting down",
    /// Connection: `sls/1` without a valid role certificate, or an unknown ALPN.
    NO_ROLE = 0x101 => "no valid role certificate",
    /// Connection: the daemon holds its most live connections (`--max-connections`).
    BUSY = 0x102 => "busy: too many connections",
    /// Connection: the client's IP address holds its most live connections
    /// (`--max-connections-per-address`).
    ADDRESS_BUSY = 0x103 => "too many connections from this address",
    /// Connection: too many IB Key app connections that have not proven a key yet, from this
    /// address (`--max-unproven-per-address`) or in all (`--max-unproven`).
    UNPROVEN_BUSY = 0x104 => "too many unproven device connections",
    /// Connection: an IB Key app connection proved no key within `--prove-timeout`.
    PROOF_TIMEOUT = 0x105 => "no key proven in time",
    /// Stream (`RESET_STREAM` and `STOP_SENDING`): a frame begun on it was not complete within
    /// `--frame-timeout`.
    FRAME_TIMEOUT = 0x110 => "frame not completed in time",
    /// Stream (`STOP_SENDING`): the daemon stopped reading it after an `Error` frame that ends
    /// the stream (framing lost, a frame too large for a connection that has proven no key, or
    /// no common protocol version).
    FRAMING_LOST = 0x111 => "framing lost",
}

impl CloseCode {
    /// The code as quinn and other QUIC stacks take it.
    pub const fn value(self) -> u64 {
        self.0 as u64
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.describe() {
            Some(text) => write!(f, "CloseCode({:#x}: {text})", self.0),
            None => write!(f, "CloseCode({:#x})", self.0),
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_described() {
        for (i, a) in CloseCode::KNOWN.iter().enumerate() {
            assert!(a.describe().is_some());
            for b in &CloseCode::KNOWN[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(CloseCode(0x1ff).describe(), None);
    }
}
