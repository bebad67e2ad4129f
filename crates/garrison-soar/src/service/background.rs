//! Background work: resuming runs after a start, firing due timers, starting scheduled playbooks.

use std::sync::Arc;
use std::time::Duration;

use garrison_model::TenantId;
use garrison_playbook::{Event, Playbook, StepStatus, Trigger};
use garrison_store::PlaybookRepo;
use jiff::Timestamp;
use serde_json::{json, Value as Json};
use tokio::sync::watch;

use crate::store::timer_from_record;

use super::{secret_hash, Soar, SoarError, StartRun};

impl Soar {
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
                                by_trigger: Some(i),
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
