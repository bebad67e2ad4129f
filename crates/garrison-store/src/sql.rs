//! The SQL implementation of the repository traits, for SQLite and PostgreSQL.
//!
//! Queries use `$N` placeholders, which both backends accept. Where the SQL must differ the
//! [`Dialect`] supplies it. Queries are checked at run time (sqlx `Any`), and proved by the
//! conformance suite against both backends.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use garrison_model::{from_micros, to_micros, Event, LogSource, Role, TenantId, Timestamp};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection, Executor, Row};

use crate::credentials::{
    burn_password_check, generate_token, hash_password, hash_token, verify_password, TokenSecret,
};
use crate::page::{decode_cursor, encode_cursor, Filter, Page};
use crate::{
    roles_from_text, roles_to_text, ApiToken, EventPage, EventQuery, EventRepo, EventRow,
    NewSource, NewToken, Result, Source, SourceRepo, StoreError, Tenant, TenantRepo, TokenKind,
    TokenRepo, User, UserRepo,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn from_url(url: &str) -> Result<Dialect> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(url.to_string()))
        }
    }

    fn migrations(self) -> &'static [(i64, &'static str)] {
        match self {
            // Versions are applied in list order, each once; a missing number is no error.
            Dialect::Sqlite => &[
                (1, include_str!("../migrations/sqlite/0001_foundation.sql")),
                (2, include_str!("../migrations/sqlite/0002_playbooks.sql")),
                (3, include_str!("../migrations/sqlite/0003_detection.sql")),
                (4, include_str!("../migrations/sqlite/0004_incidents.sql")),
                (5, include_str!("../migrations/sqlite/0005_indicators.sql")),
                (
                    6,
                    include_str!("../migrations/sqlite/0006_source_stats.sql"),
                ),
                (
                    7,
                    include_str!("../migrations/sqlite/0007_placeholders.sql"),
                ),
                (
                    8,
                    include_str!("../migrations/sqlite/0008_alert_updates.sql"),
                ),
                (
                    9,
                    include_str!("../migrations/sqlite/0009_approval_link_person.sql"),
                ),
            ],
            Dialect::Postgres => &[
                (
                    1,
                    include_str!("../migrations/postgres/0001_foundation.sql"),
                ),
                (2, include_str!("../migrations/postgres/0002_playbooks.sql")),
                (3, include_str!("../migrations/postgres/0003_detection.sql")),
                (4, include_str!("../migrations/postgres/0004_incidents.sql")),
                (
                    5,
                    include_str!("../migrations/postgres/0005_indicators.sql"),
                ),
                (
                    6,
                    include_str!("../migrations/postgres/0006_source_stats.sql"),
                ),
                (
                    7,
                    include_str!("../migrations/postgres/0007_placeholders.sql"),
                ),
                (
                    8,
                    include_str!("../migrations/postgres/0008_alert_updates.sql"),
                ),
                (
                    9,
                    include_str!("../migrations/postgres/0009_approval_link_person.sql"),
                ),
            ],
        }
    }

    /// A JSON column read back as text.
    fn json_text(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => column.to_string(),
            Dialect::Postgres => format!("{column}::text"),
        }
    }

    /// Placeholder for the `n`th parameter of a bulk statement whose parameters are bound in
    /// order. SQLite gets anonymous `?`: sqlx resolves every named parameter through
    /// `sqlite3_bind_parameter_name`, a linear scan, which makes a 4,000-parameter insert
    /// quadratic (measured: 28% of the service's CPU).
    fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => "?".to_string(),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// A JSON value bound as text, stored as the backend's JSON type.
    fn json_param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => "?".to_string(),
            Dialect::Postgres => format!("${n}::jsonb"),
        }
    }
}

impl Dialect {
    /// PostgreSQL keeps no NUL character in `text` or `jsonb` (JSON may hold `\u0000`); they
    /// become U+FFFD there. Everything else, and every row for SQLite, is stored as it is.
    fn storable(self, row: &EventRow) -> std::borrow::Cow<'_, EventRow> {
        let has_nul = |s: &str| s.contains('\0');
        let json_has_nul = |s: &str| s.contains("\\u0000");
        if self == Dialect::Sqlite
            || !(json_has_nul(&row.fields_json)
                || json_has_nul(&row.normalized_json)
                || has_nul(&row.search_text)
                || row.raw.as_deref().is_some_and(has_nul)
                || has_nul(&row.id)
                || has_nul(&row.source))
        {
            return std::borrow::Cow::Borrowed(row);
        }
        let clean = |s: &str| s.replace('\0', "\u{FFFD}");
        let clean_json = |s: &str| match serde_json::from_str::<serde_json::Value>(s) {
            Ok(mut value) => {
                strip_nul(&mut value);
                value.to_string()
            }
            Err(_) => s.to_string(),
        };
        let mut row = row.clone();
        row.fields_json = clean_json(&row.fields_json);
        row.normalized_json = clean_json(&row.normalized_json);
        row.search_text = clean(&row.search_text);
        row.raw = row.raw.as_deref().map(clean);
        row.id = clean(&row.id);
        row.source = clean(&row.source);
        std::borrow::Cow::Owned(row)
    }
}

fn strip_nul(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nul),
        serde_json::Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut item) in entries {
                strip_nul(&mut item);
                map.insert(key.replace('\0', "\u{FFFD}"), item);
            }
        }
        _ => {}
    }
}

