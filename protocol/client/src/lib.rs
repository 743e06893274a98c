//! # sls-client
//!
//! The client of `slsd` for login frontends, admin tools and IB Key apps: one typed async
//! call per request of the protocol (`protocol/PROTOCOL.md`), with the connection handling
//! PROTOCOL.md asks of every client.
//!
//! ```text
//!  ClientConfig (nodes, server name, certificates, timeouts)
//!        │
//!  Client::connect ──▶ node 1 ─(fails)─▶ node 2 …   one QUIC connection, one stream (Hello/Welcome)
//!        │
//!  begin / answer / await_push / status / unlock / …  ──▶ Result<answer, ClientError>
//! ```
//!
//! - A verdict is an answer, not an error: a wrong answer is `Ok(Verdict::Rejected {..})`.
//!   A request the daemon refused is [`ClientError::Refused`] with its [`Status`].
//! - Calls time out (`call_timeout`); nodes are tried in order (`connect_timeout` each);
//!   `SHUTTING_DOWN` moves to the next node; `rate_limited` is waited out; reads and a `Begin`
//!   without a device are sent again when the connection is lost (the same node first) or the
//!   node's store is `UNAVAILABLE` (the next node); a `Begin` that may have pushed never is
//!   ([`Client`], [`repeatable`]). An `Answer` whose reply did not come is followed by a
//!   `TxnVerdict` on the next node: its first verdict is returned, or, the challenge being
//!   still open there, the answer is sent once more ([`Client::answer`]).
//! - [`pipeline`] is the wire as it is, for callers that want every answer raw (the load
//!   generator).
//!
//! A DSC+ login, as a frontend does it once the password is checked:
//!
//! ```no_run
//! # async fn login() -> Result<(), Box<dyn std::error::Error>> {
//! use sls_client::{Begun, Client, ClientConfig, ClientTls, Purpose, Role, Verdict};
//!
//! let tls = ClientTls::from_dir("sls-data/tls".as_ref(), Role::Frontend)?;
//! let client = Client::connect(ClientConfig::new(["127.0.0.1:7443"], tls)?).await?;
//! let ip = "203.0.113.9".parse()?;
//! let Begun::Devices(devices) = client.begin("alice", Purpose::Login, None, ip).await? else {
//!     return Ok(()); // locked, opted out, …: a verdict at once
//! };
//! let Some(card) = devices.first() else { return Ok(()) };
//! if let Begun::Challenge(issued) = client.begin("alice", Purpose::Login, Some(card.id), ip).await? {
//!     // Show issued.challenge; the user types the card's 8 digits.
//!     let typed = "30417852";
//!     match client.answer(issued.txn, typed, ip).await? {
//!         Verdict::Accepted { .. } => println!("logged in"),
//!         other => println!("refused: {other:?}"),
//!     }
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod admin;
mod app;
mod calls;
mod client;
mod config;
mod error;
mod inspect;
pub mod pipeline;
mod tls;

pub use app::Push;
pub use calls::{Begun, Issued, NewUser, Share, TempCode, UserNotices, UserStatus};
pub use client::{repeatable, Client};
pub use config::{ClientConfig, Node, DEFAULT_PORT};
pub use error::{ClientError, SetupError, Unreachable};
pub use inspect::{AuditPage, UserDetails, UserUpdate};
pub use tls::ClientTls;

pub use sls_protocol::{
    ApprovalMethod, AuditEntry, BulkOutcome, BulkRecord, Challenge, Counter, DeviceDetail,
    DeviceId, DeviceInfo, DeviceKind, Message, Purpose, Role, ShareInfo, ShareSource, Status,
    TxnId, Verdict,
};
