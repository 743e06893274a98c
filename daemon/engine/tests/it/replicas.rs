//! With `--redis-wait-replicas 1` on a real cluster whose replicas are killed: a change is
//! acknowledged only once its shard's replica has it, a shard without its replica refuses only
//! its own users' changes, and a write outside its user's slot waits for that shard too.

use sls_engine::*;
use sls_protocol::*;

use crate::common::*;
use crate::harness::Kind;
use crate::nodes::{node, off_by_one};
use crate::redis::{fresh_prefix, with_cluster, Redis};

/// Runs after the generic rule tests, on the same cluster (each brings back what it killed).
pub const TESTS: &[(&str, fn())] = &[
    (
        "r11_a_failure_waits_for_its_own_shards_replica_only",
        r11_a_failure_waits_for_its_own_shards_replica_only,
    ),
    (
        "a_spent_challenge_waits_for_a_replica_too",
        a_spent_challenge_waits_for_a_replica_too,
    ),
    (
        "an_ib_key_enrolment_waits_for_the_shard_of_its_owner_index",
        an_ib_key_enrolment_waits_for_the_shard_of_its_owner_index,
    ),
    (
        "r11_a_failure_whose_connection_dropped_before_its_round_is_not_acknowledged_unreplicated",
        r11_a_failure_whose_connection_dropped_before_its_round_is_not_acknowledged_unreplicated,
    ),
];

/// The port of the master that serves `key` now.
fn master_of_key(key: &str) -> u16 {
    with_cluster(|k| k.master_of(key).expect("a master serves it"))
}

/// Kills a replica of `master`; returns its port.
fn kill_replica_of(master: u16) -> u16 {
    with_cluster(|k| {
        let replica = k.replicas_of(master)[0];
        k.kill_node(replica).unwrap();
        replica
    })
}

/// Starts `replica` again and waits until every master has one.
fn bring_back(replica: u16) {
    with_cluster(|k| {
        k.start_node(replica).unwrap();
        k.wait_ok(3, std::time::Duration::from_secs(30)).unwrap();
    });
}

fn refused_for_want_of_a_replica<T: std::fmt::Debug>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::Store(StoreError::Unavailable(m))) if m.to_string().contains("WAIT"))
}

fn r11_a_failure_waits_for_its_own_shards_replica_only() {
    // wait_replicas 1: a failure's ticket resolves once its master's replica acknowledged.
    let clock = FakeClock::default();
    let prefix = fresh_prefix();
    let c = node(&prefix, &clock, 3, 1);
    let master_of = |user: &str| master_of_key(&format!("{{{prefix}:u:{user}}}"));
    // A user on the shard that also keeps the device ids (`{P:n:device}`).
    let ids_master = master_of_key(&format!("{{{prefix}:n:device}}"));
    let wes = (0..100)
        .map(|i| format!("wes{i}"))
        .find(|u| master_of(u) == ids_master)
        .expect("a user beside the device ids");
    let wes = wes.as_str();
    let d = dsc(&c, wes);
    let wes_master = master_of(wes);
    // A user whose slot another master serves.
    let other = (0..100)
        .map(|i| format!("xen{i}"))
        .find(|u| master_of(u) != wes_master)
        .expect("a user on another shard");
    let d_other = dsc(&c, &other);
    let fail = |user: &str, d: DeviceId| {
        let (txn, ch) = begin(&c, user, d);
        let Challenge::Numeric(q) = ch else { panic!() };
        Redis::block_on(async {
            let out = c
                .core
                .answer(txn, &off_by_one(&dsc_answer(&q, "1234")), IP)
                .await?;
            assert!(matches!(out.value, Verdict::Rejected { .. }));
            c.core.store().durable(out.ticket.expect("a failure")).await
        })
    };
    fail(wes, d).unwrap();
    // wes's shard without its replica: the next failure is recorded on its master but cannot
    // be made durable on a replica, so it is refused, never acknowledged (R11). Another
    // shard's users are not refused with it.
    let replica = kill_replica_of(wes_master);
    let r = fail(wes, d);
    assert!(
        matches!(&r, Err(StoreError::Unavailable(m)) if m.to_string().contains("WAIT")),
        "{r:?}"
    );
    fail(&other, d_other).expect("another shard's failure is acknowledged");
    // A new device of that other user needs a new id, kept on wes's shard: refused, as a
    // failover could hand the id out again.
    let spec = DeviceSpec {
        kind: DeviceKind::DscPlus,
        secret: vec![7; 20],
        pin: "1234".into(),
        suite: String::new(),
    };
    let r = Redis::block_on(c.core.enrol_device(&other, &spec));
    assert!(refused_for_want_of_a_replica(&r), "{r:?}");
    // Back, linked to its master again: acknowledged again.
    bring_back(replica);
    fail(wes, d).unwrap();
    Redis::block_on(c.core.enrol_device(&other, &spec)).unwrap();
}

