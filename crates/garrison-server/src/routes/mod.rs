//! The router: every route is registered through utoipa, so the OpenAPI document cannot miss one.

pub mod api;
pub mod attachments;
pub mod audit;
pub mod detection;
pub mod extract;
pub mod incidents;
pub mod indicators;
pub mod ingest;
pub mod ops;
pub mod playbooks;
pub mod query;
pub mod triage;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::ApiDoc;
use crate::AppState;

/// The routes with their OpenAPI description.
pub fn documented() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json))
        .routes(routes!(ingest::ingest_events))
        .routes(routes!(ingest::hec_event))
        .routes(routes!(ingest::hec_collector))
        .routes(routes!(ingest::hec_event_v1))
        .routes(routes!(ingest::hec_raw))
        .routes(routes!(ingest::hec_raw_v1))
        .routes(routes!(ingest::hec_health))
        .routes(routes!(ingest::hec_ack))
        .routes(routes!(api::search_events))
        .routes(routes!(api::get_event))
        .routes(routes!(api::login))
        .routes(routes!(api::me))
        .routes(routes!(api::list_tenants, api::create_tenant))
        .routes(routes!(api::update_tenant))
        .routes(routes!(api::list_users, api::create_user))
        .routes(routes!(api::update_user))
        .routes(routes!(api::list_tokens, api::create_token))
        .routes(routes!(api::revoke_token))
        .routes(routes!(api::list_sources))
        .routes(routes!(api::put_source))
        .routes(routes!(api::source_health))
        .routes(routes!(detection::import_rules))
        .routes(routes!(detection::list_placeholders))
        .routes(routes!(
            detection::put_placeholder,
            detection::delete_placeholder
        ))
        .routes(routes!(detection::placeholder_versions))
        .routes(routes!(detection::list_rules))
        .routes(routes!(detection::get_rule))
        .routes(routes!(detection::enable_rule))
        .routes(routes!(detection::disable_rule))
        .routes(routes!(detection::test_rule))
        .routes(routes!(detection::list_alerts))
        .routes(routes!(detection::get_alert))
        .routes(routes!(audit::list_audit))
        .routes(routes!(playbooks::validate_playbook))
        .routes(routes!(
            playbooks::list_playbooks,
            playbooks::create_playbook
        ))
        .routes(routes!(playbooks::import_playbooks))
        .routes(routes!(playbooks::sync_playbooks))
        .routes(routes!(playbooks::get_playbook))
        .routes(routes!(playbooks::enable_playbook))
        .routes(routes!(playbooks::disable_playbook))
        .routes(routes!(playbooks::list_versions))
        .routes(routes!(playbooks::get_version))
        .routes(routes!(playbooks::diff_versions))
        .routes(routes!(playbooks::export_playbook))
        .routes(routes!(playbooks::put_secret))
        .routes(routes!(playbooks::start_run))
        .routes(routes!(playbooks::list_runs))
        .routes(routes!(playbooks::get_run))
        .routes(routes!(playbooks::approve_run))
        .routes(routes!(playbooks::cancel_run))
        .routes(routes!(playbooks::rerun_run))
        .routes(routes!(playbooks::create_link))
        .routes(routes!(playbooks::show_link, playbooks::use_link))
        .routes(routes!(playbooks::webhook))
        .routes(routes!(playbooks::list_containments))
        .routes(routes!(playbooks::extend_lease))
        .routes(routes!(playbooks::revoke_lease))
        .routes(routes!(playbooks::reconcile_lease))
        .routes(routes!(playbooks::replay_run))
        .routes(routes!(
            incidents::list_incidents,
            incidents::create_incident
        ))
        .routes(routes!(incidents::get_incident, incidents::update_incident))
        .routes(routes!(incidents::incident_action))
        .routes(routes!(incidents::transition))
        .routes(routes!(incidents::comment))
        .routes(routes!(incidents::approve))
        .routes(routes!(incidents::timeline))
        .routes(routes!(incidents::list_tasks, incidents::add_tasks))
        .routes(routes!(incidents::set_task))
        .routes(routes!(incidents::merge))
        .routes(routes!(incidents::split))
        .routes(routes!(incidents::similar))
        .routes(routes!(attachments::upload, attachments::list))
        .routes(routes!(attachments::download, attachments::remove))
        .routes(routes!(incidents::soc_metrics))
        .routes(routes!(
            triage::list_suppressions,
            triage::create_suppression
        ))
        .routes(routes!(triage::expire_suppression))
        .routes(routes!(triage::apply_suppression))
        .routes(routes!(triage::list_grouping_rules))
        .routes(routes!(triage::put_grouping_rule))
        .routes(routes!(triage::import_assets))
        .routes(routes!(triage::list_assets))
        .routes(routes!(triage::get_sla_policy, triage::put_sla_policy))
        .routes(routes!(triage::get_workflow, triage::put_workflow))
        .routes(routes!(indicators::import_indicators))
        .routes(routes!(indicators::retro_hunt))
        .routes(routes!(indicators::list_indicators))
        .routes(routes!(indicators::list_feeds))
        .routes(routes!(indicators::delete_indicator))
        .routes(routes!(indicators::expire_indicator))
        .routes(routes!(indicators::delete_feed))
}

