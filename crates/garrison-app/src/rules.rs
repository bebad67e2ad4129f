//! Sigma rules: import, enable and disable, and a bounded test over stored events.

use garrison_detect::{TestEvent, TestMatch};
use garrison_model::{Role, SignedDuration, Timestamp};
use garrison_sigma::{RuleError, RuleSource};
use garrison_store::{DetectionRepo, EventQuery, EventRepo, ImportSummary, StoredRule};

use crate::{Actor, App, AppError, Result};

/// Roles that may change rules.
pub const RULE_AUTHORS: &[Role] = &[Role::Admin, Role::Analyst];
/// Most stored events one rule test reads, on every door.
pub const MAX_TEST_EVENTS: usize = 50_000;
/// Longest time range one rule test reads, on every door.
pub const MAX_TEST_RANGE_DAYS: i64 = 31;

/// What an import did, with every file or rule it refused and why.
#[derive(Debug)]
pub struct ImportOutcome {
    pub summary: ImportSummary,
    pub rejected: Vec<RuleError>,
    /// Rules kept that wait for placeholder values (rule id, the names without values).
    pub waiting: Vec<(String, Vec<String>)>,
}

/// The bounds of a rule test; every field optional.
#[derive(Clone, Debug, Default)]
pub struct TestBounds {
    /// Default: `to` minus 24 hours.
    pub from: Option<Timestamp>,
    /// Default: now.
    pub to: Option<Timestamp>,
    /// Default and maximum [`MAX_TEST_EVENTS`].
    pub max_events: Option<usize>,
}

/// What a rule would have matched, and what was read to find out.
#[derive(Debug)]
pub struct TestOutcome {
    pub from: Timestamp,
    pub to: Timestamp,
    /// The cap applied to this test.
    pub max_events: usize,
    /// Stored events read.
    pub events: usize,
    /// True when the range held more than `max_events` events (the newest were read).
    pub truncated: bool,
    pub matches: Vec<TestMatch>,
}

impl App {
    /// Parses rule files and imports them (admins and analysts). Files already refused by the
    /// door (unreadable, not YAML) come in `rejected` and are reported with the rest.
    pub async fn import_rules(
        &self,
        actor: &Actor,
        sources: Vec<RuleSource>,
        mut rejected: Vec<RuleError>,
        enable: bool,
        origin: &str,
    ) -> Result<ImportOutcome> {
        actor.require_any(RULE_AUTHORS)?;
        if sources.is_empty() && rejected.is_empty() {
            return Err(AppError::invalid("no .yml or .yaml rule file was given"));
        }
        let placeholders = self.placeholder_values(actor.tenant).await?;
        let parsed = tokio::task::spawn_blocking(move || {
            garrison_detect::rules::parse_rule_files(sources, &placeholders)
        })
        .await
        .map_err(AppError::internal)?;
        rejected.extend(parsed.rejected);
        let summary = self
            .store()
            .import_rules(actor.tenant, &parsed.rules, enable)
            .await?;
        self.record(
            actor,
            "rule.import",
            origin,
            serde_json::json!({
                "created": summary.created, "updated": summary.updated,
                "unchanged": summary.unchanged, "enabled": summary.enabled,
                "rejected": rejected.len(),
                "waiting_for_placeholders": parsed.waiting.len(),
                "rules": parsed.rules.iter().map(|r| r.rule_id.as_str()).take(10_000).collect::<Vec<_>>(),
            }),
        )
        .await;
        Ok(ImportOutcome {
            summary,
            rejected,
            waiting: parsed.waiting,
        })
    }

    pub async fn list_rules(&self, actor: &Actor, enabled_only: bool) -> Result<Vec<StoredRule>> {
        Ok(self.store().list_rules(actor.tenant, enabled_only).await?)
    }

    pub async fn rule(&self, actor: &Actor, id: &str) -> Result<StoredRule> {
        self.store()
            .rule(actor.tenant, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("rule {id:?}")))
    }

    /// Enables (the live detector runs it from now on) or disables a rule (admins and analysts).
    pub async fn set_rule_enabled(
        &self,
        actor: &Actor,
        id: &str,
        enabled: bool,
    ) -> Result<StoredRule> {
        actor.require_any(RULE_AUTHORS)?;
        let rule = self
            .store()
            .set_rule_enabled(actor.tenant, id, enabled)
            .await?;
        self.record(
            actor,
            if enabled {
                "rule.enable"
            } else {
                "rule.disable"
            },
            id,
            serde_json::json!({"version": rule.version}),
        )
        .await;
        Ok(rule)
    }

    /// Runs a rule over the stored events of a bounded range: at most
    /// [`MAX_TEST_RANGE_DAYS`] days and [`MAX_TEST_EVENTS`] events (the newest), whoever asks.
    pub async fn test_rule(
        &self,
        actor: &Actor,
        id: &str,
        bounds: TestBounds,
    ) -> Result<TestOutcome> {
        let rule = self.rule(actor, id).await?;
        let to = bounds.to.unwrap_or_else(Timestamp::now);
        let from = match bounds.from {
            Some(from) => from,
            None => to
                .checked_sub(SignedDuration::from_hours(24))
                .map_err(AppError::internal)?,
        };
        if from >= to {
            return Err(AppError::invalid("from must be before to"));
        }
        if to.duration_since(from) > SignedDuration::from_hours(24 * MAX_TEST_RANGE_DAYS) {
            return Err(AppError::invalid(format!(
                "a rule test reads at most {MAX_TEST_RANGE_DAYS} days of events; narrow from/to"
            )));
        }
        let max = match bounds.max_events {
            Some(0) => return Err(AppError::invalid("max_events must be at least 1")),
            Some(n) => n.min(MAX_TEST_EVENTS),
            None => MAX_TEST_EVENTS,
        };
        let mut query = EventQuery {
            from: Some(from),
            to: Some(to),
            limit: 1000,
            ..EventQuery::default()
        };
        let mut events = Vec::new();
        let mut truncated = false;
        loop {
            let page = self.store().search_events(actor.tenant, &query).await?;
            // Flattened page by page: the JSON trees are not all held at once.
            events.extend(page.items.iter().filter_map(TestEvent::of));
            if events.len() >= max {
                truncated = page.next_cursor.is_some() || events.len() > max;
                events.truncate(max);
                break;
            }
            match page.next_cursor {
                Some(next) => query.cursor = Some(next),
                None => break,
            }
        }
        let count = events.len();
        let (rule_id, yaml) = (rule.rule_id.clone(), rule.yaml.clone());
        let options = garrison_sigma::LoadOptions {
            placeholders: self.placeholder_values(actor.tenant).await?,
            ..garrison_sigma::LoadOptions::default()
        };
        let outcome = tokio::task::spawn_blocking(move || {
            garrison_detect::test_rule(&rule_id, &yaml, &events, &options)
        })
        .await
        .map_err(AppError::internal)?;
        let matches = outcome.map_err(|errors| AppError::InvalidWithErrors {
            message: format!("rule {id:?} does not compile"),
            errors: errors
                .into_iter()
                .map(|e| serde_json::json!({"line": e.line, "rule": e.rule, "reason": e.reason}))
                .collect(),
        })?;
        Ok(TestOutcome {
            from,
            to,
            max_events: max,
            events: count,
            truncated,
            matches,
        })
    }
}
