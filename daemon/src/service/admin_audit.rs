//! Admin changes in the audit trail, and the admin's read of it: what each
//! admin write changed, for which user and device, done or refused with which status, from
//! which admin address.

use sls_protocol::{BulkOutcome, DeviceId, Message, Status};

use super::reply::Reply;
use super::state::{State, Ticket};
use crate::backend::Backend;

/// An admin write's type code, and the users (and device) it concerns.
pub type Concerns = (u16, Vec<(String, Option<DeviceId>)>);

/// The user(s) and device an admin write concerns, before it runs; `None` for a read or a
/// request that names no user (a share's decision names a share: its requester's entry is the
/// request's).
pub fn concerns(m: &Message) -> Option<Concerns> {
    let one = |user: &String, device: Option<DeviceId>| vec![(user.clone(), device)];
    let users = match m {
        Message::EnrolUser { user, .. }
        | Message::EnrolDevice { user, .. }
        | Message::IssueTempCode { user }
        | Message::IssueOnlineScc { user }
        | Message::OrderReplacement { user, .. }
        | Message::OptOut { user }
        | Message::OptIn { user, .. }
        | Message::Unlock { user }
        | Message::ActivationStart { user, .. }
        | Message::ActivateIbKey { user, .. }
        | Message::UpdateUser { user, .. }
        | Message::OptInOverride { user }
        | Message::ReleaseWithdrawal { user, .. } => one(user, None),
        Message::Reactivate { user, device }
        | Message::RevokeDevice { user, device, .. }
        | Message::ResumeDevice { user, device }
        | Message::RemoveDevice { user, device }
        | Message::Ship { user, device }
        | Message::Activate { user, device } => one(user, Some(*device)),
        Message::ShareRequest {
            requester, device, ..
        } => one(requester, Some(*device)),
        Message::EnrolBulk { records } => records.iter().map(|r| (r.user.clone(), None)).collect(),
        _ => return None,
    };
    Some((m.type_code(), users))
}

/// Records the admin write `concerns` found, answered `reply`, from `client`.
pub fn record<B: Backend>(
    state: &State<B>,
    (event, users): Concerns,
    reply: &Reply,
    client: std::net::IpAddr,
) {
    let Reply::Now(answer) = reply else {
        return;
    };
    let (made, refused) = match answer {
        Message::Enrolled { device }
        | Message::TempCodeIssued { device, .. }
        | Message::OnlineSccIssued { device, .. } => (Some(*device), None),
        Message::Error { status, .. } => (None, Some(*status)),
        _ => (None, None),
    };
    if let Message::BulkEnrolled { outcomes } = answer {
        for ((user, _), outcome) in users.iter().zip(outcomes) {
            let (device, refused) = match outcome {
                BulkOutcome::Enrolled(d) => (Some(*d), None),
                BulkOutcome::Refused(s) => (None, Some(*s)),
            };
            state
                .audit
                .admin_change(user, event, device, client, refused);
        }
        return;
    }
    // A store that failed decided nothing: no change to record.
    if matches!(refused, Some(Status::UNAVAILABLE | Status::INTERNAL)) {
        return;
    }
    for (user, device) in &users {
        state
            .audit
            .admin_change(user, event, device.or(made), client, refused);
    }
}

/// `AuditRead`: a page of `user`'s trail.
pub async fn read<B: Backend>(
    state: &State<B>,
    user: &str,
    since: crate::audit::Cursor,
    limit: u16,
) -> Reply {
    if !sls_protocol::valid_user_name(user) {
        return Reply::Now(Message::Error {
            status: Status::BAD_CHARACTER,
            message: "BAD CHARACTER".into(),
        });
    }
    match state
        .audit
        .read(state.core.store(), user, since, limit)
        .await
    {
        Ok((entries, next)) => {
            let (next_since_ms, next_skip) = next.unwrap_or((0, 0));
            Reply::Now(Message::AuditEntries {
                entries,
                more: next.is_some(),
                next_since_ms,
                next_skip,
            })
        }
        Err(e) => {
            super::answers::warn_store(&e);
            Reply::Now(super::reply::unavailable(
                "the audit trail could not be read",
            ))
        }
    }
}

