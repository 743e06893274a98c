//! One Redis master frozen: do the other shards' users keep their latency? Starts a 6-node
//! cluster (`scripts/redis-cluster.sh`) and one slsd on it (`--redis-wait-replicas 1`), enrols
//! DSC+ users and groups them by the master that serves their key (the slot of their hash
//! tag), then runs a closed loop of whole logins (begin + right answer, verified) per group:
//! `--before` seconds, one master frozen (SIGSTOP of its pid) for `--frozen` seconds, thawed.
//! Prints, per phase, the frozen shard's users and the others': logins, accepted, refused,
//! p50 and p99; and the others' p99 during the freeze ÷ before.
//!
//! `cargo build --release -p sls-daemon -p sls-benches && target/release/shard_freeze`
//! (`SLSD=<path>` to measure another build's slsd).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use sls_loadgen::daemon::{find_slsd, Daemon, NO_LIMITS};
use sls_loadgen::harness::{enrol_bulk, ocra_answer};
use sls_loadgen::redis_cluster::RedisCluster;
use sls_protocol::*;

#[derive(Parser, Debug)]
#[command(about = "Per-shard login latency while one Redis master is frozen")]
struct Opts {
    /// Users enrolled (split over the shards by their key's slot).
    #[arg(long, default_value_t = 300)]
    users: usize,
    /// Logins in flight per shard's group (closed loop).
    #[arg(long, default_value_t = 8)]
    per_group: usize,
    /// Seconds measured before the freeze.
    #[arg(long, default_value_t = 5)]
    before: u64,
    /// Seconds the master stays frozen (the cluster's node timeout is 2 s: its replica is
    /// promoted within it when it is longer than ~3 s).
    #[arg(long, default_value_t = 5)]
    frozen: u64,
    /// Extra flags for slsd (e.g. `--redis-response-timeout 1s`), space-separated.
    #[arg(long, default_value = "")]
    slsd_args: String,
}

fn secret(i: usize) -> Vec<u8> {
    format!("key-of-user-{i:08}-padding-to-32").into_bytes()[..32].to_vec()
}

/// One login's end: when it started (since the run's start), how long it took, and whether it
/// was accepted; `None` for a refusal (its status) or a lost connection.
struct Sample {
    at: Duration,
    took: Duration,
    refused: Option<u16>,
}

