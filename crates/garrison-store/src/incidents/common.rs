//! What the incident stores share: the incident row, value checks, in-transaction writes.

use garrison_cases::{Incident, Observable, Pap, TimelineEvent, Tlp};
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, StoreError};

use super::{LinkedAlert, StoredIncident, IDS_PER_STATEMENT};

pub(super) const INCIDENT_COLUMNS: &str = "seq, tenant_id, incident_id, title, summary, incident_type, state, severity, assignee, team, tlp, pap, tags, classification, fields, approvals, score, workflow_version, merged_into, rev, created_us, acknowledged_us, analysed_us, closed_us, updated_us";

pub(super) fn corrupt(column: &'static str) -> impl Fn(String) -> StoreError {
    move |reason| StoreError::Corrupt { column, reason }
}

pub(super) fn json_text<T: Serialize>(what: &str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid {
        what: what.into(),
        reason: e.to_string(),
    })
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    column: &'static str,
    text: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(column)(e.to_string()))
}

pub(super) fn parse_col<T: std::str::FromStr>(column: &'static str, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| corrupt(column)(e.to_string()))
}

pub(super) fn version_u32(column: &'static str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(column)(format!("{v} is out of range")))
}

pub(super) fn incident_from_row(row: &AnyRow) -> Result<StoredIncident> {
    let classification: Option<String> = row.try_get("classification")?;
    let score: i64 = row.try_get("score")?;
    Ok(StoredIncident {
        tenant_id: TenantId(row.try_get("tenant_id")?),
        rev: row.try_get("rev")?,
        merged_into: row.try_get("merged_into")?,
        incident: Incident {
            id: row.try_get("incident_id")?,
            title: row.try_get("title")?,
            summary: row.try_get("summary")?,
            incident_type: row.try_get("incident_type")?,
            state: row.try_get("state")?,
            severity: parse_col("incidents.severity", &row.try_get::<String, _>("severity")?)?,
            assignee: row.try_get("assignee")?,
            team: row.try_get("team")?,
            tlp: parse_col::<Tlp>("incidents.tlp", &row.try_get::<String, _>("tlp")?)?,
            pap: parse_col::<Pap>("incidents.pap", &row.try_get::<String, _>("pap")?)?,
            tags: from_json("incidents.tags", &row.try_get::<String, _>("tags")?)?,
            classification: classification
                .map(|c| parse_col("incidents.classification", &c))
                .transpose()?,
            fields: from_json("incidents.fields", &row.try_get::<String, _>("fields")?)?,
            approvals: from_json(
                "incidents.approvals",
                &row.try_get::<String, _>("approvals")?,
            )?,
            score: u32::try_from(score).unwrap_or(0),
            workflow_version: version_u32(
                "incidents.workflow_version",
                row.try_get("workflow_version")?,
            )?,
            created: from_micros(row.try_get("created_us")?),
            acknowledged: row
                .try_get::<Option<i64>, _>("acknowledged_us")?
                .map(from_micros),
            analysed: row
                .try_get::<Option<i64>, _>("analysed_us")?
                .map(from_micros),
            closed: row.try_get::<Option<i64>, _>("closed_us")?.map(from_micros),
            updated: from_micros(row.try_get("updated_us")?),
        },
    })
}

pub(super) fn invalid(what: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

pub(super) fn not_found(what: String) -> StoreError {
    StoreError::NotFound { what }
}

pub(super) fn check_incident(incident: &Incident) -> Result<()> {
    if incident.id.trim().is_empty() || incident.id.len() > 128 {
        return Err(invalid("incident id", "must have 1 to 128 characters"));
    }
    if incident.title.trim().is_empty() || incident.title.len() > 1024 {
        return Err(invalid("incident title", "must have 1 to 1024 characters"));
    }
    Ok(())
}

/// `$a, $b, ...` for `count` parameters starting at `first`.
pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

pub(super) async fn append_events(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    incident_id: &str,
    events: &[TimelineEvent],
) -> Result<()> {
    for event in events {
        let entry =
            serde_json::to_value(event).map_err(|e| invalid("timeline entry", e.to_string()))?;
        let kind = entry
            .get("type")
            .and_then(|k| k.as_str())
            .unwrap_or("unknown")
            .to_string();
        sqlx::query(
            "INSERT INTO incident_timeline (tenant_id, incident_id, time_us, actor, kind, entry) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant.0)
        .bind(incident_id)
        .bind(to_micros(event.time))
        .bind(&event.actor)
        .bind(kind)
        .bind(entry.to_string())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_write)?;
    }
    Ok(())
}

pub(super) async fn load_incident(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    incident_id: &str,
) -> Result<StoredIncident> {
    let row = sqlx::query(sql!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant_id = $1 AND incident_id = $2"
    ))
    .bind(tenant.0)
    .bind(incident_id)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        Some(row) => incident_from_row(&row),
        None => Err(not_found(format!("incident {incident_id:?}"))),
    }
}

