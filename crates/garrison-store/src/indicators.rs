//! Threat-intel indicators per tenant: one row per (kind, value, source), the feeds they were
//! imported from, and a revision that changes with every write so a matcher knows when to
//! rebuild.
//!
//! Like playbooks, the store keeps indicators as plain strings and numbers: it does not know
//! the indicator model (`garrison-intel` validates and canonicalises before anything is
//! stored).

use std::collections::HashMap;

use async_trait::async_trait;
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::page::{decode_cursor, encode_cursor, Filter, Page};
use crate::{Result, SqlStore, StoreError};

/// SQL assembled from constants and `$N` placeholders only; values are always bound.
macro_rules! sql {
    ($($arg:tt)*) => {
        sqlx::AssertSqlSafe(format!($($arg)*))
    };
}

/// An indicator to store. `(kind, value, source)` names it within a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewIndicator {
    /// `ip`, `cidr`, `domain`, `url`, `md5`, `sha1`, `sha256`, `sha512`, `email`.
    pub kind: String,
    /// Canonical value.
    pub value: String,
    pub source: String,
    /// 0 to 100.
    pub confidence: i64,
    pub first_seen: Option<Timestamp>,
    pub expires: Option<Timestamp>,
    pub tags: Vec<String>,
    pub description: Option<String>,
}

/// An indicator as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredIndicator {
    pub id: i64,
    pub tenant_id: TenantId,
    pub kind: String,
    pub value: String,
    pub source: String,
    pub confidence: i64,
    /// The earliest first-seen time any import reported.
    pub first_seen: Option<Timestamp>,
    /// As the latest import said.
    pub expires: Option<Timestamp>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// How many imports have brought it (1 when new).
    pub times_imported: i64,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// What an upsert did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorUpsert {
    pub created: u64,
    pub updated: u64,
}

/// One import from a feed, recorded with its indicators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedImport {
    /// The feed's name: the `source` of its indicators.
    pub name: String,
    /// `csv`, `stix`, `misp`...
    pub format: String,
    /// Records the parser refused in this import.
    pub errors: u64,
}

/// A feed (indicator source) and its last import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorFeed {
    pub tenant_id: TenantId,
    pub name: String,
    pub format: String,
    pub last_import: Timestamp,
    /// Indicators the last import brought (new or updated).
    pub last_imported: i64,
    pub last_errors: i64,
    pub imports: i64,
    pub created: Timestamp,
}

