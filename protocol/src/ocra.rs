//! RFC 6287 OCRA, the OATH Challenge-Response Algorithm: the whole suite grammar, and the
//! answer computed without a heap allocation.
//!
//! ```text
//! OCRA-1:HOTP-{SHA1,SHA256,SHA512}-{0,4..10}:[C-]Q{A,N,H}{04..64}[-P{SHA1,SHA256,SHA512}][-Snnn][-T{n}{S,M,H}]
//! answer = truncate(HMAC-H(key, suite || 0x00 || [C] || Q(128) || [P] || [S] || [T]))
//! ```
//!
//! DSC+ answers use [`DSC_PLUS_DEFAULT_SUITE`] (R5); the IB Key fallback uses
//! [`IB_KEY_DEFAULT_SUITE`] (R6). Suites are stored per device, so any valid suite works.
//!
//! # Security
//! [`OcraSuite::verify`] compares the expected and the given answer in constant time.

use core::fmt;
use core::str::FromStr;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The DSC+ suite (R5): a 6-digit numeric question, the SHA-1 hash of the 4-digit PIN, 8 digits.
pub const DSC_PLUS_DEFAULT_SUITE: &str = "OCRA-1:HOTP-SHA256-8:QN06-PSHA1";
/// The IB Key fallback suite (R6): an 8-digit question, the SHA-256 hash of the app's PIN.
pub const IB_KEY_DEFAULT_SUITE: &str = "OCRA-1:HOTP-SHA256-8:QN08-PSHA256";

/// A hash function of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    fn parse(s: &str) -> Option<HashAlg> {
        match s {
            "SHA1" => Some(HashAlg::Sha1),
            "SHA256" => Some(HashAlg::Sha256),
            "SHA512" => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// The name as a suite writes it.
    pub const fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA1",
            HashAlg::Sha256 => "SHA256",
            HashAlg::Sha512 => "SHA512",
        }
    }

    /// Output length in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha512 => 64,
        }
    }
}

/// The format of a suite's question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuestionFormat {
    /// `A`: alphanumeric (printable ASCII).
    Alpha,
    /// `N`: decimal digits.
    Numeric,
    /// `H`: hexadecimal digits.
    Hex,
}

/// The time step of a suite's `T` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeStep {
    /// `T{n}S`, 1..=59 seconds.
    Seconds(u8),
    /// `T{n}M`, 1..=59 minutes.
    Minutes(u8),
    /// `T{n}H`, 0..=48 hours.
    Hours(u8),
}

impl TimeStep {
    /// The step in seconds.
    pub const fn secs(self) -> u64 {
        match self {
            TimeStep::Seconds(n) => n as u64,
            TimeStep::Minutes(n) => n as u64 * 60,
            TimeStep::Hours(n) => n as u64 * 3600,
        }
    }
}

/// A parsed OCRA suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OcraSuite {
    /// The HMAC's hash.
    pub hash: HashAlg,
    /// Digits of the answer: 0 (the whole MAC, in hex) or 4..=10.
    pub digits: u8,
    /// Whether a counter `C` is an input.
    pub counter: bool,
    /// The question's format.
    pub question: QuestionFormat,
    /// The question's maximum length, 4..=64.
    pub question_len: u8,
    /// The PIN hash `P`, if an input.
    pub pin: Option<HashAlg>,
    /// The session information length `S`, if an input.
    pub session_len: Option<u16>,
    /// The time step `T`, if an input.
    pub timestep: Option<TimeStep>,
}

/// Why a suite, an input or an answer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OcraError {
    /// The suite does not follow the grammar.
    #[error("bad OCRA suite: {0}")]
    Suite(String),
    /// The question does not fit the suite.
    #[error("bad question: {0}")]
    Question(String),
    /// An input the suite needs is missing, or has the wrong size.
    #[error("bad input: {0}")]
    Input(&'static str),
    /// The key is empty or too long.
    #[error("bad key length {0}")]
    Key(usize),
}

fn suite_err(msg: impl Into<String>) -> OcraError {
    OcraError::Suite(msg.into())
}

