//! Garrison's SOAR playbooks: the model (YAML or JSON), validation that reports every error with
//! its place, the durable executor as a pure state machine, timers as stored rows, approvals,
//! reversible actions with leases and dry runs. No I/O: the service (`garrison-soar`) stores
//! runs, fires timers and executes actions, through the [`ActionExecutor`] interface.
//!
//! # Use
//! ```
//! use garrison_playbook::{validate, ActionRegistry, dry_run, RunStatus};
//! let yaml = r#"
//! name: hello
//! inputs:
//!   who: {type: string, default: world}
//! steps:
//!   - id: greet
//!     action: core.set
//!     with: {text: "hello {{ inputs.who }}"}
//!   - id: log
//!     depends_on: [greet]
//!     action: core.log
//!     with: {message: "{{ steps.greet.output.text }}"}
//! "#;
//! let (playbook, errors) = validate(yaml, &ActionRegistry::with_core());
//! assert!(errors.is_empty(), "{errors:?}");
//! let playbook = playbook.unwrap();
//! let state = dry_run(&playbook, &serde_json::json!({}), serde_json::Value::Null, jiff::Timestamp::UNIX_EPOCH).unwrap();
//! assert_eq!(state.status, RunStatus::Succeeded);
//! assert_eq!(state.step("log").unwrap().input.as_ref().unwrap()["message"], "hello world");
//! ```
//!
//! # Shape
//! - [`validate`] parses with serde-saphyr and checks the whole graph: duplicate ids, unknown
//!   `depends_on` and routes, cycles, template syntax and references (`steps.X` must run before,
//!   `inputs.Y` must be declared), input types and defaults, actions and their parameters
//!   against an [`ActionRegistry`], cron patterns and time zones, durations.
//! - [`advance`] is the executor: `(playbook, state, now, event) -> effects`. No I/O, no clock.
//! - [`ActionExecutor`] is what the service implements to run an attempt; the in-flight attempts
//!   are read from the stored state, so any worker resumes a killed one's runs and resends an
//!   attempt with the same idempotency key.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

mod actions;
mod engine;
mod model;
pub mod payload;
mod registry;
mod validate;

pub use actions::{ActionExecutor, ActionOutcome, ActionRequest};
pub use engine::{
    advance, cancel_timer_id, dry_run, idempotency_key, ActionFailure, ApprovalRecord,
    AttemptRecord, Effect, Event, InputErrors, ItemState, LeaseCheck, LeaseRecord, LeaseStatus,
    LogEntry, ParentRef, RunState, StepState, StepStatus, Timer, TimerKind,
};
pub use model::{
    ActionCall, Approvers, BranchCase, Duration, InputDef, InputType, Join, LeaseSpec, OnError,
    Playbook, RetryPolicy, RunStatus, Step, StepKind, Trigger, WaitSpec,
};
pub use registry::{core_actions, ActionRegistry, ActionSpec, ParamSpec};
pub use validate::{validate, ValidationError};
