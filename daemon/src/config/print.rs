//! The operator's kit: `slsd --print-config` (the whole configuration file, a comment per
//! setting), `slsd --completions SHELL` and `slsd --man`. All three are made from the one
//! command, [`Settings::command`], so they cannot drift from `--help`; the values of
//! `--print-config` are the validated defaults of [`Config`], so they cannot drift from what
//! slsd does without a file. With a file (`--config`) or flags, `--print-config` prints the
//! effective configuration instead, each setting's comment saying where its value came from.

use clap::CommandFactory;

use super::{Config, ConfigError, Settings, StoreChoice};

/// The long flags that are not settings of the file: the file itself, and actions.
pub const NOT_IN_FILE: [&str; 9] = [
    "config",
    "audit-export",
    "repair",
    "init-tls",
    "print-config",
    "completions",
    "man",
    "help",
    "version",
];

/// The widest comment line of `--print-config`.
const WIDTH: usize = 96;

/// What `settings` asks slsd to print instead of serving (`--print-config`, `--completions`,
/// `--man`), or `None` to serve.
///
/// # Errors
/// The defaults do not validate, or a writer failed (neither happens but by a bug).
pub fn printout(settings: &Settings) -> Option<Result<Vec<u8>, ConfigError>> {
    if settings.print_config {
        Some(effective_file(settings).map(String::into_bytes))
    } else if let Some(shell) = settings.completions {
        Some(Ok(completions(shell)))
    } else if settings.man {
        Some(man_page().map_err(|e| ConfigError::Invalid {
            field: "man",
            why: e.to_string(),
        }))
    } else {
        None
    }
}

/// The shell completions of `slsd` for `shell`.
#[must_use]
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Settings::command(), "slsd", &mut out);
    out
}

/// The man page of `slsd`, section 8, in roff.
///
/// # Errors
/// Writing to memory failed (it does not).
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Settings::command())
        .section("8")
        .render(&mut out)?;
    Ok(out)
}

/// The configuration file of `slsd --print-config`: for each setting, in `--help`'s order, its
/// help as `#` comments, then `key = default`. A setting whose default is not one value (it
/// follows another setting, or the machine) is written commented out; its comment says what
/// the default is. [`Config::from_args`] reads the file to the defaults.
///
/// # Errors
/// The defaults do not validate (a bug).
pub fn default_file() -> Result<String, ConfigError> {
    let values = default_values()?;
    let mut out = String::from(
        "# slsd configuration file: every setting with its default, from `slsd --print-config`.\n\
         # Use it with `slsd --config FILE`; a flag on the command line overrides the file.\n\
         # Durations are written like 500ms, 30s, 2m, 24h, 1day, 1h 30m. A setting commented\n\
         # out has no single default (it follows another setting or the machine): its comment\n\
         # says what it is.\n",
    );
    for arg in Settings::command().get_arguments() {
        let Some(long) = arg.get_long() else {
            continue;
        };
        if NOT_IN_FILE.contains(&long) {
            continue;
        }
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        out.push('\n');
        comment(&mut out, &help);
        let key = long.replace('-', "_");
        match values.get(&key) {
            Some(value) => out.push_str(&format!("{key} = {value}\n")),
            None => out.push_str(&format!("# {key} =\n")),
        }
    }
    Ok(out)
}

/// The settings as a TOML table (a setting not given is absent).
fn table(settings: &Settings) -> Result<toml::Table, ConfigError> {
    toml::Table::try_from(settings).map_err(|e| ConfigError::Invalid {
        field: "print_config",
        why: e.to_string(),
    })
}

/// The defaults that are one value each, as [`default_file`] writes them.
fn default_values() -> Result<toml::Table, ConfigError> {
    let config = Config::from_args(Settings::default())?;
    let redis = Config::from_args(Settings {
        store: Some("redis://127.0.0.1:6379".into()),
        ..Settings::default()
    })?;
    table(&exact_defaults(&config, &redis))
}

