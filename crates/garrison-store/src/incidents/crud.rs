//! Incidents themselves: create, read, optimistic update, listing by cursor, alert links.

use garrison_cases::{Incident, Observable, TimelineEvent};
use garrison_model::{to_micros, TenantId, Timestamp};
use sqlx::Row;

use crate::sql::Dialect;
use crate::{Result, SqlStore, StoreError};

use super::common::{
    append_events, check_incident, incident_from_row, insert_incident, invalid, json_text,
    live_incident, load_incident, write_links, write_observables, INCIDENT_COLUMNS,
};
use super::{IncidentOrder, IncidentPage, IncidentQuery, LinkedAlert, StoredIncident};

fn encode_incident_cursor(order: IncidentOrder, score: i64, seq: i64) -> String {
    match order {
        IncidentOrder::Newest => format!("n{seq}"),
        IncidentOrder::Score => format!("s{score}.{seq}"),
    }
}

fn decode_incident_cursor(order: IncidentOrder, cursor: &str) -> Result<(i64, i64)> {
    let bad = || {
        invalid(
            "cursor",
            format!("{cursor:?} is not a cursor returned by a previous page of this order"),
        )
    };
    match order {
        IncidentOrder::Newest => {
            let seq = cursor
                .strip_prefix('n')
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?;
            Ok((0, seq))
        }
        IncidentOrder::Score => {
            let (score, seq) = cursor
                .strip_prefix('s')
                .and_then(|s| s.split_once('.'))
                .ok_or_else(bad)?;
            Ok((
                score.parse().map_err(|_| bad())?,
                seq.parse().map_err(|_| bad())?,
            ))
        }
    }
}

enum P {
    Int(i64),
    Text(String),
}

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
        let mut params = vec![P::Int(tenant.0)];
        let mut conditions = vec!["tenant_id = $1".to_string()];
        let push = |params: &mut Vec<P>, p: P| {
            params.push(p);
            params.len()
        };
        if let Some(state) = &query.state {
            let n = push(&mut params, P::Text(state.clone()));
            conditions.push(format!("state = ${n}"));
        }
        if let Some(severity) = query.severity {
            let n = push(&mut params, P::Text(severity.as_str().into()));
            conditions.push(format!("severity = ${n}"));
        }
        if let Some(assignee) = &query.assignee {
            let n = push(&mut params, P::Text(assignee.clone()));
            conditions.push(format!("assignee = ${n}"));
        }
        if let Some(classification) = query.classification {
            let n = push(&mut params, P::Text(classification.as_str().into()));
            conditions.push(format!("classification = ${n}"));
        }
        if let Some(tag) = &query.tag {
            let n = push(&mut params, P::Text(tag.clone()));
            conditions.push(match self.dialect {
                Dialect::Sqlite => {
                    format!("EXISTS (SELECT 1 FROM json_each(incidents.tags) WHERE json_each.value = ${n})")
                }
                Dialect::Postgres => format!("tags::jsonb @> jsonb_build_array(${n}::text)"),
            });
        }
        match query.open {
            Some(true) => conditions.push("closed_us IS NULL".into()),
            Some(false) => conditions.push("closed_us IS NOT NULL".into()),
            None => {}
        }
        if !query.include_merged {
            conditions.push("merged_into IS NULL".into());
        }
        if let Some(from) = query.from {
            let n = push(&mut params, P::Int(to_micros(from)));
            conditions.push(format!("created_us >= ${n}"));
        }
        if let Some(to) = query.to {
            let n = push(&mut params, P::Int(to_micros(to)));
            conditions.push(format!("created_us < ${n}"));
        }
        if let Some(cursor) = &query.cursor {
            let (score, seq) = decode_incident_cursor(query.order, cursor)?;
            match query.order {
                IncidentOrder::Newest => {
                    let s = push(&mut params, P::Int(seq));
                    conditions.push(format!("seq < ${s}"));
                }
                IncidentOrder::Score => {
                    let sc = push(&mut params, P::Int(score));
                    let s = push(&mut params, P::Int(seq));
                    conditions.push(format!("(score < ${sc} OR (score = ${sc} AND seq < ${s}))"));
                }
            }
        }
        let order = match query.order {
            IncidentOrder::Newest => "seq DESC",
            IncidentOrder::Score => "score DESC, seq DESC",
        };
        let l = push(&mut params, P::Int(limit as i64 + 1));
        let mut q = sqlx::query(sql!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {} ORDER BY {order} LIMIT ${l}",
            conditions.join(" AND ")
        ));
        for p in params {
            q = match p {
                P::Int(i) => q.bind(i),
                P::Text(s) => q.bind(s),
            };
        }
        let rows = q.fetch_all(&self.pool).await?;
        let has_more = rows.len() > limit;
        let mut incidents = Vec::with_capacity(rows.len().min(limit));
        let mut next_cursor = None;
        for row in rows.iter().take(limit) {
            incidents.push(incident_from_row(row)?);
            if has_more {
                next_cursor = Some(encode_incident_cursor(
                    query.order,
                    row.try_get("score")?,
                    row.try_get("seq")?,
                ));
            }
        }
        Ok(IncidentPage {
            incidents,
            next_cursor,
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
