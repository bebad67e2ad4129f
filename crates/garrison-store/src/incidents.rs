//! Incident management data: versioned workflows per tenant, incidents (optimistically
//! versioned) with their alerts, observables, append-only timeline, tasks and templates,
//! attachment metadata, suppressions with hit counts, grouping rules, assets and SLA policy.
//!
//! The rules (who may move an incident where, when it may close) live in `garrison-cases`;
//! this module stores what [`garrison_cases::apply`] returns, atomically with its timeline.
//!
//! **Invariant:** every method takes a [`TenantId`] and filters on it in SQL.
//! **Invariant:** the timeline is append-only: nothing here updates or deletes an entry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use async_trait::async_trait;
use garrison_cases::{
    AlertRecord, Asset, Classification, Criticality, GroupKey, GroupingRule, Incident,
    IncidentProfile, IncidentRecord, Observable, ObservableKind, Pap, Severity, SlaPolicy,
    Suppression, TimelineEvent, TimelineKind, Tlp, Workflow,
};
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::sql::Dialect;
use crate::{Result, SqlStore, StoreError};

/// SQL assembled from constants and `$N` placeholders only; values are always bound.
macro_rules! sql {
    ($($arg:tt)*) => {
        sqlx::AssertSqlSafe(format!($($arg)*))
    };
}

/// Most ids bound in one `IN (...)` list.
const IDS_PER_STATEMENT: usize = 500;
/// The built-in workflow's version; versions a tenant saves start above it.
pub const DEFAULT_WORKFLOW_VERSION: u32 = 1;

/// A tenant's workflow version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredWorkflow {
    pub version: u32,
    pub workflow: Workflow,
    pub created: Timestamp,
    pub created_by: String,
}

/// An incident as stored: its revision guards concurrent changes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredIncident {
    pub tenant_id: TenantId,
    #[serde(flatten)]
    pub incident: Incident,
    /// Incremented by every write; [`IncidentRepo::update_incident`] needs the one it read.
    pub rev: i64,
    /// Set when the incident was merged into another; such an incident no longer changes.
    pub merged_into: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncidentOrder {
    /// Newest first.
    #[default]
    Newest,
    /// The queue: highest score first, then newest.
    Score,
}

/// A listing of incidents. All conditions are ANDed.
#[derive(Clone, Debug, Default)]
pub struct IncidentQuery {
    pub state: Option<String>,
    pub severity: Option<Severity>,
    pub assignee: Option<String>,
    pub classification: Option<Classification>,
    pub tag: Option<String>,
    /// `Some(true)`: not closed; `Some(false)`: closed.
    pub open: Option<bool>,
    /// Merged incidents are left out unless asked for.
    pub include_merged: bool,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created before.
    pub to: Option<Timestamp>,
    pub order: IncidentOrder,
    pub limit: usize,
    /// Opaque cursor from a previous page's `next_cursor` (of the same order).
    pub cursor: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct IncidentPage {
    pub incidents: Vec<StoredIncident>,
    pub next_cursor: Option<String>,
}

/// An alert to attach to an incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkedAlert {
    pub alert_id: String,
    pub rule_id: String,
}

/// One timeline entry with its position (for paging).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    pub seq: i64,
    pub incident_id: String,
    #[serde(flatten)]
    pub event: TimelineEvent,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    pub id: i64,
    pub incident_id: String,
    pub title: String,
    pub done: bool,
    pub done_by: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub done_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created: Timestamp,
}

/// An attachment's metadata; the bytes are kept elsewhere, by hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    pub incident_id: String,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub name: String,
    pub size: i64,
    pub content_type: Option<String>,
    pub uploaded_by: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created: Timestamp,
}

/// A suppression and how many alerts it has held back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredSuppression {
    #[serde(flatten)]
    pub suppression: Suppression,
    pub hits: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_hit: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredGroupingRule {
    #[serde(flatten)]
    pub rule: GroupingRule,
    pub enabled: bool,
    pub updated: Timestamp,
}

