//! `sls-loadgen run`: its arguments and the two ways it runs (`--raw`, and the scenarios).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use sls_loadgen::abort::{Stopped, Watch};
use sls_loadgen::fleet::{Mix, Persona};
use sls_loadgen::live::{self, LiveMetrics};
use sls_loadgen::raw_open::Open;
use sls_loadgen::run::{self, FleetSpec, Target};
use sls_loadgen::scenario::{Behaviour, Route, Scenario};
use sls_loadgen::schedule::{LoadModel, Plan};
use sls_loadgen::threshold::{self, Threshold};
use sls_loadgen::{raw_dsc, report};

use super::{parse_duration, Ended};

#[derive(Args)]
pub(crate) struct RunArgs {
    /// The daemon's address: HOST:PORT, a name or an IP address ([v6]:PORT).
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub(crate) target: String,
    /// The name the daemon's certificate is verified against [default: the host of --target].
    #[arg(long)]
    pub(crate) server_name: Option<String>,
    /// How long a handshake may take before the daemon counts as not answering.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
    /// The daemon's certificates directory (<data-dir>/tls).
    #[arg(long, default_value = "./sls-data/tls")]
    pub(crate) tls_dir: PathBuf,
    /// Users to enrol.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) users: usize,
    /// Persona mix by weight: dsc_plus, ib_key (push + challenge), ib_key_push,
    /// ib_key_challenge, scc, temp, withdrawal, attacked.
    #[arg(long)]
    pub(crate) mix: Option<Mix>,
    /// Scenarios and weights, e.g. dsc_plus=30,ib_key_push=25,attacker=2 [default: all, by
    /// their default weights].
    #[arg(long)]
    pub(crate) scenarios: Option<String>,
    /// Seed of the fleet's keys and PINs.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Open loop: steps per second (latency from each step's due time). With `--raw`:
    /// requests per second, a `Begin` or an `Answer` each, latency per request.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Open loop: ramp linearly from this rate over the warm-up... e.g. 100:10s.
    #[arg(long)]
    pub(crate) ramp: Option<String>,
    /// Closed loop: frontend connections.
    #[arg(long, default_value_t = 4)]
    pub(crate) connections: usize,
    /// Closed loop: steps in flight per connection.
    #[arg(long, default_value_t = 16)]
    pub(crate) in_flight: usize,
    /// Most IB Key app connections to hold open.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) max_apps: usize,
    /// Closed loop of DSC+ logins only, batched per connection, no task per request.
    #[arg(long)]
    pub(crate) raw: bool,
    /// With `--raw`: threads, one `current_thread` runtime each, connections spread over them.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// With `--raw --rate`: the open loop's timer; what is due by a tick goes out at it.
    #[arg(long, default_value = "100us", value_parser = parse_duration)]
    pub(crate) tick: Duration,
    /// Measured time.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Time before measuring.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,
    /// Share of honest answers typed wrong.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) wrong_rate: f64,
    /// Share of users who take their time (200 ms) to answer.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) slow_rate: f64,
    /// How requests are spread over the frontend connections: `request`, each through the
    /// next in turn; `user`, all of a user's through one (chosen by the name: a deployment
    /// that routes each user to one node).
    #[arg(long, value_enum, default_value_t = Route::Request)]
    pub(crate) route: Route,
    /// Where to write summary.json, the .hlog files, latency.svg and report.html.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Pass/fail threshold, repeatable, like k6's: `[SCOPE:]METRIC OP VALUE[UNIT]`, e.g.
    /// 'dsc_plus:p99<5ms', 'unexpected==0', 'rate>=1900', 'errors<1%'. SCOPE: a scenario of
    /// the run, or none for all of them together (latency from their histograms added, so
    /// exact). METRIC: p50, p90, p99, p99.9, max (latency; unit us, µs, ms or s), rate
    /// (steps/s), errors (share of steps that were errors, expected or not: 0.01 or 1%),
    /// unexpected (a count). OP: < <= > >= ==. A table of verdicts follows the summary, they
    /// go into summary.json, and a failed one makes the exit code 3.
    #[arg(long = "threshold", value_name = "THRESHOLD")]
    pub(crate) thresholds: Vec<Threshold>,
    /// Stop the run as soon as a --threshold is already lost (like k6's abortOnFail), write
    /// the results so far and exit with 3. Judged once a second on the steps so far: `unexpected`
    /// and `max` with < <= (or == once past it) are lost as soon as they pass their bound; a
    /// percentile or `errors` with < <= once its scope has 100 steps or more and its value so
    /// far is past the bound (`errors==0` at the first error); `rate` and lower bounds (> >=)
    /// are judged at the end only.
    #[arg(long, requires = "thresholds")]
    pub(crate) abort_on_fail: bool,
    /// How long the daemon may stay silent (not even acknowledging packets) before a
    /// connection to it counts as lost: the run then prints "connection lost", stops, writes
    /// the results so far and exits with 2.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) lost_after: Duration,
    /// Serve live Prometheus metrics at `http://ADDR/metrics` while the run lasts (steps by
    /// scenario and outcome, errors by kind, a latency histogram by scenario, steps in flight,
    /// the target rate); port 0 picks a free port, printed on stderr. Stopped when the run ends.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<std::net::SocketAddr>,
}

