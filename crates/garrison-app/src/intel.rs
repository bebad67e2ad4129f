//! Threat-intel indicators: import feeds (CSV, STIX 2.1, MISP), list, expire and delete.
//! Importing and deleting need the admin, analyst or responder role and are audited.

use garrison_api::indicators::{
    DeletedFeed, FeedView, ImportParams, IndicatorImportResult, IndicatorView, IndicatorsPage,
    ListParams, RecordProblem,
};
use garrison_intel::{Format, ImportOptions, IndicatorKind, IndicatorValue};
use garrison_model::{PageLimit, Role, Timestamp};
use garrison_store::{FeedImport, IndicatorQuery, IndicatorRepo, NewIndicator};

use crate::{Actor, App, AppError, Result};

/// Roles that may change indicators (viewers only read).
pub const INTEL_AUTHORS: &[Role] = &[Role::Admin, Role::Analyst, Role::Responder];
/// Most skipped records listed in an import answer (all are counted).
const MAX_LISTED_SKIPPED: usize = 1000;

impl App {
    /// Imports a feed (the file's bytes); good records are stored (upserted by kind, value and
    /// source), every bad one is listed with its place.
    pub async fn import_indicators(
        &self,
        actor: &Actor,
        params: ImportParams,
        body: Vec<u8>,
    ) -> Result<IndicatorImportResult> {
        actor.require_any(INTEL_AUTHORS)?;
        let now = Timestamp::now();
        let format = params
            .format
            .parse::<Format>()
            .map_err(|e| AppError::invalid(format!("parameter format: {e}")))?;
        let mut options = ImportOptions::new(params.source.trim().to_string(), now);
        if options.source.is_empty() || options.source.len() > 256 {
            return Err(AppError::invalid(
                "parameter source: the feed's name must be 1 to 256 characters",
            ));
        }
        if let Some(c) = params.confidence {
            if c > 100 {
                return Err(AppError::invalid("parameter confidence: must be 0 to 100"));
            }
            options.default_confidence = c;
        }
        if let Some(days) = params.ttl_days {
            options.default_ttl = Some(jiff::SignedDuration::from_hours(i64::from(days) * 24));
        }
        options.misp_include_non_ids = params.include_non_ids.unwrap_or(false);
        if body.is_empty() {
            return Err(AppError::invalid("the body is empty"));
        }
        let source = options.source.clone();
        let parsed = tokio::task::spawn_blocking(move || format.parse(&body, &options))
            .await
            .map_err(AppError::internal)?;
        let new: Vec<NewIndicator> = parsed
            .indicators
            .iter()
            .map(|i| NewIndicator {
                kind: i.kind().as_str().to_string(),
                value: i.value.text().into_owned(),
                source: i.source.clone(),
                confidence: i64::from(i.confidence),
                first_seen: i.first_seen,
                expires: i.expires,
                tags: i.tags.clone(),
                description: i.description.clone(),
            })
            .collect();
        let feed = FeedImport {
            name: source.clone(),
            format: format.as_str().to_string(),
            errors: parsed.errors.len() as u64,
        };
        let (summary, _) = self
            .store()
            .import_indicators(actor.tenant, &feed, &new, now)
            .await?;
        self.record(
            actor,
            "indicator.import",
            &source,
            serde_json::json!({
                "format": format.as_str(), "parsed": new.len(),
                "created": summary.created, "updated": summary.updated,
                "errors": parsed.errors.len(), "skipped": parsed.skipped.len(),
            }),
        )
        .await;
        let skipped_count = parsed.skipped.len() as u64;
        Ok(IndicatorImportResult {
            format: format.as_str().to_string(),
            source,
            parsed: new.len() as u64,
            imported: summary.created + summary.updated,
            created: summary.created,
            updated: summary.updated,
            errors: parsed.errors.into_iter().map(RecordProblem::from).collect(),
            skipped: parsed
                .skipped
                .into_iter()
                .take(MAX_LISTED_SKIPPED)
                .map(RecordProblem::from)
                .collect(),
            skipped_count,
        })
    }

