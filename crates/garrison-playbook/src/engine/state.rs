//! A run's stored state: the run, its steps and items, attempts, approvals and leases.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::model::*;

use super::{idempotency_key, Effect};

/// Where a step (or a `for_each` item) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// An attempt is in flight (or a parallel step's members run).
    Running,
    /// Waiting for a retry timer.
    Retrying,
    /// Waiting for a timer, a decision or a child run.
    Waiting,
    /// Completed.
    Succeeded,
    /// Failed after its retries.
    Failed,
    /// Not run: its branch was not taken, a guard was false or a dependency did not complete.
    Skipped,
    /// Stopped by a cancellation, an `end` step or a parallel `any` join.
    Cancelled,
}

impl StepStatus {
    /// No more change expected (until a rerun).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Cancelled
        )
    }
}

/// One attempt of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptRecord {
    /// Attempt number (1-based, keeps counting across reruns).
    pub attempt: u32,
    /// `for_each` item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub item: Option<usize>,
    /// The key passed to the action.
    pub idempotency_key: String,
    /// When it was sent.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub started_at: Timestamp,
    /// When its result came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub finished_at: Option<Timestamp>,
    /// Its error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub error: Option<String>,
}

/// A line of a step's (or the run's) log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    /// When.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub at: Timestamp,
    /// What.
    pub message: String,
}

/// One item of a `for_each` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemState {
    /// Status.
    pub status: StepStatus,
    /// The item.
    pub item: Json,
    /// Rendered input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub input: Option<Json>,
    /// Output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub output: Option<Json>,
    /// Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub error: Option<String>,
    /// Current attempt.
    pub attempt: u32,
}

/// An approval waiting for (or given) a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalRecord {
    /// Rendered message.
    pub message: String,
    /// Who may decide.
    pub approvers: Approvers,
    /// Choices.
    pub choices: Vec<String>,
    /// When the default is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub expires_at: Option<Timestamp>,
    /// The default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub default: Option<String>,
}

/// The stored state of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepState {
    /// Step id.
    pub id: String,
    /// Status.
    pub status: StepStatus,
    /// Rendered input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub input: Option<Json>,
    /// Output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub output: Option<Json>,
    /// Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub error: Option<String>,
    /// Current attempt number (0 before the first).
    pub attempt: u32,
    /// Attempt number at which the current round started (reruns keep counting).
    pub attempt_base: u32,
    /// Every attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptRecord>,
    /// First start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub started_at: Option<Timestamp>,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub finished_at: Option<Timestamp>,
    /// Log lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogEntry>,
    /// A router (condition, branch, approval, on_error goto) chose this step.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub activated: bool,
    /// `for_each` items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemState>,
    /// A wait's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub wait_until: Option<Timestamp>,
    /// An approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub approval: Option<ApprovalRecord>,
    /// A child run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub child_run: Option<String>,
}

impl StepState {
    fn new(id: &str) -> Self {
        StepState {
            id: id.to_owned(),
            status: StepStatus::Pending,
            input: None,
            output: None,
            error: None,
            attempt: 0,
            attempt_base: 0,
            attempts: Vec::new(),
            started_at: None,
            finished_at: None,
            logs: Vec::new(),
            activated: false,
            items: Vec::new(),
            wait_until: None,
            approval: None,
            child_run: None,
        }
    }
}

/// Where a lease stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LeaseStatus {
    /// The action holds; its undo is due at `expires_at`.
    Active,
    /// The undo is in flight.
    Releasing,
    /// Undone.
    Released,
    /// The undo failed every attempt: needs a person.
    UndoFailed,
}

/// The last reconciliation check of a lease's target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseCheck {
    /// When the result came.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub at: Timestamp,
    /// The action still holds on the target (`false`: drift); `None` when the check itself
    /// failed (unreachable, bad answer).
    pub in_place: Option<bool>,
    /// What the check saw, or why it failed.
    pub detail: String,
}

/// What a reversible action did, to which target, and when it is undone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseRecord {
    /// Lease id (`RUN/STEP` or `RUN/STEP[i]`).
    pub id: String,
    /// Step.
    pub step: String,
    /// `for_each` item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub item: Option<usize>,
    /// The action taken.
    pub action: String,
    /// The action that undoes it.
    pub undo_action: String,
    /// What it was done to.
    pub target: Json,
    /// The action's input (also the undo's input).
    pub input: Json,
    /// The action's output.
    pub output: Json,
    /// When the action completed.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub acquired_at: Timestamp,
    /// When the undo is due.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub expires_at: Timestamp,
    /// Status.
    pub status: LeaseStatus,
    /// Undo attempts so far.
    pub undo_attempts: u32,
    /// History: extensions, revocations, undo results, drift.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<LogEntry>,
    /// The action that re-checks the target (reconciliation), if the action declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub check_action: Option<String>,
    /// The last check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub last_check: Option<LeaseCheck>,
    /// Since when a check has found the target not in place (cleared when a later check finds
    /// it in place again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub drift_since: Option<Timestamp>,
}

/// The parent of a child run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParentRef {
    /// Parent run.
    pub run_id: String,
    /// Its step.
    pub step: String,
}

