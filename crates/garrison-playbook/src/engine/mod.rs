//! The durable executor as a pure state machine: [`advance`] takes a run's stored state, the time
//! and one event, updates the state and returns the [`Effect`]s to carry out (call an action,
//! store a timer, ask for an approval, start a child run). It does no I/O, so any worker can
//! resume any run from its stored state.

use std::collections::VecDeque;

use garrison_expr::Context;
use jiff::Timestamp;
use serde_json::{json, Value as Json};

use crate::model::*;

mod handle;
mod messages;
mod outcomes;
mod progress;
mod simulate;
mod start;
mod state;

pub use messages::{
    cancel_timer_id, idempotency_key, ActionFailure, Effect, Event, Timer, TimerKind,
};
pub use simulate::dry_run;
pub use state::{
    ApprovalRecord, AttemptRecord, InputErrors, ItemState, LeaseCheck, LeaseRecord, LeaseStatus,
    LogEntry, ParentRef, RunState, StepState, StepStatus,
};

const MAX_EVENTS_PER_ADVANCE: usize = 100_000;

/// Applies one event to a run and returns what to do. Never panics on any state or event: an
/// event that does not apply (stale attempt, unknown step) is noted in the run's log and ignored.
pub fn advance(
    playbook: &Playbook,
    state: &mut RunState,
    now: Timestamp,
    event: Event,
) -> Vec<Effect> {
    if state.steps.len() != playbook.steps.len()
        || state
            .steps
            .iter()
            .zip(&playbook.steps)
            .any(|(a, b)| a.id != b.id)
    {
        log_run(
            state,
            now,
            "state does not match the playbook version: event ignored".into(),
        );
        return Vec::new();
    }
    let mut cx = Cx {
        pb: playbook,
        st: state,
        now,
        effects: Vec::new(),
        queue: VecDeque::from([event]),
    };
    let mut handled = 0usize;
    while let Some(ev) = cx.queue.pop_front() {
        handled += 1;
        if handled > MAX_EVENTS_PER_ADVANCE {
            cx.fail_run("too many events in one advance".into());
            break;
        }
        let before = cx.effects.len();
        cx.handle(ev);
        cx.progress();
        if cx.st.dry_run {
            cx.simulate(before);
        }
    }
    cx.st.updated_at = now;
    cx.effects
}

fn log_run(state: &mut RunState, now: Timestamp, message: String) {
    if state.logs.len() < 1000 {
        state.logs.push(LogEntry { at: now, message });
    }
}

fn add(now: Timestamp, d: Duration) -> Timestamp {
    now.checked_add(d.to_signed()).unwrap_or(Timestamp::MAX)
}

struct Cx<'a> {
    pb: &'a Playbook,
    st: &'a mut RunState,
    now: Timestamp,
    effects: Vec<Effect>,
    queue: VecDeque<Event>,
}

impl Cx<'_> {
    fn log(&mut self, i: usize, message: String) {
        let now = self.now;
        let logs = &mut self.st.steps[i].logs;
        if logs.len() < 1000 {
            logs.push(LogEntry { at: now, message });
        }
    }

    fn idx(&mut self, step: &str) -> Option<usize> {
        let i = self.pb.step_index(step);
        if i.is_none() {
            log_run(
                self.st,
                self.now,
                format!("event for unknown step `{step}` ignored"),
            );
        }
        i
    }

    fn timer(&mut self, due: Timestamp, kind: TimerKind) {
        let id = match &kind {
            TimerKind::Retry {
                step,
                item,
                attempt,
            } => format!(
                "{}/retry/{}/{}/{attempt}",
                self.st.run_id,
                step,
                item.map(|i| i.to_string()).unwrap_or_default()
            ),
            TimerKind::StepTimeout {
                step,
                item,
                attempt,
            } => format!(
                "{}/timeout/{}/{}/{attempt}",
                self.st.run_id,
                step,
                item.map(|i| i.to_string()).unwrap_or_default()
            ),
            TimerKind::Wait { step } => {
                format!("{}/wait/{step}/{}", self.st.run_id, self.st.reruns)
            }
            TimerKind::ApprovalTimeout { step } => {
                format!("{}/approval/{step}/{}", self.st.run_id, self.st.reruns)
            }
            TimerKind::LeaseExpiry { lease } => format!("lease/{lease}/{}", due.as_millisecond()),
            TimerKind::Cancel { .. } => cancel_timer_id(&self.st.run_id),
        };
        self.effects.push(Effect::ScheduleTimer(Timer {
            id,
            run_id: self.st.run_id.clone(),
            due,
            kind,
        }));
    }

    // ---- context -----------------------------------------------------------------------

    fn context_json(&self) -> Json {
        let mut steps = serde_json::Map::new();
        for s in &self.st.steps {
            if s.status == StepStatus::Pending {
                continue;
            }
            steps.insert(
                s.id.clone(),
                json!({
                    "status": s.status,
                    "output": s.output.clone().unwrap_or(Json::Null),
                    "error": s.error,
                    "input": s.input.clone().unwrap_or(Json::Null),
                }),
            );
        }
        json!({
            "inputs": self.st.inputs,
            "trigger": self.st.trigger,
            "run": {"id": self.st.run_id, "playbook": self.st.playbook, "version": self.st.version, "dry_run": self.st.dry_run},
            "steps": steps,
        })
    }

    fn context(&self, extra: &[(&str, &Json)]) -> Context {
        Context::from_json_with(&self.context_json(), extra)
    }
}