/// A page of indicators, oldest first. All conditions are ANDed.
#[derive(Clone, Debug, Default)]
pub struct IndicatorQuery {
    pub kind: Option<String>,
    pub source: Option<String>,
    /// Exact (canonical) value.
    pub value: Option<String>,
    /// Only those not expired at this time.
    pub active_at: Option<Timestamp>,
    pub min_confidence: Option<i64>,
    pub limit: usize,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A page of indicators, oldest first.
pub type IndicatorPage = Page<StoredIndicator>;

#[async_trait]
pub trait IndicatorRepo: Send + Sync {
    /// Creates or updates indicators by (tenant, kind, value, source): an update takes the new
    /// confidence, expiry, tags and description and keeps the earliest first-seen time. The
    /// same key twice in one call counts once (the last wins). One transaction.
    async fn upsert_indicators(
        &self,
        tenant: TenantId,
        indicators: &[NewIndicator],
        now: Timestamp,
    ) -> Result<IndicatorUpsert>;
    /// [`IndicatorRepo::upsert_indicators`] and the feed's import record, in one transaction.
    async fn import_indicators(
        &self,
        tenant: TenantId,
        feed: &FeedImport,
        indicators: &[NewIndicator],
        now: Timestamp,
    ) -> Result<(IndicatorUpsert, IndicatorFeed)>;
    async fn list_feeds(&self, tenant: TenantId) -> Result<Vec<IndicatorFeed>>;
    async fn indicator(&self, tenant: TenantId, id: i64) -> Result<Option<StoredIndicator>>;
    async fn list_indicators(
        &self,
        tenant: TenantId,
        query: &IndicatorQuery,
    ) -> Result<IndicatorPage>;
    /// All of the tenant's indicators, or only those not expired at `active_at`.
    async fn count_indicators(&self, tenant: TenantId, active_at: Option<Timestamp>)
        -> Result<i64>;
    /// Every indicator not expired at `now`, for building a matcher.
    async fn active_indicators(
        &self,
        tenant: TenantId,
        now: Timestamp,
    ) -> Result<Vec<StoredIndicator>>;
    /// Makes an indicator expire at `at` (it stays listed, no longer active).
    async fn expire_indicator(
        &self,
        tenant: TenantId,
        id: i64,
        at: Timestamp,
    ) -> Result<StoredIndicator>;
    async fn delete_indicator(&self, tenant: TenantId, id: i64) -> Result<()>;
    /// Deletes a source's indicators and its feed record; returns how many indicators.
    async fn delete_indicator_source(&self, tenant: TenantId, source: &str) -> Result<u64>;
    /// Deletes indicators that expired at or before `cutoff`; returns how many.
    async fn purge_expired_indicators(&self, tenant: TenantId, cutoff: Timestamp) -> Result<u64>;
    /// A number that changes with every write to the tenant's indicators (0: never had any).
    async fn indicators_revision(&self, tenant: TenantId) -> Result<i64>;
    /// Every tenant's indicator revision, for the live detector (an unscoped read of numbers,
    /// no tenant data, like `DetectionRepo::all_rules_revisions`).
    async fn all_indicators_revisions(&self) -> Result<Vec<(TenantId, i64)>>;
}

const INDICATOR_COLUMNS: &str = "id, tenant_id, kind, value, source, confidence, first_seen_us, expires_us, tags, description, times_imported, created_us, updated_us";
const FEED_COLUMNS: &str =
    "tenant_id, name, format, last_import_us, last_imported, last_errors, imports, created_us";
/// Rows per INSERT (11 parameters each).
const ROWS_PER_STATEMENT: usize = 100;
/// Rows per query when loading every active indicator.
const LOAD_PAGE: i64 = 10_000;

fn opt_time(us: Option<i64>) -> Option<Timestamp> {
    us.map(from_micros)
}

fn indicator_from_row(row: &AnyRow) -> Result<StoredIndicator> {
    let tags: String = row.try_get("tags")?;
    Ok(StoredIndicator {
        id: row.try_get("id")?,
        tenant_id: TenantId(row.try_get("tenant_id")?),
        kind: row.try_get("kind")?,
        value: row.try_get("value")?,
        source: row.try_get("source")?,
        confidence: row.try_get("confidence")?,
        first_seen: opt_time(row.try_get("first_seen_us")?),
        expires: opt_time(row.try_get("expires_us")?),
        tags: serde_json::from_str(&tags).map_err(|e| StoreError::Corrupt {
            column: "indicators.tags",
            reason: e.to_string(),
        })?,
        description: row.try_get("description")?,
        times_imported: row.try_get("times_imported")?,
        created: from_micros(row.try_get("created_us")?),
        updated: from_micros(row.try_get("updated_us")?),
    })
}

fn feed_from_row(row: &AnyRow) -> Result<IndicatorFeed> {
    Ok(IndicatorFeed {
        tenant_id: TenantId(row.try_get("tenant_id")?),
        name: row.try_get("name")?,
        format: row.try_get("format")?,
        last_import: from_micros(row.try_get("last_import_us")?),
        last_imported: row.try_get("last_imported")?,
        last_errors: row.try_get("last_errors")?,
        imports: row.try_get("imports")?,
        created: from_micros(row.try_get("created_us")?),
    })
}

fn check(index: usize, indicator: &NewIndicator) -> Result<String> {
    let invalid = |reason: String| {
        Err(StoreError::Invalid {
            what: format!("indicator {index} ({:?})", indicator.value),
            reason,
        })
    };
    let kind_ok = !indicator.kind.is_empty()
        && indicator.kind.len() <= 32
        && indicator
            .kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !kind_ok {
        return invalid("the kind must be 1 to 32 lowercase letters or digits".into());
    }
    if indicator.value.is_empty() || indicator.value.len() > 8192 {
        return invalid("the value must have 1 to 8192 bytes".into());
    }
    if indicator.source.trim().is_empty() || indicator.source.len() > 256 {
        return invalid("the source must have 1 to 256 characters".into());
    }
    if !(0..=100).contains(&indicator.confidence) {
        return invalid(format!(
            "confidence {} is not 0 to 100",
            indicator.confidence
        ));
    }
    if indicator
        .description
        .as_ref()
        .is_some_and(|d| d.len() > 64 * 1024)
    {
        return invalid("the description exceeds 64 KiB".into());
    }
    let tags = serde_json::to_string(&indicator.tags).map_err(|e| StoreError::Invalid {
        what: format!("indicator {index} tags"),
        reason: e.to_string(),
    })?;
    if tags.len() > 64 * 1024 {
        return invalid("the tags exceed 64 KiB".into());
    }
    let nul = [&indicator.kind, &indicator.value, &indicator.source, &tags]
        .iter()
        .any(|s| s.contains('\0'))
        || indicator
            .description
            .as_ref()
            .is_some_and(|d| d.contains('\0'));
    if nul {
        return invalid("text must not contain NUL characters".into());
    }
    Ok(tags)
}

async fn bump_revision(tx: &mut sqlx::Transaction<'_, sqlx::Any>, tenant: TenantId) -> Result<()> {
    sqlx::query(
        "INSERT INTO indicator_revisions (tenant_id, revision) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET revision = indicator_revisions.revision + 1",
    )
    .bind(tenant.0)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The tag of indicator cursors (oldest first, by `id`).
const INDICATOR_CURSOR: &str = "i";

impl SqlStore {
    async fn upsert_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: TenantId,
        indicators: &[NewIndicator],
        now: Timestamp,
    ) -> Result<IndicatorUpsert> {
        // The last of each key wins; PostgreSQL refuses one statement touching a row twice.
        let mut last: HashMap<(&str, &str, &str), usize> = HashMap::new();
        let mut tags = Vec::with_capacity(indicators.len());
        for (i, indicator) in indicators.iter().enumerate() {
            tags.push(check(i, indicator)?);
            last.insert((&indicator.kind, &indicator.value, &indicator.source), i);
        }
        let mut keep: Vec<usize> = last.into_values().collect();
        keep.sort_unstable();
        let now = to_micros(now);
        let mut summary = IndicatorUpsert::default();
        for chunk in keep.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO indicators (tenant_id, kind, value, source, confidence, first_seen_us, expires_us, tags, description, created_us, updated_us) VALUES ",
            );
            for row in 0..chunk.len() {
                if row > 0 {
                    sql.push(',');
                }
                let base = row * 11;
                let params: Vec<String> = (1..=11).map(|c| format!("${}", base + c)).collect();
                sql.push('(');
                sql.push_str(&params.join(","));
                sql.push(')');
            }
            sql.push_str(
                " ON CONFLICT (tenant_id, kind, value, source) DO UPDATE SET \
                 confidence = excluded.confidence, \
                 first_seen_us = CASE WHEN indicators.first_seen_us IS NULL \
                   OR (excluded.first_seen_us IS NOT NULL AND excluded.first_seen_us < indicators.first_seen_us) \
                   THEN excluded.first_seen_us ELSE indicators.first_seen_us END, \
                 expires_us = excluded.expires_us, tags = excluded.tags, description = excluded.description, \
                 times_imported = indicators.times_imported + 1, updated_us = excluded.updated_us \
                 RETURNING times_imported",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for &i in chunk {
                let indicator = &indicators[i];
                query = query
                    .bind(tenant.0)
                    .bind(indicator.kind.clone())
                    .bind(indicator.value.clone())
                    .bind(indicator.source.clone())
                    .bind(indicator.confidence)
                    .bind(indicator.first_seen.map(to_micros))
                    .bind(indicator.expires.map(to_micros))
                    .bind(tags[i].clone())
                    .bind(indicator.description.clone())
                    .bind(now)
                    .bind(now);
            }
            let rows = query
                .fetch_all(&mut **tx)
                .await
                .map_err(StoreError::from_write)?;
            for row in rows {
                if row.try_get::<i64, _>("times_imported")? == 1 {
                    summary.created += 1;
                } else {
                    summary.updated += 1;
                }
            }
        }
        if !keep.is_empty() {
            bump_revision(tx, tenant).await?;
        }
        Ok(summary)
    }
}

