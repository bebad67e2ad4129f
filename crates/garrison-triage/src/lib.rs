//! Automatic triage: new alerts become incidents.
//!
//! A follower reads alerts created after its cursor (`triage.alerts` in `consumer_positions`),
//! and for each one, in its tenant: an active suppression that covers it marks it suppressed
//! and counts it (`IncidentRepo::suppress_alerts`), and it goes no further; otherwise it is
//! scored (rule level, the rule's confidence, the criticality of its host in the asset table,
//! any indicator verdicts it carries, repetition) and grouped by the tenant's grouping rules
//! (by default: same host within an hour) into the open incident of its group, or into a new
//! incident with its observables and the score's parts.
//!
//! Replays are harmless: an alert that already has an incident or is suppressed is skipped, a
//! new incident's id is derived from the alert that opened it, and a group claim names that id,
//! so a crash between the claim and the incident's creation recreates the same incident. The
//! follower runs on its own task and only reads what the detector committed, so it never holds
//! the detector back. `garrison_triage_alerts_total{outcome}` counts what became of each alert
//! (`opened`, `grouped`, `suppressed`, `already`, ...).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use garrison_cases::{
    extract_observables, group_key, score, AlertInput, Confidence, Criticality, EntityKey,
    GroupingRule, Incident, IndicatorVerdict, Level, ObservableKind, Score, Severity, Suppression,
    TimelineEvent, TimelineKind, Verdict,
};
use garrison_model::{TenantId, Timestamp};
use garrison_store::{
    Alert, DetectionRepo, IncidentRepo, LinkedAlert, SqlStore, StoreError, StoredIncident,
};
use serde_json::{json, Value as Json};
use tokio::sync::watch;

/// The follower's cursor: the last alert sequence number triaged.
pub const CURSOR: &str = "triage.alerts";
/// Who triage is on timelines.
const ACTOR: &str = "system:triage";
/// Alerts read per pass.
const BATCH: usize = 500;
/// Optimistic incident writes retried this often.
const WRITE_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
enum TriageError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// The grouping rule used by a tenant that has none enabled: same host within one hour.
pub fn default_grouping_rule() -> GroupingRule {
    GroupingRule {
        name: "default".into(),
        keys: vec![EntityKey::Host],
        window_secs: 3600,
        rule_ids: Vec::new(),
    }
}

/// On the very first start, triage begins at the present: alerts that existed before it was
/// wired are left for analysts. Call before the detector runs.
pub async fn init_cursor(store: &SqlStore) -> Result<(), StoreError> {
    if store.consumer_cursor(CURSOR).await?.is_none() {
        let max = store.max_alert_seq().await?;
        store.set_consumer_cursor(CURSOR, max).await?;
    }
    Ok(())
}

/// The triage worker's health component (degraded while its passes fail).
pub const HEALTH: &str = "triage";

/// Spawns the triage follower.
pub fn spawn(
    store: Arc<SqlStore>,
    poll_interval: Duration,
    health: garrison_model::health::Health,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let mut result = pass(&store).await;
            if result.is_ok() {
                if let Err(e) = recheck_folds(&store, Timestamp::now()).await {
                    result = Err(e);
                }
            }
            let wait = match result {
                Ok(n) if n >= BATCH => Duration::ZERO,
                _ => poll_interval,
            };
            health.pass(HEALTH, result.map(|_| ()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    })
}

/// What one pass knows of a tenant, read once per pass.
struct TenantView {
    suppressions: Vec<Suppression>,
    rules: Vec<GroupingRule>,
}

/// The one metric of triage: what became of each alert (`opened`, `grouped`, `suppressed`,
/// `already`, `gone`, `unlinked`, `failed`). Listed in the README.
pub const TRIAGE_ALERTS: &str = "garrison_triage_alerts_total";

fn triaged(outcome: &'static str) {
    metrics::counter!(TRIAGE_ALERTS, "outcome" => outcome).increment(1);
}

