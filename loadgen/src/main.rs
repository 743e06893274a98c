//! `sls-loadgen`: fleets of simulated DSC+ and IB Key clients against `slsd`, a device
//! emulator, and the one-command demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use sls_loadgen::abort::{Stopped, Watch};
use sls_loadgen::fleet::{Mix, Persona};
use sls_loadgen::live::{self, LiveMetrics};
use sls_loadgen::raw_open::Open;
use sls_loadgen::run::{self, FleetSpec, Target};
use sls_loadgen::scenario::{Behaviour, Route, Scenario};
use sls_loadgen::schedule::{LoadModel, Plan};
use sls_loadgen::threshold::{self, Threshold};
use sls_loadgen::{raw_dsc, report};

#[path = "main_device.rs"]
mod device_cmd;
use device_cmd::{device, DeviceCmd};
#[path = "main_report.rs"]
mod report_cmd;
use report_cmd::{CompareArgs, COMPARE_VERDICTS};

#[derive(Parser)]
#[command(
    name = "sls-loadgen",
    version,
    about = "Load generator and device emulator for slsd",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start slsd on a free loopback port, enrol a small fleet, run the mixed scenario with
    /// attackers, print the summary, stop the daemon. Exits non-zero on anything unexpected.
    Quickstart {
        /// Measured time.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// Where to write summary.json, the .hlog files, latency.svg and report.html
        /// [default: a new temporary directory].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run a load test against a running slsd.
    #[command(after_help = EXIT_CODES)]
    Run(Box<RunArgs>),
    /// Merge the reports of runs made at the same time (several load machines) into one:
    /// counts and rates add, percentiles come from their histograms added together. Writes
    /// summary.json, the .hlog files, latency.svg and report.html into --out as a run does.
    /// Refuses runs whose measured windows do not overlap, unless --sequential.
    Merge {
        /// The runs' report directories (each with summary.json and its .hlog files).
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Where to write the merged report.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The runs were made one after another: counts add, the rate is the steps over the
        /// windows' total time, the intervals are laid end to end.
        #[arg(long)]
        sequential: bool,
    },
    /// Compare runs: BASE... -- NEW... (several runs a side) or BASE NEW (one, indicative).
    /// Per scenario and overall: rate/s, ok/s, p50, p90, p99, p99.9 and the service time's
    /// p50 and p99, each judged ok, noise, regression or improvement from the runs' spread. A
    /// scenario on one side only is listed, not judged. Exits with 4 when there is a
    /// regression.
    #[command(after_help = COMPARE_VERDICTS)]
    Compare(CompareArgs),
    /// Write report.html for a run's directory as it is (its summary.json and .hlog files).
    Report {
        /// The run's directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Compute what a device would show.
    #[command(subcommand)]
    Device(DeviceCmd),
}

#[derive(Args)]
struct RunArgs {
    /// The daemon's address: HOST:PORT, a name or an IP address ([v6]:PORT).
    #[arg(long, default_value = "127.0.0.1:7443")]
    target: String,
    /// The name the daemon's certificate is verified against [default: the host of --target].
    #[arg(long)]
    server_name: Option<String>,
    /// How long a handshake may take before the daemon counts as not answering.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// The daemon's certificates directory (<data-dir>/tls).
    #[arg(long, default_value = "./sls-data/tls")]
    tls_dir: PathBuf,
    /// Users to enrol.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Persona mix by weight: dsc_plus, ib_key (push + challenge), ib_key_push,
    /// ib_key_challenge, scc, temp, withdrawal, attacked.
    #[arg(long)]
    mix: Option<Mix>,
    /// Scenarios and weights, e.g. dsc_plus=30,ib_key_push=25,attacker=2 [default: all, by
    /// their default weights].
    #[arg(long)]
    scenarios: Option<String>,
    /// Seed of the fleet's keys and PINs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Open loop: steps per second (latency from each step's due time). With `--raw`:
    /// requests per second, a `Begin` or an `Answer` each, latency per request.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: ramp linearly from this rate over the warm-up... e.g. 100:10s.
    #[arg(long)]
    ramp: Option<String>,
    /// Closed loop: frontend connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Closed loop: steps in flight per connection.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Most IB Key app connections to hold open.
    #[arg(long, default_value_t = 10_000)]
    max_apps: usize,
    /// Closed loop of DSC+ logins only, batched per connection, no task per request.
    #[arg(long)]
    raw: bool,
    /// With `--raw`: threads, one `current_thread` runtime each, connections spread over them.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// With `--raw --rate`: the open loop's timer; what is due by a tick goes out at it.
    #[arg(long, default_value = "100us", value_parser = parse_duration)]
    tick: Duration,
    /// Measured time.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Time before measuring.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Share of honest answers typed wrong.
    #[arg(long, default_value_t = 0.0)]
    wrong_rate: f64,
    /// Share of users who take their time (200 ms) to answer.
    #[arg(long, default_value_t = 0.0)]
    slow_rate: f64,
    /// How requests are spread over the frontend connections: `request`, each through the
    /// next in turn; `user`, all of a user's through one (chosen by the name: a deployment
    /// that routes each user to one node).
    #[arg(long, value_enum, default_value_t = Route::Request)]
    route: Route,
    /// Where to write summary.json, the .hlog files, latency.svg and report.html.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Pass/fail threshold, repeatable, like k6's: `[SCOPE:]METRIC OP VALUE[UNIT]`, e.g.
    /// 'dsc_plus:p99<5ms', 'unexpected==0', 'rate>=1900', 'errors<1%'. SCOPE: a scenario of
    /// the run, or none for all of them together (latency from their histograms added, so
    /// exact). METRIC: p50, p90, p99, p99.9, max (latency; unit us, µs, ms or s), rate
    /// (steps/s), errors (share of steps that were errors, expected or not: 0.01 or 1%),
    /// unexpected (a count). OP: < <= > >= ==. A table of verdicts follows the summary, they
    /// go into summary.json, and a failed one makes the exit code 3.
    #[arg(long = "threshold", value_name = "THRESHOLD")]
    thresholds: Vec<Threshold>,
    /// Stop the run as soon as a --threshold is already lost (like k6's abortOnFail), write
    /// the results so far and exit with 3. Judged once a second on the steps so far: `unexpected`
    /// and `max` with < <= (or == once past it) are lost as soon as they pass their bound; a
    /// percentile or `errors` with < <= once its scope has 100 steps or more and its value so
    /// far is past the bound (`errors==0` at the first error); `rate` and lower bounds (> >=)
    /// are judged at the end only.
    #[arg(long, requires = "thresholds")]
    abort_on_fail: bool,
    /// How long the daemon may stay silent (not even acknowledging packets) before a
    /// connection to it counts as lost: the run then prints "connection lost", stops, writes
    /// the results so far and exits with 2.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    lost_after: Duration,
    /// Serve live Prometheus metrics at `http://ADDR/metrics` while the run lasts (steps by
    /// scenario and outcome, errors by kind, a latency histogram by scenario, steps in flight,
    /// the target rate); port 0 picks a free port, printed on stderr. Stopped when the run ends.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

/// The exit codes, in `--help`.
const EXIT_CODES: &str = "Exit codes: 0 all went as expected (and every --threshold passed); \
1 unexpected outcomes (see the table); 2 an error (bad arguments, the daemon unreachable...); \
3 run only: a --threshold failed, and nothing else went wrong; 4 compare only: a regression \
beyond the tolerance.";

/// How a run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ended {
    /// Steps that should not have happened.
    unexpected: u64,
    /// Thresholds that failed.
    failed_thresholds: usize,
    /// Regressions `compare` found.
    regressions: usize,
}

impl Ended {
    fn unexpected(unexpected: u64) -> Ended {
        Ended {
            unexpected,
            failed_thresholds: 0,
            regressions: 0,
        }
    }
}

/// The longest `--duration`, `--warmup` or ramp: a run always stops by itself, within a day.
const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// A duration as [`humantime::parse_duration`] reads it (`500ms`, `10s`, `2m`, `1h 30m`,
/// `1.5s`), at most [`MAX_DURATION`].
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 500ms, 10s, 2m ({e})"))?;
    if d > MAX_DURATION {
        return Err(format!("{s:?} is longer than the most allowed, 24h"));
    }
    Ok(d)
}

