//! The engine as a service: starts runs, delivers events (approvals, cancellations, timers,
//! lease changes) and drives runs through their actions, with the store as the only truth.
//!
//! Durability rules:
//! - A run's state is saved before every action with an effect outside the process (anything
//!   but the pure `core.set`, `core.log` and `core.transform`), so the attempt and its
//!   idempotency key are on disk before the call; the result is saved before the next such
//!   call and when the run pauses. Pure steps run in memory between saves: after a crash they
//!   may run again (they have no effect outside the state), an external step is never sent again
//!   once its result is saved, and the only resend is of an attempt in flight at the crash,
//!   with the same key.
//! - Waiting is a timer row (delays, retries, approval timeouts, lease ends); nothing sleeps.
//! - One task at a time works on a run in this process (a lock per run); saves carry an
//!   optimistic revision, so two processes cannot both advance the same state.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use garrison_model::TenantId;
use garrison_playbook::{
    ActionExecutor, ActionRegistry, Approvers, Effect, InputErrors, ParentRef, Playbook, RunState,
    ValidationError,
};
use garrison_store::{PlaybookRepo, SqlStore};
use serde_json::Value as Json;
use sha2::Digest;
use tokio::sync::Semaphore;

use crate::actions::{registry, SoarActions};
use crate::store::Writer;

mod background;
mod dispatch;
mod drive;
mod people;
mod playbooks;
pub use playbooks::Batch;
mod runs;

