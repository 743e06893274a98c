//! Reliability over the network, against the real slsd: lockout exact under concurrent
//! attack, nothing acknowledged lost across repeated SIGKILLs, floods limited to their source,
//! abandoned connections reclaimed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use sls_loadgen::client::{self, ClientTls, Pipeline};
use sls_loadgen::daemon::Daemon;
use sls_protocol::ocra::{self, OcraInput, OcraSuite};
use sls_protocol::*;

fn start(dir: &Path, extra: &[&str]) -> Daemon {
    let mut args = vec!["--log", "warn"];
    args.extend_from_slice(extra);
    Daemon::start(Path::new(env!("CARGO_BIN_EXE_slsd")), dir, &args).unwrap()
}

async fn pipes(
    d: &Daemon,
    role: Role,
    n: usize,
) -> (quinn::Endpoint, Vec<quinn::Connection>, Vec<Pipeline>) {
    let ep = client::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let cfg = ClientTls::from_dir(&d.tls_dir(), role)
        .unwrap()
        .quinn_config(ALPN_FRONTEND)
        .unwrap();
    let mut conns = Vec::new();
    let mut out = Vec::new();
    for i in 0..n {
        let c = client::connect(&ep, d.addr, cfg.clone()).await.unwrap();
        out.push(Pipeline::open(&c, &format!("rel-{i}")).await.unwrap().0);
        conns.push(c);
    }
    (ep, conns, out)
}

fn key(i: usize) -> Vec<u8> {
    format!("key-of-user-{i:08}-padding-to-32").into_bytes()[..32].to_vec()
}

async fn enrol_fleet(admin: &Pipeline, n: usize) -> Vec<DeviceId> {
    let records: Vec<BulkRecord> = (0..n)
        .map(|i| BulkRecord {
            user: format!("v{i}"),
            kind: DeviceKind::DscPlus,
            secret: key(i),
            pin: "1234".into(),
            suite: String::new(),
        })
        .collect();
    let mut ids = Vec::new();
    for chunk in records.chunks(limits::MAX_BULK) {
        match admin
            .call(Message::EnrolBulk {
                records: chunk.to_vec(),
            })
            .await
            .unwrap()
        {
            Message::BulkEnrolled { outcomes } => {
                ids.extend(outcomes.into_iter().map(|o| match o {
                    BulkOutcome::Enrolled(d) => d,
                    BulkOutcome::Refused(s) => panic!("{s}"),
                }))
            }
            other => panic!("{other:?}"),
        }
    }
    ids
}

async fn stats(admin: &Pipeline) -> HashMap<String, u64> {
    match admin.call(Message::GetStats {}).await.unwrap() {
        Message::Stats { counters } => counters.into_iter().map(|c| (c.name, c.value)).collect(),
        other => panic!("{other:?}"),
    }
}

