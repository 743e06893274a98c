//! `run --metrics ADDR`: the load generator's own Prometheus endpoint while a run lasts, so that
//! one board shows the load beside the daemon's side.
//!
//! Families (OpenMetrics text, every one with `# HELP` and `# TYPE`, counters ending in `_total`):
//!
//! - `sls_loadgen_steps_total{scenario, outcome}`: measured steps; `outcome` is `ok`,
//!   `expected` (an error a healthy run meets) or `unexpected`.
//! - `sls_loadgen_errors_total{scenario, outcome, kind}`: those errors by kind; `outcome` is
//!   `expected` or `unexpected` (one kind, `locked` say, can be either), `kind` one of the
//!   scenarios' fixed names (`rate_limited`, `late_lock`, `transport`, ...): a bounded set.
//! - `sls_loadgen_step_duration_seconds{scenario}`: a histogram of step latency on fixed
//!   buckets, from the due time in an open loop (as the summary's).
//! - `sls_loadgen_steps_in_flight`: steps started and not ended.
//! - `sls_loadgen_target_rate`: the steps per second the open loop aims at now (its ramp
//!   included); 0 in a closed loop, which has no target.
//! - `sls_loadgen_build_info{version}`: 1.
//!
//! Only measured steps are counted (not the warm-up's), so the counters end equal to the
//! summary's counts. Each scenario's handles are made once, before the run: a step costs an
//! atomic add and a histogram observation, and a lookup by kind only when it is an error.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::report::{Outcome, StepObserver};

/// The latency histogram's bucket bounds, in seconds: 100 µs to 10 s.
pub const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    scenario: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    scenario: &'static str,
    outcome: &'static str,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScenarioLabel {
    scenario: &'static str,
}

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The registry of one run's live metrics and the handles the run updates.
#[derive(Debug)]
pub struct LiveMetrics {
    registry: Registry,
    steps: Family<StepLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<ScenarioLabel, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    target_rate: Gauge<f64, AtomicU64>,
}

impl Default for LiveMetrics {
    fn default() -> LiveMetrics {
        LiveMetrics::new()
    }
}

impl LiveMetrics {
    /// Every family registered, no sample yet.
    pub fn new() -> LiveMetrics {
        let mut registry = Registry::default();
        let steps = Family::<StepLabels, Counter>::default();
        registry.register(
            "sls_loadgen_steps",
            "Measured scenario steps, by scenario and outcome (ok, expected error, unexpected)",
            steps.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "sls_loadgen_errors",
            "Scenario steps that ended in an error, by scenario, outcome (expected or \
             unexpected) and kind",
            errors.clone(),
        );
        let duration = Family::<ScenarioLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            new_histogram,
        );
        registry.register_with_unit(
            "sls_loadgen_step_duration",
            "Latency of measured scenario steps (from the due time in an open loop)",
            Unit::Seconds,
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "sls_loadgen_steps_in_flight",
            "Scenario steps started and not yet ended",
            in_flight.clone(),
        );
        let target_rate = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "sls_loadgen_target_rate",
            "Steps per second the open loop aims at now, its ramp included (0 in a closed loop)",
            target_rate.clone(),
        );
        registry.register(
            "sls_loadgen_build",
            "The sls-loadgen that serves these metrics",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        LiveMetrics {
            registry,
            steps,
            errors,
            duration,
            in_flight,
            target_rate,
        }
    }

    /// The handles of one scenario, made once before the run; its step counters appear (at 0)
    /// from now on.
    pub fn scenario(&self, name: &'static str) -> ScenarioMetrics {
        let steps = |outcome| {
            self.steps.get_or_create_owned(&StepLabels {
                scenario: name,
                outcome,
            })
        };
        ScenarioMetrics {
            name,
            ok: steps("ok"),
            expected: steps("expected"),
            unexpected: steps("unexpected"),
            errors: self.errors.clone(),
            duration: self
                .duration
                .get_or_create_owned(&ScenarioLabel { scenario: name }),
        }
    }

    /// The in-flight gauge (a handle on the same value).
    pub fn in_flight(&self) -> Gauge {
        self.in_flight.clone()
    }

    /// Sets the target rate, steps per second.
    pub fn set_target_rate(&self, rate: f64) {
        self.target_rate.set(rate);
    }

    /// The exposition, OpenMetrics text ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One scenario's handles on the live metrics (see [`LiveMetrics::scenario`]).
