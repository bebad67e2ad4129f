//! Dry runs: actions answer with their example outputs, waits end and approvals decide at once.

use jiff::Timestamp;
use serde_json::Value as Json;

use crate::model::*;

use super::{advance, ActionFailure, Cx, Effect, Event, InputErrors, RunState, Timer, TimerKind};

/// Runs a playbook as a dry run: actions answer with their declared example outputs, waits end
/// at once, approvals take their default (else their first choice), child runs succeed. The
/// returned state shows the path taken (succeeded vs skipped steps) and every simulated input.
pub fn dry_run(
    playbook: &Playbook,
    inputs: &Json,
    trigger: Json,
    now: Timestamp,
) -> Result<RunState, InputErrors> {
    let mut state = RunState::new("dry-run", playbook, 0, inputs, trigger, now)?;
    state.dry_run = true;
    advance(playbook, &mut state, now, Event::Start);
    Ok(state)
}

impl Cx<'_> {
    /// Turns the effects produced since `from` into simulated answers.
    pub(super) fn simulate(&mut self, from: usize) {
        let new: Vec<Effect> = self.effects.drain(from..).collect();
        for eff in new {
            match eff {
                Effect::ExecuteAction {
                    step,
                    item,
                    attempt,
                    action,
                    input,
                    ..
                } => {
                    let example = self
                        .pb
                        .step(&step)
                        .and_then(|s| match &s.kind {
                            StepKind::Action(c) => c.example_output.clone(),
                            StepKind::ForEach { call, .. } => call.example_output.clone(),
                            _ => None,
                        })
                        .unwrap_or(Json::Null);
                    // pure built-ins run for real; anything with I/O is simulated
                    let output = match action.as_str() {
                        "core.set" => input,
                        "core.transform" => {
                            let query = input.get("query").and_then(Json::as_str).unwrap_or(".");
                            let data = input.get("input").cloned().unwrap_or(Json::Null);
                            match garrison_expr::JqQuery::compile(
                                &format!("steps.{step}.with.query"),
                                query,
                            )
                            .and_then(|q| q.run_one(&data))
                            {
                                Ok(v) => v,
                                Err(e) => {
                                    self.queue.push_back(Event::ActionFinished {
                                        step,
                                        item,
                                        attempt,
                                        result: Err(ActionFailure::permanent(e.to_string())),
                                        logs: vec![],
                                    });
                                    continue;
                                }
                            }
                        }
                        _ => example,
                    };
                    self.queue.push_back(Event::ActionFinished {
                        step,
                        item,
                        attempt,
                        result: Ok(output),
                        logs: vec![format!("dry run: {action} simulated")],
                    });
                }
                Effect::ScheduleTimer(Timer {
                    kind: TimerKind::Wait { step },
                    ..
                }) => {
                    self.queue
                        .push_back(Event::TimerFired(TimerKind::Wait { step }));
                }
                Effect::ScheduleTimer(_)
                | Effect::CancelAction { .. }
                | Effect::CancelSubPlaybook { .. } => {}
                Effect::RequestApproval {
                    step,
                    choices,
                    default,
                    ..
                } => {
                    let choice = default
                        .or_else(|| choices.first().cloned())
                        .unwrap_or_default();
                    self.queue.push_back(Event::ApprovalDecided {
                        step,
                        choice,
                        by: "dry-run".into(),
                    });
                }
                Effect::StartSubPlaybook { step, .. } => {
                    self.queue.push_back(Event::SubPlaybookFinished {
                        step,
                        status: RunStatus::Succeeded,
                        output: Json::Null,
                    });
                }
                Effect::ExecuteUndo { lease, attempt, .. } => {
                    self.queue.push_back(Event::UndoFinished {
                        lease,
                        attempt,
                        result: Ok(Json::Null),
                    });
                }
                e @ Effect::Complete { .. } => self.effects.push(e),
            }
        }
    }
}
