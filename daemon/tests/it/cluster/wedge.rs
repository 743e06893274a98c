//! A Redis master frozen (SIGSTOP) longer than `cluster-node-timeout`, so that its replica is
//! promoted, then thawed (SIGCONT), again and again under a paced storm of wrong answers over
//! two nodes, the seed node of `--store` among the frozen: every node serves again within 10 s
//! of each thaw (a node once stayed refusing every change for minutes, its connections to
//! Redis idle), and no acknowledged failure is lost (R11).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sls_client::pipeline::Pipeline;
use sls_loadgen::daemon::Daemon;
use sls_loadgen::harness::enrol_bulk;
use sls_loadgen::redis_cluster::RedisCluster;
use sls_protocol::*;

use super::faults::{assert_nothing_acknowledged_lost, failures, fronts, Seen, PATIENT};
use super::{ip, records, wrong_answer};

/// Users under the storm (`f0..`), and the storm's tasks (each takes its users in turn).
const USERS: usize = 300;
const TASKS: usize = 30;
/// Each task's pause between two attempts: about 150 logins a second in all when healthy.
const PACE: Duration = Duration::from_millis(40);
/// Attempts per user, at most: under the lockout threshold of 255 ([`PATIENT`]).
const PER_USER: usize = 240;
/// How long a freeze lasts at least: past the cluster's node timeout (2 s), with room.
const FREEZE: Duration = Duration::from_secs(5);
/// The promise: every node serves again within this of a thaw.
const SERVING_AGAIN: Duration = Duration::from_secs(10);

/// A node of the cluster as these tests run it: `WAIT 1` with the default 500 ms timeout, and
/// so the store's reply timeout of 2 s, as in production.
pub(super) fn node(cluster: &RedisCluster, extra: &[&str]) -> Daemon {
    node_waiting(cluster, "1", None, extra)
}

/// As [`node`], waiting for `replicas` replicas per write, with `like`'s certificates and seal
/// key when given.
fn node_waiting(
    cluster: &RedisCluster,
    replicas: &str,
    like: Option<&Daemon>,
    extra: &[&str],
) -> Daemon {
    super::node(
        cluster,
        replicas,
        "500ms",
        like,
        &[&PATIENT, extra].concat(),
    )
}

/// Users `f0..` enrolled for `node`'s deployment, the storm's and, past them, one per shard to
/// probe with: every id, and the probes with theirs. Through a node of the same deployment
/// that waits 5 s for each write's replica, not the tests' 500 ms: the enrolment is set-up,
/// and on a cluster just started, under a loaded machine, a first write's `WAIT` can take
/// longer (bulk enrolment was refused UNAVAILABLE in two of five clean-clone CI runs).
async fn enrolled(
    cluster: &RedisCluster,
    node: &Daemon,
) -> (Vec<DeviceId>, Vec<(usize, DeviceId)>) {
    let probes = one_user_per_shard();
    let last = probes.iter().max().copied().unwrap_or(USERS) + 1;
    let enroller = super::node(cluster, "1", "5s", Some(node), &[]);
    let admin = enroller.connect(Role::Admin).await.unwrap();
    let ids = enrol_bulk(&admin, &records("f", 0..last)).await.unwrap();
    let probes = probes.iter().map(|u| (*u, ids[*u])).collect();
    (ids, probes)
}

