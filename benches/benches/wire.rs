//! Frame encode and decode of the hot messages, beside a plain copy of the same bytes (the
//! floor any codec pays): `cargo bench -p sls-benches --bench wire`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sls_protocol::{frame, Message, TxnId, Verdict};

fn answer(i: u64) -> Message {
    Message::Answer {
        txn: TxnId(0x5f0e_2c41_9a7b_4d13_8e62_01f4_a9c3_7b20 ^ u128::from(i)),
        response: "30417852".into(),
        client: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));

    let sample = frame::to_bytes(7, &answer(0)).expect("encodes");
    g.bench_function("copy_40B_baseline", |b| {
        let mut out = BytesMut::with_capacity(4096);
        b.iter(|| {
            out.clear();
            out.extend_from_slice(black_box(&sample));
            black_box(&out);
        })
    });

    g.bench_function("encode_answer", |b| {
        let mut out = BytesMut::with_capacity(4096);
        let msg = answer(1);
        b.iter(|| {
            out.clear();
            frame::encode(black_box(7), black_box(&msg), &mut out).expect("encodes");
            black_box(&out);
        })
    });

    g.bench_function("decode_answer", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&sample[..]),
            |buf| black_box(frame::decode(buf).expect("decodes")),
            criterion::BatchSize::SmallInput,
        )
    });

    let verdict = Message::Judged {
        verdict: Verdict::Rejected { failures_left: 9 },
    };
    g.bench_function("encode_verdict", |b| {
        let mut out = BytesMut::with_capacity(4096);
        b.iter(|| {
            out.clear();
            frame::encode(black_box(7), black_box(&verdict), &mut out).expect("encodes");
            black_box(&out);
        })
    });

    // A pipelined batch: 256 answers in one buffer, decoded in one pass, as the daemon reads.
    let mut batch = BytesMut::new();
    for i in 0..256 {
        frame::encode(i as u32 + 1, &answer(i), &mut batch).expect("encodes");
    }
    g.throughput(Throughput::Elements(256));
    g.bench_function("decode_batch_256_answers", |b| {
        b.iter_batched_ref(
            || batch.clone(),
            |buf| {
                let mut n = 0;
                while let Ok(Some(f)) = frame::decode(buf) {
                    black_box(&f);
                    n += 1;
                }
                assert_eq!(n, 256);
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
