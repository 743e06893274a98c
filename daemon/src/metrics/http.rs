//! The metrics endpoint on `--metrics ADDR`, served by axum (hyper, HTTP/1):
//!
//! - `GET /metrics`: the OpenMetrics text of the registry;
//! - `GET /healthz`: 200 while the process serves at all;
//! - `GET /readyz`: 200 while the daemon takes requests (the store accepts changes, the QUIC
//!   endpoint is listening and not draining), else 503 with the reason in one line.
//!
//! It stops when its cancellation token is: connections finish their request, and after a
//! short grace the rest are dropped.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::expose;

/// The `Content-Type` of the OpenMetrics text format, as `prometheus-client` documents it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape in progress at shutdown may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What the endpoint serves: the registry, and why the daemon is not ready (if it is not).
pub struct Endpoint {
    /// The families.
    pub registry: Registry,
    /// `Ok` when ready, else the reason (one line).
    pub ready: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
}

/// The routes over `endpoint`.
pub fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(endpoint)
}

/// Serves the routes on `addr` until `shutdown` is cancelled.
///
/// # Errors
/// The address cannot be bound, or accepting fails.
pub async fn serve(
    addr: SocketAddr,
    endpoint: Arc<Endpoint>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let stop = shutdown.clone();
    let server = axum::serve(listener, router(endpoint))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .into_future();
    tokio::select! {
        r = server => r,
        // A scrape that does not finish in the grace is not waited for.
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    }
}

async fn metrics(State(e): State<Arc<Endpoint>>) -> Response {
    match expose::render(&e.registry) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be written\n",
        )
            .into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(e): State<Arc<Endpoint>>) -> Response {
    match (e.ready)() {
        Ok(()) => "ready\n".into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}
