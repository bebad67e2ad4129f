//! The audit log: recording actions, and reading the tenant's chain (admins).

use super::parse_limit;
use axum::extract::{RawQuery, State};
use axum::Json;
use garrison_model::TenantId;
use garrison_store::{AuditEntry, AuditQuery, AuditRepo, NewAuditEntry, TokenKind};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::AppState;

/// Who a principal is in the audit log: `user:NAME` for a session, else `token:PREFIX`.
pub fn actor_of(principal: &Principal) -> String {
    let token = &principal.token;
    match (token.kind, token.name.strip_prefix("session of ")) {
        (TokenKind::Session, Some(user)) => format!("user:{user}"),
        _ => format!("token:{}", token.prefix),
    }
}

/// Appends an entry for an action done by `principal` (the token used is part of it). A
/// failure to record is logged and counted; the action itself already happened.
pub async fn record(
    state: &AppState,
    principal: &Principal,
    action: &str,
    target: &str,
    details: serde_json::Value,
) {
    let mut details = details;
    if let serde_json::Value::Object(map) = &mut details {
        map.insert("token_id".into(), principal.token.id.into());
        map.insert("token_kind".into(), principal.token.kind.as_str().into());
    }
    record_as(
        state,
        principal.tenant,
        &actor_of(principal),
        action,
        target,
        details,
    )
    .await;
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
    let entry = NewAuditEntry {
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        details,
    };
    if let Err(e) = state.store().append_audit(tenant, entry).await {
        tracing::error!(error = %e, %tenant, action, "cannot record an audit entry");
        metrics::counter!("garrison_audit_errors_total").increment(1);
    }
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
#[allow(dead_code)] // documents the parameters; parsed by hand
pub struct AuditParams {
    /// Entries after this sequence number (the previous page's `next_after`).
    after: Option<i64>,
    /// Only this action, e.g. `rule.enable`.
    action: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<usize>,
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
    RawQuery(query): RawQuery,
) -> Result<Json<AuditPageView>, ApiError> {
    principal.require_admin()?;
    let mut search = AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "after" => {
                search.after = Some(value.parse().map_err(|_| {
                    ApiError::invalid(format!("parameter after: {value:?} is not a number"))
                })?)
            }
            "action" => search.action = Some(value.into_owned()),
            "limit" => search.limit = parse_limit(&value)?,
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown parameter {other:?}; expected after, action or limit"
                )))
            }
        }
    }
    let page = state.store().list_audit(principal.tenant, &search).await?;
    Ok(Json(AuditPageView {
        entries: page.entries.into_iter().map(AuditEntryView::from).collect(),
        next_after: page.next_after,
    }))
}
