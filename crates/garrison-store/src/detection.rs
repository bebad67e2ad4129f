//! Detection data: Sigma rules per tenant (every version kept), alerts folded by fingerprint
//! within a time window, and the live detector's log position.
//!
//! **Invariant:** an event is folded into an alert at most once. Each (alert, event) pair is a row
//! of `alert_events`; an alert's `count` grows only by the pairs that were new, in the same
//! transaction that moves the detector's log position. A replay of the log after a crash
//! therefore upserts the same alerts and never counts an event twice.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use garrison_model::{from_micros, to_micros, AlertStatus, Level, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::page::{decode_cursor, encode_cursor, Filter, Page};
use crate::{Result, SqlStore, StoreError};

/// A rule as imported: one Sigma file (its documents), named by the id of its first rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRule {
    /// The Sigma id (or name) of the file's first rule.
    pub rule_id: String,
    pub title: String,
    pub level: Option<Level>,
    /// The file's text, all of its documents.
    pub yaml: String,
    /// Where it came from: a file path, `archive.zip:member`, or an API upload.
    pub origin: String,
}

/// A stored rule: its current version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRule {
    pub tenant_id: TenantId,
    pub rule_id: String,
    pub title: String,
    pub level: Option<Level>,
    pub yaml: String,
    pub origin: String,
    /// 1 for the first import; +1 whenever an import brings a different text.
    pub version: i64,
    pub enabled: bool,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// A past (or the current) version of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleVersion {
    pub rule_id: String,
    pub version: i64,
    pub title: String,
    pub level: Option<Level>,
    pub yaml: String,
    pub origin: String,
    pub created: Timestamp,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rules enabled by this import (with `enable`).
    pub enabled: u64,
}

/// One event matched by one rule, as the detector hands it over to be folded into its alert.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertHit {
    pub tenant_id: TenantId,
    /// Deterministic: the same (tenant, rule, fingerprint, window) always gives the same id.
    pub alert_id: String,
    pub rule_id: String,
    pub title: String,
    pub level: Level,
    pub fingerprint: String,
    /// The entity values the fingerprint was made of, as a JSON object.
    pub entity_json: String,
    pub window_start: Timestamp,
    pub event_id: String,
    pub event_time: Timestamp,
    /// The Sigma fields and values that matched, as a JSON object.
    pub matched_json: String,
}

/// What [`DetectionRepo::record_detections`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectionOutcome {
    /// (alert, event) pairs that were new; pairs seen before (a replay) are not counted.
    pub hits_new: u64,
    /// Alerts that did not exist before.
    pub alerts_created: u64,
    /// Existing alerts whose count grew.
    pub alerts_updated: u64,
}

/// An alert: the repeats of one rule for one entity within one window, folded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub tenant_id: TenantId,
    pub alert_id: String,
    pub rule_id: String,
    pub title: String,
    pub level: Level,
    pub fingerprint: String,
    pub entity: serde_json::Value,
    pub window_start: Timestamp,
    pub count: i64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub matched: serde_json::Value,
    /// Null until incidents exist.
    pub incident_id: Option<String>,
    pub status: AlertStatus,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// A listing of alerts, newest first. All conditions are ANDed.
