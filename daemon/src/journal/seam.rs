//! The store as the core's [`sls_engine::Journal`]: the embedded store's records go here.

use super::{Journal, JournalError, Lsn};

/// The journal behind the embedded store ([`sls_engine::MemoryStore`]): records are encoded and
/// queued under the user's lock; the answer waits for the group commit that makes them
/// durable.
impl sls_engine::Journal for Journal {
    type Ticket = Lsn;

    fn healthy(&self) -> Result<(), sls_engine::StoreError> {
        self.admit().map_err(unavailable)
    }

    /// Queues the records of a change the core has already made: refused only if the store is
    /// closed (the process is going away) or a record cannot be encoded (a bug), never for the
    /// health or the queue's length, which [`Journal::admit`] checked before the change.
    fn append(&self, records: &[sls_engine::Record]) -> Result<Lsn, sls_engine::StoreError> {
        let mut buf = Vec::with_capacity(128 * records.len());
        let mut ends = Vec::with_capacity(records.len());
        for r in records {
            r.encode(&mut buf).map_err(|e| {
                sls_engine::StoreError::Unavailable(format!("record not encodable: {e}").into())
            })?;
            ends.push(buf.len());
        }
        let starts = std::iter::once(0).chain(ends.iter().copied());
        let slices = starts.zip(ends.iter().copied()).map(|(a, b)| &buf[a..b]);
        self.queue(slices).map_err(unavailable)
    }

    fn durable(
        &self,
        lsn: Lsn,
    ) -> impl std::future::Future<Output = Result<(), sls_engine::StoreError>> + Send {
        let store = self.clone();
        async move { store.durable(lsn).await.map_err(unavailable) }
    }

    fn appended(&self) -> Option<Lsn> {
        Some(self.0.queue.lock().next_lsn.saturating_sub(1))
    }
}

fn unavailable(e: JournalError) -> sls_engine::StoreError {
    sls_engine::StoreError::Unavailable(sls_engine::Cause::of("journal", e))
}
