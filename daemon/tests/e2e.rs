//! The real `slsd` binary on loopback, spoken to over real QUIC: every device kind logs in,
//! replays are refused, a lockout survives SIGKILL and restart, roles hold, bad frames get
//! errors while others are served, no 0-RTT, no secret in the logs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use sls_loadgen::client::{self, ClientTls, Pipeline};
use sls_loadgen::daemon::Daemon;
use sls_protocol::card::{self, CardLayout};
use sls_protocol::ocra::{self, OcraInput, OcraSuite};
use sls_protocol::*;

const KEY: [u8; 32] = *b"12345678901234567890123456789012";
const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));

fn start(dir: &Path) -> Daemon {
    Daemon::start(
        Path::new(env!("CARGO_BIN_EXE_slsd")),
        dir,
        &[
            "--rate-per-user",
            "1000",
            "--rate-per-client",
            "1000",
            "--log",
            "debug",
        ],
    )
    .unwrap()
}

async fn pipe(
    d: &Daemon,
    role: Role,
) -> (quinn::Endpoint, quinn::Connection, Pipeline, client::Pushes) {
    let ep = client::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let tls = ClientTls::from_dir(&d.tls_dir(), role).unwrap();
    let alpn = if role == Role::Device {
        ALPN_DEVICE
    } else {
        ALPN_FRONTEND
    };
    let conn = client::connect(&ep, d.addr, tls.quinn_config(alpn).unwrap())
        .await
        .unwrap();
    let (p, pushes) = Pipeline::open(&conn, "e2e").await.unwrap();
    assert_eq!(p.role(), role);
    (ep, conn, p, pushes)
}

fn ocra_answer(suite: &str, q: &str, pin: &str) -> String {
    let s: OcraSuite = suite.parse().unwrap();
    let ph = ocra::pin_hash(s.pin.unwrap(), pin.as_bytes());
    s.compute(
        &KEY,
        &OcraInput {
            question: q,
            pin_hash: Some(ph.as_bytes()),
            ..OcraInput::default()
        },
    )
    .unwrap()
    .to_string()
}

async fn enrol(admin: &Pipeline, user: &str, kind: DeviceKind, pin: &str) -> DeviceId {
    let _ = admin
        .call(Message::EnrolUser {
            user: user.into(),
            entity: String::new(),
            identification: String::new(),
            primary: true,
            equity_usd: 0,
        })
        .await
        .unwrap();
    match admin
        .call(Message::EnrolDevice {
            user: user.into(),
            kind,
            secret: KEY.to_vec(),
            pin: pin.into(),
            suite: String::new(),
        })
        .await
        .unwrap()
    {
        Message::Enrolled { device } => device,
        other => panic!("{other:?}"),
    }
}

async fn begin(fe: &Pipeline, user: &str, device: DeviceId) -> (TxnId, Challenge) {
    match fe
        .call(Message::Begin {
            user: user.into(),
            purpose: Purpose::Login,
            device: Some(device),
            client: IP,
        })
        .await
        .unwrap()
    {
        Message::ChallengeIssued { txn, challenge, .. } => (txn, challenge),
        other => panic!("{other:?}"),
    }
}

