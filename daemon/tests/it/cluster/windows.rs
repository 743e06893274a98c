//! The windows of a node's fault, closed on a real Redis Cluster with two real slsd nodes: a
//! verdict judged by a node that is then killed is read on the other (`TxnVerdict`, R12), and a
//! second answer there is still refused; the client library's `answer`, whose node froze
//! before judging, finds the challenge open on the next node and has it judged there, once;
//! a push begun on one node while the app was away reaches the app when it proves its device
//! on the other (R6).

use std::time::Duration;

use sls_client::{Begun, Client, ClientConfig, ClientTls};
use sls_loadgen::daemon::Daemon;
use sls_loadgen::harness::{
    answer, approve_push, await_decision, begin, enrol, enrol_bulk, ocra_answer, prove_device,
};
use sls_loadgen::redis_cluster::RedisCluster;
use sls_protocol::ocra::DSC_PLUS_DEFAULT_SUITE;
use sls_protocol::*;

use super::{ip, key, node_a, node_b, records};
use crate::windows::{next_push, read, wrong};
use crate::{call, within};

/// Sends `signal` (`STOP`, `CONT`) to `d`, a process this test started, by its pid.
fn signal(d: &Daemon, signal: &str) {
    let pid = d.pid().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_a_verdict_judged_by_a_node_killed_after_is_read_on_the_other() {
    let _one = super::one_at_a_time().await;
    let cluster = RedisCluster::start().unwrap();
    let mut a = node_a(&cluster, &[]);
    let b = node_b(&cluster, &a, &[]);
    let admin = within(b.connect(Role::Admin)).await;
    let ids = within(enrol_bulk(&admin, &records("w", 0..2))).await;
    let (fe_a, fe_b) = (
        within(a.connect(Role::Frontend)).await,
        within(b.connect(Role::Frontend)).await,
    );
    // Judged on A, which then dies: its reply may as well have been lost.
    let mut judged = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (txn, q) = match within(begin(&fe_a, &format!("w{i}"), *id, ip(i))).await {
            (txn, Challenge::Numeric(q)) => (txn, q),
            other => panic!("{other:?}"),
        };
        let right = ocra_answer(DSC_PLUS_DEFAULT_SUITE, &key(i), &q, "1234").unwrap();
        // User 0 answers wrong, user 1 right.
        let given = if i == 0 { wrong(&right) } else { right.clone() };
        let v = within(answer(&fe_a, txn, &given, ip(i))).await;
        judged.push((txn, v, right));
    }
    assert_eq!(judged[0].1, Verdict::Rejected { failures_left: 9 });
    assert!(
        matches!(judged[1].1, Verdict::Accepted { .. }),
        "{judged:?}"
    );
    a.crash(); // SIGKILL

    // On B: the first verdicts, read from the cluster; a second answer, even the right one, is
    // refused (`replayed`), and the verdicts stay.
    for (i, (txn, first, right)) in judged.iter().enumerate() {
        assert_eq!(read(&fe_b, *txn).await, *first, "user {i}");
        assert_eq!(
            within(answer(&fe_b, *txn, right, ip(i))).await,
            Verdict::Replayed
        );
        assert_eq!(read(&fe_b, *txn).await, *first, "user {i}");
    }
    // The client library reads it too, from a list whose first node is the dead one.
    let tls = ClientTls::from_dir(&b.tls_dir(), Role::Frontend).unwrap();
    let nodes = [a.addr.to_string(), b.addr.to_string()];
    let client = ClientConfig::new(nodes, tls)
        .unwrap()
        .with_connect_timeout(Duration::from_secs(1));
    let client = within(Client::connect(client)).await;
    assert_eq!(within(client.txn_verdict(judged[0].0)).await, judged[0].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_the_clients_answer_whose_node_froze_is_judged_once_on_the_next() {
    let _one = super::one_at_a_time().await;
    let cluster = RedisCluster::start().unwrap();
    let a = node_a(&cluster, &[]);
    let b = node_b(&cluster, &a, &[]);
    let admin = within(b.connect(Role::Admin)).await;
    let ids = within(enrol_bulk(&admin, &records("z", 0..1))).await;
    let tls = ClientTls::from_dir(&a.tls_dir(), Role::Frontend).unwrap();
    let nodes = [a.addr.to_string(), b.addr.to_string()];
    // The default configuration: the answer's reply is waited for `answer_wait` (2 s).
    let config = ClientConfig::new(nodes, tls)
        .unwrap()
        .with_connect_timeout(Duration::from_secs(1));
    let client = within(Client::connect(config)).await;
    assert_eq!(client.connected_node(), Some(a.addr.to_string()));
    let Begun::Challenge(issued) =
        within(client.begin("z0", Purpose::Login, Some(ids[0]), ip(0))).await
    else {
        panic!("no challenge")
    };
    let Challenge::Numeric(q) = &issued.challenge else {
        panic!("{:?}", issued.challenge)
    };
    let right = ocra_answer(DSC_PLUS_DEFAULT_SUITE, &key(0), q, "1234").unwrap();
    // A freezes before it reads the answer: no reply within the answer's wait. The client asks
    // B, which finds the challenge open (`pending`), and sends the answer there.
    signal(&a, "STOP");
    let t0 = std::time::Instant::now();
    let v = tokio::time::timeout(
        Duration::from_secs(10),
        client.answer(issued.txn, &right, ip(0)),
    )
    .await
    .expect("answered within 10 s");
    let took = t0.elapsed();
    signal(&a, "CONT");
    let v = v.expect("a verdict, by the next node");
    // The answer's wait (2 s), a connection to B, the read and the answer there.
    eprintln!("an answer past a frozen node: verdict after {took:?}");
    assert!(matches!(v, Verdict::Accepted { .. }), "{v:?}");
    assert_eq!(client.connected_node(), Some(b.addr.to_string()));
    // A, thawed, reads its late copy of the answer: the challenge is spent, so `replayed`
    // (nothing counted); on A the verdict read is B's.
    let fe_a = within(a.connect(Role::Frontend)).await;
    assert_eq!(read(&fe_a, issued.txn).await, v);
    match call(&fe_a, Message::Status { user: "z0".into() }).await {
        Message::UserStatus { failures, .. } => assert_eq!(failures, 0),
        m => panic!("{m:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_a_push_begun_while_the_app_was_away_reaches_it_on_the_other_node() {
    let _one = super::one_at_a_time().await;
    let cluster = RedisCluster::start().unwrap();
    let a = node_a(&cluster, &[]);
    let b = node_b(&cluster, &a, &[]);
    let admin = within(a.connect(Role::Admin)).await;
    let k = key(7);
    let ib = within(enrol(&admin, "pia", DeviceKind::IbKey, &k, "a1b2")).await;
    // The app's connection to A, lost without A knowing yet: A's push goes there.
    let mut old = within(a.connect(Role::Device)).await;
    within(prove_device(&old, ib, &k)).await;
    let fe_a = within(a.connect(Role::Frontend)).await;
    let (txn, number) = match within(begin(&fe_a, "pia", ib, ip(7))).await {
        (txn, Challenge::Push { number }) => (txn, number),
        other => panic!("no push: {other:?}"),
    };
    assert_eq!(
        next_push(&mut old, Duration::from_secs(5))
            .await
            .map(|p| p.0),
        Some(txn)
    );
    let waiter = await_decision(&fe_a, txn, 20_000);
    // The app is back, on B: B reads the open push from the cluster and sends it.
    let mut app = within(b.connect(Role::Device)).await;
    let t0 = std::time::Instant::now();
    within(prove_device(&app, ib, &k)).await;
    let (pushed, nonce) = next_push(&mut app, Duration::from_secs(5))
        .await
        .expect("the push begun on A, sent by B");
    eprintln!(
        "an open push re-sent {:?} after the proof began",
        t0.elapsed()
    );
    assert_eq!(pushed, txn);
    let v = within(approve_push(&app, &k, txn, "pia", number, &nonce)).await;
    assert!(
        matches!(
            v,
            Message::Judged {
                verdict: Verdict::Accepted { .. }
            }
        ),
        "{v:?}"
    );
    let awaited = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the await on A returns")
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            awaited,
            Message::Judged {
                verdict: Verdict::Accepted { .. }
            }
        ),
        "{awaited:?}"
    );
    // Answered, it is not sent again to an app that proves once more.
    let mut again = within(b.connect(Role::Device)).await;
    within(prove_device(&again, ib, &k)).await;
    assert_eq!(
        next_push(&mut again, Duration::from_millis(700)).await,
        None
    );
}
