//! The audit log: recording actions, and reading the tenant's chain (admins).

use super::query::ApiQuery;
use axum::extract::State;
use axum::Json;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::AppState;
pub use garrison_api::audit::*;

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
