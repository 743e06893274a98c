//! `sls-loadgen`'s own tests: its argument parsing and its exit codes.

use super::run_cmd::parse_ramp;
use super::*;

#[test]
fn durations_as_the_docs_write_them() {
    for (text, want) in [
        ("500ms", Duration::from_millis(500)),
        ("1s", Duration::from_secs(1)),
        ("5s", Duration::from_secs(5)),
        ("10s", Duration::from_secs(10)),
        ("60s", Duration::from_secs(60)),
        ("2m", Duration::from_secs(120)),
        ("1.5s", Duration::from_millis(1_500)),
        ("24h", Duration::from_secs(86_400)),
    ] {
        assert_eq!(parse_duration(text), Ok(want), "{text}");
    }
    for bad in ["", "10", "soon", "-1s", "10 parsecs"] {
        let e = parse_duration(bad).unwrap_err();
        assert!(e.contains("is not a duration like"), "{bad}: {e}");
    }
    // A run stops within a day; past that (or past what a Duration holds) is refused.
    assert!(parse_duration("25h").unwrap_err().contains("most allowed"));
    assert!(parse_duration("99999999999999999999s")
        .unwrap_err()
        .contains("too large"));
}

#[test]
fn run_flags_parse() {
    let cli = Cli::try_parse_from([
        "sls-loadgen",
        "run",
        "--duration",
        "15s",
        "--warmup",
        "500ms",
        "--ramp",
        "100:10s",
    ])
    .unwrap();
    let Command::Run(a) = cli.command else {
        panic!("not run");
    };
    assert_eq!(a.duration, Duration::from_secs(15));
    assert_eq!(a.warmup, Duration::from_millis(500));
    assert_eq!(
        parse_ramp(a.ramp.as_deref().unwrap()).unwrap(),
        (100.0, Duration::from_secs(10))
    );
    let Err(e) = Cli::try_parse_from(["sls-loadgen", "run", "--duration", "2d"]) else {
        panic!("a two-day run accepted");
    };
    assert!(e.to_string().contains("--duration"), "{e}");
    let Command::Quickstart { duration, .. } = Cli::try_parse_from(["sls-loadgen", "quickstart"])
        .unwrap()
        .command
    else {
        panic!("not quickstart");
    };
    assert_eq!(duration, Duration::from_secs(10));
}

#[test]
fn exit_codes_put_unexpected_outcomes_before_failed_thresholds() {
    let ended = |unexpected, failed_thresholds| {
        exit_code(&Ok(Ended {
            unexpected,
            failed_thresholds,
            regressions: 0,
        }))
        .0
    };
    let regressions = |regressions| {
        exit_code(&Ok(Ended {
            regressions,
            ..Ended::unexpected(0)
        }))
        .0
    };
    assert_eq!(regressions(0), 0);
    assert_eq!(regressions(3), 4);
    assert_eq!(ended(0, 0), 0);
    assert_eq!(ended(0, 2), 3);
    assert_eq!(ended(5, 0), 1);
    assert_eq!(ended(5, 2), 1);
    assert_eq!(exit_code(&Err(anyhow::anyhow!("no daemon"))).0, 2);
}

#[test]
fn thresholds_repeat_and_bad_ones_are_refused_by_the_parser() {
    let cli = Cli::try_parse_from([
        "sls-loadgen",
        "run",
        "--threshold",
        "dsc_plus:p99<5ms",
        "--threshold",
        "unexpected==0",
    ])
    .unwrap();
    let Command::Run(a) = cli.command else {
        panic!("not run");
    };
    let texts: Vec<_> = a.thresholds.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, ["dsc_plus:p99<5ms", "unexpected==0"]);
    let Err(e) = Cli::try_parse_from(["sls-loadgen", "run", "--threshold", "p99<5"]) else {
        panic!("a latency without a unit accepted");
    };
    assert!(e.to_string().contains("needs a unit"), "{e}");
    // quickstart takes none.
    assert!(Cli::try_parse_from(["sls-loadgen", "quickstart", "--threshold", "rate>1"]).is_err());
}

#[test]
fn bad_ramps_are_refused() {
    assert!(parse_ramp("100").is_err());
    assert!(parse_ramp("fast:10s").is_err());
    assert!(parse_ramp("NaN:10s").is_err());
    assert!(parse_ramp("-5:10s").is_err());
    let e = parse_ramp("100:forever").unwrap_err();
    assert!(format!("{e:#}").contains("--ramp duration"), "{e:#}");
}
