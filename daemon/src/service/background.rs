//! The daemon's background tasks: the sweeper (expired transactions, idle limiter state), the
//! snapshotter (bounds the journal), the metrics endpoint and, on a shared store, the bus to
//! the other nodes (listener and announcer). They run on their own tracker and stop when
//! `stop` is cancelled, after the drain, so that the journal they snapshot is final.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::nodes;
use super::state::State;
use crate::backend::Backend;
use crate::config::{Config, StoreChoice};
use crate::metrics::http::Endpoint;
use crate::metrics::{Readings, RedisReadings, StoreReadings};

/// The bus to the other nodes and the queue of notes for it.
pub type Publisher = (sls_redis::bus::Bus, tokio::sync::mpsc::Receiver<Vec<u8>>);

/// Starts the background tasks on `tasks`.
pub fn spawn<B: Backend>(
    tasks: &TaskTracker,
    state: &State<B>,
    config: &Config,
    publisher: Option<Publisher>,
    stop: &CancellationToken,
) {
    if let Some((bus, queue)) = publisher {
        let stop = stop.clone();
        tasks.spawn(async move { nodes::publisher(bus, queue, stop.cancelled()).await });
    }
    tasks.spawn(sweeper(state.clone(), stop.clone()));
    if state.journal.is_some() {
        tasks.spawn(snapshotter(
            state.clone(),
            config.snapshot_bytes,
            stop.clone(),
        ));
    }
    if let StoreChoice::Redis(r) = &config.store {
        tasks.spawn(listener(
            state.clone(),
            r.nodes.clone(),
            r.prefix.clone(),
            stop.clone(),
        ));
        tasks.spawn(announcer(state.clone(), stop.clone()));
    }
    if let Some(addr) = config.metrics {
        tasks.spawn(serve_metrics(state.clone(), addr, stop.clone()));
    }
}

/// Expired transactions and idle limiter state, every second; and the mass-lockout signal,
/// logged once when an episode begins and once when it ends.
async fn sweeper<B: Backend>(state: State<B>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut episode = false;
    let mut swept = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                state.core.sweep();
                state.idempotent.sweep();
                swept = swept.wrapping_add(1);
                if swept % 60 == 0 {
                    state.audit.sweep();
                }
                let (lockouts, alert) = state.core.mass_lockout();
                if alert != episode {
                    episode = alert;
                    let window = state.core.config().mass_lockout_window;
                    if alert {
                        warn!(lockouts, window = %humantime::format_duration(window),
                            "mass lockout: lockouts across users look like an attack");
                    } else {
                        info!("mass lockout over");
                    }
                }
            }
            () = stop.cancelled() => break,
        }
    }
}

/// Hears the other nodes' notes on the bus until `stop`.
async fn listener<B: Backend>(
    state: State<B>,
    nodes: Vec<String>,
    prefix: String,
    stop: CancellationToken,
) {
    sls_redis::bus::listen(
        nodes,
        &prefix,
        Duration::from_millis(500),
        |heard| nodes::heard(&state, heard),
        stop.cancelled(),
    )
    .await;
}

/// Announces the IB Key devices connected here, every [`nodes::ANNOUNCE`].
async fn announcer<B: Backend>(state: State<B>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(nodes::ANNOUNCE);
    loop {
        tokio::select! {
            _ = tick.tick() => nodes::announce(&state),
            () = stop.cancelled() => break,
        }
    }
}

static SNAPSHOT_WARNINGS: crate::logging::Throttle =
    crate::logging::Throttle::new(Duration::from_secs(60));

/// A snapshot whenever the journal has grown past `limit` bytes.
async fn snapshotter<B: Backend>(state: State<B>, limit: u64, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        let Some(journal) = &state.journal else { break };
        if journal.stats().journal_bytes < limit {
            continue;
        }
        let st = state.clone();
        let result = tokio::task::spawn_blocking(move || snapshot(&st)).await;
        match result {
            Ok(Ok(n)) => info!(records = n, "snapshot written"),
            // Retried every second while the journal is too long: one line a minute.
            Ok(Err(e)) => {
                if let Some(suppressed) = SNAPSHOT_WARNINGS.allow() {
                    warn!(suppressed, "snapshot failed: {e}");
                }
            }
            Err(e) => warn!("snapshot task failed: {e}"),
        }
    }
}

/// Rotates the journal and writes the core's state as of the rotation (blocking).
fn snapshot<B: Backend>(st: &State<B>) -> Result<usize, crate::journal::JournalError> {
    let (Some(journal), Some(users)) = (&st.journal, st.core.store().embedded()) else {
        return Ok(0);
    };
    // No change is made between the rotation and the capture (the embedded store pauses its
    // updates), so the snapshot is the state at the start of the new journal exactly.
    let (target, records) = users.snapshot(|| journal.rotate())?;
    let encoded: Vec<Vec<u8>> = records
        .iter()
        .filter_map(|r| {
            let mut b = Vec::new();
            r.encode(&mut b).ok().map(|()| b)
        })
        .collect();
    journal.write_snapshot(target, &encoded)?;
    Ok(encoded.len())
}

/// The metrics endpoint: `/metrics` from the hot path's counts and the core's, the
/// admission's and the journal's, read at each scrape; `/healthz`; `/readyz`.
async fn serve_metrics<B: Backend>(state: State<B>, addr: SocketAddr, stop: CancellationToken) {
    let st = state.clone();
    let registry = crate::metrics::expose::registry(state.metrics.clone(), move || {
        use std::sync::atomic::Ordering::Relaxed;
        Readings {
            core: st.core.stats(),
            admission: st.admission.counters(),
            store: store_readings(&st),
            in_flight: st.in_flight.load(Relaxed) as u64,
            awaits_parked: st.waiting.load(Relaxed) as u64,
        }
    });
    let st = state;
    let endpoint = Endpoint {
        registry,
        // Served only once the journal is replayed (or the Redis store connected) and the QUIC
        // endpoint bound: `Bound::run` starts this task.
        ready: Box::new(move || {
            if st.is_draining() {
                return Err("shutting down: draining, no new requests".to_owned());
            }
            if let Some(r) = st.core.store().redis() {
                // Probed per shard through the requests' own connection (sls_redis::health).
                r.readiness()?;
            } else if !store_readings(&st).ready {
                return Err(
                    "the store refuses changes (journal writes failing: a full disk or an I/O error)"
                        .to_owned(),
                );
            }
            Ok(())
        }),
    };
    // This task is on the background tracker: shutdown waits for it (a scrape in progress
    // gets a short grace).
    if let Err(e) = crate::metrics::http::serve(addr, Arc::new(endpoint), stop).await {
        warn!("metrics on {addr}: {e}");
    }
}

/// The store's readiness: the journal's (embedded store), or the Redis store's probes of
/// every shard (`sls_redis::health`), with what the node sent it.
fn store_readings<B: Backend>(st: &State<B>) -> StoreReadings {
    if let Some(r) = st.core.store().redis() {
        return StoreReadings {
            ready: r.readiness().is_ok(),
            redis: Some(RedisReadings {
                commands: r.commands().map(|(c, n)| (c.name(), n)),
                stale_guesses: r.stale_guesses(),
                conflicts: r.conflicts(),
                rebuilds: r.rebuilds(),
            }),
            ..StoreReadings::default()
        };
    }
    match &st.journal {
        Some(journal) => {
            let s = journal.stats();
            StoreReadings {
                ready: s.ready,
                retries: s.retries,
                unhealthy: s.unhealthy_spells,
                redis: None,
            }
        }
        None => StoreReadings {
            ready: true,
            ..StoreReadings::default()
        },
    }
}
