//! Accepting: the accept loop, one task per connection (its handshake, then its role, then one
//! task per stream), and the drain at shutdown.
//!
//! ```text
//!  accept ─▶ connection task (handshake, role from ALPN + certificate)
//!              └─▶ stream task (stream.rs) ─▶ durable-wait and Await tasks
//!  shutdown ─▶ stop accepting ─▶ cancel `stopping` ─▶ wait for every tracked task (grace)
//!           ─▶ close the endpoint
//! ```

use std::future::IntoFuture;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sls_protocol::Role;
use tracing::{debug, info, warn};

use super::state::{Peer, State};
use super::stream;
use super::tls;

/// Accepts connections until `shutdown` resolves, then drains.
pub async fn accept_loop(
    state: State,
    endpoint: quinn::Endpoint,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                state.tasks.spawn(connection(state.clone(), incoming));
            }
            () = &mut shutdown => break,
        }
    }
    drain(&state, &endpoint).await;
}

/// Shutdown: refuse new requests, let every stream send what it owes and end, wait for every
/// tracked task under the grace deadline, then close the endpoint.
async fn drain(state: &State, endpoint: &quinn::Endpoint) {
    info!("shutting down: draining in-flight requests");
    state.stopping.cancel();
    state.tasks.close();
    if tokio::time::timeout(state.limits.grace, state.tasks.wait())
        .await
        .is_err()
    {
        warn!(
            tasks = state.tasks.len(),
            in_flight = state.in_flight.load(Ordering::Acquire),
            awaits = state.waiting.load(Ordering::Acquire),
            "grace period over: closing with work outstanding"
        );
    }
    endpoint.close(quinn::VarInt::from_u32(0), b"shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}

/// One incoming connection: its handshake, then its role, then its streams.
async fn connection(state: State, incoming: quinn::Incoming) {
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
    match tls::role_of(&conn) {
        Ok(role) => serve_connection(state, conn, role).await,
        Err(e) => {
            debug!(addr = %conn.remote_address(), "refused: {e}");
            conn.close(quinn::VarInt::from_u32(0x101), b"no valid role certificate");
        }
    }
}

/// Counts a connection open until dropped.
struct Open {
    state: State,
    role: Role,
}

impl Open {
    fn new(state: &State, role: Role) -> Open {
        state.connections.fetch_add(1, Ordering::Relaxed);
        state.metrics.connection_opened(role);
        Open {
            state: state.clone(),
            role,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.state.connections.fetch_sub(1, Ordering::Relaxed);
        self.state.metrics.connection_closed(self.role);
    }
}

/// Serves one accepted connection: a tracked task per stream, until the connection closes or
/// shutdown begins (the streams then end by themselves, and the connection with them).
pub async fn serve_connection(state: State, conn: quinn::Connection, role: Role) {
    let addr = conn.remote_address();
    let _open = Open::new(&state, role);
    debug!(%addr, role = role.name(), "connection");
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    let peer = Peer::new(role, addr);
                    state
                        .tasks
                        .spawn(stream::serve_stream(state.clone(), send, recv, peer));
                }
                Err(e) => {
                    debug!(%addr, "connection closed: {e}");
                    break;
                }
            },
            () = state.stopping.cancelled() => break,
        }
    }
}
