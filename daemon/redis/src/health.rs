//! Whether this node can change state now (its readiness), and the watchdog that rebuilds the
//! cluster connection when it stops carrying requests while the cluster itself answers.
//!
//! **A probe round** ([`RedisStore::probe`], every [`PROBE_EVERY`] from the thread that serves
//! the requests) sends each shard's master a `PING`, routed by a slot of that shard, through
//! the very connections the requests and the `WAIT` rounds use, each bounded by
//! [`PROBE_TIMEOUT`] (on the rounds' connection, plus the `WAIT` timeout: a `PING` there may
//! queue behind a `WAIT` that blocks it). At the same time it reads the shards (`CLUSTER INFO` and `CLUSTER
//! SLOTS`) over a fresh connection of its own to any node that answers, so that the list stays
//! true when the cluster connection does not (a failover, a wedged connection).
//!
//! **Ready** ([`RedisStore::readiness`]) unless some shard failed its last [`UNREADY_AFTER`]
//! probes or more in a row; then the reason names it: `redis shard 127.0.0.1:7001 (slots
//! 0-5460): 3 probes in a row timed out`. A node cut off from the cluster, or whose cluster
//! connection no longer sends, is unready within about `UNREADY_AFTER` rounds (under 4 s), and
//! ready again after the first round whose probes all answer.
//!
//! **The watchdog**: a shard that failed [`REBUILD_AFTER`] probes in a row through the cluster
//! connection while its master answers `PING` and `CLUSTER INFO` (`cluster_state:ok`) on a
//! fresh connection is a connection that stopped working, not a shard that did: the store
//! makes new cluster connections for the requests and the rounds (at most once per
//! [`REBUILD_GAP`]), and says so in a warning. This is what the redis-rs cluster client (1.8)
//! does not do by itself: a reply timeout is retried to the same node, and the slot map is read
//! again only on a redirect or a dropped connection, so a master that stops answering with its
//! sockets open (frozen) keeps its shard's requests after its replica is promoted.
//!
//! **A master that requires full coverage** (`cluster-require-full-coverage yes`, Redis's
//! default) makes one shard's failure everyone's: from the moment the others mark a frozen or
//! dead master failed until its replica is promoted (about a second), every master answers
//! `CLUSTERDOWN` for every slot, and every user's request waits or is refused. Each master the
//! probes learn is asked once (`CONFIG GET`, on a fresh connection); one that says `yes` is
//! named in a warning (once: a master that refuses `CONFIG` is not asked again).

use std::time::{Duration, Instant};

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::Value;

use crate::RedisStore;

/// How long after a round ends the next begins.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// How long a probe (and the fresh connection's questions) may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Failed probes in a row that make a shard, and so the node, unready.
pub const UNREADY_AFTER: u32 = 2;
/// Failed probes in a row, with the master answering a fresh connection, before the cluster
/// connection is rebuilt.
pub const REBUILD_AFTER: u32 = 4;
/// The least time between two rebuilds.
pub const REBUILD_GAP: Duration = Duration::from_secs(5);
/// How long a list of shards is trusted while every probe answers.
const SHARDS_FOR: Duration = Duration::from_secs(5);

/// A shard as the probes see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shard {
    /// Its master's `host:port`.
    address: String,
    /// Its slot ranges, inclusive.
    ranges: Vec<(u16, u16)>,
    /// Probes failed in a row, and how the last failed.
    failed: u32,
    why: String,
}

/// What the probes found.
#[derive(Debug, Default)]
pub(crate) struct Health {
    shards: Vec<Shard>,
    /// When the list of shards was last read.
    read_at: Option<Instant>,
    /// Rounds in a row in which no node answered a fresh connection, and how the last failed.
    unread: u32,
    unread_why: String,
    rebuilt_at: Option<Instant>,
    rebuilds: u64,
    /// Masters asked whether they require full coverage.
    coverage_asked: std::collections::HashSet<String>,
}

impl Health {
    /// Ready, or why not.
    fn verdict(&self) -> Result<(), String> {
        if let Some(s) = self.shards.iter().find(|s| s.failed >= UNREADY_AFTER) {
            return Err(format!(
                "redis shard {} (slots {}): {} probes in a row {}",
                s.address,
                ranges(&s.ranges),
                s.failed,
                s.why
            ));
        }
        if self.shards.is_empty() && self.unread >= UNREADY_AFTER {
            return Err(format!(
                "redis: no node answered CLUSTER SLOTS {} times in a row ({})",
                self.unread, self.unread_why
            ));
        }
        Ok(())
    }

