//! Configuration: command-line flags over an optional TOML file over defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::core::{CoreConfig, RatePolicy};

/// slsd: the sls second-factor verification daemon (QUIC).
///
/// On first start it creates a local CA, a server certificate and client certificates for the
/// frontend and admin roles in <DATA_DIR>/tls, and prints where they are. Flags override the
/// file given with --config, which overrides the defaults.
#[derive(Debug, Parser, Default)]
#[command(name = "slsd", version, about, long_about)]
pub struct Args {
    /// TOML file with any of the settings below (same names, snake_case).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// UDP address to serve QUIC on (loopback by default) [default: 127.0.0.1:7443].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the journal, snapshots and certificates [default: ./sls-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve Prometheus text metrics over HTTP on this address (off by default).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Worker threads [default: the number of cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Log level: error, warn, info, debug, trace [default: info]; RUST_LOG overrides.
    #[arg(long)]
    pub log: Option<String>,
    /// Do not fsync the journal (benchmarks only: a crash may then forgive failures).
    #[arg(long)]
    pub no_fsync: bool,
    /// Most open connections [default: 20000].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Close connections idle this long, e.g. 30s [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// A challenge's life, e.g. 2m (R12) [default: 2m].
    #[arg(long, value_parser = parse_duration)]
    pub challenge_ttl: Option<Duration>,
    /// Failures that lock a user (R11) [default: 10].
    #[arg(long)]
    pub lockout_threshold: Option<u8>,
    /// Window the failures must fall in (R11) [default: 24h].
    #[arg(long, value_parser = parse_duration)]
    pub lockout_window: Option<Duration>,
    /// How long a lock lasts after the last failure (R11) [default: 24h].
    #[arg(long, value_parser = parse_duration)]
    pub lock_duration: Option<Duration>,
    /// Requests per second per user, burst twice that; 0 turns the limit off [default: 5,
    /// burst 40].
    #[arg(long)]
    pub rate_per_user: Option<u32>,
    /// Requests per second per end-user address, burst twice that; 0 turns it off [default:
    /// 50, burst 200].
    #[arg(long)]
    pub rate_per_client: Option<u32>,
    /// Requests per second for the whole daemon; 0 turns it off [default: 0].
    #[arg(long)]
    pub rate_global: Option<u32>,
    /// Most open transactions [default: 2000000].
    #[arg(long)]
    pub max_open_txns: Option<usize>,
    /// Snapshot when the journal exceeds this many bytes [default: 268435456].
    #[arg(long)]
    pub snapshot_bytes: Option<u64>,
    /// How long shutdown waits for in-flight requests, e.g. 5s [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    pub grace: Option<Duration>,
}

/// The TOML file: every field optional, unknown fields refused.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    metrics: Option<SocketAddr>,
    threads: Option<usize>,
    log: Option<String>,
    no_fsync: Option<bool>,
    max_connections: Option<usize>,
    idle_timeout: Option<String>,
    challenge_ttl: Option<String>,
    lockout_threshold: Option<u8>,
    lockout_window: Option<String>,
    lock_duration: Option<String>,
    rate_per_user: Option<u32>,
    rate_per_client: Option<u32>,
    rate_global: Option<u32>,
    max_open_txns: Option<usize>,
    snapshot_bytes: Option<u64>,
    grace: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// QUIC address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Metrics address.
    pub metrics: Option<SocketAddr>,
    /// Worker threads.
    pub threads: usize,
    /// Log filter.
    pub log: String,
    /// fsync the journal.
    pub fsync: bool,
    /// Most connections.
    pub max_connections: usize,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Snapshot threshold, bytes of journal.
    pub snapshot_bytes: u64,
    /// Shutdown grace.
    pub grace: Duration,
    /// The core's rules.
    pub core: CoreConfig,
}

/// A configuration error, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file is not valid TOML for this program.
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    /// A value is out of range.
    #[error("{field}: {why}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// Why.
        why: String,
    },
}

/// Parses `30s`, `2m`, `24h`, `500ms`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 2m, 24h"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    };
    Ok(Duration::from_secs(secs))
}

