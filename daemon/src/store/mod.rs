//! The embedded durable store: an append-only journal with group commit, and snapshots that
//! bound it. Records are opaque bytes here (the core encodes its own).
//!
//! ```text
//! <dir>/journal-00000007.log    "SLSJ0001" then records
//! <dir>/snapshot-00000007.snap  "SLSS0001" then records: the state at the start of journal 7
//! record = len u32 LE | crc32c u32 LE (of lsn and payload) | lsn u64 LE | payload (len bytes)
//! ```
//!
//! - **Group commit.** `append` only queues; one writer thread takes everything queued while
//!   the previous fsync ran, writes it with one `write`, `fdatasync`s once, and then tells the
//!   waiters. Under load, many records share each fsync.
//! - **Retry, never forget.** A write or fsync error (a full disk, EIO) makes the store
//!   *unhealthy*: the writer keeps the batch, cuts the file back to its durable length from a
//!   fresh descriptor, and writes the batch again with backoff (10 ms doubling to 1 s) until it
//!   succeeds; then the store is ready again by itself. Meanwhile [`Store::admit`] (the core's
//!   `healthy`, checked before a rule changes anything) refuses with
//!   [`StoreError::Unavailable`], and a waiter whose records are not durable yet gets
//!   `Unavailable` after [`StoreConfig::wait_while_failing`]. Records already queued are never
//!   dropped while the process runs: they are the changes the core has made in memory.
//!
//!   The invariant: **what the core holds in memory is never less than what is durable, and
//!   nothing is acknowledged before it is durable.** A change is made in memory only after
//!   `admit`, and once made its records are queued unconditionally (the core's `append`
//!   refuses nothing a rule's change depends on but a closed store), so everything in memory
//!   becomes durable once writes succeed again; an answer leaves only after its records are
//!   durable, so a restart agrees with every acknowledgement. A change answered `UNAVAILABLE`
//!   may still become durable (as after a crash during its fsync): never acknowledged, never
//!   un-counted. Only [`Store::close`] while failing loses queued records, after
//!   [`StoreConfig::close_grace`], and says how many: none of them was acknowledged.
//! - **Replay.** The newest snapshot, then the journals from its number on. A torn or corrupt
//!   record at the very end of the last journal (a crash during a write that was never
//!   acknowledged) is reported in [`Replay::tail`] and cut off; damage anywhere else is
//!   [`StoreError::Corrupt`]: the store refuses to start rather than silently skip data.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

mod files;
mod health;
mod journal;
mod retry;
mod wait;
mod writer;

use files::{frame, journal_path, numbered, read_file, rewrite_header, snapshot_path, sync_dir};
use health::Health;
use retry::JournalFile;
use tokio::sync::watch;
use writer::writer;

const JOURNAL_MAGIC: &[u8; 8] = b"SLSJ0001";
const SNAPSHOT_MAGIC: &[u8; 8] = b"SLSS0001";
const RECORD_HEADER: usize = 16;
/// Largest record accepted (a record is one user or device: far below this).
pub const MAX_RECORD: usize = 1 << 20;

/// A record's sequence number.
pub type Lsn = u64;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is damaged before its end: refusing to start.
    #[error("{path} is corrupt at offset {offset}: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What.
        why: &'static str,
    },
    /// Writes are failing (the writer retries): no change is accepted until one succeeds.
    #[error("the journal cannot write now (retrying): {0}")]
    Unavailable(String),
    /// Too much is queued: the disk cannot keep up.
    #[error("journal queue full")]
    Backpressure,
    /// A record is larger than [`MAX_RECORD`].
    #[error("record of {0} bytes is too large")]
    TooLarge(usize),
    /// The store is closed.
    #[error("the store is closed")]
    Closed,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// How the store runs.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Its directory.
    pub dir: PathBuf,
    /// fsync before acknowledging (default true; false only for benchmarks).
    pub fsync: bool,
    /// Most bytes queued before appends are refused.
    pub max_queue_bytes: usize,
    /// How long a waiter for durability waits while writes fail before it is told
    /// `Unavailable` (its records stay queued and become durable when writes succeed).
    pub wait_while_failing: Duration,
    /// How long [`Store::close`] keeps retrying a failing write before it gives up on what is
    /// queued (never acknowledged).
    pub close_grace: Duration,
}

impl StoreConfig {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            dir: dir.into(),
            fsync: true,
            max_queue_bytes: 64 << 20,
            wait_while_failing: Duration::from_secs(1),
            close_grace: Duration::from_secs(5),
        }
    }
}

