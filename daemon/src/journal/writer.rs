//! The journal's writer thread: group commit (one write of one contiguous buffer and one
//! fsync for everything queued while the previous fsync ran, retried until durable: see
//! [`super::retry`]) and rotation.

use std::fs::OpenOptions;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::error;

use super::files::{journal_path, seal_batch, sync_dir};
use super::manifest::new_segment;
use super::retry::{commit, JournalFile};
use super::{io, Inner, JournalError, Lsn, JOURNAL_MAGIC};

pub(super) fn writer(inner: Arc<Inner>, mut journal: JournalFile) {
    let mut spare: Vec<u8> = Vec::with_capacity(1 << 16);
    loop {
        let (batch_last, rotate, closing) = {
            let mut q = inner.queue.lock();
            while q.buf.is_empty() && !q.rotate && !q.closing {
                inner.wake.wait(&mut q);
            }
            std::mem::swap(&mut q.buf, &mut spare);
            inner.queued.store(0, Ordering::Relaxed);
            let rotate = std::mem::take(&mut q.rotate);
            q.rotating |= rotate;
            (q.next_lsn - 1, rotate, q.closing)
        };
        if !spare.is_empty() {
            // The batch header goes out in the same write as its records.
            seal_batch(&mut spare, batch_last);
            if commit(&inner, &mut journal, &spare).is_err() {
                // Best effort: leave no partial batch for the next start to find.
                let _ = journal.cut_back(inner.config.fsync);
                give_up(&inner);
                return;
            }
            inner.syncs.fetch_add(1, Ordering::Relaxed);
            inner.bytes.fetch_add(spare.len() as u64, Ordering::Relaxed);
            inner
                .journal_bytes
                .fetch_add(spare.len() as u64, Ordering::Relaxed);
            spare.clear();
            // The module's invariant: what is durable only grows, and never past what was
            // queued (memory, which queued it, is never less than what is durable).
            debug_assert!(batch_last >= inner.durable.load(Ordering::Acquire));
            debug_assert!(batch_last < inner.queue.lock().next_lsn);
            inner.durable.store(batch_last, Ordering::Release);
            inner.durable_tx.send_replace(batch_last);
        }
        if rotate {
            let outcome = rotate_file(&inner, batch_last).map(|j| journal = j);
            let mut q = inner.queue.lock();
            q.rotate_error = outcome.err().map(|e| e.to_string());
            q.rotating = false;
        }
        {
            let _q = inner.queue.lock();
            inner.done.notify_all();
        }
        if closing {
            let q = inner.queue.lock();
            if q.buf.is_empty() {
                return;
            }
        }
    }
}

/// Starts the next journal. On an error the current one stays in use (the caller of
/// [`super::Journal::rotate`] hears of it) and a half-made new file is removed.
fn rotate_file(inner: &Inner, last: Lsn) -> Result<JournalFile, JournalError> {
    let seq = inner.seq.load(Ordering::Acquire) + 1;
    let dir = inner.config.dir.clone();
    let path = journal_path(&dir, seq);
    // The new journal, then the manifest naming it (put back as it was if it cannot be
    // written: the current journal stays in use).
    let opened = new_segment(inner, seq, last).and_then(|p| {
        OpenOptions::new()
            .append(true)
            .open(&p)
            .map_err(io("opening", &p))
    });
    let file = match opened {
        Ok(f) => f,
        Err(e) => {
            // Empty but for its header, and named by no manifest the next start will trust
            // with records in it: a start removes it; removing it now is tidier.
            let _ = std::fs::remove_file(&path);
            let _ = sync_dir(&dir);
            return Err(e);
        }
    };
    inner.seq.store(seq, Ordering::Release);
    let header = JOURNAL_MAGIC.len() as u64;
    inner.journal_bytes.store(header, Ordering::Relaxed);
    inner.rotated.store(seq, Ordering::Release);
    Ok(JournalFile::new(path, file, header))
}

/// Closing while the journal fails, and the close grace is over: what is queued is lost. None
/// of it was acknowledged (an answer waits for its record to be durable).
fn give_up(inner: &Inner) {
    let durable = inner.durable.load(Ordering::Acquire);
    let last = {
        let mut q = inner.queue.lock();
        q.buf.clear();
        inner.queued.store(0, Ordering::Relaxed);
        q.next_lsn - 1
    };
    let lost = last.saturating_sub(durable);
    error!(
        first = durable.saturating_add(1),
        last,
        lost,
        "journal closed while failing: these records were never made durable (none was acknowledged)"
    );
    inner.health.stopped(format!(
        "the journal closed while failing: {lost} records never made durable"
    ));
    inner.stopped.store(true, Ordering::Release);
    inner.wake_waiters();
}