fn two_digits(s: &str) -> Option<u8> {
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl FromStr for OcraSuite {
    type Err = OcraError;

    fn from_str(s: &str) -> Result<OcraSuite, OcraError> {
        if s.len() > crate::limits::MAX_SUITE {
            return Err(suite_err(format!(
                "longer than {} bytes",
                crate::limits::MAX_SUITE
            )));
        }
        let mut parts = s.split(':');
        let (Some(version), Some(crypto), Some(data), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(suite_err("expected three parts separated by ':'"));
        };
        if version != "OCRA-1" {
            return Err(suite_err(format!("version {version:?} is not OCRA-1")));
        }
        let crypto_parts: Vec<&str> = crypto.split('-').collect();
        let [hotp, hash, digits] = crypto_parts[..] else {
            return Err(suite_err(format!(
                "crypto function {crypto:?} is not HOTP-SHAx-t"
            )));
        };
        if hotp != "HOTP" {
            return Err(suite_err(format!("crypto function {hotp:?} is not HOTP")));
        }
        let hash = HashAlg::parse(hash)
            .ok_or_else(|| suite_err(format!("hash {hash:?} is not SHA1, SHA256 or SHA512")))?;
        let digits: u8 = match digits {
            "0" => 0,
            d if (1..=2).contains(&d.len())
                && d.bytes().all(|b| b.is_ascii_digit())
                && !d.starts_with('0') =>
            {
                let n: u8 = d.parse().map_err(|_| suite_err("digits"))?;
                if !(4..=10).contains(&n) {
                    return Err(suite_err(format!("truncation {n} out of 0, 4..=10")));
                }
                n
            }
            d => return Err(suite_err(format!("truncation {d:?} is not a number"))),
        };
        let mut items = data.split('-').peekable();
        let counter = items.next_if_eq(&"C").is_some();
        let q = items.next().ok_or_else(|| suite_err("no question"))?;
        let qb = q.as_bytes();
        if qb.len() != 4 || qb[0] != b'Q' {
            return Err(suite_err(format!("question {q:?} is not Q{{A,N,H}}nn")));
        }
        let question = match qb[1] {
            b'A' => QuestionFormat::Alpha,
            b'N' => QuestionFormat::Numeric,
            b'H' => QuestionFormat::Hex,
            _ => {
                return Err(suite_err(format!(
                    "question format {:?} is not A, N or H",
                    &q[1..2]
                )))
            }
        };
        let question_len = two_digits(&q[2..])
            .ok_or_else(|| suite_err(format!("question length {:?} is not two digits", &q[2..])))?;
        if !(4..=64).contains(&question_len) {
            return Err(suite_err(format!(
                "question length {:02} out of 04..=64",
                question_len
            )));
        }
        let mut suite = OcraSuite {
            hash,
            digits,
            counter,
            question,
            question_len,
            pin: None,
            session_len: None,
            timestep: None,
        };
        // Optional parts, in the grammar's order, each at most once.
        let mut stage = 0;
        for item in items {
            let (tag, rest) = item.split_at(item.len().min(1));
            match tag {
                "P" if stage < 1 => {
                    suite.pin = Some(HashAlg::parse(rest).ok_or_else(|| {
                        suite_err(format!("PIN hash {rest:?} is not SHA1, SHA256 or SHA512"))
                    })?);
                    stage = 1;
                }
                "S" if stage < 2 => {
                    if rest.len() != 3 || !rest.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(suite_err(format!(
                            "session length {rest:?} is not three digits"
                        )));
                    }
                    let n: u16 = rest.parse().map_err(|_| suite_err("session length"))?;
                    if n == 0 {
                        return Err(suite_err("session length 000"));
                    }
                    suite.session_len = Some(n);
                    stage = 2;
                }
                "T" if stage < 3 => {
                    if rest.len() < 2 {
                        return Err(suite_err(format!("time step {rest:?} is not n{{S,M,H}}")));
                    }
                    let (n, unit) = rest.split_at(rest.len() - 1);
                    if n.is_empty()
                        || n.len() > 2
                        || !n.bytes().all(|b| b.is_ascii_digit())
                        || (n.len() == 2 && n.starts_with('0'))
                    {
                        return Err(suite_err(format!("time step {rest:?} is not n{{S,M,H}}")));
                    }
                    let n: u8 = n.parse().map_err(|_| suite_err("time step"))?;
                    suite.timestep = Some(match unit {
                        "S" if (1..=59).contains(&n) => TimeStep::Seconds(n),
                        "M" if (1..=59).contains(&n) => TimeStep::Minutes(n),
                        "H" if n <= 48 => TimeStep::Hours(n),
                        _ => {
                            return Err(suite_err(format!(
                                "time step {rest:?} out of range (1..59 S or M, 0..48 H)"
                            )))
                        }
                    });
                    stage = 3;
                }
                _ => return Err(suite_err(format!("unexpected part {item:?}"))),
            }
        }
        Ok(suite)
    }
}