/// SQL assembled from constants and `$N` placeholders only; values are always bound, never
/// formatted in.
macro_rules! sql {
    ($($arg:tt)*) => {
        sqlx::AssertSqlSafe(format!($($arg)*))
    };
}

/// Most rows in one INSERT; keeps under both backends' parameter limits.
const EVENT_ROWS_PER_STATEMENT: usize = 400;

#[derive(Clone)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) dialect: Dialect,
    /// SQLite has one writer at a time, and its busy handler sleeps and retries: a writer that
    /// commits back to back (the indexer catching up) can starve another (the detector) for
    /// seconds. The bulk writers queue here first, in order, so each waits at most for the
    /// transaction in progress.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Writers that must not wait long (the detector) waiting for the gate: a bulk insert
    /// in progress commits what it has and lets them go first.
    priority_waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

const TENANT_COLUMNS: &str = "id, name, retention_days, created_us";
const USER_COLUMNS: &str = "id, tenant_id, username, roles, disabled, created_us";
const TOKEN_COLUMNS: &str = "id, tenant_id, kind, name, prefix, roles, source, user_id, created_us, expires_us, last_used_us, revoked";
const SOURCE_COLUMNS: &str =
    "id, tenant_id, name, product, service, category, field_mapping, created_us";

impl SqlStore {
    /// Connects to `sqlite://PATH` (created if missing) or `postgres://...` and applies every
    /// migration that has not run yet.
    pub async fn connect(url: &str) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        let url = match dialect {
            Dialect::Sqlite if !url.contains("mode=") => {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}mode=rwc")
            }
            _ => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match dialect {
                Dialect::Sqlite => 8,
                Dialect::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // WAL lets readers (the CLI, searches) run beside the indexer; FULL makes
                        // each committed indexer position survive power loss, so a log segment is
                        // never deleted before what came from it is safe.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA busy_timeout = 15000",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA temp_store = MEMORY",
                            // Give the WAL file back after checkpoints; FTS merges like cache.
                            "PRAGMA journal_size_limit = 67108864",
                            "PRAGMA cache_size = -16384",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            // A transaction whose COMMIT failed (a full disk, an I/O error) and whose ROLLBACK
            // then failed too leaves the connection inside it: reused, every later `begin`
            // fails ("non-zero transaction depth") until a restart. Such a connection is
            // closed instead of pooled. On SQLite the rollback of a dropped transaction is
            // queued to the connection's worker; the ping waits for it to have run.
            .after_release(move |conn, _meta| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        conn.ping().await?;
                    }
                    let reusable = !conn.is_in_transaction();
                    if !reusable {
                        tracing::warn!(
                            "a database connection left inside a failed transaction was closed"
                        );
                    }
                    Ok(reusable)
                })
            })
            .connect(&url)
            .await?;
        let store = SqlStore {
            pool,
            dialect,
            write_gate: Default::default(),
            priority_waiting: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A transaction that will write. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads first and writes later fails at once with
    /// `SQLITE_BUSY` (no busy timeout applies) when another connection wrote in between, which
    /// under load turned into sporadic 500s. On PostgreSQL a plain `BEGIN`.
    pub(crate) async fn begin_write(
        &self,
    ) -> std::result::Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Held by the bulk writers for SQLite (see `write_gate`); PostgreSQL locks rows, not the
    /// database, and needs no queue.
    pub(crate) async fn bulk_write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.dialect {
            Dialect::Sqlite => Some(self.write_gate.lock().await),
            Dialect::Postgres => None,
        }
    }

    /// [`Self::bulk_write_turn`] for a writer whose latency matters: a bulk insert in progress
    /// yields to it between statements.
    pub(crate) async fn priority_write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        use std::sync::atomic::Ordering;
        if self.dialect != Dialect::Sqlite {
            return None;
        }
        self.priority_waiting.fetch_add(1, Ordering::SeqCst);
        let turn = self.write_gate.lock().await;
        self.priority_waiting.fetch_sub(1, Ordering::SeqCst);
        Some(turn)
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        if self.dialect == Dialect::Postgres {
            // Several nodes (or tests) may start at once: one migrates, the others wait.
            conn.execute("SELECT pg_advisory_lock(7262770738)").await?;
        }
        let result = self.migrate_locked(&mut conn).await;
        if self.dialect == Dialect::Postgres {
            conn.execute("SELECT pg_advisory_unlock(7262770738)")
                .await?;
        }
        result
    }

    async fn migrate_locked(&self, conn: &mut sqlx::AnyConnection) -> Result<()> {
        conn.execute(
            "CREATE TABLE IF NOT EXISTS garrison_migrations (version BIGINT PRIMARY KEY, applied_us BIGINT NOT NULL)",
        )
        .await?;
        for &(version, script) in self.dialect.migrations() {
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT version FROM garrison_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *conn)
                    .await?;
            if applied.is_some() {
                continue;
            }
            let run = async {
                let mut tx = self.begin_write().await?;
                // Migration scripts hold no string literals with ';', so splitting is exact
                // once `--` comment lines are gone.
                let code: String = script
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("--"))
                    .map(|line| format!("{line}\n"))
                    .collect();
                for statement in code.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    tx.execute(sqlx::AssertSqlSafe(statement.to_string()))
                        .await?;
                }
                sqlx::query(
                    "INSERT INTO garrison_migrations (version, applied_us) VALUES ($1, $2)",
                )
                .bind(version)
                .bind(to_micros(Timestamp::now()))
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            };
            run.await
                .map_err(|source| StoreError::Migration { version, source })?;
            tracing::info!(version, "applied database migration");
        }
        Ok(())
    }

    /// Creates an empty database beside this one (PostgreSQL), for tests that need isolation.
    #[doc(hidden)]
    pub async fn create_database_for_tests(&self, name: &str) -> Result<()> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StoreError::Invalid {
                what: "database name".into(),
                reason: format!("{name:?} must be alphanumeric"),
            });
        }
        sqlx::query(sql!("CREATE DATABASE {name}"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes all tenant data. For the conformance suite's clean slate; not exposed by the API.
    #[doc(hidden)]
    pub async fn truncate_all_for_tests(&self) -> Result<()> {
        for table in [
            "incident_workflows",
            "incidents",
            "incident_alerts",
            "incident_observables",
            "incident_timeline",
            "incident_tasks",
            "incident_task_templates",
            "incident_attachments",
            "suppressions",
            "grouping_rules",
            "incident_groups",
            "assets",
            "sla_policies",
            "alert_events",
            "alerts",
            "playbook_versions",
            "playbooks",
            "playbook_runs",
            "playbook_timers",
            "playbook_blobs",
            "playbook_secrets",
            "playbook_approval_links",
            "rule_versions",
            "rules",
            "rule_revisions",
            "audit_log",
            "events",
            "tokens",
            "users",
            "sources",
            "consumer_positions",
            "indicators",
            "indicator_feeds",
            "indicator_revisions",
            "tenants",
        ] {
            sqlx::query(sql!("DELETE FROM {table}"))
                .execute(&self.pool)
                .await?;
        }
        if self.dialect == Dialect::Sqlite {
            sqlx::query("DELETE FROM events_fts")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

fn conflict_or(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { what: what.into() }
        }
        _ => StoreError::Database(error),
    }
}

fn opt_time(us: Option<i64>) -> Option<Timestamp> {
    us.map(from_micros)
}

fn tenant_from_row(row: &AnyRow) -> Result<Tenant> {
    Ok(Tenant {
        id: TenantId(row.try_get("id")?),
        name: row.try_get("name")?,
        retention_days: row.try_get("retention_days")?,
        created: from_micros(row.try_get("created_us")?),
    })
}

fn user_from_row(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        tenant_id: TenantId(row.try_get("tenant_id")?),
        username: row.try_get("username")?,
        roles: roles_from_text(&row.try_get::<String, _>("roles")?)?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created: from_micros(row.try_get("created_us")?),
    })
}

