//! Issue 11: an error text longer than `MAX_TEXT` whose 128th byte falls inside a multi-byte
//! character, over real QUIC against the real slsd. The daemon used to cut such a text with
//! `String::truncate(MAX_TEXT)` before looking for a char boundary: the stream's task panicked,
//! the request got no answer, the in-flight count leaked and shutdown waited the whole grace
//! period. Now: an `Error` answer that fits, the daemon keeps serving, and SIGTERM is prompt.

use std::time::Duration;

use sls_client::pipeline::Pipeline;
use sls_loadgen::harness::{enrol_device, enrol_user, stats};
use sls_protocol::limits::MAX_TEXT;
use sls_protocol::*;

use crate::{call, within};

/// Long enough that a daemon stuck in its drain is told apart from a prompt one, whatever the
/// machine's load: the test allows 3 s.
const GRACE: &str = "10s";

/// The suite of issue 11: 10 × U+200B, 8 × 'é', then ":a:b". Its first part is not "OCRA-1",
/// and the parser quotes it with `{:?}`, which spells U+200B as `\u{200b}` (8 bytes): the error
/// text passes 128 bytes with byte 128 inside an 'é'.
fn evil_suite() -> String {
    format!("{}{}:a:b", "\u{200b}".repeat(10), "é".repeat(8))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_text_cut_inside_a_char_is_answered_and_shutdown_stays_prompt() {
    let d = crate::slsd(&["--log", "warn", "--grace", GRACE]);
    let admin = d.connect(Role::Admin).await.unwrap();
    within(enrol_user(&admin, "zoe")).await;

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
    let (again, _) = Pipeline::open(&admin.conn, &"é".repeat(100)).await.unwrap();
    within(enrol_device(
        &again,
        "zoe",
        DeviceKind::DscPlus,
        &[7; 32],
        "1234",
    ))
    .await;
    let fresh = d.connect(Role::Admin).await.unwrap();
    assert!(!within(stats(&fresh)).await.is_empty());

    // SIGTERM with the connections still open: nothing is in flight, so the drain ends at
    // once instead of waiting out the grace period (10 s). Measured, with a wide margin.
    let (clean, took) = crate::stop_timed(d).await;
    assert!(clean, "slsd did not exit cleanly on SIGTERM");
    assert!(
        took < Duration::from_secs(3),
        "shutdown took {took:?}: the drain waited for work that was not there (grace {GRACE})"
    );
}
