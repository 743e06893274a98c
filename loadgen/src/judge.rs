//! Judging a step by what the rules say should happen: the reply an honest step hoped for is
//! `ok`, a refusal the rules allow for is `expected` (counted by kind), anything else is
//! `unexpected`, a finding.

use sls_protocol::{Message, Verdict};

use crate::report::Outcome;

/// Judges the reply to an answer or an await.
pub fn judge(reply: &Message, typed_wrong: bool, wrong_answers_happen: bool) -> Outcome {
    match reply {
        Message::Judged {
            verdict: Verdict::Accepted { .. },
        } if !typed_wrong => Outcome::Ok,
        Message::Judged {
            verdict: Verdict::Accepted { .. },
        } => Outcome::Unexpected("wrong_answer_accepted"),
        Message::Judged {
            verdict: Verdict::Rejected { .. },
        } if typed_wrong => Outcome::Expected("rejected"),
        other => judge_unexpected_reply(other, wrong_answers_happen),
    }
}

/// Judges a reply a step did not hope for.
pub fn judge_unexpected_reply(reply: &Message, wrong_answers_happen: bool) -> Outcome {
    match reply {
        Message::Judged { verdict } => match verdict {
            Verdict::RateLimited { .. } => Outcome::Expected("rate_limited"),
            // Honest users are locked only if they mistype 10 times in a row.
            Verdict::Locked { .. } if wrong_answers_happen => Outcome::Expected("locked"),
            Verdict::Locked { .. } => Outcome::Unexpected("locked"),
            Verdict::Rejected { .. } => Outcome::Unexpected("rejected"),
            Verdict::Expired => Outcome::Expected("expired"),
            Verdict::Pending => Outcome::Unexpected("push_timeout"),
            Verdict::Replayed => Outcome::Unexpected("replayed"),
            Verdict::Unknown => Outcome::Unexpected("unknown"),
            Verdict::Malformed => Outcome::Unexpected("malformed"),
            Verdict::NeedsStrongerDevice { .. } => Outcome::Unexpected("needs_stronger_device"),
            Verdict::Declined => Outcome::Unexpected("declined"),
            Verdict::Accepted { .. } => Outcome::Unexpected("accepted_out_of_turn"),
        },
        Message::Error { status, .. } => {
            Outcome::Unexpected(status.describe().unwrap_or("error_frame"))
        }
        _ => Outcome::Unexpected("unexpected_message"),
    }
}

/// A typo: one digit or letter changed, the shape kept (so that it is a wrong answer, not a
/// malformed one).
pub fn mistype(answer: &str) -> String {
    let mut chars: Vec<char> = answer.chars().collect();
    if let Some(c) = chars.last_mut() {
        *c = match *c {
            '9' => '0',
            'Z' => 'A',
            d if d.is_ascii_digit() => ((d as u8) + 1) as char,
            l if l.is_ascii_uppercase() => ((l as u8) + 1) as char,
            other => other,
        };
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistyped_answer_keeps_its_shape() {
        assert_eq!(mistype("12345678"), "12345679");
        assert_eq!(mistype("12345679"), "12345670");
        assert_eq!(mistype("ABCDEFGZ"), "ABCDEFGA");
        assert_ne!(mistype("ABCD2345"), "ABCD2345");
    }
}
