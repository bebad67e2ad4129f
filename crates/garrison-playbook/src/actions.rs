//! Executing actions: the [`ActionExecutor`] trait the service implements (this crate does no
//! I/O; the `core.*` built-ins that do, such as `core.http`, live in `garrison-soar`).

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::engine::ActionFailure;

/// One action attempt to execute.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    /// Run.
    pub run_id: String,
    /// Step (or the lease id for an undo).
    pub step: String,
    /// `for_each` item.
    pub item: Option<usize>,
    /// Attempt.
    pub attempt: u32,
    /// The same for every resend of this attempt: actions must not repeat their effect for a
    /// key they have seen (`core.http` sends it as the `Idempotency-Key` header).
    pub idempotency_key: String,
    /// Action name.
    pub action: String,
    /// Rendered input.
    pub input: Json,
}

/// What an attempt produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionOutcome {
    /// Output or failure.
    pub result: Result<Json, ActionFailure>,
    /// Lines for the step's log.
    pub logs: Vec<String>,
}

impl ActionOutcome {
    /// A success.
    pub fn ok(output: Json) -> Self {
        ActionOutcome {
            result: Ok(output),
            logs: Vec::new(),
        }
    }

    /// A failure.
    pub fn err(failure: ActionFailure) -> Self {
        ActionOutcome {
            result: Err(failure),
            logs: Vec::new(),
        }
    }
}

/// Executes actions (connectors, built-ins).
#[async_trait]
pub trait ActionExecutor: Send + Sync {
    /// Runs one attempt.
    async fn execute(&self, request: ActionRequest) -> ActionOutcome;
}
