//! The audit trail's JSON-lines rendering: every entry is one line that a
//! standard JSON reader parses, with every field where PROTOCOL.md §4 "Audit" says.

use std::net::{IpAddr, Ipv4Addr};

use sls_protocol::*;

fn accepted() -> AuditEntry {
    AuditEntry {
        at_ms: 1_700_000_000_123,
        user: "alice".into(),
        event: 0x0011,
        device: Some(DeviceId(7)),
        txn: Some(TxnId(0xabc)),
        client: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
        purpose: Some(Purpose::Withdrawal {
            amount_usd: 2_000_000,
        }),
        verdict: Some(Verdict::Accepted {
            device: DeviceId(7),
            kind: DeviceKind::IbKey,
            level: SecurityLevel::IbKey,
            limits: Limits {
                per_day_usd: 1,
                per_5_business_days_usd: 2,
            },
            grant: Grant {
                kind: GrantKind::TradingPin,
                valid_secs: 43_200,
            },
        }),
        status: None,
        node: "node \"a\"\n\u{1}".into(),
    }
}

#[test]
fn audit_entries_render_as_json_lines_a_json_reader_parses() {
    let refused = AuditEntry {
        event: 0x005e,
        device: None,
        txn: None,
        client: None,
        purpose: None,
        verdict: None,
        status: Some(Status::UNKNOWN_USER),
        ..accepted()
    };
    let locked = AuditEntry {
        verdict: Some(Verdict::Locked { until_ms: 42 }),
        purpose: Some(Purpose::Login),
        ..accepted()
    };
    let lines: String = [accepted(), refused, locked]
        .iter()
        .map(|e| e.to_json() + "\n")
        .collect();
    let parsed: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(parsed.len(), 3);
    let a = &parsed[0];
    assert_eq!(a["at_ms"], 1_700_000_000_123u64);
    assert_eq!(a["user"], "alice");
    assert_eq!(a["event"], "Answer");
    assert_eq!(a["event_code"], 0x11);
    assert_eq!(a["device"], 7);
    assert_eq!(a["txn"], "00000000000000000000000000000abc");
    assert_eq!(a["client"], "192.0.2.7");
    assert_eq!(a["purpose"], "withdrawal");
    assert_eq!(a["amount_usd"], 2_000_000);
    assert_eq!(a["outcome"], "accepted");
    assert_eq!(a["grant"], "trading_pin");
    assert_eq!(a["grant_secs"], 43_200);
    assert_eq!(a["node"], "node \"a\"\n\u{1}");
    let r = &parsed[1];
    assert_eq!(r["event"], "Unlock");
    assert_eq!(r["outcome"], "refused");
    assert_eq!(r["status"], 0x0101);
    assert_eq!(r["status_text"], "unknown user");
    assert!(r["device"].is_null() && r["client"].is_null() && r["purpose"].is_null());
    assert_eq!(parsed[2]["outcome"], "locked");
    assert_eq!(parsed[2]["locked_until_ms"], 42);
    assert_eq!(parsed[2]["purpose"], "login");
}

#[test]
fn audit_entries_round_trip_and_refuse_trailing_bytes() {
    let e = accepted();
    let mut buf = bytes::BytesMut::new();
    e.encode(&mut buf).unwrap();
    assert_eq!(AuditEntry::decode(&buf).unwrap(), e);
    buf.extend_from_slice(&[0]);
    assert!(AuditEntry::decode(&buf).is_err());
}
