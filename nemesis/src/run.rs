//! One run: start the world, enrol, storm while the nemesis runs its cycles, then read every
//! user on every node and on a fresh node, check, and print the summary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sls_protocol::{BulkRecord, DeviceKind, Message, Role};

use crate::check::{Counts, Tally};
use crate::history::History;
use crate::latency::{around_freezes, ShardLatency};
use crate::nemesis::{await_ready, run_cycle, schedule, CycleReport, Fault, Probes};
use crate::storm::{attacked, steady, Done, Sample, User};
use crate::world::{key, slot_ranges, Shards, World};

/// `cluster-node-timeout` of `scripts/redis-cluster.sh`'s nodes, ms: a freeze lasts longer.
const NODE_TIMEOUT_MS: u64 = 2_000;

/// How long the nemesis waits for a node to come back before it calls it wedged and goes on.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Faults under a storm of logins on a real Redis Cluster and real slsd nodes; checks that no
/// acknowledged failure, lock or verdict was lost. Exits 0 on PASS, 1 on a violation or an
/// error (the history file is kept then, and its path printed).
#[derive(Debug, Parser)]
#[command(name = "sls-nemesis", version)]
pub struct Args {
    /// The schedule's seed (printed; the same seed gives the same schedule). Default: random.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fault cycles, at most.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=5000))]
    pub cycles: u64,
    /// Stop starting new cycles after this long (e.g. `2h`), whichever of this and `--cycles`
    /// comes first.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// The kinds of fault to draw from, comma-separated: kill-master, kill-replica,
    /// freeze-master, kill-node, lagging-failover.
    #[arg(long, value_delimiter = ',', value_parser = Fault::parse,
          default_value = "kill-master,kill-replica,freeze-master,kill-node,lagging-failover")]
    pub faults: Vec<Fault>,
    /// slsd nodes on the cluster.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(2..=3))]
    pub nodes: u64,
    /// Users logging in (mostly right) for the whole run.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub steady_users: u64,
    /// Users attacked until locked, per cycle.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub attacked_per_cycle: u64,
    /// Every slsd node must answer `/readyz` 200 and serve a login on every shard within this
    /// long after each heal.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub ready_within: Duration,
    /// slsd's `--redis-wait-timeout` (WAIT for one replica per write).
    #[arg(long, default_value = "2s")]
    pub redis_wait_timeout: String,
    /// The history file (JSON lines). Default: `sls-nemesis-<seed>.jsonl` in the temp dir.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Keep the history file on a PASS too (it is always kept on a FAIL).
    #[arg(long)]
    pub keep_history: bool,
    /// Also write the summary as JSON here.
    #[arg(long)]
    pub summary: Option<PathBuf>,
}

/// What the summary file holds.
#[derive(Debug, Serialize)]
struct Summary {
    seed: u64,
    nodes: u64,
    cycles: Vec<CycleReport>,
    counts: Counts,
    latency: ShardLatency,
    violations: Vec<String>,
    history: PathBuf,
    passed: bool,
}

/// Runs the suite; PASS is exit code 0.
pub async fn main(args: Args) -> ExitCode {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64 ^ u64::from(std::process::id()))
    });
    let history = args
        .history
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("sls-nemesis-{seed}.jsonl")));
    println!(
        "sls-nemesis: seed {seed} (replay: sls-nemesis --seed {seed} --cycles {} --faults {}), history {}",
        args.cycles,
        args.faults.iter().map(|f| f.name()).collect::<Vec<_>>().join(","),
        history.display()
    );
    match run(&args, seed, &history).await {
        Ok(true) => {
            if !args.keep_history {
                let _ = std::fs::remove_file(&history);
            }
            println!("PASS (seed {seed})");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("FAIL (seed {seed}); history kept: {}", history.display());
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("FAIL (seed {seed}): the run stopped: {e:#}");
            println!("history kept: {}", history.display());
            ExitCode::FAILURE
        }
    }
}

/// Users named `<prefix><i>` for `range`, numbered from `first` (their end user's address).
fn users(prefix: &str, range: std::ops::Range<usize>, first: usize, shards: &Shards) -> Vec<User> {
    range
        .map(|i| {
            let name = format!("{prefix}{i}");
            User {
                shard: shards.of_user(&name),
                name,
                index: first + i,
                device: sls_protocol::DeviceId(0),
            }
        })
        .collect()
}

