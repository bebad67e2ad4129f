//! Starting a tenant's playbooks whose triggers match an event from the live pipeline.

use garrison_model::TenantId;
use garrison_playbook::Trigger;
use garrison_store::PlaybookRepo;
use serde_json::json;
use tracing::Instrument;

use super::{secret_hash, Soar, SoarError, StartRun, TriggerEvent};

impl Soar {
    /// Starts the enabled playbooks of a tenant whose triggers match (the alert and incident
    /// pipelines call this). `dedupe` identifies the occurrence (e.g. the alert id), so a
    /// replayed event starts nothing twice. Returns the started run ids. A store failure is
    /// returned (dispatch the occurrence again); a run refused for good (e.g. its inputs) is
    /// logged and skipped.
    pub async fn dispatch_trigger(
        &self,
        tenant: TenantId,
        event: &TriggerEvent,
        dedupe: &str,
    ) -> Result<Vec<String>, SoarError> {
        self.dispatch_matching(tenant, event, dedupe)
            .instrument(trigger_span(tenant, event, dedupe))
            .await
    }

    async fn dispatch_matching(
        &self,
        tenant: TenantId,
        event: &TriggerEvent,
        dedupe: &str,
    ) -> Result<Vec<String>, SoarError> {
        let mut started = Vec::new();
        for summary in self.inner.repo.list_playbooks(tenant).await? {
            if !summary.enabled {
                continue;
            }
            let version = u32::try_from(summary.latest_version).unwrap_or(0);
            let (pb, v) = match self.playbook(tenant, &summary.name, Some(version)).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(playbook = %summary.name, error = %e, "playbook skipped by trigger dispatch");
                    continue;
                }
            };
            let Some(trigger) = pb
                .triggers
                .iter()
                .position(|t| trigger_matches(t, event, &summary.name))
            else {
                continue;
            };
            let payload = match event {
                TriggerEvent::Alert(a) => json!({"kind": "alert", "alert": a}),
                TriggerEvent::IncidentState { from, to, incident } => {
                    json!({"kind": "incident_state", "from": from, "to": to, "incident": incident})
                }
                TriggerEvent::SlaBreach { stage, incident } => {
                    json!({"kind": "sla_breach", "stage": stage, "incident": incident})
                }
            };
            let run_id = format!(
                "trg-{}",
                &secret_hash(&format!("{}\u{0}{}\u{0}{dedupe}", summary.name, v))[..26]
            );
            match self
                .start_run(
                    tenant,
                    StartRun {
                        playbook: summary.name.clone(),
                        version: Some(v),
                        inputs: json!({}),
                        trigger: payload,
                        run_id: Some(run_id.clone()),
                        by_trigger: Some(trigger),
                        ..Default::default()
                    },
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(%tenant, playbook = %summary.name, %run_id, occurrence = %dedupe, "playbook started by trigger");
                    started.push(run_id)
                }
                // Transient: the caller retries the occurrence (run ids are deterministic, so
                // the runs started already are not started again).
                Err(e @ (SoarError::Store(_) | SoarError::Contention(_))) => return Err(e),
                // Kept as a failed run with the reason (see `StartRun::by_trigger`).
                Err(e) => {
                    tracing::warn!(playbook = %summary.name, %run_id, error = %e, "triggered run not started");
                    started.push(run_id)
                }
            }
        }
        Ok(started)
    }
}

/// The span of one dispatch: the alert's or the incident's id on every line it logs (the run
/// ids started are logged inside it), so an alert's path reads from detection to its runs.
fn trigger_span(tenant: TenantId, event: &TriggerEvent, dedupe: &str) -> tracing::Span {
    let id = |value: &serde_json::Value, keys: &[&str]| {
        keys.iter()
            .find_map(|k| value.get(*k).and_then(|v| v.as_str()))
            .unwrap_or_default()
            .to_string()
    };
    match event {
        TriggerEvent::Alert(alert) => tracing::info_span!(
            "trigger", %tenant, alert_id = %id(alert, &["alert_id", "id"]), occurrence = %dedupe
        ),
        TriggerEvent::IncidentState { incident, .. } | TriggerEvent::SlaBreach { incident, .. } => {
            tracing::info_span!(
                "trigger", %tenant, incident_id = %id(incident, &["id"]), occurrence = %dedupe
            )
        }
    }
}

fn trigger_matches(trigger: &Trigger, event: &TriggerEvent, playbook: &str) -> bool {
    match (trigger, event) {
        (Trigger::Alert { condition, .. }, TriggerEvent::Alert(alert)) => match condition {
            None => true,
            Some(c) => {
                match garrison_expr::eval_bool(
                    &format!("{playbook}.triggers.condition"),
                    c,
                    &json!({ "alert": alert }),
                ) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(playbook, error = %e, "alert trigger condition failed");
                        false
                    }
                }
            }
        },
        (
            Trigger::IncidentState { to, from, .. },
            TriggerEvent::IncidentState {
                from: was, to: now, ..
            },
        ) => {
            to.as_ref().is_none_or(|t| t == now)
                && from.as_ref().is_none_or(|f| was.as_ref() == Some(f))
        }
        (Trigger::SlaBreach { stage, .. }, TriggerEvent::SlaBreach { stage: s, .. }) => {
            stage.as_ref().is_none_or(|x| x == s)
        }
        _ => false,
    }
}
