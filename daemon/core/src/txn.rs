//! Challenges and their answers: `begin` picks a usable device (R4, R13-R16, R18) and binds a
//! challenge to the user, the device and a new transaction (R5, R6, R9, R1); `answer` judges
//! the typed answer once (R10, R11, R12).
//!
//! An open transaction lives in its user's state until it is answered or past its life. Its
//! first answer spends it: it leaves the user's state, and the store's transaction index keeps
//! its verdict for `replay_window`, so that a second answer reads `replayed` (R12) without
//! touching the user, and a frontend's `TxnVerdict` reads the first verdict (never a second
//! judgement). A restart voids every open transaction (they are never made durable):
//! users start over.

use rand::Rng;
use sls_protocol::card;
use sls_protocol::codes;
use sls_protocol::ocra::{self, OcraSuite};
use sls_protocol::{
    Challenge, DeviceId, DeviceInfo, DeviceKind, Grant, GrantKind, Purpose, SecurityLevel, TxnId,
    Verdict,
};

use crate::config::CoreConfig;
use crate::cx::{after, Cx};
use crate::error::CoreError;
use crate::lifecycle::{standing, Sources, Standing};
use crate::user::{Device, Txn, TxnChallenge, UserState};
use crate::verify::{self, Judgement};
use crate::{grant, lockout, withdrawal, BeginResult, PushOrder};

/// What `begin` asks of one user.
pub struct Begin<'a> {
    /// Login or withdrawal (R4).
    pub purpose: Purpose,
    /// The device picked, if any.
    pub device: Option<DeviceId>,
    /// Whether the picked device's app can take a push now (if it is an IB Key): a fact the
    /// caller reads before the rule, never a call back into it.
    pub push_ready: bool,
    /// Whether the daemon-wide bound of open transactions is reached.
    pub at_capacity: bool,
    /// The standing of the sources of the user's share copies (R17), read before.
    pub sources: &'a Sources,
}

/// Forgets open transactions one life past their expiry (until then a late answer reads
/// `expired`; the store's index forgets them at the same time).
pub fn prune(u: &mut UserState, now: u64, cfg: &CoreConfig) {
    if u.txns
        .iter()
        .any(|t| after(t.expires_ms, cfg.challenge_ttl) <= now)
    {
        u.txns
            .retain(|t| after(t.expires_ms, cfg.challenge_ttl) > now);
    }
}

/// Until when a transaction's id must still lead to its user (the store's index).
pub fn keep_until(expires_ms: u64, cfg: &CoreConfig) -> u64 {
    after(expires_ms, cfg.challenge_ttl)
}

