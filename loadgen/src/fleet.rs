//! A fleet: simulated users, each with the devices a real user would carry, reproducible from a
//! seed. Every device keeps its own secret and PIN and computes its answers with the
//! `sls-protocol` algorithms, as the real device would.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use sls_protocol::ocra::{self, OcraSuite};
use sls_protocol::{BulkRecord, DeviceId, DeviceKind};

/// What a simulated user is for: which scenario uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Persona {
    /// Logs in with a DSC+ (R5).
    DscPlus,
    /// Logs in with IB Key push; its app stays connected (R6).
    IbKeyPush,
    /// Logs in with IB Key's challenge/response fallback; its app is not connected (R6).
    IbKeyChallenge,
    /// Logs in with a Security Code Card (R9).
    Scc,
    /// Logs in with a temporary code (R13).
    TempCode,
    /// Holds an IB Key and a DSC+: withdrawals over the IB Key limit need the DSC+ (R4).
    Withdrawal,
    /// A victim of brute force: the attacker scenario guesses its answers until locked (R11).
    Attacked,
}

impl Persona {
    /// Every persona.
    pub const ALL: [Persona; 7] = [
        Persona::DscPlus,
        Persona::IbKeyPush,
        Persona::IbKeyChallenge,
        Persona::Scc,
        Persona::TempCode,
        Persona::Withdrawal,
        Persona::Attacked,
    ];

    /// The persona's name in `--mix`.
    pub fn name(self) -> &'static str {
        match self {
            Persona::DscPlus => "dsc_plus",
            Persona::IbKeyPush => "ib_key_push",
            Persona::IbKeyChallenge => "ib_key_challenge",
            Persona::Scc => "scc",
            Persona::TempCode => "temp",
            Persona::Withdrawal => "withdrawal",
            Persona::Attacked => "attacked",
        }
    }

    /// The devices such a user holds, in enrolment order.
    pub fn devices(self) -> &'static [DeviceKind] {
        match self {
            Persona::DscPlus | Persona::Attacked | Persona::TempCode => &[DeviceKind::DscPlus],
            Persona::IbKeyPush | Persona::IbKeyChallenge => &[DeviceKind::IbKey],
            Persona::Scc => &[DeviceKind::Scc],
            Persona::Withdrawal => &[DeviceKind::IbKey, DeviceKind::DscPlus],
        }
    }
}

/// The default OCRA suite of a device of `kind` (R5, R6), parsed once; `None` for a kind that
/// answers otherwise.
pub fn default_suite(kind: DeviceKind) -> Option<&'static OcraSuite> {
    static SUITES: OnceLock<Option<(OcraSuite, OcraSuite)>> = OnceLock::new();
    let (dsc_plus, ib_key) = SUITES
        .get_or_init(|| {
            Some((
                ocra::DSC_PLUS_DEFAULT_SUITE.parse().ok()?,
                ocra::IB_KEY_DEFAULT_SUITE.parse().ok()?,
            ))
        })
        .as_ref()?;
    match kind {
        DeviceKind::DscPlus => Some(dsc_plus),
        DeviceKind::IbKey => Some(ib_key),
        _ => None,
    }
}

/// The hash of `pin` under the default suite of `kind`, as its answers take it: empty when
/// that suite takes no PIN.
pub fn default_pin_hash(kind: DeviceKind, pin: &str) -> Vec<u8> {
    default_suite(kind)
        .and_then(|s| s.pin)
        .map(|alg| ocra::pin_hash(alg, pin.as_bytes()).as_bytes().to_vec())
        .unwrap_or_default()
}

/// One simulated device.
#[derive(Debug, Clone)]
pub struct SimDevice {
    /// Its kind.
    pub kind: DeviceKind,
    /// Its secret (OCRA key, card secret, or app key): 32 bytes.
    pub secret: [u8; 32],
    /// Its PIN (R7): 4 digits for a DSC+, 4 to 6 characters for IB Key, none for a card.
    pub pin: String,
    /// The id the daemon gave it at enrolment.
    pub id: Option<DeviceId>,
    /// Its PIN's hash under its kind's default OCRA suite, computed once (empty when that
    /// suite takes no PIN): what its answers hash in.
    pub pin_hash: Vec<u8>,
}

/// One simulated user.
#[derive(Debug, Clone)]
pub struct SimUser {
    /// The user name (R10: lower-case letters and digits).
    pub name: String,
    /// What the user is for.
    pub persona: Persona,
    /// The user's devices.
    pub devices: Vec<SimDevice>,
    /// The user's address, as the frontend would report it: one per user, in 127/8 (the
    /// daemon rate-limits by it; nothing is ever sent to it).
    pub client: IpAddr,
    /// A temporary code issued for the user (R13), for the temp-code persona.
    pub temp_code: Option<String>,
    /// The temporary code's device id.
    pub temp_device: Option<DeviceId>,
}

impl SimUser {
    /// The user's device of `kind`.
    pub fn device(&self, kind: DeviceKind) -> Option<&SimDevice> {
        self.devices.iter().find(|d| d.kind == kind)
    }
}

/// How many users of each persona, by weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix(pub Vec<(Persona, u32)>);