/// `--ramp FROM:DURATION`, e.g. `100:10s`.
fn parse_ramp(r: &str) -> anyhow::Result<(f64, Duration)> {
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

fn default_mix() -> Vec<(Scenario, u32)> {
    Scenario::ALL
        .iter()
        .map(|s| (*s, s.default_weight()))
        .collect()
}

fn parse_scenarios(s: &str) -> anyhow::Result<Vec<(Scenario, u32)>> {
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
    fn target(&self) -> anyhow::Result<Target> {
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

async fn raw_cmd(a: RunArgs) -> anyhow::Result<Ended> {
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

async fn run_cmd(a: RunArgs) -> anyhow::Result<Ended> {
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

async fn quickstart(duration: Duration, out: Option<PathBuf>) -> anyhow::Result<Ended> {
    let slsd = sls_loadgen::daemon::find_slsd()?;
    let data = tempfile::Builder::new()
        .prefix("sls-quickstart-")
        .tempdir()?;
    let out = out.unwrap_or_else(|| data.path().join("report"));
    // Generous limits: one simulated user per address, and the attackers' bursts are the
    // lockout's to stop, not the rate limiter's.
    let flags = [
        &sls_loadgen::daemon::GENEROUS_LIMITS[..],
        &sls_loadgen::daemon::ONE_ADDRESS[..],
        &["--log", "warn"],
    ]
    .concat();
    let mut daemon = sls_loadgen::daemon::Daemon::start(&slsd, data.path(), &flags)?;
    eprintln!(
        "slsd {} started on {} (data in {})",
        slsd.display(),
        daemon.addr,
        data.path().display()
    );
    let target = daemon.target();
    let spec = FleetSpec {
        users: 2_000,
        mix: Mix::default(),
        seed: 7,
        connections: 4,
        max_apps: 1_000,
    };
    let plan = Plan {
        model: LoadModel::Open {
            rate: 2_000.0,
            ramp: None,
            max_in_flight: 10_000,
        },
        mix: default_mix(),
        duration,
        warmup: Duration::from_secs(1),
        progress: true,
    };
    let result = run::run(&target, &spec, &plan, Behaviour::default(), Some(&out)).await;
    let clean = daemon.stop(Duration::from_secs(10));
    let mut result = result?;
    // The daemon's effective configuration, as it prints it for the flags it was started with.
    if let Some(config) = print_config(&slsd, &flags, data.path()) {
        if let Some(d) = result.summary.meta.daemon.as_object_mut() {
            d.insert("config".into(), config);
        }
        report::write_summary(&out, &result.summary)?;
        report::write_html(&out)?;
    }
    println!("{}", report::table(&result.summary.scenarios));
    for f in &result.files {
        println!("wrote {}", f.display());
    }
    if !clean {
        eprintln!(
            "slsd did not stop cleanly; its log: {}",
            daemon.log.display()
        );
        return Ok(Ended::unexpected(result.unexpected.max(1)));
    }
    // Keep the report when it is inside the temporary data directory.
    if out.starts_with(data.path()) {
        let kept = data.keep();
        println!("report kept in {}", kept.join("report").display());
    }
    Ok(Ended::unexpected(result.unexpected))
}

/// `slsd --print-config` with `flags` (and the quickstart's listen address and data
/// directory), as settings; `None` (said on stderr) when it does not run.
fn print_config(
    slsd: &std::path::Path,
    flags: &[&str],
    data: &std::path::Path,
) -> Option<serde_json::Value> {
    let out = std::process::Command::new(slsd)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(flags)
        .arg("--print-config")
        .output();
    match out {
        Ok(o) if o.status.success() => Some(sls_loadgen::meta::print_config_json(
            &String::from_utf8_lossy(&o.stdout),
        )),
        _ => {
            eprintln!("slsd --print-config did not run: the report has its Welcome only");
            None
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Device(cmd) => match device(cmd) {
            Ok(answer) => {
                println!("{answer}");
                return ExitCode::SUCCESS;
            }
            Err(e) => Err(e),
        },
        Command::Run(args) => tokio_main(run_cmd(*args)),
        Command::Quickstart { duration, out } => tokio_main(quickstart(duration, out)),
        Command::Merge {
            dirs,
            out,
            sequential,
        } => report_cmd::merge(&dirs, &out, sequential),
        Command::Compare(args) => report_cmd::compare(args),
        Command::Report { dir } => report_cmd::report_cmd(&dir),
    };
    let (code, message) = exit_code(&result);
    if let Some(m) = message {
        eprintln!("sls-loadgen: {m}");
    }
    ExitCode::from(code)
}

/// The exit code of a command's result (see [`EXIT_CODES`]) and what to say on stderr.
/// Unexpected outcomes come before failed thresholds: a run that went wrong is not "merely
/// slow".
fn exit_code(result: &anyhow::Result<Ended>) -> (u8, Option<String>) {
    match result {
        Ok(Ended {
            unexpected: 0,
            failed_thresholds: 0,
            regressions: 0,
        }) => (0, None),
        Ok(Ended {
            unexpected: 0,
            failed_thresholds: 0,
            regressions: n,
        }) => (4, Some(format!("{n} regressions (see the table)"))),
        Ok(Ended {
            unexpected: 0,
            failed_thresholds: n,
            ..
        }) => (3, Some(format!("{n} thresholds failed (see the table)"))),
        Ok(Ended { unexpected: n, .. }) => {
            (1, Some(format!("{n} unexpected outcomes (see the table)")))
        }
        Err(e) => (2, Some(format!("{e:#}"))),
    }
}

fn tokio_main(
    f: impl std::future::Future<Output = anyhow::Result<Ended>>,
) -> anyhow::Result<Ended> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

#[cfg(test)]
#[path = "main_tests.rs"]
mod tests;
