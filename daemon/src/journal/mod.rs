//! The embedded durable store: an append-only journal with group commit, and snapshots that
//! bound it, in a directory a manifest describes. Records are opaque bytes here (the core
//! encodes its own).
//!
//! ```text
//! <dir>/MANIFEST                the snapshot and the journals, in order, with their first (and,
//!                               but for the newest, last) sequence numbers; see `manifest`
//! <dir>/journal-00000007.log    "SLSJ0002" then batches
//! <dir>/snapshot-00000007.snap  "SLSS0001" then records: the state at the start of journal 7
//! batch  = "SLSB" | len u32 LE | first lsn u64 LE | last lsn u64 LE | crc32c u32 LE (of the
//!          len bytes of records) | crc32c u32 LE (of the 28 header bytes before it) | records
//! record = len u32 LE | crc32c u32 LE (of lsn and payload) | lsn u64 LE | payload (len bytes)
//! ```
//!
//! - **Group commit.** `append` only queues; one writer thread takes everything queued while
//!   the previous fsync ran, writes it as one batch with one `write`, `fdatasync`s once, and
//!   then tells the waiters. Under load, many records share each fsync. A record is
//!   acknowledged only once its whole batch is durable.
//! - **Retry, never forget.** A write or fsync error (a full disk, EIO) makes the store
//!   *unhealthy*: the writer keeps the batch, cuts the file back to its durable length from a
//!   fresh descriptor, and writes the batch again with backoff (10 ms doubling to 1 s) until it
//!   succeeds; then the store is ready again by itself. Meanwhile [`Journal::admit`] (the core's
//!   `healthy`, checked before a rule changes anything) refuses with
//!   [`JournalError::Unavailable`], and a waiter whose records are not durable yet gets
//!   `Unavailable` after [`JournalConfig::wait_while_failing`]. Records already queued are never
//!   dropped while the process runs: they are the changes the core has made in memory.
//!
//!   The invariant: **what the core holds in memory is never less than what is durable, and
//!   nothing is acknowledged before it is durable.** A change is made in memory only after
//!   `admit`, and once made its records are queued unconditionally (the core's `append`
//!   refuses nothing a rule's change depends on but a closed store), so everything in memory
//!   becomes durable once writes succeed again; an answer leaves only after its records are
//!   durable, so a restart agrees with every acknowledgement. A change answered `UNAVAILABLE`
//!   may still become durable (as after a crash during its fsync): never acknowledged, never
//!   un-counted. Only [`Journal::close`] while failing loses queued records, after
//!   [`JournalConfig::close_grace`], and says how many: none of them was acknowledged.
//! - **Replay.** The snapshot and the journals the manifest names, each checked against it: a
//!   missing file, a snapshot of another size, a closed journal that ends early all refuse to
//!   start ([`JournalError::Missing`], [`JournalError::Corrupt`], naming the file).
//! - **Torn tail.** Only the newest journal's final batch may be *torn*: its header checks and
//!   declares more bytes than the file holds (or the header itself is cut short). That write
//!   never completed, so it was never acknowledged: it is cut off by itself, its bytes saved to
//!   `<journal>.torn-<unix time>` first, and reported in [`Replay::tail`]. Anything else that
//!   does not check (a flipped bit in a header, a length, a sequence number, a checksum or a
//!   payload, in the last batch or before it) is damage: the store refuses to start and says
//!   where. [`JournalConfig::repair`] (`slsd --repair`) then copies the damaged file aside
//!   (`<journal>.damaged-<unix time>`), keeps the records before the damage, sets later
//!   journals aside and starts; it also rebuilds a missing or damaged manifest from the files.
//! - **Older directories.** Journals in the first format (`SLSJ0001`, records without batches)
//!   are read (any damage in them refuses: without batches a torn last record cannot be told
//!   from a damaged one), new records go to a new journal, and a directory without a manifest
//!   gets one when its files prove complete (journals numbered on from the snapshot's, or from
//!   0 with sequence numbers from 1, without gaps). Without a manifest, journals in the current
//!   format refuse: the manifest was lost, and with it the proof that no newest journal is.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

mod files;
mod health;
pub mod lock;
mod manifest;
mod recover;
mod replay;
mod retry;
mod seam;
mod wait;
mod writer;

