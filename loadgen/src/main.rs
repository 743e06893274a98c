//! `sls-loadgen`: fleets of simulated DSC+ and IB Key clients against `slsd`, a device
//! emulator, and the one-command demo.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sls_loadgen::fleet::Mix;
use sls_loadgen::report;
use sls_loadgen::run::{self, FleetSpec};
use sls_loadgen::scenario::Behaviour;
use sls_loadgen::schedule::{LoadModel, Plan};

#[path = "main_device.rs"]
mod device_cmd;
use device_cmd::{device, DeviceCmd};
#[path = "main_report.rs"]
mod report_cmd;
#[path = "main_run.rs"]
mod run_cmd;
use report_cmd::{CompareArgs, COMPARE_VERDICTS};
use run_cmd::{default_mix, run_cmd, RunArgs};

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
