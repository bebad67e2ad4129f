//! `IncidentRepo` for `SqlStore`: each method is implemented in its concern's module.

use std::net::IpAddr;

use async_trait::async_trait;
use garrison_cases::{
    AlertRecord, Asset, GroupKey, GroupingRule, Incident, IncidentProfile, IncidentRecord,
    Observable, SlaPolicy, Suppression, TimelineEvent, Workflow,
};
use garrison_model::{TenantId, Timestamp};

use crate::{Result, SqlStore};

use super::{
    Attachment, IncidentPage, IncidentQuery, IncidentRepo, LinkedAlert, Split, StoredGroupingRule,
    StoredIncident, StoredSuppression, StoredWorkflow, Task, TimelineEntry,
};

#[async_trait]
impl IncidentRepo for SqlStore {
    async fn save_workflow(
        &self,
        tenant: TenantId,
        workflow: &Workflow,
        author: &str,
        now: Timestamp,
    ) -> Result<StoredWorkflow> {
        self.save_workflow_impl(tenant, workflow, author, now).await
    }

    async fn workflow(&self, tenant: TenantId, version: Option<u32>) -> Result<StoredWorkflow> {
        self.workflow_impl(tenant, version).await
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
        self.incident_impl(tenant, incident_id).await
    }

    async fn update_incident(
        &self,
        tenant: TenantId,
        incident: &Incident,
        expected_rev: i64,
        events: &[TimelineEvent],
    ) -> Result<StoredIncident> {
        self.update_incident_impl(tenant, incident, expected_rev, events)
            .await
    }

    async fn list_incidents(
        &self,
        tenant: TenantId,
        query: &IncidentQuery,
    ) -> Result<IncidentPage> {
        self.list_incidents_impl(tenant, query).await
    }

    async fn link_alerts(
        &self,
        tenant: TenantId,
        incident_id: &str,
        alerts: &[LinkedAlert],
        now: Timestamp,
    ) -> Result<u64> {
        self.link_alerts_impl(tenant, incident_id, alerts, now)
            .await
    }

    async fn incident_alerts(
        &self,
        tenant: TenantId,
        incident_id: &str,
    ) -> Result<Vec<LinkedAlert>> {
        self.incident_alerts_impl(tenant, incident_id).await
    }

    async fn merge_incidents(
        &self,
        tenant: TenantId,
        into: &str,
        sources: &[String],
        actor: &str,
        now: Timestamp,
    ) -> Result<StoredIncident> {
        self.merge_incidents_impl(tenant, into, sources, actor, now)
            .await
    }

    async fn split_incident(
        &self,
        tenant: TenantId,
        from: &str,
        split: &Split,
        actor: &str,
        now: Timestamp,
    ) -> Result<StoredIncident> {
        self.split_incident_impl(tenant, from, split, actor, now)
            .await
    }

    async fn append_timeline(
        &self,
        tenant: TenantId,
        incident_id: &str,
        events: &[TimelineEvent],
    ) -> Result<()> {
        self.append_timeline_impl(tenant, incident_id, events).await
    }

