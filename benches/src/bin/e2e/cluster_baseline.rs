//! The cluster regime's baseline: `redis-benchmark` against the same cluster, driving the
//! commands and scripts a login sends with as many in flight, and from it the logins/s Redis
//! alone could serve.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::Context;

use crate::cluster_probe::{cli, script, Closed, Opts, Row};

/// `redis-benchmark --cluster` of one command: requests/s.
fn bench(port: u16, n: u64, clients: u32, keyspace: u64, args: &[&str]) -> anyhow::Result<f64> {
    let out = Command::new("redis-benchmark")
        .args(["--cluster", "-p", &port.to_string(), "-q", "-P", "1"])
        .args(["-n", &n.to_string(), "-c", &clients.to_string()])
        .args(["-r", &keyspace.to_string()])
        .args(args)
        .output()
        .context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text
        .split(['\r', '\n'])
        .rfind(|l| l.contains("requests per second"))
        .with_context(|| format!("redis-benchmark {}: {text}", args.join(" ")))?;
    let (_, rate) = last
        .split(" requests per second")
        .next()
        .and_then(|h| h.rsplit_once(' '))
        .context("parsing redis-benchmark")?;
    Ok(rate.parse()?)
}

/// `redis-benchmark` of each command a login sends, the scripts loaded first on every master;
/// then Redis alone's logins/s = 1 / Σ (commands of a kind per login ÷ their ops/s).
pub(crate) fn baseline(
    port: u16,
    masters: &[u16],
    login: &Closed,
    wait: usize,
    state_len: usize,
    opts: &Opts,
) -> anyhow::Result<(Vec<Row>, String)> {
    let mut sha = BTreeMap::new();
    for name in ["CAS", "BIND", "TXN_AND_USER", "READ_LIMITED"] {
        let body = script(name)?;
        for &m in masters {
            let s = cli(m, &["script", "load", body])?.trim().to_owned();
            sha.insert(name, s);
        }
    }
    let n = 100_000u64;
    // As many commands in flight as the nodes had logins in flight (each has one command out
    // at a time): with `appendfsync always` a master's throughput grows with what one fsync
    // covers.
    let clients = u32::try_from(opts.workers).unwrap_or(u32::MAX);
    let fresh = 100_000_000u64;
    let small = 20_000u64;
    let value = "x".repeat(state_len.max(1));
    let (bind, txn_and_user) = (&sha["BIND"], &sha["TXN_AND_USER"]);
    let deadline = "1800000000000";
    // With the per-user limit on, the nodes send each request's token in the user's read or
    // compare-and-set: so does the baseline (slsd's default quota, 5/s with a burst of 40).
    // Its `now` is a constant: a limiter key refuses after 40 takes while it lives, so the
    // keyspaces must stay large against `n` (here about 2 takes a key at most) or refusals,
    // which write nothing, would flatter the baseline.
    let token = opts
        .user_limit
        .then_some(["1800000000000000", "200000", "7800000"]);
    // A compare-and-set of `user` as the nodes send it: the token if any, then the
    // transaction's key and its operation's arguments if any.
    let cas = |user: &str, entry: Option<(&str, &[&str])>| -> Vec<String> {
        let mut keys = vec![user.to_owned()];
        let mut args: Vec<String> = vec!["0".into(), value.clone(), "w".into()];
        match token {
            Some(t) => {
                keys.push(format!("{user}r"));
                args.extend(t.map(String::from));
            }
            None => args.extend(["", "", ""].map(String::from)),
        }
        if let Some((key, op)) = entry {
            keys.push(key.to_owned());
            args.extend(op.iter().map(|a| a.to_string()));
        }
        let head = vec![
            "evalsha".to_owned(),
            sha["CAS"].clone(),
            keys.len().to_string(),
        ];
        [head, keys, args].concat()
    };
    let bench_v = |n: u64, keyspace: u64, args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        bench(port, n, clients, keyspace, &args)
    };
    // Keys the reads and the settles find: filled first, not measured.
    bench_v(small * 3, small, cas("{tag}u:__rand_int__", None))?;
    bench(
        port,
        small * 3,
        clients,
        small,
        &[
            "evalsha",
            bind,
            "1",
            "{tag}t:__rand_int__",
            "u4b0n12345",
            "7",
            deadline,
            "600000",
        ],
    )?;
    // The user the filled transactions name, in their slot.
    let args = cas("{tag}u:u4b0n12345", None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bench(port, 1, 1, 1, &args)?;
    let read = match token {
        Some(t) => (
            "EVALSHA READ_LIMITED user (its token taken)",
            [
                &["evalsha", &sha["READ_LIMITED"], "2"][..],
                &["{tag}u:__rand_int__", "{tag}u:__rand_int__r"],
                &t,
            ]
            .concat()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ),
        None => (
            "HMGET user v s w",
            ["hmget", "{tag}u:__rand_int__", "v", "s", "w"]
                .map(String::from)
                .to_vec(),
        ),
    };
    // Measured: (kind, its ops/s).
    let measured: Vec<(&str, f64)> = vec![
        (read.0, bench_v(n, small, read.1)?),
        (
            "EVALSHA TXN_AND_USER (a filled txn and its user, one slot)",
            bench(
                port,
                n,
                clients,
                small,
                &[
                    "evalsha",
                    txn_and_user,
                    "1",
                    "{tag}t:__rand_int__",
                    "{tag}u:",
                    "",
                ],
            )?,
        ),
        (
            "EVALSHA CAS (a fresh key: the write path)",
            bench_v(n, fresh, cas("{tag}w:__rand_int__", None))?,
        ),
        (
            "EVALSHA CAS with BIND (a fresh user key and its new txn, one slot)",
            bench_v(
                n,
                fresh,
                cas(
                    "{tag}x:__rand_int__",
                    Some((
                        "{tag}b:__rand_int__",
                        &["b", "u4b0n12345", "7", deadline, "600000"],
                    )),
                ),
            )?,
        ),
        (
            "EVALSHA CAS with SETTLE (a fresh user key and a txn, one slot)",
            bench_v(
                n,
                fresh,
                cas(
                    "{tag}y:__rand_int__",
                    Some(("{tag}t:__rand_int__", &["s", "AA", deadline, "600000"])),
                ),
            )?,
        ),
        (
            "WAIT 1 1000 (to one master)",
            bench(port, n, clients, small, &["wait", "1", "1000"])?,
        ),
    ];
    let rate = |k: &str| {
        measured
            .iter()
            .find(|(m, _)| m.starts_with(k))
            .map_or(1.0, |m| m.1)
    };
    // The login's mix: what the nodes sent, by their own count. A compare-and-set refused
    // (a stale guess, a conflict) is benchmarked as the write it tried: a generous baseline.
    let sent = login.window.sent_per_login(login.logins);
    let per = |what: &str| sent.get(what).copied().unwrap_or(0.0);
    let other = per("other") + per("token");
    // (what, the benchmark that measured it, per login)
    let mix = [
        ("read", read.0, per("read")),
        (
            "EVALSHA TXN_AND_USER",
            "EVALSHA TXN_AND_USER",
            per("txn_read"),
        ),
        ("EVALSHA CAS", "EVALSHA CAS (", per("cas")),
        (
            "EVALSHA CAS with BIND",
            "EVALSHA CAS with BIND",
            per("cas_bind"),
        ),
        (
            "EVALSHA CAS with SETTLE",
            "EVALSHA CAS with SETTLE",
            per("cas_settle"),
        ),
        ("WAIT", "WAIT", per("wait")),
    ];
    let secs_per_login: f64 = mix.iter().map(|(_, k, n)| n / rate(k)).sum();
    let redis_logins = 1.0 / secs_per_login.max(1e-12);
    let sls = login.verified_per_s;
    let mut rows: Vec<Row> = measured
        .iter()
        .map(|(k, r)| {
            [
                format!("baseline: `redis-benchmark --cluster -P 1 -c {clients} -n {n}`: {k}"),
                format!("{r:.0} ops/s"),
                String::new(),
            ]
        })
        .collect();
    rows.push([
        format!("baseline: logins/s Redis alone could serve (the login's mix as measured with wait-replicas {wait})"),
        format!("**{redis_logins:.0}**"),
        format!(
            "mix per login: {}{}; = 1 / Σ (count ÷ ops/s)",
            mix.iter()
                .map(|(k, _, n)| format!("{k} {n:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            if other > 0.005 {
                format!(", other {other:.2} (not benchmarked)")
            } else {
                String::new()
            }
        ),
    ]);
    rows.push([
        format!("sls (wait-replicas {wait}) ÷ that baseline"),
        format!(
            "**{:.2}** ({sls:.0} ÷ {redis_logins:.0})",
            sls / redis_logins
        ),
        "goal ≥ 0.75 with `appendfsync everysec` (the cluster issue's 20,000 verified logins/s is out of reach of a 2-core machine: Redis alone serves less)".into(),
    ]);
    let text = format!(
        "redis-benchmark: -n {n} per command, keys `{{tag}}…:__rand_int__` (one slot per master), the reads over {small} keys per master filled first, the compare-and-set writes over fresh user keys{} (with BIND: a fresh transaction key; with SETTLE: a transaction key of the filled ones when the random number falls among them, else SETTLE finds none and writes nothing, so this baseline is if anything generous); the CAS value {state_len} B (a real user's sealed state); {} runs × {} s per setting, {} users per run\n",
        if token.is_some() {
            ", each with its token (a fresh limiter key)"
        } else {
            ""
        },
        opts.runs,
        opts.secs,
        opts.users
    );
    Ok((rows, text))
}
