//! Domain types shared by the wire format, the daemon's core and every client.
//!
//! These are plain data: the rules that act on them live in the daemon's core. The few tables
//! here (R2 security levels, R3 withdrawal limits) are the articles' figures, which every party
//! must read the same way.

use core::fmt;

/// A device's id, unique within one daemon. Assigned by the daemon at enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct DeviceId(pub u32);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}", self.0)
    }
}

/// A transaction id: 128 random bits chosen by the daemon, so that it cannot be guessed (R12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct TxnId(pub u128);

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

macro_rules! wire_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr => $text:expr,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $var = $val,)+ }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$var,)+];

            /// The wire byte.
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The value of a wire byte, if it names one.
            pub const fn from_code(code: u8) -> Option<Self> {
                match code {
                    $($val => Some($name::$var),)+
                    _ => None,
                }
            }

            /// The stable lower-case name used in logs, metrics and the CLI.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$var => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl core::str::FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($text => Ok($name::$var),)+
                    _ => Err(UnknownName),
                }
            }
        }
    };
}

/// The error of parsing an enum from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown name")]
pub struct UnknownName;

wire_enum! {
    /// Kinds of second-factor device (R1).
    pub enum DeviceKind {
        /// Digital Security Card+: PIN, then a 6-digit challenge, an 8-digit answer (R5).
        DscPlus = 1 => "dsc_plus",
        /// The IB Key phone app: push approval, or challenge/response fallback (R6).
        IbKey = 2 => "ib_key",
        /// Security Code Card: codes read off a printed grid at index positions (R9).
        Scc = 3 => "scc",
        /// A code card printed from Client Portal; temporary (R14).
        OnlineScc = 4 => "online_scc",
        /// A static code from client services; temporary (R13).
        TempCode = 5 => "temp_code",
        /// A one-time passcode by text message; temporary until IB Key is activated.
        Sms = 6 => "sms",
        /// Legacy challenge/response card, still honoured where active.
        Dsc = 7 => "dsc",
        /// Legacy Gold card.
        Gold = 8 => "gold",
        /// Legacy Platinum card.
        Platinum = 9 => "platinum",
        /// No device: a user who opted out of SLS logs in without one (R18).
        NoDevice = 10 => "none",
    }
}

impl DeviceKind {
    /// The device's rank for sharing (R17) and withdrawals (R4), by R2:
    /// DSC+ = Gold = Platinum > DSC > IB Key > SCC > none.
    ///
    /// **Choice:** the articles rank no temporary code or SMS; they give no withdrawal limits
    /// for them either, so they rank as `None` (R3's "none" limits), and an Online SCC ranks as
    /// an SCC.
    pub const fn level(self) -> SecurityLevel {
        match self {
            DeviceKind::DscPlus | DeviceKind::Gold | DeviceKind::Platinum => SecurityLevel::Top,
            DeviceKind::Dsc => SecurityLevel::Dsc,
            DeviceKind::IbKey => SecurityLevel::IbKey,
            DeviceKind::Scc | DeviceKind::OnlineScc => SecurityLevel::Scc,
            DeviceKind::TempCode | DeviceKind::Sms | DeviceKind::NoDevice => SecurityLevel::None,
        }
    }

    /// Temporary devices (R13, R14, and SMS until IB Key is active): they block sharing (R17b)
    /// and are voided by reactivation (R15).
    pub const fn is_temporary(self) -> bool {
        matches!(
            self,
            DeviceKind::TempCode | DeviceKind::OnlineScc | DeviceKind::Sms
        )
    }

    /// Physical cards, the only devices that can be shared (R17; IB Key uses R8 instead).
    pub const fn is_physical(self) -> bool {
        matches!(
            self,
            DeviceKind::DscPlus
                | DeviceKind::Scc
                | DeviceKind::Dsc
                | DeviceKind::Gold
                | DeviceKind::Platinum
        )
    }
}

wire_enum! {
    /// Protection rank of a device (R2). Ordered: a greater level protects more.
    #[derive(PartialOrd, Ord)]
    pub enum SecurityLevel {
        /// No device: opted out (R18), or a temporary code or SMS.
        None = 0 => "none",
        /// Security Code Card, Online SCC.
        Scc = 1 => "scc",
        /// IB Key.
        IbKey = 2 => "ib_key",
        /// Legacy DSC.
        Dsc = 3 => "dsc",
        /// DSC+, Gold, Platinum.
        Top = 4 => "top",
    }
}

