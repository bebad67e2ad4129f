//! The live detector: follows the event log from its committed position.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use garrison_bus::EventLog;
use garrison_model::{TenantId, Timestamp};
use garrison_pipeline::codec;
use garrison_sigma::LoadOptions;
use garrison_store::{
    DetectionOutcome, DetectionRepo, EventRepo, EventRow, IndicatorRepo, PlaceholderRepo,
};
use tokio::sync::watch;

use crate::engine::{evaluate, Evaluated, TenantRules};
use crate::intel::TenantIntel;
use crate::telemetry;
use crate::{DetectConfig, DetectError};

/// The consumer name under which the detector commits its log position.
pub const DETECTOR: &str = "detector";
/// How often an idle detector looks for rule changes.
const IDLE_REFRESH: Duration = Duration::from_secs(2);

/// A batch's alerts on their way into the store.
struct PendingCommit {
    task: tokio::task::JoinHandle<Result<DetectionOutcome, garrison_store::StoreError>>,
    /// The log position the commit moves to.
    end: u64,
    /// When each event of the batch was received (µs), for the lag histogram.
    received: Vec<i64>,
    events: u64,
    unreadable: u64,
}

/// Follows the log, runs every tenant's enabled rules, folds the hits into alerts.
pub struct Detector<S> {
    store: Arc<S>,
    log: EventLog,
    config: DetectConfig,
    options: LoadOptions,
    position: watch::Sender<u64>,
    tenants: HashMap<TenantId, TenantRules>,
    /// Active indicators per tenant (tenants without any are absent).
    intel: HashMap<TenantId, Arc<TenantIntel>>,
    last_refresh: Option<Instant>,
    /// Where a failing pass is reported (component `detector`) until one succeeds again.
    pub health: garrison_model::health::Health,
}

