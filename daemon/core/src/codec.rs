//! One user's whole state, and one sharing request, as bytes: what a store that keeps state
//! outside this process (the cluster store) writes and reads back. Pure: no I/O.
//!
//! Unlike the journal's [`Record`](crate::record::Record)s, this covers everything, open
//! challenges (`txns`) and recent SCC positions included, so that a challenge begun on one node
//! can be answered on another.
//!
//! Layout: a format byte ([`FORMAT`]), then the fields in the wire format's encodings
//! (`sls_protocol::field`); lists that may be long (devices, failures, open challenges) carry a
//! `u32` count that is checked against both a limit and the bytes left before anything is
//! allocated. Decoding any byte string gives a value or an error, never a panic.
//!
//! Secrets: the buffers this module fills hold device secrets and PIN hashes; its own
//! temporaries are wiped, the caller wipes the output once sent (best effort: a growing buffer
//! may leave copies behind, so callers reserve [`UserState::encoded_len_hint`]).

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};
use sls_protocol::field::{Field, Reader};
use sls_protocol::ocra::OcraSuite;
use sls_protocol::{DecodeError, DeviceKind, Purpose, TxnId};
use zeroize::{Zeroize, Zeroizing};

use crate::record::DeviceState;
use crate::share::{Share, CANCELLED};
use crate::user::{Device, Extra, Source, Txn, TxnChallenge, UserState};

/// The current format; decoding refuses any other.
pub const FORMAT: u8 = 1;

const NAME: usize = sls_protocol::limits::MAX_USER;
const TEXT: usize = sls_protocol::limits::MAX_TEXT;
const SECRET: usize = sls_protocol::limits::MAX_SECRET;
const SUITE: usize = sls_protocol::limits::MAX_SUITE;
/// Bounds of the long lists (far above what the rules keep; a guard against garbage).
const MAX_DEVICES: usize = 4_096;
const MAX_FAILURES: usize = 65_536;
const MAX_TXNS: usize = 1 << 20;
const MAX_SMALL: usize = u16::MAX as usize;

/// Encoding fails only for values over a field's limit, which the rules never build.
fn put<T: Field>(w: &mut BytesMut, v: &T, max: usize) {
    // The only error is a value over its limit; the values here were all decoded or built
    // within them. Truncating silently would corrupt: such a value is a bug upstream.
    if v.put(w, max).is_err() {
        debug_assert!(false, "a stored value over its limit");
    }
}

fn put_count(w: &mut BytesMut, n: usize) {
    w.put_u32(u32::try_from(n).unwrap_or(u32::MAX));
}

/// A `u32` count, within `max` and within what the bytes left could hold at `min_size` bytes
/// an element.
fn get_count(r: &mut Reader<'_>, max: usize, min_size: usize) -> Result<usize, DecodeError> {
    let n = u32::get(r, 0)? as usize;
    if n > max {
        return Err(DecodeError::TooLong { len: n, max });
    }
    if n.saturating_mul(min_size) > r.remaining() {
        return Err(DecodeError::Truncated);
    }
    Ok(n)
}

fn state_from(code: u8) -> Result<DeviceState, DecodeError> {
    DeviceState::decode(code)
}

fn finish<T>(r: &Reader<'_>, v: T) -> Result<T, DecodeError> {
    match r.remaining() {
        0 => Ok(v),
        n => Err(DecodeError::Trailing(n)),
    }
}

fn format(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    match u8::get(r, 0)? {
        FORMAT => Ok(()),
        _ => Err(DecodeError::Invalid("state format")),
    }
}

impl UserState {
    /// About how many bytes [`UserState::encode`] writes (to reserve once).
    pub fn encoded_len_hint(&self) -> usize {
        64 + self.devices.len() * 200
            + self.failures.as_ref().map_or(0, |f| f.len() * 8)
            + self.txns.len() * 48
            + self
                .extra
                .as_ref()
                .map_or(0, |x| 300 + x.withdrawals.len() * 16)
    }

