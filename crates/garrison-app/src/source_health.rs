//! Source health (`garrison source health`, `GET /api/v1/sources/{name}/health`) and the
//! silent-source check: is a source sending, how much of it is understood, which rules see it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use garrison_api::admin::{RuleHitsView, SourceHealthView};
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use garrison_sigma::{LoadOptions, RuleSet, RuleSource};
use garrison_store::{DetectionRepo, SourceRepo, TenantRepo};
use serde_json::json;

use crate::{Actor, App, AppError, Result};

/// Rule id of the alert a silent source raises.
pub const SILENT_RULE: &str = "garrison-source-silent";
/// Shortest silence limit (the check runs every `silent_check_interval`, one minute by
/// default, so shorter limits are noticed that late).
pub const MIN_SILENT_AFTER_SECS: u64 = 1;
/// How long per-minute counts are kept.
pub const KEEP_MINUTES_DAYS: i64 = 8;

/// Each tenant's enabled rules compiled for logsource questions, by rule revision.
#[derive(Default)]
pub struct RuleScopes {
    sets: Mutex<HashMap<TenantId, (i64, Arc<RuleSet>)>>,
}

impl App {
    async fn enabled_rule_set(&self, tenant: TenantId) -> Result<Arc<RuleSet>> {
        let revision = self.store().rules_revision(tenant).await?;
        if let Ok(sets) = self.rule_scopes().sets.lock() {
            if let Some((at, set)) = sets.get(&tenant) {
                if *at == revision {
                    return Ok(Arc::clone(set));
                }
            }
        }
        let rules = self.store().list_rules(tenant, true).await?;
        let options = LoadOptions {
            placeholders: self.placeholder_values(tenant).await?,
            ..LoadOptions::default()
        };
        // Compiling thousands of rules takes a while: off the async workers.
        let set = tokio::task::spawn_blocking(move || {
            let sources = rules
                .iter()
                .map(|r| RuleSource::new(r.rule_id.clone(), r.yaml.clone()));
            Arc::new(garrison_sigma::load_rules(sources, &options).0)
        })
        .await
        .map_err(AppError::internal)?;
        if let Ok(mut sets) = self.rule_scopes().sets.lock() {
            sets.insert(tenant, (revision, Arc::clone(&set)));
        }
        Ok(set)
    }

    /// The health of source `name` now.
    pub async fn source_health(&self, actor: &Actor, name: &str) -> Result<SourceHealthView> {
        let now = Timestamp::now();
        let configured = self.store().source(actor.tenant, name).await?;
        let since_day = from_micros(to_micros(now) - 86_400_000_000);
        let minutes = self
            .store()
            .source_minutes(actor.tenant, name, since_day)
            .await?;
        let last = self
            .store()
            .sources_last_received(actor.tenant)
            .await?
            .into_iter()
            .find(|(source, _)| source == name)
            .map(|(_, at)| at);
        if configured.is_none() && last.is_none() && minutes.is_empty() {
            return Err(AppError::NotFound(format!(
                "source {name:?} (neither configured nor sending in the last {KEEP_MINUTES_DAYS} days)"
            )));
        }
        let now_us = to_micros(now);
        let rate = |window_secs: i64| {
            let start = now_us - now_us.rem_euclid(60_000_000) - window_secs * 1_000_000;
            let events: u64 = minutes
                .iter()
                .filter(|m| to_micros(m.minute) >= start)
                .map(|m| m.events)
                .sum();
            let span = ((now_us - start) as f64 / 1e6).max(1.0);
            (events as f64 / span * 1000.0).round() / 1000.0
        };
        let events_24h: u64 = minutes.iter().map(|m| m.events).sum();
        let duplicates_24h = minutes.iter().map(|m| m.duplicates).sum();
        let unparsed_24h: u64 = minutes.iter().map(|m| m.unparsed).sum();
        let silent_for =
            last.map(|at| u64::try_from((now_us - to_micros(at)) / 1_000_000).unwrap_or(0));
        let silent_after = configured.as_ref().and_then(|s| s.silent_after_secs);
        let silent = match (silent_after, silent_for) {
            (Some(limit), Some(quiet)) => quiet > limit,
            (Some(_), None) => true,
            _ => false,
        };
        let stream = garrison_sigma::LogSource {
            product: configured.as_ref().and_then(|s| s.product.clone()),
            service: configured.as_ref().and_then(|s| s.service.clone()),
            category: configured.as_ref().and_then(|s| s.category.clone()),
            definition: None,
        };
        let set = self.enabled_rule_set(actor.tenant).await?;
        let applicable = set.applicable(&stream);
        let rules_applicable = applicable.iter().filter(|a| **a).count() as u64;
        let fired = self
            .store()
            .source_rule_hits(actor.tenant, name, since_day)
            .await?;
        let mut notes = Vec::new();
        if stream == garrison_sigma::LogSource::default() {
            notes.push(format!(
                "no logsource set: of {} enabled rules, only the {rules_applicable} that name no logsource apply (events that say what they are, such as Windows event log records, also get their product's rules); set one with `garrison source set {name} --product ...`",
                set.len()
            ));
        }
        if unparsed_24h > 0 {
            notes.push(format!(
                "{unparsed_24h} events in 24 h were not understood by their decoder (search `field.garrison.unparsed` to see them)"
            ));
        }
        if silent {
            notes.push(match silent_for {
                Some(quiet) => format!(
                    "silent for {quiet} s, longer than its limit of {} s",
                    silent_after.unwrap_or(0)
                ),
                None => "no event stored in the last 8 days".to_string(),
            });
        }
        Ok(SourceHealthView {
            source: name.to_string(),
            configured: configured.is_some(),
            product: stream.product,
            service: stream.service,
            category: stream.category,
            last_event_received: last.map(|t| t.to_string()),
            silent_for_secs: silent_for,
            silent_after_secs: silent_after,
            silent,
            events_per_second_1m: rate(60),
            events_per_second_1h: rate(3600),
            events_24h,
            duplicates_24h,
            unparsed_24h,
            unparsed_share_24h: if events_24h == 0 {
                0.0
            } else {
                (unparsed_24h as f64 / events_24h as f64 * 10_000.0).round() / 10_000.0
            },
            rules_enabled: set.len() as u64,
            rules_applicable,
            rules_fired_24h: fired
                .into_iter()
                .map(|(rule_id, hits)| RuleHitsView { rule_id, hits })
                .collect(),
            notes,
        })
    }

