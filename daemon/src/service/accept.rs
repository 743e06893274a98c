//! Accepting, on each endpoint's own thread (endpoints.rs): the accept loop, one task per
//! connection (its handshake, then its role, then one task per stream). The drain that ends it
//! is in endpoints.rs.
//!
//! ```text
//!  accept ─▶ retry or refuse under load (limits.rs)
//!         ─▶ connection task (handshake, role from ALPN + certificate, admission)
//!              ├─▶ an IB Key app that proves no key within the deadline: closed
//!              └─▶ stream task (stream.rs) ─▶ durable-wait and Await tasks
//!  `stopping` ─▶ stop accepting (the drain waits for the tasks, then closes the endpoint)
//! ```
//!
//! Every task is spawned on the runtime of the endpoint that accepted the connection; the
//! limits they check (the admission's) are the process's, shared by every endpoint.

use std::future::IntoFuture;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sls_protocol::{CloseCode, Role};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::limits::{Event, Handshake, Refusal, Slot};
use super::opened::Opened;
use super::state::{Peer, State};
use super::stream;
use super::tls;
use crate::backend::Backend;

/// Accepts the connections of `endpoint` (the `index`th) until shutdown begins (`stopping`).
pub async fn accept_loop<B: Backend>(state: &State<B>, endpoint: &quinn::Endpoint, index: usize) {
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                take(state, incoming, index);
            }
            () = state.stopping.cancelled() => break,
        }
    }
}

/// An incoming connection under load: a client whose address is not validated yet is sent a
/// stateless retry (it costs the daemon no state, and a spoofed source never answers it); past
/// the most handshakes at once, refused. Otherwise its handshake goes on in a task of its own.
///
/// An address past its handshake rate is sent a retry too when it has not been validated, and
/// refused once it has (a validated address spends a rate of its own, which a spoofed source
/// cannot spend for it).
fn take<B: Backend>(state: &State<B>, incoming: quinn::Incoming, endpoint: usize) {
    let validated = incoming.remote_address_validated();
    let ip = incoming.remote_address().ip().to_canonical();
    let now = std::time::Instant::now();
    if !validated && incoming.may_retry() {
        if state.admission.should_retry(validated)
            || !state.admission.handshake_rate(ip, now, false)
        {
            state.admission.count(Event::Retry);
            if let Err(e) = incoming.retry() {
                // Only when it may not be retried, checked above.
                e.into_incoming().ignore();
            }
            return;
        }
    } else if !state.admission.handshake_rate(ip, now, true) {
        state.admission.count(Event::RefusedHandshakeRate);
        incoming.refuse();
        return;
    }
    let Some(handshake) = state.admission.handshake() else {
        state.admission.count(Event::RefusedHandshake);
        incoming.refuse();
        return;
    };
    state
        .tasks
        .spawn(connection(state.clone(), incoming, handshake, endpoint));
}

/// One incoming connection on endpoint `endpoint`: its handshake, then its role and its place,
/// then its streams.
async fn connection<B: Backend>(
    state: State<B>,
    incoming: quinn::Incoming,
    handshake: Handshake,
    endpoint: usize,
) {
    let conn = tokio::select! {
        conn = incoming.into_future() => match conn {
            Ok(c) => c,
            Err(e) => {
                debug!("handshake failed: {e}");
                return;
            }
        },
        // A handshake under way when shutdown begins is abandoned.
        () = state.stopping.cancelled() => return,
    };
    drop(handshake);
    state.metrics.endpoint_accepted(endpoint);
    let role = match tls::role_of(&conn) {
        Ok(role) => role,
        Err(e) => {
            debug!(addr = %conn.remote_address(), "refused: {e}");
            close(&conn, CloseCode::NO_ROLE);
            return;
        }
    };
    let ip = conn.remote_address().ip().to_canonical();
    match state.admission.admit(ip, role == Role::Device) {
        Ok(slot) => serve_connection(state, conn, role, slot).await,
        Err(refusal) => {
            debug!(addr = %conn.remote_address(), "not admitted: {refusal:?}");
            state.admission.count(match refusal {
                Refusal::Busy => Event::RefusedBusy,
                Refusal::AddressBusy => Event::RefusedAddress,
                Refusal::Unproven => Event::RefusedUnproven,
            });
            close(&conn, refusal.code());
        }
    }
}

/// Closes `conn` with `code`, its description as the reason.
fn close(conn: &quinn::Connection, code: CloseCode) {
    let reason = code.describe().unwrap_or("");
    conn.close(quinn::VarInt::from_u32(code.0), reason.as_bytes());
}

/// Counts a connection open until dropped.
struct Open<B: Backend> {
    state: State<B>,
    role: Role,
}

impl<B: Backend> Open<B> {
    fn new(state: &State<B>, role: Role) -> Open<B> {
        state.connections.fetch_add(1, Ordering::Relaxed);
        state.metrics.connection_opened(role);
        Open {
            state: state.clone(),
            role,
        }
    }
}

impl<B: Backend> Drop for Open<B> {
    fn drop(&mut self) {
        self.state.connections.fetch_sub(1, Ordering::Relaxed);
        self.state.metrics.connection_closed(self.role);
    }
}

/// Serves one admitted connection: a tracked task per stream, until the connection closes or
/// shutdown begins (the streams then end by themselves, and the connection with them). An IB
/// Key app's connection that has proven no key when the deadline passes is closed: QUIC PINGs
/// keep a connection from idling out, but not from this.
pub async fn serve_connection<B: Backend>(
    state: State<B>,
    conn: quinn::Connection,
    role: Role,
    mut slot: Slot,
) {
    let addr = conn.remote_address();
    let _open = Open::new(&state, role);
    debug!(%addr, role = role.name(), "connection");
    let proof = CancellationToken::new();
    let opened = Arc::new(Opened::default());
    if !slot.is_unproven() {
        proof.cancel();
    }
    let deadline = tokio::time::sleep(state.admission.policy().prove_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    let peer = Peer::new(role, addr, proof.clone(), Arc::clone(&opened));
                    state
                        .tasks
                        .spawn(stream::serve_stream(state.clone(), send, recv, peer));
                }
                Err(e) => {
                    debug!(%addr, "connection closed: {e}");
                    break;
                }
            },
            () = proof.cancelled(), if slot.is_unproven() => slot.proven(),
            () = &mut deadline, if slot.is_unproven() => {
                debug!(%addr, "no key proven in time: closed");
                state.admission.count(Event::ProofTimeout);
                close(&conn, CloseCode::PROOF_TIMEOUT);
                break;
            }
            () = state.stopping.cancelled() => break,
        }
    }
}
