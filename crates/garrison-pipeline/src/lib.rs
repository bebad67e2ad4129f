//! Wires Garrison's stages together.
//!
//! ```text
//! decoded records ──► Ingestor ──► EventLog (durable: the ack point) ──► Indexer ──► Store
//!                     (ids, time,                                     (position committed
//!                      normalise)                                      with the rows)
//! ```
//!
//! **Invariant:** an event gets its id before it is appended, so every replay of the log
//! stores the same rows; the indexer's position moves in the same transaction as the rows.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod codec;
mod route;
pub mod telemetry;
pub use route::{SyslogRouter, SyslogRule};

use std::sync::Arc;
use std::time::{Duration, Instant};

use garrison_bus::{EventLog, LogError};
use garrison_decoders::DecoderSet;
use garrison_ingest::normalize::{FieldMapping, Normalizer};
use garrison_ingest::Record;
use garrison_model::health::Health;
use garrison_model::{event_id_from_content, event_id_from_sender, LogSource, TenantId, Timestamp};
use garrison_store::{
    AlertMapping, EventRepo, EventRow, Source, StoreError, TenantRepo, TokenRepo,
};
use tokio::sync::watch;

/// The consumer name under which the store indexer commits its log position.
pub const INDEXER: &str = "indexer";

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The write path is saturated; the sender should retry later. Nothing was stored.
    #[error("the service is busy: {reason}")]
    Busy { reason: String },
    /// Storage cannot take writes now (disk full or below its watermark, an I/O error):
    /// nothing was stored; the sender should retry later.
    #[error("storage is unavailable: {reason}")]
    Unavailable { reason: String },
    #[error("event log: {0}")]
    Log(#[from] LogError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot write the dead-letter file {0}")]
    DeadLetter(String),
}

/// Where a batch of records comes from: the tenant, the source and how to read its fields.
#[derive(Clone, Debug)]
pub struct SourceContext {
    pub tenant: TenantId,
    pub source: String,
    pub logsource: LogSource,
    normalizer: Arc<Normalizer>,
    /// Set for an alert source: every event becomes an alert (see [`ALERT_FIELD`]).
    alerts: Option<Arc<AlertMapping>>,
    /// The field the source names as its events' own unique id, if any.
    id_field: Option<Arc<str>>,
    /// The decoders that read the source's lines and records (none: only the built-in mapping).
    decoders: Option<Arc<DecoderSet>>,
    parse: ParseCounters,
}

/// `garrison_source_events_total{tenant, source, parse}` handles, made once per context so
/// counting a record is one atomic add: `decoded` (a decoder read it), `unparsed` (kept but
/// not understood) or `plain` (structured input no decoder claimed).
#[derive(Clone, Debug)]
struct ParseCounters {
    decoded: metrics::Counter,
    unparsed: metrics::Counter,
    plain: metrics::Counter,
}

impl ParseCounters {
    fn new(tenant: TenantId, source: &str) -> ParseCounters {
        let counter = |parse: &'static str| metrics::counter!(telemetry::SOURCE_EVENTS, "tenant" => tenant.to_string(), "source" => source.to_string(), "parse" => parse);
        ParseCounters {
            decoded: counter("decoded"),
            unparsed: counter("unparsed"),
            plain: counter("plain"),
        }
    }
}

/// The key of the normalised view under which an alert source's events carry their alert:
/// `{"rule": "ext:<rule id>", "title": .., "level": ..}`. Only [`SourceContext::row`] writes
/// it (a mapping that names it is overridden), so only alert sources make external alerts.
pub const ALERT_FIELD: &str = "garrison.alert";

