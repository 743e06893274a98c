//! # sls-daemon
//!
//! `slsd`, the sls verification daemon, as a library: the verifier [`core`] (no I/O), the
//! durable [`store`], and the QUIC [`service`] that puts the core on the network.
//!
//! ```text
//!  frontends ─sls/1 (mTLS)──┐                       ┌─▶ core (rules, lockout, limits)
//!  admins ────sls/1 (mTLS)──┼─▶ service (quinn) ────┤
//!  IB Key apps ─sls-device/1┘                       └─▶ store (journal, group commit)
//! ```

pub mod audit;
pub mod backend;
pub mod config;
pub mod logging;
/// The verifier core (its own crate, `sls-core`: no I/O).
pub use sls_core as core;
pub mod metrics;
pub mod service;
pub mod store;