/// One pass: triages alerts after the cursor, committing the cursor past each handled alert.
async fn pass(store: &SqlStore) -> Result<usize, TriageError> {
    let from = store.consumer_cursor(CURSOR).await?.unwrap_or(0);
    let alerts = store.alerts_created_after(from, BATCH).await?;
    let read = alerts.len();
    let now = Timestamp::now();
    let mut tenants: HashMap<TenantId, TenantView> = HashMap::new();
    let mut confidences: HashMap<(TenantId, String), Confidence> = HashMap::new();
    let mut done = from;
    let mut result = Ok(read);
    for (seq, alert) in alerts {
        // Every line triage logs for this alert carries its id (and the incident's, once
        // known), so one alert can be followed from the detector to its playbook runs.
        let span =
            tracing::info_span!("triage", tenant = %alert.tenant_id, alert_id = %alert.alert_id);
        let outcome = triage_one(store, &alert, now, &mut tenants, &mut confidences)
            .instrument(span)
            .await;
        match outcome {
            Ok(outcome) => {
                triaged(outcome);
            }
            // An alert the store refuses (bad stored data) would block every later one: it is
            // left unlinked, in the alert list, and said so.
            Err(TriageError::Store(
                e @ (StoreError::Invalid { .. } | StoreError::Corrupt { .. }),
            )) => {
                tracing::warn!(alert = %alert.alert_id, error = %e, "alert not triaged; skipped");
                triaged("failed");
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        done = seq;
    }
    if done > from {
        store.set_consumer_cursor(CURSOR, done).await?;
    }
    result
}

/// What suppressions see of an alert: its matched fields and entity, then, when some
/// suppression names a field those lack, the fields of the alert's first event (its
/// normalised view, then the fields as sent) under names not already there. A suppression
/// may so match any stored field (`log.syslog.hostname`, `process.command_line`, ...).
pub async fn suppression_input(
    store: &SqlStore,
    alert: &Alert,
    suppressions: &[Suppression],
) -> Result<AlertInput, StoreError> {
    use garrison_store::EventRepo;
    let mut fields = alert_fields(alert);
    if suppressions.iter().any(|s| s.names_fields_beyond(&fields)) {
        let first = store
            .alert_event_ids(alert.tenant_id, &alert.alert_id, 1)
            .await?;
        if let Some(id) = first.first() {
            if let Some(event) = store.event(alert.tenant_id, id).await? {
                if let Json::Object(map) = &mut fields {
                    let sent = event.fields.as_object().cloned().unwrap_or_default();
                    for (key, value) in event.normalized.into_iter().chain(sent) {
                        map.entry(key).or_insert(value);
                    }
                }
            }
        }
    }
    Ok(AlertInput {
        alert_id: alert.alert_id.clone(),
        rule_id: alert.rule_id.clone(),
        level: alert.level,
        time: alert.first_seen,
        count: u64::try_from(alert.count).unwrap_or(1),
        fields,
    })
}

/// Where the fold re-check stands: the `updated` time (µs) and the sequence number of the
/// last open alert looked at.
const FOLD_CURSOR: &str = "triage.folds";
const FOLD_CURSOR_SEQ: &str = "triage.folds.seq";
/// Folds younger than this are left for the next pass: a transaction stamped earlier may
/// still be committing (PostgreSQL), and must not land behind the cursor.
const FOLD_SETTLE_US: i64 = 2_000_000;

/// Alerts already triaged that took new events after a suppression covering them was
/// created are suppressed too (the new matches are not raised): one pass over the open alerts
/// updated since the last. Returns how many were suppressed.
async fn recheck_folds(store: &SqlStore, now: Timestamp) -> Result<usize, TriageError> {
    let from = match store.consumer_cursor(FOLD_CURSOR).await? {
        Some(at) => (
            at,
            store.consumer_cursor(FOLD_CURSOR_SEQ).await?.unwrap_or(0),
        ),
        None => {
            // First run: folds from now on.
            let start = garrison_model::to_micros(now);
            store.set_consumer_cursor(FOLD_CURSOR, start).await?;
            (start, 0)
        }
    };
    let settled = garrison_model::to_micros(now) - FOLD_SETTLE_US;
    let alerts = store
        .open_alerts_updated_after(from, settled, BATCH)
        .await?;
    let mut tenants: HashMap<TenantId, TenantView> = HashMap::new();
    let mut done = from;
    let mut suppressed = 0;
    for (seq, alert) in alerts {
        done = (garrison_model::to_micros(alert.updated), seq);
        // Not triaged yet: the creation follower decides (and sees every suppression).
        if alert.incident_id.is_none() {
            continue;
        }
        let view = tenant_view(store, &mut tenants, alert.tenant_id, now).await?;
        let recent: Vec<Suppression> = view
            .suppressions
            .iter()
            .filter(|s| s.created < alert.updated)
            .cloned()
            .collect();
        if recent.is_empty() {
            continue;
        }
        let input = suppression_input(store, &alert, &recent).await?;
        if let Some(suppression) = Suppression::first_match(&recent, &input, now) {
            store
                .suppress_alerts(
                    alert.tenant_id,
                    &suppression.id,
                    std::slice::from_ref(&alert.alert_id),
                    now,
                )
                .await?;
            triaged("suppressed");
            suppressed += 1;
        }
    }
    if done > from {
        store.set_consumer_cursor(FOLD_CURSOR_SEQ, done.1).await?;
        store.set_consumer_cursor(FOLD_CURSOR, done.0).await?;
    }
    Ok(suppressed)
}

/// The alert's entity and matched fields as one object (entity wins on equal names).
fn alert_fields(alert: &Alert) -> Json {
    let mut fields = serde_json::Map::new();
    for source in [&alert.matched, &alert.entity] {
        if let Json::Object(map) = source {
            for (k, v) in map {
                fields.insert(k.clone(), v.clone());
            }
        }
    }
    Json::Object(fields)
}

/// Indicator verdicts an alert carries: an `indicator_verdicts` list in its matched fields or
/// entity, and for an indicator-match alert (entity `indicator`, matched `indicator.score`
/// 0..=100 and `indicator.source`) a verdict from the score: 70 and up malicious, 40 and up
/// suspicious.
fn carried_verdicts(alert: &Alert) -> Vec<IndicatorVerdict> {
    let mut verdicts: Vec<IndicatorVerdict> = [&alert.matched, &alert.entity]
        .iter()
        .filter_map(|source| source.get("indicator_verdicts"))
        .filter_map(|v| serde_json::from_value::<Vec<IndicatorVerdict>>(v.clone()).ok())
        .flatten()
        .collect();
    let indicator = alert.entity.get("indicator").and_then(Json::as_str);
    let score = alert.matched.get("indicator.score").and_then(Json::as_f64);
    if let (Some(indicator), Some(score)) = (indicator, score) {
        let verdict = if score >= 70.0 {
            Verdict::Malicious
        } else if score >= 40.0 {
            Verdict::Suspicious
        } else {
            Verdict::Unknown
        };
        let source = alert
            .matched
            .get("indicator.source")
            .and_then(Json::as_str)
            .unwrap_or("intel");
        verdicts.push(IndicatorVerdict {
            indicator: indicator.to_string(),
            verdict,
            source: source.to_string(),
        });
    }
    verdicts
}

/// A rule's confidence from its Sigma `status`: stable is trusted most, experimental least.
fn confidence_of(yaml: &str) -> Confidence {
    let status = yaml
        .lines()
        .find_map(|line| line.strip_prefix("status:"))
        .map(|s| s.trim().trim_matches(['"', '\'']).to_ascii_lowercase());
    match status.as_deref() {
        Some("stable") => Confidence::High,
        Some("experimental") | Some("deprecated") | Some("unsupported") => Confidence::Low,
        _ => Confidence::Medium,
    }
}

fn severity_of(level: Level) -> Severity {
    match level {
        Level::Informational | Level::Low => Severity::Low,
        Level::Medium => Severity::Medium,
        Level::High => Severity::High,
        Level::Critical => Severity::Critical,
    }
}

async fn tenant_view<'a>(
    store: &SqlStore,
    tenants: &'a mut HashMap<TenantId, TenantView>,
    tenant: TenantId,
    now: Timestamp,
) -> Result<&'a TenantView, TriageError> {
    use std::collections::hash_map::Entry;
    match tenants.entry(tenant) {
        Entry::Occupied(entry) => Ok(entry.into_mut()),
        Entry::Vacant(entry) => {
            let suppressions = store
                .list_suppressions(tenant, Some(now))
                .await?
                .into_iter()
                .map(|s| s.suppression)
                .collect();
            let mut rules: Vec<GroupingRule> = store
                .grouping_rules(tenant)
                .await?
                .into_iter()
                .filter(|r| r.enabled)
                .map(|r| r.rule)
                .collect();
            if rules.is_empty() {
                rules.push(default_grouping_rule());
            }
            Ok(entry.insert(TenantView {
                suppressions,
                rules,
            }))
        }
    }
}

