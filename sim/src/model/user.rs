//! One user as the rules see them: R11's count and lock, devices' standing (R15/R16), R3's
//! withdrawals, folded from the events that made them.

use std::collections::BTreeMap;

use sls_protocol::{DeviceKind, Verdict};

use super::{Numbers, Standing};

const DAY_MS: u64 = 24 * 3_600_000;

#[derive(Debug, Clone, Copy)]
pub(super) enum Event {
    Failure { at: u64 },
    Reset,
    Device { id: u32, standing: Standing },
    Withdrawal { at: u64, amount: u64 },
}

/// One user as the rules see them.
#[derive(Debug, Default)]
pub(super) struct UserModel {
    /// Durable events, with the lsn of their records.
    pub(super) events: Vec<(u64, Event)>,
    /// R11: failures since the last success or unlock, within the window.
    pub(super) failures: Vec<u64>,
    /// R11: locked until (ms), 0 if never.
    pub(super) locked_until: u64,
    pub(super) devices: BTreeMap<u32, Standing>,
    /// R3: confirmed withdrawals (at, amount).
    pub(super) withdrawals: Vec<(u64, u64)>,
}

impl UserModel {
    pub(super) fn locked(&self, now: u64) -> bool {
        self.locked_until > now
    }

    pub(super) fn in_window(&self, now: u64, n: &Numbers) -> usize {
        self.failures
            .iter()
            .filter(|t| now.saturating_sub(**t) < n.window_ms)
            .count()
    }

    /// R11: a failure at `at`; ten within any 24 hours lock until 24 hours after the last.
    pub(super) fn fail(&mut self, at: u64, n: &Numbers) -> Verdict {
        self.failures
            .retain(|t| at.saturating_sub(*t) < n.window_ms);
        self.failures.push(at);
        if self.failures.len() >= n.threshold {
            self.locked_until = at + n.lock_ms;
            Verdict::Locked {
                until_ms: self.locked_until,
            }
        } else {
            Verdict::Rejected {
                failures_left: (n.threshold - self.failures.len()) as u8,
            }
        }
    }

    pub(super) fn apply(&mut self, e: Event, n: &Numbers) {
        match e {
            Event::Failure { at } => {
                self.fail(at, n);
            }
            // R11: a success or client services' unlock starts the count over.
            Event::Reset => {
                self.failures.clear();
                self.locked_until = 0;
            }
            Event::Device { id, standing } => {
                self.devices.insert(id, standing);
            }
            Event::Withdrawal { at, amount } => self.withdrawals.push((at, amount)),
        }
    }

    /// R3: withdrawn in the last day, and in the five business days (a withdrawal counts
    /// until the fifth business day after its UTC day begins; Monday to Friday).
    pub(super) fn withdrawn(&self, now: u64) -> (u64, u64) {
        let business = |d: u64| (d + 3) % 7 < 5;
        let counts = |at: u64| {
            ((at / DAY_MS + 1)..=(now / DAY_MS))
                .filter(|d| business(*d))
                .count()
                < 5
        };
        self.withdrawals.iter().fold((0, 0), |(d, w), (at, a)| {
            (
                d + if now - at < DAY_MS { *a } else { 0 },
                w + if counts(*at) { *a } else { 0 },
            )
        })
    }
}

/// R3: the limits (per day, per five business days) of a device kind.
pub(super) fn limits(kind: DeviceKind) -> (u64, u64) {
    match kind {
        DeviceKind::IbKey => (1_000_000, 1_000_000),
        DeviceKind::Scc | DeviceKind::OnlineScc => (200_000, 600_000),
        DeviceKind::Dsc => (1_000_000, 1_500_000),
        DeviceKind::DscPlus | DeviceKind::Gold | DeviceKind::Platinum => (u64::MAX, u64::MAX),
        _ => (50_000, 100_000),
    }
}
