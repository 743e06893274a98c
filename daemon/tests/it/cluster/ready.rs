//! Readiness that tells the truth with a Redis store: a node cut off from every Redis server
//! (each SIGSTOPped, by the pid the cluster script recorded) answers `/readyz` 503 within 5 s,
//! naming the shard, and `sls_store_ready 0`; ready again within 5 s of the thaw, and serving.

use std::time::{Duration, Instant};

use sls_loadgen::harness::enrol_bulk;
use sls_protocol::*;

use super::{ip, key, records};
use crate::metrics::{free_port, get};

/// The promise, both ways.
const WITHIN: Duration = Duration::from_secs(5);

/// `/readyz` until its status is `want`, every 100 ms: the body and how long it took, or
/// `None` after `WITHIN` and a little more (to say by how much it missed).
async fn until(metrics: std::net::SocketAddr, want: u16) -> Option<(Duration, String)> {
    let t0 = Instant::now();
    while t0.elapsed() < WITHIN + Duration::from_secs(5) {
        let (status, _, body) = get(metrics, "/readyz").await;
        if status == want {
            return Some((t0.elapsed(), body));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn store_ready(metrics: std::net::SocketAddr) -> String {
    let (_, _, body) = get(metrics, "/metrics").await;
    body.lines()
        .find(|l| l.starts_with("sls_store_ready "))
        .unwrap_or("no sls_store_ready")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_redis_is_unready_within_5s_and_ready_within_5s_of_recovery() {
    let _one = super::one_at_a_time().await;
    let cluster = super::cluster();
    let metrics = free_port();
    let m = metrics.to_string();
    let node = super::wedge::node(&cluster, &["--metrics", &m]);
    let admin = node.connect(Role::Admin).await.unwrap();
    let ids = enrol_bulk(&admin, &records("f", 0..1)).await.unwrap();
    let (status, _, body) = get(metrics, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    assert_eq!(store_ready(metrics).await, "sls_store_ready 1");

    let ports: Vec<u16> = cluster.ports().collect();
    for p in &ports {
        cluster.freeze_node(*p).unwrap();
    }
    let unready = until(metrics, 503).await;
    // Thawed before any assertion: a failed test leaves no frozen server behind.
    let mid = store_ready(metrics).await;
    for p in &ports {
        cluster.thaw_node(*p).unwrap();
    }
    let (took, why) = unready.expect("unready at all while cut off");
    eprintln!("cut off: /readyz 503 after {took:?}: {why}");
    assert!(took <= WITHIN, "unready after {took:?}: {why}");
    assert!(
        why.starts_with("not ready: redis shard 127.0.0.1:") && why.contains("(slots "),
        "the reason names the shard: {why}"
    );
    assert_eq!(mid, "sls_store_ready 0");
    assert_eq!(get(metrics, "/healthz").await.0, 200, "alive all along");

    let (took, body) = until(metrics, 200).await.expect("ready again at all");
    eprintln!("thawed: /readyz 200 after {took:?}");
    assert!(took <= WITHIN, "ready again only after {took:?}");
    assert_eq!(body, "ready\n");
    assert_eq!(store_ready(metrics).await, "sls_store_ready 1");
    // Ready means serving: a whole login, within a bounded time (a failover may follow the
    // thaw of every server at once).
    let fe = node.connect(Role::Frontend).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let v = loop {
        let v = sls_loadgen::harness::login_ocra(
            &fe,
            "f0",
            ids[0],
            ocra::DSC_PLUS_DEFAULT_SUITE,
            &key(0),
            "1234",
            ip(0),
        )
        .await;
        if v.is_ok() || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(matches!(v, Ok(Verdict::Accepted { .. })), "{v:?}");
}
