//! Timelines (append-only; also read across tenants by triggers), observables, similarity.

use std::collections::HashMap;

use garrison_cases::{IncidentProfile, Observable, ObservableKind, TimelineEvent};
use garrison_model::{from_micros, TenantId};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, SqlStore};

use super::common::{
    append_events, corrupt, from_json, live_incident, load_incident, not_found, parse_col,
    placeholders, write_observables,
};
use super::{TimelineEntry, IDS_PER_STATEMENT};

fn observable_from_row(row: &AnyRow) -> Result<Observable> {
    let kind: String = row.try_get("kind")?;
    Ok(Observable {
        kind: ObservableKind::parse(&kind)
            .ok_or_else(|| corrupt("incident_observables.kind")(kind.clone()))?,
        value: row.try_get("value")?,
        field: row.try_get("field")?,
    })
}

impl SqlStore {
    /// Profiles of the given incidents, in the order given (missing ones left out).
    async fn profiles(&self, tenant: TenantId, ids: &[String]) -> Result<Vec<IncidentProfile>> {
        let mut by_id: HashMap<String, IncidentProfile> = HashMap::new();
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let list = placeholders(2, chunk.len());
            let mut q = sqlx::query(sql!(
                "SELECT incident_id, title, classification, closed_us FROM incidents WHERE tenant_id = $1 AND incident_id IN ({list})"
            ))
            .bind(tenant.0);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                let id: String = row.try_get("incident_id")?;
                let classification: Option<String> = row.try_get("classification")?;
                by_id.insert(
                    id.clone(),
                    IncidentProfile {
                        incident_id: id,
                        title: row.try_get("title")?,
                        classification: classification
                            .map(|c| parse_col("incidents.classification", &c))
                            .transpose()?,
                        closed: row.try_get::<Option<i64>, _>("closed_us")?.map(from_micros),
                        ..IncidentProfile::default()
                    },
                );
            }
            let mut q = sqlx::query(sql!(
                "SELECT incident_id, kind, value, field FROM incident_observables WHERE tenant_id = $1 AND incident_id IN ({list})"
            ))
            .bind(tenant.0);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                let id: String = row.try_get("incident_id")?;
                let o = observable_from_row(&row)?;
                if let Some(p) = by_id.get_mut(&id) {
                    if o.kind == ObservableKind::Host {
                        p.hosts.insert(o.value.clone());
                    }
                    p.observables.insert((o.kind, o.value));
                }
            }
            let mut q = sqlx::query(sql!(
                "SELECT DISTINCT incident_id, rule_id FROM incident_alerts WHERE tenant_id = $1 AND incident_id IN ({list})"
            ))
            .bind(tenant.0);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                let id: String = row.try_get("incident_id")?;
                if let Some(p) = by_id.get_mut(&id) {
                    p.rule_ids.insert(row.try_get("rule_id")?);
                }
            }
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }
}

impl SqlStore {
    pub(super) async fn append_timeline_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
        events: &[TimelineEvent],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        load_incident(&mut tx, tenant, incident_id).await?;
        append_events(&mut tx, tenant, incident_id, events).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn timeline_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<TimelineEntry>> {
        let rows = sqlx::query(
            "SELECT seq, incident_id, entry FROM incident_timeline WHERE tenant_id = $1 AND incident_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(tenant.0)
        .bind(incident_id)
        .bind(after_seq)
        .bind(limit.clamp(1, 1000) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TimelineEntry {
                    seq: row.try_get("seq")?,
                    incident_id: row.try_get("incident_id")?,
                    event: from_json(
                        "incident_timeline.entry",
                        &row.try_get::<String, _>("entry")?,
                    )?,
                })
            })
            .collect()
    }

    pub(super) async fn add_observables_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
        observables: &[Observable],
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        live_incident(&mut tx, tenant, incident_id).await?;
        let new = write_observables(&mut tx, tenant, incident_id, observables).await?;
        tx.commit().await?;
        Ok(new)
    }

    pub(super) async fn observables_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
    ) -> Result<Vec<Observable>> {
        let rows = sqlx::query(
            "SELECT kind, value, field FROM incident_observables WHERE tenant_id = $1 AND incident_id = $2 ORDER BY kind, value",
        )
        .bind(tenant.0)
        .bind(incident_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<Observable> = rows
            .iter()
            .map(observable_from_row)
            .collect::<Result<_>>()?;
        out.sort();
        Ok(out)
    }

    pub(super) async fn similarity_profiles_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
        limit: usize,
    ) -> Result<(IncidentProfile, Vec<IncidentProfile>)> {
        let target = self
            .profiles(tenant, &[incident_id.to_string()])
            .await?
            .pop()
            .ok_or_else(|| not_found(format!("incident {incident_id:?}")))?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT i.incident_id FROM incidents i WHERE i.tenant_id = $1 AND i.incident_id <> $2 AND i.merged_into IS NULL AND (\
               i.incident_id IN (SELECT o2.incident_id FROM incident_observables o1 JOIN incident_observables o2 \
                 ON o2.tenant_id = o1.tenant_id AND o2.kind = o1.kind AND o2.value = o1.value \
                 WHERE o1.tenant_id = $1 AND o1.incident_id = $2) \
               OR i.incident_id IN (SELECT a2.incident_id FROM incident_alerts a1 JOIN incident_alerts a2 \
                 ON a2.tenant_id = a1.tenant_id AND a2.rule_id = a1.rule_id \
                 WHERE a1.tenant_id = $1 AND a1.incident_id = $2)) \
             ORDER BY i.seq DESC LIMIT $3",
        )
        .bind(tenant.0)
        .bind(incident_id)
        .bind(limit.clamp(1, 1000) as i64)
        .fetch_all(&self.pool)
        .await?;
        let candidates = self.profiles(tenant, &ids).await?;
        Ok((target, candidates))
    }
}

/// Reads for consumers that follow every tenant's timelines (playbook triggers). Unscoped like
/// the detector's reads: each entry carries its tenant, and the caller acts in that tenant only.
impl SqlStore {
    /// Timeline entries with a sequence number above `after_seq`, oldest first, at most `limit`
    /// (1..=1000), with their tenants.
    pub async fn timeline_after(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(TenantId, TimelineEntry)>> {
        let rows = sqlx::query(
            "SELECT seq, tenant_id, incident_id, entry FROM incident_timeline WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(limit.clamp(1, 1000) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    TenantId(row.try_get("tenant_id")?),
                    TimelineEntry {
                        seq: row.try_get("seq")?,
                        incident_id: row.try_get("incident_id")?,
                        event: from_json(
                            "incident_timeline.entry",
                            &row.try_get::<String, _>("entry")?,
                        )?,
                    },
                ))
            })
            .collect()
    }

    /// The highest timeline sequence number (0: empty).
    pub async fn max_timeline_seq(&self) -> Result<i64> {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM incident_timeline")
            .fetch_one(&self.pool)
            .await?;
        Ok(max.unwrap_or(0))
    }
}