use files::{frame, journal_path, numbered, open_batch, snapshot_path, sync_dir, MAX_BATCH};
use health::Health;
pub use lock::{DirLock, LockError};
pub use manifest::MANIFEST;
use manifest::{Manifest, SnapshotEntry};
use retry::JournalFile;
use tokio::sync::watch;
use writer::writer;

const JOURNAL_MAGIC: &[u8; 8] = b"SLSJ0002";
/// The first format: records without batches (read, never written).
const JOURNAL_MAGIC_V1: &[u8; 8] = b"SLSJ0001";
const SNAPSHOT_MAGIC: &[u8; 8] = b"SLSS0001";
const RECORD_HEADER: usize = 16;
/// Largest record accepted (a record is one user or device: far below this).
pub const MAX_RECORD: usize = 1 << 20;

/// A record's sequence number.
pub type Lsn = u64;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
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
    /// A file is damaged (anywhere but a torn final write): refusing to start.
    #[error("{path} is damaged at offset {offset}: {why}; {advice}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What.
        why: String,
        /// What the operator can do.
        advice: String,
    },
    /// A file the manifest names is missing: refusing to start.
    #[error("{path} is missing: {why}; {advice}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// Why it should be there.
        why: String,
        /// What the operator can do.
        advice: String,
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

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// How the store runs.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Its directory.
    pub dir: PathBuf,
    /// fsync before acknowledging (default true; false only for benchmarks).
    pub fsync: bool,
    /// Most bytes queued before appends are refused.
    pub max_queue_bytes: usize,
    /// Start on damage by setting it aside (see the module doc); false by default.
    pub repair: bool,
    /// How long a waiter for durability waits while writes fail before it is told
    /// `Unavailable` (its records stay queued and become durable when writes succeed).
    pub wait_while_failing: Duration,
    /// How long [`Journal::close`] keeps retrying a failing write before it gives up on what is
    /// queued (never acknowledged).
    pub close_grace: Duration,
}

impl JournalConfig {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> JournalConfig {
        JournalConfig {
            dir: dir.into(),
            fsync: true,
            max_queue_bytes: 64 << 20,
            repair: false,
            wait_while_failing: Duration::from_secs(1),
            close_grace: Duration::from_secs(5),
        }
    }
}

/// A journal cut at start: a torn final write, or damage `--repair` set aside.
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
    /// Where the dropped bytes (a torn write) or the whole file (damage) were saved first.
    pub saved: Option<PathBuf>,
}

/// The kinds of [`TailDamage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailDamageKind {
    /// The final batch ends early: a write that never completed (cut without being asked).
    Truncated,
    /// Damage, cut by `--repair`.
    Damaged,
    /// The newest journal was missing; `--repair` started an empty one.
    Missing,
}

