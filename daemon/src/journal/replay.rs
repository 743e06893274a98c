//! Reading one journal segment back: its records, and how it ends.
//!
//! The rule that decides a torn tail (see the store's doc): only a final batch whose sound
//! header declares more bytes than the file holds (or a header cut short) is a torn write,
//! never acknowledged. Everything else that does not check (a header or body checksum, a
//! record inside a sound batch, a sequence number) is damage, wherever it is.

use std::path::Path;

use super::files::{parse_at, parse_head, Head, Parsed, BATCH_HEADER};
use super::{Lsn, JOURNAL_MAGIC, JOURNAL_MAGIC_V1};

/// How a segment ends.
#[derive(Debug)]
pub(super) enum End {
    /// Every byte is a sound record.
    Clean,
    /// The final batch is shorter than its header declares (or its header is cut short): a
    /// write that never completed. The sound part ends at `offset`.
    Torn { offset: usize },
    /// Damage at `offset` (the sound part ends there).
    Damaged { offset: usize, why: String },
}

/// A segment read back.
#[derive(Debug)]
pub(super) struct Scan {
    /// Whether it is in the old format (`SLSJ0001`, records without batches).
    pub v1: bool,
    /// How it ends.
    pub end: End,
}

/// Reads the records of `bytes` (a segment's content) into `out`. `expect` is the lsn the
/// first record must have (if known) and is left at the one after the last record read.
pub(super) fn scan(bytes: &[u8], expect: &mut Option<Lsn>, out: &mut Vec<Vec<u8>>) -> Scan {
    let magic = bytes.get(..JOURNAL_MAGIC.len());
    if magic == Some(&JOURNAL_MAGIC[..]) {
        Scan {
            v1: false,
            end: scan_v2(bytes, expect, out),
        }
    } else if magic == Some(&JOURNAL_MAGIC_V1[..]) {
        Scan {
            v1: true,
            end: scan_v1(bytes, expect, out),
        }
    } else if JOURNAL_MAGIC.starts_with(bytes) {
        // Created, its header not fully written: nothing was ever in it.
        Scan {
            v1: false,
            end: End::Torn { offset: 0 },
        }
    } else {
        Scan {
            v1: false,
            end: End::Damaged {
                offset: 0,
                why: "bad header (not a journal of this format)".into(),
            },
        }
    }
}

fn gap(lsn: Lsn, expected: Lsn) -> String {
    format!("sequence number {lsn} where {expected} was expected")
}

fn scan_v2(bytes: &[u8], expect: &mut Option<Lsn>, out: &mut Vec<Vec<u8>>) -> End {
    let mut at = JOURNAL_MAGIC.len();
    while at < bytes.len() {
        let (len, first, last, body_crc) = match parse_head(bytes, at) {
            Head::Short => return End::Torn { offset: at },
            Head::Bad(why) => {
                return End::Damaged {
                    offset: at,
                    why: why.into(),
                }
            }
            Head::Sound {
                len,
                first,
                last,
                body_crc,
            } => (len, first, last, body_crc),
        };
        if let Some(e) = *expect {
            if first != e {
                return End::Damaged {
                    offset: at,
                    why: format!("batch header: {}", gap(first, e)),
                };
            }
        }
        let start = at + BATCH_HEADER;
        let Some(end) = start.checked_add(len) else {
            return End::Damaged {
                offset: at,
                why: "batch length overflows".into(),
            };
        };
        if end > bytes.len() {
            // The header checks and the file ends inside the batch: nothing can follow it.
            return End::Torn { offset: at };
        }
        let body = &bytes[start..end];
        if crc32c::crc32c(body) != body_crc {
            return End::Damaged {
                offset: at,
                why: format!(
                    "batch of sequence numbers {first} to {last} ({len} bytes) is complete but \
                     its checksum does not match"
                ),
            };
        }
        // Sound batch: its records must be exactly first..=last.
        let mut records = Vec::new();
        let mut r = 0;
        let mut next = first;
        while r < body.len() {
            match parse_at(body, r) {
                Parsed::Record { lsn, start, end } if lsn == next => {
                    records.push(body[start..end].to_vec());
                    next = next.saturating_add(1);
                    r = end;
                }
                _ => {
                    return End::Damaged {
                        offset: at,
                        why: format!("record at {} of a sound batch does not check", start + r),
                    }
                }
            }
        }
        if next.checked_sub(1) != Some(last) || records.is_empty() {
            return End::Damaged {
                offset: at,
                why: format!("batch header says {first} to {last}, its records disagree"),
            };
        }
        out.append(&mut records);
        *expect = Some(next);
        at = end;
    }
    End::Clean
}

/// The old format: records one after another, no batches. Any damage refuses (with no batch
/// bound, a damaged last record cannot be told from a torn one).
fn scan_v1(bytes: &[u8], expect: &mut Option<Lsn>, out: &mut Vec<Vec<u8>>) -> End {
    let mut at = JOURNAL_MAGIC_V1.len();
    while at < bytes.len() {
        match parse_at(bytes, at) {
            Parsed::Record { lsn, start, end } => {
                if let Some(e) = *expect {
                    if lsn != e {
                        return End::Damaged {
                            offset: at,
                            why: gap(lsn, e),
                        };
                    }
                }
                *expect = lsn.checked_add(1);
                out.push(bytes[start..end].to_vec());
                at = end;
            }
            damage => {
                let what = if matches!(damage, Parsed::Truncated) {
                    "record cut short"
                } else {
                    "record checksum mismatch"
                };
                // Bounded: this only words the refusal.
                let later = (at + 1..bytes.len().min(at.saturating_add(4 << 20)))
                    .find(|o| matches!(parse_at(bytes, *o), Parsed::Record { .. }));
                let why = match later {
                    Some(o) => format!("{what}, and a sound record follows at {o}"),
                    None => format!("{what} in an old-format journal (no batch bound)"),
                };
                return End::Damaged { offset: at, why };
            }
        }
    }
    End::Clean
}

/// The name an aside copy of `path` gets: `<path>.<what>-<unix>`, or with `.1`, `.2`… after it
/// if that exists (two repairs in one second must not overwrite the first's evidence).
pub(super) fn aside(path: &Path, what: &str, unix: u64) -> std::path::PathBuf {
    let mut k = 0u32;
    loop {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{what}-{unix}"));
        if k > 0 {
            name.push(format!(".{k}"));
        }
        let p = std::path::PathBuf::from(name);
        if !p.exists() || k == u32::MAX {
            return p;
        }
        k += 1;
    }
}
