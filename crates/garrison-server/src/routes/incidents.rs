//! Incidents: the queue, the case file, and the workflow actions on it, plus the SOC metrics.
//!
//! Every handler takes a [`Principal`] and passes its tenant to the store. What may happen to
//! an incident is decided by `garrison_cases::apply` against the tenant's workflow (viewers
//! change nothing; only reviewers approve); the store writes the result only if nobody changed
//! the incident meanwhile, and a lost race is retried against the fresh incident.

use super::query::ApiQuery;
use axum::extract::State;
use axum::Json;
use garrison_cases::{
    apply, extract_observables, similar_incidents, sla_status, Action, Actor, Incident,
    IncidentUpdate, SocMetrics, TransitionError,
};
use garrison_model::{PageLimit, Role, Timestamp};
use garrison_store::{
    DetectionRepo, IncidentOrder, IncidentQuery, IncidentRepo, LinkedAlert, Split, StoreError,
    StoredIncident, Task, TokenKind,
};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::routes::audit::record;
use crate::routes::extract::ApiJson;
use crate::routes::extract::ApiPath;
use crate::AppState;
pub use garrison_api::incidents::*;

/// Roles that work incidents (viewers only read).
const WORKERS: &[Role] = &[Role::Admin, Role::Analyst, Role::Responder];
/// Optimistic writes retried this often against a fresh read before giving up.
const WRITE_ATTEMPTS: usize = 3;

// ---------------------------------------------------------------- views

// ---------------------------------------------------------------- helpers

/// The caller as the workflow sees them: a session's user name, else `token:PREFIX`.
pub(crate) fn actor(principal: &Principal) -> Actor {
    let token = &principal.token;
    let user = match (token.kind, token.name.strip_prefix("session of ")) {
        (TokenKind::Session, Some(user)) => user.to_string(),
        _ => format!("token:{}", token.prefix),
    };
    Actor::new(user, &token.roles)
}

fn transition_error(error: TransitionError) -> ApiError {
    match error {
        TransitionError::Forbidden { .. } => ApiError::forbidden(error.to_string()),
        TransitionError::Invalid { .. } | TransitionError::UnknownState(_) => {
            ApiError::invalid(error.to_string())
        }
        _ => ApiError::new(ErrorCode::Conflict, error.to_string()),
    }
}

async fn load(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<StoredIncident, ApiError> {
    state
        .store()
        .incident(principal.tenant, id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("incident {id:?} not found")))
}

/// Applies `action` to the stored incident and writes the result; a concurrent change is
/// retried against the fresh incident (the rules are checked again).
async fn act(
    state: &AppState,
    principal: &Principal,
    id: &str,
    action: Action,
) -> Result<ActionResult, ApiError> {
    let actor = actor(principal);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let stored = load(state, principal, id).await?;
        if let Some(into) = &stored.merged_into {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("incident {id:?} was merged into {into:?}; act on that one"),
            ));
        }
        let workflow = state
            .store()
            .workflow(principal.tenant, Some(stored.incident.workflow_version))
            .await?
            .workflow;
        let (next, events) = apply(
            &workflow,
            &stored.incident,
            action.clone(),
            &actor,
            Timestamp::now(),
        )
        .map_err(transition_error)?;
        if events.is_empty() {
            return Ok(ActionResult {
                incident: IncidentView::of(&stored),
                events: Vec::new(),
            });
        }
        match state
            .store()
            .update_incident(principal.tenant, &next, stored.rev, &events)
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

// ---------------------------------------------------------------- list, create, read