/// What to replay at start-up.
#[derive(Debug, Default)]
pub struct Replay {
    /// Records, in order: the snapshot's, then the journals'.
    pub records: Vec<Vec<u8>>,
    /// Records of them that came from the snapshot.
    pub from_snapshot: usize,
    /// A torn final write cut off the newest journal, if any.
    pub tail: Option<TailDamage>,
    /// What `--repair` set aside.
    pub repaired: Vec<TailDamage>,
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
    config: JournalConfig,
    queue: Mutex<Queue>,
    /// `queue.buf`'s length, read without the lock by [`Journal::admit`].
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
    manifest: Mutex<Manifest>,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Journal(Arc<Inner>);

impl Journal {
    /// Opens or creates the store; returns it and what to replay.
    ///
    /// # Errors
    /// I/O errors; a file the manifest names missing; damage other than a torn final write
    /// (unless [`JournalConfig::repair`]).
    pub fn open(config: JournalConfig) -> Result<(Journal, Replay), JournalError> {
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let recover::Recovered {
            replay,
            manifest,
            next_lsn,
        } = recover::recover(&dir, config.repair)?;
        let seq = manifest.segments.last().map_or(0, |g| g.seq);
        let path = journal_path(&dir, seq);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        let journal_bytes = file
            .metadata()
            .map_err(io("reading the length of", &path))?
            .len();
        let journal = JournalFile::new(path, file, journal_bytes);
        let (durable_tx, _) = watch::channel(next_lsn.saturating_sub(1));
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
            durable: AtomicU64::new(next_lsn.saturating_sub(1)),
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
            manifest: Mutex::new(manifest),
        });
        let w = inner.clone();
        let handle = std::thread::Builder::new()
            .name("sls-journal".into())
            .spawn(move || writer(w, journal))
            .map_err(io("starting the writer for", &dir))?;
        *inner.writer.lock() = Some(handle);
        Ok((Journal(inner), replay))
    }

    /// Whether a change may be made now: `Err(Unavailable)` while writes fail,
    /// `Err(Backpressure)` while too much is queued, `Err(Closed)` once stopped. The core
    /// checks it before a rule changes anything (its `healthy`), so that a refused change is
    /// not made in memory either. Two atomic loads: no lock.
    ///
    /// # Errors
    /// As above.
    pub fn admit(&self) -> Result<(), JournalError> {
        self.0.health.check()?;
        if self.0.stopped.load(Ordering::Acquire) {
            return Err(JournalError::Closed);
        }
        // A batch's length is a u32 in its header: far above any sane queue, kept below it.
        let limit = self.0.config.max_queue_bytes.min(MAX_BATCH / 2);
        if self.0.queued.load(Ordering::Relaxed) > limit {
            return Err(JournalError::Backpressure);
        }
        Ok(())
    }

    /// Queues a record; returns its sequence number. Never blocks on the disk.
    ///
    /// # Errors
    /// What [`Journal::admit`] refuses; a record over [`MAX_RECORD`].
    pub fn append(&self, record: &[u8]) -> Result<Lsn, JournalError> {
        self.admit()?;
        self.queue([record].into_iter())
    }

    /// Queues `records` together, whatever the health: they are a change already made in
    /// memory, and are written as soon as writes succeed. Returns the last one's number.
    fn queue<'a>(
        &self,
        records: impl Iterator<Item = &'a [u8]> + Clone,
    ) -> Result<Lsn, JournalError> {
        if let Some(big) = records.clone().find(|r| r.len() > MAX_RECORD) {
            return Err(JournalError::TooLarge(big.len()));
        }
        let mut q = self.0.queue.lock();
        if q.closing {
            return Err(JournalError::Closed);
        }
        let mut n = 0;
        if q.buf.is_empty() {
            open_batch(&mut q.buf);
        }
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
    /// ([`Journal::write_snapshot`]). The caller makes sure no state change is made between the
    /// two that is journalled before the rotation (the service pauses request handling).
    ///
    /// # Errors
    /// Writes are failing (waits at most [`JournalConfig::wait_while_failing`] for them, so that
    /// the paused service does not wait longer); the new journal could not be made (the
    /// current one stays in use).
    pub fn rotate(&self) -> Result<u64, JournalError> {
        self.0.health.check()?;
        let mut q = self.0.queue.lock();
        if q.rotating || q.rotate {
            // One taken while writes failed, still pending: its number is not ours to wait for.
            return Err(JournalError::Unavailable(
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
                return Err(JournalError::Unavailable(format!(
                    "journal rotation: {why}"
                )));
            }
            if self.0.stopped.load(Ordering::Acquire) {
                return Err(JournalError::Closed);
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
    pub fn write_snapshot(&self, target: u64, records: &[Vec<u8>]) -> Result<(), JournalError> {
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
        {
            // Named only once it is durable; the files it replaces go only once it is named.
            let mut m = self.0.manifest.lock();
            let mut next = m.clone();
            next.snapshot = Some(SnapshotEntry {
                seq: target,
                records: records.len() as u64,
                bytes: buf.len() as u64,
            });
            next.segments.retain(|g| g.seq >= target);
            next.store(dir)?;
            *m = next;
        }
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

    /// [`Journal::rotate`], `capture`, then [`Journal::write_snapshot`]; returns the records
    /// written.
    ///
    /// # Errors
    /// As both.
    pub fn snapshot(&self, capture: impl FnOnce() -> Vec<Vec<u8>>) -> Result<usize, JournalError> {
        let target = self.rotate()?;
        let records = capture();
        self.write_snapshot(target, &records)?;
        Ok(records.len())
    }

    /// Flushes what is queued and stops the writer. While writes fail it retries for at most
    /// [`JournalConfig::close_grace`], then drops what is queued (never acknowledged) and logs
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
