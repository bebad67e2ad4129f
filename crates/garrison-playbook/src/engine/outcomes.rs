//! Outcomes: success and failure of units and steps, leases, stopping steps and ending the run.

use serde_json::{json, Value as Json};

use crate::model::*;

use super::{
    add, idempotency_key, log_run, ActionFailure, Cx, Effect, LeaseCheck, LeaseRecord, LeaseStatus,
    LogEntry, StepStatus, TimerKind,
};

impl Cx<'_> {
    /// The rendered input of a step's call, or of one of its `for_each` items.
    pub(super) fn unit_input(&self, i: usize, item: Option<usize>) -> Option<Json> {
        match item {
            None => self.st.steps[i].input.clone(),
            Some(k) => self.st.steps[i]
                .items
                .get(k)
                .and_then(|it| it.input.clone()),
        }
    }

    pub(super) fn unit_succeeded(&mut self, i: usize, item: Option<usize>, output: Json) {
        let lease_input = self.unit_input(i, item);
        if let Some(call) = self.call_of(i) {
            if let Some(lease) = call.lease.clone() {
                self.take_lease(
                    i,
                    item,
                    &call.action.clone(),
                    &lease,
                    lease_input.unwrap_or(Json::Null),
                    output.clone(),
                );
            }
        }
        match item {
            None => self.succeed_step(i, output),
            Some(k) => {
                if let Some(it) = self.st.steps[i].items.get_mut(k) {
                    it.status = StepStatus::Succeeded;
                    it.output = Some(output);
                }
                self.fill_for_each(i);
            }
        }
    }

    pub(super) fn lease_checked(&mut self, lease: &str, result: Result<Json, ActionFailure>) {
        let now = self.now;
        let Some(pos) = self.st.leases.iter().position(|l| l.id == lease) else {
            log_run(
                self.st,
                now,
                format!("check result for unknown lease `{lease}` ignored"),
            );
            return;
        };
        let l = &mut self.st.leases[pos];
        if l.status != LeaseStatus::Active {
            // Released (or being released) since the check was sent: nothing to reconcile.
            return;
        }
        let (in_place, detail) = match &result {
            Ok(output) => match output.get("in_place").and_then(Json::as_bool) {
                Some(b) => {
                    let detail = output
                        .get("detail")
                        .and_then(Json::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| if b { "in place" } else { "not in place" }.into());
                    (Some(b), detail)
                }
                None => {
                    let mut text = output.to_string();
                    if text.len() > 200 {
                        let cut = (0..=200)
                            .rev()
                            .find(|&i| text.is_char_boundary(i))
                            .unwrap_or(0);
                        text.truncate(cut);
                    }
                    (
                        None,
                        format!("the check's output has no boolean `in_place`: {text}"),
                    )
                }
            },
            Err(f) => (None, format!("check failed: {}", f.message)),
        };
        l.last_check = Some(LeaseCheck {
            at: now,
            in_place,
            detail: detail.clone(),
        });
        let target = match &l.target {
            Json::String(t) => t.clone(),
            other => other.to_string(),
        };
        let message = match in_place {
            Some(false) if l.drift_since.is_none() => {
                l.drift_since = Some(now);
                Some(format!(
                    "drift: {} on {target} is no longer in place ({detail})",
                    l.action
                ))
            }
            Some(true) if l.drift_since.is_some() => {
                l.drift_since = None;
                Some(format!("{} on {target} is in place again", l.action))
            }
            _ => None,
        };
        if let Some(message) = message {
            if l.log.len() < 1000 {
                l.log.push(LogEntry {
                    at: now,
                    message: message.clone(),
                });
            }
            log_run(self.st, now, format!("lease {lease}: {message}"));
        }
    }

    pub(super) fn take_lease(
        &mut self,
        i: usize,
        item: Option<usize>,
        action: &str,
        spec: &LeaseSpec,
        input: Json,
        output: Json,
    ) {
        let step_id = self.pb.steps[i].id.clone();
        let mut extra: Vec<(&str, &Json)> = Vec::new();
        let item_value = item
            .and_then(|k| self.st.steps[i].items.get(k))
            .map(|it| it.item.clone());
        let index_value = item.map(|k| json!(k));
        if let (Some(v), Some(ix)) = (&item_value, &index_value) {
            extra.push(("item", v));
            extra.push(("index", ix));
        }
        let target = if garrison_expr::is_template(&spec.target) {
            let ctx = self.context(&extra);
            garrison_expr::default_sandbox()
                .render(&format!("steps.{step_id}.lease.target"), &spec.target, &ctx)
                .unwrap_or_else(|e| json!({"error": e.to_string()}))
        } else {
            Json::String(spec.target.clone())
        };
        let id = match item {
            Some(k) => format!("{}/{step_id}[{k}]", self.st.run_id),
            None => format!("{}/{step_id}", self.st.run_id),
        };
        if let Some(held) = self.st.leases.iter_mut().find(|l| l.id == id) {
            // Taken when an attempt timed out (outcome unknown): a later attempt that answered
            // says what was done.
            if held.status == LeaseStatus::Active {
                held.output = output;
            }
            return;
        }
        let expires_at = add(self.now, spec.duration);
        self.st.leases.push(LeaseRecord {
            id: id.clone(),
            step: step_id,
            item,
            action: action.to_owned(),
            undo_action: spec.undo.clone(),
            target,
            input,
            output,
            acquired_at: self.now,
            expires_at,
            status: LeaseStatus::Active,
            undo_attempts: 0,
            log: Vec::new(),
            check_action: spec.check.clone(),
            last_check: None,
            drift_since: None,
        });
        if !self.st.dry_run {
            self.timer(expires_at, TimerKind::LeaseExpiry { lease: id });
        }
    }

    pub(super) fn unit_attempt_failed(
        &mut self,
        i: usize,
        item: Option<usize>,
        message: String,
        retryable: bool,
    ) {
        self.unit_attempt_failed_after(i, item, message, retryable, None)
    }

    /// Like [`Self::unit_attempt_failed`], the next attempt no sooner than `at_least` (the
    /// target's `Retry-After`, at most a day).
    pub(super) fn unit_attempt_failed_after(
        &mut self,
        i: usize,
        item: Option<usize>,
        message: String,
        retryable: bool,
        at_least: Option<Duration>,
    ) {
        let policy = self.pb.steps[i].retry;
        let base = self.st.steps[i].attempt_base;
        let (_, attempt) = self.unit_status(i, item);
        let used = attempt.saturating_sub(base);
        let label = match item {
            Some(k) => format!("item {k} attempt {attempt}"),
            None => format!("attempt {attempt}"),
        };
        if retryable && used < policy.max_attempts {
            let delay = policy.delay_after(used);
            let delay = match at_least {
                Some(wait) if wait.0 > delay.0 => Duration(wait.0.min(86_400_000)),
                _ => delay,
            };
            self.log(i, format!("{label} failed: {message}; retrying in {delay}"));
            match item {
                None => self.st.steps[i].status = StepStatus::Retrying,
                Some(k) => {
                    if let Some(it) = self.st.steps[i].items.get_mut(k) {
                        it.status = StepStatus::Retrying;
                    }
                }
            }
            let step = self.pb.steps[i].id.clone();
            self.timer(
                add(self.now, delay),
                TimerKind::Retry {
                    step,
                    item,
                    attempt: attempt + 1,
                },
            );
            return;
        }
        self.log(i, format!("{label} failed: {message}"));
        match item {
            None => self.fail_step(i, message),
            Some(k) => {
                if let Some(it) = self.st.steps[i].items.get_mut(k) {
                    it.status = StepStatus::Failed;
                    it.error = Some(message.clone());
                }
                self.stop_items(i);
                self.fail_step(i, format!("item {k}: {message}"));
            }
        }
    }

    pub(super) fn stop_items(&mut self, i: usize) {
        let step = self.pb.steps[i].id.clone();
        let run = self.st.run_id.clone();
        let round = self.st.steps[i].attempt_base;
        let mut cancels = Vec::new();
        for (k, it) in self.st.steps[i].items.iter_mut().enumerate() {
            match it.status {
                StepStatus::Running => {
                    cancels.push(Effect::CancelAction {
                        step: step.clone(),
                        item: Some(k),
                        idempotency_key: idempotency_key(&run, &step, Some(k), round),
                    });
                    it.status = StepStatus::Cancelled;
                }
                StepStatus::Retrying | StepStatus::Pending => it.status = StepStatus::Cancelled,
                _ => {}
            }
        }
        self.effects.extend(cancels);
    }

    pub(super) fn succeed_step(&mut self, i: usize, output: Json) {
        let s = &mut self.st.steps[i];
        s.status = StepStatus::Succeeded;
        s.output = Some(output);
        s.error = None;
        s.finished_at = Some(self.now);
    }

    pub(super) fn fail_step(&mut self, i: usize, message: String) {
        {
            let s = &mut self.st.steps[i];
            s.status = StepStatus::Failed;
            s.error = Some(message.clone());
            s.finished_at = Some(self.now);
        }
        match self.pb.steps[i].on_error.clone() {
            OnError::Fail => {
                let id = self.pb.steps[i].id.clone();
                self.stop_active_steps(Some(i));
                self.finish_run(
                    RunStatus::Failed,
                    Some(format!("step `{id}` failed: {message}")),
                );
            }
            OnError::Continue => self.log(i, "failure ignored (on_error: continue)".into()),
            OnError::Goto(t) => {
                self.log(i, format!("going to `{t}` (on_error)"));
                self.activate(std::slice::from_ref(&t));
            }
        }
    }

    /// Stops one step (cancellation, `any` join): in-flight work gets a cancel effect.
    pub(super) fn stop_step(&mut self, j: usize) {
        let s = &self.st.steps[j];
        let step = s.id.clone();
        match (&self.pb.steps[j].kind, s.status) {
            (StepKind::Action(_), StepStatus::Running) => {
                let key = idempotency_key(&self.st.run_id, &step, None, s.attempt_base);
                self.effects.push(Effect::CancelAction {
                    step: step.clone(),
                    item: None,
                    idempotency_key: key,
                });
            }
            (StepKind::ForEach { .. }, _) => self.stop_items(j),
            (StepKind::SubPlaybook { .. }, StepStatus::Waiting) => {
                if let Some(child) = s.child_run.clone() {
                    self.effects.push(Effect::CancelSubPlaybook {
                        child_run_id: child,
                    });
                }
            }
            _ => {}
        }
        let s = &mut self.st.steps[j];
        s.status = StepStatus::Cancelled;
        s.finished_at = Some(self.now);
    }

    pub(super) fn stop_active_steps(&mut self, except: Option<usize>) {
        for j in 0..self.st.steps.len() {
            if Some(j) == except {
                continue;
            }
            let status = self.st.steps[j].status;
            if status == StepStatus::Pending {
                let s = &mut self.st.steps[j];
                s.status = StepStatus::Cancelled;
            } else if !status.is_terminal() {
                self.stop_step(j);
            }
        }
    }

    pub(super) fn finish_run(&mut self, status: RunStatus, error: Option<String>) {
        if self.st.status.is_terminal() {
            return;
        }
        self.st.status = status;
        self.st.error = error;
        self.st.finished_at = Some(self.now);
        self.effects.push(Effect::Complete { status });
    }

    pub(super) fn fail_run(&mut self, message: String) {
        self.stop_active_steps(None);
        self.finish_run(RunStatus::Failed, Some(message));
    }
}