impl Default for Mix {
    /// A realistic mix: most users on IB Key and DSC+, a few on cards and temporary codes, a
    /// few attacked.
    fn default() -> Mix {
        Mix(vec![
            (Persona::DscPlus, 30),
            (Persona::IbKeyPush, 30),
            (Persona::IbKeyChallenge, 10),
            (Persona::Scc, 10),
            (Persona::TempCode, 5),
            (Persona::Withdrawal, 5),
            (Persona::Attacked, 10),
        ])
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    /// `dsc_plus=30,ib_key=40,...`; `ib_key` splits evenly between push and challenge.
    fn from_str(s: &str) -> Result<Mix, String> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected NAME=WEIGHT"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: weight is not a number"))?;
            let name = name.trim();
            if name == "ib_key" {
                out.push((Persona::IbKeyPush, weight.div_ceil(2)));
                out.push((Persona::IbKeyChallenge, weight / 2));
                continue;
            }
            let persona = Persona::ALL
                .into_iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| {
                    let names: Vec<_> = Persona::ALL.iter().map(|p| p.name()).collect();
                    format!(
                        "unknown persona {name:?}; known: ib_key, {}",
                        names.join(", ")
                    )
                })?;
            out.push((persona, weight));
        }
        if out.iter().all(|(_, w)| *w == 0) {
            return Err("the mix has no weight".into());
        }
        Ok(Mix(out))
    }
}

/// Derives a stream of bytes from the seed: SHA-256(seed || label || index).
fn derive(seed: u64, label: &str, index: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.to_be_bytes());
    h.update(label.as_bytes());
    h.update(index.to_be_bytes());
    h.finalize().into()
}

/// Builds `users` simulated users from `seed`, split by `mix` (every persona with a weight gets
/// at least one user). The same seed always gives the same fleet.
pub fn build(users: usize, mix: &Mix, seed: u64) -> Vec<SimUser> {
    let total: u64 = mix.0.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut counts: Vec<(Persona, usize)> = mix
        .0
        .iter()
        .filter(|(_, w)| *w > 0)
        .map(|(p, w)| {
            (
                *p,
                ((users as u64 * u64::from(*w)) / total.max(1)).max(1) as usize,
            )
        })
        .collect();
    // Rounding: give the remainder to the first persona.
    let assigned: usize = counts.iter().map(|c| c.1).sum();
    if assigned < users {
        if let Some(first) = counts.first_mut() {
            first.1 += users - assigned;
        }
    }
    let mut out = Vec::with_capacity(users);
    let mut i: u64 = 0;
    for (persona, n) in counts {
        for _ in 0..n {
            let devices = persona
                .devices()
                .iter()
                .enumerate()
                .map(|(k, kind)| {
                    let secret = derive(seed, "secret", i * 4 + k as u64);
                    let pin = match kind {
                        DeviceKind::DscPlus => {
                            format!("{:04}", u16::from_be_bytes([secret[0], secret[1]]) % 10_000)
                        }
                        DeviceKind::IbKey => format!(
                            "{:06}",
                            u32::from_be_bytes([secret[0], secret[1], secret[2], secret[3]])
                                % 1_000_000
                        ),
                        _ => String::new(),
                    };
                    SimDevice {
                        kind: *kind,
                        secret,
                        pin_hash: default_pin_hash(*kind, &pin),
                        pin,
                        id: None,
                    }
                })
                .collect();
            let host = i + 1;
            out.push(SimUser {
                name: format!("u{seed:x}n{i}"),
                persona,
                devices,
                client: IpAddr::V4(Ipv4Addr::new(
                    127,
                    (host >> 16) as u8 | 1,
                    (host >> 8) as u8,
                    host as u8,
                )),
                temp_code: None,
                temp_device: None,
            });
            i += 1;
        }
    }
    out
}

/// The bulk enrolment records of a fleet, with a back-reference (user index, device index) for
/// each, in order.
pub fn bulk_records(users: &[SimUser]) -> Vec<(usize, usize, BulkRecord)> {
    let mut out = Vec::new();
    for (u, user) in users.iter().enumerate() {
        for (d, dev) in user.devices.iter().enumerate() {
            out.push((
                u,
                d,
                BulkRecord {
                    user: user.name.clone(),
                    kind: dev.kind,
                    secret: dev.secret.to_vec(),
                    pin: dev.pin.clone(),
                    suite: String::new(),
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleets_are_reproducible_and_follow_the_mix() {
        let mix: Mix = "dsc_plus=50,ib_key=40,attacked=10".parse().unwrap();
        let a = build(1000, &mix, 7);
        let b = build(1000, &mix, 7);
        let c = build(1000, &mix, 8);
        assert_eq!(a.len(), 1000);
        assert_eq!(a[17].devices[0].secret, b[17].devices[0].secret);
        assert_ne!(a[17].devices[0].secret, c[17].devices[0].secret);
        let dsc = a.iter().filter(|u| u.persona == Persona::DscPlus).count();
        let push = a.iter().filter(|u| u.persona == Persona::IbKeyPush).count();
        assert_eq!(dsc, 500);
        assert_eq!(push, 200);
        // R10: names are lower-case alphanumeric; R7: a DSC+ PIN is exactly 4 digits.
        for u in &a {
            assert!(sls_protocol::valid_user_name(&u.name), "{}", u.name);
            for d in &u.devices {
                if d.kind == DeviceKind::DscPlus {
                    assert!(d.pin.len() == 4 && d.pin.bytes().all(|b| b.is_ascii_digit()));
                }
            }
        }
        let names: std::collections::HashSet<_> = a.iter().map(|u| &u.name).collect();
        assert_eq!(names.len(), a.len());
    }

    #[test]
    fn mix_parsing_refuses_nonsense() {
        assert!("dsc_plus=x".parse::<Mix>().is_err());
        assert!("nope=1".parse::<Mix>().is_err());
        assert!("dsc_plus".parse::<Mix>().is_err());
        assert!("dsc_plus=0".parse::<Mix>().is_err());
    }
}