#[derive(Clone, Debug, Default)]
pub struct AlertQuery {
    pub level: Option<Level>,
    pub rule_id: Option<String>,
    /// Alerts seen at or after this time (their last event).
    pub from: Option<Timestamp>,
    /// Alerts seen before this time (their first event).
    pub to: Option<Timestamp>,
    pub limit: usize,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A page of alerts, newest first.
pub type AlertPage = Page<Alert>;

#[async_trait]
pub trait DetectionRepo: Send + Sync {
    /// Imports rule files: new ids are created (version 1), a changed text makes a new version
    /// (the old one stays in the history), the same text changes nothing. With `enable`, every
    /// imported rule is enabled; otherwise new rules start disabled and others keep their state.
    async fn import_rules(
        &self,
        tenant: TenantId,
        rules: &[NewRule],
        enable: bool,
    ) -> Result<ImportSummary>;
    async fn list_rules(&self, tenant: TenantId, enabled_only: bool) -> Result<Vec<StoredRule>>;
    async fn rule(&self, tenant: TenantId, rule_id: &str) -> Result<Option<StoredRule>>;
    /// Every version of a rule, oldest first.
    async fn rule_versions(&self, tenant: TenantId, rule_id: &str) -> Result<Vec<RuleVersion>>;
    async fn set_rule_enabled(
        &self,
        tenant: TenantId,
        rule_id: &str,
        enabled: bool,
    ) -> Result<StoredRule>;
    /// A number that changes whenever a rule of the tenant changes (0: never had rules).
    async fn rules_revision(&self, tenant: TenantId) -> Result<i64>;
    /// Every tenant's rule revision, for the detector (the only unscoped read here: numbers,
    /// no tenant data).
    async fn all_rules_revisions(&self) -> Result<Vec<(TenantId, i64)>>;
    /// Folds hits into their alerts and moves `consumer`'s log position to `position`, in one
    /// transaction. A hit whose (alert, event) pair was folded before changes nothing.
    async fn record_detections(
        &self,
        hits: &[AlertHit],
        consumer: &str,
        position: u64,
    ) -> Result<DetectionOutcome>;
    async fn list_alerts(&self, tenant: TenantId, query: &AlertQuery) -> Result<AlertPage>;
    async fn alert(&self, tenant: TenantId, alert_id: &str) -> Result<Option<Alert>>;
    /// Ids of the events folded into an alert, oldest first, at most `limit`.
    async fn alert_event_ids(
        &self,
        tenant: TenantId,
        alert_id: &str,
        limit: usize,
    ) -> Result<Vec<String>>;
}

const RULE_COLUMNS: &str =
    "tenant_id, rule_id, title, level, yaml, origin, version, enabled, created_us, updated_us";
/// A stored rule level: written from [`Level::as_str`], read leniently so an odd row reads.
fn rule_level_of(text: Option<String>) -> Option<Level> {
    text.map(|t| Level::parse_lenient(&t))
}

const ALERT_COLUMNS: &str = "seq, tenant_id, alert_id, rule_id, title, level, fingerprint, entity, window_start_us, count, first_seen_us, last_seen_us, matched, incident_id, status, created_us, updated_us";
/// Most (alert, event) pairs in one INSERT (4 parameters each).
const PAIRS_PER_STATEMENT: usize = 200;

fn rule_from_row(row: &AnyRow) -> Result<StoredRule> {
    Ok(StoredRule {
        tenant_id: TenantId(row.try_get("tenant_id")?),
        rule_id: row.try_get("rule_id")?,
        title: row.try_get("title")?,
        level: rule_level_of(row.try_get("level")?),
        yaml: row.try_get("yaml")?,
        origin: row.try_get("origin")?,
        version: row.try_get("version")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created: from_micros(row.try_get("created_us")?),
        updated: from_micros(row.try_get("updated_us")?),
    })
}

fn json_column(row: &AnyRow, column: &'static str) -> Result<serde_json::Value> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        column,
        reason: e.to_string(),
    })
}

fn alert_from_row(row: &AnyRow) -> Result<Alert> {
    Ok(Alert {
        tenant_id: TenantId(row.try_get("tenant_id")?),
        alert_id: row.try_get("alert_id")?,
        rule_id: row.try_get("rule_id")?,
        title: row.try_get("title")?,
        level: Level::parse_lenient(&row.try_get::<String, _>("level")?),
        fingerprint: row.try_get("fingerprint")?,
        entity: json_column(row, "entity")?,
        window_start: from_micros(row.try_get("window_start_us")?),
        count: row.try_get("count")?,
        first_seen: from_micros(row.try_get("first_seen_us")?),
        last_seen: from_micros(row.try_get("last_seen_us")?),
        matched: json_column(row, "matched")?,
        incident_id: row.try_get("incident_id")?,
        status: AlertStatus::parse_lenient(&row.try_get::<String, _>("status")?),
        created: from_micros(row.try_get("created_us")?),
        updated: from_micros(row.try_get("updated_us")?),
    })
}

