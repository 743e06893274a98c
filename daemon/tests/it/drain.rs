//! Shutdown over real QUIC against the real slsd: the drain waits for the work in flight, not
//! for the grace period. A frontend's parked `Await` is answered when shutdown begins (no push
//! can be answered while the daemon drains), its stream is finished cleanly, and the process
//! exits well before the grace period.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sls_loadgen::harness::{begin, enrol};
use sls_protocol::*;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_await_is_answered_at_shutdown_and_the_drain_does_not_wait_out_the_grace() {
    let d = crate::slsd(&["--log", "warn", "--grace", "10s"]);
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let device = enrol(&admin, "gus", DeviceKind::DscPlus, &[3; 32], "1234")
        .await
        .unwrap();
    let (txn, _) = begin(&fe, "gus", device, IP).await.unwrap();
    // Nobody answers the challenge: the Await stays parked (up to a minute).
    let parked = {
        let fe = fe.pipe.clone();
        tokio::spawn(async move {
            fe.call(Message::Await {
                txn,
                timeout_ms: 60_000,
            })
            .await
        })
    };
    // Frames on a stream are handled in order: once the Ping is answered, the Await is parked.
    assert_eq!(fe.call(Message::Ping {}).await.unwrap(), Message::Pong {});
    assert!(!parked.is_finished());

    let (clean, took) = crate::stop_timed(d).await;
    let answered = tokio::time::timeout(Duration::from_secs(5), parked)
        .await
        .expect("the Await's call ended")
        .unwrap();
    assert_eq!(
        answered.expect("the Await was answered before the stream ended"),
        Message::Judged {
            verdict: Verdict::Pending
        }
    );
    assert!(clean, "slsd did not exit cleanly on SIGTERM");
    assert!(
        took < Duration::from_secs(3),
        "shutdown took {took:?}: the drain waited out the grace period (10 s)"
    );
}
