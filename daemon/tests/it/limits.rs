//! The limits of issue 15 (item 5), over real QUIC against the real slsd: the daemon-wide rate
//! limit (`--rate-global`) across users and addresses; failed `DeviceProve`s throttled per source
//! address (`--proof-failures-per-address`); an activation voided by its fifth wrong token;
//! open challenges capped per frontend connection (`--max-open-per-connection`).
//!
//! Every loop is bounded; no test measures speed (a bound that depends on time is computed from
//! the time the test measured, never assumed).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sls_client::pipeline::{self as client, prove_device, Pipeline};
use sls_client::ClientTls;
use sls_loadgen::daemon::Daemon;
use sls_loadgen::harness::{begin_reply, enrol, enrol_user};
use sls_protocol::*;

use crate::{call, within};

const KEY: [u8; 32] = [7; 32];

fn ip(last: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, last])
}

/// An IB Key app connection (the device ALPN, no certificate) from `127.0.0.<last>`, its
/// endpoint kept alive beside it.
async fn app_from(d: &Daemon, last: u8) -> (quinn::Endpoint, quinn::Connection, Pipeline) {
    let ep = client::endpoint(SocketAddr::from(([127, 0, 0, last], 0))).unwrap();
    let tls = ClientTls::from_dir(&d.tls_dir(), Role::Device).unwrap();
    let mut cfg = tls.quinn_config(ALPN_DEVICE).unwrap();
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_millis(100)));
    cfg.transport_config(Arc::new(transport));
    let conn = within(ep.connect_with(cfg, d.addr, "localhost").unwrap()).await;
    let (pipe, _) = within(Pipeline::open(&conn, "limits")).await;
    (ep, conn, pipe)
}

fn error_status(m: &Message) -> Option<Status> {
    match m {
        Message::Error { status, .. } => Some(*status),
        _ => None,
    }
}

