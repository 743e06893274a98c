//! Opening: what the manifest says the directory holds, checked against what it holds, read
//! back; a torn final batch cut off (its bytes saved aside first); anything else that does not
//! check refused, or with `--repair` copied aside and cut.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::files::{
    journal_path, numbered, read_all, read_snapshot, rewrite_header, snapshot_path, sync_dir,
};
use super::manifest::{self, Manifest, SegmentEntry, SnapshotEntry};
use super::replay::{aside, scan, End};
use super::{
    io, JournalError, Lsn, Replay, TailDamage, TailDamageKind, JOURNAL_MAGIC, JOURNAL_MAGIC_V1,
    SNAPSHOT_MAGIC,
};

const RESTORE_SNAPSHOT: &str = "it holds the state before its journal: restore it from a backup \
                                (slsd cannot start without it)";
const REBUILD: &str = "restore it from a backup, or start once with --repair to rebuild it from \
                       the files present";

/// What opening found.
pub(super) struct Recovered {
    pub replay: Replay,
    pub manifest: Manifest,
    pub next_lsn: Lsn,
}

/// What to read: from the manifest (with what each file must hold) or derived from the files.
struct Plan {
    snapshot: Option<(u64, Option<SnapshotEntry>)>,
    /// Number, first and last sequence numbers (when known).
    segments: Vec<(u64, Option<Lsn>, Option<Lsn>)>,
    /// A new directory: its first journal is created.
    fresh: bool,
}

impl Plan {
    fn named(m: &Manifest) -> Plan {
        Plan {
            snapshot: m.snapshot.map(|s| (s.seq, Some(s))),
            segments: m
                .segments
                .iter()
                .map(|g| (g.seq, Some(g.first), g.last))
                .collect(),
            fresh: false,
        }
    }
}

fn missing(path: PathBuf, why: impl Into<String>, advice: impl Into<String>) -> JournalError {
    JournalError::Missing {
        path,
        why: why.into(),
        advice: advice.into(),
    }
}

