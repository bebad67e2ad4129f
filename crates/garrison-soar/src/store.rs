//! Runs in the SQL store: the encoding of a [`RunState`] into a [`RunWrite`] (large outputs
//! stored once by hash and referenced) and back, and the group-commit writer every run's
//! writes go through.

use std::sync::Arc;

use garrison_model::TenantId;
use garrison_playbook::{RunState, Timer, TimerKind};
use garrison_store::{PlaybookRepo, RunWrite, SqlStore, TimerRecord, WriteOutcome};
use jiff::Timestamp;
use serde_json::{json, Value as Json};
use sha2::Digest;
use tokio::sync::{mpsc, oneshot};

/// Outputs larger than this (as JSON text) are stored once by hash and referenced.
pub const BLOB_THRESHOLD: usize = 64 * 1024;

const BLOB_KEY: &str = "$blob";

/// A failure to read or write a run (database, serialization, a missing blob, the writer
/// stopped).
#[derive(Debug, thiserror::Error)]
#[error("run store: {0}")]
pub struct StoreError(pub String);

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// Replaces large outputs by `{"$blob": "sha256:...", "bytes": N}`; returns the blobs.
fn externalize(state: &mut RunState) -> Vec<(String, String)> {
    let mut blobs = Vec::new();
    let mut take = |value: &mut Option<Json>| {
        let Some(v) = value else { return };
        if v.get(BLOB_KEY).is_some() {
            return;
        }
        let text = v.to_string();
        if text.len() <= BLOB_THRESHOLD {
            return;
        }
        let hash = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(text.as_bytes()))
        );
        *value = Some(json!({BLOB_KEY: hash, "bytes": text.len()}));
        blobs.push((hash, text));
    };
    for step in &mut state.steps {
        take(&mut step.output);
        for item in &mut step.items {
            take(&mut item.output);
        }
    }
    blobs
}

async fn internalize(
    repo: &SqlStore,
    tenant: TenantId,
    state: &mut RunState,
) -> Result<(), StoreError> {
    let is_ref = |v: &Option<Json>| {
        v.as_ref()
            .and_then(|v| v.get(BLOB_KEY))
            .and_then(Json::as_str)
            .map(str::to_owned)
    };
    let mut refs = Vec::new();
    for (i, step) in state.steps.iter().enumerate() {
        if let Some(h) = is_ref(&step.output) {
            refs.push((i, None, h));
        }
        for (k, item) in step.items.iter().enumerate() {
            if let Some(h) = is_ref(&item.output) {
                refs.push((i, Some(k), h));
            }
        }
    }
    for (i, k, hash) in refs {
        let text = repo
            .blob(tenant, &hash)
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError(format!("blob {hash} is missing")))?;
        let value: Json = serde_json::from_str(&text).map_err(backend)?;
        let Some(step) = state.steps.get_mut(i) else {
            continue;
        };
        match k {
            None => step.output = Some(value),
            Some(k) => {
                if let Some(item) = step.items.get_mut(k) {
                    item.output = Some(value);
                }
            }
        }
    }
    Ok(())
}

/// A timer as a row.
pub fn timer_record(tenant: TenantId, timer: &Timer) -> Result<TimerRecord, StoreError> {
    Ok(TimerRecord {
        tenant_id: tenant,
        timer_id: timer.id.clone(),
        run_id: timer.run_id.clone(),
        due: timer.due,
        payload: serde_json::to_string(&timer.kind).map_err(backend)?,
    })
}

/// A row as a timer.
pub fn timer_from_record(record: &TimerRecord) -> Result<Timer, StoreError> {
    let kind: TimerKind = serde_json::from_str(&record.payload).map_err(backend)?;
    Ok(Timer {
        id: record.timer_id.clone(),
        run_id: record.run_id.clone(),
        due: record.due,
        kind,
    })
}

/// The write of a run state (expected revision `None` creates it).
pub fn run_write(
    tenant: TenantId,
    state: &RunState,
    expected_rev: Option<i64>,
    add_timers: &[Timer],
    remove_timers: &[String],
    now: Timestamp,
) -> Result<RunWrite, StoreError> {
    let mut stored = state.clone();
    let blobs = externalize(&mut stored);
    let text = serde_json::to_string(&stored).map_err(backend)?;
    Ok(RunWrite {
        tenant_id: tenant,
        run_id: state.run_id.clone(),
        playbook: state.playbook.clone(),
        version: i64::from(state.version),
        status: status_name(state),
        state: text,
        active: !state.is_quiescent(),
        expected_rev,
        add_timers: add_timers
            .iter()
            .map(|t| timer_record(tenant, t))
            .collect::<Result<_, _>>()?,
        remove_timers: remove_timers.to_vec(),
        blobs,
        audit: Vec::new(),
        now,
    })
}

/// The run's status as stored in its own column (`pending`, `running`, ...).
pub fn status_name(state: &RunState) -> String {
    serde_json::to_value(state.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Loads a run's state (large outputs put back) and revision.
pub async fn load_state(
    repo: &SqlStore,
    tenant: TenantId,
    run_id: &str,
) -> Result<Option<(RunState, i64)>, StoreError> {
    let Some(record) = repo.load_run(tenant, run_id).await.map_err(backend)? else {
        return Ok(None);
    };
    let mut state: RunState = serde_json::from_str(&record.state).map_err(backend)?;
    internalize(repo, tenant, &mut state).await?;
    Ok(Some((state, record.rev)))
}

type Job = (RunWrite, oneshot::Sender<Result<WriteOutcome, String>>);

/// Group commit: writes queued while one transaction commits go together in the next, so a
/// burst of runs costs one transaction (one fsync) per batch instead of one per run.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

/// Most writes in one transaction.
const MAX_BATCH: usize = 256;

impl Writer {
    /// Starts the writer task on the current runtime.
    pub fn spawn(repo: Arc<SqlStore>) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let writes: Vec<RunWrite> = batch.iter().map(|(w, _)| w.clone()).collect();
                match repo.commit_runs(&writes).await {
                    Ok(outcomes) => {
                        for ((_, reply), outcome) in batch.drain(..).zip(outcomes) {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(e) if writes.len() > 1 => {
                        // One bad write must not fail the others: retry them one by one.
                        tracing::warn!(error = %e, writes = writes.len(), "batched run write failed; retrying one by one");
                        for (write, reply) in batch.drain(..) {
                            let result = repo
                                .commit_runs(std::slice::from_ref(&write))
                                .await
                                .map_err(|e| e.to_string())
                                .and_then(|mut o| o.pop().ok_or_else(|| "no outcome".into()));
                            let _ = reply.send(result);
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for (_, reply) in batch.drain(..) {
                            let _ = reply.send(Err(message.clone()));
                        }
                    }
                }
            }
        });
        Writer { tx }
    }

    /// Queues a write and waits until it is committed.
    pub async fn write(&self, write: RunWrite) -> Result<WriteOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((write, reply))
            .await
            .map_err(|_| StoreError("the run writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError("the run writer stopped".into()))?
            .map_err(StoreError)
    }
}
