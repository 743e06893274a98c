//! Waiting for records to be durable: bounded while writes fail (the records stay queued).

use std::sync::atomic::Ordering;

use super::{Journal, JournalError, Lsn};

impl Journal {
    /// Waits until every record up to `lsn` is on disk. While writes fail it waits at most
    /// [`super::JournalConfig::wait_while_failing`]; the records stay queued.
    ///
    /// # Errors
    /// `Unavailable` if writes fail for that long; `Closed` if the writer stopped first.
    pub async fn durable(&self, lsn: Lsn) -> Result<(), JournalError> {
        if self.0.durable.load(Ordering::Acquire) >= lsn {
            return Ok(());
        }
        let mut rx = self.0.durable_tx.subscribe();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if *rx.borrow_and_update() >= lsn {
                return Ok(());
            }
            if self.0.stopped.load(Ordering::Acquire) {
                return Err(JournalError::Closed);
            }
            if let Err(e) = self.0.health.check() {
                let at = *deadline.get_or_insert_with(|| {
                    tokio::time::Instant::now() + self.0.config.wait_while_failing
                });
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return Err(JournalError::Closed) },
                    () = tokio::time::sleep_until(at) => {
                        return if *rx.borrow() >= lsn { Ok(()) } else { Err(e) };
                    }
                }
            } else if rx.changed().await.is_err() {
                return Err(JournalError::Closed);
            }
        }
    }

    /// Blocking flavour of [`Journal::durable`].
    ///
    /// # Errors
    /// As [`Journal::durable`].
    pub fn wait_durable(&self, lsn: Lsn) -> Result<(), JournalError> {
        let mut deadline: Option<std::time::Instant> = None;
        let mut q = self.0.queue.lock();
        loop {
            if self.0.durable.load(Ordering::Acquire) >= lsn {
                return Ok(());
            }
            if self.0.stopped.load(Ordering::Acquire) {
                return Err(JournalError::Closed);
            }
            if let Err(e) = self.0.health.check() {
                let at = *deadline.get_or_insert_with(|| {
                    std::time::Instant::now() + self.0.config.wait_while_failing
                });
                if std::time::Instant::now() >= at {
                    return Err(e);
                }
                let _ = self.0.done.wait_until(&mut q, at);
            } else {
                self.0.done.wait(&mut q);
            }
        }
    }
}
