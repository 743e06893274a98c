//! What the cluster regime reads off the cluster and the processes around a measured window:
//! the commands each node sent (its own count, `sls_redis_commands_total` on its metrics
//! endpoint: the round trips), `INFO commandstats` and `INFO cpu` of every Redis node (the
//! calls as Redis counts them, scripts' inner calls included), `/proc/<pid>/stat` of the two
//! nodes and of this runner; the regime's options, and a closed-loop run's result.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

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
    /// The nodes keep the per-user rate limit (slsd's default quota) instead of running
    /// without it.
    pub user_limit: bool,
}

/// The Lua scripts of sls-redis, the very ones the nodes run.
const SCRIPTS: [(&str, &str); 7] = [
    ("CAS", sls_redis::keys::CAS),
    ("BIND", sls_redis::keys::BIND),
    ("SETTLE", sls_redis::keys::SETTLE),
    ("TXN_AND_USER", sls_redis::keys::TXN_AND_USER),
    ("NOTE_LOCKOUT", sls_redis::keys::NOTE_LOCKOUT),
    ("TAKE_USER_TOKEN", sls_redis::keys::TAKE_USER_TOKEN),
    ("READ_LIMITED", sls_redis::keys::READ_LIMITED),
];

pub(crate) fn script(name: &str) -> anyhow::Result<&'static str> {
    SCRIPTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, body)| *body)
        .with_context(|| format!("no script {name} in sls-redis"))
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

/// The samples of `family` (a counter, `_total`) on the metrics endpoint at `addr`, by the
/// value of their one label, and the unlabelled one under `""`.
fn scrape(addr: SocketAddr, family: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let mut out = BTreeMap::new();
    let total = format!("{family}_total");
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&total) else {
            continue;
        };
        let (label, value) = match rest.strip_prefix('{') {
            Some(r) => {
                let (inside, v) = r.split_once('}').context("a label set")?;
                let label = inside.split('"').nth(1).unwrap_or_default();
                (label.to_owned(), v)
            }
            None => (String::new(), rest),
        };
        let Ok(v) = value.trim().parse::<u64>() else {
            continue;
        };
        *out.entry(label).or_default() += v;
    }
    Ok(out)
}

/// A loopback address nothing listens on now, for a node's metrics endpoint.
pub(crate) fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// What the cluster and the processes had done at one moment.
#[derive(Default, Clone)]
pub(crate) struct Snapshot {
    /// Per command, summed over the masters: (calls, µs inside Redis).
    pub(crate) commands: BTreeMap<String, (u64, u64)>,
    /// The commands the two nodes sent, by what for (`sls_redis_commands_total`), and their
    /// stale guesses under `stale`.
    pub(crate) sent: BTreeMap<String, u64>,
    /// CPU seconds: Redis masters, Redis replicas, the two nodes, this runner.
    pub(crate) cpu: [f64; 4],
}

pub(crate) struct Probe {
    pub(crate) masters: Vec<u16>,
    pub(crate) replicas: Vec<u16>,
    pub(crate) nodes: Vec<String>,
    /// The nodes' metrics endpoints.
    pub(crate) metrics: Vec<SocketAddr>,
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
        for &m in &self.metrics {
            for (k, v) in scrape(m, "sls_redis_commands")? {
                *s.sent.entry(k).or_default() += v;
            }
            for (_, v) in scrape(m, "sls_redis_stale_guesses")? {
                *s.sent.entry("stale".into()).or_default() += v;
            }
        }
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
    for (what, n) in &b.sent {
        let n0 = a.sent.get(what).copied().unwrap_or_default();
        d.sent.insert(what.clone(), n.saturating_sub(n0));
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
    /// Round trips: the commands the nodes sent, by their own count.
    pub(crate) fn round_trips_per_login(&self) -> f64 {
        self.window.sent_per_login(self.logins).values().sum()
    }
}

impl Snapshot {
    /// What the nodes sent per login, by what for (stale guesses apart: they are among the
    /// compare-and-sets).
    pub(crate) fn sent_per_login(&self, logins: u64) -> BTreeMap<String, f64> {
        let logins = logins.max(1) as f64;
        self.sent
            .iter()
            .filter(|(what, _)| what.as_str() != "stale")
            .map(|(what, n)| (what.clone(), *n as f64 / logins))
            .collect()
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The nodes' commands per login (those under 0.005 left out), then the calls Redis counted
/// per login, scripts' inner calls included, in brackets.
pub(crate) fn fmt_commands(d: &Snapshot, logins: u64) -> String {
    let per_login = logins.max(1) as f64;
    let sent = d
        .sent_per_login(logins)
        .into_iter()
        .filter(|(_, n)| *n >= 0.005)
        .map(|(what, n)| format!("{what} {n:.2}"))
        .collect::<Vec<_>>()
        .join(", ");
    let stale = d.sent.get("stale").copied().unwrap_or(0) as f64 / per_login;
    let calls = d
        .commands
        .iter()
        .filter(|(_, (n, _))| *n as f64 / per_login >= 0.005)
        .map(|(c, (n, _))| format!("{c} {:.2}", *n as f64 / per_login))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{sent} (of which stale guesses {stale:.2}); [Redis's calls: {calls}]")
}

/// A markdown row.
pub type Row = [String; 3];
