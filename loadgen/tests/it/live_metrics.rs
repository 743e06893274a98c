//! `sls-loadgen run --metrics ADDR` against a real slsd: scraped over HTTP while the run lasts,
//! its step counters are by the scenarios run, non-zero, and never past the summary's final
//! counts; the endpoint is gone once the run has ended.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::slsd;

/// One GET of `/metrics` over a plain TCP stream: the status line and the body.
pub(crate) fn scrape(addr: SocketAddr) -> std::io::Result<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: loadgen\r\nConnection: close\r\n\r\n")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    Ok((
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    ))
}

/// The samples of an exposition: `name{labels}` → value, and the families with HELP and TYPE.
#[derive(Default, Debug)]
struct Exposition {
    samples: BTreeMap<String, f64>,
    help: Vec<String>,
    types: BTreeMap<String, String>,
}

fn parse(text: &str) -> Exposition {
    let mut e = Exposition::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            e.help.push(rest.split(' ').next().unwrap().to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            e.types.insert(name.to_owned(), kind.to_owned());
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            let (key, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            e.samples.insert(key.to_owned(), value);
        }
    }
    e
}

fn steps(e: &Exposition, scenario: &str) -> f64 {
    ["ok", "expected", "unexpected"]
        .iter()
        .map(|o| {
            let key = format!("sls_loadgen_steps_total{{scenario=\"{scenario}\",outcome=\"{o}\"}}");
            *e.samples.get(&key).unwrap_or_else(|| panic!("no {key}"))
        })
        .sum()
}

#[test]
fn run_serves_live_metrics_that_end_below_the_summary_s_counts() {
    let d = slsd(&[]);
    let out = tempfile::tempdir().unwrap();
    let addr = d.addr.to_string();
    let tls = d.tls_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sls-loadgen"))
        .args(["run", "--target", &addr, "--tls-dir", tls.to_str().unwrap()])
        .args(["--users", "200", "--mix", "dsc_plus=1,scc=1"])
        .args(["--scenarios", "dsc_plus=1,scc=1", "--connections", "1"])
        .args(["--in-flight", "4", "--max-apps", "0", "--duration", "3s"])
        .args(["--warmup", "0s", "--metrics", "127.0.0.1:0"])
        .args(["--out", out.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = line
                .strip_prefix("metrics at http://")
                .and_then(|r| r.strip_suffix("/metrics"))
            {
                let _ = tx.send(a.parse::<SocketAddr>().unwrap());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let metrics = rx.recv_timeout(Duration::from_secs(60)).unwrap();

    // Scrape every 200 ms while the run serves (bounded: 30 s at most); keep the last scrape,
    // the closest to the run's end.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last: Option<Exposition> = None;
    let mut scrapes = 0;
    while Instant::now() < deadline {
        let Ok((status, body)) = scrape(metrics) else {
            break; // the run ended
        };
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        scrapes += 1;
        last = Some(parse(&body));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(scrapes >= 2, "{scrapes} scrapes during a 3 s run");
    let status = child.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(status.success(), "{status}: {log}");
    let e = last.expect("no scrape succeeded during the run");

    // The conventions: every family with HELP and TYPE (the errors' family shows only once an
    // error happened), counter samples ending in _total.
    for family in [
        "sls_loadgen_steps",
        "sls_loadgen_step_duration_seconds",
        "sls_loadgen_steps_in_flight",
        "sls_loadgen_target_rate",
        "sls_loadgen_build",
    ] {
        assert!(e.help.iter().any(|h| h == family), "no HELP for {family}");
        assert!(e.types.contains_key(family), "no TYPE for {family}");
    }
    for key in e.samples.keys() {
        let name = key.split('{').next().unwrap();
        let family = ["_total", "_bucket", "_count", "_sum", "_info"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(e.help.iter().any(|h| h == family), "{key}: no HELP");
        assert!(e.types.contains_key(family), "{key}: no TYPE");
        let counter = |n: &str| e.types.get(n).is_some_and(|t| t == "counter");
        assert!(!counter(name), "a counter's sample without _total: {key}");
        if let Some(family) = name.strip_suffix("_total") {
            assert!(
                counter(family),
                "{key}: _total on a family that is no counter"
            );
        }
    }
    assert!(e
        .samples
        .keys()
        .any(|k| k.starts_with("sls_loadgen_build_info{version=")));

    // The counts are by the scenarios run, non-zero, and at most the summary's final ones.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    for scenario in summary["scenarios"].as_array().unwrap() {
        let name = scenario["name"].as_str().unwrap();
        let scraped = steps(&e, name);
        let count = scenario["count"].as_f64().unwrap();
        assert!(scraped > 0.0, "{name}: nothing counted live");
        assert!(
            scraped <= count,
            "{name}: {scraped} scraped > {count} in the summary"
        );
        let hist = format!("sls_loadgen_step_duration_seconds_count{{scenario=\"{name}\"}}");
        let observed = e.samples[&hist];
        assert!(
            observed > 0.0 && observed <= count,
            "{name}: {observed} latencies"
        );
    }
    let names: Vec<_> = summary["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["dsc_plus", "scc"]);
    // Served for the run's duration only.
    assert!(scrape(metrics).is_err(), "still served after the run");
}