#[derive(Debug)]
pub struct ScenarioMetrics {
    name: &'static str,
    ok: Counter,
    expected: Counter,
    unexpected: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
}

impl StepObserver for ScenarioMetrics {
    fn observe(&self, outcome: Outcome, latency: Duration) {
        let error = |outcome, kind| {
            self.errors
                .get_or_create(&ErrorLabels {
                    scenario: self.name,
                    outcome,
                    kind,
                })
                .inc();
        };
        match outcome {
            Outcome::Ok => {
                self.ok.inc();
            }
            Outcome::Expected(kind) => {
                self.expected.inc();
                error("expected", kind);
            }
            Outcome::Unexpected(kind) => {
                self.unexpected.inc();
                error("unexpected", kind);
            }
        }
        self.duration.observe(latency.as_secs_f64());
    }
}

/// The HTTP endpoint serving a [`LiveMetrics`] at `/metrics` (HTTP/1), until [`Server::stop`].
#[derive(Debug)]
pub struct Server {
    /// Where it listens (the port chosen when asked for port 0).
    pub addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Binds `addr` and serves `metrics` at `/metrics` on the current tokio runtime.
pub async fn serve(metrics: Arc<LiveMetrics>, addr: SocketAddr) -> anyhow::Result<Server> {
    use axum::routing::get;

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics: binding {addr}"))?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                    metrics.encode(),
                )
            }
        }),
    );
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = served.await {
            eprintln!("sls-loadgen: the metrics endpoint failed: {e}");
        }
    });
    Ok(Server {
        addr,
        shutdown,
        task,
    })
}

impl Server {
    /// Stops serving: no new connection from now on; scrapes in progress get up to 2 s to
    /// finish, then their connections are dropped.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr) -> std::io::Result<String> {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[test]
    fn every_family_has_help_and_type_and_counters_end_in_total() {
        let live = LiveMetrics::new();
        let dsc = live.scenario("dsc_plus");
        dsc.observe(Outcome::Ok, Duration::from_micros(300));
        dsc.observe(Outcome::Expected("rate_limited"), Duration::from_millis(2));
        dsc.observe(Outcome::Unexpected("late_lock"), Duration::from_millis(20));
        live.set_target_rate(1500.0);
        live.in_flight().inc();
        let text = live.encode();
        for family in [
            "sls_loadgen_steps",
            "sls_loadgen_errors",
            "sls_loadgen_step_duration_seconds",
            "sls_loadgen_steps_in_flight",
            "sls_loadgen_target_rate",
            "sls_loadgen_build",
        ] {
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{family}\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family}\n{text}"
            );
        }
        assert!(text.contains("# TYPE sls_loadgen_steps counter"), "{text}");
        for line in [
            r#"sls_loadgen_steps_total{scenario="dsc_plus",outcome="ok"} 1"#,
            r#"sls_loadgen_steps_total{scenario="dsc_plus",outcome="expected"} 1"#,
            r#"sls_loadgen_steps_total{scenario="dsc_plus",outcome="unexpected"} 1"#,
            r#"sls_loadgen_errors_total{scenario="dsc_plus",outcome="expected",kind="rate_limited"} 1"#,
            r#"sls_loadgen_errors_total{scenario="dsc_plus",outcome="unexpected",kind="late_lock"} 1"#,
            r#"sls_loadgen_step_duration_seconds_count{scenario="dsc_plus"} 3"#,
            r#"sls_loadgen_step_duration_seconds_bucket{le="0.0005",scenario="dsc_plus"} 1"#,
            r#"sls_loadgen_step_duration_seconds_bucket{le="+Inf",scenario="dsc_plus"} 3"#,
            "sls_loadgen_steps_in_flight 1",
            "sls_loadgen_target_rate 1500.0",
            r#"sls_loadgen_build_info{version=""#,
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        // Every sample of a counter family ends in _total.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            if l.starts_with("sls_loadgen_steps{") || l.starts_with("sls_loadgen_errors{") {
                panic!("a counter sample without _total: {l}");
            }
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn served_over_http_until_stopped() {
        let live = Arc::new(LiveMetrics::new());
        let _ = live.scenario("attacker");
        let server = serve(live.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = server.addr;
        let reply = get(addr).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains(CONTENT_TYPE), "{reply}");
        assert!(
            reply.contains(r#"sls_loadgen_steps_total{scenario="attacker",outcome="ok"} 0"#),
            "{reply}"
        );
        server.stop().await;
        assert!(get(addr).await.is_err(), "still served after stop");
    }
}
