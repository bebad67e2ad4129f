//! Recording actions in the tenant's hash-chained audit log.

use garrison_model::TenantId;
use garrison_store::{AuditRepo, NewAuditEntry};

use crate::{Actor, App};

/// The one metric of the audit log: entries that could not be written. Listed in the README.
pub const AUDIT_ERRORS: &str = "garrison_audit_errors_total";

/// The details every entry carries about its actor, whichever door was used: `via` (session,
/// api, local, system) and the token id (null without a token).
fn with_actor(actor: &Actor, details: serde_json::Value) -> serde_json::Value {
    let mut details = details;
    if let serde_json::Value::Object(map) = &mut details {
        map.insert("via".into(), actor.via().into());
        map.insert(
            "token_id".into(),
            actor.token_id().map_or(serde_json::Value::Null, Into::into),
        );
    }
    details
}

impl App {
    /// Appends an entry for an action done by `actor` in its tenant. A failure to record is
    /// logged and counted; the action itself already happened.
    pub async fn record(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) {
        self.record_in(actor.tenant, actor, action, target, details)
            .await
    }

    /// Appends an entry for an action `actor` did in `tenant` (a provider admin acting on a
    /// customer's tenant is recorded in that tenant).
    pub async fn record_in(
        &self,
        tenant: TenantId,
        actor: &Actor,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) {
        self.record_named(
            tenant,
            &actor.audit_name(),
            action,
            target,
            with_actor(actor, details),
        )
        .await
    }

    /// Appends an entry for an actor that is not yet a principal (a login, a failed login).
    pub async fn record_named(
        &self,
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
        if let Err(e) = self.store().append_audit(tenant, entry).await {
            tracing::error!(error = %e, %tenant, action, "cannot record an audit entry");
            metrics::counter!(AUDIT_ERRORS).increment(1);
        }
    }
}
