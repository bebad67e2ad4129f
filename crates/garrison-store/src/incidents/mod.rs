//! Incident management data: versioned workflows per tenant, incidents (optimistically
//! versioned) with their alerts, observables, append-only timeline, tasks and templates,
//! attachment metadata, suppressions with hit counts, grouping rules, assets and SLA policy.
//!
//! The rules (who may move an incident where, when it may close) live in `garrison-cases`;
//! this module stores what [`garrison_cases::apply`] returns, atomically with its timeline.
//!
//! **Invariant:** every method takes a [`TenantId`] and filters on it in SQL.
//! **Invariant:** the timeline is append-only: nothing here updates or deletes an entry.

use std::net::IpAddr;

use async_trait::async_trait;
use garrison_cases::{
    AlertRecord, Asset, Classification, GroupKey, GroupingRule, Incident, IncidentProfile,
    IncidentRecord, Observable, Severity, SlaPolicy, Suppression, TimelineEvent, Workflow,
};
use garrison_model::{TenantId, Timestamp};
use serde::Serialize;

use crate::Result;

/// SQL assembled from constants and `$N` placeholders only; values are always bound.
macro_rules! sql {
    ($($arg:tt)*) => {
        sqlx::AssertSqlSafe(format!($($arg)*))
    };
}

mod attachments;
mod common;
mod crud;
mod merge;
mod metrics;
mod repo;
mod rules;
mod settings;
mod tasks;
mod timeline;

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

/// A page of incidents in the order asked for.
pub type IncidentPage = crate::page::Page<StoredIncident>;

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
