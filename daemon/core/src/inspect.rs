//! What client services and compliance read and change of a user: every
//! device in every state, the failures and the lock (R11), withdrawals used and left per
//! window (R3), and updates of entity, identification (in its canonical form, R17(a)),
//! primary (R18) and equity (R20).

use sls_protocol::{DeviceId, DeviceKind, SecurityLevel};

use crate::cx::Cx;
use crate::record::{DeviceState, Record};
use crate::user::{Extra, UserState};
use crate::{grant, lockout, withdrawal};

/// One device as an admin sees it, whatever its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    /// Its id.
    pub id: DeviceId,
    /// Its kind.
    pub kind: DeviceKind,
    /// Its lifecycle state (R15, R16, R17).
    pub state: DeviceState,
    /// When it was enrolled, issued or last changed state, ms.
    pub since_ms: u64,
    /// Whether a `Begin` with it would issue a challenge now (R13-R16).
    pub usable: bool,
    /// For a share copy (R17), the device it copies: (owner, owner's device); `None` for a
    /// device of the user's own.
    pub shared_from: Option<(String, DeviceId)>,
}

/// A user as client services see it before an unlock, and compliance before a share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    /// Entity (R17a).
    pub entity: String,
    /// Identification, canonical (R17a).
    pub identification: String,
    /// Primary user (R18).
    pub primary: bool,
    /// Equity, USD (R20).
    pub equity_usd: u64,
    /// Opted out (R18).
    pub opted_out: bool,
    /// The failures in the window, oldest first, ms (R11).
    pub failures_ms: Vec<u64>,
    /// Locked until, ms; 0: not locked (R11).
    pub locked_until_ms: u64,
    /// Withdrawn in the last day and in the last five business days, USD (R3).
    pub withdrawn: (u64, u64),
    /// Left in those windows with the user's most protective usable device (R3, R4);
    /// `u64::MAX`: unlimited.
    pub left: (u64, u64),
}

/// An update of a user: each field given is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// Entity (R17a).
    pub entity: Option<String>,
    /// Identification (R17a), canonicalised.
    pub identification: Option<String>,
    /// Primary user (R18).
    pub primary: Option<bool>,
    /// Equity, USD (R20).
    pub equity_usd: Option<u64>,
}

/// The canonical form of identification data (R17(a); PROTOCOL.md §4, "Accounts"): leading
/// and trailing white space removed, every run of white space inside made one space (U+0020),
/// ASCII letters upper case (other characters kept as they are). One person written
/// `" jane  doe 1980-01-02 "` and `"JANE DOE 1980-01-02"` is one identification.
pub fn canonical_identification(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().map(|c| c.to_ascii_uppercase()));
    }
    out
}

/// Every device of an enrolled user, in every state, in enrolment order (`None`: not enrolled).
pub fn list_devices(u: &UserState, now: u64, cfg: &crate::CoreConfig) -> Option<Vec<DeviceView>> {
    u.enrolled.then(|| {
        u.devices
            .iter()
            .map(|d| DeviceView {
                id: DeviceId(d.id),
                kind: d.kind,
                state: d.state,
                since_ms: d.since_ms,
                usable: grant::usable(u, d, now, cfg).is_some(),
                shared_from: d
                    .source
                    .as_deref()
                    .map(|s| (s.owner.clone(), DeviceId(s.device))),
            })
            .collect()
    })
}

/// An enrolled user as an admin sees it at `now`: account data, failures, lock, withdrawals.
pub fn view_user(u: &UserState, now: u64, cfg: &crate::CoreConfig) -> UserView {
    let x = u.extra.as_deref();
    let mut failures_ms: Vec<u64> = u
        .failures
        .iter()
        .flat_map(|f| f.iter().copied())
        .filter(|t| now.saturating_sub(*t) < crate::cx::ms(cfg.lockout_window))
        .collect();
    failures_ms.sort_unstable();
    let used = withdrawal::withdrawn(u, now);
    let best = u
        .devices
        .iter()
        .filter(|d| grant::usable(u, d, now, cfg).is_some())
        .map(|d| d.kind.level())
        .max()
        .unwrap_or(SecurityLevel::None);
    let limits = best.limits();
    UserView {
        entity: x.map(|x| x.entity.clone()).unwrap_or_default(),
        identification: x.map(|x| x.identification.clone()).unwrap_or_default(),
        primary: u.primary,
        equity_usd: x.map_or(0, |x| x.equity_usd),
        opted_out: u.opted_out,
        failures_ms,
        locked_until_ms: if lockout::is_locked(u, now) {
            u.locked_until
        } else {
            0
        },
        withdrawn: used,
        left: (
            limits.per_day_usd.saturating_sub(used.0),
            limits.per_5_business_days_usd.saturating_sub(used.1),
        ),
    }
}

/// Sets what `update` gives and records the user's whole account data (R17, R18, R20).
pub fn update_user(u: &mut UserState, update: &UserUpdate, cx: &mut Cx<'_>) {
    if let Some(p) = update.primary {
        u.primary = p;
    }
    if update.entity.is_some() || update.identification.is_some() || update.equity_usd.is_some() {
        let x = u.extra.get_or_insert_with(|| Box::new(Extra::default()));
        if let Some(e) = &update.entity {
            x.entity.clone_from(e);
        }
        if let Some(i) = &update.identification {
            x.identification = canonical_identification(i);
        }
        if let Some(q) = update.equity_usd {
            x.equity_usd = q;
        }
    }
    let x = u.extra.as_deref();
    cx.records.push(Record::User {
        name: cx.user.to_owned(),
        entity: x.map(|x| x.entity.clone()).unwrap_or_default(),
        identification: x.map(|x| x.identification.clone()).unwrap_or_default(),
        primary: u.primary,
        equity_usd: x.map_or(0, |x| x.equity_usd),
    });
}
