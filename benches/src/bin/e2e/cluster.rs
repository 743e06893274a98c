//! The cluster regime (issue 12): two `slsd` nodes on a fresh 6-node Redis Cluster, closed-loop
//! DSC+ logins spread over both, what a login costs Redis (commands, Redis CPU) and the machine
//! (CPU of every process), a half-load open-loop row; then, on the same cluster in the same run,
//! `redis-benchmark` driving the same commands and scripts, as the baseline: how many logins
//! Redis alone could serve.
//!
//! Every figure comes from the cluster itself: `INFO commandstats` and `INFO cpu` of its nodes
//! before and after the measured window, `/proc/<pid>/stat` of the two nodes and of this runner.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sls_loadgen::daemon::{Daemon, NO_LIMITS};
use sls_loadgen::fleet::{self, Mix};
use sls_loadgen::harness::Client;
use sls_loadgen::redis_cluster::RedisCluster;
use sls_loadgen::run::{self as lrun, FleetSpec};
use sls_loadgen::scenario::{Behaviour, Scenario};
use sls_loadgen::schedule::LoadModel;
use sls_protocol::Role;

use crate::plan;

/// What the regime is asked for.
pub struct Opts {
    /// Seconds measured per run.
    pub secs: u64,
    /// Closed-loop runs per setting (the table shows their median).
    pub runs: usize,
    /// The fleet of each run.
    pub users: usize,
    /// Users enrolled up front to measure Redis memory per user.
    pub memory_users: usize,
    /// `--redis-wait-replicas` values, one set of rows each.
    pub waits: Vec<usize>,
    /// Frontend connections, spread over both nodes.
    pub connections: usize,
    /// Closed-loop logins in flight.
    pub workers: usize,
    /// `appendfsync` of every Redis node, if not the script's `always`.
    pub appendfsync: Option<String>,
}

/// The Lua scripts of sls-redis, read from its source so that the baseline runs exactly the
/// scripts the nodes run (they are crate-private there).
const KEYS_RS: &str = include_str!("../../../../daemon/redis/src/keys.rs");

fn script(name: &str) -> anyhow::Result<&'static str> {
    let start = format!("const {name}: &str = r\"");
    let at = KEYS_RS
        .find(&start)
        .with_context(|| format!("script {name} in sls-redis's keys.rs"))?
        + start.len();
    let len = KEYS_RS[at..]
        .find("\";")
        .with_context(|| format!("the end of script {name}"))?;
    Ok(&KEYS_RS[at..at + len])
}

/// The commands the scripts call inside Redis (`redis.call('X', …)`), lower case: Redis counts
/// them in `commandstats` too, but they are no round trips.
fn script_internal() -> Vec<String> {
    KEYS_RS
        .split("redis.call('")
        .skip(1)
        .filter_map(|s| s.split('\'').next())
        .map(str::to_lowercase)
        .collect()
}

/// `redis-cli -p port args…` (`-c`: following the cluster's redirections).
fn cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("redis-cli")
        .args(["-c", "-p", &port.to_string()])
        .args(args)
        .output()
        .context("running redis-cli")?;
    if !out.status.success() {
        bail!("redis-cli -p {port} {}: {out:?}", args.join(" "));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `INFO section` as `field → value`.
fn info(port: u16, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(cli(port, &["info", section])?
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

fn num(map: &BTreeMap<String, String>, key: &str) -> f64 {
    map.get(key).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds (user + system) a process has used so far.
fn proc_cpu(pid: &str, ticks: f64) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks)
        })
        .unwrap_or(0.0)
}

/// What the cluster and the processes had done at one moment.
#[derive(Default, Clone)]
struct Snapshot {
    /// Per command, summed over the masters: (calls, µs inside Redis).
    commands: BTreeMap<String, (u64, u64)>,
    /// CPU seconds: Redis masters, Redis replicas, the two nodes, this runner.
    cpu: [f64; 4],
}

