//! The audit trail's seam: the core tells an [`AuditSink`] of every verdict
//! it gives an enrolled user (`Begin`, `Answer`, `Await`, `PasswordFailed`, `PushAnswer`), with
//! the user, device, transaction, client address and purpose it knows; the daemon's sink adds
//! its node name, keeps the entries and makes them durable, off the request's path.
//!
//! Never a secret, PIN, answer or code: [`AuditEntry`] has no field for one. Requests refused by
//! a rate limit before the user's state was read, and names that are not enrolled users, are
//! not audited (no entry is kept for a name nobody enrolled: an unknown name cannot grow the
//! trail).

use std::net::IpAddr;
use std::sync::Arc;

use sls_protocol::{AuditEntry, DeviceId, Message, Purpose, TxnId, Verdict};

use crate::store::{Store, TxnEntry};
use crate::CoreError;
use crate::{BeginRequest, BeginResult, Core};

/// Where the core's audit entries go. Neither method may block: the daemon's queues them.
pub trait AuditSink: Send + Sync {
    /// One entry; `node` is empty, for the sink to fill.
    fn record(&self, entry: AuditEntry);

    /// What an enrolled user's `entry` would have been, for a name nobody enrolled (no user
    /// enumeration): kept nowhere, but costing what [`AuditSink::record`] costs where that cost
    /// shows in the answers' timing (the same bytes written and synced), so that the trail's
    /// work does not tell the two kinds of names apart.
    fn decoy(&self, entry: AuditEntry);
}

/// What one verdict's entry says, before its time and node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen<'a> {
    pub user: &'a str,
    pub event: u16,
    pub device: Option<DeviceId>,
    pub txn: Option<TxnId>,
    pub client: Option<IpAddr>,
    pub purpose: Option<Purpose>,
}

/// Message type codes of the verdicts the core audits.
pub(crate) mod event {
    /// `Begin` (and `BeginTyped`, which is audited as it).
    pub const BEGIN: u16 = 0x0010;
    /// `Answer`.
    pub const ANSWER: u16 = 0x0011;
    /// `Await`.
    pub const AWAIT: u16 = 0x0012;
    /// `PasswordFailed`.
    pub const PASSWORD_FAILED: u16 = 0x0013;
    /// `PushAnswer`.
    pub const PUSH_ANSWER: u16 = 0x0033;
}

// The codes above are the protocol's: checked at compile time against its table.
const _: () = {
    assert!(matches_code(event::BEGIN, "Begin"));
    assert!(matches_code(event::ANSWER, "Answer"));
    assert!(matches_code(event::AWAIT, "Await"));
    assert!(matches_code(event::PASSWORD_FAILED, "PasswordFailed"));
    assert!(matches_code(event::PUSH_ANSWER, "PushAnswer"));
};

const fn matches_code(code: u16, name: &str) -> bool {
    let mut i = 0;
    while i < Message::TYPES.len() {
        let (c, n, _) = Message::TYPES[i];
        if c == code {
            return const_eq(n.as_bytes(), name.as_bytes());
        }
        i += 1;
    }
    false
}

const fn const_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl<S: Store> Core<S> {
    /// Sends the core's audit entries to `sink` from now on (once: a later call is ignored).
    pub fn set_audit(&self, sink: Arc<dyn AuditSink>) {
        let _ = self.0.audit.set(sink);
    }

    /// Whether an audit sink is set.
    pub fn audits(&self) -> bool {
        self.0.audit.get().is_some()
    }

    /// Records `seen` with `verdict` (None: a challenge was issued) at `now`, if a sink is set.
    pub(crate) fn audit(&self, now: u64, seen: Seen<'_>, verdict: Option<Verdict>) {
        self.audit_as(now, seen, verdict, true);
    }

    /// [`Core::audit`] for an enrolled user's verdict, or its decoy for a name nobody enrolled
    /// (see [`AuditSink::decoy`]).
    fn audit_as(&self, now: u64, seen: Seen<'_>, verdict: Option<Verdict>, enrolled: bool) {
        if let Some(sink) = self.0.audit.get() {
            let entry = AuditEntry {
                at_ms: now,
                user: seen.user.to_owned(),
                event: seen.event,
                device: seen.device,
                txn: seen.txn,
                client: seen.client,
                purpose: seen.purpose,
                verdict,
                status: None,
                node: String::new(),
            };
            if enrolled {
                sink.record(entry);
            } else {
                sink.decoy(entry);
            }
        }
    }

    /// An `Await`'s verdict on `txn` for the trail: its user and device from the index (an
    /// `Await` that outlived the index's memory of it is not audited; the push's own answer
    /// was).
    pub async fn audit_await(&self, txn: TxnId, verdict: Verdict) {
        if !self.audits() {
            return;
        }
        let now = self.now_ms();
        if let Ok(Some(entry)) = self.0.store.txn_get(txn, now).await {
            let seen = Seen {
                user: &entry.user,
                event: event::AWAIT,
                device: Some(entry.device),
                txn: Some(txn),
                client: None,
                purpose: None,
            };
            self.audit(now, seen, Some(verdict));
        }
    }
}

