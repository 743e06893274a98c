//! One request in, one answer out: the map from messages to the core. Records a call produces
//! are encoded into `records`; the stream loop makes them durable before any answer leaves.

use std::time::Duration;

use rand::Rng;
use sls_protocol::{clip_text, limits::MAX_TEXT, BulkOutcome, Counter, Message, Status};
use tracing::warn;

use super::awaits;
use super::reply::{Later, Reply};
use super::state::{Peer, State};
use crate::core::{BeginRequest, BeginResult, CoreError, DeviceSpec, Outcome, Record, UserSpec};

/// An `Error` answer; the text is clipped to the wire's limit at a char boundary (it may quote
/// what the client sent, in any script).
fn error(status: Status, message: impl Into<String>) -> Reply {
    Reply::Now(Message::Error {
        status,
        message: clip_text(message, MAX_TEXT),
    })
}

fn core_error(e: &CoreError) -> Reply {
    error(e.status(), e.to_string())
}

fn keep(records: &mut Vec<Vec<u8>>, produced: Vec<Record>) {
    for r in produced {
        let mut buf = Vec::with_capacity(64);
        match r.encode(&mut buf) {
            Ok(()) => records.push(buf),
            // Records the core builds always encode; losing one silently would be worse.
            Err(e) => warn!("record not encodable: {e}"),
        }
    }
}

fn done<T>(
    records: &mut Vec<Vec<u8>>,
    r: Result<Outcome<T>, CoreError>,
    ok: impl FnOnce(T) -> Message,
) -> Reply {
    match r {
        Ok(out) => {
            keep(records, out.records);
            Reply::Now(ok(out.value))
        }
        Err(e) => core_error(&e),
    }
}