/// The settings `settings` gives: its table without the values a setting has when not given
/// (`no_fsync = false`).
fn given(settings: &Settings) -> Result<toml::Table, ConfigError> {
    let unset = table(&Settings::default())?;
    let mut t = table(settings)?;
    t.retain(|k, v| unset.get(k) != Some(v));
    Ok(t)
}

/// The configuration file of `slsd --config F --print-config [FLAGS]`: every setting with its
/// effective value (the flags over the file over the defaults, validated), and in its comment,
/// after its help, where that value came from: `# from: default`, `# from: file F` or
/// `# from: flag --x`. A setting left to a default that is not one value stays commented out,
/// with the value it has here. `--config` reads it back to the same configuration (but for
/// the actions, `--repair` and `--init-tls`, which are never in the file). Without a file and
/// flags it is [`default_file`].
///
/// # Errors
/// The file cannot be read or is invalid; a value is out of range.
pub fn effective_file(cli: &Settings) -> Result<String, ConfigError> {
    let file = super::read_file(cli.config.as_deref())?;
    let flags = given(cli)?;
    if cli.config.is_none() && flags.is_empty() {
        return default_file();
    }
    effective(cli, &file, &flags, cli.config.as_deref())
}

fn effective(
    cli: &Settings,
    file: &Settings,
    flags: &toml::Table,
    path: Option<&std::path::Path>,
) -> Result<String, ConfigError> {
    let config = Config::from_args(cli.clone())?;
    let in_file = given(file)?;
    let values = table(&cli.clone().or(file.clone()))?;
    let defaults = default_values()?;
    // The values of the defaults that follow other settings or the machine, for the comment.
    let derived = table(&Settings {
        threads: Some(config.threads),
        lock_duration: Some(config.core.lock_duration),
        max_open_per_connection: Some(config.admission.max_open_per_connection),
        tls_dir: Some(config.tls_dir.clone()),
        seal_key: match &config.store {
            StoreChoice::Redis(r) => Some(r.seal_key.clone()),
            StoreChoice::Embedded => None,
        },
        ..Settings::default()
    })?;
    let mut out = String::from(
        "# slsd configuration file: the effective configuration (the flags over the file over\n\
         # the defaults), from `slsd --print-config`. Use it with `slsd --config FILE`.\n\
         # Each setting's `from:` says where its value came from: the default, the file or a\n\
         # flag. Durations are written like 500ms, 30s, 2m, 24h, 1day, 1h 30m. A setting\n\
         # commented out has no single default (it follows another setting or the machine).\n",
    );
    for arg in Settings::command().get_arguments() {
        let Some(long) = arg.get_long() else {
            continue;
        };
        if NOT_IN_FILE.contains(&long) {
            continue;
        }
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        out.push('\n');
        comment(&mut out, &help);
        let key = long.replace('-', "_");
        let from = if flags.contains_key(&key) {
            Some(format!("flag --{long}"))
        } else if in_file.contains_key(&key) {
            path.map(|p| format!("file {}", p.display()))
        } else {
            None
        };
        match (from, values.get(&key), defaults.get(&key)) {
            (Some(from), Some(value), _) => {
                out.push_str(&format!("# from: {from}\n{key} = {value}\n"));
            }
            (_, _, Some(value)) => out.push_str(&format!("# from: default\n{key} = {value}\n")),
            _ => match derived.get(&key) {
                Some(here) => out.push_str(&format!("# from: default (here: {here})\n# {key} =\n")),
                None => out.push_str(&format!("# from: default\n# {key} =\n")),
            },
        }
    }
    Ok(out)
}

