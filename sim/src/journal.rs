//! A journal on a simulated disk: the core's [`Journal`] seam, with the bytes kept in memory
//! in the daemon's file format (`daemon/src/journal/mod.rs`), so that a crash can cut them at
//! any byte and a restart reads them back as the daemon would.
//!
//! ```text
//! journal = "SLSJ0002" then batches
//! batch   = "SLSB" | len u32 | first lsn u64 | last lsn u64 | crc32c(body) u32 | crc32c(28 header bytes) u32 | body
//! record  = len u32 | crc32c(lsn, payload) u32 | lsn u64 | payload (sls_engine::Record::encode)
//! ```
//!
//! The daemon's framing is private to its store (and its store needs files and a writer
//! thread), so the framing is simulated here at the byte level, with the same torn-tail rule:
//! a final batch whose header is cut short, or that declares more bytes than remain, is a
//! write that never completed and is dropped; anything else that does not check is damage.
//!
//! Group commit as the daemon's writer does it: [`Disk::write`] takes everything queued as
//! one batch and writes it (page cache), [`Disk::sync`] makes what is written durable. A
//! waiter's [`Journal::durable`] resolves once its lsn is durable. Faults: a full disk (the
//! write fails, nothing reaches the file) and a failed `fdatasync` (the file is cut back to
//! its durable length, the batch kept to be written again); while either holds,
//! [`Journal::healthy`] refuses new changes and a waiter gets `Unavailable` (the daemon's
//! `wait_while_failing`, zero here). Queued records are never dropped while the process runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use sls_engine::{Journal, Record, StoreError};

const MAGIC: &[u8; 8] = b"SLSJ0002";
const BATCH_MAGIC: &[u8; 4] = b"SLSB";
const BATCH_HEADER: usize = 32;
const RECORD_HEADER: usize = 16;

/// A write fault the simulator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The disk is full: writes fail, nothing reaches the file.
    DiskFull,
    /// `fdatasync` fails: what was written since the last sync is cut back.
    SyncFails,
}

/// The disk: what survives a crash is `bytes[..cut]` for a cut in `synced..=bytes.len()`.
#[derive(Debug)]
pub struct Disk {
    /// The snapshot the journal starts from, as encoded records (written whole, atomically).
    snapshot: Vec<Vec<u8>>,
    /// The journal file, in the page cache.
    bytes: Vec<u8>,
    /// How much of `bytes` is durable.
    synced: usize,
    /// Framed records queued, not yet written (the group's buffer).
    queue: Vec<u8>,
    queue_first: Option<u64>,
    next_lsn: u64,
    written_lsn: u64,
    durable_lsn: u64,
    fault: Option<Fault>,
    /// The last lsn the snapshot covers.
    snapshot_lsn: u64,
}

/// The core's journal, a handle on the shared [`Disk`] (which outlives a crashed core).
#[derive(Debug, Clone)]
pub struct SimJournal(Arc<Mutex<Disk>>);

impl Default for SimJournal {
    fn default() -> SimJournal {
        SimJournal(Arc::new(Mutex::new(Disk {
            snapshot: Vec::new(),
            bytes: MAGIC.to_vec(),
            synced: MAGIC.len(),
            queue: Vec::new(),
            queue_first: None,
            next_lsn: 1,
            written_lsn: 0,
            durable_lsn: 0,
            fault: None,
            snapshot_lsn: 0,
        })))
    }
}

