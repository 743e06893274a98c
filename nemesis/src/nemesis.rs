//! The nemesis: a schedule of fault cycles drawn from a seed (the same seed, the same schedule),
//! and each cycle carried out on the real processes: SIGKILL and restart of a Redis master or
//! replica, SIGSTOP of a master longer than `cluster-node-timeout` then SIGCONT, SIGKILL and
//! restart of an slsd node. After each heal it waits until every slsd node answers `/readyz`
//! 200 and serves a whole login on every shard, and records how long that took.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sls_protocol::{ocra, Challenge, Message, Purpose, Verdict};

use crate::history::History;
use crate::storm::{User, CALL_TIMEOUT};
use crate::world::{key, readyz, redis_cli, slot_ranges, Shards, World};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL a Redis master, restart it after a while (its replica may be promoted meanwhile).
    KillMaster,
    /// SIGKILL a Redis replica, restart it after a while (its master's WAIT rounds time out).
    KillReplica,
    /// SIGSTOP a Redis master longer than the node timeout (its replica is promoted), then
    /// SIGCONT (it comes back as a replica).
    FreezeMaster,
    /// SIGKILL an slsd node, restart it on its data and flags.
    KillNode,
    /// SIGKILL a master's replica, SIGKILL the master a while later, restart the replica on
    /// its older data and make it take the slots over (`CLUSTER FAILOVER TAKEOVER`), restart the
    /// old master (a replica now): writes acknowledged without their replica's WAIT are lost
    /// here, as in a failover to a lagging replica.
    LaggingFailover,
}

impl Fault {
    /// Every kind, in the order of their names.
    pub const ALL: [Fault; 5] = [
        Fault::KillMaster,
        Fault::KillReplica,
        Fault::FreezeMaster,
        Fault::KillNode,
        Fault::LaggingFailover,
    ];

    /// Its name on the command line and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillMaster => "kill-master",
            Fault::KillReplica => "kill-replica",
            Fault::FreezeMaster => "freeze-master",
            Fault::KillNode => "kill-node",
            Fault::LaggingFailover => "lagging-failover",
        }
    }

    /// The kind named `name`.
    ///
    /// # Errors
    /// No such kind.
    pub fn parse(name: &str) -> Result<Fault, String> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                format!("{name:?}: one of {}", names.join(", "))
            })
    }
}

/// One cycle of the schedule.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Step {
    /// The fault.
    pub fault: Fault,
    /// Which target among those of its kind now (modulo their number).
    pub pick: usize,
    /// Storm without a fault before it (the "before" of the latency figures), ms.
    pub calm_ms: u64,
    /// How long the target stays down or frozen, ms.
    pub down_ms: u64,
}

/// `cycles` steps from `seed` over `kinds`: every `kinds.len()` in a row hold each kind once,
/// in a shuffled order. A freeze lasts longer than `node_timeout_ms` by 1.5 to 3 s.
pub fn schedule(seed: u64, cycles: usize, kinds: &[Fault], node_timeout_ms: u64) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(cycles);
    while out.len() < cycles && !kinds.is_empty() {
        let mut kinds = kinds.to_vec();
        kinds.shuffle(&mut rng);
        for fault in kinds {
            let down_ms = match fault {
                Fault::KillMaster => rng.gen_range(500..4_000),
                Fault::KillReplica => rng.gen_range(500..3_000),
                Fault::FreezeMaster => node_timeout_ms + rng.gen_range(1_500..3_000),
                Fault::KillNode => rng.gen_range(300..2_000),
                // How long the replica lags before its master dies.
                Fault::LaggingFailover => rng.gen_range(800..2_000),
            };
            out.push(Step {
                fault,
                pick: rng.gen_range(0..1_000),
                calm_ms: rng.gen_range(2_000..3_500),
                down_ms,
            });
        }
    }
    out.truncate(cycles);
    out
}

/// What one cycle did and how the nodes came back.
#[derive(Debug, Clone, Serialize)]
pub struct CycleReport {
    /// From 1.
    pub cycle: usize,
    /// The step.
    pub step: Step,
    /// The Redis port or slsd node (0, 1, 2) it hit.
    pub target: String,
    /// The fault began, ms since the run began.
    pub fault_ms: u64,
    /// The heal (restart, SIGCONT), ms since the run began.
    pub heal_ms: u64,
    /// The shards the frozen master served (a freeze only).
    pub frozen_shards: BTreeSet<usize>,
    /// Per slsd node: ms after the heal until it answered `/readyz` 200 and served a login on
    /// every shard; `None`: not within the wait.
    pub ready_after_ms: Vec<Option<u64>>,
}

