//! Faults of a real two-node deployment: a slsd node SIGKILLed under load, a Redis master
//! SIGKILLed under load, the whole cluster down and back. Under each: refusals are clear
//! (`UNAVAILABLE`), the surviving parts keep serving, and no acknowledged failure is lost
//! (R11: a failure whose `Rejected` verdict left the daemon is counted after the fault).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sls_client::pipeline::Pipeline;
use sls_loadgen::daemon::Daemon;
use sls_loadgen::harness::{enrol_bulk, ocra_answer};
use sls_protocol::*;

use super::{ip, key, node_a, node_b, records, wrong_answer};

/// Failures far from locking, so that every wrong answer is a `Rejected` to count.
pub(super) const PATIENT: [&str; 2] = ["--lockout-threshold", "255"];
/// Wrong answers per user, at most: well under the threshold.
const PER_USER: usize = 120;

/// What one user's attacker saw: failures acknowledged, and refusals by status.
#[derive(Debug, Default, Clone)]
pub(super) struct Seen {
    pub(super) rejected: u8,
    pub(super) refused: HashMap<u16, usize>,
}

/// Wrong answers for users `0..users` (prefix `p`), through `fronts` in turn, until `stop` or
/// [`PER_USER`] each; begin and answer go to different fronts. What each user saw.
async fn attack(fronts: Vec<Pipeline>, ids: Vec<DeviceId>, stop: Arc<AtomicBool>) -> Vec<Seen> {
    let users = ids.len();
    let mut tasks = tokio::task::JoinSet::new();
    for (u, dev) in ids.into_iter().enumerate() {
        let fronts = fronts.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let mut seen = Seen::default();
            for k in 0..PER_USER {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let fb = &fronts[(u + k) % fronts.len()];
                let fa = &fronts[(u + k + 1) % fronts.len()];
                let reply = tokio::time::timeout(
                    Duration::from_secs(10),
                    attempt(fb, fa, u, dev, &mut seen),
                )
                .await;
                if reply.is_err() {
                    *seen.refused.entry(0).or_default() += 1;
                }
            }
            (u, seen)
        });
    }
    let mut all = vec![Seen::default(); users];
    while let Some(r) = tasks.join_next().await {
        let (u, seen) = r.expect("an attacker task");
        all[u] = seen;
    }
    all
}

/// One begin and one wrong answer. A refusal or a lost connection is noted, not a failure of
/// the test: the fault is expected to cause some.
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
        Ok(Message::Error { status, .. }) => *seen.refused.entry(status.0).or_default() += 1,
        // The failure may have been recorded without its verdict: not acknowledged.
        Err(_) => *seen.refused.entry(1).or_default() += 1,
        Ok(other) => panic!("user f{u}: answer answered {other:?}"),
    }
}

/// Every user's failures as `node` reads them now.
pub(super) async fn failures(node: &Daemon, users: usize) -> Vec<u8> {
    let admin = node
        .connect(Role::Admin)
        .await
        .expect("an admin connection");
    let mut out = Vec::with_capacity(users);
    for u in 0..users {
        match crate::call(
            &admin,
            Message::Status {
                user: format!("f{u}"),
            },
        )
        .await
        {
            Message::UserStatus { failures, .. } => out.push(failures),
            other => panic!("status of f{u}: {other:?}"),
        }
    }
    out
}

pub(super) fn assert_nothing_acknowledged_lost(seen: &[Seen], now: &[u8], what: &str) {
    let acked: usize = seen.iter().map(|s| usize::from(s.rejected)).sum();
    assert!(acked > 0, "{what}: the attack was answered at all");
    let lost: Vec<String> = seen
        .iter()
        .zip(now)
        .enumerate()
        .filter(|(_, (s, f))| **f < s.rejected)
        .map(|(u, (s, f))| {
            format!(
                "f{u}: {} acknowledged, {f} stored ({:?})",
                s.rejected, s.refused
            )
        })
        .collect();
    assert!(lost.is_empty(), "{what}: failures lost: {lost:#?}");
}

