//! The durable executor as a pure state machine: [`advance`] takes a run's stored state, the time
//! and one event, updates the state and returns the [`Effect`]s to carry out (call an action,
//! store a timer, ask for an approval, start a child run). It does no I/O, so any worker can
//! resume any run from its stored state.

use std::collections::VecDeque;

use garrison_expr::Context;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::model::*;

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
    /// [`Event::Start`] to begin.
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
                        idempotency_key: idempotency_key(&self.run_id, &st.id, None, st.attempt),
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
                                it.attempt,
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

/// The key passed to an action attempt: the same for a resend of the same attempt.
pub fn idempotency_key(run_id: &str, step: &str, item: Option<usize>, attempt: u32) -> String {
    match item {
        Some(i) => format!("{run_id}/{step}[{i}]/{attempt}"),
        None => format!("{run_id}/{step}/{attempt}"),
    }
}

/// Why an action attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ActionFailure {
    /// What went wrong.
    pub message: String,
    /// Worth another attempt (network, 5xx) or not (bad input, 4xx).
    pub retryable: bool,
}

impl ActionFailure {
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> Self {
        ActionFailure {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure not worth retrying.
    pub fn permanent(message: impl Into<String>) -> Self {
        ActionFailure {
            message: message.into(),
            retryable: false,
        }
    }
}

/// What a stored timer does when it is due.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TimerKind {
    /// Send the next attempt.
    Retry {
        /// Step.
        step: String,
        /// Item.
        item: Option<usize>,
        /// The attempt to send.
        attempt: u32,
    },
    /// An attempt took too long.
    StepTimeout {
        /// Step.
        step: String,
        /// Item.
        item: Option<usize>,
        /// The attempt.
        attempt: u32,
    },
    /// A wait step (or `core.sleep`) is over.
    Wait {
        /// Step.
        step: String,
    },
    /// An approval's time is up: take the default.
    ApprovalTimeout {
        /// Step.
        step: String,
    },
    /// A lease ends: undo the action.
    LeaseExpiry {
        /// Lease id.
        lease: String,
    },
    /// A cancellation asked for while the run was busy (an action call in flight): stored as
    /// a row due at once, applied as soon as the run is free (also after a restart).
    Cancel {
        /// Who asked.
        by: String,
    },
}

/// The id of the stored cancellation request of a run ([`TimerKind::Cancel`]).
pub fn cancel_timer_id(run_id: &str) -> String {
    format!("{run_id}/cancel")
}

/// A timer row: due time, what it does, and for which run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timer {
    /// Unique id (deterministic, so storing it twice is harmless).
    pub id: String,
    /// Run.
    pub run_id: String,
    /// When.
    pub due: Timestamp,
    /// What.
    pub kind: TimerKind,
}

/// Something that happened to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// Begin.
    Start,
    /// An action attempt ended.
    ActionFinished {
        /// Step.
        step: String,
        /// Item.
        item: Option<usize>,
        /// Attempt.
        attempt: u32,
        /// Output or failure.
        result: Result<Json, ActionFailure>,
        /// Lines for the step's log.
        #[serde(default)]
        logs: Vec<String>,
    },
    /// A timer is due.
    TimerFired(TimerKind),
    /// Someone decided an approval.
    ApprovalDecided {
        /// Step.
        step: String,
        /// The choice.
        choice: String,
        /// Who.
        by: String,
    },
    /// A child run ended.
    SubPlaybookFinished {
        /// Step.
        step: String,
        /// Its status.
        status: RunStatus,
        /// Its output (the child's step outputs).
        output: Json,
    },
    /// An undo ended.
    UndoFinished {
        /// Lease.
        lease: String,
        /// Undo attempt.
        attempt: u32,
        /// Result.
        result: Result<Json, ActionFailure>,
    },
    /// A responder extends a lease.
    ExtendLease {
        /// Lease.
        lease: String,
        /// New end.
        until: Timestamp,
        /// Who.
        by: String,
    },
    /// A responder ends a lease now (the undo runs at once).
    RevokeLease {
        /// Lease.
        lease: String,
        /// Who.
        by: String,
    },
    /// A reconciliation check of an active lease's target ended; its output's `in_place`
    /// (bool) says whether the action still holds. Finding it gone records drift.
    LeaseChecked {
        /// Lease.
        lease: String,
        /// The check action's output, or its failure.
        result: Result<Json, ActionFailure>,
    },
    /// Stop the run.
    Cancel {
        /// Who.
        by: String,
    },
    /// Run again from the failed steps, with the same inputs; completed steps are kept.
    Rerun,
}

