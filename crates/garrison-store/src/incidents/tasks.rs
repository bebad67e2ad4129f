//! Task templates per incident type, and the tasks (checklists) of incidents.

use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, SqlStore, StoreError};

use super::common::{from_json, invalid, json_text, live_incident, not_found};
use super::{IncidentRepo, Task};

const TASK_COLUMNS: &str = "seq, incident_id, title, done, done_by, done_us, created_us";

fn task_from_row(row: &AnyRow) -> Result<Task> {
    Ok(Task {
        id: row.try_get("seq")?,
        incident_id: row.try_get("incident_id")?,
        title: row.try_get("title")?,
        done: row.try_get::<i64, _>("done")? != 0,
        done_by: row.try_get("done_by")?,
        done_at: row.try_get::<Option<i64>, _>("done_us")?.map(from_micros),
        created: from_micros(row.try_get("created_us")?),
    })
}

impl SqlStore {
    pub(super) async fn set_task_template_impl(
        &self,
        tenant: TenantId,
        incident_type: &str,
        tasks: &[String],
        now: Timestamp,
    ) -> Result<()> {
        if incident_type.trim().is_empty() || incident_type.len() > 128 {
            return Err(invalid("incident type", "must have 1 to 128 characters"));
        }
        if tasks.iter().any(|t| t.trim().is_empty() || t.len() > 1024) || tasks.len() > 200 {
            return Err(invalid(
                "task template",
                "at most 200 tasks of 1 to 1024 characters",
            ));
        }
        sqlx::query(
            "INSERT INTO incident_task_templates (tenant_id, incident_type, tasks, updated_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, incident_type) DO UPDATE SET tasks = excluded.tasks, updated_us = excluded.updated_us",
        )
        .bind(tenant.0)
        .bind(incident_type)
        .bind(json_text("tasks", &tasks)?)
        .bind(to_micros(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn task_template_impl(
        &self,
        tenant: TenantId,
        incident_type: &str,
    ) -> Result<Option<Vec<String>>> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT tasks FROM incident_task_templates WHERE tenant_id = $1 AND incident_type = $2",
        )
        .bind(tenant.0)
        .bind(incident_type)
        .fetch_optional(&self.pool)
        .await?;
        text.map(|t| from_json("incident_task_templates.tasks", &t))
            .transpose()
    }

    pub(super) async fn add_tasks_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
        titles: &[String],
        now: Timestamp,
    ) -> Result<Vec<Task>> {
        if titles.iter().any(|t| t.trim().is_empty() || t.len() > 1024) {
            return Err(invalid("task", "a title must have 1 to 1024 characters"));
        }
        let mut tx = self.begin_write().await?;
        live_incident(&mut tx, tenant, incident_id).await?;
        let mut tasks = Vec::with_capacity(titles.len());
        for title in titles {
            let row = sqlx::query(sql!(
                "INSERT INTO incident_tasks (tenant_id, incident_id, title, done, created_us) VALUES ($1, $2, $3, 0, $4) RETURNING {TASK_COLUMNS}"
            ))
            .bind(tenant.0)
            .bind(incident_id)
            .bind(title.trim())
            .bind(to_micros(now))
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            tasks.push(task_from_row(&row)?);
        }
        tx.commit().await?;
        Ok(tasks)
    }

    pub(super) async fn apply_task_template_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
        now: Timestamp,
    ) -> Result<Vec<Task>> {
        let incident = self
            .incident(tenant, incident_id)
            .await?
            .ok_or_else(|| not_found(format!("incident {incident_id:?}")))?;
        let Some(kind) = incident.incident.incident_type else {
            return Ok(Vec::new());
        };
        match self.task_template(tenant, &kind).await? {
            Some(titles) => self.add_tasks(tenant, incident_id, &titles, now).await,
            None => Ok(Vec::new()),
        }
    }

    pub(super) async fn set_task_done_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
        task_id: i64,
        done: bool,
        by: &str,
        now: Timestamp,
    ) -> Result<Task> {
        let row = sqlx::query(sql!(
            "UPDATE incident_tasks SET done = $1, done_by = $2, done_us = $3 WHERE tenant_id = $4 AND incident_id = $5 AND seq = $6 RETURNING {TASK_COLUMNS}"
        ))
        .bind(i64::from(done))
        .bind(done.then(|| by.to_string()))
        .bind(done.then(|| to_micros(now)))
        .bind(tenant.0)
        .bind(incident_id)
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => task_from_row(&row),
            None => Err(not_found(format!(
                "task {task_id} of incident {incident_id:?}"
            ))),
        }
    }

    pub(super) async fn tasks_impl(
        &self,
        tenant: TenantId,
        incident_id: &str,
    ) -> Result<Vec<Task>> {
        let rows = sqlx::query(sql!(
            "SELECT {TASK_COLUMNS} FROM incident_tasks WHERE tenant_id = $1 AND incident_id = $2 ORDER BY seq"
        ))
        .bind(tenant.0)
        .bind(incident_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task_from_row).collect()
    }
}
