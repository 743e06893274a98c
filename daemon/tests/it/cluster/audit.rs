//! The audit trail on a Redis store: one trail per user in the cluster,
//! written by every node and read from any, each entry naming the node that decided.

use std::time::Duration;

use sls_loadgen::harness::{answer, begin, enrol};
use sls_protocol::*;

use super::{ip, key, node_a, node_b};

/// A login begun on node A is answered wrong on node B; the admin on B unlocks nothing but
/// reads the trail: A's `Begin` and B's `Answer`, each with its node, device and address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_the_trail_is_the_clusters_read_from_any_node_with_each_entrys_node() {
    let _one = super::one_at_a_time().await;
    let cluster = super::cluster();
    let a = node_a(&cluster, &["--node-name", "node-a"]);
    let b = node_b(&cluster, &a, &["--node-name", "node-b"]);
    let admin_a = a.connect(Role::Admin).await.unwrap();
    let dev = enrol(&admin_a, "tess", DeviceKind::DscPlus, &key(1), "1234")
        .await
        .unwrap();
    let fa = a.connect(Role::Frontend).await.unwrap();
    let fb = b.connect(Role::Frontend).await.unwrap();
    let (txn, _) = begin(&fa, "tess", dev, ip(1)).await.unwrap();
    let v = answer(&fb, txn, "00000000", ip(1)).await.unwrap();
    assert!(matches!(v, Verdict::Rejected { .. }), "{v:?}");

    // The trail is written after the answers, by a task: read until it holds the four.
    let admin_b = b.connect(Role::Admin).await.unwrap();
    let read = Message::AuditRead {
        user: "tess".into(),
        since_ms: 0,
        skip: 0,
        limit: 64,
    };
    let mut entries = Vec::new();
    for _ in 0..100 {
        match admin_b.call(read.clone()).await.unwrap() {
            Message::AuditEntries { entries: e, .. } if e.len() >= 4 => {
                entries = e;
                break;
            }
            Message::AuditEntries { .. } => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("{other:?}"),
        }
    }
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                Message::name_of(e.event).unwrap(),
                e.outcome(),
                e.node.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("EnrolUser", "done", "node-a"),
            ("EnrolDevice", "done", "node-a"),
            ("Begin", "challenge", "node-a"),
            ("Answer", "rejected", "node-b"),
        ]
    );
    let ans = &entries[3];
    assert_eq!(
        (ans.device, ans.txn, ans.client),
        (Some(dev), Some(txn), Some(ip(1)))
    );
}
