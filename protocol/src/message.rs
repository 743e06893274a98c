//! Every message of the protocol, with its type code, who may send it, and its fields in wire
//! order. `protocol/PROTOCOL.md` is the same table for people.
//!
//! One enum for all three roles keeps the codec, the fuzz target and the property tests in one
//! place; [`Message::access`] says which role may send each message, and the daemon refuses the
//! rest with [`crate::Status::FORBIDDEN`].

use std::net::IpAddr;

use bytes::BytesMut;

use crate::audit::{AuditEntry, DeviceDetail, ShareInfo, MAX_AUDIT_PAGE};
use crate::error::{DecodeError, EncodeError};
use crate::field::{Field, Reader};
use crate::limits::{
    MAX_ANSWER, MAX_BULK, MAX_LIST, MAX_MAC, MAX_PIN, MAX_SECRET, MAX_SUITE, MAX_TEXT, MAX_USER,
};
use crate::status::Status;
use crate::types::{
    ApprovalMethod, Challenge, DeviceId, DeviceInfo, DeviceKind, Purpose, Role, TxnId, Verdict,
};

/// The newest protocol version this library speaks.
pub const PROTOCOL_VERSION: u16 = 4;
/// The oldest protocol version this library still speaks: versions 2, 3 and 4 only added
/// messages.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// The version a peer speaking [`MIN_PROTOCOL_VERSION`]..=[`PROTOCOL_VERSION`] agrees on with
/// one offering `min..=max`: the newest both speak, if any.
pub fn negotiate(min: u16, max: u16) -> Option<u16> {
    let v = max.min(PROTOCOL_VERSION);
    (v >= min.max(MIN_PROTOCOL_VERSION)).then_some(v)
}
/// ALPN of frontends and admins (mutual TLS; the client certificate names the role).
pub const ALPN_FRONTEND: &[u8] = b"sls/1";
/// ALPN of IB Key apps (no client certificate; the app proves possession of its key in-band).
pub const ALPN_DEVICE: &[u8] = b"sls-device/1";

/// Who may send a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any client, any role (hello, ping).
    Any,
    /// Frontends, and admins (an admin may do what a frontend does).
    Frontend,
    /// Admins only.
    Admin,
    /// IB Key apps only.
    Device,
    /// Only the daemon sends it: responses and pushes.
    Server,
}

impl Access {
    /// Whether a client of `role` may send a message of this access class.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Any => true,
            Access::Frontend => matches!(role, Role::Frontend | Role::Admin),
            Access::Admin => role == Role::Admin,
            Access::Device => role == Role::Device,
            Access::Server => false,
        }
    }
}

/// One record of a bulk enrolment: a user (created if new, as its own entity and primary user)
/// and one device for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct BulkRecord {
    /// The user name (R10).
    pub user: String,
    /// The device's kind.
    pub kind: DeviceKind,
    /// The device's secret: OCRA key, card secret, or IB Key app key.
    pub secret: Vec<u8>,
    /// The device's PIN (R7), empty if it has none.
    pub pin: String,
    /// The OCRA suite, empty for the kind's default (R5, R6).
    pub suite: String,
}

impl Field for BulkRecord {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        self.user.put(w, MAX_USER)?;
        self.kind.put(w, 0)?;
        self.secret.put(w, MAX_SECRET)?;
        self.pin.put(w, MAX_PIN)?;
        self.suite.put(w, MAX_SUITE)
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        Ok(BulkRecord {
            user: String::get(r, MAX_USER)?,
            kind: DeviceKind::get(r, 0)?,
            secret: Vec::get(r, MAX_SECRET)?,
            pin: String::get(r, MAX_PIN)?,
            suite: String::get(r, MAX_SUITE)?,
        })
    }
}

/// The outcome of one record of a bulk enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum BulkOutcome {
    /// Enrolled as this device.
    Enrolled(DeviceId),
    /// Refused with this status.
    Refused(Status),
}