impl OcraSuite {
    /// Writes the canonical suite text into `buf` without the formatting machinery (it is part
    /// of every data input, so it is on the hot path); returns its length.
    fn write_text(&self, buf: &mut [u8; 80]) -> usize {
        let mut n = 0;
        let mut put = |bytes: &[u8]| {
            buf[n..n + bytes.len()].copy_from_slice(bytes);
            n += bytes.len();
        };
        put(b"OCRA-1:HOTP-");
        put(self.hash.name().as_bytes());
        put(b"-");
        put_number(&mut put, u32::from(self.digits));
        put(b":");
        if self.counter {
            put(b"C-");
        }
        put(match self.question {
            QuestionFormat::Alpha => b"QA",
            QuestionFormat::Numeric => b"QN",
            QuestionFormat::Hex => b"QH",
        });
        put(&[b'0' + self.question_len / 10, b'0' + self.question_len % 10]);
        if let Some(p) = self.pin {
            put(b"-P");
            put(p.name().as_bytes());
        }
        if let Some(s) = self.session_len {
            put(b"-S");
            put(&[
                b'0' + (s / 100 % 10) as u8,
                b'0' + (s / 10 % 10) as u8,
                b'0' + (s % 10) as u8,
            ]);
        }
        if let Some(t) = self.timestep {
            let (v, unit) = match t {
                TimeStep::Seconds(v) => (v, b"S"),
                TimeStep::Minutes(v) => (v, b"M"),
                TimeStep::Hours(v) => (v, b"H"),
            };
            put(b"-T");
            put_number(&mut put, u32::from(v));
            put(unit);
        }
        n
    }
}

fn put_number(put: &mut impl FnMut(&[u8]), v: u32) {
    if v >= 10 {
        put(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
    } else {
        put(&[b'0' + v as u8]);
    }
}

impl fmt::Display for OcraSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 80];
        let n = self.write_text(&mut buf);
        f.write_str(core::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
    }
}

/// The inputs of one OCRA computation. Inputs the suite does not use are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct OcraInput<'a> {
    /// The counter `C`.
    pub counter: u64,
    /// The question `Q`, as the user types it.
    pub question: &'a str,
    /// The PIN's hash `P` (see [`pin_hash`]).
    pub pin_hash: Option<&'a [u8]>,
    /// The session information `S`, exactly the suite's length.
    pub session: Option<&'a [u8]>,
    /// The time `T`, in time steps since the Unix epoch.
    pub timestamp: Option<u64>,
}

/// A PIN's hash, on the stack.
#[derive(Clone, Copy)]
pub struct PinHash {
    buf: [u8; 64],
    len: usize,
}

impl PinHash {
    /// The hash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Debug for PinHash {
    // Never print a PIN's hash: it is as good as the PIN for 10^4 guesses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinHash(..)")
    }
}

/// Hashes a PIN with the suite's `P` hash.
pub fn pin_hash(alg: HashAlg, pin: &[u8]) -> PinHash {
    let mut buf = [0u8; 64];
    match alg {
        HashAlg::Sha1 => buf[..20].copy_from_slice(&Sha1::digest(pin)),
        HashAlg::Sha256 => buf[..32].copy_from_slice(&Sha256::digest(pin)),
        HashAlg::Sha512 => buf.copy_from_slice(&Sha512::digest(pin)),
    }
    PinHash {
        buf,
        len: alg.output_len(),
    }
}

/// An answer, on the stack: up to 10 digits, or 128 hex digits for a suite of 0 digits.
#[derive(Clone, Copy)]
pub struct OcraAnswer {
    buf: [u8; 128],
    len: usize,
}

impl OcraAnswer {
    /// The answer's text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and hex letters are ever written.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Display for OcraAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for OcraAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OcraAnswer(..)")
    }
}

/// Why an answer is malformed (R10): the daemon reports it as such, not as a wrong answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnswerFormatError {
    /// Not the suite's number of characters.
    #[error("answer length {got}, expected {expected}")]
    Length {
        /// The length given.
        got: usize,
        /// The suite's length.
        expected: usize,
    },
    /// A character outside the answer's alphabet (a space, a letter in a numeric answer...).
    #[error("answer has a character outside its alphabet")]
    Alphabet,
}