fn token_from_row(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        tenant_id: TenantId(row.try_get("tenant_id")?),
        kind: TokenKind::parse(&row.try_get::<String, _>("kind")?)?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        roles: roles_from_text(&row.try_get::<String, _>("roles")?)?,
        source: row.try_get("source")?,
        user_id: row.try_get("user_id")?,
        created: from_micros(row.try_get("created_us")?),
        expires: opt_time(row.try_get("expires_us")?),
        last_used: opt_time(row.try_get("last_used_us")?),
        revoked: row.try_get::<i64, _>("revoked")? != 0,
    })
}

/// The `field_mapping` column of a source with an alert mapping: the pairs and the mapping
/// side by side (a source without one keeps the plain array of pairs).
#[derive(serde::Serialize, serde::Deserialize)]
struct SourceMappings {
    fields: Vec<(String, String)>,
    alerts: Option<crate::AlertMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    syslog: Option<crate::SyslogMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    silent_after_secs: Option<u64>,
}

fn encode_source_mappings(source: &NewSource) -> serde_json::Result<String> {
    if source.alert_mapping.is_none()
        && source.id_field.is_none()
        && source.syslog.is_none()
        && source.silent_after_secs.is_none()
    {
        return serde_json::to_string(&source.field_mapping);
    }
    serde_json::to_string(&SourceMappings {
        fields: source.field_mapping.clone(),
        alerts: source.alert_mapping.clone(),
        id_field: source.id_field.clone(),
        syslog: source.syslog.clone(),
        silent_after_secs: source.silent_after_secs,
    })
}

fn decode_source_mappings(text: &str) -> serde_json::Result<SourceMappings> {
    if text.trim_start().starts_with('[') {
        return Ok(SourceMappings {
            fields: serde_json::from_str(text)?,
            alerts: None,
            id_field: None,
            syslog: None,
            silent_after_secs: None,
        });
    }
    serde_json::from_str(text)
}

fn source_from_row(row: &AnyRow) -> Result<Source> {
    let mapping: String = row.try_get("field_mapping")?;
    let mappings = decode_source_mappings(&mapping).map_err(|e| StoreError::Corrupt {
        column: "sources.field_mapping",
        reason: e.to_string(),
    })?;
    Ok(Source {
        id: row.try_get("id")?,
        tenant_id: TenantId(row.try_get("tenant_id")?),
        name: row.try_get("name")?,
        product: row.try_get("product")?,
        service: row.try_get("service")?,
        category: row.try_get("category")?,
        field_mapping: mappings.fields,
        alert_mapping: mappings.alerts,
        id_field: mappings.id_field,
        syslog: mappings.syslog,
        silent_after_secs: mappings.silent_after_secs,
        created: from_micros(row.try_get("created_us")?),
    })
}

