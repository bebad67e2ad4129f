//! The application layer: one function per operation a person or a program can perform.
//!
//! Every door (HTTP routes, the CLI on a local data directory, the playbook engine's built-in
//! Garrison actions, next the console and the AI analyst) translates its input into a typed
//! request and calls one of these functions with the acting [`Actor`]. The function checks the
//! role and the tenant, validates, writes through the store and records the audit entry, so the
//! rules hold whichever door was used. Doors never call the store for a state change themselves.
//!
//! This crate does no HTTP and prints nothing.

pub mod actor;
pub mod admin;
pub mod anchor;
pub mod attachments;
pub mod audit;
pub mod audit_export;
pub mod error;
pub mod incidents;
pub mod intel;
pub mod metrics;
pub mod placeholders;
pub mod playbooks;
pub mod reads;
pub mod rules;
pub mod settings;
pub mod sign_in;
pub mod source_health;

pub use actor::{Actor, ActorKind};
pub use error::{AppError, Result};

use garrison_model::TenantId;
use garrison_store::SqlStore;

/// What every operation needs: the store and the tenant of the provider (whose admins manage
/// the other tenants); and the services only a running server has (the playbook engine, the
/// attachment files), absent on a bare data directory.
#[derive(Clone)]
pub struct App {
    store: std::sync::Arc<SqlStore>,
    provider_tenant: TenantId,
    soar: Option<garrison_soar::Soar>,
    attachments: Option<attachments::Attachments>,
    /// Failed sign-ins per account, shared by every clone of this App.
    sign_in: std::sync::Arc<sign_in::SignInGuard>,
    /// Signed audit checkpoints outside the database (the data directory's).
    anchors: Option<std::sync::Arc<anchor::Anchors>>,
    /// Enabled rules compiled for source health's logsource questions.
    rule_scopes: std::sync::Arc<source_health::RuleScopes>,
}

impl App {
    pub fn new(store: std::sync::Arc<SqlStore>, provider_tenant: TenantId) -> App {
        App {
            store,
            provider_tenant,
            soar: None,
            attachments: None,
            sign_in: std::sync::Arc::default(),
            anchors: None,
            rule_scopes: std::sync::Arc::default(),
        }
    }

    pub(crate) fn rule_scopes(&self) -> &source_health::RuleScopes {
        &self.rule_scopes
    }

    /// With the first lockout of an account or address after repeated failed sign-ins
    /// (doubling with each further failure up to 15 minutes).
    pub fn with_sign_in_lockout(mut self, first: std::time::Duration) -> App {
        self.sign_in = std::sync::Arc::new(sign_in::SignInGuard::new(first));
        self
    }

    /// With the audit checkpoint file and key in `dir` (created when missing).
    pub fn with_anchors(mut self, dir: &std::path::Path) -> Result<App> {
        self.anchors = Some(std::sync::Arc::new(anchor::Anchors::open(dir)?));
        Ok(self)
    }

    /// With the playbook service (SOAR), which the playbook and run operations call.
    pub fn with_soar(mut self, soar: garrison_soar::Soar) -> App {
        self.soar = Some(soar);
        self
    }

    /// With the attachment files on disk, and the largest attachment accepted.
    pub fn with_blobs(
        mut self,
        blobs: std::sync::Arc<garrison_blobs::BlobStore>,
        max_attachment_bytes: u64,
    ) -> App {
        self.attachments = Some(attachments::Attachments {
            blobs,
            max_bytes: max_attachment_bytes,
        });
        self
    }

    pub fn store(&self) -> &SqlStore {
        &self.store
    }

    pub fn provider_tenant(&self) -> TenantId {
        self.provider_tenant
    }

    /// An admin of the provider's tenant, or the operator on the data directory.
    pub fn is_provider_admin(&self, actor: &Actor) -> bool {
        match actor.kind {
            ActorKind::Local { .. } => true,
            _ => {
                actor.tenant == self.provider_tenant && actor.has_role(garrison_model::Role::Admin)
            }
        }
    }
}

/// An alert the service raises itself (an account lockout, a silent source): folded like a
/// rule's, one per (rule, entity, hour), so it reaches the queue, triage and playbooks.
pub(crate) struct InternalAlert {
    pub tenant: TenantId,
    pub rule: &'static str,
    pub title: String,
    pub level: garrison_model::Level,
    pub entity: serde_json::Map<String, serde_json::Value>,
    /// The "event" folded: a fresh id counts again, a repeated one does not.
    pub event_id: String,
    pub matched: serde_json::Value,
    /// When it happened (the alert's time and window).
    pub at: garrison_model::Timestamp,
    /// Consumer name under which the store records the detection.
    pub consumer: &'static str,
}

impl App {
    pub(crate) async fn raise_internal_alert(&self, alert: InternalAlert) {
        use garrison_store::DetectionRepo;
        let now = alert.at;
        let fingerprint = garrison_detect::fingerprint(alert.rule, &alert.entity);
        let window = garrison_detect::window_start(now, 3_600_000_000);
        let hit = garrison_store::AlertHit {
            tenant_id: alert.tenant,
            alert_id: garrison_detect::alert_id(alert.tenant, alert.rule, &fingerprint, window),
            rule_id: alert.rule.into(),
            title: alert.title,
            level: alert.level,
            fingerprint,
            entity_json: serde_json::Value::Object(alert.entity).to_string(),
            window_start: window,
            event_id: alert.event_id,
            event_time: now,
            matched_json: alert.matched.to_string(),
        };
        let position = u64::try_from(garrison_model::to_micros(now)).unwrap_or(0);
        if let Err(e) = self
            .store()
            .record_detections(&[hit], alert.consumer, position)
            .await
        {
            tracing::warn!(error = %e, tenant = %alert.tenant, rule = alert.rule, "internal alert not recorded");
        }
    }
}
