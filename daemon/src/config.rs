//! Configuration: command-line flags over an optional TOML file over defaults.
//!
//! One struct, [`Settings`], is both the command line (clap) and the file (serde): every
//! setting is optional in it. [`Config::from_args`] lays the flags over the file
//! ([`Settings::or`]), takes the defaults for what neither gave, and checks the ranges.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Deserializer};

use crate::core::{CoreConfig, RatePolicy};

/// slsd: the sls second-factor verification daemon (QUIC).
///
/// On first start it creates a local CA, a server certificate and client certificates for the
/// frontend and admin roles in <DATA_DIR>/tls, and prints where they are. Flags override the
/// file given with --config, which overrides the defaults. Durations are written like 500ms,
/// 30s, 2m, 24h, 1d or 1h 30m. The file takes the same settings in snake_case, e.g.
/// `challenge_ttl = "2m"`; every key is optional and an unknown key is refused.
// This one struct is both the command line (clap) and the TOML file (serde); `config` is
// skipped by serde, so a file cannot name another.
#[derive(Debug, Default, Clone, Parser, Deserialize)]
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
    /// Serve Prometheus text metrics over HTTP on this address (off by default).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Worker threads, 1 to 256 [default: the number of cores].
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
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Option<Duration>,
    /// A challenge's life, e.g. 2m (R12) [default: 2m].
    #[arg(long, value_parser = parse_duration)]
    #[serde(deserialize_with = "duration")]
    pub challenge_ttl: Option<Duration>,
    /// Failures that lock a user, 1 to 255 (R11) [default: 10].
    #[arg(long)]
    pub lockout_threshold: Option<u8>,
    /// Window the failures must fall in (R11) [default: 24h].
    #[arg(long, value_parser = parse_duration)]
    #[serde(deserialize_with = "duration")]
    pub lockout_window: Option<Duration>,
    /// How long a lock lasts after the last failure (R11) [default: 24h].
    #[arg(long, value_parser = parse_duration)]
    #[serde(deserialize_with = "duration")]
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
    #[serde(deserialize_with = "duration")]
    pub grace: Option<Duration>,
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
            log: self.log.or(under.log),
            // A flag can only switch fsync off; either source doing so wins.
            no_fsync: self.no_fsync || under.no_fsync,
            max_connections: self.max_connections.or(under.max_connections),
            idle_timeout: self.idle_timeout.or(under.idle_timeout),
            challenge_ttl: self.challenge_ttl.or(under.challenge_ttl),
            lockout_threshold: self.lockout_threshold.or(under.lockout_threshold),
            lockout_window: self.lockout_window.or(under.lockout_window),
            lock_duration: self.lock_duration.or(under.lock_duration),
            rate_per_user: self.rate_per_user.or(under.rate_per_user),
            rate_per_client: self.rate_per_client.or(under.rate_per_client),
            rate_global: self.rate_global.or(under.rate_global),
            max_open_txns: self.max_open_txns.or(under.max_open_txns),
            snapshot_bytes: self.snapshot_bytes.or(under.snapshot_bytes),
            grace: self.grace.or(under.grace),
        }
    }
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

/// The longest duration any setting accepts: 3650 days. Anything longer is a typo, and the
/// core adds durations to its clock in `u64` milliseconds, the service to an `Instant`.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// Parses a duration with [`humantime::parse_duration`]: `500ms`, `30s`, `2m`, `24h`, `1d`,
/// `1h 30m`, `1.5s`. A number without a unit is refused.
///
/// # Errors
/// The text is not such a duration, or does not fit in a [`Duration`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 500ms, 30s, 2m, 24h ({e})"))
}

/// A duration in the file: a string that [`parse_duration`] accepts.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The setting's value, or its default; refused when longer than [`MAX_DURATION`].
fn bounded(
    field: &'static str,
    value: Option<Duration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let d = value.unwrap_or(default);
    if d > MAX_DURATION {
        return Err(ConfigError::Invalid {
            field,
            why: format!(
                "{} is longer than the most allowed, 3650days",
                humantime::format_duration(d)
            ),
        });
    }
    Ok(d)
}

