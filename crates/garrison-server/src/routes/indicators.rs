//! Threat-intel indicators: import feeds (CSV, STIX 2.1, MISP), list, expire and delete.
//! Every handler takes a [`Principal`] and passes its tenant to the store; importing and
//! deleting need the admin, analyst or responder role and are recorded in the audit log.

use super::query::ApiQuery;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use garrison_intel::{Format, ImportOptions, IndicatorKind, IndicatorValue};
use garrison_model::{PageLimit, Role, Timestamp};
use garrison_store::{FeedImport, IndicatorQuery, IndicatorRepo, NewIndicator};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::routes::audit::record;
use crate::routes::extract::ApiPath;
use crate::AppState;
pub use garrison_api::indicators::*;

/// Roles that may change indicators (viewers only read).
const INTEL_AUTHORS: &[Role] = &[Role::Admin, Role::Analyst, Role::Responder];
/// Most skipped records listed in an import answer (all are counted).
const MAX_LISTED_SKIPPED: usize = 1000;

// ---------------------------------------------------------------- views

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
    principal.require_any(INTEL_AUTHORS)?;
    let now = Timestamp::now();
    let format = params
        .format
        .parse::<Format>()
        .map_err(|e| ApiError::invalid(format!("parameter format: {e}")))?;
    let mut options = ImportOptions::new(params.source.trim().to_string(), now);
    if options.source.is_empty() || options.source.len() > 256 {
        return Err(ApiError::invalid(
            "parameter source: the feed's name must be 1 to 256 characters",
        ));
    }
    if let Some(c) = params.confidence {
        if c > 100 {
            return Err(ApiError::invalid("parameter confidence: must be 0 to 100"));
        }
        options.default_confidence = c;
    }
    if let Some(days) = params.ttl_days {
        options.default_ttl = Some(jiff::SignedDuration::from_hours(i64::from(days) * 24));
    }
    options.misp_include_non_ids = params.include_non_ids.unwrap_or(false);
    if body.is_empty() {
        return Err(ApiError::new(ErrorCode::EmptyBody, "the body is empty"));
    }
    let source = options.source.clone();
    let parsed = tokio::task::spawn_blocking(move || format.parse(&body, &options))
        .await
        .map_err(ApiError::internal)?;
    let new: Vec<NewIndicator> = parsed
        .indicators
        .iter()
        .map(|i| NewIndicator {
            kind: i.kind().as_str().to_string(),
            value: i.value.text().into_owned(),
            source: i.source.clone(),
            confidence: i64::from(i.confidence),
            first_seen: i.first_seen,
            expires: i.expires,
            tags: i.tags.clone(),
            description: i.description.clone(),
        })
        .collect();
    let feed = FeedImport {
        name: source.clone(),
        format: format.as_str().to_string(),
        errors: parsed.errors.len() as u64,
    };
    let (summary, _) = state
        .store()
        .import_indicators(principal.tenant, &feed, &new, now)
        .await?;
    record(
        &state,
        &principal,
        "indicator.import",
        &source,
        serde_json::json!({
            "format": format.as_str(), "parsed": new.len(),
            "created": summary.created, "updated": summary.updated,
            "errors": parsed.errors.len(), "skipped": parsed.skipped.len(),
        }),
    )
    .await;
    let skipped_count = parsed.skipped.len() as u64;
    Ok(Json(IndicatorImportResult {
        format: format.as_str().to_string(),
        source,
        parsed: new.len() as u64,
        imported: summary.created + summary.updated,
        created: summary.created,
        updated: summary.updated,
        errors: parsed.errors.into_iter().map(RecordProblem::from).collect(),
        skipped: parsed
            .skipped
            .into_iter()
            .take(MAX_LISTED_SKIPPED)
            .map(RecordProblem::from)
            .collect(),
        skipped_count,
    }))
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
    let now = Timestamp::now();
    let kind = match params.kind {
        Some(v) => Some(
            v.parse::<IndicatorKind>()
                .map_err(|e: garrison_intel::UnknownKind| {
                    ApiError::invalid(format!("parameter kind: {e}"))
                })?
                .as_str()
                .to_string(),
        ),
        None => None,
    };
    let mut q = IndicatorQuery {
        kind,
        source: params.source,
        active_at: params.active.unwrap_or(false).then_some(now),
        min_confidence: params.min_confidence,
        limit: PageLimit::or(params.limit, 100),
        cursor: params.cursor,
        ..IndicatorQuery::default()
    };
    let value = params.value;
    if let Some(value) = value {
        let canonical = match q
            .kind
            .as_deref()
            .and_then(|k| k.parse::<IndicatorKind>().ok())
        {
            Some(kind) => IndicatorValue::parse(kind, &value),
            None => IndicatorValue::infer(&value),
        };
        q.value = Some(canonical.map_or(value, |v| v.text().into_owned()));
    }
    let page = state.store().list_indicators(principal.tenant, &q).await?;
    Ok(Json(IndicatorsPage {
        indicators: page
            .indicators
            .into_iter()
            .map(|i| IndicatorView::new(i, now))
            .collect(),
        next_cursor: page.next_cursor,
    }))
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
    let feeds = state.store().list_feeds(principal.tenant).await?;
    Ok(Json(feeds.into_iter().map(FeedView::from).collect()))
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
    principal.require_any(INTEL_AUTHORS)?;
    state.store().delete_indicator(principal.tenant, id).await?;
    record(
        &state,
        &principal,
        "indicator.delete",
        &id.to_string(),
        serde_json::json!({}),
    )
    .await;
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
    principal.require_any(INTEL_AUTHORS)?;
    let now = Timestamp::now();
    let stored = state
        .store()
        .expire_indicator(principal.tenant, id, now)
        .await?;
    record(
        &state,
        &principal,
        "indicator.expire",
        &id.to_string(),
        serde_json::json!({"value": stored.value}),
    )
    .await;
    Ok(Json(IndicatorView::new(stored, now)))
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
    principal.require_any(INTEL_AUTHORS)?;
    let deleted = state
        .store()
        .delete_indicator_source(principal.tenant, &name)
        .await?;
    record(
        &state,
        &principal,
        "indicator.feed.delete",
        &name,
        serde_json::json!({"deleted": deleted}),
    )
    .await;
    Ok(Json(DeletedFeed { deleted }))
}