impl SimJournal {
    /// The disk, locked (the simulator is single-threaded: never contended).
    pub fn disk(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unavailable(what: &str) -> StoreError {
    StoreError::Unavailable(format!("sim: {what}").into())
}

impl Journal for SimJournal {
    type Ticket = u64;

    fn healthy(&self) -> Result<(), StoreError> {
        match self.disk().fault {
            None => Ok(()),
            Some(Fault::DiskFull) => Err(unavailable("disk full")),
            Some(Fault::SyncFails) => Err(unavailable("fdatasync failed")),
        }
    }

    fn append(&self, records: &[Record]) -> Result<u64, StoreError> {
        let mut d = self.disk();
        let mut payload = Vec::new();
        for r in records {
            payload.clear();
            r.encode(&mut payload).map_err(|e| {
                StoreError::Unavailable(format!("record not encodable: {e}").into())
            })?;
            let lsn = d.next_lsn;
            d.next_lsn += 1;
            d.queue_first.get_or_insert(lsn);
            frame(lsn, &payload, &mut d.queue);
        }
        Ok(d.next_lsn - 1)
    }

    fn durable(&self, lsn: u64) -> impl Future<Output = Result<(), StoreError>> + Send {
        Durable {
            journal: self.clone(),
            lsn,
        }
    }

    fn appended(&self) -> Option<u64> {
        Some(self.disk().next_lsn - 1)
    }
}

/// A waiter for `lsn` to be durable.
struct Durable {
    journal: SimJournal,
    lsn: u64,
}

impl Future for Durable {
    type Output = Result<(), StoreError>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let d = self.journal.disk();
        if d.durable_lsn >= self.lsn {
            Poll::Ready(Ok(()))
        } else if d.fault.is_some() {
            Poll::Ready(Err(unavailable("not durable while writes fail")))
        } else {
            Poll::Pending
        }
    }
}

fn frame(lsn: u64, payload: &[u8], out: &mut Vec<u8>) {
    let crc = crc32c::crc32c_append(crc32c::crc32c(&lsn.to_le_bytes()), payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
}

fn batch(body: &[u8], first: u64, last: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(BATCH_HEADER + body.len());
    out.extend_from_slice(BATCH_MAGIC);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&last.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    let crc = crc32c::crc32c(&out[..28]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// What a restart reads back.
#[derive(Debug)]
pub struct Recovered {
    /// The snapshot's records, then the journal's, in order.
    pub records: Vec<Record>,
    /// The last lsn read back (0: none).
    pub last_lsn: u64,
    /// Bytes of a torn final batch cut off.
    pub torn: usize,
}

impl Disk {
    /// The fault in force.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Injects (or, with `None`, heals) a write fault.
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        self.fault = fault;
    }

    /// Bytes queued, written and durable, for the trace.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.queue.len(), self.bytes.len(), self.synced)
    }

    /// The last durable lsn.
    pub fn durable_lsn(&self) -> u64 {
        self.durable_lsn
    }

    /// The writer takes everything queued as one batch and writes it. `false`: the write
    /// failed (the batch stays queued).
    pub fn write(&mut self) -> bool {
        let Some(first) = self.queue_first else {
            return true;
        };
        if self.fault == Some(Fault::DiskFull) {
            return false;
        }
        let last = self.next_lsn - 1;
        let b = batch(&self.queue, first, last);
        self.bytes.extend_from_slice(&b);
        self.queue.clear();
        self.queue_first = None;
        self.written_lsn = last;
        true
    }

    /// `fdatasync`: what is written becomes durable. `false`: it failed, and the file is cut
    /// back to its durable length; the batches written since go back to the queue's front.
    pub fn sync(&mut self) -> bool {
        if self.fault == Some(Fault::SyncFails) {
            let unsynced = self.bytes.split_off(self.synced);
            let mut requeue = Vec::new();
            let mut first = None;
            for (lsn, payload) in records_of(&unsynced) {
                first.get_or_insert(lsn);
                frame(lsn, &payload, &mut requeue);
            }
            if let Some(first) = first {
                requeue.extend_from_slice(&self.queue);
                self.queue = requeue;
                self.queue_first = Some(first);
                self.written_lsn = self.durable_lsn;
            }
            return false;
        }
        self.synced = self.bytes.len();
        self.durable_lsn = self.written_lsn;
        true
    }

    /// The process dies: the queue is lost, the file keeps its durable part and `keep` more
    /// bytes of what was written after it (a torn write when that ends inside a batch).
    pub fn crash(&mut self, keep: usize) {
        let cut = self.synced + keep.min(self.bytes.len() - self.synced);
        self.bytes.truncate(cut);
        self.queue.clear();
        self.queue_first = None;
        self.fault = None;
    }

    /// Bytes written but not durable (where a crash may cut).
    pub fn unsynced(&self) -> usize {
        self.bytes.len() - self.synced
    }

    /// A restart reads the snapshot and the journal back, cuts a torn final batch off, and
    /// goes on from the last record read.
    ///
    /// # Errors
    /// Damage (a checksum, a sequence number): the simulator never makes any, so it is a bug.
    pub fn recover(&mut self) -> Result<Recovered, String> {
        let mut records = Vec::new();
        for bytes in &self.snapshot {
            records.push(Record::decode(bytes).map_err(|e| format!("snapshot record: {e}"))?);
        }
        let (end, lsns) = scan(&self.bytes)?;
        let torn = self.bytes.len() - end;
        self.bytes.truncate(end);
        self.synced = end;
        let mut last_lsn = self.snapshot_lsn;
        for (lsn, payload) in lsns {
            records.push(Record::decode(&payload).map_err(|e| format!("record {lsn}: {e}"))?);
            last_lsn = lsn;
        }
        self.next_lsn = last_lsn + 1;
        self.written_lsn = last_lsn;
        self.durable_lsn = last_lsn;
        Ok(Recovered {
            records,
            last_lsn,
            torn,
        })
    }

    /// A snapshot: `records` are the whole state once everything queued is durable
    /// ([`Disk::write`] then [`Disk::sync`] first; `false` if that failed). The snapshot is
    /// written whole (the daemon writes it aside and switches the manifest), and the journal
    /// starts empty after it.
    pub fn snapshot(&mut self, capture: impl FnOnce() -> Vec<Record>) -> Result<bool, String> {
        if !(self.write() && self.sync()) {
            return Ok(false);
        }
        let mut out = Vec::new();
        for r in capture() {
            let mut b = Vec::new();
            r.encode(&mut b)
                .map_err(|e| format!("snapshot record: {e}"))?;
            out.push(b);
        }
        self.snapshot = out;
        self.snapshot_lsn = self.durable_lsn;
        self.bytes.truncate(MAGIC.len());
        self.synced = MAGIC.len();
        Ok(true)
    }
}

/// The records of sound batches in `bytes` (no file header), in order.
fn records_of(bytes: &[u8]) -> Records {
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(bytes);
    scan(&file).map(|(_, r)| r).unwrap_or_default()
}

/// Records read back: (lsn, payload).
type Records = Vec<(u64, Vec<u8>)>;

/// Reads a journal file: where its sound part ends, and its records. A torn final batch ends
/// the sound part; anything else that does not check is damage.
fn scan(bytes: &[u8]) -> Result<(usize, Records), String> {
    if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err("bad journal header".into());
    }
    let mut out = Vec::new();
    let mut at = MAGIC.len();
    let mut expect: Option<u64> = None;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let Some(h) = rest.get(..BATCH_HEADER) else {
            let n = rest.len().min(4);
            return if rest[..n] == BATCH_MAGIC[..n] {
                Ok((at, out))
            } else {
                Err(format!("damage at {at}: no batch header"))
            };
        };
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let u64_at = |i: usize| (u64::from(u32_at(i + 4)) << 32) | u64::from(u32_at(i));
        if &h[..4] != BATCH_MAGIC || crc32c::crc32c(&h[..28]) != u32_at(28) {
            return Err(format!("damage at {at}: batch header"));
        }
        let (len, first, last) = (u32_at(4) as usize, u64_at(8), u64_at(16));
        if expect.is_some_and(|e| e != first) {
            return Err(format!("damage at {at}: lsn {first}, {expect:?} expected"));
        }
        let start = at + BATCH_HEADER;
        if start + len > bytes.len() {
            // Torn: the header checks, the file ends inside the batch.
            return Ok((at, out));
        }
        let body = &bytes[start..start + len];
        if crc32c::crc32c(body) != u32_at(24) {
            return Err(format!("damage at {at}: batch checksum"));
        }
        let mut r = 0;
        let mut next = first;
        while r < body.len() {
            let h = body
                .get(r..r + RECORD_HEADER)
                .ok_or(format!("damage at {at}: record header"))?;
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            let lsn = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
            let payload = body
                .get(r + RECORD_HEADER..r + RECORD_HEADER + len)
                .ok_or(format!("damage at {at}: record length"))?;
            let c = crc32c::crc32c_append(crc32c::crc32c(&lsn.to_le_bytes()), payload);
            if c != crc || lsn != next {
                return Err(format!("damage at {at}: record {lsn}"));
            }
            out.push((lsn, payload.to_vec()));
            next += 1;
            r += RECORD_HEADER + len;
        }
        if next.checked_sub(1) != Some(last) {
            return Err(format!(
                "damage at {at}: batch {first}..={last}, records disagree"
            ));
        }
        expect = Some(next);
        at = start + len;
    }
    Ok((at, out))
}