async fn login(fe: &sls_client::pipeline::Pipeline, i: usize, dev: DeviceId) -> Option<u16> {
    let client = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 3, (i >> 8) as u8, i as u8));
    let begin = fe
        .call(Message::Begin {
            user: format!("z{i}"),
            purpose: Purpose::Login,
            device: Some(dev),
            client,
        })
        .await;
    let (txn, q) = match begin {
        Ok(Message::ChallengeIssued {
            txn,
            challenge: Challenge::Numeric(q),
            ..
        }) => (txn, q),
        Ok(Message::Error { status, .. }) => return Some(status.0),
        _ => return Some(0),
    };
    let Some(response) = ocra_answer(ocra::DSC_PLUS_DEFAULT_SUITE, &secret(i), &q, "1234") else {
        return Some(0);
    };
    match fe
        .call(Message::Answer {
            txn,
            response,
            client,
        })
        .await
    {
        Ok(Message::Judged {
            verdict: Verdict::Accepted { .. },
        }) => None,
        Ok(Message::Error { status, .. }) => Some(status.0),
        _ => Some(0),
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// `(logins, refused with their statuses, p50 ms, p99 ms)` of the samples started in
/// `[from, to)`.
fn stats(samples: &[Sample], from: Duration, to: Duration) -> (usize, String, f64, f64) {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at < to)
        .collect();
    let mut took: Vec<Duration> = inside.iter().map(|s| s.took).collect();
    took.sort();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for s in &inside {
        if let Some(status) = s.refused {
            *by_status.entry(status).or_default() += 1;
        }
    }
    let n: usize = by_status.values().sum();
    let statuses: Vec<String> = by_status
        .iter()
        .map(|(s, k)| {
            format!(
                "{k} × {}",
                if *s == 0 {
                    "lost".into()
                } else {
                    format!("status {s}")
                }
            )
        })
        .collect();
    let refused = if n == 0 {
        "0".to_string()
    } else {
        format!("{n} ({})", statuses.join(", "))
    };
    (inside.len(), refused, pct(&took, 0.5), pct(&took, 0.99))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    let slsd = match std::env::var_os("SLSD") {
        Some(p) => PathBuf::from(p),
        None => find_slsd()?,
    };
    let cluster = tokio::task::spawn_blocking(RedisCluster::start).await??;
    let store = cluster.store_flag();
    let extra: Vec<&str> = opts.slsd_args.split_whitespace().collect();
    let flags = [
        &[
            "--log",
            "warn",
            "--store",
            &store,
            "--redis-wait-replicas",
            "1",
        ][..],
        &NO_LIMITS,
        &extra,
    ]
    .concat();
    let work = tempfile::Builder::new().prefix("shard-freeze-").tempdir()?;
    let node = Daemon::start(&slsd, work.path(), &flags)?;
    let admin = node.connect(Role::Admin).await?;
    let records: Vec<BulkRecord> = (0..opts.users)
        .map(|i| BulkRecord {
            user: format!("z{i}"),
            kind: DeviceKind::DscPlus,
            secret: secret(i),
            pin: "1234".into(),
            suite: String::new(),
        })
        .collect();
    let ids = enrol_bulk(&admin.pipe, &records).await?;
    let masters = cluster.masters();
    let victim = *masters.first().context("a master")?;
    // Each user's master: the slot of its key's hash tag (crc16), served by the master that
    // answers for a key there.
    let groups: Vec<Vec<usize>> = {
        let c = &cluster;
        let owner: Vec<Option<u16>> = tokio::task::block_in_place(|| {
            (0..opts.users)
                .map(|i| c.master_of(&format!("{{sls:u:z{i}}}")))
                .collect()
        });
        masters
            .iter()
            .map(|m| (0..opts.users).filter(|i| owner[*i] == Some(*m)).collect())
            .collect()
    };
    eprintln!(
        "masters {masters:?} (victim {victim}); users per master {:?}",
        groups.iter().map(Vec::len).collect::<Vec<_>>()
    );

    let fe = node.connect(Role::Frontend).await?.pipe.clone();
    let start = Instant::now();
    let end = Duration::from_secs(opts.before + opts.frozen);
    let mut tasks = tokio::task::JoinSet::new();
    for (g, users) in groups.iter().enumerate() {
        for w in 0..opts.per_group {
            let (fe, ids) = (fe.clone(), ids.clone());
            let mine: Vec<usize> = users
                .iter()
                .copied()
                .skip(w)
                .step_by(opts.per_group)
                .collect();
            tasks.spawn(async move {
                let mut out = Vec::new();
                // Bounded in time and in count.
                for k in 0..1_000_000usize {
                    let at = start.elapsed();
                    if at >= end || mine.is_empty() {
                        break;
                    }
                    let i = mine[k % mine.len()];
                    let refused = login(&fe, i, ids[i]).await;
                    out.push(Sample {
                        at,
                        took: start.elapsed() - at,
                        refused,
                    });
                }
                (g, out)
            });
        }
    }
    tokio::time::sleep(Duration::from_secs(opts.before)).await;
    let frozen_at = start.elapsed();
    cluster.freeze_node(victim)?;
    tokio::time::sleep(Duration::from_secs(opts.frozen)).await;
    cluster.thaw_node(victim)?;
    let mut by_group: Vec<Vec<Sample>> = (0..groups.len()).map(|_| Vec::new()).collect();
    while let Some(r) = tasks.join_next().await {
        let (g, out) = r?;
        by_group[g].extend(out);
    }
    let victim_group = masters.iter().position(|m| *m == victim).unwrap_or(0);
    let others: Vec<Sample> = by_group
        .iter_mut()
        .enumerate()
        .filter(|(g, _)| *g != victim_group)
        .flat_map(|(_, s)| std::mem::take(s))
        .collect();
    let frozen_shard = std::mem::take(&mut by_group[victim_group]);
    // The first second is warm-up.
    let phases = [
        ("before", Duration::from_secs(1), frozen_at),
        ("frozen", frozen_at, end),
    ];
    println!(
        "| users of | phase | logins started | refused | p50 (ms) | p99 (ms) |\n|---|---|---|---|---|---|"
    );
    let mut p99 = [0.0f64; 2];
    for (who, samples) in [
        ("the frozen master", &frozen_shard),
        ("the other masters", &others),
    ] {
        for (k, (phase, from, to)) in phases.iter().enumerate() {
            let (n, refused, p50, p) = stats(samples, *from, *to);
            if who == "the other masters" {
                p99[k] = p;
            }
            println!("| {who} | {phase} | {n} | {refused} | {p50:.1} | {p:.1} |");
        }
    }
    println!(
        "\nthe other masters' users: p99 while frozen ÷ before = {:.2}",
        p99[1] / p99[0]
    );
    tokio::task::spawn_blocking(move || {
        let _ = cluster.wait_ok(3, Duration::from_secs(30));
        drop(cluster);
    })
    .await?;
    drop(node);
    Ok(())
}
