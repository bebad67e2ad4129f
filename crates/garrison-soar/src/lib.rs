//! Garrison's SOAR service layer: playbook runs kept in the SQL store (`garrison-store`), driven
//! by the pure engine of `garrison-playbook`.
//!
//! - [`Soar`] saves playbook versions, starts runs (manual, webhook, schedule, or the live
//!   pipeline through [`Soar::dispatch_trigger`]), delivers events (approvals, cancellations,
//!   reruns, lease extensions and revocations) and drives runs through their actions.
//! - [`Soar::spawn_background`] resumes the runs a killed process left, fires due timers
//!   (delays, retries, approval timeouts, lease ends: rows, never sleeping tasks) and starts
//!   scheduled playbooks (cron in a time zone).
//! - Writes from every run go through one group-commit [`Writer`]: this is the one playbook
//!   executor (the engine crate has no runner of its own).
//! - [`SoarActions`] executes `core.*` ([`CoreActions`], the only HTTP client of the playbook
//!   path) and the firewall connector, passing each attempt's idempotency key
//!   (`Idempotency-Key` header).
//! - [`triggers`] starts playbooks from the live pipeline (new alerts, incident state changes,
//!   SLA breaches) and runs the SLA checker.
//! - Reconciliation ([`Soar::reconcile_run`], and every `reconcile_interval` in the
//!   background) re-checks active leases whose actions declare a check and records drift.
//! - [`Soar::replay`] dry-runs another version of a past run's playbook with its trigger and
//!   inputs; [`Soar::sync_playbook`] saves a text only when it changed.
//!
//! **Invariant:** a run's whole truth is its stored state; an external action is sent only
//! after the state naming its attempt is saved, so after `kill -9` the only resend is of an
//! attempt in flight at the kill, with the same idempotency key.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

mod actions;
mod core_actions;
mod reconcile;
mod replay;
mod service;
mod store;
pub mod triggers;

pub use actions::{is_pure, registry, SoarActions};
pub use core_actions::CoreActions;
pub use replay::{path_taken, Replay};
pub use service::{
    constant_time_eq, may_approve, secret_hash, Batch, CancelOutcome, Soar, SoarConfig, SoarError,
    StartRun, SyncStatus, TriggerEvent,
};
pub use store::{
    load_state, run_write, status_name, timer_from_record, timer_record, StoreError, Writer,
    BLOB_THRESHOLD,
};
pub use triggers::TriggerConfig;
