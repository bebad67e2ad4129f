//! Incidents: the queue, the case file and every workflow action on it.
//!
//! What may happen to an incident is decided by `garrison_cases::apply` against the tenant's
//! workflow (viewers change nothing; only reviewers approve); the store writes the result only
//! if nobody changed the incident meanwhile, and a lost race is retried against the fresh
//! incident with the rules checked again.

use garrison_api::incidents::{
    ActionResult, IncidentDetail, IncidentOrderParam, IncidentParams, IncidentView, IncidentsPage,
    MergeBody, NewIncident, NewTasks, SimilarPage, SplitBody, TimelinePage, TimelineParams,
};
use garrison_cases::{
    apply, extract_observables, similar_incidents, sla_status, Action, Incident, IncidentUpdate,
    TransitionError,
};
use garrison_model::{PageLimit, Role, Timestamp};
use garrison_store::{
    DetectionRepo, IncidentOrder, IncidentQuery, IncidentRepo, LinkedAlert, Split, StoreError,
    StoredIncident, Task,
};
use serde_json::json;

use crate::{Actor, ActorKind, App, AppError, Result};

/// Roles that work incidents (viewers only read).
pub const WORKERS: &[Role] = &[Role::Admin, Role::Analyst, Role::Responder];
/// Roles that merge and split incidents.
const ORGANISERS: &[Role] = &[Role::Admin, Role::Analyst];
/// Optimistic writes retried this often against a fresh read before giving up.
const WRITE_ATTEMPTS: usize = 3;
/// How far back `similar` looks, and how many it answers with.
const SIMILAR_CANDIDATES: usize = 200;
const SIMILAR_ANSWERS: usize = 20;
const SIMILAR_THRESHOLD: f64 = 0.1;

impl Actor {
    /// The actor as the workflow sees it: a session's user name, else the audit name
    /// (`token:PREFIX`, `local:OSUSER`, `system:TASK`).
    pub fn case_actor(&self) -> garrison_cases::Actor {
        let name = match &self.kind {
            ActorKind::User { name, .. } => name.clone(),
            _ => self.audit_name(),
        };
        garrison_cases::Actor::new(name, &self.roles)
    }
}

fn transition_error(error: TransitionError) -> AppError {
    match error {
        TransitionError::Forbidden { .. } => AppError::Forbidden(error.to_string()),
        TransitionError::Invalid { .. } | TransitionError::UnknownState(_) => {
            AppError::Invalid(error.to_string())
        }
        _ => AppError::Conflict(error.to_string()),
    }
}

fn new_incident_id() -> String {
    format!("inc-{}", garrison_model::new_ulid().to_lowercase())
}

/// The action's name as the audit log and the API spell it (`transition`, `assign`, ...).
fn action_name(action: &Action) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.get("action").and_then(|a| a.as_str()).map(str::to_string))
        .unwrap_or_else(|| "action".into())
}