fn text_of(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A sender's severity as an alert level: words (`critical`, `high`, `severe`, `warning`,
/// `info`...) or a number, read on a 0-10 scale (above 10: 0-100). `None` if unrecognised.
pub fn severity_level(value: &serde_json::Value) -> Option<&'static str> {
    let text = text_of(value)?.to_ascii_lowercase();
    if let Ok(n) = text.parse::<f64>() {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        let n = if n > 10.0 { n / 10.0 } else { n };
        return Some(match n {
            n if n >= 9.0 => "critical",
            n if n >= 7.0 => "high",
            n if n >= 4.0 => "medium",
            n if n >= 1.0 => "low",
            _ => "informational",
        });
    }
    let level = match text.as_str() {
        "critical" | "crit" | "emergency" | "emerg" | "alert" | "fatal" => "critical",
        "high" | "severe" | "major" | "error" | "err" => "high",
        "medium" | "med" | "moderate" | "warning" | "warn" => "medium",
        "low" | "minor" | "notice" => "low",
        "informational" | "info" | "information" | "debug" | "none" => "informational",
        _ => return None,
    };
    Some(level)
}

/// The alert an alert source's event carries, per its mapping (see [`ALERT_FIELD`]).
fn external_alert(
    mapping: &AlertMapping,
    source: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let get = |path: &Option<String>| {
        path.as_deref()
            .and_then(|p| garrison_ingest::normalize::resolve(fields, p))
    };
    let rule = get(&mapping.rule)
        .and_then(text_of)
        .unwrap_or_else(|| source.to_string());
    let title = get(&mapping.title)
        .and_then(text_of)
        .unwrap_or_else(|| format!("{source} alert {rule}"));
    let level = get(&mapping.severity)
        .and_then(severity_level)
        .unwrap_or("medium");
    serde_json::json!({"rule": format!("ext:{rule}"), "title": title, "level": level})
}

impl SourceContext {
    /// The context of a stored source: its logsource and its mapping on top of the built-in one.
    pub fn from_source(source: &Source) -> SourceContext {
        let mut mapping = FieldMapping::builtin();
        if !source.field_mapping.is_empty() {
            // The source's own pairs win over the built-in names.
            mapping.extend(FieldMapping::from_pairs(source.field_mapping.clone()));
        }
        SourceContext {
            tenant: source.tenant_id,
            source: source.name.clone(),
            logsource: LogSource {
                product: source.product.clone(),
                service: source.service.clone(),
                category: source.category.clone(),
            },
            normalizer: Arc::new(Normalizer::new(&mapping)),
            alerts: source.alert_mapping.clone().map(Arc::new),
            id_field: source.id_field.as_deref().map(Arc::from),
            decoders: None,
            parse: ParseCounters::new(source.tenant_id, &source.name),
        }
    }

    /// Reads lines and records with these decoders too (see [`garrison_decoders`]).
    pub fn decoding(mut self, decoders: Arc<DecoderSet>) -> SourceContext {
        self.decoders = (!decoders.is_empty()).then_some(decoders);
        self
    }

    /// A source that has no stored configuration: built-in mapping, no logsource.
    pub fn unconfigured(tenant: TenantId, source: &str) -> SourceContext {
        SourceContext {
            tenant,
            source: source.to_string(),
            logsource: LogSource::default(),
            normalizer: Arc::new(Normalizer::new(&FieldMapping::builtin())),
            alerts: None,
            id_field: None,
            decoders: None,
            parse: ParseCounters::new(tenant, source),
        }
    }

    /// The stored id: from the field the source names as its events' own id when the record
    /// has it, else from the record's bytes. Either way a resend is stored once; events that
    /// differ never share an id unless the source says their id field makes them one.
    fn id_for(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
        fields_json: &str,
        raw: Option<&str>,
    ) -> String {
        if let Some(id) = self
            .id_field
            .as_deref()
            .and_then(|path| garrison_ingest::id_at(fields, path))
        {
            return event_id_from_sender(self.tenant, &self.source, &id);
        }
        event_id_from_content(
            self.tenant,
            &self.source,
            &[fields_json.as_bytes(), raw.unwrap_or_default().as_bytes()],
        )
    }

