//! One user's state shared by two nodes: the lock exact under racing answers spread over both
//! (R11), a challenge begun on one and answered on the other, a replay across them (R12), an
//! enrolment, a lock and an unlock seen at once on the other, a push with the app on the other
//! node (R6).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sls_loadgen::harness::{
    answer, approve_push, await_decision, begin, begin_reply, enrol, enrol_bulk, login_ocra,
    prove_device, stats,
};
use sls_protocol::*;

use super::{ip, key, node_a, node_b, records, wrong_answer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_is_exact_across_two_nodes_under_racing_answers() {
    // 100 users, each hit by 200 concurrent wrong answers, half through each node (R11).
    let _one = super::one_at_a_time().await;
    let cluster = super::cluster();
    let a = node_a(&cluster, &[]);
    let b = node_b(&cluster, &a, &[]);
    let admin = a.connect(Role::Admin).await.unwrap();
    let ids = enrol_bulk(&admin, &records("r", 0..100)).await.unwrap();
    let fa = a.pool(Role::Frontend, 2).await.unwrap();
    let fb = b.pool(Role::Frontend, 2).await.unwrap();
    let fronts: Vec<_> = fa.pipes.iter().chain(fb.pipes.iter()).cloned().collect();
    // Within each stream's limit of requests in flight (1,024, announced in Welcome).
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(1024));
    // Open every challenge first (on either node), so that the answers race.
    let mut begins = tokio::task::JoinSet::new();
    for (u, dev) in ids.iter().copied().enumerate() {
        for k in 0..200usize {
            let fe = fronts[k % fronts.len()].clone();
            let in_flight = in_flight.clone();
            begins.spawn(async move {
                let _slot = in_flight.acquire().await.unwrap();
                let (txn, Challenge::Numeric(q)) =
                    begin(&fe, &format!("r{u}"), dev, ip(u)).await.unwrap()
                else {
                    panic!("a typed challenge")
                };
                (u, k, txn, q)
            });
        }
    }
    let mut work = Vec::new();
    while let Some(r) = begins.join_next().await {
        work.push(r.unwrap());
    }
    // Each answer goes to the other node than the one that began it.
    let mut answers = tokio::task::JoinSet::new();
    for (u, k, txn, q) in work {
        let fe = fronts[(k + 1) % fronts.len()].clone();
        let in_flight = in_flight.clone();
        answers.spawn(async move {
            let _slot = in_flight.acquire().await.unwrap();
            (u, answer(&fe, txn, &wrong_answer(u, &q), ip(u)).await)
        });
    }
    let mut per_user: HashMap<usize, (usize, usize)> = HashMap::new();
    while let Some(r) = answers.join_next().await {
        let (u, verdict) = r.unwrap();
        let e = per_user.entry(u).or_default();
        match verdict.unwrap() {
            Verdict::Rejected { .. } => e.0 += 1,
            Verdict::Locked { .. } => e.1 += 1,
            other => panic!("user {u}: {other:?}"),
        }
    }
    for u in 0..100 {
        assert_eq!(
            per_user[&u],
            (9, 191),
            "user {u}: 9 rejected, the 10th locks, the rest are refused, across both nodes"
        );
    }
    // The nodes' own counts: exactly 10 failures evaluated per user, between them.
    let admin_b = b.connect(Role::Admin).await.unwrap();
    let (sa, sb) = (stats(&admin).await.unwrap(), stats(&admin_b).await.unwrap());
    assert_eq!(sa["failures_evaluated"] + sb["failures_evaluated"], 1000);
    assert_eq!(sa["lockouts"] + sb["lockouts"], 100);
    // Locked on both nodes: not even a begin.
    for (u, dev) in ids.iter().enumerate() {
        for fe in [&fa.pipes[0], &fb.pipes[0]] {
            let reply = begin_reply(fe, &format!("r{u}"), *dev, ip(u))
                .await
                .unwrap();
            assert!(
                matches!(
                    reply,
                    Message::Judged {
                        verdict: Verdict::Locked { .. }
                    }
                ),
                "user {u}: {reply:?}"
            );
        }
    }
}

/// What a node has sent to Redis so far, from its metrics page through the real parser:
/// `sls_redis_commands_total` by command, and its stale guesses.
async fn sent(metrics: SocketAddr) -> HashMap<&'static str, f64> {
    let (_, _, text) = crate::metrics::get(metrics, "/metrics").await;
    let summary = crate::metrics::check_exposition(&text);
    let mut out = HashMap::new();
    for command in ["read", "txn_read", "cas_bind", "cas_settle"] {
        let n = crate::metrics::value(
            &summary,
            "sls_redis_commands_total",
            &[("command", command)],
        );
        out.insert(command, n.expect(command));
    }
    let stale = crate::metrics::value(&summary, "sls_redis_stale_guesses_total", &[]);
    out.insert("stale", stale.expect("stale guesses"));
    out
}

