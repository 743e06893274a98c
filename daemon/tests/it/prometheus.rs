//! A real Prometheus (the `prometheus` server, `apt-get install prometheus`; `.ci/run` installs
//! it) scrapes a real slsd and a real `sls-loadgen` run's live endpoint while the run puts
//! logins, pushes and an attacker's lockouts on the daemon. Prometheus's own scraper must read
//! both pages without an error (its OpenMetrics parser is the judge), and every query of every
//! panel of the Grafana board (`docs/grafana/slsd.json`) must be valid PromQL that Prometheus
//! evaluates, each panel with data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sls_loadgen::daemon::{GENEROUS_LIMITS, ONE_ADDRESS};
use sls_loadgen::fleet::Mix;
use sls_loadgen::live::{self, LiveMetrics};
use sls_loadgen::run::{self, FleetSpec};
use sls_loadgen::scenario::{Behaviour, Scenario};
use sls_loadgen::schedule::{LoadModel, Plan};

/// The Prometheus server binary: `$PROMETHEUS`, else `prometheus` on the PATH.
fn prometheus_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMETHEUS") {
        return p.into();
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("prometheus"))
            .find(|p| p.is_file())
    });
    found.expect(
        "this test needs the Prometheus server: apt-get install -y prometheus (.ci/run does), \
         or PROMETHEUS=/path/to/prometheus",
    )
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A Prometheus child scraping `targets` (job name, address) every second; killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(targets: &[(&str, SocketAddr)]) -> Prometheus {
        Prometheus::with_rules(targets, &[])
    }

    /// As [`Prometheus::start`], evaluating the rule files `rules` every second.
    fn with_rules(targets: &[(&str, SocketAddr)], rules: &[&Path]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
        );
        if !rules.is_empty() {
            config.push_str("rule_files:\n");
            for r in rules {
                config.push_str(&format!("  - '{}'\n", r.display()));
            }
        }
        config.push_str("scrape_configs:\n");
        for (job, addr) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n"
            ));
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let addr = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(prometheus_bin())
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prometheus_bin().display()));
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// `GET path` of the HTTP API, as JSON (HTTP/1.0: the body ends with the connection).
    async fn api(&self, path: &str) -> Option<Value> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: prometheus\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
            .await
            .ok()?
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (_, body) = raw.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    }

    /// An instant query: the result vector, or the error Prometheus gave.
    async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let reply = self
            .api(&format!("/api/v1/query?query={}", encode(promql)))
            .await
            .ok_or("no answer from Prometheus")?;
        if reply["status"] != "success" {
            return Err(format!("{}: {}", reply["errorType"], reply["error"]));
        }
        Ok(reply["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Waits until every job has been scraped at least `n` times.
    async fn scraped(&self, jobs: &[&str], n: u32) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for job in jobs {
            loop {
                let q = format!("count_over_time(up{{job=\"{job}\"}}[5m])");
                let got = self.query(&q).await.ok().and_then(|r| {
                    r.first()?["value"][1]
                        .as_str()
                        .and_then(|v| v.parse::<f64>().ok())
                });
                if got.is_some_and(|c| c >= f64::from(n)) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "Prometheus did not scrape {job} {n} times in 60 s"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encoding of a query parameter (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_slsd_and_the_load_generator_and_evaluates_every_panel() {
    let metrics = free_port();
    let metrics_arg = metrics.to_string();
    let flags = [
        &GENEROUS_LIMITS[..],
        &ONE_ADDRESS[..],
        &["--metrics", &metrics_arg, "--log", "warn"],
    ]
    .concat();
    let d = crate::slsd(&flags);
    let live = Arc::new(LiveMetrics::new());
    let server = live::serve(live.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let prom = Prometheus::start(&[("slsd", metrics), ("sls-loadgen", server.addr)]);

    let spec = FleetSpec {
        users: 300,
        mix: "dsc_plus=2,ib_key_push=1,attacked=1"
            .parse::<Mix>()
            .unwrap(),
        seed: 21,
        connections: 2,
        max_apps: 100,
    };
    let plan = Plan {
        model: LoadModel::Open {
            rate: 200.0,
            ramp: None,
            max_in_flight: 1_000,
        },
        mix: vec![
            (Scenario::DscPlus, 6),
            (Scenario::IbKeyPush, 3),
            (Scenario::Attacker, 1),
        ],
        duration: Duration::from_secs(8),
        warmup: Duration::from_millis(500),
        progress: false,
    };
    let result = run::run_live(
        &d.target(),
        &spec,
        &plan,
        Behaviour::default(),
        None,
        Some(&live),
    )
    .await
    .unwrap();
    assert_eq!(result.unexpected, 0, "{:?}", result.summary.scenarios);
    // Scrapes during the run and after it (rates over the last minute still see the run).
    prom.scraped(&["slsd", "sls-loadgen"], 8).await;

    // Prometheus's scraper read both pages: a parse error would mark the target down.
    let targets = prom.api("/api/v1/targets").await.unwrap();
    let active = targets["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 2, "{targets}");
    for t in active {
        assert_eq!(t["health"], "up", "{t}");
        assert_eq!(t["lastError"], "", "{t}");
    }

    // Every query of the board is valid PromQL, and every panel draws something.
    let mut empty = Vec::new();
    for (title, exprs) in crate::dashboard::panel_queries() {
        let mut series = 0;
        for expr in &exprs {
            // Grafana fills `$__rate_interval` with four scrape intervals at least (here 1 s).
            let promql = expr
                .replace("$instance", ".+")
                .replace("$__rate_interval", "10s");
            let result = prom
                .query(&promql)
                .await
                .unwrap_or_else(|e| panic!("panel {title:?}: {promql}: {e}"));
            series += result.len();
        }
        if series == 0 {
            empty.push(title);
        }
    }
    assert!(empty.is_empty(), "panels with no data: {empty:?}");

    // The numbers are the run's: the attacker's lockouts and a finite server-side p99.
    let lockouts = prom.query("sum(sls_lockouts_total)").await.unwrap();
    let n: f64 = lockouts[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(n >= 1.0, "lockouts seen by Prometheus: {n}");
    let p99 = prom
        .query(
            "histogram_quantile(0.99, sum by (le) (rate(sls_request_duration_seconds_bucket[5m])))",
        )
        .await
        .unwrap();
    let p99: f64 = p99[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(p99.is_finite() && p99 > 0.0, "p99 {p99}");
    let steps = prom
        .query("sum(sls_loadgen_steps_total{outcome=\"ok\"})")
        .await
        .unwrap();
    let steps: f64 = steps[0]["value"][1].as_str().unwrap().parse().unwrap();
    let ok: u64 = result.summary.scenarios.iter().map(|s| s.ok).sum();
    assert_eq!(
        steps, ok as f64,
        "the load generator's counts, scraped after the run"
    );
    server.stop().await;
}

/// `promtool`: `$PROMTOOL`, else beside the Prometheus server (Debian's package has both).
fn promtool_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return p.into();
    }
    prometheus_bin().with_file_name("promtool")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerting_rules_check_and_load_into_prometheus() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/prometheus/alerts.yml");
    let out = Command::new(promtool_bin())
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool_bin().display()));
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool check rules: {said}");
    let text = std::fs::read_to_string(&rules).unwrap();
    let groups: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- name: "))
        .collect();
    let alerts = text
        .lines()
        .filter(|l| l.trim().starts_with("- alert: "))
        .count();
    assert!(
        said.contains(&format!("SUCCESS: {alerts} rules found")),
        "{said}"
    );

    // Every sls_ family a rule names is one slsd exposes (a typo would never fire).
    let metrics = free_port();
    let metrics_arg = metrics.to_string();
    let _d = crate::slsd(&["--metrics", &metrics_arg, "--log", "warn"]);
    let (_, _, page) = crate::metrics::get(metrics, "/metrics").await;
    for expr in text.lines().filter_map(|l| l.trim().strip_prefix("expr: ")) {
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("sls_") || w.starts_with("process_"))
            // Only a daemon on a Redis store has those (its expose.rs writes them together).
            .filter(|w| !w.starts_with("sls_redis_"))
        {
            // A sample, or the family (a histogram has series once a request was timed).
            let family = format!("# TYPE {} ", name.trim_end_matches("_bucket"));
            assert!(
                page.lines()
                    .any(|l| l.starts_with(name) || l.starts_with(&family)),
                "{name} (in {expr}) is not on slsd's /metrics"
            );
        }
    }

    // A real Prometheus loads every group and evaluates every rule without an error.
    let prom = Prometheus::with_rules(&[("slsd", metrics)], &[&rules]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = prom.api("/api/v1/rules").await;
        let loaded = reply
            .as_ref()
            .and_then(|r| r["data"]["groups"].as_array().cloned())
            .unwrap_or_default();
        let names: Vec<&str> = loaded.iter().filter_map(|g| g["name"].as_str()).collect();
        let rules: Vec<&Value> = loaded
            .iter()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        let evaluated = rules.iter().all(|r| r["health"] != "unknown");
        if names.len() == groups.len() && rules.len() == alerts && evaluated {
            let (mut names, mut groups) = (names, groups.clone());
            names.sort_unstable();
            groups.sort_unstable();
            assert_eq!(names, groups);
            for r in &rules {
                assert_eq!(r["health"], "ok", "{r}");
                assert_eq!(r["type"], "alerting", "{r}");
                assert!(r["annotations"]["summary"].is_string(), "{r}");
                assert!(r["annotations"]["description"].is_string(), "{r}");
                assert!(
                    matches!(r["labels"]["severity"].as_str(), Some("page" | "warning")),
                    "{r}"
                );
            }
            // A fresh, healthy daemon fires nothing.
            let firing: Vec<_> = rules.iter().filter(|r| r["state"] == "firing").collect();
            assert!(firing.is_empty(), "{firing:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not load and evaluate {} groups, {alerts} rules in 60 s: {reply:?}",
            groups.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
