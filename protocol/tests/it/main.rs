//! sls-protocol's one integration-test binary (one link, one run): the RFC 6287 vectors, the
//! wire format's property tests, and PROTOCOL.md's examples. A new concern is a new module
//! here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod audit;
mod protocol_doc;
mod rfc6287;
mod wire;
