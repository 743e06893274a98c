//! Two real slsd nodes on a real Redis Cluster, spoken to over real QUIC (issue 12): the
//! lockout exact across nodes under racing answers (R11), a challenge begun on one node and
//! answered on the other, a replay across nodes (R12), a push with the app on the other node
//! (R6), an enrolment seen at once everywhere (`shared`); a node SIGKILLed under load, a Redis
//! master SIGKILLed under load, the whole cluster down and back (`faults`); a frozen master
//! holds up its own shard's users only (`shards`); a verdict read on the other node after the
//! judging one died, a client's answer moved past a frozen node, a push begun while the app was
//! away delivered when it proves its device on the other node (`windows`).
//!
//! Each test starts its own 6-node cluster on free ports (`scripts/redis-cluster.sh`, through
//! [`RedisCluster`]) and stops it when done; they run one at a time ([`one_at_a_time`]): six
//! clusters of six servers and their nodes at once would starve a 2-core machine.

mod audit;
mod faults;
mod ready;
mod shards;
mod shared;
mod wedge;
mod windows;

use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::time::Duration;

use sls_loadgen::daemon::{Daemon, NO_LIMITS};
use sls_loadgen::redis_cluster::RedisCluster;
use sls_protocol::{BulkRecord, DeviceKind};

/// Held by each test of this module while it runs.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}

/// A cluster for one test, once whole: [`RedisCluster::start`] returns when the cluster has
/// formed, but a replica may not have linked to its master yet, and a node's first writes (a
/// bulk enrolment) each wait for a replica (`WAIT 1`): they were refused, now and then.
fn cluster() -> RedisCluster {
    let cluster = RedisCluster::start().expect("a Redis Cluster");
    cluster
        .wait_ok(3, Duration::from_secs(30))
        .expect("every master with a replica linked");
    cluster
}

/// A node of `cluster` that waits for `replicas` replicas per write for up to `wait`, with
/// `extra` flags; with the certificates and seal key of `like`, when given (a node of the same
/// deployment).
fn node(
    cluster: &RedisCluster,
    replicas: &str,
    wait: &str,
    like: Option<&Daemon>,
    extra: &[&str],
) -> Daemon {
    let store = cluster.store_flag();
    let shared = like.map(|a| {
        (
            a.tls_dir().to_string_lossy().into_owned(),
            a.data_dir.join("seal.key").to_string_lossy().into_owned(),
        )
    });
    let shared: Vec<&str> = match &shared {
        Some((tls, seal)) => vec!["--tls-dir", tls, "--seal-key", seal],
        None => Vec::new(),
    };
    let flags = [
        &[
            "--log",
            "warn",
            "--store",
            &store,
            "--redis-wait-replicas",
            replicas,
            "--redis-wait-timeout",
            wait,
        ][..],
        &NO_LIMITS,
        &shared,
        extra,
    ]
    .concat();
    crate::slsd(&flags)
}

/// Node A of `cluster`, with `extra` flags; waits for one replica per master (`WAIT 1`), for up
/// to 5 s (a test machine's shared disk and cores, not the 500 ms of production).
fn node_a(cluster: &RedisCluster, extra: &[&str]) -> Daemon {
    node(cluster, "1", "5s", None, extra)
}

/// Another node on the same cluster as `a`: the same certificates and seal key.
fn node_b(cluster: &RedisCluster, a: &Daemon, extra: &[&str]) -> Daemon {
    node(cluster, "1", "5s", Some(a), extra)
}

fn key(i: usize) -> Vec<u8> {
    format!("key-of-user-{i:08}-padding-to-32").into_bytes()[..32].to_vec()
}

/// Users `<prefix><i>` with one DSC+ each, PIN 1234.
fn records(prefix: &str, users: Range<usize>) -> Vec<BulkRecord> {
    users
        .map(|i| BulkRecord {
            user: format!("{prefix}{i}"),
            kind: DeviceKind::DscPlus,
            secret: key(i),
            pin: "1234".into(),
            suite: String::new(),
        })
        .collect()
}

fn ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 2, (i >> 8) as u8, i as u8))
}

/// A wrong answer to `question` for user `i` (the right one plus one).
fn wrong_answer(i: usize, question: &str) -> String {
    let right = sls_loadgen::harness::ocra_answer(
        sls_protocol::ocra::DSC_PLUS_DEFAULT_SUITE,
        &key(i),
        question,
        "1234",
    )
    .expect("an answer");
    format!(
        "{:08}",
        (right.parse::<u64>().expect("digits") + 1) % 100_000_000
    )
}
