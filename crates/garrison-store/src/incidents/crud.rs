//! Incidents themselves: create, read, optimistic update, listing by cursor, alert links.

use garrison_cases::{Incident, Observable, TimelineEvent};
use garrison_model::{to_micros, TenantId, Timestamp};
use sqlx::Row;

use crate::page::{decode_cursor, encode_cursor, Filter, Page};
use crate::sql::Dialect;
use crate::{Result, SqlStore, StoreError};

use super::common::{
    append_events, check_incident, incident_from_row, insert_incident, json_text, live_incident,
    load_incident, write_links, write_observables, INCIDENT_COLUMNS,
};
use super::{IncidentOrder, IncidentPage, IncidentQuery, LinkedAlert, StoredIncident};

/// The tags of incident cursors, one per order, so a cursor of the other order is refused.
const NEWEST_CURSOR: &str = "n";
const SCORE_CURSOR: &str = "s";

impl SqlStore {
    pub(super) async fn create_in(
        &self,
        tenant: TenantId,
        incident: &Incident,
        events: &[TimelineEvent],
        alerts: &[LinkedAlert],
        observables: &[Observable],
        audit: Option<&crate::NewAuditEntry>,
    ) -> Result<StoredIncident> {
        let mut tx = self.begin_write().await?;
        insert_incident(&mut tx, tenant, incident).await?;
        append_events(&mut tx, tenant, &incident.id, events).await?;
        write_links(&mut tx, tenant, &incident.id, alerts, incident.created).await?;
        write_observables(&mut tx, tenant, &incident.id, observables).await?;
        if let Some(entry) = audit {
            crate::audit::append_audit_in(&mut tx, tenant, entry).await?;
        }
        let stored = load_incident(&mut tx, tenant, &incident.id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn incident_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
    ) -> Result<Option<StoredIncident>> {
        let row = sqlx::query(sql!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant_id = $1 AND incident_id = $2"
        ))
        .bind(tenant.0)
        .bind(incident_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(incident_from_row).transpose()
    }

    pub(super) async fn update_incident_impl(
        &self,
        tenant: TenantId,
        incident: &Incident,
        expected_rev: i64,
        events: &[TimelineEvent],
    ) -> Result<StoredIncident> {
        check_incident(incident)?;
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE incidents SET title = $1, summary = $2, incident_type = $3, state = $4, severity = $5, assignee = $6, team = $7, tlp = $8, pap = $9, tags = $10, \
             classification = $11, fields = $12, approvals = $13, score = $14, acknowledged_us = $15, analysed_us = $16, closed_us = $17, updated_us = $18, rev = rev + 1 \
             WHERE tenant_id = $19 AND incident_id = $20 AND rev = $21 AND merged_into IS NULL",
        )
        .bind(&incident.title)
        .bind(incident.summary.clone())
        .bind(incident.incident_type.clone())
        .bind(&incident.state)
        .bind(incident.severity.as_str())
        .bind(incident.assignee.clone())
        .bind(incident.team.clone())
        .bind(incident.tlp.as_str())
        .bind(incident.pap.as_str())
        .bind(json_text("tags", &incident.tags)?)
        .bind(incident.classification.map(|c| c.as_str().to_string()))
        .bind(json_text("fields", &incident.fields)?)
        .bind(json_text("approvals", &incident.approvals)?)
        .bind(i64::from(incident.score))
        .bind(incident.acknowledged.map(to_micros))
        .bind(incident.analysed.map(to_micros))
        .bind(incident.closed.map(to_micros))
        .bind(to_micros(incident.updated))
        .bind(tenant.0)
        .bind(&incident.id)
        .bind(expected_rev)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_write)?
        .rows_affected();
        if updated == 0 {
            let current = live_incident(&mut tx, tenant, &incident.id).await?;
            return Err(StoreError::Conflict {
                what: format!(
                    "incident {:?} changed since it was read (revision {expected_rev}, now {}); a newer version",
                    incident.id, current.rev
                ),
            });
        }
        append_events(&mut tx, tenant, &incident.id, events).await?;
        let stored = load_incident(&mut tx, tenant, &incident.id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn list_incidents_impl(
        &self,
        tenant: TenantId,
        query: &IncidentQuery,
    ) -> Result<IncidentPage> {
        let limit = query.limit.clamp(1, 1000);
        let mut filter = Filter::tenant("tenant_id", tenant);
        filter.eq_opt("state", query.state.as_deref());
        filter.eq_opt("severity", query.severity.map(|s| s.as_str()));
        filter.eq_opt("assignee", query.assignee.as_deref());
        filter.eq_opt("classification", query.classification.map(|c| c.as_str()));
        if let Some(tag) = &query.tag {
            let n = filter.bind(tag.as_str());
            filter.and(match self.dialect {
                Dialect::Sqlite => {
                    format!("EXISTS (SELECT 1 FROM json_each(incidents.tags) WHERE json_each.value = {n})")
                }
                Dialect::Postgres => format!("tags::jsonb @> jsonb_build_array({n}::text)"),
            });
        }
        match query.open {
            Some(true) => filter.and("closed_us IS NULL"),
            Some(false) => filter.and("closed_us IS NOT NULL"),
            None => {}
        }
        if !query.include_merged {
            filter.and("merged_into IS NULL");
        }
        if let Some(from) = query.from {
            filter.cmp("created_us", ">=", to_micros(from));
        }
        if let Some(to) = query.to {
            filter.cmp("created_us", "<", to_micros(to));
        }
        if let Some(cursor) = &query.cursor {
            match query.order {
                IncidentOrder::Newest => {
                    let [seq] = decode_cursor(NEWEST_CURSOR, cursor)?;
                    filter.cmp("seq", "<", seq);
                }
                IncidentOrder::Score => {
                    let [score, seq] = decode_cursor(SCORE_CURSOR, cursor)?;
                    let sc = filter.bind(score);
                    let s = filter.bind(seq);
                    filter.and(format!("(score < {sc} OR (score = {sc} AND seq < {s}))"));
                }
            }
        }
        let order = match query.order {
            IncidentOrder::Newest => "seq DESC",
            IncidentOrder::Score => "score DESC, seq DESC",
        };
        let l = filter.bind(limit as i64 + 1);
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {} ORDER BY {order} LIMIT {l}",
            filter.where_sql()
        );
        let rows = filter.query(sql).fetch_all(&self.pool).await?;
        Page::from_rows(&rows, limit, incident_from_row, |row| {
            Ok(match query.order {
                IncidentOrder::Newest => encode_cursor(NEWEST_CURSOR, &[row.try_get("seq")?]),
                IncidentOrder::Score => {
                    encode_cursor(SCORE_CURSOR, &[row.try_get("score")?, row.try_get("seq")?])
                }
            })
        })
    }

    pub(super) async fn link_alerts_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
        alerts: &[LinkedAlert],
        now: Timestamp,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        live_incident(&mut tx, tenant, incident_id).await?;
        let written = write_links(&mut tx, tenant, incident_id, alerts, now).await?;
        tx.commit().await?;
        Ok(written)
    }

    pub(super) async fn incident_alerts_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
    ) -> Result<Vec<LinkedAlert>> {
        let rows = sqlx::query(
            "SELECT alert_id, rule_id FROM incident_alerts WHERE tenant_id = $1 AND incident_id = $2 ORDER BY added_us, alert_id",
        )
        .bind(tenant.0)
        .bind(incident_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LinkedAlert {
                    alert_id: row.try_get("alert_id")?,
                    rule_id: row.try_get("rule_id")?,
                })
            })
            .collect()
    }
}