/// Handles one request of an allowed role (the stream loop checked access and the handshake).
pub fn handle(
    state: &State,
    peer: &mut Peer,
    id: u32,
    message: Message,
    records: &mut Vec<Vec<u8>>,
    later: &mut Later,
) -> Reply {
    let core = &state.core;
    match message {
        Message::Hello { .. } => error(Status::UNEXPECTED, "hello was already done on this stream"),
        Message::Ping {} => Reply::Now(Message::Pong {}),

        // ---- frontend ----
        Message::Begin {
            user,
            purpose,
            device,
            client,
        } => {
            let ready = |d: sls_protocol::DeviceId| state.devices.contains_key(&d);
            match core.begin(
                &BeginRequest {
                    user: &user,
                    purpose,
                    device,
                    client,
                },
                &ready,
            ) {
                Ok(out) => {
                    keep(records, out.records);
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
                            if let Some(p) = push {
                                if let Some(tx) = state.devices.get(&p.device) {
                                    let _ = tx.send(Message::Push {
                                        txn,
                                        user: p.user,
                                        nonce: p.nonce,
                                        purpose: p.purpose,
                                        expires_at_ms: p.expires_at_ms,
                                    });
                                }
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
        Message::Answer {
            txn,
            response,
            client,
        } => {
            let out = core.answer(txn, &response, client);
            keep(records, out.records);
            Reply::Now(Message::Judged { verdict: out.value })
        }
        Message::Await { txn, timeout_ms } => awaits::park(
            state,
            id,
            txn,
            Duration::from_millis(u64::from(timeout_ms)),
            later,
        ),
        Message::PasswordFailed { user, client } => {
            done(records, core.password_failed(&user, client), |verdict| {
                Message::Judged { verdict }
            })
        }
        Message::Status { user } => match core.status(&user) {
            Ok(Some(s)) => Reply::Now(Message::UserStatus {
                locked_until_ms: s.locked_until_ms,
                failures: s.failures,
                failures_left: s.failures_left,
                opted_out: s.opted_out,
                devices: s.devices,
            }),
            // No user enumeration for frontends: an unknown user reads as a fresh one.
            Ok(None) => Reply::Now(Message::UserStatus {
                locked_until_ms: 0,
                failures: 0,
                failures_left: core.config().lockout_threshold,
                opted_out: false,
                devices: Vec::new(),
            }),
            Err(e) => core_error(&e),
        },

        // ---- IB Key app ----
        // R8: one app may hold several users, each its own IB Key device: it proves each one
        // on the same stream, and receives all their pushes there.
        Message::DeviceHello { device } => {
            let nonce: [u8; 32] = rand::thread_rng().gen();
            peer.pending = Some((device, nonce));
            Reply::Now(Message::DeviceNonce { nonce })
        }
        Message::DeviceProve { proof } => match peer.pending.take() {
            Some((device, nonce)) if core.device_authenticate(device, &nonce, &proof) => {
                if !peer.proven.contains(&device) {
                    peer.proven.push(device);
                }
                Reply::Now(Message::Done {})
            }
            _ => error(Status::BAD_PROOF, "proof of possession failed"),
        },
        Message::PushAnswer {
            txn,
            approve,
            method,
            number,
            mac,
        } => match core.txn_device(txn) {
            Some(device) if peer.proven.contains(&device) => {
                let out = core.push_answer(device, txn, approve, method, number, &mac);
                keep(records, out.records);
                awaits::wake(state, txn);
                Reply::Now(Message::Judged { verdict: out.value })
            }
            // Not a push to a device this app proved: as if there were no such transaction.
            _ if !peer.proven.is_empty() => Reply::Now(Message::Judged {
                verdict: sls_protocol::Verdict::Unknown,
            }),
            _ => error(Status::FORBIDDEN, "prove the device key first"),
        },

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
            done(records, core.enrol_user(&spec), |()| Message::Done {})
        }
        Message::EnrolDevice {
            user,
            kind,
            secret,
            pin,
            suite,
        } => done(
            records,
            core.enrol_device(
                &user,
                &DeviceSpec {
                    kind,
                    secret,
                    pin,
                    suite,
                },
            ),
            |device| Message::Enrolled { device },
        ),
        Message::EnrolBulk { records: batch } => {
            let out = core.enrol_bulk(&batch);
            keep(records, out.records);
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
            records,
            core.issue_temp_code(&user),
            |(device, code, full_until_ms, portal_until_ms)| Message::TempCodeIssued {
                device,
                code,
                full_until_ms,
                portal_until_ms,
            },
        ),
        Message::IssueOnlineScc { user } => done(
            records,
            core.issue_online_scc(&user),
            |(device, secret, expires_at_ms)| Message::OnlineSccIssued {
                device,
                secret,
                expires_at_ms,
            },
        ),
        Message::Reactivate { user, device } => {
            done(records, core.reactivate(&user, device), |()| {
                Message::Done {}
            })
        }
        Message::OrderReplacement { user, secret, pin } => done(
            records,
            core.order_replacement(&user, &secret, &pin),
            |device| Message::Enrolled { device },
        ),
        Message::Ship { user, device } => {
            done(records, core.ship(&user, device), |()| Message::Done {})
        }
        Message::Activate { user, device } => {
            done(records, core.activate(&user, device), |()| Message::Done {})
        }
        Message::OptOut { user } => done(records, core.opt_out(&user), |()| Message::Done {}),
        Message::OptIn { user, by } => {
            done(records, core.opt_in(&user, &by), |()| Message::Done {})
        }
        Message::Unlock { user } => done(records, core.unlock(&user), |()| Message::Done {}),
        Message::ActivationStart { user, phone } => {
            done(records, core.activation_start(&user, &phone), |token| {
                Message::ActivationToken { token }
            })
        }
        Message::ActivateIbKey {
            user,
            token,
            key,
            pin,
        } => done(
            records,
            core.activate_ib_key(&user, &token, &key, &pin),
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
            let st = state.store.stats();
            counters.push(Counter {
                name: "journal_records".into(),
                value: st.records,
            });
            counters.push(Counter {
                name: "journal_syncs".into(),
                value: st.syncs,
            });
            counters.push(Counter {
                name: "connections".into(),
                value: state.connections.load(std::sync::atomic::Ordering::Relaxed),
            });
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
        } => match core.share_request(&requester, &owner, device, txn, &answer, peer.addr.ip()) {
            Ok(out) => {
                // Journalled whatever the verdict: a wrong owner answer is a failure (R11).
                keep(records, out.records);
                match out.value {
                    Ok((share, pending)) => Reply::Now(Message::ShareState { share, pending }),
                    Err(e) => core_error(&e),
                }
            }
            Err(e) => core_error(&e),
        },
        // Compliance decides a pending share (different entities, same identification).
        Message::ShareDecide { share, approve } => {
            done(records, core.share_decide(share, approve), |()| {
                Message::Done {}
            })
        }
        // The requester loses the shared copy and gets its own devices back.
        Message::ShareCancel { share } => {
            done(records, core.share_cancel(share), |()| Message::Done {})
        }
        // Daemon-only messages never reach here (access checked), but the enum is open.
        _ => error(Status::UNEXPECTED, "not a request"),
    }
}