async fn triage_one(
    store: &SqlStore,
    alert: &Alert,
    now: Timestamp,
    tenants: &mut HashMap<TenantId, TenantView>,
    confidences: &mut HashMap<(TenantId, String), Confidence>,
) -> Result<&'static str, TriageError> {
    let tenant = alert.tenant_id;
    // The row as read may be stale after a replay: look at its present state.
    let Some(current) = store.alert(tenant, &alert.alert_id).await? else {
        return Ok("gone");
    };
    if current.incident_id.is_some() || current.status == garrison_model::AlertStatus::Suppressed {
        return Ok("already");
    }
    let level = current.level;
    let view = tenant_view(store, tenants, tenant, now).await?;
    let input = suppression_input(store, &current, &view.suppressions).await?;
    if let Some(suppression) = Suppression::first_match(&view.suppressions, &input, now) {
        store
            .suppress_alerts(
                tenant,
                &suppression.id,
                std::slice::from_ref(&current.alert_id),
                now,
            )
            .await?;
        return Ok("suppressed");
    }
    let group = view.rules.iter().find_map(|rule| group_key(&input, rule));

    let observables = extract_observables(&input.fields);
    let host = observables
        .iter()
        .find(|o| o.kind == ObservableKind::Host)
        .map(|o| o.value.clone());
    let ip = observables
        .iter()
        .filter(|o| o.kind == ObservableKind::Ip)
        .find_map(|o| o.value.parse().ok());
    let criticality: Option<Criticality> = store
        .asset_for(tenant, host.as_deref(), ip)
        .await?
        .map(|a| a.criticality);
    let confidence = match confidences.get(&(tenant, current.rule_id.clone())) {
        Some(c) => *c,
        None => {
            let c = store
                .rule(tenant, &current.rule_id)
                .await?
                .map(|r| confidence_of(&r.yaml))
                .unwrap_or(Confidence::Medium);
            confidences.insert((tenant, current.rule_id.clone()), c);
            c
        }
    };
    let scored = score(
        &input,
        criticality,
        &carried_verdicts(&current),
        level,
        confidence,
    );
    let severity = severity_of(level);
    let link = LinkedAlert {
        alert_id: current.alert_id.clone(),
        rule_id: current.rule_id.clone(),
    };
    // The id this alert's own incident has, whether it opens a group or stands alone.
    let own_id = format!("inc-a{}", current.alert_id);
    let target = match &group {
        Some(key) => Some(store.claim_group(tenant, key, &own_id).await?),
        None => None,
    };
    if let Some(target) = target.filter(|t| *t != own_id) {
        if let Some(incident) = live_incident(store, tenant, &target).await? {
            // Merges are followed: this is the incident that holds the group now.
            let id = incident.incident.id.clone();
            add_to_incident(
                store, tenant, incident, &link, &current, &scored, severity, now,
            )
            .await?;
            store.add_observables(tenant, &id, &observables).await?;
            tracing::debug!(%tenant, alert_id = %current.alert_id, incident_id = %id, "alert grouped into an incident");
            return Ok("grouped");
        }
        // The group's incident was closed or is gone: this alert starts an incident of its own.
    }
    if let Some(own) = live_incident(store, tenant, &own_id).await? {
        // This alert's own incident exists but does not hold it (it was split off since):
        // it goes back to the incident it opened.
        add_to_incident(store, tenant, own, &link, &current, &scored, severity, now).await?;
        tracing::debug!(%tenant, alert_id = %current.alert_id, incident_id = %own_id, "alert back in its own incident");
        return Ok("grouped");
    }
    if store.incident(tenant, &own_id).await?.is_some() {
        // Its own incident is closed: a fresh one would collide with that id, so the alert
        // stays unlinked, visible in the alert list, and triage says so.
        tracing::warn!(alert = %current.alert_id, incident = %own_id, "alert's incident is closed; left for an analyst");
        return Ok("unlinked");
    }
    let workflow = store.workflow(tenant, None).await?;
    let mut definition = workflow.workflow;
    definition.version = workflow.version;
    let title = match &host {
        Some(host) => format!("{} on {host}", current.title),
        None => current.title.clone(),
    };
    let (mut incident, created) = Incident::open(&definition, &own_id, title, severity, ACTOR, now);
    incident.score = scored.total;
    incident.fields.insert(
        "score_parts".into(),
        serde_json::to_value(&scored.parts).unwrap_or(Json::Null),
    );
    if let Some(key) = &group {
        incident.fields.insert(
            "group".into(),
            json!({"rule": key.rule, "key": key.key, "window_start": key.window_start.to_string()}),
        );
    }
    // A machine action, audited like an analyst's, in the incident's own transaction.
    let audit = garrison_store::NewAuditEntry {
        actor: ACTOR.to_string(),
        action: "incident.create".to_string(),
        target: own_id.clone(),
        details: json!({"alert": current.alert_id, "rule": current.rule_id, "score": scored.total}),
    };
    store
        .create_incident_audited(tenant, &incident, &[created], &[link], &observables, &audit)
        .await?;
    tracing::info!(%tenant, alert_id = %current.alert_id, incident_id = %own_id, score = scored.total, "incident opened");
    Ok("opened")
}

