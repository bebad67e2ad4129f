//! Triage settings of a tenant: suppressions, grouping rules, the asset table, the SLA policy
//! and the incident workflow. Everyone in the tenant reads them; admins and analysts change
//! them, and every change is audited. The triage worker applies them to new alerts.

use garrison_api::triage::{
    AssetImportResult, GroupingRuleBody, GroupingRuleView, NewSuppression, WorkflowView,
};
use garrison_cases::{
    parse_assets_csv, Asset, GroupingRule, SlaPolicy, Suppression, Workflow, WorkflowError,
};
use garrison_model::{Role, Timestamp};
use garrison_store::{IncidentRepo, StoredSuppression};
use serde::Serialize;
use serde_json::json;

use crate::{Actor, App, AppError, Result};

/// Roles that change triage settings.
pub const EDITORS: &[Role] = &[Role::Admin, Role::Analyst];

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(AppError::internal)
}

fn invalid_with<T: Serialize>(message: String, errors: &[T]) -> AppError {
    match errors.iter().map(to_json).collect::<Result<Vec<_>>>() {
        Ok(errors) => AppError::InvalidWithErrors { message, errors },
        Err(e) => e,
    }
}

fn utf8(body: &[u8]) -> Result<&str> {
    std::str::from_utf8(body).map_err(|e| AppError::invalid(format!("body is not UTF-8: {e}")))
}

impl App {
    /// Suppressions with their hit counts, newest first; `active_only` for those in force now.
    pub async fn list_suppressions(
        &self,
        actor: &Actor,
        active_only: bool,
    ) -> Result<Vec<StoredSuppression>> {
        let active = active_only.then(Timestamp::now);
        Ok(self.store().list_suppressions(actor.tenant, active).await?)
    }

    /// Creates a suppression (it needs a rule or a field matcher).
    pub async fn create_suppression(
        &self,
        actor: &Actor,
        body: NewSuppression,
    ) -> Result<StoredSuppression> {
        actor.require_any(EDITORS)?;
        let suppression = Suppression {
            id: body
                .id
                .unwrap_or_else(|| format!("sup-{}", garrison_model::new_ulid().to_lowercase())),
            rule_id: body.rule_id,
            fields: body.fields,
            reason: body.reason,
            author: actor.case_actor().user,
            created: Timestamp::now(),
            expires: body.expires,
        };
        suppression
            .validate()
            .map_err(|e| AppError::invalid(e.to_string()))?;
        let stored = self
            .store()
            .create_suppression(actor.tenant, &suppression)
            .await?;
        self.record(
            actor,
            "suppression.create",
            &suppression.id,
            json!({"rule_id": suppression.rule_id, "fields": suppression.fields, "reason": suppression.reason}),
        )
        .await;
        Ok(stored)
    }