/// Damage found at the tail of the last journal and cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailDamage {
    /// The journal.
    pub file: PathBuf,
    /// Where the damage starts (the file now ends there).
    pub offset: u64,
    /// Bytes dropped.
    pub bytes_dropped: u64,
    /// What was wrong.
    pub kind: TailDamageKind,
}

/// The kinds of [`TailDamage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailDamageKind {
    /// The last record ends early (a torn write).
    Truncated,
    /// The last record's checksum does not match (a torn or flipped write).
    ChecksumMismatch,
}

/// What to replay at start-up.
#[derive(Debug, Default)]
pub struct Replay {
    /// Records, in order: the snapshot's, then the journals'.
    pub records: Vec<Vec<u8>>,
    /// Records of them that came from the snapshot.
    pub from_snapshot: usize,
    /// Damage cut off the tail, if any.
    pub tail: Option<TailDamage>,
}

/// Counters of the store.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Records appended since start.
    pub records: u64,
    /// fsyncs (or write batches without fsync) since start.
    pub syncs: u64,
    /// Bytes written to journals since start.
    pub bytes: u64,
    /// The last durable record.
    pub durable: Lsn,
    /// Bytes in the current journal.
    pub journal_bytes: u64,
    /// Whether writes succeed now (false while the writer retries a failed one).
    pub ready: bool,
    /// Writes retried after an error since start.
    pub retries: u64,
    /// Times the store became unhealthy since start.
    pub unhealthy_spells: u64,
}

struct Queue {
    buf: Vec<u8>,
    next_lsn: Lsn,
    rotate: bool,
    /// The writer took a rotation request and has not finished it (it may be retrying the
    /// batch before it): no other rotation is asked for meanwhile.
    rotating: bool,
    /// Why the last rotation failed (the old journal stays in use).
    rotate_error: Option<String>,
    closing: bool,
}

