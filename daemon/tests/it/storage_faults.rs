//! What a data centre does to the data directory (issue 16, items 1 and 2): a flipped byte in
//! every field of a middle and of the last write batch, each kind of file deleted, a second
//! slsd on the same directory. Each must refuse to start naming the file (or, for a torn final
//! write only, recover by itself), and `--repair` must keep everything before the damage.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sls_daemon::journal::*;

fn rec(i: u64) -> Vec<u8> {
    format!("fault record {i} {}", "y".repeat((i % 13) as usize)).into_bytes()
}

fn open(dir: &Path, repair: bool) -> Result<(Journal, Replay), JournalError> {
    let mut c = JournalConfig::new(dir);
    c.repair = repair;
    Journal::open(c)
}

/// `n` records, each acknowledged alone (one batch each); returns the journal and each
/// batch's offset.
fn journal_of_batches(dir: &Path, n: u64) -> (PathBuf, Vec<usize>) {
    let (s, _) = open(dir, false).unwrap();
    for i in 0..n {
        s.wait_durable(s.append(&rec(i)).unwrap()).unwrap();
    }
    s.close();
    let mut at = 8;
    let mut starts = Vec::new();
    for i in 0..n {
        starts.push(at);
        at += 32 + 16 + rec(i).len();
    }
    let path = dir.join("journal-00000000.log");
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, at);
    (path, starts)
}

/// Offsets within a batch of each field: the batch header's, then its record's.
const FIELDS: [(&str, usize); 10] = [
    ("batch magic", 0),
    ("batch length", 4),
    ("batch first lsn", 8),
    ("batch last lsn", 16),
    ("batch body crc", 24),
    ("batch header crc", 28),
    ("record length", 32),
    ("record crc", 36),
    ("record lsn", 40),
    ("record payload", 48 + 2),
];

fn refused(dir: &Path) -> JournalError {
    match open(dir, false) {
        Err(e) => e,
        Ok((s, r)) => {
            s.close();
            panic!(
                "started with {} records and tail {:?}",
                r.records.len(),
                r.tail
            )
        }
    }
}

/// Issue 16, first "Why": a flipped bit in a middle record's length (and in every other
/// field, of a middle and of the last batch) is damage, never a torn tail: refused naming the
/// file and the batch's offset, nothing cut; `--repair` keeps every batch before it and saves
/// the file aside first.
#[test]
fn a_flipped_byte_in_any_field_of_any_batch_refuses_and_repair_keeps_what_precedes() {
    const N: u64 = 6;
    for (which, batch) in [("middle", 2usize), ("last", N as usize - 1)] {
        for (field, off) in FIELDS {
            let dir = tempfile::tempdir().unwrap();
            let (path, starts) = journal_of_batches(dir.path(), N);
            let mut bytes = std::fs::read(&path).unwrap();
            let len = bytes.len();
            bytes[starts[batch] + off] ^= 0x04;
            std::fs::write(&path, &bytes).unwrap();
            let ctx = format!("{field} of the {which} batch");
            match refused(dir.path()) {
                JournalError::Corrupt {
                    path: p, offset, ..
                } => {
                    assert_eq!(p, path, "{ctx}");
                    assert_eq!(offset, starts[batch] as u64, "{ctx}");
                }
                e => panic!("{ctx}: {e}"),
            }
            let msg = refused(dir.path()).to_string();
            assert!(
                msg.contains("journal-00000000.log") && msg.contains("--repair"),
                "{ctx}: {msg}"
            );
            // Nothing was cut on the way.
            assert_eq!(std::fs::read(&path).unwrap().len(), len, "{ctx}");
            let (s, r) = open(dir.path(), true).unwrap();
            assert_eq!(
                r.records,
                (0..batch as u64).map(rec).collect::<Vec<_>>(),
                "{ctx}"
            );
            let fix = &r.repaired[0];
            assert_eq!(fix.kind, TailDamageKind::Damaged);
            assert_eq!(std::fs::read(fix.saved.as_ref().unwrap()).unwrap(), bytes);
            // The repaired journal goes on, and the next start needs no repair.
            s.wait_durable(s.append(b"after").unwrap()).unwrap();
            s.close();
            let (s, r) = open(dir.path(), false).unwrap();
            s.close();
            assert_eq!(r.records.len(), batch + 1, "{ctx}");
        }
    }
}