impl App {
    async fn load_incident(&self, actor: &Actor, id: &str) -> Result<StoredIncident> {
        self.store()
            .incident(actor.tenant, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("incident {id:?}")))
    }

    /// Applies `action` to the stored incident and writes the result.
    async fn act(&self, actor: &Actor, id: &str, action: Action) -> Result<ActionResult> {
        let who = actor.case_actor();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let stored = self.load_incident(actor, id).await?;
            if let Some(into) = &stored.merged_into {
                return Err(AppError::Conflict(format!(
                    "incident {id:?} was merged into {into:?}; act on that one"
                )));
            }
            let workflow = self
                .store()
                .workflow(actor.tenant, Some(stored.incident.workflow_version))
                .await?
                .workflow;
            let (next, events) = apply(
                &workflow,
                &stored.incident,
                action.clone(),
                &who,
                Timestamp::now(),
            )
            .map_err(transition_error)?;
            if events.is_empty() {
                return Ok(ActionResult {
                    incident: IncidentView::of(&stored),
                    events: Vec::new(),
                });
            }
            match self
                .store()
                .update_incident(actor.tenant, &next, stored.rev, &events)
                .await
            {
                Ok(saved) => {
                    return Ok(ActionResult {
                        incident: IncidentView::of(&saved),
                        events,
                    })
                }
                Err(StoreError::Conflict { .. }) if attempts < WRITE_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The queue: newest first, or by score.
    pub async fn list_incidents(
        &self,
        actor: &Actor,
        params: IncidentParams,
    ) -> Result<IncidentsPage> {
        let search = IncidentQuery {
            state: params.state,
            severity: params.severity,
            assignee: params.assignee,
            classification: params.classification,
            tag: params.tag,
            open: params.open,
            from: params.from.map(|t| t.0),
            to: params.to.map(|t| t.0),
            order: match params.order.unwrap_or_default() {
                IncidentOrderParam::Newest => IncidentOrder::Newest,
                IncidentOrderParam::Score => IncidentOrder::Score,
            },
            limit: PageLimit::or(params.limit, 100),
            cursor: params.cursor,
            ..IncidentQuery::default()
        };
        let page = self.store().list_incidents(actor.tenant, &search).await?;
        Ok(IncidentsPage {
            incidents: page.items.iter().map(IncidentView::of).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Opens an incident by hand, optionally from alerts (their observables come along);
    /// workers only.
    pub async fn create_incident(&self, actor: &Actor, body: NewIncident) -> Result<IncidentView> {
        actor.require_any(WORKERS)?;
        let store = self.store();
        let workflow = store.workflow(actor.tenant, None).await?;
        let mut workflow_def = workflow.workflow;
        workflow_def.version = workflow.version;
        let now = Timestamp::now();
        let id = new_incident_id();
        let (mut incident, created) = Incident::open(
            &workflow_def,
            id.clone(),
            body.title.clone(),
            body.severity,
            &actor.case_actor().user,
            now,
        );
        incident.incident_type = body.incident_type.clone();
        let mut links = Vec::new();
        let mut observables = Vec::new();
        for alert_id in &body.alert_ids {
            let alert = store
                .alert(actor.tenant, alert_id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("alert {alert_id:?}")))?;
            observables.extend(extract_observables(&alert.entity));
            observables.extend(extract_observables(&alert.matched));
            links.push(LinkedAlert {
                alert_id: alert.alert_id,
                rule_id: alert.rule_id,
            });
        }
        let stored = store
            .create_incident(actor.tenant, &incident, &[created], &links, &observables)
            .await?;
        store.apply_task_template(actor.tenant, &id, now).await?;
        self.record(
            actor,
            "incident.create",
            &id,
            json!({"alerts": body.alert_ids}),
        )
        .await;
        Ok(IncidentView::of(&stored))
    }

    /// The case file: the incident with its SLA clocks, alerts, observables, tasks and
    /// attachments.
    pub async fn incident(&self, actor: &Actor, id: &str) -> Result<IncidentDetail> {
        let store = self.store();
        let stored = self.load_incident(actor, id).await?;
        let policy = store.sla_policy(actor.tenant).await?;
        let sla = sla_status(&stored.incident, &policy, Timestamp::now());
        Ok(IncidentDetail {
            incident: IncidentView::of(&stored),
            sla,
            alerts: store.incident_alerts(actor.tenant, id).await?,
            observables: store.observables(actor.tenant, id).await?,
            tasks: store.tasks(actor.tenant, id).await?,
            attachments: store.attachments(actor.tenant, id).await?,
        })
    }

    /// Any workflow action (transition, assign, approve, reject, close, reopen, comment,
    /// update), audited as `incident.<action>`.
    pub async fn incident_action(
        &self,
        actor: &Actor,
        id: &str,
        action: Action,
    ) -> Result<ActionResult> {
        let name = action_name(&action);
        let details = match &action {
            Action::Transition { to } => json!({"to": to}),
            Action::Comment { text } => json!({"characters": text.chars().count()}),
            _ => json!({}),
        };
        let result = self.act(actor, id, action).await?;
        let mut details = details;
        details["state"] = json!(result.incident.incident.state);
        self.record(actor, &format!("incident.{name}"), id, details)
            .await;
        Ok(result)
    }

    /// Changes descriptive fields; the workflow's required fields must still hold.
    pub async fn update_incident(
        &self,
        actor: &Actor,
        id: &str,
        update: IncidentUpdate,
    ) -> Result<ActionResult> {
        self.incident_action(actor, id, Action::Update(update))
            .await
    }

    pub async fn transition_incident(
        &self,
        actor: &Actor,
        id: &str,
        to: String,
    ) -> Result<ActionResult> {
        self.incident_action(actor, id, Action::Transition { to })
            .await
    }

    pub async fn comment_incident(
        &self,
        actor: &Actor,
        id: &str,
        text: String,
    ) -> Result<ActionResult> {
        self.incident_action(actor, id, Action::Comment { text })
            .await
    }

    pub async fn approve_incident(&self, actor: &Actor, id: &str) -> Result<ActionResult> {
        self.incident_action(actor, id, Action::Approve).await
    }

    /// The timeline, oldest first, a page after `after`.
    pub async fn timeline(
        &self,
        actor: &Actor,
        id: &str,
        params: TimelineParams,
    ) -> Result<TimelinePage> {
        let (after, limit) = (params.after.unwrap_or(0), PageLimit::or(params.limit, 200));
        self.load_incident(actor, id).await?;
        let entries = self
            .store()
            .timeline(actor.tenant, id, after, limit)
            .await?;
        let next_after = (entries.len() == limit)
            .then(|| entries.last().map(|e| e.seq))
            .flatten();
        Ok(TimelinePage {
            entries,
            next_after,
        })
    }

    pub async fn tasks(&self, actor: &Actor, id: &str) -> Result<Vec<Task>> {
        self.load_incident(actor, id).await?;
        Ok(self.store().tasks(actor.tenant, id).await?)
    }

    /// Adds tasks to the checklist; workers only.
    pub async fn add_tasks(&self, actor: &Actor, id: &str, body: NewTasks) -> Result<Vec<Task>> {
        actor.require_any(WORKERS)?;
        let tasks = self
            .store()
            .add_tasks(actor.tenant, id, &body.titles, Timestamp::now())
            .await?;
        self.record(
            actor,
            "incident.tasks.add",
            id,
            json!({"count": tasks.len()}),
        )
        .await;
        Ok(tasks)
    }

    /// Ticks (or unticks) a task; workers only.
    pub async fn set_task(
        &self,
        actor: &Actor,
        id: &str,
        task_id: i64,
        done: bool,
    ) -> Result<Task> {
        actor.require_any(WORKERS)?;
        let task = self
            .store()
            .set_task_done(
                actor.tenant,
                id,
                task_id,
                done,
                &actor.case_actor().user,
                Timestamp::now(),
            )
            .await?;
        self.record(
            actor,
            "incident.tasks.set",
            id,
            json!({"task": task_id, "done": done}),
        )
        .await;
        Ok(task)
    }

    /// Merges other incidents into `id`; analysts and admins.
    pub async fn merge_incidents(
        &self,
        actor: &Actor,
        id: &str,
        body: MergeBody,
    ) -> Result<IncidentView> {
        actor.require_any(ORGANISERS)?;
        let merged = self
            .store()
            .merge_incidents(
                actor.tenant,
                id,
                &body.incidents,
                &actor.case_actor().user,
                Timestamp::now(),
            )
            .await?;
        self.record(
            actor,
            "incident.merge",
            id,
            json!({"merged": body.incidents}),
        )
        .await;
        Ok(IncidentView::of(&merged))
    }

    /// Moves some alerts of `id` into a new incident; analysts and admins.
    pub async fn split_incident(
        &self,
        actor: &Actor,
        id: &str,
        body: SplitBody,
    ) -> Result<IncidentView> {
        actor.require_any(ORGANISERS)?;
        let store = self.store();
        let source = self.load_incident(actor, id).await?;
        let workflow = store.workflow(actor.tenant, None).await?;
        let mut workflow_def = workflow.workflow;
        workflow_def.version = workflow.version;
        let now = Timestamp::now();
        let who = actor.case_actor();
        let (mut incident, created) = Incident::open(
            &workflow_def,
            new_incident_id(),
            body.title.clone(),
            source.incident.severity,
            &who.user,
            now,
        );
        incident.tlp = source.incident.tlp;
        incident.pap = source.incident.pap;
        let mut observables = Vec::new();
        for alert_id in &body.alert_ids {
            if let Some(alert) = store.alert(actor.tenant, alert_id).await? {
                observables.extend(extract_observables(&alert.entity));
                observables.extend(extract_observables(&alert.matched));
            }
        }
        let created = store
            .split_incident(
                actor.tenant,
                id,
                &Split {
                    new_incident: incident,
                    events: vec![created],
                    alert_ids: body.alert_ids.clone(),
                    observables,
                },
                &who.user,
                now,
            )
            .await?;
        self.record(
            actor,
            "incident.split",
            id,
            json!({"into": created.incident.id, "alerts": body.alert_ids}),
        )
        .await;
        Ok(IncidentView::of(&created))
    }

    /// Past incidents like `id` (shared observables, rule, host), best first.
    pub async fn similar_incidents(&self, actor: &Actor, id: &str) -> Result<SimilarPage> {
        let (target, candidates) = self
            .store()
            .similarity_profiles(actor.tenant, id, SIMILAR_CANDIDATES)
            .await?;
        let similar = similar_incidents(&target, &candidates, SIMILAR_THRESHOLD, SIMILAR_ANSWERS);
        Ok(SimilarPage { similar })
    }
}