/// The whole stored state of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunState {
    /// Run id.
    pub run_id: String,
    /// Playbook name.
    pub playbook: String,
    /// Pinned playbook version.
    pub version: u32,
    /// Status.
    pub status: RunStatus,
    /// Resolved inputs.
    pub inputs: Json,
    /// What started it (alert, incident, webhook body, user...).
    pub trigger: Json,
    /// Simulated: actions resolved from example outputs, no I/O.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub dry_run: bool,
    /// Creation.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created_at: Timestamp,
    /// Last change.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub updated_at: Timestamp,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub finished_at: Option<Timestamp>,
    /// Why it failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub error: Option<String>,
    /// Steps, in the playbook's order.
    pub steps: Vec<StepState>,
    /// Reversible actions held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<LeaseRecord>,
    /// Reruns from a failure so far.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub reruns: u32,
    /// Run-level log (ignored events, cancellations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogEntry>,
    /// Parent when this is a child run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub parent: Option<ParentRef>,
}

/// Why a new run could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid inputs: {}", .0.join("; "))]
pub struct InputErrors(pub Vec<String>);

impl RunState {
    /// A new run of a playbook version, with the caller's inputs checked and defaulted. Send
    /// [`Event::Start`](super::Event::Start) to begin.
    pub fn new(
        run_id: impl Into<String>,
        playbook: &Playbook,
        version: u32,
        inputs: &Json,
        trigger: Json,
        now: Timestamp,
    ) -> Result<Self, InputErrors> {
        let inputs = playbook.resolve_inputs(inputs).map_err(InputErrors)?;
        Ok(RunState {
            run_id: run_id.into(),
            playbook: playbook.name.clone(),
            version,
            status: RunStatus::Pending,
            inputs,
            trigger,
            dry_run: false,
            created_at: now,
            updated_at: now,
            finished_at: None,
            error: None,
            steps: playbook
                .steps
                .iter()
                .map(|s| StepState::new(&s.id))
                .collect(),
            leases: Vec::new(),
            reruns: 0,
            logs: Vec::new(),
            parent: None,
        })
    }

    /// A run that a trigger could not start (its inputs did not map or check): failed from
    /// the start with the reason, every step skipped, so it is listed like any failed run.
    pub fn not_started(
        run_id: impl Into<String>,
        playbook: &Playbook,
        version: u32,
        trigger: Json,
        reason: String,
        now: Timestamp,
    ) -> Self {
        RunState {
            run_id: run_id.into(),
            playbook: playbook.name.clone(),
            version,
            status: RunStatus::Failed,
            inputs: Json::Object(Default::default()),
            trigger,
            dry_run: false,
            created_at: now,
            updated_at: now,
            finished_at: Some(now),
            error: Some(reason),
            steps: playbook
                .steps
                .iter()
                .map(|s| {
                    let mut st = StepState::new(&s.id);
                    st.status = StepStatus::Skipped;
                    st
                })
                .collect(),
            leases: Vec::new(),
            reruns: 0,
            logs: Vec::new(),
            parent: None,
        }
    }

    /// A step's state by id.
    pub fn step(&self, id: &str) -> Option<&StepState> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// A lease by id.
    pub fn lease(&self, id: &str) -> Option<&LeaseRecord> {
        self.leases.iter().find(|l| l.id == id)
    }

    /// Finished and nothing held: no undo will ever be due.
    pub fn is_quiescent(&self) -> bool {
        self.status.is_terminal()
            && self
                .leases
                .iter()
                .all(|l| matches!(l.status, LeaseStatus::Released | LeaseStatus::UndoFailed))
    }

    /// The actions in flight according to the state: what a worker resuming this run must
    /// (re)send, with the same idempotency keys as the first time.
    pub fn in_flight(&self, playbook: &Playbook) -> Vec<Effect> {
        let mut out = Vec::new();
        for (i, st) in self.steps.iter().enumerate() {
            let Some(step) = playbook.steps.get(i) else {
                continue;
            };
            let call = match &step.kind {
                StepKind::Action(c) => c,
                StepKind::ForEach { call, .. } => call,
                _ => continue,
            };
            if st.status == StepStatus::Running && st.items.is_empty() && st.attempt > 0 {
                if let Some(input) = &st.input {
                    out.push(Effect::ExecuteAction {
                        step: st.id.clone(),
                        item: None,
                        attempt: st.attempt,
                        idempotency_key: idempotency_key(
                            &self.run_id,
                            &st.id,
                            None,
                            st.attempt_base,
                        ),
                        action: call.action.clone(),
                        input: input.clone(),
                    });
                }
            }
            if st.status == StepStatus::Running {
                for (k, it) in st.items.iter().enumerate() {
                    if it.status == StepStatus::Running {
                        out.push(Effect::ExecuteAction {
                            step: st.id.clone(),
                            item: Some(k),
                            attempt: it.attempt,
                            idempotency_key: idempotency_key(
                                &self.run_id,
                                &st.id,
                                Some(k),
                                st.attempt_base,
                            ),
                            action: call.action.clone(),
                            input: it.input.clone().unwrap_or(Json::Null),
                        });
                    }
                }
            }
        }
        for l in &self.leases {
            if l.status == LeaseStatus::Releasing {
                out.push(Effect::ExecuteUndo {
                    lease: l.id.clone(),
                    action: l.undo_action.clone(),
                    target: l.target.clone(),
                    input: l.input.clone(),
                    attempt: l.undo_attempts,
                    idempotency_key: format!("{}/undo/{}", l.id, l.undo_attempts),
                });
            }
        }
        out
    }
}
