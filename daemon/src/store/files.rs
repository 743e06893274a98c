//! The files: names, the record frame, reading a journal or snapshot back.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{io, Lsn, StoreError, TailDamage, TailDamageKind, MAX_RECORD, RECORD_HEADER};

pub(super) fn journal_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("journal-{seq:08}.log"))
}

pub(super) fn snapshot_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("snapshot-{seq:08}.snap"))
}

pub(super) fn numbered(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<u64>, StoreError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io("listing", dir))? {
        let e = e.map_err(io("listing", dir))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
        {
            if let Ok(n) = n.parse() {
                out.push(n);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

pub(super) fn frame(lsn: Lsn, payload: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32c::crc32c(&lsn.to_le_bytes());
    crc = crc32c::crc32c_append(crc, payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
}

pub(super) enum Parsed {
    Record { lsn: Lsn, start: usize, end: usize },
    Truncated,
    BadChecksum,
}

pub(super) fn parse_at(bytes: &[u8], at: usize) -> Parsed {
    if bytes.len() - at < RECORD_HEADER {
        return Parsed::Truncated;
    }
    let h = &bytes[at..at + RECORD_HEADER];
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let lsn = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    if len > MAX_RECORD {
        return Parsed::BadChecksum;
    }
    let start = at + RECORD_HEADER;
    let Some(end) = start.checked_add(len).filter(|e| *e <= bytes.len()) else {
        return Parsed::Truncated;
    };
    let mut c = crc32c::crc32c(&lsn.to_le_bytes());
    c = crc32c::crc32c_append(c, &bytes[start..end]);
    if c != crc {
        return Parsed::BadChecksum;
    }
    Parsed::Record { lsn, start, end }
}

/// Reads every record of a file. `last` says whether a damaged tail may be cut off.
pub(super) fn read_file(
    path: &Path,
    magic: &[u8; 8],
    last: bool,
    out: &mut Vec<Vec<u8>>,
    expect_lsn: &mut Option<Lsn>,
) -> Result<Option<TailDamage>, StoreError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io("reading", path))?;
    if bytes.len() < magic.len() || &bytes[..magic.len()] != magic {
        if last && bytes.len() < magic.len() && magic[..bytes.len()] == bytes[..] {
            // A journal created but its header not fully written: nothing was in it.
            rewrite_header(path, magic)?;
            return Ok(None);
        }
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            why: "bad header",
        });
    }
    let mut at = magic.len();
    while at < bytes.len() {
        match parse_at(&bytes, at) {
            Parsed::Record { lsn, start, end } => {
                if let Some(expected) = expect_lsn {
                    if lsn != *expected {
                        return Err(StoreError::Corrupt {
                            path: path.to_path_buf(),
                            offset: at as u64,
                            why: "sequence gap",
                        });
                    }
                }
                *expect_lsn = Some(lsn + 1);
                out.push(bytes[start..end].to_vec());
                at = end;
            }
            damage => {
                let kind = match damage {
                    Parsed::Truncated => TailDamageKind::Truncated,
                    _ => TailDamageKind::ChecksumMismatch,
                };
                // Damage is a tail only if no sound record follows it.
                let len = u32::from_le_bytes(
                    bytes[at..(at + 4).min(bytes.len())]
                        .try_into()
                        .unwrap_or([0; 4]),
                ) as usize;
                let next = at.saturating_add(RECORD_HEADER).saturating_add(len);
                let more =
                    next < bytes.len() && matches!(parse_at(&bytes, next), Parsed::Record { .. });
                if !last || more {
                    return Err(StoreError::Corrupt {
                        path: path.to_path_buf(),
                        offset: at as u64,
                        why: "damaged record before the end",
                    });
                }
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io("opening", path))?;
                f.set_len(at as u64).map_err(io("truncating", path))?;
                f.sync_all().map_err(io("syncing", path))?;
                return Ok(Some(TailDamage {
                    file: path.to_path_buf(),
                    offset: at as u64,
                    bytes_dropped: (bytes.len() - at) as u64,
                    kind,
                }));
            }
        }
    }
    Ok(None)
}

pub(super) fn rewrite_header(path: &Path, magic: &[u8; 8]) -> Result<(), StoreError> {
    let mut f = File::create(path).map_err(io("creating", path))?;
    f.write_all(magic).map_err(io("writing", path))?;
    f.sync_all().map_err(io("syncing", path))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))
}
