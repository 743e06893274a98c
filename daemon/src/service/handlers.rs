//! One request in, one answer out: the map from messages to the core. A call that changed
//! durable state leaves its journal position in `ticket`; the stream loop sends its answer
//! only once the journal is durable up to there.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use rand::Rng;
use sls_protocol::{clip_text, limits::MAX_TEXT, BulkOutcome, Counter, Message, Status};

use super::idempotent::Claim;
use super::opened::Opened;
use super::proof::prove;
use super::reply::{Later, Reply};
use super::state::{Peer, State, Verifier};
use super::{admin_audit, awaits, nodes};
use crate::core::Store;
use crate::core::{
    ActivationNotice, BeginRequest, BeginResult, DeviceSpec, Error, Outcome, StoreError, UserSpec,
};
use crate::logging::Throttle;

/// A store's ticket: answer once it is durable.
type Lsn = u64;

/// An `Error` answer; the text is clipped to the wire's limit at a char boundary (it may quote
/// what the client sent, in any script).
fn error(status: Status, message: impl Into<String>) -> Reply {
    Reply::Now(Message::Error {
        status,
        message: clip_text(message, MAX_TEXT),
    })
}

fn core_error(e: &Error) -> Reply {
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
fn store_error(e: &StoreError) -> Reply {
    warn_store(e);
    if matches!(e, StoreError::Unavailable(_)) {
        error(Status::UNAVAILABLE, "state store unavailable")
    } else {
        error(Status::INTERNAL, "stored state could not be read")
    }
}

/// Joins what a step produced into the request's ticket ([`sls_core::Store::join_tickets`]).
fn keep(core: &Verifier, ticket: &mut Option<Lsn>, produced: Option<Lsn>) {
    *ticket = core.store().later(*ticket, produced);
}

fn done<T>(
    core: &Verifier,
    ticket: &mut Option<Lsn>,
    r: Result<Outcome<T, Lsn>, Error>,
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

/// Handles one request of an allowed role (the stream loop checked access and the handshake).
pub async fn handle(
    state: &State,
    peer: &mut Peer,
    id: u32,
    message: Message,
    ticket: &mut Option<Lsn>,
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
        other => Box::pin(rare(state, peer, other, ticket)).await,
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
    )
}

/// Handles a login's frontend request ([`is_login`]); `opened`: the connection's open
/// challenges.
pub async fn login(
    state: &State,
    opened: &Opened,
    message: Message,
    ticket: &mut Option<Lsn>,
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

        _ => error(Status::UNEXPECTED, "not a login's request"),
    }
}

/// The requests that are not a login's: an IB Key app's proof and the admin tool's; an admin
/// write is audited (issue 29).
async fn rare(state: &State, peer: &mut Peer, message: Message, ticket: &mut Option<Lsn>) -> Reply {
    let concerns = state
        .audit
        .is_on()
        .then(|| admin_audit::concerns(&message))
        .flatten();
    let reply = admin(state, peer, message, ticket).await;
    if let Some(c) = concerns {
        admin_audit::record(state, c, &reply, peer.addr.ip());
    }
    reply
}

/// `Idempotent`: the inner admin request once per key (issue 29).
async fn idempotent(
    state: &State,
    peer: &mut Peer,
    key: [u8; 16],
    request: u16,
    body: &[u8],
    ticket: &mut Option<Lsn>,
) -> Reply {
    match state.idempotent.claim(key, request, body) {
        Claim::Answer(reply, first) => {
            keep(&state.core, ticket, first);
            reply
        }
        Claim::Run(inner) => {
            let mut own = None;
            let reply = Box::pin(rare(state, peer, inner, &mut own)).await;
            state.idempotent.finish(key, &reply, own);
            keep(&state.core, ticket, own);
            reply
        }
    }
}