/// List incidents: newest first, or by score (the queue).
#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    tag = "incidents",
    params(IncidentParams),
    responses((status = 200, body = IncidentsPage), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_incidents(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<IncidentParams>,
) -> Result<Json<IncidentsPage>, ApiError> {
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
    let page = state
        .store()
        .list_incidents(principal.tenant, &search)
        .await?;
    Ok(Json(IncidentsPage {
        incidents: page.incidents.iter().map(IncidentView::of).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Open an incident by hand, optionally from alerts; workers only.
#[utoipa::path(
    post,
    path = "/api/v1/incidents",
    tag = "incidents",
    request_body = NewIncident,
    responses((status = 201, body = IncidentView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn create_incident(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewIncident>,
) -> Result<(axum::http::StatusCode, Json<IncidentView>), ApiError> {
    principal.require_any(WORKERS)?;
    let store = state.store();
    let workflow = store.workflow(principal.tenant, None).await?;
    let mut workflow_def = workflow.workflow;
    workflow_def.version = workflow.version;
    let now = Timestamp::now();
    let id = format!("inc-{}", garrison_model::new_ulid().to_lowercase());
    let actor = actor(&principal);
    let (mut incident, created) = Incident::open(
        &workflow_def,
        id.clone(),
        body.title.clone(),
        body.severity,
        &actor.user,
        now,
    );
    incident.incident_type = body.incident_type.clone();
    let mut links = Vec::new();
    let mut observables = Vec::new();
    for alert_id in &body.alert_ids {
        let alert = store
            .alert(principal.tenant, alert_id)
            .await?
            .ok_or_else(|| {
                ApiError::new(ErrorCode::NotFound, format!("alert {alert_id:?} not found"))
            })?;
        observables.extend(extract_observables(&alert.entity));
        observables.extend(extract_observables(&alert.matched));
        links.push(LinkedAlert {
            alert_id: alert.alert_id,
            rule_id: alert.rule_id,
        });
    }
    let stored = store
        .create_incident(
            principal.tenant,
            &incident,
            &[created],
            &links,
            &observables,
        )
        .await?;
    store
        .apply_task_template(principal.tenant, &id, now)
        .await?;
    record(
        &state,
        &principal,
        "incident.create",
        &id,
        serde_json::json!({"alerts": body.alert_ids}),
    )
    .await;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(IncidentView::of(&stored)),
    ))
}

/// An incident with its SLA clocks, alerts, observables, tasks and attachments.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses((status = 200, body = IncidentDetail), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn get_incident(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let store = state.store();
    let stored = load(&state, &principal, &id).await?;
    let policy = store.sla_policy(principal.tenant).await?;
    let sla = sla_status(&stored.incident, &policy, Timestamp::now());
    Ok(Json(IncidentDetail {
        incident: IncidentView::of(&stored),
        sla,
        alerts: store.incident_alerts(principal.tenant, &id).await?,
        observables: store.observables(principal.tenant, &id).await?,
        tasks: store.tasks(principal.tenant, &id).await?,
        attachments: store.attachments(principal.tenant, &id).await?,
    }))
}

// ---------------------------------------------------------------- workflow actions

/// Change descriptive fields (title, summary, severity, TLP/PAP, tags, classification, custom
/// fields); workers only, and the workflow's required fields must still hold.
#[utoipa::path(
    patch,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    request_body(content = IncidentUpdate, description = "Fields to change: title, summary, severity, tlp, pap, tags_add, tags_remove, classification, fields"),
    responses((status = 200, body = ActionResult), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
pub async fn update_incident(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(update): ApiJson<IncidentUpdate>,
) -> Result<Json<ActionResult>, ApiError> {
    let result = act(&state, &principal, &id, Action::Update(update)).await?;
    record(
        &state,
        &principal,
        "incident.update",
        &id,
        serde_json::json!({}),
    )
    .await;
    Ok(Json(result))
}

/// Any workflow action: `{"action": "transition", "to": "triage"}`, `assign` (`assignee`,
/// `team`: a transfer when someone has it), `approve`, `reject` (`reason`), `close`
/// (`classification`), `reopen` (`reason`), `comment` (`text`, with @mentions). The workflow
/// decides: viewers change nothing, only reviewers approve, closing needs N approvals.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/actions",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    request_body(content = Object, description = "An action, tagged by `action`"),
    responses((status = 200, body = ActionResult), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem, description = "The workflow does not allow it now")),
    security(("bearer" = []))
)]
pub async fn incident_action(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(action): ApiJson<Action>,
) -> Result<Json<ActionResult>, ApiError> {
    let name = serde_json::to_value(&action)
        .ok()
        .and_then(|v| v.get("action").and_then(|a| a.as_str()).map(str::to_string))
        .unwrap_or_default();
    let result = act(&state, &principal, &id, action).await?;
    record(
        &state,
        &principal,
        &format!("incident.{name}"),
        &id,
        serde_json::json!({"state": result.incident.incident.state}),
    )
    .await;
    Ok(Json(result))
}

/// Move an incident to another state; the workflow checks the roles and required fields.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/transitions",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    request_body = TransitionBody,
    responses((status = 200, body = ActionResult), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem, description = "The workflow does not allow it now")),
    security(("bearer" = []))
)]
pub async fn transition(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<TransitionBody>,
) -> Result<Json<ActionResult>, ApiError> {
    let result = act(
        &state,
        &principal,
        &id,
        Action::Transition {
            to: body.to.clone(),
        },
    )
    .await?;
    record(
        &state,
        &principal,
        "incident.transition",
        &id,
        serde_json::json!({"to": body.to}),
    )
    .await;
    Ok(Json(result))
}

