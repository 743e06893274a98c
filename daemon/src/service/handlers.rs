//! One request in, one answer out: the map from messages to the core. A call that changed
//! durable state leaves its journal position in `ticket`; the stream loop sends its answer
//! only once the journal is durable up to there.

use std::time::Duration;

use rand::Rng;
use sls_protocol::{Message, Status};

use super::answers::{core_error, done, error, keep, store_error};
use super::opened::Opened;
use super::reply::{Later, Reply};
use super::state::{Peer, State, Ticket};
use super::{admin, awaits, nodes};
use crate::backend::Backend;
use crate::engine::{ActivationNotice, BeginRequest, BeginResult};

/// Handles one request of an allowed role (the stream loop checked access and the handshake).
pub async fn handle<B: Backend>(
    state: &State<B>,
    peer: &mut Peer,
    id: u32,
    message: Message,
    ticket: &mut Option<Ticket<B>>,
    later: &mut Later,
) -> Reply {
    let core = &state.core;
    match message {
        Message::Hello { .. } => error(Status::UNEXPECTED, "hello was already done on this stream"),
        Message::Ping {} => Reply::Now(Message::Pong {}),

        // ---- frontend ----
        m if is_login(&m) => login(state, &peer.opened, m, ticket).await,
        Message::Await { txn, timeout_ms } => awaits::park(
            state,
            id,
            txn,
            Duration::from_millis(u64::from(timeout_ms)),
            later,
        ),

        // ---- IB Key app ----
        // R8: one app may hold several users, each its own IB Key device: it proves each one
        // on the same stream, and receives all their pushes there.
        Message::DeviceHello { device } => {
            let nonce: [u8; 32] = rand::thread_rng().gen();
            peer.pending = Some((device, nonce));
            Reply::Now(Message::DeviceNonce { nonce })
        }
        Message::PushAnswer {
            txn,
            approve,
            method,
            number,
            mac,
        } => match core.txn_device(txn).await {
            Err(e) => store_error(&e),
            Ok(Some(device)) if peer.proven.contains(&device) => {
                let from = Some(peer.addr.ip());
                match core
                    .push_answer_from(device, txn, approve, method, number, &mac, from)
                    .await
                {
                    Ok(out) => {
                        keep(core, ticket, out.ticket);
                        nodes::decided(state, txn);
                        Reply::Now(Message::Judged { verdict: out.value })
                    }
                    Err(e) => store_error(&e),
                }
            }
            // Not a push to a device this app proved: as if there were no such transaction.
            _ if !peer.proven.is_empty() => Reply::Now(Message::Judged {
                verdict: sls_protocol::Verdict::Unknown,
            }),
            _ => error(Status::FORBIDDEN, "prove the device key first"),
        },
        // The rest is rare (a device's proof, administration): boxed, so that its larger
        // futures do not size, and get copied with, every login's.
        other => Box::pin(admin::rare(state, peer, other, ticket)).await,
    }
}

/// Whether `message` is one of a login's frontend requests, which [`login`] handles: they touch
/// the store and the connection's open challenges, never the stream's own state, so a stream
/// may handle several at once.
pub fn is_login(message: &Message) -> bool {
    matches!(
        message,
        Message::Begin { .. }
            | Message::BeginTyped { .. }
            | Message::Notices { .. }
            | Message::Answer { .. }
            | Message::PasswordFailed { .. }
            | Message::Status { .. }
            | Message::TxnVerdict { .. }
    )
}

