//! What goes in and out of `advance`: events, effects, timers, action failures and keys.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::model::*;

/// The key passed to an action call: the same for every attempt and every resend of one step
/// (or `for_each` item), so a target that already applied a timed-out attempt does not apply
/// the retry again. A rerun after a failure is a new execution: `round` (the attempts made
/// before it, the step's `attempt_base`) tells it apart. The attempt number travels beside the
/// key (`ActionRequest::attempt`).
pub fn idempotency_key(run_id: &str, step: &str, item: Option<usize>, round: u32) -> String {
    let key = match item {
        Some(i) => format!("{run_id}/{step}[{i}]"),
        None => format!("{run_id}/{step}"),
    };
    if round == 0 {
        key
    } else {
        format!("{key}/r{round}")
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
    /// The target asked to wait this long before the next attempt (`Retry-After` on a 429 or
    /// 503): the retry waits at least that, whatever the step's backoff says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ActionFailure {
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> Self {
        ActionFailure {
            message: message.into(),
            retryable: true,
            retry_after_ms: None,
        }
    }

    /// A failure not worth retrying.
    pub fn permanent(message: impl Into<String>) -> Self {
        ActionFailure {
            message: message.into(),
            retryable: false,
            retry_after_ms: None,
        }
    }

    /// The same failure, with the wait the target asked for before the next attempt.
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after_ms = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        self
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
