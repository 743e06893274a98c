//! Where the daemon keeps user state: the embedded store (this process's memory, made durable
//! by the journal in the data directory; the default) or a Redis Cluster shared by several
//! nodes (`--store redis://…`).
//!
//! The service is generic over the store ([`Backend`]): `slsd` builds it once for each and
//! picks one at start, so that the engine calls each store directly. No enum dispatches the
//! engine's seam ([`Store`]) method by method; what the service needs to know of its store
//! beyond the seam is the little this trait says.

use std::future::Future;

use sls_redis::RedisStore;

use crate::engine::{MemoryStore, Store};
use crate::journal::Journal;

/// A store the daemon can serve from: the engine's [`Store`] seam, and whether (and how) its
/// state is shared with other nodes.
pub trait Backend: Store {
    /// Whether state is shared with other nodes: answers on one stream are then taken
    /// concurrently (a store round trip each), and `Await`s look at the store now and then.
    const SHARED: bool;

    /// The embedded store, if that is this daemon's (its snapshots, its journal's gauges).
    fn embedded(&self) -> Option<&MemoryStore<Journal>> {
        None
    }

    /// The Redis store, if that is this daemon's (its audit lists, its bus, its probes).
    fn redis(&self) -> Option<&RedisStore> {
        None
    }

    /// Called on the thread that serves requests, before it accepts any: the Redis store's
    /// connection moves to this thread's runtime, so that a request's round trips wake no
    /// other thread ([`RedisStore::home_here`]). If that fails, the store keeps the connection
    /// it made at start, on the background runtime.
    fn home_here(&self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// The serving thread is ending: the Redis store goes back to its first connection.
    fn leave_home(&self) {}
}

impl Backend for MemoryStore<Journal> {
    const SHARED: bool = false;

    fn embedded(&self) -> Option<&MemoryStore<Journal>> {
        Some(self)
    }
}

impl Backend for RedisStore {
    const SHARED: bool = true;

    fn redis(&self) -> Option<&RedisStore> {
        Some(self)
    }

    async fn home_here(&self) {
        if let Err(e) = RedisStore::home_here(self).await {
            tracing::warn!("the Redis connection stays on the background threads: {e}");
        }
    }

    fn leave_home(&self) {
        RedisStore::leave_home(self);
    }
}