fn event_from_row(row: &AnyRow) -> Result<Event> {
    let fields: String = row.try_get("fields")?;
    let normalized: String = row.try_get("normalized")?;
    Ok(Event {
        id: row.try_get("id")?,
        tenant_id: TenantId(row.try_get("tenant_id")?),
        time: from_micros(row.try_get("time_us")?),
        received: from_micros(row.try_get("received_us")?),
        source: row.try_get("source")?,
        logsource: LogSource {
            product: row.try_get("product")?,
            service: row.try_get("service")?,
            category: row.try_get("category")?,
        },
        fields: serde_json::from_str(&fields).map_err(|e| StoreError::Corrupt {
            column: "events.fields",
            reason: e.to_string(),
        })?,
        fields_text: Some(fields),
        normalized: serde_json::from_str(&normalized).map_err(|e| StoreError::Corrupt {
            column: "events.normalized",
            reason: e.to_string(),
        })?,
        raw: row.try_get("raw")?,
    })
}

/// FTS5 query from free text: the same tokens the index holds (alphanumeric runs, as the
/// unicode61 tokenizer cuts them), each quoted and all required, so user input is never FTS
/// syntax and no phrase (which `detail=none` cannot answer) is ever asked.
fn fts5_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|token| !token.is_empty())
        .map(|token| format!("\"{token}\""))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// The tag of event cursors (newest first, by event time then `seq`).
const EVENT_CURSOR: &str = "e";
/// The tag of oldest-first event cursors.
const EVENT_CURSOR_ASC: &str = "o";