#[test]
fn a_flipped_byte_in_the_journal_header_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = journal_of_batches(dir.path(), 3);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    match refused(dir.path()) {
        JournalError::Corrupt {
            path: p, offset, ..
        } => assert_eq!((p, offset), (path, 0)),
        e => panic!("{e}"),
    }
}

/// A torn final write (the last batch short of its declared length) is the one damage that
/// recovers by itself, at every cut; nothing acknowledged before it is lost.
#[test]
fn only_a_torn_final_batch_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (path, starts) = journal_of_batches(dir.path(), 4);
    let full = std::fs::read(&path).unwrap();
    for cut in starts[3] + 1..full.len() {
        std::fs::write(&path, &full[..cut]).unwrap();
        let (s, r) = open(dir.path(), false).unwrap();
        s.close();
        assert_eq!(r.records, (0..3).map(rec).collect::<Vec<_>>(), "cut {cut}");
        assert_eq!(r.tail.unwrap().offset, starts[3] as u64);
    }
    // A short batch that is not the newest journal's last is damage.
    let dir = tempfile::tempdir().unwrap();
    let (path, starts) = journal_of_batches(dir.path(), 4);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(starts[2] + 40);
    bytes.extend_from_slice(&full[starts[3]..]);
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(refused(dir.path()), JournalError::Corrupt { .. }));
}

/// Journals 1, 2, 3 after snapshot 1, each with records.
fn segmented(dir: &Path) -> u64 {
    let (s, _) = open(dir, false).unwrap();
    let mut i = 0;
    let mut add = |s: &Journal, n: u64| {
        for _ in 0..n {
            s.wait_durable(s.append(&rec(i)).unwrap()).unwrap();
            i += 1;
        }
    };
    add(&s, 5);
    let upto = 5;
    s.snapshot(|| (0..upto).map(rec).collect()).unwrap();
    add(&s, 5);
    s.rotate().unwrap();
    add(&s, 5);
    s.rotate().unwrap();
    add(&s, 5);
    s.close();
    for f in [
        "snapshot-00000001.snap",
        "journal-00000001.log",
        "journal-00000002.log",
        "journal-00000003.log",
        "MANIFEST",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    i
}

/// Issue 16, second "Why": a missing snapshot, middle journal or newest journal refuses to
/// start naming the file (the old code started without them).
#[test]
fn a_deleted_file_refuses_naming_it() {
    for (file, repairable) in [
        ("snapshot-00000001.snap", false),
        ("journal-00000001.log", false),
        ("journal-00000002.log", false),
        ("journal-00000003.log", true),
        ("MANIFEST", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let total = segmented(dir.path());
        std::fs::remove_file(dir.path().join(file)).unwrap();
        let e = refused(dir.path());
        assert!(matches!(e, JournalError::Missing { .. }), "{file}: {e}");
        assert!(e.to_string().contains(file), "{file}: {e}");
        match open(dir.path(), true) {
            Ok((s, r)) => {
                s.close();
                assert!(repairable, "{file}: --repair must not invent a lost file");
                let kept = if file == "MANIFEST" { total } else { total - 5 };
                assert_eq!(r.records, (0..kept).map(rec).collect::<Vec<_>>(), "{file}");
                let (s, _) = open(dir.path(), false).unwrap();
                s.close();
            }
            Err(e) => assert!(!repairable, "{file}: {e}"),
        }
    }
}

/// A closed journal cut at a batch boundary (which reads as clean) is short of what the
/// manifest says it holds.
#[test]
fn a_closed_journal_cut_short_refuses() {
    let dir = tempfile::tempdir().unwrap();
    segmented(dir.path());
    let p = dir.path().join("journal-00000002.log");
    let bytes = std::fs::read(&p).unwrap();
    let one = 32 + 16 + rec(14).len();
    std::fs::write(&p, &bytes[..bytes.len() - one]).unwrap();
    let e = refused(dir.path());
    assert!(e.to_string().contains("journal-00000002.log"), "{e}");
}

/// A snapshot cut at a record boundary reads as clean but is short of the manifest's count.
#[test]
fn a_short_snapshot_refuses() {
    let dir = tempfile::tempdir().unwrap();
    segmented(dir.path());
    let p = dir.path().join("snapshot-00000001.snap");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 16 - rec(4).len()]).unwrap();
    let e = refused(dir.path());
    assert!(e.to_string().contains("snapshot-00000001.snap"), "{e}");
}