/// `text` as `#` lines at most [`WIDTH`] wide; its paragraphs kept.
fn comment(out: &mut String, text: &str) {
    for (i, paragraph) in text.split("\n\n").enumerate() {
        if i > 0 {
            out.push_str("#\n");
        }
        let mut line = String::from("#");
        for word in paragraph.split_whitespace() {
            if line.len() + 1 + word.len() > WIDTH && line.len() > 1 {
                out.push_str(&line);
                out.push('\n');
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
}

/// The settings that give exactly `config` (the defaults), and `redis`'s store settings (the
/// defaults with a Redis store: only read with one). `None` where the default is not one value:
/// `threads` (the machine's cores), `lock_duration` (at least the lockout window),
/// `rate_per_user` and `rate_per_client` (a rate given gets a burst of twice it, the default's
/// is larger), `max_open_per_connection` (an eighth of `max_open_txns`), `seal_key` and
/// `tls_dir` (in the data directory), and `metrics` (off). The struct literal names every
/// field, so that a new setting cannot be forgotten here.
fn exact_defaults(config: &Config, redis: &Config) -> Settings {
    let a = &config.admission;
    let k = &config.core;
    let r = match &redis.store {
        StoreChoice::Redis(r) => Some(r),
        StoreChoice::Embedded => None,
    };
    let redis_prefix = r.map(|r| r.prefix.clone());
    let redis_wait_replicas = r.map(|r| r.wait_replicas);
    let redis_wait_timeout = r.map(|r| r.wait_timeout);
    let redis_response_timeout = r.map(|r| r.response_timeout);
    let redis_connect_timeout = r.map(|r| r.connect_timeout);
    let redis_cache_users = r.map(|r| r.cache_users);
    Settings {
        config: None,
        listen: Some(config.listen),
        data_dir: Some(config.data_dir.clone()),
        metrics: config.metrics,
        threads: None,
        endpoints: Some(config.endpoints),
        log: Some(config.log.clone()),
        log_format: Some(config.log_format),
        no_fsync: !config.fsync,
        max_connections: Some(a.max_connections),
        max_connections_per_address: Some(a.per_address),
        max_unproven: Some(a.max_unproven),
        max_unproven_per_address: Some(a.unproven_per_address),
        max_handshakes: Some(a.max_handshakes),
        retry_above: Some(a.retry_above),
        handshakes_per_address: Some(a.handshakes_per_address),
        frame_timeout: Some(a.frame_timeout),
        prove_timeout: Some(a.prove_timeout),
        idle_timeout: Some(config.idle_timeout),
        challenge_ttl: Some(k.challenge_ttl),
        lockout_threshold: Some(k.lockout_threshold),
        lockout_window: Some(k.lockout_window),
        lock_duration: None,
        malformed_counts: Some(k.malformed_counts),
        extend_lock_while_locked: Some(k.extend_lock_while_locked),
        push_cap: Some(k.push_cap),
        mass_lockout_threshold: Some(k.mass_lockout_threshold),
        mass_lockout_window: Some(k.mass_lockout_window),
        dsc_plus_min_equity: Some(k.dsc_plus_min_equity),
        max_devices_per_user: Some(k.max_devices_per_user),
        temp_code_full: Some(k.temp_full),
        temp_code_portal: Some(k.temp_portal),
        online_scc_life: Some(k.online_scc_life),
        auto_activation: Some(k.auto_activation),
        grant_pin: Some(k.grant_pin),
        grant_biometric: Some(k.grant_biometric),
        activation_token_life: Some(k.activation_token_life),
        rate_per_user: None,
        rate_per_client: None,
        rate_global: Some(k.rates.global),
        max_open_per_connection: None,
        proof_failures_per_address: Some(a.proof_failures_per_address),
        max_open_txns: Some(k.max_open_txns),
        snapshot_bytes: Some(config.snapshot_bytes),
        grace: Some(config.grace),
        store: match config.store {
            StoreChoice::Embedded => Some("embedded".into()),
            StoreChoice::Redis(_) => None,
        },
        redis_prefix,
        redis_wait_replicas,
        redis_wait_timeout,
        redis_response_timeout,
        redis_connect_timeout,
        redis_cache_users,
        seal_key: None,
        tls_dir: None,
        init_tls: false,
        audit_keep: Some(config.audit.keep),
        audit_max_age: Some(config.audit.max_age),
        // The host's name: not the same on every machine.
        node_name: None,
        idempotency_ttl: Some(config.audit.idempotency_ttl),
        audit_export: None,
        repair: false,
        print_config: false,
        completions: None,
        man: false,
    }
}