impl Config {
    /// Flags over the file over defaults, validated.
    ///
    /// # Errors
    /// An unreadable or invalid file; a value out of range.
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(path.clone(), e))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError::Parse(path.clone(), e.to_string()))?
            }
            None => FileConfig::default(),
        };
        let dur = |field: &'static str,
                   flag: Option<Duration>,
                   file: &Option<String>,
                   default: Duration|
         -> Result<Duration, ConfigError> {
            match (flag, file) {
                (Some(d), _) => Ok(d),
                (None, Some(s)) => {
                    parse_duration(s).map_err(|why| ConfigError::Invalid { field, why })
                }
                (None, None) => Ok(default),
            }
        };
        let core_default = CoreConfig::default();
        // A rate given explicitly gets a burst of two seconds' worth; the defaults keep theirs.
        let per_user = args.rate_per_user.or(file.rate_per_user);
        let per_client = args.rate_per_client.or(file.rate_per_client);
        let d = &core_default.rates;
        let rates = RatePolicy {
            per_user: per_user.unwrap_or(d.per_user),
            per_user_burst: per_user.map_or(d.per_user_burst, |r| r.saturating_mul(2)),
            per_client: per_client.unwrap_or(d.per_client),
            per_client_burst: per_client.map_or(d.per_client_burst, |r| r.saturating_mul(2)),
            global: args.rate_global.or(file.rate_global).unwrap_or(d.global),
        };
        let core = CoreConfig {
            lockout_threshold: args
                .lockout_threshold
                .or(file.lockout_threshold)
                .unwrap_or(core_default.lockout_threshold),
            lockout_window: dur(
                "lockout_window",
                args.lockout_window,
                &file.lockout_window,
                core_default.lockout_window,
            )?,
            lock_duration: dur(
                "lock_duration",
                args.lock_duration,
                &file.lock_duration,
                core_default.lock_duration,
            )?,
            challenge_ttl: dur(
                "challenge_ttl",
                args.challenge_ttl,
                &file.challenge_ttl,
                core_default.challenge_ttl,
            )?,
            max_open_txns: args
                .max_open_txns
                .or(file.max_open_txns)
                .unwrap_or(core_default.max_open_txns),
            rates,
            ..core_default
        };
        if core.lockout_threshold == 0 {
            return Err(ConfigError::Invalid {
                field: "lockout_threshold",
                why: "must be at least 1".into(),
            });
        }
        if core.challenge_ttl.is_zero() {
            return Err(ConfigError::Invalid {
                field: "challenge_ttl",
                why: "must be more than 0".into(),
            });
        }
        let threads = args
            .threads
            .or(file.threads)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        if threads == 0 || threads > 256 {
            return Err(ConfigError::Invalid {
                field: "threads",
                why: "1 to 256".into(),
            });
        }
        Ok(Config {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7443))),
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./sls-data")),
            metrics: args.metrics.or(file.metrics),
            threads,
            log: args.log.or(file.log).unwrap_or_else(|| "info".into()),
            fsync: !(args.no_fsync || file.no_fsync.unwrap_or(false)),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(20_000),
            idle_timeout: dur(
                "idle_timeout",
                args.idle_timeout,
                &file.idle_timeout,
                Duration::from_secs(30),
            )?,
            snapshot_bytes: args
                .snapshot_bytes
                .or(file.snapshot_bytes)
                .unwrap_or(256 << 20),
            grace: dur("grace", args.grace, &file.grace, Duration::from_secs(5))?,
            core,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("2 weeks").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn flags_override_the_file_and_unknown_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slsd.toml");
        std::fs::write(
            &path,
            "lockout_threshold = 5\nchallenge_ttl = \"90s\"\nrate_per_user = 3\n",
        )
        .unwrap();
        let args = Args {
            config: Some(path.clone()),
            lockout_threshold: Some(7),
            ..Args::default()
        };
        let c = Config::from_args(args).unwrap();
        assert_eq!(c.core.lockout_threshold, 7);
        assert_eq!(c.core.challenge_ttl, Duration::from_secs(90));
        assert_eq!(c.core.rates.per_user, 3);
        std::fs::write(&path, "lockout_treshold = 5\n").unwrap();
        let e = Config::from_args(Args {
            config: Some(path.clone()),
            ..Args::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("lockout_treshold"), "{e}");
        std::fs::write(&path, "challenge_ttl = \"soon\"\n").unwrap();
        let e = Config::from_args(Args {
            config: Some(path),
            ..Args::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("challenge_ttl"), "{e}");
    }
}