/// Probe users: one per slsd node and shard, never in the storm.
pub type Probes = Vec<Vec<User>>;

/// Carries out `step`, heals, measures readiness (waiting up to `max_wait`).
pub async fn run_cycle(
    world: &mut World,
    history: &History,
    shards: &Shards,
    probes: &Probes,
    cycle: usize,
    step: Step,
    max_wait: Duration,
) -> anyhow::Result<CycleReport> {
    tokio::time::sleep(Duration::from_millis(step.calm_ms)).await;
    let base = world.cluster.ports().start;
    let masters = world.on_cluster(|c| Ok(c.masters())).await?;
    let all: Vec<u16> = world.cluster.ports().collect();
    let replicas: Vec<u16> = all
        .iter()
        .copied()
        .filter(|p| !masters.contains(p))
        .collect();
    let pick = |of: &[u16]| of.get(step.pick % of.len().max(1)).copied();
    let down = Duration::from_millis(step.down_ms);
    let mut frozen_shards = BTreeSet::new();
    let (target, fault_ms, heal_ms) = match step.fault {
        Fault::KillMaster | Fault::KillReplica | Fault::FreezeMaster => {
            let of = if step.fault == Fault::KillReplica {
                &replicas
            } else {
                &masters
            };
            let port = pick(of).context("no Redis node of that role")?;
            let seed = if port == base { " (the seed node)" } else { "" };
            let fault_ms = history.now_ms();
            if step.fault == Fault::FreezeMaster {
                let now = tokio::task::spawn_blocking(move || slot_ranges(base)).await??;
                frozen_shards = shards.of_master(port, &now);
                world.frozen.lock().map(|mut f| f.insert(port)).ok();
                world.on_cluster(move |c| c.freeze_node(port)).await?;
                history.event(
                    cycle,
                    format!("SIGSTOP master {port}{seed}, shards {frozen_shards:?}, for {down:?}"),
                );
                tokio::time::sleep(down).await;
                world.on_cluster(move |c| c.thaw_node(port)).await?;
                world.frozen.lock().map(|mut f| f.remove(&port)).ok();
                history.event(cycle, format!("SIGCONT {port}"));
            } else {
                world.on_cluster(move |c| c.kill_node(port)).await?;
                let role = if step.fault == Fault::KillMaster {
                    "master"
                } else {
                    "replica"
                };
                history.event(cycle, format!("SIGKILL {role} {port}{seed} for {down:?}"));
                tokio::time::sleep(down).await;
                world.on_cluster(move |c| c.start_node(port)).await?;
                history.event(cycle, format!("restarted {port}"));
            }
            (format!("redis {port}"), fault_ms, history.now_ms())
        }
        Fault::LaggingFailover => {
            let master = pick(&masters).context("no master")?;
            let follows = world.on_cluster(move |c| Ok(c.replicas_of(master))).await?;
            let replica = *follows.first().context("the master has no replica")?;
            let fault_ms = history.now_ms();
            world.on_cluster(move |c| c.kill_node(replica)).await?;
            history.event(
                cycle,
                format!("SIGKILL replica {replica} of master {master}, for {down:?}"),
            );
            tokio::time::sleep(down).await;
            // The master dies with writes its replica never saw; the replica comes back on its
            // older data and takes the slots over (as a failover to a lagging replica would).
            world.on_cluster(move |c| c.kill_node(master)).await?;
            world.on_cluster(move |c| c.start_node(replica)).await?;
            let promoted = world
                .on_cluster(move |c| {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while Instant::now() < deadline {
                        redis_cli(replica, &["cluster", "failover", "takeover"]);
                        std::thread::sleep(Duration::from_millis(300));
                        if c.masters().contains(&replica) {
                            return Ok(true);
                        }
                    }
                    Ok(false)
                })
                .await?;
            world.on_cluster(move |c| c.start_node(master)).await?;
            history.event(
                cycle,
                format!(
                    "SIGKILL master {master}; replica {replica} restarted and took over \
                     (promoted: {promoted}); restarted {master}"
                ),
            );
            (format!("redis {master}"), fault_ms, history.now_ms())
        }
        Fault::KillNode => {
            let i = step.pick % world.nodes.len().max(1);
            let fault_ms = history.now_ms();
            world.crash_node(i);
            history.event(cycle, format!("SIGKILL slsd node {i} for {down:?}"));
            tokio::time::sleep(down).await;
            world.restart_node(i).await?;
            history.event(cycle, format!("restarted slsd node {i}"));
            (format!("slsd node {i}"), fault_ms, history.now_ms())
        }
    };
    let ready_after_ms = await_ready(world, history, probes, cycle, max_wait).await;
    // The next fault starts from a whole cluster: three masters, each with a linked replica.
    world
        .on_cluster(|c| c.wait_ok(3, Duration::from_secs(60)))
        .await
        .context("the Redis Cluster did not heal within 60 s")?;
    Ok(CycleReport {
        cycle,
        step,
        target,
        fault_ms,
        heal_ms,
        frozen_shards,
        ready_after_ms,
    })
}

