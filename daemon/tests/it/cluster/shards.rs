//! One shard's trouble stays on its shard: with one Redis master frozen (SIGSTOP of its real
//! pid), the users of the other masters log in while that master's users wait and are refused
//! `UNAVAILABLE`. A change waits for a `WAIT` round of its own slot's master only.

use std::time::{Duration, Instant};

use sls_client::pipeline::Pipeline;
use sls_loadgen::harness::{enrol_bulk, ocra_answer};
use sls_protocol::*;

use super::{ip, key, node_a, records};

/// A whole login of user `s<i>`: its verdict, or the status it was refused with.
async fn login(fe: &Pipeline, i: usize, dev: DeviceId) -> Result<Verdict, Status> {
    let begin = crate::call(
        fe,
        Message::Begin {
            user: format!("s{i}"),
            purpose: Purpose::Login,
            device: Some(dev),
            client: ip(i),
        },
    )
    .await;
    let (txn, q) = match begin {
        Message::ChallengeIssued {
            txn,
            challenge: Challenge::Numeric(q),
            ..
        } => (txn, q),
        Message::Error { status, .. } => return Err(status),
        other => panic!("s{i}: begin answered {other:?}"),
    };
    let right = ocra_answer(ocra::DSC_PLUS_DEFAULT_SUITE, &key(i), &q, "1234").expect("an answer");
    match crate::call(
        fe,
        Message::Answer {
            txn,
            response: right,
            client: ip(i),
        },
    )
    .await
    {
        Message::Judged { verdict } => Ok(verdict),
        Message::Error { status, .. } => Err(status),
        other => panic!("s{i}: answer answered {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_master_holds_up_its_own_users_only() {
    const USERS: usize = 24;
    let _one = super::one_at_a_time().await;
    let cluster = super::cluster();
    // WAIT may take 5 s (node_a); a command 6 s: a frozen master's users wait that long.
    let a = node_a(&cluster, &["--redis-response-timeout", "6s"]);
    let admin = a.connect(Role::Admin).await.unwrap();
    let ids = enrol_bulk(&admin, &records("s", 0..USERS)).await.unwrap();
    let master_of = |i: usize| cluster.master_of(&format!("{{sls:u:s{i}}}"));
    let masters: Vec<Option<u16>> = (0..USERS).map(master_of).collect();
    let victim = cluster.masters()[0];
    let frozen = (0..USERS)
        .find(|i| masters[*i] == Some(victim))
        .expect("a user on the victim's shard");
    let others: Vec<usize> = (0..USERS)
        .filter(|i| masters[*i].is_some_and(|m| m != victim))
        .collect();
    assert!(others.len() >= 2, "users on the other shards: {masters:?}");
    let fe = a.connect(Role::Frontend).await.unwrap().pipe.clone();
    for i in std::iter::once(frozen).chain(others.iter().copied()) {
        let v = login(&fe, i, ids[i]).await;
        assert!(
            matches!(v, Ok(Verdict::Accepted { .. })),
            "s{i} before: {v:?}"
        );
    }

    cluster.freeze_node(victim).unwrap();
    let started = Instant::now();
    let held = {
        let fe = fe.clone();
        let dev = ids[frozen];
        tokio::spawn(async move { (login(&fe, frozen, dev).await, started.elapsed()) })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Every other shard's user logs in while the frozen shard's login is held up (its write,
    // or its round, waits for the frozen master).
    for i in &others {
        let v = login(&fe, *i, ids[*i]).await;
        assert!(
            matches!(v, Ok(Verdict::Accepted { .. })),
            "s{i}, another shard's user, with {victim} frozen: {v:?}"
        );
    }
    let others_took = started.elapsed();
    let still_held = !held.is_finished();
    cluster.thaw_node(victim).unwrap();
    let (v, took) = held.await.unwrap();
    assert!(
        still_held,
        "the frozen shard's user was answered {v:?} in {took:?}, before the other shards' {} users were all accepted ({others_took:?}): they waited for the frozen master",
        others.len()
    );
    // Held up, then refused clearly or (the replica promoted, or the master thawed)
    // accepted: never another verdict.
    assert!(
        matches!(v, Ok(Verdict::Accepted { .. }) | Err(Status::UNAVAILABLE)),
        "{v:?}"
    );
    let _ = tokio::task::spawn_blocking(move || {
        cluster
            .wait_ok(3, Duration::from_secs(30))
            .expect("the cluster is whole again");
        cluster
    })
    .await
    .unwrap();
}