/// `--ramp FROM:DURATION`, e.g. `100:10s`.
pub(crate) fn parse_ramp(r: &str) -> anyhow::Result<(f64, Duration)> {
    let (from, over) = r
        .split_once(':')
        .context("--ramp FROM:DURATION, e.g. 100:10s")?;
    let from = from.parse::<f64>().context("--ramp rate")?;
    if !(from.is_finite() && from >= 0.0) {
        bail!("--ramp rate {from} must be 0 or more");
    }
    let over = parse_duration(over)
        .map_err(anyhow::Error::msg)
        .context("--ramp duration")?;
    Ok((from, over))
}

pub(crate) fn default_mix() -> Vec<(Scenario, u32)> {
    Scenario::ALL
        .iter()
        .map(|s| (*s, s.default_weight()))
        .collect()
}

pub(crate) fn parse_scenarios(s: &str) -> anyhow::Result<Vec<(Scenario, u32)>> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, w) = p.split_once('=').unwrap_or((p, "1"));
            Ok((
                name.trim()
                    .parse::<Scenario>()
                    .map_err(anyhow::Error::msg)?,
                w.trim().parse().context("scenario weight")?,
            ))
        })
        .collect()
}

impl RunArgs {
    /// `--target` resolved, with its server name and connect timeout.
    pub(crate) fn target(&self) -> anyhow::Result<Target> {
        let node = sls_client::Node::parse(&self.target)?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(node.host.as_str(), node.port))
            .with_context(|| format!("--target {}: cannot resolve {}", self.target, node.host))?
            .next()
            .with_context(|| format!("--target {}: {} has no address", self.target, node.host))?;
        Ok(Target {
            addr,
            server_name: self.server_name.clone().unwrap_or(node.host),
            connect_timeout: self.connect_timeout,
            tls_dir: self.tls_dir.clone(),
        })
    }
}

pub(crate) async fn raw_cmd(a: RunArgs) -> anyhow::Result<Ended> {
    let target = a.target()?;
    if a.ramp.is_some() || a.metrics.is_some() || !a.thresholds.is_empty() {
        bail!("--raw runs without --ramp, --metrics, --threshold or --abort-on-fail");
    }
    let open = a.rate.map(|rate| Open {
        tick: a.tick,
        ..Open::at(rate)
    });
    let shape = sls_loadgen::raw::Shape::closed(a.connections, a.in_flight, a.threads)
        .measuring(a.warmup, a.duration);
    let mix = a.mix.unwrap_or_else(|| Mix(vec![(Persona::DscPlus, 1)]));
    let answers = if a.wrong_rate == 0.0 {
        raw_dsc::Answers::Right
    } else if a.wrong_rate == 1.0 {
        raw_dsc::Answers::Wrong
    } else {
        bail!("--raw takes --wrong-rate 0 (logins) or 1 (a failure storm)");
    };
    let out = a.out.as_deref();
    let result = raw_dsc::run(
        &target,
        a.users,
        mix,
        a.seed,
        &shape,
        open.as_ref(),
        answers,
        out,
    )
    .await?;
    println!("{}", report::table(&result.summary.scenarios));
    Ok(Ended::unexpected(result.unexpected))
}