/// Whether every journal holding records is in the old format (a directory written before
/// the manifest existed, which may be adopted without one).
fn old_format(dir: &Path, journals: &[u64]) -> Result<bool, JournalError> {
    for s in journals {
        let bytes = read_all(&journal_path(dir, *s))?;
        if bytes.len() > JOURNAL_MAGIC.len() && bytes.get(..8) != Some(&JOURNAL_MAGIC_V1[..]) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The plan from the files alone: the newest snapshot and consecutive journals from its
/// number (from 0 without one, whose first record must be 1).
fn derive(dir: &Path, journals: &[u64], snaps: &[u64]) -> Result<Plan, JournalError> {
    let base = snaps.last().copied().unwrap_or(0);
    let mut segments = Vec::new();
    let mut want = base;
    for s in journals.iter().copied().filter(|s| *s >= base) {
        if s != want {
            return Err(missing(
                journal_path(dir, want),
                format!("journals run from {base} to {s} without it (no MANIFEST)"),
                "restore it from a backup",
            ));
        }
        segments.push((s, None, None));
        want = s.saturating_add(1);
    }
    if segments.is_empty() {
        return Err(missing(
            journal_path(dir, base),
            "no journal follows the snapshot (no MANIFEST)",
            "restore it from a backup",
        ));
    }
    if snaps.is_empty() {
        segments[0].1 = Some(1);
    }
    Ok(Plan {
        snapshot: snaps.last().map(|s| (*s, None)),
        segments,
        fresh: false,
    })
}

fn cut_to(path: &Path, offset: usize) -> Result<(), JournalError> {
    if offset < JOURNAL_MAGIC.len() {
        return rewrite_header(path, JOURNAL_MAGIC);
    }
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("opening", path))?;
    f.set_len(offset as u64).map_err(io("truncating", path))?;
    f.sync_all().map_err(io("syncing", path))
}

/// Opens the directory's content: see the module doc.
pub(super) fn recover(dir: &Path, repair: bool) -> Result<Recovered, JournalError> {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let journals = numbered(dir, "journal-", ".log")?;
    let snaps = numbered(dir, "snapshot-", ".snap")?;
    let mpath = manifest::path(dir);
    let loaded = Manifest::load(dir)?;
    let on_disk = match &loaded {
        Some(Ok(m)) => Some(m.clone()),
        _ => None,
    };
    let plan = match loaded {
        Some(Ok(m)) => Plan::named(&m),
        Some(Err(why)) if !repair => {
            return Err(JournalError::Corrupt {
                path: mpath,
                offset: 0,
                why,
                advice: REBUILD.into(),
            })
        }
        None if journals.is_empty() && snaps.is_empty() => Plan {
            snapshot: None,
            segments: vec![(0, Some(1), None)],
            fresh: true,
        },
        None if !repair && !old_format(dir, &journals)? => {
            return Err(missing(
                mpath,
                "the journals were written by a slsd that keeps one, and without it a missing \
                 newest journal would go unnoticed",
                REBUILD,
            ))
        }
        _ => derive(dir, &journals, &snaps)?,
    };
    let newest_seq = plan.segments.last().map_or(0, |g| g.0);
    // A journal newer than the plan: empty, the leftover of a rotation the crash interrupted.
    for s in journals.iter().copied().filter(|s| *s > newest_seq) {
        let p = journal_path(dir, s);
        let len = std::fs::metadata(&p).map_err(io("reading", &p))?.len();
        if len > JOURNAL_MAGIC.len() as u64 {
            return Err(JournalError::Corrupt {
                path: p,
                offset: 0,
                why: format!("it holds records but MANIFEST ends at journal {newest_seq}"),
                advice: "move it away if it does not belong to this directory, or restore the \
                         MANIFEST that names it"
                    .into(),
            });
        }
        std::fs::remove_file(&p).map_err(io("removing", &p))?;
    }
    let mut replay = Replay::default();
    let mut out = Manifest::default();
    if let Some((seq, want)) = plan.snapshot {
        let p = snapshot_path(dir, seq);
        if !p.exists() {
            return Err(missing(p, "MANIFEST names it", RESTORE_SNAPSHOT));
        }
        let bytes = read_snapshot(&p, SNAPSHOT_MAGIC, &mut replay.records)?;
        let records = replay.records.len() as u64;
        if let Some(w) = want.filter(|w| (w.records, w.bytes) != (records, bytes)) {
            return Err(JournalError::Corrupt {
                path: p,
                offset: bytes.min(w.bytes),
                why: format!(
                    "it holds {records} records in {bytes} bytes, MANIFEST says {} in {}",
                    w.records, w.bytes
                ),
                advice: RESTORE_SNAPSHOT.into(),
            });
        }
        replay.from_snapshot = replay.records.len();
        out.snapshot = Some(SnapshotEntry {
            seq,
            records,
            bytes,
        });
    }
    let mut expect: Option<Lsn> = None;
    let mut newest_v1 = false;
    let n = plan.segments.len();
    for (i, &(seq, first, last)) in plan.segments.iter().enumerate() {
        let newest = i + 1 == n;
        let p = journal_path(dir, seq);
        expect = expect.or(first);
        if !p.exists() {
            let from = expect.map_or(String::new(), |e| format!(" (records from {e} on)"));
            if !(newest && (plan.fresh || repair)) {
                let what = if newest { "newest journal" } else { "journal" };
                let advice = if newest {
                    "restore it from a backup, or start once with --repair to go on without \
                     its records"
                } else {
                    "restore it from a backup"
                };
                return Err(missing(
                    p,
                    format!("MANIFEST names it as the {what}{from}"),
                    advice,
                ));
            }
            if !plan.fresh {
                replay.repaired.push(TailDamage {
                    file: p.clone(),
                    offset: 0,
                    bytes_dropped: 0,
                    kind: TailDamageKind::Missing,
                    saved: None,
                });
            }
            rewrite_header(&p, JOURNAL_MAGIC)?;
            sync_dir(dir)?;
        }
        let bytes = read_all(&p)?;
        let before = replay.records.len();
        let sc = scan(&bytes, &mut expect, &mut replay.records);
        newest_v1 = sc.v1;
        let count = (replay.records.len() - before) as u64;
        let seg_first = first
            .or_else(|| expect.map(|e| e.saturating_sub(count)))
            .unwrap_or(1);
        expect = expect.or(Some(seg_first));
        let mut damage = None;
        match sc.end {
            End::Clean => {}
            End::Torn { offset } if newest => {
                // A write that never completed, so never acknowledged: cut, bytes kept aside.
                let saved = aside(&p, "torn", unix);
                let mut f = std::fs::File::create(&saved).map_err(io("creating", &saved))?;
                f.write_all(bytes.get(offset..).unwrap_or_default())
                    .and_then(|()| f.sync_all())
                    .map_err(io("writing", &saved))?;
                cut_to(&p, offset)?;
                replay.tail = Some(TailDamage {
                    file: p.clone(),
                    offset: offset as u64,
                    bytes_dropped: (bytes.len() - offset) as u64,
                    kind: TailDamageKind::Truncated,
                    saved: Some(saved),
                });
            }
            End::Torn { offset } => {
                damage = Some((
                    offset,
                    "a batch cut short in a journal that is not the newest".into(),
                ))
            }
            End::Damaged { offset, why } => damage = Some((offset, why)),
        }
        let next = expect.unwrap_or(seg_first);
        if let (None, Some(l)) = (&damage, last) {
            if l.checked_add(1) != Some(next) {
                damage = Some((
                    bytes.len(),
                    format!(
                        "it ends before sequence number {next}, MANIFEST says it ends at {l}: \
                         records are missing from its end"
                    ),
                ));
            }
        }
        if let Some((offset, why)) = damage {
            let later: Vec<u64> = plan.segments[i + 1..].iter().map(|g| g.0).collect();
            let lost = match (later.first(), later.last()) {
                (Some(a), Some(b)) => format!(" and journals {a} to {b}"),
                _ => String::new(),
            };
            if !repair {
                return Err(JournalError::Corrupt {
                    path: p,
                    offset: offset as u64,
                    why,
                    advice: format!(
                        "this is not a torn final write, so slsd will not guess. Restore the file \
                         from a backup, or start once with --repair to keep the {} records before \
                         the damage (the file is copied aside first) and set aside its {} bytes \
                         from there{lost}",
                        replay.records.len(),
                        bytes.len().saturating_sub(offset)
                    ),
                });
            }
            let saved = aside(&p, "damaged", unix);
            std::fs::copy(&p, &saved).map_err(io("copying aside", &p))?;
            cut_to(&p, offset)?;
            for s in later {
                let q = journal_path(dir, s);
                if q.exists() {
                    std::fs::rename(&q, aside(&q, "damaged", unix)).map_err(io("renaming", &q))?;
                }
            }
            sync_dir(dir)?;
            replay.repaired.push(TailDamage {
                file: p,
                offset: offset as u64,
                bytes_dropped: (bytes.len().saturating_sub(offset)) as u64,
                kind: TailDamageKind::Damaged,
                saved: Some(saved),
            });
            out.segments.push(SegmentEntry {
                seq,
                first: seg_first,
                last: None,
            });
            break;
        }
        out.segments.push(SegmentEntry {
            seq,
            first: seg_first,
            last: (!newest).then(|| next.saturating_sub(1)),
        });
    }
    let next_lsn = expect.unwrap_or(1);
    if newest_v1 {
        // New records go to a journal of the current format.
        let seq = out.segments.last().map_or(0, |g| g.seq + 1);
        rewrite_header(&journal_path(dir, seq), JOURNAL_MAGIC)?;
        sync_dir(dir)?;
        out.push(seq, next_lsn.saturating_sub(1));
    }
    // Written only when it changed: a daemon restarted on a full disk with nothing to repair
    // must not be stopped by a manifest it need not write.
    if on_disk.as_ref() != Some(&out) {
        out.store(dir)?;
    }
    // Files older than the snapshot: made redundant by it.
    let base = out.snapshot.map_or(0, |s| s.seq);
    for s in journals.iter().filter(|s| **s < base) {
        let _ = std::fs::remove_file(journal_path(dir, *s));
    }
    for s in snaps.iter().filter(|s| **s < base) {
        let _ = std::fs::remove_file(snapshot_path(dir, *s));
    }
    Ok(Recovered {
        replay,
        manifest: out,
        next_lsn,
    })
}