/// `ListDevices`, `UserDetail`, `UpdateUser`, `ListShares`, `RemoveDevice`.
pub async fn inspect<B: Backend>(
    state: &State<B>,
    m: Message,
    ticket: &mut Option<Ticket<B>>,
) -> Reply {
    let core = &state.core;
    let refused = |e: &sls_engine::Error| {
        if let sls_engine::Error::Store(s) = e {
            super::answers::warn_store(s);
            return Reply::Now(super::reply::unavailable("state store unavailable"));
        }
        Reply::Now(Message::Error {
            status: e.status(),
            message: sls_protocol::clip_text(e.to_string(), sls_protocol::limits::MAX_TEXT),
        })
    };
    let cap = sls_protocol::limits::MAX_LIST;
    match m {
        Message::ListDevices { user } => match core.list_devices(&user).await {
            Ok(list) => Reply::Now(Message::DeviceList {
                devices: list
                    .into_iter()
                    .take(cap)
                    .map(|d| sls_protocol::DeviceDetail {
                        id: d.id,
                        kind: d.kind,
                        state: d.state as u8,
                        since_ms: d.since_ms,
                        usable: d.usable,
                        shared_from: d
                            .shared_from
                            .map(|(owner, device)| sls_protocol::ShareSource { owner, device }),
                    })
                    .collect(),
            }),
            Err(e) => refused(&e),
        },
        Message::ListShares {
            pending_only,
            after,
        } => match core.list_shares(pending_only, after, cap).await {
            Ok(page) => Reply::Now(Message::Shares {
                shares: page
                    .shares
                    .into_iter()
                    .map(|(share, s)| sls_protocol::ShareInfo {
                        share,
                        requester: s.requester,
                        owner: s.owner,
                        device: DeviceId(s.device),
                        pending: s.state == sls_core::share::PENDING,
                    })
                    .collect(),
                next: page.next.unwrap_or(0),
            }),
            Err(e) => refused(&e),
        },
        Message::UserDetail { user } => match core.user_detail(&user).await {
            Ok(v) => {
                let skip = v.failures_ms.len().saturating_sub(cap);
                Reply::Now(Message::UserDetails {
                    entity: v.entity,
                    identification: v.identification,
                    primary: v.primary,
                    equity_usd: v.equity_usd,
                    opted_out: v.opted_out,
                    failures_ms: v.failures_ms[skip..].to_vec(),
                    locked_until_ms: v.locked_until_ms,
                    withdrawn_day_usd: v.withdrawn.0,
                    withdrawn_5bd_usd: v.withdrawn.1,
                    left_day_usd: v.left.0,
                    left_5bd_usd: v.left.1,
                })
            }
            Err(e) => refused(&e),
        },
        Message::RemoveDevice { user, device } => match core.remove_device(&user, device).await {
            Ok(out) => {
                *ticket = core.store().later(*ticket, out.ticket);
                Reply::Now(Message::Done {})
            }
            Err(e) => refused(&e),
        },
        Message::UpdateUser {
            user,
            entity,
            identification,
            primary,
            equity_usd,
        } => {
            let update = sls_engine::UserUpdate {
                entity,
                identification,
                primary,
                equity_usd,
            };
            match core.update_user(&user, &update).await {
                Ok(out) => {
                    *ticket = core.store().later(*ticket, out.ticket);
                    Reply::Now(Message::Done {})
                }
                Err(e) => refused(&e),
            }
        }
        _ => Reply::Now(Message::Error {
            status: Status::UNEXPECTED,
            message: "not an inspection".into(),
        }),
    }
}