/// Handles a login's frontend request ([`is_login`]); `opened`: the connection's open
/// challenges.
pub async fn login<B: Backend>(
    state: &State<B>,
    opened: &Opened,
    message: Message,
    ticket: &mut Option<Ticket<B>>,
) -> Reply {
    let core = &state.core;
    match message {
        Message::Begin {
            user,
            purpose,
            device,
            client,
        } => begin(state, opened, &user, purpose, device, client, false, ticket).await,
        // R6: the typed challenge, never a push, when the user asks for it.
        Message::BeginTyped {
            user,
            purpose,
            device,
            client,
        } => begin(state, opened, &user, purpose, device, client, true, ticket).await,
        Message::Notices { user } => match core.notices(&user).await {
            Ok(n) => Reply::Now(Message::UserNotices {
                replacement: n.replacement,
                activation: match n.activation {
                    ActivationNotice::None => 0,
                    ActivationNotice::Approaching => 1,
                    ActivationNotice::Imminent => 2,
                },
                activates_at_ms: n.activates_at_ms,
                mass_lockout: n.mass_lockout,
            }),
            Err(e) => core_error(&e),
        },
        Message::Answer {
            txn,
            response,
            client,
        } => match core.answer(txn, &response, client).await {
            Ok(out) => {
                keep(core, ticket, out.ticket);
                opened.answered(txn, &out.value);
                Reply::Now(Message::Judged { verdict: out.value })
            }
            Err(e) => store_error(&e),
        },
        Message::PasswordFailed { user, client } => done(
            core,
            ticket,
            core.password_failed(&user, client).await,
            |verdict| Message::Judged { verdict },
        ),
        Message::Status { user } => match core.status(&user).await {
            Ok(s) => Reply::Now(Message::UserStatus {
                locked_until_ms: s.locked_until_ms,
                failures: s.failures,
                failures_left: s.failures_left,
                opted_out: s.opted_out,
                devices: s.devices,
            }),
            Err(e) => core_error(&e),
        },
        // R12: the first verdict of a transaction, read (for the replay window), never
        // judged again: a frontend whose `Answer` got no reply learns it on any node. On a
        // shared store it waits for a shard as an `Answer` does, so it is handled beside the
        // stream's other requests, never in front of them.
        Message::TxnVerdict { txn } => match core.txn_verdict(txn).await {
            Ok(verdict) => Reply::Now(Message::Judged { verdict }),
            Err(e) => store_error(&e),
        },

        _ => error(Status::UNEXPECTED, "not a login's request"),
    }
}

/// `Begin`, or with `typed` `BeginTyped`: the typed challenge even where a push could go (R6).
#[allow(clippy::too_many_arguments)]
async fn begin<B: Backend>(
    state: &State<B>,
    opened: &Opened,
    user: &str,
    purpose: sls_protocol::Purpose,
    device: Option<sls_protocol::DeviceId>,
    client: std::net::IpAddr,
    typed: bool,
    ticket: &mut Option<Ticket<B>>,
) -> Reply {
    let core = &state.core;
    // A `Begin` without a device issues no challenge: it needs no place.
    let place = match device {
        Some(_) => {
            let cap = state.admission.policy().max_open_per_connection;
            match opened.reserve(core, cap).await {
                Some(place) => Some(place),
                None => {
                    return error(
                        Status::CAPACITY,
                        "this connection's open challenges are at its cap",
                    )
                }
            }
        }
        None => None,
    };
    // R6: a push only where the picked device's app can take one now (read here, once, not
    // from inside the rule the store may run again).
    let push_ready = !typed && device.is_some_and(|d| nodes::reachable(state, d));
    match core
        .begin(
            &BeginRequest {
                user,
                purpose,
                device,
                client,
            },
            push_ready,
        )
        .await
    {
        Ok(out) => {
            keep(core, ticket, out.ticket);
            Reply::Now(match out.value {
                BeginResult::Devices(devices) => Message::Devices { devices },
                BeginResult::Verdict(verdict) => Message::Judged { verdict },
                BeginResult::Challenge {
                    txn,
                    device,
                    challenge,
                    expires_at_ms,
                    push,
                } => {
                    if let Some(place) = place {
                        place.issued(txn, core.config().challenge_ttl);
                    }
                    if let Some(p) = push {
                        let message = Message::Push {
                            txn,
                            user: p.user,
                            nonce: p.nonce,
                            purpose: p.purpose,
                            expires_at_ms: p.expires_at_ms,
                        };
                        nodes::push(state, p.device, message);
                    }
                    Message::ChallengeIssued {
                        txn,
                        device,
                        challenge,
                        expires_at_ms,
                    }
                }
            })
        }
        Err(e) => core_error(&e),
    }
}