fn a_spent_challenge_waits_for_a_replica_too() {
    // A verified answer records nothing (no failure, no reset), but it spends the challenge:
    // were that write lost in a failover, the challenge would be open again and the same
    // answer could be replayed (R12). Its verdict waits for the replicas too; on a store that
    // waits for none, nothing to wait for.
    let clock = FakeClock::default();
    let c = node(&fresh_prefix(), &clock, 5, 1);
    let d = dsc(&c, "xia");
    // The challenge it opens is not waited for: a failover that lost it loses an open
    // challenge (answered `unknown`, as after a restart); the spend's wait covers it.
    let request = BeginRequest {
        user: "xia",
        purpose: Purpose::Login,
        device: Some(d),
        client: IP,
    };
    let opened = c.begin(&request, false).unwrap();
    assert!(
        !opened.waits,
        "a begin that only opened a challenge waits for no replica"
    );
    let BeginResult::Challenge {
        txn,
        challenge: Challenge::Numeric(q),
        ..
    } = opened.value
    else {
        panic!("{:?}", opened.value)
    };
    let out = Redis::block_on(c.core.answer(txn, &dsc_answer(&q, "1234"), IP)).unwrap();
    assert!(matches!(out.value, Verdict::Accepted { .. }));
    let ticket = out
        .ticket
        .expect("the spend is replicated before the verdict leaves");
    Redis::block_on(c.core.store().durable(ticket)).unwrap();
    let unwaited = node(&fresh_prefix(), &clock, 6, 0);
    let d = dsc(&unwaited, "yves");
    let (txn, ch) = begin(&unwaited, "yves", d);
    let Challenge::Numeric(q) = ch else { panic!() };
    let out = Redis::block_on(unwaited.core.answer(txn, &dsc_answer(&q, "1234"), IP)).unwrap();
    assert_eq!(out.ticket, None);
}

fn an_ib_key_enrolment_waits_for_the_shard_of_its_owner_index() {
    // An IB Key device's owner is indexed under `{P:ib:<id>}`, a slot of its own: the
    // enrolment's ticket joins that shard's with the user's.
    let clock = FakeClock::default();
    let prefix = fresh_prefix();
    let c = node(&prefix, &clock, 5, 1);
    let ids_master = master_of_key(&format!("{{{prefix}:n:device}}"));
    let next_id = || -> u64 {
        Redis::block_on(async {
            let mut r = crate::sealed::plain_connection().await;
            let n: Option<u64> = redis::cmd("GET")
                .arg(format!("{{{prefix}:n:device}}"))
                .query_async(&mut r)
                .await
                .unwrap();
            n.unwrap_or(0) + 1
        })
    };
    // Devices of others until the next id's index lies on another shard than the ids.
    let mut filler = 0;
    let index_master = loop {
        let m = master_of_key(&format!("{{{prefix}:ib:{}}}", next_id()));
        if m != ids_master {
            break m;
        }
        dsc(&c, &format!("fill{filler}"));
        filler += 1;
        assert!(filler < 50, "the ids' shard every time");
    };
    // The owner on yet another shard than the index.
    let owner = (0..100)
        .map(|i| format!("own{i}"))
        .find(|u| master_of_key(&format!("{{{prefix}:u:{u}}}")) != index_master)
        .expect("a user on another shard");
    user(&c, &owner);
    let spec = DeviceSpec {
        kind: DeviceKind::IbKey,
        secret: vec![9; 32],
        pin: "1234".into(),
        suite: String::new(),
    };
    let enrol = || {
        Redis::block_on(async {
            let out = c.core.enrol_device(&owner, &spec).await?;
            let ticket = out.ticket.expect("an enrolment is recorded");
            c.core.store().durable(ticket).await?;
            Ok::<_, Error>(out.value)
        })
    };
    let replica = kill_replica_of(index_master);
    let r = enrol();
    assert!(refused_for_want_of_a_replica(&r), "{r:?}");
    bring_back(replica);
    enrol().unwrap();
}

fn r11_a_failure_whose_connection_dropped_before_its_round_is_not_acknowledged_unreplicated() {
    // `WAIT` counts the replicas that have the master's stream up to the last write of the
    // connection it is sent on. Were the round's `WAIT` sent on a connection that had written
    // nothing (the node's connection dropped between the failure's write and its round, and
    // came back), it would answer at once, and a failure its replica never had would be
    // acknowledged: lost if that master crashed then. The round writes a mark on the master
    // first, on its own connection, so its `WAIT` covers every write the master made before.
    let clock = FakeClock::default();
    let prefix = fresh_prefix();
    let c = node(&prefix, &clock, 11, 1);
    let d = dsc(&c, "yul");
    let master = master_of_key(&format!("{{{prefix}:u:yul}}"));
    let replica = with_cluster(|k| k.replicas_of(master)[0]);
    let fail = || {
        let (txn, ch) = begin(&c, "yul", d);
        let Challenge::Numeric(q) = ch else { panic!() };
        Redis::block_on(async {
            let out = c
                .core
                .answer(txn, &off_by_one(&dsc_answer(&q, "1234")), IP)
                .await
                .expect("judged");
            assert!(matches!(out.value, Verdict::Rejected { .. }));
            out.ticket.expect("a failure")
        })
    };
    let ticket = fail();
    // The replica stops acknowledging (frozen, still linked), then every client connection to
    // the master drops, and the node's next request (a read of the same user) reconnects
    // before the failure's round runs.
    with_cluster(|k| {
        k.freeze_node(replica).unwrap();
        assert!(
            k.drop_clients(master).unwrap() > 0,
            "the node's connection dropped"
        );
    });
    // A plain read, which writes nothing (a request's would take its rate token in a
    // script, a write). The client's first tries may ask the frozen replica for the slot map,
    // and time out.
    let read = (0..10).find_map(|_| Redis::block_on(c.core.store().read("yul", |_| ())).ok());
    assert!(read.is_some(), "a read reconnects");
    let r = Redis::block_on(c.core.store().durable(ticket));
    with_cluster(|k| k.thaw_node(replica).unwrap());
    assert!(
        matches!(&r, Err(StoreError::Unavailable(m)) if m.to_string().contains("WAIT")),
        "a failure its replica does not have is refused, not acknowledged: {r:?}"
    );
    // The replica back and caught up: the next failure is acknowledged.
    with_cluster(|k| k.wait_ok(3, std::time::Duration::from_secs(30)).unwrap());
    let next = fail();
    Redis::block_on(c.core.store().durable(next)).expect("acknowledged");
}
