//! Two nodes on one cluster store: two cores, each with its own `RedisStore` (own connection,
//! own local locks, own entropy) under the same key prefix, as two slsd processes would be.
//! Within one store a user's updates are serialised locally; across stores only the
//! compare-and-set in Redis serialises them, and these tests are what exercise it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use sls_engine::*;
use sls_protocol::*;

use crate::common::*;
use crate::harness::{Kind, Rig};
use crate::redis::{fresh_prefix, tapped, Redis};

/// Runs after the generic rule tests, on the same cluster.
pub const TESTS: &[(&str, fn())] = &[
    (
        "begin_on_one_node_answer_on_the_other_and_replay_across",
        begin_on_one_node_answer_on_the_other_and_replay_across,
    ),
    (
        "r11_exact_across_two_nodes_racing",
        r11_exact_across_two_nodes_racing,
    ),
    (
        "r11_a_user_read_with_a_transaction_is_never_acted_on_stale",
        r11_a_user_read_with_a_transaction_is_never_acted_on_stale,
    ),
    (
        "r11_a_resent_compare_and_set_is_one_write_and_a_lost_write_leaves_no_aba",
        r11_a_resent_compare_and_set_is_one_write_and_a_lost_write_leaves_no_aba,
    ),
    (
        "r12_a_login_on_the_node_that_began_it_is_two_round_trips",
        r12_a_login_on_the_node_that_began_it_is_two_round_trips,
    ),
    // Last: it stops the cluster.
    (
        "fails_closed_when_the_cluster_is_gone",
        fails_closed_when_the_cluster_is_gone,
    ),
];

pub fn node(prefix: &str, clock: &FakeClock, seed: u64, wait_replicas: usize) -> Rig<Redis> {
    let config = CoreConfig {
        max_open_per_user: 10_000,
        ..no_limits()
    };
    Rig {
        core: Core::new(
            config,
            tapped(prefix, clock, wait_replicas),
            Arc::new(clock.clone()),
            Arc::new(SeededEntropy::new(seed)),
        ),
    }
}

pub fn off_by_one(answer: &str) -> String {
    format!("{:08}", (answer.parse::<u64>().unwrap() + 1) % 100_000_000)
}

fn two_nodes() -> (Rig<Redis>, Rig<Redis>) {
    let clock = FakeClock::default();
    let prefix = fresh_prefix();
    (node(&prefix, &clock, 1, 0), node(&prefix, &clock, 2, 0))
}

fn begin_on_one_node_answer_on_the_other_and_replay_across() {
    let (a, b) = two_nodes();
    let d = dsc(&a, "ann");
    // Enrolled on A, known on B.
    assert_eq!(b.status("ann").unwrap().devices[0].id, d);
    let (txn, ch) = begin(&a, "ann", d);
    let Challenge::Numeric(q) = ch else { panic!() };
    let good = dsc_answer(&q, "1234");
    assert!(matches!(
        b.answer(txn, &good, IP).value,
        Verdict::Accepted { .. }
    ));
    assert_eq!(a.answer(txn, &good, IP).value, Verdict::Replayed);
    assert_eq!(b.answer(txn, &good, IP).value, Verdict::Replayed);
    // Locked on B by failures begun on A: the lock is seen on A.
    for _ in 0..10 {
        let (t, ch) = begin(&a, "ann", d);
        let Challenge::Numeric(q) = ch else { panic!() };
        let _ = b.answer(t, &off_by_one(&dsc_answer(&q, "1234")), IP);
    }
    assert!(matches!(
        begin_verdict(&a, "ann", d),
        Verdict::Locked { .. }
    ));
    // Unlocked on A, seen on B.
    a.unlock("ann").unwrap();
    assert!(matches!(right(&b, "ann", d), Verdict::Accepted { .. }));
}

fn r11_exact_across_two_nodes_racing() {
    // 8 threads, 4 on each node, 200 wrong answers for one user: exactly 10 are evaluated
    // in all, the rest are refused as locked.
    let (a, b) = two_nodes();
    let d = dsc(&a, "rex");
    let mut work = Vec::new();
    for i in 0..200 {
        let (txn, ch) = begin(if i % 2 == 0 { &a } else { &b }, "rex", d);
        let Challenge::Numeric(q) = ch else { panic!() };
        work.push((txn, off_by_one(&dsc_answer(&q, "1234"))));
    }
    let verdicts: Vec<Verdict> = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .chunks(25)
            .enumerate()
            .map(|(i, chunk)| {
                let c = if i % 2 == 0 { a.clone() } else { b.clone() };
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(t, ans)| c.answer(*t, ans, IP).value)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let conflicts = a.core.store().inner.conflicts() + b.core.store().inner.conflicts();
    eprintln!("     {conflicts} compare-and-set conflicts between the two nodes");
    let evaluated = |c: &Rig<Redis>| c.counters().failures_evaluated.load(Ordering::Relaxed);
    assert_eq!(evaluated(&a) + evaluated(&b), 10, "exactly 10 evaluated");
    let rejected = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Rejected { .. }))
        .count();
    assert_eq!(rejected, 9, "{verdicts:?}");
    assert_eq!(
        verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Locked { .. }))
            .count(),
        191
    );
    assert!(matches!(
        begin_verdict(&a, "rex", d),
        Verdict::Locked { .. }
    ));
    assert!(matches!(
        begin_verdict(&b, "rex", d),
        Verdict::Locked { .. }
    ));
}