impl<S: Store> Core<S> {
    /// A `Begin`'s entry in the trail: the challenge it issued or the verdict it gave (a list
    /// of devices is a read, not audited); its decoy unless `enrolled`.
    pub(crate) fn audit_begin(
        &self,
        now: u64,
        req: &BeginRequest<'_>,
        value: &Result<BeginResult, CoreError>,
        enrolled: bool,
    ) {
        let (device, txn, verdict) = match value {
            Ok(BeginResult::Challenge { txn, device, .. }) => (Some(device.id), Some(*txn), None),
            Ok(BeginResult::Verdict(v)) => (req.device, None, Some(*v)),
            Ok(BeginResult::Devices(_)) | Err(_) => return,
        };
        let seen = Seen {
            user: req.user,
            event: event::BEGIN,
            device,
            txn,
            client: Some(req.client),
            purpose: Some(req.purpose),
        };
        self.audit_as(now, seen, verdict, enrolled);
    }

    /// A replayed answer's entry (R12): its user and device from the index.
    pub(crate) async fn audit_replay(&self, txn: TxnId, now: u64, client: IpAddr) {
        if !self.audits() {
            return;
        }
        if let Ok(Some(entry)) = self.0.store.txn_get(txn, now).await {
            let seen = Seen {
                user: &entry.user,
                event: event::ANSWER,
                device: Some(entry.device),
                txn: Some(txn),
                client: Some(client),
                purpose: None,
            };
            self.audit(now, seen, Some(Verdict::Replayed));
        }
    }

    /// An answer's entry (`Answer` with its client, `PushAnswer` with the app's address).
    pub(crate) fn audit_answer(
        &self,
        now: u64,
        entry: &TxnEntry,
        txn: TxnId,
        client: Option<IpAddr>,
        purpose: Option<Purpose>,
        verdict: Verdict,
    ) {
        self.audit_spent(now, event::ANSWER, entry, txn, (client, purpose), verdict);
    }

    /// A push answer's entry (R6), with the app's address.
    pub(crate) fn audit_push_answer(
        &self,
        now: u64,
        entry: &TxnEntry,
        txn: TxnId,
        client: Option<IpAddr>,
        purpose: Option<Purpose>,
        verdict: Verdict,
    ) {
        self.audit_spent(
            now,
            event::PUSH_ANSWER,
            entry,
            txn,
            (client, purpose),
            verdict,
        );
    }

    fn audit_spent(
        &self,
        now: u64,
        event: u16,
        entry: &TxnEntry,
        txn: TxnId,
        (client, purpose): (Option<IpAddr>, Option<Purpose>),
        verdict: Verdict,
    ) {
        let seen = Seen {
            user: &entry.user,
            event,
            device: Some(entry.device),
            txn: Some(txn),
            client,
            purpose,
        };
        self.audit(now, seen, Some(verdict));
    }

    /// A reported wrong password's entry (R11); its decoy unless `enrolled`.
    pub(crate) fn audit_password_failed(
        &self,
        now: u64,
        (user, enrolled): (&str, bool),
        client: IpAddr,
        v: Verdict,
    ) {
        let seen = Seen {
            user,
            event: event::PASSWORD_FAILED,
            device: None,
            txn: None,
            client: Some(client),
            purpose: None,
        };
        self.audit_as(now, seen, Some(v), enrolled);
    }
}
