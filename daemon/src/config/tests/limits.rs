//! The settings of issue 15's limits: `--max-open-per-connection`, `--proof-failures-per-address`.

use super::*;

#[test]
fn the_limits_of_issue_15_from_flags_and_keys_with_defaults_and_ranges() {
    let flags = [
        "--max-open-txns",
        "80",
        "--max-open-per-connection",
        "5",
        "--proof-failures-per-address",
        "7",
    ];
    let keys = "max_open_txns = 80\nmax_open_per_connection = 5\nproof_failures_per_address = 7\n";
    for c in [
        Config::from_args(cli(&flags)).unwrap(),
        with_file(keys, &[]).unwrap(),
    ] {
        assert_eq!(c.admission.max_open_per_connection, 5);
        assert_eq!(c.admission.proof_failures_per_address, 7);
    }
    // Defaults: an eighth of the daemon's open challenges; 2 failed proofs a second.
    let c = Config::from_args(cli(&[])).unwrap();
    assert_eq!(c.admission.max_open_per_connection, 250_000);
    assert_eq!(c.admission.proof_failures_per_address, 2);
    let c = Config::from_args(cli(&["--max-open-txns", "80"])).unwrap();
    assert_eq!(c.admission.max_open_per_connection, 10);
    let c = Config::from_args(cli(&["--max-open-txns", "3"])).unwrap();
    assert_eq!(c.admission.max_open_per_connection, 1);
    assert!(Config::from_args(cli(&["--proof-failures-per-address", "0"])).is_ok());
    for (flags, field) in [
        (
            &["--max-open-per-connection", "0"][..],
            "max_open_per_connection",
        ),
        (
            &["--max-open-txns", "10", "--max-open-per-connection", "11"][..],
            "max_open_per_connection",
        ),
        (
            &["--proof-failures-per-address", "1001"][..],
            "proof_failures_per_address",
        ),
    ] {
        let e = Config::from_args(cli(flags)).unwrap_err();
        assert!(
            matches!(e, ConfigError::Invalid { field: f, .. } if f == field),
            "{flags:?}: {e:?}"
        );
    }
}
