//! Live detection: every tenant's enabled Sigma rules and active indicators, and alert
//! sources' own alerts, run on the event log as events land.
//!
//! ```text
//! event log ──► Detector ──► matches ──► fold by (rule, entity, window) ──► alerts
//!  (garrison-bus)  per-tenant RuleSets       deterministic alert ids        + position,
//!                  rebuilt on rule changes                                   one transaction
//! ```
//!
//! The [`Detector`] follows the log from its own committed position (consumer [`DETECTOR`]),
//! evaluates each batch on all cores with the same event flattening as `garrison hunt`, runs
//! correlation rules with a [`garrison_sigma::Correlator`], and hands the hits to the store,
//! which folds them into alerts and moves the position in the same transaction. An alert's id
//! is a hash of (tenant, rule, fingerprint, window start), and each (alert, event) pair is
//! counted once, so a replay after a crash upserts the same alerts and counts nothing twice.
//!
//! Correlation state lives in memory: a correlation window that spans a restart starts over.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod detector;
mod engine;
pub mod intel;
pub mod rules;
pub mod telemetry;

pub use detector::{Detector, DETECTOR};
pub use engine::{
    alert_id, alert_rule_id, evaluate, fingerprint, row_event, test_rule, window_start, Evaluated,
    RuleTester, TenantRules, TestEvent, TestMatch,
};

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("store: {0}")]
    Store(#[from] garrison_store::StoreError),
    #[error("event log: {0}")]
    Log(#[from] garrison_bus::LogError),
    #[error("cannot read rules: {0}")]
    Read(String),
    #[error("detection worker failed: {0}")]
    Worker(String),
}

/// How the detector folds and batches.
#[derive(Clone, Debug)]
pub struct DetectConfig {
    /// Repeats of a rule for one entity within one window are one alert.
    pub window: Duration,
    /// The fields whose values (with the rule) make an alert's fingerprint: names in the
    /// normalised view (ECS), else in the event's own fields.
    pub entity_fields: Vec<String>,
    /// Most events evaluated and committed at once. Large, so that a detector that fell
    /// behind (SQLite: waiting for the indexer's transaction) catches up in one turn.
    pub max_batch_events: usize,
    /// How often rule changes are looked for while events flow (zero: before every batch, so
    /// a rule enabled before an event was sent applies to it; one small query per batch).
    pub rules_refresh: Duration,
    /// Threads that evaluate a batch (0: every core).
    pub threads: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            window: Duration::from_secs(3600),
            entity_fields: vec!["host.name".into(), "user.name".into()],
            max_batch_events: 20_000,
            rules_refresh: Duration::ZERO,
            threads: 0,
        }
    }
}

impl DetectConfig {
    pub fn window_micros(&self) -> i64 {
        i64::try_from(self.window.as_micros())
            .unwrap_or(i64::MAX)
            .max(1)
    }
}