#[async_trait]
impl TenantRepo for SqlStore {
    async fn ensure_tenant(&self, name: &str) -> Result<Tenant> {
        if name.trim().is_empty() || name.len() > 128 {
            return Err(StoreError::Invalid {
                what: "tenant name".into(),
                reason: "must be 1 to 128 characters".into(),
            });
        }
        sqlx::query(
            "INSERT INTO tenants (name, created_us) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(to_micros(Timestamp::now()))
        .execute(&self.pool)
        .await?;
        self.tenant_by_name(name)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("tenant {name:?}"),
            })
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let row = sqlx::query(sql!("SELECT {TENANT_COLUMNS} FROM tenants WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn tenant(&self, id: TenantId) -> Result<Tenant> {
        let row = sqlx::query(sql!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => tenant_from_row(&row),
            None => Err(StoreError::NotFound {
                what: format!("tenant {id}"),
            }),
        }
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query(sql!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn set_retention(&self, id: TenantId, days: Option<i64>) -> Result<Tenant> {
        if let Some(days) = days {
            if days < 1 {
                return Err(StoreError::Invalid {
                    what: "retention_days".into(),
                    reason: format!("{days} is not a positive number of days"),
                });
            }
        }
        sqlx::query("UPDATE tenants SET retention_days = $1 WHERE id = $2")
            .bind(days)
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        self.tenant(id).await
    }
}

#[async_trait]
impl UserRepo for SqlStore {
    async fn create_user(
        &self,
        tenant: TenantId,
        username: &str,
        password: &str,
        roles: &[Role],
    ) -> Result<User> {
        if username.trim().is_empty() || username.len() > 128 {
            return Err(StoreError::Invalid {
                what: "username".into(),
                reason: "must be 1 to 128 characters".into(),
            });
        }
        if password.chars().count() < 12 {
            return Err(StoreError::Invalid {
                what: "password".into(),
                reason: "must have at least 12 characters".into(),
            });
        }
        let password = password.to_string();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| StoreError::Hashing(e.to_string()))??;
        let row = sqlx::query(sql!(
            "INSERT INTO users (tenant_id, username, password_hash, roles, created_us) VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}"
        ))
        .bind(tenant.0)
        .bind(username)
        .bind(hash)
        .bind(roles_to_text(roles))
        .bind(to_micros(Timestamp::now()))
        .fetch_one(&self.pool)
        .await
        .map_err(conflict_or(format!("user {username:?}")))?;
        user_from_row(&row)
    }

    async fn list_users(&self, tenant: TenantId) -> Result<Vec<User>> {
        let rows = sqlx::query(sql!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY id"
        ))
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn authenticate_user(
        &self,
        tenant: TenantId,
        username: &str,
        password: &str,
    ) -> Result<Option<User>> {
        let row = sqlx::query(sql!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE tenant_id = $1 AND username = $2"
        ))
        .bind(tenant.0)
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        // An unknown user still costs one hash, so timing does not reveal which names exist.
        let stored_hash = match &row {
            Some(row) => Some(row.try_get::<String, _>("password_hash")?),
            None => None,
        };
        let password = password.to_string();
        let valid = tokio::task::spawn_blocking(move || match stored_hash {
            Some(hash) => verify_password(&password, &hash),
            None => burn_password_check(&password),
        })
        .await
        .map_err(|e| StoreError::Hashing(e.to_string()))?;
        match row {
            Some(row) if valid => {
                let user = user_from_row(&row)?;
                Ok((!user.disabled).then_some(user))
            }
            _ => Ok(None),
        }
    }

    async fn set_user_disabled(
        &self,
        tenant: TenantId,
        user_id: i64,
        disabled: bool,
    ) -> Result<User> {
        let row = sqlx::query(sql!(
            "UPDATE users SET disabled = $1 WHERE tenant_id = $2 AND id = $3 RETURNING {USER_COLUMNS}"
        ))
        .bind(i64::from(disabled))
        .bind(tenant.0)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let row = row.ok_or_else(|| StoreError::NotFound {
            what: format!("user {user_id}"),
        })?;
        if disabled {
            // A disabled account's tokens stop working at once.
            sqlx::query("UPDATE tokens SET revoked = 1 WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant.0)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
        }
        user_from_row(&row)
    }

    async fn count_users(&self, tenant: TenantId) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE tenant_id = $1")
                .bind(tenant.0)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

#[async_trait]
impl TokenRepo for SqlStore {
    async fn create_token(&self, token: NewToken) -> Result<(ApiToken, TokenSecret)> {
        if token.kind == TokenKind::Ingest && token.source.as_deref().unwrap_or("").is_empty() {
            return Err(StoreError::Invalid {
                what: "ingest token".into(),
                reason: "needs a source".into(),
            });
        }
        let secret = generate_token(token.kind);
        let prefix: String = secret.expose().chars().take(14).collect();
        let row = sqlx::query(sql!(
            "INSERT INTO tokens (tenant_id, kind, name, token_hash, prefix, roles, source, user_id, created_us, expires_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(token.tenant_id.0)
        .bind(token.kind.as_str())
        .bind(token.name)
        .bind(hash_token(secret.expose()))
        .bind(prefix)
        .bind(roles_to_text(&token.roles))
        .bind(token.source)
        .bind(token.user_id)
        .bind(to_micros(Timestamp::now()))
        .bind(token.expires.map(to_micros))
        .fetch_one(&self.pool)
        .await?;
        Ok((token_from_row(&row)?, secret))
    }

    async fn authenticate_token(&self, secret: &str, now: Timestamp) -> Result<Option<ApiToken>> {
        let row = sqlx::query(sql!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = $1 AND revoked = 0"
        ))
        .bind(hash_token(secret))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token = token_from_row(&row)?;
        if token.expires.is_some_and(|expires| expires <= now) {
            return Ok(None);
        }
        // Record use at most once a minute per token: a write per request would cost more
        // than the request.
        let stale = token
            .last_used
            .is_none_or(|last| now.as_second() - last.as_second() >= 60);
        if stale {
            sqlx::query("UPDATE tokens SET last_used_us = $1 WHERE id = $2")
                .bind(to_micros(now))
                .bind(token.id)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(token))
    }

    async fn list_tokens(&self, tenant: TenantId) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(sql!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE tenant_id = $1 AND kind <> 'session' ORDER BY id"
        ))
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        let result = sqlx::query(
            "DELETE FROM tokens WHERE kind = 'session' AND expires_us IS NOT NULL AND expires_us < $1",
        )
        .bind(to_micros(now))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn revoke_token(&self, tenant: TenantId, token_id: i64) -> Result<ApiToken> {
        let row = sqlx::query(sql!(
            "UPDATE tokens SET revoked = 1 WHERE tenant_id = $1 AND id = $2 RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(tenant.0)
        .bind(token_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => token_from_row(&row),
            None => Err(StoreError::NotFound {
                what: format!("token {token_id}"),
            }),
        }
    }
}

#[async_trait]
impl SourceRepo for SqlStore {
    async fn upsert_source(&self, tenant: TenantId, source: NewSource) -> Result<Source> {
        if source.name.trim().is_empty() || source.name.len() > 128 {
            return Err(StoreError::Invalid {
                what: "source name".into(),
                reason: "must be 1 to 128 characters".into(),
            });
        }
        let mapping = encode_source_mappings(&source).map_err(|e| StoreError::Invalid {
            what: "field mapping".into(),
            reason: e.to_string(),
        })?;
        let row = sqlx::query(sql!(
            "INSERT INTO sources (tenant_id, name, product, service, category, field_mapping, created_us) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET product = excluded.product, service = excluded.service, category = excluded.category, field_mapping = excluded.field_mapping \
             RETURNING {SOURCE_COLUMNS}"
        ))
        .bind(tenant.0)
        .bind(&source.name)
        .bind(source.product)
        .bind(source.service)
        .bind(source.category)
        .bind(mapping)
        .bind(to_micros(Timestamp::now()))
        .fetch_one(&self.pool)
        .await?;
        source_from_row(&row)
    }

    async fn source(&self, tenant: TenantId, name: &str) -> Result<Option<Source>> {
        let row = sqlx::query(sql!(
            "SELECT {SOURCE_COLUMNS} FROM sources WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant.0)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(source_from_row).transpose()
    }

    async fn list_sources(&self, tenant: TenantId) -> Result<Vec<Source>> {
        let rows = sqlx::query(sql!(
            "SELECT {SOURCE_COLUMNS} FROM sources WHERE tenant_id = $1 ORDER BY name"
        ))
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(source_from_row).collect()
    }

    async fn source_minutes(
        &self,
        tenant: TenantId,
        source: &str,
        since: Timestamp,
    ) -> Result<Vec<crate::SourceMinute>> {
        let since = to_micros(since);
        let rows = sqlx::query(
            "SELECT minute_us, events, duplicates, unparsed, last_received_us FROM source_stats \
             WHERE tenant_id = $1 AND source = $2 AND minute_us >= $3 ORDER BY minute_us",
        )
        .bind(tenant.0)
        .bind(source)
        .bind(since - since.rem_euclid(MINUTE_US))
        .fetch_all(&self.pool)
        .await?;
        let count = |row: &AnyRow, column: &str| -> Result<u64> {
            Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
        };
        rows.iter()
            .map(|row| {
                Ok(crate::SourceMinute {
                    minute: from_micros(row.try_get("minute_us")?),
                    events: count(row, "events")?,
                    duplicates: count(row, "duplicates")?,
                    unparsed: count(row, "unparsed")?,
                    last_received: from_micros(row.try_get("last_received_us")?),
                })
            })
            .collect()
    }

    async fn sources_last_received(&self, tenant: TenantId) -> Result<Vec<(String, Timestamp)>> {
        let rows = sqlx::query(
            "SELECT source, MAX(last_received_us) AS last_us FROM source_stats \
             WHERE tenant_id = $1 AND events > 0 GROUP BY source ORDER BY source",
        )
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("source")?, from_micros(row.try_get("last_us")?))))
            .collect()
    }

    async fn add_source_duplicates(
        &self,
        tenant: TenantId,
        source: &str,
        at: Timestamp,
        count: u64,
    ) -> Result<()> {
        let at = to_micros(at);
        let mut tx = self.begin_write().await?;
        add_source_minute(
            &mut tx,
            tenant.0,
            source,
            at - at.rem_euclid(MINUTE_US),
            [0, i64::try_from(count).unwrap_or(i64::MAX), 0],
            // A minute of duplicates alone says nothing of when an event was last stored.
            i64::MIN,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn source_rule_hits(
        &self,
        tenant: TenantId,
        source: &str,
        since: Timestamp,
    ) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(
            "SELECT a.rule_id AS rule_id, COUNT(*) AS hits FROM alert_events ae \
             JOIN events e ON e.tenant_id = ae.tenant_id AND e.id = ae.event_id \
             JOIN alerts a ON a.tenant_id = ae.tenant_id AND a.alert_id = ae.alert_id \
             WHERE ae.tenant_id = $1 AND e.source = $2 AND a.updated_us >= $3 \
             GROUP BY a.rule_id ORDER BY hits DESC, a.rule_id",
        )
        .bind(tenant.0)
        .bind(source)
        .bind(to_micros(since))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("rule_id")?,
                    u64::try_from(row.try_get::<i64, _>("hits")?).unwrap_or(0),
                ))
            })
            .collect()
    }

    async fn purge_source_minutes(&self, before: Timestamp) -> Result<u64> {
        let result = sqlx::query("DELETE FROM source_stats WHERE minute_us < $1")
            .bind(to_micros(before))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}

/// Per (tenant, source, minute of receipt): events stored, duplicates, unparsed, newest
/// receipt; added to `source_stats` in the transaction that stores the events.
#[derive(Default)]
struct SourceMinutes {
    counts: HashMap<(i64, String, i64), [i64; 4]>,
}

const MINUTE_US: i64 = 60_000_000;

impl SourceMinutes {
    fn count(&mut self, rows: &[EventRow], new_ids: &mut std::collections::HashSet<String>) {
        let unparsed_key = format!("\"{}\"", garrison_model::UNPARSED_FIELD);
        for row in rows {
            let received = to_micros(row.received);
            let key = (
                row.tenant_id.0,
                row.source.clone(),
                received - received.rem_euclid(MINUTE_US),
            );
            let entry = self.counts.entry(key).or_insert([0, 0, 0, i64::MIN]);
            // An id inserted counts once: the same record twice in one batch (syslog does not
            // drop in-batch repeats) is one event and one duplicate.
            if new_ids.remove(&row.id) {
                entry[0] += 1;
                if row.normalized_json.contains(&unparsed_key) {
                    entry[2] += 1;
                }
            } else {
                entry[1] += 1;
            }
            entry[3] = entry[3].max(received);
        }
    }

    async fn write(self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
        for ((tenant, source, minute), [events, duplicates, unparsed, last]) in self.counts {
            add_source_minute(
                tx,
                tenant,
                &source,
                minute,
                [events, duplicates, unparsed],
                last,
            )
            .await?;
        }
        Ok(())
    }
}

async fn add_source_minute(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: i64,
    source: &str,
    minute: i64,
    [events, duplicates, unparsed]: [i64; 3],
    last: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO source_stats (tenant_id, source, minute_us, events, duplicates, unparsed, last_received_us) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, source, minute_us) DO UPDATE SET \
         events = source_stats.events + excluded.events, \
         duplicates = source_stats.duplicates + excluded.duplicates, \
         unparsed = source_stats.unparsed + excluded.unparsed, \
         last_received_us = CASE WHEN excluded.last_received_us > source_stats.last_received_us \
             THEN excluded.last_received_us ELSE source_stats.last_received_us END",
    )
    .bind(tenant)
    .bind(source)
    .bind(minute)
    .bind(events)
    .bind(duplicates)
    .bind(unparsed)
    .bind(last)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

#[async_trait]
impl EventRepo for SqlStore {
    async fn store_events(
        &self,
        events: &[EventRow],
        consumer: &str,
        position: u64,
    ) -> Result<u64> {
        let mut turn = self.bulk_write_turn().await;
        let mut tx = self.begin_write().await?;
        let mut inserted = 0u64;
        let mut stats = SourceMinutes::default();
        for (index, chunk) in events.chunks(EVENT_ROWS_PER_STATEMENT).enumerate() {
            if index > 0
                && turn.is_some()
                && self
                    .priority_waiting
                    .load(std::sync::atomic::Ordering::SeqCst)
                    > 0
            {
                // Let the waiting writer go first. The rows so far are committed without the
                // position, which moves only with the last rows: a crash before then replays
                // them, and replayed rows are ignored.
                tx.commit().await?;
                drop(turn.take());
                turn = self.bulk_write_turn().await;
                tx = self.begin_write().await?;
            }
            let per_row = match self.dialect {
                Dialect::Sqlite => 11,
                Dialect::Postgres => 12,
            };
            let mut sql = String::with_capacity(chunk.len() * 80 + 200);
            sql.push_str("INSERT INTO events (tenant_id, id, time_us, received_us, source, product, service, category, fields, normalized, raw");
            if self.dialect == Dialect::Postgres {
                sql.push_str(", tsv");
            }
            sql.push_str(") VALUES ");
            for row in 0..chunk.len() {
                let base = row * per_row;
                if row > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for column in 1..=11 {
                    if column > 1 {
                        sql.push(',');
                    }
                    if column == 9 || column == 10 {
                        sql.push_str(&self.dialect.json_param(base + column));
                    } else {
                        sql.push_str(&self.dialect.param(base + column));
                    }
                }
                if self.dialect == Dialect::Postgres {
                    sql.push_str(&format!(",to_tsvector('simple', ${})", base + 12));
                }
                sql.push(')');
            }
            sql.push_str(" ON CONFLICT (tenant_id, id) DO NOTHING RETURNING seq, id");
            // Not cached: every chunk size is a distinct statement, and a compiled 400-row
            // insert is large; caching 100 of them per connection cost hundreds of MiB.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for event in chunk {
                let event = &self.dialect.storable(event);
                query = query
                    .bind(event.tenant_id.0)
                    .bind(event.id.clone())
                    .bind(to_micros(event.time))
                    .bind(to_micros(event.received))
                    .bind(event.source.clone())
                    .bind(event.logsource.product.clone())
                    .bind(event.logsource.service.clone())
                    .bind(event.logsource.category.clone())
                    .bind(event.fields_json.clone())
                    .bind(event.normalized_json.clone())
                    .bind(event.raw.clone());
                if self.dialect == Dialect::Postgres {
                    query = query.bind(event.search_text.clone());
                }
            }
            let rows = query
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
            inserted += rows.len() as u64;
            let mut new_ids: std::collections::HashSet<String> = rows
                .iter()
                .map(|row| row.try_get::<String, _>("id"))
                .collect::<std::result::Result<_, _>>()?;
            stats.count(chunk, &mut new_ids);
            if self.dialect == Dialect::Sqlite && !rows.is_empty() {
                // The ids of the rows really inserted (replays insert nothing) get indexed.
                let by_id: HashMap<&str, &EventRow> =
                    chunk.iter().map(|e| (e.id.as_str(), e)).collect();
                let mut fts_sql = String::from("INSERT INTO events_fts (rowid, text) VALUES ");
                let mut fts_params = Vec::with_capacity(rows.len());
                for row in &rows {
                    let seq: i64 = row.try_get("seq")?;
                    let id: String = row.try_get("id")?;
                    if let Some(event) = by_id.get(id.as_str()) {
                        fts_params.push((seq, event.search_text.clone()));
                    }
                }
                // Anonymous placeholders (see `Dialect::param`); this is SQLite only.
                fts_sql.push_str(&vec!["(?,?)"; fts_params.len()].join(","));
                let mut fts = sqlx::query(sqlx::AssertSqlSafe(fts_sql)).persistent(false);
                for (seq, text) in fts_params {
                    fts = fts.bind(seq).bind(text);
                }
                fts.execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
            }
        }
        stats.write(&mut tx).await?;
        sqlx::query(
            "INSERT INTO consumer_positions (consumer, position) VALUES ($1, $2) \
             ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
        )
        .bind(consumer)
        .bind(i64::try_from(position).map_err(|_| StoreError::Invalid {
            what: "log position".into(),
            reason: format!("{position} does not fit a signed 64-bit integer"),
        })?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted)
    }

