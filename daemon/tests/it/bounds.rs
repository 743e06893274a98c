//! Connections and streams bounded (issue 16, item 4), over real QUIC against the real slsd:
//! `--max-connections` counts live connections and closes the rest with BUSY; the per-address
//! caps on connections and on IB Key app connections that have proven no key; an app that
//! proves nothing within `--prove-timeout` is closed even while its QUIC stack PINGs; a frame
//! left partial is reset after `--frame-timeout` and what it held is freed; a frame too large
//! for an unproven connection loses framing at once; stateless retry under load.
//!
//! Clients bind other loopback addresses (127.0.0.2, …) to be other sources. Each wait is
//! bounded; none measures speed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use sls_client::pipeline::{self as client, Pipeline};
use sls_client::ClientTls;
use sls_loadgen::daemon::Daemon;
use sls_loadgen::harness::{enrol, stats};
use sls_protocol::*;

use crate::{call, within};

/// A client endpoint bound to `127.0.0.<last>`.
fn endpoint(last: u8) -> quinn::Endpoint {
    client::endpoint(SocketAddr::from(([127, 0, 0, last], 0))).unwrap()
}

/// The client configuration of `role` (the device ALPN without a certificate for
/// [`Role::Device`]), PINGing every 100 ms.
fn config(d: &Daemon, role: Role) -> quinn::ClientConfig {
    let tls = ClientTls::from_dir(&d.tls_dir(), role).unwrap();
    let alpn = if role == Role::Device {
        ALPN_DEVICE
    } else {
        ALPN_FRONTEND
    };
    let mut cfg = tls.quinn_config(alpn).unwrap();
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_millis(100)));
    cfg.transport_config(Arc::new(transport));
    cfg
}

/// A connection from `ep` with `role`, handshake done (the daemon may close it right after).
async fn connect(d: &Daemon, ep: &quinn::Endpoint, role: Role) -> quinn::Connection {
    within(
        ep.connect_with(config(d, role), d.addr, "localhost")
            .unwrap(),
    )
    .await
}

/// A connection with one pipeline that the daemon serves (Hello answered).
async fn served(d: &Daemon, ep: &quinn::Endpoint, role: Role) -> (quinn::Connection, Pipeline) {
    let conn = connect(d, ep, role).await;
    let (pipe, _) = within(Pipeline::open(&conn, "bounds")).await;
    assert_eq!(call(&pipe, Message::Ping {}).await, Message::Pong {});
    (conn, pipe)
}

/// The application code the daemon closes a connection from `ep` with (within 10 s).
async fn refused(d: &Daemon, ep: &quinn::Endpoint, role: Role) -> CloseCode {
    let connecting = ep
        .connect_with(config(d, role), d.addr, "localhost")
        .unwrap();
    let why = tokio::time::timeout(Duration::from_secs(10), async {
        match connecting.await {
            Ok(conn) => conn.closed().await,
            Err(e) => e,
        }
    })
    .await
    .expect("the daemon closed the connection within 10 s");
    close_code(why)
}

fn close_code(e: quinn::ConnectionError) -> CloseCode {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => {
            CloseCode(u32::try_from(c.error_code.into_inner()).unwrap())
        }
        other => panic!("closed by {other:?}, not an application code"),
    }
}