/// Loads an incident that may still change (exists, not merged).
pub(super) async fn live_incident(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    incident_id: &str,
) -> Result<StoredIncident> {
    let stored = load_incident(tx, tenant, incident_id).await?;
    if let Some(into) = &stored.merged_into {
        return Err(invalid(
            "incident",
            format!("{incident_id:?} was merged into {into:?} and no longer changes"),
        ));
    }
    Ok(stored)
}

pub(super) async fn insert_incident(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    incident: &Incident,
) -> Result<()> {
    check_incident(incident)?;
    sqlx::query(
        "INSERT INTO incidents (tenant_id, incident_id, title, summary, incident_type, state, severity, assignee, team, tlp, pap, tags, classification, fields, approvals, score, workflow_version, rev, created_us, acknowledged_us, analysed_us, closed_us, updated_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 1, $18, $19, $20, $21, $22)",
    )
    .bind(tenant.0)
    .bind(&incident.id)
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
    .bind(i64::from(incident.workflow_version))
    .bind(to_micros(incident.created))
    .bind(incident.acknowledged.map(to_micros))
    .bind(incident.analysed.map(to_micros))
    .bind(incident.closed.map(to_micros))
    .bind(to_micros(incident.updated))
    .execute(&mut **tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            what: format!("incident {:?}", incident.id),
        },
        _ => StoreError::from_write(e),
    })?;
    Ok(())
}

pub(super) async fn write_links(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    incident_id: &str,
    alerts: &[LinkedAlert],
    now: Timestamp,
) -> Result<u64> {
    let mut written = 0;
    for alert in alerts {
        if alert.alert_id.is_empty() || alert.alert_id.len() > 256 {
            return Err(invalid("alert id", "must have 1 to 256 characters"));
        }
        written += sqlx::query(
            "INSERT INTO incident_alerts (tenant_id, alert_id, incident_id, rule_id, added_us) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, alert_id) DO UPDATE SET incident_id = excluded.incident_id, rule_id = excluded.rule_id, added_us = excluded.added_us",
        )
        .bind(tenant.0)
        .bind(&alert.alert_id)
        .bind(incident_id)
        .bind(&alert.rule_id)
        .bind(to_micros(now))
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_write)?
        .rows_affected();
    }
    for chunk in alerts.chunks(IDS_PER_STATEMENT) {
        let mut q = sqlx::query(sql!(
            "UPDATE alerts SET incident_id = $1, updated_us = $2 WHERE tenant_id = $3 AND alert_id IN ({})",
            placeholders(4, chunk.len())
        ))
        .bind(incident_id)
        .bind(to_micros(now))
        .bind(tenant.0);
        for alert in chunk {
            q = q.bind(&alert.alert_id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(written)
}

pub(super) async fn write_observables(
    tx: &mut Tx<'_>,
    tenant: TenantId,
    incident_id: &str,
    observables: &[Observable],
) -> Result<u64> {
    let mut new = 0;
    for o in observables {
        if o.value.is_empty() || o.value.len() > 4096 {
            return Err(invalid(
                "observable",
                "the value must have 1 to 4096 characters",
            ));
        }
        new += sqlx::query(
            "INSERT INTO incident_observables (tenant_id, incident_id, kind, value, field) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, incident_id, kind, value) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(incident_id)
        .bind(o.kind.as_str())
        .bind(&o.value)
        .bind(&o.field)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_write)?
        .rows_affected();
    }
    Ok(new)
}
