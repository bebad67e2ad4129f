//! Triage settings of a tenant: suppressions, grouping rules, the asset table, the SLA policy
//! and the incident workflow. Everyone in the tenant reads them; admins and analysts change
//! them. Every change is audited (in `garrison_app::settings`, which these handlers call). The
//! triage worker (`garrison-triage`) applies them to new alerts.

use super::query::ApiQuery;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use garrison_cases::{Asset, SlaPolicy};
use garrison_store::StoredSuppression;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::routes::extract::ApiJson;
use crate::routes::extract::ApiPath;
use crate::AppState;
pub use garrison_api::triage::*;

// ---------------------------------------------------------------- suppressions

/// Suppressions with their hit counts, newest first; `?active=true` for those in force now.
#[utoipa::path(
    get,
    path = "/api/v1/suppressions",
    tag = "triage",
    params(SuppressionParams),
    responses((status = 200, body = Vec<StoredSuppression>), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_suppressions(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<SuppressionParams>,
) -> Result<Json<Vec<StoredSuppression>>, ApiError> {
    let active_only = params.active.unwrap_or(false);
    Ok(Json(
        state
            .app()
            .list_suppressions(&principal.actor, active_only)
            .await?,
    ))
}

/// Create a suppression: matching new alerts are marked suppressed and counted against it
/// instead of becoming incidents. It needs a rule or a field matcher; admins and analysts.
#[utoipa::path(
    post,
    path = "/api/v1/suppressions",
    tag = "triage",
    request_body = NewSuppression,
    responses((status = 201, body = StoredSuppression), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
pub async fn create_suppression(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewSuppression>,
) -> Result<(axum::http::StatusCode, Json<StoredSuppression>), ApiError> {
    let stored = state
        .app()
        .create_suppression(&principal.actor, body)
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(stored)))
}

/// Apply a suppression to the open alerts now (triage applies it to alerts that arrive or
/// take new events after it): those it covers are marked suppressed. Admins and analysts.
#[utoipa::path(
    post,
    path = "/api/v1/suppressions/{id}/apply",
    tag = "triage",
    params(("id" = String, Path, description = "Suppression id")),
    responses((status = 200, body = SuppressionApplied), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn apply_suppression(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SuppressionApplied>, ApiError> {
    Ok(Json(
        state.app().apply_suppression(&principal.actor, &id).await?,
    ))
}

/// End a suppression now; it is kept with its counts. Admins and analysts.
#[utoipa::path(
    post,
    path = "/api/v1/suppressions/{id}/expire",
    tag = "triage",
    params(("id" = String, Path, description = "Suppression id")),
    responses((status = 200, body = StoredSuppression), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn expire_suppression(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StoredSuppression>, ApiError> {
    Ok(Json(
        state
            .app()
            .expire_suppression(&principal.actor, &id)
            .await?,
    ))
}

// ---------------------------------------------------------------- grouping rules

/// The tenant's grouping rules; with none enabled, alerts group by host within one hour.
#[utoipa::path(
    get,
    path = "/api/v1/grouping-rules",
    tag = "triage",
    responses((status = 200, body = Vec<GroupingRuleView>), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_grouping_rules(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<GroupingRuleView>>, ApiError> {
    Ok(Json(
        state.app().list_grouping_rules(&principal.actor).await?,
    ))
}

/// Create or replace a grouping rule; validation errors come back with their places.
#[utoipa::path(
    put,
    path = "/api/v1/grouping-rules/{name}",
    tag = "triage",
    params(("name" = String, Path, description = "Rule name")),
    request_body = GroupingRuleBody,
    responses((status = 200, body = GroupingRuleView), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn put_grouping_rule(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<GroupingRuleBody>,
) -> Result<Json<GroupingRuleView>, ApiError> {
    Ok(Json(
        state
            .app()
            .put_grouping_rule(&principal.actor, &name, body)
            .await?,
    ))
}

// ---------------------------------------------------------------- assets

/// Import assets from CSV (header with `name`, `criticality`, optional `ip`, `owner`); assets
/// are created or replaced by name, and bad lines are reported without failing the file.
#[utoipa::path(
    post,
    path = "/api/v1/assets/import",
    tag = "triage",
    request_body(content = String, description = "CSV", content_type = "text/csv"),
    responses((status = 200, body = AssetImportResult), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn import_assets(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<AssetImportResult>, ApiError> {
    Ok(Json(
        state.app().import_assets(&principal.actor, &body).await?,
    ))
}

/// The asset table.
#[utoipa::path(
    get,
    path = "/api/v1/assets",
    tag = "triage",
    responses((status = 200, body = Vec<Asset>), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_assets(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<Asset>>, ApiError> {
    Ok(Json(state.app().list_assets(&principal.actor).await?))
}

// ---------------------------------------------------------------- SLA policy

/// The tenant's SLA targets (the defaults until set).
#[utoipa::path(
    get,
    path = "/api/v1/sla-policy",
    tag = "triage",
    responses((status = 200, body = SlaPolicy), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn get_sla_policy(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<SlaPolicy>, ApiError> {
    Ok(Json(state.app().sla_policy(&principal.actor).await?))
}

/// Replace the SLA targets: `default` and `per_severity`, each with `acknowledge_secs`,
/// `analysis_secs`, `disposal_secs`. Admins and analysts.
#[utoipa::path(
    put,
    path = "/api/v1/sla-policy",
    tag = "triage",
    request_body(content = SlaPolicy, description = "The SLA policy"),
    responses((status = 200, body = SlaPolicy), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn put_sla_policy(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<SlaPolicy>, ApiError> {
    Ok(Json(
        state.app().put_sla_policy(&principal.actor, &body).await?,
    ))
}

// ---------------------------------------------------------------- workflow

/// The tenant's current incident workflow (version 1 is the built-in default).
#[utoipa::path(
    get,
    path = "/api/v1/workflow",
    tag = "triage",
    responses((status = 200, body = WorkflowView), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn get_workflow(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<WorkflowView>, ApiError> {
    Ok(Json(state.app().workflow(&principal.actor).await?))
}

/// Save a new workflow version from YAML or JSON; every validation error comes back in
/// `errors` with its place (`path`). Admins and analysts.
#[utoipa::path(
    put,
    path = "/api/v1/workflow",
    tag = "triage",
    request_body(content = String, description = "The workflow, YAML or JSON"),
    responses((status = 200, body = WorkflowView), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn put_workflow(
    State(state): State<AppState>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<WorkflowView>, ApiError> {
    Ok(Json(
        state.app().put_workflow(&principal.actor, &body).await?,
    ))
}