/// Begins a login or a withdrawal.
///
/// # Errors
/// Open transactions at capacity (daemon-wide, or this user's).
pub fn begin(
    u: &mut UserState,
    req: &Begin<'_>,
    cx: &mut Cx<'_>,
) -> Result<BeginResult, CoreError> {
    let now = cx.now;
    if lockout::is_locked(u, now) {
        return Ok(BeginResult::Verdict(lockout::refuse_locked(u, cx)));
    }
    let used = withdrawal::withdrawn(u, now);
    if u.opted_out {
        // R18: an opted-out user logs in without a device, with the "none" limits.
        let level = SecurityLevel::None;
        return Ok(BeginResult::Verdict(match req.purpose {
            Purpose::Withdrawal { amount_usd } if !withdrawal::allows(level, req.purpose, used) => {
                Verdict::NeedsStrongerDevice {
                    required: withdrawal::required_level(amount_usd, used),
                }
            }
            _ => {
                // R3 counts what an opted-out user withdraws too: the "none" limits cap the
                // day and the five business days, not only one withdrawal.
                withdrawal::record(u, req.purpose, None, cx);
                Verdict::Accepted {
                    device: DeviceId(0),
                    kind: DeviceKind::NoDevice,
                    level,
                    limits: level.limits(),
                    grant: Grant {
                        kind: GrantKind::Session,
                        valid_secs: 0,
                    },
                }
            }
        }));
    }
    let needs_stronger = |amount_usd| {
        BeginResult::Verdict(Verdict::NeedsStrongerDevice {
            required: withdrawal::required_level(amount_usd, used),
        })
    };
    let allowed = |d: &Device| withdrawal::allows(d.kind.level(), req.purpose, used);
    let Some(wanted) = req.device else {
        // A user holds at most `max_devices_per_user` (≤ 64, the list's bound) devices that
        // may be usable; `take` keeps a state from before the cap within the encoding too.
        let devices: Vec<DeviceInfo> = u
            .devices
            .iter()
            .filter(|d| usable(u, d, now, cx.cfg, req.sources).is_some() && allowed(d))
            .map(Device::info)
            .take(sls_protocol::limits::MAX_LIST)
            .collect();
        if let (true, Purpose::Withdrawal { amount_usd }) = (devices.is_empty(), req.purpose) {
            return Ok(needs_stronger(amount_usd));
        }
        return Ok(BeginResult::Devices(devices));
    };
    prune(u, now, cx.cfg);
    let pushes = u.pushes;
    let open = u.txns.len();
    let Some(i) = u.devices.iter().position(|d| d.id == wanted.0) else {
        return Ok(BeginResult::Verdict(Verdict::Unknown));
    };
    match standing(u, &u.devices[i], now, cx.cfg, req.sources) {
        Standing::Usable(_) => {}
        // Revoked or suspended by client services, itself or the source of this share copy
        // (R17): named, so that the frontend can tell the user (version 3).
        Standing::Revoked => return Err(CoreError::DeviceRevoked),
        Standing::Suspended => return Err(CoreError::DeviceSuspended),
        Standing::Unusable => return Ok(BeginResult::Verdict(Verdict::Unknown)),
    }
    let d = &mut u.devices[i];
    if let Purpose::Withdrawal { amount_usd } = req.purpose {
        if !allowed(d) {
            return Ok(needs_stronger(amount_usd));
        }
    }
    if req.at_capacity {
        return Err(CoreError::Capacity);
    }
    if open >= cx.cfg.max_open_per_user.max(1) {
        // One user's open challenges are bounded: the oldest gives way (a loop of `begin`s,
        // or answers refused by a rate limit before they could spend their challenge, must
        // neither grow one user's state without end nor lock the user out of a new login).
        if let Some(oldest) = (0..u.txns.len()).min_by_key(|&i| u.txns[i].expires_ms) {
            u.txns.remove(oldest);
        }
    }
    let info = d.info();
    let expires_ms = after(now, cx.cfg.challenge_ttl);
    let txn = cx.txn_id();
    let ready = d.kind == DeviceKind::IbKey && req.push_ready;
    let (challenge, stored, push) = match d.kind {
        DeviceKind::IbKey if ready && pushes < cx.cfg.push_cap => {
            let number = cx.rng.gen_range(0..100u8);
            let nonce: [u8; 16] = cx.rng.gen();
            cx.tally.pushes += 1;
            let order = PushOrder {
                device: info.id,
                user: cx.user.to_owned(),
                nonce,
                purpose: req.purpose,
                expires_at_ms: expires_ms,
            };
            (
                Challenge::Push { number },
                TxnChallenge::Push { number, nonce },
                Some(order),
            )
        }
        DeviceKind::DscPlus
        | DeviceKind::Dsc
        | DeviceKind::Gold
        | DeviceKind::Platinum
        | DeviceKind::IbKey => {
            if ready {
                // Push fatigue: past the cap the user must type a challenge.
                cx.tally.push_capped += 1;
            }
            let Some(suite) = d.suite else {
                return Ok(BeginResult::Verdict(Verdict::Unknown));
            };
            let q = random_question(&suite, &mut *cx.rng);
            let stored = TxnChallenge::question(&q);
            (Challenge::Numeric(q), stored, None)
        }
        DeviceKind::Scc | DeviceKind::OnlineScc => {
            let rng = &mut *cx.rng;
            let recent = d.recent.get_or_insert_with(Default::default);
            let positions = card::choose_positions(&cx.cfg.card, recent, || rng.gen());
            recent.extend_from_slice(&positions);
            let excess = recent.len().saturating_sub(cx.cfg.card_recent);
            recent.drain(..excess);
            (
                Challenge::Positions(positions.clone()),
                TxnChallenge::Positions(positions.into_boxed_slice()),
                None,
            )
        }
        DeviceKind::Sms => {
            // R1: a one-time passcode for the frontend to send; kept in the transaction to be
            // compared with what the user types.
            let code = codes::sms_code(d.secret(), cx.rng.gen());
            (
                Challenge::Sms { code: code.clone() },
                TxnChallenge::question(&code),
                None,
            )
        }
        DeviceKind::TempCode | DeviceKind::NoDevice => (Challenge::Code, TxnChallenge::Code, None),
    };
    if push.is_some() {
        u.pushes = u.pushes.saturating_add(1);
    }
    u.txns.push(Txn {
        id: txn,
        device: info.id.0,
        purpose: req.purpose,
        expires_ms,
        challenge: stored,
    });
    Ok(BeginResult::Challenge {
        txn,
        device: info,
        challenge,
        expires_at_ms: expires_ms,
        push,
    })
}

/// What judging an answer did to its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// Spent with this verdict: the index remembers it for the replay window.
    Yes,
    /// Not spent (no such open transaction, or refused before judging: the user is locked).
    No,
}

