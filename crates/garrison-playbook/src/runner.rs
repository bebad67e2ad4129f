//! Drives runs: loads a state from the [`RunStore`], applies an event with [`advance`], saves the
//! state and its timer rows in one write, then carries out the effects. Everything a run needs
//! is in the store, so a new runner over the same store resumes where a killed one stopped.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value as Json;
use tokio::sync::Mutex;

use crate::actions::{ActionExecutor, ActionRequest};
use crate::engine::{advance, Effect, Event, ParentRef, RunState, Timer};
use crate::model::{Playbook, RunStatus};
use crate::store::{Commit, RunStore, StoreError};

/// A runner failure.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// Store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run's playbook version is not in the catalog.
    #[error("playbook `{0}` version {1} is not loaded")]
    UnknownPlaybook(String, u32),
    /// Inputs rejected.
    #[error(transparent)]
    Inputs(#[from] crate::engine::InputErrors),
    /// The run does not exist.
    #[error("run `{0}` not found")]
    UnknownRun(String),
    /// Saving kept conflicting.
    #[error("run `{0}`: too many concurrent updates")]
    Contention(String),
}

/// Playbook versions by name. A version never changes once added.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    versions: HashMap<(String, u32), Arc<Playbook>>,
    latest: HashMap<String, u32>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a version (returns false and changes nothing when that version exists).
    pub fn add(&mut self, playbook: Playbook, version: u32) -> bool {
        let key = (playbook.name.clone(), version);
        if self.versions.contains_key(&key) {
            return false;
        }
        let latest = self.latest.entry(playbook.name.clone()).or_insert(version);
        if version > *latest {
            *latest = version;
        }
        self.versions.insert(key, Arc::new(playbook));
        true
    }

    /// A version (the latest when `None`).
    pub fn get(&self, name: &str, version: Option<u32>) -> Option<(Arc<Playbook>, u32)> {
        let v = match version {
            Some(v) => v,
            None => *self.latest.get(name)?,
        };
        self.versions
            .get(&(name.to_owned(), v))
            .map(|p| (p.clone(), v))
    }
}

/// Drives runs through a store and an executor.
pub struct Runner<S: RunStore, E: ActionExecutor> {
    store: Arc<S>,
    executor: Arc<E>,
    catalog: Catalog,
    outbox: Mutex<Vec<(String, Effect)>>,
}