    /// Appends the encoding of the whole state.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = BytesMut::with_capacity(self.encoded_len_hint());
        let w = &mut w;
        put(w, &FORMAT, 0);
        put(w, &self.enrolled, 0);
        put(w, &self.opted_out, 0);
        put(w, &self.primary, 0);
        put(w, &self.locked_until, 0);
        put(w, &self.pushes, 0);
        match &self.failures {
            None => w.put_u8(0),
            Some(f) => {
                w.put_u8(1);
                put_count(w, f.len());
                f.iter().for_each(|t| w.put_u64(*t));
            }
        }
        put_count(w, self.devices.len());
        for d in &self.devices {
            encode_device(w, d);
        }
        match self.extra.as_deref() {
            None => w.put_u8(0),
            Some(x) => {
                w.put_u8(1);
                put(w, &x.entity, TEXT);
                put(w, &x.identification, TEXT);
                put(w, &x.equity_usd, 0);
                put_count(w, x.withdrawals.len());
                for (at, usd) in &x.withdrawals {
                    w.put_u64(*at);
                    w.put_u64(*usd);
                }
                // Flag 2 adds the count of wrong tokens; 1 (none wrong) is the older format.
                // Bit 2 (4): the withdrawals' transactions follow, absent before.
                let by = if x.withdrawn_by.is_empty() { 0 } else { 4 };
                match &x.activation {
                    None => w.put_u8(by),
                    Some((digest, at)) => {
                        w.put_u8(by | if x.activation_wrong == 0 { 1 } else { 2 });
                        w.put_slice(digest);
                        w.put_u64(*at);
                        if x.activation_wrong != 0 {
                            w.put_u8(x.activation_wrong);
                        }
                    }
                }
                if by != 0 {
                    put_count(w, x.withdrawn_by.len());
                    for (txn, at, usd) in &x.withdrawn_by {
                        w.put_u128(*txn);
                        w.put_u64(*at);
                        w.put_u64(*usd);
                    }
                }
            }
        }
        put_count(w, self.txns.len());
        for t in &self.txns {
            encode_txn(w, t);
        }
        out.extend_from_slice(w);
        w.as_mut().zeroize();
    }

    /// Decodes a state that fills `bytes` exactly.
    ///
    /// # Errors
    /// Another format, a field out of range or over its limit, truncated or trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<UserState, DecodeError> {
        let r = &mut Reader::new(bytes);
        format(r)?;
        let mut u = UserState {
            enrolled: bool::get(r, 0)?,
            opted_out: bool::get(r, 0)?,
            primary: bool::get(r, 0)?,
            locked_until: u64::get(r, 0)?,
            pushes: u8::get(r, 0)?,
            ..UserState::default()
        };
        u.failures = match u8::get(r, 0)? {
            0 => None,
            1 => {
                let n = get_count(r, MAX_FAILURES, 8)?;
                let mut f = VecDeque::with_capacity(n);
                for _ in 0..n {
                    f.push_back(u64::get(r, 0)?);
                }
                Some(Box::new(f))
            }
            _ => return Err(DecodeError::Invalid("failures flag")),
        };
        let n = get_count(r, MAX_DEVICES, 20)?;
        u.devices.reserve_exact(n);
        for _ in 0..n {
            u.devices.push(decode_device(r)?);
        }
        u.extra = match u8::get(r, 0)? {
            0 => None,
            1 => {
                let entity = String::get(r, TEXT)?;
                let identification = String::get(r, TEXT)?;
                let equity_usd = u64::get(r, 0)?;
                let n = get_count(r, MAX_SMALL, 16)?;
                let mut withdrawals = Vec::with_capacity(n);
                for _ in 0..n {
                    withdrawals.push((u64::get(r, 0)?, u64::get(r, 0)?));
                }
                let flags = u8::get(r, 0)?;
                let flag = flags & !4;
                let activation = match flag {
                    0 => None,
                    1 | 2 => Some((<[u8; 32]>::get(r, 0)?, u64::get(r, 0)?)),
                    _ => return Err(DecodeError::Invalid("activation flag")),
                };
                let activation_wrong = match flag {
                    2 => match u8::get(r, 0)? {
                        0 => return Err(DecodeError::Invalid("activation attempts")),
                        n => n,
                    },
                    _ => 0,
                };
                let mut withdrawn_by = Vec::new();
                if flags & 4 != 0 {
                    let n = get_count(r, MAX_SMALL, 32)?;
                    withdrawn_by.reserve_exact(n);
                    for _ in 0..n {
                        withdrawn_by.push((u128::get(r, 0)?, u64::get(r, 0)?, u64::get(r, 0)?));
                    }
                }
                Some(Box::new(Extra {
                    entity,
                    identification,
                    equity_usd,
                    withdrawals,
                    activation,
                    activation_wrong,
                    withdrawn_by,
                }))
            }
            _ => return Err(DecodeError::Invalid("extra flag")),
        };
        let n = get_count(r, MAX_TXNS, 30)?;
        u.txns.reserve_exact(n);
        for _ in 0..n {
            u.txns.push(decode_txn(r)?);
        }
        finish(r, u)
    }
}

