//! The request-id slab of `Pipeline` and the raw batched path (issue 13), against a small QUIC
//! server of this test's own that answers each read's requests in reverse order, or closes its
//! stream with requests unanswered. The certificates are a real slsd's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sls_client::pipeline::{self as client, CallError, Pipeline};
use sls_client::ClientTls;
use sls_loadgen::raw::{self, Driver, Shape};
use sls_loadgen::raw_dsc::Answers;
use sls_protocol::{frame, Frame, Message, Role, Verdict, ALPN_FRONTEND, PROTOCOL_VERSION};

/// What the test server does with requests.
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    /// Answers `Status { user: "u<n>" }` with `Rejected { failures_left: n % 200 }`, each
    /// read's answers in reverse order.
    Reverse,
    /// Answers the `Hello`, then reads this many requests and closes its side unanswered.
    CloseAfter(usize),
}

fn tag(user: &str) -> u8 {
    (user[1..].parse::<u64>().unwrap() % 200) as u8
}

pub(crate) async fn serve(
    mode: Mode,
) -> (
    quinn::Endpoint,
    std::path::PathBuf,
    sls_loadgen::daemon::Daemon,
) {
    let slsd = crate::slsd(&[]);
    let tls = slsd.tls_dir();
    let certs = CertificateDer::pem_file_iter(tls.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(tls.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![ALPN_FRONTEND.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(config).unwrap();
    let server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let endpoint = quinn::Endpoint::server(server, SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let ep = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((send, recv)) = conn.accept_bi().await {
                    tokio::spawn(stream(send, recv, mode));
                }
            });
        }
    });
    (endpoint, tls, slsd)
}

async fn stream(mut send: quinn::SendStream, mut recv: quinn::RecvStream, mode: Mode) {
    let mut inbuf = BytesMut::new();
    let mut seen = 0;
    while let Ok(Some(chunk)) = recv.read_chunk(64 * 1024, true).await {
        inbuf.extend_from_slice(&chunk.bytes);
        let mut replies = Vec::new();
        while let Ok(Some(Frame { id, message })) = frame::decode(&mut inbuf) {
            let reply = match message {
                Message::Hello { .. } => Message::Welcome {
                    version: PROTOCOL_VERSION,
                    max_frame: 65536,
                    max_in_flight: 4096,
                    role: Role::Frontend,
                },
                Message::Status { user } => {
                    seen += 1;
                    Message::Judged {
                        verdict: Verdict::Rejected {
                            failures_left: tag(&user),
                        },
                    }
                }
                _ => continue,
            };
            if matches!(reply, Message::Welcome { .. }) || matches!(mode, Mode::Reverse) {
                replies.push((id, reply));
            }
        }
        let mut out = BytesMut::new();
        for (id, reply) in replies.iter().rev() {
            frame::encode(*id, reply, &mut out).unwrap();
        }
        if send.write_all(&out).await.is_err() {
            return;
        }
        if let Mode::CloseAfter(n) = mode {
            if seen >= n {
                let _ = send.finish();
                return;
            }
        }
    }
}

async fn pipeline(
    endpoint: &quinn::Endpoint,
    tls: &std::path::Path,
) -> (quinn::Endpoint, quinn::Connection, Pipeline) {
    let config = ClientTls::from_dir(tls, Role::Frontend)
        .unwrap()
        .quinn_config(ALPN_FRONTEND)
        .unwrap();
    let ep = client::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = client::connect(&ep, endpoint.local_addr().unwrap(), "localhost", config)
        .await
        .unwrap();
    let (pipe, _) = Pipeline::open(&conn, "pipelines-test").await.unwrap();
    (ep, conn, pipe)
}

pub(crate) fn status(n: u64) -> Message {
    Message::Status {
        user: format!("u{n}"),
    }
}

#[tokio::test]
async fn many_calls_in_flight_each_get_their_own_reply_out_of_order() {
    let (server, tls, _slsd) = serve(Mode::Reverse).await;
    let (_ep, _conn, pipe) = pipeline(&server, &tls).await;
    // Three rounds, so that slots are freed and reused (new generations) between them.
    for round in 0..3u64 {
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..2_000u64 {
            let (pipe, n) = (pipe.clone(), round * 10_000 + i * 7);
            calls.spawn(async move { (n, pipe.call(status(n)).await) });
        }
        let all = tokio::time::timeout(Duration::from_secs(60), async {
            let mut got = 0;
            while let Some(done) = calls.join_next().await {
                let (n, reply) = done.unwrap();
                match reply.unwrap() {
                    Message::Judged {
                        verdict: Verdict::Rejected { failures_left },
                    } => assert_eq!(
                        failures_left,
                        (n % 200) as u8,
                        "call {n} got another's reply"
                    ),
                    other => panic!("call {n}: {other:?}"),
                }
                got += 1;
            }
            got
        })
        .await
        .expect("the calls are answered");
        assert_eq!(all, 2_000);
    }
}

