//! `sls-loadgen merge`, `compare` and `report`: what reads runs already written (kept apart
//! from `main.rs` for its size).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use sls_loadgen::html::{self, RunData};
use sls_loadgen::{compare as cmp, report, rundir};

use crate::Ended;

/// `compare`'s arguments.
#[derive(Args)]
pub struct CompareArgs {
    /// The reference runs (report directories or summary.json files), then `--` and the runs
    /// to judge: `compare B1 B2 B3 -- N1 N2 N3`. `compare BASE NEW` compares one run a side.
    #[arg(required = true, value_name = "BASE")]
    base: Vec<PathBuf>,
    /// The runs to judge, after `--`.
    #[arg(last = true, value_name = "NEW")]
    new: Vec<PathBuf>,
    /// Percent of BASE's median past which a change counts (see the verdicts below).
    #[arg(long, default_value_t = 10.0, value_name = "PCT")]
    tolerance: f64,
    /// Also write the comparison as a page, DIR/report.html.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// `compare`'s help after its arguments: how the verdicts are made.
pub const COMPARE_VERDICTS: &str = "Verdicts, per metric, from each side's runs (min, median, \
max): regression when every NEW run is worse than every BASE run, the closest two apart by \
more than the tolerance (of BASE's median) and more than either side's own spread (max - \
min); improvement the same the other way; noise when the medians differ by more than the \
tolerance but the runs do not set them apart so (cannot tell); ok when the medians are \
within it. One run a side: the plain change against the tolerance, marked \
indicative. Exit codes: 0 no regression; 2 an error; 4 a regression.";

pub fn merge(dirs: &[PathBuf], out: &Path, sequential: bool) -> anyhow::Result<Ended> {
    let merged = sls_loadgen::merge::merge(dirs, out, sequential)?;
    let mut rows = merged.summary.scenarios.clone();
    rows.push(merged.summary.overall.clone());
    println!(
        "merged {} runs{}",
        dirs.len(),
        if sequential {
            " (one after another)"
        } else {
            ""
        }
    );
    println!("{}", report::table(&rows));
    for f in &merged.files {
        println!("wrote {}", f.display());
    }
    Ok(Ended::unexpected(0))
}

pub fn compare(a: CompareArgs) -> anyhow::Result<Ended> {
    if !(a.tolerance.is_finite() && a.tolerance >= 0.0) {
        bail!("--tolerance {}: a percentage of 0 or more", a.tolerance);
    }
    let (base, new) = match (a.base.len(), a.new.is_empty()) {
        (2, true) => (vec![a.base[0].clone()], vec![a.base[1].clone()]),
        (n, true) => bail!(
            "give BASE NEW (one run a side) or BASE... -- NEW... (several a side): {n} {} \
             and no --",
            if n == 1 { "run" } else { "runs" }
        ),
        _ => (a.base, a.new),
    };
    let read = |paths: &[PathBuf]| -> anyhow::Result<Vec<rundir::SummaryFile>> {
        paths.iter().map(|p| rundir::read_summary(p)).collect()
    };
    let c = cmp::compare(&read(&base)?, &read(&new)?, a.tolerance);
    println!("{}", cmp::table(&c));
    if let Some(out) = &a.out {
        let load = |paths: &[PathBuf]| -> anyhow::Result<Vec<RunData>> {
            paths.iter().map(|p| RunData::load(p)).collect()
        };
        let path = html::compare::write(out, &load(&base)?, &load(&new)?, &c)?;
        println!("wrote {}", path.display());
    }
    Ok(Ended {
        regressions: c.regressions(),
        ..Ended::unexpected(0)
    })
}

pub fn report_cmd(dir: &Path) -> anyhow::Result<Ended> {
    if !rundir::summary_path(dir).exists() {
        bail!("{}: no summary.json of a run here", dir.display());
    }
    let path = html::write_run_report(dir)
        .with_context(|| format!("writing the report of {}", dir.display()))?;
    println!("wrote {}", path.display());
    Ok(Ended::unexpected(0))
}
