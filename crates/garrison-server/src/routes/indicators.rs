//! Threat-intel indicators: import feeds (CSV, STIX 2.1, MISP), list, expire and delete.
//! Every handler takes a [`Principal`] and passes its tenant to the store; importing and
//! deleting need the admin, analyst or responder role and are recorded in the audit log.

use super::query::ApiQuery;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use garrison_intel::{
    DecayModel, Format, ImportOptions, Indicator, IndicatorKind, IndicatorRecord, IndicatorValue,
    ParseError,
};
use garrison_model::{PageLimit, Role, Timestamp};
use garrison_store::{
    FeedImport, IndicatorFeed, IndicatorQuery, IndicatorRepo, NewIndicator, StoredIndicator,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::routes::audit::record;
use crate::routes::extract::ApiPath;
use crate::AppState;

/// Roles that may change indicators (viewers only read).
const INTEL_AUTHORS: &[Role] = &[Role::Admin, Role::Analyst, Role::Responder];
/// Most skipped records listed in an import answer (all are counted).
const MAX_LISTED_SKIPPED: usize = 1000;

// ---------------------------------------------------------------- views

#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatorView {
    pub id: i64,
    /// `ip`, `cidr`, `domain`, `url`, `md5`, `sha1`, `sha256`, `sha512`, `email`.
    pub kind: String,
    pub value: String,
    pub source: String,
    pub confidence: i64,
    /// Confidence decayed by age now (half-life per kind), 0 once expired.
    pub score: f64,
    pub first_seen: Option<String>,
    pub expires: Option<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub times_imported: i64,
    pub created: String,
    pub updated: String,
}

fn to_intel(stored: &StoredIndicator) -> Option<Indicator> {
    let record = IndicatorRecord {
        kind: stored.kind.parse().ok()?,
        value: stored.value.clone(),
        source: stored.source.clone(),
        confidence: u8::try_from(stored.confidence).ok()?,
        first_seen: stored.first_seen,
        expires: stored.expires,
        tags: Vec::new(),
        description: None,
    };
    Indicator::try_from(record).ok()
}

impl IndicatorView {
    fn new(stored: StoredIndicator, now: Timestamp) -> IndicatorView {
        let score = to_intel(&stored).map_or(0.0, |i| DecayModel::default().score(&i, now));
        IndicatorView {
            id: stored.id,
            kind: stored.kind,
            value: stored.value,
            source: stored.source,
            confidence: stored.confidence,
            score: (score * 100.0).round() / 100.0,
            first_seen: stored.first_seen.map(|t| t.to_string()),
            expires: stored.expires.map(|t| t.to_string()),
            tags: stored.tags,
            description: stored.description,
            times_imported: stored.times_imported,
            created: stored.created.to_string(),
            updated: stored.updated.to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatorsPage {
    pub indicators: Vec<IndicatorView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedView {
    pub name: String,
    pub format: String,
    pub last_import: String,
    /// Indicators the last import brought (new or updated).
    pub last_imported: i64,
    /// Records the last import refused.
    pub last_errors: i64,
    pub imports: i64,
    pub created: String,
}

impl From<IndicatorFeed> for FeedView {
    fn from(f: IndicatorFeed) -> Self {
        FeedView {
            name: f.name,
            format: f.format,
            last_import: f.last_import.to_string(),
            last_imported: f.last_imported,
            last_errors: f.last_errors,
            imports: f.imports,
            created: f.created.to_string(),
        }
    }
}

/// A record that was refused (or skipped), and where it is in the input.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordProblem {
    /// `{"type": "line", "line": 3, "column": "value"}`,
    /// `{"type": "json", "pointer": "/objects/4", "id": "indicator--..."}` or
    /// `{"type": "text", "line": 1, "column": 9}`.
    pub location: garrison_intel::Location,
    /// The place, readable: `line 3, column "value"`, `/objects/4 (indicator--...)`.
    pub at: String,
    pub reason: String,
}

impl From<ParseError> for RecordProblem {
    fn from(e: ParseError) -> Self {
        RecordProblem {
            at: e.location.to_string(),
            location: e.location,
            reason: e.reason,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatorImportResult {
    pub format: String,
    pub source: String,
    /// Indicators read from the input (before merging duplicates).
    pub parsed: u64,
    /// Indicators stored: new plus updated.
    pub imported: u64,
    pub created: u64,
    pub updated: u64,
    /// Every refused record with its place.
    pub errors: Vec<RecordProblem>,
    /// Well-formed records that are not matchable indicators (first 1,000).
    pub skipped: Vec<RecordProblem>,
    pub skipped_count: u64,
}

// ---------------------------------------------------------------- import

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// `csv`, `stix` or `misp`.
    pub format: String,
    /// The feed's name, recorded as every indicator's source (1 to 256 characters).
    pub source: String,
    /// Confidence for records that give none (0 to 100, default 50).
    #[param(minimum = 0, maximum = 100)]
    pub confidence: Option<u8>,
    /// Records without expiry expire this many days after first seen.
    pub ttl_days: Option<u32>,
    /// MISP: also import attributes with `to_ids: false`.
    pub include_non_ids: Option<bool>,
}

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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// `ip`, `cidr`, `domain`, `url`, `md5`, `sha1`, `sha256`, `sha512` or `email`.
    pub kind: Option<String>,
    /// Only indicators of this feed.
    pub source: Option<String>,
    /// An exact value (canonicalised first: `Evil.COM.` finds `evil.com`).
    pub value: Option<String>,
    /// Only indicators not expired now (true).
    pub active: Option<bool>,
    /// Only indicators of at least this confidence.
    pub min_confidence: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<PageLimit>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

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

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedFeed {
    /// Indicators deleted with the feed.
    pub deleted: u64,
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
