//! Runs under their lock: start, load, deliver events, save; then child runs and parents told.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use garrison_model::TenantId;
use garrison_playbook::{advance, Effect, Event, ParentRef, RunState, RunStatus, TimerKind};
use garrison_store::{PlaybookRepo, WriteOutcome};
use jiff::Timestamp;
use serde_json::{json, Value as Json};

use crate::store::{load_state, run_write};

use super::{RunLock, Soar, SoarError, StartRun, Work};

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Soar {
    pub(super) fn lock(&self, tenant: TenantId, run_id: &str) -> RunLock {
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
        let started = match req.by_trigger {
            Some(i) => match pb.triggers.get(i) {
                Some(trigger) => pb
                    .trigger_inputs(trigger, &req.trigger)
                    .map_err(|e| (format!("the {} trigger's inputs", trigger.kind()), e))
                    .and_then(|inputs| {
                        RunState::new(&run_id, &pb, version, &inputs, req.trigger.clone(), now)
                            .map_err(|e| (format!("the {} trigger's inputs", trigger.kind()), e.0))
                    }),
                None => Err((
                    "the trigger".to_string(),
                    vec![format!("trigger {i} is not in version {version}")],
                )),
            },
            None => RunState::new(&run_id, &pb, version, &req.inputs, req.trigger.clone(), now)
                .map_err(|e| ("inputs".to_string(), e.0)),
        };
        let mut state = match started {
            Ok(state) => state,
            Err((what, problems)) => {
                if req.by_trigger.is_some() {
                    // Kept as a failed run: the reason is where an analyst looks for runs.
                    let reason = format!("not started: {what}: {}", problems.join("; "));
                    let failed = RunState::not_started(
                        &run_id,
                        &pb,
                        version,
                        req.trigger.clone(),
                        reason,
                        now,
                    );
                    let mut work = Work::new(tenant, pb, failed, None);
                    match self.persist(&mut work).await {
                        Ok(()) | Err(SoarError::Refused(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                return Err(SoarError::Inputs(garrison_playbook::InputErrors(problems)));
            }
        };
        state.parent = req.parent;
        state.dry_run = req.dry_run;
        let mut work = Work::new(tenant, pb, state, None);
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

    pub(super) async fn run_event(
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
    pub(super) async fn run_event_locked(
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
            let mut work = Work::new(tenant, pb, state, Some(rev));
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

    pub(super) fn apply(&self, work: &mut Work, event: Event) {
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

    pub(super) async fn persist(&self, work: &mut Work) -> Result<(), SoarError> {
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
                                    by_trigger: None,
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
}
