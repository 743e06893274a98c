//! Secrets at rest on the cluster store (issue 12, item 5): what Redis holds for a user is
//! sealed, bound to its key, and opens under the nodes' seal key only. Read raw through a
//! plain cluster connection, as anyone with access to Redis (or its AOF files) would.

use std::sync::Arc;

use redis::AsyncCommands;
use sls_engine::*;
use sls_protocol::*;
use sls_redis::SealKey;

use crate::common::*;
use crate::harness::{Kind, Rig};
use crate::redis::{fresh_prefix, tapped_with, test_seal_key, Redis, NODES};

/// Runs after the generic rule tests, on the same cluster.
pub const TESTS: &[(&str, fn())] = &[
    (
        "a_users_value_in_redis_holds_neither_device_secret_nor_name_in_plain",
        a_users_value_in_redis_holds_neither_device_secret_nor_name_in_plain,
    ),
    (
        "a_node_with_another_seal_key_gets_damaged_not_a_panic_nor_plain",
        a_node_with_another_seal_key_gets_damaged_not_a_panic_nor_plain,
    ),
    (
        "a_value_copied_onto_another_users_key_does_not_open",
        a_value_copied_onto_another_users_key_does_not_open,
    ),
];

fn node(prefix: &str, clock: &FakeClock, seal: SealKey) -> Rig<Redis> {
    Rig {
        core: Core::new(
            no_limits(),
            tapped_with(prefix, clock, 0, seal),
            Arc::new(clock.clone()),
            Arc::new(SeededEntropy::new(7)),
        ),
    }
}

/// The `s` field of `{prefix:u:user}`, as stored.
fn raw_state(prefix: &str, user: &str) -> Vec<u8> {
    Redis::block_on(async {
        let mut c = plain_connection().await;
        let s: Option<Vec<u8>> = c.hget(format!("{{{prefix}:u:{user}}}"), "s").await.unwrap();
        s.expect("the user's key holds a state")
    })
}

pub async fn plain_connection() -> redis::cluster_async::ClusterConnection {
    let nodes = NODES.lock().clone();
    redis::cluster::ClusterClient::new(nodes)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn damaged<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Store(StoreError::Damaged(m))) => m.to_string(),
        other => panic!("expected Damaged: {other:?}"),
    }
}

fn a_users_value_in_redis_holds_neither_device_secret_nor_name_in_plain() {
    let prefix = fresh_prefix();
    let clock = FakeClock::default();
    let c = node(&prefix, &clock, test_seal_key());
    let name = "sealedann7q";
    let d = dsc(&c, name);
    assert!(matches!(right(&c, name, d), Verdict::Accepted { .. }));
    // In plain, the state holds both: the test looks for something that is there.
    let plain = Redis::block_on(c.core.store().read(name, |u| {
        let mut v = Vec::new();
        u.encode(&mut v);
        v
    }))
    .unwrap()
    .unwrap();
    assert!(contains(&plain, &KEY), "the encoded state holds the secret");
    let raw = raw_state(&prefix, name);
    assert_eq!(raw[0], 1, "format 1");
    assert!(raw.len() >= plain.len() + 29);
    assert!(
        !contains(&raw, &KEY),
        "the device secret is in Redis in plain"
    );
    assert!(
        !contains(&raw, &KEY[..8]),
        "a piece of the secret is in plain"
    );
    assert!(
        !contains(&raw, name.as_bytes()),
        "the user's name is in plain"
    );
}

fn a_node_with_another_seal_key_gets_damaged_not_a_panic_nor_plain() {
    let prefix = fresh_prefix();
    let clock = FakeClock::default();
    let a = node(&prefix, &clock, test_seal_key());
    let d = dsc(&a, "kim");
    // A store given another key does not even connect: the check value left by the first
    // store under this prefix does not open.
    let other = SealKey::generate();
    let config = sls_redis::RedisConfig::new(NODES.lock().clone(), prefix.as_str(), other.clone());
    let refused = crate::redis::runtime().block_on(sls_redis::RedisStore::connect(config));
    assert!(
        matches!(&refused, Err(StoreError::Damaged(m)) if m.to_string().contains("seal key")),
        "{refused:?}"
    );
    // With the check value gone (as if the first node had never left it), each value still
    // refuses to open under the wrong key.
    Redis::block_on(async {
        let mut r = plain_connection().await;
        let () = r.del(format!("{{{prefix}:seal:}}")).await.unwrap();
    });
    let b = node(&prefix, &clock, other);
    let m = damaged(Redis::block_on(b.core.status("kim")));
    assert!(
        m.contains("does not open: wrong seal key or damaged value"),
        "{m}"
    );
    // Every path that reads the user refuses: a begin, an answer, an enrolment on it.
    damaged(Redis::block_on(b.core.begin(
        &BeginRequest {
            user: "kim",
            purpose: Purpose::Login,
            device: Some(d),
            client: IP,
        },
        false,
    )));
    let (txn, ch) = begin(&a, "kim", d);
    let Challenge::Numeric(q) = ch else { panic!() };
    let r = Redis::block_on(b.core.answer(txn, &dsc_answer(&q, "1234"), IP));
    assert!(matches!(r, Err(StoreError::Damaged(_))), "{r:?}");
    damaged(Redis::block_on(b.core.password_failed("kim", IP)));
    // Nothing was written over it: the right node still reads the user, unchanged.
    assert!(matches!(right(&a, "kim", d), Verdict::Accepted { .. }));
    assert_eq!(a.status("kim").unwrap().failures, 0);
}

fn a_value_copied_onto_another_users_key_does_not_open() {
    let prefix = fresh_prefix();
    let clock = FakeClock::default();
    let c = node(&prefix, &clock, test_seal_key());
    let d = dsc(&c, "lea");
    dsc(&c, "max");
    // Whoever can write to Redis copies lea's value (and devices) onto max's key.
    Redis::block_on(async {
        let mut r = plain_connection().await;
        let (v, s): (u64, Vec<u8>) = redis::cmd("HMGET")
            .arg(format!("{{{prefix}:u:lea}}"))
            .arg(&["v", "s"])
            .query_async(&mut r)
            .await
            .unwrap();
        let () = r
            .hset_multiple(
                format!("{{{prefix}:u:max}}"),
                &[("v", v.to_string().into_bytes()), ("s", s)],
            )
            .await
            .unwrap();
    });
    let m = damaged(Redis::block_on(c.core.status("max")));
    assert!(m.contains(":u:max}") && m.contains("does not open"), "{m}");
    // lea's own key still opens.
    assert!(matches!(right(&c, "lea", d), Verdict::Accepted { .. }));
}
