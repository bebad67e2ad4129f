//! The audit log: recording actions, and reading the tenant's chain (admins).

use super::query::ApiQuery;
use axum::extract::State;
use axum::Json;
use garrison_model::{PageLimit, TenantId};
use garrison_store::{AuditQuery, AuditRepo};

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::AppState;
pub use garrison_api::audit::*;

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
    Ok(Json(
        state.app().audit_page(&principal.actor, params).await?,
    ))
}
