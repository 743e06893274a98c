//! The operator's kit (`config/print.rs`): `--print-config` prints a file that `--config`
//! takes as it is and that names every setting; the completions and the man page.

use super::*;

/// Every long flag of the command that is a setting of the file, snake_case.
fn file_keys() -> Vec<String> {
    Settings::command()
        .get_arguments()
        .filter_map(clap::Arg::get_long)
        .filter(|long| !NOT_IN_FILE.contains(long))
        .map(|long| long.replace('-', "_"))
        .collect()
}

#[test]
fn the_printed_config_loads_to_the_defaults() {
    let printed = default_file().unwrap();
    let loaded = with_file(&printed, &[]).unwrap();
    let defaults = Config::from_args(cli(&[])).unwrap();
    assert_eq!(format!("{loaded:?}"), format!("{defaults:?}"));
}

#[test]
fn the_printed_config_sets_every_setting_with_one_default() {
    let printed = default_file().unwrap();
    // Commented out: those whose default follows another setting or the machine.
    let commented: Vec<&str> = printed
        .lines()
        .filter_map(|l| {
            l.strip_prefix("# ")?
                .strip_suffix(" =")
                .filter(|k| !k.contains(' '))
        })
        .collect();
    assert_eq!(
        commented,
        [
            "metrics",
            "threads",
            "lock_duration",
            "rate_per_user",
            "rate_per_client",
            "max_open_per_connection",
            "seal_key",
            "tls_dir",
            "node_name"
        ]
    );
    // The rest are set, so the file really is what the daemon reads, not a list of comments.
    let set: toml::Table = toml::from_str(&printed).unwrap();
    assert_eq!(set.len() + commented.len(), file_keys().len());
    assert_eq!(set["challenge_ttl"].as_str(), Some("2m"));
    assert_eq!(set["lockout_threshold"].as_integer(), Some(10));
    assert_eq!(set["store"].as_str(), Some("embedded"));
}

#[test]
fn the_printed_config_names_every_setting_and_no_action() {
    let printed = default_file().unwrap();
    for key in file_keys() {
        let given = printed
            .lines()
            .any(|l| l.starts_with(&format!("{key} = ")) || l == format!("# {key} ="));
        assert!(given, "{key} is missing from --print-config");
    }
    for action in [
        "config",
        "repair",
        "init_tls",
        "print_config",
        "completions",
        "man",
    ] {
        assert!(
            !printed.lines().any(|l| l
                .trim_start_matches("# ")
                .starts_with(&format!("{action} ="))),
            "{action} must not be a setting of the file"
        );
    }
    // Each setting's help is its comment.
    assert!(printed.contains("# Failures that lock a user, 1 to 255 (R11) [default: 10]\n"));
}

#[test]
fn an_edited_printed_config_takes_effect() {
    let printed = default_file().unwrap();
    let edited = printed.replace("challenge_ttl = \"2m\"\n", "challenge_ttl = \"5m\"\n");
    assert_ne!(edited, printed);
    let c = with_file(&edited, &[]).unwrap();
    assert_eq!(c.core.challenge_ttl, Duration::from_secs(300));
    // A flag still overrides the file.
    let c = with_file(&edited, &["--challenge-ttl", "1m"]).unwrap();
    assert_eq!(c.core.challenge_ttl, Duration::from_secs(60));
}

#[test]
fn the_effective_config_says_where_each_value_came_from_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.toml");
    std::fs::write(
        &path,
        "challenge_ttl = \"5m\"\nlockout_threshold = 7\nlockout_window = \"2days\"\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let flags = [
        "--config",
        p,
        "--lockout-threshold",
        "5",
        "--metrics",
        "127.0.0.1:9100",
        "--no-fsync",
        "--log-format",
        "json",
        "--print-config",
    ];
    let printed = effective_file(&cli(&flags)).unwrap();
    // The file's value, and the flag's over the file's.
    assert!(
        printed.contains(&format!("# from: file {p}\nchallenge_ttl = \"5m\"\n")),
        "{printed}"
    );
    assert!(printed.contains("# from: flag --lockout-threshold\nlockout_threshold = 5\n"));
    assert!(printed.contains("# from: flag --metrics\nmetrics = \"127.0.0.1:9100\"\n"));
    assert!(printed.contains("# from: flag --no-fsync\nno_fsync = true\n"));
    assert!(printed.contains("# from: flag --log-format\nlog_format = \"json\"\n"));
    // A default, and one that follows another setting (the lock outlasts the window).
    assert!(printed.contains("# from: default\ngrace = \"5s\"\n"));
    assert!(
        printed.contains("# from: default (here: \"2days\")\n# lock_duration =\n"),
        "{printed}"
    );
    // Every setting says where it came from.
    assert_eq!(printed.matches("\n# from: ").count(), file_keys().len());
    // `--config` reads it back to the same configuration; it is what --print-config prints.
    let original = Config::from_args(cli(&flags)).unwrap();
    let reread = with_file(&printed, &[]).unwrap();
    assert_eq!(format!("{reread:?}"), format!("{original:?}"));
    assert_eq!(original.core.lockout_threshold, 5);
    assert_eq!(
        printout(&cli(&flags)).unwrap().unwrap(),
        printed.into_bytes()
    );
    // Flags alone (no file) are named as well; an invalid value is an error, not a file.
    let printed = effective_file(&cli(&["--grace", "1s", "--print-config"])).unwrap();
    assert!(printed.contains("# from: flag --grace\ngrace = \"1s\"\n"));
    assert!(effective_file(&cli(&["--grace", "2h", "--print-config"])).is_err());
}

#[test]
fn completions_for_each_shell_name_the_flags() {
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        let text = String::from_utf8(completions(shell)).unwrap();
        assert!(text.contains("listen"), "{shell:?}: no --listen");
        assert!(
            text.contains("print-config"),
            "{shell:?}: no --print-config"
        );
    }
}

#[test]
fn the_man_page_names_the_flags() {
    let text = String::from_utf8(man_page().unwrap()).unwrap();
    assert!(
        text.starts_with(".ie") || text.contains(".TH slsd 8"),
        "{text:.200}"
    );
    assert!(text.contains("listen"));
    assert!(text.contains("grace"));
}

#[test]
fn the_actions_print_instead_of_serving() {
    assert!(printout(&cli(&[])).is_none());
    let config = printout(&cli(&["--print-config"])).unwrap().unwrap();
    assert_eq!(config, default_file().unwrap().into_bytes());
    let bash = printout(&cli(&["--completions", "bash"])).unwrap().unwrap();
    assert_eq!(bash, completions(clap_complete::Shell::Bash));
    assert!(printout(&cli(&["--man"]))
        .unwrap()
        .unwrap()
        .starts_with(b"."));
    // Two actions at once are refused rather than one silently chosen.
    let both = ["slsd", "--print-config", "--man"];
    assert!(Settings::try_parse_from(both).is_err());
}

#[test]
fn the_operations_guide_holds_the_current_printed_config() {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/OPERATIONS.md"
    ))
    .unwrap();
    let begin = "<!-- print-config: begin -->\n```toml\n";
    let start = guide.find(begin).expect("the begin marker") + begin.len();
    let end = start
        + guide[start..]
            .find("```\n<!-- print-config: end -->")
            .expect("the end marker");
    assert_eq!(
        &guide[start..end],
        default_file().unwrap(),
        "docs/OPERATIONS.md: paste `slsd --print-config` between the markers again"
    );
}