impl<S: DetectionRepo + EventRepo + IndicatorRepo + PlaceholderRepo + 'static> Detector<S> {
    /// Starts from the detector's committed position (or the oldest position still in the log,
    /// if the log was trimmed past it). The receiver tracks the position: the indexer keeps the
    /// segments the detector has not read yet.
    pub async fn new(
        store: Arc<S>,
        log: EventLog,
        config: DetectConfig,
    ) -> Result<(Self, watch::Receiver<u64>), DetectError> {
        let committed = store.consumer_position(DETECTOR).await?;
        let oldest = log.oldest_position();
        let position = if committed < oldest {
            tracing::warn!(
                committed,
                oldest,
                "the event log no longer holds the detector's position; detection resumes at the oldest event kept"
            );
            oldest
        } else {
            committed
        };
        let (sender, receiver) = watch::channel(position);
        Ok((
            Detector {
                store,
                log,
                config,
                options: LoadOptions::default(),
                position: sender,
                tenants: HashMap::new(),
                intel: HashMap::new(),
                last_refresh: None,
                health: Default::default(),
            },
            receiver,
        ))
    }

    /// The log position detection has committed.
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// Rules compiled per tenant, and how many of them.
    pub fn loaded_rules(&self) -> Vec<(TenantId, usize)> {
        let mut out: Vec<_> = self.tenants.iter().map(|(t, r)| (*t, r.len())).collect();
        out.sort();
        out
    }

    /// Indicators indexed per tenant, and how many of them.
    pub fn loaded_indicators(&self) -> Vec<(TenantId, usize)> {
        let mut out: Vec<_> = self.intel.iter().map(|(t, i)| (*t, i.len())).collect();
        out.sort();
        out
    }

    /// Rebuilds the indicator sets of tenants whose indicators changed. Returns whether any did.
    ///
    /// Only active indicators are loaded; one that expires while loaded scores 0 from then on
    /// and raises nothing.
    pub async fn refresh_indicators(&mut self) -> Result<bool, DetectError> {
        let wanted: HashMap<TenantId, i64> = self
            .store
            .all_indicators_revisions()
            .await?
            .into_iter()
            .collect();
        let before = self.intel.len();
        self.intel.retain(|tenant, _| wanted.contains_key(tenant));
        let mut changed = before != self.intel.len();
        for (tenant, revision) in wanted {
            if self
                .intel
                .get(&tenant)
                .is_some_and(|i| i.revision == revision)
            {
                continue;
            }
            changed = true;
            // The revision is read first: a change racing with this lands in the next refresh.
            let stored = self
                .store
                .active_indicators(tenant, Timestamp::now())
                .await?;
            let started = Instant::now();
            let built = tokio::task::spawn_blocking(move || TenantIntel::build(revision, &stored))
                .await
                .map_err(|e| DetectError::Worker(e.to_string()))?;
            if built.rejected > 0 {
                tracing::warn!(tenant = %tenant, rejected = built.rejected, "stored indicators that do not parse were skipped");
            }
            tracing::info!(
                tenant = %tenant,
                indicators = built.len(),
                seconds = started.elapsed().as_secs_f64(),
                "indicators loaded for detection"
            );
            telemetry::indicators_loaded(tenant, built.len());
            // A tenant whose indicators are all gone or expired keeps its (empty) entry, so the
            // revision is remembered and nothing is reloaded until it changes.
            self.intel.insert(tenant, Arc::new(built));
        }
        Ok(changed)
    }

    /// Rebuilds the rule sets of tenants whose rules changed, and the indicator sets of those
    /// whose indicators changed. Returns whether any did.
    pub async fn refresh_rules(&mut self) -> Result<bool, DetectError> {
        self.last_refresh = Some(Instant::now());
        let indicators_changed = self.refresh_indicators().await?;
        let wanted: HashMap<TenantId, i64> = self
            .store
            .all_rules_revisions()
            .await?
            .into_iter()
            .collect();
        let before = self.tenants.len();
        self.tenants.retain(|tenant, _| wanted.contains_key(tenant));
        let mut changed = before != self.tenants.len();
        for (tenant, revision) in wanted {
            if self
                .tenants
                .get(&tenant)
                .is_some_and(|r| r.revision == revision)
            {
                continue;
            }
            changed = true;
            // The revision is read first: a change racing with this lands in the next refresh.
            let rules = self.store.list_rules(tenant, true).await?;
            if rules.is_empty() {
                self.tenants.remove(&tenant);
                telemetry::rules_loaded(tenant, 0);
                continue;
            }
            // The tenant's placeholder values (a change bumps the revision: rebuilt here).
            let mut options = self.options.clone();
            for placeholder in self.store.placeholders(tenant).await? {
                if let Some(values) = placeholder.values {
                    options.placeholders.insert(placeholder.name, values);
                }
            }
            let started = Instant::now();
            let built =
                tokio::task::spawn_blocking(move || TenantRules::build(revision, &rules, &options))
                    .await
                    .map_err(|e| DetectError::Worker(e.to_string()))?;
            // Rules waiting for placeholder values are expected (they load once the tenant
            // sets them): one line for all of them, a warning for each other failure.
            let (waiting, failed): (Vec<_>, Vec<_>) = built
                .rejected
                .iter()
                .partition(|e| e.reason.contains("unresolved placeholder"));
            if !waiting.is_empty() {
                tracing::info!(tenant = %tenant, rules = waiting.len(), "enabled rules wait for placeholder values (garrison placeholder set)");
            }
            for error in failed.iter().take(20) {
                tracing::warn!(tenant = %tenant, %error, "enabled rule does not compile; skipped");
            }
            tracing::info!(
                tenant = %tenant,
                rules = built.len(),
                rejected = built.rejected.len(),
                seconds = started.elapsed().as_secs_f64(),
                "detection rules loaded"
            );
            telemetry::rules_loaded(tenant, built.len());
            self.tenants.insert(tenant, built);
        }
        Ok(changed || indicators_changed)
    }

    fn threads(&self) -> usize {
        match self.config.threads {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        }
    }

    fn refresh_due(&self) -> bool {
        self.last_refresh
            .is_none_or(|at| at.elapsed() >= self.config.rules_refresh)
    }

    /// Detects on what the log holds now; returns how many events were read.
    ///
    /// Batches are pipelined: while one batch's alerts are committed (with SQLite that may wait
    /// for the indexer's transaction), the next one is read and evaluated. Commits stay in log
    /// order, and the position moves only with a commit.
    pub async fn run_once(&mut self) -> Result<usize, DetectError> {
        let committed = self.log.committed_end();
        let mut pending: Option<PendingCommit> = None;
        let result = self.pipeline(committed, &mut pending).await;
        // Whatever happened, a commit in flight is finished (or failed) before returning.
        let finished = match pending.take() {
            Some(commit) => self.finish(commit).await,
            None => Ok(()),
        };
        let total = result?;
        finished?;
        Ok(total)
    }

    async fn pipeline(
        &mut self,
        committed: u64,
        pending: &mut Option<PendingCommit>,
    ) -> Result<usize, DetectError> {
        let mut total = 0;
        let mut start = self.position();
        loop {
            if self.refresh_due() {
                self.refresh_rules().await?;
            }
            if start >= committed {
                return Ok(total);
            }
            let mut reader = self.log.reader(start);
            let mut rows: Vec<EventRow> = Vec::new();
            let mut end = start;
            while rows.len() < self.config.max_batch_events {
                let entries = reader.read(committed, 1)?;
                let Some(entry) = entries.into_iter().next() else {
                    break;
                };
                match codec::decode_without_search_text(&entry.payload) {
                    Ok(batch) => rows.extend(batch),
                    Err(e) => {
                        tracing::error!(position = entry.position_after, error = %e, "undecodable log entry skipped by detection");
                        telemetry::detection_error();
                    }
                }
                end = entry.position_after;
            }
            if end == start {
                return Ok(total);
            }
            let (rows, evaluated) = self.evaluate(rows).await?;
            total += rows.len();
            if let Some(commit) = pending.take() {
                self.finish(commit).await?;
            }
            let store = self.store.clone();
            let hits = evaluated.hits;
            // One line per match, so an alert's path can be followed from the event that made
            // it (and, through `log_end`, to the ingest request that brought the event).
            if tracing::enabled!(tracing::Level::DEBUG) {
                for hit in &hits {
                    tracing::debug!(tenant = %hit.tenant_id, alert_id = %hit.alert_id, event_id = %hit.event_id, rule = %hit.rule_id, log_end = end, "event matched");
                }
            }
            let task =
                tokio::spawn(async move { store.record_detections(&hits, DETECTOR, end).await });
            *pending = Some(PendingCommit {
                task,
                end,
                received: rows.iter().map(|r| r.received.as_microsecond()).collect(),
                events: evaluated.events,
                unreadable: evaluated.unreadable,
            });
            start = end;
        }
    }

    /// Waits for a batch's commit, then moves the position and records the metrics.
    async fn finish(&mut self, commit: PendingCommit) -> Result<(), DetectError> {
        let outcome = commit
            .task
            .await
            .map_err(|e| DetectError::Worker(e.to_string()))??;
        self.position.send_replace(commit.end);
        telemetry::batch_committed(
            Timestamp::now().as_microsecond(),
            &commit.received,
            commit.events,
            outcome.hits_new,
            outcome.alerts_created,
            commit.unreadable,
            self.log.committed_end().saturating_sub(commit.end),
        );
        Ok(())
    }

    /// Evaluates a batch off the async runtime (it is CPU work on every core).
    async fn evaluate(
        &mut self,
        rows: Vec<EventRow>,
    ) -> Result<(Vec<EventRow>, Evaluated), DetectError> {
        let mut tenants = std::mem::take(&mut self.tenants);
        let intel = self.intel.clone();
        let config = self.config.clone();
        let threads = self.threads();
        let joined = tokio::task::spawn_blocking(move || {
            let evaluated = evaluate(&rows, &mut tenants, &intel, &config, threads);
            (tenants, rows, evaluated)
        })
        .await;
        match joined {
            Ok((tenants, rows, evaluated)) => {
                self.tenants = tenants;
                Ok((rows, evaluated))
            }
            Err(e) => {
                // The rule sets went with the worker: rebuild them before the retry.
                self.last_refresh = None;
                Err(DetectError::Worker(e.to_string()))
            }
        }
    }

    /// Runs until `shutdown` turns true, waking whenever the log grows.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut committed = self.log.watch_committed();
        loop {
            let pass = self.run_once().await;
            let failed = pass.is_err();
            self.health.pass(DETECTOR, pass.map(|_| ()));
            if failed {
                telemetry::detection_error();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            if *committed.borrow_and_update() > self.position() {
                continue;
            }
            telemetry::lag_bytes(0);
            tokio::select! {
                changed = committed.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
                // Look for rule changes now and then even when idle.
                _ = tokio::time::sleep(self.config.rules_refresh.max(IDLE_REFRESH)) => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}