/// One probe user per node and shard: the first `p<node>x<n>` that falls in each shard.
fn probe_users(nodes: usize, shards: &Shards, first: usize) -> Probes {
    let mut next = first;
    (0..nodes)
        .map(|node| {
            (0..shards.len())
                .map(|shard| {
                    let name = (0u32..)
                        .map(|n| format!("p{node}x{n}"))
                        .find(|name| shards.of_user(name) == shard)
                        .unwrap_or_default();
                    next += 1;
                    User {
                        name,
                        index: next,
                        device: sls_protocol::DeviceId(0),
                        shard,
                    }
                })
                .collect()
        })
        .collect()
}

/// Enrols `users` (one DSC+ each, PIN 1234) through node 0 and fills in their devices.
async fn enrol(world: &World, users: &mut [&mut User]) -> anyhow::Result<()> {
    let admin = world.nodes[0].daemon.connect(Role::Admin).await?;
    let records: Vec<BulkRecord> = users
        .iter()
        .map(|u| BulkRecord {
            user: u.name.clone(),
            kind: DeviceKind::DscPlus,
            secret: key(&u.name),
            pin: "1234".into(),
            suite: String::new(),
        })
        .collect();
    let ids = sls_loadgen::harness::enrol_bulk(&admin, &records).await?;
    for (u, id) in users.iter_mut().zip(ids) {
        u.device = id;
    }
    Ok(())
}

