//! Field encodings: how each value type is laid on the wire.
//!
//! All integers are big-endian. A `String` is a `u8` byte length then UTF-8; a `Vec<T>` is a
//! `u16` element count then the elements; an `Option<T>` is a `u8` flag (0 none, 1 some) then
//! the value. Every length is checked against its field's limit before anything is allocated.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::status::Status;
use crate::types::{
    ApprovalMethod, Challenge, DeviceId, DeviceInfo, DeviceKind, Grant, GrantKind, Limits, Purpose,
    Role, SecurityLevel, TxnId, Verdict,
};

/// A cursor over a frame body that never reads past its end.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next `n` bytes, or fails with `Truncated`.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

/// A value that has a wire encoding. `max` is the field's length limit for strings and lists
/// (ignored by fixed-size values).
pub trait Field: Sized {
    /// Appends the encoding of `self`.
    fn put(&self, w: &mut BytesMut, max: usize) -> Result<(), EncodeError>;
    /// Reads one value.
    fn get(r: &mut Reader<'_>, max: usize) -> Result<Self, DecodeError>;
}

macro_rules! int_field {
    ($($t:ty),+) => {$(
        impl Field for $t {
            fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
                w.put_slice(&self.to_be_bytes());
                Ok(())
            }
            fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
                Ok(<$t>::from_be_bytes(r.array()?))
            }
        }
    )+};
}
int_field!(u8, u16, u32, u64, u128);

impl Field for bool {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        w.put_u8(u8::from(*self));
        Ok(())
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        match u8::get(r, 0)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid("bool")),
        }
    }
}

impl<const N: usize> Field for [u8; N] {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        w.put_slice(self);
        Ok(())
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        r.array()
    }
}

impl Field for String {
    fn put(&self, w: &mut BytesMut, max: usize) -> Result<(), EncodeError> {
        if self.len() > max.min(u8::MAX as usize) {
            return Err(EncodeError::TooLong {
                len: self.len(),
                max,
            });
        }
        w.put_u8(self.len() as u8);
        w.put_slice(self.as_bytes());
        Ok(())
    }
    fn get(r: &mut Reader<'_>, max: usize) -> Result<Self, DecodeError> {
        let len = u8::get(r, 0)? as usize;
        if len > max {
            return Err(DecodeError::TooLong { len, max });
        }
        let bytes = r.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::InvalidUtf8),
        }
    }
}

impl<T: Field> Field for Vec<T> {
    fn put(&self, w: &mut BytesMut, max: usize) -> Result<(), EncodeError> {
        if self.len() > max.min(u16::MAX as usize) {
            return Err(EncodeError::TooLong {
                len: self.len(),
                max,
            });
        }
        w.put_u16(self.len() as u16);
        for item in self {
            // Elements carry their own limits; a list's `max` is its count.
            item.put(w, ELEMENT_MAX)?;
        }
        Ok(())
    }
    fn get(r: &mut Reader<'_>, max: usize) -> Result<Self, DecodeError> {
        let len = u16::get(r, 0)? as usize;
        if len > max {
            return Err(DecodeError::TooLong { len, max });
        }
        // Never trust a count for allocation beyond what the bytes could hold.
        let mut out = Vec::with_capacity(len.min(r.remaining()));
        for _ in 0..len {
            out.push(T::get(r, ELEMENT_MAX)?);
        }
        Ok(out)
    }
}

/// The limit of one element of a list, for elements that are strings; structs in lists apply
/// their own fields' limits.
const ELEMENT_MAX: usize = crate::limits::MAX_TEXT;

impl<T: Field> Field for Option<T> {
    fn put(&self, w: &mut BytesMut, max: usize) -> Result<(), EncodeError> {
        match self {
            None => w.put_u8(0),
            Some(v) => {
                w.put_u8(1);
                v.put(w, max)?;
            }
        }
        Ok(())
    }
    fn get(r: &mut Reader<'_>, max: usize) -> Result<Self, DecodeError> {
        match u8::get(r, 0)? {
            0 => Ok(None),
            1 => Ok(Some(T::get(r, max)?)),
            _ => Err(DecodeError::Invalid("option flag")),
        }
    }
}

impl Field for IpAddr {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        match self {
            IpAddr::V4(a) => {
                w.put_u8(4);
                w.put_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                w.put_u8(6);
                w.put_slice(&a.octets());
            }
        }
        Ok(())
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        match u8::get(r, 0)? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))),
            _ => Err(DecodeError::Invalid("address family")),
        }
    }
}

impl Field for Status {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        w.put_u16(self.0);
        Ok(())
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        // Unknown codes decode: a newer daemon may send codes this client does not know.
        Ok(Status(u16::get(r, 0)?))
    }
}

impl Field for DeviceId {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        w.put_u32(self.0);
        Ok(())
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        Ok(DeviceId(u32::get(r, 0)?))
    }
}

impl Field for TxnId {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        w.put_u128(self.0);
        Ok(())
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        Ok(TxnId(u128::get(r, 0)?))
    }
}