async fn admin(
    state: &State,
    peer: &mut Peer,
    message: Message,
    ticket: &mut Option<Lsn>,
) -> Reply {
    let core = &state.core;
    match message {
        Message::AuditRead {
            user,
            since_ms,
            skip,
            limit,
        } => admin_audit::read(state, &user, (since_ms, skip), limit).await,
        Message::Idempotent { key, request, body } => {
            idempotent(state, peer, key, request, &body, ticket).await
        }
        m @ (Message::ListDevices { .. }
        | Message::UserDetail { .. }
        | Message::UpdateUser { .. }
        | Message::ListShares { .. }
        | Message::RemoveDevice { .. }) => admin_audit::inspect(state, m, ticket).await,
        Message::DeviceProve { proof } => prove(state, peer, &proof).await,

        // ---- admin ----
        Message::EnrolUser {
            user,
            entity,
            identification,
            primary,
            equity_usd,
        } => {
            let spec = UserSpec {
                name: user,
                entity,
                identification,
                primary,
                equity_usd,
            };
            done(core, ticket, core.enrol_user(&spec).await, |()| {
                Message::Done {}
            })
        }
        Message::EnrolDevice {
            user,
            kind,
            secret,
            pin,
            suite,
        } => done(
            core,
            ticket,
            core.enrol_device(
                &user,
                &DeviceSpec {
                    kind,
                    secret,
                    pin,
                    suite,
                },
            )
            .await,
            |device| Message::Enrolled { device },
        ),
        Message::EnrolBulk { records: batch } => {
            let out = match core.enrol_bulk(&batch).await {
                Ok(out) => out,
                Err(e) => return store_error(&e),
            };
            keep(core, ticket, out.ticket);
            let outcomes = out
                .value
                .into_iter()
                .map(|r| match r {
                    Ok(d) => BulkOutcome::Enrolled(d),
                    Err(e) => BulkOutcome::Refused(e.status()),
                })
                .collect();
            Reply::Now(Message::BulkEnrolled { outcomes })
        }
        Message::IssueTempCode { user } => done(
            core,
            ticket,
            core.issue_temp_code(&user).await,
            |(device, code, full_until_ms, portal_until_ms)| Message::TempCodeIssued {
                device,
                code,
                full_until_ms,
                portal_until_ms,
            },
        ),
        Message::IssueOnlineScc { user } => done(
            core,
            ticket,
            core.issue_online_scc(&user).await,
            |(device, secret, expires_at_ms)| Message::OnlineSccIssued {
                device,
                secret,
                expires_at_ms,
            },
        ),
        Message::Reactivate { user, device } => {
            done(core, ticket, core.reactivate(&user, device).await, |()| {
                Message::Done {}
            })
        }
        Message::OrderReplacement { user, secret, pin } => done(
            core,
            ticket,
            core.order_replacement(&user, &secret, &pin).await,
            |device| Message::Enrolled { device },
        ),
        Message::Ship { user, device } => {
            done(core, ticket, core.ship(&user, device).await, |()| {
                Message::Done {}
            })
        }
        Message::Activate { user, device } => {
            done(core, ticket, core.activate(&user, device).await, |()| {
                Message::Done {}
            })
        }
        Message::OptOut { user } => done(core, ticket, core.opt_out(&user).await, |()| {
            Message::Done {}
        }),
        Message::OptIn { user, by } => done(core, ticket, core.opt_in(&user, &by).await, |()| {
            Message::Done {}
        }),
        Message::Unlock { user } => {
            done(
                core,
                ticket,
                core.unlock(&user).await,
                |()| Message::Done {},
            )
        }
        // ---- admin: a device's life (version 3) ----
        Message::RevokeDevice {
            user,
            device,
            suspend,
            reason,
        } => done(
            core,
            ticket,
            core.revoke_device(&user, device, suspend, reason).await,
            |()| Message::Done {},
        ),
        Message::ResumeDevice { user, device } => done(
            core,
            ticket,
            core.resume_device(&user, device).await,
            |()| Message::Done {},
        ),
        Message::OptInOverride { user } => {
            done(core, ticket, core.opt_in_override(&user).await, |()| {
                Message::Done {}
            })
        }
        // R3: a withdrawal confirmed and then not executed no longer counts.
        Message::ReleaseWithdrawal { user, txn } => done(
            core,
            ticket,
            core.release_withdrawal(&user, txn).await,
            |()| Message::Done {},
        ),

        Message::ActivationStart { user, phone } => done(
            core,
            ticket,
            core.activation_start(&user, &phone).await,
            |token| Message::ActivationToken { token },
        ),
        Message::ActivateIbKey {
            user,
            token,
            key,
            pin,
        } => done(
            core,
            ticket,
            core.activate_ib_key(&user, &token, &key, &pin).await,
            |device| Message::Enrolled { device },
        ),
        Message::GetStats {} => {
            let mut counters: Vec<Counter> = core
                .stats()
                .into_iter()
                .map(|(name, value)| Counter {
                    name: name.into(),
                    value,
                })
                .collect();
            if let Some(journal) = &state.journal {
                let st = journal.stats();
                for (name, value) in [
                    ("journal_records", st.records),
                    ("journal_syncs", st.syncs),
                    ("store_ready", u64::from(st.ready)),
                    ("store_retries", st.retries),
                    ("store_unhealthy_spells", st.unhealthy_spells),
                ] {
                    counters.push(Counter {
                        name: name.into(),
                        value,
                    });
                }
            }
            let (held, held_bytes) = state.audit.held();
            for (name, value) in [
                ("audit_recorded", state.audit.recorded.load(Relaxed)),
                ("audit_dropped", state.audit.dropped.load(Relaxed)),
                ("audit_held_entries", held),
                ("audit_held_bytes", held_bytes),
            ] {
                counters.push(Counter {
                    name: name.into(),
                    value,
                });
            }
            counters.push(Counter {
                name: "connections".into(),
                value: state.connections.load(std::sync::atomic::Ordering::Relaxed),
            });
            counters.extend(
                state
                    .admission
                    .counters()
                    .into_iter()
                    .map(|(name, value)| Counter {
                        name: name.into(),
                        value,
                    }),
            );
            Reply::Now(Message::Stats { counters })
        }

        // ---- admin: device sharing (R17) ----
        // The requester gives the owner's answer to a challenge of the shared device (from a
        // `Begin` for the owner). It counts like any answer (R11) and is rate-limited by the
        // address it came from: ShareRequest carries no end-user address, so the admin tool's.
        Message::ShareRequest {
            requester,
            owner,
            device,
            txn,
            answer,
        } => match core
            .share_request(&requester, &owner, device, txn, &answer, peer.addr.ip())
            .await
        {
            Ok(out) => {
                // Journalled whatever the verdict: a wrong owner answer is a failure (R11).
                keep(core, ticket, out.ticket);
                match out.value {
                    Ok((share, pending)) => Reply::Now(Message::ShareState { share, pending }),
                    Err(e) => error(e.status(), e.to_string()),
                }
            }
            Err(e) => core_error(&e),
        },
        // Compliance decides a pending share (different entities, same identification).
        Message::ShareDecide { share, approve } => done(
            core,
            ticket,
            core.share_decide(share, approve).await,
            |()| Message::Done {},
        ),
        // The requester loses the shared copy and gets its own devices back.
        Message::ShareCancel { share } => {
            done(core, ticket, core.share_cancel(share).await, |()| {
                Message::Done {}
            })
        }
        // Daemon-only messages never reach here (access checked), but the enum is open.
        _ => error(Status::UNEXPECTED, "not a request"),
    }
}

/// `Begin`, or with `typed` `BeginTyped`: the typed challenge even where a push could go (R6).
#[allow(clippy::too_many_arguments)]
async fn begin(
    state: &State,
    opened: &Opened,
    user: &str,
    purpose: sls_protocol::Purpose,
    device: Option<sls_protocol::DeviceId>,
    client: std::net::IpAddr,
    typed: bool,
    ticket: &mut Option<Lsn>,
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
    let ready = |d: sls_protocol::DeviceId| !typed && nodes::reachable(state, d);
    match core
        .begin(
            &BeginRequest {
                user,
                purpose,
                device,
                client,
            },
            &ready,
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
