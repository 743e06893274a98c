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
//! - **Fail-stop.** After a write or fsync error the store refuses every append: the daemon
//!   must not acknowledge what it could not persist.
//! - **Replay.** The snapshot and the journals the manifest names, each checked against it: a
//!   missing file, a snapshot of another size, a closed journal that ends early all refuse to
//!   start ([`StoreError::Missing`], [`StoreError::Corrupt`], naming the file).
//! - **Torn tail.** Only the newest journal's final batch may be *torn*: its header checks and
//!   declares more bytes than the file holds (or the header itself is cut short). That write
//!   never completed, so it was never acknowledged: it is cut off by itself, its bytes saved to
//!   `<journal>.torn-<unix time>` first, and reported in [`Replay::tail`]. Anything else that
//!   does not check (a flipped bit in a header, a length, a sequence number, a checksum or a
//!   payload, in the last batch or before it) is damage: the store refuses to start and says
//!   where. [`StoreConfig::repair`] (`slsd --repair`) then copies the damaged file aside
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

mod files;
pub mod lock;
mod manifest;
mod recover;
mod replay;
mod writer;

use files::{frame, journal_path, numbered, open_batch, snapshot_path, sync_dir, MAX_BATCH};
pub use lock::{DirLock, LockError};
pub use manifest::MANIFEST;
use manifest::{Manifest, SnapshotEntry};
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
    /// A write or fsync failed earlier: the store no longer accepts records.
    #[error("the journal failed and accepts no more records: {0}")]
    Failed(String),
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
    /// Start on damage by setting it aside (see the module doc); false by default.
    pub repair: bool,
}

impl StoreConfig {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            dir: dir.into(),
            fsync: true,
            max_queue_bytes: 64 << 20,
            repair: false,
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
}

struct Queue {
    buf: Vec<u8>,
    next_lsn: Lsn,
    rotate: bool,
    closing: bool,
}