    async fn search_events(&self, tenant: TenantId, query: &EventQuery) -> Result<EventPage> {
        let limit = query.limit.clamp(1, 1000);
        let mut filter = Filter::tenant("e.tenant_id", tenant);
        if let Some(from) = query.from {
            filter.cmp("e.time_us", ">=", to_micros(from));
        }
        if let Some(to) = query.to {
            filter.cmp("e.time_us", "<", to_micros(to));
        }
        filter.eq_opt("e.source", query.source.as_deref());
        for (field, value) in &query.fields {
            if field.is_empty() || field.len() > 256 {
                return Err(StoreError::Invalid {
                    what: "field filter".into(),
                    reason: "a field name must have 1 to 256 characters".into(),
                });
            }
            let segments: Vec<&str> = field.split('.').collect();
            let v = filter.bind(value.clone());
            match self.dialect {
                Dialect::Sqlite => {
                    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\\\""));
                    let nested = format!(
                        "${}",
                        segments
                            .iter()
                            .map(|s| format!(".{}", quote(s)))
                            .collect::<String>()
                    );
                    let flat = format!("$.{}", quote(field));
                    let n = filter.bind(nested);
                    let f = filter.bind(flat);
                    filter.and(format!(
                        "(CAST(json_extract(e.fields, {n}) AS TEXT) = {v} OR CAST(json_extract(e.fields, {f}) AS TEXT) = {v} OR CAST(json_extract(e.normalized, {f}) AS TEXT) = {v})"
                    ));
                }
                Dialect::Postgres => {
                    let path = format!(
                        "{{{}}}",
                        segments
                            .iter()
                            .map(|s| format!(
                                "\"{}\"",
                                s.replace('\\', "\\\\").replace('"', "\\\"")
                            ))
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                    let n = filter.bind(path);
                    let k = filter.bind(field.clone());
                    filter.and(format!(
                        "(e.fields #>> {n}::text[] = {v} OR e.fields ->> {k} = {v} OR e.normalized ->> {k} = {v})"
                    ));
                }
            }
        }
        if let Some(text) = query.text.as_deref().filter(|t| !t.trim().is_empty()) {
            match self.dialect {
                Dialect::Sqlite => {
                    if let Some(fts) = fts5_query(text) {
                        let n = filter.bind(fts);
                        filter.and(format!(
                            "e.seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH {n})"
                        ));
                    }
                }
                Dialect::Postgres => {
                    let n = filter.bind(text.to_string());
                    filter.and(format!("e.tsv @@ plainto_tsquery('simple', {n})"));
                }
            }
        }
        // Each order has its own cursor tag: a cursor of one cannot page the other.
        let (tag, cmp, order) = if query.oldest_first {
            (EVENT_CURSOR_ASC, ">", "ASC")
        } else {
            (EVENT_CURSOR, "<", "DESC")
        };
        if let Some(cursor) = &query.cursor {
            let [time_us, seq] = decode_cursor(tag, cursor)?;
            let t = filter.bind(time_us);
            let s = filter.bind(seq);
            filter.and(format!(
                "(e.time_us {cmp} {t} OR (e.time_us = {t} AND e.seq {cmp} {s}))"
            ));
        }
        let l = filter.bind(limit as i64 + 1);
        let sql = format!(
            "SELECT e.seq, e.tenant_id, e.id, e.time_us, e.received_us, e.source, e.product, e.service, e.category, {fields} AS fields, {normalized} AS normalized, e.raw \
             FROM events e WHERE {where_clause} ORDER BY e.time_us {order}, e.seq {order} LIMIT {l}",
            fields = self.dialect.json_text("e.fields"),
            normalized = self.dialect.json_text("e.normalized"),
            where_clause = filter.where_sql(),
        );
        let rows = filter.query(sql).fetch_all(&self.pool).await?;
        Page::from_rows(&rows, limit, event_from_row, |row| {
            Ok(encode_cursor(
                tag,
                &[row.try_get("time_us")?, row.try_get("seq")?],
            ))
        })
    }

    async fn event(&self, tenant: TenantId, id: &str) -> Result<Option<Event>> {
        let sql = format!(
            "SELECT e.seq, e.tenant_id, e.id, e.time_us, e.received_us, e.source, e.product, e.service, e.category, {fields} AS fields, {normalized} AS normalized, e.raw \
             FROM events e WHERE e.tenant_id = $1 AND e.id = $2",
            fields = self.dialect.json_text("e.fields"),
            normalized = self.dialect.json_text("e.normalized"),
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.0)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn count_events(&self, tenant: TenantId) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE tenant_id = $1")
                .bind(tenant.0)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn delete_events_received_before(
        &self,
        tenant: TenantId,
        cutoff: Timestamp,
    ) -> Result<u64> {
        let cutoff = to_micros(cutoff);
        let mut deleted = 0;
        // In slices, so a large purge never holds the write lock for long.
        loop {
            let mut tx = self.begin_write().await?;
            let seqs: Vec<i64> = sqlx::query_scalar(
                "SELECT seq FROM events WHERE tenant_id = $1 AND received_us < $2 LIMIT 5000",
            )
            .bind(tenant.0)
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?;
            if seqs.is_empty() {
                return Ok(deleted);
            }
            let (Some(&low), Some(&high)) = (seqs.iter().min(), seqs.iter().max()) else {
                return Ok(deleted);
            };
            if self.dialect == Dialect::Sqlite {
                sqlx::query("DELETE FROM events_fts WHERE rowid IN (SELECT seq FROM events WHERE tenant_id = $1 AND received_us < $2 AND seq BETWEEN $3 AND $4)")
                    .bind(tenant.0)
                    .bind(cutoff)
                    .bind(low)
                    .bind(high)
                    .execute(&mut *tx)
                    .await?;
            }
            let result = sqlx::query("DELETE FROM events WHERE tenant_id = $1 AND received_us < $2 AND seq BETWEEN $3 AND $4")
                .bind(tenant.0)
                .bind(cutoff)
                .bind(low)
                .bind(high)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            deleted += result.rows_affected();
        }
    }

    async fn consumer_position(&self, consumer: &str) -> Result<u64> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM consumer_positions WHERE consumer = $1")
                .bind(consumer)
                .fetch_optional(&self.pool)
                .await?;
        Ok(position.map_or(0, |p| p.max(0) as u64))
    }
}