/// `after - before`, for the counts named.
fn since(
    before: &HashMap<&'static str, f64>,
    after: &HashMap<&'static str, f64>,
) -> HashMap<&'static str, f64> {
    after.iter().map(|(k, v)| (*k, v - before[k])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_is_one_user_on_every_node() {
    let _one = super::one_at_a_time().await;
    let cluster = super::cluster();
    let (ma, mb) = (crate::metrics::free_port(), crate::metrics::free_port());
    let a = node_a(&cluster, &["--metrics", &ma.to_string()]);
    let b = node_b(&cluster, &a, &["--metrics", &mb.to_string()]);
    let admin_a = a.connect(Role::Admin).await.unwrap();
    let fe_a = a.connect(Role::Frontend).await.unwrap();
    let fe_b = b.connect(Role::Frontend).await.unwrap();
    let k = key(1);

    // Enrolled on A, logs in on B.
    let dsc = enrol(&admin_a, "ann", DeviceKind::DscPlus, &k, "1234")
        .await
        .unwrap();
    let ann_on_b = || {
        login_ocra(
            &fe_b,
            "ann",
            dsc,
            ocra::DSC_PLUS_DEFAULT_SUITE,
            &k,
            "1234",
            ip(1),
        )
    };
    let v = ann_on_b().await.unwrap();
    assert!(matches!(v, Verdict::Accepted { .. }), "{v:?}");

    // Again on B, which knows ann as it left her and the transaction it bound: a begin and an
    // answer are one write each, no read.
    let before = sent(mb).await;
    let v = ann_on_b().await.unwrap();
    assert!(matches!(v, Verdict::Accepted { .. }), "{v:?}");
    let d = since(&before, &sent(mb).await);
    assert_eq!(
        (
            d["read"],
            d["txn_read"],
            d["cas_bind"],
            d["cas_settle"],
            d["stale"]
        ),
        (0.0, 0.0, 1.0, 1.0, 0.0),
        "{d:?}"
    );

    // Begun on A, answered on B; the same answer again on A is a replay (R12).
    let (before_a, before_b) = (sent(ma).await, sent(mb).await);
    let (txn, Challenge::Numeric(q)) = begin(&fe_a, "ann", dsc, ip(1)).await.unwrap() else {
        panic!("a typed challenge")
    };
    // Its id carries the user's cluster slot in its top 14 bits, so that its index entry is
    // written in the same script as the user (one round trip, one write, fewer).
    let slot = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &cluster.ports().start.to_string(),
            "cluster",
            "keyslot",
            "{sls:u:ann}",
        ])
        .output()
        .unwrap();
    let slot: u128 = String::from_utf8_lossy(&slot.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(txn.0 >> 114, slot);
    let right =
        sls_loadgen::harness::ocra_answer(ocra::DSC_PLUS_DEFAULT_SUITE, &k, &q, "1234").unwrap();
    let v = answer(&fe_b, txn, &right, ip(1)).await.unwrap();
    assert!(matches!(v, Verdict::Accepted { .. }), "{v:?}");
    assert_eq!(
        answer(&fe_a, txn, &right, ip(1)).await.unwrap(),
        Verdict::Replayed
    );
    // A knew ann as its enrolment left her: B's logins made that stale, and the begin's write
    // was refused with her value as it is now. B never saw the transaction: it read it with
    // her. A took it for open, and ann's value, changed by B's answer, proved it spent.
    let (da, db) = (
        since(&before_a, &sent(ma).await),
        since(&before_b, &sent(mb).await),
    );
    assert_eq!(
        (da["read"], da["txn_read"], da["stale"]),
        (0.0, 0.0, 2.0),
        "{da:?}"
    );
    assert_eq!((db["txn_read"], db["cas_settle"]), (1.0, 1.0), "{db:?}");

    // Locked by ten failed passwords on B (R11): refused on A at once; unlocked on A: served
    // on B.
    for _ in 0..10 {
        let r = fe_b
            .call(Message::PasswordFailed {
                user: "ann".into(),
                client: ip(1),
            })
            .await
            .unwrap();
        assert!(matches!(r, Message::Judged { .. }), "{r:?}");
    }
    let reply = begin_reply(&fe_a, "ann", dsc, ip(1)).await.unwrap();
    assert!(
        matches!(
            reply,
            Message::Judged {
                verdict: Verdict::Locked { .. }
            }
        ),
        "{reply:?}"
    );
    let unlocked = admin_a
        .call(Message::Unlock { user: "ann".into() })
        .await
        .unwrap();
    assert!(matches!(unlocked, Message::Done {}), "{unlocked:?}");
    assert!(begin(&fe_b, "ann", dsc, ip(1)).await.is_ok());

    // The IB Key app on B, the frontend on A (R6): the push crosses, so does the decision.
    let ib = enrol(&admin_a, "ben", DeviceKind::IbKey, &k, "a1b2")
        .await
        .unwrap();
    let mut app = b.connect(Role::Device).await.unwrap();
    prove_device(&app, ib, &k).await.unwrap();
    // A hears of the app through the bus within milliseconds; until then it offers the typed
    // fallback, as for an app that is not connected.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (txn, number) = loop {
        match begin(&fe_a, "ben", ib, ip(2)).await.unwrap() {
            (txn, Challenge::Push { number }) => break (txn, number),
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            (_, other) => panic!("node A never learnt of the app on B: {other:?}"),
        }
    };
    let waiter = await_decision(&fe_a, txn, 10_000);
    let pushed = tokio::time::timeout(Duration::from_secs(5), app.pushes.recv())
        .await
        .expect("the push reaches the app on the other node");
    let Some(Message::Push {
        txn: pushed,
        user,
        nonce,
        ..
    }) = pushed
    else {
        panic!("{pushed:?}")
    };
    assert_eq!((pushed, user.as_str()), (txn, "ben"));
    let v = approve_push(&app, &k, txn, "ben", number, &nonce)
        .await
        .unwrap();
    assert!(
        matches!(
            v,
            Message::Judged {
                verdict: Verdict::Accepted { .. }
            }
        ),
        "{v:?}"
    );
    let awaited = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the frontend's await on A returns")
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_given_another_seal_key_refuses_to_start() {
    let _one = super::one_at_a_time().await;
    let cluster = super::cluster();
    let a = node_a(&cluster, &[]);
    // Node A's first start left the cluster's check value under its key; another key's node
    // says so and exits, instead of answering every user UNAVAILABLE or INTERNAL later.
    let other = tempfile::tempdir().unwrap();
    let key_file = other.path().join("other.key");
    std::fs::write(&key_file, format!("{}\n", "ab".repeat(32))).unwrap();
    let tls = a.tls_dir();
    let store = cluster.store_flag();
    let flags = [
        "--store",
        &store,
        "--tls-dir",
        &tls.to_string_lossy(),
        "--seal-key",
        &key_file.to_string_lossy(),
    ];
    let started = sls_loadgen::daemon::Daemon::start_temp(
        std::path::Path::new(env!("CARGO_BIN_EXE_slsd")),
        &flags,
    );
    let Err(e) = started else {
        panic!("a node with another seal key started")
    };
    let text = format!("{e:#}");
    assert!(text.contains("seal key"), "{text}");
    assert!(
        !text.contains(&"ab".repeat(32)),
        "the key is not printed: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_waits_for_the_store_on_each_of_its_requests_at_once() {
    // Two `Status` requests pipelined on one stream, the first for a user whose shard stalls:
    // the second is answered while the first still waits, not after it.
    let _one = super::one_at_a_time().await;
    let cluster = super::cluster();
    let a = node_a(&cluster, &[]);
    let fe = a.connect(Role::Frontend).await.unwrap();
    let master = |name: &str| cluster.master_of(&format!("{{sls:u:{name}}}")).unwrap();
    let stalled = "s0";
    let other = (1..100)
        .map(|i| format!("s{i}"))
        .find(|n| master(n) != master(stalled))
        .unwrap();
    // Within the node's 2 s reply timeout: the stalled request is answered too, late.
    cluster.pause(master(stalled), 1_000).unwrap();
    let status = |user: &str| Message::Status { user: user.into() };
    let (first, second) = (fe.call(status(stalled)), fe.call(status(&other)));
    tokio::pin!(first, second);
    let answered_first = tokio::select! {
        biased;
        r = &mut first => ("stalled", r),
        r = &mut second => ("other", r),
    };
    assert_eq!(answered_first.0, "other", "{answered_first:?}");
    assert!(matches!(answered_first.1, Ok(Message::UserStatus { .. })));
    let late = first.await.unwrap();
    assert!(matches!(late, Message::UserStatus { .. }), "{late:?}");
}
