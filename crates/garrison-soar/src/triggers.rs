//! Playbook triggers from the live pipeline: new alerts, incident state changes and SLA
//! breaches start the playbooks that subscribe to them (`Soar::dispatch_trigger`).
//!
//! Each follower reads rows after a cursor committed in `consumer_positions`, dispatches them,
//! then commits the cursor. A crash between the dispatch and the commit replays those rows, and
//! the dispatch dedupes on the occurrence (alert id, timeline entry id, incident and SLA
//! stage), so a replay starts nothing twice and a crash loses nothing.
//!
//! The SLA checker only writes: for each open incident it appends an `sla_breached` timeline
//! entry per breach since its last committed check, and the timeline follower dispatches it
//! like any other entry.

use std::time::Duration;

use crate::{Soar, SoarError, TriggerEvent};
use garrison_cases::{sla_breaches_between, SlaBreach, TimelineKind};
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use garrison_store::{IncidentQuery, IncidentRepo, SqlStore, StoreError, TenantRepo};
use serde_json::{json, Value as Json};
use std::sync::Arc;
use tokio::sync::watch;

/// The cursor of the alert follower: the last alert sequence number dispatched.
pub const ALERT_CURSOR: &str = "triggers.alerts";
/// The cursor of the timeline follower: the last timeline entry dispatched.
pub const TIMELINE_CURSOR: &str = "triggers.timeline";
/// The SLA checker's last check (microseconds since the epoch).
pub const SLA_CURSOR: &str = "triggers.sla_checked_us";

/// Rows read per pass.
const BATCH: usize = 500;