#[async_trait]
impl IndicatorRepo for SqlStore {
    async fn upsert_indicators(
        &self,
        tenant: TenantId,
        indicators: &[NewIndicator],
        now: Timestamp,
    ) -> Result<IndicatorUpsert> {
        let mut tx = self.begin_write().await?;
        let summary = self.upsert_in(&mut tx, tenant, indicators, now).await?;
        tx.commit().await?;
        Ok(summary)
    }

    async fn import_indicators(
        &self,
        tenant: TenantId,
        feed: &FeedImport,
        indicators: &[NewIndicator],
        now: Timestamp,
    ) -> Result<(IndicatorUpsert, IndicatorFeed)> {
        if feed.name.trim().is_empty() || feed.name.len() > 256 {
            return Err(StoreError::Invalid {
                what: "feed name".into(),
                reason: "must be 1 to 256 characters".into(),
            });
        }
        if feed.format.is_empty() || feed.format.len() > 32 {
            return Err(StoreError::Invalid {
                what: "feed format".into(),
                reason: "must be 1 to 32 characters".into(),
            });
        }
        let mut tx = self.begin_write().await?;
        let summary = self.upsert_in(&mut tx, tenant, indicators, now).await?;
        let imported = i64::try_from(summary.created + summary.updated).unwrap_or(i64::MAX);
        let errors = i64::try_from(feed.errors).unwrap_or(i64::MAX);
        let row = sqlx::query(sql!(
            "INSERT INTO indicator_feeds (tenant_id, name, format, last_import_us, last_imported, last_errors, imports, created_us) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $4) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET format = excluded.format, last_import_us = excluded.last_import_us, \
             last_imported = excluded.last_imported, last_errors = excluded.last_errors, imports = indicator_feeds.imports + 1 \
             RETURNING {FEED_COLUMNS}"
        ))
        .bind(tenant.0)
        .bind(&feed.name)
        .bind(&feed.format)
        .bind(to_micros(now))
        .bind(imported)
        .bind(errors)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
        let feed = feed_from_row(&row)?;
        tx.commit().await?;
        Ok((summary, feed))
    }

