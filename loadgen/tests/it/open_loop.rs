//! The raw path's open loop (`raw_open`, `run --raw --rate`): it sends at the rate asked, its
//! histogram holds one latency per reply, a connection without a free slot counts its requests
//! late, and a run ends by its drain deadline. Counts only: no latency value or speed asserted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use sls_client::ClientTls;
use sls_loadgen::raw::{Driver, Shape};
use sls_loadgen::raw_open::{self, Open};
use sls_protocol::{frame, Message, Role, Verdict, ALPN_FRONTEND};

use crate::pipelines::{serve, status, Mode};

/// Sends `Status` requests, counting them in `sent` (every request of the run, warm-up too).
struct Counting {
    sent: Arc<AtomicU64>,
    n: u64,
}

impl Driver for Counting {
    fn request(&mut self, _slot: usize, id: u32, out: &mut BytesMut) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.n += 1;
        frame::encode(id, &status(self.n), out).unwrap();
    }

    fn reply(&mut self, _slot: usize, reply: Message) -> Result<u64, &'static str> {
        match reply {
            Message::Judged {
                verdict: Verdict::Rejected { .. },
            } => Ok(1),
            _ => Err("not_judged"),
        }
    }
}

fn shape(in_flight: usize, warmup: Duration, duration: Duration) -> Shape {
    Shape {
        connections: 2,
        in_flight,
        threads: 2,
        warmup,
        duration,
        agent: "open-loop-test".into(),
    }
}

async fn run(mode: Mode, shape: Shape, open: Open) -> (sls_loadgen::raw::Stats, u64) {
    let (server, tls, _slsd) = serve(mode).await;
    let config = ClientTls::from_dir(&tls, Role::Frontend)
        .unwrap()
        .quinn_config(ALPN_FRONTEND)
        .unwrap();
    let addr = server.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let stats = tokio::task::spawn_blocking(move || {
        raw_open::run(
            sls_client::pipeline::Peer::new(addr, "localhost"),
            config,
            &shape,
            &open,
            move |_| Counting {
                sent: counter.clone(),
                n: 0,
            },
        )
    })
    .await
    .unwrap()
    .unwrap();
    (stats, sent.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_loop_sends_at_its_rate_and_records_one_latency_per_reply() {
    // 2,000 requests/s over 2 connections on 2 threads: 400 in the warm-up, 2,000 in the window.
    let (warmup, duration) = (Duration::from_millis(200), Duration::from_secs(1));
    let (stats, sent) = run(
        Mode::Reverse,
        shape(64, warmup, duration),
        Open::at(2_000.0),
    )
    .await;
    assert!(stats.unexpected.is_empty(), "{:?}", stats.unexpected);
    // The schedule: exactly rate × window (± one per connection for the rounding).
    assert!(
        (1_998..=2_002).contains(&stats.scheduled),
        "{}",
        stats.scheduled
    );
    // What went out: the warm-up's and the window's requests, and no more.
    assert!((1_900..=2_402).contains(&sent), "sent {sent}");
    // Replies to the window's requests, in a generous band; each has its latency recorded.
    assert!(
        (1_000..=2_002).contains(&stats.requests),
        "{}",
        stats.requests
    );
    assert_eq!(stats.latency_us.len(), stats.requests);
    assert!(stats.latency_us.min() >= 1);
    assert_eq!(stats.requests + stats.unanswered, stats.scheduled);
    assert_eq!(stats.units, stats.requests);
    assert!(stats.late <= stats.scheduled);
    // Every request of the window written was written at or after its due time.
    assert!(stats.send_lag_us.len() <= stats.scheduled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_free_slot_requests_are_late_and_the_run_ends_by_its_drain_deadline() {
    // The server never answers: 2 slots per connection are taken in the warm-up, every request
    // of the window waits for a slot that never frees, and the run stops at its drain deadline.
    let (warmup, duration) = (Duration::from_millis(200), Duration::from_millis(500));
    let open = Open {
        drain: Duration::from_millis(300),
        ..Open::at(1_000.0)
    };
    let t0 = std::time::Instant::now();
    let (stats, sent) = run(
        Mode::CloseAfter(usize::MAX),
        shape(2, warmup, duration),
        open,
    )
    .await;
    assert!(t0.elapsed() < Duration::from_secs(60), "the run is bounded");
    assert!(
        (498..=502).contains(&stats.scheduled),
        "{}",
        stats.scheduled
    );
    assert_eq!(sent, 4, "2 connections x 2 slots");
    assert_eq!(stats.requests, 0);
    assert_eq!(stats.latency_us.len(), 0);
    assert_eq!(stats.late, stats.scheduled);
    assert_eq!(stats.unanswered, stats.scheduled);
}

/// `run --raw --rate` against a real slsd: DSC+ requests (a `Begin` or an `Answer` each) at
/// the rate, every login accepted, the request latency and the counts in `summary.json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_dsc_plus_open_loop_reports_request_latency_in_summary_json() {
    let d = crate::slsd(&[]);
    let out = tempfile::tempdir().unwrap();
    let shape = Shape {
        agent: "raw-dsc-open-test".into(),
        ..shape(32, Duration::from_millis(200), Duration::from_secs(1))
    };
    let mix: sls_loadgen::fleet::Mix = "dsc_plus=1".parse().unwrap();
    let open = Open::at(2_000.0);
    let r = sls_loadgen::raw_dsc::run(
        &d.target(),
        300,
        mix,
        9,
        &shape,
        Some(&open),
        sls_loadgen::raw_dsc::Answers::Right,
        Some(out.path()),
    )
    .await
    .unwrap();
    let s = &r.summary.scenarios[0];
    assert_eq!(s.name, "dsc_plus_request");
    assert_eq!(r.unexpected, 0, "{:?}", s.unexpected);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let run = &json["run"];
    assert_eq!(run["model"], "raw open loop");
    let scheduled = run["scheduled"].as_u64().unwrap();
    assert!((1_998..=2_002).contains(&scheduled), "{scheduled}");
    // Every request of the window answered (none unexpected, none unanswered), each counted.
    assert_eq!(run["unanswered"].as_u64().unwrap(), 0);
    assert_eq!(s.count, scheduled);
    assert_eq!(run["client_requests"].as_u64().unwrap(), scheduled);
    // About one login per two requests.
    let logins = run["logins"].as_u64().unwrap();
    assert!(
        (scheduled / 2 - 50..=scheduled / 2 + 50).contains(&logins),
        "{logins}"
    );
    for p in ["p50", "p90", "p99", "p999"] {
        assert!(run["request_latency_us"][p].as_u64().unwrap() >= 1, "{p}");
    }
    assert!(run["late"].as_u64().unwrap() <= scheduled);
}
