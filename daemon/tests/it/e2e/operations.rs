//! The daemon as it is operated: a lockout survives SIGKILL and a restart, and the metrics are
//! served in OpenMetrics text with no user data in them.

use sls_loadgen::harness::{answer, begin, begin_reply, enrol, login_ocra};
use sls_protocol::ocra;
use sls_protocol::*;

use super::{start, IP, KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_survives_sigkill_and_restart() {
    let mut d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let dev = enrol(&admin, "erin", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    for left in (1..=9).rev() {
        let (txn, _) = begin(&fe, "erin", dev, IP).await.unwrap();
        assert_eq!(
            answer(&fe, txn, "00000000", IP).await.unwrap(),
            Verdict::Rejected {
                failures_left: left
            }
        );
    }
    let (txn, _) = begin(&fe, "erin", dev, IP).await.unwrap();
    let Verdict::Locked { until_ms } = answer(&fe, txn, "00000000", IP).await.unwrap() else {
        panic!("10th failure locks")
    };
    d.crash(); // SIGKILL: no shutdown, no flush
    d.restart().unwrap(); // the same data directory and flags
    let fe2 = d.connect(Role::Frontend).await.unwrap();
    match begin_reply(&fe2, "erin", dev, IP).await.unwrap() {
        Message::Judged {
            verdict: Verdict::Locked { until_ms: u },
        } => assert_eq!(u, until_ms),
        other => panic!("the lock must survive a crash: {other:?}"),
    }
    // Enrolment survived too: the unlocked user logs in after an admin unlock.
    let admin2 = d.connect(Role::Admin).await.unwrap();
    assert_eq!(
        admin2
            .call(Message::Unlock {
                user: "erin".into()
            })
            .await
            .unwrap(),
        Message::Done {}
    );
    let suite = ocra::DSC_PLUS_DEFAULT_SUITE;
    assert!(matches!(
        login_ocra(&fe2, "erin", dev, suite, &KEY, "1234", IP)
            .await
            .unwrap(),
        Verdict::Accepted { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_in_openmetrics_text() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let metrics = port.to_string();
    let d = crate::slsd(&["--metrics", &metrics, "--log", "warn"]);
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let dev = enrol(&admin, "mira", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    let (txn, _) = begin(&fe, "mira", dev, IP).await.unwrap();
    assert!(matches!(
        answer(&fe, txn, "00000000", IP).await.unwrap(),
        Verdict::Rejected { .. }
    ));
    let (status, _, body) = crate::metrics::get(port, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("sls_requests_total{type=\"Answer\"} 1\n"),
        "{body}"
    );
    assert!(
        body.contains("sls_verdicts_total{verdict=\"rejected\"} 1\n"),
        "{body}"
    );
    assert!(body.contains("sls_failures_evaluated_total 1\n"), "{body}");
    assert!(
        body.contains(
            "sls_request_duration_seconds_count{type=\"Answer\",verdict=\"rejected\"} 1\n"
        ),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(!body.contains("mira"), "no user data in labels");
}
