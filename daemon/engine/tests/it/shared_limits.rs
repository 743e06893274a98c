//! The per-user rate limit on a shared store (issue 12, item 6): exact across nodes, kept in
//! Redis by the GCRA script, which decides as `sls_core::gcra` does. Per-address and node-wide
//! limits stay per node (their rule test runs on every store).

use std::sync::Arc;
use std::time::Duration;

use sls_core::gcra::{gcra, retry_after_ms};
use sls_engine::*;
use sls_protocol::*;

use crate::common::*;
use crate::harness::{Kind, Rig};
use crate::redis::{fresh_prefix, tapped, Redis};

/// Runs after the generic rule tests, on the same cluster.
pub const TESTS: &[(&str, fn())] = &[
    (
        "per_user_limit_exact_across_two_nodes_and_other_users_unaffected",
        per_user_limit_exact_across_two_nodes_and_other_users_unaffected,
    ),
    (
        "the_lua_limiter_decides_as_core_gcra_step_by_step",
        the_lua_limiter_decides_as_core_gcra_step_by_step,
    ),
    (
        "a_token_costs_no_round_trip_and_a_refused_request_writes_nothing",
        a_token_costs_no_round_trip_and_a_refused_request_writes_nothing,
    ),
];

const PER_USER: u32 = 2;
const BURST: u32 = 6;

fn node(prefix: &str, clock: &FakeClock, seed: u64) -> Rig<Redis> {
    let config = CoreConfig {
        rates: RatePolicy {
            per_user: PER_USER,
            per_user_burst: BURST,
            per_client: 0,
            per_client_burst: 0,
            global: 0,
        },
        max_open_per_user: 10_000,
        ..CoreConfig::default()
    };
    Rig {
        core: Core::new(
            config,
            tapped(prefix, clock, 0),
            Arc::new(clock.clone()),
            Arc::new(SeededEntropy::new(seed)),
        ),
    }
}

fn try_begin(c: &Rig<Redis>, user: &str, d: DeviceId) -> BeginResult {
    c.begin(
        &BeginRequest {
            user,
            purpose: Purpose::Login,
            device: Some(d),
            client: IP,
        },
        false,
    )
    .unwrap()
    .value
}

/// `2 × BURST` begins for `user`, alternately on each node, at one instant: how many were
/// let through (whatever the verdict after the limit), and the refusals' retry-afters.
fn fire(a: &Rig<Redis>, b: &Rig<Redis>, user: &str, d: DeviceId) -> (u32, Vec<u32>) {
    let mut through = 0;
    let mut retry = Vec::new();
    for i in 0..2 * BURST {
        match try_begin(if i % 2 == 0 { a } else { b }, user, d) {
            BeginResult::Verdict(Verdict::RateLimited { retry_after_ms }) => {
                retry.push(retry_after_ms);
            }
            _ => through += 1,
        }
    }
    (through, retry)
}