impl Field for BulkOutcome {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        match self {
            BulkOutcome::Enrolled(d) => {
                0u8.put(w, 0)?;
                d.put(w, 0)
            }
            BulkOutcome::Refused(s) => {
                1u8.put(w, 0)?;
                s.put(w, 0)
            }
        }
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        match u8::get(r, 0)? {
            0 => Ok(BulkOutcome::Enrolled(DeviceId::get(r, 0)?)),
            1 => Ok(BulkOutcome::Refused(Status::get(r, 0)?)),
            _ => Err(DecodeError::Invalid("bulk outcome")),
        }
    }
}

/// A named counter of the daemon's stats.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Counter {
    /// The counter's stable name, e.g. `failures_evaluated`.
    pub name: String,
    /// Its value.
    pub value: u64,
}

impl Field for Counter {
    fn put(&self, w: &mut BytesMut, _max: usize) -> Result<(), EncodeError> {
        self.name.put(w, MAX_TEXT)?;
        self.value.put(w, 0)
    }
    fn get(r: &mut Reader<'_>, _max: usize) -> Result<Self, DecodeError> {
        Ok(Counter {
            name: String::get(r, MAX_TEXT)?,
            value: u64::get(r, 0)?,
        })
    }
}

macro_rules! field_max {
    () => {
        0
    };
    ($e:expr) => {
        $e
    };
}

