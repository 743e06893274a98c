//! # sls-loadgen
//!
//! Simulates fleets of DSC+ and IB Key clients against `slsd` and records latency in
//! HdrHistogram. It sees only the wire, like a real client: it depends on `sls-protocol`, never
//! on the daemon's internals.
//!
//! ```text
//!  fleet (seeded users, devices, keys) ──enrol──▶ admin stream ─┐
//!  schedule (open / closed loop) ─▶ scenario steps ─▶ frontend streams ─┼─QUIC─▶ slsd
//!  IB Key apps (one connection each) ◀── pushes ───────────────┘
//!  report: summary table, summary.json, <scenario>.hlog (+ .service.hlog), latency.svg,
//!          report.html
//! ```
//!
//! [`daemon`] starts a real `slsd` child and [`harness`] connects to it with a role, enrols and
//! logs in: the one harness of the daemon's integration tests, this crate's own, and the
//! benches' end-to-end runner.

pub mod abort;
pub mod apps;
pub mod attack;
pub mod batched;
pub mod behaviour;
pub mod compare;
pub mod daemon;
pub mod device;
pub mod fleet;
pub mod harness;
pub mod html;
pub mod judge;
pub mod live;
pub mod machine;
pub mod merge;
pub mod meta;
pub mod plot;
pub mod raw;
pub mod raw_dsc;
pub mod raw_open;
pub mod redis_cluster;
pub mod report;
pub mod run;
pub mod rundir;
pub mod scenario;
pub mod schedule;
pub mod summary;
pub mod threshold;