    /// Turns a decoded record into the row the log and the store keep: id (stable when the
    /// sender gave one), time, normalised view, search words. The sender's fields are kept as
    /// they were (their original bytes when the decoder kept them).
    pub fn row(&self, mut record: Record, received: Timestamp) -> EventRow {
        let mut normalized = self.normalizer.normalize(&record.fields);
        let mut logsource = self.logsource.clone();
        let applied = self
            .decoders
            .as_ref()
            .and_then(|set| set.apply(&record.fields, record.raw.as_deref(), &mut normalized));
        match &applied {
            Some(a) if a.failed => {
                record.unparsed.get_or_insert_with(|| {
                    format!("decoder {}: no pattern matched the message", a.decoder)
                });
            }
            Some(a) => {
                // A decoder understood what the syslog parser could not (a line with no
                // header is still a good nginx line); its own time is the device's.
                record.unparsed = None;
                record.time = a.time.or(record.time);
            }
            None => {}
        }
        if let Some(a) = &applied {
            fill_logsource(&mut logsource, &a.logsource);
        }
        match (&applied, &record.unparsed) {
            (_, Some(_)) => self.parse.unparsed.increment(1),
            (Some(_), None) => self.parse.decoded.increment(1),
            (None, None) => self.parse.plain.increment(1),
        }
        normalized.remove(ALERT_FIELD);
        normalized.remove(garrison_model::UNPARSED_FIELD);
        if let Some(reason) = &record.unparsed {
            normalized.insert(
                garrison_model::UNPARSED_FIELD.to_string(),
                serde_json::Value::String(reason.clone()),
            );
        }
        if let Some(mapping) = &self.alerts {
            normalized.insert(
                ALERT_FIELD.to_string(),
                external_alert(mapping, &self.source, &record.fields),
            );
        }
        let fields_json = match record.source_json {
            Some(json) => json,
            // A map with string keys always renders.
            None => serde_json::to_string(&record.fields).unwrap_or_default(),
        };
        let id = self.id_for(&record.fields, &fields_json, record.raw.as_deref());
        EventRow {
            id,
            tenant_id: self.tenant,
            time: record.time.unwrap_or(received),
            received,
            source: self.source.clone(),
            logsource,
            fields_json,
            normalized_json: serde_json::Value::Object(normalized).to_string(),
            raw: record.raw,
            // Derived from `fields_json` when the row is read back from the log (see `codec`).
            search_text: String::new(),
        }
    }
}

/// Completes the source's logsource with a decoder's: only where the source leaves a part
/// open, and not at all when the source names another product (a FortiGate line arriving on a
/// source configured as `linux` must not become a "linux firewall").
fn fill_logsource(logsource: &mut LogSource, decoder: &LogSource) {
    let agree = match (&logsource.product, &decoder.product) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => true,
    };
    if agree {
        let fill = |mine: &mut Option<String>, theirs: &Option<String>| {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        };
        fill(&mut logsource.product, &decoder.product);
        fill(&mut logsource.service, &decoder.service);
        fill(&mut logsource.category, &decoder.category);
    }
}

/// Drops the rows whose id an earlier row of the batch already has (the same record sent
/// twice, or twice the same id in the source's id field), keeping the first; returns how many
/// were dropped, for the answer and `garrison_events_duplicates_total`.
pub fn drop_duplicates(rows: &mut Vec<EventRow>, protocol: &'static str) -> usize {
    let before = rows.len();
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    rows.retain(|row| seen.insert(row.id.clone()));
    let dropped = before - rows.len();
    if dropped > 0 {
        telemetry::events_duplicate(protocol, dropped as u64);
    }
    dropped
}

/// Accepts batches of events and answers once they are durable.
#[derive(Clone)]
pub struct Ingestor {
    log: EventLog,
    max_backlog_bytes: u64,
    indexed: watch::Receiver<u64>,
    /// Other consumers of the log (the detector): their backlog is bounded too.
    others: Vec<watch::Receiver<u64>>,
    /// New data is refused while the disk is below its free-space watermark (component
    /// [`DISK`], set by the service's disk watch); a failing append marks [`LOG`] degraded.
    health: Health,
    /// Bytes that may still be appended before the disk would pass its watermark, counting
    /// the room indexing needs: set by the disk watch every second, spent by each append, so
    /// a fast sender cannot overshoot between two checks.
    disk_budget: Arc<std::sync::atomic::AtomicI64>,
}