/// The HTTP API. `https` adds HSTS to every answer (browsers then refuse plain HTTP to this
/// host for a year).
pub fn router(state: AppState, https: bool) -> Router {
    let (router, _) = documented().split_for_parts();
    // The body limit is on the bytes as sent; decoders limit the decompressed size again.
    let body_limit = state.limits().max_body_bytes;
    router
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(problem_for_bare_errors))
        .layer(TraceLayer::new_for_http().on_failure(log_failure))
        .layer(axum::middleware::from_fn(move |request, next| {
            security_headers(request, next, https)
        }))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// A 503 is the service asking a client to come back (saturated, a full disk): expected under
/// load and already counted and logged once where it arises, so it is not an error line per
/// request. Other server errors are.
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass;
    match class {
        ServerErrorsFailureClass::StatusCode(status) if status.as_u16() == 503 => {
            tracing::debug!(%status, ?latency, "answered 503");
        }
        other => tracing::error!(classification = %other, ?latency, "response failed"),
    }
}

/// An unknown path: problem+json like every other error.
async fn no_route(uri: axum::http::Uri) -> crate::error::ApiError {
    crate::error::ApiError::new(
        crate::error::ErrorCode::NotFound,
        format!("no route {}", uri.path()),
    )
}

/// A known path with a method it does not take.
async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> crate::error::ApiError {
    crate::error::ApiError::new(
        crate::error::ErrorCode::MethodNotAllowed,
        format!("{} does not take {method}", uri.path()),
    )
}

/// Errors the framework answers itself (a body over the limit, a body that cannot be read)
/// come as plain text; they are rewritten as problem+json with the same status, so a client
/// parses one error format.
async fn problem_for_bare_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/problem+json") || v.starts_with("application/json")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let code = match status {
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => crate::error::ErrorCode::PayloadTooLarge,
        axum::http::StatusCode::NOT_FOUND => crate::error::ErrorCode::NotFound,
        axum::http::StatusCode::METHOD_NOT_ALLOWED => crate::error::ErrorCode::MethodNotAllowed,
        axum::http::StatusCode::UNAUTHORIZED => crate::error::ErrorCode::MissingAuthorization,
        axum::http::StatusCode::FORBIDDEN => crate::error::ErrorCode::Forbidden,
        s if s.is_server_error() => crate::error::ErrorCode::Internal,
        _ => crate::error::ErrorCode::InvalidRequest,
    };
    let (parts, body) = response.into_parts();
    // The framework's own text says what was wrong (e.g. "length limit exceeded"); keep it.
    let detail = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).trim().to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    // A body that stopped arriving (the `Bytes` extractor's rejection keeps only its text).
    let (status, code) = if detail.contains("within the designated timeout") {
        (
            axum::http::StatusCode::REQUEST_TIMEOUT,
            crate::error::ErrorCode::RequestTimeout,
        )
    } else {
        (parts.status, code)
    };
    let mut rewritten = crate::error::problem_with_status(status, code, detail);
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

/// Headers every answer carries: no content sniffing, no caching of API answers (they hold
/// tokens, events and evidence), HSTS under TLS.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
    https: bool,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// The request id header, accepted from the client or generated.
pub const REQUEST_ID: &str = "x-request-id";

/// A client's request id is kept when it is short visible ASCII (so it cannot forge log lines);
/// otherwise a ULID is made. Every log line of the request carries it (the `request` span), and
/// every answer, errors included, sends it back.
async fn request_id(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(garrison_model::new_ulid);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path()
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
