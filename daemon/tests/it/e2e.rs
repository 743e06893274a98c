//! The real `slsd` binary on loopback, spoken to over real QUIC: every device kind logs in,
//! replays are refused, a lockout survives SIGKILL and restart, roles hold, bad frames get
//! errors while others are served, no 0-RTT, no secret in the logs; every admin call and
//! `PasswordFailed` with its documented answer and effect (`admin`).

mod admin;
mod devices;
mod edges;
mod operations;
mod refusals;
mod version2;

use std::net::{IpAddr, Ipv4Addr};

use sls_loadgen::daemon::{Daemon, GENEROUS_LIMITS};

/// Every device's secret in these tests.
const KEY: [u8; 32] = *b"12345678901234567890123456789012";
/// The end user's address, as the frontend reports it.
const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));

/// slsd as these tests run it: generous rate limits, and a debug log (searched for secrets).
fn start() -> Daemon {
    crate::slsd(&[&GENEROUS_LIMITS[..], &["--log", "debug"]].concat())
}

/// A bare QUIC connection to `d` with the frontend certificate, for tests that write frames by
/// hand; the endpoint must outlive the connection.
async fn raw_frontend(d: &Daemon) -> (quinn::Endpoint, quinn::Connection) {
    use sls_client::pipeline as client;
    use sls_client::ClientTls;
    let ep = client::endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let tls = ClientTls::from_dir(&d.tls_dir(), sls_protocol::Role::Frontend).unwrap();
    let config = tls.quinn_config(sls_protocol::ALPN_FRONTEND).unwrap();
    let conn = client::connect(&ep, d.addr, "localhost", config)
        .await
        .unwrap();
    (ep, conn)
}
