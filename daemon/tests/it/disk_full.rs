//! A full disk, for real: a small tmpfs mounted by the test (root only; skipped with a message
//! otherwise), filled with a filler file. The journal refuses changes with `UNAVAILABLE` while
//! its writes fail, acknowledges nothing it could not write, says it is not ready (`Stats`,
//! metrics), and resumes by itself once space returns; a restart then holds every acknowledged
//! change and nothing the daemon did not count. Logging to a full disk ends no stream.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sls_client::pipeline::Pipeline;
use sls_daemon::journal::{Journal, JournalConfig, JournalError};
use sls_loadgen::daemon::{Daemon, NO_LIMITS};
use sls_loadgen::harness::{begin, enrol_bulk, ocra_answer, stats};
use sls_protocol::*;

use crate::{call, within};

/// A tmpfs of a given size, unmounted (and its directory removed) on drop, even when the test
/// fails.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one of `size` (as `mount -o size=` takes it), or `None` after saying why the test
    /// is skipped.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("sls-diskfull-")
            .tempdir()
            .ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs (root is needed): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills it with a filler file until a write fails; returns the file.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        // The last page-sized bits that still fit.
        while f.write_all(&chunk[..512]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a daemon still writing): detach it; it goes once unused.
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

fn config(dir: &Path) -> JournalConfig {
    let mut c = JournalConfig::new(dir);
    c.wait_while_failing = Duration::from_millis(200);
    c.close_grace = Duration::from_millis(300);
    c
}

fn rec(i: usize) -> Vec<u8> {
    format!("record {i:06} {}", "x".repeat(80)).into_bytes()
}

/// Appends records until one cannot be made durable; returns the records appended (the last
/// one queued but not durable) and how many were durable.
fn append_until_failing(s: &Journal, from: usize) -> (Vec<Vec<u8>>, usize) {
    let mut appended = Vec::new();
    for i in from..from + 100_000 {
        let r = rec(i);
        let lsn = s.append(&r).expect("admitted while healthy");
        appended.push(r);
        match s.wait_durable(lsn) {
            Ok(()) => {}
            Err(JournalError::Unavailable(_)) => return (appended.clone(), appended.len() - 1),
            Err(e) => panic!("a failing write is Unavailable, not {e}"),
        }
    }
    panic!("the journal never failed on a full disk");
}

fn replayed(dir: &Path) -> Vec<Vec<u8>> {
    let (s, replay) = Journal::open(config(dir)).unwrap();
    s.close();
    replay.records
}

#[test]
fn the_journal_retries_a_full_disk_and_resumes_when_space_returns() {
    let Some(fs) = Tmpfs::mount("1m") else { return };
    let dir = fs.path().join("journal");
    let (s, _) = Journal::open(config(&dir)).unwrap();
    let mut all: Vec<Vec<u8>> = Vec::new();
    for i in 0..10 {
        let r = rec(i);
        s.wait_durable(s.append(&r).unwrap()).unwrap();
        all.push(r);
    }
    let filler = fs.fill();
    let (more, _durable) = append_until_failing(&s, 10);
    all.extend(more);
    // Unhealthy: new changes are refused at once, and the stats say so.
    assert!(!s.ready());
    assert!(matches!(
        s.append(b"refused"),
        Err(JournalError::Unavailable(_))
    ));
    assert!(!s.stats().ready);
    assert!(s.stats().retries >= 1);
    // Space returns: the record that could not be written becomes durable by itself.
    std::fs::remove_file(&filler).unwrap();
    let t0 = Instant::now();
    while !s.ready() {
        assert!(t0.elapsed() < Duration::from_secs(30), "resumed");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.wait_durable(all.len() as u64)
        .expect("the retried batch is durable");
    for i in 0..20 {
        let r = rec(1_000_000 + i);
        s.wait_durable(s.append(&r).unwrap()).unwrap();
        all.push(r);
    }
    assert_eq!(s.stats().unhealthy_spells, 1);
    s.close();
    // Exactly what was queued, in order, once: no torn remains of the failed writes.
    assert_eq!(replayed(&dir), all);
}

#[test]
fn closing_while_the_disk_is_full_ends_and_keeps_only_what_was_durable() {
    let Some(fs) = Tmpfs::mount("1m") else { return };
    let dir = fs.path().join("journal");
    let (s, _) = Journal::open(config(&dir)).unwrap();
    fs.fill();
    let (appended, durable) = append_until_failing(&s, 0);
    let closer = {
        let s = s.clone();
        std::thread::spawn(move || s.close())
    };
    let t0 = Instant::now();
    while !closer.is_finished() {
        assert!(t0.elapsed() < Duration::from_secs(30), "close ends");
        std::thread::sleep(Duration::from_millis(20));
    }
    closer.join().unwrap();
    assert!(s.append(b"after").is_err());
    // The durable records, and not the one never acknowledged.
    assert_eq!(replayed(&dir), appended[..durable].to_vec());
}

fn key(i: usize) -> Vec<u8> {
    format!("key-of-user-{i:08}-padding-to-32").into_bytes()[..32].to_vec()
}

fn ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 2, (i >> 8) as u8, i as u8))
}