    async fn list_feeds(&self, tenant: TenantId) -> Result<Vec<IndicatorFeed>> {
        let rows = sqlx::query(sql!(
            "SELECT {FEED_COLUMNS} FROM indicator_feeds WHERE tenant_id = $1 ORDER BY name"
        ))
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(feed_from_row).collect()
    }

    async fn indicator(&self, tenant: TenantId, id: i64) -> Result<Option<StoredIndicator>> {
        let row = sqlx::query(sql!(
            "SELECT {INDICATOR_COLUMNS} FROM indicators WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant.0)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(indicator_from_row).transpose()
    }

    async fn list_indicators(
        &self,
        tenant: TenantId,
        query: &IndicatorQuery,
    ) -> Result<IndicatorPage> {
        let limit = query.limit.clamp(1, 1000);
        let mut filter = Filter::tenant("tenant_id", tenant);
        filter.eq_opt("kind", query.kind.as_deref());
        filter.eq_opt("source", query.source.as_deref());
        filter.eq_opt("value", query.value.as_deref());
        if let Some(at) = query.active_at {
            let n = filter.bind(to_micros(at));
            filter.and(format!("(expires_us IS NULL OR expires_us > {n})"));
        }
        if let Some(min) = query.min_confidence {
            filter.cmp("confidence", ">=", min);
        }
        if let Some(cursor) = &query.cursor {
            let [id] = decode_cursor(INDICATOR_CURSOR, cursor)?;
            filter.cmp("id", ">", id);
        }
        let l = filter.bind(limit as i64 + 1);
        let sql = format!(
            "SELECT {INDICATOR_COLUMNS} FROM indicators WHERE {} ORDER BY id LIMIT {l}",
            filter.where_sql()
        );
        let rows = filter.query(sql).fetch_all(&self.pool).await?;
        Page::from_rows(&rows, limit, indicator_from_row, |row| {
            Ok(encode_cursor(INDICATOR_CURSOR, &[row.try_get("id")?]))
        })
    }

    async fn count_indicators(
        &self,
        tenant: TenantId,
        active_at: Option<Timestamp>,
    ) -> Result<i64> {
        let count = match active_at {
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM indicators WHERE tenant_id = $1")
                    .bind(tenant.0)
                    .fetch_one(&self.pool)
                    .await?
            }
            Some(at) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM indicators WHERE tenant_id = $1 AND (expires_us IS NULL OR expires_us > $2)",
            )
            .bind(tenant.0)
            .bind(to_micros(at))
            .fetch_one(&self.pool)
            .await?,
        };
        Ok(count)
    }