fn encode_device(w: &mut BytesMut, d: &Device) {
    put(w, &d.id, 0);
    put(w, &d.kind, 0);
    put(w, &(d.state as u8), 0);
    put(w, &d.suite.map(|s| s.to_string()), SUITE);
    w.put_u8(d.secret().len() as u8);
    w.put_slice(d.secret());
    w.put_u8(d.pin_hash().len() as u8);
    w.put_slice(d.pin_hash());
    put(w, &d.since_ms, 0);
    // A flag byte: bit 0, recent SCC positions follow; bit 1, the device is a share copy and
    // its source (owner, device) follows them (R17). 0 and 1 are the older format.
    let flag = u8::from(d.recent.is_some()) | (u8::from(d.source.is_some()) << 1);
    w.put_u8(flag);
    if let Some(p) = d.recent.as_deref() {
        put_count(w, p.len());
        p.iter().for_each(|x| w.put_u16(*x));
    }
    if let Some(src) = d.source.as_deref() {
        put(w, &src.owner, NAME);
        put(w, &src.device, 0);
    }
}

/// A secret-bearing byte string: a `u8` length within `SECRET`, wiped when dropped.
fn get_secret(r: &mut Reader<'_>) -> Result<Zeroizing<Vec<u8>>, DecodeError> {
    let len = u8::get(r, 0)? as usize;
    if len > SECRET {
        return Err(DecodeError::TooLong { len, max: SECRET });
    }
    Ok(Zeroizing::new(r.take(len)?.to_vec()))
}

fn decode_device(r: &mut Reader<'_>) -> Result<Device, DecodeError> {
    let id = u32::get(r, 0)?;
    let kind = DeviceKind::get(r, 0)?;
    let state = state_from(u8::get(r, 0)?)?;
    let suite = match Option::<String>::get(r, SUITE)? {
        None => None,
        Some(s) => Some(
            s.parse::<OcraSuite>()
                .map_err(|_| DecodeError::Invalid("ocra suite"))?,
        ),
    };
    let secret = get_secret(r)?;
    let pin_hash = get_secret(r)?;
    let since_ms = u64::get(r, 0)?;
    let mut d = Device::new(id, kind, state, suite, &secret, &pin_hash, since_ms);
    let flag = u8::get(r, 0)?;
    if flag > 3 {
        return Err(DecodeError::Invalid("recent flag"));
    }
    if flag & 1 != 0 {
        let n = get_count(r, MAX_SMALL, 2)?;
        let mut p = Vec::with_capacity(n);
        for _ in 0..n {
            p.push(u16::get(r, 0)?);
        }
        d.recent = Some(Box::new(p));
    }
    if flag & 2 != 0 {
        let owner = String::get(r, NAME)?;
        if !sls_protocol::valid_user_name(&owner) {
            return Err(DecodeError::Invalid("source owner"));
        }
        d.source = Some(Box::new(Source {
            owner,
            device: u32::get(r, 0)?,
        }));
    }
    Ok(d)
}

