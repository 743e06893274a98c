//! The verifier core against a directory of 1 M enrolled DSC+ users, random access (cold
//! caches), beside the bare OCRA verification in the same run; and the memory per enrolled
//! user: `cargo bench -p sls-benches --bench core`. The embedded store's futures are ready at
//! once: `block_on` polls them once.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::FutureExt;
use rand::Rng;
use sls_daemon::engine::{BeginRequest, BeginResult, Core, CoreConfig, RatePolicy, SystemClock};
use sls_protocol::ocra::{self, OcraInput, OcraSuite};
use sls_protocol::{BulkRecord, Challenge, DeviceId, DeviceKind, Purpose, Verdict};

const USERS: usize = 1_000_000;
const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

/// The embedded store's futures are ready when first polled.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never().expect("the embedded store never waits")
}

fn key(i: usize) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&(i as u64).to_le_bytes());
    k[8..16].copy_from_slice(&(i as u64 ^ 0x5a5a_5a5a).to_le_bytes());
    k
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

fn enrolled() -> (Core, Vec<DeviceId>) {
    let config = CoreConfig {
        rates: RatePolicy {
            per_user: 0,
            per_client: 0,
            global: 0,
            ..RatePolicy::default()
        },
        max_open_txns: usize::MAX,
        ..CoreConfig::default()
    };
    let core = Core::in_memory(config, Arc::new(SystemClock));
    let before = rss_bytes();
    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(USERS);
    let mut batch = Vec::with_capacity(512);
    for i in 0..USERS {
        batch.push(BulkRecord {
            user: format!("user{i}"),
            kind: DeviceKind::DscPlus,
            secret: key(i).to_vec(),
            pin: format!("{:04}", i % 10_000),
            suite: String::new(),
        });
        if batch.len() == 512 || i + 1 == USERS {
            for r in block_on(core.enrol_bulk(&batch)).expect("store").value {
                ids.push(r.expect("enrolled"));
            }
            batch.clear();
        }
    }
    let took = t0.elapsed();
    let after = rss_bytes();
    eprintln!(
        "enrolled {USERS} DSC+ users in {:.2} s; RSS {:.1} MB -> {:.1} MB: {:.0} bytes per enrolled user (including the bench's id list, 4 B/user)",
        took.as_secs_f64(),
        before as f64 / 1e6,
        after as f64 / 1e6,
        (after - before) as f64 / USERS as f64
    );
    (core, ids)
}

fn bench(c: &mut Criterion) {
    let (core, ids) = enrolled();
    let suite: OcraSuite = ocra::DSC_PLUS_DEFAULT_SUITE.parse().expect("suite");
    let mut g = c.benchmark_group("core_1m_users");
    g.measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));

    // The floor: OCRA verification alone, keys from random users (the same key cache misses).
    g.bench_function("ocra_verify_bare", |b| {
        b.iter_batched(
            || {
                let i = rand::thread_rng().gen_range(0..USERS);
                let q = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
                let ph =
                    ocra::pin_hash(ocra::HashAlg::Sha1, format!("{:04}", i % 10_000).as_bytes());
                let a = suite
                    .compute(
                        &key(i),
                        &OcraInput {
                            question: &q,
                            pin_hash: Some(ph.as_bytes()),
                            ..OcraInput::default()
                        },
                    )
                    .expect("answer")
                    .to_string();
                (i, q, ph, a)
            },
            |(i, q, ph, a)| {
                assert!(suite
                    .verify(
                        &key(i),
                        &OcraInput {
                            question: &q,
                            pin_hash: Some(ph.as_bytes()),
                            ..OcraInput::default()
                        },
                        &a
                    )
                    .expect("verify"))
            },
            BatchSize::SmallInput,
        )
    });

    // The core: a right answer to an open challenge of a random user among 1 M — transaction
    // lookup, the user's lock, format check, constant-time OCRA verify, spending the challenge.
    g.bench_function("answer_random_user", |b| {
        b.iter_batched(
            || {
                let i = rand::thread_rng().gen_range(0..USERS);
                let user = format!("user{i}");
                let out = block_on(core.begin(
                    &BeginRequest {
                        user: &user,
                        purpose: Purpose::Login,
                        device: Some(ids[i]),
                        client: IP,
                    },
                    false,
                ))
                .expect("begin");
                let BeginResult::Challenge {
                    txn,
                    challenge: Challenge::Numeric(q),
                    ..
                } = out.value
                else {
                    panic!("no challenge")
                };
                let ph =
                    ocra::pin_hash(ocra::HashAlg::Sha1, format!("{:04}", i % 10_000).as_bytes());
                let a = suite
                    .compute(
                        &key(i),
                        &OcraInput {
                            question: &q,
                            pin_hash: Some(ph.as_bytes()),
                            ..OcraInput::default()
                        },
                    )
                    .expect("answer")
                    .to_string();
                (txn, a)
            },
            |(txn, a)| {
                let v = block_on(core.answer(txn, &a, IP)).expect("store").value;
                assert!(matches!(v, Verdict::Accepted { .. }));
                black_box(v)
            },
            BatchSize::SmallInput,
        )
    });

    // begin alone: user lookup, lock check, a random challenge, a new transaction.
    g.bench_function("begin_random_user", |b| {
        b.iter_batched(
            || {
                let i = rand::thread_rng().gen_range(0..USERS);
                (format!("user{i}"), ids[i])
            },
            |(user, id)| {
                black_box(
                    block_on(core.begin(
                        &BeginRequest {
                            user: &user,
                            purpose: Purpose::Login,
                            device: Some(id),
                            client: IP,
                        },
                        false,
                    ))
                    .expect("begin"),
                )
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    core.sweep();
}

criterion_group!(benches, bench);
criterion_main!(benches);