/// Splitting an incident: the alerts that move, and the incident they move to.
#[derive(Clone, Debug)]
pub struct Split {
    pub new_incident: Incident,
    /// The new incident's first timeline entries (its `created` entry).
    pub events: Vec<TimelineEvent>,
    pub alert_ids: Vec<String>,
    pub observables: Vec<Observable>,
}

#[async_trait]
pub trait IncidentRepo: Send + Sync {
    /// Saves a validated workflow as the tenant's next version (the first saved is 2; 1 is the
    /// built-in default). Saving the same definition as the latest returns it unchanged.
    async fn save_workflow(
        &self,
        tenant: TenantId,
        workflow: &Workflow,
        author: &str,
        now: Timestamp,
    ) -> Result<StoredWorkflow>;
    /// A version, or the latest when `None`; version 1, and the latest of a tenant that never
    /// saved one, is `Workflow::default_soc()`.
    async fn workflow(&self, tenant: TenantId, version: Option<u32>) -> Result<StoredWorkflow>;

    /// Creates an incident with its first timeline entries, alerts and observables.
    async fn create_incident(
        &self,
        tenant: TenantId,
        incident: &Incident,
        events: &[TimelineEvent],
        alerts: &[LinkedAlert],
        observables: &[Observable],
    ) -> Result<StoredIncident>;
    /// [`IncidentRepo::create_incident`] with the audit entry of whoever opened it, in the
    /// same transaction: the incident exists if and only if its opening is audited.
    async fn create_incident_audited(
        &self,
        tenant: TenantId,
        incident: &Incident,
        events: &[TimelineEvent],
        alerts: &[LinkedAlert],
        observables: &[Observable],
        audit: &crate::NewAuditEntry,
    ) -> Result<StoredIncident>;
    async fn incident(&self, tenant: TenantId, incident_id: &str)
        -> Result<Option<StoredIncident>>;
    /// Writes what `apply` returned, if the incident is still at `expected_rev`; the timeline
    /// entries are appended in the same transaction. A stale revision is a `Conflict`.
    async fn update_incident(
        &self,
        tenant: TenantId,
        incident: &Incident,
        expected_rev: i64,
        events: &[TimelineEvent],
    ) -> Result<StoredIncident>;
    async fn list_incidents(&self, tenant: TenantId, query: &IncidentQuery)
        -> Result<IncidentPage>;
    /// Attaches alerts to an incident (moving any that belonged to another) and sets the
    /// alerts' `incident_id`; returns how many links were written.
    async fn link_alerts(
        &self,
        tenant: TenantId,
        incident_id: &str,
        alerts: &[LinkedAlert],
        now: Timestamp,
    ) -> Result<u64>;
    async fn incident_alerts(
        &self,
        tenant: TenantId,
        incident_id: &str,
    ) -> Result<Vec<LinkedAlert>>;
    /// Moves the alerts and observables of `sources` into `into`, marks the sources merged,
    /// raises `into`'s score to the highest, and records it on every timeline involved.
    async fn merge_incidents(
        &self,
        tenant: TenantId,
        into: &str,
        sources: &[String],
        actor: &str,
        now: Timestamp,
    ) -> Result<StoredIncident>;
    /// Moves some alerts of `from` into a new incident; `from` must keep at least one.
    async fn split_incident(
        &self,
        tenant: TenantId,
        from: &str,
        split: &Split,
        actor: &str,
        now: Timestamp,
    ) -> Result<StoredIncident>;