    async fn timeline(
        &self,
        tenant: TenantId,
        incident_id: &str,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<TimelineEntry>> {
        self.timeline_impl(tenant, incident_id, after_seq, limit)
            .await
    }

    async fn add_observables(
        &self,
        tenant: TenantId,
        incident_id: &str,
        observables: &[Observable],
    ) -> Result<u64> {
        self.add_observables_impl(tenant, incident_id, observables)
            .await
    }

    async fn observables(&self, tenant: TenantId, incident_id: &str) -> Result<Vec<Observable>> {
        self.observables_impl(tenant, incident_id).await
    }

    async fn similarity_profiles(
        &self,
        tenant: TenantId,
        incident_id: &str,
        limit: usize,
    ) -> Result<(IncidentProfile, Vec<IncidentProfile>)> {
        self.similarity_profiles_impl(tenant, incident_id, limit)
            .await
    }

    async fn set_task_template(
        &self,
        tenant: TenantId,
        incident_type: &str,
        tasks: &[String],
        now: Timestamp,
    ) -> Result<()> {
        self.set_task_template_impl(tenant, incident_type, tasks, now)
            .await
    }

    async fn task_template(
        &self,
        tenant: TenantId,
        incident_type: &str,
    ) -> Result<Option<Vec<String>>> {
        self.task_template_impl(tenant, incident_type).await
    }

    async fn add_tasks(
        &self,
        tenant: TenantId,
        incident_id: &str,
        titles: &[String],
        now: Timestamp,
    ) -> Result<Vec<Task>> {
        self.add_tasks_impl(tenant, incident_id, titles, now).await
    }

    async fn apply_task_template(
        &self,
        tenant: TenantId,
        incident_id: &str,
        now: Timestamp,
    ) -> Result<Vec<Task>> {
        self.apply_task_template_impl(tenant, incident_id, now)
            .await
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
        self.set_task_done_impl(tenant, incident_id, task_id, done, by, now)
            .await
    }

    async fn tasks(&self, tenant: TenantId, incident_id: &str) -> Result<Vec<Task>> {
        self.tasks_impl(tenant, incident_id).await
    }

    async fn add_attachment(
        &self,
        tenant: TenantId,
        attachment: &Attachment,
    ) -> Result<(Attachment, bool)> {
        self.add_attachment_impl(tenant, attachment).await
    }

    async fn attachments(&self, tenant: TenantId, incident_id: &str) -> Result<Vec<Attachment>> {
        self.attachments_impl(tenant, incident_id).await
    }

    async fn attachment(
        &self,
        tenant: TenantId,
        incident_id: &str,
        sha256: &str,
    ) -> Result<Option<Attachment>> {
        self.attachment_impl(tenant, incident_id, sha256).await
    }

    async fn attachment_holders(&self, tenant: TenantId, sha256: &str) -> Result<i64> {
        self.attachment_holders_impl(tenant, sha256).await
    }

    async fn remove_attachment(
        &self,
        tenant: TenantId,
        incident_id: &str,
        sha256: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool> {
        self.remove_attachment_impl(tenant, incident_id, sha256, actor, now)
            .await
    }

    async fn create_suppression(
        &self,
        tenant: TenantId,
        suppression: &Suppression,
    ) -> Result<StoredSuppression> {
        self.create_suppression_impl(tenant, suppression).await
    }

    async fn list_suppressions(
        &self,
        tenant: TenantId,
        active_at: Option<Timestamp>,
    ) -> Result<Vec<StoredSuppression>> {
        self.list_suppressions_impl(tenant, active_at).await
    }

    async fn expire_suppression(
        &self,
        tenant: TenantId,
        suppression_id: &str,
        now: Timestamp,
    ) -> Result<StoredSuppression> {
        self.expire_suppression_impl(tenant, suppression_id, now)
            .await
    }

    async fn suppress_alerts(
        &self,
        tenant: TenantId,
        suppression_id: &str,
        alert_ids: &[String],
        now: Timestamp,
    ) -> Result<u64> {
        self.suppress_alerts_impl(tenant, suppression_id, alert_ids, now)
            .await
    }

    async fn upsert_grouping_rule(
        &self,
        tenant: TenantId,
        rule: &GroupingRule,
        enabled: bool,
        now: Timestamp,
    ) -> Result<StoredGroupingRule> {
        self.upsert_grouping_rule_impl(tenant, rule, enabled, now)
            .await
    }

    async fn grouping_rules(&self, tenant: TenantId) -> Result<Vec<StoredGroupingRule>> {
        self.grouping_rules_impl(tenant).await
    }

    async fn delete_grouping_rule(&self, tenant: TenantId, name: &str) -> Result<()> {
        self.delete_grouping_rule_impl(tenant, name).await
    }

    async fn claim_group(
        &self,
        tenant: TenantId,
        key: &GroupKey,
        incident_id: &str,
    ) -> Result<String> {
        self.claim_group_impl(tenant, key, incident_id).await
    }

    async fn upsert_assets(
        &self,
        tenant: TenantId,
        assets: &[Asset],
        now: Timestamp,
    ) -> Result<u64> {
        self.upsert_assets_impl(tenant, assets, now).await
    }

    async fn assets(&self, tenant: TenantId) -> Result<Vec<Asset>> {
        self.assets_impl(tenant).await
    }

    async fn asset_for(
        &self,
        tenant: TenantId,
        host: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Option<Asset>> {
        self.asset_for_impl(tenant, host, ip).await
    }

    async fn delete_asset(&self, tenant: TenantId, name: &str) -> Result<()> {
        self.delete_asset_impl(tenant, name).await
    }

    async fn set_sla_policy(
        &self,
        tenant: TenantId,
        policy: &SlaPolicy,
        now: Timestamp,
    ) -> Result<()> {
        self.set_sla_policy_impl(tenant, policy, now).await
    }

    async fn sla_policy(&self, tenant: TenantId) -> Result<SlaPolicy> {
        self.sla_policy_impl(tenant).await
    }

    async fn metrics_records(
        &self,
        tenant: TenantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(Vec<AlertRecord>, Vec<IncidentRecord>)> {
        self.metrics_records_impl(tenant, from, to).await
    }
}
