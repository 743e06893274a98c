//! What a simulated device shows: the same `sls-protocol` algorithms a real device runs.

use sls_protocol::card::{self, CardLayout};
use sls_protocol::ocra::{self, OcraInput, OcraSuite};
use sls_protocol::{push, ApprovalMethod, DeviceId, DeviceKind, TxnId};

use std::sync::OnceLock;

use crate::fleet::SimDevice;

/// The OCRA answer a device with `secret` and `pin` shows for `question` under `suite` (the PIN
/// is hashed in only if the suite asks for it). `None` if the suite or the question is invalid.
pub fn ocra_answer(suite: &str, secret: &[u8], question: &str, pin: &str) -> Option<String> {
    let suite: OcraSuite = suite.parse().ok()?;
    let pin = suite.pin.map(|alg| ocra::pin_hash(alg, pin.as_bytes()));
    let input = OcraInput {
        counter: 0,
        question,
        pin_hash: pin.as_ref().map(|p| p.as_bytes()),
        session: None,
        timestamp: None,
    };
    suite
        .compute(secret, &input)
        .ok()
        .map(|a| a.as_str().to_owned())
}

/// The default OCRA suite of a device of `kind` (R5, R6), parsed once; `None` for a kind that
/// answers otherwise.
pub fn default_suite(kind: DeviceKind) -> Option<&'static OcraSuite> {
    static SUITES: OnceLock<Option<(OcraSuite, OcraSuite)>> = OnceLock::new();
    let (dsc_plus, ib_key) = SUITES
        .get_or_init(|| {
            Some((
                ocra::DSC_PLUS_DEFAULT_SUITE.parse().ok()?,
                ocra::IB_KEY_DEFAULT_SUITE.parse().ok()?,
            ))
        })
        .as_ref()?;
    match kind {
        DeviceKind::DscPlus => Some(dsc_plus),
        DeviceKind::IbKey => Some(ib_key),
        _ => None,
    }
}

/// The hash of `pin` under the default suite of `kind`, as its answers take it: empty when
/// that suite takes no PIN.
pub fn default_pin_hash(kind: DeviceKind, pin: &str) -> Vec<u8> {
    default_suite(kind)
        .and_then(|s| s.pin)
        .map(|alg| ocra::pin_hash(alg, pin.as_bytes()).as_bytes().to_vec())
        .unwrap_or_default()
}

impl SimDevice {
    /// The OCRA answer a DSC+ (R5) or the IB Key fallback (R6) shows for `question`, with the
    /// device's PIN.
    pub fn ocra_answer(&self, question: &str) -> Option<String> {
        let suite = default_suite(self.kind)?;
        let input = OcraInput {
            counter: 0,
            question,
            pin_hash: suite.pin.map(|_| self.pin_hash.as_slice()),
            session: None,
            timestamp: None,
        };
        suite
            .compute(&self.secret, &input)
            .ok()
            .map(|a| a.as_str().to_owned())
    }

    /// The codes a Security Code Card shows at `positions` (R9), concatenated.
    pub fn card_answer(&self, positions: &[u16]) -> Option<String> {
        card::answer(&self.secret, &CardLayout::default(), positions).ok()
    }

    /// The IB Key app's signed answer to a push (R6).
    pub fn push_mac(
        &self,
        txn: TxnId,
        user: &str,
        number: u8,
        nonce: &[u8; 16],
        method: ApprovalMethod,
        approve: bool,
    ) -> [u8; 32] {
        push::push_mac(&self.secret, txn, user, number, nonce, method, approve)
    }

    /// The IB Key app's proof of possession of its key.
    pub fn proof(&self, device: DeviceId, nonce: &[u8; 32]) -> [u8; 32] {
        push::device_proof(&self.secret, device, nonce)
    }
}