struct Inner {
    config: StoreConfig,
    queue: Mutex<Queue>,
    /// `queue.buf`'s length, read without the lock by [`Store::admit`].
    queued: AtomicUsize,
    wake: Condvar,
    done: Condvar,
    durable: AtomicU64,
    durable_tx: watch::Sender<Lsn>,
    health: Health,
    /// The writer has stopped (closed, or gave up while failing).
    stopped: AtomicBool,
    records: AtomicU64,
    syncs: AtomicU64,
    bytes: AtomicU64,
    journal_bytes: AtomicU64,
    seq: AtomicU64,
    rotated: AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store(Arc<Inner>);

impl Store {
    /// Opens or creates the store; returns it and what to replay.
    ///
    /// # Errors
    /// I/O errors; damage other than at the tail of the last journal.
    pub fn open(config: StoreConfig) -> Result<(Store, Replay), StoreError> {
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let snaps = numbered(&dir, "snapshot-", ".snap")?;
        let mut replay = Replay::default();
        let base = snaps.last().copied().unwrap_or(0);
        if snaps.last().is_some() {
            let mut none = None;
            if read_file(
                &snapshot_path(&dir, base),
                SNAPSHOT_MAGIC,
                false,
                &mut replay.records,
                &mut none,
            )?
            .is_some()
            {
                return Err(StoreError::Corrupt {
                    path: snapshot_path(&dir, base),
                    offset: 0,
                    why: "snapshot damaged",
                });
            }
            replay.from_snapshot = replay.records.len();
        }
        let journals: Vec<u64> = numbered(&dir, "journal-", ".log")?
            .into_iter()
            .filter(|s| *s >= base)
            .collect();
        let mut expect: Option<Lsn> = None;
        for (i, seq) in journals.iter().enumerate() {
            let last = i + 1 == journals.len();
            if let Some(t) = read_file(
                &journal_path(&dir, *seq),
                JOURNAL_MAGIC,
                last,
                &mut replay.records,
                &mut expect,
            )? {
                replay.tail = Some(t);
            }
        }
        // Old files a finished snapshot made redundant.
        for s in numbered(&dir, "journal-", ".log")?
            .into_iter()
            .filter(|s| *s < base)
        {
            let _ = std::fs::remove_file(journal_path(&dir, s));
        }
        for s in snaps.iter().filter(|s| **s < base) {
            let _ = std::fs::remove_file(snapshot_path(&dir, *s));
        }
        let seq = journals.last().copied().unwrap_or(base);
        let path = journal_path(&dir, seq);
        if !path.exists() {
            rewrite_header(&path, JOURNAL_MAGIC)?;
            sync_dir(&dir)?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        let journal_bytes = file
            .metadata()
            .map_err(io("reading the length of", &path))?
            .len();
        let journal = JournalFile::new(path, file, journal_bytes);
        let next_lsn = expect.unwrap_or(1);
        let (durable_tx, _) = watch::channel(next_lsn - 1);
        let inner = Arc::new(Inner {
            config,
            queue: Mutex::new(Queue {
                buf: Vec::with_capacity(1 << 16),
                next_lsn,
                rotate: false,
                rotating: false,
                rotate_error: None,
                closing: false,
            }),
            queued: AtomicUsize::new(0),
            wake: Condvar::new(),
            done: Condvar::new(),
            durable: AtomicU64::new(next_lsn - 1),
            durable_tx,
            health: Health::new(),
            stopped: AtomicBool::new(false),
            records: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            journal_bytes: AtomicU64::new(journal_bytes),
            seq: AtomicU64::new(seq),
            rotated: AtomicU64::new(0),
            writer: Mutex::new(None),
        });
        let w = inner.clone();
        let handle = std::thread::Builder::new()
            .name("sls-journal".into())
            .spawn(move || writer(w, journal))
            .map_err(io("starting the writer for", &dir))?;
        *inner.writer.lock() = Some(handle);
        Ok((Store(inner), replay))
    }

    /// Whether a change may be made now: `Err(Unavailable)` while writes fail,
    /// `Err(Backpressure)` while too much is queued, `Err(Closed)` once stopped. The core
    /// checks it before a rule changes anything (its `healthy`), so that a refused change is
    /// not made in memory either. Two atomic loads: no lock.
    ///
    /// # Errors
    /// As above.
    pub fn admit(&self) -> Result<(), StoreError> {
        self.0.health.check()?;
        if self.0.stopped.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        if self.0.queued.load(Ordering::Relaxed) > self.0.config.max_queue_bytes {
            return Err(StoreError::Backpressure);
        }
        Ok(())
    }

    /// Queues a record; returns its sequence number. Never blocks on the disk.
    ///
    /// # Errors
    /// What [`Store::admit`] refuses; a record over [`MAX_RECORD`].
    pub fn append(&self, record: &[u8]) -> Result<Lsn, StoreError> {
        self.admit()?;
        self.queue([record].into_iter())
    }

    /// Queues `records` together, whatever the health: they are a change already made in
    /// memory, and are written as soon as writes succeed. Returns the last one's number.
    fn queue<'a>(
        &self,
        records: impl Iterator<Item = &'a [u8]> + Clone,
    ) -> Result<Lsn, StoreError> {
        if let Some(big) = records.clone().find(|r| r.len() > MAX_RECORD) {
            return Err(StoreError::TooLarge(big.len()));
        }
        let mut q = self.0.queue.lock();
        if q.closing {
            return Err(StoreError::Closed);
        }
        let mut n = 0;
        for record in records {
            let lsn = q.next_lsn;
            q.next_lsn += 1;
            frame(lsn, record, &mut q.buf);
            n += 1;
        }
        self.0.queued.store(q.buf.len(), Ordering::Relaxed);
        let last = q.next_lsn - 1;
        drop(q);
        self.0.records.fetch_add(n, Ordering::Relaxed);
        self.0.wake.notify_one();
        Ok(last)
    }

    /// Starts a new journal: records appended from now on go to it. Returns its number, which
    /// the snapshot of the state *as of this call* must be written under
    /// ([`Store::write_snapshot`]). The caller makes sure no state change is made between the
    /// two that is journalled before the rotation (the service pauses request handling).
    ///
    /// # Errors
    /// Writes are failing (waits at most [`StoreConfig::wait_while_failing`] for them, so that
    /// the paused service does not wait longer); the new journal could not be made (the
    /// current one stays in use).
    pub fn rotate(&self) -> Result<u64, StoreError> {
        self.0.health.check()?;
        let mut q = self.0.queue.lock();
        if q.rotating || q.rotate {
            // One taken while writes failed, still pending: its number is not ours to wait for.
            return Err(StoreError::Unavailable(
                "an earlier journal rotation is still pending".into(),
            ));
        }
        q.rotate = true;
        q.rotate_error = None;
        let target = self.0.seq.load(Ordering::Acquire) + 1;
        self.0.wake.notify_one();
        let mut deadline: Option<std::time::Instant> = None;
        while self.0.rotated.load(Ordering::Acquire) < target {
            if let Some(why) = q.rotate_error.take() {
                return Err(StoreError::Unavailable(format!("journal rotation: {why}")));
            }
            if self.0.stopped.load(Ordering::Acquire) {
                return Err(StoreError::Closed);
            }
            if let Err(e) = self.0.health.check() {
                let at = *deadline.get_or_insert_with(|| {
                    std::time::Instant::now() + self.0.config.wait_while_failing
                });
                if std::time::Instant::now() >= at {
                    // Not taken yet: called off. Taken: the writer rotates once the batch
                    // before it is durable, a journal without a snapshot (replay reads both).
                    q.rotate = false;
                    return Err(e);
                }
                let _ = self.0.done.wait_until(&mut q, at);
            } else {
                self.0.done.wait(&mut q);
            }
        }
        Ok(target)
    }

