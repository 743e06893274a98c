//! `sls-sim`: runs the deterministic simulator.
//!
//! ```text
//! sls-sim --seed N [--steps M]          one seed: its digest, or the failure and its replay
//! sls-sim --seeds A..B [--steps M]      seeds A to B-1: one line each, stops at a failure
//! ```

use std::ops::Range;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

/// Runs the deterministic simulator of the verifier core: one seed, or a range of seeds.
#[derive(Parser)]
#[command(name = "sls-sim", version)]
struct Cli {
    /// One seed: prints its digest, or its failure and the command that replays it.
    #[arg(long, conflicts_with = "seeds", required_unless_present = "seeds")]
    seed: Option<u64>,
    /// Seeds A to B-1 (`A..B`): one line each, stops at the first failure.
    #[arg(long, value_parser = parse_seeds)]
    seeds: Option<Range<u64>>,
    /// Steps a seed runs.
    #[arg(long, default_value_t = 2_000)]
    steps: u64,
    /// Only the failure and the total, for a range of seeds.
    #[arg(long)]
    quiet: bool,
}

/// `A..B` with A < B.
fn parse_seeds(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("{s:?} is not a range like 0..200"))?;
    let a: u64 = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u64 = b.parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a >= b {
        return Err(format!("{s:?} is empty: the end comes after the start"));
    }
    Ok(a..b)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (steps, quiet) = (cli.steps, cli.quiet);
    // clap requires one of the two.
    let Some(seeds) = cli.seed.map(|s| s..s.saturating_add(1)).or(cli.seeds) else {
        return ExitCode::from(2);
    };
    let started = Instant::now();
    let n = seeds.end - seeds.start;
    for seed in seeds {
        match sls_sim::run(sls_sim::Config { seed, steps }) {
            Ok(s) if !quiet || n == 1 => {
                let days = s.span_ms as f64 / 86_400_000.0;
                let counts: Vec<String> =
                    s.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "seed {seed} steps {} digest {} span {days:.1} days {}",
                    s.steps,
                    s.digest,
                    counts.join(" ")
                );
            }
            Ok(_) => {}
            Err(f) => {
                println!("{f}");
                eprintln!("after {:.2?}", started.elapsed());
                return ExitCode::FAILURE;
            }
        }
    }
    if n > 1 {
        println!("{n} seeds x {steps} steps: ok in {:.2?}", started.elapsed());
    }
    ExitCode::SUCCESS
}