pub(crate) async fn run_cmd(a: RunArgs) -> anyhow::Result<Ended> {
    let target = a.target()?;
    if a.raw {
        return raw_cmd(a).await;
    }
    let model = match a.rate {
        Some(rate) if rate > 0.0 => {
            let ramp = a.ramp.as_deref().map(parse_ramp).transpose()?;
            LoadModel::Open {
                rate,
                ramp,
                max_in_flight: 100_000,
            }
        }
        Some(_) => bail!("--rate must be more than 0"),
        None => LoadModel::Closed {
            workers: a.connections * a.in_flight,
        },
    };
    let mix = match &a.scenarios {
        Some(s) => parse_scenarios(s)?,
        None => default_mix(),
    };
    for t in &a.thresholds {
        if let Some(sc) = t.scope {
            if !mix.iter().any(|(m, w)| *m == sc && *w > 0) {
                bail!(
                    "threshold {:?}: the scenario {} is not in this run",
                    t.text,
                    sc.name()
                );
            }
        }
    }
    let plan = Plan {
        model,
        mix,
        duration: a.duration,
        warmup: a.warmup,
        progress: true,
    };
    let spec = FleetSpec {
        users: a.users,
        mix: a.mix.unwrap_or_default(),
        seed: a.seed,
        connections: a.connections,
        max_apps: a.max_apps,
    };
    let behaviour = Behaviour {
        wrong_rate: a.wrong_rate,
        slow_rate: a.slow_rate,
        route: a.route,
        ..Behaviour::default()
    };
    let live = a.metrics.map(|_| std::sync::Arc::new(LiveMetrics::new()));
    let server = match (a.metrics, &live) {
        (Some(addr), Some(l)) => {
            let server = live::serve(l.clone(), addr).await?;
            eprintln!("metrics at http://{}/metrics", server.addr);
            Some(server)
        }
        _ => None,
    };
    let out = a.out.as_deref();
    if a.lost_after < Duration::from_millis(100) {
        bail!("--lost-after must be 100ms or more");
    }
    let watch = Watch {
        abort_on: if a.abort_on_fail {
            a.thresholds.clone()
        } else {
            Vec::new()
        },
        lost_after: a.lost_after,
        ..Watch::default()
    };
    let result = run::run_watched(
        &target,
        &spec,
        &plan,
        behaviour,
        out,
        live.as_deref(),
        &watch,
    )
    .await;
    if let Some(server) = server {
        server.stop().await;
    }
    let mut result = result?;
    let mut rows = result.summary.scenarios.clone();
    if rows.len() > 1 {
        rows.push(result.summary.overall.clone());
    }
    println!("{}", report::table(&rows));
    let mut verdicts = threshold::evaluate(&a.thresholds, &result.summary);
    if let Some(Stopped::ThresholdLost { threshold, .. }) = &result.stopped {
        // Lost while the run went on; the steps after it do not save it.
        for v in verdicts.iter_mut().filter(|v| &v.threshold == threshold) {
            v.pass = false;
        }
    }
    if !verdicts.is_empty() {
        println!("{}", threshold::table(&verdicts));
    }
    let failed_thresholds = verdicts.iter().filter(|v| !v.pass).count();
    result.summary.thresholds = verdicts;
    if let Some(dir) = a.out.as_deref().filter(|_| !a.thresholds.is_empty()) {
        report::write_summary(dir, &result.summary)
            .with_context(|| format!("writing {}", dir.join("summary.json").display()))?;
        report::write_html(dir)
            .with_context(|| format!("writing {}", dir.join("report.html").display()))?;
    }
    for f in &result.files {
        println!("wrote {}", f.display());
    }
    if let Some(lost @ Stopped::ConnectionLost { .. }) = &result.stopped {
        bail!("{lost}: the run stopped (its results so far are above)");
    }
    Ok(Ended {
        failed_thresholds,
        ..Ended::unexpected(result.unexpected)
    })
}
