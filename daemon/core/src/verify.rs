//! Judging a typed answer against its challenge, in constant time: R5 (DSC+ OCRA with the
//! PIN), R6 fallback (IB Key OCRA), R9 (Security Code Card positions), R13 (temporary code),
//! R1 (SMS passcode), R10 (the exact form: a padded, spaced or re-cased answer is malformed,
//! never normalised into a right one, so it cannot dodge the counters).

use sls_protocol::card::{self, CardLayout};
use sls_protocol::codes;
use sls_protocol::ocra::OcraInput;
use sls_protocol::DeviceKind;

use crate::user::{Device, TxnChallenge};

/// How an answer looks and whether it is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Not in the device's answer format (R10).
    Malformed,
    /// Well formed and wrong.
    Wrong,
    /// Right.
    Right,
}

/// Judges `response` to `challenge` with device `d`'s credential.
pub fn judge(d: &Device, challenge: &TxnChallenge, response: &str, card: &CardLayout) -> Judgement {
    let (formed, right) = match (challenge, d.kind) {
        (TxnChallenge::Question(expected), DeviceKind::Sms) => {
            let formed = response.len() == 6 && response.bytes().all(|b| b.is_ascii_digit());
            (formed, formed && codes::codes_equal(expected, response))
        }
        (TxnChallenge::Question(question), _) => match d.suite {
            Some(suite) => {
                let input = OcraInput {
                    counter: 0,
                    question,
                    pin_hash: suite.pin.map(|_| d.pin_hash()),
                    session: None,
                    timestamp: None,
                };
                let formed = suite.check_answer_format(response).is_ok();
                (
                    formed,
                    formed && suite.verify(d.secret(), &input, response).unwrap_or(false),
                )
            }
            None => (false, false),
        },
        (TxnChallenge::Positions(p), _) => {
            let formed = response.len() == p.len() * usize::from(card.code_digits)
                && response.bytes().all(|b| b.is_ascii_digit());
            (
                formed,
                formed && card::verify(d.secret(), card, p, response),
            )
        }
        (TxnChallenge::Code, DeviceKind::TempCode) => {
            let formed = codes::check_temp_code_format(response).is_ok();
            let digest: Option<[u8; 32]> = d.secret().try_into().ok();
            (
                formed,
                formed && digest.is_some_and(|dg| codes::temp_code_matches(&dg, response)),
            )
        }
        _ => (false, false),
    };
    match (formed, right) {
        (false, _) => Judgement::Malformed,
        (true, false) => Judgement::Wrong,
        (true, true) => Judgement::Right,
    }
}
