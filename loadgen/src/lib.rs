//! # sls-loadgen
//!
//! Simulates fleets of DSC+ and IB Key clients against `slsd` and records latency in
//! HdrHistogram. It sees only the wire, like a real client: it depends on `sls-protocol`, never
//! on the daemon's internals.

pub mod client;
pub mod fleet;
pub mod report;
