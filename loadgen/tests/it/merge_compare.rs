//! `sls-loadgen merge` and `compare` on real runs against real slsd daemons: two runs made side
//! by side merge into their counts added and their histograms added, two made one after the
//! other only with `--sequential`; a daemon slowed by a low per-user rate limit is flagged a
//! regression (exit 4); a run against itself is not; three runs a side of identical settings
//! compare as no regression, and against a daemon whose global rate limit halves the rate they
//! show the drop, in the table and in the comparison's report.html.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use sls_loadgen::daemon::{find_slsd, Daemon};
use sls_loadgen::fleet::Mix;
use sls_loadgen::run::{self, FleetSpec, Target};
use sls_loadgen::rundir;
use sls_loadgen::scenario::{Behaviour, Scenario};
use sls_loadgen::schedule::{LoadModel, Plan};

use crate::slsd;

/// A short closed loop of DSC+ and card logins (4 workers, 1.5 s, no warm-up), written to `out`.
async fn short_run(target: &Target, seed: u64, out: &Path) -> run::RunResult {
    let spec = FleetSpec {
        users: 100,
        mix: "dsc_plus=1,scc=1".parse::<Mix>().unwrap(),
        seed,
        connections: 1,
        max_apps: 0,
    };
    let plan = Plan {
        model: LoadModel::Closed { workers: 4 },
        mix: vec![(Scenario::DscPlus, 1), (Scenario::Scc, 1)],
        duration: Duration::from_millis(1500),
        warmup: Duration::ZERO,
        progress: false,
    };
    run::run(target, &spec, &plan, Behaviour::default(), Some(out))
        .await
        .unwrap()
}