async fn answer(fe: &Pipeline, txn: TxnId, response: &str) -> Verdict {
    match fe
        .call(Message::Answer {
            txn,
            response: response.into(),
            client: IP,
        })
        .await
        .unwrap()
    {
        Message::Judged { verdict } => verdict,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_kind_logs_in_and_replays_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path());
    let (_e1, _c1, admin, _) = pipe(&d, Role::Admin).await;
    let (_e2, _c2, fe, _) = pipe(&d, Role::Frontend).await;

    // DSC+ (R5), then the same answer again (R12).
    let dsc = enrol(&admin, "alice", DeviceKind::DscPlus, "1234").await;
    let (txn, Challenge::Numeric(q)) = begin(&fe, "alice", dsc).await else {
        panic!()
    };
    let a = ocra_answer(ocra::DSC_PLUS_DEFAULT_SUITE, &q, "1234");
    assert!(matches!(
        answer(&fe, txn, &a).await,
        Verdict::Accepted {
            kind: DeviceKind::DscPlus,
            ..
        }
    ));
    assert_eq!(answer(&fe, txn, &a).await, Verdict::Replayed);

    // SCC (R9).
    let scc = enrol(&admin, "bob", DeviceKind::Scc, "").await;
    let (txn, Challenge::Positions(p)) = begin(&fe, "bob", scc).await else {
        panic!()
    };
    assert!(matches!(
        answer(
            &fe,
            txn,
            &card::answer(&KEY, &CardLayout::default(), &p).unwrap()
        )
        .await,
        Verdict::Accepted {
            kind: DeviceKind::Scc,
            ..
        }
    ));

    // Temporary code (R13).
    let Message::TempCodeIssued {
        device: tmp, code, ..
    } = admin
        .call(Message::IssueTempCode { user: "bob".into() })
        .await
        .unwrap()
    else {
        panic!()
    };
    let (txn, Challenge::Code) = begin(&fe, "bob", tmp).await else {
        panic!()
    };
    assert!(matches!(
        answer(&fe, txn, &code).await,
        Verdict::Accepted {
            grant: Grant {
                kind: GrantKind::Temporary,
                ..
            },
            ..
        }
    ));

    // IB Key fallback (R6): no app connected, so a typed challenge.
    let ib = enrol(&admin, "carol", DeviceKind::IbKey, "a1b2").await;
    let (txn, Challenge::Numeric(q)) = begin(&fe, "carol", ib).await else {
        panic!()
    };
    assert!(matches!(
        answer(
            &fe,
            txn,
            &ocra_answer(ocra::IB_KEY_DEFAULT_SUITE, &q, "a1b2")
        )
        .await,
        Verdict::Accepted {
            kind: DeviceKind::IbKey,
            ..
        }
    ));

    // IB Key push (R6): the app connects, proves its key, receives the push, the user types
    // the number from the screen; the frontend's await returns the verdict.
    let (_e3, _c3, app, mut pushes) = pipe(&d, Role::Device).await;
    let Message::DeviceNonce { nonce } =
        app.call(Message::DeviceHello { device: ib }).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(
        app.call(Message::DeviceProve {
            proof: push::device_proof(&KEY, ib, &nonce)
        })
        .await
        .unwrap(),
        Message::Done {}
    );
    let (txn, Challenge::Push { number }) = begin(&fe, "carol", ib).await else {
        panic!("push expected with the app connected")
    };
    let waiter = {
        let fe = fe.clone();
        tokio::spawn(async move {
            fe.call(Message::Await {
                txn,
                timeout_ms: 10_000,
            })
            .await
            .unwrap()
        })
    };
    let Some(Message::Push {
        txn: pushed,
        user,
        nonce,
        ..
    }) = tokio::time::timeout(Duration::from_secs(5), pushes.recv())
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((pushed, user.as_str()), (txn, "carol"));
    let mac = push::push_mac(
        &KEY,
        txn,
        "carol",
        number,
        &nonce,
        ApprovalMethod::Biometric,
        true,
    );
    let v = app
        .call(Message::PushAnswer {
            txn,
            approve: true,
            method: ApprovalMethod::Biometric,
            number,
            mac,
        })
        .await
        .unwrap();
    assert!(matches!(
        v,
        Message::Judged {
            verdict: Verdict::Accepted { .. }
        }
    ));
    match waiter.await.unwrap() {
        Message::Judged {
            verdict: Verdict::Accepted { grant, .. },
        } => assert_eq!(grant.kind, GrantKind::TradingBiometric),
        other => panic!("{other:?}"),
    }
    // Another device's app cannot approve this user's push.
    let other = enrol(&admin, "dave", DeviceKind::IbKey, "z9z9").await;
    let (_e4, _c4, app2, _) = pipe(&d, Role::Device).await;
    let Message::DeviceNonce { nonce: n2 } = app2
        .call(Message::DeviceHello { device: other })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        app2.call(Message::DeviceProve {
            proof: push::device_proof(&KEY, other, &n2)
        })
        .await
        .unwrap(),
        Message::Done {}
    );
    let (txn, Challenge::Push { number }) = begin(&fe, "carol", ib).await else {
        panic!()
    };
    let Some(Message::Push { nonce, .. }) = pushes.recv().await else {
        panic!()
    };
    let mac = push::push_mac(
        &KEY,
        txn,
        "carol",
        number,
        &nonce,
        ApprovalMethod::Pin,
        true,
    );
    assert_eq!(
        app2.call(Message::PushAnswer {
            txn,
            approve: true,
            method: ApprovalMethod::Pin,
            number,
            mac
        })
        .await
        .unwrap(),
        Message::Judged {
            verdict: Verdict::Unknown
        }
    );
    // A wrong proof is refused.
    let (_e5, _c5, app3, _) = pipe(&d, Role::Device).await;
    let Message::DeviceNonce { .. } = app3
        .call(Message::DeviceHello { device: ib })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(matches!(
        app3.call(Message::DeviceProve { proof: [0; 32] })
            .await
            .unwrap(),
        Message::Error {
            status: Status::BAD_PROOF,
            ..
        }
    ));
    assert!(
        d.stop(Duration::from_secs(10)),
        "graceful shutdown on SIGTERM"
    );

    // No secret, PIN or answer in the daemon's debug log.
    let log = std::fs::read_to_string(&d.log).unwrap();
    for secret in [
        hex::encode(KEY),
        String::from_utf8_lossy(&KEY).into_owned(),
        a.clone(),
        code.clone(),
        "a1b2".into(),
    ] {
        assert!(
            !log.contains(&secret),
            "the log contains a secret: {secret}"
        );
    }
    assert!(log.contains("connection"), "the debug log was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_survives_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path());
    let (_e, _c, admin, _) = pipe(&d, Role::Admin).await;
    let (_e2, _c2, fe, _) = pipe(&d, Role::Frontend).await;
    let dev = enrol(&admin, "erin", DeviceKind::DscPlus, "1234").await;
    for left in (1..=9).rev() {
        let (txn, _) = begin(&fe, "erin", dev).await;
        assert_eq!(
            answer(&fe, txn, "00000000").await,
            Verdict::Rejected {
                failures_left: left
            }
        );
    }
    let (txn, _) = begin(&fe, "erin", dev).await;
    let Verdict::Locked { until_ms } = answer(&fe, txn, "00000000").await else {
        panic!("10th failure locks")
    };
    d.crash(); // SIGKILL: no shutdown, no flush
    let d2 = start(dir.path());
    let (_e3, _c3, fe2, _) = pipe(&d2, Role::Frontend).await;
    match fe2
        .call(Message::Begin {
            user: "erin".into(),
            purpose: Purpose::Login,
            device: Some(dev),
            client: IP,
        })
        .await
        .unwrap()
    {
        Message::Judged {
            verdict: Verdict::Locked { until_ms: u },
        } => assert_eq!(u, until_ms),
        other => panic!("the lock must survive a crash: {other:?}"),
    }
    // Enrolment survived too: the unlocked user logs in after an admin unlock.
    let (_e4, _c4, admin2, _) = pipe(&d2, Role::Admin).await;
    assert_eq!(
        admin2
            .call(Message::Unlock {
                user: "erin".into()
            })
            .await
            .unwrap(),
        Message::Done {}
    );
    let (txn, Challenge::Numeric(q)) = begin(&fe2, "erin", dev).await else {
        panic!()
    };
    assert!(matches!(
        answer(
            &fe2,
            txn,
            &ocra_answer(ocra::DSC_PLUS_DEFAULT_SUITE, &q, "1234")
        )
        .await,
        Verdict::Accepted { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_hold() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let (_e, _c, fe, _) = pipe(&d, Role::Frontend).await;
    // A frontend certificate cannot reach admin calls.
    for msg in [
        Message::Unlock { user: "x".into() },
        Message::GetStats {},
        Message::EnrolUser {
            user: "x".into(),
            entity: String::new(),
            identification: String::new(),
            primary: true,
            equity_usd: 0,
        },
    ] {
        assert!(matches!(
            fe.call(msg).await.unwrap(),
            Message::Error {
                status: Status::FORBIDDEN,
                ..
            }
        ));
    }
    // Nor device calls; and a daemon-only message is unexpected.
    assert!(matches!(
        fe.call(Message::DeviceHello {
            device: DeviceId(1)
        })
        .await
        .unwrap(),
        Message::Error {
            status: Status::FORBIDDEN,
            ..
        }
    ));
    assert!(matches!(
        fe.call(Message::Pong {}).await.unwrap(),
        Message::Error {
            status: Status::UNEXPECTED,
            ..
        }
    ));
    // R10 on the wire.
    assert!(matches!(
        fe.call(Message::Status {
            user: "Alice".into()
        })
        .await
        .unwrap(),
        Message::Error {
            status: Status::BAD_CHARACTER,
            ..
        }
    ));
    // An IB Key app cannot make frontend calls.
    let (_e2, _c2, app, _) = pipe(&d, Role::Device).await;
    assert!(matches!(
        app.call(Message::Status {
            user: "alice".into()
        })
        .await
        .unwrap(),
        Message::Error {
            status: Status::FORBIDDEN,
            ..
        }
    ));

    // No client certificate on sls/1: refused right after the handshake.
    let ep = client::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let ca = std::fs::read(d.tls_dir().join("ca.pem")).unwrap();
    let anon = ClientTls {
        ca_pem: ca.clone(),
        identity: None,
    }
    .quinn_config(ALPN_FRONTEND)
    .unwrap();
    let refused = match client::connect(&ep, d.addr, anon).await {
        Err(_) => true,
        Ok(conn) => Pipeline::open(&conn, "anon").await.is_err(),
    };
    assert!(refused, "sls/1 without a role certificate must be refused");
    // A certificate from another CA: the handshake fails.
    let other = tempfile::tempdir().unwrap();
    let foreign = sls_daemon::service::tls::Pki::load_or_create(other.path()).unwrap();
    let (cert, key) = foreign.issue_client_cert(Role::Admin, "intruder").unwrap();
    let cfg = ClientTls {
        ca_pem: ca,
        identity: Some((cert.into_bytes(), key.into_bytes())),
    }
    .quinn_config(ALPN_FRONTEND)
    .unwrap();
    let refused = match client::connect(&ep, d.addr, cfg).await {
        Err(_) => true,
        Ok(conn) => Pipeline::open(&conn, "intruder").await.is_err(),
    };
    assert!(refused, "a certificate from another CA must be refused");
    // Not a plaintext protocol: a UDP datagram that is not QUIC gets no answer.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(b"\x00\x00\x00\x0a\x00\x14\x00\x00\x00\x01alice", d.addr)
        .await
        .unwrap();
    let mut buf = [0u8; 1500];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), udp.recv_from(&mut buf))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_errors_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let (_e, _c, admin, _) = pipe(&d, Role::Admin).await;
    let (_e2, _c2, honest, _) = pipe(&d, Role::Frontend).await;
    let dev = enrol(&admin, "fay", DeviceKind::DscPlus, "1234").await;
    let ep = client::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let tls = ClientTls::from_dir(&d.tls_dir(), Role::Frontend).unwrap();
    let conn = client::connect(&ep, d.addr, tls.quinn_config(ALPN_FRONTEND).unwrap())
        .await
        .unwrap();

    async fn raw(conn: &quinn::Connection, bytes: &[u8]) -> Vec<Frame> {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let mut hello = frame::to_bytes(
            1,
            &Message::Hello {
                min_version: 1,
                max_version: 1,
                agent: "raw".into(),
            },
        )
        .unwrap()
        .to_vec();
        hello.extend_from_slice(bytes);
        send.write_all(&hello).await.unwrap();
        send.finish().unwrap();
        let all = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 20))
            .await
            .unwrap()
            .unwrap_or_default();
        let mut buf = bytes::BytesMut::from(&all[..]);
        let mut out = Vec::new();
        while let Ok(Some(f)) = frame::decode(&mut buf) {
            out.push(f);
        }
        out
    }
    fn status_of(frames: &[Frame], id: u32) -> Option<Status> {
        frames.iter().find_map(|f| match (&f.message, f.id == id) {
            (Message::Error { status, .. }, true) => Some(*status),
            _ => None,
        })
    }
    let frame_with = |ty: u16, id: u32, body: &[u8]| {
        let mut v = ((6 + body.len()) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&ty.to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(body);
        v
    };
    let cases: Vec<(&str, Vec<u8>, Status)> = vec![
        (
            "unknown type",
            frame_with(0x7777, 2, b""),
            Status::UNKNOWN_TYPE,
        ),
        (
            "truncated body",
            frame_with(0x0014, 3, b"\x05ali"),
            Status::MALFORMED_FRAME,
        ),
        (
            "trailing bytes",
            frame_with(0x0002, 4, b"\x00"),
            Status::MALFORMED_FRAME,
        ),
        (
            "user over 32 bytes",
            frame_with(0x0014, 5, &[&[33u8][..], &[b'a'; 33]].concat()),
            Status::MALFORMED_FRAME,
        ),
        (
            "invalid utf-8",
            frame_with(0x0014, 6, b"\x02\xc3\x28"),
            Status::INVALID_UTF8,
        ),
        (
            "upper-case user",
            frame_with(0x0014, 7, b"\x05Alice"),
            Status::BAD_CHARACTER,
        ),
        (
            "a space in a user",
            frame_with(0x0014, 8, b"\x05al ce"),
            Status::BAD_CHARACTER,
        ),
        (
            "admin call",
            frame_with(0x005e, 9, b"\x03fay"),
            Status::FORBIDDEN,
        ),
        (
            "bad enum byte",
            frame_with(0x0010, 10, b"\x03fay\x07\x00\x04\x7f\x00\x00\x01"),
            Status::MALFORMED_FRAME,
        ),
    ];
    for (name, bytes, want) in &cases {
        let frames = raw(&conn, bytes).await;
        let id = u32::from_be_bytes(bytes[6..10].try_into().unwrap());
        assert_eq!(status_of(&frames, id), Some(*want), "{name}: {frames:?}");
    }
    // A wrong version, and a length over the limit: the stream is closed with an error.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(
        &frame::to_bytes(
            1,
            &Message::Hello {
                min_version: 9,
                max_version: 9,
                agent: "future".into(),
            },
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(4096))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        frame::decode_exact(&got).unwrap().message,
        Message::Error {
            status: Status::VERSION,
            message: "no common protocol version".into()
        }
    );
    let frames = raw(&conn, &[0x7f, 0xff, 0xff, 0xff, 0, 1]).await;
    assert_eq!(status_of(&frames, 0), Some(Status::FRAME_TOO_LARGE));
    // Meanwhile the honest frontend is served, with no error.
    let (txn, Challenge::Numeric(q)) = begin(&honest, "fay", dev).await else {
        panic!()
    };
    assert!(matches!(
        answer(
            &honest,
            txn,
            &ocra_answer(ocra::DSC_PLUS_DEFAULT_SUITE, &q, "1234")
        )
        .await,
        Verdict::Accepted { .. }
    ));
    // And the abused connection still works for a well-formed stream.
    let (p, _) = Pipeline::open(&conn, "after").await.unwrap();
    assert_eq!(p.call(Message::Ping {}).await.unwrap(), Message::Pong {});
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_rtt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let ep = client::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let tls = ClientTls::from_dir(&d.tls_dir(), Role::Frontend).unwrap();
    let cfg = tls.quinn_config_trying_0rtt(ALPN_FRONTEND).unwrap();
    // A first connection gets whatever session ticket the server offers.
    let c1 = client::connect(&ep, d.addr, cfg.clone()).await.unwrap();
    let (p, _) = Pipeline::open(&c1, "first").await.unwrap();
    assert_eq!(p.call(Message::Ping {}).await.unwrap(), Message::Pong {});
    c1.close(0u32.into(), b"");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The second tries 0-RTT: the client may send early data only if the server allowed it in
    // its ticket; the daemon never does, so 0-RTT is unavailable or rejected.
    let connecting = ep.connect_with(cfg, d.addr, "localhost").unwrap();
    match connecting.into_0rtt() {
        Err(connecting) => {
            connecting.await.unwrap();
        }
        Ok((conn, accepted)) => {
            assert!(!accepted.await, "the daemon accepted 0-RTT");
            drop(conn);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r8_one_ib_key_app_holds_several_users() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let (_e1, _c1, admin, _) = pipe(&d, Role::Admin).await;
    let (_e2, _c2, fe, _) = pipe(&d, Role::Frontend).await;
    let rae = enrol(&admin, "rae", DeviceKind::IbKey, "1234").await;
    let sid = enrol(&admin, "sid", DeviceKind::IbKey, "5678").await;
    let (_e3, _c3, app, mut pushes) = pipe(&d, Role::Device).await;
    for dev in [rae, sid] {
        let Message::DeviceNonce { nonce } = app
            .call(Message::DeviceHello { device: dev })
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            app.call(Message::DeviceProve {
                proof: push::device_proof(&KEY, dev, &nonce)
            })
            .await
            .unwrap(),
            Message::Done {}
        );
    }
    for (user, dev) in [("rae", rae), ("sid", sid)] {
        let (txn, Challenge::Push { number }) = begin(&fe, user, dev).await else {
            panic!("{user}: push expected")
        };
        let Some(Message::Push {
            txn: pushed,
            user: pushed_user,
            nonce,
            ..
        }) = tokio::time::timeout(Duration::from_secs(5), pushes.recv())
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!((pushed, pushed_user.as_str()), (txn, user));
        let mac = push::push_mac(&KEY, txn, user, number, &nonce, ApprovalMethod::Pin, true);
        let v = app
            .call(Message::PushAnswer {
                txn,
                approve: true,
                method: ApprovalMethod::Pin,
                number,
                mac,
            })
            .await
            .unwrap();
        assert!(
            matches!(v, Message::Judged { verdict: Verdict::Accepted { device, .. } } if device == dev),
            "{user}: {v:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_in_prometheus_text() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let d = Daemon::start(
        Path::new(env!("CARGO_BIN_EXE_slsd")),
        dir.path(),
        &["--metrics", &metrics, "--log", "warn"],
    )
    .unwrap();
    let (_e, _c, admin, _) = pipe(&d, Role::Admin).await;
    let (_e2, _c2, fe, _) = pipe(&d, Role::Frontend).await;
    let dev = enrol(&admin, "mira", DeviceKind::DscPlus, "1234").await;
    let (txn, _) = begin(&fe, "mira", dev).await;
    assert!(matches!(
        answer(&fe, txn, "00000000").await,
        Verdict::Rejected { .. }
    ));
    let mut body = String::new();
    for _ in 0..50 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(&metrics).await {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            s.read_to_string(&mut body).await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("sls_requests_total{type=\"Answer\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("sls_verdicts_total{verdict=\"rejected\"} 1"),
        "{body}"
    );
    assert!(body.contains("sls_failures_evaluated 1"), "{body}");
    assert!(
        body.contains("sls_request_duration_seconds_count"),
        "{body}"
    );
    assert!(!body.contains("mira"), "no user data in labels");
}