fn r11_a_user_read_with_a_transaction_is_never_acted_on_stale() {
    // Reading a transaction brings its user's value in the same round trip, for the update
    // that follows (an answer's). Read on A, then changed on B: A's next update of the user
    // must decide on B's change, whichever way it goes.
    let clock = FakeClock::default();
    let prefix = fresh_prefix();
    let (a, b) = (node(&prefix, &clock, 7, 0), node(&prefix, &clock, 8, 0));
    let d = dsc(&a, "una");
    let (txn, _) = begin(&a, "una", d);
    let read_on_a = || {
        let entry = Redis::block_on(a.core.store().txn_get(txn, 0)).unwrap();
        assert_eq!(entry.map(|e| e.user.to_string()).as_deref(), Some("una"));
    };
    // Read while open, locked on B: the challenge a stale read would issue is a write, which
    // the compare-and-set refuses; the rule runs again on the locked user.
    read_on_a();
    for _ in 0..10 {
        b.password_failed("una", IP).unwrap();
    }
    assert!(
        matches!(begin_verdict(&a, "una", d), Verdict::Locked { .. }),
        "decided on the value read before the lock"
    );
    // Read while locked, unlocked on B: `locked` would change nothing, so nothing would
    // check the version; it is not decided on the value read before.
    read_on_a();
    b.unlock("una").unwrap();
    let (_, challenge) = begin(&a, "una", d);
    assert!(matches!(challenge, Challenge::Numeric(_)));
}

/// A compare-and-set's reply: the new count, or a refusal's code and the value as it is now
/// (`v`, `s`, `w`).
type CasReply = Result<i64, (i64, (Option<i64>, Option<String>, Option<String>))>;

fn r11_a_resent_compare_and_set_is_one_write_and_a_lost_write_leaves_no_aba() {
    // The script itself, as the store sends it (and as the client re-sends it after a reply
    // that timed out).
    Redis::block_on(async {
        let mut r = crate::sealed::plain_connection().await;
        let key = format!("{{{}:u:zoe}}", fresh_prefix());
        let script = redis::Script::new(sls_redis::keys::CAS);
        let conn = r.clone();
        let cas = |base: &'static str, value: &'static str, write: &'static str| {
            let (key, script, mut conn) = (key.clone(), script.clone(), conn.clone());
            async move {
                let reply: Vec<redis::Value> = script
                    .key(key)
                    .arg(base)
                    .arg(value)
                    .arg(write)
                    .invoke_async(&mut conn)
                    .await
                    .unwrap();
                let status: i64 = redis::from_redis_value(reply[0].clone()).unwrap();
                if status >= 0 {
                    CasReply::Ok(status)
                } else {
                    Err((status, redis::from_redis_value(reply[1].clone()).unwrap()))
                }
            }
        };
        let now = |v: i64, s: Option<&str>, w: &str| -> CasReply {
            Err((-1, (Some(v), s.map(String::from), Some(w.into()))))
        };
        assert_eq!(cas("0", "a", "n:1").await, Ok(1));
        // The same write again (its reply was lost): success, not a conflict; nothing changes.
        assert_eq!(cas("0", "a", "n:1").await, Ok(1));
        // Another write from the same stale base: refused, with the value as it is now.
        assert_eq!(cas("0", "b", "n:2").await, now(1, Some("a"), "n:1"));
        assert_eq!(cas("n:1", "b", "n:3").await, Ok(2));
        // Deleted (a tombstone: a count and a write, no value), then created again.
        assert_eq!(cas("n:3", "", "n:4").await, Ok(3));
        assert_eq!(cas("n:3", "", "n:4").await, Ok(3), "a re-sent delete");
        assert_eq!(cas("0", "stale", "m:1").await, now(3, None, "n:4"));
        assert_eq!(cas("n:4", "c", "n:5").await, Ok(4));
        // A failover lost the write n:5: the key is back as n:4 left it, at count 3. Another
        // node writes from there, and the count is 4 again. A node that read n:5 (count 4)
        // must not write over that: the condition is the write, not the count.
        let () = redis::cmd("HSET")
            .arg(&key)
            .arg(&["v", "3", "w", "n:4", "p", "n:3 n:1"])
            .query_async(&mut r)
            .await
            .unwrap();
        let () = redis::cmd("HDEL")
            .arg(&key)
            .arg("s")
            .query_async(&mut r)
            .await
            .unwrap();
        assert_eq!(cas("n:4", "other", "o:1").await, Ok(4));
        assert_eq!(
            cas("n:5", "lost update", "n:6").await,
            now(4, Some("other"), "o:1")
        );
        // x's write applies but its reply is lost; y and z write after it; the client sends
        // x's again: it is recognised as applied (-2, with the value as it is now), not run
        // again as a stale one (a failure counted twice). A write never applied is stale.
        assert_eq!(cas("o:1", "x", "x:1").await, Ok(5));
        assert_eq!(cas("x:1", "y", "y:1").await, Ok(6));
        let after_one = Err((-2, (Some(6), Some("y".into()), Some("y:1".into()))));
        assert_eq!(cas("o:1", "x", "x:1").await, after_one);
        assert_eq!(cas("y:1", "z", "z:1").await, Ok(7));
        let applied = Err((-2, (Some(7), Some("z".into()), Some("z:1".into()))));
        assert_eq!(cas("o:1", "x", "x:1").await, applied);
        assert_eq!(cas("o:1", "never", "q:1").await, now(7, Some("z"), "z:1"));
        // A third write after it and x's id is out of the hash: its re-send looks stale.
        assert_eq!(cas("z:1", "t", "t:1").await, Ok(8));
        assert_eq!(cas("o:1", "x", "x:1").await, now(8, Some("t"), "t:1"));
    });
}