/// Judges a frontend's answer to a transaction's typed challenge.
pub fn answer(
    u: &mut UserState,
    txn: TxnId,
    response: &str,
    sources: &Sources,
    cx: &mut Cx<'_>,
) -> (Verdict, Spent) {
    prune(u, cx.now, cx.cfg);
    let Some(t) = u.txn(txn) else {
        // The index led here but the user holds no such open challenge: its first answer
        // spent it a moment ago (the index learns the verdict right after).
        cx.tally.replays += 1;
        return (Verdict::Replayed, Spent::No);
    };
    if matches!(t.challenge, TxnChallenge::Push { .. }) {
        // A push is answered by the app, not the frontend.
        return (Verdict::Unknown, Spent::No);
    }
    if lockout::is_locked(u, cx.now) {
        return (lockout::refuse_locked(u, cx), Spent::No);
    }
    match spend(u, txn, cx) {
        Ok(t) => (judge(u, &t, response, sources, cx), Spent::Yes),
        Err(v) => (v, Spent::Yes),
    }
}

/// Spends an open transaction: its first answer is the only one judged (R12). Returns it, or
/// `Expired` (spent too: a late answer is its one answer).
pub fn spend(u: &mut UserState, txn: TxnId, cx: &mut Cx<'_>) -> Result<Txn, Verdict> {
    let Some(at) = u.txns.iter().position(|t| t.id == txn) else {
        cx.tally.replays += 1;
        return Err(Verdict::Replayed);
    };
    let t = u.txns.swap_remove(at);
    if cx.now >= t.expires_ms {
        cx.tally.expired += 1;
        return Err(Verdict::Expired);
    }
    Ok(t)
}

fn judge(
    u: &mut UserState,
    t: &Txn,
    response: &str,
    sources: &Sources,
    cx: &mut Cx<'_>,
) -> Verdict {
    // A device removed since `begin` (`RemoveDevice`; a share copy given back, R17), or one
    // that stopped being usable (R13-R16; revoked or suspended; a share copy whose source
    // stopped, R17): its open challenges are void, answered `expired`.
    let Ok(d) = u.device(t.device) else {
        return Verdict::Expired;
    };
    let Some(grant) = usable(u, d, cx.now, cx.cfg, sources) else {
        return Verdict::Expired;
    };
    match verify::judge(d, &t.challenge, response, &cx.cfg.card) {
        // R10: a malformed answer is an error, and by default it counts (R11).
        Judgement::Malformed if cx.cfg.malformed_counts => match lockout::fail(u, cx) {
            locked @ Verdict::Locked { .. } => locked,
            _ => Verdict::Malformed,
        },
        Judgement::Malformed => Verdict::Malformed,
        Judgement::Wrong => lockout::fail(u, cx),
        Judgement::Right => {
            if let Some(v) = withdrawal::still_covered(u, d.kind.level(), t.purpose, cx.now) {
                return v;
            }
            let info = d.info();
            let grant = match d.kind {
                // R21: the IB Key PIN typed into the app (fallback) grants 12 h of trading.
                DeviceKind::IbKey => grant::ib_key(sls_protocol::ApprovalMethod::Pin, cx.cfg),
                _ => grant,
            };
            lockout::succeed(u, cx);
            withdrawal::record(u, t.purpose, Some(t.id), cx);
            Verdict::Accepted {
                device: info.id,
                kind: info.kind,
                level: info.kind.level(),
                limits: info.limits,
                grant,
            }
        }
    }
}

/// What a frontend's `await` reports for an open transaction (R6): `None` if the user holds
/// no such open challenge (spent: the index has its verdict).
pub fn verdict(u: &UserState, txn: TxnId, now: u64) -> Option<Verdict> {
    u.txn(txn).map(|t| {
        if now >= t.expires_ms {
            Verdict::Expired
        } else {
            Verdict::Pending
        }
    })
}

/// The grant of `d` if it is usable now, its source too for a share copy (R17).
fn usable(
    u: &UserState,
    d: &Device,
    now: u64,
    cfg: &CoreConfig,
    sources: &Sources,
) -> Option<Grant> {
    standing(u, d, now, cfg, sources).grant()
}

/// A random question of the suite's length and format.
fn random_question(suite: &OcraSuite, rng: &mut dyn rand::RngCore) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..suite.question_len)
        .map(|_| match suite.question {
            ocra::QuestionFormat::Numeric => char::from(b'0' + rng.gen_range(0..10u8)),
            ocra::QuestionFormat::Hex => char::from(b"0123456789ABCDEF"[rng.gen_range(0..16usize)]),
            ocra::QuestionFormat::Alpha => char::from(ALNUM[rng.gen_range(0..ALNUM.len())]),
        })
        .collect()
}
