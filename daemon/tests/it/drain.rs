//! Shutdown over real QUIC against the real slsd: the drain waits for the work in flight, not
//! for the grace period. A frontend's parked `Await` is answered when shutdown begins (no push
//! can be answered while the daemon drains), its stream is finished cleanly, and the process
//! exits well before the grace period.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use sls_loadgen::client::{self, ClientTls, Pipeline};
use sls_loadgen::daemon::Daemon;
use sls_protocol::*;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));

async fn pipe(d: &Daemon, role: Role) -> (quinn::Endpoint, quinn::Connection, Pipeline) {
    let ep = client::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let tls = ClientTls::from_dir(&d.tls_dir(), role).unwrap();
    let conn = client::connect(&ep, d.addr, tls.quinn_config(ALPN_FRONTEND).unwrap())
        .await
        .unwrap();
    let (p, _) = Pipeline::open(&conn, "drain").await.unwrap();
    (ep, conn, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_await_is_answered_at_shutdown_and_the_drain_does_not_wait_out_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        Path::new(env!("CARGO_BIN_EXE_slsd")),
        dir.path(),
        &["--log", "warn", "--grace", "10s"],
    )
    .unwrap();
    let (_e1, _c1, admin) = pipe(&d, Role::Admin).await;
    let (_e2, _c2, fe) = pipe(&d, Role::Frontend).await;
    let enrol_user = Message::EnrolUser {
        user: "gus".into(),
        entity: String::new(),
        identification: String::new(),
        primary: true,
        equity_usd: 0,
    };
    assert_eq!(admin.call(enrol_user).await.unwrap(), Message::Done {});
    let device = match admin
        .call(Message::EnrolDevice {
            user: "gus".into(),
            kind: DeviceKind::DscPlus,
            secret: vec![3; 32],
            pin: "1234".into(),
            suite: String::new(),
        })
        .await
        .unwrap()
    {
        Message::Enrolled { device } => device,
        other => panic!("{other:?}"),
    };
    let txn = match fe
        .call(Message::Begin {
            user: "gus".into(),
            purpose: Purpose::Login,
            device: Some(device),
            client: IP,
        })
        .await
        .unwrap()
    {
        Message::ChallengeIssued { txn, .. } => txn,
        other => panic!("{other:?}"),
    };
    // Nobody answers the challenge: the Await stays parked (up to a minute).
    let parked = {
        let fe = fe.clone();
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

    let mut d = d;
    let (clean, took) = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        let clean = d.stop(Duration::from_secs(30));
        (clean, t0.elapsed())
    })
    .await
    .unwrap();
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