/// Something to carry out for a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "effect")]
pub enum Effect {
    /// Call an action; answer with [`Event::ActionFinished`].
    ExecuteAction {
        /// Step.
        step: String,
        /// Item.
        item: Option<usize>,
        /// Attempt.
        attempt: u32,
        /// Pass to the action so a resend is not done twice.
        idempotency_key: String,
        /// Action.
        action: String,
        /// Input.
        input: Json,
    },
    /// Best effort: an attempt is no longer wanted (timeout, cancellation).
    CancelAction {
        /// Step.
        step: String,
        /// Item.
        item: Option<usize>,
        /// Its key.
        idempotency_key: String,
    },
    /// Store a timer row.
    ScheduleTimer(Timer),
    /// Ask people to decide; answer with [`Event::ApprovalDecided`].
    RequestApproval {
        /// Step.
        step: String,
        /// Message.
        message: String,
        /// Who.
        approvers: Approvers,
        /// Choices.
        choices: Vec<String>,
        /// Default.
        default: Option<String>,
        /// Timeout.
        expires_at: Option<Timestamp>,
    },
    /// Start a child run; answer with [`Event::SubPlaybookFinished`].
    StartSubPlaybook {
        /// Step.
        step: String,
        /// Deterministic child run id.
        child_run_id: String,
        /// Playbook.
        playbook: String,
        /// Pinned version, or latest.
        version: Option<u32>,
        /// Inputs.
        inputs: Json,
    },
    /// Cancel a child run.
    CancelSubPlaybook {
        /// Child run.
        child_run_id: String,
    },
    /// Call an undo action; answer with [`Event::UndoFinished`].
    ExecuteUndo {
        /// Lease.
        lease: String,
        /// Undo action.
        action: String,
        /// Target.
        target: Json,
        /// Input (the original action's).
        input: Json,
        /// Undo attempt.
        attempt: u32,
        /// Key.
        idempotency_key: String,
    },
    /// The run ended.
    Complete {
        /// Status.
        status: RunStatus,
    },
}

const MAX_EVENTS_PER_ADVANCE: usize = 100_000;
const MAX_UNDO_ATTEMPTS: u32 = 5;

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

