//! The records SOC metrics are computed from.

use std::collections::HashMap;

use garrison_cases::{AlertRecord, IncidentRecord};
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use sqlx::Row;

use crate::{Result, SqlStore};

use super::common::{incident_from_row, INCIDENT_COLUMNS};

impl SqlStore {
    pub(super) async fn metrics_records_impl(
        &self,
        tenant: TenantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(Vec<AlertRecord>, Vec<IncidentRecord>)> {
        let (from, to) = (to_micros(from), to_micros(to));
        let alerts = sqlx::query(
            "SELECT rule_id, first_seen_us, incident_id, status FROM alerts WHERE tenant_id = $1 AND first_seen_us >= $2 AND first_seen_us < $3",
        )
        .bind(tenant.0)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(AlertRecord {
                rule_id: row.try_get("rule_id")?,
                time: from_micros(row.try_get("first_seen_us")?),
                incident_id: row.try_get("incident_id")?,
                suppressed: row.try_get::<String, _>("status")? == "suppressed",
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let rows = sqlx::query(sql!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant_id = $1 AND created_us >= $2 AND created_us < $3 AND merged_into IS NULL"
        ))
        .bind(tenant.0)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut rules: HashMap<String, Vec<String>> = HashMap::new();
        for row in sqlx::query(
            "SELECT DISTINCT a.incident_id, a.rule_id FROM incident_alerts a JOIN incidents i ON i.tenant_id = a.tenant_id AND i.incident_id = a.incident_id \
             WHERE a.tenant_id = $1 AND i.created_us >= $2 AND i.created_us < $3",
        )
        .bind(tenant.0)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?
        {
            rules
                .entry(row.try_get("incident_id")?)
                .or_default()
                .push(row.try_get("rule_id")?);
        }
        let incidents = rows
            .iter()
            .map(|row| {
                let stored = incident_from_row(row)?;
                let mut rule_ids = rules.remove(&stored.incident.id).unwrap_or_default();
                rule_ids.sort();
                Ok(IncidentRecord {
                    incident: stored.incident,
                    rule_ids,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((alerts, incidents))
    }
}