/// `n` `Begin`s without a device, each for another name from another client address: how many
/// were answered (not rate-limited), and how long they took.
async fn begins(fe: &Pipeline, n: u8) -> (u32, Duration) {
    let t0 = Instant::now();
    let mut answered = 0;
    for i in 0..n {
        let reply = call(
            fe,
            Message::Begin {
                user: format!("global{i}"),
                purpose: Purpose::Login,
                device: None,
                client: ip(i),
            },
        )
        .await;
        match reply {
            Message::Devices { .. } => answered += 1,
            Message::Judged {
                verdict: Verdict::RateLimited { retry_after_ms },
            } => assert!(retry_after_ms >= 1),
            other => panic!("{other:?}"),
        }
    }
    (answered, t0.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_limit_holds_across_users_and_addresses_and_is_off_by_default() {
    // Off by default: 40 requests of 40 names from 40 addresses are all answered.
    let d = crate::slsd(&["--log", "warn"]);
    let fe = d.connect(Role::Frontend).await.unwrap();
    assert_eq!(begins(&fe, 40).await.0, 40);
    drop((fe, d));
    // At 2 a second (burst 2), the daemon answers at most 2 plus 2 a second of the time taken,
    // whoever asks and for whom; the others get `judged rate_limited`.
    let d = crate::slsd(&["--log", "warn", "--rate-global", "2"]);
    let fe = d.connect(Role::Frontend).await.unwrap();
    let (answered, took) = begins(&fe, 40).await;
    let most = 2.0 + 2.0 * took.as_secs_f64().ceil();
    assert!(answered >= 1, "the bucket starts full");
    assert!(
        f64::from(answered) <= most,
        "{answered} answered in {took:?}: at most {most}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_proofs_are_throttled_per_address_and_another_address_still_proves() {
    // One failure a second, burst 5.
    let d = crate::slsd(&["--log", "warn", "--proof-failures-per-address", "1"]);
    let admin = d.connect(Role::Admin).await.unwrap();
    let dev = within(enrol(&admin, "pat", DeviceKind::IbKey, &KEY, "1234")).await;
    let (_ep, _conn, app) = app_from(&d, 2).await;
    let mut bad_proofs = 0;
    let mut throttled = false;
    for _ in 0..40 {
        let Message::DeviceNonce { .. } = call(&app, Message::DeviceHello { device: dev }).await
        else {
            panic!("no nonce")
        };
        let reply = call(&app, Message::DeviceProve { proof: [0; 32] }).await;
        match error_status(&reply) {
            Some(Status::BAD_PROOF) => bad_proofs += 1,
            Some(Status::RATE_LIMITED) => {
                throttled = true;
                break;
            }
            _ => panic!("{reply:?}"),
        }
    }
    assert!(throttled, "{bad_proofs} wrong proofs and never throttled");
    assert!(bad_proofs >= 5, "the burst is 5: {bad_proofs}");
    // Past it, even a right proof from that address is refused unchecked.
    let Message::DeviceNonce { nonce } = call(&app, Message::DeviceHello { device: dev }).await
    else {
        panic!("no nonce")
    };
    let proof = push::device_proof(&KEY, dev, &nonce);
    let reply = call(&app, Message::DeviceProve { proof }).await;
    assert_eq!(
        error_status(&reply),
        Some(Status::RATE_LIMITED),
        "{reply:?}"
    );
    // Another address proves at once.
    let other = d.connect(Role::Device).await.unwrap();
    within(prove_device(&other, dev, &KEY)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fifth_wrong_activation_token_voids_the_activation() {
    let d = crate::slsd(&["--log", "warn"]);
    let admin = d.connect(Role::Admin).await.unwrap();
    within(enrol_user(&admin, "quinn")).await;
    let start = || Message::ActivationStart {
        user: "quinn".into(),
        phone: "41791234567".into(),
    };
    let activate = |token: &str| Message::ActivateIbKey {
        user: "quinn".into(),
        token: token.into(),
        key: KEY.to_vec(),
        pin: "1234".into(),
    };
    let Message::ActivationToken { token } = call(&admin, start()).await else {
        panic!("no token")
    };
    for _ in 0..5 {
        let reply = call(&admin, activate("00000000")).await;
        assert_eq!(error_status(&reply), Some(Status::BAD_TOKEN), "{reply:?}");
    }
    let reply = call(&admin, activate(&token)).await;
    assert_eq!(
        error_status(&reply),
        Some(Status::BAD_TOKEN),
        "void after the fifth wrong token: {reply:?}"
    );
    let Message::ActivationToken { token } = call(&admin, start()).await else {
        panic!("no token")
    };
    let reply = call(&admin, activate(&token)).await;
    assert!(matches!(reply, Message::Enrolled { .. }), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_at_its_cap_gets_capacity_and_another_still_begins() {
    let d = crate::slsd(&[
        "--log",
        "warn",
        "--max-open-txns",
        "16",
        "--max-open-per-connection",
        "4",
    ]);
    let admin = d.connect(Role::Admin).await.unwrap();
    let dev = within(enrol(&admin, "rosa", DeviceKind::IbKey, &KEY, "1234")).await;
    let greedy = d.connect(Role::Frontend).await.unwrap();
    let other = d.connect(Role::Frontend).await.unwrap();
    let issued = |m: &Message| match m {
        Message::ChallengeIssued { txn, .. } => Some(*txn),
        _ => None,
    };
    let mut txns = Vec::new();
    for _ in 0..4 {
        let reply = within(begin_reply(&greedy, "rosa", dev, ip(1))).await;
        txns.push(issued(&reply).unwrap_or_else(|| panic!("{reply:?}")));
    }
    for _ in 0..3 {
        let reply = within(begin_reply(&greedy, "rosa", dev, ip(1))).await;
        assert_eq!(error_status(&reply), Some(Status::CAPACITY), "{reply:?}");
    }
    // A `Begin` without a device issues nothing: not capped.
    let reply = call(
        &greedy,
        Message::Begin {
            user: "rosa".into(),
            purpose: Purpose::Login,
            device: None,
            client: ip(1),
        },
    )
    .await;
    assert!(matches!(reply, Message::Devices { .. }), "{reply:?}");
    // Another connection still begins.
    let reply = within(begin_reply(&other, "rosa", dev, ip(2))).await;
    assert!(issued(&reply).is_some(), "{reply:?}");
    // One of the greedy connection's challenges answered (on the other connection): its place
    // is free again.
    let reply = call(
        &other,
        Message::Answer {
            txn: txns[0],
            response: "00000000".into(),
            client: ip(2),
        },
    )
    .await;
    assert!(
        matches!(
            reply,
            Message::Judged {
                verdict: Verdict::Rejected { .. } | Verdict::Malformed
            }
        ),
        "{reply:?}"
    );
    let reply = within(begin_reply(&greedy, "rosa", dev, ip(1))).await;
    assert!(issued(&reply).is_some(), "{reply:?}");
}