/// The question as 128 bytes, encoded exactly as the RFC's reference code does.
fn encode_question(suite: &OcraSuite, q: &str) -> Result<[u8; 128], OcraError> {
    let qb = q.as_bytes();
    // The suite's length is one challenge's; in mutual challenge-response (RFC 6287 §7.3) the
    // question is two challenges concatenated, so up to twice that, within the 128 bytes.
    let max = (2 * suite.question_len as usize).min(match suite.question {
        QuestionFormat::Alpha => 128,
        QuestionFormat::Hex => 256,
        QuestionFormat::Numeric => 128,
    });
    if qb.len() < 4 || qb.len() > max {
        return Err(OcraError::Question(format!(
            "length {} out of 4..={max}",
            qb.len()
        )));
    }
    let mut out = [0u8; 128];
    match suite.question {
        QuestionFormat::Alpha => {
            if !qb.iter().all(|b| b.is_ascii_graphic()) {
                return Err(OcraError::Question(
                    "alphanumeric questions are printable ASCII without spaces".into(),
                ));
            }
            out[..qb.len()].copy_from_slice(qb);
        }
        QuestionFormat::Hex => {
            let mut nibbles = [0u8; 256];
            for (i, b) in qb.iter().enumerate() {
                nibbles[i] =
                    hex_val(*b).ok_or_else(|| OcraError::Question("not hexadecimal".into()))?;
            }
            pack_nibbles(&nibbles, &mut out);
        }
        QuestionFormat::Numeric => {
            if !qb.iter().all(u8::is_ascii_digit) {
                return Err(OcraError::Question("not decimal".into()));
            }
            if qb.len() <= 38 {
                // Fits a u128: the common case (6- and 8-digit challenges), done directly.
                let mut v: u128 = 0;
                for d in qb {
                    v = v * 10 + u128::from(d - b'0');
                }
                let digits = if v == 0 {
                    1
                } else {
                    (128 - v.leading_zeros()).div_ceil(4) as usize
                };
                for i in 0..digits {
                    let nib = ((v >> (4 * (digits - 1 - i))) & 0xf) as u8;
                    out[i / 2] |= if i % 2 == 0 { nib << 4 } else { nib };
                }
                return Ok(out);
            }
            // Decimal to a big-endian integer (at most 128 digits < 2^426: 54 bytes).
            let mut num = [0u8; 64];
            for d in qb {
                let mut carry = u32::from(d - b'0');
                for byte in num.iter_mut().rev() {
                    let v = u32::from(*byte) * 10 + carry;
                    *byte = v as u8;
                    carry = v >> 8;
                }
            }
            // Its hex digits without leading zeros ("0" for zero), left-aligned.
            let mut nibbles = [0u8; 256];
            let mut n = 0;
            for byte in num {
                for nib in [byte >> 4, byte & 0x0f] {
                    if n > 0 || nib != 0 {
                        nibbles[n] = nib;
                        n += 1;
                    }
                }
            }
            pack_nibbles(&nibbles, &mut out);
        }
    }
    Ok(out)
}

fn pack_nibbles(nibbles: &[u8; 256], out: &mut [u8; 128]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibbles[2 * i] << 4) | nibbles[2 * i + 1];
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Feeds the data input to a MAC.
fn feed<M: Mac>(
    mac: &mut M,
    suite: &OcraSuite,
    text: &str,
    input: &OcraInput<'_>,
    q: &[u8; 128],
) -> Result<(), OcraError> {
    mac.update(text.as_bytes());
    mac.update(&[0]);
    if suite.counter {
        mac.update(&input.counter.to_be_bytes());
    }
    mac.update(q);
    if let Some(alg) = suite.pin {
        let p = input
            .pin_hash
            .ok_or(OcraError::Input("the suite needs a PIN hash"))?;
        if p.len() != alg.output_len() {
            return Err(OcraError::Input("PIN hash length does not match the suite"));
        }
        mac.update(p);
    }
    if let Some(len) = suite.session_len {
        let s = input
            .session
            .ok_or(OcraError::Input("the suite needs session information"))?;
        if s.len() != len as usize {
            return Err(OcraError::Input(
                "session information length does not match the suite",
            ));
        }
        mac.update(s);
    }
    if suite.timestep.is_some() {
        let t = input
            .timestamp
            .ok_or(OcraError::Input("the suite needs a timestamp"))?;
        mac.update(&t.to_be_bytes());
    }
    Ok(())
}

