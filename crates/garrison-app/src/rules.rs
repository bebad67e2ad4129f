//! Sigma rules: import, enable and disable, and a bounded test over stored events.

use garrison_detect::{TestEvent, TestMatch};
use garrison_model::{Role, SignedDuration, Timestamp};
use garrison_sigma::{RuleError, RuleSource};
use garrison_store::{DetectionRepo, EventQuery, EventRepo, ImportSummary, StoredRule};

use crate::{Actor, App, AppError, Result};

/// Roles that may change rules.
pub const RULE_AUTHORS: &[Role] = &[Role::Admin, Role::Analyst];
/// Most matches one rule test lists (all are counted).
pub const MAX_TEST_MATCHES: usize = 10_000;

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
    /// Stop after this many events (oldest first); default: the whole range.
    pub max_events: Option<usize>,
}

/// How far a rule test is.
#[derive(Clone, Debug)]
pub struct TestProgress {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Time of the last event read.
    pub position: Timestamp,
    pub events: usize,
}

/// What a rule would have matched, and what was read to find out.
#[derive(Debug)]
pub struct TestOutcome {
    pub from: Timestamp,
    pub to: Timestamp,
    /// The cap asked for, if any.
    pub max_events: Option<usize>,
    /// Stored events read.
    pub events: usize,
    /// True when the test stopped at `max_events` before the end of the range.
    pub truncated: bool,
    /// Matches found; at most [`MAX_TEST_MATCHES`] are listed in `matches`.
    pub matches_total: usize,
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

    /// Runs a rule over every stored event of a time range, oldest first, a page at a time
    /// (memory holds one page whatever the range holds), as live detection would have:
    /// detection matches and correlations. `progress` is told after each page; dropping the
    /// future (a client that hangs up, Ctrl-C) cancels the test.
    pub async fn test_rule(
        &self,
        actor: &Actor,
        id: &str,
        bounds: TestBounds,
        progress: Option<&(dyn Fn(&TestProgress) + Send + Sync)>,
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
        if bounds.max_events == Some(0) {
            return Err(AppError::invalid("max_events must be at least 1"));
        }
        let options = garrison_sigma::LoadOptions {
            placeholders: self.placeholder_values(actor.tenant).await?,
            ..garrison_sigma::LoadOptions::default()
        };
        let mut tester =
            garrison_detect::RuleTester::new(&rule.rule_id, &rule.yaml, &options, MAX_TEST_MATCHES)
                .map_err(|errors| {
                    AppError::InvalidWithErrors {
            message: format!("rule {id:?} does not compile"),
            errors: errors
                .into_iter()
                .map(|e| serde_json::json!({"line": e.line, "rule": e.rule, "reason": e.reason}))
                .collect(),
        }
                })?;
        let mut query = EventQuery {
            from: Some(from),
            to: Some(to),
            limit: 1000,
            oldest_first: true,
            ..EventQuery::default()
        };
        let mut events = 0usize;
        let mut truncated = false;
        'pages: loop {
            let page = self.store().search_events(actor.tenant, &query).await?;
            let mut position = None;
            for stored in &page.items {
                if bounds.max_events.is_some_and(|max| events >= max) {
                    truncated = true;
                    break 'pages;
                }
                events += 1;
                position = Some(stored.time);
                if let Some(event) = TestEvent::of(stored) {
                    tester.feed(&event);
                }
            }
            if let (Some(report), Some(position)) = (progress, position) {
                report(&TestProgress {
                    from,
                    to,
                    position,
                    events,
                });
            }
            match page.next_cursor {
                Some(next) => query.cursor = Some(next),
                None => break,
            }
            // Other tasks (the client hanging up, shutdown) get their turn between pages.
            tokio::task::yield_now().await;
        }
        let (matches, matches_total) = tester.finish();
        Ok(TestOutcome {
            from,
            to,
            max_events: bounds.max_events,
            events,
            truncated,
            matches_total,
            matches,
        })
    }
}
