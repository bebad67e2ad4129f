//! Attachment metadata (the bytes are kept elsewhere, by hash), noted on the incident's timeline.

use garrison_cases::{TimelineEvent, TimelineKind};
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, SqlStore, StoreError};

use super::common::{append_events, invalid, live_incident, not_found, Tx};
use super::Attachment;

const ATTACHMENT_COLUMNS: &str =
    "incident_id, sha256, name, size, content_type, uploaded_by, created_us";

/// How many incidents of the tenant hold the content with this (checked) hash.
async fn holders(tx: &mut Tx<'_>, tenant: TenantId, sha: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM incident_attachments WHERE tenant_id = $1 AND sha256 = $2",
    )
    .bind(tenant.0)
    .bind(sha)
    .fetch_one(&mut **tx)
    .await?)
}

/// An attachment's hash, checked and in lowercase.
fn attachment_hash(sha256: &str) -> Result<String> {
    let sha = sha256.to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(
            "attachment sha256",
            "must be 64 hexadecimal digits",
        ));
    }
    Ok(sha)
}

fn attachment_from_row(row: &AnyRow) -> Result<Attachment> {
    Ok(Attachment {
        incident_id: row.try_get("incident_id")?,
        sha256: row.try_get("sha256")?,
        name: row.try_get("name")?,
        size: row.try_get("size")?,
        content_type: row.try_get("content_type")?,
        uploaded_by: row.try_get("uploaded_by")?,
        created: from_micros(row.try_get("created_us")?),
    })
}

impl SqlStore {
    pub(super) async fn add_attachment_impl(
        &self,
        tenant: TenantId,
        attachment: &Attachment,
    ) -> Result<(Attachment, bool)> {
        let sha = attachment_hash(&attachment.sha256)?;
        if attachment.name.trim().is_empty() || attachment.name.len() > 1024 {
            return Err(invalid("attachment name", "must have 1 to 1024 characters"));
        }
        if attachment.size < 0 {
            return Err(invalid("attachment size", "must not be negative"));
        }
        let mut tx = self.begin_write().await?;
        live_incident(&mut tx, tenant, &attachment.incident_id).await?;
        let inserted = sqlx::query(
            "INSERT INTO incident_attachments (tenant_id, incident_id, sha256, name, size, content_type, uploaded_by, created_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, incident_id, sha256) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(&attachment.incident_id)
        .bind(&sha)
        .bind(&attachment.name)
        .bind(attachment.size)
        .bind(attachment.content_type.clone())
        .bind(&attachment.uploaded_by)
        .bind(to_micros(attachment.created))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_write)?
        .rows_affected()
            == 1;
        let row = sqlx::query(sql!(
            "SELECT {ATTACHMENT_COLUMNS} FROM incident_attachments WHERE tenant_id = $1 AND incident_id = $2 AND sha256 = $3"
        ))
        .bind(tenant.0)
        .bind(&attachment.incident_id)
        .bind(&sha)
        .fetch_one(&mut *tx)
        .await?;
        let stored = attachment_from_row(&row)?;
        if inserted {
            let event = TimelineEvent {
                time: stored.created,
                actor: stored.uploaded_by.clone(),
                kind: TimelineKind::AttachmentAdded {
                    name: stored.name.clone(),
                    sha256: stored.sha256.clone(),
                    size: stored.size,
                },
            };
            append_events(&mut tx, tenant, &stored.incident_id, &[event]).await?;
        }
        tx.commit().await?;
        Ok((stored, inserted))
    }

    pub(super) async fn attachments_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
    ) -> Result<Vec<Attachment>> {
        let rows = sqlx::query(sql!(
            "SELECT {ATTACHMENT_COLUMNS} FROM incident_attachments WHERE tenant_id = $1 AND incident_id = $2 ORDER BY created_us, sha256"
        ))
        .bind(tenant.0)
        .bind(incident_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attachment_from_row).collect()
    }

    pub(super) async fn attachment_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
        sha256: &str,
    ) -> Result<Option<Attachment>> {
        let sha = attachment_hash(sha256)?;
        let row = sqlx::query(sql!(
            "SELECT {ATTACHMENT_COLUMNS} FROM incident_attachments WHERE tenant_id = $1 AND incident_id = $2 AND sha256 = $3"
        ))
        .bind(tenant.0)
        .bind(incident_id)
        .bind(&sha)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(attachment_from_row).transpose()
    }

    pub(super) async fn attachment_holders_impl(
        &self,
        tenant: TenantId,
        sha256: &str,
    ) -> Result<i64> {
        let sha = attachment_hash(sha256)?;
        let mut tx = self.pool.begin().await?;
        let count = holders(&mut tx, tenant, &sha).await?;
        tx.commit().await?;
        Ok(count)
    }

    pub(super) async fn remove_attachment_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
        sha256: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let sha = attachment_hash(sha256)?;
        let mut tx = self.begin_write().await?;
        live_incident(&mut tx, tenant, incident_id).await?;
        let name: Option<String> = sqlx::query_scalar(
            "DELETE FROM incident_attachments WHERE tenant_id = $1 AND incident_id = $2 AND sha256 = $3 RETURNING name",
        )
        .bind(tenant.0)
        .bind(incident_id)
        .bind(&sha)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
        let Some(name) = name else {
            return Err(not_found(format!(
                "attachment {sha} of incident {incident_id:?}"
            )));
        };
        let others = holders(&mut tx, tenant, &sha).await?;
        let event = TimelineEvent {
            time: now,
            actor: actor.to_string(),
            kind: TimelineKind::AttachmentRemoved { name, sha256: sha },
        };
        append_events(&mut tx, tenant, incident_id, &[event]).await?;
        tx.commit().await?;
        Ok(others > 0)
    }
}