/// The incident, followed through merges, if it is still open.
async fn live_incident(
    store: &SqlStore,
    tenant: TenantId,
    id: &str,
) -> Result<Option<StoredIncident>, TriageError> {
    let mut id = id.to_string();
    for _ in 0..8 {
        let Some(stored) = store.incident(tenant, &id).await? else {
            return Ok(None);
        };
        match &stored.merged_into {
            Some(into) => id = into.clone(),
            None if stored.incident.closed.is_some() => return Ok(None),
            None => return Ok(Some(stored)),
        }
    }
    Ok(None)
}

/// Links the alert first (a replay then skips it), then raises the incident's severity and
/// score and notes the alert on its timeline.
#[allow(clippy::too_many_arguments)]
async fn add_to_incident(
    store: &SqlStore,
    tenant: TenantId,
    mut stored: StoredIncident,
    link: &LinkedAlert,
    alert: &Alert,
    scored: &Score,
    severity: Severity,
    now: Timestamp,
) -> Result<(), TriageError> {
    let id = stored.incident.id.clone();
    store
        .link_alerts(tenant, &id, std::slice::from_ref(link), now)
        .await?;
    let event = TimelineEvent {
        time: now,
        actor: ACTOR.into(),
        kind: TimelineKind::System {
            message: format!(
                "alert added: {} ({}, score {})",
                alert.alert_id, alert.title, scored.total
            ),
        },
    };
    for attempt in 1..=WRITE_ATTEMPTS {
        let mut next = stored.incident.clone();
        if severity > next.severity {
            next.severity = severity;
        }
        if scored.total > next.score {
            next.score = scored.total;
            next.fields.insert(
                "score_parts".into(),
                serde_json::to_value(&scored.parts).unwrap_or(Json::Null),
            );
        }
        next.updated = now;
        match store
            .update_incident(tenant, &next, stored.rev, std::slice::from_ref(&event))
            .await
        {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) if attempt < WRITE_ATTEMPTS => {
                match store.incident(tenant, &id).await? {
                    Some(fresh) => stored = fresh,
                    None => return Ok(()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use garrison_cases::Asset;
    use garrison_store::{AlertHit, IncidentQuery, TenantRepo};

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).expect("valid time")
    }

    async fn record(store: &SqlStore, tenant: TenantId, id: &str, host: &str, t: i64, pos: u64) {
        store
            .record_detections(
                &[AlertHit {
                    tenant_id: tenant,
                    alert_id: id.into(),
                    rule_id: "rule-1".into(),
                    title: "Suspicious thing".into(),
                    level: Level::High,
                    fingerprint: format!("fp-{id}"),
                    entity_json: json!({"host.name": host}).to_string(),
                    window_start: at(t),
                    event_id: format!("e-{id}"),
                    event_time: at(t),
                    matched_json: json!({}).to_string(),
                }],
                "detector",
                pos,
            )
            .await
            .expect("record");
    }

    async fn incidents(store: &SqlStore, tenant: TenantId) -> Vec<StoredIncident> {
        let query = IncidentQuery {
            limit: 100,
            ..Default::default()
        };
        store
            .list_incidents(tenant, &query)
            .await
            .expect("list")
            .items
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pass_groups_scores_suppresses_and_a_replay_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqlStore::connect(&url).await.expect("store");
        let tenant = store.ensure_tenant("alpha").await.expect("tenant").id;
        let now = Timestamp::now();
        store
            .create_suppression(
                tenant,
                &Suppression {
                    id: "lab".into(),
                    rule_id: None,
                    fields: [("host.name".to_string(), "lab-*".to_string())].into(),
                    reason: "lab".into(),
                    author: "t".into(),
                    created: now,
                    expires: None,
                },
            )
            .await
            .expect("suppression");
        store
            .upsert_assets(
                tenant,
                &[Asset {
                    name: "ws1".into(),
                    ip: None,
                    criticality: Criticality::Critical,
                    owner: None,
                }],
                now,
            )
            .await
            .expect("assets");
        // The hour of at(0) starts at 1_699_999_200: 100 s and 200 s later are in it.
        record(&store, tenant, "a1", "ws1", 0, 1).await;
        record(&store, tenant, "a2", "WS1", 100, 2).await;
        record(&store, tenant, "a3", "ws2", 150, 3).await;
        record(&store, tenant, "a4", "lab-9", 160, 4).await;
        assert_eq!(pass(&store).await.expect("pass"), 4);

        let list = incidents(&store, tenant).await;
        assert_eq!(list.len(), 2, "{list:?}");
        let a1 = store.alert(tenant, "a1").await.expect("a1").expect("a1");
        let a2 = store.alert(tenant, "a2").await.expect("a2").expect("a2");
        let a3 = store.alert(tenant, "a3").await.expect("a3").expect("a3");
        let a4 = store.alert(tenant, "a4").await.expect("a4").expect("a4");
        assert_eq!(a1.incident_id.as_deref(), Some("inc-aa1"));
        assert_eq!(a2.incident_id, a1.incident_id, "same host, same hour");
        assert_eq!(a3.incident_id.as_deref(), Some("inc-aa3"));
        assert_eq!((a4.incident_id, a4.status.as_str()), (None, "suppressed"));
        let hits = store.list_suppressions(tenant, None).await.expect("list")[0].hits;
        assert_eq!(hits, 1);
        let ws1 = store
            .incident(tenant, "inc-aa1")
            .await
            .expect("get")
            .expect("ws1");
        let ws2 = store
            .incident(tenant, "inc-aa3")
            .await
            .expect("get")
            .expect("ws2");
        assert!(
            ws1.incident.score > ws2.incident.score,
            "the critical asset ranks first"
        );
        assert_eq!(ws1.incident.severity, Severity::High);
        let timeline = |id: &'static str| {
            let store = &store;
            async move {
                store
                    .timeline(tenant, id, 0, 100)
                    .await
                    .expect("timeline")
                    .len()
            }
        };
        assert_eq!(timeline("inc-aa1").await, 2, "created, then alert added");

        // Replay from the start: nothing new, nothing counted twice.
        store.set_consumer_cursor(CURSOR, 0).await.expect("reset");
        assert_eq!(pass(&store).await.expect("replay"), 4);
        assert_eq!(incidents(&store, tenant).await.len(), 2);
        assert_eq!(
            store.list_suppressions(tenant, None).await.expect("list")[0].hits,
            1
        );
        assert_eq!(timeline("inc-aa1").await, 2);

        // A crash between a group claim and the incident's creation: the replay creates it.
        record(&store, tenant, "a5", "ws3", 170, 5).await;
        let key = group_key(
            &AlertInput {
                alert_id: "a5".into(),
                rule_id: "rule-1".into(),
                level: Level::High,
                time: at(170),
                count: 1,
                fields: json!({"host.name": "ws3"}),
            },
            &default_grouping_rule(),
        )
        .expect("key");
        assert_eq!(
            store
                .claim_group(tenant, &key, "inc-aa5")
                .await
                .expect("claim"),
            "inc-aa5"
        );
        assert_eq!(pass(&store).await.expect("pass"), 1);
        let a5 = store.alert(tenant, "a5").await.expect("a5").expect("a5");
        assert_eq!(a5.incident_id.as_deref(), Some("inc-aa5"));
    }

    #[test]
    fn confidence_follows_the_rule_status() {
        assert_eq!(
            confidence_of("title: x\nstatus: stable\n"),
            Confidence::High
        );
        assert_eq!(confidence_of("status: 'experimental'\n"), Confidence::Low);
        assert_eq!(confidence_of("title: x\n"), Confidence::Medium);
    }

    #[test]
    fn indicator_alerts_carry_a_verdict_from_their_score() {
        let alert = |score: f64| Alert {
            tenant_id: TenantId(1),
            alert_id: "a".into(),
            rule_id: "ioc:ip".into(),
            title: "t".into(),
            level: Level::High,
            fingerprint: "f".into(),
            entity: json!({"indicator": "ip:203.0.113.9", "host.name": "ws1"}),
            window_start: at(0),
            count: 1,
            first_seen: at(0),
            last_seen: at(0),
            matched: json!({"indicator.score": score, "indicator.source": "feed-a"}),
            incident_id: None,
            status: garrison_model::AlertStatus::New,
            created: at(0),
            updated: at(0),
        };
        let verdicts = carried_verdicts(&alert(85.0));
        assert_eq!(verdicts.len(), 1);
        assert_eq!(verdicts[0].verdict, Verdict::Malicious);
        assert_eq!(verdicts[0].source, "feed-a");
        assert_eq!(
            carried_verdicts(&alert(50.0))[0].verdict,
            Verdict::Suspicious
        );
        assert_eq!(carried_verdicts(&alert(10.0))[0].verdict, Verdict::Unknown);
        let mut plain = alert(0.0);
        plain.matched = json!({"Image": "x.exe"});
        assert!(carried_verdicts(&plain).is_empty());
    }

    #[test]
    fn levels_map_to_severities() {
        assert_eq!(severity_of(Level::Informational), Severity::Low);
        assert_eq!(severity_of(Level::High), Severity::High);
        assert_eq!(severity_of(Level::Critical), Severity::Critical);
    }

    #[test]
    fn the_default_rule_groups_by_host_for_an_hour() {
        let rule = default_grouping_rule();
        assert!(rule.validate().is_ok());
        let alert = |id: &str, host: &str| AlertInput {
            alert_id: id.into(),
            rule_id: "r".into(),
            level: Level::High,
            time: Timestamp::from_second(7200 + 10).expect("valid time"),
            count: 1,
            fields: json!({"host.name": host}),
        };
        let a = group_key(&alert("a", "WS1"), &rule);
        let b = group_key(&alert("b", "ws1"), &rule);
        let c = group_key(&alert("c", "ws2"), &rule);
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
