//! Admin changes in the audit trail (issue 29 item 4), and the admin's read of it: what each
//! admin write changed, for which user and device, done or refused with which status, from
//! which admin address.

use sls_protocol::{BulkOutcome, DeviceId, Message, Status};

use super::reply::Reply;
use super::state::State;

/// The user(s) and device an admin write concerns, before it runs; `None` for a read or a
/// request that names no user (a share's decision names a share: its requester's entry is the
/// request's).
pub fn concerns(m: &Message) -> Option<(u16, Vec<(String, Option<DeviceId>)>)> {
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
        | Message::ActivateIbKey { user, .. } => one(user, None),
        Message::Reactivate { user, device }
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
pub fn record(
    state: &State,
    (event, users): (u16, Vec<(String, Option<DeviceId>)>),
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
pub async fn read(state: &State, user: &str, since: crate::audit::Cursor, limit: u16) -> Reply {
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
            super::handlers::warn_store(&e);
            Reply::Now(super::reply::unavailable(
                "the audit trail could not be read",
            ))
        }
    }
}
