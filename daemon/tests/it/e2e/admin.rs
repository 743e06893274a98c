//! The admin calls and the frontend's `PasswordFailed` over the wire, each with its documented
//! answer (PROTOCOL.md §4) and its effect seen through another message: the device lifecycle
//! (`IssueOnlineScc`, `Reactivate`, `OrderReplacement`, `Ship`, `Activate`) in `lifecycle`, IB
//! Key activation and recovery (`ActivationStart`, `ActivateIbKey`) in `activation`; the account
//! calls (`OptOut`, `OptIn`, `PasswordFailed`), the sharing calls' error statuses and the roles
//! that may not make admin calls in `accounts`. Every refusal is checked by its exact status
//! code. (The sharing flows themselves are in `crate::sharing`.)

mod accounts;
mod activation;
mod lifecycle;

use std::time::{SystemTime, UNIX_EPOCH};

use sls_client::pipeline::Pipeline;
use sls_protocol::*;

use super::IP;
use crate::call;

/// A device id no test enrols (ids are allocated from 1 up, across users).
const NO_DEVICE: DeviceId = DeviceId(4_000_000_000);
const DAY_MS: u64 = 86_400_000;
/// The replacement card's secret (R16), and the recovered IB Key app's (R22).
const NEW_KEY: [u8; 32] = *b"replacement-card-or-app-key-0123";

/// The wall clock, as the daemon's deadlines count it: ms since the Unix epoch.
fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// `IssueTempCode` for `user` (R13): the device and its code.
async fn temp_code(admin: &Pipeline, user: &str) -> (DeviceId, String) {
    match call(admin, Message::IssueTempCode { user: user.into() }).await {
        Message::TempCodeIssued { device, code, .. } => (device, code),
        other => panic!("a temporary code for {user}: {other:?}"),
    }
}

/// `Enrolled`'s device id.
fn enrolled(m: &Message) -> DeviceId {
    match m {
        Message::Enrolled { device } => *device,
        other => panic!("Enrolled expected, got {other:?}"),
    }
}

fn sorted(mut ids: Vec<DeviceId>) -> Vec<DeviceId> {
    ids.sort_unstable();
    ids
}

/// The status of `m`, which must be an `Error`.
fn status_of(m: &Message) -> Status {
    match m {
        Message::Error { status, .. } => *status,
        other => panic!("an Error expected, got {other:?}"),
    }
}

/// `m` on `p`, which must be refused: its status.
async fn refused(p: &Pipeline, m: Message) -> Status {
    status_of(&call(p, m).await)
}

/// `Status` of `user`: locked until (0: not locked), failures, failures left, opted out, and
/// the ids of the usable devices.
async fn status(p: &Pipeline, user: &str) -> (u64, u8, u8, bool, Vec<DeviceId>) {
    match call(p, Message::Status { user: user.into() }).await {
        Message::UserStatus {
            locked_until_ms,
            failures,
            failures_left,
            opted_out,
            devices,
        } => (
            locked_until_ms,
            failures,
            failures_left,
            opted_out,
            devices.iter().map(|i| i.id).collect(),
        ),
        other => panic!("status of {user}: {other:?}"),
    }
}

/// `Begin` for `user` with no device and `purpose`: the daemon's reply as it is.
async fn begin_without_device(fe: &Pipeline, user: &str, purpose: Purpose) -> Message {
    call(
        fe,
        Message::Begin {
            user: user.into(),
            purpose,
            device: None,
            client: IP,
        },
    )
    .await
}

/// `Judged { verdict }`.
fn judged(verdict: Verdict) -> Message {
    Message::Judged { verdict }
}
