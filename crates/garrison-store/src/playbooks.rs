//! Storage for the SOAR engine: playbook versions, runs, timers, blobs, webhook secrets and used
//! approval links. Values are plain strings and JSON text: this crate does not know the
//! playbook model (`garrison-playbook`); the service layer (`garrison-soar`) encodes it.
//!
//! **Invariant:** every method takes a [`TenantId`] and filters on it in SQL, except the
//! background scans ([`PlaybookRepo::due_timers`], [`PlaybookRepo::active_runs`],
//! [`PlaybookRepo::enabled_playbooks_all_tenants`]) and [`PlaybookRepo::commit_runs`] and
//! [`PlaybookRepo::put_timer`], whose rows each carry their tenant.

use async_trait::async_trait;
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, SqlStore, StoreError};

/// SQL assembled from constants and `$N` placeholders only; values are always bound.
macro_rules! sql {
    ($($arg:tt)*) => {
        sqlx::AssertSqlSafe(format!($($arg)*))
    };
}

/// One saved version of a playbook. Never changes once saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlaybookVersion {
    pub tenant_id: TenantId,
    pub name: String,
    pub version: i64,
    /// The validated definition as JSON text (for display and export).
    pub definition: String,
    /// The text as written (YAML or JSON); what a run's version is rebuilt from.
    pub source: String,
    /// SHA-256 of `source`: saving the same text again returns the existing version.
    pub source_hash: String,
    pub created: Timestamp,
    pub created_by: Option<String>,
}

/// A playbook's name, latest version and switch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlaybookSummary {
    pub tenant_id: TenantId,
    pub name: String,
    pub latest_version: i64,
    pub enabled: bool,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// A stored run: its state machine as JSON text and an optimistic revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub tenant_id: TenantId,
    pub run_id: String,
    pub playbook: String,
    pub version: i64,
    pub status: String,
    /// The whole run state (JSON text); empty in lists.
    pub state: String,
    /// Incremented by each save.
    pub rev: i64,
    /// Not finished, or still holding leases.
    pub active: bool,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// A timer row: due time and what to do (JSON text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimerRecord {
    pub tenant_id: TenantId,
    pub timer_id: String,
    pub run_id: String,
    pub due: Timestamp,
    pub payload: String,
}

/// One write of a run, with its timer changes and blobs, applied atomically.
#[derive(Clone, Debug)]
pub struct RunWrite {
    pub tenant_id: TenantId,
    pub run_id: String,
    pub playbook: String,
    pub version: i64,
    pub status: String,
    pub state: String,
    pub active: bool,
    /// `None`: create the run (fails with [`WriteOutcome::Exists`] if it exists).
    /// `Some(rev)`: update only if the stored revision is still `rev`.
    pub expected_rev: Option<i64>,
    /// Timers to store (an existing id is replaced).
    pub add_timers: Vec<TimerRecord>,
    /// Timer ids to remove.
    pub remove_timers: Vec<String>,
    /// Large values referenced by hash from the state: (hash, data); stored once.
    pub blobs: Vec<(String, String)>,
    /// Audit entries committed with the write, only if it is saved (the machine actions whose
    /// results this state records).
    pub audit: Vec<crate::NewAuditEntry>,
    pub now: Timestamp,
}

/// What happened to one [`RunWrite`] of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Saved at this revision.
    Saved(i64),
    /// The run changed since it was loaded; found this revision (0 when it is gone).
    Conflict(i64),
    /// A create found the run already there.
    Exists,
}

/// Filters for listing runs; all are ANDed.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub playbook: Option<String>,
    pub status: Option<String>,
    pub active: Option<bool>,
    /// Runs created before this (for paging: the last row's `created`).
    pub before: Option<Timestamp>,
    pub limit: usize,
}