fn r12_a_login_on_the_node_that_began_it_is_two_round_trips() {
    // begin: the user's write with its transaction (no read: the node knows the user);
    // answer: the user's write with the verdict (no read: the node bound the transaction and
    // wrote the user). A replay on that node: none.
    let clock = FakeClock::default();
    let prefix = fresh_prefix();
    let (a, b) = (node(&prefix, &clock, 11, 0), node(&prefix, &clock, 12, 0));
    let d = dsc(&a, "ola");
    let sent = |c: &Rig<Redis>| c.core.store().inner.round_trips();
    let _ = right(&a, "ola", d);
    let before = sent(&a);
    let (txn, ch) = begin(&a, "ola", d);
    let Challenge::Numeric(q) = ch else { panic!() };
    assert_eq!(sent(&a) - before, 1, "begin");
    let good = dsc_answer(&q, "1234");
    assert!(matches!(
        a.answer(txn, &good, IP).value,
        Verdict::Accepted { .. }
    ));
    assert_eq!(sent(&a) - before, 2, "begin + answer");
    assert_eq!(a.answer(txn, &good, IP).value, Verdict::Replayed);
    assert_eq!(sent(&a) - before, 2, "a replay on the node that spent it");
    // Logged in on B meanwhile: A's guess is stale. Its compare-and-set is refused with the
    // value as it is now, and the rule runs again on that: two round trips, not a read more.
    let _ = right(&b, "ola", d);
    let before = sent(&a);
    let (txn, ch) = begin(&a, "ola", d);
    assert_eq!(sent(&a) - before, 2, "a stale guess");
    let Challenge::Numeric(q) = ch else { panic!() };
    // Answered on B, then replayed on A: A still thinks it open, its user proves it spent.
    assert!(matches!(
        b.answer(txn, &dsc_answer(&q, "1234"), IP).value,
        Verdict::Accepted { .. }
    ));
    let (before, stale) = (sent(&a), a.core.store().inner.stale_guesses());
    let txn_reads = |c: &Rig<Redis>| c.core.store().inner.commands()[1];
    let read_before = txn_reads(&a);
    assert_eq!(
        a.answer(txn, &dsc_answer(&q, "1234"), IP).value,
        Verdict::Replayed
    );
    assert_eq!(read_before.0, sls_redis::Command::TxnRead);
    assert_eq!(
        (
            sent(&a) - before,
            a.core.store().inner.stale_guesses() - stale,
            txn_reads(&a).1 - read_before.1
        ),
        (1, 1, 0),
        "one refused write, no read of the transaction"
    );
    assert!(matches!(right(&a, "ola", d), Verdict::Accepted { .. }));
}

fn fails_closed_when_the_cluster_is_gone() {
    let clock = FakeClock::default();
    let c = node(&fresh_prefix(), &clock, 4, 0);
    let d = dsc(&c, "zed");
    let (txn, ch) = begin(&c, "zed", d);
    let Challenge::Numeric(q) = ch else { panic!() };
    crate::redis::stop_cluster();
    let start = std::time::Instant::now();
    let r = Redis::block_on(c.core.answer(txn, &dsc_answer(&q, "1234"), IP));
    assert!(
        matches!(r, Err(StoreError::Unavailable(_))),
        "an answer that cannot be recorded is refused: {r:?}"
    );
    let r = Redis::block_on(c.core.enrol_user(&UserSpec {
        name: "yan".into(),
        ..UserSpec::default()
    }));
    assert!(matches!(r, Err(Error::Store(_))), "{r:?}");
    eprintln!("refused after {:?}", start.elapsed());
}
