//! The settings, as the command line (clap) and the TOML file (serde) give them: every one
//! optional here; [`super::Config::from_args`] lays the flags over the file, takes the defaults
//! and checks the ranges.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// slsd: the sls second-factor verification daemon (QUIC).
///
/// On first start it creates a local CA, a server certificate and client certificates for the
/// frontend and admin roles in <DATA_DIR>/tls, and prints where they are (a --tls-dir given
/// must exist, unless --init-tls). Flags override the
/// file given with --config, which overrides the defaults. Durations are written like 500ms,
/// 30s, 2m, 24h, 1d or 1h 30m. The file takes the same settings in snake_case, e.g.
/// `challenge_ttl = "2m"`; every key is optional and an unknown key is refused.
// This one struct is both the command line (clap) and the TOML file (serde); `config` is
// skipped by serde, so a file cannot name another.
#[derive(Debug, Default, Clone, Parser, Deserialize, Serialize)]
#[command(name = "slsd", version, about, long_about)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// TOML file with any of the settings below (same names, snake_case).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// UDP address to serve QUIC on (loopback by default) [default: 127.0.0.1:7443].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the journal, snapshots and certificates [default: ./sls-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve metrics (`/metrics`, OpenMetrics text), `/healthz` and `/readyz` over HTTP on this
    /// address (off by default).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Worker threads, 1 to 256, for the background work: sweeps, snapshots, metrics, the Redis
    /// store's bus; connections (and the Redis store's connection) are served on the
    /// --endpoints threads [default: the number of cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// QUIC endpoints serving the one UDP port, 1 to 256: each has a thread of its own, which
    /// serves the connections it accepts. From 2, the sockets share the port with SO_REUSEPORT
    /// (Linux only) and the kernel spreads clients over them by address and port: a client
    /// whose address or port changes mid-connection (NAT rebinding) lands on another endpoint
    /// and loses its connection [default: 1].
    #[arg(long, value_name = "N")]
    pub endpoints: Option<usize>,
    /// Log level: error, warn, info, debug, trace [default: info]; RUST_LOG overrides.
    #[arg(long)]
    pub log: Option<String>,
    /// Log format: `text`, a line per event (ANSI colours only when stderr is a terminal), or
    /// `json`, one JSON object per line for a log collector [default: text].
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Do not fsync the journal (benchmarks only: a crash may then forgive failures).
    #[arg(long)]
    pub no_fsync: bool,
    /// Most live connections (handshake done), 1 to 1000000; more are closed with BUSY
    /// (0x102) [default: 20000].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Most live connections from one IP address, up to --max-connections; more are closed
    /// with ADDRESS_BUSY (0x103) [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_connections_per_address: Option<usize>,
    /// Most IB Key app connections that have proven no key yet, in all, up to
    /// --max-connections; more are closed with UNPROVEN_BUSY (0x104) [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_unproven: Option<usize>,
    /// Most of those from one IP address [default: 32].
    #[arg(long, value_name = "N")]
    pub max_unproven_per_address: Option<usize>,
    /// Most handshakes in progress, 1 to 65536; more are refused [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_handshakes: Option<usize>,
    /// Handshakes in progress from which a client's address is validated with a stateless
    /// retry first, 0 (always) to --max-handshakes [default: 64].
    #[arg(long, value_name = "N")]
    pub retry_above: Option<usize>,
    /// New handshakes per second from one IP address, burst twice that; past it a client is
    /// sent a stateless retry, then refused (CONNECTION_REFUSED); 0 turns it off [default: 100].
    #[arg(long, value_name = "N")]
    pub handshakes_per_address: Option<u32>,
    /// How long a frame begun on a stream may take to arrive whole, 10ms to 10m; then the
    /// stream is reset with FRAME_TIMEOUT (0x110) [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub frame_timeout: Option<Duration>,
    /// How long an IB Key app connection may take to prove a key, 10ms to 10m; then it is
    /// closed with PROOF_TIMEOUT (0x105) [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub prove_timeout: Option<Duration>,
    /// Close connections idle this long, 1s to 1h [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub idle_timeout: Option<Duration>,
    /// A challenge's life, 1s to 1d (R12) [default: 2m].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub challenge_ttl: Option<Duration>,
    /// Failures that lock a user, 1 to 255 (R11) [default: 10].
    #[arg(long)]
    pub lockout_threshold: Option<u8>,
    /// Window the failures must fall in, at least 1s (R11) [default: 24h].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub lockout_window: Option<Duration>,
    /// How long a lock lasts after the last failure, at least the lockout window (R11)
    /// [default: 24h, or the lockout window when that is longer].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub lock_duration: Option<Duration>,
    /// Whether a malformed answer counts as a failure (R10), true or false [default: true].
    #[arg(long, value_name = "BOOL")]
    pub malformed_counts: Option<bool>,
    /// Whether attempts while locked extend the lock (R11), true or false [default: false].
    #[arg(long, value_name = "BOOL")]
    pub extend_lock_while_locked: Option<bool>,
    /// Pushes since the last success before the user must type a challenge instead (push
    /// fatigue, R6), 0 (never push) to 255 [default: 5].
    #[arg(long, value_name = "N")]
    pub push_cap: Option<u8>,
    /// Lockouts across users that raise the mass-lockout signal, 1 to 1000000 [default: 100]
    /// ...
    #[arg(long, value_name = "N")]
    pub mass_lockout_threshold: Option<u32>,
    /// ... within this window, 1s to 1d [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub mass_lockout_window: Option<Duration>,
    /// Least account equity in USD to order a DSC+ (R20: the articles give 500000 and
    /// 1000000); an account whose equity is not known (0) may [default: 1000000].
    #[arg(long, value_name = "USD")]
    pub dsc_plus_min_equity: Option<u64>,
    /// Most devices of one user that are or may become usable again (revoked, replaced and
    /// voided temporary ones do not count), 1 to 64 [default: 32]: past it, enrolling,
    /// issuing or sharing one more is refused with TOO_MANY_DEVICES.
    #[arg(long, value_name = "N")]
    pub max_devices_per_user: Option<usize>,
    /// A temporary code's full access (R13), 1h to 30d [default: 2d] ...
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub temp_code_full: Option<Duration>,
    /// ... then Client Portal only (R13), 0s to 90d [default: 10d].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub temp_code_portal: Option<Duration>,
    /// An Online SCC's life (R14), 1d to 90d [default: 21d].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub online_scc_life: Option<Duration>,
    /// How long after shipment a replacement DSC+ activates by itself (R16), 1d to 90d
    /// [default: 21d].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub auto_activation: Option<Duration>,
    /// The trading grant of an IB Key approval with the PIN (R21), 1m to 7d [default: 12h].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub grant_pin: Option<Duration>,
    /// The trading grant of an IB Key approval with biometrics (R21), 1m to 7d [default:
    /// 30h].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub grant_biometric: Option<Duration>,
    /// An IB Key activation token's life (R22), 1m to 1d [default: 15m].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub activation_token_life: Option<Duration>,
    /// Requests per second per user (Begin, Answer, PasswordFailed); 0 turns the limit off. A
    /// rate set here bursts to twice that (two seconds' worth) [default: 5 a second, burst 40].
    /// Exact across nodes on a shared store (kept in the store); per node on the embedded
    /// store.
    #[arg(long)]
    pub rate_per_user: Option<u32>,
    /// Requests per second per end-user address (the `client` of Begin, Answer,
    /// PasswordFailed); 0 turns it off. A rate set here bursts to twice that [default: 50 a
    /// second, burst 200]. Per node: with N nodes sharing a store, size it for one node's share of
    /// an address's traffic (the rate wanted / N if the balancer spreads an address evenly).
    #[arg(long)]
    pub rate_per_client: Option<u32>,
    /// Requests per second for the whole daemon (Begin, Answer, PasswordFailed), burst equal to
    /// the rate; 0 turns it off [default: 0]. Per node: with
    /// N nodes, the cluster's rate wanted / N.
    #[arg(long)]
    pub rate_global: Option<u32>,
    /// Most open challenges (begun, not yet answered nor expired) one connection may hold,
    /// 1 to --max-open-txns; a `Begin` past it answers CAPACITY on that connection only, so that
    /// one frontend cannot fill the daemon's share of the others [default: --max-open-txns / 8].
    #[arg(long, value_name = "N")]
    pub max_open_per_connection: Option<usize>,
    /// Failed `DeviceProve`s per second from one IP address, burst five times that, 0 to 1000;
    /// past it `DeviceProve` answers RATE_LIMITED (0x0111) without checking the proof; 0 turns
    /// it off [default: 2].
    #[arg(long, value_name = "N")]
    pub proof_failures_per_address: Option<u32>,
    /// Most open transactions, 1 to 100000000 [default: 2000000].
    #[arg(long)]
    pub max_open_txns: Option<usize>,
    /// Snapshot when the journal exceeds this many bytes, 4096 to 2^40 [default: 268435456].
    #[arg(long)]
    pub snapshot_bytes: Option<u64>,
    /// How long shutdown waits for in-flight requests, 0s to 1h [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub grace: Option<Duration>,
    /// Where user state lives: `embedded` (this process's memory and the journal in the data
    /// directory) or a Redis Cluster shared by several nodes, `redis://HOST:PORT[,HOST:PORT…]`
    /// (seed nodes; the rest are discovered) [default: embedded].
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
    /// With a Redis store: the namespace before every key, so that several deployments can
    /// share a cluster [default: sls].
    #[arg(long, value_name = "PREFIX")]
    pub redis_prefix: Option<String>,
    /// With a Redis store: replicas every master must acknowledge (`WAIT`) before a change is
    /// answered; 0 trusts the masters' own fsync (a failover may then lose the last changes)
    /// [default: 1].
    #[arg(long, value_name = "N")]
    pub redis_wait_replicas: Option<usize>,
    /// With a Redis store: how long a shard's replicas may take to acknowledge (`WAIT`); a
    /// change on a shard whose replicas fall short is refused after it. 1ms to 1min, less
    /// than --redis-response-timeout [default: 500ms].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub redis_wait_timeout: Option<Duration>,
    /// With a Redis store: how long a command may wait for its reply (retries and redirects
    /// included); a request to a master that does not answer (frozen, cut off) is refused
    /// after it, and only that master's users wait. 10ms to 1min, more than
    /// --redis-wait-timeout [default: 2s, or --redis-wait-timeout + 1s if longer].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub redis_response_timeout: Option<Duration>,
    /// With a Redis store: how long connecting to a Redis node may take. 10ms to 1min
    /// [default: 2s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub redis_connect_timeout: Option<Duration>,
    /// With a Redis store: users whose last known state this node keeps (about 300 bytes
    /// each), so that their next change is one round trip instead of two; a guess that another
    /// node made stale is refused by Redis, never acted on. 0 to 10000000 [default: 100000].
    #[arg(long, value_name = "N")]
    pub redis_cache_users: Option<usize>,
    /// With a Redis store: the AES-256-GCM key that seals every user's state at rest, a file
    /// of 64 hex digits that every node is given. Without it, <DATA_DIR>/seal.key, created if
    /// missing (development only: the other nodes need the same file).
    #[arg(long, value_name = "FILE")]
    pub seal_key: Option<PathBuf>,
    /// Directory of the certificates; several nodes serving the same frontends share one. A
    /// directory given here (flag or file) must exist, else slsd refuses to start, unless
    /// --init-tls is given; the default one is created on the data directory's first start
    /// [default: <DATA_DIR>/tls].
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Create the --tls-dir if it does not exist, with a new CA, a server certificate and the
    /// frontend and admin certificates (what slsd does with its default directory). Once, by
    /// hand; never from the file.
    #[arg(long)]
    #[serde(skip)]
    pub init_tls: bool,
    /// Audit entries kept per user, the newest, 0 (no trail) to 100000 (about 90
    /// bytes of memory each on the embedded store) [default: 200].
    #[arg(long, value_name = "N")]
    pub audit_keep: Option<usize>,
    /// Audit entries older than this are dropped, 1h to 3650d [default: 90d].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub audit_max_age: Option<Duration>,
    /// This node's name in the audit trail, 1 to 128 bytes [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// How long an admin write's idempotency key and first answer are kept, 1m to 7d
    /// [default: 24h].
    #[arg(long, value_parser = parse_duration)]
    #[serde(with = "duration")]
    pub idempotency_ttl: Option<Duration>,
    /// Write the audit trail kept in DIR (a data directory of the embedded store) to FILE as
    /// JSON lines (`-`: standard output), then exit; a running slsd may hold DIR.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub audit_export: Option<PathBuf>,
    /// Start even though the journal is damaged: copy each damaged file aside
    /// (`<FILE>.damaged-<UNIX TIME>`), keep the records before the damage, set aside what follows
    /// it, and rebuild a missing or damaged MANIFEST from the files present. Once, by hand,
    /// after reading why slsd refused to start; never from the file.
    #[arg(long)]
    #[serde(skip)]
    pub repair: bool,
    /// Print the configuration file with every setting, its default and a comment, then exit
    /// (`slsd --print-config > slsd.toml`; `--config slsd.toml` takes it as it is).
    #[arg(long, conflicts_with_all = ["completions", "man"])]
    #[serde(skip)]
    pub print_config: bool,
    /// Print the shell completions for SHELL (bash, zsh, fish, elvish, powershell), then exit.
    #[arg(long, value_name = "SHELL", value_enum, conflicts_with = "man")]
    #[serde(skip)]
    pub completions: Option<clap_complete::Shell>,
    /// Print the man page slsd(8) in roff, then exit (`slsd --man > slsd.8`).
    #[arg(long)]
    #[serde(skip)]
    pub man: bool,
}