#[async_trait]
pub trait PlaybookRepo: Send + Sync {
    /// Saves a new version of `name` (1 for a new playbook) and makes it the latest. Saving
    /// text identical to the latest version returns that version unchanged.
    async fn save_playbook_version(
        &self,
        tenant: TenantId,
        name: &str,
        definition: &str,
        source: &str,
        created_by: Option<&str>,
    ) -> Result<PlaybookVersion>;
    /// A version, or the latest when `version` is `None`.
    async fn playbook_version(
        &self,
        tenant: TenantId,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<PlaybookVersion>>;
    /// Every version of a playbook, oldest first.
    async fn playbook_versions(&self, tenant: TenantId, name: &str)
        -> Result<Vec<PlaybookVersion>>;
    async fn list_playbooks(&self, tenant: TenantId) -> Result<Vec<PlaybookSummary>>;
    async fn playbook_summary(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<PlaybookSummary>>;
    async fn set_playbook_enabled(
        &self,
        tenant: TenantId,
        name: &str,
        enabled: bool,
    ) -> Result<PlaybookSummary>;
    /// The latest version of every enabled playbook of every tenant (for the scheduler).
    async fn enabled_playbooks_all_tenants(&self) -> Result<Vec<PlaybookVersion>>;

    /// Applies the writes, each atomically with its timers and blobs, in one transaction;
    /// answers each in order. A conflicting write does not stop the others.
    async fn commit_runs(&self, writes: &[RunWrite]) -> Result<Vec<WriteOutcome>>;
    async fn load_run(&self, tenant: TenantId, run_id: &str) -> Result<Option<RunRecord>>;
    /// Runs newest first, without their state text unless `with_state`.
    async fn list_runs(
        &self,
        tenant: TenantId,
        filter: &RunFilter,
        with_state: bool,
    ) -> Result<Vec<RunRecord>>;
    /// Active runs of every tenant (to resume after a restart).
    async fn active_runs(&self, limit: usize) -> Result<Vec<(TenantId, String)>>;
    /// Timers due at `now` of every tenant, earliest first.
    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<TimerRecord>>;
    /// The timers of one run.
    async fn run_timers(&self, tenant: TenantId, run_id: &str) -> Result<Vec<TimerRecord>>;
    /// Removes a timer that cannot fire (its run is gone).
    async fn delete_timer(&self, tenant: TenantId, timer_id: &str) -> Result<()>;
    /// Stores (or replaces) one timer outside a run write: a request for a run that is busy
    /// (a cancellation while an action call is in flight), applied when the timer fires.
    async fn put_timer(&self, timer: &TimerRecord) -> Result<()>;
    /// A blob stored by [`PlaybookRepo::commit_runs`].
    async fn blob(&self, tenant: TenantId, hash: &str) -> Result<Option<String>>;

    /// Stores (or replaces) a named secret's hash.
    async fn put_secret_hash(&self, tenant: TenantId, name: &str, hash: &str) -> Result<()>;
    async fn secret_hash(&self, tenant: TenantId, name: &str) -> Result<Option<String>>;
    /// Stores a single-use approval link by the hash of its secret.
    async fn create_approval_link(&self, link: &ApprovalLink) -> Result<()>;
    /// An unused, unexpired link by the hash of its secret (this lookup establishes the
    /// tenant, like a token's).
    async fn approval_link(&self, link_hash: &str, now: Timestamp) -> Result<Option<ApprovalLink>>;
    /// Marks the link used; false when it was used before (or expired): a link works once.
    async fn use_approval_link(&self, link_hash: &str, now: Timestamp) -> Result<bool>;
}

/// A single-use approval link, stored by the SHA-256 of its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApprovalLink {
    pub link_hash: String,
    pub tenant_id: TenantId,
    pub run_id: String,
    pub step: String,
    pub expires: Timestamp,
    /// The approver it was issued to (None: an approval open to any responder).
    pub issued_to: Option<String>,
}

const VERSION_COLUMNS: &str =
    "tenant_id, name, version, definition, source, source_hash, created_us, created_by";
const SUMMARY_COLUMNS: &str = "tenant_id, name, latest_version, enabled, created_us, updated_us";

fn version_from_row(row: &AnyRow) -> Result<PlaybookVersion> {
    Ok(PlaybookVersion {
        tenant_id: TenantId(row.try_get("tenant_id")?),
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        definition: row.try_get("definition")?,
        source: row.try_get("source")?,
        source_hash: row.try_get("source_hash")?,
        created: from_micros(row.try_get("created_us")?),
        created_by: row.try_get("created_by")?,
    })
}

fn summary_from_row(row: &AnyRow) -> Result<PlaybookSummary> {
    Ok(PlaybookSummary {
        tenant_id: TenantId(row.try_get("tenant_id")?),
        name: row.try_get("name")?,
        latest_version: row.try_get("latest_version")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created: from_micros(row.try_get("created_us")?),
        updated: from_micros(row.try_get("updated_us")?),
    })
}

fn run_from_row(row: &AnyRow, with_state: bool) -> Result<RunRecord> {
    Ok(RunRecord {
        tenant_id: TenantId(row.try_get("tenant_id")?),
        run_id: row.try_get("run_id")?,
        playbook: row.try_get("playbook")?,
        version: row.try_get("version")?,
        status: row.try_get("status")?,
        state: if with_state {
            row.try_get("state")?
        } else {
            String::new()
        },
        rev: row.try_get("rev")?,
        active: row.try_get::<i64, _>("active")? != 0,
        created: from_micros(row.try_get("created_us")?),
        updated: from_micros(row.try_get("updated_us")?),
    })
}

fn timer_from_row(row: &AnyRow) -> Result<TimerRecord> {
    Ok(TimerRecord {
        tenant_id: TenantId(row.try_get("tenant_id")?),
        timer_id: row.try_get("timer_id")?,
        run_id: row.try_get("run_id")?,
        due: from_micros(row.try_get("due_us")?),
        payload: row.try_get("payload")?,
    })
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: "playbook name".into(),
            reason: format!(
                "{name:?} must be 1 to 128 characters of letters, digits, `-`, `_` or `.`"
            ),
        })
    }
}

