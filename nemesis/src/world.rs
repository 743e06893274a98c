//! The real parts: a 6-node Redis Cluster (`scripts/redis-cluster.sh`, through
//! [`RedisCluster`]), two or three `slsd` nodes on it, their frontend connections (swapped when a
//! node restarts on a new port), their `/readyz`, and the users' shards. Every process is one
//! this run started, signalled by its pid; all are stopped when [`World`] drops (a panic
//! included), and a node frozen by the nemesis is thawed first.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use sls_client::pipeline::Pipeline;
use sls_loadgen::daemon::{Daemon, NO_LIMITS};
use sls_loadgen::harness::Pool;
use sls_loadgen::redis_cluster::RedisCluster;
use sls_protocol::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The store's key prefix (slsd's default `--redis-prefix`).
const PREFIX: &str = "sls";

/// Frontend connections per node.
const PIPES: usize = 2;

/// Redis Cluster's slot of `user`'s key `{sls:u:<user>}` (CRC16/XMODEM of the hash tag, as
/// `sls_redis::keys::slot` computes it).
pub fn user_slot(user: &str) -> u16 {
    let tag = format!("{PREFIX}:u:{user}");
    crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes()) % 16384
}

/// A user's DSC+ secret (32 bytes).
pub fn key(user: &str) -> Vec<u8> {
    let mut k = format!("key-of-{user}-padding-to-32-bytes-").into_bytes();
    k.resize(32, b'-');
    k
}

/// The end user's address a user's requests come from (one per user).
pub fn client_ip(i: usize) -> IpAddr {
    let [_, _, hi, lo] = u32::try_from(i).unwrap_or(0).to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(127, 3, hi, lo))
}

/// The masters' slot ranges as `CLUSTER NODES` on `port` reports them: `(first, last, master
/// port)` sorted by first slot.
pub fn slot_ranges(port: u16) -> anyhow::Result<Vec<(u16, u16, u16)>> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "cluster", "nodes"])
        .output()
        .context("running redis-cli")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut ranges = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
            continue;
        }
        let Some(p) = addr
            .split('@')
            .next()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
        else {
            continue;
        };
        for range in fields.iter().skip(8).filter(|f| !f.starts_with('[')) {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                ranges.push((a, b, p));
            }
        }
    }
    ranges.sort_unstable();
    if ranges.is_empty() {
        bail!("no slot ranges from CLUSTER NODES on {port}: {text}");
    }
    Ok(ranges)
}

