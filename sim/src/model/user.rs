//! One user as the rules see them: R11's count and lock, devices' standing (R15/R16), R3's
//! withdrawals, folded from the events that made them.

use std::collections::BTreeMap;

use sls_protocol::{DeviceKind, Verdict};

use super::{Numbers, Standing};

const DAY_MS: u64 = 24 * 3_600_000;

#[derive(Debug, Clone, Copy)]
pub(super) enum Event {
    Failure {
        at: u64,
    },
    Reset,
    Device {
        id: u32,
        standing: Standing,
    },
    Withdrawal {
        at: u64,
        amount: u64,
    },
    /// R13: a temporary code issued (the previous one stops).
    TempIssued {
        id: u32,
        at: u64,
    },
    /// R15: a permanent device reactivated: the temporary devices stop.
    Reactivated,
    /// R16: a replacement DSC+ ordered, then shipped.
    Ordered {
        id: u32,
    },
    Shipped {
        id: u32,
        at: u64,
    },
}

/// A device's life (R13, R16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    /// Enrolled before the run.
    Permanent(DeviceKind),
    /// A temporary code issued then.
    Temp { issued: u64 },
    /// A replacement DSC+, shipped then (or not yet).
    Replacement { shipped: Option<u64> },
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
    /// What each device is.
    pub(super) lives: BTreeMap<u32, Life>,
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
            Event::TempIssued { id, at } => {
                self.void_temporary();
                self.devices.insert(id, Standing::Active);
                self.lives.insert(id, Life::Temp { issued: at });
            }
            Event::Reactivated => self.void_temporary(),
            Event::Ordered { id } => {
                self.devices.insert(id, Standing::Active);
                self.lives.insert(id, Life::Replacement { shipped: None });
            }
            Event::Shipped { id, at } => {
                self.lives
                    .insert(id, Life::Replacement { shipped: Some(at) });
            }
        }
    }

    /// R13, R15: the temporary devices in force stop.
    fn void_temporary(&mut self) {
        for (id, life) in &self.lives {
            if matches!(life, Life::Temp { .. }) {
                if let Some(s) = self.devices.get_mut(id) {
                    if *s == Standing::Active {
                        *s = Standing::Voided;
                    }
                }
            }
        }
    }

    /// R16: when a shipped replacement activates by itself (three weeks after shipment).
    fn replacement_due(&self, n: &Numbers) -> Option<u64> {
        self.lives.values().find_map(|l| match l {
            Life::Replacement { shipped: Some(s) } => Some(s + n.auto_ms),
            _ => None,
        })
    }

    /// Whether a replacement's activation is due by `now` (R16: its records come with the
    /// first rule run after it).
    pub(super) fn activation_due(&self, now: u64, n: &Numbers) -> bool {
        self.replacement_due(n).is_some_and(|due| due <= now)
    }

    /// Whether a permanent DSC+ was replaced by a replacement's activation by `now` (R16).
    pub(super) fn replaced(&self, id: u32, now: u64, n: &Numbers) -> bool {
        self.lives.get(&id) == Some(&Life::Permanent(DeviceKind::DscPlus))
            && self.replacement_due(n).is_some_and(|due| due <= now)
    }

    /// Whether device `id` may answer at `now` (R13-R16).
    pub(super) fn usable(&self, id: u32, now: u64, n: &Numbers) -> bool {
        if self.devices.get(&id) != Some(&Standing::Active) {
            return false;
        }
        let due = self.replacement_due(n).filter(|d| *d <= now);
        match self.lives.get(&id) {
            Some(Life::Permanent(_)) => !self.replaced(id, now, n),
            // R13: two days full, ten more Client Portal only; R15/R16: the replacement's
            // activation stops it.
            Some(Life::Temp { issued }) => {
                now < issued + n.temp_ms && due.is_none_or(|d| *issued >= d)
            }
            // R16: active three weeks after shipment.
            Some(Life::Replacement { shipped }) => shipped.is_some_and(|s| now >= s + n.auto_ms),
            None => false,
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