const RUN_COLUMNS_NO_STATE: &str =
    "tenant_id, run_id, playbook, version, status, rev, active, created_us, updated_us";

#[async_trait]
impl PlaybookRepo for SqlStore {
    async fn save_playbook_version(
        &self,
        tenant: TenantId,
        name: &str,
        definition: &str,
        source: &str,
        created_by: Option<&str>,
    ) -> Result<PlaybookVersion> {
        check_name(name)?;
        let hash = sha256_hex(source);
        let now = to_micros(Timestamp::now());
        // Two saves at once may pick the same number: the primary key refuses the second,
        // which then tries again with the next number.
        for _ in 0..8 {
            // A write transaction from the start (SQLite: BEGIN IMMEDIATE): a deferred one that
            // reads and then writes cannot take the write lock while ingest holds it and fails
            // at once with "database is locked" instead of waiting its turn.
            let mut tx = self.begin_write().await?;
            let latest = sqlx::query(sql!(
                "SELECT {VERSION_COLUMNS} FROM playbook_versions WHERE tenant_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1"
            ))
            .bind(tenant.0)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            let latest = latest.as_ref().map(version_from_row).transpose()?;
            if let Some(found) = latest.as_ref().filter(|l| l.source_hash == hash) {
                return Ok(found.clone());
            }
            let next = latest.as_ref().map_or(1, |l| l.version + 1);
            let inserted = sqlx::query(
                "INSERT INTO playbook_versions (tenant_id, name, version, definition, source, source_hash, created_us, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(tenant.0)
            .bind(name)
            .bind(next)
            .bind(definition)
            .bind(source)
            .bind(&hash)
            .bind(now)
            .bind(created_by)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
            }
            sqlx::query(
                "INSERT INTO playbooks (tenant_id, name, latest_version, enabled, created_us, updated_us) VALUES ($1, $2, $3, 1, $4, $4) \
                 ON CONFLICT (tenant_id, name) DO UPDATE SET latest_version = excluded.latest_version, updated_us = excluded.updated_us",
            )
            .bind(tenant.0)
            .bind(name)
            .bind(next)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(PlaybookVersion {
                tenant_id: tenant,
                name: name.to_string(),
                version: next,
                definition: definition.to_string(),
                source: source.to_string(),
                source_hash: hash,
                created: from_micros(now),
                created_by: created_by.map(str::to_string),
            });
        }
        Err(StoreError::Conflict {
            what: format!("a concurrent version of playbook {name:?}"),
        })
    }