impl SecurityLevel {
    /// Withdrawal limits by the level of the device that authenticated (R3).
    pub const fn limits(self) -> Limits {
        const K: u64 = 1_000;
        match self {
            SecurityLevel::None => Limits::new(50 * K, 100 * K),
            SecurityLevel::Scc => Limits::new(200 * K, 600 * K),
            SecurityLevel::IbKey => Limits::new(1_000 * K, 1_000 * K),
            SecurityLevel::Dsc => Limits::new(1_000 * K, 1_500 * K),
            SecurityLevel::Top => Limits::UNLIMITED,
        }
    }
}

/// Withdrawal limits in whole USD (R3). `u64::MAX` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Limits {
    /// Most that may be withdrawn in one day.
    pub per_day_usd: u64,
    /// Most that may be withdrawn in five business days.
    pub per_5_business_days_usd: u64,
}

impl Limits {
    /// No limit.
    pub const UNLIMITED: Limits = Limits::new(u64::MAX, u64::MAX);

    /// Limits of so many USD a day and per five business days.
    pub const fn new(per_day_usd: u64, per_5_business_days_usd: u64) -> Limits {
        Limits {
            per_day_usd,
            per_5_business_days_usd,
        }
    }

    /// Whether both limits are unlimited.
    pub const fn is_unlimited(&self) -> bool {
        self.per_day_usd == u64::MAX && self.per_5_business_days_usd == u64::MAX
    }
}

wire_enum! {
    /// The role of a peer, decided by the daemon from its certificate or ALPN. It lives here,
    /// with the other wire enums, so that `field` (its encoding) and `message` (the `Welcome`
    /// field, and who may send what) both depend on it, and `field` not on `message`.
    pub enum Role {
        /// A login frontend (ALPN `sls/1`, frontend certificate).
        Frontend = 1 => "frontend",
        /// Admin tooling (ALPN `sls/1`, admin certificate).
        Admin = 2 => "admin",
        /// An IB Key app (ALPN `sls-device/1`).
        Device = 3 => "device",
    }
}

wire_enum! {
    /// How the user approved an IB Key push (R6), which decides the trading grant (R21).
    pub enum ApprovalMethod {
        /// The IB Key PIN (4 to 6 characters, R7).
        Pin = 1 => "pin",
        /// Fingerprint or face.
        Biometric = 2 => "biometric",
    }
}

wire_enum! {
    /// What a successful verification grants (R13, R14, R21).
    pub enum GrantKind {
        /// Full access for the session: every permanent device but IB Key.
        Session = 0 => "session",
        /// IB Key with the PIN: trading access for up to 12 hours (R21).
        TradingPin = 1 => "trading_pin",
        /// IB Key with biometrics: trading access for more than 30 hours, renewed by any
        /// authentication within that period (R21).
        TradingBiometric = 2 => "trading_biometric",
        /// Full access, but temporary: a temporary code's first 2 days (R13), an Online SCC's
        /// 21 days (R14), or SMS.
        Temporary = 3 => "temporary",
        /// Client Portal only, to print an Online SCC: a temporary code's days 3 to 12 (R13).
        PortalOnly = 4 => "portal_only",
    }
}

/// The grant carried by an accepted verdict (R21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Grant {
    /// Which grant applies.
    pub kind: GrantKind,
    /// How long it lasts from the verdict, in seconds (0: for the session only).
    pub valid_secs: u32,
}

/// What a transaction is for (R4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Purpose {
    /// Logging in: any active device will do.
    Login,
    /// Confirming a withdrawal of so many whole USD: only devices whose limits (R3) cover it.
    Withdrawal {
        /// The amount, in whole USD.
        amount_usd: u64,
    },
}

/// What the login screen shows for a challenge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Challenge {
    /// A numeric question to type into a DSC+ (R5) or the IB Key app's fallback (R6).
    Numeric(String),
    /// Index positions on a Security Code Card (R9), numbered from 0.
    Positions(Vec<u16>),
    /// A push was sent to the IB Key app (R6); the login screen shows this number and the app
    /// asks the user to pick the same one (number matching, against push fatigue).
    Push {
        /// The number to show, 0..=99.
        number: u8,
    },
    /// Nothing to show: the user types a temporary code (R13).
    Code,
    /// A one-time passcode for the frontend to deliver to the user's phone by SMS, or by voice
    /// call-back when SMS fails (R1); the user types it back. It is never shown on the login
    /// screen: the daemon has no SMS gateway, the frontend's is used.
    Sms {
        /// The 6-digit passcode.
        code: String,
    },
}

/// One device as the frontend lists it for the user to pick (R4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct DeviceInfo {
    /// The device's id.
    pub id: DeviceId,
    /// Its kind.
    pub kind: DeviceKind,
    /// Its withdrawal limits (R3).
    pub limits: Limits,
}

