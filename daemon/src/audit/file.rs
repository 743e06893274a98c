//! The embedded store's trail on disk: `<data-dir>/audit/audit-N.log`, appended by a writer
//! thread of its own in batches (everything queued while the previous write and `fdatasync`
//! ran), read back at start.
//!
//! A file starts with 8 bytes of magic: `SLSAUDL1` (appends) or `SLSAUDC1` (a compaction: every
//! entry the memory held when it was written, then appends). Then records: `u32` length and
//! `u32` CRC-32C (both big-endian) of the payload, then the payload: `u8` user length, the
//! user, the encoded [`sls_protocol::AuditEntry`] (without user and node). A start reads the
//! newest compaction and the files after it, and deletes the older ones; a record cut short or
//! failing its CRC ends that file's reading (the rest of it is lost, with a warning: the trail
//! never stops a start). When the files outgrow twice what memory holds (and 64 MiB), the writer
//! compacts.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::Rings;

const LOG_MAGIC: &[u8; 8] = b"SLSAUDL1";
const COMPACT_MAGIC: &[u8; 8] = b"SLSAUDC1";
/// No compaction below this many bytes of files.
const COMPACT_MIN: u64 = 64 << 20;

/// The writer thread's handle: [`Writer::append`] queues, dropping it flushes and joins.
pub struct Writer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    q: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    buf: Vec<u8>,
    closing: bool,
}

/// Where the trail's files are, by number.
fn files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let path = e?.path();
        let n = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("audit-"))
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = n {
            out.push((n, path));
        }
    }
    out.sort();
    Ok(out)
}

fn path_of(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("audit-{n:08}.log"))
}

/// Appends one record of `user`'s `entry` to `out`.
pub fn frame(out: &mut Vec<u8>, user: &str, entry: &[u8]) {
    let ulen = u8::try_from(user.len()).unwrap_or(u8::MAX);
    let user = &user.as_bytes()[..usize::from(ulen)];
    let len = 1 + user.len() + entry.len();
    let mut crc = crc32c::crc32c(&[ulen]);
    crc = crc32c::crc32c_append(crc, user);
    crc = crc32c::crc32c_append(crc, entry);
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&crc.to_be_bytes());
    out.push(ulen);
    out.extend_from_slice(user);
    out.extend_from_slice(entry);
}

