//! The audit trail: every verdict the core gives an enrolled user and every
//! admin change, with its time, user, device, transaction, client address, purpose, verdict
//! (with its grant) or refusal, and this node's name. Never a secret, PIN, answer or code.
//!
//! Off the request's path: [`AuditLog::record`] queues the entry and returns. On the embedded
//! store the entries are kept in memory per user (the newest `audit_keep`, none older than
//! `audit_max_age`) and appended to `<data-dir>/audit/` by a writer thread of their own, in
//! batches, each `fdatasync`ed ([`mod@file`]); a start reads them back. On the Redis store a task
//! appends them to the user's capped list in the cluster ([`sls_redis`]), read by every node.
//! A crash can lose the entries of the batch being written (a few milliseconds' worth); the
//! journal's own records (failures, resets) are never lost.

pub mod export;
pub mod file;
mod rings;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use sls_engine::AuditSink;
use sls_protocol::audit::MAX_AUDIT_PAGE;
use sls_protocol::{AuditEntry, Status};
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::config::AuditConfig;
pub use rings::Rings;

/// Entries waiting for the Redis task, at most; past it new ones are dropped (and counted).
pub const REDIS_QUEUE: usize = 65_536;

/// The daemon's audit trail.
pub struct AuditLog {
    keep: usize,
    max_age_ms: u64,
    node: String,
    where_: Where,
    /// Entries recorded, and dropped (a full queue, or an entry that would not encode).
    pub recorded: AtomicU64,
    /// Entries dropped.
    pub dropped: AtomicU64,
}

enum Where {
    /// `audit_keep = 0`.
    Off,
    /// Memory and `<data-dir>/audit/`.
    Embedded {
        rings: Arc<Rings>,
        file: file::Writer,
    },
    /// The cluster, through [`drain_to_redis`].
    Redis(mpsc::Sender<(String, Vec<u8>)>),
}

