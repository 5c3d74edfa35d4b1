//! The HTTP server of `/livez`, `/readyz` and `/metrics` (axum over the agent's tokio runtime).
//! Does I/O: a TCP listener. Answers: `/livez` 200 "alive" or 503 naming the tasks that ended;
//! `/readyz` 200 "ready" or 503 listing each failing condition with its reason; `/metrics`
//! the OpenMetrics text after the source refreshed the gauges.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio::net::TcpListener;

use super::{Liveness, Metrics, MetricsSource, Readiness};

/// The OpenMetrics content type, which Prometheus negotiates for this text.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("health port {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("health server: {0}")]
    Serve(std::io::Error),
}

/// What the endpoints answer from.
#[derive(Clone)]
pub struct HealthState {
    pub readiness: Readiness,
    pub liveness: Liveness,
    pub metrics: Arc<Metrics>,
    /// Refreshes gauges before each scrape (None: metrics as last set).
    pub source: Option<Arc<dyn MetricsSource>>,
}

async fn livez(State(state): State<HealthState>) -> Response {
    let ended = state.liveness.ended();
    if ended.is_empty() {
        (StatusCode::OK, "alive\n").into_response()
    } else {
        let text = format!("tasks ended: {}\n", ended.join(", "));
        (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
    }
}

async fn readyz(State(state): State<HealthState>) -> Response {
    let failing = state.readiness.failing();
    if failing.is_empty() {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let mut text = String::from("not ready\n");
    for (name, reason) in failing {
        text.push_str(&format!("{name}: {reason}\n"));
    }
    (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
}

async fn metrics(State(state): State<HealthState>) -> Response {
    if let Some(source) = &state.source {
        source.refresh(&state.metrics).await;
    }
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        state.metrics.encode(),
    )
        .into_response()
}

/// The router, for tests that drive it without a socket.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Binds the health port.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, HealthError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| HealthError::Bind { address, source })
}

/// Serves until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, state: HealthState) -> Result<(), HealthError> {
    axum::serve(listener, router(state))
        .await
        .map_err(HealthError::Serve)
}
