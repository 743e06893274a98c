//! The credential algorithms beside the bare HMAC-SHA256 they are built on, in the same run:
//! `cargo bench -p sls-benches --bench protocol`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sls_protocol::card::{self, CardLayout};
use sls_protocol::ocra::{self, OcraInput, OcraSuite};
use sls_protocol::{push, ApprovalMethod, TxnId};

const KEY: [u8; 32] = *b"12345678901234567890123456789012";

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("credentials");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    let suite: OcraSuite = ocra::DSC_PLUS_DEFAULT_SUITE.parse().expect("suite");
    let ph = ocra::pin_hash(ocra::HashAlg::Sha1, b"1234");
    // The DSC+ data input: suite text, 0x00, 128-byte question, 20-byte PIN hash.
    let data_len = ocra::DSC_PLUS_DEFAULT_SUITE.len() + 1 + 128 + 20;
    let data = vec![0x5au8; data_len];
    g.bench_function("hmac_sha256_bare_180B", |b| {
        let mut i = 0u8;
        let mut d = data.clone();
        b.iter(|| {
            i = i.wrapping_add(1);
            d[40] = i;
            let mut m = Hmac::<Sha256>::new_from_slice(&KEY).expect("key");
            m.update(black_box(&d));
            black_box(m.finalize().into_bytes())
        })
    });
    let questions: Vec<String> = (0..1024)
        .map(|i| format!("{:06}", (i * 7919) % 1_000_000))
        .collect();
    let answers: Vec<String> = questions
        .iter()
        .map(|q| {
            suite
                .compute(
                    &KEY,
                    &OcraInput {
                        question: q,
                        pin_hash: Some(ph.as_bytes()),
                        ..OcraInput::default()
                    },
                )
                .expect("answer")
                .to_string()
        })
        .collect();
    g.bench_function("ocra_compute_dsc_plus", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % questions.len();
            black_box(
                suite
                    .compute(
                        &KEY,
                        &OcraInput {
                            question: &questions[i],
                            pin_hash: Some(ph.as_bytes()),
                            ..OcraInput::default()
                        },
                    )
                    .expect("answer"),
            )
        })
    });
    g.bench_function("ocra_verify_dsc_plus", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % questions.len();
            let ok = suite
                .verify(
                    &KEY,
                    &OcraInput {
                        question: &questions[i],
                        pin_hash: Some(ph.as_bytes()),
                        ..OcraInput::default()
                    },
                    &answers[i],
                )
                .expect("verify");
            assert!(ok);
        })
    });
    let layout = CardLayout::default();
    let a = card::answer(&KEY, &layout, &[12, 57]).expect("card");
    g.bench_function("scc_verify_2_positions", |b| {
        b.iter(|| assert!(card::verify(&KEY, &layout, black_box(&[12, 57]), &a)))
    });
    let mac = push::push_mac(
        &KEY,
        TxnId(7),
        "alice",
        42,
        &[1; 16],
        ApprovalMethod::Pin,
        true,
    );
    g.bench_function("push_verify", |b| {
        b.iter(|| {
            assert!(push::push_verify(
                &KEY,
                TxnId(7),
                black_box("alice"),
                42,
                &[1; 16],
                ApprovalMethod::Pin,
                true,
                &mac
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