    /// Takes a new list of shards, keeping the failures of the shards that stay: the same
    /// slots (a replica promoted in the failed master's place: this node still fails to reach
    /// them, and the watchdog should not wait for fresh failures), else the same master.
    fn learn(&mut self, mut shards: Vec<Shard>, now: Instant) {
        for s in &mut shards {
            let same = self
                .shards
                .iter()
                .find(|o| o.ranges == s.ranges)
                .or_else(|| self.shards.iter().find(|o| o.address == s.address));
            if let Some(old) = same {
                s.failed = old.failed;
                s.why.clone_from(&old.why);
            }
        }
        self.shards = shards;
        self.read_at = Some(now);
        self.unread = 0;
    }

    /// The shards whose connection should be checked for a rebuild now.
    fn suspects(&self, now: Instant) -> Vec<String> {
        if self
            .rebuilt_at
            .is_some_and(|at| now.duration_since(at) < REBUILD_GAP)
        {
            return Vec::new();
        }
        self.shards
            .iter()
            .filter(|s| s.failed >= REBUILD_AFTER)
            .map(|s| s.address.clone())
            .collect()
    }
}

/// `0-5460` or `0-99,200-300`.
fn ranges(r: &[(u16, u16)]) -> String {
    r.iter()
        .map(|(a, b)| format!("{a}-{b}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `CLUSTER SLOTS` grouped by master, in the order first met.
fn shards_of(slots: Vec<crate::slots::Range>) -> Vec<Shard> {
    let mut out: Vec<Shard> = Vec::new();
    for r in slots {
        match out.iter_mut().find(|s| s.address == r.address) {
            Some(s) => s.ranges.push((r.first, r.last)),
            None => out.push(Shard {
                address: r.address,
                ranges: vec![(r.first, r.last)],
                failed: 0,
                why: String::new(),
            }),
        }
    }
    out
}

/// A fresh connection to `address` (`host:port`), bounded by [`PROBE_TIMEOUT`].
async fn fresh(address: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(format!("redis://{address}")).map_err(|e| e.to_string())?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(PROBE_TIMEOUT))
        .set_response_timeout(Some(PROBE_TIMEOUT));
    tokio::time::timeout(
        PROBE_TIMEOUT,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| "timed out".to_owned())?
    .map_err(|e| e.to_string())
}

/// `CLUSTER INFO` and `CLUSTER SLOTS` of the node at `address`, on a fresh connection: its
/// shards if it says `cluster_state:ok`.
async fn ask_cluster(address: String) -> Result<Vec<Shard>, String> {
    let mut c = fresh(&address).await?;
    let mut pipe = redis::pipe();
    pipe.cmd("CLUSTER").arg("INFO").cmd("CLUSTER").arg("SLOTS");
    let (info, slots): (String, Vec<Value>) =
        tokio::time::timeout(PROBE_TIMEOUT, pipe.query_async(&mut c))
            .await
            .map_err(|_| format!("{address}: timed out"))?
            .map_err(|e| format!("{address}: {e}"))?;
    if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
        return Err(format!("{address}: cluster_state is not ok"));
    }
    let ranges = crate::slots::masters_by_range(slots).map_err(|e| format!("{address}: {e}"))?;
    Ok(shards_of(ranges))
}

/// Whether the node at `address` requires full coverage (`None`: it did not say).
async fn requires_full_coverage(address: String) -> (String, Option<bool>) {
    let said = async {
        let mut c = fresh(&address).await.ok()?;
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg("cluster-require-full-coverage");
        let reply: Vec<String> = tokio::time::timeout(PROBE_TIMEOUT, cmd.query_async(&mut c))
            .await
            .ok()?
            .ok()?;
        Some(reply.get(1)?.eq_ignore_ascii_case("yes"))
    };
    let said = said.await;
    (address, said)
}

/// Asks each of `masters` whether it requires full coverage; warns of those that do.
async fn warn_of_full_coverage(masters: Vec<String>) {
    let said = futures_util::future::join_all(masters.into_iter().map(requires_full_coverage));
    for (address, said) in said.await {
        if said == Some(true) {
            tracing::warn!(
                master = %address,
                "cluster-require-full-coverage is yes on this master: while any master is \
                 failed and not yet replaced, every master refuses every slot (CLUSTERDOWN), \
                 so one shard's failure stops every user's logins; set it to no"
            );
        }
    }
}

/// Whether the master at `address` answers `PING` and `CLUSTER INFO` with `cluster_state:ok`
/// on a fresh connection.
async fn answers_directly(address: &str) -> bool {
    ask_cluster(address.to_owned()).await.is_ok()
}

impl RedisStore {
    /// Ready to change state, or why not (module docs).
    ///
    /// # Errors
    /// The reason, in one line.
    pub fn readiness(&self) -> Result<(), String> {
        self.health.lock().verdict()
    }

    /// Cluster connections rebuilt by the watchdog since start.
    pub fn rebuilds(&self) -> u64 {
        self.health.lock().rebuilds
    }

    /// One probe round (module docs). Run it every [`PROBE_EVERY`] on the runtime that serves
    /// the requests: a rebuilt connection's tasks run where it is made.
    pub async fn probe(&self) {
        let now = Instant::now();
        let (shards, stale) = {
            let h = self.health.lock();
            let stale = h.shards.is_empty()
                || h.shards.iter().any(|s| s.failed > 0)
                || h.read_at
                    .is_none_or(|at| now.duration_since(at) >= SHARDS_FOR);
            (h.shards.clone(), stale)
        };
        let read = async {
            if !stale {
                return None;
            }
            // The masters known, then the seed nodes: the first that answers.
            let mut ask: Vec<String> = shards.iter().map(|s| s.address.clone()).collect();
            for n in &self.config.nodes {
                let a = n.trim_start_matches("redis://").trim_end_matches('/');
                if !ask.iter().any(|k| k == a) {
                    ask.push(a.to_owned());
                }
            }
            let tries = ask.into_iter().map(|a| Box::pin(ask_cluster(a)));
            Some(
                futures_util::future::select_ok(tries)
                    .await
                    .map(|(shards, _)| shards),
            )
        };
        let probes = futures_util::future::join_all(shards.iter().map(|s| self.ping(s)));
        let (read, answers) = tokio::join!(read, probes);
        let (suspects, ask) = {
            let mut h = self.health.lock();
            for (s, answer) in shards.iter().zip(answers) {
                if let Some(mine) = h.shards.iter_mut().find(|m| m.address == s.address) {
                    match answer {
                        Ok(()) => mine.failed = 0,
                        Err(why) => {
                            mine.failed = mine.failed.saturating_add(1);
                            mine.why = why;
                        }
                    }
                }
            }
            match read {
                Some(Ok(list)) => h.learn(list, now),
                Some(Err(why)) => {
                    h.unread = h.unread.saturating_add(1);
                    h.unread_why = why;
                }
                None => {}
            }
            let ask: Vec<String> = h
                .shards
                .iter()
                .map(|s| s.address.clone())
                .filter(|a| !h.coverage_asked.contains(a))
                .collect();
            h.coverage_asked.extend(ask.iter().cloned());
            (h.suspects(now), ask)
        };
        if !ask.is_empty() {
            // Apart from the round: a master that does not answer must not delay readiness.
            tokio::spawn(warn_of_full_coverage(ask));
        }
        for address in suspects {
            if answers_directly(&address).await {
                self.rebuild(&address).await;
                break;
            }
        }
    }

    /// `PING` to `shard`'s master through the requests' connection and the rounds'.
    async fn ping(&self, shard: &Shard) -> Result<(), String> {
        let Some(&(slot, _)) = shard.ranges.first() else {
            return Ok(());
        };
        let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
            slot,
            SlotAddr::Master,
        )));
        let one = |mut c: redis::cluster_async::ClusterConnection,
                   what: &'static str,
                   limit: Duration| {
            let to = to.clone();
            async move {
                match tokio::time::timeout(limit, c.route_command(redis::cmd("PING"), to)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("failed on {what}: {e}")),
                    Err(_) => Err(format!("timed out on {what}")),
                }
            }
        };
        // On the rounds' connection a `PING` may queue behind a `WAIT`, which blocks it for up
        // to its timeout (a shard short of replicas): that is a round's wait, not a wedge.
        let behind_a_wait = PROBE_TIMEOUT.saturating_add(self.config.wait_timeout);
        let (requests, rounds) = tokio::join!(
            one(self.handle(), "the requests' connection", PROBE_TIMEOUT),
            one(
                self.round_handle(),
                "the WAIT rounds' connection",
                behind_a_wait
            )
        );
        requests.and(rounds)
    }

    /// New cluster connections for the requests and the rounds, on this runtime.
    async fn rebuild(&self, address: &str) {
        let (failed, masters) = {
            let h = self.health.lock();
            let failed = h
                .shards
                .iter()
                .find(|s| s.address == address)
                .map(|s| (s.failed, s.why.clone()));
            let masters: Vec<String> = h
                .shards
                .iter()
                .map(|s| format!("redis://{}", s.address))
                .collect();
            (failed, masters)
        };
        // Started from the masters a node with `cluster_state:ok` named just now, not from
        // the seeds: a seed may be the very master that stopped answering, and a client waits
        // for each of its first nodes.
        let nodes = if masters.is_empty() {
            self.config.nodes.clone()
        } else {
            masters
        };
        let made = tokio::time::timeout(self.config.io_timeout.saturating_mul(2), async {
            let client = crate::cluster_client(&self.config, nodes).map_err(|e| e.to_string())?;
            let (conn, rounds) =
                tokio::join!(client.get_async_connection(), client.get_async_connection());
            let conn = conn.map_err(|e| e.to_string())?;
            let rounds = rounds.map_err(|e| e.to_string())?;
            Ok::<_, String>((conn, rounds))
        })
        .await;
        let mut h = self.health.lock();
        h.rebuilt_at = Some(Instant::now());
        match made {
            Ok(Ok((conn, rounds))) => {
                *self.home.write() = Some(conn);
                *self.round_home.write() = Some(rounds);
                h.rebuilds = h.rebuilds.saturating_add(1);
                for s in &mut h.shards {
                    s.failed = 0;
                }
                tracing::warn!(
                    shard = %address,
                    probes = ?failed,
                    "the cluster connection carried no probe to this master while a fresh \
                     connection to it answers (cluster_state:ok): rebuilt the cluster connections"
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(shard = %address, "rebuilding the cluster connection: {e}")
            }
            Err(_) => {
                tracing::warn!(shard = %address, "rebuilding the cluster connection timed out")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(address: &str, first: u16, last: u16, failed: u32) -> Shard {
        Shard {
            address: address.into(),
            ranges: vec![(first, last)],
            failed,
            why: "timed out on the requests' connection".into(),
        }
    }

    #[test]
    fn a_shard_that_failed_its_last_probes_makes_the_node_unready_with_its_name() {
        let mut h = Health::default();
        assert!(
            h.verdict().is_ok(),
            "nothing probed yet: ready (connected at start)"
        );
        h.shards = vec![
            shard("127.0.0.1:7001", 0, 5460, UNREADY_AFTER - 1),
            shard("127.0.0.1:7002", 5461, 10922, UNREADY_AFTER + 1),
        ];
        let why = h.verdict().unwrap_err();
        assert_eq!(
            why,
            "redis shard 127.0.0.1:7002 (slots 5461-10922): 3 probes in a row timed out on the requests' connection"
        );
        h.shards[1].failed = 0;
        assert!(h.verdict().is_ok(), "one failed probe is not enough");
    }

    #[test]
    fn a_new_list_keeps_the_failures_of_the_shards_that_stay() {
        let mut h = Health::default();
        let now = Instant::now();
        h.shards = vec![shard("a:1", 0, 9, 3), shard("b:1", 10, 19, 1)];
        h.unread = 5;
        h.learn(
            vec![
                shard("a:1", 0, 9, 0),
                shard("c:1", 10, 19, 0),
                shard("d:1", 20, 29, 0),
            ],
            now,
        );
        assert_eq!(h.shards[0].failed, 3);
        assert_eq!(
            h.shards[1].failed, 1,
            "a promoted replica takes its slots' failures"
        );
        assert_eq!(h.shards[2].failed, 0, "new slots start afresh");
        assert_eq!(h.unread, 0);
    }

    #[test]
    fn the_watchdog_suspects_a_shard_only_after_enough_failures_and_not_too_often() {
        let mut h = Health::default();
        let now = Instant::now();
        h.shards = vec![
            shard("a:1", 0, 9, REBUILD_AFTER),
            shard("b:1", 10, 19, REBUILD_AFTER - 1),
        ];
        assert_eq!(h.suspects(now), vec!["a:1".to_owned()]);
        h.rebuilt_at = Some(now);
        assert!(h.suspects(now + REBUILD_GAP / 2).is_empty());
        assert_eq!(h.suspects(now + REBUILD_GAP), vec!["a:1".to_owned()]);
    }

    #[test]
    fn nothing_read_and_nothing_known_is_unready() {
        let mut h = Health {
            unread: UNREADY_AFTER,
            unread_why: "127.0.0.1:1: timed out".into(),
            ..Health::default()
        };
        assert!(h.verdict().unwrap_err().contains("no node answered"));
        h.unread = 0;
        assert!(h.verdict().is_ok());
    }

    #[test]
    fn the_shards_of_cluster_slots_group_a_masters_ranges() {
        let r = |first, last, address: &str| crate::slots::Range {
            first,
            last,
            address: address.into(),
            id: String::new(),
        };
        let s = shards_of(vec![
            r(0, 99, "a:1"),
            r(100, 199, "b:1"),
            r(200, 299, "a:1"),
        ]);
        assert_eq!(s.len(), 2);
        assert_eq!(ranges(&s[0].ranges), "0-99,200-299");
    }
}
