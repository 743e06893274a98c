//! The audit trail's JSON-lines export: [`AuditEntry::to_json`], one JSON
//! object on one line per entry, for a SIEM (PROTOCOL.md §4, "Audit").

use std::fmt::Write as _;

use crate::audit::AuditEntry;
use crate::message::Message;
use crate::types::{Purpose, Verdict};

impl AuditEntry {
    /// The entry as one JSON object on one line (no newline), the export's format (PROTOCOL.md
    /// §4, "Audit"). Absent values are `null`; `txn` is 32 hex digits; `status` is the code as
    /// a number and `status_text` its description.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(256);
        s.push('{');
        let _ = write!(s, "\"at_ms\":{}", self.at_ms);
        s.push_str(",\"user\":");
        json_str(&mut s, &self.user);
        s.push_str(",\"event\":");
        json_str(&mut s, Message::name_of(self.event).unwrap_or("unknown"));
        let _ = write!(s, ",\"event_code\":{}", self.event);
        s.push_str(",\"device\":");
        match self.device {
            Some(d) => {
                let _ = write!(s, "{}", d.0);
            }
            None => s.push_str("null"),
        }
        s.push_str(",\"txn\":");
        match self.txn {
            Some(t) => {
                let _ = write!(s, "\"{t}\"");
            }
            None => s.push_str("null"),
        }
        s.push_str(",\"client\":");
        match self.client {
            Some(a) => {
                let _ = write!(s, "\"{a}\"");
            }
            None => s.push_str("null"),
        }
        s.push_str(",\"purpose\":");
        match self.purpose {
            Some(Purpose::Login) => s.push_str("\"login\""),
            Some(Purpose::Withdrawal { amount_usd }) => {
                let _ = write!(s, "\"withdrawal\",\"amount_usd\":{amount_usd}");
            }
            None => s.push_str("null"),
        }
        s.push_str(",\"outcome\":");
        json_str(&mut s, self.outcome());
        match &self.verdict {
            Some(Verdict::Accepted {
                device,
                kind,
                grant,
                ..
            }) => {
                let _ = write!(
                    s,
                    ",\"answered_by\":{},\"kind\":\"{}\",\"grant\":\"{}\",\"grant_secs\":{}",
                    device.0,
                    kind.name(),
                    grant.kind.name(),
                    grant.valid_secs
                );
            }
            Some(Verdict::Rejected { failures_left }) => {
                let _ = write!(s, ",\"failures_left\":{failures_left}");
            }
            Some(Verdict::Locked { until_ms }) => {
                let _ = write!(s, ",\"locked_until_ms\":{until_ms}");
            }
            _ => {}
        }
        if let Some(st) = self.status {
            let _ = write!(s, ",\"status\":{}", st.0);
            s.push_str(",\"status_text\":");
            json_str(&mut s, st.describe().unwrap_or("unknown"));
        }
        s.push_str(",\"node\":");
        json_str(&mut s, &self.node);
        s.push('}');
        s
    }
}

/// `text` as a JSON string (RFC 8259: quote, backslash and control characters escaped).
fn json_str(s: &mut String, text: &str) {
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
}