/// Comment on an incident (any role but viewer).
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/comments",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    request_body = CommentBody,
    responses((status = 200, body = ActionResult), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn comment(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CommentBody>,
) -> Result<Json<ActionResult>, ApiError> {
    let length = body.text.chars().count();
    let result = act(&state, &principal, &id, Action::Comment { text: body.text }).await?;
    record(
        &state,
        &principal,
        "incident.comment",
        &id,
        serde_json::json!({"characters": length}),
    )
    .await;
    Ok(Json(result))
}

/// Approve an incident in review (reviewers only; each approves once).
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/approvals",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses((status = 200, body = ActionResult), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
pub async fn approve(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ActionResult>, ApiError> {
    let result = act(&state, &principal, &id, Action::Approve).await?;
    record(
        &state,
        &principal,
        "incident.approve",
        &id,
        serde_json::json!({}),
    )
    .await;
    Ok(Json(result))
}

/// The incident's timeline: comments, state changes, playbook actions, system events.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}/timeline",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id"), TimelineParams),
    responses((status = 200, body = TimelinePage), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn timeline(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<TimelineParams>,
) -> Result<Json<TimelinePage>, ApiError> {
    let (after, limit) = (params.after.unwrap_or(0), PageLimit::or(params.limit, 200));
    load(&state, &principal, &id).await?;
    let entries = state
        .store()
        .timeline(principal.tenant, &id, after, limit)
        .await?;
    let next_after = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(TimelinePage {
        entries,
        next_after,
    }))
}

// ---------------------------------------------------------------- tasks

/// The incident's checklist.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}/tasks",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses((status = 200, body = Vec<Task>), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_tasks(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<Task>>, ApiError> {
    load(&state, &principal, &id).await?;
    Ok(Json(state.store().tasks(principal.tenant, &id).await?))
}

/// Add tasks to the checklist; workers only.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/tasks",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    request_body = NewTasks,
    responses((status = 200, description = "The tasks added", body = Vec<Task>), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn add_tasks(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewTasks>,
) -> Result<Json<Vec<Task>>, ApiError> {
    principal.require_any(WORKERS)?;
    let tasks = state
        .store()
        .add_tasks(principal.tenant, &id, &body.titles, Timestamp::now())
        .await?;
    record(
        &state,
        &principal,
        "incident.tasks.add",
        &id,
        serde_json::json!({"count": tasks.len()}),
    )
    .await;
    Ok(Json(tasks))
}

/// Tick (or untick) a task; workers only.
#[utoipa::path(
    patch,
    path = "/api/v1/incidents/{id}/tasks/{task_id}",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id"), ("task_id" = i64, Path, description = "Task id")),
    request_body = TaskDone,
    responses((status = 200, body = Task), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn set_task(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, task_id)): ApiPath<(String, i64)>,
    ApiJson(body): ApiJson<TaskDone>,
) -> Result<Json<Task>, ApiError> {
    principal.require_any(WORKERS)?;
    let task = state
        .store()
        .set_task_done(
            principal.tenant,
            &id,
            task_id,
            body.done,
            &actor(&principal).user,
            Timestamp::now(),
        )
        .await?;
    record(
        &state,
        &principal,
        "incident.tasks.set",
        &id,
        serde_json::json!({"task": task_id, "done": body.done}),
    )
    .await;
    Ok(Json(task))
}

// ---------------------------------------------------------------- merge, split, similar

/// Merge other incidents into this one; analysts and admins.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/merge",
    tag = "incidents",
    params(("id" = String, Path, description = "The incident that stays")),
    request_body = MergeBody,
    responses((status = 200, body = IncidentView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn merge(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MergeBody>,
) -> Result<Json<IncidentView>, ApiError> {
    principal.require_any(&[Role::Admin, Role::Analyst])?;
    let merged = state
        .store()
        .merge_incidents(
            principal.tenant,
            &id,
            &body.incidents,
            &actor(&principal).user,
            Timestamp::now(),
        )
        .await?;
    record(
        &state,
        &principal,
        "incident.merge",
        &id,
        serde_json::json!({"merged": body.incidents}),
    )
    .await;
    Ok(Json(IncidentView::of(&merged)))
}

/// Move some alerts of this incident into a new one; analysts and admins.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/split",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    request_body = SplitBody,
    responses((status = 201, body = IncidentView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn split(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SplitBody>,
) -> Result<(axum::http::StatusCode, Json<IncidentView>), ApiError> {
    principal.require_any(&[Role::Admin, Role::Analyst])?;
    let store = state.store();
    let source = load(&state, &principal, &id).await?;
    let workflow = store.workflow(principal.tenant, None).await?;
    let mut workflow_def = workflow.workflow;
    workflow_def.version = workflow.version;
    let now = Timestamp::now();
    let actor = actor(&principal);
    let new_id = format!("inc-{}", garrison_model::new_ulid().to_lowercase());
    let (mut incident, created) = Incident::open(
        &workflow_def,
        new_id,
        body.title.clone(),
        source.incident.severity,
        &actor.user,
        now,
    );
    incident.tlp = source.incident.tlp;
    incident.pap = source.incident.pap;
    let mut observables = Vec::new();
    for alert_id in &body.alert_ids {
        if let Some(alert) = store.alert(principal.tenant, alert_id).await? {
            observables.extend(extract_observables(&alert.entity));
            observables.extend(extract_observables(&alert.matched));
        }
    }
    let created = store
        .split_incident(
            principal.tenant,
            &id,
            &Split {
                new_incident: incident,
                events: vec![created],
                alert_ids: body.alert_ids.clone(),
                observables,
            },
            &actor.user,
            now,
        )
        .await?;
    record(
        &state,
        &principal,
        "incident.split",
        &id,
        serde_json::json!({"into": created.incident.id, "alerts": body.alert_ids}),
    )
    .await;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(IncidentView::of(&created)),
    ))
}

/// Past incidents like this one (shared observables, rule, host) and how they were resolved.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}/similar",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id")),
    responses((status = 200, body = SimilarPage), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn similar(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SimilarPage>, ApiError> {
    let (target, candidates) = state
        .store()
        .similarity_profiles(principal.tenant, &id, 200)
        .await?;
    let found = similar_incidents(&target, &candidates, 0.1, 20);
    Ok(Json(SimilarPage { similar: found }))
}

// ---------------------------------------------------------------- metrics

/// SOC figures: alerts per day, alerts → incidents reduction, MTTA and MTTR per stage, % within
/// SLA, false-positive rate per rule (noisiest first).
#[utoipa::path(
    get,
    path = "/api/v1/metrics/soc",
    tag = "incidents",
    params(MetricsParams),
    responses((status = 200, body = SocMetrics), (status = 400, body = Problem)),
    security(("bearer" = []))
)]
pub async fn soc_metrics(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<MetricsParams>,
) -> Result<Json<SocMetrics>, ApiError> {
    let (from, to) = (params.from.map(|t| t.0), params.to.map(|t| t.0));
    let metrics = state.app().soc_metrics(&principal.actor, from, to).await?;
    Ok(Json(metrics))
}
