//! Threat-intel indicators: import feeds (CSV, STIX 2.1, MISP), list, expire and delete.
//! Each handler calls one operation of `garrison_app::intel`, which checks the roles (importing
//! and deleting need admin, analyst or responder), writes and audits.

use super::query::ApiQuery;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::routes::extract::ApiPath;
use crate::AppState;
pub use garrison_api::indicators::*;

// ---------------------------------------------------------------- import

/// Import a feed: the body is the file (CSV, a STIX 2.1 bundle, or MISP event JSON). Good
/// records are stored (upserted by kind, value and source); every bad one is listed with its
/// place. Admins, analysts and responders.
#[utoipa::path(
    post,
    path = "/api/v1/indicators/import",
    tag = "indicators",
    params(ImportParams),
    request_body(content = String, description = "The feed file", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Imported; `errors` lists refused records", body = IndicatorImportResult),
        (status = 400, description = "Bad parameters or an empty body", body = Problem),
        (status = 403, description = "Not allowed", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn import_indicators(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ImportParams>,
    body: Bytes,
) -> Result<Json<IndicatorImportResult>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(ErrorCode::EmptyBody, "the body is empty"));
    }
    Ok(Json(
        state
            .app()
            .import_indicators(&principal.actor, params, body.to_vec())
            .await?,
    ))
}

// ---------------------------------------------------------------- retro-hunt

/// Retro-hunt: match the tenant's active indicators against every stored event of a range
/// (default: the last 7 days), oldest first, a page at a time. Matches become `ioc:<kind>`
/// alerts as live ones do (folded; an event already alerted on counts once). Admins,
/// analysts and responders; closing the connection stops it.
#[utoipa::path(
    post,
    path = "/api/v1/indicators/retro-hunt",
    tag = "indicators",
    request_body = RetroHuntRequest,
    responses((status = 200, body = RetroHuntResult), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn retro_hunt(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<RetroHuntResult>, ApiError> {
    let request: RetroHuntRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RetroHuntRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("body: {e}")))?
    };
    Ok(Json(
        state
            .app()
            .retro_hunt(&principal.actor, request, None)
            .await?,
    ))
}

// ---------------------------------------------------------------- list

/// List the tenant's indicators, oldest first, with filters and a cursor.
#[utoipa::path(
    get,
    path = "/api/v1/indicators",
    tag = "indicators",
    params(ListParams),
    responses((status = 200, body = IndicatorsPage), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_indicators(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<IndicatorsPage>, ApiError> {
    Ok(Json(
        state
            .app()
            .list_indicators(&principal.actor, params)
            .await?,
    ))
}

/// The tenant's indicator feeds with their last import.
#[utoipa::path(
    get,
    path = "/api/v1/indicators/feeds",
    tag = "indicators",
    responses((status = 200, body = Vec<FeedView>), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_feeds(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<FeedView>>, ApiError> {
    Ok(Json(state.app().list_feeds(&principal.actor).await?))
}

// ---------------------------------------------------------------- change

/// Delete one indicator (admins, analysts and responders).
#[utoipa::path(
    delete,
    path = "/api/v1/indicators/{id}",
    tag = "indicators",
    params(("id" = i64, Path, description = "Indicator id")),
    responses((status = 204, description = "Deleted"), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn delete_indicator(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.app().delete_indicator(&principal.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Expire one indicator now: it stays listed but no longer matches (admins, analysts and
/// responders).
#[utoipa::path(
    post,
    path = "/api/v1/indicators/{id}/expire",
    tag = "indicators",
    params(("id" = i64, Path, description = "Indicator id")),
    responses((status = 200, body = IndicatorView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn expire_indicator(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<IndicatorView>, ApiError> {
    Ok(Json(
        state.app().expire_indicator(&principal.actor, id).await?,
    ))
}

/// Delete a feed and every indicator it brought (admins, analysts and responders).
#[utoipa::path(
    delete,
    path = "/api/v1/indicators/feeds/{name}",
    tag = "indicators",
    params(("name" = String, Path, description = "Feed (source) name")),
    responses((status = 200, body = DeletedFeed), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn delete_feed(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<DeletedFeed>, ApiError> {
    Ok(Json(
        state.app().delete_feed(&principal.actor, &name).await?,
    ))
}