impl OcraSuite {
    /// Computes the answer a device shows.
    ///
    /// # Errors
    /// An empty key, a question that does not fit the suite, a missing input.
    pub fn compute(&self, key: &[u8], input: &OcraInput<'_>) -> Result<OcraAnswer, OcraError> {
        if key.is_empty() || key.len() > 128 {
            return Err(OcraError::Key(key.len()));
        }
        let q = encode_question(self, input.question)?;
        // The suite text is part of the data input; write it on the stack.
        let mut text_buf = [0u8; 80];
        let text_len = self.write_text(&mut text_buf);
        let text =
            core::str::from_utf8(&text_buf[..text_len]).map_err(|_| suite_err("suite text"))?;
        let mut mac_out = [0u8; 64];
        let mac_len = match self.hash {
            HashAlg::Sha1 => run_mac::<Hmac<Sha1>>(key, self, text, input, &q, &mut mac_out)?,
            HashAlg::Sha256 => run_mac::<Hmac<Sha256>>(key, self, text, input, &q, &mut mac_out)?,
            HashAlg::Sha512 => run_mac::<Hmac<Sha512>>(key, self, text, input, &q, &mut mac_out)?,
        };
        let mac = &mac_out[..mac_len];
        let mut answer = OcraAnswer {
            buf: [0u8; 128],
            len: 0,
        };
        if self.digits == 0 {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for (i, b) in mac.iter().enumerate() {
                answer.buf[2 * i] = HEX[(b >> 4) as usize];
                answer.buf[2 * i + 1] = HEX[(b & 0x0f) as usize];
            }
            answer.len = 2 * mac.len();
        } else {
            let value = truncate(mac) as u64 % 10u64.pow(u32::from(self.digits));
            let d = self.digits as usize;
            let mut v = value;
            for i in (0..d).rev() {
                answer.buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            answer.len = d;
        }
        Ok(answer)
    }

    /// Whether `answer` has the shape of this suite's answers (R10): exactly `digits` decimal
    /// digits (or the MAC's hex digits for a 0-digit suite), no space, no other character.
    ///
    /// # Errors
    /// The way the answer is malformed.
    pub fn check_answer_format(&self, answer: &str) -> Result<(), AnswerFormatError> {
        let expected = if self.digits == 0 {
            2 * self.hash.output_len()
        } else {
            self.digits as usize
        };
        if answer.len() != expected {
            return Err(AnswerFormatError::Length {
                got: answer.len(),
                expected,
            });
        }
        let ok = if self.digits == 0 {
            answer
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        } else {
            answer.bytes().all(|b| b.is_ascii_digit())
        };
        if ok {
            Ok(())
        } else {
            Err(AnswerFormatError::Alphabet)
        }
    }

    /// Whether `answer` is the right answer, compared in constant time. A malformed answer is
    /// `Ok(false)`: call [`OcraSuite::check_answer_format`] first to tell it apart.
    ///
    /// # Errors
    /// As [`OcraSuite::compute`].
    pub fn verify(
        &self,
        key: &[u8],
        input: &OcraInput<'_>,
        answer: &str,
    ) -> Result<bool, OcraError> {
        let expected = self.compute(key, input)?;
        if self.check_answer_format(answer).is_err() {
            return Ok(false);
        }
        Ok(bool::from(
            expected.as_str().as_bytes().ct_eq(answer.as_bytes()),
        ))
    }
}

fn run_mac<M: Mac + hmac::digest::KeyInit>(
    key: &[u8],
    suite: &OcraSuite,
    text: &str,
    input: &OcraInput<'_>,
    q: &[u8; 128],
    out: &mut [u8; 64],
) -> Result<usize, OcraError> {
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(key).map_err(|_| OcraError::Key(key.len()))?;
    feed(&mut mac, suite, text, input, q)?;
    let tag = mac.finalize().into_bytes();
    out[..tag.len()].copy_from_slice(&tag);
    Ok(tag.len())
}

/// RFC 4226 dynamic truncation: 31 bits from the offset named by the last nibble.
pub fn truncate(mac: &[u8]) -> u32 {
    let offset = (mac[mac.len() - 1] & 0x0f) as usize;
    u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_parse_and_print_back() {
        for s in [
            "OCRA-1:HOTP-SHA1-6:QN08",
            "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
            "OCRA-1:HOTP-SHA512-8:QN08-T1M",
            "OCRA-1:HOTP-SHA512-8:QA10-T1M",
            "OCRA-1:HOTP-SHA256-0:QH64-S512",
            "OCRA-1:HOTP-SHA1-10:C-QA04-PSHA512-S064-T48H",
            "OCRA-1:HOTP-SHA256-8:QN06-PSHA1",
        ] {
            let suite: OcraSuite = s.parse().unwrap();
            assert_eq!(suite.to_string(), s);
        }
    }

    #[test]
    fn malformed_suites_are_refused_with_a_reason() {
        for (s, why) in [
            ("OCRA-2:HOTP-SHA1-6:QN08", "version"),
            ("ocra-1:HOTP-SHA1-6:QN08", "version"),
            ("OCRA-1:HOTP-SHA3-6:QN08", "hash"),
            ("OCRA-1:HOTP-SHA1-3:QN08", "truncation"),
            ("OCRA-1:HOTP-SHA1-11:QN08", "truncation"),
            ("OCRA-1:HOTP-SHA1-06:QN08", "truncation"),
            ("OCRA-1:TOTP-SHA1-6:QN08", "HOTP"),
            ("OCRA-1:HOTP-SHA1-6:QN03", "question length"),
            ("OCRA-1:HOTP-SHA1-6:QN65", "question length"),
            ("OCRA-1:HOTP-SHA1-6:QN8", "question"),
            ("OCRA-1:HOTP-SHA1-6:QX08", "question format"),
            ("OCRA-1:HOTP-SHA1-6:QN08-PMD5", "PIN hash"),
            ("OCRA-1:HOTP-SHA1-6:QN08-S64", "session length"),
            ("OCRA-1:HOTP-SHA1-6:QN08-T60S", "time step"),
            ("OCRA-1:HOTP-SHA1-6:QN08-T49H", "time step"),
            ("OCRA-1:HOTP-SHA1-6:QN08-T1M-PSHA1", "unexpected part"),
            ("OCRA-1:HOTP-SHA1-6:QN08-PSHA1-PSHA1", "unexpected part"),
            ("OCRA-1:HOTP-SHA1-6:QN08:", "three parts"),
            ("OCRA-1:HOTP-SHA1-6:QN08-", "unexpected part"),
            ("OCRA-1:HOTP-SHA1-6:C-C-QN08", "question"),
            ("", "three parts"),
        ] {
            match s.parse::<OcraSuite>() {
                Err(OcraError::Suite(msg)) => {
                    assert!(msg.contains(why), "{s:?}: {msg:?} lacks {why:?}")
                }
                other => panic!("{s:?} parsed: {other:?}"),
            }
        }
    }

    #[test]
    fn numeric_questions_encode_as_the_reference_code() {
        let suite: OcraSuite = "OCRA-1:HOTP-SHA1-6:QN08".parse().unwrap();
        // 11111111 = 0xA98AC7.
        let q = encode_question(&suite, "11111111").unwrap();
        assert_eq!(&q[..4], &[0xa9, 0x8a, 0xc7, 0x00]);
        // 00000000 = "0": all zero bytes. 1 = "1": the nibble goes high.
        assert!(encode_question(&suite, "00000000")
            .unwrap()
            .iter()
            .all(|b| *b == 0));
        assert_eq!(encode_question(&suite, "0001").unwrap()[0], 0x10);
        assert!(encode_question(&suite, "1234567a").is_err());
        assert!(encode_question(&suite, "123").is_err());
        assert!(encode_question(&suite, &"1".repeat(17)).is_err());
    }

    #[test]
    fn answers_are_checked_for_shape() {
        let suite: OcraSuite = DSC_PLUS_DEFAULT_SUITE.parse().unwrap();
        assert!(suite.check_answer_format("12345678").is_ok());
        assert_eq!(
            suite.check_answer_format("1234 5678"),
            Err(AnswerFormatError::Length {
                got: 9,
                expected: 8
            })
        );
        assert_eq!(
            suite.check_answer_format("1234567a"),
            Err(AnswerFormatError::Alphabet)
        );
        assert_eq!(
            suite.check_answer_format(" 1234567"),
            Err(AnswerFormatError::Alphabet)
        );
    }
}