async fn run(args: &Args, seed: u64, history_path: &std::path::Path) -> anyhow::Result<bool> {
    let start = Instant::now();
    let cycles = usize::try_from(args.cycles)?;
    let per_wave = usize::try_from(args.attacked_per_cycle)?;
    let steps = schedule(seed, cycles, &args.faults, NODE_TIMEOUT_MS);
    let slsd = sls_loadgen::daemon::find_slsd()?;
    let mut world = World::start(
        &slsd,
        usize::try_from(args.nodes)?,
        &args.redis_wait_timeout,
    )
    .await
    .context("starting the Redis Cluster and the slsd nodes")?;
    let base = world.cluster.ports().start;
    let shards = Shards::new(&tokio::task::spawn_blocking(move || slot_ranges(base)).await??);
    let n_steady = usize::try_from(args.steady_users)?;
    let mut steadies = users("s", 0..n_steady, 0, &shards);
    let mut targets = users("a", 0..cycles * per_wave, n_steady, &shards);
    let mut probes = probe_users(world.nodes.len(), &shards, n_steady + cycles * per_wave);
    {
        let mut all: Vec<&mut User> = steadies.iter_mut().collect();
        all.extend(targets.iter_mut());
        all.extend(probes.iter_mut().flatten());
        enrol(&world, &mut all).await.context("enrolling")?;
    }
    println!(
        "{} slsd nodes on Redis {:?}; {} steady users, {} attacked per cycle, {} probe users; slots {:?}",
        world.nodes.len(),
        world.cluster.ports(),
        steadies.len(),
        per_wave,
        probes.iter().flatten().count(),
        shards
    );
    let (history, writer) = History::create(history_path, start).await?;
    let mut violations = Vec::new();
    let first = await_ready(&world, &history, &probes, 0, MAX_WAIT).await;
    if first.iter().any(Option::is_none) {
        bail!("the nodes were not serving before the first fault");
    }

    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            println!("interrupted: stopping after this cycle");
            flag.store(true, Ordering::Relaxed);
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    // The storm stops when the cycles end; this bounds it even if they never did (a cycle takes
    // well under 2 minutes: its waits are bounded by 30 and 60 s).
    let cycles_u32 = u32::try_from(cycles).unwrap_or(u32::MAX);
    let bound = args
        .duration
        .unwrap_or(Duration::from_secs(120).saturating_mul(cycles_u32))
        .saturating_add(Duration::from_secs(300));
    let deadline = Instant::now() + bound;
    for u in steadies {
        let (f, h, s) = (world.fronts.clone(), history.clone(), stop.clone());
        tasks.spawn(steady(f, h, u, seed, s, (1_000_000, deadline)));
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut reports = Vec::new();
    let mut failure = None;
    for (c, step) in steps.iter().enumerate() {
        if interrupted.load(Ordering::Relaxed) || args.duration.is_some_and(|d| start.elapsed() > d)
        {
            break;
        }
        // This cycle's wave: attacks spread over the calm and the fault.
        let span = step.calm_ms.saturating_add(step.down_ms / 2).max(1);
        for u in targets.iter().skip(c * per_wave).take(per_wave).cloned() {
            let delay = Duration::from_millis(rng.gen_range(0..span));
            let pace = Duration::from_millis(rng.gen_range(100..250));
            let deadline = Instant::now() + Duration::from_secs(60);
            let (f, h) = (world.fronts.clone(), history.clone());
            tasks.spawn(attacked(f, h, u, seed, delay, pace, deadline));
        }
        match run_cycle(
            &mut world,
            &history,
            &shards,
            &probes,
            c + 1,
            *step,
            MAX_WAIT,
        )
        .await
        {
            Ok(r) => reports.push(r),
            Err(e) => {
                failure = Some(e.context(format!("cycle {}", c + 1)));
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut tallies = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    let drained = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(done) = tasks.join_next().await {
            let Done { tally, samples: s } = done.context("a storm task panicked")?;
            tallies.push(tally);
            samples.extend(s);
        }
        anyhow::Ok(())
    })
    .await;
    drained.context("the storm did not stop within 120 s")??;
    if let Some(e) = failure {
        drop(history);
        writer.await??;
        return Err(e);
    }
    history.event(0, "storm stopped; checking".into());

    // Ready again, then every user's count and lock on every node and on a fresh one.
    world
        .on_cluster(|c| c.wait_ok(3, Duration::from_secs(60)))
        .await
        .context("the Redis Cluster is not whole at the end")?;
    let last = await_ready(&world, &history, &probes, cycles + 1, MAX_WAIT).await;
    for (i, r) in last.iter().enumerate() {
        if r.is_none() {
            violations.push(format!("at the end, node {i} is not serving"));
        }
    }
    let fresh = world.start_node().await.context("starting a fresh node")?;
    let mut readers = Vec::new();
    for (i, n) in world.nodes.iter().enumerate() {
        readers.push((format!("node {i}"), n.daemon.connect(Role::Admin).await?));
    }
    readers.push((
        "a fresh node".to_owned(),
        fresh.daemon.connect(Role::Admin).await?,
    ));
    for (name, admin) in &readers {
        read_all(name, admin, &mut tallies).await?;
    }

    let mut counts = Counts::default();
    for t in &mut tallies {
        counts.add(&t.counts);
        violations.extend(t.violations.drain(..).map(|v| placed(v, &reports)));
    }
    for r in &reports {
        for (i, ready) in r.ready_after_ms.iter().enumerate() {
            let late = ready.is_none_or(|ms| u128::from(ms) > args.ready_within.as_millis());
            if late {
                let took =
                    ready.map_or(format!("not within {MAX_WAIT:?}"), |ms| format!("{ms} ms"));
                violations.push(format!(
                    "cycle {} ({} of {}): node {i} ready and serving after {took}, bound {:?}",
                    r.cycle,
                    r.step.fault.name(),
                    r.target,
                    args.ready_within
                ));
            }
        }
    }
    if counts.rejected == 0 || counts.locked_users == 0 || counts.accepted == 0 {
        violations.push(format!(
            "the storm was not answered enough to check anything: {counts:?}"
        ));
    }
    let freezes: Vec<(u64, u64, BTreeSet<usize>)> = reports
        .iter()
        .filter(|r| r.step.fault == Fault::FreezeMaster)
        .map(|r| (r.fault_ms, r.heal_ms, r.frozen_shards.clone()))
        .collect();
    let latency = around_freezes(&samples, &freezes);
    drop(history);
    writer.await??;
    print_summary(seed, args, &reports, &counts, &latency, &violations, start);
    let passed = violations.is_empty();
    if !passed {
        // The nodes' logs go with their temporary data directories: keep them by the history.
        let logs = world.nodes.iter().map(|n| &n.daemon.log);
        for (i, log) in logs.chain([&fresh.daemon.log]).enumerate() {
            let name = format!("{}.slsd-{i}.log", history_path.display());
            if std::fs::copy(log, &name).is_ok() {
                println!("slsd log kept: {name}");
            }
        }
    }
    if let Some(path) = &args.summary {
        let summary = Summary {
            seed,
            nodes: args.nodes,
            cycles: reports,
            counts,
            latency,
            violations,
            history: history_path.to_path_buf(),
            passed,
        };
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(passed)
}

/// `v` with the cycle its first time (`at N ms`) falls in: from a fault to the next one's.
fn placed(v: String, reports: &[CycleReport]) -> String {
    let t_ms = v.split(" at ").skip(1).find_map(|rest| {
        let (n, tail) = rest.split_once(' ')?;
        tail.starts_with("ms")
            .then(|| n.parse::<u64>().ok())
            .flatten()
    });
    let Some(t_ms) = t_ms else {
        return v;
    };
    match reports.iter().rev().find(|r| r.fault_ms <= t_ms) {
        Some(r) => format!(
            "{v} [cycle {}, {} of {}]",
            r.cycle,
            r.step.fault.name(),
            r.target
        ),
        None => format!("{v} [before the first fault]"),
    }
}

/// Every tallied user's count and lock as the node behind `admin` reads them now.
async fn read_all(
    name: &str,
    admin: &sls_client::pipeline::Pipeline,
    tallies: &mut [Tally],
) -> anyhow::Result<()> {
    for t in tallies.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            let reply = tokio::time::timeout(
                Duration::from_secs(5),
                admin.call(Message::Status {
                    user: t.user.clone(),
                }),
            )
            .await;
            match reply {
                Ok(Ok(Message::UserStatus {
                    failures,
                    locked_until_ms,
                    ..
                })) => break Some((failures, locked_until_ms)),
                other if Instant::now() > deadline => {
                    t.violations.push(format!(
                        "{}: {name} did not answer its status: {other:?}",
                        t.user
                    ));
                    break None;
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        if let Some((failures, locked_until_ms)) = status {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            t.check_status(name, failures, locked_until_ms, now_ms);
        }
    }
    Ok(())
}

fn print_summary(
    seed: u64,
    args: &Args,
    reports: &[CycleReport],
    counts: &Counts,
    latency: &ShardLatency,
    violations: &[String],
    start: Instant,
) {
    println!(
        "\n== sls-nemesis summary: seed {seed}, {} cycles, {} slsd nodes, {:.0} s",
        reports.len(),
        args.nodes,
        start.elapsed().as_secs_f64()
    );
    let mut by_kind: BTreeMap<Fault, (usize, u64, usize)> = BTreeMap::new();
    for r in reports {
        let e = by_kind.entry(r.step.fault).or_default();
        e.0 += 1;
        for ready in &r.ready_after_ms {
            match ready {
                Some(ms) => e.1 = e.1.max(*ms),
                None => e.2 += 1,
            }
        }
    }
    println!("cycles (fault .. heal, s since the start; the violations' times are in ms):");
    for r in reports {
        println!(
            "  {:>3} {:<16} {:<14} {:>7.1} .. {:>7.1}",
            r.cycle,
            r.step.fault.name(),
            r.target,
            r.fault_ms as f64 / 1000.0,
            r.heal_ms as f64 / 1000.0
        );
    }
    println!("faults (count, slowest node ready and serving after the heal, nodes never back within {MAX_WAIT:?}):");
    for (kind, (n, worst, never)) in &by_kind {
        println!(
            "  {}: {n} cycles, slowest {worst} ms, never back {never}",
            kind.name()
        );
    }
    println!(
        "storm: {} requests; acknowledged: {} failures, {} successes, {} users locked; {} replays sent, {} right answers after a lock; {} answers without a verdict",
        counts.requests, counts.rejected, counts.accepted, counts.locked_users, counts.replays, counts.right_while_locked, counts.indeterminate
    );
    print!("{}", latency.table());
    if violations.is_empty() {
        println!("checks: no acknowledged failure or lock lost, no lock under 10 failures, no right answer accepted while locked, no replay accepted, every node ready and serving within {:?} of each heal", args.ready_within);
    } else {
        println!("VIOLATIONS ({}):", violations.len());
        for v in violations.iter().take(40) {
            println!("  - {v}");
        }
        if violations.len() > 40 {
            println!(
                "  … and {} more (see the summary file)",
                violations.len() - 40
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::Step;

    #[test]
    fn a_violation_is_placed_in_the_cycle_of_its_time() {
        let step = Step {
            fault: Fault::FreezeMaster,
            pick: 0,
            calm_ms: 0,
            down_ms: 0,
        };
        let report = |cycle, fault_ms| CycleReport {
            cycle,
            step,
            target: "redis 7001".into(),
            fault_ms,
            heal_ms: fault_ms + 10,
            frozen_shards: BTreeSet::new(),
            ready_after_ms: Vec::new(),
        };
        let reports = [report(1, 1_000), report(2, 5_000)];
        let v = placed(
            "u: node 1 rejected an answer at 5200 ms with 9".into(),
            &reports,
        );
        assert!(v.ends_with("[cycle 2, freeze-master of redis 7001]"), "{v}");
        let v = placed("u: lock at 10 ms".into(), &reports);
        assert!(v.ends_with("[before the first fault]"), "{v}");
        let v = placed("u: no time".into(), &reports);
        assert_eq!(v, "u: no time");
    }
}