fn records(n: usize) -> Vec<BulkRecord> {
    (0..n)
        .map(|i| BulkRecord {
            user: format!("d{i}"),
            kind: DeviceKind::DscPlus,
            secret: key(i),
            pin: "1234".into(),
            suite: String::new(),
        })
        .collect()
}

fn wrong(u: usize, q: &str) -> String {
    let right = ocra_answer(ocra::DSC_PLUS_DEFAULT_SUITE, &key(u), q, "1234").unwrap();
    format!("{:08}", (right.parse::<u64>().unwrap() + 1) % 100_000_000)
}

async fn failures(admin: &Pipeline, u: usize) -> u8 {
    match call(
        admin,
        Message::Status {
            user: format!("d{u}"),
        },
    )
    .await
    {
        Message::UserStatus { failures, .. } => failures,
        other => panic!("status of d{u}: {other:?}"),
    }
}

/// The metrics page of the daemon on `addr`.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let (status, _, body) = crate::metrics::get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

fn free_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_unavailable_and_the_daemon_resumes_without_a_restart() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let metrics = free_port();
    let metrics_arg = metrics.to_string();
    // Its stderr log is on the tmpfs too (the data directory): logging must not hurt either.
    let flags = [
        &["--log", "warn", "--metrics", &metrics_arg][..],
        &NO_LIMITS[..],
    ]
    .concat();
    let slsd = Path::new(env!("CARGO_BIN_EXE_slsd"));
    let mut d = Daemon::start(slsd, &fs.path().join("data"), &flags).unwrap();
    const USERS: usize = 30;
    const PER_USER: usize = 4;
    let admin = d.connect(Role::Admin).await.unwrap();
    let ids = enrol_bulk(&admin, &records(USERS)).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    // Challenges opened before the disk fills (a Begin is refused while it is full).
    let mut open = Vec::new();
    for k in 0..PER_USER {
        for (u, dev) in ids.iter().enumerate() {
            let (txn, Challenge::Numeric(q)) =
                within(begin(&fe, &format!("d{u}"), *dev, ip(u))).await
            else {
                panic!("a numeric challenge")
            };
            open.push((u, k, txn, wrong(u, &q)));
        }
    }
    assert_eq!(stats(&admin).await.unwrap()["store_ready"], 1);
    let filler = fs.fill();
    let mut acked: HashMap<usize, u8> = HashMap::new();
    let mut refused = Vec::new();
    for (u, k, txn, response) in open {
        let reply = call(
            &fe,
            Message::Answer {
                txn,
                response: response.clone(),
                client: ip(u),
            },
        )
        .await;
        match reply {
            Message::Judged {
                verdict: Verdict::Rejected { failures_left },
            } if refused.is_empty() => {
                acked.insert(u, 10 - failures_left);
            }
            Message::Error { status, .. } if status == Status::UNAVAILABLE => {
                refused.push((u, k, txn, response));
            }
            other => panic!(
                "d{u}: a rejection before the disk filled up, then UNAVAILABLE only: {other:?}"
            ),
        }
    }
    assert!(!refused.is_empty(), "the full disk refused answers");
    // Not ready, said by Stats and by the metrics; reads still answer.
    let s = stats(&admin).await.unwrap();
    assert_eq!(s["store_ready"], 0);
    assert!(s["store_retries"] >= 1);
    assert!(scrape(metrics).await.contains("\nsls_store_ready 0\n"));
    let (status, _, why) = crate::metrics::get(metrics, "/readyz").await;
    assert_eq!(status, 503, "not ready while the journal fails: {why}");
    assert!(
        why.starts_with("not ready: the store refuses changes"),
        "{why}"
    );
    assert_eq!(crate::metrics::get(metrics, "/healthz").await.0, 200);
    for u in 0..USERS {
        let counted = failures(&admin, u).await;
        let want = acked.get(&u).copied().unwrap_or(0);
        assert!(
            counted >= want,
            "d{u}: {counted} counted, {want} acknowledged"
        );
    }
    // Space returns: ready again by itself.
    std::fs::remove_file(&filler).unwrap();
    let t0 = Instant::now();
    while stats(&admin).await.unwrap()["store_ready"] != 1 {
        assert!(t0.elapsed() < Duration::from_secs(30), "ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(scrape(metrics).await.contains("\nsls_store_ready 1\n"));
    assert_eq!(crate::metrics::get(metrics, "/readyz").await.0, 200);
    // The refused answers again: judged now (a rule that ran before the refusal spent its
    // challenge: replayed).
    for (u, _, txn, response) in refused {
        let reply = call(
            &fe,
            Message::Answer {
                txn,
                response,
                client: ip(u),
            },
        )
        .await;
        match reply {
            Message::Judged {
                verdict: Verdict::Rejected { failures_left },
            } => {
                let e = acked.entry(u).or_default();
                *e = (*e).max(10 - failures_left);
            }
            Message::Judged {
                verdict: Verdict::Replayed,
            } => {}
            other => panic!("d{u} after the disk has space again: {other:?}"),
        }
    }
    let mut counted = Vec::new();
    for u in 0..USERS {
        counted.push(failures(&admin, u).await);
    }
    drop((admin, fe));
    // A crash now: everything counted was made durable once writes succeeded.
    d.restart().unwrap();
    let admin = d.connect(Role::Admin).await.unwrap();
    for (u, counted) in counted.iter().enumerate() {
        let after = failures(&admin, u).await;
        let want = acked.get(&u).copied().unwrap_or(0);
        assert!(
            after >= want,
            "d{u}: {after} after the restart, {want} acknowledged"
        );
        assert_eq!(
            after, *counted,
            "d{u}: the restart agrees with what was counted"
        );
    }
    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
    assert!(log.contains("journal writes resumed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_on_a_full_disk_ends_no_stream() {
    let Some(fs) = Tmpfs::mount("1m") else { return };
    let data = tempfile::Builder::new().prefix("slsd-").tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let tls_dir = data.path().join("tls").to_str().unwrap().to_owned();
    // The journal has room; stderr (debug: lines for every connection) is on the full tmpfs.
    let args = [
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
            "--tls-dir",
            &tls_dir,
            // A new PKI in a directory given explicitly.
            "--init-tls",
            "--log",
            "debug",
        ][..],
        &NO_LIMITS[..],
    ]
    .concat();
    let slsd = Path::new(env!("CARGO_BIN_EXE_slsd"));
    let d = Daemon::spawn(slsd, &args, fs.path()).unwrap();
    let admin = d.connect(Role::Admin).await.unwrap();
    let ids = enrol_bulk(&admin, &records(5)).await.unwrap();
    fs.fill();
    for round in 0..10 {
        // A new connection each round: its accept and handshake log too.
        let fe = within(d.connect(Role::Frontend)).await;
        let u = round % ids.len();
        let (txn, Challenge::Numeric(q)) =
            within(begin(&fe, &format!("d{u}"), ids[u], ip(u))).await
        else {
            panic!("a numeric challenge")
        };
        let reply = call(
            &fe,
            Message::Answer {
                txn,
                response: wrong(u, &q),
                client: ip(u),
            },
        )
        .await;
        assert!(
            matches!(
                reply,
                Message::Judged {
                    verdict: Verdict::Rejected { .. }
                }
            ),
            "round {round}: {reply:?}"
        );
    }
    assert_eq!(failures(&admin, 0).await, 2);
}