/// A directory of the first format (no manifest, `SLSJ0001` records) is adopted when
/// complete; the old journal is read and new records go to a new one.
#[test]
fn an_old_format_directory_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"SLSJ0001".to_vec();
    for i in 0..4u64 {
        let p = rec(i);
        let lsn = i + 1;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&lsn.to_le_bytes()), &p);
        bytes.extend_from_slice(&(p.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes.extend_from_slice(&lsn.to_le_bytes());
        bytes.extend_from_slice(&p);
    }
    std::fs::write(dir.path().join("journal-00000000.log"), &bytes).unwrap();
    let (s, r) = open(dir.path(), false).unwrap();
    assert_eq!(r.records, (0..4).map(rec).collect::<Vec<_>>());
    assert_eq!(s.append(&rec(4)).unwrap(), 5);
    s.wait_durable(5).unwrap();
    s.close();
    assert!(dir.path().join("MANIFEST").exists());
    let (s, r) = open(dir.path(), false).unwrap();
    s.close();
    assert_eq!(r.records, (0..5).map(rec).collect::<Vec<_>>());
    // A flipped length in the old format's middle is refused too (nothing sound is skipped).
    let dir = tempfile::tempdir().unwrap();
    let mut bad = bytes.clone();
    bad[8 + 1] ^= 0x01; // the first record's length
    std::fs::write(dir.path().join("journal-00000000.log"), &bad).unwrap();
    assert!(matches!(refused(dir.path()), JournalError::Corrupt { .. }));
}

/// Runs slsd with `args` until it exits (at most 60 s): its status and stderr.
fn run_to_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_slsd"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status, err);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("slsd {args:?} did not exit: it started");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 16, third "Why": a second slsd on the same data directory refuses naming the
/// holder's pid; after SIGKILL of the first, a new one starts.
#[test]
fn a_second_slsd_on_one_data_dir_refuses_and_a_crash_releases_the_lock() {
    let mut first = crate::slsd(&["--log", "warn"]);
    let dir = first.data_dir.clone();
    let pid = first.pid().unwrap();
    let dir_s = dir.to_str().unwrap();
    let (status, err) = run_to_exit(&["--listen", "127.0.0.1:0", "--data-dir", dir_s]);
    assert!(!status.success());
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert!(err.contains(dir_s), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    first.crash(); // SIGKILL: the kernel drops the lock
    first.restart().unwrap();
    assert_ne!(first.pid(), Some(pid));
}

/// The real slsd refuses a journal flipped in a middle record's length, naming the file and
/// `--repair`, and starts with `--repair`.
#[test]
fn slsd_refuses_a_damaged_journal_and_starts_with_repair() {
    let mut d = crate::slsd(&["--log", "warn"]);
    d.crash();
    let dir = d.data_dir.clone();
    let journal = dir.join("journal");
    // Records the daemon cannot decode would refuse later on; the damage is in the first
    // batch, so the repair keeps none of them.
    std::fs::remove_dir_all(&journal).unwrap();
    let (path, starts) = journal_of_batches(&journal, 4);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[starts[0] + 32] ^= 0x02; // the first record's length
    std::fs::write(&path, &bytes).unwrap();
    let dir_s = dir.to_str().unwrap();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir_s,
        "--log",
        "warn",
    ];
    let (status, err) = run_to_exit(&args);
    assert!(!status.success());
    assert!(
        err.contains("journal-00000000.log") && err.contains("--repair"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "nothing cut without --repair"
    );
    let mut repaired = sls_loadgen::daemon::Daemon::start(
        Path::new(env!("CARGO_BIN_EXE_slsd")),
        &dir,
        &["--log", "warn", "--repair"],
    )
    .unwrap(); // it listens: started
    repaired.crash();
    let aside = std::fs::read_dir(&journal)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".damaged-")
        })
        .count();
    assert_eq!(aside, 1, "the damaged journal was copied aside");
}