/// The daemon's answer to a verification.
///
/// Expected outcomes are verdicts, not errors: a wrong answer is `Rejected`, and the frontend
/// shows the user the same screen for it as for an unknown user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Verdict {
    /// The answer is right and the challenge is now spent (R12).
    Accepted {
        /// The device that answered.
        device: DeviceId,
        /// Its kind.
        kind: DeviceKind,
        /// Its security level (R2).
        level: SecurityLevel,
        /// Its withdrawal limits (R3).
        limits: Limits,
        /// The access it grants (R13, R14, R21).
        grant: Grant,
    },
    /// The answer is wrong (or the user unknown); so many failures remain before the lock (R11).
    Rejected {
        /// Failures left before lockout.
        failures_left: u8,
    },
    /// The user is locked out (R11) until this time (milliseconds since the Unix epoch).
    Locked {
        /// When the lock lifts, ms since the Unix epoch.
        until_ms: u64,
    },
    /// Too many requests; retry after so many milliseconds.
    RateLimited {
        /// Milliseconds to wait.
        retry_after_ms: u32,
    },
    /// The challenge has expired (R12): start over.
    Expired,
    /// The challenge was already spent by a correct answer (R12).
    Replayed,
    /// No such transaction, user or device.
    Unknown,
    /// The answer is malformed (R10): wrong length, a space, a character out of its alphabet.
    Malformed,
    /// A withdrawal needs a device whose limits cover it (R4).
    NeedsStrongerDevice {
        /// The least security level whose limits cover the amount.
        required: SecurityLevel,
    },
    /// The push has not been answered yet (R6).
    Pending,
    /// The user declined the push on the app (R6).
    Declined,
}

impl Verdict {
    /// The stable lower-case name of the verdict's kind, for logs and metrics.
    pub const fn name(&self) -> &'static str {
        match self {
            Verdict::Accepted { .. } => "accepted",
            Verdict::Rejected { .. } => "rejected",
            Verdict::Locked { .. } => "locked",
            Verdict::RateLimited { .. } => "rate_limited",
            Verdict::Expired => "expired",
            Verdict::Replayed => "replayed",
            Verdict::Unknown => "unknown",
            Verdict::Malformed => "malformed",
            Verdict::NeedsStrongerDevice { .. } => "needs_stronger_device",
            Verdict::Pending => "pending",
            Verdict::Declined => "declined",
        }
    }
}

/// Whether a user name is valid (R10): 1 to [`crate::limits::MAX_USER`] bytes of lower-case ASCII
/// letters and digits. Anything else is refused with "BAD CHARACTER".
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= crate::limits::MAX_USER
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_levels_order_as_the_articles_rank_them() {
        use DeviceKind::*;
        assert_eq!(DscPlus.level(), Gold.level());
        assert_eq!(Gold.level(), Platinum.level());
        assert!(DscPlus.level() > Dsc.level());
        assert!(Dsc.level() > IbKey.level());
        assert!(IbKey.level() > Scc.level());
        assert!(Scc.level() > SecurityLevel::None);
        assert_eq!(OnlineScc.level(), Scc.level());
    }

    #[test]
    fn r3_limits_table() {
        assert_eq!(SecurityLevel::None.limits(), Limits::new(50_000, 100_000));
        assert_eq!(
            SecurityLevel::IbKey.limits(),
            Limits::new(1_000_000, 1_000_000)
        );
        assert_eq!(SecurityLevel::Scc.limits(), Limits::new(200_000, 600_000));
        assert_eq!(
            SecurityLevel::Dsc.limits(),
            Limits::new(1_000_000, 1_500_000)
        );
        assert!(SecurityLevel::Top.limits().is_unlimited());
    }

    #[test]
    fn r10_user_names_are_lower_case_alphanumeric() {
        assert!(valid_user_name("alice42"));
        assert!(!valid_user_name("Alice"));
        assert!(!valid_user_name("al ice"));
        assert!(!valid_user_name("al_ice"));
        assert!(!valid_user_name(""));
        assert!(!valid_user_name("é"));
        assert!(!valid_user_name(&"a".repeat(crate::limits::MAX_USER + 1)));
    }

    #[test]
    fn enum_codes_and_names_round_trip() {
        for k in DeviceKind::ALL {
            assert_eq!(DeviceKind::from_code(k.code()), Some(*k));
            assert_eq!(k.name().parse::<DeviceKind>(), Ok(*k));
        }
        assert_eq!(DeviceKind::from_code(0), None);
        assert_eq!(DeviceKind::from_code(11), None);
    }
}
