//! What the cluster regime reads off the cluster and the processes around a measured window:
//! `INFO commandstats` and `INFO cpu` of every Redis node, `/proc/<pid>/stat` of the two nodes
//! and of this runner; the regime's options, and a closed-loop run's result.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{bail, Context};

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

/// The Lua scripts of sls-redis, the very ones the nodes run.
const SCRIPTS: [(&str, &str); 6] = [
    ("CAS", sls_redis::keys::CAS),
    ("BIND", sls_redis::keys::BIND),
    ("SETTLE", sls_redis::keys::SETTLE),
    ("TXN_AND_USER", sls_redis::keys::TXN_AND_USER),
    ("NOTE_LOCKOUT", sls_redis::keys::NOTE_LOCKOUT),
    ("TAKE_USER_TOKEN", sls_redis::keys::TAKE_USER_TOKEN),
];

pub(crate) fn script(name: &str) -> anyhow::Result<&'static str> {
    SCRIPTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, body)| *body)
        .with_context(|| format!("no script {name} in sls-redis"))
}

/// The commands the scripts call inside Redis (`redis.call('X', …)`), lower case: Redis counts
/// them in `commandstats` too, but they are no round trips. `CLUSTER KEYSLOT` is counted as
/// `cluster|keyslot`. `HMGET` is not among them: the nodes send it too (see
/// [`Snapshot::hmget_sent`]).
pub(crate) fn script_internal() -> Vec<String> {
    SCRIPTS
        .iter()
        .flat_map(|(_, body)| body.split("redis.call('").skip(1))
        .filter_map(|s| {
            let mut words = s.split('\'');
            let first = words.next()?.to_lowercase();
            if first == "cluster" {
                words
                    .nth(1)
                    .map(|sub| format!("cluster|{}", sub.to_lowercase()))
            } else {
                Some(first)
            }
        })
        .filter(|c| c != "hmget")
        .collect()
}

/// `redis-cli -p port args…` (`-c`: following the cluster's redirections).
pub(crate) fn cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
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
pub(crate) fn info(port: u16, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(cli(port, &["info", section])?
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

pub(crate) fn num(map: &BTreeMap<String, String>, key: &str) -> f64 {
    map.get(key).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds (user + system) a process has used so far.
pub(crate) fn proc_cpu(pid: &str, ticks: f64) -> f64 {
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
pub(crate) struct Snapshot {
    /// Per command, summed over the masters: (calls, µs inside Redis).
    pub(crate) commands: BTreeMap<String, (u64, u64)>,
    /// CPU seconds: Redis masters, Redis replicas, the two nodes, this runner.
    pub(crate) cpu: [f64; 4],
}

pub(crate) struct Probe {
    pub(crate) masters: Vec<u16>,
    pub(crate) replicas: Vec<u16>,
    pub(crate) nodes: Vec<String>,
    pub(crate) ticks: f64,
}

impl Probe {
    pub(crate) fn take(&self) -> anyhow::Result<Snapshot> {
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
pub(crate) fn delta(a: &Snapshot, b: &Snapshot) -> Snapshot {
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
pub(crate) struct Closed {
    pub(crate) verified_per_s: f64,
    pub(crate) p50: u64,
    pub(crate) p99: u64,
    /// Logins (every step, verified or not) in the measured window.
    pub(crate) logins: u64,
    pub(crate) unexpected: u64,
    pub(crate) window: Snapshot,
}

impl Closed {
    /// Round trips: the commands the nodes sent (not those the scripts called).
    pub(crate) fn round_trips_per_login(&self) -> f64 {
        let inside = script_internal();
        let n: f64 = self
            .window
            .commands
            .iter()
            .filter(|(c, _)| !inside.contains(c) && c.as_str() != "hmget")
            .map(|(_, x)| x.0 as f64)
            .sum();
        (n + self.window.hmget_sent()) / self.logins.max(1) as f64
    }
}

impl Snapshot {
    /// The answers' reads of a transaction and its user (`TXN_AND_USER`): each calls `CLUSTER
    /// KEYSLOT` twice when it finds its transaction.
    pub(crate) fn txn_reads(&self) -> f64 {
        self.commands
            .get("cluster|keyslot")
            .map_or(0.0, |x| x.0 as f64)
            / 2.0
    }

    /// `HMGET`s the nodes sent: all of them, but the two inside each `TXN_AND_USER`.
    pub(crate) fn hmget_sent(&self) -> f64 {
        let all = self.commands.get("hmget").map_or(0.0, |x| x.0 as f64);
        (all - 2.0 * self.txn_reads()).max(0.0)
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `command count` per login; those the scripts call inside Redis in brackets (`HMGET`: the
/// nodes' and the scripts' apart).
pub(crate) fn fmt_commands(d: &Snapshot, logins: u64) -> String {
    let inside = script_internal();
    let logins = logins.max(1) as f64;
    d.commands
        .iter()
        .filter(|(_, (n, _))| *n as f64 / logins >= 0.005)
        .map(|(c, (n, _))| {
            let per = *n as f64 / logins;
            if c == "hmget" {
                let sent = d.hmget_sent() / logins;
                format!("hmget {sent:.2}, [hmget {:.2}]", per - sent)
            } else if inside.contains(c) {
                format!("[{c} {per:.2}]")
            } else {
                format!("{c} {per:.2}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A markdown row.
pub type Row = [String; 3];
