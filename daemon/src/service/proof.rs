//! `DeviceProve` (§5.2) on the device ALPN, throttled per source address: an address past its
//! failed proofs (`--proof-failures-per-address`) is answered `RATE_LIMITED` without its proof
//! being checked, so that keys cannot be guessed at the speed of the network.

use std::time::Instant;

use sls_protocol::{clip_text, limits::MAX_TEXT, Message, Status};

use super::reply::Reply;
use super::state::{Peer, State};
use crate::backend::Backend;

fn error(status: Status, message: &str) -> Reply {
    Reply::Now(Message::Error {
        status,
        message: clip_text(message, MAX_TEXT),
    })
}

/// Checks `proof` of the device of the stream's last `DeviceHello` (its nonce is used up
/// whatever the outcome).
pub async fn prove<B: Backend>(state: &State<B>, peer: &mut Peer, proof: &[u8; 32]) -> Reply {
    let ip = peer.addr.ip();
    let pending = peer.pending.take();
    if !state.proof_failures.allowed(ip, Instant::now()) {
        return error(
            Status::RATE_LIMITED,
            "too many failed proofs from this address: try again later",
        );
    }
    if let Some((device, nonce)) = pending {
        if state
            .core
            .device_authenticate(device, &nonce, proof)
            .await
            .unwrap_or(false)
        {
            if !peer.proven.contains(&device) {
                peer.proven.push(device);
            }
            return Reply::Now(Message::Done {});
        }
    }
    state.proof_failures.failed(ip, Instant::now());
    error(Status::BAD_PROOF, "proof of possession failed")
}
