//! Incidents: the queue, the case file, and the workflow actions on it, plus the SOC metrics.
//!
//! Each handler translates HTTP into one operation of `garrison_app` (`App::list_incidents`,
//! `App::incident_action`, ...), which checks the roles and the workflow, writes and audits.

use super::query::ApiQuery;
use axum::extract::State;
use axum::Json;
use garrison_cases::{Action, IncidentUpdate, SocMetrics};
use garrison_store::Task;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::routes::extract::ApiJson;
use crate::routes::extract::ApiPath;
use crate::AppState;
pub use garrison_api::incidents::*;

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
    Ok(Json(
        state.app().list_incidents(&principal.actor, params).await?,
    ))
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
    let created = state.app().create_incident(&principal.actor, body).await?;
    Ok((axum::http::StatusCode::CREATED, Json(created)))
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
    Ok(Json(state.app().incident(&principal.actor, &id).await?))
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
    Ok(Json(
        state
            .app()
            .update_incident(&principal.actor, &id, update)
            .await?,
    ))
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
    Ok(Json(
        state
            .app()
            .incident_action(&principal.actor, &id, action)
            .await?,
    ))
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
    Ok(Json(
        state
            .app()
            .transition_incident(&principal.actor, &id, body.to)
            .await?,
    ))
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
    Ok(Json(
        state
            .app()
            .comment_incident(&principal.actor, &id, body.text)
            .await?,
    ))
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
    Ok(Json(
        state.app().approve_incident(&principal.actor, &id).await?,
    ))
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
    Ok(Json(
        state.app().timeline(&principal.actor, &id, params).await?,
    ))
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
    Ok(Json(state.app().tasks(&principal.actor, &id).await?))
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
    Ok(Json(
        state.app().add_tasks(&principal.actor, &id, body).await?,
    ))
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
    Ok(Json(
        state
            .app()
            .set_task(&principal.actor, &id, task_id, body.done)
            .await?,
    ))
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
    Ok(Json(
        state
            .app()
            .merge_incidents(&principal.actor, &id, body)
            .await?,
    ))
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
    let created = state
        .app()
        .split_incident(&principal.actor, &id, body)
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(created)))
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
    Ok(Json(
        state.app().similar_incidents(&principal.actor, &id).await?,
    ))
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
