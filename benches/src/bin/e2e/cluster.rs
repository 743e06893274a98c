//! The cluster regime (issue 12): two `slsd` nodes on a fresh 6-node Redis Cluster, closed-loop
//! DSC+ logins spread over both, what a login costs Redis (commands, Redis CPU) and the machine
//! (CPU of every process), a half-load open-loop row; then, on the same cluster in the same run,
//! `redis-benchmark` driving the same commands and scripts, as the baseline: how many logins
//! Redis alone could serve.
//!
//! Every figure comes from the cluster itself: `INFO commandstats` and `INFO cpu` of its nodes
//! before and after the measured window, `/proc/<pid>/stat` of the two nodes and of this runner.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sls_loadgen::daemon::{Daemon, NO_LIMITS};
use sls_loadgen::fleet::{self, Mix};
use sls_loadgen::harness::Client;
use sls_loadgen::redis_cluster::RedisCluster;
use sls_loadgen::run::{self as lrun, FleetSpec};
use sls_loadgen::scenario::{Behaviour, Route, Scenario};
use sls_loadgen::schedule::LoadModel;
use sls_protocol::Role;

use crate::cluster_baseline::baseline;
use crate::cluster_probe::{
    cli, clock_ticks, delta, fmt_commands, free_port, info, median, num, Closed, Probe,
};
pub use crate::cluster_probe::{Opts, Row};
use crate::plan;

/// Drives one closed-loop run of the prepared fleet and snapshots the cluster around its
/// measured window.
async fn closed_run(
    prepared: &lrun::Prepared,
    probe: &std::sync::Arc<Probe>,
    opts: &Opts,
) -> anyhow::Result<Closed> {
    let p = plan(
        LoadModel::Closed {
            workers: opts.workers,
        },
        Scenario::DscPlus,
        opts.secs,
    );
    // The schedule measures from 20 ms + the warm-up after it starts to the end of the duration.
    let (warmup, duration) = (p.warmup, p.duration);
    let probe2 = probe.clone();
    let window = tokio::spawn(async move {
        tokio::time::sleep(warmup + Duration::from_millis(20)).await;
        let p = probe2.clone();
        let a = tokio::task::spawn_blocking(move || p.take()).await??;
        tokio::time::sleep(duration).await;
        let b = tokio::task::spawn_blocking(move || probe2.take()).await??;
        anyhow::Ok(delta(&a, &b))
    });
    let r = prepared.drive(&p, None).await?;
    let window = window.await??;
    let s = r.summary.scenarios.first().context("no scenario ran")?;
    Ok(Closed {
        verified_per_s: s.ok as f64 / opts.secs as f64,
        p50: s.latency_us.p50,
        p99: s.latency_us.p99,
        logins: s.count,
        unexpected: r.unexpected,
        window,
    })
}