fn position_param(position: u64) -> Result<i64> {
    i64::try_from(position).map_err(|_| StoreError::Invalid {
        what: "log position".into(),
        reason: format!("{position} does not fit a signed 64-bit integer"),
    })
}

fn check_rule(rule: &NewRule) -> Result<()> {
    let invalid = |reason: &str| {
        Err(StoreError::Invalid {
            what: format!("rule {:?}", rule.rule_id),
            reason: reason.to_string(),
        })
    };
    if rule.rule_id.trim().is_empty() || rule.rule_id.len() > 256 {
        return invalid("the id must have 1 to 256 characters");
    }
    if rule.yaml.len() > 1024 * 1024 {
        return invalid("the rule text exceeds 1 MiB");
    }
    if rule.title.len() > 1024 || rule.origin.len() > 4096 {
        return invalid("the title or origin is too long");
    }
    Ok(())
}

pub(crate) async fn bump_revision(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: TenantId,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO rule_revisions (tenant_id, revision) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET revision = rule_revisions.revision + 1",
    )
    .bind(tenant.0)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The tag of alert cursors (newest first, by `seq`).
const ALERT_CURSOR: &str = "a";

/// The new pairs of one alert in a batch.
struct Fold<'a> {
    hit: &'a AlertHit,
    count: i64,
    first: i64,
    last: i64,
}

