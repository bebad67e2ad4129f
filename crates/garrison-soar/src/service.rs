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
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use garrison_model::TenantId;
use garrison_playbook::{
    advance, ActionExecutor, ActionRegistry, ActionRequest, Approvers, Effect, Event, InputErrors,
    ParentRef, Playbook, RunState, RunStatus, StepStatus, TimerKind, Trigger, ValidationError,
};
use garrison_store::{ApprovalLink, PlaybookRepo, PlaybookVersion, SqlStore, WriteOutcome};
use jiff::Timestamp;
use serde_json::{json, Value as Json};
use sha2::Digest;
use tokio::sync::{watch, Semaphore};

use crate::actions::{is_pure, registry, SoarActions};
use crate::store::{load_state, run_write, timer_from_record, Writer};

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

/// How long a cancellation waits for a busy run before it is stored as a request instead.
const CANCEL_WAIT: Duration = Duration::from_millis(250);

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

/// An action's outcome as the audit log states it.
fn call_result(outcome: &garrison_playbook::ActionOutcome) -> Result<(), String> {
    match &outcome.result {
        Ok(_) => Ok(()),
        Err(failure) => Err(failure.message.clone()),
    }
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

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

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

    // ------------------------------------------------------------------ playbooks

    /// Validates a playbook text (YAML or JSON) against the registry.
    pub fn validate(&self, source: &str) -> Result<Playbook, SoarError> {
        let (playbook, errors) = garrison_playbook::validate(source, &self.inner.registry);
        match playbook {
            Some(p) if errors.is_empty() => Ok(p),
            _ => Err(SoarError::Invalid(errors)),
        }
    }

    /// Validates and saves a new version (the same text as the latest version saves nothing).
    pub async fn save_playbook(
        &self,
        tenant: TenantId,
        source: &str,
        created_by: Option<&str>,
    ) -> Result<PlaybookVersion, SoarError> {
        let playbook = self.validate(source)?;
        let definition = serde_json::to_string(&playbook)
            .map_err(|e| SoarError::Refused(format!("cannot encode the playbook: {e}")))?;
        Ok(self
            .inner
            .repo
            .save_playbook_version(tenant, &playbook.name, &definition, source, created_by)
            .await?)
    }

    /// Saves a playbook text like [`Soar::save_playbook`] and says whether it made a new
    /// playbook, a new version, or nothing (the text is the latest version's).
    pub async fn sync_playbook(
        &self,
        tenant: TenantId,
        source: &str,
        created_by: Option<&str>,
    ) -> Result<(PlaybookVersion, SyncStatus), SoarError> {
        let playbook = self.validate(source)?;
        let before = self
            .inner
            .repo
            .playbook_summary(tenant, &playbook.name)
            .await?
            .map(|s| s.latest_version);
        let saved = self.save_playbook(tenant, source, created_by).await?;
        let status = match before {
            None => SyncStatus::Created,
            Some(v) if v == saved.version => SyncStatus::Unchanged,
            Some(_) => SyncStatus::Updated,
        };
        Ok((saved, status))
    }

    /// A playbook version (latest when `None`), validated once and cached.
    pub async fn playbook(
        &self,
        tenant: TenantId,
        name: &str,
        version: Option<u32>,
    ) -> Result<(Arc<Playbook>, u32), SoarError> {
        if let Some(v) = version {
            let cached = self
                .inner
                .catalog
                .lock()
                .ok()
                .and_then(|c| c.get(&(tenant, name.to_owned(), v)).cloned());
            if let Some(p) = cached {
                return Ok((p, v));
            }
        }
        let row = self
            .inner
            .repo
            .playbook_version(tenant, name, version.map(i64::from))
            .await?
            .ok_or_else(|| SoarError::UnknownPlaybook {
                name: name.to_owned(),
                version: version.map(i64::from),
            })?;
        let v = u32::try_from(row.version)
            .map_err(|_| SoarError::Refused(format!("version {} out of range", row.version)))?;
        if let Some(p) = self
            .inner
            .catalog
            .lock()
            .ok()
            .and_then(|c| c.get(&(tenant, name.to_owned(), v)).cloned())
        {
            return Ok((p, v));
        }
        let playbook = Arc::new(self.validate(&row.source)?);
        if let Ok(mut c) = self.inner.catalog.lock() {
            if c.len() > 10_000 {
                c.clear();
            }
            c.insert((tenant, name.to_owned(), v), playbook.clone());
        }
        Ok((playbook, v))
    }

    // ------------------------------------------------------------------ runs

    fn lock(&self, tenant: TenantId, run_id: &str) -> RunLock {
        let Ok(mut locks) = self.inner.locks.lock() else {
            return Arc::new(tokio::sync::Mutex::new(()));
        };
        let key = (tenant, run_id.to_owned());
        if let Some(l) = locks.get(&key).and_then(Weak::upgrade) {
            return l;
        }
        if locks.len() > 4096 {
            locks.retain(|_, w| w.strong_count() > 0);
        }
        let l = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key, Arc::downgrade(&l));
        l
    }

    /// A run's state and revision.
    pub async fn load(
        &self,
        tenant: TenantId,
        run_id: &str,
    ) -> Result<Option<(RunState, i64)>, SoarError> {
        Ok(load_state(&self.inner.repo, tenant, run_id).await?)
    }

    /// Starts a run: it is stored before this returns. Pure steps up to the first external
    /// action (or the whole run, when it has none) run before the answer; the rest runs in the
    /// background.
    pub async fn start_run(&self, tenant: TenantId, req: StartRun) -> Result<RunState, SoarError> {
        let summary = self
            .inner
            .repo
            .playbook_summary(tenant, &req.playbook)
            .await?;
        match summary {
            None => {
                return Err(SoarError::UnknownPlaybook {
                    name: req.playbook,
                    version: req.version.map(i64::from),
                })
            }
            Some(s) if !s.enabled && !req.even_if_disabled => {
                return Err(SoarError::Refused(format!(
                    "playbook {:?} is disabled",
                    req.playbook
                )))
            }
            Some(_) => {}
        }
        let (pb, version) = self.playbook(tenant, &req.playbook, req.version).await?;
        let run_id = req.run_id.unwrap_or_else(garrison_model::new_ulid);
        let lock = self.lock(tenant, &run_id);
        let guard = lock.lock().await;
        if let Some((state, _)) = self.load(tenant, &run_id).await? {
            return Ok(state);
        }
        let now = Timestamp::now();
        let mut state = RunState::new(&run_id, &pb, version, &req.inputs, req.trigger, now)?;
        state.parent = req.parent;
        state.dry_run = req.dry_run;
        let mut work = Work {
            tenant,
            pb,
            state,
            rev: None,
            dirty: true,
            add: Vec::new(),
            remove: Vec::new(),
            follow: Vec::new(),
            audit: Vec::new(),
        };
        self.apply(&mut work, Event::Start);
        let pending = self.drive(&mut work, true).await?;
        match self.persist(&mut work).await {
            Ok(()) => {}
            Err(SoarError::Refused(_)) => {
                drop(guard);
                return self
                    .load(tenant, &run_id)
                    .await?
                    .map(|(s, _)| s)
                    .ok_or(SoarError::UnknownRun(run_id));
            }
            Err(e) => return Err(e),
        }
        drop(guard);
        let follow = std::mem::take(&mut work.follow);
        self.follow_ups(tenant, &work.state, follow).await;
        if pending {
            self.spawn_continue(tenant, run_id);
        }
        Ok(work.state)
    }

    /// Delivers an event to a run and drives it until it waits; returns the state then.
    pub async fn deliver(
        &self,
        tenant: TenantId,
        run_id: &str,
        event: Event,
    ) -> Result<RunState, SoarError> {
        self.run_event(tenant, run_id, Some(event), None).await
    }

    /// Drives a run (after a restart, or when its actions are due) until it waits.
    pub async fn resume(&self, tenant: TenantId, run_id: &str) -> Result<RunState, SoarError> {
        self.run_event(tenant, run_id, None, None).await
    }

    fn spawn_continue(&self, tenant: TenantId, run_id: String) {
        let soar = self.clone();
        tokio::spawn(async move {
            let Ok(_permit) = soar.inner.permits.clone().acquire_owned().await else {
                return;
            };
            if let Err(e) = soar.resume(tenant, &run_id).await {
                tracing::warn!(run = %run_id, error = %e, "driving a run failed; it resumes on the next timer or restart");
            }
        });
    }

    async fn run_event(
        &self,
        tenant: TenantId,
        run_id: &str,
        event: Option<Event>,
        fired_timer: Option<String>,
    ) -> Result<RunState, SoarError> {
        let lock = self.lock(tenant, run_id);
        let guard = lock.lock().await;
        self.run_event_locked(guard, tenant, run_id, event, fired_timer)
            .await
    }

    /// [`Soar::run_event`] with the run's lock already held.
    async fn run_event_locked(
        &self,
        guard: tokio::sync::MutexGuard<'_, ()>,
        tenant: TenantId,
        run_id: &str,
        event: Option<Event>,
        fired_timer: Option<String>,
    ) -> Result<RunState, SoarError> {
        if matches!(event, Some(Event::TimerFired(TimerKind::Cancel { .. }))) {
            // The stored request fires: the in-memory copy is spent.
            self.take_cancel(tenant, run_id);
        }
        let mut tries = 0;
        let work = loop {
            tries += 1;
            let Some((state, rev)) = self.load(tenant, run_id).await? else {
                return Err(SoarError::UnknownRun(run_id.to_owned()));
            };
            let (pb, _) = self
                .playbook(tenant, &state.playbook, Some(state.version))
                .await?;
            let mut work = Work {
                tenant,
                pb,
                state,
                rev: Some(rev),
                dirty: false,
                add: Vec::new(),
                remove: Vec::new(),
                follow: Vec::new(),
                audit: Vec::new(),
            };
            if let Some(id) = &fired_timer {
                work.remove.push(id.clone());
                work.dirty = true;
            }
            if let Some(ev) = event.clone() {
                self.apply(&mut work, ev);
            }
            let result = match self.drive(&mut work, false).await {
                Ok(_) => self.persist(&mut work).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => break work,
                Err(SoarError::Contention(_)) if tries < 8 => continue,
                Err(e) => return Err(e),
            }
        };
        drop(guard);
        let mut work = work;
        let follow = std::mem::take(&mut work.follow);
        self.follow_ups(tenant, &work.state, follow).await;
        Ok(work.state)
    }

    fn apply(&self, work: &mut Work, event: Event) {
        let effects = advance(&work.pb, &mut work.state, Timestamp::now(), event);
        work.dirty = true;
        for effect in effects {
            match effect {
                Effect::ScheduleTimer(t) => work.add.push(t),
                e @ (Effect::StartSubPlaybook { .. }
                | Effect::CancelSubPlaybook { .. }
                | Effect::Complete { .. }) => work.follow.push(e),
                Effect::RequestApproval { step, .. } => {
                    tracing::debug!(run = %work.state.run_id, step = %step, "approval requested");
                }
                Effect::ExecuteAction { .. }
                | Effect::ExecuteUndo { .. }
                | Effect::CancelAction { .. } => {}
            }
        }
    }

    async fn persist(&self, work: &mut Work) -> Result<(), SoarError> {
        if !work.dirty {
            return Ok(());
        }
        let mut write = run_write(
            work.tenant,
            &work.state,
            work.rev,
            &work.add,
            &work.remove,
            Timestamp::now(),
        )?;
        write.audit = work.audit.clone();
        match self.inner.writer.write(write).await? {
            WriteOutcome::Saved(rev) => {
                work.rev = Some(rev);
                work.dirty = false;
                work.add.clear();
                work.remove.clear();
                work.audit.clear();
                Ok(())
            }
            WriteOutcome::Exists => Err(SoarError::Refused(format!(
                "run {:?} already exists",
                work.state.run_id
            ))),
            WriteOutcome::Conflict(_) => Err(SoarError::Contention(work.state.run_id.clone())),
        }
    }

    /// Sends the run's in-flight actions until none is left. Pure actions run inline; before
    /// any other action the state is saved. With `stop_before_external`, returns `true`
    /// instead of sending an external action.
    async fn drive(&self, work: &mut Work, stop_before_external: bool) -> Result<bool, SoarError> {
        for _ in 0..100_000 {
            // A cancellation asked for while an action call was in flight: applied before
            // anything else is sent, and its stored request removed with the same write.
            if let Some(by) = self.take_cancel(work.tenant, &work.state.run_id) {
                work.remove
                    .push(garrison_playbook::cancel_timer_id(&work.state.run_id));
                self.apply(work, Event::Cancel { by });
            }
            let effects = work.state.in_flight(&work.pb);
            if effects.is_empty() {
                return Ok(false);
            }
            let mut external = Vec::new();
            let mut did_pure = false;
            for effect in effects {
                match effect {
                    Effect::ExecuteAction {
                        step,
                        item,
                        attempt,
                        idempotency_key,
                        action,
                        input,
                    } if is_pure(&action) => {
                        let outcome = self
                            .inner
                            .executor
                            .execute(ActionRequest {
                                run_id: work.state.run_id.clone(),
                                step: step.clone(),
                                item,
                                attempt,
                                idempotency_key,
                                action,
                                input,
                            })
                            .await;
                        self.apply(
                            work,
                            Event::ActionFinished {
                                step,
                                item,
                                attempt,
                                result: outcome.result,
                                logs: outcome.logs,
                            },
                        );
                        did_pure = true;
                    }
                    other => external.push(other),
                }
            }
            if did_pure {
                continue;
            }
            if stop_before_external {
                return Ok(true);
            }
            self.persist(work).await?;
            let run_id = work.state.run_id.clone();
            let calls = external
                .into_iter()
                .map(|effect| self.execute_external(&run_id, &work.pb, effect));
            let events = futures_util::future::join_all(calls).await;
            for (event, audit) in events.into_iter().flatten() {
                work.audit.push(audit);
                self.apply(work, event);
            }
        }
        Err(SoarError::Refused(format!(
            "run {:?} made no progress",
            work.state.run_id
        )))
    }

    /// The audit entry of an external call a run made (a machine action); it is committed
    /// with the state that records the call's result, so each result is audited once.
    fn audit_call(
        pb: &Playbook,
        kind: &str,
        target: String,
        action: &str,
        attempt: u32,
        key: &str,
        result: Result<(), String>,
    ) -> garrison_store::NewAuditEntry {
        garrison_store::NewAuditEntry {
            actor: format!("playbook:{}", pb.name),
            action: kind.to_string(),
            target,
            details: json!({
                "action": action,
                "attempt": attempt,
                "idempotency_key": key,
                "outcome": if result.is_ok() { "ok" } else { "failed" },
                "error": result.err(),
            }),
        }
    }

    /// Sends one external call; returns the event that records its result and the call's
    /// audit entry.
    async fn execute_external(
        &self,
        run_id: &str,
        pb: &Playbook,
        effect: Effect,
    ) -> Option<(Event, garrison_store::NewAuditEntry)> {
        match effect {
            Effect::ExecuteAction {
                step,
                item,
                attempt,
                idempotency_key,
                action,
                input,
            } => {
                let timeout = pb.step(&step).and_then(|s| s.timeout);
                let target = match item {
                    Some(i) => format!("{run_id}/{step}[{i}]"),
                    None => format!("{run_id}/{step}"),
                };
                let (audit_action, audit_key) = (action.clone(), idempotency_key.clone());
                let call = self.inner.executor.execute(ActionRequest {
                    run_id: run_id.to_owned(),
                    step: step.clone(),
                    item,
                    attempt,
                    idempotency_key,
                    action,
                    input,
                });
                let outcome = match timeout {
                    Some(t) => {
                        match tokio::time::timeout(Duration::from_millis(t.as_millis()), call).await
                        {
                            Ok(o) => o,
                            Err(_) => {
                                let audit = Self::audit_call(
                                    pb,
                                    "playbook.action",
                                    target,
                                    &audit_action,
                                    attempt,
                                    &audit_key,
                                    Err("timed out".into()),
                                );
                                let event = Event::TimerFired(TimerKind::StepTimeout {
                                    step,
                                    item,
                                    attempt,
                                });
                                return Some((event, audit));
                            }
                        }
                    }
                    None => call.await,
                };
                let audit = Self::audit_call(
                    pb,
                    "playbook.action",
                    target,
                    &audit_action,
                    attempt,
                    &audit_key,
                    call_result(&outcome),
                );
                let event = Event::ActionFinished {
                    step,
                    item,
                    attempt,
                    result: outcome.result,
                    logs: outcome.logs,
                };
                Some((event, audit))
            }
            Effect::ExecuteUndo {
                lease,
                action,
                input,
                attempt,
                idempotency_key,
                ..
            } => {
                let (audit_action, audit_key) = (action.clone(), idempotency_key.clone());
                let outcome = self
                    .inner
                    .executor
                    .execute(ActionRequest {
                        run_id: run_id.to_owned(),
                        step: lease.clone(),
                        item: None,
                        attempt,
                        idempotency_key,
                        action,
                        input,
                    })
                    .await;
                let audit = Self::audit_call(
                    pb,
                    "playbook.undo",
                    lease.clone(),
                    &audit_action,
                    attempt,
                    &audit_key,
                    call_result(&outcome),
                );
                let event = Event::UndoFinished {
                    lease,
                    attempt,
                    result: outcome.result,
                };
                Some((event, audit))
            }
            _ => None,
        }
    }

    /// Child runs and parent notifications, after the state that asked for them is saved.
    fn follow_ups(&self, tenant: TenantId, state: &RunState, effects: Vec<Effect>) -> BoxFuture {
        let soar = self.clone();
        let run_id = state.run_id.clone();
        let parent = state.parent.clone();
        let dry_run = state.dry_run;
        let output = Json::Object(
            state
                .steps
                .iter()
                .map(|s| (s.id.clone(), s.output.clone().unwrap_or(Json::Null)))
                .collect(),
        );
        Box::pin(async move {
            for effect in effects {
                match effect {
                    Effect::StartSubPlaybook {
                        step,
                        child_run_id,
                        playbook,
                        version,
                        inputs,
                    } => {
                        let started = soar
                            .start_run(
                                tenant,
                                StartRun {
                                    playbook,
                                    version,
                                    inputs,
                                    trigger: json!({"kind": "parent", "run_id": run_id}),
                                    dry_run,
                                    run_id: Some(child_run_id),
                                    parent: Some(ParentRef {
                                        run_id: run_id.clone(),
                                        step: step.clone(),
                                    }),
                                    even_if_disabled: true,
                                },
                            )
                            .await;
                        if let Err(e) = started {
                            soar.spawn_event(
                                tenant,
                                run_id.clone(),
                                Event::SubPlaybookFinished {
                                    step,
                                    status: RunStatus::Failed,
                                    output: Json::String(e.to_string()),
                                },
                            );
                        }
                    }
                    Effect::CancelSubPlaybook { child_run_id } => soar.spawn_event(
                        tenant,
                        child_run_id,
                        Event::Cancel {
                            by: format!("parent run {run_id}"),
                        },
                    ),
                    Effect::Complete { status } => {
                        if let Some(p) = &parent {
                            soar.spawn_event(
                                tenant,
                                p.run_id.clone(),
                                Event::SubPlaybookFinished {
                                    step: p.step.clone(),
                                    status,
                                    output: output.clone(),
                                },
                            );
                        }
                    }
                    _ => {}
                }
            }
        })
    }

    fn spawn_event(&self, tenant: TenantId, run_id: String, event: Event) {
        let soar = self.clone();
        tokio::spawn(async move {
            if let Err(e) = soar.deliver(tenant, &run_id, event).await {
                tracing::warn!(run = %run_id, error = %e, "delivering an event to a run failed");
            }
        });
    }

    // ------------------------------------------------------------------ people

    fn take_cancel(&self, tenant: TenantId, run_id: &str) -> Option<String> {
        self.inner
            .cancels
            .lock()
            .ok()
            .and_then(|mut c| c.remove(&(tenant, run_id.to_owned())))
    }

    /// Cancels a run. When the run is free (or frees up within a moment) the cancellation is
    /// applied now; when it is busy with an action call, the request is stored (a timer row
    /// due at once, so another process or a restart applies it too) and applied as soon as the
    /// call returns, before anything else is sent: the caller does not wait for the call.
    pub async fn cancel(
        &self,
        tenant: TenantId,
        run_id: &str,
        by: &str,
    ) -> Result<CancelOutcome, SoarError> {
        let lock = self.lock(tenant, run_id);
        if let Ok(guard) = tokio::time::timeout(CANCEL_WAIT, lock.lock()).await {
            let state = self
                .run_event_locked(
                    guard,
                    tenant,
                    run_id,
                    Some(Event::Cancel { by: by.to_owned() }),
                    None,
                )
                .await?;
            return Ok(CancelOutcome::Done(state));
        }
        let (state, _) = self
            .load(tenant, run_id)
            .await?
            .ok_or_else(|| SoarError::UnknownRun(run_id.to_owned()))?;
        if state.status.is_terminal() {
            return Ok(CancelOutcome::Done(state));
        }
        let timer = garrison_playbook::Timer {
            id: garrison_playbook::cancel_timer_id(run_id),
            run_id: run_id.to_owned(),
            due: Timestamp::now(),
            kind: TimerKind::Cancel { by: by.to_owned() },
        };
        self.inner
            .repo
            .put_timer(&crate::store::timer_record(tenant, &timer)?)
            .await?;
        if let Ok(mut c) = self.inner.cancels.lock() {
            c.insert((tenant, run_id.to_owned()), by.to_owned());
        }
        tracing::info!(
            run = run_id,
            by,
            "cancellation stored: the run is busy with an action call"
        );
        Ok(CancelOutcome::Requested(state))
    }

    /// Decides a waiting approval (the caller checked who may, see [`may_approve`]).
    pub async fn decide(
        &self,
        tenant: TenantId,
        run_id: &str,
        step: &str,
        choice: &str,
        by: &str,
    ) -> Result<RunState, SoarError> {
        let (state, _) = self
            .load(tenant, run_id)
            .await?
            .ok_or_else(|| SoarError::UnknownRun(run_id.to_owned()))?;
        let st = state
            .step(step)
            .ok_or_else(|| SoarError::Refused(format!("run has no step {step:?}")))?;
        let Some(approval) = &st.approval else {
            return Err(SoarError::Refused(format!(
                "step {step:?} is not an approval"
            )));
        };
        if st.status != StepStatus::Waiting {
            return Err(SoarError::Refused(format!(
                "step {step:?} is not waiting for a decision (it is {:?})",
                st.status
            )));
        }
        if !approval.choices.iter().any(|c| c == choice) {
            return Err(SoarError::Refused(format!(
                "choice {choice:?} is not one of {:?}",
                approval.choices
            )));
        }
        self.deliver(
            tenant,
            run_id,
            Event::ApprovalDecided {
                step: step.to_owned(),
                choice: choice.to_owned(),
                by: by.to_owned(),
            },
        )
        .await
    }

    /// Creates a single-use approval link for a waiting approval; returns its secret (shown
    /// once; only its hash is stored).
    pub async fn create_approval_link(
        &self,
        tenant: TenantId,
        run_id: &str,
        step: &str,
        valid_for: Duration,
    ) -> Result<(String, Timestamp), SoarError> {
        let (state, _) = self
            .load(tenant, run_id)
            .await?
            .ok_or_else(|| SoarError::UnknownRun(run_id.to_owned()))?;
        let waiting = state
            .step(step)
            .is_some_and(|s| s.approval.is_some() && s.status == StepStatus::Waiting);
        if !waiting {
            return Err(SoarError::Refused(format!(
                "step {step:?} is not waiting for a decision"
            )));
        }
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = format!("gal_{}", hex::encode(bytes));
        let expires = Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(
                i64::try_from(valid_for.as_secs()).unwrap_or(86_400),
            ))
            .map_err(|e| SoarError::Refused(e.to_string()))?;
        self.inner
            .repo
            .create_approval_link(&ApprovalLink {
                link_hash: secret_hash(&secret),
                tenant_id: tenant,
                run_id: run_id.to_owned(),
                step: step.to_owned(),
                expires,
            })
            .await?;
        Ok((secret, expires))
    }

    /// The approval a link is for (without using it).
    pub async fn approval_link(&self, secret: &str) -> Result<Option<ApprovalLink>, SoarError> {
        Ok(self
            .inner
            .repo
            .approval_link(&secret_hash(secret), Timestamp::now())
            .await?)
    }

    /// Decides through a link: works once.
    pub async fn decide_by_link(&self, secret: &str, choice: &str) -> Result<RunState, SoarError> {
        let hash = secret_hash(secret);
        let link = self
            .inner
            .repo
            .approval_link(&hash, Timestamp::now())
            .await?
            .ok_or_else(|| SoarError::Refused("the link is unknown, used or expired".into()))?;
        // Check the choice before spending the link.
        let (state, _) = self
            .load(link.tenant_id, &link.run_id)
            .await?
            .ok_or_else(|| SoarError::UnknownRun(link.run_id.clone()))?;
        let valid = state
            .step(&link.step)
            .and_then(|s| s.approval.as_ref())
            .is_some_and(|a| a.choices.iter().any(|c| c == choice));
        if !valid {
            return Err(SoarError::Refused(format!(
                "choice {choice:?} is not offered"
            )));
        }
        if !self
            .inner
            .repo
            .use_approval_link(&hash, Timestamp::now())
            .await?
        {
            return Err(SoarError::Refused(
                "the link is unknown, used or expired".into(),
            ));
        }
        let by = format!("approval link {}", &hash[..12.min(hash.len())]);
        self.decide(link.tenant_id, &link.run_id, &link.step, choice, &by)
            .await
    }

    // ------------------------------------------------------------------ triggers

    /// Starts the enabled playbooks of a tenant whose triggers match (the alert and incident
    /// pipelines call this). `dedupe` identifies the occurrence (e.g. the alert id), so a
    /// replayed event starts nothing twice. Returns the started run ids. A store failure is
    /// returned (dispatch the occurrence again); a run refused for good (e.g. its inputs) is
    /// logged and skipped.
    pub async fn dispatch_trigger(
        &self,
        tenant: TenantId,
        event: &TriggerEvent,
        dedupe: &str,
    ) -> Result<Vec<String>, SoarError> {
        let mut started = Vec::new();
        for summary in self.inner.repo.list_playbooks(tenant).await? {
            if !summary.enabled {
                continue;
            }
            let version = u32::try_from(summary.latest_version).unwrap_or(0);
            let (pb, v) = match self.playbook(tenant, &summary.name, Some(version)).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(playbook = %summary.name, error = %e, "playbook skipped by trigger dispatch");
                    continue;
                }
            };
            let Some(trigger) = pb
                .triggers
                .iter()
                .find(|t| trigger_matches(t, event, &summary.name))
            else {
                continue;
            };
            let payload = match event {
                TriggerEvent::Alert(a) => json!({"kind": "alert", "alert": a}),
                TriggerEvent::IncidentState { from, to, incident } => {
                    json!({"kind": "incident_state", "from": from, "to": to, "incident": incident})
                }
                TriggerEvent::SlaBreach { stage, incident } => {
                    json!({"kind": "sla_breach", "stage": stage, "incident": incident})
                }
            };
            let _ = trigger;
            let run_id = format!(
                "trg-{}",
                &secret_hash(&format!("{}\u{0}{}\u{0}{dedupe}", summary.name, v))[..26]
            );
            match self
                .start_run(
                    tenant,
                    StartRun {
                        playbook: summary.name.clone(),
                        version: Some(v),
                        inputs: json!({}),
                        trigger: payload,
                        run_id: Some(run_id.clone()),
                        ..Default::default()
                    },
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(%tenant, playbook = %summary.name, %run_id, occurrence = %dedupe, "playbook started by trigger");
                    started.push(run_id)
                }
                // Transient: the caller retries the occurrence (run ids are deterministic, so
                // the runs started already are not started again).
                Err(e @ (SoarError::Store(_) | SoarError::Contention(_))) => return Err(e),
                Err(e) => {
                    tracing::warn!(playbook = %summary.name, error = %e, "triggered run not started")
                }
            }
        }
        Ok(started)
    }

    // ------------------------------------------------------------------ background

    /// Starts the background work: resume active runs, fire due timers, start scheduled
    /// playbooks, re-check active leases (every `reconcile_interval`). Stops when `shutdown`
    /// turns true.
    pub fn spawn_background(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let resume = {
            let soar = self.clone();
            tokio::spawn(async move { soar.resume_all().await })
        };
        let timers = {
            let soar = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { soar.timer_loop(shutdown).await })
        };
        let schedules = {
            let soar = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { soar.schedule_loop(shutdown).await })
        };
        let reconcile = {
            let soar = self.clone();
            tokio::spawn(async move { soar.reconcile_loop(shutdown).await })
        };
        vec![resume, timers, schedules, reconcile]
    }

    /// Drives every active run once (after a start: the runs a killed process left).
    pub async fn resume_all(&self) {
        let runs = match self.inner.repo.active_runs(1_000_000).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot list active runs to resume");
                return;
            }
        };
        let mut tasks = Vec::new();
        for (tenant, run_id) in runs {
            let soar = self.clone();
            let Ok(permit) = self.inner.permits.clone().acquire_owned().await else {
                return;
            };
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = soar.resume_one(tenant, &run_id).await {
                    tracing::warn!(run = %run_id, error = %e, "resuming a run failed");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn resume_one(&self, tenant: TenantId, run_id: &str) -> Result<(), SoarError> {
        // A cancellation stored while a call was in flight: applied before anything is resent.
        let cancel_id = garrison_playbook::cancel_timer_id(run_id);
        let stored_cancel = self
            .inner
            .repo
            .run_timers(tenant, run_id)
            .await?
            .into_iter()
            .find(|t| t.timer_id == cancel_id);
        let state = match stored_cancel {
            Some(record) => {
                let timer = timer_from_record(&record)?;
                self.run_event(
                    tenant,
                    run_id,
                    Some(Event::TimerFired(timer.kind)),
                    Some(record.timer_id),
                )
                .await?
            }
            None => self.resume(tenant, run_id).await?,
        };
        // A child that ended while its parent's notification was lost (crash): tell it again.
        for step in &state.steps {
            if step.status != StepStatus::Waiting {
                continue;
            }
            let Some(child) = &step.child_run else {
                continue;
            };
            if let Some((c, _)) = self.load(tenant, child).await? {
                if c.status.is_terminal() {
                    let output = Json::Object(
                        c.steps
                            .iter()
                            .map(|s| (s.id.clone(), s.output.clone().unwrap_or(Json::Null)))
                            .collect(),
                    );
                    self.deliver(
                        tenant,
                        run_id,
                        Event::SubPlaybookFinished {
                            step: step.id.clone(),
                            status: c.status,
                            output,
                        },
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Fires the timers due now; returns how many were started.
    pub async fn fire_due_timers(&self) -> Result<usize, SoarError> {
        let due = self.inner.repo.due_timers(Timestamp::now(), 2000).await?;
        let mut fired = 0;
        for record in due {
            let key = (record.tenant_id, record.timer_id.clone());
            let fresh = self
                .inner
                .timers_in_progress
                .lock()
                .map(|mut s| s.insert(key.clone()))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            fired += 1;
            let soar = self.clone();
            let Ok(permit) = self.inner.permits.clone().acquire_owned().await else {
                break;
            };
            tokio::spawn(async move {
                let _permit = permit;
                let result = match timer_from_record(&record) {
                    Ok(timer) => {
                        soar.run_event(
                            record.tenant_id,
                            &record.run_id,
                            Some(Event::TimerFired(timer.kind)),
                            Some(record.timer_id.clone()),
                        )
                        .await
                    }
                    Err(e) => Err(e.into()),
                };
                match result {
                    Ok(_) => {}
                    Err(SoarError::UnknownRun(_)) | Err(SoarError::Runs(_)) => {
                        // A timer of no run, or unreadable: drop it rather than firing forever.
                        tracing::warn!(timer = %record.timer_id, "dropping a timer that cannot fire");
                        let _ = soar
                            .inner
                            .repo
                            .delete_timer(record.tenant_id, &record.timer_id)
                            .await;
                    }
                    Err(e) => {
                        tracing::warn!(timer = %record.timer_id, error = %e, "firing a timer failed; retrying later")
                    }
                }
                if let Ok(mut s) = soar.inner.timers_in_progress.lock() {
                    s.remove(&key);
                }
            });
        }
        Ok(fired)
    }

    async fn timer_loop(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.fire_due_timers().await {
                tracing::warn!(error = %e, "polling timers failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.inner.config.poll_interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn schedule_loop(&self, mut shutdown: watch::Receiver<bool>) {
        let mut last = Timestamp::now();
        let mut playbooks: Vec<(TenantId, Arc<Playbook>, u32)> = Vec::new();
        let mut refreshed: Option<std::time::Instant> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
            if refreshed.is_none_or(|r| r.elapsed() > Duration::from_secs(10)) {
                match self.inner.repo.enabled_playbooks_all_tenants().await {
                    Ok(rows) => {
                        playbooks.clear();
                        for row in rows {
                            let Ok(v) = u32::try_from(row.version) else {
                                continue;
                            };
                            if let Ok((pb, v)) =
                                self.playbook(row.tenant_id, &row.name, Some(v)).await
                            {
                                if pb
                                    .triggers
                                    .iter()
                                    .any(|t| matches!(t, Trigger::Schedule { .. }))
                                {
                                    playbooks.push((row.tenant_id, pb, v));
                                }
                            }
                        }
                        refreshed = Some(std::time::Instant::now());
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot list scheduled playbooks"),
                }
            }
            let now = Timestamp::now();
            for (tenant, pb, v) in &playbooks {
                for (i, trigger) in pb.triggers.iter().enumerate() {
                    let Some(next) = trigger.next_fire(last) else {
                        continue;
                    };
                    if next > now {
                        continue;
                    }
                    // One id per occurrence: several nodes, or a restart, start it once.
                    let run_id = format!(
                        "sch-{}",
                        &secret_hash(&format!(
                            "{}\u{0}{v}\u{0}{i}\u{0}{}",
                            pb.name,
                            next.as_millisecond()
                        ))[..26]
                    );
                    let started = self
                        .start_run(
                            *tenant,
                            StartRun {
                                playbook: pb.name.clone(),
                                version: Some(*v),
                                inputs: json!({}),
                                trigger: json!({"kind": "schedule", "at": next.to_string()}),
                                run_id: Some(run_id),
                                ..Default::default()
                            },
                        )
                        .await;
                    if let Err(e) = started {
                        tracing::warn!(playbook = %pb.name, error = %e, "scheduled run not started");
                    }
                }
            }
            last = now;
        }
    }
}

fn trigger_matches(trigger: &Trigger, event: &TriggerEvent, playbook: &str) -> bool {
    match (trigger, event) {
        (Trigger::Alert { condition }, TriggerEvent::Alert(alert)) => match condition {
            None => true,
            Some(c) => {
                match garrison_expr::eval_bool(
                    &format!("{playbook}.triggers.condition"),
                    c,
                    &json!({ "alert": alert }),
                ) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(playbook, error = %e, "alert trigger condition failed");
                        false
                    }
                }
            }
        },
        (
            Trigger::IncidentState { to, from },
            TriggerEvent::IncidentState {
                from: was, to: now, ..
            },
        ) => {
            to.as_ref().is_none_or(|t| t == now)
                && from.as_ref().is_none_or(|f| was.as_ref() == Some(f))
        }
        (Trigger::SlaBreach { stage }, TriggerEvent::SlaBreach { stage: s, .. }) => {
            stage.as_ref().is_none_or(|x| x == s)
        }
        _ => false,
    }
}