/// Waits until every node answers `/readyz` 200 and serves a login of each of its probe users
/// (one per shard), for up to `max_wait`: per node, the ms that took, or `None`.
pub async fn await_ready(
    world: &World,
    history: &History,
    probes: &Probes,
    cycle: usize,
    max_wait: Duration,
) -> Vec<Option<u64>> {
    let start = Instant::now();
    let n = world.nodes.len();
    let mut ready: Vec<Option<u64>> = vec![None; n];
    let mut last: Vec<String> = vec![String::new(); n];
    while start.elapsed() < max_wait && ready.iter().any(Option::is_none) {
        let mut round = tokio::task::JoinSet::new();
        for (i, r) in ready.iter().enumerate() {
            if r.is_some() {
                continue;
            }
            let metrics = world.nodes[i].metrics;
            let fronts = world.fronts.clone();
            let users = probes.get(i).cloned().unwrap_or_default();
            round.spawn(async move {
                let why = match readyz(metrics).await {
                    Some((200, _)) => serves(&fronts, i, &users).await,
                    Some((code, body)) => Err(format!("/readyz {code} {body}")),
                    None => Err("/readyz did not answer".to_owned()),
                };
                (i, why)
            });
        }
        while let Some(Ok((i, why))) = round.join_next().await {
            match why {
                Ok(()) => {
                    let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                    ready[i] = Some(ms);
                }
                Err(e) => last[i] = e,
            }
        }
        if ready.iter().any(Option::is_none) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let words: Vec<String> = ready
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            Some(ms) => format!("node {i} ready and serving after {ms} ms"),
            None => format!("node {i} NOT serving after {max_wait:?}: {}", last[i]),
        })
        .collect();
    history.event(cycle, words.join("; "));
    ready
}

/// A whole login (begin, right answer) of each of `users` on node `i`.
async fn serves(fronts: &crate::world::Fronts, i: usize, users: &[User]) -> Result<(), String> {
    let pipe = fronts.pipe(i, 0).ok_or("not connected")?;
    let mut logins = tokio::task::JoinSet::new();
    for u in users.iter().cloned() {
        let pipe = pipe.clone();
        logins.spawn(async move {
            let login = async {
                let begin = Message::Begin {
                    user: u.name.clone(),
                    purpose: Purpose::Login,
                    device: Some(u.device),
                    client: crate::world::client_ip(u.index),
                };
                let (txn, q) = match pipe.call(begin).await {
                    Ok(Message::ChallengeIssued {
                        txn,
                        challenge: Challenge::Numeric(q),
                        ..
                    }) => (txn, q),
                    other => return Err(format!("{}: begin: {other:?}", u.name)),
                };
                let right = sls_loadgen::harness::ocra_answer(
                    ocra::DSC_PLUS_DEFAULT_SUITE,
                    &key(&u.name),
                    &q,
                    "1234",
                )
                .unwrap_or_default();
                let answer = Message::Answer {
                    txn,
                    response: right,
                    client: crate::world::client_ip(u.index),
                };
                match pipe.call(answer).await {
                    Ok(Message::Judged {
                        verdict: Verdict::Accepted { .. },
                    }) => Ok(()),
                    other => Err(format!("{}: answer: {other:?}", u.name)),
                }
            };
            tokio::time::timeout(CALL_TIMEOUT, login)
                .await
                .unwrap_or_else(|_| Err(format!("{}: no verdict within {CALL_TIMEOUT:?}", u.name)))
        });
    }
    let mut out = Ok(());
    while let Some(r) = logins.join_next().await {
        match r {
            Ok(Err(e)) => out = Err(e),
            Err(e) => out = Err(e.to_string()),
            Ok(Ok(())) => {}
        }
    }
    out
}