macro_rules! enum_field {
    ($($t:ty => $what:expr),+) => {$(
        impl Field for $t {
            fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
                w.put_u8(self.code());
                Ok(())
            }
            fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
                <$t>::from_code(u8::get(r, 0)?).ok_or(DecodeError::Invalid($what))
            }
        }
    )+};
}
enum_field!(
    DeviceKind => "device kind",
    SecurityLevel => "security level",
    ApprovalMethod => "approval method",
    GrantKind => "grant kind",
    Role => "role"
);

impl Field for Limits {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        w.put_u64(self.per_day_usd);
        w.put_u64(self.per_5_business_days_usd);
        Ok(())
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        Ok(Limits::new(u64::get(r, 0)?, u64::get(r, 0)?))
    }
}

impl Field for Grant {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        self.kind.put(w, 0)?;
        w.put_u32(self.valid_secs);
        Ok(())
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        Ok(Grant {
            kind: GrantKind::get(r, 0)?,
            valid_secs: u32::get(r, 0)?,
        })
    }
}

impl Field for DeviceInfo {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        self.id.put(w, 0)?;
        self.kind.put(w, 0)?;
        self.limits.put(w, 0)
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        Ok(DeviceInfo {
            id: DeviceId::get(r, 0)?,
            kind: DeviceKind::get(r, 0)?,
            limits: Limits::get(r, 0)?,
        })
    }
}

impl Field for Purpose {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        match self {
            Purpose::Login => w.put_u8(0),
            Purpose::Withdrawal { amount_usd } => {
                w.put_u8(1);
                w.put_u64(*amount_usd);
            }
        }
        Ok(())
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        match u8::get(r, 0)? {
            0 => Ok(Purpose::Login),
            1 => Ok(Purpose::Withdrawal {
                amount_usd: u64::get(r, 0)?,
            }),
            _ => Err(DecodeError::Invalid("purpose")),
        }
    }
}

impl Field for Challenge {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        match self {
            Challenge::Numeric(q) => {
                w.put_u8(1);
                q.put(w, crate::limits::MAX_ANSWER)
            }
            Challenge::Positions(p) => {
                w.put_u8(2);
                p.put(w, crate::limits::MAX_LIST)
            }
            Challenge::Push { number } => {
                w.put_u8(3);
                w.put_u8(*number);
                Ok(())
            }
            Challenge::Code => {
                w.put_u8(4);
                Ok(())
            }
            Challenge::Sms { code } => {
                w.put_u8(5);
                code.put(w, crate::limits::MAX_ANSWER)
            }
        }
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        match u8::get(r, 0)? {
            1 => Ok(Challenge::Numeric(String::get(
                r,
                crate::limits::MAX_ANSWER,
            )?)),
            2 => Ok(Challenge::Positions(Vec::get(r, crate::limits::MAX_LIST)?)),
            3 => Ok(Challenge::Push {
                number: u8::get(r, 0)?,
            }),
            4 => Ok(Challenge::Code),
            5 => Ok(Challenge::Sms {
                code: String::get(r, crate::limits::MAX_ANSWER)?,
            }),
            _ => Err(DecodeError::Invalid("challenge")),
        }
    }
}

impl Field for Verdict {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        match self {
            Verdict::Accepted {
                device,
                kind,
                level,
                limits,
                grant,
            } => {
                w.put_u8(1);
                device.put(w, 0)?;
                kind.put(w, 0)?;
                level.put(w, 0)?;
                limits.put(w, 0)?;
                grant.put(w, 0)?;
            }
            Verdict::Rejected { failures_left } => {
                w.put_u8(2);
                w.put_u8(*failures_left);
            }
            Verdict::Locked { until_ms } => {
                w.put_u8(3);
                w.put_u64(*until_ms);
            }
            Verdict::RateLimited { retry_after_ms } => {
                w.put_u8(4);
                w.put_u32(*retry_after_ms);
            }
            Verdict::Expired => w.put_u8(5),
            Verdict::Replayed => w.put_u8(6),
            Verdict::Unknown => w.put_u8(7),
            Verdict::Malformed => w.put_u8(8),
            Verdict::NeedsStrongerDevice { required } => {
                w.put_u8(9);
                required.put(w, 0)?;
            }
            Verdict::Pending => w.put_u8(10),
            Verdict::Declined => w.put_u8(11),
        }
        Ok(())
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        Ok(match u8::get(r, 0)? {
            1 => Verdict::Accepted {
                device: DeviceId::get(r, 0)?,
                kind: DeviceKind::get(r, 0)?,
                level: SecurityLevel::get(r, 0)?,
                limits: Limits::get(r, 0)?,
                grant: Grant::get(r, 0)?,
            },
            2 => Verdict::Rejected {
                failures_left: u8::get(r, 0)?,
            },
            3 => Verdict::Locked {
                until_ms: u64::get(r, 0)?,
            },
            4 => Verdict::RateLimited {
                retry_after_ms: u32::get(r, 0)?,
            },
            5 => Verdict::Expired,
            6 => Verdict::Replayed,
            7 => Verdict::Unknown,
            8 => Verdict::Malformed,
            9 => Verdict::NeedsStrongerDevice {
                required: SecurityLevel::get(r, 0)?,
            },
            10 => Verdict::Pending,
            11 => Verdict::Declined,
            _ => return Err(DecodeError::Invalid("verdict")),
        })
    }
}
