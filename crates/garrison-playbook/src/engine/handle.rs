//! Applying one event to the run: starts, action results, timers, approvals, cancellations.

use serde_json::{json, Value as Json};

use crate::model::*;

use super::{
    add, idempotency_key, log_run, Cx, Effect, Event, LeaseStatus, LogEntry, StepStatus, TimerKind,
};

const MAX_UNDO_ATTEMPTS: u32 = 5;

impl Cx<'_> {
    pub(super) fn handle(&mut self, ev: Event) {
        match ev {
            Event::Start => {
                if self.st.status == RunStatus::Pending {
                    self.st.status = RunStatus::Running;
                }
            }
            Event::ActionFinished {
                step,
                item,
                attempt,
                result,
                logs,
            } => {
                let Some(i) = self.idx(&step) else { return };
                let (status, current) = match item {
                    None => (self.st.steps[i].status, self.st.steps[i].attempt),
                    Some(k) => match self.st.steps[i].items.get(k) {
                        Some(it) if self.st.steps[i].status == StepStatus::Running => {
                            (it.status, it.attempt)
                        }
                        _ => (StepStatus::Pending, 0),
                    },
                };
                if status != StepStatus::Running
                    || current != attempt
                    || self.st.status != RunStatus::Running
                {
                    log_run(
                        self.st,
                        self.now,
                        format!("stale result for `{step}` attempt {attempt} ignored"),
                    );
                    return;
                }
                for line in logs {
                    self.log(i, line);
                }
                let now = self.now;
                if let Some(rec) = self.st.steps[i]
                    .attempts
                    .iter_mut()
                    .rev()
                    .find(|r| r.attempt == attempt && r.item == item)
                {
                    rec.finished_at = Some(now);
                    if let Err(f) = &result {
                        rec.error = Some(f.message.clone());
                    }
                }
                match result {
                    Ok(output) => self.unit_succeeded(i, item, output),
                    Err(f) => self.unit_attempt_failed_after(
                        i,
                        item,
                        f.message,
                        f.retryable,
                        f.retry_after_ms.map(Duration),
                    ),
                }
            }
            Event::TimerFired(kind) => self.timer_fired(kind),
            Event::ApprovalDecided { step, choice, by } => {
                let Some(i) = self.idx(&step) else { return };
                let ok = self.st.steps[i].status == StepStatus::Waiting
                    && self.st.steps[i]
                        .approval
                        .as_ref()
                        .is_some_and(|a| a.choices.contains(&choice));
                if !ok {
                    log_run(
                        self.st,
                        self.now,
                        format!("decision `{choice}` by {by} for `{step}` ignored"),
                    );
                    return;
                }
                self.decide(i, choice, by, false);
            }
            Event::SubPlaybookFinished {
                step,
                status,
                output,
            } => {
                let Some(i) = self.idx(&step) else { return };
                if self.st.steps[i].status != StepStatus::Waiting
                    || self.st.steps[i].child_run.is_none()
                {
                    log_run(
                        self.st,
                        self.now,
                        format!("child result for `{step}` ignored"),
                    );
                    return;
                }
                if status == RunStatus::Succeeded {
                    self.succeed_step(i, output);
                } else {
                    // A child that could not start sends its reason as text: keep it, with the
                    // child's id, so the parent's step says what to look at.
                    let child = self.st.steps[i].child_run.clone().unwrap_or_default();
                    let ended = format!("{status:?}").to_lowercase();
                    let message = match &output {
                        Json::String(reason) => {
                            format!("child run {child} could not start: {reason}")
                        }
                        _ => format!("child run {child} ended {ended}"),
                    };
                    self.fail_step(i, message);
                }
            }
            Event::UndoFinished {
                lease,
                attempt,
                result,
            } => {
                let now = self.now;
                let Some(l) = self.st.leases.iter_mut().find(|l| l.id == lease) else {
                    log_run(
                        self.st,
                        now,
                        format!("undo result for unknown lease `{lease}` ignored"),
                    );
                    return;
                };
                if l.status != LeaseStatus::Releasing || l.undo_attempts != attempt {
                    return;
                }
                match result {
                    Ok(_) => {
                        l.status = LeaseStatus::Released;
                        l.log.push(LogEntry {
                            at: now,
                            message: format!("undone by {}", l.undo_action),
                        });
                    }
                    Err(f) => {
                        l.log.push(LogEntry {
                            at: now,
                            message: format!("undo attempt {attempt} failed: {}", f.message),
                        });
                        if l.undo_attempts >= MAX_UNDO_ATTEMPTS {
                            l.status = LeaseStatus::UndoFailed;
                        } else {
                            l.status = LeaseStatus::Active;
                            let delay = RetryPolicy {
                                max_attempts: MAX_UNDO_ATTEMPTS,
                                backoff: Duration(30_000),
                                factor: 2,
                                max_backoff: Duration(3_600_000),
                            }
                            .delay_after(attempt);
                            l.expires_at = add(now, delay);
                            let due = l.expires_at;
                            self.timer(due, TimerKind::LeaseExpiry { lease });
                        }
                    }
                }
            }
            Event::ExtendLease { lease, until, by } => {
                let now = self.now;
                let Some(l) = self.st.leases.iter_mut().find(|l| l.id == lease) else {
                    return;
                };
                if l.status != LeaseStatus::Active || until <= now {
                    l.log.push(LogEntry {
                        at: now,
                        message: format!(
                            "extension by {by} refused (lease {:?}, until {until})",
                            l.status
                        ),
                    });
                    return;
                }
                l.log.push(LogEntry {
                    at: now,
                    message: format!("extended by {by} from {} to {until}", l.expires_at),
                });
                l.expires_at = until;
                self.timer(until, TimerKind::LeaseExpiry { lease });
            }
            Event::RevokeLease { lease, by } => {
                let now = self.now;
                let Some(pos) = self.st.leases.iter().position(|l| l.id == lease) else {
                    return;
                };
                if self.st.leases[pos].status != LeaseStatus::Active {
                    return;
                }
                self.st.leases[pos].log.push(LogEntry {
                    at: now,
                    message: format!("revoked by {by}"),
                });
                self.begin_undo(pos);
            }
            Event::LeaseChecked { lease, result } => self.lease_checked(&lease, result),
            Event::Cancel { by } => {
                if self.st.status.is_terminal() {
                    return;
                }
                self.stop_active_steps(None);
                self.finish_run(RunStatus::Cancelled, Some(format!("cancelled by {by}")));
            }
            Event::Rerun => {
                if !matches!(self.st.status, RunStatus::Failed | RunStatus::Cancelled) {
                    log_run(
                        self.st,
                        self.now,
                        "rerun ignored: the run has not failed".into(),
                    );
                    return;
                }
                self.st.reruns += 1;
                for s in &mut self.st.steps {
                    if s.status != StepStatus::Succeeded
                        && !(s.status == StepStatus::Failed
                            && self
                                .pb
                                .step(&s.id)
                                .is_some_and(|p| p.on_error == OnError::Continue))
                    {
                        s.status = StepStatus::Pending;
                        s.output = None;
                        s.error = None;
                        s.input = None;
                        s.items.clear();
                        s.wait_until = None;
                        s.approval = None;
                        s.child_run = None;
                        s.finished_at = None;
                        s.attempt_base = s.attempt;
                    }
                }
                self.st.status = RunStatus::Running;
                self.st.finished_at = None;
                self.st.error = None;
                let n = self.st.reruns;
                log_run(
                    self.st,
                    self.now,
                    format!("rerun {n} from the failed steps"),
                );
            }
        }
    }

    fn timer_fired(&mut self, kind: TimerKind) {
        match kind {
            TimerKind::Retry {
                step,
                item,
                attempt,
            } => {
                let Some(i) = self.idx(&step) else { return };
                let (status, current) = self.unit_status(i, item);
                if status == StepStatus::Retrying
                    && current + 1 == attempt
                    && self.st.status == RunStatus::Running
                {
                    self.start_attempt(i, item, attempt);
                }
            }
            TimerKind::StepTimeout {
                step,
                item,
                attempt,
            } => {
                let Some(i) = self.idx(&step) else { return };
                let (status, current) = self.unit_status(i, item);
                if status == StepStatus::Running
                    && current == attempt
                    && self.st.status == RunStatus::Running
                {
                    let round = self.st.steps[i].attempt_base;
                    let key = idempotency_key(&self.st.run_id, &step, item, round);
                    self.effects.push(Effect::CancelAction {
                        step: step.clone(),
                        item,
                        idempotency_key: key,
                    });
                    let t = self.pb.steps[i].timeout.unwrap_or(Duration(0));
                    let now = self.now;
                    if let Some(rec) = self.st.steps[i]
                        .attempts
                        .iter_mut()
                        .rev()
                        .find(|r| r.attempt == attempt && r.item == item)
                    {
                        rec.finished_at = Some(now);
                        rec.error = Some(format!("timed out after {t}"));
                    }
                    // A reversible action that timed out may have been applied: hold its
                    // lease, so it is undone when the lease ends even if no attempt answers.
                    if let Some(call) = self.call_of(i) {
                        if let Some(lease) = call.lease.clone() {
                            let action = call.action.clone();
                            let input = self.unit_input(i, item);
                            self.take_lease(
                                i,
                                item,
                                &action,
                                &lease,
                                input.unwrap_or(Json::Null),
                                json!({"outcome": "unknown", "reason": format!("attempt {attempt} timed out after {t}")}),
                            );
                            self.log(i, format!("attempt {attempt} timed out: it may have been applied, so its lease is held and undone when it ends"));
                        }
                    }
                    self.unit_attempt_failed(i, item, format!("timed out after {t}"), true);
                }
            }
            TimerKind::Wait { step } => {
                let Some(i) = self.idx(&step) else { return };
                let s = &self.st.steps[i];
                if s.status != StepStatus::Waiting || s.approval.is_some() || s.child_run.is_some()
                {
                    return;
                }
                let until = s.wait_until.unwrap_or(self.now);
                if until > self.now && !self.st.dry_run {
                    self.timer(until, TimerKind::Wait { step });
                    return;
                }
                self.succeed_step(i, json!({"waited_until": until}));
            }
            TimerKind::ApprovalTimeout { step } => {
                let Some(i) = self.idx(&step) else { return };
                let s = &self.st.steps[i];
                if s.status != StepStatus::Waiting {
                    return;
                }
                let Some(default) = s.approval.as_ref().and_then(|a| a.default.clone()) else {
                    return;
                };
                self.decide(i, default, "timeout".into(), true);
            }
            TimerKind::LeaseExpiry { lease } => {
                let Some(pos) = self.st.leases.iter().position(|l| l.id == lease) else {
                    return;
                };
                let l = &self.st.leases[pos];
                if l.status != LeaseStatus::Active {
                    return;
                }
                if l.expires_at > self.now {
                    // an earlier timer, before an extension: the later one will come
                    return;
                }
                let now = self.now;
                self.st.leases[pos].log.push(LogEntry {
                    at: now,
                    message: "lease ended".into(),
                });
                self.begin_undo(pos);
            }
            TimerKind::Cancel { by } => self.queue.push_back(Event::Cancel { by }),
        }
    }

    pub(super) fn unit_status(&self, i: usize, item: Option<usize>) -> (StepStatus, u32) {
        let s = &self.st.steps[i];
        match item {
            None => (s.status, s.attempt),
            Some(k) => match s.items.get(k) {
                Some(it) if s.status == StepStatus::Running => (it.status, it.attempt),
                _ => (StepStatus::Pending, 0),
            },
        }
    }

    fn begin_undo(&mut self, pos: usize) {
        let l = &mut self.st.leases[pos];
        l.status = LeaseStatus::Releasing;
        l.undo_attempts += 1;
        let eff = Effect::ExecuteUndo {
            lease: l.id.clone(),
            action: l.undo_action.clone(),
            target: l.target.clone(),
            input: l.input.clone(),
            attempt: l.undo_attempts,
            idempotency_key: format!("{}/undo/{}", l.id, l.undo_attempts),
        };
        self.effects.push(eff);
    }

    fn decide(&mut self, i: usize, choice: String, by: String, timed_out: bool) {
        if let StepKind::Approval { routes, .. } = &self.pb.steps[i].kind {
            if let Some(targets) = routes.get(&choice) {
                for t in targets {
                    if let Some(j) = self.pb.step_index(t) {
                        self.st.steps[j].activated = true;
                    }
                }
            }
        }
        let at = self.now;
        self.log(i, format!("decision `{choice}` by {by}"));
        self.succeed_step(
            i,
            json!({"choice": choice, "by": by, "at": at, "timed_out": timed_out}),
        );
    }
}