fn ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 1, (i >> 8) as u8, i as u8))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_is_exact_under_concurrent_attack_over_the_network() {
    // 100 users, each hit by 200 concurrent wrong answers over 4 connections.
    let dir = tempfile::tempdir().unwrap();
    let d = start(
        dir.path(),
        &["--rate-per-user", "0", "--rate-per-client", "0"],
    );
    let (_ea, _ca, admin) = pipes(&d, Role::Admin, 1).await;
    let admin = admin.into_iter().next().unwrap();
    let ids = enrol_fleet(&admin, 100).await;
    let (_ef, _cf, fronts) = pipes(&d, Role::Frontend, 4).await;
    // Open all the challenges first, so the answers race.
    let mut work = Vec::new();
    for (u, dev) in ids.iter().enumerate() {
        for k in 0..200 {
            let fe = &fronts[k % fronts.len()];
            let Message::ChallengeIssued {
                txn,
                challenge: Challenge::Numeric(q),
                ..
            } = fe
                .call(Message::Begin {
                    user: format!("v{u}"),
                    purpose: Purpose::Login,
                    device: Some(*dev),
                    client: ip(u),
                })
                .await
                .unwrap()
            else {
                panic!()
            };
            work.push((u, k, txn, q));
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (u, k, txn, q) in work {
        let fe = fronts[(k + 1) % fronts.len()].clone();
        tasks.spawn(async move {
            let suite: OcraSuite = ocra::DSC_PLUS_DEFAULT_SUITE.parse().unwrap();
            let ph = ocra::pin_hash(ocra::HashAlg::Sha1, b"1234");
            let right = suite
                .compute(
                    &key(u),
                    &OcraInput {
                        question: &q,
                        pin_hash: Some(ph.as_bytes()),
                        ..OcraInput::default()
                    },
                )
                .unwrap()
                .to_string();
            let wrong = format!("{:08}", (right.parse::<u64>().unwrap() + 1) % 100_000_000);
            let reply = fe
                .call(Message::Answer {
                    txn,
                    response: wrong,
                    client: ip(u),
                })
                .await
                .unwrap();
            (u, reply)
        });
    }
    let mut per_user: HashMap<usize, (usize, usize)> = HashMap::new();
    while let Some(r) = tasks.join_next().await {
        let (u, reply) = r.unwrap();
        let e = per_user.entry(u).or_default();
        match reply {
            Message::Judged {
                verdict: Verdict::Rejected { .. },
            } => e.0 += 1,
            Message::Judged {
                verdict: Verdict::Locked { .. },
            } => e.1 += 1,
            other => panic!("user {u}: {other:?}"),
        }
    }
    for u in 0..100 {
        assert_eq!(
            per_user[&u],
            (9, 191),
            "user {u}: 9 rejected, then the 10th locks and the rest are refused"
        );
    }
    let s = stats(&admin).await;
    assert_eq!(
        s["failures_evaluated"], 1000,
        "exactly 10 failures evaluated per user, from the daemon's own count"
    );
    assert_eq!(s["lockouts"], 100);
    // No right answer is accepted after the lock.
    for (u, dev) in ids.iter().enumerate() {
        let reply = fronts[0]
            .call(Message::Begin {
                user: format!("v{u}"),
                purpose: Purpose::Login,
                device: Some(*dev),
                client: ip(u),
            })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_across_repeated_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked_failures: HashMap<usize, u8> = HashMap::new();
    let mut enrolled: Vec<DeviceId> = Vec::new();
    for round in 0..20usize {
        let mut d = start(
            dir.path(),
            &["--rate-per-user", "0", "--rate-per-client", "0"],
        );
        let (_ea, _ca, admin) = pipes(&d, Role::Admin, 1).await;
        let admin = admin.into_iter().next().unwrap();
        // Everything acknowledged before the previous crash is here.
        for (u, dev) in enrolled.iter().enumerate() {
            let reply = admin
                .call(Message::Status {
                    user: format!("v{u}"),
                })
                .await
                .unwrap();
            let Message::UserStatus {
                failures, devices, ..
            } = reply
            else {
                panic!("{reply:?}")
            };
            assert!(
                devices.iter().any(|x| x.id == *dev),
                "round {round}: user v{u}'s device lost"
            );
            let want = acked_failures.get(&u).copied().unwrap_or(0);
            assert!(
                failures >= want,
                "round {round}: user v{u} has {failures} failures, {want} were acknowledged"
            );
        }
        // More users, then failures from several tasks until the crash.
        let base = enrolled.len();
        let records: Vec<BulkRecord> = (base..base + 50)
            .map(|i| BulkRecord {
                user: format!("v{i}"),
                kind: DeviceKind::DscPlus,
                secret: key(i),
                pin: "1234".into(),
                suite: String::new(),
            })
            .collect();
        match admin.call(Message::EnrolBulk { records }).await.unwrap() {
            Message::BulkEnrolled { outcomes } => {
                enrolled.extend(outcomes.into_iter().map(|o| match o {
                    BulkOutcome::Enrolled(d) => d,
                    BulkOutcome::Refused(s) => panic!("{s}"),
                }))
            }
            other => panic!("{other:?}"),
        }
        let (_ef, _cf, fronts) = pipes(&d, Role::Frontend, 2).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for t in 0..8usize {
            let fe = fronts[t % 2].clone();
            let tx = tx.clone();
            let ids = enrolled.clone();
            tasks.push(tokio::spawn(async move {
                for k in 0.. {
                    let u = (t * 37 + k * 11) % ids.len();
                    let Ok(Message::ChallengeIssued { txn, .. }) = fe
                        .call(Message::Begin {
                            user: format!("v{u}"),
                            purpose: Purpose::Login,
                            device: Some(ids[u]),
                            client: ip(u),
                        })
                        .await
                    else {
                        break;
                    };
                    match fe
                        .call(Message::Answer {
                            txn,
                            response: "00000000".into(),
                            client: ip(u),
                        })
                        .await
                    {
                        Ok(Message::Judged {
                            verdict: Verdict::Rejected { failures_left },
                        }) => {
                            let _ = tx.send((u, 10 - failures_left));
                        }
                        Ok(Message::Judged {
                            verdict: Verdict::Locked { .. },
                        }) => {
                            let _ = tx.send((u, 10));
                        }
                        _ => break,
                    }
                }
            }));
        }
        drop(tx);
        tokio::time::sleep(Duration::from_millis(100 + (round as u64 * 73) % 400)).await;
        d.crash(); // SIGKILL mid-load
        for t in tasks {
            let _ = t.await;
        }
        while let Some((u, count)) = rx.recv().await {
            let e = acked_failures.entry(u).or_default();
            *e = (*e).max(count);
        }
    }
    assert!(
        acked_failures.values().any(|c| *c >= 2),
        "the load made acknowledged failures"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_limited_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(
        dir.path(),
        &["--rate-per-client", "20", "--rate-per-user", "0"],
    );
    let (_ea, _ca, admin) = pipes(&d, Role::Admin, 1).await;
    let admin = admin.into_iter().next().unwrap();
    let ids = enrol_fleet(&admin, 20).await;
    let (_ef, _cf, fronts) = pipes(&d, Role::Frontend, 2).await;
    let flood_ip = IpAddr::V4(Ipv4Addr::new(127, 9, 9, 9));
    // Honest latency without the flood, for the comparison reported below.
    let mut quiet = Vec::new();
    for (u, dev) in ids.iter().enumerate().skip(1) {
        let t = std::time::Instant::now();
        let r = fronts[1]
            .call(Message::Begin {
                user: format!("v{u}"),
                purpose: Purpose::Login,
                device: Some(*dev),
                client: ip(u),
            })
            .await
            .unwrap();
        assert!(matches!(r, Message::ChallengeIssued { .. }), "{r:?}");
        quiet.push(t.elapsed());
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The flooder: 20x its quota (20/s, burst 40) in one second, for one user.
    let flooder = {
        let fe = fronts[0].clone();
        let dev = ids[0];
        tokio::spawn(async move {
            let mut limited = 0;
            let mut calls = tokio::task::JoinSet::new();
            for _ in 0..400 {
                let fe = fe.clone();
                calls.spawn(async move {
                    fe.call(Message::Begin {
                        user: "v0".into(),
                        purpose: Purpose::Login,
                        device: Some(dev),
                        client: flood_ip,
                    })
                    .await
                    .unwrap()
                });
                tokio::time::sleep(Duration::from_micros(2500)).await;
            }
            while let Some(r) = calls.join_next().await {
                if matches!(
                    r.unwrap(),
                    Message::Judged {
                        verdict: Verdict::RateLimited { .. }
                    }
                ) {
                    limited += 1;
                }
            }
            limited
        })
    };
    // Honest users, each from its own address, at the same time: never limited.
    let mut honest_limited = 0;
    let mut flooded = Vec::new();
    for round in 0..5 {
        for (u, dev) in ids.iter().enumerate().skip(1) {
            let t = std::time::Instant::now();
            let r = fronts[1]
                .call(Message::Begin {
                    user: format!("v{u}"),
                    purpose: Purpose::Login,
                    device: Some(*dev),
                    client: ip(u),
                })
                .await
                .unwrap();
            flooded.push(t.elapsed());
            match r {
                Message::ChallengeIssued { .. } => {}
                Message::Judged {
                    verdict: Verdict::RateLimited { .. },
                } => honest_limited += 1,
                other => panic!("round {round}: {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let limited = flooder.await.unwrap();
    // Reported, not asserted: timings are the benchmarks' to judge on a shared machine.
    let p99 = |v: &mut Vec<Duration>| {
        v.sort();
        v[(v.len() * 99 / 100).min(v.len() - 1)]
    };
    eprintln!(
        "honest begin p99 without the flood {:?}, during it {:?}",
        p99(&mut quiet),
        p99(&mut flooded)
    );
    assert!(limited >= 300, "the flood was limited: {limited} of 400");
    assert_eq!(
        honest_limited, 0,
        "honest users from other addresses are not limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_connections_are_reclaimed_by_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path(), &["--idle-timeout", "1s"]);
    // The admin keeps itself alive more often than the idle timeout.
    let aep = client::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut acfg = ClientTls::from_dir(&d.tls_dir(), Role::Admin)
        .unwrap()
        .quinn_config(ALPN_FRONTEND)
        .unwrap();
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_millis(200)));
    acfg.transport_config(std::sync::Arc::new(t));
    let aconn = client::connect(&aep, d.addr, acfg).await.unwrap();
    let (admin, _) = Pipeline::open(&aconn, "admin").await.unwrap();
    // 50 clients connect and then go silent without closing (no keep-alive from them).
    let ep = client::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let tls = ClientTls::from_dir(&d.tls_dir(), Role::Frontend).unwrap();
    let mut cfg = tls.quinn_config(ALPN_FRONTEND).unwrap();
    cfg.transport_config(std::sync::Arc::new(quinn::TransportConfig::default()));
    let mut silent = Vec::new();
    for i in 0..50 {
        let c = client::connect(&ep, d.addr, cfg.clone()).await.unwrap();
        let (p, _) = Pipeline::open(&c, &format!("silent-{i}")).await.unwrap();
        silent.push((c, p));
    }
    assert!(stats(&admin).await["connections"] >= 51);
    // The admin connection keeps itself alive; the 50 others time out.
    let mut left = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = stats(&admin).await["connections"];
        if left == 1 {
            break;
        }
    }
    assert_eq!(left, 1, "abandoned connections were reclaimed");
    drop(silent);
}
