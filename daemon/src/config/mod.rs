//! Configuration: command-line flags over an optional TOML file over defaults.
//!
//! One struct, [`Settings`], is both the command line (clap) and the file (serde): every
//! setting is optional in it. [`Config::from_args`] lays the flags over the file
//! ([`Settings::or`]), takes the defaults for what neither gave, and checks the ranges.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::{CoreConfig, RatePolicy};

mod print;
mod ranges;
mod rules;
mod settings;

pub use print::{completions, default_file, effective_file, man_page, printout, NOT_IN_FILE};
pub use ranges::MAX_DURATION;
use ranges::{duration_in, number_in, rate_and_burst};
pub use settings::{parse_duration, LogFormat, Settings};
mod admission;
pub use admission::AdmissionPolicy;
pub mod audit;
pub use audit::AuditConfig;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// QUIC address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Metrics address.
    pub metrics: Option<SocketAddr>,
    /// Worker threads (the background work).
    pub threads: usize,
    /// QUIC endpoints on the one port, a thread each (`SO_REUSEPORT` from 2, Linux only).
    pub endpoints: usize,
    /// Log filter.
    pub log: String,
    /// Log lines as text or JSON.
    pub log_format: LogFormat,
    /// fsync the journal.
    pub fsync: bool,
    /// Most connections (the same as `admission.max_connections`).
    pub max_connections: usize,
    /// The bounds on connections and streams: live connections, per address, unproven IB Key
    /// apps, handshakes, frame and proof deadlines.
    pub admission: AdmissionPolicy,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Snapshot threshold, bytes of journal.
    pub snapshot_bytes: u64,
    /// Shutdown grace.
    pub grace: Duration,
    /// The core's rules.
    pub core: CoreConfig,
    /// Where user state lives.
    pub store: StoreChoice,
    /// The certificates' directory.
    pub tls_dir: PathBuf,
    /// Whether a missing `tls_dir` may be created with new certificates: the default one
    /// (`<data_dir>/tls`), or one given with `--init-tls`. A directory given without it must
    /// exist.
    pub create_tls_dir: bool,
    /// `--repair`: start on a damaged journal after setting the damage aside.
    pub repair: bool,
    /// The audit trail and the idempotency window of admin writes.
    pub audit: AuditConfig,
    /// `--audit-export FILE|-`: write the trail as JSON lines, then exit.
    pub audit_export: Option<PathBuf>,
}

/// Where user state lives.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreChoice {
    /// Memory and the journal in the data directory.
    Embedded,
    /// A Redis Cluster shared by several nodes.
    Redis(RedisChoice),
}

/// The Redis store's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisChoice {
    /// Seed nodes, each `redis://host:port`.
    pub nodes: Vec<String>,
    /// Key namespace.
    pub prefix: String,
    /// Replicas to wait for.
    pub wait_replicas: usize,
    /// How long to wait for them.
    pub wait_timeout: Duration,
    /// How long a command may wait for its reply.
    pub response_timeout: Duration,
    /// How long connecting to a node may take.
    pub connect_timeout: Duration,
    /// Users whose last known state the node keeps.
    pub cache_users: usize,
    /// The seal key's file.
    pub seal_key: PathBuf,
    /// Whether the key file may be created (only the default one, for development).
    pub create_seal_key: bool,
}

/// Parses `--store`: `embedded`, or `redis://host:port` seeds separated by commas (the scheme
/// may be given once, before the first).
fn parse_store(text: &str) -> Result<Vec<String>, ConfigError> {
    let invalid = |why: String| ConfigError::Invalid {
        field: "store",
        why,
    };
    let rest = text.strip_prefix("redis://").ok_or_else(|| {
        invalid(format!(
            "{text:?} is neither `embedded` nor redis://HOST:PORT"
        ))
    })?;
    let mut nodes = Vec::new();
    for seed in rest.split(',').map(str::trim) {
        let seed = seed.strip_prefix("redis://").unwrap_or(seed);
        // Not echoed: it may hold a password, which must not reach the logs.
        if seed.contains('@') {
            return Err(invalid(
                "a seed with credentials (user:password@) is not accepted: they would be logged"
                    .into(),
            ));
        }
        if seed
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '?' | '#'))
        {
            return Err(invalid(format!("{seed:?}: a seed is HOST:PORT")));
        }
        let (host, port) = seed
            .rsplit_once(':')
            .ok_or_else(|| invalid(format!("{seed:?}: a seed is HOST:PORT")))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(invalid(format!("{seed:?}: a seed is HOST:PORT")));
        }
        nodes.push(format!("redis://{seed}"));
    }
    Ok(nodes)
}

/// Most replicas `--redis-wait-replicas` may ask for.
pub const MAX_WAIT_REPLICAS: usize = 16;

