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

use garrison_cases::{sla_breaches_between, SlaBreach, TimelineKind};
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use garrison_soar::{Soar, SoarError, TriggerEvent};
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
        tokio::spawn(async move {
            follow(config.poll_interval, shutdown, "incident", || {
                timeline_pass(&store, &soar)
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

async fn timeline_pass(store: &SqlStore, soar: &Soar) -> Result<usize, TriggerError> {
    let from = store.consumer_cursor(TIMELINE_CURSOR).await?.unwrap_or(0);
    let entries = store.timeline_after(from, BATCH).await?;
    let read = entries.len();
    let mut done = from;
    let mut result = Ok(read);
    for (tenant, entry) in entries {
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
            for stored in &page.incidents {
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