struct Inner {
    config: StoreConfig,
    queue: Mutex<Queue>,
    wake: Condvar,
    done: Condvar,
    durable: AtomicU64,
    durable_tx: watch::Sender<Lsn>,
    failed: Mutex<Option<String>>,
    failed_flag: AtomicBool,
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
pub struct Store(Arc<Inner>);

impl Store {
    /// Opens or creates the store; returns it and what to replay.
    ///
    /// # Errors
    /// I/O errors; a file the manifest names missing; damage other than a torn final write
    /// (unless [`StoreConfig::repair`]).
    pub fn open(config: StoreConfig) -> Result<(Store, Replay), StoreError> {
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
        let journal_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (durable_tx, _) = watch::channel(next_lsn.saturating_sub(1));
        let inner = Arc::new(Inner {
            config,
            queue: Mutex::new(Queue {
                buf: Vec::with_capacity(1 << 16),
                next_lsn,
                rotate: false,
                closing: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            durable: AtomicU64::new(next_lsn.saturating_sub(1)),
            durable_tx,
            failed: Mutex::new(None),
            failed_flag: AtomicBool::new(false),
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
            .spawn(move || writer(w, file))
            .map_err(io("starting the writer for", &dir))?;
        *inner.writer.lock() = Some(handle);
        Ok((Store(inner), replay))
    }

    fn check_failed(&self) -> Result<(), StoreError> {
        if self.0.failed_flag.load(Ordering::Acquire) {
            return Err(StoreError::Failed(
                self.0.failed.lock().clone().unwrap_or_default(),
            ));
        }
        Ok(())
    }

    /// Queues a record; returns its sequence number. Never blocks on the disk.
    ///
    /// # Errors
    /// After a failure; when the queue is full; a record over [`MAX_RECORD`].
    pub fn append(&self, record: &[u8]) -> Result<Lsn, StoreError> {
        self.check_failed()?;
        if record.len() > MAX_RECORD {
            return Err(StoreError::TooLarge(record.len()));
        }
        let mut q = self.0.queue.lock();
        if q.closing {
            return Err(StoreError::Closed);
        }
        let limit = self.0.config.max_queue_bytes.min(MAX_BATCH);
        if q.buf.len() + record.len() + RECORD_HEADER > limit {
            return Err(StoreError::Backpressure);
        }
        let lsn = q.next_lsn;
        q.next_lsn += 1;
        if q.buf.is_empty() {
            open_batch(&mut q.buf);
        }
        frame(lsn, record, &mut q.buf);
        drop(q);
        self.0.records.fetch_add(1, Ordering::Relaxed);
        self.0.wake.notify_one();
        Ok(lsn)
    }

    /// Waits until every record up to `lsn` is on disk.
    ///
    /// # Errors
    /// The journal failed.
    pub async fn durable(&self, lsn: Lsn) -> Result<(), StoreError> {
        if self.0.durable.load(Ordering::Acquire) >= lsn {
            return Ok(());
        }
        let mut rx = self.0.durable_tx.subscribe();
        loop {
            self.check_failed()?;
            if *rx.borrow_and_update() >= lsn {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Closed);
            }
        }
    }

    /// Blocking flavour of [`Store::durable`].
    ///
    /// # Errors
    /// The journal failed.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<(), StoreError> {
        let mut q = self.0.queue.lock();
        loop {
            self.check_failed()?;
            if self.0.durable.load(Ordering::Acquire) >= lsn {
                return Ok(());
            }
            if q.closing && q.buf.is_empty() {
                return Err(StoreError::Closed);
            }
            self.0.done.wait(&mut q);
        }
    }

    /// Starts a new journal: records appended from now on go to it. Returns its number, which
    /// the snapshot of the state *as of this call* must be written under
    /// ([`Store::write_snapshot`]). The caller makes sure no state change is made between the
    /// two that is journalled before the rotation (the service pauses request handling).
    ///
    /// # Errors
    /// The journal failed.
    pub fn rotate(&self) -> Result<u64, StoreError> {
        self.check_failed()?;
        let mut q = self.0.queue.lock();
        q.rotate = true;
        let target = self.0.seq.load(Ordering::Acquire) + 1;
        self.0.wake.notify_one();
        while self.0.rotated.load(Ordering::Acquire) < target {
            self.check_failed()?;
            self.0.done.wait(&mut q);
        }
        Ok(target)
    }

    /// Writes the snapshot of journal number `target` atomically (temporary file, fsync,
    /// rename, fsync of the directory), then removes the journals and snapshots it replaces.
    ///
    /// # Errors
    /// I/O errors.
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
        let mut f = File::create(&tmp).map_err(io("creating", &tmp))?;
        f.write_all(&buf).map_err(io("writing", &tmp))?;
        f.sync_all().map_err(io("syncing", &tmp))?;
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

    /// Flushes what is queued and stops the writer.
    pub fn close(&self) {
        {
            let mut q = self.0.queue.lock();
            q.closing = true;
        }
        self.0.wake.notify_all();
        if let Some(h) = self.0.writer.lock().take() {
            let _ = h.join();
        }
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            records: self.0.records.load(Ordering::Relaxed),
            syncs: self.0.syncs.load(Ordering::Relaxed),
            bytes: self.0.bytes.load(Ordering::Relaxed),
            durable: self.0.durable.load(Ordering::Relaxed),
            journal_bytes: self.0.journal_bytes.load(Ordering::Relaxed),
        }
    }
}

/// The journal behind the embedded store ([`sls_core::MemoryStore`]): records are encoded and
/// queued under the user's lock; the answer waits for the group commit that makes them
/// durable.
impl sls_core::Journal for Store {
    type Ticket = Lsn;

    fn healthy(&self) -> Result<(), sls_core::StoreError> {
        self.check_failed().map_err(unavailable)
    }

    fn append(&self, records: &[sls_core::Record]) -> Result<Lsn, sls_core::StoreError> {
        let mut last = 0;
        let mut buf = Vec::with_capacity(128);
        for r in records {
            buf.clear();
            r.encode(&mut buf).map_err(|e| {
                sls_core::StoreError::Unavailable(format!("record not encodable: {e}"))
            })?;
            last = self.append(&buf).map_err(unavailable)?;
        }
        Ok(last)
    }

    fn durable(
        &self,
        lsn: Lsn,
    ) -> impl std::future::Future<Output = Result<(), sls_core::StoreError>> + Send {
        let store = self.clone();
        async move { store.durable(lsn).await.map_err(unavailable) }
    }

    fn appended(&self) -> Option<Lsn> {
        Some(self.0.queue.lock().next_lsn.saturating_sub(1))
    }
}

fn unavailable(e: StoreError) -> sls_core::StoreError {
    sls_core::StoreError::Unavailable(e.to_string())
}
