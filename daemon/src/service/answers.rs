//! How the handlers answer: an `Error` frame from a status or a failure, the store's failures
//! (refused, never answered as if recorded), and the ticket a change leaves to wait on.

use std::time::Duration;

use sls_protocol::{clip_text, limits::MAX_TEXT, Message, Status};

use super::reply::Reply;
use super::state::{Ticket, Verifier};
use crate::backend::Backend;
use crate::engine::{Error, Outcome, StoreError};
use crate::logging::Throttle;

/// An `Error` answer; the text is clipped to the wire's limit at a char boundary (it may quote
/// what the client sent, in any script).
pub(super) fn error(status: Status, message: impl Into<String>) -> Reply {
    Reply::Now(Message::Error {
        status,
        message: clip_text(message, MAX_TEXT),
    })
}

pub(super) fn core_error(e: &Error) -> Reply {
    if let Error::Store(e) = e {
        return store_error(e);
    }
    error(e.status(), e.to_string())
}

/// Warnings of store errors: a failing disk fails every request, one line per 10 s is plenty.
pub(super) static STORE_WARNINGS: Throttle = Throttle::new(Duration::from_secs(10));

/// Logs a store error, rate-limited by [`STORE_WARNINGS`].
pub(super) fn warn_store(e: &dyn std::fmt::Display) {
    if let Some(suppressed) = STORE_WARNINGS.allow() {
        tracing::warn!(suppressed, "store: {e}");
    }
}

/// The store could not record or read state: refused, never answered as if recorded.
pub(super) fn store_error(e: &StoreError) -> Reply {
    warn_store(e);
    if matches!(e, StoreError::Unavailable(_)) {
        error(Status::UNAVAILABLE, "state store unavailable")
    } else {
        error(Status::INTERNAL, "stored state could not be read")
    }
}

/// Joins what a step produced into the request's ticket ([`sls_engine::Store::join_tickets`]).
pub(super) fn keep<B: Backend>(
    core: &Verifier<B>,
    ticket: &mut Option<Ticket<B>>,
    produced: Option<Ticket<B>>,
) {
    *ticket = core.store().later(*ticket, produced);
}

pub(super) fn done<B: Backend, T>(
    core: &Verifier<B>,
    ticket: &mut Option<Ticket<B>>,
    r: Result<Outcome<T, Ticket<B>>, Error>,
    ok: impl FnOnce(T) -> Message,
) -> Reply {
    match r {
        Ok(out) => {
            keep(core, ticket, out.ticket);
            Reply::Now(ok(out.value))
        }
        Err(e) => core_error(&e),
    }
}
