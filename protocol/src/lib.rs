//! # sls-protocol
//!
//! The part of sls that the daemon, the load generator and any login frontend share:
//!
//! ```text
//!   frontend / IB Key app / admin          slsd
//!   ┌──────────────────────────┐          ┌──────────────────────────┐
//!   │ Message ─encode─▶ bytes  │ ─QUIC─▶  │ bytes ─decode─▶ Message  │
//!   │ ocra / card / codes      │          │ ocra / card / codes      │
//!   └──────────────────────────┘          └──────────────────────────┘
//! ```
//!
//! - the wire format ([`frame`], [`message`], [`status`], [`limits`]): length-delimited frames
//!   with a type and a request id, decoded from caller-owned buffers;
//! - the credential algorithms: RFC 6287 OCRA, the Security Code Card, temporary and SMS codes,
//!   the IB Key push approval.
//!
//! It does no I/O and reads no clock: time comes in as an argument.
#![warn(missing_docs)]

pub mod audit;
pub mod card;
pub mod close;
pub mod codes;
pub mod error;
mod export;
pub mod field;
pub mod frame;
pub mod limits;
pub mod message;
pub mod ocra;
pub mod push;
pub mod status;
pub mod text;
pub mod types;

pub use audit::{AuditEntry, DeviceDetail, ShareInfo, ShareSource};
pub use close::CloseCode;
pub use error::{DecodeError, EncodeError, FrameError, FrameErrorKind};
pub use frame::Frame;
pub use message::{
    negotiate, Access, BulkOutcome, BulkRecord, Counter, Message, ALPN_DEVICE, ALPN_FRONTEND,
    MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
pub use status::Status;
pub use text::{clip_str, clip_text};
pub use types::{
    valid_user_name, ApprovalMethod, Challenge, DeviceId, DeviceInfo, DeviceKind, Grant, GrantKind,
    Limits, Purpose, Role, SecurityLevel, TxnId, Verdict,
};