/// A rate given explicitly and its burst, two seconds' worth; refused when that overflows.
fn rate_and_burst(field: &'static str, rate: u32) -> Result<(u32, u32), ConfigError> {
    let burst = rate.checked_mul(2).ok_or_else(|| ConfigError::Invalid {
        field,
        why: format!("{rate} is more than the most allowed, {}", u32::MAX / 2),
    })?;
    Ok((rate, burst))
}

impl Config {
    /// The command line `cli` over the file it names (if any) over the defaults, validated.
    ///
    /// # Errors
    /// An unreadable or invalid file; a value out of range.
    pub fn from_args(cli: Settings) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(path.clone(), e))?;
                toml::from_str::<Settings>(&text)
                    .map_err(|e| ConfigError::Parse(path.clone(), e.to_string()))?
            }
            None => Settings::default(),
        };
        let s = cli.or(file);
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
        let core = CoreConfig {
            lockout_threshold: s
                .lockout_threshold
                .unwrap_or(core_default.lockout_threshold),
            lockout_window: bounded(
                "lockout_window",
                s.lockout_window,
                core_default.lockout_window,
            )?,
            lock_duration: bounded("lock_duration", s.lock_duration, core_default.lock_duration)?,
            challenge_ttl: bounded("challenge_ttl", s.challenge_ttl, core_default.challenge_ttl)?,
            max_open_txns: s.max_open_txns.unwrap_or(core_default.max_open_txns),
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
        let threads = s.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, |n| n.get().min(256))
        });
        if threads == 0 || threads > 256 {
            return Err(ConfigError::Invalid {
                field: "threads",
                why: "1 to 256".into(),
            });
        }
        Ok(Config {
            listen: s
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7443))),
            data_dir: s.data_dir.unwrap_or_else(|| PathBuf::from("./sls-data")),
            metrics: s.metrics,
            threads,
            log: s.log.unwrap_or_else(|| "info".into()),
            fsync: !s.no_fsync,
            max_connections: s.max_connections.unwrap_or(20_000),
            idle_timeout: bounded("idle_timeout", s.idle_timeout, Duration::from_secs(30))?,
            snapshot_bytes: s.snapshot_bytes.unwrap_or(256 << 20),
            grace: bounded("grace", s.grace, Duration::from_secs(5))?,
            core,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// `slsd ARGS...` as the command line would give it.
    fn cli(args: &[&str]) -> Settings {
        Settings::try_parse_from(std::iter::once("slsd").chain(args.iter().copied())).unwrap()
    }

    /// A TOML file with `text` and the command line `--config FILE args...`, resolved.
    fn with_file(text: &str, args: &[&str]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slsd.toml");
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        let mut all = vec!["--config", path];
        all.extend_from_slice(args);
        Config::from_args(cli(&all))
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Settings::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::from_args(cli(&[])).unwrap();
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 7443)));
        assert_eq!(c.data_dir, PathBuf::from("./sls-data"));
        assert_eq!(c.metrics, None);
        assert_eq!(c.log, "info");
        assert!(c.fsync);
        assert_eq!(c.max_connections, 20_000);
        assert_eq!(c.idle_timeout, Duration::from_secs(30));
        assert_eq!(c.snapshot_bytes, 256 << 20);
        assert_eq!(c.grace, Duration::from_secs(5));
        assert_eq!(c.core.lockout_threshold, 10);
        assert_eq!(c.core.lockout_window, Duration::from_secs(86_400));
        assert_eq!(c.core.lock_duration, Duration::from_secs(86_400));
        assert_eq!(c.core.challenge_ttl, Duration::from_secs(120));
        assert_eq!(c.core.rates.per_user, 5);
        assert_eq!(c.core.rates.per_user_burst, 40);
        assert_eq!(c.core.rates.per_client, 50);
        assert_eq!(c.core.rates.per_client_burst, 200);
        assert_eq!(c.core.rates.global, 0);
    }

    #[test]
    fn durations_in_the_documented_spellings() {
        for (text, want) in [
            ("500ms", Duration::from_millis(500)),
            ("250ms", Duration::from_millis(250)),
            ("1s", Duration::from_secs(1)),
            ("10s", Duration::from_secs(10)),
            ("30s", Duration::from_secs(30)),
            ("2m", Duration::from_secs(120)),
            ("24h", Duration::from_secs(86_400)),
            ("1d", Duration::from_secs(86_400)),
            ("1h 30m", Duration::from_secs(5_400)),
            ("1.5s", Duration::from_millis(1_500)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "h", "30", "soon", "-1s", "2 fortnights"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("is not a duration like"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_flag_and_every_key() {
        let flags = [
            "--listen",
            "127.0.0.1:9000",
            "--data-dir",
            "/tmp/d",
            "--metrics",
            "127.0.0.1:9100",
            "--threads",
            "3",
            "--log",
            "debug",
            "--no-fsync",
            "--max-connections",
            "7",
            "--idle-timeout",
            "1s",
            "--challenge-ttl",
            "90s",
            "--lockout-threshold",
            "4",
            "--lockout-window",
            "1h",
            "--lock-duration",
            "2h",
            "--rate-per-user",
            "3",
            "--rate-per-client",
            "9",
            "--rate-global",
            "100",
            "--max-open-txns",
            "11",
            "--snapshot-bytes",
            "4096",
            "--grace",
            "500ms",
        ];
        let keys = r#"
            listen = "127.0.0.1:9000"
            data_dir = "/tmp/d"
            metrics = "127.0.0.1:9100"
            threads = 3
            log = "debug"
            no_fsync = true
            max_connections = 7
            idle_timeout = "1s"
            challenge_ttl = "90s"
            lockout_threshold = 4
            lockout_window = "1h"
            lock_duration = "2h"
            rate_per_user = 3
            rate_per_client = 9
            rate_global = 100
            max_open_txns = 11
            snapshot_bytes = 4096
            grace = "500ms"
        "#;
        for c in [
            Config::from_args(cli(&flags)).unwrap(),
            with_file(keys, &[]).unwrap(),
        ] {
            assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 9000)));
            assert_eq!(c.data_dir, PathBuf::from("/tmp/d"));
            assert_eq!(c.metrics, Some(SocketAddr::from(([127, 0, 0, 1], 9100))));
            assert_eq!(c.threads, 3);
            assert_eq!(c.log, "debug");
            assert!(!c.fsync);
            assert_eq!(c.max_connections, 7);
            assert_eq!(c.idle_timeout, Duration::from_secs(1));
            assert_eq!(c.core.challenge_ttl, Duration::from_secs(90));
            assert_eq!(c.core.lockout_threshold, 4);
            assert_eq!(c.core.lockout_window, Duration::from_secs(3_600));
            assert_eq!(c.core.lock_duration, Duration::from_secs(7_200));
            assert_eq!(c.core.rates.per_user, 3);
            assert_eq!(c.core.rates.per_user_burst, 6);
            assert_eq!(c.core.rates.per_client, 9);
            assert_eq!(c.core.rates.per_client_burst, 18);
            assert_eq!(c.core.rates.global, 100);
            assert_eq!(c.core.max_open_txns, 11);
            assert_eq!(c.snapshot_bytes, 4096);
            assert_eq!(c.grace, Duration::from_millis(500));
        }
    }

    #[test]
    fn the_file_fills_what_the_command_line_leaves() {
        let c = with_file(
            "lockout_threshold = 5\nchallenge_ttl = \"90s\"\nno_fsync = true\n",
            &["--rate-per-user", "3"],
        )
        .unwrap();
        assert_eq!(c.core.lockout_threshold, 5);
        assert_eq!(c.core.challenge_ttl, Duration::from_secs(90));
        assert!(!c.fsync);
        assert_eq!(c.core.rates.per_user, 3);
        // Neither gave it: the default.
        assert_eq!(c.grace, Duration::from_secs(5));
    }

    #[test]
    fn the_command_line_overrides_the_file() {
        let c = with_file(
            "lockout_threshold = 5\nidle_timeout = \"10s\"\nlog = \"warn\"\n",
            &["--lockout-threshold", "7", "--idle-timeout", "2m"],
        )
        .unwrap();
        assert_eq!(c.core.lockout_threshold, 7);
        assert_eq!(c.idle_timeout, Duration::from_secs(120));
        assert_eq!(c.log, "warn");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = with_file("lockout_treshold = 5\n", &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Parse(..)), "{e:?}");
        assert!(
            e.to_string().contains("unknown field `lockout_treshold`"),
            "{e}"
        );
        // The file cannot name another file.
        let e = with_file("config = \"other.toml\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("unknown field `config`"), "{e}");
        // A flag's spelling is not a key.
        let e = with_file("challenge-ttl = \"2m\"\n", &[]).unwrap_err();
        assert!(
            e.to_string().contains("unknown field `challenge-ttl`"),
            "{e}"
        );
    }

    #[test]
    fn bad_durations_are_refused_with_the_setting_and_the_value() {
        let e = with_file("challenge_ttl = \"soon\"\n", &[]).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ConfigError::Parse(..)), "{e:?}");
        assert!(msg.contains("challenge_ttl"), "{msg}");
        assert!(msg.contains("\"soon\" is not a duration like"), "{msg}");
        // A number without its unit is refused, not taken as seconds or milliseconds.
        let e = with_file("grace = \"5\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("time unit needed"), "{e}");
        // A number where a duration string belongs.
        assert!(with_file("grace = 5\n", &[]).is_err());
        let e = Settings::try_parse_from(["slsd", "--lock-duration", "soon"]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("--lock-duration"), "{msg}");
        assert!(msg.contains("is not a duration like"), "{msg}");
    }

    #[test]
    fn overflowing_durations_are_refused() {
        // Past what a Duration holds: humantime refuses it rather than wrapping.
        let e = with_file("lock_duration = \"99999999999999999999s\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("lock_duration"), "{e}");
        assert!(e.to_string().contains("too large"), "{e}");
        assert!(Settings::try_parse_from(["slsd", "--grace", "99999999999999999999h"]).is_err());
        // Fits a Duration, but the core's millisecond clock arithmetic must never see it.
        let e = Config::from_args(cli(&["--lockout-window", "1000000000y"])).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    field: "lockout_window",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("longer than the most allowed"),
            "{e}"
        );
        let e = with_file("grace = \"3651d\"\n", &[]).unwrap_err();
        assert!(
            matches!(e, ConfigError::Invalid { field: "grace", .. }),
            "{e:?}"
        );
        // The bound itself is accepted.
        let c = Config::from_args(cli(&["--lock-duration", "3650d"])).unwrap();
        assert_eq!(c.core.lock_duration, MAX_DURATION);
    }

    #[test]
    fn integers_out_of_range_are_refused() {
        // Twice the rate is the burst: it must fit in a u32.
        let e = Config::from_args(cli(&["--rate-per-user", "4294967295"])).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    field: "rate_per_user",
                    ..
                }
            ),
            "{e:?}"
        );
        let c = Config::from_args(cli(&["--rate-per-client", "2147483647"])).unwrap();
        assert_eq!(c.core.rates.per_client_burst, u32::MAX - 1);
        // A u8 setting given 300, a negative size: refused by the parser, not wrapped.
        assert!(with_file("lockout_threshold = 300\n", &[]).is_err());
        assert!(Settings::try_parse_from(["slsd", "--lockout-threshold", "300"]).is_err());
        assert!(with_file("snapshot_bytes = -1\n", &[]).is_err());
        for (flags, field) in [
            (&["--lockout-threshold", "0"][..], "lockout_threshold"),
            (&["--challenge-ttl", "0s"][..], "challenge_ttl"),
            (&["--threads", "0"][..], "threads"),
            (&["--threads", "257"][..], "threads"),
        ] {
            let e = Config::from_args(cli(flags)).unwrap_err();
            assert!(
                matches!(e, ConfigError::Invalid { field: f, .. } if f == field),
                "{flags:?}: {e:?}"
            );
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = Config::from_args(cli(&["--config", "/nonexistent/slsd.toml"])).unwrap_err();
        assert!(matches!(e, ConfigError::Read(..)), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/slsd.toml"), "{e}");
    }
}