#[async_trait]
impl DetectionRepo for SqlStore {
    async fn import_rules(
        &self,
        tenant: TenantId,
        rules: &[NewRule],
        enable: bool,
    ) -> Result<ImportSummary> {
        for rule in rules {
            check_rule(rule)?;
        }
        let now = to_micros(Timestamp::now());
        let mut tx = self.begin_write().await?;
        let existing: HashMap<String, (String, i64, bool)> =
            sqlx::query("SELECT rule_id, yaml, version, enabled FROM rules WHERE tenant_id = $1")
                .bind(tenant.0)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get::<String, _>("rule_id")?,
                        (
                            row.try_get::<String, _>("yaml")?,
                            row.try_get::<i64, _>("version")?,
                            row.try_get::<i64, _>("enabled")? != 0,
                        ),
                    ))
                })
                .collect::<Result<_>>()?;
        let mut summary = ImportSummary::default();
        // The last of several files with one id wins, once.
        let mut latest: BTreeMap<&str, &NewRule> = BTreeMap::new();
        for rule in rules {
            latest.insert(rule.rule_id.as_str(), rule);
        }
        for rule in latest.values() {
            let version = match existing.get(&rule.rule_id) {
                None => {
                    sqlx::query(
                        "INSERT INTO rules (tenant_id, rule_id, title, level, yaml, origin, version, enabled, created_us, updated_us) \
                         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $8)",
                    )
                    .bind(tenant.0)
                    .bind(&rule.rule_id)
                    .bind(&rule.title)
                    .bind(rule.level.map(Level::as_str))
                    .bind(&rule.yaml)
                    .bind(&rule.origin)
                    .bind(i64::from(enable))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    summary.created += 1;
                    summary.enabled += u64::from(enable);
                    Some(1)
                }
                Some((yaml, version, enabled)) if *yaml != rule.yaml => {
                    sqlx::query(
                        "UPDATE rules SET title = $1, level = $2, yaml = $3, origin = $4, version = $5, enabled = $6, updated_us = $7 \
                         WHERE tenant_id = $8 AND rule_id = $9",
                    )
                    .bind(&rule.title)
                    .bind(rule.level.map(Level::as_str))
                    .bind(&rule.yaml)
                    .bind(&rule.origin)
                    .bind(version + 1)
                    .bind(i64::from(enable || *enabled))
                    .bind(now)
                    .bind(tenant.0)
                    .bind(&rule.rule_id)
                    .execute(&mut *tx)
                    .await?;
                    summary.updated += 1;
                    summary.enabled += u64::from(enable && !enabled);
                    Some(version + 1)
                }
                Some((_, _, enabled)) => {
                    summary.unchanged += 1;
                    if enable && !enabled {
                        sqlx::query(
                            "UPDATE rules SET enabled = 1, updated_us = $1 WHERE tenant_id = $2 AND rule_id = $3",
                        )
                        .bind(now)
                        .bind(tenant.0)
                        .bind(&rule.rule_id)
                        .execute(&mut *tx)
                        .await?;
                        summary.enabled += 1;
                    }
                    None
                }
            };
            if let Some(version) = version {
                sqlx::query(
                    "INSERT INTO rule_versions (tenant_id, rule_id, version, title, level, yaml, origin, created_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(tenant.0)
                .bind(&rule.rule_id)
                .bind(version)
                .bind(&rule.title)
                .bind(rule.level.map(Level::as_str))
                .bind(&rule.yaml)
                .bind(&rule.origin)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        if summary.created + summary.updated + summary.enabled > 0 {
            bump_revision(&mut tx, tenant).await?;
        }
        tx.commit().await?;
        Ok(summary)
    }

    async fn list_rules(&self, tenant: TenantId, enabled_only: bool) -> Result<Vec<StoredRule>> {
        let filter = if enabled_only { " AND enabled = 1" } else { "" };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM rules WHERE tenant_id = $1{filter} ORDER BY rule_id"
        )))
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_from_row).collect()
    }

    async fn rule(&self, tenant: TenantId, rule_id: &str) -> Result<Option<StoredRule>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM rules WHERE tenant_id = $1 AND rule_id = $2"
        )))
        .bind(tenant.0)
        .bind(rule_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rule_from_row).transpose()
    }

    async fn rule_versions(&self, tenant: TenantId, rule_id: &str) -> Result<Vec<RuleVersion>> {
        let rows = sqlx::query(
            "SELECT rule_id, version, title, level, yaml, origin, created_us FROM rule_versions \
             WHERE tenant_id = $1 AND rule_id = $2 ORDER BY version",
        )
        .bind(tenant.0)
        .bind(rule_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RuleVersion {
                    rule_id: row.try_get("rule_id")?,
                    version: row.try_get("version")?,
                    title: row.try_get("title")?,
                    level: rule_level_of(row.try_get("level")?),
                    yaml: row.try_get("yaml")?,
                    origin: row.try_get("origin")?,
                    created: from_micros(row.try_get("created_us")?),
                })
            })
            .collect()
    }

    async fn set_rule_enabled(
        &self,
        tenant: TenantId,
        rule_id: &str,
        enabled: bool,
    ) -> Result<StoredRule> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE rules SET enabled = $1, updated_us = $2 WHERE tenant_id = $3 AND rule_id = $4 RETURNING {RULE_COLUMNS}"
        )))
        .bind(i64::from(enabled))
        .bind(to_micros(Timestamp::now()))
        .bind(tenant.0)
        .bind(rule_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                what: format!("rule {rule_id:?}"),
            });
        };
        let rule = rule_from_row(&row)?;
        bump_revision(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(rule)
    }

    async fn rules_revision(&self, tenant: TenantId) -> Result<i64> {
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM rule_revisions WHERE tenant_id = $1")
                .bind(tenant.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(revision.unwrap_or(0))
    }

    async fn all_rules_revisions(&self) -> Result<Vec<(TenantId, i64)>> {
        let rows = sqlx::query("SELECT tenant_id, revision FROM rule_revisions ORDER BY tenant_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    TenantId(row.try_get("tenant_id")?),
                    row.try_get("revision")?,
                ))
            })
            .collect()
    }

    async fn record_detections(
        &self,
        hits: &[AlertHit],
        consumer: &str,
        position: u64,
    ) -> Result<DetectionOutcome> {
        let position = position_param(position)?;
        // Pairs repeated within the batch (an event sent twice) count once.
        let mut seen: HashMap<(TenantId, &str, &str), usize> = HashMap::new();
        let mut unique: Vec<&AlertHit> = Vec::with_capacity(hits.len());
        for hit in hits {
            let key = (hit.tenant_id, hit.alert_id.as_str(), hit.event_id.as_str());
            if let std::collections::hash_map::Entry::Vacant(slot) = seen.entry(key) {
                slot.insert(unique.len());
                unique.push(hit);
            }
        }
        let _turn = self.priority_write_turn().await;
        let mut tx = self.begin_write().await?;
        let mut outcome = DetectionOutcome::default();
        // Which pairs are new: the insert returns only those.
        let mut folds: BTreeMap<(i64, String), Fold<'_>> = BTreeMap::new();
        for chunk in unique.chunks(PAIRS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO alert_events (tenant_id, alert_id, event_id, time_us) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                let b = i * 4;
                sql.push_str(&format!("(${},${},${},${})", b + 1, b + 2, b + 3, b + 4));
            }
            sql.push_str(" ON CONFLICT (tenant_id, alert_id, event_id) DO NOTHING RETURNING tenant_id, alert_id, event_id");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for hit in chunk {
                query = query
                    .bind(hit.tenant_id.0)
                    .bind(hit.alert_id.clone())
                    .bind(hit.event_id.clone())
                    .bind(to_micros(hit.event_time));
            }
            let rows = query
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
            for row in rows {
                let tenant = TenantId(row.try_get("tenant_id")?);
                let alert_id: String = row.try_get("alert_id")?;
                let event_id: String = row.try_get("event_id")?;
                let Some(&index) = seen.get(&(tenant, alert_id.as_str(), event_id.as_str())) else {
                    continue;
                };
                let hit = unique[index];
                let time = to_micros(hit.event_time);
                outcome.hits_new += 1;
                folds
                    .entry((tenant.0, alert_id))
                    .and_modify(|f| {
                        f.count += 1;
                        f.first = f.first.min(time);
                        f.last = f.last.max(time);
                    })
                    .or_insert(Fold {
                        hit,
                        count: 1,
                        first: time,
                        last: time,
                    });
            }
        }
        let now = to_micros(Timestamp::now());
        for fold in folds.values() {
            let hit = fold.hit;
            let count: i64 = sqlx::query_scalar(
                "INSERT INTO alerts (tenant_id, alert_id, rule_id, title, level, fingerprint, entity, window_start_us, count, first_seen_us, last_seen_us, matched, status, last_position, created_us, updated_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'new', $13, $14, $14) \
                 ON CONFLICT (tenant_id, alert_id) DO UPDATE SET \
                   count = alerts.count + excluded.count, \
                   first_seen_us = CASE WHEN excluded.first_seen_us < alerts.first_seen_us THEN excluded.first_seen_us ELSE alerts.first_seen_us END, \
                   last_seen_us = CASE WHEN excluded.last_seen_us > alerts.last_seen_us THEN excluded.last_seen_us ELSE alerts.last_seen_us END, \
                   last_position = excluded.last_position, \
                   updated_us = excluded.updated_us \
                 RETURNING count",
            )
            .bind(hit.tenant_id.0)
            .bind(&hit.alert_id)
            .bind(&hit.rule_id)
            .bind(&hit.title)
            .bind(hit.level.as_str())
            .bind(&hit.fingerprint)
            .bind(&hit.entity_json)
            .bind(to_micros(hit.window_start))
            .bind(fold.count)
            .bind(fold.first)
            .bind(fold.last)
            .bind(&hit.matched_json)
            .bind(position)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            if count == fold.count {
                outcome.alerts_created += 1;
            } else {
                outcome.alerts_updated += 1;
            }
        }
        sqlx::query(
            "INSERT INTO consumer_positions (consumer, position) VALUES ($1, $2) \
             ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
        )
        .bind(consumer)
        .bind(position)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn list_alerts(&self, tenant: TenantId, query: &AlertQuery) -> Result<AlertPage> {
        let limit = query.limit.clamp(1, 1000);
        let mut filter = Filter::tenant("tenant_id", tenant);
        filter.eq_opt("level", query.level.map(Level::as_str));
        filter.eq_opt("rule_id", query.rule_id.as_deref());
        if let Some(from) = query.from {
            filter.cmp("last_seen_us", ">=", to_micros(from));
        }
        if let Some(to) = query.to {
            filter.cmp("first_seen_us", "<", to_micros(to));
        }
        if let Some(cursor) = &query.cursor {
            let [seq] = decode_cursor(ALERT_CURSOR, cursor)?;
            filter.cmp("seq", "<", seq);
        }
        let l = filter.bind(limit as i64 + 1);
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE {} ORDER BY seq DESC LIMIT {l}",
            filter.where_sql()
        );
        let rows = filter.query(sql).fetch_all(&self.pool).await?;
        Page::from_rows(&rows, limit, alert_from_row, |row| {
            Ok(encode_cursor(ALERT_CURSOR, &[row.try_get("seq")?]))
        })
    }

    async fn alert(&self, tenant: TenantId, alert_id: &str) -> Result<Option<Alert>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = $1 AND alert_id = $2"
        )))
        .bind(tenant.0)
        .bind(alert_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(alert_from_row).transpose()
    }

    async fn alert_event_ids(
        &self,
        tenant: TenantId,
        alert_id: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT event_id FROM alert_events WHERE tenant_id = $1 AND alert_id = $2 ORDER BY time_us, event_id LIMIT $3",
        )
        .bind(tenant.0)
        .bind(alert_id)
        .bind(limit.clamp(1, 10_000) as i64)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Reads for consumers that follow new alerts across tenants (playbook triggers). Like