/// `redis-cli -p port args…`: its output, or `None` if it could not run or failed.
pub fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The shards: slot ranges fixed at the start (a failover moves a range to another process, not
/// to another shard). A shard's index is its place in this list.
#[derive(Debug, Clone)]
pub struct Shards(Vec<(u16, u16)>);

impl Shards {
    /// From the ranges at the start (each master owns one range after `--cluster create`).
    pub fn new(ranges: &[(u16, u16, u16)]) -> Shards {
        Shards(ranges.iter().map(|(a, b, _)| (*a, *b)).collect())
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The shard of `slot`.
    pub fn of_slot(&self, slot: u16) -> usize {
        self.0
            .iter()
            .position(|(a, b)| (*a..=*b).contains(&slot))
            .unwrap_or(0)
    }

    /// The shard of `user`.
    pub fn of_user(&self, user: &str) -> usize {
        self.of_slot(user_slot(user))
    }

    /// The shards the master on `port` serves now.
    pub fn of_master(&self, port: u16, now: &[(u16, u16, u16)]) -> BTreeSet<usize> {
        now.iter()
            .filter(|(_, _, p)| *p == port)
            .map(|(a, _, _)| self.of_slot(*a))
            .collect()
    }
}

/// One slsd node and its metrics address (kept across restarts).
pub struct Node {
    /// The child process.
    pub daemon: Daemon,
    /// Its `--metrics` address (`/readyz`).
    pub metrics: SocketAddr,
}

/// Every node's frontend connections; a restart swaps one node's.
#[derive(Clone, Default)]
pub struct Fronts(Arc<RwLock<Vec<Option<Arc<Pool>>>>>);

impl Fronts {
    /// A pipeline to node `node` (the `k`-th of its connections), if it is connected.
    pub fn pipe(&self, node: usize, k: usize) -> Option<Pipeline> {
        let all = self.0.read().ok()?;
        let pool = all.get(node)?.as_ref()?;
        pool.pipes.get(k % pool.pipes.len().max(1)).cloned()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.0.read().map_or(0, |a| a.len())
    }

    fn set(&self, node: usize, pool: Option<Pool>) {
        if let Ok(mut all) = self.0.write() {
            if all.len() <= node {
                all.resize(node + 1, None);
            }
            all[node] = pool.map(Arc::new);
        }
    }
}

/// The cluster, the nodes, their connections; which Redis nodes are frozen now.
pub struct World {
    /// The Redis Cluster.
    pub cluster: Arc<RedisCluster>,
    /// The slsd nodes.
    pub nodes: Vec<Node>,
    /// Their frontend connections.
    pub fronts: Fronts,
    /// Redis ports frozen now (thawed on drop).
    pub frozen: Arc<Mutex<BTreeSet<u16>>>,
    slsd: std::path::PathBuf,
    wait_timeout: String,
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

impl World {
    /// Starts the cluster and `nodes` slsd nodes on it (`--redis-wait-replicas 1`, WAIT up to
    /// `wait_timeout`), and connects to each.
    pub async fn start(slsd: &Path, nodes: usize, wait_timeout: &str) -> anyhow::Result<World> {
        let cluster = tokio::task::spawn_blocking(RedisCluster::start).await??;
        let mut world = World {
            cluster: Arc::new(cluster),
            nodes: Vec::new(),
            fronts: Fronts::default(),
            frozen: Arc::default(),
            slsd: slsd.to_path_buf(),
            wait_timeout: wait_timeout.to_owned(),
        };
        for _ in 0..nodes {
            let node = world.start_node().await?;
            world.nodes.push(node);
            let i = world.nodes.len() - 1;
            world.reconnect(i).await?;
        }
        Ok(world)
    }

    /// A new slsd node on the cluster: the first one makes the certificates and seal key, the
    /// others share them. Used for the storm's nodes and, at the end, for a node with no cache.
    pub async fn start_node(&self) -> anyhow::Result<Node> {
        let store = self.cluster.store_flag();
        let metrics = free_port()?;
        let metrics_flag = metrics.to_string();
        let mut flags: Vec<String> = [
            "--log",
            "warn",
            "--store",
            &store,
            "--redis-wait-replicas",
            "1",
            "--redis-wait-timeout",
            &self.wait_timeout,
            "--metrics",
            &metrics_flag,
        ]
        .iter()
        .chain(NO_LIMITS.iter())
        .map(|s| (*s).to_owned())
        .collect();
        if let Some(first) = self.nodes.first() {
            let tls = first.daemon.tls_dir();
            let seal = first.daemon.data_dir.join("seal.key");
            flags.extend([
                "--tls-dir".into(),
                tls.to_string_lossy().into_owned(),
                "--seal-key".into(),
                seal.to_string_lossy().into_owned(),
            ]);
        }
        let slsd = self.slsd.clone();
        let daemon = tokio::task::spawn_blocking(move || {
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            Daemon::start_temp(&slsd, &flags)
        })
        .await??;
        Ok(Node { daemon, metrics })
    }

    /// (Re)opens node `i`'s frontend connections (after a restart, on its new port).
    pub async fn reconnect(&self, i: usize) -> anyhow::Result<()> {
        let node = self.nodes.get(i).context("no such node")?;
        let pool = node.daemon.pool(Role::Frontend, PIPES).await?;
        self.fronts.set(i, Some(pool));
        Ok(())
    }

    /// SIGKILLs node `i` (its connections go with it).
    pub fn crash_node(&mut self, i: usize) {
        self.fronts.set(i, None);
        if let Some(n) = self.nodes.get_mut(i) {
            n.daemon.crash();
        }
    }

    /// Starts node `i` again on its data and flags, and reconnects.
    pub async fn restart_node(&mut self, i: usize) -> anyhow::Result<()> {
        let node = self.nodes.get_mut(i).context("no such node")?;
        // The restart waits for "listening" on a thread: slsd starts in well under a second.
        tokio::task::block_in_place(|| node.daemon.restart())?;
        self.reconnect(i).await
    }

    /// Runs a blocking cluster command off the runtime's workers.
    pub async fn on_cluster<T: Send + 'static>(
        &self,
        f: impl FnOnce(&RedisCluster) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || f(&cluster)).await?
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // A stopped process does not take SIGTERM: thaw first, so that the cluster's stop ends
        // it by its pid like the others.
        if let Ok(frozen) = self.frozen.lock() {
            for port in frozen.iter() {
                let _ = self.cluster.thaw_node(*port);
            }
        }
        self.fronts.0.write().map(|mut f| f.clear()).ok();
        for n in &mut self.nodes {
            n.daemon.crash();
        }
    }
}

/// `GET /readyz` on `addr`: the status code, and the body's first line; `None` if nothing
/// answered within a second.
pub async fn readyz(addr: SocketAddr) -> Option<(u16, String)> {
    let get = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: sls\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let raw = String::from_utf8_lossy(&raw);
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.lines().next().unwrap_or("").to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(1), get)
        .await
        .ok()
        .flatten()
}
