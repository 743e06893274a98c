//! The metrics endpoint of a real slsd under real load (logins over QUIC), scraped over HTTP
//! and read by a real parser: Python `prometheus_client`'s OpenMetrics parser, through
//! `scripts/check-exposition.py` (which fails on a family without HELP, a counter sample
//! without `_total`, an inconsistent histogram), in the venv `scripts/python-venv.sh` makes.
//! The counts must be what the test did. The Grafana board (`docs/grafana/slsd.json`) may
//! name only families that this daemon exposed.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sls_loadgen::daemon::GENEROUS_LIMITS;
use sls_loadgen::harness::{answer, begin, enrol, login_ocra};
use sls_protocol::{ocra, DeviceKind, Role, Verdict};

use crate::within;

const KEY: [u8; 32] = *b"12345678901234567890123456789012";
const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// One HTTP/1.1 GET of `path` on `addr`: status code, headers (lower-cased), body. Retried
/// for a few seconds while the endpoint is not up yet.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut last = None;
    for _ in 0..100 {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(mut s) => {
                let req = format!("GET {path} HTTP/1.1\r\nHost: sls\r\nConnection: close\r\n\r\n");
                s.write_all(req.as_bytes()).await.unwrap();
                let mut raw = String::new();
                within(s.read_to_string(&mut raw)).await;
                let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, head.to_ascii_lowercase(), body.to_owned());
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no metrics endpoint on {addr}: {last:?}");
}

/// The Python with `prometheus_client`: `SLS_PYTHON`, else the venv under `target/`, made by
/// `scripts/python-venv.sh` if it is not there yet.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SLS_PYTHON") {
        return p.into();
    }
    let venv = root().join("target/py-venv/bin/python");
    if !venv.exists() {
        let ok = Command::new("bash")
            .arg(root().join("scripts/python-venv.sh"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "scripts/python-venv.sh failed: the metrics test needs Python with prometheus-client"
        );
    }
    venv
}

/// `text` through `scripts/check-exposition.py`: its JSON summary; the test fails with the
/// parser's complaint if there is one.
pub fn check_exposition(text: &str) -> Value {
    let py = python();
    let mut child = Command::new(&py)
        .arg(root().join("scripts/check-exposition.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the exposition fails the real parser's check ({}):\n{}\n--- the text:\n{text}",
        py.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The sample of family `family` named `sample` whose labels include `labels`.
pub fn value(summary: &Value, sample: &str, labels: &[(&str, &str)]) -> Option<f64> {
    summary["families"]
        .as_array()?
        .iter()
        .flat_map(|f| f["samples"].as_array().into_iter().flatten())
        .find(|s| {
            s["name"] == sample
                && labels
                    .iter()
                    .all(|(k, v)| s["labels"][*k].as_str() == Some(v))
        })
        .and_then(|s| s["value"].as_f64())
}

/// Every sample name the families of `summary` may have, by their types: what a query may
/// name.
pub fn exposed_names(summary: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for f in summary["families"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let suffixes: &[&str] = match f["type"].as_str().unwrap() {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        for s in suffixes {
            names.insert(format!("{name}{s}"));
        }
        for s in f["samples"].as_array().unwrap() {
            names.insert(s["name"].as_str().unwrap().to_owned());
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_parser_reads_the_metrics_of_a_daemon_under_load() {
    const LOGINS: usize = 40;
    const WRONG: usize = 10; // one user: 9 rejected, the 10th locks it
    let metrics = free_port();
    let addr = metrics.to_string();
    let d = crate::slsd(&[&GENEROUS_LIMITS[..], &["--metrics", &addr, "--log", "warn"]].concat());
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let suite = ocra::DSC_PLUS_DEFAULT_SUITE;
    let mut devices = Vec::new();
    for u in 0..4 {
        let user = format!("metricsuser{u}");
        let dev = within(enrol(&admin, &user, DeviceKind::DscPlus, &KEY, "1234")).await;
        devices.push((user, dev));
    }
    for i in 0..LOGINS {
        let (user, dev) = &devices[i % 3];
        let v = within(login_ocra(&fe, user, *dev, suite, &KEY, "1234", IP)).await;
        assert!(matches!(v, Verdict::Accepted { .. }), "{v:?}");
    }
    let (user, dev) = &devices[3];
    let mut verdicts = Vec::new();
    for _ in 0..WRONG {
        let (txn, _) = within(begin(&fe, user, *dev, IP)).await;
        verdicts.push(within(answer(&fe, txn, "00000000", IP)).await);
    }
    assert!(
        matches!(verdicts[9], Verdict::Locked { .. }),
        "{verdicts:?}"
    );

    let (status, head, text) = get(metrics, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let summary = check_exposition(&text);
    let families = summary["families"].as_array().unwrap();
    for f in families {
        let name = f["name"].as_str().unwrap();
        assert!(
            name.starts_with("sls_") || name.starts_with("process_"),
            "{name}"
        );
        assert!(!f["help"].as_str().unwrap().is_empty(), "{name}: HELP");
    }
    let at_least = |sample: &str, labels: &[(&str, &str)], n: usize| {
        let v = value(&summary, sample, labels).unwrap_or_else(|| panic!("{sample}{labels:?}"));
        assert!(
            v >= n as f64,
            "{sample}{labels:?} = {v}, at least {n} expected"
        );
    };
    at_least("sls_verdicts_total", &[("verdict", "accepted")], LOGINS);
    at_least("sls_verdicts_total", &[("verdict", "rejected")], 9);
    at_least("sls_verdicts_total", &[("verdict", "locked")], 1);
    at_least("sls_accepted_total", &[], LOGINS);
    at_least("sls_lockouts_total", &[], 1);
    at_least("sls_requests_total", &[("type", "Answer")], LOGINS + WRONG);
    let answered = [("type", "Answer"), ("verdict", "accepted")];
    at_least("sls_request_duration_seconds_count", &answered, LOGINS);
    at_least("sls_request_queue_wait_seconds_count", &answered, LOGINS);
    at_least("sls_durable_wait_seconds_count", &[], 1);
    at_least("sls_connections", &[("role", "frontend")], 1);
    at_least("sls_users", &[], 4);
    at_least("sls_store_ready", &[], 1);
    at_least("process_resident_memory_bytes", &[], 1);
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(value(&summary, "sls_build_info", &version), Some(1.0));
    assert!(
        value(&summary, "sls_open_challenges", &[]).is_some(),
        "open challenges gauge"
    );
    assert!(!text.contains("metricsuser"), "no user data in the metrics");
    assert_eq!(get(metrics, "/healthz").await.0, 200);
    let (status, _, body) = get(metrics, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    assert_eq!(get(metrics, "/nothing").await.0, 404);

    // The board names only what this daemon exposed, and in its load-generator row only what
    // `sls-loadgen run --metrics` serves: the registry a run serves, with a scenario's handles
    // made as a run makes them, read by the same parser.
    let exposed = exposed_names(&summary);
    let live = sls_loadgen::live::LiveMetrics::new();
    let _dsc_plus = live.scenario("dsc_plus");
    let loadgen = exposed_names(&check_exposition(&live.encode()));
    for (title, metric) in crate::dashboard::metric_names() {
        let (by, names) = if metric.starts_with("sls_loadgen_") {
            ("sls-loadgen", &loadgen)
        } else {
            ("slsd", &exposed)
        };
        assert!(
            names.contains(&metric),
            "panel {title:?} queries {metric}, which {by} does not expose"
        );
    }
}