/// The most users a node may cache with a Redis store (about 3 GB).
pub const MAX_CACHE_USERS: usize = 10_000_000;
/// Longest `--redis-wait-timeout`.
pub const MAX_WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// `--redis-response-timeout` and `--redis-connect-timeout`: 10 ms to 1 min.
pub const REDIS_TIMEOUTS: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(10)..=Duration::from_secs(60);

/// A Redis timeout `given` (default `default`) in [`REDIS_TIMEOUTS`].
fn redis_timeout(
    field: &'static str,
    given: Option<Duration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match given.unwrap_or(default) {
        d if REDIS_TIMEOUTS.contains(&d) => Ok(d),
        d => Err(ConfigError::Invalid {
            field,
            why: format!("{}: 10ms to 1min", humantime::format_duration(d)),
        }),
    }
}

/// The Redis store's timeouts: `(wait, response, connect)`; a `WAIT`'s reply must fit in the
/// response timeout.
fn redis_timeouts(
    wait: Option<Duration>,
    response: Option<Duration>,
    connect: Option<Duration>,
) -> Result<(Duration, Duration, Duration), ConfigError> {
    let wait = match wait.unwrap_or(Duration::from_millis(500)) {
        d if d >= Duration::from_millis(1) && d <= MAX_WAIT_TIMEOUT => d,
        d => {
            return Err(ConfigError::Invalid {
                field: "redis_wait_timeout",
                why: format!(
                    "{}: 1ms to 1min (0 would make WAIT block for ever)",
                    humantime::format_duration(d)
                ),
            })
        }
    };
    // Not given: 2 s, or longer than a `WAIT` may take.
    let default = Duration::from_secs(2).max(wait.saturating_add(Duration::from_secs(1)));
    let response = redis_timeout("redis_response_timeout", response, default)?;
    if response <= wait {
        return Err(ConfigError::Invalid {
            field: "redis_response_timeout",
            why: format!(
                "{} is not more than --redis-wait-timeout ({}): a WAIT's reply would time out before the replicas could answer",
                humantime::format_duration(response),
                humantime::format_duration(wait)
            ),
        });
    }
    let connect = redis_timeout("redis_connect_timeout", connect, Duration::from_secs(2))?;
    Ok((wait, response, connect))
}

/// `--redis-prefix`: 1 to 64 of a-z, 0-9, `_`, `-` (a brace would break the keys' hash tags
/// and put every key in one slot).
fn redis_prefix(given: Option<String>) -> Result<String, ConfigError> {
    let prefix = given.unwrap_or_else(|| "sls".into());
    let ok = (1..=64).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !ok {
        return Err(ConfigError::Invalid {
            field: "redis_prefix",
            why: format!("{prefix:?}: 1 to 64 of a-z, 0-9, _ and -"),
        });
    }
    Ok(prefix)
}