/// [`DetectionRepo::all_rules_revisions`], these are unscoped: each row carries its tenant, and
/// the caller acts in that tenant only.
impl SqlStore {
    /// Alerts created with a sequence number above `after_seq`, oldest first, at most `limit`
    /// (1..=1000), with their sequence numbers. Only the detector inserts alerts, one
    /// transaction at a time, so a consumer that commits the last sequence it handled misses
    /// nothing.
    pub async fn alerts_created_after(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Alert)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE seq > $1 ORDER BY seq LIMIT $2"
        )))
        .bind(after_seq)
        .bind(limit.clamp(1, 1000) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("seq")?, alert_from_row(row)?)))
            .collect()
    }

    /// Alerts still `new` (not suppressed) updated after `after` (their `updated`, then
    /// `seq`) and before `before_us`, oldest update first, at most `limit` (1..=1000), with
    /// their sequence numbers: for re-checking folds against suppressions created since.
    /// Unscoped like [`SqlStore::alerts_created_after`].
    pub async fn open_alerts_updated_after(
        &self,
        after: (i64, i64),
        before_us: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Alert)>> {
        // Keyset on (updated, seq): one detector batch stamps many alerts with one time.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE status = 'new' \
             AND (updated_us > $1 OR (updated_us = $1 AND seq > $2)) AND updated_us < $3 \
             ORDER BY updated_us, seq LIMIT $4"
        )))
        .bind(after.0)
        .bind(after.1)
        .bind(before_us)
        .bind(limit.clamp(1, 1000) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("seq")?, alert_from_row(row)?)))
            .collect()
    }

    /// One tenant's alerts still `new` with a sequence number above `after_seq`, by sequence,
    /// at most `limit` (1..=1000), with their sequence numbers.
    pub async fn open_alerts(
        &self,
        tenant: TenantId,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Alert)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE tenant_id = $1 AND seq > $2 AND status = 'new' \
             ORDER BY seq LIMIT $3"
        )))
        .bind(tenant.0)
        .bind(after_seq)
        .bind(limit.clamp(1, 1000) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("seq")?, alert_from_row(row)?)))
            .collect()
    }

    /// The highest alert sequence number (0: no alerts).
    pub async fn max_alert_seq(&self) -> Result<i64> {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM alerts")
            .fetch_one(&self.pool)
            .await?;
        Ok(max.unwrap_or(0))
    }

    /// The committed position of a named consumer, or `None` when it never committed one.
    pub async fn consumer_cursor(&self, consumer: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT position FROM consumer_positions WHERE consumer = $1")
                .bind(consumer)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Commits a named consumer's position (creating it on first use).
    pub async fn set_consumer_cursor(&self, consumer: &str, position: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO consumer_positions (consumer, position) VALUES ($1, $2) \
             ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
        )
        .bind(consumer)
        .bind(position)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }
}