fn loadgen(args: &[&str]) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_sls-loadgen"))
        .args(args)
        .output()
        .unwrap();
    (
        status.code(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_of_two_real_runs_adds_their_counts_and_histograms() {
    let d = slsd(&[]);
    let target = d.target();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, m) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("m"),
    );
    // Two load machines at the same time: two fleets (two seeds) against one daemon.
    let (ra, rb) = tokio::join!(short_run(&target, 11, &a), short_run(&target, 12, &b));
    assert_eq!(ra.unexpected + rb.unexpected, 0);

    let (code, stdout, stderr) = loadgen(&["merge", path(&a), path(&b), "--out", path(&m)]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("merged 2 runs"), "{stdout}");
    for f in [
        "summary.json",
        "dsc_plus.hlog",
        "scc.hlog",
        "dsc_plus.service.hlog",
        "scc.service.hlog",
        "latency.svg",
        "report.html",
    ] {
        assert!(m.join(f).exists(), "no {f}: {stdout}");
    }
    let merged = rundir::read_summary(&m).unwrap();
    assert_eq!(merged.scenarios.len(), 2);
    for s in &merged.scenarios {
        let sa = ra
            .summary
            .scenarios
            .iter()
            .find(|x| x.name == s.name)
            .unwrap();
        let sb = rb
            .summary
            .scenarios
            .iter()
            .find(|x| x.name == s.name)
            .unwrap();
        assert!(sa.count > 0 && sb.count > 0, "{sa:?} {sb:?}");
        assert_eq!(s.count, sa.count + sb.count, "{}", s.name);
        assert_eq!(s.ok, sa.ok + sb.ok, "{}", s.name);
        assert!((s.rate_per_s - (sa.rate_per_s + sb.rate_per_s)).abs() < 1e-6);
        // The merged interval log holds every step of both runs' logs...
        let h = |dir: &Path| {
            let log = dir.join(format!("{}.hlog", s.name));
            rundir::read_hlog(&log, &s.name).unwrap().total().unwrap()
        };
        let (ha, hb, hm) = (h(&a), h(&b), h(&m));
        assert_eq!(ha.len(), sa.count);
        assert_eq!(hm.len(), ha.len() + hb.len(), "{}", s.name);
        assert_eq!(hm.len(), s.count);
        // ...and the merged percentiles are the merged histogram's, between the two runs'.
        assert_eq!(s.latency_us.p99, hm.value_at_quantile(0.99));
        let (lo, hi) = (
            sa.latency_us.p99.min(sb.latency_us.p99),
            sa.latency_us.p99.max(sb.latency_us.p99),
        );
        assert!(
            (lo..=hi).contains(&s.latency_us.p99),
            "{}: p99 {} not within {lo}..={hi}",
            s.name,
            s.latency_us.p99
        );
        assert_eq!(s.latency_us.max, sa.latency_us.max.max(sb.latency_us.max));
    }
    assert_eq!(
        merged.overall.count,
        ra.summary.overall.count + rb.summary.overall.count
    );
    // The merged window spans both runs'.
    let window = merged.meta.as_ref().unwrap().window();
    assert_eq!(
        window.0,
        ra.summary.meta.window().0.min(rb.summary.meta.window().0)
    );
    assert_eq!(
        window.1,
        ra.summary.meta.window().1.max(rb.summary.meta.window().1)
    );

    // A run made after `a` ended: not side by side, refused unless --sequential.
    let c = dir.path().join("c");
    let rc = short_run(&target, 13, &c).await;
    assert!(rc.summary.meta.window().0 >= ra.summary.meta.window().1);
    let s = dir.path().join("s");
    let (code, _, stderr) = loadgen(&["merge", path(&a), path(&c), "--out", path(&s)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("did not run at the same time"), "{stderr}");
    assert!(stderr.contains("--sequential"), "{stderr}");
    let (code, stdout, stderr) = loadgen(&[
        "merge",
        "--sequential",
        path(&a),
        path(&c),
        "--out",
        path(&s),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let seq = rundir::read_summary(&s).unwrap();
    let count = ra.summary.overall.count + rc.summary.overall.count;
    assert_eq!(seq.overall.count, count);
    // One after the other: the steps over both windows, not the rates added.
    let secs = 2.0 * 1.5;
    assert!(
        (seq.overall.rate_per_s - count as f64 / secs).abs() < 0.05 * count as f64 / secs,
        "{} steps/s over {secs} s, {count} steps",
        seq.overall.rate_per_s
    );

    // Refused clearly: a missing hlog, a directory that is no run.
    std::fs::remove_file(b.join("scc.hlog")).unwrap();
    let (code, _, stderr) = loadgen(&["merge", path(&a), path(&b), "--out", path(&m)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("scc.hlog: missing"), "{stderr}");
    let (code, _, stderr) = loadgen(&["merge", path(&a), path(dir.path()), "--out", path(&m)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no summary of a run here"), "{stderr}");
}

/// The verdict of `metric` in `scenario`'s rows of a compare table.
fn verdict<'a>(table: &'a str, scenario: &str, metric: &str) -> Option<&'a str> {
    let mut current = "";
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let rest = if line.starts_with(' ') {
            &cols[..]
        } else {
            current = cols.first().copied().unwrap_or("");
            cols.get(1..).unwrap_or(&[])
        };
        if current == scenario && rest.first() == Some(&metric) {
            return rest.last().copied();
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_flags_a_daemon_slowed_by_a_low_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (base, new) = (dir.path().join("base"), dir.path().join("new"));
    {
        let d = slsd(&[]);
        short_run(&d.target(), 21, &base).await;
    }
    {
        // The same load against a daemon that lets each user make one request a second.
        let flags = [
            "--rate-per-user",
            "1",
            "--rate-per-client",
            "1000",
            "--log",
            "warn",
        ];
        let d = Daemon::start_temp(&find_slsd().unwrap(), &flags).unwrap();
        let r = short_run(&d.target(), 21, &new).await;
        let o = &r.summary.overall;
        assert!(o.errors.contains_key("rate_limited"), "{o:?}");
    }
    let (code, stdout, stderr) = loadgen(&["compare", path(&base), path(&new)]);
    assert_eq!(code, Some(4), "{stdout}{stderr}");
    // The regression is where the limit bites: fewer steps go through per second.
    assert_eq!(
        verdict(&stdout, "overall", "ok/s"),
        Some("regression"),
        "{stdout}"
    );
    assert!(stderr.contains("regressions (see the table)"), "{stderr}");

    // A run against itself: nothing changed, exit 0 (a summary.json path works as well).
    let summary = base.join("summary.json");
    let (code, stdout, stderr) = loadgen(&["compare", path(&base), path(&summary)]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("0 regressions beyond 10%"), "{stdout}");
    assert_eq!(verdict(&stdout, "dsc_plus", "p99"), Some("ok"), "{stdout}");
    assert!(!stdout.contains("regression "), "{stdout}");
}

/// The open loop of [`open_run`], steps per second.
const OPEN_RATE: f64 = 600.0;

/// A short open loop of DSC+ and card logins at [`OPEN_RATE`] (1 s of warm-up, which also
/// spends a rate limiter's first burst, then 1.5 s measured), written to `out`. At a fixed
/// rate, runs of identical settings differ in their latency, hardly in their rates.
async fn open_run(target: &Target, seed: u64, out: &Path) -> run::RunResult {
    let spec = FleetSpec {
        users: 200,
        mix: "dsc_plus=1,scc=1".parse::<Mix>().unwrap(),
        seed,
        connections: 1,
        max_apps: 0,
    };
    let plan = Plan {
        model: LoadModel::Open {
            rate: OPEN_RATE,
            ramp: None,
            max_in_flight: 1_000,
        },
        mix: vec![(Scenario::DscPlus, 1), (Scenario::Scc, 1)],
        duration: Duration::from_millis(1500),
        warmup: Duration::from_secs(1),
        progress: false,
    };
    run::run(target, &spec, &plan, Behaviour::default(), Some(out))
        .await
        .unwrap()
}

/// `n` open-loop runs, each into `dir/<prefix><i>`, one after another against `target`.
async fn runs(
    target: &Target,
    dir: &Path,
    prefix: &str,
    seeds: std::ops::Range<u64>,
) -> Vec<String> {
    let mut out = Vec::new();
    for seed in seeds {
        let d = dir.join(format!("{prefix}{seed}"));
        let r = open_run(target, seed, &d).await;
        assert_eq!(r.unexpected, 0);
        out.push(d.to_str().unwrap().to_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_with_repeats_tells_noise_from_a_halved_rate() {
    let dir = tempfile::tempdir().unwrap();
    // Six runs of identical settings against one daemon, taken in turn for BASE and NEW (so
    // that a machine busier later weighs on both sides alike).
    let d = slsd(&[]);
    let six = runs(&d.target(), dir.path(), "same", 31..37).await;
    let base: Vec<&str> = six.iter().step_by(2).map(String::as_str).collect();
    let new: Vec<&str> = six.iter().skip(1).step_by(2).map(String::as_str).collect();
    // A tolerance of 25%: on this shared 2-core machine the latency of identical 1.5 s runs
    // moves by up to about 20% from one run to the next (the timer's lateness, the other
    // builds), at times all three of a side one way. The halved rate is far past it.
    let mut args = vec!["compare", "--tolerance", "25"];
    args.extend(&base);
    args.push("--");
    args.extend(&new);
    let (code, stdout, stderr) = loadgen(&args);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("0 regressions beyond 25% over 3 BASE and 3 NEW runs"),
        "{stdout}"
    );
    assert!(!stdout.contains("indicative"), "{stdout}");
    assert!(!stdout.contains(" regression\n"), "{stdout}");

    // A daemon whose global limit lets through half the requests the runs make (a login is
    // a Begin and an Answer): the same load, half of it refused.
    let limit = format!("{}", OPEN_RATE as u64);
    drop(d);
    let slow = slsd(&["--rate-global", &limit]);
    let halved = runs(&slow.target(), dir.path(), "limited", 41..44).await;
    let out = dir.path().join("cmp");
    let mut args = vec!["compare", "--tolerance", "25", "--out", path(&out)];
    args.extend(&base);
    args.push("--");
    args.extend(halved.iter().map(String::as_str));
    let (code, stdout, stderr) = loadgen(&args);
    assert_eq!(code, Some(4), "--rate-global {limit}: {stdout}{stderr}");
    assert_eq!(
        verdict(&stdout, "overall", "ok/s"),
        Some("regression"),
        "--rate-global {limit}: {stdout}"
    );

    // The comparison's page: both sides, each row's verdict, a distribution per scenario.
    let report = out.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("data-verdict=\"regression\""), "{html}");
    assert!(html.contains("3 BASE runs against 3 NEW runs"));
    let seen = crate::report_html::open_in_chromium(
        &report,
        &crate::report_html::artefacts().join("compare.png"),
    );
    let charts = crate::report_html::assert_clean(&seen);
    for scenario in ["dsc_plus", "scc"] {
        assert!(
            crate::report_html::points(charts, "distribution", Some(scenario)) > 0,
            "{scenario}: {seen:#}"
        );
    }
    assert!(crate::report_html::points(charts, "throughput", None) > 0);
}
