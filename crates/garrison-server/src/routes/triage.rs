//! Triage settings of a tenant: suppressions, grouping rules, the asset table, the SLA policy
//! and the incident workflow. Everyone in the tenant reads them; admins and analysts change
//! them. Every change is audited. The triage follower (`crate::triage`) applies them to new
//! alerts.

use super::query::ApiQuery;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use garrison_cases::{
    parse_assets_csv, Asset, GroupingRule, SlaPolicy, Suppression, Workflow, WorkflowError,
};
use garrison_model::{Role, Timestamp};
use garrison_store::{IncidentRepo, StoredSuppression};
use serde::Serialize;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::routes::audit::record;
use crate::routes::extract::ApiJson;
use crate::routes::extract::ApiPath;
use crate::routes::incidents::actor;
use crate::AppState;
pub use garrison_api::triage::*;

/// Roles that change triage settings.
const EDITORS: &[Role] = &[Role::Admin, Role::Analyst];

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(ApiError::internal)
}

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
    let active = params.active.unwrap_or(false).then(Timestamp::now);
    let list = state
        .store()
        .list_suppressions(principal.tenant, active)
        .await?;
    Ok(Json(list))
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
    principal.require_any(EDITORS)?;
    let suppression = Suppression {
        id: body
            .id
            .unwrap_or_else(|| format!("sup-{}", garrison_model::new_ulid().to_lowercase())),
        rule_id: body.rule_id,
        fields: body.fields,
        reason: body.reason,
        author: actor(&principal).user,
        created: Timestamp::now(),
        expires: body.expires,
    };
    suppression
        .validate()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let stored = state
        .store()
        .create_suppression(principal.tenant, &suppression)
        .await?;
    record(
        &state,
        &principal,
        "suppression.create",
        &suppression.id,
        serde_json::json!({"rule_id": suppression.rule_id, "fields": suppression.fields, "reason": suppression.reason}),
    )
    .await;
    Ok((axum::http::StatusCode::CREATED, Json(stored)))
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
    principal.require_any(EDITORS)?;
    let stored = state
        .store()
        .expire_suppression(principal.tenant, &id, Timestamp::now())
        .await?;
    record(
        &state,
        &principal,
        "suppression.expire",
        &id,
        serde_json::json!({}),
    )
    .await;
    Ok(Json(stored))
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
    let rules = state.store().grouping_rules(principal.tenant).await?;
    Ok(Json(
        rules.into_iter().map(GroupingRuleView::from).collect(),
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
    principal.require_any(EDITORS)?;
    let rule = GroupingRule {
        name: name.clone(),
        keys: body.keys,
        window_secs: body.window_secs,
        rule_ids: body.rule_ids,
    };
    if let Err(errors) = rule.validate() {
        return Err(ApiError::invalid("grouping rule is not valid")
            .with_errors(errors.iter().map(to_json).collect::<Result<_, _>>()?));
    }
    let stored = state
        .store()
        .upsert_grouping_rule(principal.tenant, &rule, body.enabled, Timestamp::now())
        .await?;
    record(
        &state,
        &principal,
        "grouping_rule.put",
        &name,
        serde_json::json!({"keys": rule.keys, "window_secs": rule.window_secs, "enabled": body.enabled}),
    )
    .await;
    Ok(Json(stored.into()))
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
    principal.require_any(EDITORS)?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::invalid(format!("body is not UTF-8: {e}")))?;
    let (assets, errors) = parse_assets_csv(text);
    let imported = if assets.is_empty() {
        0
    } else {
        state
            .store()
            .upsert_assets(principal.tenant, &assets, Timestamp::now())
            .await?
    };
    record(
        &state,
        &principal,
        "assets.import",
        "assets",
        serde_json::json!({"imported": imported, "errors": errors.len()}),
    )
    .await;
    Ok(Json(AssetImportResult { imported, errors }))
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
    let assets = state.store().assets(principal.tenant).await?;
    Ok(Json(assets))
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
    let policy = state.store().sla_policy(principal.tenant).await?;
    Ok(Json(policy))
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
    principal.require_any(EDITORS)?;
    let policy: SlaPolicy =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("SLA policy: {e}")))?;
    let mut errors = Vec::new();
    let mut check = |place: String, targets: &garrison_cases::SlaTargets| {
        for (name, secs) in [
            ("acknowledge_secs", targets.acknowledge_secs),
            ("analysis_secs", targets.analysis_secs),
            ("disposal_secs", targets.disposal_secs),
        ] {
            if secs == 0 {
                errors.push(serde_json::json!({"path": format!("{place}.{name}"), "message": "must be at least 1"}));
            }
        }
    };
    check("default".into(), &policy.default);
    for (severity, targets) in &policy.per_severity {
        check(format!("per_severity.{}", severity.as_str()), targets);
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("SLA policy is not valid").with_errors(errors));
    }
    let now = Timestamp::now();
    state
        .store()
        .set_sla_policy(principal.tenant, &policy, now)
        .await?;
    record(
        &state,
        &principal,
        "sla_policy.put",
        "sla-policy",
        to_json(&policy)?,
    )
    .await;
    Ok(Json(policy))
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
    let stored = state.store().workflow(principal.tenant, None).await?;
    Ok(Json(WorkflowView {
        version: stored.version,
        workflow: stored.workflow,
        created_by: stored.created_by,
    }))
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
    principal.require_any(EDITORS)?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::invalid(format!("body is not UTF-8: {e}")))?;
    let parsed = if text.trim_start().starts_with('{') {
        Workflow::from_json(text)
    } else {
        Workflow::from_yaml(text)
    };
    let workflow = parsed.and_then(|w| match w.validate() {
        Ok(()) => Ok(w),
        Err(errors) => Err(WorkflowError::Invalid(errors)),
    });
    let workflow = match workflow {
        Ok(w) => w,
        Err(WorkflowError::Invalid(errors)) => {
            return Err(
                ApiError::invalid(format!("workflow has {} error(s)", errors.len()))
                    .with_errors(errors.iter().map(to_json).collect::<Result<_, _>>()?),
            )
        }
        Err(e) => return Err(ApiError::invalid(e.to_string())),
    };
    let stored = state
        .store()
        .save_workflow(
            principal.tenant,
            &workflow,
            &actor(&principal).user,
            Timestamp::now(),
        )
        .await?;
    record(
        &state,
        &principal,
        "workflow.put",
        "workflow",
        serde_json::json!({"version": stored.version}),
    )
    .await;
    Ok(Json(WorkflowView {
        version: stored.version,
        workflow: stored.workflow,
        created_by: stored.created_by,
    }))
}
