//! What the daemon refuses at its gates: calls outside a connection's role, connections without
//! a role certificate or with another CA's, malformed frames (while others are served), and
//! 0-RTT early data.

use std::time::Duration;

use sls_client::pipeline::{self as client, Pipeline};
use sls_client::ClientTls;
use sls_loadgen::harness::{enrol, login_ocra};
use sls_protocol::ocra;
use sls_protocol::*;

use super::{start, IP, KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_hold() {
    let d = start();
    let fe = d.connect(Role::Frontend).await.unwrap();
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
    let app = d.connect(Role::Device).await.unwrap();
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
    let refused = match client::connect(&ep, d.addr, "localhost", anon).await {
        Err(_) => true,
        Ok(conn) => Pipeline::open(&conn, "anon").await.is_err(),
    };
    assert!(refused, "sls/1 without a role certificate must be refused");
    // A certificate from another CA: the handshake fails.
    let foreign = sls_pki::Ca::create().unwrap();
    let issued = foreign.issue_client(Role::Admin, "intruder").unwrap();
    let cfg = ClientTls {
        ca_pem: ca,
        identity: Some((
            issued.cert_pem.into_bytes(),
            issued.key_pem.as_bytes().to_vec(),
        )),
    }
    .quinn_config(ALPN_FRONTEND)
    .unwrap();
    let refused = match client::connect(&ep, d.addr, "localhost", cfg).await {
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
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let honest = d.connect(Role::Frontend).await.unwrap();
    let dev = enrol(&admin, "fay", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    let (_ep, conn) = super::raw_frontend(&d).await;

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
    let suite = ocra::DSC_PLUS_DEFAULT_SUITE;
    assert!(matches!(
        login_ocra(&honest, "fay", dev, suite, &KEY, "1234", IP)
            .await
            .unwrap(),
        Verdict::Accepted { .. }
    ));
    // And the abused connection still works for a well-formed stream.
    let (p, _) = Pipeline::open(&conn, "after").await.unwrap();
    assert_eq!(p.call(Message::Ping {}).await.unwrap(), Message::Pong {});
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_rtt_is_refused() {
    let d = start();
    let ep = client::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let tls = ClientTls::from_dir(&d.tls_dir(), Role::Frontend).unwrap();
    let cfg = tls.quinn_config_trying_0rtt(ALPN_FRONTEND).unwrap();
    // A first connection gets whatever session ticket the server offers.
    let c1 = client::connect(&ep, d.addr, "localhost", cfg.clone())
        .await
        .unwrap();
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