    /// Raises `garrison-source-silent` for every watched source of every tenant that has
    /// been silent longer than its limit (one alert per source and hour: repeats fold), and
    /// drops per-minute counts past their keep. Housekeeping: runs every minute in the
    /// service. Returns how many sources are silent.
    pub async fn check_silent_sources(&self, now: Timestamp) -> Result<usize> {
        let mut silent = 0;
        for tenant in self.store().list_tenants().await? {
            let sources = self.store().list_sources(tenant.id).await?;
            if sources.iter().all(|s| s.silent_after_secs.is_none()) {
                continue;
            }
            let last: HashMap<String, Timestamp> = self
                .store()
                .sources_last_received(tenant.id)
                .await?
                .into_iter()
                .collect();
            for source in sources {
                let Some(limit) = source.silent_after_secs else {
                    continue;
                };
                // A source never heard from is silent since it was configured.
                let heard = last.get(&source.name).copied();
                let since = heard.unwrap_or(source.created);
                let quiet = (to_micros(now) - to_micros(since)) / 1_000_000;
                if quiet <= i64::try_from(limit).unwrap_or(i64::MAX) {
                    continue;
                }
                silent += 1;
                self.raise_silent(tenant.id, &source.name, heard, quiet, limit, now)
                    .await;
            }
        }
        let cutoff = from_micros(to_micros(now) - KEEP_MINUTES_DAYS * 86_400_000_000);
        self.store().purge_source_minutes(cutoff).await?;
        Ok(silent)
    }

    async fn raise_silent(
        &self,
        tenant: TenantId,
        source: &str,
        heard: Option<Timestamp>,
        quiet: i64,
        limit: u64,
        now: Timestamp,
    ) {
        let mut entity = serde_json::Map::new();
        entity.insert("event.dataset".into(), json!(source));
        let window = garrison_detect::window_start(now, 3_600_000_000);
        self.raise_internal_alert(crate::InternalAlert {
            tenant,
            rule: SILENT_RULE,
            title: format!("Source {source} has sent nothing for {quiet} s"),
            level: garrison_model::Level::Medium,
            entity,
            // One per source and window: later checks in the hour fold into the same alert
            // without counting again.
            event_id: format!("source-silent-{source}-{}", to_micros(window)),
            matched: json!({
                "source": source,
                // null: nothing was ever stored from it (silent since it was configured).
                "last_event_received": heard.map(|t| t.to_string()),
                "silent_after_secs": limit,
            }),
            at: now,
            consumer: "sources.silent",
        })
        .await;
    }
}