/// The records of one file's bytes (after its magic): (user, entry) each, up to the first
/// damaged one; and whether the file was read whole.
pub fn records(mut b: &[u8]) -> (Vec<(&str, &[u8])>, bool) {
    let mut out = Vec::new();
    while !b.is_empty() {
        let Some((head, rest)) = b.split_first_chunk::<8>() else {
            return (out, false);
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let Some(payload) = rest.get(..len) else {
            return (out, false);
        };
        if crc32c::crc32c(payload) != crc {
            return (out, false);
        }
        let Some((&ulen, p)) = payload.split_first() else {
            return (out, false);
        };
        let Some(user) = p
            .get(..usize::from(ulen))
            .and_then(|u| std::str::from_utf8(u).ok())
        else {
            return (out, false);
        };
        out.push((user, &p[usize::from(ulen)..]));
        b = &rest[len..];
    }
    (out, true)
}

/// The time of an encoded entry (its first field).
pub fn at_ms(entry: &[u8]) -> Option<u64> {
    entry.first_chunk::<8>().map(|b| u64::from_be_bytes(*b))
}

/// Reads the trail's files in `dir` into `rings` (entries past the age at `now_ms` left out),
/// deleting the files before the newest compaction if `delete`. Returns the next file's number and the
/// files' bytes.
pub fn load(dir: &Path, rings: &Rings, now_ms: u64, delete: bool) -> std::io::Result<(u64, u64)> {
    let all = files(dir)?;
    let mut start = 0;
    for (i, (_, path)) in all.iter().enumerate() {
        let mut magic = [0u8; 8];
        if File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && &magic == COMPACT_MAGIC
        {
            start = i;
        }
    }
    let mut bytes = 0;
    if delete {
        for (_, path) in &all[..start] {
            fs::remove_file(path)?;
        }
    }
    for (_, path) in &all[start..] {
        let data = fs::read(path)?;
        bytes += data.len() as u64;
        let body = data.get(8..).unwrap_or(&[]);
        let (recs, whole) = records(body);
        if !whole {
            tracing::warn!(file = %path.display(), kept = recs.len(), "audit trail: a damaged or cut record ends this file's reading; what follows it is lost");
        }
        // A record with no user is a decoy ([`Writer::append_decoy`]).
        for (user, entry) in recs.into_iter().filter(|(user, _)| !user.is_empty()) {
            if let Some(at) = at_ms(entry) {
                rings.push(user, at, entry);
            }
        }
    }
    rings.sweep(now_ms);
    let next = all.last().map_or(1, |(n, _)| n + 1);
    Ok((next, bytes))
}

fn create(path: &Path, magic: &[u8; 8]) -> std::io::Result<File> {
    let mut f = OpenOptions::new().create_new(true).write(true).open(path)?;
    f.write_all(magic)?;
    Ok(f)
}

impl Writer {
    /// Reads the trail in `dir` into `rings` and starts the writer on a new file.
    ///
    /// # Errors
    /// The directory or a file cannot be read, created or deleted.
    pub fn open(
        dir: &Path,
        rings: Arc<Rings>,
        fsync: bool,
        now_ms: u64,
    ) -> std::io::Result<Writer> {
        fs::create_dir_all(dir)?;
        let (next, bytes) = load(dir, &rings, now_ms, true)?;
        let file = create(&path_of(dir, next), LOG_MAGIC)?;
        let shared = Arc::new(Shared {
            q: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let t = Thread {
            shared: shared.clone(),
            rings,
            dir: dir.to_owned(),
            fsync,
            file,
            n: next,
            bytes: bytes + 8,
        };
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || t.run())?;
        Ok(Writer {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues `user`'s encoded `entry` for the file, after `keep` (the memory's push).
    pub fn append(&self, user: &str, entry: &[u8], keep: impl FnOnce(&[u8])) {
        keep(entry);
        self.queue(user, entry);
    }

    /// Queues a decoy: a record as long as an entry whose user and encoding together take
    /// `len` bytes, with no user and zeros for the rest, written and synced as entries are
    /// and skipped by a start ([`load`]) and gone at the next compaction.
    pub fn append_decoy(&self, len: usize) {
        self.queue("", &vec![0; len]);
    }

    fn queue(&self, user: &str, entry: &[u8]) {
        let mut q = self.shared.q.lock();
        let was_empty = q.buf.is_empty();
        frame(&mut q.buf, user, entry);
        if was_empty {
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.q.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Thread {
    shared: Arc<Shared>,
    rings: Arc<Rings>,
    dir: PathBuf,
    fsync: bool,
    file: File,
    n: u64,
    bytes: u64,
}

impl Thread {
    fn run(mut self) {
        let mut spare = Vec::with_capacity(1 << 16);
        loop {
            let closing = {
                let mut q = self.shared.q.lock();
                while q.buf.is_empty() && !q.closing {
                    self.shared.wake.wait(&mut q);
                }
                std::mem::swap(&mut q.buf, &mut spare);
                q.closing
            };
            if !spare.is_empty() {
                let written = self.file.write_all(&spare).and_then(|()| {
                    if self.fsync {
                        self.file.sync_data()
                    } else {
                        Ok(())
                    }
                });
                match written {
                    Ok(()) => self.bytes += spare.len() as u64,
                    Err(e) => tracing::warn!("audit trail: a batch could not be written: {e}"),
                }
                spare.clear();
                let held = self.rings.bytes.load(Ordering::Relaxed);
                if self.bytes > COMPACT_MIN.max(held.saturating_mul(2)) {
                    if let Err(e) = self.compact() {
                        tracing::warn!("audit trail: compaction failed, appends go on: {e}");
                    }
                }
            }
            if closing && self.shared.q.lock().buf.is_empty() {
                return;
            }
        }
    }

    /// Writes what memory holds to a new file, which appends then go to, and deletes the older
    /// files.
    fn compact(&mut self) -> std::io::Result<()> {
        let next = self.n + 1;
        let tmp = self.dir.join(format!("audit-{next:08}.tmp"));
        let _ = fs::remove_file(&tmp);
        let mut f = create(&tmp, COMPACT_MAGIC)?;
        let mut buf = Vec::with_capacity(1 << 20);
        let mut bytes = 8u64;
        let mut failed = None;
        self.rings.each(|user, entry| {
            frame(&mut buf, user, entry);
            if buf.len() >= 1 << 20 && failed.is_none() {
                bytes += buf.len() as u64;
                failed = f.write_all(&buf).err();
                buf.clear();
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        bytes += buf.len() as u64;
        f.write_all(&buf)?;
        f.sync_all()?;
        fs::rename(&tmp, path_of(&self.dir, next))?;
        File::open(&self.dir)?.sync_all()?;
        for (n, path) in files(&self.dir)? {
            if n < next {
                fs::remove_file(path)?;
            }
        }
        self.file = f;
        self.n = next;
        self.bytes = bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_stop_at_damage() {
        let mut b = Vec::new();
        frame(&mut b, "alice", &[0, 0, 0, 0, 0, 0, 0, 9, 1, 2]);
        frame(&mut b, "bob", &[0, 0, 0, 0, 0, 0, 0, 8]);
        let (r, whole) = records(&b);
        assert!(whole);
        assert_eq!(
            r,
            vec![
                ("alice", &[0, 0, 0, 0, 0, 0, 0, 9, 1, 2][..]),
                ("bob", &[0, 0, 0, 0, 0, 0, 0, 8][..])
            ]
        );
        assert_eq!(at_ms(r[0].1), Some(9));
        let mut bad = b.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let (r, whole) = records(&bad);
        assert!(!whole);
        assert_eq!(r.len(), 1);
        let (r, whole) = records(&b[..b.len() - 3]);
        assert!(!whole);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_start_reads_back_the_trail_and_compaction_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let rings = Arc::new(Rings::new(3, 1_000_000));
        {
            let w = Writer::open(dir.path(), rings.clone(), false, 1000).unwrap();
            for i in 0..5u64 {
                let mut e = (1000 + i).to_be_bytes().to_vec();
                e.push(7);
                w.append("alice", &e, |b| rings.push("alice", 1000 + i, b));
            }
        }
        let again = Arc::new(Rings::new(3, 1_000_000));
        drop(Writer::open(dir.path(), again.clone(), false, 1000).unwrap());
        let got: Vec<u64> = again
            .since("alice", 0)
            .iter()
            .filter_map(|e| at_ms(e))
            .collect();
        assert_eq!(got, [1002, 1003, 1004], "the newest `keep`, oldest first");
        // A compaction then appends: read back once each, the older files gone.
        let mut t = Thread {
            shared: Arc::new(Shared {
                q: Mutex::new(Queue::default()),
                wake: Condvar::new(),
            }),
            rings: again.clone(),
            dir: dir.path().to_owned(),
            fsync: false,
            file: create(&path_of(dir.path(), 50), LOG_MAGIC).unwrap(),
            n: 50,
            bytes: 8,
        };
        t.compact().unwrap();
        let mut e = 1005u64.to_be_bytes().to_vec();
        e.push(7);
        let mut b = Vec::new();
        frame(&mut b, "alice", &e);
        t.file.write_all(&b).unwrap();
        assert_eq!(files(dir.path()).unwrap().len(), 1);
        let third = Rings::new(3, 1_000_000);
        load(dir.path(), &third, 1000, true).unwrap();
        let got: Vec<u64> = third
            .since("alice", 0)
            .iter()
            .filter_map(|e| at_ms(e))
            .collect();
        assert_eq!(got, [1003, 1004, 1005]);
    }
}

#[cfg(test)]
mod decoys {
    use super::*;

    #[test]
    fn a_decoy_is_written_as_long_as_the_entry_it_stands_for_and_never_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let rings = Arc::new(Rings::new(8, 1_000_000));
        let entry = [&1000u64.to_be_bytes()[..], &[7, 7, 7]].concat();
        let mut alone = Vec::new();
        frame(&mut alone, "ghost123", &entry);
        {
            let w = Writer::open(dir.path(), rings.clone(), true, 1000).unwrap();
            w.append("alice", &entry, |b| rings.push("alice", 1000, b));
            w.append_decoy("ghost123".len() + entry.len());
        }
        let (_, path) = files(dir.path()).unwrap().pop().unwrap();
        let data = fs::read(path).unwrap();
        let mut real = Vec::new();
        frame(&mut real, "alice", &entry);
        assert_eq!(
            data.len(),
            8 + real.len() + alone.len(),
            "the decoy takes the bytes the ghost's entry would"
        );
        let again = Rings::new(8, 1_000_000);
        load(dir.path(), &again, 1000, false).unwrap();
        assert_eq!(again.since("alice", 0).len(), 1);
        assert!(again.since("", 0).is_empty(), "the decoy is not read back");
        assert_eq!(again.entries.load(Ordering::Relaxed), 1);
    }
}
