//! The router: every route is registered through utoipa, so the OpenAPI document cannot miss one.

pub mod api;
pub mod ingest;
pub mod ops;

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
}

pub fn router(state: AppState) -> Router {
    let (router, _) = documented().split_for_parts();
    // The body limit is on the bytes as sent; decoders limit the decompressed size again.
    let body_limit = state.limits().max_body_bytes;
    router
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
