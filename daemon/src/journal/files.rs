//! The files: names, the record frame, the batch header, reading a snapshot back.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{io, JournalError, Lsn, MAX_RECORD, RECORD_HEADER};

/// A batch header's first bytes.
pub(super) const BATCH_MAGIC: &[u8; 4] = b"SLSB";
/// A batch header: magic, body length u32, first lsn u64, last lsn u64, body crc32c u32,
/// header crc32c u32 (of the 28 bytes before it).
pub(super) const BATCH_HEADER: usize = 32;
/// Most bytes in one batch's body (its length is a u32).
pub(super) const MAX_BATCH: usize = u32::MAX as usize;

pub(super) fn journal_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("journal-{seq:08}.log"))
}

pub(super) fn snapshot_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("snapshot-{seq:08}.snap"))
}

pub(super) fn numbered(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<u64>, JournalError> {
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

/// Starts a batch in an empty queue buffer: room for its header, which [`seal_batch`] fills in
/// when the writer takes the batch.
pub(super) fn open_batch(buf: &mut Vec<u8>) {
    buf.resize(BATCH_HEADER, 0);
}

/// Fills in the header of the batch in `buf` (opened by [`open_batch`], then records up to
/// `last`), so that the batch goes to disk in the same single write as its records.
pub(super) fn seal_batch(buf: &mut [u8], last: Lsn) {
    let Some((head, body)) = buf.split_at_mut_checked(BATCH_HEADER) else {
        return;
    };
    let first = body
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map_or(last, u64::from_le_bytes);
    head[..4].copy_from_slice(BATCH_MAGIC);
    head[4..8].copy_from_slice(&(body.len() as u32).to_le_bytes());
    head[8..16].copy_from_slice(&first.to_le_bytes());
    head[16..24].copy_from_slice(&last.to_le_bytes());
    head[24..28].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    let crc = crc32c::crc32c(&head[..28]);
    head[28..32].copy_from_slice(&crc.to_le_bytes());
}

/// A batch header read back.
pub(super) enum Head {
    /// Fewer bytes than a header remain, and those match the start of one: a torn write.
    Short,
    /// The header does not check.
    Bad(&'static str),
    /// A sound header.
    Sound {
        len: usize,
        first: Lsn,
        last: Lsn,
        body_crc: u32,
    },
}

pub(super) fn parse_head(bytes: &[u8], at: usize) -> Head {
    let rest = bytes.get(at..).unwrap_or_default();
    let Some(h) = rest.get(..BATCH_HEADER) else {
        let n = rest.len().min(BATCH_MAGIC.len());
        return if rest[..n] == BATCH_MAGIC[..n] {
            Head::Short
        } else {
            Head::Bad("no batch header where one must start")
        };
    };
    if &h[..4] != BATCH_MAGIC {
        return Head::Bad("no batch header where one must start");
    }
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let u64_at = |i: usize| (u64::from(u32_at(i + 4)) << 32) | u64::from(u32_at(i));
    if crc32c::crc32c(&h[..28]) != u32_at(28) {
        return Head::Bad("batch header checksum mismatch");
    }
    Head::Sound {
        len: u32_at(4) as usize,
        first: u64_at(8),
        last: u64_at(16),
        body_crc: u32_at(24),
    }
}

pub(super) enum Parsed {
    Record { lsn: Lsn, start: usize, end: usize },
    Truncated,
    BadChecksum,
}

pub(super) fn parse_at(bytes: &[u8], at: usize) -> Parsed {
    let Some(h) = bytes.get(at..).and_then(|r| r.get(..RECORD_HEADER)) else {
        return Parsed::Truncated;
    };
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

pub(super) fn read_all(path: &Path) -> Result<Vec<u8>, JournalError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io("reading", path))?;
    Ok(bytes)
}

/// Reads every record of a snapshot; any damage is an error (a snapshot is written whole,
/// fsynced, then renamed: it has no torn tail). Returns the file's length.
pub(super) fn read_snapshot(
    path: &Path,
    magic: &[u8; 8],
    out: &mut Vec<Vec<u8>>,
) -> Result<u64, JournalError> {
    let bytes = read_all(path)?;
    let damaged = |offset: usize, why: &str| JournalError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        why: why.to_string(),
        advice: "a snapshot holds the state before its journal; restore it from a backup \
                 (slsd cannot start without it)"
            .into(),
    };
    if bytes.get(..magic.len()) != Some(&magic[..]) {
        return Err(damaged(0, "bad header"));
    }
    let mut at = magic.len();
    let mut expect = 1;
    while at < bytes.len() {
        match parse_at(&bytes, at) {
            Parsed::Record { lsn, start, end } if lsn == expect => {
                out.push(bytes[start..end].to_vec());
                expect += 1;
                at = end;
            }
            Parsed::Record { .. } => return Err(damaged(at, "record out of sequence")),
            Parsed::Truncated => return Err(damaged(at, "record cut short")),
            Parsed::BadChecksum => return Err(damaged(at, "record checksum mismatch")),
        }
    }
    Ok(bytes.len() as u64)
}

pub(super) fn rewrite_header(path: &Path, magic: &[u8; 8]) -> Result<(), JournalError> {
    let mut f = File::create(path).map_err(io("creating", path))?;
    f.write_all(magic).map_err(io("writing", path))?;
    f.sync_all().map_err(io("syncing", path))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))
}