impl Settings {
    /// Each setting from `self` where it is given, else from `under`: the command line over
    /// the file. The struct literal names every field, so a new setting cannot be forgotten.
    #[must_use]
    pub fn or(self, under: Settings) -> Settings {
        Settings {
            config: self.config.or(under.config),
            listen: self.listen.or(under.listen),
            data_dir: self.data_dir.or(under.data_dir),
            metrics: self.metrics.or(under.metrics),
            threads: self.threads.or(under.threads),
            endpoints: self.endpoints.or(under.endpoints),
            log: self.log.or(under.log),
            log_format: self.log_format.or(under.log_format),
            // A flag can only switch fsync off; either source doing so wins.
            no_fsync: self.no_fsync || under.no_fsync,
            max_connections: self.max_connections.or(under.max_connections),
            max_connections_per_address: self
                .max_connections_per_address
                .or(under.max_connections_per_address),
            max_unproven: self.max_unproven.or(under.max_unproven),
            max_unproven_per_address: self
                .max_unproven_per_address
                .or(under.max_unproven_per_address),
            max_handshakes: self.max_handshakes.or(under.max_handshakes),
            retry_above: self.retry_above.or(under.retry_above),
            handshakes_per_address: self.handshakes_per_address.or(under.handshakes_per_address),
            frame_timeout: self.frame_timeout.or(under.frame_timeout),
            prove_timeout: self.prove_timeout.or(under.prove_timeout),
            idle_timeout: self.idle_timeout.or(under.idle_timeout),
            challenge_ttl: self.challenge_ttl.or(under.challenge_ttl),
            lockout_threshold: self.lockout_threshold.or(under.lockout_threshold),
            lockout_window: self.lockout_window.or(under.lockout_window),
            lock_duration: self.lock_duration.or(under.lock_duration),
            malformed_counts: self.malformed_counts.or(under.malformed_counts),
            extend_lock_while_locked: self
                .extend_lock_while_locked
                .or(under.extend_lock_while_locked),
            push_cap: self.push_cap.or(under.push_cap),
            mass_lockout_threshold: self.mass_lockout_threshold.or(under.mass_lockout_threshold),
            mass_lockout_window: self.mass_lockout_window.or(under.mass_lockout_window),
            dsc_plus_min_equity: self.dsc_plus_min_equity.or(under.dsc_plus_min_equity),
            max_devices_per_user: self.max_devices_per_user.or(under.max_devices_per_user),
            temp_code_full: self.temp_code_full.or(under.temp_code_full),
            temp_code_portal: self.temp_code_portal.or(under.temp_code_portal),
            online_scc_life: self.online_scc_life.or(under.online_scc_life),
            auto_activation: self.auto_activation.or(under.auto_activation),
            grant_pin: self.grant_pin.or(under.grant_pin),
            grant_biometric: self.grant_biometric.or(under.grant_biometric),
            activation_token_life: self.activation_token_life.or(under.activation_token_life),
            rate_per_user: self.rate_per_user.or(under.rate_per_user),
            rate_per_client: self.rate_per_client.or(under.rate_per_client),
            rate_global: self.rate_global.or(under.rate_global),
            max_open_per_connection: self
                .max_open_per_connection
                .or(under.max_open_per_connection),
            proof_failures_per_address: self
                .proof_failures_per_address
                .or(under.proof_failures_per_address),
            max_open_txns: self.max_open_txns.or(under.max_open_txns),
            snapshot_bytes: self.snapshot_bytes.or(under.snapshot_bytes),
            grace: self.grace.or(under.grace),
            store: self.store.or(under.store),
            redis_prefix: self.redis_prefix.or(under.redis_prefix),
            redis_wait_replicas: self.redis_wait_replicas.or(under.redis_wait_replicas),
            redis_wait_timeout: self.redis_wait_timeout.or(under.redis_wait_timeout),
            redis_response_timeout: self.redis_response_timeout.or(under.redis_response_timeout),
            redis_connect_timeout: self.redis_connect_timeout.or(under.redis_connect_timeout),
            redis_cache_users: self.redis_cache_users.or(under.redis_cache_users),
            seal_key: self.seal_key.or(under.seal_key),
            tls_dir: self.tls_dir.or(under.tls_dir),
            // Like --repair, only the command line asks for it.
            init_tls: self.init_tls,
            audit_keep: self.audit_keep.or(under.audit_keep),
            audit_max_age: self.audit_max_age.or(under.audit_max_age),
            node_name: self.node_name.or(under.node_name),
            idempotency_ttl: self.idempotency_ttl.or(under.idempotency_ttl),
            audit_export: self.audit_export,
            // Only the command line can ask for a repair (the file never sets it).
            repair: self.repair,
            // Actions of the command line, like --repair.
            print_config: self.print_config,
            completions: self.completions,
            man: self.man,
        }
    }
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// A line of text per event.
    #[default]
    Text,
    /// A JSON object per line.
    Json,
}

/// Parses a duration with [`humantime::parse_duration`]: `500ms`, `30s`, `2m`, `24h`, `1d`,
/// `1h 30m`, `1.5s`. A number without a unit is refused.
///
/// # Errors
/// The text is not such a duration, or does not fit in a [`Duration`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 500ms, 30s, 2m, 24h ({e})"))
}

/// A duration in the file: a string that [`parse_duration`] accepts, written as
/// [`humantime::format_duration`] does (`2m`, `1day`, `500ms`).
mod duration {
    use super::{parse_duration, Deserialize, Deserializer, Duration, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }

    // serde's `with` passes the field by reference.
    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }
}
