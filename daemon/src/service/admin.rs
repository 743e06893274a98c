//! The admin tool's requests (and an IB Key app's proof): enrolment, the device lifecycle,
//! sharing, unlocks, the audit trail and the admin reads; each admin write audited, and made
//! idempotent by a key when the client asks.

use std::sync::atomic::Ordering::Relaxed;

use sls_protocol::{BulkOutcome, Counter, Message, Status};

use super::admin_audit;
use super::answers::{core_error, done, error, keep, store_error};
use super::idempotent::Claim;
use super::proof::prove;
use super::reply::Reply;
use super::state::{Peer, State, Ticket};
use crate::backend::Backend;
use crate::engine::{DeviceSpec, UserSpec};

/// The requests that are not a login's: an IB Key app's proof and the admin tool's; an admin
/// write is audited.
pub(super) async fn rare<B: Backend>(
    state: &State<B>,
    peer: &mut Peer,
    message: Message,
    ticket: &mut Option<Ticket<B>>,
) -> Reply {
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

/// `Idempotent`: the inner admin request once per key.
async fn idempotent<B: Backend>(
    state: &State<B>,
    peer: &mut Peer,
    key: [u8; 16],
    request: u16,
    body: &[u8],
    ticket: &mut Option<Ticket<B>>,
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

async fn admin<B: Backend>(
    state: &State<B>,
    peer: &mut Peer,
    message: Message,
    ticket: &mut Option<Ticket<B>>,
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