enum Readiness {
    Ready,
    Skip(&'static str),
    Wait,
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

    // ---- events ------------------------------------------------------------------------

    fn handle(&mut self, ev: Event) {
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
                    Err(f) => self.unit_attempt_failed(i, item, f.message, f.retryable),
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
                    self.fail_step(i, format!("child run ended {status:?}").to_lowercase());
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
                    let key = idempotency_key(&self.st.run_id, &step, item, attempt);
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

    fn unit_status(&self, i: usize, item: Option<usize>) -> (StepStatus, u32) {
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

    // ---- progress ----------------------------------------------------------------------

    fn progress(&mut self) {
        let mut rounds = 0;
        loop {
            rounds += 1;
            if self.st.status != RunStatus::Running || rounds > 10_000 {
                return;
            }
            let mut changed = false;
            for i in 0..self.pb.steps.len() {
                if self.st.status != RunStatus::Running {
                    return;
                }
                match self.st.steps[i].status {
                    StepStatus::Pending => match self.readiness(i) {
                        Readiness::Ready => {
                            self.start_step(i);
                            changed = true;
                        }
                        Readiness::Skip(why) => {
                            self.skip(i, why);
                            changed = true;
                        }
                        Readiness::Wait => {}
                    },
                    StepStatus::Running => {
                        if let StepKind::Parallel { steps, join } = &self.pb.steps[i].kind {
                            if self.check_parallel(i, steps, *join) {
                                changed = true;
                            }
                        }
                    }
                    _ => {}
                }
            }
            if !changed {
                break;
            }
        }
        if self.st.status == RunStatus::Running
            && self.st.steps.iter().all(|s| s.status.is_terminal())
        {
            self.finish_run(RunStatus::Succeeded, None);
        }
    }

    fn satisfied(&self, j: usize) -> bool {
        match self.st.steps[j].status {
            StepStatus::Succeeded => true,
            StepStatus::Failed => self.pb.steps[j].on_error == OnError::Continue,
            _ => false,
        }
    }

    fn readiness(&self, i: usize) -> Readiness {
        let g = &self.pb.graph;
        if let Some(p) = g.parent[i] {
            match self.st.steps[p].status {
                StepStatus::Pending => return Readiness::Wait,
                StepStatus::Running => {}
                _ => return Readiness::Skip("its parallel step ended"),
            }
        }
        let routers = &g.routers[i];
        if !routers.is_empty() && !self.st.steps[i].activated {
            if routers
                .iter()
                .all(|&r| self.st.steps[r].status.is_terminal())
            {
                return Readiness::Skip("not chosen");
            }
            return Readiness::Wait;
        }
        let deps = &g.deps[i];
        if deps.is_empty() {
            return Readiness::Ready;
        }
        match self.pb.steps[i].join {
            Join::All => {
                let mut all_done = true;
                for &d in deps {
                    let s = self.st.steps[d].status;
                    if !s.is_terminal() {
                        all_done = false;
                    } else if !self.satisfied(d) {
                        return Readiness::Skip("a dependency did not complete");
                    }
                }
                if all_done {
                    Readiness::Ready
                } else {
                    Readiness::Wait
                }
            }
            Join::Any => {
                if deps.iter().any(|&d| self.satisfied(d)) {
                    Readiness::Ready
                } else if deps.iter().all(|&d| self.st.steps[d].status.is_terminal()) {
                    Readiness::Skip("no dependency completed")
                } else {
                    Readiness::Wait
                }
            }
        }
    }

    fn skip(&mut self, i: usize, why: &str) {
        let s = &mut self.st.steps[i];
        s.status = StepStatus::Skipped;
        s.finished_at = Some(self.now);
        self.log(i, format!("skipped: {why}"));
    }

    fn check_parallel(&mut self, i: usize, members: &[String], join: Join) -> bool {
        let idx: Vec<usize> = members
            .iter()
            .filter_map(|m| self.pb.step_index(m))
            .collect();
        let output = |cx: &Self| {
            let mut m = serde_json::Map::new();
            for &j in &idx {
                m.insert(
                    cx.st.steps[j].id.clone(),
                    cx.st.steps[j].output.clone().unwrap_or(Json::Null),
                );
            }
            Json::Object(m)
        };
        match join {
            Join::All => {
                if idx.iter().all(|&j| self.st.steps[j].status.is_terminal()) {
                    let out = output(self);
                    self.succeed_step(i, out);
                    return true;
                }
            }
            Join::Any => {
                if let Some(&winner) = idx.iter().find(|&&j| self.satisfied(j)) {
                    for &j in &idx {
                        if !self.st.steps[j].status.is_terminal() {
                            self.stop_step(j);
                        }
                    }
                    let out = output(self);
                    let winner_id = self.st.steps[winner].id.clone();
                    self.log(i, format!("first to complete: {winner_id}"));
                    self.succeed_step(i, out);
                    return true;
                }
                if idx.iter().all(|&j| self.st.steps[j].status.is_terminal()) {
                    self.fail_step(i, "no member of the parallel step completed".into());
                    return true;
                }
            }
        }
        false
    }

    // ---- starting steps ----------------------------------------------------------------

    fn start_step(&mut self, i: usize) {
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

    fn activate(&mut self, targets: &[String]) {
        for t in targets {
            if let Some(j) = self.pb.step_index(t) {
                self.st.steps[j].activated = true;
            }
        }
    }

    fn call_of(&self, i: usize) -> Option<&ActionCall> {
        match &self.pb.steps[i].kind {
            StepKind::Action(c) => Some(c),
            StepKind::ForEach { call, .. } => Some(call),
            _ => None,
        }
    }

    fn start_attempt(&mut self, i: usize, item: Option<usize>, attempt: u32) {
        let Some(call) = self.call_of(i) else { return };
        let action = call.action.clone();
        let step_id = self.pb.steps[i].id.clone();
        let key = idempotency_key(&self.st.run_id, &step_id, item, attempt);
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

    fn fill_for_each(&mut self, i: usize) {
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

    // ---- outcomes ----------------------------------------------------------------------

    fn unit_succeeded(&mut self, i: usize, item: Option<usize>, output: Json) {
        let lease_input = match item {
            None => self.st.steps[i].input.clone(),
            Some(k) => self.st.steps[i]
                .items
                .get(k)
                .and_then(|it| it.input.clone()),
        };
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

    fn lease_checked(&mut self, lease: &str, result: Result<Json, ActionFailure>) {
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

    fn take_lease(
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
        if self.st.leases.iter().any(|l| l.id == id) {
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

    fn unit_attempt_failed(
        &mut self,
        i: usize,
        item: Option<usize>,
        message: String,
        retryable: bool,
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

    fn stop_items(&mut self, i: usize) {
        let step = self.pb.steps[i].id.clone();
        let run = self.st.run_id.clone();
        let mut cancels = Vec::new();
        for (k, it) in self.st.steps[i].items.iter_mut().enumerate() {
            match it.status {
                StepStatus::Running => {
                    cancels.push(Effect::CancelAction {
                        step: step.clone(),
                        item: Some(k),
                        idempotency_key: idempotency_key(&run, &step, Some(k), it.attempt),
                    });
                    it.status = StepStatus::Cancelled;
                }
                StepStatus::Retrying | StepStatus::Pending => it.status = StepStatus::Cancelled,
                _ => {}
            }
        }
        self.effects.extend(cancels);
    }

    fn succeed_step(&mut self, i: usize, output: Json) {
        let s = &mut self.st.steps[i];
        s.status = StepStatus::Succeeded;
        s.output = Some(output);
        s.error = None;
        s.finished_at = Some(self.now);
    }

    fn fail_step(&mut self, i: usize, message: String) {
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
    fn stop_step(&mut self, j: usize) {
        let s = &self.st.steps[j];
        let step = s.id.clone();
        match (&self.pb.steps[j].kind, s.status) {
            (StepKind::Action(_), StepStatus::Running) => {
                let key = idempotency_key(&self.st.run_id, &step, None, s.attempt);
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

    fn stop_active_steps(&mut self, except: Option<usize>) {
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

    fn finish_run(&mut self, status: RunStatus, error: Option<String>) {
        if self.st.status.is_terminal() {
            return;
        }
        self.st.status = status;
        self.st.error = error;
        self.st.finished_at = Some(self.now);
        self.effects.push(Effect::Complete { status });
    }

    fn fail_run(&mut self, message: String) {
        self.stop_active_steps(None);
        self.finish_run(RunStatus::Failed, Some(message));
    }

    // ---- dry run -----------------------------------------------------------------------

    /// Turns the effects produced since `from` into simulated answers.
    fn simulate(&mut self, from: usize) {
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
