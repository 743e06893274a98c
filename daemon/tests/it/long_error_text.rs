//! Issue 11: an error text longer than `MAX_TEXT` whose 128th byte falls inside a multi-byte
//! character, over real QUIC against the real slsd. The daemon used to cut such a text with
//! `String::truncate(MAX_TEXT)` before looking for a char boundary: the stream's task panicked,
//! the request got no answer, the in-flight count leaked and shutdown waited the whole grace
//! period. Now: an `Error` answer that fits, the daemon keeps serving, and SIGTERM is prompt.

use std::path::Path;
use std::time::{Duration, Instant};

use sls_loadgen::client::{self, ClientTls, Pipeline};
use sls_loadgen::daemon::Daemon;
use sls_protocol::limits::MAX_TEXT;
use sls_protocol::*;

/// Long enough that a daemon stuck in its drain is told apart from a prompt one, whatever the
/// machine's load: the test allows 3 s.
const GRACE: &str = "10s";

async fn connect(d: &Daemon) -> (quinn::Endpoint, quinn::Connection) {
    let ep = client::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let tls = ClientTls::from_dir(&d.tls_dir(), Role::Admin).unwrap();
    let conn = client::connect(&ep, d.addr, tls.quinn_config(ALPN_FRONTEND).unwrap())
        .await
        .unwrap();
    (ep, conn)
}

/// A call that must be answered within 10 s (the daemon answers in milliseconds).
async fn call(p: &Pipeline, m: Message) -> Message {
    match tokio::time::timeout(Duration::from_secs(10), p.call(m)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => panic!("no answer: {e}"),
        Err(_) => panic!("no answer within 10 s"),
    }
}

/// The suite of issue 11: 10 × U+200B, 8 × 'é', then ":a:b". Its first part is not "OCRA-1",
/// and the parser quotes it with `{:?}`, which spells U+200B as `\u{200b}` (8 bytes): the error
/// text passes 128 bytes with byte 128 inside an 'é'.
fn evil_suite() -> String {
    format!("{}{}:a:b", "\u{200b}".repeat(10), "é".repeat(8))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_text_cut_inside_a_char_is_answered_and_shutdown_stays_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        Path::new(env!("CARGO_BIN_EXE_slsd")),
        dir.path(),
        &["--log", "warn", "--grace", GRACE],
    )
    .unwrap();
    let (_ep, conn) = connect(&d).await;
    let (admin, _) = Pipeline::open(&conn, "long-error-text").await.unwrap();
    assert_eq!(
        call(
            &admin,
            Message::EnrolUser {
                user: "zoe".into(),
                entity: String::new(),
                identification: String::new(),
                primary: true,
                equity_usd: 0,
            },
        )
        .await,
        Message::Done {}
    );

    let suite = evil_suite();
    assert!(
        suite.len() <= limits::MAX_SUITE,
        "the request itself is well-formed"
    );
    match call(
        &admin,
        Message::EnrolDevice {
            user: "zoe".into(),
            kind: DeviceKind::DscPlus,
            secret: vec![7; 32],
            pin: "1234".into(),
            suite,
        },
    )
    .await
    {
        Message::Error { status, message } => {
            assert_eq!(status, Status::INVALID_CREDENTIAL, "{message}");
            // The frame decoder only yields valid UTF-8; its length is the wire limit's.
            assert!(message.len() <= MAX_TEXT, "{} bytes", message.len());
            assert!(std::str::from_utf8(message.as_bytes()).is_ok());
            assert!(message.contains("OCRA"), "{message}");
            // It was clipped (the full text is longer), at the last char boundary before 128.
            assert_eq!(message.len(), MAX_TEXT - 1, "{message}");
        }
        other => panic!("expected Error INVALID_CREDENTIAL, got {other:?}"),
    }

    // The same stream goes on, then a new stream on the same connection, then a new connection.
    assert_eq!(call(&admin, Message::Ping {}).await, Message::Pong {});
    // (The client's Hello agent has the same byte limit: 100 × 'é' is clipped, not refused.)
    let (again, _) = Pipeline::open(&conn, &"é".repeat(100)).await.unwrap();
    let enrolled = call(
        &again,
        Message::EnrolDevice {
            user: "zoe".into(),
            kind: DeviceKind::DscPlus,
            secret: vec![7; 32],
            pin: "1234".into(),
            suite: String::new(),
        },
    )
    .await;
    assert!(matches!(enrolled, Message::Enrolled { .. }), "{enrolled:?}");
    let (_ep2, conn2) = connect(&d).await;
    let (fresh, _) = Pipeline::open(&conn2, "new-connection").await.unwrap();
    match call(&fresh, Message::GetStats {}).await {
        Message::Stats { counters } => assert!(!counters.is_empty()),
        other => panic!("{other:?}"),
    }

    // SIGTERM with the connections still open: nothing is in flight, so the drain ends at
    // once instead of waiting out the grace period (10 s). Measured, with a wide margin.
    let mut d = d;
    let (clean, took) = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        let clean = d.stop(Duration::from_secs(30));
        (clean, t0.elapsed())
    })
    .await
    .unwrap();
    assert!(clean, "slsd did not exit cleanly on SIGTERM");
    assert!(
        took < Duration::from_secs(3),
        "shutdown took {took:?}: the drain waited for work that was not there (grace {GRACE})"
    );
}
