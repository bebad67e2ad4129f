//! Replay: a past run's trigger and inputs dry-run against another version of its playbook
//! (latest by default), to see the path a new version would take before enabling it. Nothing
//! is sent and nothing is stored. Where a step of the new version is the same action as a step
//! of the past run that succeeded, the recorded output stands in for the action's example
//! output (and a past approval's choice for its default), so conditions see what really
//! happened; any other action answers with its declared example output, as in a dry run.

use std::collections::HashSet;

use garrison_model::TenantId;
use garrison_playbook::{RunState, StepKind, StepStatus};
use jiff::Timestamp;
use serde_json::Value as Json;

use crate::service::{Soar, SoarError};

/// A replayed run.
#[derive(Clone, Debug)]
pub struct Replay {
    /// The past run.
    pub original: RunState,
    /// The simulated run of the chosen version (`dry_run` set; not stored).
    pub state: RunState,
    /// Past inputs the chosen version does not declare (left out).
    pub ignored_inputs: Vec<String>,
    /// Steps answered with the past run's recorded output (or decision) instead of examples.
    pub recorded_steps: Vec<String>,
}

/// The steps a run took, in the playbook's order: started, not skipped.
pub fn path_taken(state: &RunState) -> Vec<String> {
    state
        .steps
        .iter()
        .filter(|s| match s.status {
            StepStatus::Pending | StepStatus::Skipped => false,
            StepStatus::Cancelled => s.started_at.is_some(),
            _ => true,
        })
        .map(|s| s.id.clone())
        .collect()
}

impl Soar {
    /// Dry-runs `version` (latest when `None`) of a past run's playbook with the run's trigger
    /// and inputs. With `recorded_outputs`, steps that match the past run's succeeded steps (same
    /// id and action) answer with what was recorded.
    pub async fn replay(
        &self,
        tenant: TenantId,
        run_id: &str,
        version: Option<u32>,
        recorded_outputs: bool,
    ) -> Result<Replay, SoarError> {
        let (original, _) = self
            .load(tenant, run_id)
            .await?
            .ok_or_else(|| SoarError::UnknownRun(run_id.to_owned()))?;
        let (target, v) = self.playbook(tenant, &original.playbook, version).await?;
        let mut playbook = (*target).clone();

        let declared: HashSet<&str> = playbook.inputs.iter().map(|i| i.name.as_str()).collect();
        let mut inputs = serde_json::Map::new();
        let mut ignored_inputs = Vec::new();
        if let Json::Object(past) = &original.inputs {
            for (name, value) in past {
                if !declared.contains(name.as_str()) {
                    ignored_inputs.push(name.clone());
                } else if !value.is_null() {
                    // (A null is an optional input left out: resolved to null again.)
                    inputs.insert(name.clone(), value.clone());
                }
            }
        }

        let mut recorded_steps = Vec::new();
        if recorded_outputs {
            // The past run's actions, to tell "the same step" from a reused id.
            let past_actions: Vec<(String, String)> = match self
                .playbook(tenant, &original.playbook, Some(original.version))
                .await
            {
                Ok((past, _)) => past
                    .steps
                    .iter()
                    .filter_map(|s| match &s.kind {
                        StepKind::Action(c) => Some((s.id.clone(), c.action.clone())),
                        _ => None,
                    })
                    .collect(),
                Err(e) => {
                    tracing::warn!(run = run_id, error = %e, "replay without recorded outputs: the run's version cannot be loaded");
                    Vec::new()
                }
            };
            for step in &mut playbook.steps {
                let Some(past) = original
                    .step(&step.id)
                    .filter(|p| p.status == StepStatus::Succeeded)
                else {
                    continue;
                };
                match &mut step.kind {
                    StepKind::Action(call) => {
                        let same = past_actions
                            .iter()
                            .any(|(id, action)| *id == step.id && *action == call.action);
                        if let (true, Some(output)) = (same, &past.output) {
                            call.example_output = Some(output.clone());
                            recorded_steps.push(step.id.clone());
                        }
                    }
                    StepKind::Approval {
                        choices, default, ..
                    } => {
                        let choice = past
                            .output
                            .as_ref()
                            .and_then(|o| o.get("choice"))
                            .and_then(Json::as_str)
                            .filter(|c| choices.iter().any(|x| x == c));
                        if let Some(c) = choice {
                            *default = Some(c.to_owned());
                            recorded_steps.push(step.id.clone());
                        }
                    }
                    _ => {}
                }
            }
        }

        let mut state = garrison_playbook::dry_run(
            &playbook,
            &Json::Object(inputs),
            original.trigger.clone(),
            Timestamp::now(),
        )?;
        state.run_id = format!("replay-of-{run_id}");
        state.version = v;
        state.parent = original.parent.clone();
        Ok(Replay {
            original,
            state,
            ignored_inputs,
            recorded_steps,
        })
    }
}
