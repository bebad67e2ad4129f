//! Operations: liveness, readiness, metrics, the API description.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use garrison_model::Role;
use garrison_store::TokenKind;

use crate::error::ApiError;
use crate::AppState;
pub use garrison_api::ops::*;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
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
        .consumer_cursor(garrison_triage::CURSOR)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    let degraded: Vec<DegradedComponent> = state
        .degraded()
        .into_iter()
        .map(|d| DegradedComponent {
            component: d.component.to_string(),
            reason: d.reason,
            since: d.since.to_string(),
        })
        .collect();
    let accepting = !state.is_saturated() && degraded.iter().all(|d| d.component != "disk");
    let readiness = Readiness {
        ready: database && accepting && degraded.is_empty(),
        database,
        index_backlog_bytes: state.ingestor().backlog_bytes(),
        accepting,
        log_committed: state.ingestor().log().committed_end(),
        log_indexed: state.ingestor().indexed_position(),
        log_detected: state.detected_position(),
        alerts_created,
        alerts_triaged,
        degraded,
    };
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness))
}

/// Prometheus metrics (every one is listed in the README): events received, rejected,
/// accepted and stored, ingest latency, queue depth, index lag, detection, triage, playbooks.
/// Needs a token with the `metrics` or `admin` role (`garrison token create --role metrics`);
/// `metrics_addr` serves the same figures without a token, tenant labels left out.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)),
    security(("bearer" = [])))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = match crate::auth::authenticate(&state, &headers).await {
        Ok(token) => token,
        Err(e) => return e.into_response(),
    };
    let allowed = token.kind != TokenKind::Ingest
        && token
            .roles
            .iter()
            .any(|r| matches!(r, Role::Metrics | Role::Admin));
    if !allowed {
        return ApiError::forbidden("scraping /metrics needs the metrics or admin role")
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(&state),
    )
        .into_response()
}

/// The Prometheus text, with the gauges read at scrape time brought up to date.
pub fn render_metrics(state: &AppState) -> String {
    let ingestor = state.ingestor();
    garrison_pipeline::telemetry::log_pending_appends(ingestor.log().pending_appends());
    garrison_pipeline::telemetry::index_lag(ingestor.backlog_bytes(), None);
    garrison_pipeline::telemetry::log_disk_bytes(ingestor.log().disk_bytes());
    state.metrics().render()
}

/// The same text without per-tenant series, for a caller who showed no token: which tenants
/// exist, and how busy each is, is not theirs to know.
pub fn without_tenant_series(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if !line.starts_with('#') && line.contains("tenant=\"") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// This API's OpenAPI 3 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3 document", body = Object)))]
pub async fn openapi_json() -> impl IntoResponse {
    Json(crate::openapi::openapi_json())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tenant_series_are_left_out_for_anonymous_scrapers() {
        let text = "# HELP garrison_detection_rules Rules\n# TYPE garrison_detection_rules gauge\ngarrison_detection_rules{tenant=\"7\"} 12\ngarrison_events_received_total{protocol=\"http\"} 5\n";
        let out = super::without_tenant_series(text);
        assert!(!out.contains("tenant=\""), "{out}");
        assert!(out.contains("garrison_events_received_total{protocol=\"http\"} 5"));
    }
}
