//! `sls-sim`: runs the deterministic simulator.
//!
//! ```text
//! sls-sim --seed N [--steps M]          one seed: its digest, or the failure and its replay
//! sls-sim --seeds A..B [--steps M]      seeds A to B-1: one line each, stops at a failure
//! ```

use std::process::ExitCode;
use std::time::Instant;

fn usage() -> ExitCode {
    eprintln!("usage: sls-sim (--seed N | --seeds A..B) [--steps M] [--quiet]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut seeds = None;
    let mut steps = 2_000u64;
    let mut quiet = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        match (a.as_str(), value) {
            ("--seed", Some(v)) => match v.parse::<u64>() {
                Ok(s) => seeds = Some(s..s + 1),
                Err(_) => return usage(),
            },
            ("--seeds", Some(v)) => {
                let Some((a, b)) = v.split_once("..") else {
                    return usage();
                };
                match (a.parse(), b.parse()) {
                    (Ok(a), Ok(b)) => seeds = Some(a..b),
                    _ => return usage(),
                }
            }
            ("--steps", Some(v)) => match v.parse() {
                Ok(s) => steps = s,
                Err(_) => return usage(),
            },
            ("--quiet", v) => {
                quiet = true;
                if let Some(v) = v {
                    eprintln!("unexpected {v}");
                    return usage();
                }
            }
            _ => return usage(),
        }
    }
    let Some(seeds) = seeds else {
        return usage();
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