fn encode_txn(w: &mut BytesMut, t: &Txn) {
    put(w, &t.id, 0);
    put(w, &t.device, 0);
    put(w, &t.purpose, 0);
    put(w, &t.expires_ms, 0);
    match &t.challenge {
        TxnChallenge::Question(q) => {
            w.put_u8(1);
            // At most 64 bytes by construction ([`TxnChallenge::question`]).
            let q = q.as_bytes().get(..64).unwrap_or(q.as_bytes());
            w.put_u8(q.len() as u8);
            w.put_slice(q);
        }
        TxnChallenge::Positions(p) => {
            w.put_u8(2);
            put_count(w, p.len());
            p.iter().for_each(|x| w.put_u16(*x));
        }
        TxnChallenge::Push { number, nonce } => {
            w.put_u8(3);
            w.put_u8(*number);
            w.put_slice(nonce);
        }
        TxnChallenge::Code => w.put_u8(4),
    }
}

fn decode_txn(r: &mut Reader<'_>) -> Result<Txn, DecodeError> {
    let id = TxnId::get(r, 0)?;
    let device = u32::get(r, 0)?;
    let purpose = Purpose::get(r, 0)?;
    let expires_ms = u64::get(r, 0)?;
    let challenge = match u8::get(r, 0)? {
        1 => {
            let len = u8::get(r, 0)?;
            if len > 64 {
                return Err(DecodeError::TooLong {
                    len: len as usize,
                    max: 64,
                });
            }
            // Every question sls makes is ASCII: anything else is a damaged state, refused
            // whole like any other bad field (the answer would be judged against nonsense).
            let q = std::str::from_utf8(r.take(len as usize)?)
                .map_err(|_| DecodeError::Invalid("a question that is not UTF-8"))?;
            TxnChallenge::Question(q.into())
        }
        2 => {
            let n = get_count(r, MAX_SMALL, 2)?;
            let mut p = Vec::with_capacity(n);
            for _ in 0..n {
                p.push(u16::get(r, 0)?);
            }
            TxnChallenge::Positions(p.into_boxed_slice())
        }
        3 => TxnChallenge::Push {
            number: u8::get(r, 0)?,
            nonce: <[u8; 16]>::get(r, 0)?,
        },
        4 => TxnChallenge::Code,
        _ => return Err(DecodeError::Invalid("challenge kind")),
    };
    Ok(Txn {
        id,
        device,
        purpose,
        expires_ms,
        challenge,
    })
}

impl Share {
    /// Appends the encoding of the request.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = BytesMut::with_capacity(96 + self.deactivated.len() * 4);
        let w = &mut w;
        put(w, &FORMAT, 0);
        put(w, &self.requester, NAME);
        put(w, &self.owner, NAME);
        put(w, &self.device, 0);
        put(w, &self.copy, 0);
        put(w, &self.state, 0);
        put(w, &self.deactivated, sls_protocol::limits::MAX_LIST);
        out.extend_from_slice(w);
    }

    /// Decodes a request that fills `bytes` exactly.
    ///
    /// # Errors
    /// Another format, a field out of range or over its limit, truncated or trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Share, DecodeError> {
        let r = &mut Reader::new(bytes);
        format(r)?;
        let s = Share {
            requester: String::get(r, NAME)?,
            owner: String::get(r, NAME)?,
            device: u32::get(r, 0)?,
            copy: u32::get(r, 0)?,
            state: u8::get(r, 0)?,
            deactivated: Vec::get(r, sls_protocol::limits::MAX_LIST)?,
        };
        if s.state > CANCELLED {
            return Err(DecodeError::Invalid("share state"));
        }
        finish(r, s)
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
