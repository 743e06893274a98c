//! The simulated world: the seed's random source, the users and their devices, and the
//! answers a device computes with the real algorithms of `sls_protocol` (OCRA for a DSC+ and
//! the IB Key fallback, the push MAC for an IB Key approval).

use sls_protocol::ocra::{self, OcraInput, OcraSuite};
use sls_protocol::{push, ApprovalMethod, DeviceId, DeviceKind, TxnId};

/// The simulator's random source: SplitMix64, stated here so that a seed means the same run
/// on any machine and with any version of any crate.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A source started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Random bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.next_u64() as u8)
    }
}

/// A device as its holder knows it.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its id.
    pub id: DeviceId,
    /// DSC+, IB Key or temporary code.
    pub kind: DeviceKind,
    /// The card's or the app's key (a temporary code: the code).
    pub secret: Vec<u8>,
    /// The PIN (R7).
    pub pin: String,
    /// Enrolled before the run, a temporary code, or a replacement.
    pub role: Role,
    /// The lsn of the records that made it (0: before the run): a crash that loses them
    /// loses the device.
    pub lsn: u64,
}

/// Where a device came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Enrolled before the run.
    Permanent,
    /// A temporary code (R13).
    Temp,
    /// A replacement DSC+ (R16), shipped with the records of that lsn.
    Replacement {
        /// The lsn of its shipment, if shipped.
        shipped: Option<u64>,
    },
}

/// A user and their devices.
#[derive(Debug, Clone)]
pub struct User {
    /// Name (R10).
    pub name: String,
    /// Devices, in enrolment order.
    pub devices: Vec<Device>,
}

impl Device {
    /// The answer the card or the app shows for `question` (R5; R6 fallback).
    pub fn ocra_answer(&self, question: &str) -> String {
        let suite = match self.kind {
            DeviceKind::IbKey => ocra::IB_KEY_DEFAULT_SUITE,
            _ => ocra::DSC_PLUS_DEFAULT_SUITE,
        };
        let Ok(suite) = suite.parse::<OcraSuite>() else {
            return String::new();
        };
        let pin = suite
            .pin
            .map(|alg| ocra::pin_hash(alg, self.pin.as_bytes()));
        suite
            .compute(
                &self.secret,
                &OcraInput {
                    question,
                    pin_hash: pin.as_ref().map(|p| p.as_bytes()),
                    ..OcraInput::default()
                },
            )
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// The app's MAC over its answer to a push (R6).
    pub fn push_mac(
        &self,
        txn: TxnId,
        user: &str,
        number: u8,
        nonce: &[u8; 16],
        approve: bool,
    ) -> [u8; 32] {
        push::push_mac(
            &self.secret,
            txn,
            user,
            number,
            nonce,
            ApprovalMethod::Biometric,
            approve,
        )
    }
}

/// A wrong answer of the same shape as `right` (one digit changed).
pub fn wrong_answer(right: &str, rng: &mut Rng) -> String {
    let mut b = right.as_bytes().to_vec();
    if b.is_empty() {
        return "00000000".into();
    }
    let i = rng.below(b.len() as u64) as usize;
    b[i] = match b[i] {
        b'9' => b'0',
        b'Z' => b'A',
        c => c + 1,
    };
    String::from_utf8(b).unwrap_or_default()
}

/// A malformed answer (R10): a space inside, or the wrong length.
pub fn malformed_answer(right: &str, rng: &mut Rng) -> String {
    if rng.chance(500) {
        format!("{} ", &right[..right.len().saturating_sub(1)])
    } else {
        right[..right.len() / 2].to_string()
    }
}