/// `--endpoints`: 1 by default, one socket without `SO_REUSEPORT`, which a client whose address
/// changes mid-connection (NAT rebinding, migration) keeps; from 2, several sockets on one port
/// with `SO_REUSEPORT`, which only Linux spreads over its sockets (refused elsewhere).
fn endpoints(given: Option<usize>) -> Result<usize, ConfigError> {
    let n = number_in("endpoints", given, 1, ranges::ENDPOINTS)?;
    if n > 1 && !cfg!(target_os = "linux") {
        return Err(ConfigError::Invalid {
            field: "endpoints",
            why: format!(
                "{n}: more than 1 needs SO_REUSEPORT's spreading of one UDP port over \
                 sockets, which slsd uses on Linux only"
            ),
        });
    }
    Ok(n)
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

/// The settings of the file at `path` (none without one).
///
/// # Errors
/// The file cannot be read, or is not valid TOML for slsd.
fn read_file(path: Option<&std::path::Path>) -> Result<Settings, ConfigError> {
    let Some(path) = path else {
        return Ok(Settings::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
    toml::from_str::<Settings>(&text).map_err(|e| ConfigError::Parse(path.into(), e.to_string()))
}

impl Config {
    /// The command line `cli` over the file it names (if any) over the defaults, validated.
    ///
    /// # Errors
    /// An unreadable or invalid file; a value out of range.
    pub fn from_args(cli: Settings) -> Result<Config, ConfigError> {
        let file = read_file(cli.config.as_deref())?;
        let s = cli.or(file);
        let audit = audit::apply(&s)?;
        let audit_export = s.audit_export.clone();
        let mut admission = admission::policy(&s)?;
        let core_default = CoreConfig::default();
        // A rate given explicitly gets a burst of two seconds' worth; the defaults keep theirs.
        let d = &core_default.rates;
        let (per_user, per_user_burst) = match s.rate_per_user {
            Some(r) => rate_and_burst("rate_per_user", r)?,
            None => (d.per_user, d.per_user_burst),
        };
        let (per_client, per_client_burst) = match s.rate_per_client {
            Some(r) => rate_and_burst("rate_per_client", r)?,
            None => (d.per_client, d.per_client_burst),
        };
        let rates = RatePolicy {
            per_user,
            per_user_burst,
            per_client,
            per_client_burst,
            global: s.rate_global.unwrap_or(d.global),
        };
        let lockout_window = duration_in(
            "lockout_window",
            s.lockout_window,
            core_default.lockout_window,
            ranges::LOCKOUT_WINDOW,
        )?;
        let core = CoreConfig {
            lockout_threshold: number_in(
                "lockout_threshold",
                s.lockout_threshold,
                core_default.lockout_threshold,
                ranges::LOCKOUT_THRESHOLD,
            )?,
            lockout_window,
            // A lock shorter than the window would end while the failures that made it still
            // count: R11's lock must outlast them.
            lock_duration: duration_in(
                "lock_duration",
                s.lock_duration,
                core_default.lock_duration.max(lockout_window),
                lockout_window..=MAX_DURATION,
            )
            .map_err(|e| match e {
                ConfigError::Invalid { field, why } if why.contains("shorter") => {
                    ConfigError::Invalid {
                        field,
                        why: format!("{why} (the lockout_window: a lock outlasts its failures)"),
                    }
                }
                e => e,
            })?,
            challenge_ttl: duration_in(
                "challenge_ttl",
                s.challenge_ttl,
                core_default.challenge_ttl,
                ranges::CHALLENGE_TTL,
            )?,
            max_open_txns: number_in(
                "max_open_txns",
                s.max_open_txns,
                core_default.max_open_txns,
                ranges::OPEN_TXNS,
            )?,
            rates,
            ..core_default
        };
        let core = rules::apply(&s, core)?;
        // A connection's share of the open challenges: an eighth of the daemon's by default.
        admission.max_open_per_connection = number_in(
            "max_open_per_connection",
            s.max_open_per_connection,
            (core.max_open_txns / 8).max(1),
            1..=core.max_open_txns,
        )?;
        let default_threads =
            std::thread::available_parallelism().map_or(2, |n| n.get().min(*ranges::THREADS.end()));
        let threads = number_in("threads", s.threads, default_threads, ranges::THREADS)?;
        let endpoints = endpoints(s.endpoints)?;
        let data_dir = s.data_dir.unwrap_or_else(|| PathBuf::from("./sls-data"));
        let store = match s.store.as_deref() {
            None | Some("embedded") => StoreChoice::Embedded,
            Some(text) => StoreChoice::Redis({
                let (wait_timeout, response_timeout, connect_timeout) = redis_timeouts(
                    s.redis_wait_timeout,
                    s.redis_response_timeout,
                    s.redis_connect_timeout,
                )?;
                RedisChoice {
                    nodes: parse_store(text)?,
                    prefix: redis_prefix(s.redis_prefix)?,
                    wait_replicas: match s.redis_wait_replicas.unwrap_or(1) {
                        n @ 0..=MAX_WAIT_REPLICAS => n,
                        n => {
                            return Err(ConfigError::Invalid {
                                field: "redis_wait_replicas",
                                why: format!("{n}: 0 to {MAX_WAIT_REPLICAS}"),
                            })
                        }
                    },
                    wait_timeout,
                    response_timeout,
                    connect_timeout,
                    cache_users: number_in(
                        "redis_cache_users",
                        s.redis_cache_users,
                        sls_redis::RedisConfig::CACHE_USERS,
                        0..=MAX_CACHE_USERS,
                    )?,
                    create_seal_key: s.seal_key.is_none(),
                    seal_key: s.seal_key.unwrap_or_else(|| data_dir.join("seal.key")),
                }
            }),
        };
        Ok(Config {
            create_tls_dir: s.tls_dir.is_none() || s.init_tls,
            tls_dir: s.tls_dir.unwrap_or_else(|| data_dir.join("tls")),
            store,
            listen: s
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7443))),
            data_dir,
            metrics: s.metrics,
            threads,
            endpoints,
            log: s.log.unwrap_or_else(|| "info".into()),
            log_format: s.log_format.unwrap_or_default(),
            fsync: !s.no_fsync,
            repair: s.repair,
            max_connections: admission.max_connections,
            admission,
            idle_timeout: duration_in(
                "idle_timeout",
                s.idle_timeout,
                Duration::from_secs(30),
                ranges::IDLE_TIMEOUT,
            )?,
            snapshot_bytes: number_in(
                "snapshot_bytes",
                s.snapshot_bytes,
                256 << 20,
                ranges::SNAPSHOT_BYTES,
            )?,
            grace: duration_in("grace", s.grace, Duration::from_secs(5), ranges::GRACE)?,
            audit,
            audit_export,
            core,
        })
    }
}

#[cfg(test)]
mod tests;