/// A failure of the service.
#[derive(Debug, thiserror::Error)]
pub enum SoarError {
    /// The SQL store.
    #[error(transparent)]
    Store(#[from] garrison_store::StoreError),
    /// Encoding or loading runs.
    #[error(transparent)]
    Runs(#[from] crate::store::StoreError),
    /// No such playbook (version).
    #[error("playbook {name:?}{} not found", .version.map(|v| format!(" version {v}")).unwrap_or_default())]
    UnknownPlaybook {
        /// Name.
        name: String,
        /// Version asked for.
        version: Option<i64>,
    },
    /// No such run in this tenant.
    #[error("run {0:?} not found")]
    UnknownRun(String),
    /// The playbook does not validate; every error with its place.
    #[error("the playbook has {} error(s)", .0.len())]
    Invalid(Vec<ValidationError>),
    /// Inputs rejected.
    #[error(transparent)]
    Inputs(#[from] InputErrors),
    /// The request does not apply to the run or playbook as it is.
    #[error("{0}")]
    Refused(String),
    /// Too many concurrent updates of one run.
    #[error("run {0:?}: too many concurrent updates")]
    Contention(String),
}

/// Settings of the service.
#[derive(Clone, Debug)]
pub struct SoarConfig {
    /// How often due timers are looked for.
    pub poll_interval: Duration,
    /// Runs driven at once by background tasks.
    pub max_parallel: usize,
    /// Base URL of the firewall connector (`firewall.*` actions).
    pub firewall_url: Option<String>,
    /// How often every active lease whose action declares a check is re-checked (drift).
    pub reconcile_interval: Duration,
}

impl Default for SoarConfig {
    fn default() -> Self {
        SoarConfig {
            poll_interval: Duration::from_millis(100),
            max_parallel: 256,
            firewall_url: None,
            reconcile_interval: Duration::from_secs(300),
        }
    }
}

/// What a cancellation did.
#[derive(Clone, Debug)]
pub enum CancelOutcome {
    /// Applied now (or the run had already ended): the state after.
    Done(RunState),
    /// The run is busy with an action call: the request is stored and applied as soon as the
    /// call returns (no further action is sent); the state as it is now.
    Requested(RunState),
}

/// What saving a playbook text did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// A new playbook (version 1).
    Created,
    /// A new version of an existing playbook.
    Updated,
    /// The text is the latest version's: nothing saved.
    Unchanged,
}

/// What starts a run.
#[derive(Clone, Debug, Default)]
pub struct StartRun {
    /// Playbook name.
    pub playbook: String,
    /// Version (latest when `None`).
    pub version: Option<u32>,
    /// Inputs (checked and defaulted against the declared ones).
    pub inputs: Json,
    /// What started it (user, webhook body, alert...).
    pub trigger: Json,
    /// Simulate: example outputs, no I/O, no timers.
    pub dry_run: bool,
    /// A deterministic id (a second start with it is a no-op); a new ULID when `None`.
    pub run_id: Option<String>,
    /// Parent, for a child run.
    pub parent: Option<ParentRef>,
    /// Start even when the playbook is disabled (child runs).
    pub even_if_disabled: bool,
    /// Started by this trigger of the playbook (its index in `triggers`): the inputs come from
    /// `trigger` (the payload) by the trigger's mapping, not from `inputs`, and a run that
    /// cannot start is kept as a failed run with the reason, where the API and CLI show it.
    pub by_trigger: Option<usize>,
}

/// Something from the live pipeline that may start playbooks (`garrison-server`'s trigger
/// followers dispatch new alerts, incident state changes and SLA breaches).
#[derive(Clone, Debug)]
pub enum TriggerEvent {
    /// An alert was created (its JSON).
    Alert(Json),
    /// An incident moved between workflow states.
    IncidentState {
        /// Previous state.
        from: Option<String>,
        /// New state.
        to: String,
        /// The incident.
        incident: Json,
    },
    /// An SLA clock was breached.
    SlaBreach {
        /// Stage.
        stage: String,
        /// The incident.
        incident: Json,
    },
}

struct Work {
    tenant: TenantId,
    pb: Arc<Playbook>,
    state: RunState,
    rev: Option<i64>,
    dirty: bool,
    add: Vec<garrison_playbook::Timer>,
    remove: Vec<String>,
    follow: Vec<Effect>,
    /// Audit entries of the external calls whose results the next save records.
    audit: Vec<garrison_store::NewAuditEntry>,
}

impl Work {
    /// A run to work on: a stored one at revision `rev`, or (`None`) a new one to save.
    fn new(tenant: TenantId, pb: Arc<Playbook>, state: RunState, rev: Option<i64>) -> Work {
        Work {
            tenant,
            pb,
            state,
            rev,
            dirty: rev.is_none(),
            add: Vec::new(),
            remove: Vec::new(),
            follow: Vec::new(),
            audit: Vec::new(),
        }
    }
}

type RunLock = Arc<tokio::sync::Mutex<()>>;
type WeakRunLock = Weak<tokio::sync::Mutex<()>>;

struct Inner {
    repo: Arc<SqlStore>,
    writer: Writer,
    executor: Arc<dyn ActionExecutor>,
    registry: ActionRegistry,
    catalog: std::sync::Mutex<HashMap<(TenantId, String, u32), Arc<Playbook>>>,
    locks: std::sync::Mutex<HashMap<(TenantId, String), WeakRunLock>>,
    permits: Arc<Semaphore>,
    timers_in_progress: std::sync::Mutex<HashSet<(TenantId, String)>>,
    /// Cancellations asked for while the run was busy in this process (who asked); also
    /// stored as a timer row, for other processes and restarts.
    cancels: std::sync::Mutex<HashMap<(TenantId, String), String>>,
    config: SoarConfig,
}

/// The SOAR service. Cheap to clone.
#[derive(Clone)]
pub struct Soar {
    inner: Arc<Inner>,
}

/// A secret's SHA-256, hex (how webhook secrets and approval links are kept).
pub fn secret_hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Equal in constant time (for secret hashes).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// May this user (name and roles) decide an approval? Admins always may; an approval that
/// names nobody is open to responders.
pub fn may_approve(approvers: &Approvers, user: &str, roles: &[&str]) -> bool {
    if roles.contains(&"admin") {
        return true;
    }
    if approvers.roles.is_empty() && approvers.users.is_empty() {
        return roles.contains(&"responder");
    }
    approvers.users.iter().any(|u| u == user)
        || approvers.roles.iter().any(|r| roles.contains(&r.as_str()))
}

impl Soar {
    /// The service over a store, with the built-in actions and the firewall connector. Spawns
    /// the group-commit writer on the current runtime.
    pub fn new(repo: Arc<SqlStore>, config: SoarConfig) -> Soar {
        let executor = Arc::new(SoarActions::new(config.firewall_url.clone()));
        Self::with_executor(repo, config, executor, registry())
    }

    /// The service with another executor and registry (tests, benchmarks).
    pub fn with_executor(
        repo: Arc<SqlStore>,
        config: SoarConfig,
        executor: Arc<dyn ActionExecutor>,
        registry: ActionRegistry,
    ) -> Soar {
        let writer = Writer::spawn(repo.clone());
        Soar {
            inner: Arc::new(Inner {
                repo,
                writer,
                executor,
                registry,
                catalog: std::sync::Mutex::new(HashMap::new()),
                locks: std::sync::Mutex::new(HashMap::new()),
                permits: Arc::new(Semaphore::new(config.max_parallel.max(1))),
                timers_in_progress: std::sync::Mutex::new(HashSet::new()),
                cancels: std::sync::Mutex::new(HashMap::new()),
                config,
            }),
        }
    }

    /// The actions playbooks are validated against.
    pub fn registry(&self) -> &ActionRegistry {
        &self.inner.registry
    }

    /// The store.
    pub fn repo(&self) -> &Arc<SqlStore> {
        &self.inner.repo
    }

    /// The executor of actions (checks of leases go through it too).
    pub(crate) fn executor(&self) -> &Arc<dyn ActionExecutor> {
        &self.inner.executor
    }

    /// Its settings.
    pub fn config(&self) -> &SoarConfig {
        &self.inner.config
    }

    /// Runs `task` for every active run, at most `max_parallel` at once; waits for all.
    pub(crate) async fn for_each_active_run<F, Fut>(&self, task: F)
    where
        F: Fn(Soar, TenantId, String) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let runs = match self.inner.repo.active_runs(1_000_000).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot list active runs");
                return;
            }
        };
        let mut tasks = Vec::new();
        for (tenant, run_id) in runs {
            let Ok(permit) = self.inner.permits.clone().acquire_owned().await else {
                break;
            };
            let work = task(self.clone(), tenant, run_id);
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                work.await
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}
