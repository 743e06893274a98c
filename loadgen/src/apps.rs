//! Connecting the fleet's IB Key apps, one QUIC connection each, as a daemon at its default
//! settings lets one address do.
//!
//! A simulated fleet connects from one address, and slsd bounds what one address may do
//! (PROTOCOL.md §1.1): new handshakes a second (`--handshakes-per-address`, default 100, burst
//! 200; past it a handshake is refused) and live connections (`--max-connections-per-address`,
//! default 1,000; past it a connection is closed with ADDRESS_BUSY). So the apps connect at the
//! pace the daemon allows: a refused handshake is tried again after a pause, for up to
//! [`PATIENCE`] without progress, and once the daemon says the address holds all it may
//! (ADDRESS_BUSY or UNPROVEN_BUSY) no more apps are connected, which the run says. The push
//! scenario then uses only the users whose app is connected.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sls_protocol::{CloseCode, DeviceKind, ALPN_DEVICE};

use crate::fleet::SimUser;
use sls_client::pipeline::{self as client, Peer, Pipeline, Pushes};
use sls_client::ClientTls;

/// How long to keep retrying refused handshakes without one getting through.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One connected, proven IB Key app.
pub struct App {
    /// The index of its user in the fleet.
    pub user: usize,
    /// Its connection.
    pub conn: quinn::Connection,
    /// Its stream.
    pub pipe: Pipeline,
    /// The pushes sent to it.
    pub pushes: Pushes,
}

/// Connects and proves one app for each of `app_users` (indexes into `users`) that the daemon
/// takes; see the module documentation for when it stops early.
///
/// # Errors
/// The certificates cannot be read, handshakes stay refused for [`PATIENCE`], or an app's proof
/// is refused for another reason than the address being full.
pub async fn connect(
    users: &[SimUser],
    peer: &Peer,
    tls_dir: &Path,
    endpoint: &quinn::Endpoint,
    app_users: &[usize],
) -> anyhow::Result<Vec<App>> {
    let tls = ClientTls::from_dir(tls_dir, sls_protocol::Role::Device)?;
    let config = tls.quinn_config(ALPN_DEVICE)?;
    let mut apps = Vec::with_capacity(app_users.len());
    for &i in app_users {
        let user = &users[i];
        let Some(device) = user.device(DeviceKind::IbKey) else {
            continue;
        };
        let Some(id) = device.id else { continue };
        let conn = connect_paced(endpoint, peer, &config).await?;
        let proven = async {
            let (pipe, pushes) = Pipeline::open(&conn, "sls-loadgen/ib-key").await?;
            client::prove_device(&pipe, id, &device.secret).await?;
            anyhow::Ok((pipe, pushes))
        }
        .await;
        match proven {
            Ok((pipe, pushes)) => apps.push(App {
                user: i,
                conn,
                pipe,
                pushes,
            }),
            Err(e) => {
                if let Some(code) = address_full(&conn) {
                    eprintln!(
                        "the daemon holds all the connections this address may open ({}): \
                         {} IB Key apps connected of {} wanted (its \
                         --max-connections-per-address / --max-unproven-per-address)",
                        code.describe().unwrap_or("busy"),
                        apps.len(),
                        app_users.len()
                    );
                    break;
                }
                return Err(e).with_context(|| format!("the IB Key app of {}", user.name));
            }
        }
    }
    Ok(apps)
}

/// The close code, if the daemon closed `conn` because its address holds all it may.
fn address_full(conn: &quinn::Connection) -> Option<CloseCode> {
    let quinn::ConnectionError::ApplicationClosed(close) = conn.close_reason()? else {
        return None;
    };
    [CloseCode::ADDRESS_BUSY, CloseCode::UNPROVEN_BUSY]
        .into_iter()
        .find(|c| close.error_code.into_inner() == c.value())
}

/// Connects, trying again after a pause while the daemon refuses handshakes from this address
/// (its per-address handshake rate), for up to [`PATIENCE`].
async fn connect_paced(
    endpoint: &quinn::Endpoint,
    peer: &Peer,
    config: &quinn::ClientConfig,
) -> anyhow::Result<quinn::Connection> {
    let addr = peer.addr;
    let give_up = Instant::now() + PATIENCE;
    let mut pause = Duration::from_millis(5);
    loop {
        let connecting = endpoint
            .connect_with(config.clone(), addr, &peer.server_name)
            .with_context(|| format!("cannot connect to {addr}"))?;
        match connecting.await {
            Ok(conn) => return Ok(conn),
            Err(quinn::ConnectionError::ConnectionClosed(close))
                if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED
                    && Instant::now() < give_up =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(e) => bail!("cannot connect to {addr}: {e}"),
        }
    }
}
