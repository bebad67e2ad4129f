//! Alert-handling rules: suppressions with their hit counts, grouping rules and group claims.

use garrison_cases::{GroupKey, GroupingRule, Suppression};
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, SqlStore, StoreError};

use super::common::{from_json, invalid, json_text, not_found, placeholders};
use super::{StoredGroupingRule, StoredSuppression, IDS_PER_STATEMENT};

const SUPPRESSION_COLUMNS: &str =
    "suppression_id, rule_id, fields, reason, author, created_us, expires_us, hits, last_hit_us";

fn suppression_from_row(row: &AnyRow) -> Result<StoredSuppression> {
    Ok(StoredSuppression {
        suppression: Suppression {
            id: row.try_get("suppression_id")?,
            rule_id: row.try_get("rule_id")?,
            fields: from_json("suppressions.fields", &row.try_get::<String, _>("fields")?)?,
            reason: row.try_get("reason")?,
            author: row.try_get("author")?,
            created: from_micros(row.try_get("created_us")?),
            expires: row
                .try_get::<Option<i64>, _>("expires_us")?
                .map(from_micros),
        },
        hits: row.try_get("hits")?,
        last_hit: row
            .try_get::<Option<i64>, _>("last_hit_us")?
            .map(from_micros),
    })
}

impl SqlStore {
    pub(super) async fn create_suppression_impl(
        &self,
        tenant: TenantId,
        suppression: &Suppression,
    ) -> Result<StoredSuppression> {
        suppression
            .validate()
            .map_err(|e| invalid("suppression", e.to_string()))?;
        if suppression.id.trim().is_empty() || suppression.id.len() > 128 {
            return Err(invalid("suppression id", "must have 1 to 128 characters"));
        }
        let row = sqlx::query(sql!(
            "INSERT INTO suppressions (tenant_id, suppression_id, rule_id, fields, reason, author, created_us, expires_us, hits) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0) RETURNING {SUPPRESSION_COLUMNS}"
        ))
        .bind(tenant.0)
        .bind(&suppression.id)
        .bind(suppression.rule_id.clone())
        .bind(json_text("fields", &suppression.fields)?)
        .bind(&suppression.reason)
        .bind(&suppression.author)
        .bind(to_micros(suppression.created))
        .bind(suppression.expires.map(to_micros))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
                what: format!("suppression {:?}", suppression.id),
            },
            _ => StoreError::from_write(e),
        })?;
        suppression_from_row(&row)
    }

    pub(super) async fn list_suppressions_impl(
        &self,
        tenant: TenantId,
        active_at: Option<Timestamp>,
    ) -> Result<Vec<StoredSuppression>> {
        let rows = match active_at {
            Some(now) => sqlx::query(sql!(
                "SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE tenant_id = $1 AND (expires_us IS NULL OR expires_us > $2) ORDER BY created_us DESC, suppression_id"
            ))
            .bind(tenant.0)
            .bind(to_micros(now))
            .fetch_all(&self.pool)
            .await?,
            None => sqlx::query(sql!(
                "SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE tenant_id = $1 ORDER BY created_us DESC, suppression_id"
            ))
            .bind(tenant.0)
            .fetch_all(&self.pool)
            .await?,
        };
        rows.iter().map(suppression_from_row).collect()
    }

    pub(super) async fn expire_suppression_impl(
        &self,
        tenant: TenantId,
        suppression_id: &str,
        now: Timestamp,
    ) -> Result<StoredSuppression> {
        let now = to_micros(now);
        let row = sqlx::query(sql!(
            "UPDATE suppressions SET expires_us = CASE WHEN expires_us IS NOT NULL AND expires_us < $1 THEN expires_us \
               WHEN created_us >= $1 THEN created_us + 1 ELSE $1 END \
             WHERE tenant_id = $2 AND suppression_id = $3 RETURNING {SUPPRESSION_COLUMNS}"
        ))
        .bind(now)
        .bind(tenant.0)
        .bind(suppression_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => suppression_from_row(&row),
            None => Err(not_found(format!("suppression {suppression_id:?}"))),
        }
    }

    pub(super) async fn suppress_alerts_impl(
        &self,
        tenant: TenantId,
        suppression_id: &str,
        alert_ids: &[String],
        now: Timestamp,
    ) -> Result<u64> {
        let now = to_micros(now);
        let mut tx = self.begin_write().await?;
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT suppression_id FROM suppressions WHERE tenant_id = $1 AND suppression_id = $2",
        )
        .bind(tenant.0)
        .bind(suppression_id)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Err(not_found(format!("suppression {suppression_id:?}")));
        }
        let mut marked = 0;
        for chunk in alert_ids.chunks(IDS_PER_STATEMENT) {
            let mut q = sqlx::query(sql!(
                "UPDATE alerts SET status = 'suppressed', updated_us = $1 WHERE tenant_id = $2 AND status <> 'suppressed' AND alert_id IN ({})",
                placeholders(3, chunk.len())
            ))
            .bind(now)
            .bind(tenant.0);
            for id in chunk {
                q = q.bind(id);
            }
            marked += q.execute(&mut *tx).await?.rows_affected();
        }
        if marked > 0 {
            sqlx::query(
                "UPDATE suppressions SET hits = hits + $1, last_hit_us = $2 WHERE tenant_id = $3 AND suppression_id = $4",
            )
            .bind(i64::try_from(marked).unwrap_or(i64::MAX))
            .bind(now)
            .bind(tenant.0)
            .bind(suppression_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(marked)
    }

    pub(super) async fn upsert_grouping_rule_impl(
        &self,
        tenant: TenantId,
        rule: &GroupingRule,
        enabled: bool,
        now: Timestamp,
    ) -> Result<StoredGroupingRule> {
        if let Err(errors) = rule.validate() {
            let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Err(invalid("grouping rule", reasons.join("; ")));
        }
        sqlx::query(
            "INSERT INTO grouping_rules (tenant_id, name, definition, enabled, updated_us) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET definition = excluded.definition, enabled = excluded.enabled, updated_us = excluded.updated_us",
        )
        .bind(tenant.0)
        .bind(&rule.name)
        .bind(json_text("grouping rule", rule)?)
        .bind(i64::from(enabled))
        .bind(to_micros(now))
        .execute(&self.pool)
        .await?;
        Ok(StoredGroupingRule {
            rule: rule.clone(),
            enabled,
            updated: now,
        })
    }

    pub(super) async fn grouping_rules_impl(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<StoredGroupingRule>> {
        let rows = sqlx::query(
            "SELECT definition, enabled, updated_us FROM grouping_rules WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredGroupingRule {
                    rule: from_json(
                        "grouping_rules.definition",
                        &row.try_get::<String, _>("definition")?,
                    )?,
                    enabled: row.try_get::<i64, _>("enabled")? != 0,
                    updated: from_micros(row.try_get("updated_us")?),
                })
            })
            .collect()
    }

    pub(super) async fn delete_grouping_rule_impl(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM grouping_rules WHERE tenant_id = $1 AND name = $2")
            .bind(tenant.0)
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(format!("grouping rule {name:?}")));
        }
        Ok(())
    }

    pub(super) async fn claim_group_impl(
        &self,
        tenant: TenantId,
        key: &GroupKey,
        incident_id: &str,
    ) -> Result<String> {
        sqlx::query(
            "INSERT INTO incident_groups (tenant_id, rule, group_key, window_start_us, incident_id) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, rule, group_key, window_start_us) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(&key.rule)
        .bind(&key.key)
        .bind(to_micros(key.window_start))
        .bind(incident_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_write)?;
        Ok(sqlx::query_scalar(
            "SELECT incident_id FROM incident_groups WHERE tenant_id = $1 AND rule = $2 AND group_key = $3 AND window_start_us = $4",
        )
        .bind(tenant.0)
        .bind(&key.rule)
        .bind(&key.key)
        .bind(to_micros(key.window_start))
        .fetch_one(&self.pool)
        .await?)
    }
}
