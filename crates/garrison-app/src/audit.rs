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

/// Details beyond this are summarised: the store keeps at most 64 KiB per entry.
const MAX_DETAILS_BYTES: usize = 60 * 1024;

impl App {
    /// Details that fit an entry, as they are; bigger ones (a 2,400-rule import) summarised:
    /// lists become their counts, long texts their lengths, plus the SHA-256 of the whole and,
    /// where the service keeps its files, the whole written beside the checkpoints
    /// (`audit-details/<sha256>.json`), so nothing is dropped and the entry proves what it was.
    fn fit_details(&self, details: serde_json::Value) -> serde_json::Value {
        use sha2::Digest;
        let text = details.to_string();
        if text.len() <= MAX_DETAILS_BYTES {
            return details;
        }
        let sha256 = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        let stored =
            self.anchors
                .as_ref()
                .and_then(|anchors| match anchors.store_details(&sha256, &text) {
                    Ok(path) => Some(path),
                    Err(e) => {
                        tracing::warn!(error = %e, "full audit details not kept");
                        None
                    }
                });
        let mut summary = serde_json::Map::new();
        if let serde_json::Value::Object(map) = details {
            for (key, value) in map {
                let value = match value {
                    serde_json::Value::Array(items) => serde_json::json!({"count": items.len()}),
                    serde_json::Value::String(s) if s.len() > 1024 => {
                        serde_json::json!({"bytes": s.len()})
                    }
                    serde_json::Value::Object(fields)
                        if serde_json::Value::Object(fields.clone()).to_string().len() > 4096 =>
                    {
                        serde_json::json!({"keys": fields.len()})
                    }
                    other => other,
                };
                summary.insert(key, value);
            }
        }
        summary.insert(
            "summarised".into(),
            serde_json::json!({"bytes": text.len(), "sha256": sha256, "stored": stored}),
        );
        let summary = serde_json::Value::Object(summary);
        if summary.to_string().len() <= MAX_DETAILS_BYTES {
            summary
        } else {
            // Too many keys even summarised: keep the proof only.
            serde_json::json!({"summarised": {"bytes": text.len(), "sha256": sha256, "stored": stored}})
        }
    }

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
        let details = self.fit_details(details);
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
