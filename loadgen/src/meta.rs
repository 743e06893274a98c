//! What a run was, as `summary.json`'s `meta` holds it: the measured window's start and end,
//! the command line, this build's version and git revision, the host, and the daemon's
//! settings as the daemon itself reported them.
//!
//! The git revision comes from the build script (`build.rs`, `git rev-parse`), or from
//! `SLS_GIT_REVISION` in the build's environment (a tarball's packager); `unknown` when
//! neither had one (a build outside a git checkout).

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// This build's version (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// This build's git revision, `unknown` when it was built outside a git checkout.
pub fn revision() -> &'static str {
    option_env!("SLS_GIT_REVISION")
        .filter(|r| !r.is_empty())
        .unwrap_or("unknown")
}

/// The machine the load generator ran on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Host {
    /// Its host name (`/proc/sys/kernel/hostname`), or `unknown`.
    pub name: String,
    /// CPUs this process may use.
    pub cores: usize,
    /// The kernel's release (`/proc/sys/kernel/osrelease`), or `unknown`.
    pub kernel: String,
    /// `linux-x86_64` and the like.
    pub os: String,
}

impl Host {
    /// This machine.
    pub fn this() -> Host {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unknown".into())
        };
        Host {
            name: read("/proc/sys/kernel/hostname"),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: read("/proc/sys/kernel/osrelease"),
            os: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// What a run was.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// The start of the measured window, RFC 3339 UTC.
    pub started: String,
    /// Its end, RFC 3339 UTC.
    pub ended: String,
    /// The start, milliseconds since the Unix epoch (what `merge` compares).
    pub started_unix_ms: u64,
    /// The end, milliseconds since the Unix epoch.
    pub ended_unix_ms: u64,
    /// The command line, as given.
    pub command: Vec<String>,
    /// sls-loadgen's version.
    pub version: String,
    /// The git revision it was built from, or `unknown`.
    pub revision: String,
    /// The load generator's machine.
    pub host: Host,
    /// The daemon's settings as it reported them: its `Welcome` (protocol version, largest
    /// frame, requests in flight per stream) and, when the load generator started it
    /// (`quickstart`), its effective configuration from `slsd --print-config`. `null` in a
    /// merged or raw run's where nothing reported them.
    pub daemon: serde_json::Value,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Meta {
    /// A run measured from `started` for `elapsed`, by this process, against a daemon that
    /// reported `daemon`.
    pub fn of_run(started: SystemTime, elapsed: Duration, daemon: serde_json::Value) -> Meta {
        let ended = started.checked_add(elapsed).unwrap_or(started);
        Meta {
            started: humantime::format_rfc3339_millis(started).to_string(),
            ended: humantime::format_rfc3339_millis(ended).to_string(),
            started_unix_ms: unix_ms(started),
            ended_unix_ms: unix_ms(ended),
            command: std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            version: VERSION.into(),
            revision: revision().into(),
            host: Host::this(),
            daemon,
        }
    }

    /// The window `[started, ended)` in milliseconds since the epoch.
    pub fn window(&self) -> (u64, u64) {
        (self.started_unix_ms, self.ended_unix_ms)
    }
}

/// The daemon's `Welcome` as `meta.daemon` holds it.
pub fn welcome_json(w: &sls_client::pipeline::Welcome) -> serde_json::Value {
    serde_json::json!({
        "welcome": {
            "protocol_version": w.version,
            "max_frame": w.max_frame,
            "max_in_flight": w.max_in_flight,
        }
    })
}

/// The settings of `slsd --print-config` (`key = value` lines; comments left out), as strings.
pub fn print_config_json(text: &str) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (k.trim().to_owned(), serde_json::Value::String(v.to_owned()))
        })
        .collect();
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_config_keeps_settings_and_drops_comments() {
        let text = "# a comment\nrate_global = 20000\n# store =\nlisten = \"127.0.0.1:0\"\n";
        let v = print_config_json(text);
        assert_eq!(v["rate_global"], "20000");
        assert_eq!(v["listen"], "127.0.0.1:0");
        assert_eq!(v.as_object().map(|m| m.len()), Some(2));
    }

    #[test]
    fn meta_records_the_window_and_this_build() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let m = Meta::of_run(t0, Duration::from_millis(2500), serde_json::Value::Null);
        assert_eq!(m.window(), (1_700_000_000_000, 1_700_000_002_500));
        assert_eq!(m.started, "2023-11-14T22:13:20.000Z");
        assert_eq!(m.version, VERSION);
        assert!(!m.revision.is_empty());
        assert!(m.host.cores >= 1);
    }
}