    /// The tenant's indicators, oldest first, with filters and a cursor.
    pub async fn list_indicators(
        &self,
        actor: &Actor,
        params: ListParams,
    ) -> Result<IndicatorsPage> {
        let now = Timestamp::now();
        let kind = match params.kind {
            Some(v) => Some(
                v.parse::<IndicatorKind>()
                    .map_err(|e: garrison_intel::UnknownKind| {
                        AppError::invalid(format!("parameter kind: {e}"))
                    })?
                    .as_str()
                    .to_string(),
            ),
            None => None,
        };
        let mut q = IndicatorQuery {
            kind,
            source: params.source,
            active_at: params.active.unwrap_or(false).then_some(now),
            min_confidence: params.min_confidence,
            limit: PageLimit::or(params.limit, 100),
            cursor: params.cursor,
            ..IndicatorQuery::default()
        };
        let value = params.value;
        if let Some(value) = value {
            let canonical = match q
                .kind
                .as_deref()
                .and_then(|k| k.parse::<IndicatorKind>().ok())
            {
                Some(kind) => IndicatorValue::parse(kind, &value),
                None => IndicatorValue::infer(&value),
            };
            q.value = Some(canonical.map_or(value, |v| v.text().into_owned()));
        }
        let page = self.store().list_indicators(actor.tenant, &q).await?;
        Ok(IndicatorsPage {
            indicators: page
                .items
                .into_iter()
                .map(|i| IndicatorView::new(i, now))
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// The tenant's indicator feeds with their last import.
    pub async fn list_feeds(&self, actor: &Actor) -> Result<Vec<FeedView>> {
        let feeds = self.store().list_feeds(actor.tenant).await?;
        Ok(feeds.into_iter().map(FeedView::from).collect())
    }

    pub async fn delete_indicator(&self, actor: &Actor, id: i64) -> Result<()> {
        actor.require_any(INTEL_AUTHORS)?;
        self.store().delete_indicator(actor.tenant, id).await?;
        self.record(
            actor,
            "indicator.delete",
            &id.to_string(),
            serde_json::json!({}),
        )
        .await;
        Ok(())
    }

    /// Expires one indicator now: it stays listed but no longer matches.
    pub async fn expire_indicator(&self, actor: &Actor, id: i64) -> Result<IndicatorView> {
        actor.require_any(INTEL_AUTHORS)?;
        let now = Timestamp::now();
        let stored = self.store().expire_indicator(actor.tenant, id, now).await?;
        self.record(
            actor,
            "indicator.expire",
            &id.to_string(),
            serde_json::json!({"value": stored.value}),
        )
        .await;
        Ok(IndicatorView::new(stored, now))
    }

    /// Deletes a feed and every indicator it brought.
    pub async fn delete_feed(&self, actor: &Actor, name: &str) -> Result<DeletedFeed> {
        actor.require_any(INTEL_AUTHORS)?;
        let deleted = self
            .store()
            .delete_indicator_source(actor.tenant, name)
            .await?;
        self.record(
            actor,
            "indicator.feed.delete",
            name,
            serde_json::json!({"deleted": deleted}),
        )
        .await;
        Ok(DeletedFeed { deleted })
    }
}

/// How far a retro-hunt is.
#[derive(Clone, Debug)]
pub struct RetroHuntProgress {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Time of the last event read.
    pub position: Timestamp,
    pub events: u64,
    pub matches: u64,
}

impl App {
    /// Matches the tenant's active indicators against every stored event of a range, oldest
    /// first, a page at a time (admins, analysts, responders): new indicators find what
    /// already happened. Matches become `ioc:<kind>` alerts exactly as live ones (same ids,
    /// folded; an event already alerted on is not counted again), scored as the indicators
    /// stand now. Dropping the future cancels it; what was found so far stays recorded.
    pub async fn retro_hunt(
        &self,
        actor: &Actor,
        request: garrison_api::indicators::RetroHuntRequest,
        progress: Option<&(dyn Fn(&RetroHuntProgress) + Send + Sync)>,
    ) -> Result<garrison_api::indicators::RetroHuntResult> {
        use garrison_store::{DetectionRepo, EventQuery, EventRepo, EventRow};
        actor.require_any(INTEL_AUTHORS)?;
        let now = Timestamp::now();
        let to = request.to.map(|t| t.0).unwrap_or(now);
        let from = match request.from {
            Some(from) => from.0,
            None => to
                .checked_sub(garrison_model::SignedDuration::from_hours(24 * 7))
                .map_err(AppError::internal)?,
        };
        if from >= to {
            return Err(AppError::invalid("from must be before to"));
        }
        let stored = self.store().active_indicators(actor.tenant, now).await?;
        let intel = garrison_detect::intel::TenantIntel::build(0, &stored);
        let config = garrison_detect::DetectConfig::default();
        let mut query = EventQuery {
            from: Some(from),
            to: Some(to),
            limit: 1000,
            oldest_first: true,
            ..EventQuery::default()
        };
        let (mut events, mut matches, mut alerts_created) = (0u64, 0u64, 0u64);
        while !intel.is_empty() {
            let page = self.store().search_events(actor.tenant, &query).await?;
            let mut hits = Vec::new();
            let mut position = None;
            for event in &page.items {
                events += 1;
                position = Some(event.time);
                let row = EventRow::from_event(event);
                garrison_detect::intel::ioc_hits_scored_at(&row, &intel, &config, now, &mut hits);
            }
            matches += hits.len() as u64;
            if !hits.is_empty() {
                let outcome = self
                    .store()
                    .record_detections(
                        &hits,
                        "indicators.retro_hunt",
                        u64::try_from(garrison_model::to_micros(now)).unwrap_or(0),
                    )
                    .await?;
                alerts_created += outcome.alerts_created;
            }
            if let (Some(report), Some(position)) = (progress, position) {
                report(&RetroHuntProgress {
                    from,
                    to,
                    position,
                    events,
                    matches,
                });
            }
            match page.next_cursor {
                Some(next) => query.cursor = Some(next),
                None => break,
            }
            tokio::task::yield_now().await;
        }
        self.record(
            actor,
            "indicators.retro_hunt",
            "indicators",
            serde_json::json!({
                "from": from.to_string(), "to": to.to_string(), "indicators": intel.len(),
                "events": events, "matches": matches, "alerts_created": alerts_created,
            }),
        )
        .await;
        Ok(garrison_api::indicators::RetroHuntResult {
            from: from.to_string(),
            to: to.to_string(),
            indicators: intel.len(),
            events,
            matches,
            alerts_created,
        })
    }
}
