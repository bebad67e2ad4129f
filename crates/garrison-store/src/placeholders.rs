//! Sigma placeholder values per tenant, versioned. A change bumps the tenant's rule revision
//! in the same transaction, so the detector recompiles its rules with the new values.

use async_trait::async_trait;
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, SqlStore, StoreError};

/// One version of a placeholder; `values` is `None` for a deletion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlaceholderVersion {
    pub name: String,
    pub version: i64,
    pub values: Option<Vec<String>>,
    pub author: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created: Timestamp,
}

#[async_trait]
pub trait PlaceholderRepo: Send + Sync {
    /// The tenant's placeholders as they are now (deleted ones left out), by name.
    async fn placeholders(&self, tenant: TenantId) -> Result<Vec<PlaceholderVersion>>;
    /// Writes a new version of `name` (`None`: deletes it) and bumps the rule revision.
    async fn set_placeholder(
        &self,
        tenant: TenantId,
        name: &str,
        values: Option<&[String]>,
        author: &str,
    ) -> Result<PlaceholderVersion>;
    /// Every version of `name`, newest first.
    async fn placeholder_versions(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Vec<PlaceholderVersion>>;
}

fn version_from_row(row: &AnyRow) -> Result<PlaceholderVersion> {
    let values: Option<String> = row.try_get("vals")?;
    let values = values
        .map(|text| serde_json::from_str::<Vec<String>>(&text))
        .transpose()
        .map_err(|e| StoreError::Corrupt {
            column: "placeholders.vals",
            reason: e.to_string(),
        })?;
    Ok(PlaceholderVersion {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        values,
        author: row.try_get("author")?,
        created: from_micros(row.try_get("created_us")?),
    })
}

#[async_trait]
impl PlaceholderRepo for SqlStore {
    async fn placeholders(&self, tenant: TenantId) -> Result<Vec<PlaceholderVersion>> {
        let rows = sqlx::query(
            "SELECT p.name, p.version, p.vals, p.author, p.created_us FROM placeholders p \
             WHERE p.tenant_id = $1 AND p.vals IS NOT NULL AND p.version = \
             (SELECT MAX(q.version) FROM placeholders q WHERE q.tenant_id = p.tenant_id AND q.name = p.name) \
             ORDER BY p.name",
        )
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn set_placeholder(
        &self,
        tenant: TenantId,
        name: &str,
        values: Option<&[String]>,
        author: &str,
    ) -> Result<PlaceholderVersion> {
        let vals =
            values
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError::Invalid {
                    what: "placeholder values".into(),
                    reason: e.to_string(),
                })?;
        let now = Timestamp::now();
        let mut tx = self.begin_write().await?;
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM placeholders WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant.0)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if values.is_none() && current.is_none() {
            return Err(StoreError::NotFound {
                what: format!("placeholder {name:?}"),
            });
        }
        let version = current.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO placeholders (tenant_id, name, version, vals, author, created_us) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant.0)
        .bind(name)
        .bind(version)
        .bind(vals)
        .bind(author)
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
        crate::detection::bump_revision(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(PlaceholderVersion {
            name: name.to_string(),
            version,
            values: values.map(<[String]>::to_vec),
            author: author.to_string(),
            created: now,
        })
    }

    async fn placeholder_versions(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Vec<PlaceholderVersion>> {
        let rows = sqlx::query(
            "SELECT name, version, vals, author, created_us FROM placeholders \
             WHERE tenant_id = $1 AND name = $2 ORDER BY version DESC",
        )
        .bind(tenant.0)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from_row).collect()
    }
}