/// The daemon's counter `name` (an admin's `GetStats`).
async fn counter(admin: &Pipeline, name: &str) -> u64 {
    let all = within(stats(admin)).await;
    *all.get(name).unwrap_or_else(|| panic!("no counter {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_counts_live_connections_and_closes_the_rest_with_busy() {
    let d = crate::slsd(&["--log", "warn", "--max-connections", "3"]);
    let ep = endpoint(1);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(served(&d, &ep, Role::Frontend).await);
    }
    for _ in 0..4 {
        assert_eq!(refused(&d, &ep, Role::Frontend).await, CloseCode::BUSY);
    }
    // The three admitted are still served.
    for (_, pipe) in &held {
        assert_eq!(call(pipe, Message::Ping {}).await, Message::Pong {});
    }
    // A place freed is a place taken.
    let (conn, _) = held.pop().unwrap();
    conn.close(0u32.into(), b"");
    drop(conn);
    within(async {
        loop {
            let connecting = ep.connect_with(config(&d, Role::Admin), d.addr, "localhost");
            if let Ok(c) = connecting.unwrap().await {
                if let Ok((admin, _)) = Pipeline::open(&c, "bounds").await {
                    let n = counter(&admin, "refused_busy").await;
                    assert!(n >= 4, "{n}");
                    return Ok::<_, ()>(());
                }
            }
            // The freed place is given back when the daemon sees the close.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_connections() {
    let d = crate::slsd(&["--log", "warn", "--max-connections-per-address", "2"]);
    let (a, b) = (endpoint(1), endpoint(2));
    let _a1 = served(&d, &a, Role::Frontend).await;
    let _a2 = served(&d, &a, Role::Frontend).await;
    assert_eq!(
        refused(&d, &a, Role::Frontend).await,
        CloseCode::ADDRESS_BUSY
    );
    // Another address is not held back by the first one's.
    let _b1 = served(&d, &b, Role::Frontend).await;
    let _b2 = served(&d, &b, Role::Device).await;
    assert_eq!(refused(&d, &b, Role::Device).await, CloseCode::ADDRESS_BUSY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unproven_device_connections_are_capped_per_address_and_in_all() {
    let d = crate::slsd(&[
        "--log",
        "warn",
        "--max-unproven",
        "3",
        "--max-unproven-per-address",
        "2",
    ]);
    let (a, b) = (endpoint(1), endpoint(2));
    let _a1 = served(&d, &a, Role::Device).await;
    let _a2 = served(&d, &a, Role::Device).await;
    assert_eq!(
        refused(&d, &a, Role::Device).await,
        CloseCode::UNPROVEN_BUSY
    );
    // A frontend from the same address is not an unproven app.
    let _af = served(&d, &a, Role::Frontend).await;
    let _b1 = served(&d, &b, Role::Device).await;
    // Three unproven in all: the daemon's cap, whatever the address.
    assert_eq!(
        refused(&d, &b, Role::Device).await,
        CloseCode::UNPROVEN_BUSY
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_proves_no_key_is_closed_at_the_deadline_even_while_it_pings() {
    let d = crate::slsd(&["--log", "warn", "--prove-timeout", "600ms"]);
    let admin = d.connect(Role::Admin).await.unwrap();
    let key = [7u8; 32];
    let device = within(enrol(&admin, "ivy", DeviceKind::IbKey, &key, "1234")).await;
    let ep = endpoint(1);
    // The idler: QUIC PINGs every 100 ms, and a Ping frame now and then, never a proof.
    let (idle, idle_pipe) = served(&d, &ep, Role::Device).await;
    // The honest app proves its key at once and stays.
    let (app, app_pipe) = served(&d, &ep, Role::Device).await;
    within(client::prove_device(&app_pipe, device, &key)).await;
    let pinging = tokio::spawn(async move {
        while idle_pipe.call(Message::Ping {}).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let why = tokio::time::timeout(Duration::from_secs(10), idle.closed())
        .await
        .expect("the unproven app was closed within 10 s");
    assert_eq!(close_code(why), CloseCode::PROOF_TIMEOUT);
    let _ = tokio::time::timeout(Duration::from_secs(5), pinging).await;
    assert!(app.close_reason().is_none(), "{:?}", app.close_reason());
    assert_eq!(call(&app_pipe, Message::Ping {}).await, Message::Pong {});
    assert!(counter(&admin, "proof_timeouts").await >= 1);
    assert_eq!(counter(&admin, "connections_unproven").await, 0);
}

/// Writes `Hello` on a new stream of `conn` and reads the `Welcome`.
async fn hello(conn: &quinn::Connection) -> (quinn::SendStream, quinn::RecvStream, BytesMut) {
    let (mut send, mut recv) = within(conn.open_bi()).await;
    let hello = Message::Hello {
        min_version: PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        agent: "bounds".into(),
    };
    within(send.write_all(&frame::to_bytes(1, &hello).unwrap())).await;
    let mut buf = BytesMut::new();
    match next_frame(&mut recv, &mut buf).await {
        Ok(Some(Frame {
            message: Message::Welcome { .. },
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    (send, recv, buf)
}

/// The next frame on `recv` (within 10 s); `None` when the stream finished.
async fn next_frame(
    recv: &mut quinn::RecvStream,
    buf: &mut BytesMut,
) -> Result<Option<Frame>, quinn::ReadError> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(f) = frame::decode(buf).unwrap() {
                return Ok(Some(f));
            }
            match recv.read_chunk(65_536, true).await? {
                Some(chunk) => buf.extend_from_slice(&chunk.bytes),
                None => return Ok(None),
            }
        }
    })
    .await
    .expect("a frame or the stream's end within 10 s")
}

/// The header of a frame of `len` bytes after the length field, and `body` bytes of it.
fn partial_frame(len: u32, body: usize) -> Vec<u8> {
    let mut v = len.to_be_bytes().to_vec();
    v.extend_from_slice(&0x0001u16.to_be_bytes()); // Ping
    v.extend_from_slice(&9u32.to_be_bytes());
    v.resize(v.len() + body, 0);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_frame_is_reset_at_the_deadline_and_what_it_held_is_freed() {
    let d = crate::slsd(&["--log", "warn", "--frame-timeout", "3s"]);
    let admin = d.connect(Role::Admin).await.unwrap();
    let ep = endpoint(1);
    let conn = connect(&d, &ep, Role::Frontend).await;
    let (mut send, mut recv, mut buf) = hello(&conn).await;
    within(send.write_all(&partial_frame(65_530, 40_000))).await;
    // The daemon holds it while it waits for the rest…
    let held = within(async {
        loop {
            let n = counter(&admin, "partial_frame_bytes").await;
            if n > 0 {
                return Ok::<_, ()>(n);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(held <= 65_536, "{held}");
    // …then resets the stream both ways with FRAME_TIMEOUT, and holds nothing.
    let code = quinn::VarInt::from_u32(CloseCode::FRAME_TIMEOUT.0);
    match next_frame(&mut recv, &mut buf).await {
        Err(quinn::ReadError::Reset(c)) => assert_eq!(c, code),
        other => panic!("{other:?}"),
    }
    assert_eq!(within(send.stopped()).await, Some(code));
    assert_eq!(counter(&admin, "partial_frame_bytes").await, 0);
    assert_eq!(counter(&admin, "frame_timeouts").await, 1);
    // The connection is still served on a new stream.
    let (pipe, _) = within(Pipeline::open(&conn, "bounds")).await;
    assert_eq!(call(&pipe, Message::Ping {}).await, Message::Pong {});
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unproven_app_cannot_begin_a_large_frame() {
    let d = crate::slsd(&["--log", "warn"]);
    let admin = d.connect(Role::Admin).await.unwrap();
    let ep = endpoint(1);
    let conn = connect(&d, &ep, Role::Device).await;
    let (mut send, mut recv, mut buf) = hello(&conn).await;
    within(send.write_all(&partial_frame(65_530, 2_000))).await;
    match next_frame(&mut recv, &mut buf).await {
        Ok(Some(Frame {
            id: 0,
            message: Message::Error { status, .. },
        })) => assert_eq!(status, Status::FRAME_TOO_LARGE),
        other => panic!("{other:?}"),
    }
    let code = quinn::VarInt::from_u32(CloseCode::FRAMING_LOST.0);
    assert_eq!(within(send.stopped()).await, Some(code));
    assert_eq!(counter(&admin, "partial_frame_bytes").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_retry_always_on_clients_still_connect_and_are_served() {
    let d = crate::slsd(&["--log", "warn", "--retry-above", "0"]);
    let ep = endpoint(1);
    for role in [Role::Frontend, Role::Device, Role::Frontend] {
        served(&d, &ep, role).await;
    }
    let (_conn, admin) = served(&d, &ep, Role::Admin).await;
    assert!(counter(&admin, "retries").await >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_past_its_handshake_rate_is_refused_and_another_is_not() {
    let d = crate::slsd(&["--log", "warn", "--handshakes-per-address", "1"]);
    let (a, b) = (endpoint(1), endpoint(2));
    // A burst of two, then one a second; as many again once a retry has validated the
    // address (a bucket of its own), then refused.
    let _a1 = served(&d, &a, Role::Frontend).await;
    let _a2 = served(&d, &a, Role::Frontend).await;
    let mut refused = 0;
    for _ in 0..6 {
        let connecting = a.connect_with(config(&d, Role::Frontend), d.addr, "localhost");
        match tokio::time::timeout(Duration::from_secs(10), connecting.unwrap()).await {
            Ok(Err(quinn::ConnectionError::ConnectionClosed(c)))
                if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
            {
                refused += 1;
            }
            Ok(Err(quinn::ConnectionError::ConnectionClosed(c))) => panic!("{c:?}"),
            other => assert!(matches!(other, Ok(Ok(_))), "{other:?}"),
        }
    }
    assert!(refused >= 3, "{refused} of 6 refused");
    let _b1 = served(&d, &b, Role::Frontend).await;
    let (_c, admin) = served(&d, &b, Role::Admin).await;
    assert!(counter(&admin, "refused_handshake_rate").await >= 3);
    // Each refused attempt was first sent a retry (it proved its address, then was refused).
    assert!(counter(&admin, "retries").await >= 3);
}
