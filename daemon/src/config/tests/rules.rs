//! The rules' settings (`config/rules.rs`): every one from the flags and the file alike, the
//! articles' defaults, and each refused out of its range.

use super::*;

#[test]
fn every_rule_setting_from_the_flags_and_the_file_alike() {
    let flags = [
        "--malformed-counts",
        "false",
        "--extend-lock-while-locked",
        "true",
        "--push-cap",
        "0",
        "--mass-lockout-threshold",
        "7",
        "--mass-lockout-window",
        "5m",
        "--dsc-plus-min-equity",
        "500000",
        "--temp-code-full",
        "1d",
        "--temp-code-portal",
        "0s",
        "--online-scc-life",
        "30d",
        "--auto-activation",
        "14d",
        "--grant-pin",
        "8h",
        "--grant-biometric",
        "2d",
        "--activation-token-life",
        "10m",
    ];
    let keys = r#"
        malformed_counts = false
        extend_lock_while_locked = true
        push_cap = 0
        mass_lockout_threshold = 7
        mass_lockout_window = "5m"
        dsc_plus_min_equity = 500000
        temp_code_full = "1d"
        temp_code_portal = "0s"
        online_scc_life = "30d"
        auto_activation = "14d"
        grant_pin = "8h"
        grant_biometric = "2d"
        activation_token_life = "10m"
    "#;
    let day = Duration::from_secs(86_400);
    for c in [
        Config::from_args(cli(&flags)).unwrap().core,
        with_file(keys, &[]).unwrap().core,
    ] {
        assert!(!c.malformed_counts);
        assert!(c.extend_lock_while_locked);
        assert_eq!(c.push_cap, 0);
        assert_eq!(c.mass_lockout_threshold, 7);
        assert_eq!(c.mass_lockout_window, Duration::from_secs(300));
        assert_eq!(c.dsc_plus_min_equity, 500_000);
        assert_eq!((c.temp_full, c.temp_portal), (day, Duration::ZERO));
        assert_eq!((c.online_scc_life, c.auto_activation), (30 * day, 14 * day));
        assert_eq!(c.grant_pin, Duration::from_secs(8 * 3600));
        assert_eq!(c.grant_biometric, 2 * day);
        assert_eq!(c.activation_token_life, Duration::from_secs(600));
    }
    // Not given: the articles' numbers (SLS_RULES.md).
    assert_eq!(
        Config::from_args(cli(&[])).unwrap().core,
        CoreConfig::default()
    );
    let d = CoreConfig::default();
    assert!(d.malformed_counts && !d.extend_lock_while_locked);
    assert_eq!((d.push_cap, d.dsc_plus_min_equity), (5, 1_000_000));
    assert_eq!((d.temp_full, d.temp_portal), (2 * day, 10 * day));
    assert_eq!((d.online_scc_life, d.auto_activation), (21 * day, 21 * day));
    assert_eq!(d.grant_pin, Duration::from_secs(12 * 3600));
    assert_eq!(d.grant_biometric, Duration::from_secs(30 * 3600));
}

#[test]
fn a_rule_setting_out_of_its_range_is_refused_by_name() {
    for (flags, field) in [
        (
            &["--mass-lockout-threshold", "0"][..],
            "mass_lockout_threshold",
        ),
        (&["--mass-lockout-window", "2d"][..], "mass_lockout_window"),
        (&["--temp-code-full", "10m"][..], "temp_code_full"),
        (&["--temp-code-portal", "91d"][..], "temp_code_portal"),
        (&["--online-scc-life", "1h"][..], "online_scc_life"),
        (&["--auto-activation", "100d"][..], "auto_activation"),
        (&["--grant-pin", "30s"][..], "grant_pin"),
        (&["--grant-biometric", "8d"][..], "grant_biometric"),
        (
            &["--activation-token-life", "2d"][..],
            "activation_token_life",
        ),
    ] {
        let e = Config::from_args(cli(flags)).unwrap_err();
        assert!(
            matches!(e, ConfigError::Invalid { field: f, .. } if f == field),
            "{flags:?}: {e:?}"
        );
    }
    // Not a bool, not a u8: refused by the parser, naming the flag.
    let e = Settings::try_parse_from(["slsd", "--malformed-counts", "maybe"]).unwrap_err();
    assert!(e.to_string().contains("--malformed-counts"), "{e}");
    assert!(Settings::try_parse_from(["slsd", "--push-cap", "256"]).is_err());
}
