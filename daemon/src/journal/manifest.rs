//! `MANIFEST`: what the directory must hold. A text file, replaced atomically (temporary
//! file, fsync, rename, fsync of the directory) on every rotation and snapshot:
//!
//! ```text
//! SLSM0001
//! snapshot 7 records 1200 bytes 54321
//! journal 7 first 1 last 500
//! journal 8 first 501
//! crc32c 1a2b3c4d
//! ```
//!
//! The journals are consecutive numbers from the snapshot's (or 0 without one); every one but
//! the newest is closed, with its last sequence number (`last` = `first` - 1 for an empty
//! one). The last line is the crc32c of the lines before it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::files::{journal_path, rewrite_header, sync_dir};
use super::{io, Inner, JournalError, Lsn, JOURNAL_MAGIC};

const MAGIC: &str = "SLSM0001";
/// The manifest's file name in the store's directory.
pub const MANIFEST: &str = "MANIFEST";

/// The snapshot a manifest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SnapshotEntry {
    pub seq: u64,
    pub records: u64,
    pub bytes: u64,
}

/// A journal segment a manifest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SegmentEntry {
    pub seq: u64,
    pub first: Lsn,
    /// `None` for the newest, still written.
    pub last: Option<Lsn>,
}

/// What the directory must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Manifest {
    pub snapshot: Option<SnapshotEntry>,
    pub segments: Vec<SegmentEntry>,
}

pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST)
}

impl Manifest {
    fn render(&self) -> String {
        let mut s = format!("{MAGIC}\n");
        if let Some(n) = &self.snapshot {
            s += &format!(
                "snapshot {} records {} bytes {}\n",
                n.seq, n.records, n.bytes
            );
        }
        for g in &self.segments {
            s += &match g.last {
                Some(last) => format!("journal {} first {} last {last}\n", g.seq, g.first),
                None => format!("journal {} first {}\n", g.seq, g.first),
            };
        }
        let crc = crc32c::crc32c(s.as_bytes());
        s + &format!("crc32c {crc:08x}\n")
    }

    fn parse(text: &str) -> Result<Manifest, String> {
        let (body, crc_line) = text
            .trim_end_matches('\n')
            .rsplit_once('\n')
            .ok_or("too short")?;
        let body = format!("{body}\n");
        let crc = crc_line
            .strip_prefix("crc32c ")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or("no checksum line")?;
        if crc32c::crc32c(body.as_bytes()) != crc {
            return Err("checksum mismatch".into());
        }
        let mut lines = body.lines();
        if lines.next() != Some(MAGIC) {
            return Err("bad header".into());
        }
        let mut m = Manifest::default();
        for line in lines {
            let w: Vec<&str> = line.split(' ').collect();
            let num = |i: usize| -> Result<u64, String> {
                w.get(i)
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| format!("bad line {line:?}"))
            };
            match (w.first(), w.len()) {
                (Some(&"snapshot"), 6) if m.snapshot.is_none() && m.segments.is_empty() => {
                    m.snapshot = Some(SnapshotEntry {
                        seq: num(1)?,
                        records: num(3)?,
                        bytes: num(5)?,
                    });
                }
                (Some(&"journal"), 4 | 6) => m.segments.push(SegmentEntry {
                    seq: num(1)?,
                    first: num(3)?,
                    last: if w.len() == 6 { Some(num(5)?) } else { None },
                }),
                _ => return Err(format!("bad line {line:?}")),
            }
        }
        m.check()?;
        Ok(m)
    }

    /// The invariants: consecutive journals from the snapshot's number, continuous sequence
    /// numbers, only the newest open.
    fn check(&self) -> Result<(), String> {
        let base = self.snapshot.map_or(0, |s| s.seq);
        let Some(newest) = self.segments.last() else {
            return Err("names no journal".into());
        };
        if newest.last.is_some() {
            return Err("its newest journal is closed".into());
        }
        let mut want_seq = base;
        let mut want_first: Option<Lsn> = None;
        for g in &self.segments {
            if g.seq != want_seq || g.first == 0 || want_first.is_some_and(|f| f != g.first) {
                return Err(format!("journal {} does not follow the one before", g.seq));
            }
            want_seq = g.seq.checked_add(1).ok_or("journal number overflows")?;
            want_first = match g.last {
                Some(last) if last.checked_add(1).is_some_and(|n| n >= g.first) => Some(last + 1),
                Some(_) => return Err(format!("journal {} ends before it starts", g.seq)),
                None => None,
            };
        }
        Ok(())
    }

    /// Reads the manifest: `None` if there is none, the reason if it is damaged.
    pub(super) fn load(dir: &Path) -> Result<Option<Result<Manifest, String>>, JournalError> {
        let p = path(dir);
        match std::fs::read(&p) {
            Ok(bytes) => Ok(Some(
                String::from_utf8(bytes)
                    .map_err(|_| "not text".to_string())
                    .and_then(|t| Manifest::parse(&t)),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &p)(e)),
        }
    }

    /// Replaces the manifest atomically.
    pub(super) fn store(&self, dir: &Path) -> Result<(), JournalError> {
        let tmp = dir.join("MANIFEST.tmp");
        let mut f = File::create(&tmp).map_err(io("creating", &tmp))?;
        f.write_all(self.render().as_bytes())
            .map_err(io("writing", &tmp))?;
        f.sync_all().map_err(io("syncing", &tmp))?;
        let p = path(dir);
        std::fs::rename(&tmp, &p).map_err(io("renaming", &p))?;
        sync_dir(dir)
    }

    /// Closes the newest journal at `last` and opens journal `seq` after it.
    pub(super) fn push(&mut self, seq: u64, last: Lsn) {
        if let Some(g) = self.segments.last_mut() {
            g.last = Some(last);
        }
        self.segments.push(SegmentEntry {
            seq,
            first: last + 1,
            last: None,
        });
    }
}

/// Starts journal `seq` (the one before it ends at `last`): the file first, then the
/// manifest, so that a crash in between leaves only an empty journal the manifest does not
/// name, which the next start ignores.
pub(super) fn new_segment(inner: &Inner, seq: u64, last: Lsn) -> Result<PathBuf, JournalError> {
    let dir = &inner.config.dir;
    let p = journal_path(dir, seq);
    rewrite_header(&p, JOURNAL_MAGIC)?;
    sync_dir(dir)?;
    let mut m = inner.manifest.lock();
    let before = m.clone();
    m.push(seq, last);
    if let Err(e) = m.store(dir) {
        // The current journal stays in use: the manifest in memory must keep saying so.
        *m = before;
        return Err(e);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let mut m = Manifest {
            snapshot: Some(SnapshotEntry {
                seq: 3,
                records: 10,
                bytes: 400,
            }),
            segments: vec![SegmentEntry {
                seq: 3,
                first: 7,
                last: None,
            }],
        };
        m.push(4, 6); // an empty journal 3
        m.push(5, 20);
        let text = m.render();
        assert_eq!(Manifest::parse(&text), Ok(m));
        assert!(Manifest::parse(&text.replace("first 7", "first 8")).is_err());
        let bad = Manifest {
            snapshot: None,
            segments: vec![SegmentEntry {
                seq: 1,
                first: 1,
                last: None,
            }],
        };
        assert!(Manifest::parse(&bad.render()).is_err(), "must start at 0");
    }
}
