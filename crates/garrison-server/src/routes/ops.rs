//! Operations: liveness, readiness, metrics, the API description.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub database: bool,
    /// Bytes of event log waiting to be indexed.
    pub index_backlog_bytes: u64,
    /// False while new data would be refused (503).
    pub accepting: bool,
    /// Event log position acknowledged so far.
    pub log_committed: u64,
    /// Event log position indexed into the store so far.
    pub log_indexed: u64,
    /// Event log position the live detector has evaluated and committed so far.
    pub log_detected: u64,
    /// Sequence number of the newest alert (0: none yet).
    pub alerts_created: i64,
    /// Sequence number up to which automatic triage has handled alerts; equal to
    /// `alerts_created` once every alert is grouped into an incident or suppressed.
    pub alerts_triaged: i64,
}

/// Readiness: the database answers and the write path takes data.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "ready", body = Readiness),
    (status = 503, description = "not ready", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.store();
    let database = store.ping().await.is_ok();
    let alerts_created = store.max_alert_seq().await.unwrap_or(0);
    let alerts_triaged = store
        .consumer_cursor(crate::triage::CURSOR)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    let accepting = !state.is_saturated();
    let readiness = Readiness {
        ready: database && accepting,
        database,
        index_backlog_bytes: state.ingestor().backlog_bytes(),
        accepting,
        log_committed: state.ingestor().log().committed_end(),
        log_indexed: state.ingestor().indexed_position(),
        log_detected: state.detected_position(),
        alerts_created,
        alerts_triaged,
    };
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness))
}

/// Prometheus metrics: events received, rejected, accepted and stored, ingest latency, queue
/// depth, index lag, UDP drops.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let ingestor = state.ingestor();
    metrics::gauge!("garrison_log_pending_appends").set(ingestor.log().pending_appends() as f64);
    metrics::gauge!("garrison_index_lag_bytes").set(ingestor.backlog_bytes() as f64);
    metrics::gauge!("garrison_log_disk_bytes").set(ingestor.log().disk_bytes() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
}

/// This API's OpenAPI 3 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3 document", body = Object)))]
pub async fn openapi_json() -> impl IntoResponse {
    Json(crate::openapi::openapi_json())
}
