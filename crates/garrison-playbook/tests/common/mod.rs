//! Helpers shared by the tests.

use garrison_playbook::*;
use jiff::Timestamp;
use serde_json::{json, Value as Json};

/// The core actions plus the connector actions the example playbooks use.
pub fn registry() -> ActionRegistry {
    let mut r = ActionRegistry::with_core();
    r.register(
        ActionSpec::new("fw.block_ip")
            .param("ip", InputType::Ip, true)
            .param("comment", InputType::String, false)
            .undo("fw.unblock_ip")
            .check("fw.check_ip")
            .example(json!({"rule_id": "r-1"})),
    );
    r.register(
        ActionSpec::new("fw.unblock_ip")
            .param("ip", InputType::Ip, true)
            .param("comment", InputType::String, false),
    );
    r.register(
        ActionSpec::new("edr.isolate_host")
            .param("host", InputType::String, true)
            .undo("edr.release_host")
            .example(json!({"isolated": true})),
    );
    r.register(ActionSpec::new("edr.release_host").param("host", InputType::String, true));
    r.register(
        ActionSpec::new("chat.post_message")
            .param("channel", InputType::String, true)
            .param("text", InputType::String, true)
            .example(json!({"ts": "1"})),
    );
    r
}

pub fn pb(yaml: &str) -> Playbook {
    let (p, errors) = validate(yaml, &registry());
    assert!(errors.is_empty(), "unexpected errors: {errors:#?}");
    p.expect("playbook")
}

pub fn t0() -> Timestamp {
    "2030-01-01T00:00:00Z".parse().expect("time")
}

pub fn secs(ts: Timestamp, s: i64) -> Timestamp {
    ts.checked_add(jiff::SignedDuration::from_secs(s))
        .expect("time")
}

/// A run driven by hand: effects are collected; tests answer them.
pub struct Sim {
    pub pb: Playbook,
    pub st: RunState,
    pub now: Timestamp,
    pub effects: Vec<Effect>,
}

impl Sim {
    pub fn new(yaml: &str, inputs: Json) -> Sim {
        let pb = pb(yaml);
        let st = RunState::new("r1", &pb, 1, &inputs, json!({}), t0()).expect("inputs");
        let mut sim = Sim {
            pb,
            st,
            now: t0(),
            effects: Vec::new(),
        };
        sim.send(Event::Start);
        sim
    }

    pub fn send(&mut self, ev: Event) -> Vec<Effect> {
        let effs = advance(&self.pb, &mut self.st, self.now, ev);
        self.effects.extend(effs.clone());
        effs
    }

    pub fn at(&mut self, s: i64) {
        self.now = secs(t0(), s);
    }

    /// Pending action calls (not yet answered), removed from the list.
    pub fn take_calls(&mut self) -> Vec<(String, Option<usize>, u32, String, Json)> {
        let mut out = Vec::new();
        self.effects.retain(|e| match e {
            Effect::ExecuteAction {
                step,
                item,
                attempt,
                action,
                input,
                ..
            } => {
                out.push((step.clone(), *item, *attempt, action.clone(), input.clone()));
                false
            }
            _ => true,
        });
        out
    }

    pub fn ok(
        &mut self,
        step: &str,
        item: Option<usize>,
        attempt: u32,
        output: Json,
    ) -> Vec<Effect> {
        self.send(Event::ActionFinished {
            step: step.into(),
            item,
            attempt,
            result: Ok(output),
            logs: vec![],
        })
    }

    pub fn fail(&mut self, step: &str, attempt: u32, retryable: bool) -> Vec<Effect> {
        let f = if retryable {
            ActionFailure::retryable("boom")
        } else {
            ActionFailure::permanent("boom")
        };
        self.send(Event::ActionFinished {
            step: step.into(),
            item: None,
            attempt,
            result: Err(f),
            logs: vec![],
        })
    }

    /// Answers every pending call with `core.set` semantics (output = input) until none is left.
    pub fn answer_all(&mut self) {
        for _ in 0..1000 {
            let calls = self.take_calls();
            if calls.is_empty() {
                return;
            }
            for (step, item, attempt, _, input) in calls {
                self.ok(&step, item, attempt, input);
            }
        }
    }

    pub fn status(&self, step: &str) -> StepStatus {
        self.st.step(step).expect("step").status
    }

    pub fn timers(&self) -> Vec<Timer> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::ScheduleTimer(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }
}
