//! The hot path's slots and the text they make.

use std::sync::Arc;
use std::time::Duration;

use sls_protocol::{
    DeviceId, DeviceKind, Grant, GrantKind, Message, SecurityLevel, Status, Verdict,
};

use super::expose::{registry, render, Readings};
use super::*;

fn every_verdict() -> Vec<Verdict> {
    vec![
        Verdict::Accepted {
            device: DeviceId(1),
            kind: DeviceKind::DscPlus,
            level: SecurityLevel::Top,
            limits: SecurityLevel::Top.limits(),
            grant: Grant {
                kind: GrantKind::Session,
                valid_secs: 0,
            },
        },
        Verdict::Rejected { failures_left: 1 },
        Verdict::Locked { until_ms: 1 },
        Verdict::RateLimited { retry_after_ms: 1 },
        Verdict::Expired,
        Verdict::Replayed,
        Verdict::Unknown,
        Verdict::Malformed,
        Verdict::NeedsStrongerDevice {
            required: SecurityLevel::Top,
        },
        Verdict::Pending,
        Verdict::Declined,
    ]
}

#[test]
fn every_verdict_and_request_type_has_its_own_slot() {
    let verdicts = every_verdict();
    assert_eq!(verdicts.len(), VERDICT_KINDS);
    for (i, v) in verdicts.iter().enumerate() {
        let reply = Message::Judged { verdict: *v };
        assert_eq!(verdict_slot(&reply), i);
        assert_eq!(VERDICTS[i], v.name(), "the label is the protocol's name");
    }
    let m = Metrics::default();
    assert!(m.types.len() < 255);
    assert!(m.types.contains(&"Answer") && !m.types.contains(&"Judged"));
    for (code, name) in request_types() {
        let slot = usize::from(m.type_of_code[usize::from(code)]);
        assert_eq!(m.types[slot - 1], name);
    }
}

#[test]
fn the_text_counts_what_the_hot_path_recorded() {
    let m = Arc::new(Metrics::default());
    let us = Duration::from_micros;
    for v in every_verdict() {
        m.request(0x0011, &Message::Judged { verdict: v }, us(1), us(5));
    }
    m.request(0x0014, &Message::Done {}, us(1), us(50));
    let error = Message::Error {
        status: Status::UNAVAILABLE,
        message: "x".into(),
    };
    m.request(0x0010, &error, us(1), us(50));
    m.request(0x8020, &Message::Done {}, us(1), us(50)); // not a request type: ignored
    m.frame_error(Status::FORBIDDEN);
    m.connection_opened(Role::Admin);
    let reg = registry(m.clone(), Readings::default);
    let text = render(&reg).unwrap();
    for name in &VERDICTS[..VERDICT_KINDS] {
        assert!(
            text.contains(&format!("sls_verdicts_total{{verdict=\"{name}\"}} 1\n")),
            "{name}: {text}"
        );
    }
    assert!(
        text.contains("sls_requests_total{type=\"Answer\"} 11\n"),
        "{text}"
    );
    assert!(
        text.contains("sls_requests_total{type=\"Status\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("sls_requests_total{type=\"Ping\"} 0\n"),
        "{text}"
    );
    assert!(text
        .contains("sls_request_duration_seconds_count{type=\"Answer\",verdict=\"accepted\"} 1\n"));
    let bucket = "sls_request_duration_seconds_bucket{le=\"0.000005\",type=\"Answer\",verdict=\"accepted\"} 1\n";
    assert!(text.contains(bucket), "{text}");
    assert!(
        text.contains("sls_request_queue_wait_seconds_count{type=\"Begin\",verdict=\"error\"} 1\n")
    );
    assert!(
        text.contains("sls_frame_errors_total{status=\"0x"),
        "{text}"
    );
    assert!(
        text.contains("sls_connections{role=\"admin\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE sls_build info\nsls_build_info{version=\""),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
    // Pairs that never happened are not written.
    assert!(!text.contains("type=\"Ping\",verdict"), "{text}");
}