    async fn active_indicators(
        &self,
        tenant: TenantId,
        now: Timestamp,
    ) -> Result<Vec<StoredIndicator>> {
        let mut out = Vec::new();
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(sql!(
                "SELECT {INDICATOR_COLUMNS} FROM indicators WHERE tenant_id = $1 AND (expires_us IS NULL OR expires_us > $2) AND id > $3 ORDER BY id LIMIT $4"
            ))
            .bind(tenant.0)
            .bind(to_micros(now))
            .bind(after)
            .bind(LOAD_PAGE)
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                out.push(indicator_from_row(row)?);
            }
            match out.last() {
                Some(last) if rows.len() as i64 == LOAD_PAGE => after = last.id,
                _ => return Ok(out),
            }
        }
    }

    async fn expire_indicator(
        &self,
        tenant: TenantId,
        id: i64,
        at: Timestamp,
    ) -> Result<StoredIndicator> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sql!(
            "UPDATE indicators SET expires_us = $1, updated_us = $2 WHERE tenant_id = $3 AND id = $4 RETURNING {INDICATOR_COLUMNS}"
        ))
        .bind(to_micros(at))
        .bind(to_micros(Timestamp::now()))
        .bind(tenant.0)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                what: format!("indicator {id}"),
            });
        };
        let indicator = indicator_from_row(&row)?;
        bump_revision(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(indicator)
    }

    async fn delete_indicator(&self, tenant: TenantId, id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM indicators WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound {
                what: format!("indicator {id}"),
            });
        }
        bump_revision(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_indicator_source(&self, tenant: TenantId, source: &str) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM indicators WHERE tenant_id = $1 AND source = $2")
            .bind(tenant.0)
            .bind(source)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let feeds = sqlx::query("DELETE FROM indicator_feeds WHERE tenant_id = $1 AND name = $2")
            .bind(tenant.0)
            .bind(source)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted > 0 || feeds > 0 {
            bump_revision(&mut tx, tenant).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn purge_expired_indicators(&self, tenant: TenantId, cutoff: Timestamp) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query(
            "DELETE FROM indicators WHERE tenant_id = $1 AND expires_us IS NOT NULL AND expires_us <= $2",
        )
        .bind(tenant.0)
        .bind(to_micros(cutoff))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted > 0 {
            bump_revision(&mut tx, tenant).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn indicators_revision(&self, tenant: TenantId) -> Result<i64> {
        let revision: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM indicator_revisions WHERE tenant_id = $1")
                .bind(tenant.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(revision.unwrap_or(0))
    }

    async fn all_indicators_revisions(&self) -> Result<Vec<(TenantId, i64)>> {
        let rows = sqlx::query("SELECT tenant_id, revision FROM indicator_revisions")
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
}