/// `redis-cli -p port args…` with a 1 s timeout (a frozen node answers nothing).
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("timeout")
        .args(["1", "redis-cli", "-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The masters among the nodes other than `frozen`.
fn masters_but(cluster: &RedisCluster, frozen: u16) -> Vec<u16> {
    cluster
        .ports()
        .filter(|p| *p != frozen)
        .filter(|p| cli(*p, &["role"]).is_some_and(|r| r.starts_with("master")))
        .collect()
}

/// The users `f<i>` (past the storm's) whose keys are in each third of the slots: one user per
/// shard of the cluster as `redis-cli --cluster create` laid it out (a failover moves no slot).
fn one_user_per_shard() -> Vec<usize> {
    // A user's key is `{<prefix>:u:<name>}`, under the default prefix `sls`.
    let slot = |u: usize| sls_redis::keys::slot(format!("{{sls:u:f{u}}}").as_bytes());
    let mut out: Vec<usize> = Vec::new();
    for (lo, hi) in [(0u16, 5460u16), (5461, 10922), (10923, 16383)] {
        let u = (USERS..USERS + 1000)
            .find(|u| (lo..=hi).contains(&slot(*u)))
            .expect("a user in each third");
        out.push(u);
    }
    out
}

/// One begin and one wrong answer, as `faults` makes them, but a fault may also leave the
/// answer judged `Unknown` (the begin's binding lost in the failover: a begin waits for no
/// replica) or `Replayed` (its first send was judged, its reply lost): noted as refusals
/// (status 2), not acknowledged failures.
async fn attempt(
    begin_on: &Pipeline,
    answer_on: &Pipeline,
    u: usize,
    dev: DeviceId,
    seen: &mut Seen,
) {
    let begin = begin_on
        .call(Message::Begin {
            user: format!("f{u}"),
            purpose: Purpose::Login,
            device: Some(dev),
            client: ip(u),
        })
        .await;
    let (txn, q) = match begin {
        Ok(Message::ChallengeIssued {
            txn,
            challenge: Challenge::Numeric(q),
            ..
        }) => (txn, q),
        Ok(Message::Error { status, .. }) => {
            *seen.refused.entry(status.0).or_default() += 1;
            return;
        }
        Ok(other) => panic!("user f{u}: begin answered {other:?}"),
        Err(_) => {
            *seen.refused.entry(1).or_default() += 1;
            return;
        }
    };
    let reply = answer_on
        .call(Message::Answer {
            txn,
            response: wrong_answer(u, &q),
            client: ip(u),
        })
        .await;
    match reply {
        Ok(Message::Judged {
            verdict: Verdict::Rejected { .. },
        }) => seen.rejected += 1,
        Ok(Message::Judged {
            verdict: Verdict::Unknown | Verdict::Replayed,
        }) => *seen.refused.entry(2).or_default() += 1,
        Ok(Message::Error { status, .. }) => *seen.refused.entry(status.0).or_default() += 1,
        Err(_) => *seen.refused.entry(1).or_default() += 1,
        Ok(other) => panic!("user f{u}: answer answered {other:?}"),
    }
}

/// Whether `front` judges a wrong answer of each of `probes` now (a change in every shard).
async fn serves(front: &Pipeline, probes: &[(usize, DeviceId)]) -> bool {
    for &(u, dev) in probes {
        let mut seen = Seen::default();
        let step = attempt(front, front, u, dev, &mut seen);
        if tokio::time::timeout(Duration::from_secs(3), step)
            .await
            .is_err()
            || seen.rejected != 1
        {
            return false;
        }
    }
    true
}

/// The storm: `TASKS` tasks, each over its users in turn, paced, until `stop` or `PER_USER`
/// attempts per user.
async fn storm(fronts: Vec<Pipeline>, ids: Vec<DeviceId>, stop: Arc<AtomicBool>) -> Vec<Seen> {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (fronts, ids, stop) = (fronts.clone(), ids.clone(), stop.clone());
        tasks.spawn(async move {
            let mine: Vec<usize> = (t..USERS).step_by(TASKS).collect();
            let mut seen = vec![Seen::default(); mine.len()];
            for k in 0..PER_USER * mine.len() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (i, u) = (k % mine.len(), mine[k % mine.len()]);
                let (fb, fa) = (&fronts[k % 2], &fronts[(k + 1) % 2]);
                let step = attempt(fb, fa, u, ids[u], &mut seen[i]);
                if tokio::time::timeout(Duration::from_secs(10), step)
                    .await
                    .is_err()
                {
                    *seen[i].refused.entry(0).or_default() += 1;
                }
                tokio::time::sleep(PACE).await;
            }
            mine.into_iter().zip(seen).collect::<Vec<_>>()
        });
    }
    let mut all = vec![Seen::default(); USERS];
    while let Some(r) = tasks.join_next().await {
        for (u, seen) in r.expect("a storm task") {
            all[u] = seen;
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_freezes_of_a_master_past_the_node_timeout_leave_every_node_serving() {
    const CYCLES: usize = 10;
    let _one = super::one_at_a_time().await;
    let cluster = super::cluster();
    let metrics = [crate::metrics::free_port(), crate::metrics::free_port()];
    let (ma, mb) = (metrics[0].to_string(), metrics[1].to_string());
    let a = node(&cluster, &["--metrics", &ma]);
    let b = node_waiting(&cluster, "1", Some(&a), &["--metrics", &mb]);
    let (ids, probes) = enrolled(&cluster, &a).await;
    let nodes = [("A", &a), ("B", &b)];
    let mut probe_fronts = Vec::new();
    for (_, n) in nodes {
        probe_fronts.push(n.connect(Role::Frontend).await.unwrap().pipe.clone());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(storm(
        fronts(&[&a, &b]).await,
        ids[..USERS].to_vec(),
        stop.clone(),
    ));
    let seed = cluster.ports().start;
    let mut report = Vec::new();
    // Cycles in which a node read unready while the master was frozen (it was: that shard
    // refused every change until its replica was promoted).
    let mut unready_seen = 0;
    for cycle in 0..CYCLES {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The seed node first (a master at the start), then whichever master comes next.
        let masters = masters_but(&cluster, 0);
        let victim = if masters.contains(&seed) {
            seed
        } else {
            masters[cycle % masters.len()]
        };
        cluster.freeze_node(victim).unwrap();
        let frozen_at = Instant::now();
        let cluster_ref = &cluster;
        // Its replica is promoted once the others mark it failed.
        let mut unready = false;
        loop {
            for m in metrics {
                unready |= crate::metrics::get(m, "/readyz").await.0 == 503;
            }
            let m = tokio::task::block_in_place(|| masters_but(cluster_ref, victim));
            if m.len() == 3 && frozen_at.elapsed() >= FREEZE {
                break;
            }
            assert!(
                frozen_at.elapsed() < Duration::from_secs(30),
                "cycle {cycle}: no replica of {victim} was promoted"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        unready_seen += usize::from(unready);
        cluster.thaw_node(victim).unwrap();
        let thawed = Instant::now();
        let mut after = Vec::new();
        for (((name, _), front), m) in nodes.iter().zip(&probe_fronts).zip(metrics) {
            // Back: /readyz says 200 and a change in every shard is judged.
            let at = loop {
                if crate::metrics::get(m, "/readyz").await.0 == 200 && serves(front, &probes).await
                {
                    break Some(thawed.elapsed());
                }
                if thawed.elapsed() > SERVING_AGAIN + Duration::from_secs(30) {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            after.push((*name, at));
        }
        let line = format!(
            "cycle {cycle}: froze {victim}{} for {:?}{}; ready and serving again after {after:?}",
            if victim == seed { " (the seed)" } else { "" },
            thawed - frozen_at,
            if unready { ", unready meanwhile" } else { "" },
        );
        eprintln!("{line}");
        report.push(line);
        let late: Vec<_> = after
            .iter()
            .filter(|(_, at)| !at.is_some_and(|t| t <= SERVING_AGAIN))
            .collect();
        assert!(
            late.is_empty(),
            "not ready and serving within {SERVING_AGAIN:?} of the thaw (None: not within 40 s): {late:?}\n{}",
            report.join("\n")
        );
        tokio::task::block_in_place(|| cluster.wait_ok(3, Duration::from_secs(30)))
            .expect("the cluster is whole again");
    }
    stop.store(true, Ordering::Relaxed);
    let seen = load.await.unwrap();
    // Whether the watchdog had to rebuild a cluster connection (sls_redis::health).
    for ((name, _), m) in nodes.iter().zip(metrics) {
        let (_, _, text) = crate::metrics::get(m, "/metrics").await;
        let rebuilt = text
            .lines()
            .find(|l| l.starts_with("sls_redis_rebuilds_total "))
            .expect("the rebuilds' counter");
        eprintln!("node {name}: {rebuilt}");
    }
    assert!(
        unready_seen > 0,
        "no node read unready while a master was frozen, in {CYCLES} cycles"
    );
    assert!(
        seen.iter().any(|s| !s.refused.is_empty()),
        "the freezes refused some requests (the fault was real)"
    );
    assert_nothing_acknowledged_lost(&seen, &failures(&a, USERS).await, "read on A");
    assert_nothing_acknowledged_lost(&seen, &failures(&b, USERS).await, "read on B");
}

/// A master that stops answering for good (frozen, never thawed) once its replica has been
/// promoted: every node serves its slots again through the new master within 10 s. The
/// cluster client of redis-rs learns a failover only from a `MOVED` or a dropped connection,
/// and treats a reply timeout as a reason to send again on the same connection: without the
/// watchdog, this shard's users were refused on every node until the old master answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_frozen_for_good_is_left_behind_once_its_replica_is_promoted() {
    let _one = super::one_at_a_time().await;
    let cluster = super::cluster();
    // No replica to wait for: the promoted master has none while the old one is frozen.
    let a = node_waiting(&cluster, "0", None, &[]);
    let b = node_waiting(&cluster, "0", Some(&a), &[]);
    let (_, probes) = enrolled(&cluster, &a).await;
    // The seed node serves the first third of the slots at the start.
    let victim = cluster.ports().start;
    let probe = [probes[0]];
    let fronts = fronts(&[&a, &b]).await;
    for f in &fronts {
        assert!(serves(f, &probe).await, "served before the freeze");
    }
    cluster.freeze_node(victim).unwrap();
    let frozen_at = Instant::now();
    let cluster_ref = &cluster;
    let promoted = loop {
        if tokio::task::block_in_place(|| masters_but(cluster_ref, victim)).len() == 3 {
            break Some(Instant::now());
        }
        if frozen_at.elapsed() > Duration::from_secs(30) {
            break None;
        }
        // Requests keep going to the shard meanwhile, as a storm's would.
        for f in &fronts {
            serves(f, &probe).await;
        }
    };
    let mut after = Vec::new();
    if let Some(promoted) = promoted {
        for (name, f) in ["A", "B"].iter().zip(&fronts) {
            let at = loop {
                if serves(f, &probe).await {
                    break Some(promoted.elapsed());
                }
                if promoted.elapsed() > SERVING_AGAIN + Duration::from_secs(10) {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            after.push((*name, at));
        }
    }
    // Thawed before any assertion: a failed test leaves no frozen server behind.
    cluster.thaw_node(victim).unwrap();
    for (name, n) in [("A", &a), ("B", &b)] {
        let log = std::fs::read_to_string(&n.log).unwrap_or_default();
        for l in log.lines().filter(|l| l.contains("rebuil")) {
            eprintln!("node {name}: {l}");
        }
    }
    let promoted = promoted.expect("a replica of the frozen master was promoted");
    eprintln!(
        "promoted {:?} after the freeze; the shard served again, after the promotion: {after:?}",
        promoted - frozen_at
    );
    assert!(
        after.iter().all(|(_, at)| at.is_some_and(|t| t <= SERVING_AGAIN)),
        "the promoted master's slots not served within {SERVING_AGAIN:?} (None: not within 20 s): {after:?}"
    );
}
