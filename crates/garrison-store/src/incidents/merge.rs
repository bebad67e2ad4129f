//! Merging incidents into one, and splitting alerts off into a new incident.

use std::collections::{BTreeMap, BTreeSet};

use garrison_cases::TimelineEvent;
use garrison_model::{to_micros, TenantId, Timestamp};
use sqlx::Row;

use crate::{Result, SqlStore};

use super::common::{
    append_events, insert_incident, invalid, live_incident, load_incident, write_links,
    write_observables,
};
use super::{LinkedAlert, Split, StoredIncident};

impl SqlStore {
    pub(super) async fn merge_incidents_impl(
        &self,
        tenant: TenantId,
        into: &str,
        sources: &[String],
        actor: &str,
        now: Timestamp,
    ) -> Result<StoredIncident> {
        let sources: Vec<&String> = sources
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if sources.is_empty() {
            return Err(invalid("merge", "name at least one incident to merge"));
        }
        if sources.iter().any(|s| s.as_str() == into) {
            return Err(invalid("merge", "an incident cannot be merged into itself"));
        }
        let now_us = to_micros(now);
        let mut tx = self.begin_write().await?;
        let target = live_incident(&mut tx, tenant, into).await?;
        let mut score = target.incident.score;
        for source in &sources {
            let stored = live_incident(&mut tx, tenant, source).await?;
            score = score.max(stored.incident.score);
            sqlx::query("UPDATE incident_alerts SET incident_id = $1 WHERE tenant_id = $2 AND incident_id = $3")
                .bind(into)
                .bind(tenant.0)
                .bind(source.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE alerts SET incident_id = $1, updated_us = $2 WHERE tenant_id = $3 AND incident_id = $4")
                .bind(into)
                .bind(now_us)
                .bind(tenant.0)
                .bind(source.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO incident_observables (tenant_id, incident_id, kind, value, field) \
                 SELECT tenant_id, $1, kind, value, field FROM incident_observables WHERE tenant_id = $2 AND incident_id = $3 \
                 ON CONFLICT (tenant_id, incident_id, kind, value) DO NOTHING",
            )
            .bind(into)
            .bind(tenant.0)
            .bind(source.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE incidents SET merged_into = $1, rev = rev + 1, updated_us = $2 WHERE tenant_id = $3 AND incident_id = $4")
                .bind(into)
                .bind(now_us)
                .bind(tenant.0)
                .bind(source.as_str())
                .execute(&mut *tx)
                .await?;
            append_events(
                &mut tx,
                tenant,
                source,
                &[TimelineEvent {
                    time: now,
                    actor: actor.to_string(),
                    kind: garrison_cases::TimelineKind::System {
                        message: format!("merged into {into}"),
                    },
                }],
            )
            .await?;
        }
        sqlx::query("UPDATE incidents SET score = $1, rev = rev + 1, updated_us = $2 WHERE tenant_id = $3 AND incident_id = $4")
            .bind(i64::from(score))
            .bind(now_us)
            .bind(tenant.0)
            .bind(into)
            .execute(&mut *tx)
            .await?;
        append_events(
            &mut tx,
            tenant,
            into,
            &[TimelineEvent {
                time: now,
                actor: actor.to_string(),
                kind: garrison_cases::TimelineKind::Merged {
                    incidents: sources.iter().map(|s| s.to_string()).collect(),
                },
            }],
        )
        .await?;
        let stored = load_incident(&mut tx, tenant, into).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn split_incident_impl(
        &self,
        tenant: TenantId,
        from: &str,
        split: &Split,
        actor: &str,
        now: Timestamp,
    ) -> Result<StoredIncident> {
        let moving: BTreeSet<&str> = split.alert_ids.iter().map(String::as_str).collect();
        if moving.is_empty() {
            return Err(invalid("split", "name at least one alert to move"));
        }
        let mut tx = self.begin_write().await?;
        live_incident(&mut tx, tenant, from).await?;
        let current: BTreeMap<String, String> = sqlx::query(
            "SELECT alert_id, rule_id FROM incident_alerts WHERE tenant_id = $1 AND incident_id = $2",
        )
        .bind(tenant.0)
        .bind(from)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("alert_id")?, row.try_get("rule_id")?)))
        .collect::<Result<_>>()?;
        if let Some(stranger) = moving.iter().find(|a| !current.contains_key(**a)) {
            return Err(invalid(
                "split",
                format!("alert {stranger:?} is not in incident {from:?}"),
            ));
        }
        if moving.len() == current.len() {
            return Err(invalid(
                "split",
                "the incident would keep no alert; move fewer",
            ));
        }
        insert_incident(&mut tx, tenant, &split.new_incident).await?;
        append_events(&mut tx, tenant, &split.new_incident.id, &split.events).await?;
        let links: Vec<LinkedAlert> = moving
            .iter()
            .map(|a| LinkedAlert {
                alert_id: a.to_string(),
                rule_id: current.get(*a).cloned().unwrap_or_default(),
            })
            .collect();
        write_links(&mut tx, tenant, &split.new_incident.id, &links, now).await?;
        write_observables(&mut tx, tenant, &split.new_incident.id, &split.observables).await?;
        sqlx::query("UPDATE incidents SET rev = rev + 1, updated_us = $1 WHERE tenant_id = $2 AND incident_id = $3")
            .bind(to_micros(now))
            .bind(tenant.0)
            .bind(from)
            .execute(&mut *tx)
            .await?;
        append_events(
            &mut tx,
            tenant,
            from,
            &[TimelineEvent {
                time: now,
                actor: actor.to_string(),
                kind: garrison_cases::TimelineKind::Split {
                    into: split.new_incident.id.clone(),
                    alerts: moving.iter().map(|a| a.to_string()).collect(),
                },
            }],
        )
        .await?;
        let stored = load_incident(&mut tx, tenant, &split.new_incident.id).await?;
        tx.commit().await?;
        Ok(stored)
    }
}
