//! Writing one group commit until it is durable: on a write or sync error the batch is kept,
//! the file is cut back to its durable length from a fresh descriptor (a partial write may
//! have landed, and after a failed sync the page cache is not to be trusted), and the same
//! bytes are written again after a backoff of [`FIRST_DELAY`] doubling to [`MAX_DELAY`], for as
//! long as the process runs. Only a close stops it, [`JournalConfig::close_grace`] after it was
//! asked.
//!
//! [`JournalConfig::close_grace`]: super::JournalConfig::close_grace

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Inner;

/// The first wait after a failed attempt.
pub(super) const FIRST_DELAY: Duration = Duration::from_millis(10);
/// The longest wait between attempts.
pub(super) const MAX_DELAY: Duration = Duration::from_secs(1);

/// The journal being written and how much of it is durable.
pub(super) struct JournalFile {
    path: PathBuf,
    /// `None` after a failed attempt: the next one reopens the file.
    file: Option<File>,
    durable_len: u64,
}

impl JournalFile {
    /// `file` (opened for appending) at `path`, whose first `durable_len` bytes are durable.
    pub(super) fn new(path: PathBuf, file: File, durable_len: u64) -> JournalFile {
        JournalFile {
            path,
            file: Some(file),
            durable_len,
        }
    }

    /// One attempt at making `batch` durable at the end of the durable part.
    fn attempt(&mut self, batch: &[u8], fsync: bool) -> std::io::Result<()> {
        let result = self.write_synced(batch, fsync);
        if result.is_err() {
            // Whatever this descriptor wrote or failed to sync is suspect. Cut back now, so
            // that a crash before the next attempt leaves no partial batch behind; if that
            // fails too, the next attempt tries again first.
            self.file = None;
            let _ = self.cut_back(fsync);
        }
        result
    }

    /// Reopens the file and cuts it back to its durable length: what a failed attempt may
    /// have left past it goes, and no page cached through the old descriptor is trusted.
    pub(super) fn cut_back(&mut self, fsync: bool) -> std::io::Result<()> {
        self.file = None;
        let f = OpenOptions::new().append(true).open(&self.path)?;
        f.set_len(self.durable_len)?;
        if fsync {
            f.sync_data()?;
        }
        self.file = Some(f);
        Ok(())
    }

    fn write_synced(&mut self, batch: &[u8], fsync: bool) -> std::io::Result<()> {
        if self.file.is_none() {
            self.cut_back(fsync)?;
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("journal not open"))?;
        file.write_all(batch)?;
        if fsync {
            file.sync_data()?;
        }
        self.durable_len = self
            .durable_len
            .checked_add(batch.len() as u64)
            .ok_or_else(|| std::io::Error::other("journal length overflows u64"))?;
        Ok(())
    }
}

/// The writer gave up on a batch: the store is closing and the close grace is over.
#[derive(Debug)]
pub(super) struct GaveUp;

/// Makes `batch` durable in `j`, retrying as the module docs say. Marks the store failing at
/// the first error and ready again at the first success.
///
/// # Errors
/// [`GaveUp`] once the store is closing and `close_grace` has passed since the writer saw it.
pub(super) fn commit(inner: &Inner, j: &mut JournalFile, batch: &[u8]) -> Result<(), GaveUp> {
    let mut delay = FIRST_DELAY;
    let mut give_up_at: Option<Instant> = None;
    loop {
        match j.attempt(batch, inner.config.fsync) {
            Ok(()) => {
                inner.health.succeeded();
                return Ok(());
            }
            Err(e) => {
                inner
                    .health
                    .failed(format!("writing {}: {e}", j.path.display()));
                inner.wake_waiters();
            }
        }
        let retry_at = Instant::now() + delay;
        let mut q = inner.queue.lock();
        loop {
            let now = Instant::now();
            let mut until = retry_at;
            if q.closing {
                let at = *give_up_at.get_or_insert(now + inner.config.close_grace);
                if now >= at {
                    return Err(GaveUp);
                }
                until = until.min(at);
            }
            if now >= retry_at {
                break;
            }
            // Appends notify too (few while failing: they are refused); a close wakes us.
            let _ = inner.wake.wait_until(&mut q, until);
        }
        drop(q);
        delay = delay.saturating_mul(2).min(MAX_DELAY);
    }
}
