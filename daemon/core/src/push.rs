//! R6: IB Key push approval. The app proves it holds the device's key (proof of possession)
//! and answers a push with a MAC over the transaction, the user, the number the user typed,
//! the method and the decision. Number matching: approving with a number other than the one
//! the login screen showed counts as a failure (R11), as does a forged MAC. R8: one app may
//! hold several users' devices; it answers only its own devices' pushes. R21: the grant
//! depends on the approval method.

use sls_protocol::{push, ApprovalMethod, DeviceId, DeviceKind, TxnId, Verdict};

use crate::config::CoreConfig;
use crate::cx::Cx;
use crate::txn::Spent;
use crate::user::{TxnChallenge, UserState};
use crate::{grant, lockout, txn, withdrawal, PushOrder};

/// The app's answer to a push.
#[derive(Debug, Clone, Copy)]
pub struct PushAnswer<'a> {
    /// The device the app proved.
    pub device: DeviceId,
    /// The transaction.
    pub txn: TxnId,
    /// Approve or decline.
    pub approve: bool,
    /// PIN or biometrics (R21).
    pub method: ApprovalMethod,
    /// The number the user typed.
    pub number: u8,
    /// The app's MAC.
    pub mac: &'a [u8],
}

/// Whether `proof` proves that the app holds `device`'s key, for `nonce`.
pub fn proves(
    u: &UserState,
    device: DeviceId,
    nonce: &[u8; 32],
    proof: &[u8],
    now: u64,
    cfg: &CoreConfig,
) -> bool {
    u.device(device.0).is_ok_and(|d| {
        d.kind == DeviceKind::IbKey
            && grant::usable(u, d, now, cfg).is_some()
            && push::device_proof_verify(d.secret(), device, nonce, proof)
    })
}

/// Judges the app's answer to a push.
pub fn answer(u: &mut UserState, a: &PushAnswer<'_>, cx: &mut Cx<'_>) -> (Verdict, Spent) {
    let now = cx.now;
    txn::prune(u, now, cx.cfg);
    let Some(t) = u.txn(a.txn) else {
        // Spent a moment ago by its first answer (the index learns the verdict right after).
        cx.tally.replays += 1;
        return (Verdict::Replayed, Spent::No);
    };
    let TxnChallenge::Push {
        number: shown,
        nonce,
    } = t.challenge
    else {
        return (Verdict::Unknown, Spent::No);
    };
    if t.device != a.device.0 {
        return (Verdict::Unknown, Spent::No);
    }
    let purpose = t.purpose;
    if lockout::is_locked(u, now) {
        return (lockout::refuse_locked(u, cx), Spent::No);
    }
    let verdict = 'judge: {
        if let Err(v) = txn::spend(u, a.txn, cx) {
            break 'judge v;
        }
        let Ok(d) = u.device(a.device.0) else {
            break 'judge Verdict::Unknown;
        };
        if grant::usable(u, d, now, cx.cfg).is_none() {
            break 'judge Verdict::Unknown;
        }
        let genuine = push::push_verify(
            d.secret(),
            a.txn,
            cx.user,
            a.number,
            &nonce,
            a.method,
            a.approve,
            a.mac,
        );
        if !genuine {
            // Not signed by the app's key: a forgery counts as a failed attempt.
            break 'judge lockout::fail(u, cx);
        }
        if !a.approve {
            break 'judge Verdict::Declined;
        }
        if a.number != shown {
            // Number matching: the user approved a push they were not looking at.
            break 'judge lockout::fail(u, cx);
        }
        if let Some(v) = withdrawal::still_covered(u, d.kind.level(), purpose, now) {
            break 'judge v;
        }
        let info = d.info();
        lockout::succeed(u, cx);
        withdrawal::record(u, purpose, Some(a.txn), cx);
        Verdict::Accepted {
            device: info.id,
            kind: info.kind,
            level: info.kind.level(),
            limits: info.limits,
            grant: grant::ib_key(a.method, cx.cfg),
        }
    };
    (verdict, Spent::Yes)
}

/// The pushes of IB Key `device` of `user` still open at `now` (not answered, not expired),
/// oldest first: what an app that proves the device again is sent (R6).
pub fn open(u: &UserState, device: DeviceId, user: &str, now: u64) -> Vec<(TxnId, PushOrder)> {
    let mut open: Vec<_> = u
        .txns
        .iter()
        .filter(|t| t.device == device.0 && now < t.expires_ms)
        .filter_map(|t| match t.challenge {
            TxnChallenge::Push { nonce, .. } => Some((
                t.id,
                PushOrder {
                    device,
                    user: user.to_owned(),
                    nonce,
                    purpose: t.purpose,
                    expires_at_ms: t.expires_ms,
                },
            )),
            _ => None,
        })
        .collect();
    open.sort_by_key(|(_, p)| p.expires_at_ms);
    open
}