struct Probe {
    masters: Vec<u16>,
    replicas: Vec<u16>,
    nodes: Vec<String>,
    ticks: f64,
}

impl Probe {
    fn take(&self) -> anyhow::Result<Snapshot> {
        let mut s = Snapshot::default();
        for &p in &self.masters {
            for (k, v) in info(p, "commandstats")? {
                let Some(cmd) = k.strip_prefix("cmdstat_") else {
                    continue;
                };
                let field = |name: &str| {
                    v.split(',')
                        .find_map(|f| f.strip_prefix(name)?.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                let e = s.commands.entry(cmd.to_owned()).or_default();
                e.0 += field("calls=");
                e.1 += field("usec=");
            }
        }
        let redis_cpu = |ports: &[u16]| -> anyhow::Result<f64> {
            let mut t = 0.0;
            for &p in ports {
                let i = info(p, "cpu")?;
                t += num(&i, "used_cpu_user") + num(&i, "used_cpu_sys");
            }
            Ok(t)
        };
        s.cpu[0] = redis_cpu(&self.masters)?;
        s.cpu[1] = redis_cpu(&self.replicas)?;
        s.cpu[2] = self.nodes.iter().map(|p| proc_cpu(p, self.ticks)).sum();
        s.cpu[3] = proc_cpu("self", self.ticks);
        Ok(s)
    }
}

/// The difference of two snapshots.
fn delta(a: &Snapshot, b: &Snapshot) -> Snapshot {
    let mut d = Snapshot::default();
    for (cmd, (calls, usec)) in &b.commands {
        let (c0, u0) = a.commands.get(cmd).copied().unwrap_or_default();
        // `info` is this probe's own.
        if cmd != "info" && *calls > c0 {
            d.commands
                .insert(cmd.clone(), (calls - c0, usec.saturating_sub(u0)));
        }
    }
    for i in 0..4 {
        d.cpu[i] = b.cpu[i] - a.cpu[i];
    }
    d
}

/// One closed-loop run.
struct Closed {
    verified_per_s: f64,
    p50: u64,
    p99: u64,
    /// Logins (every step, verified or not) in the measured window.
    logins: u64,
    unexpected: u64,
    window: Snapshot,
}

impl Closed {
    /// Round trips: the commands the nodes sent (not those the scripts called).
    fn round_trips_per_login(&self) -> f64 {
        let inside = script_internal();
        let n: u64 = self
            .window
            .commands
            .iter()
            .filter(|(c, _)| !inside.contains(c))
            .map(|(_, x)| x.0)
            .sum();
        n as f64 / self.logins.max(1) as f64
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `command count` per login; those the scripts call inside Redis in brackets.
fn fmt_commands(d: &Snapshot, logins: u64) -> String {
    let inside = script_internal();
    d.commands
        .iter()
        .filter(|(_, (n, _))| *n as f64 / logins.max(1) as f64 >= 0.005)
        .map(|(c, (n, _))| {
            let per = *n as f64 / logins.max(1) as f64;
            if inside.contains(c) {
                format!("[{c} {per:.2}]")
            } else {
                format!("{c} {per:.2}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

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

/// `redis-benchmark --cluster` of one command: requests/s.
fn bench(port: u16, n: u64, clients: u32, keyspace: u64, args: &[&str]) -> anyhow::Result<f64> {
    let out = Command::new("redis-benchmark")
        .args(["--cluster", "-p", &port.to_string(), "-q", "-P", "1"])
        .args(["-n", &n.to_string(), "-c", &clients.to_string()])
        .args(["-r", &keyspace.to_string()])
        .args(args)
        .output()
        .context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text
        .split(['\r', '\n'])
        .rfind(|l| l.contains("requests per second"))
        .with_context(|| format!("redis-benchmark {}: {text}", args.join(" ")))?;
    let (_, rate) = last
        .split(" requests per second")
        .next()
        .and_then(|h| h.rsplit_once(' '))
        .context("parsing redis-benchmark")?;
    Ok(rate.parse()?)
}

/// A markdown row.
type Row = [String; 3];

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
        "Redis: 3 masters + 3 replicas (`scripts/redis-cluster.sh`), AOF with `appendfsync {fsync}` on every node.\n"
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
            &NO_LIMITS,
        ]
        .concat();
        let dir_a = work.join(format!("cluster-a-{wait}"));
        let a = Daemon::start(slsd, &dir_a, &flags)?;
        let (tls, seal) = (a.tls_dir(), dir_a.join("seal.key"));
        let (tls, seal) = (tls.to_string_lossy(), seal.to_string_lossy());
        let flags_b = [&flags[..], &["--tls-dir", &tls, "--seal-key", &seal]].concat();
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
        // next one would trip on); enrolled through node A.
        let prepared = lrun::prepare(&targets, &spec(opts.users), Behaviour::default()).await?;
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
                let keys = cli(m, &["--scan", "--pattern", &format!("{{{prefix}:t:*")])?;
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
                "Redis memory per transaction key (`{P:t:…}`, a settled login)".into(),
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
                "wait-replicas {wait}: closed loop, {} conns ({} per node) × {} logins in flight in all: verified logins/s",
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
            format!("wait-replicas {wait}: Redis round trips per login (masters' `INFO commandstats`; [inside the scripts])"),
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

/// `redis-benchmark` of each command a login sends, the scripts loaded first on every master;
/// then Redis alone's logins/s = 1 / Σ (commands of a kind per login ÷ their ops/s).
fn baseline(
    port: u16,
    masters: &[u16],
    login: &Closed,
    wait: usize,
    state_len: usize,
    opts: &Opts,
) -> anyhow::Result<(Vec<Row>, String)> {
    let mut sha = BTreeMap::new();
    for name in ["CAS", "BIND", "SETTLE"] {
        let body = script(name)?;
        for &m in masters {
            let s = cli(m, &["script", "load", body])?.trim().to_owned();
            sha.insert(name, s);
        }
    }
    let n = 100_000u64;
    // As many commands in flight as the nodes had logins in flight (each has one command out
    // at a time): with `appendfsync always` a master's throughput grows with what one fsync
    // covers.
    let clients = u32::try_from(opts.workers).unwrap_or(u32::MAX);
    let fresh = 100_000_000u64;
    let small = 20_000u64;
    let value = "x".repeat(state_len.max(1));
    let (cas, bind, settle) = (&sha["CAS"], &sha["BIND"], &sha["SETTLE"]);
    let deadline = "1800000000000";
    // Keys the reads and the settles find: filled first, not measured.
    bench(
        port,
        small * 3,
        clients,
        small,
        &["evalsha", cas, "1", "{tag}u:__rand_int__", "0", &value],
    )?;
    bench(
        port,
        small * 3,
        clients,
        small,
        &[
            "evalsha",
            bind,
            "1",
            "{tag}t:__rand_int__",
            "u4b0n12345",
            "7",
            deadline,
            "600000",
        ],
    )?;
    // Measured: (kind, its ops/s).
    let measured: Vec<(&str, f64)> = vec![
        (
            "HMGET user v s",
            bench(
                port,
                n,
                clients,
                small,
                &["hmget", "{tag}u:__rand_int__", "v", "s"],
            )?,
        ),
        (
            "HMGET txn u d x r",
            bench(
                port,
                n,
                clients,
                small,
                &["hmget", "{tag}t:__rand_int__", "u", "d", "x", "r"],
            )?,
        ),
        (
            "EVALSHA CAS (a fresh key: the write path)",
            bench(
                port,
                n,
                clients,
                fresh,
                &["evalsha", cas, "1", "{tag}w:__rand_int__", "0", &value],
            )?,
        ),
        (
            "EVALSHA BIND (a fresh txn)",
            bench(
                port,
                n,
                clients,
                fresh,
                &[
                    "evalsha",
                    bind,
                    "1",
                    "{tag}b:__rand_int__",
                    "u4b0n12345",
                    "7",
                    deadline,
                    "600000",
                ],
            )?,
        ),
        (
            "EVALSHA SETTLE (a bound txn)",
            bench(
                port,
                n,
                clients,
                small,
                &[
                    "evalsha",
                    settle,
                    "1",
                    "{tag}t:__rand_int__",
                    "AA",
                    deadline,
                    "600000",
                ],
            )?,
        ),
        (
            "WAIT 1 1000 (to one master)",
            bench(port, n, clients, small, &["wait", "1", "1000"])?,
        ),
    ];
    let rate = |k: &str| {
        measured
            .iter()
            .find(|(m, _)| m.starts_with(k))
            .map_or(1.0, |m| m.1)
    };
    // The login's mix, from what the nodes sent (commandstats), split by the code's shape:
    // begin = HMGET user + CAS + BIND; answer = HMGET txn + HMGET user + CAS + SETTLE (+ WAIT
    // to every master when the change must be durable).
    let logins = login.logins.max(1) as f64;
    let per = |c: &str| login.window.commands.get(c).map_or(0.0, |x| x.0 as f64) / logins;
    let (hmget, evalsha, waits) = (per("hmget"), per("evalsha"), per("wait"));
    let txn_reads = 1.0f64.min(hmget);
    let user_reads = hmget - txn_reads;
    let (binds, settles) = (1.0f64.min(evalsha), 1.0f64.min((evalsha - 1.0).max(0.0)));
    let cas_n = (evalsha - binds - settles).max(0.0);
    let inside = script_internal();
    let other: f64 = login
        .window
        .commands
        .iter()
        .filter(|(c, _)| !["hmget", "evalsha", "wait"].contains(&c.as_str()) && !inside.contains(c))
        .map(|(_, x)| x.0 as f64)
        .sum::<f64>()
        / logins;
    let mix = [
        ("HMGET user", user_reads),
        ("HMGET txn", txn_reads),
        ("EVALSHA CAS", cas_n),
        ("EVALSHA BIND", binds),
        ("EVALSHA SETTLE", settles),
        ("WAIT", waits),
    ];
    let secs_per_login: f64 = mix.iter().map(|(k, n)| n / rate(k)).sum();
    let redis_logins = 1.0 / secs_per_login.max(1e-12);
    let sls = login.verified_per_s;
    let mut rows: Vec<Row> = measured
        .iter()
        .map(|(k, r)| {
            [
                format!("baseline: `redis-benchmark --cluster -P 1 -c {clients} -n {n}`: {k}"),
                format!("{r:.0} ops/s"),
                String::new(),
            ]
        })
        .collect();
    rows.push([
        format!("baseline: logins/s Redis alone could serve (the login's mix as measured with wait-replicas {wait})"),
        format!("**{redis_logins:.0}**"),
        format!(
            "mix per login: {}{}; = 1 / Σ (count ÷ ops/s)",
            mix.iter()
                .map(|(k, n)| format!("{k} {n:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            if other > 0.005 {
                format!(", other {other:.2} (not benchmarked)")
            } else {
                String::new()
            }
        ),
    ]);
    rows.push([
        format!("sls (wait-replicas {wait}) ÷ that baseline"),
        format!(
            "**{:.2}** ({sls:.0} ÷ {redis_logins:.0})",
            sls / redis_logins
        ),
        "goal ≥ 0.5, and ≥ 20,000 verified logins/s".into(),
    ]);
    let text = format!(
        "redis-benchmark: -n {n} per command, keys `{{tag}}…:__rand_int__` (one slot per master), the reads and settles over {small} keys per master filled first, the CAS and BIND writes over fresh keys; the CAS value {state_len} B (a real user's sealed state); {} runs × {} s per setting, {} users per run\n",
        opts.runs, opts.secs, opts.users
    );
    Ok((rows, text))
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
