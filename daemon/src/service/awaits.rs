//! Parked `Await`s (R6): a frontend waits for the IB Key app's decision on a push. Each is a
//! tracked task that answers on the frontend's stream when the push is decided, expires, the
//! timeout passes, or shutdown begins (then with the verdict as it stands: no push can be
//! answered while the daemon drains).

use std::sync::Arc;
use std::time::Duration;

use sls_protocol::{Message, Status, TxnId, Verdict};
use tokio::sync::Notify;

use super::reply::{unavailable, Later, Reply};
use super::state::{Held, State};
use crate::backend::Backend;

/// Parks request `id`'s `Await` on `txn` until the push is answered, expires or `timeout`
/// (capped by the service's limit) passes.
pub fn park<B: Backend>(
    state: &State<B>,
    id: u32,
    txn: TxnId,
    timeout: Duration,
    later: &mut Later,
) -> Reply {
    if state.waiting.load(std::sync::atomic::Ordering::Acquire) >= state.limits.max_waiting {
        return Reply::Now(Message::Error {
            status: Status::CAPACITY,
            message: "too many awaits".into(),
        });
    }
    let notify = state
        .waiters
        .entry(txn)
        .or_insert_with(|| Arc::new(Notify::new()))
        .clone();
    let waiting = Held::new(&state.waiting, 1);
    let late = later.promise(id);
    let st = state.clone();
    let deadline = tokio::time::Instant::now() + timeout.min(state.limits.max_await);
    // On a shared store the wake may come from another node, over a bus that can lose it.
    let poll = state.limits.await_poll.unwrap_or(state.limits.max_await);
    state.tasks.spawn(async move {
        let _waiting = waiting;
        // A store that cannot be read now may be back before the deadline: keep waiting, and
        // answer UNAVAILABLE only if it is not.
        let verdict = loop {
            // Made before the verdict is read, so that a wake in between is not missed.
            let notified = notify.notified();
            let read = st.core.txn_verdict(txn).await;
            if let Ok(v) = &read {
                if *v != Verdict::Pending {
                    break read;
                }
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(poll) => {}
                () = tokio::time::sleep_until(deadline) => break st.core.txn_verdict(txn).await,
                () = st.stopping.cancelled() => break st.core.txn_verdict(txn).await,
            }
        };
        // The map's reference and ours: nobody else waits on this transaction.
        st.waiters.remove_if(&txn, |_, n| Arc::strong_count(n) <= 2);
        late.send(match verdict {
            Ok(verdict) => {
                st.core.audit_await(txn, verdict).await;
                Message::Judged { verdict }
            }
            Err(e) => {
                super::answers::warn_store(&e);
                unavailable("the decision could not be read from the state store")
            }
        });
    });
    Reply::Later
}

/// Wakes the frontends awaiting `txn`.
pub fn wake<B: Backend>(state: &State<B>, txn: TxnId) {
    if let Some(n) = state.waiters.get(&txn) {
        n.notify_waiters();
    }
}
