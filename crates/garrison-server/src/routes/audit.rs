//! The audit log: recording actions, and reading the tenant's chain (admins).

use super::query::ApiQuery;
use axum::extract::State;
use axum::Json;
use garrison_model::{PageLimit, TenantId};
use garrison_store::{AuditEntry, AuditQuery, AuditRepo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::AppState;

/// Appends an entry for an action done by `principal`, through the application layer (the
/// same shape whichever door acted).
pub async fn record(
    state: &AppState,
    principal: &Principal,
    action: &str,
    target: &str,
    details: serde_json::Value,
) {
    state
        .app()
        .record(&principal.actor, action, target, details)
        .await
}

/// Appends an entry for an actor that is not a principal (a login, the system).
pub async fn record_as(
    state: &AppState,
    tenant: TenantId,
    actor: &str,
    action: &str,
    target: &str,
    details: serde_json::Value,
) {
    state
        .app()
        .record_named(tenant, actor, action, target, details)
        .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub prev_hash: String,
    /// SHA-256 over the entry's canonical fields and `prev_hash`.
    pub hash: String,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        AuditEntryView {
            seq: e.seq,
            time: e.time.to_string(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            details: serde_json::from_str(&e.details)
                .unwrap_or(serde_json::Value::String(e.details)),
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageView {
    pub entries: Vec<AuditEntryView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Entries after this sequence number (the previous page's `next_after`).
    pub after: Option<i64>,
    /// Only this action, e.g. `rule.enable`.
    pub action: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<PageLimit>,
}

/// The tenant's audit log, oldest first (admins).
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditParams),
    responses((status = 200, body = AuditPageView), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_audit(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPageView>, ApiError> {
    principal.require_admin()?;
    let search = AuditQuery {
        after: params.after,
        action: params.action,
        limit: PageLimit::or(params.limit, 100),
    };
    let page = state.store().list_audit(principal.tenant, &search).await?;
    Ok(Json(AuditPageView {
        entries: page.entries.into_iter().map(AuditEntryView::from).collect(),
        next_after: page.next_after,
    }))
}
