//! Starting steps: activation, action attempts and `for_each` items.

use garrison_expr::Context;
use jiff::Timestamp;
use serde_json::{json, Value as Json};

use crate::model::*;

use super::{
    add, idempotency_key, ApprovalRecord, AttemptRecord, Cx, Effect, ItemState, StepStatus,
    TimerKind,
};

impl Cx<'_> {
    pub(super) fn start_step(&mut self, i: usize) {
        let pb = self.pb;
        let step = &pb.steps[i];
        {
            let s = &mut self.st.steps[i];
            s.status = StepStatus::Running;
            if s.started_at.is_none() {
                s.started_at = Some(self.now);
            }
        }
        if let Some(when) = &step.when {
            let ctx = self.context(&[]);
            match garrison_expr::default_sandbox().eval_bool(
                &format!("steps.{}.when", step.id),
                when,
                &ctx,
            ) {
                Ok(true) => {}
                Ok(false) => {
                    self.st.steps[i].status = StepStatus::Pending;
                    self.skip(i, "`when` is false");
                    return;
                }
                Err(e) => {
                    self.fail_step(i, e.to_string());
                    return;
                }
            }
        }
        let sandbox = garrison_expr::default_sandbox();
        match &step.kind {
            StepKind::Action(call) => {
                let ctx = self.context(&[]);
                let input =
                    match sandbox.render_json(&format!("steps.{}.with", step.id), &call.with, &ctx)
                    {
                        Ok(v) => v,
                        Err(e) => return self.fail_step(i, e.to_string()),
                    };
                if call.action == "core.sleep" {
                    let d = input
                        .get("for")
                        .and_then(Json::as_str)
                        .map(str::parse::<Duration>);
                    match d {
                        Some(Ok(d)) => {
                            let until = add(self.now, d);
                            let s = &mut self.st.steps[i];
                            s.input = Some(input);
                            s.status = StepStatus::Waiting;
                            s.wait_until = Some(until);
                            self.timer(
                                until,
                                TimerKind::Wait {
                                    step: step.id.clone(),
                                },
                            );
                        }
                        Some(Err(e)) => self.fail_step(i, e),
                        None => self.fail_step(i, "core.sleep needs `for`, a duration".into()),
                    }
                    return;
                }
                self.st.steps[i].input = Some(input);
                let attempt = self.st.steps[i].attempt_base + 1;
                self.start_attempt(i, None, attempt);
            }
            StepKind::ForEach { items, .. } => {
                let ctx = self.context(&[]);
                let name = format!("steps.{}.for_each.items", step.id);
                let value = if garrison_expr::is_template(items) {
                    sandbox.render(&name, items, &ctx)
                } else {
                    sandbox.eval(&name, items, &ctx)
                };
                let list = match value {
                    Ok(Json::Array(a)) => a,
                    Ok(other) => {
                        return self.fail_step(
                            i,
                            format!(
                                "{name}: expected a list, got {}",
                                garrison_expr::json_type(&other)
                            ),
                        )
                    }
                    Err(e) => return self.fail_step(i, e.to_string()),
                };
                if list.len() > 10_000 {
                    return self
                        .fail_step(i, format!("{name}: {} items, more than 10000", list.len()));
                }
                let base = self.st.steps[i].attempt_base;
                self.st.steps[i].items = list
                    .into_iter()
                    .map(|item| ItemState {
                        status: StepStatus::Pending,
                        item,
                        input: None,
                        output: None,
                        error: None,
                        attempt: base,
                    })
                    .collect();
                self.fill_for_each(i);
            }
            StepKind::Condition {
                condition,
                then,
                otherwise,
            } => {
                let ctx = self.context(&[]);
                match sandbox.eval_bool(&format!("steps.{}.condition.if", step.id), condition, &ctx)
                {
                    Ok(b) => {
                        self.activate(if b { then } else { otherwise });
                        self.succeed_step(i, json!({"result": b}));
                    }
                    Err(e) => self.fail_step(i, e.to_string()),
                }
            }
            StepKind::Branch { cases, default } => {
                let ctx = self.context(&[]);
                let mut chosen = None;
                for (c, case) in cases.iter().enumerate() {
                    match sandbox.eval_bool(
                        &format!("steps.{}.branch.cases[{c}].when", step.id),
                        &case.when,
                        &ctx,
                    ) {
                        Ok(true) => {
                            chosen = Some(c);
                            break;
                        }
                        Ok(false) => {}
                        Err(e) => return self.fail_step(i, e.to_string()),
                    }
                }
                match chosen {
                    Some(c) => self.activate(&cases[c].then),
                    None => self.activate(default),
                }
                self.succeed_step(i, json!({"case": chosen}));
            }
            StepKind::Parallel { .. } => {}
            StepKind::Wait(spec) => {
                let until = match spec {
                    WaitSpec::For(d) => add(self.now, *d),
                    WaitSpec::Until(t) => {
                        let ctx = self.context(&[]);
                        let rendered =
                            match sandbox.render(&format!("steps.{}.wait.until", step.id), t, &ctx)
                            {
                                Ok(v) => v,
                                Err(e) => return self.fail_step(i, e.to_string()),
                            };
                        match rendered.as_str().map(str::parse::<Timestamp>) {
                            Some(Ok(ts)) => ts,
                            _ => return self.fail_step(i, format!("steps.{}.wait.until: expected an RFC 3339 time, got {rendered}", step.id)),
                        }
                    }
                };
                let s = &mut self.st.steps[i];
                s.status = StepStatus::Waiting;
                s.wait_until = Some(until);
                if until <= self.now {
                    self.succeed_step(i, json!({"waited_until": until}));
                } else {
                    self.timer(
                        until,
                        TimerKind::Wait {
                            step: step.id.clone(),
                        },
                    );
                }
            }
            StepKind::Approval {
                message,
                approvers,
                choices,
                timeout,
                default,
                ..
            } => {
                let ctx = self.context(&[]);
                let message = match sandbox.render_string(
                    &format!("steps.{}.approval.message", step.id),
                    message,
                    &ctx,
                ) {
                    Ok(m) => m,
                    Err(e) => return self.fail_step(i, e.to_string()),
                };
                let expires_at = timeout.map(|t| add(self.now, t));
                let s = &mut self.st.steps[i];
                s.status = StepStatus::Waiting;
                s.approval = Some(ApprovalRecord {
                    message: message.clone(),
                    approvers: approvers.clone(),
                    choices: choices.clone(),
                    expires_at,
                    default: default.clone(),
                });
                self.effects.push(Effect::RequestApproval {
                    step: step.id.clone(),
                    message,
                    approvers: approvers.clone(),
                    choices: choices.clone(),
                    default: default.clone(),
                    expires_at,
                });
                if let Some(due) = expires_at {
                    self.timer(
                        due,
                        TimerKind::ApprovalTimeout {
                            step: step.id.clone(),
                        },
                    );
                }
            }
            StepKind::SubPlaybook {
                playbook,
                version,
                with,
            } => {
                let ctx = self.context(&[]);
                let inputs = match sandbox.render_json(
                    &format!("steps.{}.playbook.with", step.id),
                    with,
                    &ctx,
                ) {
                    Ok(v) => v,
                    Err(e) => return self.fail_step(i, e.to_string()),
                };
                let child = if self.st.reruns == 0 {
                    format!("{}.{}", self.st.run_id, step.id)
                } else {
                    format!("{}.{}.r{}", self.st.run_id, step.id, self.st.reruns)
                };
                let s = &mut self.st.steps[i];
                s.status = StepStatus::Waiting;
                s.input = Some(inputs.clone());
                s.child_run = Some(child.clone());
                self.effects.push(Effect::StartSubPlaybook {
                    step: step.id.clone(),
                    child_run_id: child,
                    playbook: playbook.clone(),
                    version: *version,
                    inputs,
                });
            }
            StepKind::End { status, message } => {
                let msg = match message {
                    Some(m) => {
                        let ctx = self.context(&[]);
                        match sandbox.render_string(
                            &format!("steps.{}.end.message", step.id),
                            m,
                            &ctx,
                        ) {
                            Ok(s) => Some(s),
                            Err(e) => return self.fail_step(i, e.to_string()),
                        }
                    }
                    None => None,
                };
                self.succeed_step(i, json!({"status": status, "message": msg}));
                self.stop_active_steps(Some(i));
                let error = if *status == RunStatus::Succeeded {
                    None
                } else {
                    msg.or_else(|| Some(format!("ended by step `{}`", step.id)))
                };
                self.finish_run(*status, error);
            }
        }
    }

    pub(super) fn activate(&mut self, targets: &[String]) {
        for t in targets {
            if let Some(j) = self.pb.step_index(t) {
                self.st.steps[j].activated = true;
            }
        }
    }

    pub(super) fn call_of(&self, i: usize) -> Option<&ActionCall> {
        match &self.pb.steps[i].kind {
            StepKind::Action(c) => Some(c),
            StepKind::ForEach { call, .. } => Some(call),
            _ => None,
        }
    }

    pub(super) fn start_attempt(&mut self, i: usize, item: Option<usize>, attempt: u32) {
        let Some(call) = self.call_of(i) else { return };
        let action = call.action.clone();
        let step_id = self.pb.steps[i].id.clone();
        let round = self.st.steps[i].attempt_base;
        let key = idempotency_key(&self.st.run_id, &step_id, item, round);
        let now = self.now;
        let s = &mut self.st.steps[i];
        let input = match item {
            None => {
                s.status = StepStatus::Running;
                s.attempt = attempt;
                s.input.clone().unwrap_or(Json::Null)
            }
            Some(k) => {
                let Some(it) = s.items.get_mut(k) else { return };
                it.status = StepStatus::Running;
                it.attempt = attempt;
                it.input.clone().unwrap_or(Json::Null)
            }
        };
        if s.attempts.len() < 10_000 {
            s.attempts.push(AttemptRecord {
                attempt,
                item,
                idempotency_key: key.clone(),
                started_at: now,
                finished_at: None,
                error: None,
            });
        }
        self.effects.push(Effect::ExecuteAction {
            step: step_id.clone(),
            item,
            attempt,
            idempotency_key: key,
            action,
            input,
        });
        if let Some(t) = self.pb.steps[i].timeout {
            self.timer(
                add(now, t),
                TimerKind::StepTimeout {
                    step: step_id,
                    item,
                    attempt,
                },
            );
        }
    }

    pub(super) fn fill_for_each(&mut self, i: usize) {
        let StepKind::ForEach {
            concurrency, call, ..
        } = &self.pb.steps[i].kind
        else {
            return;
        };
        if self.st.steps[i].status != StepStatus::Running {
            return;
        }
        let in_flight = self.st.steps[i]
            .items
            .iter()
            .filter(|it| matches!(it.status, StepStatus::Running | StepStatus::Retrying))
            .count();
        let mut free = concurrency.saturating_sub(in_flight);
        let pending: Vec<usize> = self.st.steps[i]
            .items
            .iter()
            .enumerate()
            .filter(|(_, it)| it.status == StepStatus::Pending)
            .map(|(k, _)| k)
            .collect();
        let mut base_ctx: Option<Json> = None;
        for k in pending {
            if free == 0 {
                break;
            }
            let base = base_ctx.get_or_insert_with(|| self.context_json());
            let item = self.st.steps[i].items[k].item.clone();
            let index = json!(k);
            let ctx = Context::from_json_with(base, &[("item", &item), ("index", &index)]);
            let name = format!("steps.{}.for_each.with", self.pb.steps[i].id);
            match garrison_expr::default_sandbox().render_json(&name, &call.with, &ctx) {
                Ok(input) => {
                    self.st.steps[i].items[k].input = Some(input);
                    let attempt = self.st.steps[i].attempt_base + 1;
                    self.start_attempt(i, Some(k), attempt);
                    free -= 1;
                }
                Err(e) => {
                    self.st.steps[i].items[k].status = StepStatus::Failed;
                    self.st.steps[i].items[k].error = Some(e.to_string());
                    self.stop_items(i);
                    return self.fail_step(i, format!("item {k}: {e}"));
                }
            }
        }
        let s = &self.st.steps[i];
        if s.items.iter().all(|it| it.status == StepStatus::Succeeded) {
            let out = Json::Array(
                s.items
                    .iter()
                    .map(|it| it.output.clone().unwrap_or(Json::Null))
                    .collect(),
            );
            self.succeed_step(i, out);
        }
    }
}