    async fn playbook_version(
        &self,
        tenant: TenantId,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<PlaybookVersion>> {
        let row = match version {
            Some(v) => {
                sqlx::query(sql!(
                    "SELECT {VERSION_COLUMNS} FROM playbook_versions WHERE tenant_id = $1 AND name = $2 AND version = $3"
                ))
                .bind(tenant.0)
                .bind(name)
                .bind(v)
                .fetch_optional(self.pool())
                .await?
            }
            None => {
                sqlx::query(sql!(
                    "SELECT {VERSION_COLUMNS} FROM playbook_versions WHERE tenant_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1"
                ))
                .bind(tenant.0)
                .bind(name)
                .fetch_optional(self.pool())
                .await?
            }
        };
        row.as_ref().map(version_from_row).transpose()
    }

    async fn playbook_versions(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Vec<PlaybookVersion>> {
        let rows = sqlx::query(sql!(
            "SELECT {VERSION_COLUMNS} FROM playbook_versions WHERE tenant_id = $1 AND name = $2 ORDER BY version"
        ))
        .bind(tenant.0)
        .bind(name)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn list_playbooks(&self, tenant: TenantId) -> Result<Vec<PlaybookSummary>> {
        let rows = sqlx::query(sql!(
            "SELECT {SUMMARY_COLUMNS} FROM playbooks WHERE tenant_id = $1 ORDER BY name"
        ))
        .bind(tenant.0)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(summary_from_row).collect()
    }

    async fn playbook_summary(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<PlaybookSummary>> {
        let row = sqlx::query(sql!(
            "SELECT {SUMMARY_COLUMNS} FROM playbooks WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant.0)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(summary_from_row).transpose()
    }

    async fn set_playbook_enabled(
        &self,
        tenant: TenantId,
        name: &str,
        enabled: bool,
    ) -> Result<PlaybookSummary> {
        let row = sqlx::query(sql!(
            "UPDATE playbooks SET enabled = $1, updated_us = $2 WHERE tenant_id = $3 AND name = $4 RETURNING {SUMMARY_COLUMNS}"
        ))
        .bind(i64::from(enabled))
        .bind(to_micros(Timestamp::now()))
        .bind(tenant.0)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => summary_from_row(&row),
            None => Err(StoreError::NotFound {
                what: format!("playbook {name:?}"),
            }),
        }
    }

    async fn enabled_playbooks_all_tenants(&self) -> Result<Vec<PlaybookVersion>> {
        let rows = sqlx::query(
            "SELECT v.tenant_id, v.name, v.version, v.definition, v.source, v.source_hash, v.created_us, v.created_by \
             FROM playbooks p JOIN playbook_versions v ON v.tenant_id = p.tenant_id AND v.name = p.name AND v.version = p.latest_version \
             WHERE p.enabled = 1 ORDER BY v.tenant_id, v.name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn commit_runs(&self, writes: &[RunWrite]) -> Result<Vec<WriteOutcome>> {
        let mut tx = self.begin_write().await?;
        let mut outcomes = Vec::with_capacity(writes.len());
        for w in writes {
            let now = to_micros(w.now);
            let outcome = match w.expected_rev {
                None => {
                    let inserted = sqlx::query(
                        "INSERT INTO playbook_runs (tenant_id, run_id, playbook, version, status, state, rev, active, created_us, updated_us) \
                         VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $8) ON CONFLICT (tenant_id, run_id) DO NOTHING",
                    )
                    .bind(w.tenant_id.0)
                    .bind(&w.run_id)
                    .bind(&w.playbook)
                    .bind(w.version)
                    .bind(&w.status)
                    .bind(&w.state)
                    .bind(i64::from(w.active))
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                    if inserted.rows_affected() == 1 {
                        WriteOutcome::Saved(1)
                    } else {
                        WriteOutcome::Exists
                    }
                }
                Some(expected) => {
                    let updated = sqlx::query(
                        "UPDATE playbook_runs SET status = $1, state = $2, rev = rev + 1, active = $3, updated_us = $4 \
                         WHERE tenant_id = $5 AND run_id = $6 AND rev = $7",
                    )
                    .bind(&w.status)
                    .bind(&w.state)
                    .bind(i64::from(w.active))
                    .bind(now)
                    .bind(w.tenant_id.0)
                    .bind(&w.run_id)
                    .bind(expected)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                    if updated.rows_affected() == 1 {
                        WriteOutcome::Saved(expected + 1)
                    } else {
                        let found: Option<i64> = sqlx::query_scalar(
                            "SELECT rev FROM playbook_runs WHERE tenant_id = $1 AND run_id = $2",
                        )
                        .bind(w.tenant_id.0)
                        .bind(&w.run_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                        WriteOutcome::Conflict(found.unwrap_or(0))
                    }
                }
            };
            if matches!(outcome, WriteOutcome::Saved(_)) {
                for id in &w.remove_timers {
                    sqlx::query(
                        "DELETE FROM playbook_timers WHERE tenant_id = $1 AND timer_id = $2",
                    )
                    .bind(w.tenant_id.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                for t in &w.add_timers {
                    sqlx::query(
                        "INSERT INTO playbook_timers (tenant_id, timer_id, run_id, due_us, payload) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (tenant_id, timer_id) DO UPDATE SET run_id = excluded.run_id, due_us = excluded.due_us, payload = excluded.payload",
                    )
                    .bind(w.tenant_id.0)
                    .bind(&t.timer_id)
                    .bind(&t.run_id)
                    .bind(to_micros(t.due))
                    .bind(&t.payload)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                }
                for entry in &w.audit {
                    crate::audit::append_audit_in(&mut tx, w.tenant_id, entry).await?;
                }
                for (hash, data) in &w.blobs {
                    sqlx::query(
                        "INSERT INTO playbook_blobs (tenant_id, hash, data, created_us) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, hash) DO NOTHING",
                    )
                    .bind(w.tenant_id.0)
                    .bind(hash)
                    .bind(data)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                }
            }
            outcomes.push(outcome);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn load_run(&self, tenant: TenantId, run_id: &str) -> Result<Option<RunRecord>> {
        let row = sqlx::query(sql!(
            "SELECT {RUN_COLUMNS_NO_STATE}, state FROM playbook_runs WHERE tenant_id = $1 AND run_id = $2"
        ))
        .bind(tenant.0)
        .bind(run_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(|r| run_from_row(r, true)).transpose()
    }

    async fn list_runs(
        &self,
        tenant: TenantId,
        filter: &RunFilter,
        with_state: bool,
    ) -> Result<Vec<RunRecord>> {
        let mut clauses = vec!["tenant_id = $1".to_string()];
        let mut n = 1;
        if filter.playbook.is_some() {
            n += 1;
            clauses.push(format!("playbook = ${n}"));
        }
        if filter.status.is_some() {
            n += 1;
            clauses.push(format!("status = ${n}"));
        }
        if filter.active.is_some() {
            n += 1;
            clauses.push(format!("active = ${n}"));
        }
        if filter.before.is_some() {
            n += 1;
            clauses.push(format!("created_us < ${n}"));
        }
        let limit = filter.limit.clamp(1, 10_000) as i64;
        let state = if with_state { ", state" } else { "" };
        let text = format!(
            "SELECT {RUN_COLUMNS_NO_STATE}{state} FROM playbook_runs WHERE {} ORDER BY created_us DESC, run_id DESC LIMIT {limit}",
            clauses.join(" AND ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text)).bind(tenant.0);
        if let Some(p) = &filter.playbook {
            query = query.bind(p.clone());
        }
        if let Some(s) = &filter.status {
            query = query.bind(s.clone());
        }
        if let Some(a) = filter.active {
            query = query.bind(i64::from(a));
        }
        if let Some(b) = filter.before {
            query = query.bind(to_micros(b));
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(|r| run_from_row(r, with_state)).collect()
    }

    async fn active_runs(&self, limit: usize) -> Result<Vec<(TenantId, String)>> {
        let rows = sqlx::query(sql!(
            "SELECT tenant_id, run_id FROM playbook_runs WHERE active = 1 ORDER BY updated_us LIMIT {}",
            limit.clamp(1, 1_000_000)
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((TenantId(r.try_get("tenant_id")?), r.try_get("run_id")?)))
            .collect()
    }

    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<TimerRecord>> {
        let rows = sqlx::query(sql!(
            "SELECT tenant_id, timer_id, run_id, due_us, payload FROM playbook_timers WHERE due_us <= $1 ORDER BY due_us, timer_id LIMIT {}",
            limit.clamp(1, 100_000)
        ))
        .bind(to_micros(now))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(timer_from_row).collect()
    }

    async fn run_timers(&self, tenant: TenantId, run_id: &str) -> Result<Vec<TimerRecord>> {
        let rows = sqlx::query(
            "SELECT tenant_id, timer_id, run_id, due_us, payload FROM playbook_timers WHERE tenant_id = $1 AND run_id = $2 ORDER BY due_us, timer_id",
        )
        .bind(tenant.0)
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(timer_from_row).collect()
    }

    async fn delete_timer(&self, tenant: TenantId, timer_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM playbook_timers WHERE tenant_id = $1 AND timer_id = $2")
            .bind(tenant.0)
            .bind(timer_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn put_timer(&self, t: &TimerRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO playbook_timers (tenant_id, timer_id, run_id, due_us, payload) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, timer_id) DO UPDATE SET run_id = excluded.run_id, due_us = excluded.due_us, payload = excluded.payload",
        )
        .bind(t.tenant_id.0)
        .bind(&t.timer_id)
        .bind(&t.run_id)
        .bind(to_micros(t.due))
        .bind(&t.payload)
        .execute(self.pool())
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }

    async fn blob(&self, tenant: TenantId, hash: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar(
                "SELECT data FROM playbook_blobs WHERE tenant_id = $1 AND hash = $2",
            )
            .bind(tenant.0)
            .bind(hash)
            .fetch_optional(self.pool())
            .await?,
        )
    }

    async fn put_secret_hash(&self, tenant: TenantId, name: &str, hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO playbook_secrets (tenant_id, name, secret_hash, created_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET secret_hash = excluded.secret_hash, created_us = excluded.created_us",
        )
        .bind(tenant.0)
        .bind(name)
        .bind(hash)
        .bind(to_micros(Timestamp::now()))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn secret_hash(&self, tenant: TenantId, name: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT secret_hash FROM playbook_secrets WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant.0)
        .bind(name)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn create_approval_link(&self, link: &ApprovalLink) -> Result<()> {
        sqlx::query(
            "INSERT INTO playbook_approval_links (link_hash, tenant_id, run_id, step, expires_us, issued_to) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&link.link_hash)
        .bind(link.tenant_id.0)
        .bind(&link.run_id)
        .bind(&link.step)
        .bind(to_micros(link.expires))
        .bind(&link.issued_to)
        .execute(self.pool())
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }

    async fn approval_link(&self, link_hash: &str, now: Timestamp) -> Result<Option<ApprovalLink>> {
        let row = sqlx::query(
            "SELECT link_hash, tenant_id, run_id, step, expires_us, issued_to FROM playbook_approval_links WHERE link_hash = $1 AND used_us IS NULL AND expires_us > $2",
        )
        .bind(link_hash)
        .bind(to_micros(now))
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(ApprovalLink {
                link_hash: r.try_get("link_hash")?,
                tenant_id: TenantId(r.try_get("tenant_id")?),
                run_id: r.try_get("run_id")?,
                step: r.try_get("step")?,
                expires: from_micros(r.try_get("expires_us")?),
                issued_to: r.try_get("issued_to")?,
            })
        })
        .transpose()
    }

    async fn use_approval_link(&self, link_hash: &str, now: Timestamp) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE playbook_approval_links SET used_us = $1 WHERE link_hash = $2 AND used_us IS NULL AND expires_us > $1",
        )
        .bind(to_micros(now))
        .bind(link_hash)
        .execute(self.pool())
        .await?;
        Ok(updated.rows_affected() == 1)
    }
}