fn per_user_limit_exact_across_two_nodes_and_other_users_unaffected() {
    let clock = FakeClock::default();
    let prefix = fresh_prefix();
    let (a, b) = (node(&prefix, &clock, 1), node(&prefix, &clock, 2));
    let d = dsc(&a, "pat");
    let interval_ms = 1000 / PER_USER;
    // Per node, each would let BURST through: 2 × BURST in all. Shared: BURST.
    let (through, retry) = fire(&a, &b, "pat", d);
    assert_eq!(through, BURST);
    assert_eq!(retry.len(), BURST as usize);
    assert!(retry.iter().all(|r| *r == interval_ms), "{retry:?}");
    let limited = |c: &Rig<Redis>| {
        c.counters()
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(limited(&a) + limited(&b), u64::from(BURST));
    assert!(limited(&a) > 0 && limited(&b) > 0, "refused on both nodes");
    // Another user, on either node, has their own tokens.
    let d2 = dsc(&b, "quin");
    assert!(matches!(
        try_begin(&a, "quin", d2),
        BeginResult::Challenge { .. }
    ));
    assert!(matches!(
        try_begin(&b, "quin", d2),
        BeginResult::Challenge { .. }
    ));
    // An unknown user is limited exactly like a known one: the limiter tells nothing.
    let (through, retry) = fire(&a, &b, "nobody", d);
    assert_eq!((through, retry.len()), (BURST, BURST as usize));
    // One interval later, one more request of pat's passes, on either node, and only one.
    clock.advance(Duration::from_millis(u64::from(interval_ms)));
    assert!(matches!(
        try_begin(&b, "pat", d),
        BeginResult::Challenge { .. }
    ));
    assert!(matches!(
        try_begin(&a, "pat", d),
        BeginResult::Verdict(Verdict::RateLimited { retry_after_ms }) if retry_after_ms == interval_ms
    ));
}

fn the_lua_limiter_decides_as_core_gcra_step_by_step() {
    // 3/s: an interval of 333,333 µs, not a whole number of milliseconds.
    let quota = UserQuota::of(&RatePolicy {
        per_user: 3,
        per_user_burst: 5,
        ..RatePolicy::default()
    })
    .unwrap();
    let clock = FakeClock::default();
    let store = tapped(&fresh_prefix(), &clock, 0);
    let mut now_ms = u64::try_from(clock.now().as_millis()).unwrap();
    let mut tat = None;
    let (mut taken, mut refused) = (0, 0);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for step in 0..400 {
        // Mostly bursts (0 ms apart), sometimes a pause of up to 2.5 s.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        now_ms += if x % 4 == 0 { x % 2500 } else { x % 40 };
        let theirs = Redis::block_on(store.inner.take_user_token("ray", now_ms, quota)).unwrap();
        let ours = match gcra(tat, now_ms * 1000, quota) {
            Ok(t) => {
                tat = Some(t);
                taken += 1;
                Limited::Passed(())
            }
            Err(w) => {
                refused += 1;
                Limited::Refused {
                    retry_after_ms: retry_after_ms(w),
                }
            }
        };
        assert_eq!(theirs, ours, "step {step} at {now_ms} ms");
    }
    assert!(
        taken > 50 && refused > 50,
        "{taken} taken, {refused} refused"
    );
}

/// The count of `user`'s writes in Redis (`v`).
fn writes_of(prefix: &str, user: &str) -> u64 {
    Redis::block_on(async {
        let mut r = crate::sealed::plain_connection().await;
        let v: Option<u64> = redis::cmd("HGET")
            .arg(format!("{{{prefix}:u:{user}}}"))
            .arg("v")
            .query_async(&mut r)
            .await
            .unwrap();
        v.unwrap_or(0)
    })
}

fn a_token_costs_no_round_trip_and_a_refused_request_writes_nothing() {
    // The token rides on the request's own read or write of its user.
    let clock = FakeClock::default();
    let prefix = fresh_prefix();
    let (a, b) = (node(&prefix, &clock, 3), node(&prefix, &clock, 4));
    let d = dsc(&a, "lee");
    let sent = |c: &Rig<Redis>| c.core.store().inner.round_trips();
    let alone = |c: &Rig<Redis>| {
        let (command, n) = c.core.store().inner.commands()[6];
        assert_eq!(command, sls_redis::Command::Token);
        n
    };
    // A login on the node that knows its user: begin and answer each write the user once,
    // with the token in the same script.
    let before = sent(&a);
    assert!(matches!(right(&a, "lee", d), Verdict::Accepted { .. }));
    assert_eq!(sent(&a) - before, 2, "a login, both tokens taken");
    // An unknown name: one round trip too (its read takes the token).
    let before = sent(&a);
    assert!(!matches!(
        try_begin(&a, "nemo", d),
        BeginResult::Verdict(Verdict::RateLimited { .. })
    ));
    assert_eq!(sent(&a) - before, 1, "an unknown name's begin");
    // The rest of lee's burst, then a refusal: one round trip, and the user's writes do not
    // move.
    for _ in 2..BURST {
        assert!(matches!(
            try_begin(&a, "lee", d),
            BeginResult::Challenge { .. }
        ));
    }
    let (writes, before) = (writes_of(&prefix, "lee"), sent(&a));
    assert!(matches!(
        try_begin(&a, "lee", d),
        BeginResult::Verdict(Verdict::RateLimited { retry_after_ms }) if retry_after_ms == 1000 / PER_USER
    ));
    assert_eq!(sent(&a) - before, 1, "a refused begin");
    assert_eq!(
        writes_of(&prefix, "lee"),
        writes,
        "a refused begin writes nothing"
    );
    // B changes lee; A's guess is stale, and on the value as it is now its begin writes
    // nothing: its token is taken alone, once.
    clock.advance(Duration::from_secs(u64::from(BURST)));
    b.opt_out("lee").unwrap();
    let writes = writes_of(&prefix, "lee");
    assert_eq!(alone(&a), 0, "every token so far rode on a read or a write");
    let _ = try_begin(&a, "lee", d);
    assert_eq!(
        writes_of(&prefix, "lee"),
        writes,
        "an opted-out login writes nothing"
    );
    assert_eq!(alone(&a), 1, "the token taken alone");
    // Each node took tokens from the same bucket: BURST - 1 more pass, on either node.
    let (through, _) = fire(&a, &b, "lee", d);
    assert_eq!(through, BURST - 1);
}
