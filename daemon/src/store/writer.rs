//! The journal's writer thread: group commit (one write and one fsync for everything queued
//! while the previous fsync ran) and rotation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::files::seal_batch;
use super::manifest::new_segment;
use super::{io, Inner, JOURNAL_MAGIC};

pub(super) fn writer(inner: Arc<Inner>, mut file: File) {
    let mut spare: Vec<u8> = Vec::with_capacity(1 << 16);
    loop {
        let (batch_last, rotate, closing) = {
            let mut q = inner.queue.lock();
            while q.buf.is_empty() && !q.rotate && !q.closing {
                inner.wake.wait(&mut q);
            }
            std::mem::swap(&mut q.buf, &mut spare);
            let rotate = std::mem::take(&mut q.rotate);
            (q.next_lsn - 1, rotate, q.closing)
        };
        if !spare.is_empty() {
            // The batch header goes out in the same write as its records.
            seal_batch(&mut spare, batch_last);
            let result = file.write_all(&spare).and_then(|()| {
                if inner.config.fsync {
                    file.sync_data()
                } else {
                    Ok(())
                }
            });
            if let Err(e) = result {
                fail(&inner, format!("journal write: {e}"));
                return;
            }
            inner.syncs.fetch_add(1, Ordering::Relaxed);
            inner.bytes.fetch_add(spare.len() as u64, Ordering::Relaxed);
            inner
                .journal_bytes
                .fetch_add(spare.len() as u64, Ordering::Relaxed);
            spare.clear();
            inner.durable.store(batch_last, Ordering::Release);
            inner.durable_tx.send_replace(batch_last);
        }
        if rotate {
            let seq = inner.seq.load(Ordering::Acquire) + 1;
            match new_segment(&inner, seq, batch_last).and_then(|path| {
                OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(io("opening", &path))
            }) {
                Ok(f) => {
                    file = f;
                    inner.seq.store(seq, Ordering::Release);
                    inner
                        .journal_bytes
                        .store(JOURNAL_MAGIC.len() as u64, Ordering::Relaxed);
                    inner.rotated.store(seq, Ordering::Release);
                }
                Err(e) => {
                    fail(&inner, format!("journal rotation: {e}"));
                    return;
                }
            }
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

pub(super) fn fail(inner: &Inner, why: String) {
    *inner.failed.lock() = Some(why);
    inner.failed_flag.store(true, Ordering::Release);
    let _q = inner.queue.lock();
    inner.done.notify_all();
    inner.durable_tx.send_modify(|_| {});
}
