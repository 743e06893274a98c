//! # sls-daemon
//!
//! `slsd`, the sls verification daemon, as a library: the verifier's [`engine`] (the rules of
//! `sls-core`, sans-IO, driven through a store), the durable [`journal`], and the QUIC
//! [`service`] that puts the engine on the network.
//!
//! ```text
//!  frontends ─sls/1 (mTLS)──┐                       ┌─▶ engine (limits, steps) ─▶ core (rules)
//!  admins ────sls/1 (mTLS)──┼─▶ service (quinn) ────┤
//!  IB Key apps ─sls-device/1┘                       └─▶ journal (group commit, snapshots)
//! ```

pub mod audit;
pub mod backend;
pub mod config;
pub mod logging;
/// The verifier's engine (its own crate, `sls-engine`), and through it the rules (`sls-core`).
pub use sls_engine as engine;
pub mod journal;
pub mod metrics;
pub mod service;
