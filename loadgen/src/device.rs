//! What a simulated device shows: the same `sls-protocol` algorithms a real device runs.

use sls_protocol::card::{self, CardLayout};
use sls_protocol::ocra::{self, OcraInput, OcraSuite};
use sls_protocol::{push, ApprovalMethod, DeviceId, TxnId};

use crate::fleet::{default_suite, SimDevice};

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