macro_rules! messages {
    ($(
        $(#[$vm:meta])*
        $code:literal $name:ident [$access:ident] { $( $(#[$fm:meta])* $f:ident : $t:ty $(= $max:expr)? ),* $(,)? }
    )+) => {
        /// A protocol message. The doc of each variant gives its direction; PROTOCOL.md gives
        /// its bytes.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        #[non_exhaustive]
        // Each field is named for what it holds; the variant's doc and PROTOCOL.md say the rest.
        #[allow(missing_docs)]
        pub enum Message {
            $( $(#[$vm])* $name { $( $(#[$fm])* $f: $t ),* }, )+
        }

        impl Message {
            /// Every message type: its code, its name, who may send it.
            pub const TYPES: &'static [(u16, &'static str, Access)] = &[
                $( ($code, stringify!($name), Access::$access), )+
            ];

            /// The message's type code.
            pub fn type_code(&self) -> u16 {
                match self { $( Message::$name { .. } => $code, )+ }
            }

            /// The message's name, for logs and metrics.
            pub fn type_name(&self) -> &'static str {
                match self { $( Message::$name { .. } => stringify!($name), )+ }
            }

            /// Who may send the message.
            pub fn access(&self) -> Access {
                match self { $( Message::$name { .. } => Access::$access, )+ }
            }

            /// The name of a type code, if it is known.
            pub fn name_of(code: u16) -> Option<&'static str> {
                match code { $( $code => Some(stringify!($name)), )+ _ => None }
            }

            /// Appends the body (the fields, without the frame header).
            pub(crate) fn put_body(&self, w: &mut BytesMut) -> Result<(), EncodeError> {
                match self {
                    $( Message::$name { $($f),* } => {
                        $( Field::put($f, w, field_max!($($max)?))?; )*
                        Ok(())
                    } )+
                }
            }

            /// Decodes a body of type `code`; the whole body must be consumed.
            pub(crate) fn get_body(code: u16, body: &[u8]) -> Result<Message, DecodeError> {
                let mut r = Reader::new(body);
                let msg = match code {
                    $( $code => Message::$name {
                        $( $f: <$t as Field>::get(&mut r, field_max!($($max)?))? ),*
                    }, )+
                    _ => return Err(DecodeError::UnknownType(code)),
                };
                match r.remaining() {
                    0 => Ok(msg),
                    n => Err(DecodeError::Trailing(n)),
                }
            }
        }
    };
}

messages! {
    // ---- any role ------------------------------------------------------------------------
    /// Client → daemon, the first frame on every stream: the versions the client speaks.
    0x0001 Hello [Any] { min_version: u16, max_version: u16, agent: String = MAX_TEXT }
    /// Daemon → client: the version chosen, the daemon's limits, the role it sees.
    0x8001 Welcome [Server] { version: u16, max_frame: u32, max_in_flight: u32, role: Role }
    /// Client → daemon: liveness.
    0x0002 Ping [Any] {}
    /// Daemon → client.
    0x8002 Pong [Server] {}
    /// Daemon → client: the request succeeded and has nothing to say.
    0x8000 Done [Server] {}
    /// Daemon → client: the request (or, with id 0, the stream) failed.
    0xffff Error [Server] { status: Status, message: String = MAX_TEXT }

    // ---- frontend ------------------------------------------------------------------------
    /// Frontend → daemon, after the password is accepted: the user's usable devices (R4), or,
    /// with `device`, a challenge for it (R5, R6, R9). `client` is the end user's address, for
    /// rate limiting.
    0x0010 Begin [Frontend] { user: String = MAX_USER, purpose: Purpose, device: Option<DeviceId>, client: IpAddr }
    /// Daemon → frontend: the devices to offer (R4; for a withdrawal only those that cover it).
    0x8010 Devices [Server] { devices: Vec<DeviceInfo> = MAX_LIST }
    /// Daemon → frontend: a challenge bound to a new transaction (R12).
    0x8011 ChallengeIssued [Server] { txn: TxnId, device: DeviceInfo, challenge: Challenge, expires_at_ms: u64 }
    /// Frontend → daemon: the user's answer to a transaction's challenge.
    0x0011 Answer [Frontend] { txn: TxnId, response: String = MAX_ANSWER, client: IpAddr }
    /// Frontend → daemon: wait up to `timeout_ms` for a push decision (R6).
    0x0012 Await [Frontend] { txn: TxnId, timeout_ms: u32 }
    /// Frontend → daemon: the user's password was wrong; counts towards the lockout (R11).
    0x0013 PasswordFailed [Frontend] { user: String = MAX_USER, client: IpAddr }
    /// Frontend → daemon: whether a user is locked, and until when.
    0x0014 Status [Frontend] { user: String = MAX_USER }
    /// Daemon → frontend: a user's state.
    0x8014 UserStatus [Server] { locked_until_ms: u64, failures: u8, failures_left: u8, opted_out: bool, devices: Vec<DeviceInfo> = MAX_LIST }
    /// Frontend → daemon (version 2): as `Begin`, asking for the typed challenge instead of a
    /// push (R6, "Click here if you do not receive the notification"): an IB Key device gets a
    /// numeric challenge even while its app is connected; other devices answer as to `Begin`.
    0x0015 BeginTyped [Frontend] { user: String = MAX_USER, purpose: Purpose, device: Option<DeviceId>, client: IpAddr }
    /// Frontend → daemon (version 2): what the user should be told (R16), and whether lockouts
    /// across users look like an attack.
    0x0016 Notices [Frontend] { user: String = MAX_USER }
    /// Daemon → frontend: `replacement` is the user's shipped replacement DSC+ (R16) and
    /// `activates_at_ms` when it activates by itself; `activation` is 0 (nothing to tell),
    /// 1 (auto-activation approaches: within 7 days) or 2 (imminent: within a day);
    /// `mass_lockout` is the mass-lockout signal.
    0x8016 UserNotices [Server] { replacement: Option<DeviceId>, activation: u8, activates_at_ms: u64, mass_lockout: bool }
    /// Frontend → daemon (version 4): the verdict of transaction `txn` as it stands, at once,
    /// changing nothing (R12): the verdict its first answer got, for the replay window after
    /// it; `pending` (or `expired`) while it is open; `unknown` for a transaction the daemon
    /// does not know. For a frontend whose `Answer` got no reply (its node died, its
    /// connection was lost) to learn the first verdict on any node, instead of `replayed`.
    0x0017 TxnVerdict [Frontend] { txn: TxnId }
    /// Daemon → frontend: the verdict of a `Begin`, `Answer`, `Await`, `PasswordFailed` or
    /// `PushAnswer`.
    0x8020 Judged [Server] { verdict: Verdict }

    // ---- IB Key app --------------------------------------------------------------------------
    /// App → daemon: the device this app is, to be proven.
    0x0030 DeviceHello [Device] { device: DeviceId }
    /// Daemon → app: a nonce to sign.
    0x8030 DeviceNonce [Server] { nonce: [u8; 32] }
    /// App → daemon: proof of possession of the device key (see PROTOCOL.md).
    0x0031 DeviceProve [Device] { proof: [u8; 32] }
    /// Daemon → app (request id 0, unsolicited): a login awaits approval (R6). It does not
    /// carry the number the login screen shows: the user must type it (number matching).
    0x8032 Push [Server] { txn: TxnId, user: String = MAX_USER, nonce: [u8; 16], purpose: Purpose, expires_at_ms: u64 }
    /// App → daemon: the user approved or declined a push, with the number the user typed from
    /// the login screen, signed with the device key (R6).
    0x0033 PushAnswer [Device] { txn: TxnId, approve: bool, method: ApprovalMethod, number: u8, mac: [u8; 32] }

    // ---- admin --------------------------------------------------------------------------------
    /// Admin → daemon: enrol a user (R10 name, R17 entity and identification, R18 primary).
    0x0050 EnrolUser [Admin] { user: String = MAX_USER, entity: String = MAX_TEXT, identification: String = MAX_TEXT, primary: bool, equity_usd: u64 }
    /// Admin → daemon: enrol a device for a user (several per user, R4).
    0x0051 EnrolDevice [Admin] { user: String = MAX_USER, kind: DeviceKind, secret: Vec<u8> = MAX_SECRET, pin: String = MAX_PIN, suite: String = MAX_SUITE }
    /// Daemon → admin: the device's id.
    0x8051 Enrolled [Server] { device: DeviceId }
    /// Admin → daemon: many users and devices at once, for fleets.
    0x0052 EnrolBulk [Admin] { records: Vec<BulkRecord> = MAX_BULK }
    /// Daemon → admin: one outcome per record, in order.
    0x8052 BulkEnrolled [Server] { outcomes: Vec<BulkOutcome> = MAX_BULK }
    /// Admin → daemon: issue a temporary code (R13).
    0x0053 IssueTempCode [Admin] { user: String = MAX_USER }
    /// Daemon → admin: the code and its two deadlines (R13).
    0x8053 TempCodeIssued [Server] { device: DeviceId, code: String = MAX_ANSWER, full_until_ms: u64, portal_until_ms: u64 }
    /// Admin → daemon: issue an Online SCC (R14).
    0x0054 IssueOnlineScc [Admin] { user: String = MAX_USER }
    /// Daemon → admin: the card's secret (to print its grid) and its expiry (R14).
    0x8054 OnlineSccIssued [Server] { device: DeviceId, secret: Vec<u8> = MAX_SECRET, expires_at_ms: u64 }
    /// Admin → daemon: reactivate a permanent device; voids temporary ones (R15).
    0x0055 Reactivate [Admin] { user: String = MAX_USER, device: DeviceId }
    /// Admin → daemon: order a replacement DSC+ with a new PIN (R16).
    0x0056 OrderReplacement [Admin] { user: String = MAX_USER, secret: Vec<u8> = MAX_SECRET, pin: String = MAX_PIN }
    /// Admin → daemon: a replacement has shipped; auto-activation is due 3 weeks later (R16).
    0x0057 Ship [Admin] { user: String = MAX_USER, device: DeviceId }
    /// Admin → daemon: the user activated a device.
    0x0058 Activate [Admin] { user: String = MAX_USER, device: DeviceId }
    /// Admin → daemon: `requester` asks to share `owner`'s device, proven by the owner's answer
    /// to transaction `txn` (R17).
    0x0059 ShareRequest [Admin] { requester: String = MAX_USER, owner: String = MAX_USER, device: DeviceId, txn: TxnId, answer: String = MAX_ANSWER }
    /// Daemon → admin: the share, approved at once or pending compliance (R17).
    0x8059 ShareState [Server] { share: u32, pending: bool }
    /// Admin (compliance) → daemon: approve or refuse a pending share (R17).
    0x005a ShareDecide [Admin] { share: u32, approve: bool }
    /// Admin → daemon: cancel a share; the requester's own devices come back (R17).
    0x005b ShareCancel [Admin] { share: u32 }
    /// Admin → daemon: the user opts out of SLS (R18).
    0x005c OptOut [Admin] { user: String = MAX_USER }
    /// Admin → daemon: `by` opts `user` back in; only the primary user may (R18).
    0x005d OptIn [Admin] { user: String = MAX_USER, by: String = MAX_USER }
    /// Admin (client services) → daemon: lift a lockout (R11).
    0x005e Unlock [Admin] { user: String = MAX_USER }
    /// Admin → daemon: the daemon's counters.
    0x005f GetStats [Admin] {}
    /// Daemon → admin.
    0x805f Stats [Server] { counters: Vec<Counter> = MAX_LIST }
    /// Admin → daemon: start IB Key activation or recovery; the token goes by SMS to `phone`
    /// (R22). The daemon has no SMS gateway: the token is returned for the caller to send.
    0x0060 ActivationStart [Admin] { user: String = MAX_USER, phone: String = MAX_TEXT }
    /// Daemon → admin: the activation token.
    0x8060 ActivationToken [Server] { token: String = MAX_ANSWER }
    /// Admin → daemon: finish IB Key activation with the token, the app's key and PIN (R22).
    0x0061 ActivateIbKey [Admin] { user: String = MAX_USER, token: String = MAX_ANSWER, key: Vec<u8> = MAX_MAC, pin: String = MAX_PIN }
    /// Admin → daemon (version 3): stop one device of `user` at once, for good (`suspend`
    /// false: revoked, never usable again) or until `ResumeDevice` (`suspend` true), with a
    /// `reason` (1 lost, 2 stolen, 3 damaged, 4 other). Every share copy of it stops with it
    /// (R17); its open challenges are void; temporary access stays available (R13, R14).
    0x0062 RevokeDevice [Admin] { user: String = MAX_USER, device: DeviceId, suspend: bool, reason: u8 }
    /// Admin → daemon (version 3): resume a suspended device (and its share copies).
    0x0063 ResumeDevice [Admin] { user: String = MAX_USER, device: DeviceId }
    /// Frontend → daemon (version 3): the withdrawal confirmed by transaction `txn` did not
    /// execute: it no longer counts towards `user`'s R3 limits.
    0x0064 ReleaseWithdrawal [Frontend] { user: String = MAX_USER, txn: TxnId }
    /// Admin → daemon (version 3): opt `user` back in (R18) when its account has no primary
    /// user who could (client services' override, after verifying identity).
    0x0065 OptInOverride [Admin] { user: String = MAX_USER }

    // ---- admin, version 3: 0x0070-0x007f --------------------------------------------
    /// Admin → daemon (version 3): the audit trail of `user` (every verdict, every admin
    /// change), oldest first from `since_ms` (inclusive), leaving out the first `skip` entries
    /// of that very millisecond, at most `limit` entries (0 or more than 64: 64).
    0x0070 AuditRead [Admin] { user: String = MAX_USER, since_ms: u64, skip: u16, limit: u16 }
    /// Daemon → admin (version 3): the entries, oldest first (newest last). `more`: entries
    /// follow; the next page is `AuditRead` with `since_ms` = `next_since_ms` and `skip` =
    /// `next_skip`.
    0x8070 AuditEntries [Server] { entries: Vec<AuditEntry> = MAX_AUDIT_PAGE, more: bool, next_since_ms: u64, next_skip: u16 }
    /// Admin → daemon (version 3): every device of `user`, in every state.
    0x0071 ListDevices [Admin] { user: String = MAX_USER }
    /// Daemon → admin (version 3): the devices, in enrolment order (the first 64).
    0x8071 DeviceList [Server] { devices: Vec<DeviceDetail> = MAX_LIST }
    /// Admin → daemon (version 3): a user's account data, failures and lock (R11),
    /// withdrawals used and left (R3).
    0x0072 UserDetail [Admin] { user: String = MAX_USER }
    /// Daemon → admin (version 3): `failures_ms` the failures in the lockout window, oldest
    /// first (the newest 64); `locked_until_ms` 0 unless locked; withdrawn in the last day and
    /// five business days, and left in each with the user's most protective usable device
    /// (`u64::MAX`: unlimited).
    0x8072 UserDetails [Server] { entity: String = MAX_TEXT, identification: String = MAX_TEXT, primary: bool, equity_usd: u64, opted_out: bool, failures_ms: Vec<u64> = MAX_LIST, locked_until_ms: u64, withdrawn_day_usd: u64, withdrawn_5bd_usd: u64, left_day_usd: u64, left_5bd_usd: u64 }
    /// Admin → daemon (version 3): sets each field given of `user`'s account data (R17, R18,
    /// R20); the identification in its canonical form.
    0x0074 UpdateUser [Admin] { user: String = MAX_USER, entity: Option<String> = MAX_TEXT, identification: Option<String> = MAX_TEXT, primary: Option<bool>, equity_usd: Option<u64> }
    /// Admin → daemon (version 3): the admin request of type `request` whose body is `body`
    /// (its fields, as the request alone would carry them), made idempotent by `key`, chosen
    /// by the client (16 random bytes): the daemon answers a key it has answered before with
    /// the first answer, and does nothing again, for `idempotency_ttl` (24 h). The answer is
    /// the inner request's, under this frame's id.
    0x0077 Idempotent [Admin] { key: [u8; 16], request: u16, body: Vec<u8> = MAX_WRAPPED }
    /// Admin (compliance) → daemon (version 3): the live shares (R17), pending only or
    /// approved too, with ids above `after` (0: from the first), in id order.
    0x0078 ListShares [Admin] { pending_only: bool, after: u32 }
    /// Daemon → admin (version 3): at most 64 shares; `next` 0: none follow; else list again
    /// with `after` = `next` (a page may hold fewer than 64 and still be followed).
    0x8078 Shares [Server] { shares: Vec<ShareInfo> = MAX_LIST, next: u32 }
    /// Admin → daemon (version 3): remove `user`'s `device` for good: its open challenges
    /// void, its share copies stop (R17).
    0x0079 RemoveDevice [Admin] { user: String = MAX_USER, device: DeviceId }
}

/// The largest body an `Idempotent` wraps: a frame's, less the wrapper's own bytes.
pub const MAX_WRAPPED: usize = crate::limits::MAX_FRAME - 64;

impl Message {
    /// The body of the message (its fields, without the frame header), as an `Idempotent`
    /// wraps it.
    ///
    /// # Errors
    /// A field over its limit.
    pub fn encode_body(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = BytesMut::new();
        self.put_body(&mut w)?;
        Ok(w.to_vec())
    }

    /// The message of type `code` whose body is `body` (an `Idempotent`'s inner request);
    /// the whole body must be consumed.
    ///
    /// # Errors
    /// An unknown type, or a body that is not exactly one such message.
    pub fn decode_body(code: u16, body: &[u8]) -> Result<Message, DecodeError> {
        Message::get_body(code, body)
    }

    /// An `Idempotent` wrapping `inner` with `key`.
    ///
    /// # Errors
    /// The inner message does not encode, or is too large to wrap.
    pub fn idempotent(key: [u8; 16], inner: &Message) -> Result<Message, EncodeError> {
        let body = inner.encode_body()?;
        if body.len() > MAX_WRAPPED {
            return Err(EncodeError::TooLong {
                len: body.len(),
                max: MAX_WRAPPED,
            });
        }
        Ok(Message::Idempotent {
            key,
            request: inner.type_code(),
            body,
        })
    }
}
