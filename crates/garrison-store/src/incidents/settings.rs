//! A tenant's incident settings: workflow versions, assets and SLA policy.

use std::net::IpAddr;

use garrison_cases::{Asset, Criticality, SlaPolicy, Workflow};
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, SqlStore, StoreError};

use super::common::{corrupt, from_json, invalid, json_text, not_found, parse_col, version_u32};
use super::{IncidentRepo, StoredWorkflow, DEFAULT_WORKFLOW_VERSION};

fn asset_from_row(row: &AnyRow) -> Result<Asset> {
    let ip: Option<String> = row.try_get("ip")?;
    let criticality: String = row.try_get("criticality")?;
    Ok(Asset {
        name: row.try_get("name")?,
        ip: ip.map(|ip| parse_col("assets.ip", &ip)).transpose()?,
        criticality: Criticality::parse(&criticality)
            .ok_or_else(|| corrupt("assets.criticality")(criticality.clone()))?,
        owner: row.try_get("owner")?,
    })
}

impl SqlStore {
    pub(super) async fn save_workflow_impl(
        &self,
        tenant: TenantId,
        workflow: &Workflow,
        author: &str,
        now: Timestamp,
    ) -> Result<StoredWorkflow> {
        if let Err(errors) = workflow.validate() {
            let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Err(invalid("workflow", reasons.join("; ")));
        }
        let mut tx = self.begin_write().await?;
        let latest = sqlx::query(
            "SELECT version, definition FROM incident_workflows WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(tenant.0)
        .fetch_optional(&mut *tx)
        .await?;
        let mut candidate = workflow.clone();
        let next = match &latest {
            Some(row) => {
                let version = version_u32("incident_workflows.version", row.try_get("version")?)?;
                let stored: Workflow = from_json(
                    "incident_workflows.definition",
                    &row.try_get::<String, _>("definition")?,
                )?;
                candidate.version = version;
                if stored == candidate {
                    tx.rollback().await?;
                    return self.workflow(tenant, Some(version)).await;
                }
                version + 1
            }
            None => DEFAULT_WORKFLOW_VERSION + 1,
        };
        candidate.version = next;
        sqlx::query(
            "INSERT INTO incident_workflows (tenant_id, version, definition, created_us, created_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant.0)
        .bind(i64::from(next))
        .bind(json_text("workflow", &candidate)?)
        .bind(to_micros(now))
        .bind(author)
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
                what: format!("workflow version {next}"),
            },
            _ => StoreError::from_write(e),
        })?;
        tx.commit().await?;
        Ok(StoredWorkflow {
            version: next,
            workflow: candidate,
            created: now,
            created_by: author.to_string(),
        })
    }

    pub(super) async fn workflow_impl(
        &self,
        tenant: TenantId,
        version: Option<u32>,
    ) -> Result<StoredWorkflow> {
        let builtin = || StoredWorkflow {
            version: DEFAULT_WORKFLOW_VERSION,
            workflow: Workflow::default_soc(),
            created: Timestamp::UNIX_EPOCH,
            created_by: "garrison".into(),
        };
        if version == Some(DEFAULT_WORKFLOW_VERSION) {
            return Ok(builtin());
        }
        let row = match version {
            Some(v) => sqlx::query(
                "SELECT version, definition, created_us, created_by FROM incident_workflows WHERE tenant_id = $1 AND version = $2",
            )
            .bind(tenant.0)
            .bind(i64::from(v))
            .fetch_optional(&self.pool)
            .await?,
            None => sqlx::query(
                "SELECT version, definition, created_us, created_by FROM incident_workflows WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1",
            )
            .bind(tenant.0)
            .fetch_optional(&self.pool)
            .await?,
        };
        match (row, version) {
            (Some(row), _) => Ok(StoredWorkflow {
                version: version_u32("incident_workflows.version", row.try_get("version")?)?,
                workflow: from_json(
                    "incident_workflows.definition",
                    &row.try_get::<String, _>("definition")?,
                )?,
                created: from_micros(row.try_get("created_us")?),
                created_by: row.try_get("created_by")?,
            }),
            (None, None) => Ok(builtin()),
            (None, Some(v)) => Err(not_found(format!("workflow version {v}"))),
        }
    }

    pub(super) async fn upsert_assets_impl(
        &self,
        tenant: TenantId,
        assets: &[Asset],
        now: Timestamp,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut written = 0;
        for asset in assets {
            let name = asset.name.trim().to_lowercase();
            if name.is_empty() || name.len() > 256 {
                return Err(invalid("asset name", "must have 1 to 256 characters"));
            }
            written += sqlx::query(
                "INSERT INTO assets (tenant_id, name, ip, criticality, owner, updated_us) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (tenant_id, name) DO UPDATE SET ip = excluded.ip, criticality = excluded.criticality, owner = excluded.owner, updated_us = excluded.updated_us",
            )
            .bind(tenant.0)
            .bind(name)
            .bind(asset.ip.map(|ip| ip.to_string()))
            .bind(asset.criticality.as_str())
            .bind(asset.owner.clone())
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(written)
    }

    pub(super) async fn assets_impl(&self, tenant: TenantId) -> Result<Vec<Asset>> {
        let rows = sqlx::query(
            "SELECT name, ip, criticality, owner FROM assets WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(asset_from_row).collect()
    }

    pub(super) async fn asset_for_impl(
        &self,
        tenant: TenantId,
        host: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Option<Asset>> {
        if let Some(host) = host {
            let row = sqlx::query(
                "SELECT name, ip, criticality, owner FROM assets WHERE tenant_id = $1 AND name = $2",
            )
            .bind(tenant.0)
            .bind(host.trim().to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                return asset_from_row(&row).map(Some);
            }
        }
        if let Some(ip) = ip {
            let row = sqlx::query(
                "SELECT name, ip, criticality, owner FROM assets WHERE tenant_id = $1 AND ip = $2 ORDER BY name LIMIT 1",
            )
            .bind(tenant.0)
            .bind(ip.to_string())
            .fetch_optional(&self.pool)
            .await?;
            return row.as_ref().map(asset_from_row).transpose();
        }
        Ok(None)
    }

    pub(super) async fn delete_asset_impl(&self, tenant: TenantId, name: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM assets WHERE tenant_id = $1 AND name = $2")
            .bind(tenant.0)
            .bind(name.trim().to_lowercase())
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(format!("asset {name:?}")));
        }
        Ok(())
    }

    pub(super) async fn set_sla_policy_impl(
        &self,
        tenant: TenantId,
        policy: &SlaPolicy,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sla_policies (tenant_id, policy, updated_us) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET policy = excluded.policy, updated_us = excluded.updated_us",
        )
        .bind(tenant.0)
        .bind(json_text("SLA policy", policy)?)
        .bind(to_micros(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn sla_policy_impl(&self, tenant: TenantId) -> Result<SlaPolicy> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT policy FROM sla_policies WHERE tenant_id = $1")
                .bind(tenant.0)
                .fetch_optional(&self.pool)
                .await?;
        match text {
            Some(text) => from_json("sla_policies.policy", &text),
            None => Ok(SlaPolicy::default()),
        }
    }
}