/// Store bytes an appended log byte grows into once indexed (rows, JSON, full-text index;
/// measured about 3x with SQLite), plus the log byte itself.
pub const DISK_BYTES_PER_LOG_BYTE: i64 = 4;

/// Health component of the data directory's free space (below the watermark: degraded).
pub const DISK: &str = "disk";
/// Health component of the event log's appends.
pub const LOG: &str = "log";

impl Ingestor {
    /// `max_backlog_bytes` bounds how far the log may run ahead of the indexer before new
    /// data is refused: disk is not infinite, and a client that retries loses nothing.
    pub fn new(log: EventLog, indexed: watch::Receiver<u64>, max_backlog_bytes: u64) -> Ingestor {
        Ingestor {
            log,
            max_backlog_bytes,
            indexed,
            others: Vec::new(),
            health: Health::default(),
            disk_budget: Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX)),
        }
    }

    /// Sets how many bytes may be appended until the next disk check (see `disk_budget`).
    pub fn set_disk_budget(&self, bytes: i64) {
        self.disk_budget
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reports into `health` and refuses new data while its [`DISK`] component is degraded.
    pub fn with_health(mut self, health: Health) -> Ingestor {
        self.health = health;
        self
    }

    /// Bounds the backlog of another consumer of the log as well (its unread segments are
    /// kept on disk): new data is refused while it is more than `max_backlog_bytes` behind.
    pub fn bounded_by(mut self, consumer: watch::Receiver<u64>) -> Ingestor {
        self.others.push(consumer);
        self
    }

    /// Bytes of log some consumer (indexer or other) has not read yet: what stays on disk.
    pub fn retained_bytes(&self) -> u64 {
        let slowest = self
            .others
            .iter()
            .map(|other| *other.borrow())
            .fold(*self.indexed.borrow(), u64::min);
        self.log.committed_end().saturating_sub(slowest)
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// The log position the store indexer has committed.
    pub fn indexed_position(&self) -> u64 {
        *self.indexed.borrow()
    }

    /// True while new data would be refused: the backlog is over its bound, or the log
    /// writer's queue is nearly full.
    pub fn is_saturated(&self) -> bool {
        let log = &self.log;
        self.retained_bytes() > self.max_backlog_bytes
            || log.pending_appends() * 10 >= log.max_pending_appends() * 9
    }

    /// Bytes of log not yet indexed.
    pub fn backlog_bytes(&self) -> u64 {
        self.log
            .committed_end()
            .saturating_sub(*self.indexed.borrow())
    }

    /// Appends the events durably. `Ok` means they survive a crash; `Busy` means nothing was
    /// written and the sender should retry.
    pub async fn accept(
        &self,
        events: &[EventRow],
        protocol: &'static str,
    ) -> Result<u64, PipelineError> {
        self.append(events, protocol, true).await
    }

    /// [`Ingestor::accept`] for a sender that keeps the batch and tries again (TCP syslog
    /// holding its reads): a refusal is not a rejection, so it is not counted as one.
    pub async fn accept_or_hold(
        &self,
        events: &[EventRow],
        protocol: &'static str,
    ) -> Result<u64, PipelineError> {
        self.append(events, protocol, false).await
    }

    async fn append(
        &self,
        events: &[EventRow],
        protocol: &'static str,
        count_refusals: bool,
    ) -> Result<u64, PipelineError> {
        let refused = |reason: &'static str| {
            if count_refusals {
                telemetry::events_rejected(protocol, reason, events.len() as u64);
            }
        };
        if events.is_empty() {
            return Ok(self.log.committed_end());
        }
        if let Some(reason) = self.health.reason(DISK) {
            refused("unavailable");
            return Err(PipelineError::Unavailable { reason });
        }
        let backlog = self.retained_bytes();
        if backlog > self.max_backlog_bytes {
            refused("busy");
            return Err(PipelineError::Busy {
                reason: format!("{backlog} bytes wait to be indexed or detected"),
            });
        }
        let started = Instant::now();
        let payload = codec::encode(events);
        let cost = (payload.len() as i64).saturating_mul(DISK_BYTES_PER_LOG_BYTE);
        let budget = &self.disk_budget;
        if budget.fetch_sub(cost, std::sync::atomic::Ordering::Relaxed) < cost {
            budget.fetch_add(cost, std::sync::atomic::Ordering::Relaxed);
            refused("unavailable");
            return Err(PipelineError::Unavailable {
                reason: "the disk is near its min_free_disk_bytes watermark (counting the room indexing what is waiting needs)".into(),
            });
        }
        let result = self.log.append(&payload).await;
        telemetry::log_pending_appends(self.log.pending_appends());
        match result {
            Ok(position) => {
                if self.health.recover(LOG).is_some() {
                    tracing::info!("event log appends succeed again");
                }
                telemetry::events_accepted(
                    protocol,
                    events.len() as u64,
                    started.elapsed().as_secs_f64(),
                );
                Ok(position)
            }
            Err(LogError::Busy { pending }) => {
                refused("busy");
                Err(PipelineError::Busy {
                    reason: format!("{pending} batches wait for the disk"),
                })
            }
            Err(LogError::Io { path, source }) => {
                // A full disk or an I/O error: nothing of this batch is in the log (the writer
                // cuts a failed group off), so the sender may retry once it clears.
                let reason = format!("the event log cannot write ({source})");
                if self.health.degrade(LOG, &reason) {
                    tracing::error!(path = %path.display(), error = %source, "event log append failed; refusing new data until an append succeeds");
                }
                refused("unavailable");
                Err(PipelineError::Unavailable { reason })
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// Follows the log into the store from the last committed position, forever.
pub struct Indexer<S> {
    store: Arc<S>,
    log: EventLog,
    indexed: watch::Sender<u64>,
    /// Most events written to the store in one transaction.
    pub max_batch_events: usize,
    /// Where events the store refuses are kept (JSON lines with the reason); without one, a
    /// refused event stops indexing until an operator acts.
    pub dead_letter: Option<std::path::PathBuf>,
    /// Positions of other consumers of the log (the detector): segments they have not read
    /// yet are kept.
    pub retain_for: Vec<watch::Receiver<u64>>,
    /// Where a failing pass is reported (component `indexer`) until one succeeds again.
    pub health: Health,
}

impl<S: EventRepo + 'static> Indexer<S> {
    /// Starts from the store's committed position. Returns the indexer and a receiver that
    /// tracks the indexed position (for backpressure and the lag metric).
    pub async fn new(
        store: Arc<S>,
        log: EventLog,
    ) -> Result<(Self, watch::Receiver<u64>), PipelineError> {
        let position = store.consumer_position(INDEXER).await?;
        let (indexed, receiver) = watch::channel(position);
        Ok((
            Indexer {
                store,
                log,
                indexed,
                max_batch_events: 5000,
                dead_letter: None,
                retain_for: Vec::new(),
                health: Health::default(),
            },
            receiver,
        ))
    }

    /// Indexes what the log holds now; returns how many events were read.
    pub async fn run_once(&self) -> Result<usize, PipelineError> {
        let start = *self.indexed.borrow();
        let mut reader = self.log.reader(start);
        let committed = self.log.committed_end();
        let mut total = 0;
        loop {
            // A few entries at a time: each is a whole request's batch (often 1,000 events).
            let entries = reader.read(committed, 4)?;
            if entries.is_empty() {
                return Ok(total);
            }
            let mut events: Vec<EventRow> = Vec::new();
            let mut position = *self.indexed.borrow();
            let mut oldest_received: Option<Timestamp> = None;
            for entry in entries {
                let batch: Vec<EventRow> = match codec::decode(&entry.payload) {
                    Ok(batch) => batch,
                    Err(e) => {
                        // Written by us and checksummed: this is a bug, not bad input. Skip
                        // the frame loudly rather than stall every tenant's indexing.
                        tracing::error!(position = entry.position_after, error = %e, "undecodable log entry skipped");
                        telemetry::index_error();
                        Vec::new()
                    }
                };
                for event in &batch {
                    oldest_received =
                        Some(oldest_received.map_or(event.received, |t| t.min(event.received)));
                }
                events.extend(batch);
                position = entry.position_after;
                if events.len() >= self.max_batch_events {
                    break;
                }
            }
            // Re-position the reader if we stopped early inside what it had read.
            reader = self.log.reader(position);
            let stored = match self.store.store_events(&events, INDEXER, position).await {
                Ok(stored) => stored,
                Err(StoreError::Rejected { reason }) => {
                    self.store_one_by_one(&events, position, &reason).await?
                }
                Err(other) => return Err(other.into()),
            };
            self.indexed.send_replace(position);
            total += events.len();
            telemetry::events_stored(stored);
            // Rows the store already held (a resend of what it has, under the same ids).
            telemetry::events_duplicate("store", (events.len() as u64).saturating_sub(stored));
            let lag_seconds = oldest_received.map(|oldest| {
                (Timestamp::now().as_millisecond() - oldest.as_millisecond()) as f64 / 1000.0
            });
            telemetry::index_lag(
                self.log.committed_end().saturating_sub(position),
                lag_seconds,
            );
        }
    }

    /// A batch the store refused: store its events one at a time so one bad event cannot stall
    /// every tenant's indexing; the ones refused on their own go to the dead-letter file (kept,
    /// never dropped), then the position moves past the batch.
    async fn store_one_by_one(
        &self,
        events: &[EventRow],
        position: u64,
        batch_reason: &str,
    ) -> Result<u64, PipelineError> {
        let Some(dead_letter) = &self.dead_letter else {
            return Err(PipelineError::Store(StoreError::Rejected {
                reason: batch_reason.to_string(),
            }));
        };
        let before = *self.indexed.borrow();
        let mut stored = 0;
        let mut refused = Vec::new();
        for event in events {
            match self
                .store
                .store_events(std::slice::from_ref(event), INDEXER, before)
                .await
            {
                Ok(n) => stored += n,
                Err(StoreError::Rejected { reason }) => refused.push((event, reason)),
                Err(other) => return Err(other.into()),
            }
        }
        if !refused.is_empty() {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dead_letter)
                .map_err(|e| {
                    PipelineError::DeadLetter(format!("{}: {e}", dead_letter.display()))
                })?;
            for (event, reason) in &refused {
                let line = serde_json::json!({
                    "log_position": position,
                    "reason": reason,
                    "event": event,
                });
                writeln!(file, "{line}").map_err(|e| {
                    PipelineError::DeadLetter(format!("{}: {e}", dead_letter.display()))
                })?;
                tracing::error!(event = %event.id, tenant = %event.tenant_id, %reason, file = %dead_letter.display(), "event refused by the store; kept in the dead-letter file");
            }
            file.sync_all().map_err(|e| {
                PipelineError::DeadLetter(format!("{}: {e}", dead_letter.display()))
            })?;
            telemetry::events_dead_lettered(refused.len() as u64);
        }
        // Only now, with every event stored or kept aside, does the position move on.
        self.store.store_events(&[], INDEXER, position).await?;
        Ok(stored)
    }

    /// Runs until `shutdown` turns true, waking whenever the log grows.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut committed = self.log.watch_committed();
        let mut last_cleanup = Instant::now();
        loop {
            let pass = self.run_once().await;
            let failed = pass.is_err();
            self.health.pass(INDEXER, pass.map(|_| ()));
            if failed {
                telemetry::index_error();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            if last_cleanup.elapsed() > Duration::from_secs(10) {
                last_cleanup = Instant::now();
                let indexed = self
                    .retain_for
                    .iter()
                    .map(|other| *other.borrow())
                    .fold(*self.indexed.borrow(), u64::min);
                if let Err(e) = self.log.remove_segments_before(indexed) {
                    tracing::warn!(error = %e, "could not remove indexed log segments");
                }
            }
            let behind = self
                .log
                .committed_end()
                .saturating_sub(*self.indexed.borrow());
            if *committed.borrow_and_update() > *self.indexed.borrow() {
                telemetry::index_lag(behind, None);
                continue;
            }
            telemetry::index_lag(behind, Some(0.0));
            tokio::select! {
                changed = committed.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
                // Wake up now and then for segment cleanup even when idle.
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// Deletes events past each tenant's retention, now and then.
pub async fn run_retention<S: EventRepo + TenantRepo + TokenRepo + 'static>(
    store: Arc<S>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match enforce_retention(store.as_ref(), Timestamp::now()).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention removed old events"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed"),
        }
        match store.purge_expired_sessions(Timestamp::now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired sessions removed"),
            Err(e) => tracing::warn!(error = %e, "session purge failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One retention pass over every tenant; returns how many events were deleted.
pub async fn enforce_retention<S: EventRepo + TenantRepo>(
    store: &S,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for tenant in store.list_tenants().await? {
        let Some(days) = tenant.retention_days else {
            continue;
        };
        let cutoff = now
            .checked_sub(jiff_hours(days.saturating_mul(24)))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let removed = store
            .delete_events_received_before(tenant.id, cutoff)
            .await?;
        telemetry::events_expired(removed);
        deleted += removed;
    }
    Ok(deleted)
}

fn jiff_hours(hours: i64) -> garrison_model::SignedDuration {
    garrison_model::SignedDuration::from_hours(hours)
}

#[cfg(test)]
mod alert_source_tests {
    use super::*;
    use serde_json::{json, Value};

    fn record(fields: Value) -> Record {
        Record {
            fields: fields.as_object().cloned().unwrap_or_default(),
            time: None,
            raw: None,
            source_json: None,
            unparsed: None,
        }
    }

    fn source(alerts: Option<AlertMapping>) -> Source {
        Source {
            id: 1,
            tenant_id: TenantId(1),
            name: "edr".into(),
            product: None,
            service: None,
            category: None,
            field_mapping: Vec::new(),
            alert_mapping: alerts,
            id_field: None,
            syslog: None,
            silent_after_secs: None,
            created: Timestamp::now(),
        }
    }

    fn alert_of(row: &EventRow) -> Option<Value> {
        let normalized: serde_json::Map<String, Value> =
            serde_json::from_str(&row.normalized_json).expect("normalized");
        normalized.get(ALERT_FIELD).cloned()
    }

    #[test]
    fn severities_read_as_words_or_numbers() {
        for (value, level) in [
            (json!("Critical"), Some("critical")),
            (json!(" severe "), Some("high")),
            (json!("warning"), Some("medium")),
            (json!("info"), Some("informational")),
            (json!(8), Some("high")),
            (json!("2"), Some("low")),
            (json!(95), Some("critical")),
            (json!(45), Some("medium")),
            (json!(0), Some("informational")),
            (json!(-1), None),
            (json!("purple"), None),
            (json!(null), None),
        ] {
            assert_eq!(severity_level(&value), level, "{value}");
        }
    }

    #[test]
    fn only_alert_sources_carry_an_alert() {
        let received = Timestamp::now();
        let forged =
            record(json!({"garrison.alert": {"rule": "ext:x", "title": "x", "level": "critical"}}));
        let plain = SourceContext::from_source(&source(None)).row(forged.clone(), received);
        assert_eq!(alert_of(&plain), None);

        let mapping = AlertMapping {
            rule: Some("detect.rule".into()),
            title: Some("detect.name".into()),
            severity: Some("sev".into()),
        };
        let context = SourceContext::from_source(&source(Some(mapping)));
        let row = context.row(
            record(json!({"detect": {"rule": 42, "name": "Bad thing"}, "sev": "high"})),
            received,
        );
        assert_eq!(
            alert_of(&row),
            Some(json!({"rule": "ext:42", "title": "Bad thing", "level": "high"}))
        );
        // Missing fields: the source names the rule, the level is medium; a forged value is
        // replaced by the mapped one.
        let row = context.row(forged, received);
        assert_eq!(
            alert_of(&row),
            Some(json!({"rule": "ext:edr", "title": "edr alert edr", "level": "medium"}))
        );
    }
}