    /// Applies an active suppression to the tenant's open alerts now (triage applies it only
    /// to alerts that arrive or take new events after it): those it covers, by any stored
    /// field of their first event too, are marked suppressed and counted against it.
    pub async fn apply_suppression(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<garrison_api::triage::SuppressionApplied> {
        actor.require_any(EDITORS)?;
        let now = Timestamp::now();
        let suppression = self
            .store()
            .list_suppressions(actor.tenant, None)
            .await?
            .into_iter()
            .map(|s| s.suppression)
            .find(|s| s.id == id)
            .ok_or_else(|| AppError::NotFound(format!("suppression {id:?}")))?;
        if !suppression.is_active(now) {
            return Err(AppError::invalid(format!(
                "suppression {id:?} has expired; an expired suppression is not applied"
            )));
        }
        let only = std::slice::from_ref(&suppression);
        let (mut examined, mut covered) = (0u64, Vec::new());
        let mut after = 0;
        loop {
            let page = self.store().open_alerts(actor.tenant, after, 500).await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = *last;
            for (_, alert) in &page {
                examined += 1;
                let input = garrison_triage::suppression_input(self.store(), alert, only).await?;
                if suppression.is_suppressed(&input, now) {
                    covered.push(alert.alert_id.clone());
                }
            }
        }
        let suppressed = if covered.is_empty() {
            0
        } else {
            self.store()
                .suppress_alerts(actor.tenant, id, &covered, now)
                .await?
        };
        self.record(
            actor,
            "suppression.apply",
            id,
            json!({"examined": examined, "suppressed": suppressed}),
        )
        .await;
        Ok(garrison_api::triage::SuppressionApplied {
            suppression_id: id.to_string(),
            examined,
            suppressed,
        })
    }

    /// Ends a suppression now; it is kept with its counts.
    pub async fn expire_suppression(&self, actor: &Actor, id: &str) -> Result<StoredSuppression> {
        actor.require_any(EDITORS)?;
        let stored = self
            .store()
            .expire_suppression(actor.tenant, id, Timestamp::now())
            .await?;
        self.record(actor, "suppression.expire", id, json!({}))
            .await;
        Ok(stored)
    }

    pub async fn list_grouping_rules(&self, actor: &Actor) -> Result<Vec<GroupingRuleView>> {
        let rules = self.store().grouping_rules(actor.tenant).await?;
        Ok(rules.into_iter().map(GroupingRuleView::from).collect())
    }

    /// Creates or replaces a grouping rule; validation errors come back with their places.
    pub async fn put_grouping_rule(
        &self,
        actor: &Actor,
        name: &str,
        body: GroupingRuleBody,
    ) -> Result<GroupingRuleView> {
        actor.require_any(EDITORS)?;
        let rule = GroupingRule {
            name: name.to_string(),
            keys: body.keys,
            window_secs: body.window_secs,
            rule_ids: body.rule_ids,
        };
        if let Err(errors) = rule.validate() {
            return Err(invalid_with("grouping rule is not valid".into(), &errors));
        }
        let stored = self
            .store()
            .upsert_grouping_rule(actor.tenant, &rule, body.enabled, Timestamp::now())
            .await?;
        self.record(
            actor,
            "grouping_rule.put",
            name,
            json!({"keys": rule.keys, "window_secs": rule.window_secs, "enabled": body.enabled}),
        )
        .await;
        Ok(stored.into())
    }

    /// Imports assets from CSV; bad lines are reported without failing the file.
    pub async fn import_assets(&self, actor: &Actor, csv: &[u8]) -> Result<AssetImportResult> {
        actor.require_any(EDITORS)?;
        let (assets, errors) = parse_assets_csv(utf8(csv)?);
        let imported = if assets.is_empty() {
            0
        } else {
            self.store()
                .upsert_assets(actor.tenant, &assets, Timestamp::now())
                .await?
        };
        self.record(
            actor,
            "assets.import",
            "assets",
            json!({"imported": imported, "errors": errors.len()}),
        )
        .await;
        Ok(AssetImportResult { imported, errors })
    }

    pub async fn list_assets(&self, actor: &Actor) -> Result<Vec<Asset>> {
        Ok(self.store().assets(actor.tenant).await?)
    }

    pub async fn sla_policy(&self, actor: &Actor) -> Result<SlaPolicy> {
        Ok(self.store().sla_policy(actor.tenant).await?)
    }

    /// Replaces the SLA targets; every target must be at least one second.
    pub async fn put_sla_policy(&self, actor: &Actor, json_body: &[u8]) -> Result<SlaPolicy> {
        actor.require_any(EDITORS)?;
        let policy: SlaPolicy = serde_json::from_slice(json_body)
            .map_err(|e| AppError::invalid(format!("SLA policy: {e}")))?;
        let mut errors = Vec::new();
        let mut check = |place: String, targets: &garrison_cases::SlaTargets| {
            for (name, secs) in [
                ("acknowledge_secs", targets.acknowledge_secs),
                ("analysis_secs", targets.analysis_secs),
                ("disposal_secs", targets.disposal_secs),
            ] {
                if secs == 0 {
                    errors.push(
                        json!({"path": format!("{place}.{name}"), "message": "must be at least 1"}),
                    );
                }
            }
        };
        check("default".into(), &policy.default);
        for (severity, targets) in &policy.per_severity {
            check(format!("per_severity.{}", severity.as_str()), targets);
        }
        if !errors.is_empty() {
            return Err(AppError::InvalidWithErrors {
                message: "SLA policy is not valid".into(),
                errors,
            });
        }
        self.store()
            .set_sla_policy(actor.tenant, &policy, Timestamp::now())
            .await?;
        self.record(actor, "sla_policy.put", "sla-policy", to_json(&policy)?)
            .await;
        Ok(policy)
    }

    /// The tenant's current incident workflow (version 1 is the built-in default).
    pub async fn workflow(&self, actor: &Actor) -> Result<WorkflowView> {
        let stored = self.store().workflow(actor.tenant, None).await?;
        Ok(WorkflowView {
            version: stored.version,
            workflow: stored.workflow,
            created_by: stored.created_by,
        })
    }

    /// Saves a new workflow version from YAML or JSON; every validation error comes back with
    /// its place.
    pub async fn put_workflow(&self, actor: &Actor, text: &[u8]) -> Result<WorkflowView> {
        actor.require_any(EDITORS)?;
        let text = utf8(text)?;
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
                return Err(invalid_with(
                    format!("workflow has {} error(s)", errors.len()),
                    &errors,
                ))
            }
            Err(e) => return Err(AppError::invalid(e.to_string())),
        };
        let stored = self
            .store()
            .save_workflow(
                actor.tenant,
                &workflow,
                &actor.case_actor().user,
                Timestamp::now(),
            )
            .await?;
        self.record(
            actor,
            "workflow.put",
            "workflow",
            json!({"version": stored.version}),
        )
        .await;
        Ok(WorkflowView {
            version: stored.version,
            workflow: stored.workflow,
            created_by: stored.created_by,
        })
    }
}