    /// Writes the snapshot of journal number `target` atomically (temporary file, fsync,
    /// rename, fsync of the directory), then removes the journals and snapshots it replaces.
    ///
    /// # Errors
    /// I/O errors (the temporary file is removed).
    pub fn write_snapshot(&self, target: u64, records: &[Vec<u8>]) -> Result<(), StoreError> {
        let dir = &self.0.config.dir;
        let tmp = dir.join(format!("snapshot-{target:08}.tmp"));
        let mut buf = Vec::with_capacity(
            records
                .iter()
                .map(|r| r.len() + RECORD_HEADER)
                .sum::<usize>()
                + 8,
        );
        buf.extend_from_slice(SNAPSHOT_MAGIC);
        for (i, r) in records.iter().enumerate() {
            frame(i as u64 + 1, r, &mut buf);
        }
        let written = File::create(&tmp)
            .map_err(io("creating", &tmp))
            .and_then(|mut f| {
                f.write_all(&buf).map_err(io("writing", &tmp))?;
                f.sync_all().map_err(io("syncing", &tmp))
            });
        if let Err(e) = written {
            // Give the space back: a full disk is the likely cause.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let path = snapshot_path(dir, target);
        std::fs::rename(&tmp, &path).map_err(io("renaming", &path))?;
        sync_dir(dir)?;
        for s in numbered(dir, "journal-", ".log")?
            .into_iter()
            .filter(|s| *s < target)
        {
            let _ = std::fs::remove_file(journal_path(dir, s));
        }
        for s in numbered(dir, "snapshot-", ".snap")?
            .into_iter()
            .filter(|s| *s < target)
        {
            let _ = std::fs::remove_file(snapshot_path(dir, s));
        }
        Ok(())
    }

    /// [`Store::rotate`], `capture`, then [`Store::write_snapshot`]; returns the records
    /// written.
    ///
    /// # Errors
    /// As both.
    pub fn snapshot(&self, capture: impl FnOnce() -> Vec<Vec<u8>>) -> Result<usize, StoreError> {
        let target = self.rotate()?;
        let records = capture();
        self.write_snapshot(target, &records)?;
        Ok(records.len())
    }

    /// Flushes what is queued and stops the writer. While writes fail it retries for at most
    /// [`StoreConfig::close_grace`], then drops what is queued (never acknowledged) and logs
    /// how many records that was.
    pub fn close(&self) {
        {
            let mut q = self.0.queue.lock();
            q.closing = true;
        }
        self.0.wake.notify_all();
        if let Some(h) = self.0.writer.lock().take() {
            let _ = h.join();
        }
        self.0.stopped.store(true, Ordering::Release);
        self.0.wake_waiters();
    }

    /// Whether writes succeed now.
    pub fn ready(&self) -> bool {
        self.0.health.ready()
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            records: self.0.records.load(Ordering::Relaxed),
            syncs: self.0.syncs.load(Ordering::Relaxed),
            bytes: self.0.bytes.load(Ordering::Relaxed),
            durable: self.0.durable.load(Ordering::Relaxed),
            journal_bytes: self.0.journal_bytes.load(Ordering::Relaxed),
            ready: self.0.health.ready(),
            retries: self.0.health.retries(),
            unhealthy_spells: self.0.health.spells(),
        }
    }
}

impl Inner {
    /// Wakes every waiter (async and blocking) to look at the health again.
    fn wake_waiters(&self) {
        {
            let _q = self.queue.lock();
            self.done.notify_all();
        }
        self.durable_tx.send_modify(|_| {});
    }
}
