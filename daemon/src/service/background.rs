//! The daemon's background tasks: the sweeper (expired transactions, idle limiter state), the
//! snapshotter (bounds the journal) and the metrics endpoint. They run on their own tracker and
//! stop when `stop` is cancelled, after the drain, so that the journal they snapshot is final.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::state::State;

/// Starts the background tasks on `tasks`.
pub fn spawn(
    tasks: &TaskTracker,
    state: &State,
    snapshot_bytes: u64,
    metrics: Option<SocketAddr>,
    stop: &CancellationToken,
) {
    tasks.spawn(sweeper(state.clone(), stop.clone()));
    tasks.spawn(snapshotter(state.clone(), snapshot_bytes, stop.clone()));
    if let Some(addr) = metrics {
        tasks.spawn(serve_metrics(
            state.clone(),
            addr,
            tasks.clone(),
            stop.clone(),
        ));
    }
}

/// Expired transactions and idle limiter state, every second.
async fn sweeper(state: State, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => { state.core.sweep(); }
            () = stop.cancelled() => break,
        }
    }
}

/// A snapshot whenever the journal has grown past `limit` bytes.
async fn snapshotter(state: State, limit: u64, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        if state.store.stats().journal_bytes < limit {
            continue;
        }
        let st = state.clone();
        let result = tokio::task::spawn_blocking(move || snapshot(&st)).await;
        match result {
            Ok(Ok(n)) => info!(records = n, "snapshot written"),
            Ok(Err(e)) => warn!("snapshot failed: {e}"),
            Err(e) => warn!("snapshot task failed: {e}"),
        }
    }
}

/// Rotates the journal and writes the core's state as of the rotation (blocking).
fn snapshot(st: &State) -> Result<usize, crate::store::StoreError> {
    // No change is made between the rotation and the capture (the embedded store pauses its
    // updates), so the snapshot is the state at the start of the new journal exactly.
    let (target, records) = st.core.store().snapshot(|| st.store.rotate())?;
    let encoded: Vec<Vec<u8>> = records
        .iter()
        .filter_map(|r| {
            let mut b = Vec::new();
            r.encode(&mut b).ok().map(|()| b)
        })
        .collect();
    st.store.write_snapshot(target, &encoded)?;
    Ok(encoded.len())
}

/// The Prometheus text endpoint.
async fn serve_metrics(
    state: State,
    addr: SocketAddr,
    tasks: TaskTracker,
    stop: CancellationToken,
) {
    let st = state.clone();
    let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || {
        let stats = st.core.stats();
        let extra: Vec<(&str, &str, u64)> = stats
            .iter()
            .map(|(n, v)| {
                let gauge = matches!(
                    *n,
                    "users" | "open_transactions" | "lockouts_recent_window" | "mass_lockout_alert"
                );
                (*n, if gauge { "gauge" } else { "counter" }, *v)
            })
            .collect();
        st.metrics.render(&extra)
    });
    if let Err(e) = crate::metrics::serve(addr, render, &tasks, stop).await {
        warn!("metrics on {addr}: {e}");
    }
}