/// The receiving end of the Redis trail's queue, for [`drain_to_redis`].
pub type RedisQueue = mpsc::Receiver<(String, Vec<u8>)>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl AuditLog {
    /// A trail that keeps nothing.
    pub fn off(config: &AuditConfig) -> AuditLog {
        AuditLog::with(config, Where::Off)
    }

    fn with(config: &AuditConfig, where_: Where) -> AuditLog {
        AuditLog {
            keep: config.keep,
            max_age_ms: ms(config.max_age),
            node: config.node.clone(),
            where_: if config.keep == 0 { Where::Off } else { where_ },
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// The embedded store's trail in `dir`: what it kept is read back first.
    ///
    /// # Errors
    /// The directory or its files cannot be created, read or written.
    pub fn embedded(
        config: &AuditConfig,
        dir: &std::path::Path,
        fsync: bool,
    ) -> std::io::Result<AuditLog> {
        if config.keep == 0 {
            return Ok(AuditLog::off(config));
        }
        let rings = Arc::new(Rings::new(config.keep, ms(config.max_age)));
        let file = file::Writer::open(dir, rings.clone(), fsync, now_ms())?;
        Ok(AuditLog::with(config, Where::Embedded { rings, file }))
    }

    /// The Redis store's trail, and the queue for [`drain_to_redis`] to drain.
    pub fn redis(config: &AuditConfig) -> (AuditLog, RedisQueue) {
        let (tx, rx) = mpsc::channel(REDIS_QUEUE);
        (AuditLog::with(config, Where::Redis(tx)), rx)
    }

    /// Drops the embedded trail's entries past the age (the sweeper's, once a minute).
    pub fn sweep(&self) {
        if let Where::Embedded { rings, .. } = &self.where_ {
            rings.sweep(now_ms());
        }
    }

    /// Entries held in memory and their bytes (the embedded store's; 0 on Redis).
    pub fn held(&self) -> (u64, u64) {
        match &self.where_ {
            Where::Embedded { rings, .. } => (
                rings.entries.load(Ordering::Relaxed),
                rings.bytes.load(Ordering::Relaxed),
            ),
            _ => (0, 0),
        }
    }

    /// Whether entries are kept.
    pub fn is_on(&self) -> bool {
        !matches!(self.where_, Where::Off)
    }

    /// Records an admin change of `user` by the admin tool at `client`: `event` is the
    /// request's type code, `device` the device concerned, `refused` the status it was
    /// refused with (None: done).
    pub fn admin_change(
        &self,
        user: &str,
        event: u16,
        device: Option<sls_protocol::DeviceId>,
        client: std::net::IpAddr,
        refused: Option<Status>,
    ) {
        if !self.is_on() || !sls_protocol::valid_user_name(user) {
            return;
        }
        self.record(AuditEntry {
            at_ms: now_ms(),
            user: user.to_owned(),
            event,
            device,
            txn: None,
            client: Some(client),
            purpose: None,
            verdict: None,
            status: refused,
            node: String::new(),
        });
    }

    /// A page of `user`'s trail: up to `limit` (1 to 64; 0: 64) entries from `since_ms` on,
    /// the first `skip` of that millisecond left out, oldest first (PROTOCOL.md §4, "Audit").
    ///
    /// # Errors
    /// The Redis store could not be read.
    pub async fn read(
        &self,
        backend: &impl Backend,
        user: &str,
        since: Cursor,
        limit: u16,
    ) -> Result<Page, sls_engine::StoreError> {
        let limit = match usize::from(limit) {
            0 => MAX_AUDIT_PAGE,
            n => n.min(MAX_AUDIT_PAGE),
        };
        let oldest = now_ms().saturating_sub(self.max_age_ms);
        let encoded: Vec<Vec<u8>> = match (&self.where_, backend) {
            (Where::Off, _) => Vec::new(),
            (Where::Embedded { rings, .. }, _) => rings.since(user, since.0),
            (Where::Redis(_), b) => match b.redis() {
                Some(r) => Box::pin(r.audit_read(user)).await?,
                None => Vec::new(),
            },
        };
        let mut all: Vec<AuditEntry> = encoded
            .iter()
            .filter_map(|b| AuditEntry::decode(b).ok())
            .filter(|e| e.at_ms >= oldest && e.at_ms >= since.0)
            .collect();
        // On a shared store each node appends its own entries a moment after its answers:
        // the list is in order of arrival, the page in order of time.
        all.sort_by_key(|e| e.at_ms);
        for e in &mut all {
            e.user = user.to_owned();
            if e.node.is_empty() {
                e.node.clone_from(&self.node);
            }
        }
        Ok(page(all, since, limit))
    }
}

/// Where a page starts: a millisecond, and how many entries of it to leave out.
pub type Cursor = (u64, u16);

/// A page: its entries, and the cursor of the next page if more follow.
pub type Page = (Vec<AuditEntry>, Option<Cursor>);

/// The page of `all` (entries from `since`'s millisecond on, oldest first) at `since`.
fn page(all: Vec<AuditEntry>, (since_ms, skip): Cursor, limit: usize) -> Page {
    let mut rest = all.into_iter().peekable();
    let mut skipped = 0;
    while skipped < skip && rest.next_if(|e| e.at_ms == since_ms).is_some() {
        skipped += 1;
    }
    let entries: Vec<AuditEntry> = rest.by_ref().take(limit).collect();
    let next = match (rest.peek(), entries.last()) {
        (Some(_), Some(last)) => {
            let same = entries.iter().filter(|e| e.at_ms == last.at_ms).count();
            let same = u16::try_from(same).unwrap_or(u16::MAX);
            let skip = if last.at_ms == since_ms {
                skip.saturating_add(same)
            } else {
                same
            };
            Some((last.at_ms, skip))
        }
        _ => None,
    };
    (entries, next)
}

impl AuditSink for AuditLog {
    fn record(&self, mut entry: AuditEntry) {
        self.recorded.fetch_add(1, Ordering::Relaxed);
        match &self.where_ {
            Where::Off => {}
            Where::Embedded { rings, file } => {
                // Kept without the user (the ring's key) and the node (this one's, always):
                // about 40 to 80 bytes an entry.
                let user = std::mem::take(&mut entry.user);
                let mut buf = BytesMut::with_capacity(96);
                if entry.encode(&mut buf).is_err() {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                file.append(&user, &buf, |bytes| rings.push(&user, entry.at_ms, bytes));
            }
            Where::Redis(tx) => {
                let user = std::mem::take(&mut entry.user);
                entry.node.clone_from(&self.node);
                let mut buf = BytesMut::with_capacity(128);
                if entry.encode(&mut buf).is_err() || tx.try_send((user, buf.to_vec())).is_err() {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// The embedded trail writes and syncs a record of the entry's size that a start skips
    /// ([`file::Writer::append_decoy`]): without it a known name's failure was followed by an
    /// `fdatasync` of the trail and an unknown one's not, and the next answers' timing told
    /// them apart. The Redis trail sends nothing: a decoy there would be a key made for a name
    /// nobody enrolled, and its appends are batched off the request's path; whether they still
    /// show in the answers' timing on a cluster is not measured.
    fn decoy(&self, mut entry: AuditEntry) {
        if let Where::Embedded { file, .. } = &self.where_ {
            let user = std::mem::take(&mut entry.user);
            let mut buf = BytesMut::with_capacity(96);
            if entry.encode(&mut buf).is_ok() {
                file.append_decoy(user.len().saturating_add(buf.len()));
            }
        }
    }
}

/// Appends the queued entries to the users' lists in the cluster, a batch per user at a time,
/// until the queue closes. A batch the cluster refuses is dropped (and counted) after one
/// retry a second later: the trail never holds requests back.
pub async fn drain_to_redis(
    audit: Arc<AuditLog>,
    backend: sls_engine::Core<impl Backend>,
    mut rx: RedisQueue,
) {
    let Some(redis) = backend.store().redis() else {
        return;
    };
    let mut batch: Vec<(String, Vec<u8>)> = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        batch.sort_by(|a, b| a.0.cmp(&b.0));
        let mut i = 0;
        while i < batch.len() {
            let user = batch[i].0.clone();
            let mut entries = Vec::new();
            while i < batch.len() && batch[i].0 == user {
                entries.push(std::mem::take(&mut batch[i].1));
                i += 1;
            }
            let mut tries = 0;
            while let Err(e) = redis
                .audit_append(&user, &entries, audit.keep, audit.max_age_ms)
                .await
            {
                tries += 1;
                if tries > 1 {
                    tracing::warn!("audit: {} entries of a user dropped: {e}", entries.len());
                    audit
                        .dropped
                        .fetch_add(entries.len() as u64, Ordering::Relaxed);
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> AuditEntry {
        AuditEntry {
            at_ms: ms,
            user: "u".into(),
            event: 0x11,
            device: None,
            txn: None,
            client: None,
            purpose: None,
            verdict: None,
            status: None,
            node: String::new(),
        }
    }

    #[test]
    fn pages_join_up_even_inside_one_millisecond() {
        let all: Vec<_> = [1, 2, 2, 3, 3, 3, 3, 4].into_iter().map(at).collect();
        for limit in 1..=9 {
            let mut got = Vec::new();
            let mut cursor = (0, 0);
            loop {
                let from: Vec<_> = all
                    .iter()
                    .filter(|e| e.at_ms >= cursor.0)
                    .cloned()
                    .collect();
                let (p, next) = page(from, cursor, limit);
                assert!(p.len() <= limit);
                got.extend(p);
                match next {
                    Some(c) => cursor = c,
                    None => break,
                }
            }
            assert_eq!(got, all, "limit {limit}");
        }
    }
}
