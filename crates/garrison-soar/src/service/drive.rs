//! Sending a run's actions: pure ones inline, external ones after a save, each call audited.

use std::time::Duration;

use garrison_playbook::{ActionRequest, Effect, Event, Playbook, TimerKind};
use serde_json::json;

use crate::actions::is_pure;

use super::{Soar, SoarError, Work};

/// An action's outcome as the audit log states it.
fn call_result(outcome: &garrison_playbook::ActionOutcome) -> Result<(), String> {
    match &outcome.result {
        Ok(_) => Ok(()),
        Err(failure) => Err(failure.message.clone()),
    }
}

impl Soar {
    /// Sends the run's in-flight actions until none is left. Pure actions run inline; before
    /// any other action the state is saved. With `stop_before_external`, returns `true`
    /// instead of sending an external action.
    pub(super) async fn drive(
        &self,
        work: &mut Work,
        stop_before_external: bool,
    ) -> Result<bool, SoarError> {
        for _ in 0..100_000 {
            // A cancellation asked for while an action call was in flight: applied before
            // anything else is sent, and its stored request removed with the same write.
            if let Some(by) = self.take_cancel(work.tenant, &work.state.run_id) {
                work.remove
                    .push(garrison_playbook::cancel_timer_id(&work.state.run_id));
                self.apply(work, Event::Cancel { by });
            }
            let effects = work.state.in_flight(&work.pb);
            if effects.is_empty() {
                return Ok(false);
            }
            let mut external = Vec::new();
            let mut did_pure = false;
            for effect in effects {
                match effect {
                    Effect::ExecuteAction {
                        step,
                        item,
                        attempt,
                        idempotency_key,
                        action,
                        input,
                    } if is_pure(&action) => {
                        let outcome = self
                            .inner
                            .executor
                            .execute(ActionRequest {
                                run_id: work.state.run_id.clone(),
                                step: step.clone(),
                                item,
                                attempt,
                                idempotency_key,
                                action,
                                input,
                            })
                            .await;
                        self.apply(
                            work,
                            Event::ActionFinished {
                                step,
                                item,
                                attempt,
                                result: outcome.result,
                                logs: outcome.logs,
                            },
                        );
                        did_pure = true;
                    }
                    other => external.push(other),
                }
            }
            if did_pure {
                continue;
            }
            if stop_before_external {
                return Ok(true);
            }
            self.persist(work).await?;
            let run_id = work.state.run_id.clone();
            let calls = external
                .into_iter()
                .map(|effect| self.execute_external(&run_id, &work.pb, effect));
            let events = futures_util::future::join_all(calls).await;
            for (event, audit) in events.into_iter().flatten() {
                work.audit.push(audit);
                self.apply(work, event);
            }
        }
        Err(SoarError::Refused(format!(
            "run {:?} made no progress",
            work.state.run_id
        )))
    }

    /// The audit entry of an external call a run made (a machine action); it is committed
    /// with the state that records the call's result, so each result is audited once.
    fn audit_call(
        pb: &Playbook,
        kind: &str,
        target: String,
        action: &str,
        attempt: u32,
        key: &str,
        result: Result<(), String>,
    ) -> garrison_store::NewAuditEntry {
        garrison_store::NewAuditEntry {
            actor: format!("playbook:{}", pb.name),
            action: kind.to_string(),
            target,
            details: json!({
                "action": action,
                "attempt": attempt,
                "idempotency_key": key,
                "outcome": if result.is_ok() { "ok" } else { "failed" },
                "error": result.err(),
            }),
        }
    }

    /// Sends one external call; returns the event that records its result and the call's
    /// audit entry.
    async fn execute_external(
        &self,
        run_id: &str,
        pb: &Playbook,
        effect: Effect,
    ) -> Option<(Event, garrison_store::NewAuditEntry)> {
        match effect {
            Effect::ExecuteAction {
                step,
                item,
                attempt,
                idempotency_key,
                action,
                input,
            } => {
                let timeout = pb.step(&step).and_then(|s| s.timeout);
                let target = match item {
                    Some(i) => format!("{run_id}/{step}[{i}]"),
                    None => format!("{run_id}/{step}"),
                };
                let (audit_action, audit_key) = (action.clone(), idempotency_key.clone());
                let call = self.inner.executor.execute(ActionRequest {
                    run_id: run_id.to_owned(),
                    step: step.clone(),
                    item,
                    attempt,
                    idempotency_key,
                    action,
                    input,
                });
                let outcome = match timeout {
                    Some(t) => {
                        match tokio::time::timeout(Duration::from_millis(t.as_millis()), call).await
                        {
                            Ok(o) => o,
                            Err(_) => {
                                let audit = Self::audit_call(
                                    pb,
                                    "playbook.action",
                                    target,
                                    &audit_action,
                                    attempt,
                                    &audit_key,
                                    Err("timed out".into()),
                                );
                                let event = Event::TimerFired(TimerKind::StepTimeout {
                                    step,
                                    item,
                                    attempt,
                                });
                                return Some((event, audit));
                            }
                        }
                    }
                    None => call.await,
                };
                let audit = Self::audit_call(
                    pb,
                    "playbook.action",
                    target,
                    &audit_action,
                    attempt,
                    &audit_key,
                    call_result(&outcome),
                );
                let event = Event::ActionFinished {
                    step,
                    item,
                    attempt,
                    result: outcome.result,
                    logs: outcome.logs,
                };
                Some((event, audit))
            }
            Effect::ExecuteUndo {
                lease,
                action,
                input,
                attempt,
                idempotency_key,
                ..
            } => {
                let (audit_action, audit_key) = (action.clone(), idempotency_key.clone());
                let outcome = self
                    .inner
                    .executor
                    .execute(ActionRequest {
                        run_id: run_id.to_owned(),
                        step: lease.clone(),
                        item: None,
                        attempt,
                        idempotency_key,
                        action,
                        input,
                    })
                    .await;
                let audit = Self::audit_call(
                    pb,
                    "playbook.undo",
                    lease.clone(),
                    &audit_action,
                    attempt,
                    &audit_key,
                    call_result(&outcome),
                );
                let event = Event::UndoFinished {
                    lease,
                    attempt,
                    result: outcome.result,
                };
                Some((event, audit))
            }
            _ => None,
        }
    }
}