/// Runs the regime; its rows (`what | figure | note`) and free-text findings.
pub async fn run(slsd: &Path, work: &Path, opts: &Opts) -> anyhow::Result<(Vec<Row>, String)> {
    let t0 = Instant::now();
    let cluster = tokio::task::spawn_blocking(RedisCluster::start).await??;
    let base = cluster.ports().start;
    let masters = cluster.masters();
    let replicas: Vec<u16> = cluster.ports().filter(|p| !masters.contains(p)).collect();
    if let Some(mode) = &opts.appendfsync {
        for p in cluster.ports() {
            cli(p, &["config", "set", "appendfsync", mode])?;
        }
    }
    let fsync = opts.appendfsync.as_deref().unwrap_or("always");
    eprintln!(
        "cluster up in {:.1} s: masters {masters:?}, replicas {replicas:?}",
        t0.elapsed().as_secs_f64()
    );
    let mut rows: Vec<Row> = Vec::new();
    let mut notes = format!(
        "Redis: 3 masters + 3 replicas (`scripts/redis-cluster.sh`), AOF with `appendfsync {fsync}` on every node. slsd: the per-user rate limit {}.\n",
        if opts.user_limit {
            "on, at its default (5/s, burst 40; in Redis, exact across the nodes)"
        } else {
            "off"
        }
    );
    let seed = AtomicU64::new(1200);
    let spec = |users: usize| FleetSpec {
        users,
        mix: "dsc_plus=1".parse::<Mix>().unwrap_or_default(),
        seed: seed.fetch_add(1, Ordering::Relaxed),
        connections: opts.connections,
        max_apps: 0,
    };
    let used_memory = || -> anyhow::Result<f64> {
        masters
            .iter()
            .map(|p| Ok(num(&info(*p, "memory")?, "used_memory")))
            .sum()
    };

    let mut baseline_needed: Option<(Closed, usize)> = None;
    let mut state_len = 0usize;
    for (w_index, &wait) in opts.waits.iter().enumerate() {
        let store = cluster.store_flag();
        let wait_s = wait.to_string();
        // A namespace (and so a seal key and users) of each configuration's own.
        let prefix = format!("sls-w{wait}");
        let flags = [
            &[
                "--log",
                "warn",
                "--store",
                &store,
                "--redis-prefix",
                &prefix,
                "--redis-wait-replicas",
                &wait_s,
            ][..],
            // The per-address limit stays off: the fleet is one loopback address.
            if opts.user_limit {
                &["--rate-per-client", "0"]
            } else {
                &NO_LIMITS
            },
        ]
        .concat();
        let dir_a = work.join(format!("cluster-a-{wait}"));
        let metrics = [free_port()?, free_port()?];
        let metrics_s = metrics.map(|m| m.to_string());
        let flags_a = [&flags[..], &["--metrics", &metrics_s[0]]].concat();
        let a = Daemon::start(slsd, &dir_a, &flags_a)?;
        let (tls, seal) = (a.tls_dir(), dir_a.join("seal.key"));
        let (tls, seal) = (tls.to_string_lossy(), seal.to_string_lossy());
        let flags_b = [
            &flags[..],
            &[
                "--tls-dir",
                &tls,
                "--seal-key",
                &seal,
                "--metrics",
                &metrics_s[1],
            ],
        ]
        .concat();
        let b = Daemon::start(slsd, &work.join(format!("cluster-b-{wait}")), &flags_b)?;
        let targets = [a.target(), b.target()];
        let probe = std::sync::Arc::new(Probe {
            masters: masters.clone(),
            replicas: replicas.clone(),
            nodes: [a.pid(), b.pid()]
                .into_iter()
                .flatten()
                .map(|p| p.to_string())
                .collect(),
            metrics: metrics.to_vec(),
            ticks: clock_ticks(),
        });

        if w_index == 0 {
            // Memory: users enrolled in bulk, `used_memory` of the masters before and after.
            let m0 = used_memory()?;
            let admin = Client::connect(&a.target(), Role::Admin).await?;
            let mut users = fleet::build(
                opts.memory_users,
                &"dsc_plus=1".parse::<Mix>().map_err(anyhow::Error::msg)?,
                seed.fetch_add(1, Ordering::Relaxed),
            );
            let took = lrun::enrol(&admin, &mut users).await?;
            let m1 = used_memory()?;
            let mut usage = Vec::new();
            let mut lens = Vec::new();
            for u in users.iter().step_by((users.len() / 50).max(1)) {
                let key = format!("{{{prefix}:u:{}}}", u.name);
                usage.push(
                    cli(base, &["memory", "usage", &key])?
                        .trim()
                        .parse::<f64>()?,
                );
                lens.push(cli(base, &["hstrlen", &key, "s"])?.trim().parse::<f64>()?);
            }
            state_len = median(lens.clone()) as usize;
            rows.push([
                format!(
                    "Redis memory per user ({} DSC+ users enrolled in bulk on node A)",
                    opts.memory_users
                ),
                format!(
                    "{:.0} B (`used_memory` of the 3 masters, after − before, ÷ users); `MEMORY USAGE` of a user key: median {:.0} B; its sealed state `s`: {:.0} B",
                    (m1 - m0) / opts.memory_users as f64,
                    median(usage),
                    state_len as f64,
                ),
                format!(
                    "each replica holds a copy: ×2 for the cluster's RAM; enrolled in {:.2} s ({:.0} users/s)",
                    took.as_secs_f64(),
                    opts.memory_users as f64 / took.as_secs_f64()
                ),
            ]);
            drop(admin);
        }

        // One fleet for every run of this setting (a verified login changes nothing that the
        // next one would trip on); enrolled through node A. Each user's requests go to one
        // node, as docs/SCALING.md advises frontends to route them; the worst case, with no
        // routing at all, is measured after.
        let routed = Behaviour {
            route: Route::User,
            ..Behaviour::default()
        };
        let prepared = lrun::prepare(&targets, &spec(opts.users), routed).await?;
        let mut runs = Vec::new();
        for i in 0..opts.runs {
            let r = closed_run(&prepared, &probe, opts).await?;
            eprintln!(
                "cluster wait={wait} run {i}: {:.0} verified/s, p50 {} µs, p99 {} µs, {:.2} round trips/login ({}), cpu {:?}",
                r.verified_per_s,
                r.p50,
                r.p99,
                r.round_trips_per_login(),
                fmt_commands(&r.window, r.logins),
                r.window.cpu
            );
            runs.push(r);
        }
        if w_index == 0 {
            // Transactions: the keys the runs left, still alive until their deadlines.
            let (mut usage, mut ttl, mut count) = (Vec::new(), Vec::new(), 0usize);
            for &m in &masters {
                let keys = cli(m, &["--scan", "--pattern", &format!("*}}{prefix}:t:*")])?;
                count += keys.lines().count();
                for k in keys.lines().take(20) {
                    // A key may expire between the scan and these.
                    let (Ok(u), Ok(t)) = (
                        cli(m, &["memory", "usage", k])?.trim().parse::<f64>(),
                        cli(m, &["pttl", k])?.trim().parse::<f64>(),
                    ) else {
                        continue;
                    };
                    if t > 0.0 {
                        usage.push(u);
                        ttl.push(t);
                    }
                }
            }
            rows.push([
                "Redis memory per transaction key (`{<tag>}P:t:…`, a settled login)".into(),
                format!(
                    "`MEMORY USAGE` median {:.0} B; `PTTL` median {:.0} ms right after the runs",
                    median(usage),
                    median(ttl)
                ),
                format!("{count} transaction keys alive on the masters after the runs"),
            ]);
        }
        let rates: Vec<f64> = runs.iter().map(|r| r.verified_per_s).collect();
        let med = median(rates.clone());
        // The run whose rate is the median, for its latency, commands and CPU.
        let mid = runs
            .iter()
            .min_by(|x, y| {
                (x.verified_per_s - med)
                    .abs()
                    .total_cmp(&(y.verified_per_s - med).abs())
            })
            .context("no run")?;
        let logins = mid.logins.max(1) as f64;
        let redis_usec: u64 = mid.window.commands.values().map(|c| c.1).sum();
        rows.push([
            format!(
                "wait-replicas {wait}: closed loop, {} conns ({} per node) × {} logins in flight in all, each user's requests to one node: verified logins/s",
                opts.connections,
                opts.connections / 2,
                opts.workers
            ),
            format!(
                "**{med:.0}** (runs: {}), p50 {} µs, p99 {} µs",
                rates
                    .iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                mid.p50,
                mid.p99
            ),
            format!(
                "unexpected outcomes: {}",
                runs.iter().map(|r| r.unexpected).sum::<u64>()
            ),
        ]);
        rows.push([
            format!("wait-replicas {wait}: Redis round trips per login (the nodes' `sls_redis_commands_total`, by what for; [the masters' `INFO commandstats`, scripts' inner calls included])"),
            format!("**{:.2}**: {}", mid.round_trips_per_login(), fmt_commands(&mid.window, mid.logins)),
            format!(
                "Redis time inside commands: {:.1} µs per login (`usec` of commandstats)",
                redis_usec as f64 / logins
            ),
        ]);
        let [masters_cpu, replicas_cpu, nodes_cpu, runner_cpu] = mid.window.cpu;
        let per = |c: f64| c * 1e6 / logins;
        rows.push([
            format!("wait-replicas {wait}: CPU per login, µs (the measured window)"),
            format!(
                "slsd ×2: {:.0}, Redis masters: {:.0}, replicas: {:.0}, load generator: {:.0}; total {:.0}",
                per(nodes_cpu),
                per(masters_cpu),
                per(replicas_cpu),
                per(runner_cpu),
                per(nodes_cpu + masters_cpu + replicas_cpu + runner_cpu)
            ),
            format!(
                "2 cores = 2,000,000 µs/s: at this total the machine tops out near {:.0} logins/s",
                2e6 / per(nodes_cpu + masters_cpu + replicas_cpu + runner_cpu).max(1.0)
            ),
        ]);

        // Half load, open loop.
        let rate = med * 0.5;
        let r = prepared
            .drive(
                &plan(
                    LoadModel::Open {
                        rate,
                        ramp: None,
                        max_in_flight: 100_000,
                    },
                    Scenario::DscPlus,
                    opts.secs,
                ),
                None,
            )
            .await?;
        let s = r.summary.scenarios.first().context("no scenario ran")?;
        rows.push([
            format!("wait-replicas {wait}: open loop at 50% ({rate:.0} logins/s): p50 / p99 / p99.9 of a login (begin + answer), µs"),
            format!(
                "{} / **{}** / {} ({:.0} verified/s)",
                s.latency_us.p50,
                s.latency_us.p99,
                s.latency_us.p999,
                s.ok as f64 / opts.secs as f64
            ),
            format!(
                "goal p99 < 10,000 µs; dropped {}, unexpected {}",
                r.summary.run["dropped"], r.unexpected
            ),
        ]);
        prepared.close().await;
        if w_index == 0 {
            // No routing: each request through the next connection, so to either node.
            let anywhere = lrun::prepare(&targets, &spec(opts.users), Behaviour::default()).await?;
            let r = closed_run(&anywhere, &probe, opts).await?;
            anywhere.close().await;
            eprintln!(
                "cluster wait={wait} unrouted: {:.0} verified/s, {:.2} round trips/login ({})",
                r.verified_per_s,
                r.round_trips_per_login(),
                fmt_commands(&r.window, r.logins)
            );
            rows.push([
                format!("wait-replicas {wait}, no routing (each request to the next connection, so either node; one run): closed loop, verified logins/s; Redis round trips per login"),
                format!(
                    "{:.0}, p50 {} µs, p99 {} µs; {:.2}: {}",
                    r.verified_per_s,
                    r.p50,
                    r.p99,
                    r.round_trips_per_login(),
                    fmt_commands(&r.window, r.logins)
                ),
                format!("unexpected outcomes: {}", r.unexpected),
            ]);
        }
        if baseline_needed.is_none() {
            let mid_index = runs.iter().position(|r| std::ptr::eq(r, mid)).unwrap_or(0);
            baseline_needed = Some((runs.swap_remove(mid_index), wait));
        }
        drop((a, b));
    }

    // The baseline: redis-benchmark on the same cluster, the same commands.
    if let Some((login, wait)) = baseline_needed {
        let (base_rows, text) = baseline(base, &masters, &login, wait, state_len, opts)?;
        rows.extend(base_rows);
        notes.push_str(&text);
    }
    drop(cluster);
    eprintln!("cluster regime took {:.0} s", t0.elapsed().as_secs_f64());
    Ok((rows, notes))
}

/// Where the cluster regime writes its table, beside the others: `| what | figure | note |`.
pub fn markdown(rows: &[Row], notes: &str) -> String {
    let mut md = String::from(
        "| two nodes on a Redis Cluster (issue 12) | measured | note |\n|---|---|---|\n",
    );
    for [a, b, c] in rows {
        md.push_str(&format!("| {a} | {b} | {c} |\n"));
    }
    md.push('\n');
    md.push_str(notes);
    md
}