/// How often the followers look for new rows and the SLA checker runs.
#[derive(Clone, Copy, Debug)]
pub struct TriggerConfig {
    pub poll_interval: Duration,
    pub sla_interval: Duration,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            poll_interval: Duration::from_millis(250),
            sla_interval: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum TriggerError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("playbooks: {0}")]
    Soar(#[from] SoarError),
    #[error("cannot encode {0}: {1}")]
    Encode(&'static str, serde_json::Error),
}

/// On the very first start, the followers begin at the present (alerts and incidents that
/// existed before triggers were wired start nothing). Call before the detector runs, so that
/// no alert falls between the first read of the cursor and its creation.
pub async fn init_cursors(store: &SqlStore) -> Result<(), StoreError> {
    if store.consumer_cursor(ALERT_CURSOR).await?.is_none() {
        let max = store.max_alert_seq().await?;
        store.set_consumer_cursor(ALERT_CURSOR, max).await?;
    }
    if store.consumer_cursor(TIMELINE_CURSOR).await?.is_none() {
        let max = store.max_timeline_seq().await?;
        store.set_consumer_cursor(TIMELINE_CURSOR, max).await?;
    }
    if store.consumer_cursor(SLA_CURSOR).await?.is_none() {
        store
            .set_consumer_cursor(SLA_CURSOR, to_micros(Timestamp::now()))
            .await?;
    }
    Ok(())
}

/// Spawns the alert follower, the timeline follower and the SLA checker.
pub fn spawn(
    store: Arc<SqlStore>,
    soar: Soar,
    config: TriggerConfig,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let alerts = {
        let (store, soar, shutdown) = (store.clone(), soar.clone(), shutdown.clone());
        tokio::spawn(async move {
            follow(config.poll_interval, shutdown, "alert", || {
                alert_pass(&store, &soar)
            })
            .await
        })
    };
    let timeline = {
        let (store, shutdown) = (store.clone(), shutdown.clone());
        let gap = Gap::default();
        tokio::spawn(async move {
            follow(config.poll_interval, shutdown, "incident", || {
                timeline_pass(&store, &soar, &gap)
            })
            .await
        })
    };
    let sla = tokio::spawn(async move {
        follow(config.sla_interval, shutdown, "SLA", || sla_pass(&store)).await
    });
    vec![alerts, timeline, sla]
}

/// Runs `pass` until shutdown: again at once after a full batch, else after `every`.
async fn follow<F, Fut>(
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, TriggerError>>,
{
    loop {
        if *shutdown.borrow() {
            return;
        }
        let wait = match pass().await {
            Ok(n) if n >= BATCH => Duration::ZERO,
            Ok(_) => every,
            Err(e) => {
                tracing::warn!(error = %e, "{what} trigger pass failed; retrying");
                every
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Commits `done` if it moved, then returns `result`.
async fn commit(
    store: &SqlStore,
    cursor: &str,
    from: i64,
    done: i64,
    result: Result<usize, TriggerError>,
) -> Result<usize, TriggerError> {
    if done > from {
        store.set_consumer_cursor(cursor, done).await?;
    }
    result
}

async fn alert_pass(store: &SqlStore, soar: &Soar) -> Result<usize, TriggerError> {
    let from = store.consumer_cursor(ALERT_CURSOR).await?.unwrap_or(0);
    let alerts = store.alerts_created_after(from, BATCH).await?;
    let read = alerts.len();
    let mut done = from;
    let mut result = Ok(read);
    for (seq, alert) in alerts {
        let event = match serde_json::to_value(&alert) {
            Ok(json) => TriggerEvent::Alert(json),
            Err(e) => {
                result = Err(TriggerError::Encode("alert", e));
                break;
            }
        };
        if let Err(e) = soar
            .dispatch_trigger(alert.tenant_id, &event, &alert.alert_id)
            .await
        {
            result = Err(e.into());
            break;
        }
        done = seq;
    }
    commit(store, ALERT_CURSOR, from, done, result).await
}

/// How long a missing timeline sequence number is waited for before it is skipped.
const GAP_GRACE: Duration = Duration::from_secs(5);

/// Timeline entries are written by many transactions at once: on PostgreSQL a later sequence
/// number can commit before an earlier one. The follower stops before a missing number and
/// waits up to [`GAP_GRACE`] for it (a rolled-back insert leaves a gap for ever).
#[derive(Default)]
struct Gap {
    waiting: std::sync::Mutex<Option<(i64, std::time::Instant)>>,
}

impl Gap {
    /// Whether the follower may go past the missing sequence number `missing`.
    fn may_skip(&self, missing: i64, grace: Duration) -> bool {
        let Ok(mut waiting) = self.waiting.lock() else {
            return true;
        };
        match *waiting {
            Some((seq, since)) if seq == missing => since.elapsed() >= grace,
            _ => {
                *waiting = Some((missing, std::time::Instant::now()));
                grace.is_zero()
            }
        }
    }
}

async fn timeline_pass(store: &SqlStore, soar: &Soar, gap: &Gap) -> Result<usize, TriggerError> {
    let from = store.consumer_cursor(TIMELINE_CURSOR).await?.unwrap_or(0);
    let entries = store.timeline_after(from, BATCH).await?;
    let read = entries.len();
    let mut done = from;
    let mut result = Ok(read);
    for (tenant, entry) in entries {
        if entry.seq > done + 1 && !gap.may_skip(done + 1, GAP_GRACE) {
            // Wait for the missing entry (next pass), not at once.
            result = Ok(0);
            break;
        }
        if let Err(e) = dispatch_entry(store, soar, tenant, &entry).await {
            result = Err(e);
            break;
        }
        done = entry.seq;
    }
    commit(store, TIMELINE_CURSOR, from, done, result).await
}

/// The trigger event of a timeline entry (state changes and SLA breaches), dispatched.
async fn dispatch_entry(
    store: &SqlStore,
    soar: &Soar,
    tenant: TenantId,
    entry: &garrison_store::TimelineEntry,
) -> Result<(), TriggerError> {
    let (event, dedupe) = match &entry.event.kind {
        TimelineKind::Created { state } => (
            TriggerEvent::IncidentState {
                from: None,
                to: state.clone(),
                incident: incident_json(store, tenant, &entry.incident_id).await?,
            },
            format!("timeline:{}", entry.seq),
        ),
        TimelineKind::StateChanged { from, to } => (
            TriggerEvent::IncidentState {
                from: Some(from.clone()),
                to: to.clone(),
                incident: incident_json(store, tenant, &entry.incident_id).await?,
            },
            format!("timeline:{}", entry.seq),
        ),
        TimelineKind::SlaBreached { clock, .. } => (
            TriggerEvent::SlaBreach {
                stage: clock.as_str().to_string(),
                incident: incident_json(store, tenant, &entry.incident_id).await?,
            },
            format!("sla:{}:{}", entry.incident_id, clock.as_str()),
        ),
        _ => return Ok(()),
    };
    soar.dispatch_trigger(tenant, &event, &dedupe).await?;
    Ok(())
}

/// The incident as it is now (`{"id": ...}` if it no longer exists).
async fn incident_json(
    store: &SqlStore,
    tenant: TenantId,
    incident_id: &str,
) -> Result<Json, TriggerError> {
    match store.incident(tenant, incident_id).await? {
        Some(stored) => {
            serde_json::to_value(&stored.incident).map_err(|e| TriggerError::Encode("incident", e))
        }
        None => Ok(json!({ "id": incident_id })),
    }
}

/// Appends a timeline entry for every breach of an open incident since the last committed
/// check, then commits this check's time. Returns 0 (the checker never hurries).
async fn sla_pass(store: &SqlStore) -> Result<usize, TriggerError> {
    let now = Timestamp::now();
    let now_us = to_micros(now);
    let since_us = store.consumer_cursor(SLA_CURSOR).await?.unwrap_or(now_us);
    if since_us >= now_us {
        return Ok(0);
    }
    let since = from_micros(since_us);
    for tenant in store.list_tenants().await? {
        let policy = store.sla_policy(tenant.id).await?;
        let mut cursor = None;
        loop {
            let page = store
                .list_incidents(
                    tenant.id,
                    &IncidentQuery {
                        open: Some(true),
                        limit: 500,
                        cursor: cursor.take(),
                        ..Default::default()
                    },
                )
                .await?;
            for stored in &page.items {
                for breach in sla_breaches_between(&stored.incident, &policy, since, now) {
                    // A crash after the append and before the commit checks this range again.
                    if !already_recorded(store, tenant.id, &breach).await? {
                        store
                            .append_timeline(
                                tenant.id,
                                &breach.incident_id,
                                &[breach.timeline_event()],
                            )
                            .await?;
                    }
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    store.set_consumer_cursor(SLA_CURSOR, now_us).await?;
    Ok(0)
}

async fn already_recorded(
    store: &SqlStore,
    tenant: TenantId,
    breach: &SlaBreach,
) -> Result<bool, TriggerError> {
    let mut after = 0;
    loop {
        let entries = store
            .timeline(tenant, &breach.incident_id, after, 1000)
            .await?;
        let Some(last) = entries.last() else {
            return Ok(false);
        };
        after = last.seq;
        if entries.iter().any(|e| {
            matches!(&e.event.kind, TimelineKind::SlaBreached { clock, .. } if *clock == breach.clock)
        }) {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use garrison_cases::{Incident, Severity, SlaPolicy, SlaTargets};
    use garrison_model::SignedDuration;
    use garrison_store::{PlaybookRepo, RunFilter};

    const ON_BREACH: &str = "name: on-breach\ntriggers:\n  - sla_breach: {stage: acknowledge}\nsteps:\n  - id: note\n    action: core.set\n    with: {stage: \"{{ trigger.stage }}\"}\n";

    async fn breaches(store: &SqlStore, tenant: TenantId, id: &str) -> usize {
        store
            .timeline(tenant, id, 0, 1000)
            .await
            .expect("timeline")
            .iter()
            .filter(|e| matches!(e.event.kind, TimelineKind::SlaBreached { .. }))
            .count()
    }

    #[test]
    fn a_gap_is_waited_for_then_skipped() {
        let gap = Gap::default();
        let grace = Duration::from_millis(50);
        assert!(!gap.may_skip(7, grace), "first sight: wait");
        assert!(!gap.may_skip(7, grace), "within the grace: wait");
        std::thread::sleep(Duration::from_millis(60));
        assert!(gap.may_skip(7, grace), "after the grace: skip");
        assert!(!gap.may_skip(9, grace), "another gap: wait again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_breach_is_recorded_and_dispatched_once_even_when_a_check_is_replayed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Arc::new(SqlStore::connect(&url).await.expect("connect"));
        let tenant = store.ensure_tenant("t").await.expect("tenant").id;
        init_cursors(&store).await.expect("init");
        let soar = Soar::new(store.clone(), Default::default());
        soar.save_playbook(tenant, ON_BREACH, None)
            .await
            .expect("playbook");
        let policy = SlaPolicy {
            default: SlaTargets {
                acknowledge_secs: 1,
                analysis_secs: 3600,
                disposal_secs: 3600,
            },
            ..Default::default()
        };
        let now = Timestamp::now();
        store
            .set_sla_policy(tenant, &policy, now)
            .await
            .expect("policy");
        let workflow = store
            .workflow(tenant, None)
            .await
            .expect("workflow")
            .workflow;
        let opened = now - SignedDuration::from_secs(5);
        let (incident, created) =
            Incident::open(&workflow, "inc-1", "late", Severity::High, "ana", opened);
        store
            .create_incident(tenant, &incident, &[created], &[], &[])
            .await
            .expect("incident");

        // The last check was before the incident was due: this pass finds the breach.
        let before = to_micros(opened);
        store
            .set_consumer_cursor(SLA_CURSOR, before)
            .await
            .expect("cursor");
        sla_pass(&store).await.expect("check");
        assert_eq!(breaches(&store, tenant, "inc-1").await, 1);
        // A crash before the commit replays the range: no second entry.
        store
            .set_consumer_cursor(SLA_CURSOR, before)
            .await
            .expect("cursor");
        sla_pass(&store).await.expect("check again");
        assert_eq!(breaches(&store, tenant, "inc-1").await, 1);
        // Nothing new since the last check.
        sla_pass(&store).await.expect("check later");
        assert_eq!(breaches(&store, tenant, "inc-1").await, 1);

        // The timeline follower starts the playbook once, also when its range is replayed.
        let timeline_from = store
            .consumer_cursor(TIMELINE_CURSOR)
            .await
            .expect("cursor")
            .unwrap_or(0);
        let gap = Gap::default();
        timeline_pass(&store, &soar, &gap).await.expect("dispatch");
        store
            .set_consumer_cursor(TIMELINE_CURSOR, timeline_from)
            .await
            .expect("cursor");
        timeline_pass(&store, &soar, &gap)
            .await
            .expect("dispatch again");
        let runs = store
            .list_runs(
                tenant,
                &RunFilter {
                    playbook: Some("on-breach".into()),
                    limit: 100,
                    ..Default::default()
                },
                false,
            )
            .await
            .expect("runs");
        assert_eq!(runs.len(), 1, "{runs:?}");
    }
}