pub(super) async fn fronts(nodes: &[&Daemon]) -> Vec<Pipeline> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(
            n.connect(Role::Frontend)
                .await
                .expect("a frontend")
                .pipe
                .clone(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_nothing_and_the_other_serves_on() {
    const USERS: usize = 40;
    let _one = super::one_at_a_time().await;
    let cluster = super::cluster();
    let mut a = node_a(&cluster, &PATIENT);
    let b = node_b(&cluster, &a, &PATIENT);
    let admin = b.connect(Role::Admin).await.unwrap();
    // The last user is not attacked: it logs in on B while A is down.
    let ids = enrol_bulk(&admin, &records("f", 0..USERS + 1))
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let attacked = ids[..USERS].to_vec();
    let load = tokio::spawn(attack(fronts(&[&a, &b]).await, attacked, stop.clone()));
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.crash(); // SIGKILL, mid-load
               // B serves on: a whole login there while A is down.
    let fe_b = b.connect(Role::Frontend).await.unwrap();
    let (k, user) = (key(USERS), format!("f{USERS}"));
    let login = sls_loadgen::harness::begin(&fe_b, &user, ids[USERS], ip(USERS)).await;
    if let Ok((txn, Challenge::Numeric(q))) = login {
        let right = ocra_answer(ocra::DSC_PLUS_DEFAULT_SUITE, &k, &q, "1234").unwrap();
        let v = sls_loadgen::harness::answer(&fe_b, txn, &right, ip(USERS))
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Accepted { .. }), "{v:?}");
    } else {
        panic!("node B does not serve while A is down: {login:?}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = load.await.unwrap();
    a.restart().unwrap();
    assert_nothing_acknowledged_lost(&seen, &failures(&a, USERS).await, "after A's restart");
    assert_nothing_acknowledged_lost(&seen, &failures(&b, USERS).await, "read on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_loses_no_acknowledged_failure() {
    const USERS: usize = 40;
    let _one = super::one_at_a_time().await;
    let cluster = super::cluster();
    let a = node_a(&cluster, &PATIENT);
    let b = node_b(&cluster, &a, &PATIENT);
    let admin = a.connect(Role::Admin).await.unwrap();
    let ids = enrol_bulk(&admin, &records("f", 0..USERS)).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(attack(fronts(&[&a, &b]).await, ids.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let victim = cluster.masters()[0];
    cluster.kill_node(victim).unwrap();
    // Its replica takes over once the others mark it failed (cluster-node-timeout 2 s): three
    // masters again, the victim not among them. Then the old master comes back, as a replica,
    // so that every shard has one to WAIT for again.
    let _cluster = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster.masters().len() < 3 {
            assert!(Instant::now() < deadline, "no replica was promoted");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster.start_node(victim).unwrap();
        cluster
            .wait_ok(3, Duration::from_secs(30))
            .expect("the cluster is whole again");
        assert!(
            !cluster.masters().contains(&victim),
            "the old master came back as a replica"
        );
        cluster
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let seen = load.await.unwrap();
    assert!(
        seen.iter().any(|s| !s.refused.is_empty()),
        "the failover refused some requests (the fault was real)"
    );
    // Read before the logins below: a success clears the user's failures (R11).
    assert_nothing_acknowledged_lost(&seen, &failures(&a, USERS).await, "after the failover");
    // The service resumed by itself (the nodes' cluster client finds the new master): a whole
    // login on each node, within a bounded time.
    for node in [&a, &b] {
        let fe = node.connect(Role::Frontend).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let v = loop {
            let v = sls_loadgen::harness::login_ocra(
                &fe,
                "f1",
                ids[1],
                ocra::DSC_PLUS_DEFAULT_SUITE,
                &key(1),
                "1234",
                ip(1),
            )
            .await;
            if v.is_ok() || Instant::now() > deadline {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(matches!(v, Ok(Verdict::Accepted { .. })), "{v:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_refused_clearly_and_the_nodes_recover_by_themselves() {
    let _one = super::one_at_a_time().await;
    let cluster = super::cluster();
    let a = node_a(&cluster, &[]);
    let admin = a.connect(Role::Admin).await.unwrap();
    let ids = enrol_bulk(&admin, &records("f", 0..4)).await.unwrap();
    let fe = a.connect(Role::Frontend).await.unwrap();

    let ports: Vec<u16> = cluster.ports().collect();
    for p in &ports {
        cluster.kill_node(*p).unwrap();
    }
    // A request that needs state is refused with UNAVAILABLE, never judged as if recorded.
    let reply = crate::call(
        &fe,
        Message::Begin {
            user: "f0".into(),
            purpose: Purpose::Login,
            device: Some(ids[0]),
            client: ip(0),
        },
    )
    .await;
    assert!(
        matches!(reply, Message::Error { status, .. } if status == Status::UNAVAILABLE),
        "{reply:?}"
    );
    // The node still serves its connections.
    assert!(matches!(
        crate::call(&fe, Message::Ping {}).await,
        Message::Pong {}
    ));

    for p in &ports {
        cluster.start_node(*p).unwrap();
    }
    cluster.wait_ok(3, Duration::from_secs(30)).unwrap();
    // Recovered by itself, on the same connection, with the state the cluster kept on disk.
    let deadline = Instant::now() + Duration::from_secs(30);
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