#[tokio::test]
async fn a_closed_stream_fails_every_waiting_call() {
    let (server, tls, _slsd) = serve(Mode::CloseAfter(300)).await;
    let (_ep, _conn, pipe) = pipeline(&server, &tls).await;
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..300u64 {
        let pipe = pipe.clone();
        calls.spawn(async move { pipe.call(status(n)).await });
    }
    let failed = tokio::time::timeout(Duration::from_secs(30), async {
        let mut failed = 0;
        while let Some(done) = calls.join_next().await {
            assert!(matches!(done.unwrap(), Err(CallError::Closed(_))));
            failed += 1;
        }
        failed
    })
    .await
    .expect("every call ends");
    assert_eq!(failed, 300);
}

/// Sends `Status { user: "u<n>" }` with a number of its own per request, and checks the reply
/// carries that number's tag.
struct Tagged {
    conn: u64,
    sent: Vec<u64>,
    count: u64,
}

impl Driver for Tagged {
    fn request(&mut self, slot: usize, id: u32, out: &mut BytesMut) {
        self.count += 1;
        let n = self.conn * 1_000_000_000 + self.count * 131 + slot as u64;
        self.sent[slot] = n;
        frame::encode(id, &status(n), out).unwrap();
    }

    fn reply(&mut self, slot: usize, reply: Message) -> Result<u64, &'static str> {
        match reply {
            Message::Judged {
                verdict: Verdict::Rejected { failures_left },
            } if failures_left == (self.sent[slot] % 200) as u8 => Ok(1),
            _ => Err("mismatch"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_path_matches_out_of_order_replies_to_their_slots() {
    let (server, tls, _slsd) = serve(Mode::Reverse).await;
    let config = ClientTls::from_dir(&tls, Role::Frontend)
        .unwrap()
        .quinn_config(ALPN_FRONTEND)
        .unwrap();
    let shape = Shape {
        connections: 3,
        in_flight: 64,
        threads: 2,
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(400),
        agent: "raw-test".into(),
    };
    let addr = server.local_addr().unwrap();
    let stats = tokio::task::spawn_blocking(move || {
        raw::run(
            sls_client::pipeline::Peer::new(addr, "localhost"),
            config,
            &shape,
            |c| Tagged {
                conn: c as u64,
                sent: vec![0; 64],
                count: 0,
            },
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert!(stats.unexpected.is_empty(), "{:?}", stats.unexpected);
    assert!(stats.requests > 0);
    assert_eq!(stats.units, stats.requests);
}

/// The raw DSC+ path against a real slsd: every login accepted, none unexpected, its CPU per
/// request in `summary.json`; and the scenario path's summary carries it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_dsc_plus_logins_are_accepted_and_both_paths_report_client_cpu() {
    let d = crate::slsd(&[]);
    let target = d.target();
    let out = tempfile::tempdir().unwrap();
    let shape = Shape {
        connections: 2,
        in_flight: 16,
        threads: 2,
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(800),
        agent: "raw-dsc-test".into(),
    };
    let mix: sls_loadgen::fleet::Mix = "dsc_plus=1".parse().unwrap();
    let r = sls_loadgen::raw_dsc::run(
        &target,
        300,
        mix.clone(),
        5,
        &shape,
        None,
        Answers::Right,
        Some(out.path()),
    )
    .await
    .unwrap();
    let s = &r.summary.scenarios[0];
    assert_eq!(r.unexpected, 0, "{:?}", s.unexpected);
    assert!(s.ok > 0);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    assert!(json["run"]["client_cpu_us_per_request"].as_f64().unwrap() > 0.0);
    // Two requests a login, less the logins begun before the window.
    assert!(json["run"]["client_requests"].as_u64().unwrap() >= s.ok);

    let spec = sls_loadgen::run::FleetSpec {
        users: 100,
        mix,
        seed: 6,
        connections: 1,
        max_apps: 0,
    };
    let plan = sls_loadgen::schedule::Plan {
        model: sls_loadgen::schedule::LoadModel::Closed { workers: 4 },
        mix: vec![(sls_loadgen::scenario::Scenario::DscPlus, 1)],
        duration: Duration::from_millis(800),
        warmup: Duration::from_millis(200),
        progress: false,
    };
    let r = sls_loadgen::run::run(&target, &spec, &plan, Default::default(), None)
        .await
        .unwrap();
    assert!(r.summary.run["client_requests"].as_u64().unwrap() > 0);
    assert!(r.summary.run["client_cpu_us_per_request"].as_f64().unwrap() > 0.0);
}

/// The raw failure storm against a real slsd: every answer judged `rejected` (a failure made
/// durable before its verdict) until its user is locked, none unexpected; and no user gives
/// more than the ten failures of R11, however fast the storm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_the_raw_failure_storm_is_rejected_until_each_user_is_locked_after_ten() {
    let d = crate::slsd(&[]);
    let shape = Shape {
        connections: 2,
        in_flight: 16,
        threads: 1,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(2),
        agent: "raw-storm-test".into(),
    };
    let users = 40;
    let r = sls_loadgen::raw_dsc::run(
        &d.target(),
        users,
        "dsc_plus=1".parse().unwrap(),
        12,
        &shape,
        None,
        Answers::Wrong,
        None,
    )
    .await
    .unwrap();
    let s = &r.summary.scenarios[0];
    assert_eq!(s.name, "failure_storm");
    assert_eq!(r.unexpected, 0, "{:?}", s.unexpected);
    assert!(s.ok > 0);
    assert!(
        s.ok <= users as u64 * 10,
        "{} failures from {users} users",
        s.ok
    );
}