    /// Appends entries (comments, playbook actions, SLA breaches) to a timeline.
    async fn append_timeline(
        &self,
        tenant: TenantId,
        incident_id: &str,
        events: &[TimelineEvent],
    ) -> Result<()>;
    /// Entries after `after_seq` (0: from the start), oldest first, at most `limit`.
    async fn timeline(
        &self,
        tenant: TenantId,
        incident_id: &str,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<TimelineEntry>>;

    /// Adds observables; returns how many were new to the incident.
    async fn add_observables(
        &self,
        tenant: TenantId,
        incident_id: &str,
        observables: &[Observable],
    ) -> Result<u64>;
    async fn observables(&self, tenant: TenantId, incident_id: &str) -> Result<Vec<Observable>>;
    /// The incident's profile and those of up to `limit` other (unmerged) incidents that share
    /// an observable or a rule with it, newest first: the input of `similar_incidents`.
    async fn similarity_profiles(
        &self,
        tenant: TenantId,
        incident_id: &str,
        limit: usize,
    ) -> Result<(IncidentProfile, Vec<IncidentProfile>)>;

    async fn set_task_template(
        &self,
        tenant: TenantId,
        incident_type: &str,
        tasks: &[String],
        now: Timestamp,
    ) -> Result<()>;
    async fn task_template(
        &self,
        tenant: TenantId,
        incident_type: &str,
    ) -> Result<Option<Vec<String>>>;
    async fn add_tasks(
        &self,
        tenant: TenantId,
        incident_id: &str,
        titles: &[String],
        now: Timestamp,
    ) -> Result<Vec<Task>>;
    /// Adds the checklist of the incident's type (nothing when it has no type or template).
    async fn apply_task_template(
        &self,
        tenant: TenantId,
        incident_id: &str,
        now: Timestamp,
    ) -> Result<Vec<Task>>;
    async fn set_task_done(
        &self,
        tenant: TenantId,
        incident_id: &str,
        task_id: i64,
        done: bool,
        by: &str,
        now: Timestamp,
    ) -> Result<Task>;
    async fn tasks(&self, tenant: TenantId, incident_id: &str) -> Result<Vec<Task>>;

    /// Records an attachment's metadata, and notes it on the timeline; the same content
    /// twice is one attachment (the first one is returned, and `false`).
    async fn add_attachment(
        &self,
        tenant: TenantId,
        attachment: &Attachment,
    ) -> Result<(Attachment, bool)>;
    async fn attachments(&self, tenant: TenantId, incident_id: &str) -> Result<Vec<Attachment>>;
    async fn attachment(
        &self,
        tenant: TenantId,
        incident_id: &str,
        sha256: &str,
    ) -> Result<Option<Attachment>>;
    /// How many incidents of the tenant hold content with this hash.
    async fn attachment_holders(&self, tenant: TenantId, sha256: &str) -> Result<i64>;
    /// Forgets an attachment and notes it on the timeline. Returns whether another incident
    /// of the tenant still holds the same content (its file must then stay).
    async fn remove_attachment(
        &self,
        tenant: TenantId,
        incident_id: &str,
        sha256: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool>;

    /// Stores a validated suppression (its id must be new).
    async fn create_suppression(
        &self,
        tenant: TenantId,
        suppression: &Suppression,
    ) -> Result<StoredSuppression>;
    /// Suppressions newest first; with `active_at`, only those not expired then.
    async fn list_suppressions(
        &self,
        tenant: TenantId,
        active_at: Option<Timestamp>,
    ) -> Result<Vec<StoredSuppression>>;
    /// Ends a suppression now (it is kept, with its counts, for the record).
    async fn expire_suppression(
        &self,
        tenant: TenantId,
        suppression_id: &str,
        now: Timestamp,
    ) -> Result<StoredSuppression>;
    /// Marks alerts suppressed (status `suppressed`) and counts those not already so against
    /// the suppression; returns that count.
    async fn suppress_alerts(
        &self,
        tenant: TenantId,
        suppression_id: &str,
        alert_ids: &[String],
        now: Timestamp,
    ) -> Result<u64>;

    async fn upsert_grouping_rule(
        &self,
        tenant: TenantId,
        rule: &GroupingRule,
        enabled: bool,
        now: Timestamp,
    ) -> Result<StoredGroupingRule>;
    async fn grouping_rules(&self, tenant: TenantId) -> Result<Vec<StoredGroupingRule>>;
    async fn delete_grouping_rule(&self, tenant: TenantId, name: &str) -> Result<()>;
    /// The incident of a group: `incident_id` if this is the first claim, else the incident
    /// that claimed it first.
    async fn claim_group(
        &self,
        tenant: TenantId,
        key: &GroupKey,
        incident_id: &str,
    ) -> Result<String>;

    /// Creates or replaces assets by name; returns how many were written.
    async fn upsert_assets(
        &self,
        tenant: TenantId,
        assets: &[Asset],
        now: Timestamp,
    ) -> Result<u64>;
    async fn assets(&self, tenant: TenantId) -> Result<Vec<Asset>>;
    /// The asset with this host name, else the one with this IP.
    async fn asset_for(
        &self,
        tenant: TenantId,
        host: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Option<Asset>>;
    async fn delete_asset(&self, tenant: TenantId, name: &str) -> Result<()>;

    async fn set_sla_policy(
        &self,
        tenant: TenantId,
        policy: &SlaPolicy,
        now: Timestamp,
    ) -> Result<()>;
    /// The tenant's policy, or the defaults.
    async fn sla_policy(&self, tenant: TenantId) -> Result<SlaPolicy>;

    /// What `SocMetrics::compute` needs for `[from, to)`: alerts first seen then, and the
    /// (unmerged) incidents created then with their rules.
    async fn metrics_records(
        &self,
        tenant: TenantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(Vec<AlertRecord>, Vec<IncidentRecord>)>;
}

const INCIDENT_COLUMNS: &str = "seq, tenant_id, incident_id, title, summary, incident_type, state, severity, assignee, team, tlp, pap, tags, classification, fields, approvals, score, workflow_version, merged_into, rev, created_us, acknowledged_us, analysed_us, closed_us, updated_us";
const TASK_COLUMNS: &str = "seq, incident_id, title, done, done_by, done_us, created_us";
const ATTACHMENT_COLUMNS: &str =
    "incident_id, sha256, name, size, content_type, uploaded_by, created_us";
const SUPPRESSION_COLUMNS: &str =
    "suppression_id, rule_id, fields, reason, author, created_us, expires_us, hits, last_hit_us";

fn corrupt(column: &'static str) -> impl Fn(String) -> StoreError {
    move |reason| StoreError::Corrupt { column, reason }
}

fn json_text<T: Serialize>(what: &str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid {
        what: what.into(),
        reason: e.to_string(),
    })
}

fn from_json<T: serde::de::DeserializeOwned>(column: &'static str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(column)(e.to_string()))
}

fn parse_col<T: std::str::FromStr>(column: &'static str, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| corrupt(column)(e.to_string()))
}

fn version_u32(column: &'static str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(column)(format!("{v} is out of range")))
}

fn incident_from_row(row: &AnyRow) -> Result<StoredIncident> {
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

fn suppression_from_row(row: &AnyRow) -> Result<StoredSuppression> {
    Ok(StoredSuppression {
        suppression: Suppression {
            id: row.try_get("suppression_id")?,
            rule_id: row.try_get("rule_id")?,
            fields: from_json("suppressions.fields", &row.try_get::<String, _>("fields")?)?,
            reason: row.try_get("reason")?,
            author: row.try_get("author")?,
            created: from_micros(row.try_get("created_us")?),
            expires: row
                .try_get::<Option<i64>, _>("expires_us")?
                .map(from_micros),
        },
        hits: row.try_get("hits")?,
        last_hit: row
            .try_get::<Option<i64>, _>("last_hit_us")?
            .map(from_micros),
    })
}

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

fn invalid(what: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

fn not_found(what: String) -> StoreError {
    StoreError::NotFound { what }
}

fn check_incident(incident: &Incident) -> Result<()> {
    if incident.id.trim().is_empty() || incident.id.len() > 128 {
        return Err(invalid("incident id", "must have 1 to 128 characters"));
    }
    if incident.title.trim().is_empty() || incident.title.len() > 1024 {
        return Err(invalid("incident title", "must have 1 to 1024 characters"));
    }
    Ok(())
}

/// `$a, $b, ...` for `count` parameters starting at `first`.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

async fn append_events(
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

async fn load_incident(
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
async fn live_incident(
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

async fn insert_incident(tx: &mut Tx<'_>, tenant: TenantId, incident: &Incident) -> Result<()> {
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

async fn write_links(
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

async fn write_observables(
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

fn observable_from_row(row: &AnyRow) -> Result<Observable> {
    let kind: String = row.try_get("kind")?;
    Ok(Observable {
        kind: ObservableKind::parse(&kind)
            .ok_or_else(|| corrupt("incident_observables.kind")(kind.clone()))?,
        value: row.try_get("value")?,
        field: row.try_get("field")?,
    })
}

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
    async fn create_in(
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
}

#[async_trait]
impl IncidentRepo for SqlStore {
    async fn save_workflow(
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

    async fn workflow(&self, tenant: TenantId, version: Option<u32>) -> Result<StoredWorkflow> {
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

    async fn create_incident(
        &self,
        tenant: TenantId,
        incident: &Incident,
        events: &[TimelineEvent],
        alerts: &[LinkedAlert],
        observables: &[Observable],
    ) -> Result<StoredIncident> {
        self.create_in(tenant, incident, events, alerts, observables, None)
            .await
    }

    async fn create_incident_audited(
        &self,
        tenant: TenantId,
        incident: &Incident,
        events: &[TimelineEvent],
        alerts: &[LinkedAlert],
        observables: &[Observable],
        audit: &crate::NewAuditEntry,
    ) -> Result<StoredIncident> {
        self.create_in(tenant, incident, events, alerts, observables, Some(audit))
            .await
    }

    async fn incident(
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

    async fn update_incident(
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

    async fn list_incidents(
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

    async fn link_alerts(
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

    async fn incident_alerts(
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

    async fn merge_incidents(
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

    async fn split_incident(
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

    async fn append_timeline(
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

    async fn timeline(
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

    async fn add_observables(
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

    async fn observables(&self, tenant: TenantId, incident_id: &str) -> Result<Vec<Observable>> {
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

    async fn similarity_profiles(
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

    async fn set_task_template(
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

    async fn task_template(
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

    async fn add_tasks(
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

    async fn apply_task_template(
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

    async fn set_task_done(
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

    async fn tasks(&self, tenant: TenantId, incident_id: &str) -> Result<Vec<Task>> {
        let rows = sqlx::query(sql!(
            "SELECT {TASK_COLUMNS} FROM incident_tasks WHERE tenant_id = $1 AND incident_id = $2 ORDER BY seq"
        ))
        .bind(tenant.0)
        .bind(incident_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task_from_row).collect()
    }

    async fn add_attachment(
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

    async fn attachments(&self, tenant: TenantId, incident_id: &str) -> Result<Vec<Attachment>> {
        let rows = sqlx::query(sql!(
            "SELECT {ATTACHMENT_COLUMNS} FROM incident_attachments WHERE tenant_id = $1 AND incident_id = $2 ORDER BY created_us, sha256"
        ))
        .bind(tenant.0)
        .bind(incident_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attachment_from_row).collect()
    }

    async fn attachment(
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

    async fn attachment_holders(&self, tenant: TenantId, sha256: &str) -> Result<i64> {
        let sha = attachment_hash(sha256)?;
        let mut tx = self.pool.begin().await?;
        let count = holders(&mut tx, tenant, &sha).await?;
        tx.commit().await?;
        Ok(count)
    }

    async fn remove_attachment(
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

    async fn create_suppression(
        &self,
        tenant: TenantId,
        suppression: &Suppression,
    ) -> Result<StoredSuppression> {
        suppression
            .validate()
            .map_err(|e| invalid("suppression", e.to_string()))?;
        if suppression.id.trim().is_empty() || suppression.id.len() > 128 {
            return Err(invalid("suppression id", "must have 1 to 128 characters"));
        }
        let row = sqlx::query(sql!(
            "INSERT INTO suppressions (tenant_id, suppression_id, rule_id, fields, reason, author, created_us, expires_us, hits) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0) RETURNING {SUPPRESSION_COLUMNS}"
        ))
        .bind(tenant.0)
        .bind(&suppression.id)
        .bind(suppression.rule_id.clone())
        .bind(json_text("fields", &suppression.fields)?)
        .bind(&suppression.reason)
        .bind(&suppression.author)
        .bind(to_micros(suppression.created))
        .bind(suppression.expires.map(to_micros))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
                what: format!("suppression {:?}", suppression.id),
            },
            _ => StoreError::from_write(e),
        })?;
        suppression_from_row(&row)
    }

    async fn list_suppressions(
        &self,
        tenant: TenantId,
        active_at: Option<Timestamp>,
    ) -> Result<Vec<StoredSuppression>> {
        let rows = match active_at {
            Some(now) => sqlx::query(sql!(
                "SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE tenant_id = $1 AND (expires_us IS NULL OR expires_us > $2) ORDER BY created_us DESC, suppression_id"
            ))
            .bind(tenant.0)
            .bind(to_micros(now))
            .fetch_all(&self.pool)
            .await?,
            None => sqlx::query(sql!(
                "SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE tenant_id = $1 ORDER BY created_us DESC, suppression_id"
            ))
            .bind(tenant.0)
            .fetch_all(&self.pool)
            .await?,
        };
        rows.iter().map(suppression_from_row).collect()
    }

    async fn expire_suppression(
        &self,
        tenant: TenantId,
        suppression_id: &str,
        now: Timestamp,
    ) -> Result<StoredSuppression> {
        let now = to_micros(now);
        let row = sqlx::query(sql!(
            "UPDATE suppressions SET expires_us = CASE WHEN expires_us IS NOT NULL AND expires_us < $1 THEN expires_us \
               WHEN created_us >= $1 THEN created_us + 1 ELSE $1 END \
             WHERE tenant_id = $2 AND suppression_id = $3 RETURNING {SUPPRESSION_COLUMNS}"
        ))
        .bind(now)
        .bind(tenant.0)
        .bind(suppression_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => suppression_from_row(&row),
            None => Err(not_found(format!("suppression {suppression_id:?}"))),
        }
    }

    async fn suppress_alerts(
        &self,
        tenant: TenantId,
        suppression_id: &str,
        alert_ids: &[String],
        now: Timestamp,
    ) -> Result<u64> {
        let now = to_micros(now);
        let mut tx = self.begin_write().await?;
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT suppression_id FROM suppressions WHERE tenant_id = $1 AND suppression_id = $2",
        )
        .bind(tenant.0)
        .bind(suppression_id)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Err(not_found(format!("suppression {suppression_id:?}")));
        }
        let mut marked = 0;
        for chunk in alert_ids.chunks(IDS_PER_STATEMENT) {
            let mut q = sqlx::query(sql!(
                "UPDATE alerts SET status = 'suppressed', updated_us = $1 WHERE tenant_id = $2 AND status <> 'suppressed' AND alert_id IN ({})",
                placeholders(3, chunk.len())
            ))
            .bind(now)
            .bind(tenant.0);
            for id in chunk {
                q = q.bind(id);
            }
            marked += q.execute(&mut *tx).await?.rows_affected();
        }
        if marked > 0 {
            sqlx::query(
                "UPDATE suppressions SET hits = hits + $1, last_hit_us = $2 WHERE tenant_id = $3 AND suppression_id = $4",
            )
            .bind(i64::try_from(marked).unwrap_or(i64::MAX))
            .bind(now)
            .bind(tenant.0)
            .bind(suppression_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(marked)
    }

    async fn upsert_grouping_rule(
        &self,
        tenant: TenantId,
        rule: &GroupingRule,
        enabled: bool,
        now: Timestamp,
    ) -> Result<StoredGroupingRule> {
        if let Err(errors) = rule.validate() {
            let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Err(invalid("grouping rule", reasons.join("; ")));
        }
        sqlx::query(
            "INSERT INTO grouping_rules (tenant_id, name, definition, enabled, updated_us) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET definition = excluded.definition, enabled = excluded.enabled, updated_us = excluded.updated_us",
        )
        .bind(tenant.0)
        .bind(&rule.name)
        .bind(json_text("grouping rule", rule)?)
        .bind(i64::from(enabled))
        .bind(to_micros(now))
        .execute(&self.pool)
        .await?;
        Ok(StoredGroupingRule {
            rule: rule.clone(),
            enabled,
            updated: now,
        })
    }

    async fn grouping_rules(&self, tenant: TenantId) -> Result<Vec<StoredGroupingRule>> {
        let rows = sqlx::query(
            "SELECT definition, enabled, updated_us FROM grouping_rules WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredGroupingRule {
                    rule: from_json(
                        "grouping_rules.definition",
                        &row.try_get::<String, _>("definition")?,
                    )?,
                    enabled: row.try_get::<i64, _>("enabled")? != 0,
                    updated: from_micros(row.try_get("updated_us")?),
                })
            })
            .collect()
    }

    async fn delete_grouping_rule(&self, tenant: TenantId, name: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM grouping_rules WHERE tenant_id = $1 AND name = $2")
            .bind(tenant.0)
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(format!("grouping rule {name:?}")));
        }
        Ok(())
    }

    async fn claim_group(
        &self,
        tenant: TenantId,
        key: &GroupKey,
        incident_id: &str,
    ) -> Result<String> {
        sqlx::query(
            "INSERT INTO incident_groups (tenant_id, rule, group_key, window_start_us, incident_id) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, rule, group_key, window_start_us) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(&key.rule)
        .bind(&key.key)
        .bind(to_micros(key.window_start))
        .bind(incident_id)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_write)?;
        Ok(sqlx::query_scalar(
            "SELECT incident_id FROM incident_groups WHERE tenant_id = $1 AND rule = $2 AND group_key = $3 AND window_start_us = $4",
        )
        .bind(tenant.0)
        .bind(&key.rule)
        .bind(&key.key)
        .bind(to_micros(key.window_start))
        .fetch_one(&self.pool)
        .await?)
    }

    async fn upsert_assets(
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

    async fn assets(&self, tenant: TenantId) -> Result<Vec<Asset>> {
        let rows = sqlx::query(
            "SELECT name, ip, criticality, owner FROM assets WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(asset_from_row).collect()
    }

    async fn asset_for(
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

    async fn delete_asset(&self, tenant: TenantId, name: &str) -> Result<()> {
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

    async fn set_sla_policy(
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

    async fn sla_policy(&self, tenant: TenantId) -> Result<SlaPolicy> {
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

    async fn metrics_records(
        &self,
        tenant: TenantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(Vec<AlertRecord>, Vec<IncidentRecord>)> {
        let (from, to) = (to_micros(from), to_micros(to));
        let alerts = sqlx::query(
            "SELECT rule_id, first_seen_us, incident_id, status FROM alerts WHERE tenant_id = $1 AND first_seen_us >= $2 AND first_seen_us < $3",
        )
        .bind(tenant.0)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(AlertRecord {
                rule_id: row.try_get("rule_id")?,
                time: from_micros(row.try_get("first_seen_us")?),
                incident_id: row.try_get("incident_id")?,
                suppressed: row.try_get::<String, _>("status")? == "suppressed",
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let rows = sqlx::query(sql!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant_id = $1 AND created_us >= $2 AND created_us < $3 AND merged_into IS NULL"
        ))
        .bind(tenant.0)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let mut rules: HashMap<String, Vec<String>> = HashMap::new();
        for row in sqlx::query(
            "SELECT DISTINCT a.incident_id, a.rule_id FROM incident_alerts a JOIN incidents i ON i.tenant_id = a.tenant_id AND i.incident_id = a.incident_id \
             WHERE a.tenant_id = $1 AND i.created_us >= $2 AND i.created_us < $3",
        )
        .bind(tenant.0)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?
        {
            rules
                .entry(row.try_get("incident_id")?)
                .or_default()
                .push(row.try_get("rule_id")?);
        }
        let incidents = rows
            .iter()
            .map(|row| {
                let stored = incident_from_row(row)?;
                let mut rule_ids = rules.remove(&stored.incident.id).unwrap_or_default();
                rule_ids.sort();
                Ok(IncidentRecord {
                    incident: stored.incident,
                    rule_ids,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((alerts, incidents))
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
