//! `slsd --endpoints N` (issue 13) over real QUIC against the real slsd: several endpoints on
//! one UDP port (`SO_REUSEPORT`), each on a thread of its own. Clients, each on a UDP socket of
//! its own, are spread over the endpoints by the kernel (a hash of addresses and ports); logins
//! succeed on every one of them; `sls_endpoint_connections_accepted_total{endpoint}` shows the
//! spread; SIGTERM drains and closes every endpoint; an out-of-range `endpoints` is refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use sls_loadgen::daemon::GENEROUS_LIMITS;
use sls_loadgen::harness::{begin, enrol, login_ocra, Client};
use sls_protocol::{ocra, DeviceId, DeviceKind, Message, Role, Verdict};

use crate::metrics::get;
use crate::within;

const KEY: [u8; 32] = *b"12345678901234567890123456789012";
const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
/// Clients opened at least, each from its own socket: the chance that 8 all hash to one of 2
/// endpoints is 2^-7, so the test goes on opening them until both have counted one.
const AT_LEAST: usize = 8;
/// ... at most this many (2^-63 that all of them land on one endpoint).
const AT_MOST: usize = 64;

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// `sls_endpoint_connections_accepted_total` by endpoint, from the metrics text.
async fn accepted(metrics: SocketAddr) -> Vec<(String, u64)> {
    let (status, _, text) = get(metrics, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter_map(|l| l.strip_prefix("sls_endpoint_connections_accepted_total{endpoint=\""))
        .map(|rest| {
            let (endpoint, value) = rest.split_once("\"} ").unwrap();
            (endpoint.to_owned(), value.trim().parse().unwrap())
        })
        .collect()
}

/// The daemon's `sls_awaits_parked` gauge.
async fn parked_awaits(metrics: SocketAddr) -> u64 {
    let (status, _, text) = get(metrics, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("sls_awaits_parked "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Enrols 4 DSC+ users: logins rotate over them.
async fn users(admin: &Client) -> Vec<(String, DeviceId)> {
    let mut users = Vec::new();
    for u in 0..4 {
        let user = format!("endpointsuser{u}");
        let dev = within(enrol(admin, &user, DeviceKind::DscPlus, &KEY, "1234")).await;
        users.push((user, dev));
    }
    users
}

/// A typed login on `fe` as the `i`th client; must be accepted.
async fn login(fe: &Client, users: &[(String, DeviceId)], i: usize) {
    let (user, dev) = &users[i % users.len()];
    let suite = ocra::DSC_PLUS_DEFAULT_SUITE;
    let v = within(login_ocra(fe, user, *dev, suite, &KEY, "1234", IP)).await;
    assert!(matches!(v, Verdict::Accepted { .. }), "client {i}: {v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_endpoints_share_the_clients_and_every_login_succeeds() {
    let metrics = free_port();
    let m = metrics.to_string();
    let flags = [&GENEROUS_LIMITS[..], &["--endpoints", "2", "--metrics", &m]].concat();
    let d = crate::slsd(&[&flags[..], &["--log", "warn"]].concat());
    let admin = d.connect(Role::Admin).await.unwrap();
    let users = users(&admin).await;
    let mut clients = Vec::new();
    let spread = loop {
        // Each client on a client endpoint (a UDP socket, a port) of its own.
        let fe = d.connect(Role::Frontend).await.unwrap();
        login(&fe, &users, clients.len()).await;
        clients.push(fe);
        let counts = accepted(metrics).await;
        assert_eq!(counts.len(), 2, "one series per endpoint: {counts:?}");
        // Every connection is counted once, on the endpoint that took it (the admin's too).
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        assert_eq!(total, clients.len() as u64 + 1, "{counts:?}");
        let both = counts.iter().all(|(_, n)| *n > 0);
        if (both && clients.len() >= AT_LEAST) || clients.len() == AT_MOST {
            break counts;
        }
    };
    assert!(
        spread.iter().all(|(_, n)| *n > 0),
        "{} client sockets all landed on one endpoint: {spread:?}",
        clients.len()
    );
    // Every connection, on whichever endpoint, still serves: a second login on each.
    for (i, fe) in clients.iter().enumerate() {
        login(fe, &users, i).await;
    }
    // The family passes the real parser, with its two series.
    let (_, _, text) = get(metrics, "/metrics").await;
    crate::metrics::check_exposition(&text);
    let (clean, _) = crate::stop_timed(d).await;
    assert!(clean, "slsd did not exit cleanly on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_endpoints_drain_and_close_every_connection_on_sigterm() {
    let metrics = free_port();
    let m = metrics.to_string();
    let flags = [&GENEROUS_LIMITS[..], &["--endpoints", "2", "--metrics", &m]].concat();
    let d = crate::slsd(&[&flags[..], &["--log", "warn", "--grace", "10s"]].concat());
    let admin = d.connect(Role::Admin).await.unwrap();
    let users = users(&admin).await;
    let mut clients = Vec::new();
    while clients.len() < AT_MOST {
        let fe = d.connect(Role::Frontend).await.unwrap();
        login(&fe, &users, clients.len()).await;
        clients.push(fe);
        if clients.len() >= AT_LEAST && accepted(metrics).await.iter().all(|(_, n)| *n > 0) {
            break;
        }
    }
    // On each client, a parked Await (nobody answers its challenge): the drain answers them,
    // on whichever endpoint's thread they are parked.
    let mut parked = Vec::new();
    for (i, fe) in clients.iter().enumerate() {
        let (user, dev) = &users[i % users.len()];
        let (txn, _) = within(begin(fe, user, *dev, IP)).await;
        let pipe = fe.pipe.clone();
        parked.push(tokio::spawn(async move {
            pipe.call(Message::Await {
                txn,
                timeout_ms: 60_000,
            })
            .await
        }));
        assert_eq!(within(fe.call(Message::Ping {})).await, Message::Pong {});
    }
    // Every Await parked before the SIGTERM. The Pong does not say so: the Await is sent by a
    // task of its own, which may write after the Ping (then the drain refused it, or the
    // stream ended before it was read: 1 run in 30–60 under load, both seen).
    let all = clients.len() as u64;
    tokio::time::timeout(Duration::from_secs(10), async {
        while parked_awaits(metrics).await < all {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every Await parked within 10 s");

    let (clean, _) = crate::stop_timed(d).await;
    assert!(clean, "slsd did not exit 0 on SIGTERM within 30 s");
    for (i, p) in parked.into_iter().enumerate() {
        let answered = tokio::time::timeout(Duration::from_secs(10), p)
            .await
            .expect("the Await's call ended")
            .unwrap();
        assert_eq!(
            answered.unwrap_or_else(|e| panic!("client {i}: no answer before the end: {e}")),
            Message::Judged {
                verdict: Verdict::Pending
            },
            "client {i}"
        );
    }
    // Every endpoint closed its connections (code 0), rather than leaving them to time out.
    for (i, fe) in clients.iter().enumerate() {
        let why = tokio::time::timeout(Duration::from_secs(10), fe.conn.closed())
            .await
            .unwrap_or_else(|_| panic!("client {i}: its connection is still open"));
        assert!(
            matches!(&why, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == quinn::VarInt::from_u32(0)),
            "client {i}: {why:?}"
        );
    }
}

/// slsd started with `args` that must refuse to start: its exit code and stderr.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_slsd"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn endpoints_out_of_range_are_refused_with_a_clear_message() {
    for n in [0, 300] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slsd.toml");
        std::fs::write(&file, format!("endpoints = {n}\n")).unwrap();
        let (code, err) = refused(&["--config", file.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{err}");
        assert_eq!(
            err.trim(),
            format!("slsd: endpoints: {n} is out of range: 1 to 256")
        );
    }
    let (code, err) = refused(&["--endpoints", "257"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("endpoints: 257 is out of range: 1 to 256"),
        "{err}"
    );
}

/// Moves `fe`'s client endpoint to a new UDP socket (a new port), as a NAT rebinding does.
fn rebind(fe: &Client) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    fe.endpoint.rebind(socket).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_endpoint_keeps_a_rebound_client_and_two_reset_it_when_it_lands_elsewhere() {
    // One endpoint, one socket without SO_REUSEPORT: a client whose port changes keeps its
    // connection (QUIC migration).
    let d = crate::slsd(&["--log", "warn"]);
    let fe = d.connect(Role::Frontend).await.unwrap();
    for _ in 0..4 {
        rebind(&fe);
        assert_eq!(within(fe.call(Message::Ping {})).await, Message::Pong {});
    }
    drop(fe);
    // Two endpoints: the new port lands on either; on the other one, which does not know the
    // connection, it is ended at once by a stateless reset the client recognises (every
    // endpoint has the same reset key), not left to its idle timeout.
    let d = crate::slsd(&["--log", "warn", "--endpoints", "2"]);
    let fe = d.connect(Role::Frontend).await.unwrap();
    let mut moves = 0;
    while moves < AT_MOST {
        rebind(&fe);
        moves += 1;
        let pong = tokio::time::timeout(Duration::from_secs(10), fe.call(Message::Ping {}))
            .await
            .expect("an answer or the end of the connection within 10 s");
        if pong.is_err() {
            break;
        }
    }
    let why = tokio::time::timeout(Duration::from_secs(10), fe.conn.closed())
        .await
        .unwrap_or_else(|_| panic!("still open after {moves} moves"));
    assert!(
        matches!(why, quinn::ConnectionError::Reset),
        "after {moves} moves: {why:?}"
    );
}
