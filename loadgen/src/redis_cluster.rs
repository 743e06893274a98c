//! A real Redis Cluster for tests and benches: 6 `redis-server` processes (3 masters, 3
//! replicas) on free loopback ports, started, crashed, restarted and stopped by
//! `scripts/redis-cluster.sh`, which records their pids so that only they are ever signalled.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A running cluster, stopped when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    base: u16,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/redis-cluster.sh")
}

fn run(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .context("running scripts/redis-cluster.sh")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("scripts/redis-cluster.sh {}: {text}", args.join(" "));
    }
    Ok(text)
}

fn free(port: u16) -> bool {
    // The node's port and its cluster bus (port + 10000).
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
}

/// `redis-cli -p port args…`: its output, or `None` if the node did not answer.
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

impl RedisCluster {
    /// Starts a cluster on six free ports (and their bus ports) between 20000 and 29000.
    ///
    /// # Errors
    /// `redis-server` is missing, or the cluster did not form.
    pub fn start() -> anyhow::Result<RedisCluster> {
        let seed = std::process::id() as usize
            ^ Instant::now().elapsed().subsec_nanos() as usize
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() as usize);
        let base = (0..300)
            .map(|i| 20_000 + u16::try_from((seed + i * 7) % 1500).unwrap_or(0) * 6)
            .find(|b| (*b..*b + 6).all(free))
            .context("six free ports")?;
        run(&["start", &base.to_string()])?;
        Ok(RedisCluster { base })
    }

    /// The nodes' ports.
    pub fn ports(&self) -> std::ops::Range<u16> {
        self.base..self.base + 6
    }

    /// `redis://127.0.0.1:port` of every node.
    pub fn nodes(&self) -> Vec<String> {
        self.ports()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// slsd's `--store` value for this cluster.
    pub fn store_flag(&self) -> String {
        format!("redis://127.0.0.1:{}", self.base)
    }

    /// The ports of the nodes that are masters now (as the first node that answers sees it).
    pub fn masters(&self) -> Vec<u16> {
        self.ports()
            .filter(|p| cli(*p, &["role"]).is_some_and(|r| r.starts_with("master")))
            .collect()
    }

    /// The ports of the replicas that follow the master on `port` now.
    pub fn replicas_of(&self, master: u16) -> Vec<u16> {
        let follows = format!("master_port:{master}");
        self.ports()
            .filter(|p| {
                cli(*p, &["info", "replication"]).is_some_and(|i| {
                    i.contains("role:slave") && i.lines().any(|l| l.trim() == follows)
                })
            })
            .collect()
    }

    /// The master that serves `key` now: the one that answers a command on it rather than
    /// redirecting (`MOVED`).
    pub fn master_of(&self, key: &str) -> Option<u16> {
        self.masters()
            .into_iter()
            .find(|m| cli(*m, &["exists", key]).is_some_and(|r| !r.contains("MOVED")))
    }

    /// Holds every client's command on the node on `port` for `ms` milliseconds (`CLIENT
    /// PAUSE … ALL`): a shard that answers late, without a failover.
    ///
    /// # Errors
    /// The node did not take the command.
    pub fn pause(&self, port: u16, ms: u64) -> anyhow::Result<()> {
        cli(port, &["client", "pause", &ms.to_string(), "all"])
            .filter(|r| r.trim() == "OK")
            .map(drop)
            .with_context(|| format!("CLIENT PAUSE on {port}"))
    }

    /// Crashes the node on `port` (SIGKILL, by the pid the script recorded).
    ///
    /// # Errors
    /// No such node.
    pub fn kill_node(&self, port: u16) -> anyhow::Result<()> {
        run(&["kill-node", &port.to_string(), &self.base.to_string()]).map(drop)
    }

    /// Freezes the node on `port` (SIGSTOP): alive and linked, but it reads and answers
    /// nothing until [`RedisCluster::thaw_node`] (a replica that stops acknowledging).
    ///
    /// # Errors
    /// No such node.
    pub fn freeze_node(&self, port: u16) -> anyhow::Result<()> {
        run(&["freeze-node", &port.to_string(), &self.base.to_string()]).map(drop)
    }

    /// Lets a frozen node run again (SIGCONT).
    ///
    /// # Errors
    /// No such node.
    pub fn thaw_node(&self, port: u16) -> anyhow::Result<()> {
        run(&["thaw-node", &port.to_string(), &self.base.to_string()]).map(drop)
    }

    /// Drops every client connection of the node on `port` but the one asking (`CLIENT KILL
    /// TYPE normal`): a network blip between the clients and that node; they reconnect.
    /// Returns how many it dropped.
    ///
    /// # Errors
    /// The node did not take the command.
    pub fn drop_clients(&self, port: u16) -> anyhow::Result<u64> {
        cli(port, &["client", "kill", "type", "normal", "skipme", "yes"])
            .and_then(|r| r.trim().parse().ok())
            .with_context(|| format!("CLIENT KILL on {port}"))
    }

    /// Starts the node on `port` again, on its data.
    ///
    /// # Errors
    /// It did not start.
    pub fn start_node(&self, port: u16) -> anyhow::Result<()> {
        run(&["start-node", &port.to_string(), &self.base.to_string()]).map(drop)
    }

    /// Waits until every node that answers reports `cluster_state:ok`, `want` masters answer,
    /// and each of them has a replica and every replica it has is `online` (what `WAIT 1`
    /// counts).
    ///
    /// # Errors
    /// Not so within `timeout`.
    pub fn wait_ok(&self, want_masters: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let up: Vec<u16> = self
                .ports()
                .filter(|p| cli(*p, &["ping"]).is_some())
                .collect();
            let ok = !up.is_empty()
                && up.iter().all(|p| {
                    cli(*p, &["cluster", "info"]).is_some_and(|i| i.contains("cluster_state:ok"))
                })
                && self.masters().len() == want_masters
                && self.masters().iter().all(|m| {
                    cli(*m, &["info", "replication"]).is_some_and(|i| replicas_online(&i))
                });
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the cluster is not ok after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether a master's `INFO replication` lists a replica and every one it lists is `online`:
/// connected is not enough, a replica still loading the master's snapshot (`wait_bgsave`,
/// `send_bulk`) acknowledges no `WAIT`, and a write that waits for it is refused.
fn replicas_online(info: &str) -> bool {
    let states: Vec<bool> = info
        .lines()
        .filter(|l| l.starts_with("slave") && l.contains("state="))
        .map(|l| l.contains("state=online"))
        .collect();
    !states.is_empty() && states.iter().all(|online| *online)
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let _ = run(&["stop", &self.base.to_string()]);
    }
}

#[cfg(test)]
mod tests {
    use super::replicas_online;

    #[test]
    fn a_replica_still_syncing_is_not_online() {
        let head = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n";
        let syncing =
            format!("{head}slave0:ip=127.0.0.1,port=7004,state=wait_bgsave,offset=0,lag=0\r\n");
        let online =
            format!("{head}slave0:ip=127.0.0.1,port=7004,state=online,offset=1234,lag=0\r\n");
        let one_of_two =
            format!("{online}slave1:ip=127.0.0.1,port=7005,state=send_bulk,offset=0,lag=0\r\n");
        assert!(
            !replicas_online(&syncing),
            "connected but loading the snapshot"
        );
        assert!(replicas_online(&online));
        assert!(!replicas_online(&one_of_two));
        assert!(!replicas_online(
            "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"
        ));
    }
}