impl<S: RunStore, E: ActionExecutor> Runner<S, E> {
    /// A runner.
    pub fn new(store: Arc<S>, executor: Arc<E>, catalog: Catalog) -> Self {
        Runner {
            store,
            executor,
            catalog,
            outbox: Mutex::new(Vec::new()),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Approval requests (and other effects for people) produced so far, taken out.
    pub async fn take_notifications(&self) -> Vec<(String, Effect)> {
        std::mem::take(&mut *self.outbox.lock().await)
    }

    /// Creates and starts a run; returns its id. Actions are sent by [`Runner::drive`].
    pub async fn start(
        &self,
        run_id: &str,
        playbook: &str,
        version: Option<u32>,
        inputs: &Json,
        trigger: Json,
        now: Timestamp,
    ) -> Result<String, RunnerError> {
        self.create(run_id, playbook, version, inputs, trigger, None, false, now)
            .await?;
        Ok(run_id.to_owned())
    }

    /// Creates and starts a dry run (example outputs, no I/O, no timers).
    pub async fn start_dry_run(
        &self,
        run_id: &str,
        playbook: &str,
        version: Option<u32>,
        inputs: &Json,
        now: Timestamp,
    ) -> Result<RunState, RunnerError> {
        self.create(
            run_id,
            playbook,
            version,
            inputs,
            Json::Null,
            None,
            true,
            now,
        )
        .await?;
        self.store
            .load(run_id)
            .await?
            .map(|(s, _)| s)
            .ok_or_else(|| RunnerError::UnknownRun(run_id.into()))
    }

    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        run_id: &str,
        playbook: &str,
        version: Option<u32>,
        inputs: &Json,
        trigger: Json,
        parent: Option<ParentRef>,
        dry: bool,
        now: Timestamp,
    ) -> Result<(), RunnerError> {
        let (pb, v) = self
            .catalog
            .get(playbook, version)
            .ok_or_else(|| RunnerError::UnknownPlaybook(playbook.into(), version.unwrap_or(0)))?;
        if self.store.load(run_id).await?.is_some() {
            return Ok(()); // deterministic ids: a second start is a no-op
        }
        let mut state = RunState::new(run_id, &pb, v, inputs, trigger, now)?;
        state.parent = parent;
        state.dry_run = dry;
        let effects = advance(&pb, &mut state, now, Event::Start);
        let timers = timers_of(&effects);
        match self.store.create(&state, &timers).await {
            Ok(_) | Err(StoreError::Exists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.after(run_id, &state, effects, now).await
    }

    /// Delivers an event to a run (loading, advancing and saving it; retried on a version
    /// conflict) and carries out the effects that are not action calls.
    pub async fn dispatch(
        &self,
        run_id: &str,
        event: Event,
        now: Timestamp,
    ) -> Result<RunStatus, RunnerError> {
        self.dispatch_inner(run_id, event, now, None).await
    }

    async fn dispatch_inner(
        &self,
        run_id: &str,
        event: Event,
        now: Timestamp,
        fired: Option<&str>,
    ) -> Result<RunStatus, RunnerError> {
        let mut queue: VecDeque<(String, Event, Option<String>)> = VecDeque::new();
        queue.push_back((run_id.to_owned(), event, fired.map(str::to_owned)));
        let mut first_status = None;
        while let Some((run, ev, fired)) = queue.pop_front() {
            let mut tries = 0;
            let (state, effects) = loop {
                tries += 1;
                let Some((mut state, version)) = self.store.load(&run).await? else {
                    return Err(RunnerError::UnknownRun(run));
                };
                let (pb, _) = self
                    .catalog
                    .get(&state.playbook, Some(state.version))
                    .ok_or_else(|| {
                        RunnerError::UnknownPlaybook(state.playbook.clone(), state.version)
                    })?;
                let effects = advance(&pb, &mut state, now, ev.clone());
                let timers = timers_of(&effects);
                let remove: Vec<String> = fired.iter().cloned().collect();
                match self
                    .store
                    .save(
                        &state,
                        version,
                        Commit {
                            add_timers: &timers,
                            remove_timers: &remove,
                        },
                    )
                    .await
                {
                    Ok(_) => break (state, effects),
                    Err(StoreError::Conflict { .. }) if tries < 16 => continue,
                    Err(StoreError::Conflict { .. }) => return Err(RunnerError::Contention(run)),
                    Err(e) => return Err(e.into()),
                }
            };
            if first_status.is_none() {
                first_status = Some(state.status);
            }
            for (r, e) in self.follow_ups(&run, &state, effects, now).await? {
                queue.push_back((r, e, None));
            }
        }
        Ok(first_status.unwrap_or(RunStatus::Pending))
    }

    async fn after(
        &self,
        run_id: &str,
        state: &RunState,
        effects: Vec<Effect>,
        now: Timestamp,
    ) -> Result<(), RunnerError> {
        for (r, e) in self.follow_ups(run_id, state, effects, now).await? {
            self.dispatch(&r, e, now).await?;
        }
        Ok(())
    }

    /// Carries out child-run and notification effects; returns events for other runs.
    async fn follow_ups(
        &self,
        run_id: &str,
        state: &RunState,
        effects: Vec<Effect>,
        now: Timestamp,
    ) -> Result<Vec<(String, Event)>, RunnerError> {
        let mut out = Vec::new();
        for eff in effects {
            match eff {
                Effect::StartSubPlaybook {
                    step,
                    child_run_id,
                    playbook,
                    version,
                    inputs,
                } => {
                    let parent = Some(ParentRef {
                        run_id: run_id.to_owned(),
                        step: step.clone(),
                    });
                    let created = Box::pin(self.create(
                        &child_run_id,
                        &playbook,
                        version,
                        &inputs,
                        Json::Null,
                        parent,
                        state.dry_run,
                        now,
                    ))
                    .await;
                    if let Err(e) = created {
                        out.push((
                            run_id.to_owned(),
                            Event::SubPlaybookFinished {
                                step,
                                status: RunStatus::Failed,
                                output: Json::String(e.to_string()),
                            },
                        ));
                    }
                }
                Effect::CancelSubPlaybook { child_run_id } => out.push((
                    child_run_id,
                    Event::Cancel {
                        by: format!("parent run {run_id}"),
                    },
                )),
                Effect::Complete { status } => {
                    if let Some(p) = &state.parent {
                        let output = serde_json::to_value(
                            state
                                .steps
                                .iter()
                                .map(|s| (s.id.clone(), s.output.clone().unwrap_or(Json::Null)))
                                .collect::<serde_json::Map<_, _>>(),
                        )
                        .unwrap_or(Json::Null);
                        out.push((
                            p.run_id.clone(),
                            Event::SubPlaybookFinished {
                                step: p.step.clone(),
                                status,
                                output,
                            },
                        ));
                    }
                }
                e @ Effect::RequestApproval { .. } => {
                    self.outbox.lock().await.push((run_id.to_owned(), e))
                }
                Effect::ExecuteAction { .. }
                | Effect::ExecuteUndo { .. }
                | Effect::ScheduleTimer(_)
                | Effect::CancelAction { .. } => {}
            }
        }
        Ok(out)
    }

    /// Sends the run's in-flight action attempts (as recorded in the stored state) to the
    /// executor and feeds back their results, at most `max_calls` calls; returns the calls made.
    /// After a crash the same attempts are sent again with the same idempotency keys.
    pub async fn drive(
        &self,
        run_id: &str,
        now: Timestamp,
        max_calls: usize,
    ) -> Result<usize, RunnerError> {
        let mut calls = 0;
        while calls < max_calls {
            let Some((state, _)) = self.store.load(run_id).await? else {
                return Err(RunnerError::UnknownRun(run_id.into()));
            };
            let (pb, _) = self
                .catalog
                .get(&state.playbook, Some(state.version))
                .ok_or_else(|| {
                    RunnerError::UnknownPlaybook(state.playbook.clone(), state.version)
                })?;
            let Some(effect) = state.in_flight(&pb).into_iter().next() else {
                break;
            };
            calls += 1;
            match effect {
                Effect::ExecuteAction {
                    step,
                    item,
                    attempt,
                    idempotency_key,
                    action,
                    input,
                } => {
                    let outcome = self
                        .executor
                        .execute(ActionRequest {
                            run_id: run_id.to_owned(),
                            step: step.clone(),
                            item,
                            attempt,
                            idempotency_key,
                            action,
                            input,
                        })
                        .await;
                    self.dispatch(
                        run_id,
                        Event::ActionFinished {
                            step,
                            item,
                            attempt,
                            result: outcome.result,
                            logs: outcome.logs,
                        },
                        now,
                    )
                    .await?;
                }
                Effect::ExecuteUndo {
                    lease,
                    action,
                    input,
                    attempt,
                    idempotency_key,
                    ..
                } => {
                    let outcome = self
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
                    self.dispatch(
                        run_id,
                        Event::UndoFinished {
                            lease,
                            attempt,
                            result: outcome.result,
                        },
                        now,
                    )
                    .await?;
                }
                _ => break,
            }
        }
        Ok(calls)
    }

    /// Fires the timers due at `now` (each is removed in the same write as the state change it
    /// causes); returns how many fired.
    pub async fn fire_due_timers(&self, now: Timestamp) -> Result<usize, RunnerError> {
        let due = self.store.due_timers(now, 1000).await?;
        let n = due.len();
        for t in due {
            let Timer {
                id, run_id, kind, ..
            } = t;
            match self
                .dispatch_inner(&run_id, Event::TimerFired(kind), now, Some(&id))
                .await
            {
                Ok(_) | Err(RunnerError::UnknownRun(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Drives every active run until no action is in flight and no timer is due at `now`.
    pub async fn run_until_idle(&self, now: Timestamp) -> Result<(), RunnerError> {
        for _ in 0..10_000 {
            let mut progress = self.fire_due_timers(now).await?;
            for run in self.store.active_runs().await? {
                progress += self.drive(&run, now, usize::MAX).await?;
            }
            if progress == 0 {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn timers_of(effects: &[Effect]) -> Vec<Timer> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::ScheduleTimer(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}
