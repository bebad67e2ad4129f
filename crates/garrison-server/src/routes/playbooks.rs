//! Playbooks and runs (SOAR): create, validate, version, diff, export, import and sync
//! playbooks; start runs by hand or by webhook; list and inspect runs; replay a run against
//! another version; approve (also through a single-use link), cancel and rerun; list, extend,
//! revoke and re-check (reconcile) containments (leases).
//!
//! Each route translates HTTP (path, query, body, status, content type) and calls one
//! operation of `garrison_app::playbooks`, which checks roles, validates and audits. Every
//! route but the webhook and the approval link takes a [`Principal`]; those two carry their
//! own credential, which the operation checks.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use garrison_playbook::RunState;
use garrison_soar::CancelOutcome;

use super::query::ApiQuery;
use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::routes::extract::ApiJson;
use crate::routes::extract::ApiPath;
use crate::AppState;
pub use garrison_api::playbooks::*;

// ---------------------------------------------------------------- playbooks

#[utoipa::path(post, path = "/api/v1/playbooks/validate", tag = "playbooks", request_body = PlaybookBody,
    responses((status = 200, body = ValidationReport), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn validate_playbook(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<PlaybookBody>,
) -> Result<Json<ValidationReport>, ApiError> {
    Ok(Json(
        state
            .app()
            .validate_playbook(&principal.actor, body)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/playbooks", tag = "playbooks", request_body = PlaybookBody,
    responses((status = 201, body = PlaybookVersionView), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_playbook(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<PlaybookBody>,
) -> Result<(StatusCode, Json<PlaybookVersionView>), ApiError> {
    let view = state.app().create_playbook(&principal.actor, body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/api/v1/playbooks", tag = "playbooks",
    responses((status = 200, body = Vec<PlaybookView>), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn list_playbooks(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<PlaybookView>>, ApiError> {
    Ok(Json(state.app().list_playbooks(&principal.actor).await?))
}

#[utoipa::path(get, path = "/api/v1/playbooks/{name}", tag = "playbooks", params(("name" = String, Path)),
    responses((status = 200, body = PlaybookDetail), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_playbook(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PlaybookDetail>, ApiError> {
    Ok(Json(
        state.app().get_playbook(&principal.actor, &name).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/playbooks/{name}/enable", tag = "playbooks", params(("name" = String, Path)),
    responses((status = 200, body = PlaybookView), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn enable_playbook(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PlaybookView>, ApiError> {
    Ok(Json(
        state
            .app()
            .set_playbook_enabled(&principal.actor, &name, true)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/playbooks/{name}/disable", tag = "playbooks", params(("name" = String, Path)),
    responses((status = 200, body = PlaybookView), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn disable_playbook(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PlaybookView>, ApiError> {
    Ok(Json(
        state
            .app()
            .set_playbook_enabled(&principal.actor, &name, false)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/playbooks/{name}/versions", tag = "playbooks", params(("name" = String, Path)),
    responses((status = 200, body = Vec<PlaybookVersionView>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn list_versions(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<PlaybookVersionView>>, ApiError> {
    Ok(Json(
        state
            .app()
            .list_playbook_versions(&principal.actor, &name)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/playbooks/{name}/versions/{version}", tag = "playbooks",
    params(("name" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = PlaybookVersionView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_version(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((name, version)): ApiPath<(String, i64)>,
) -> Result<Json<PlaybookVersionView>, ApiError> {
    Ok(Json(
        state
            .app()
            .get_playbook_version(&principal.actor, &name, version)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/playbooks/{name}/diff", tag = "playbooks", params(("name" = String, Path), DiffParams),
    responses((status = 200, description = "A unified line diff of the two versions' texts", content_type = "text/plain", body = String), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn diff_versions(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<DiffParams>,
) -> Result<Response, ApiError> {
    let text = state
        .app()
        .diff_playbook_versions(&principal.actor, &name, params)
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

#[utoipa::path(get, path = "/api/v1/playbooks/{name}/export", tag = "playbooks", params(("name" = String, Path), ExportParams),
    responses((status = 200, description = "The playbook text as written", content_type = "application/yaml", body = String), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn export_playbook(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let source = state
        .app()
        .export_playbook(&principal.actor, &name, params)
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        source,
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/playbooks/import", tag = "playbooks", request_body = ImportBody,
    responses((status = 200, description = "Saved versions (unchanged texts keep their version)", body = Vec<PlaybookVersionView>), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn import_playbooks(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<ImportBody>,
) -> Result<Json<Vec<PlaybookVersionView>>, ApiError> {
    Ok(Json(
        state.app().import_playbooks(&principal.actor, body).await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/playbook-secrets/{name}", tag = "playbooks", params(("name" = String, Path)), request_body = SecretBody,
    responses((status = 204, description = "Stored (hashed)"), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn put_secret(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SecretBody>,
) -> Result<StatusCode, ApiError> {
    state
        .app()
        .put_playbook_secret(&principal.actor, &name, &body.secret)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- runs

#[utoipa::path(post, path = "/api/v1/playbooks/{name}/runs", tag = "runs", params(("name" = String, Path)), request_body = StartRunBody,
    responses((status = 201, description = "The run (already finished when it had only built-in steps)", body = RunState), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn start_run(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<StartRunBody>,
) -> Result<(StatusCode, Json<RunState>), ApiError> {
    let run = state.app().start_run(&principal.actor, name, body).await?;
    Ok((StatusCode::CREATED, Json(run)))
}

#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunListParams),
    responses((status = 200, body = Vec<RunSummary>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn list_runs(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<RunListParams>,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    Ok(Json(state.app().list_runs(&principal.actor, params).await?))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, description = "The run: status, and each step's state, input, output, attempts, timings and logs", body = RunDetail), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_run(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RunDetail>, ApiError> {
    Ok(Json(state.app().get_run(&principal.actor, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/approve", tag = "runs", params(("id" = String, Path)), request_body = ApproveBody,
    responses((status = 200, description = "The run after the decision", body = RunState), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn approve_run(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ApproveBody>,
) -> Result<Json<RunState>, ApiError> {
    Ok(Json(
        state.app().approve_run(&principal.actor, &id, body).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, description = "Cancelled: the run after", body = RunState),
        (status = 202, description = "The run is busy with an action call: the cancellation is stored (`cancel_requested: true`) and applied when the call returns, before anything else is sent", body = CancelRequested),
        (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn cancel_run(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    Ok(match state.app().cancel_run(&principal.actor, &id).await? {
        CancelOutcome::Done(run) => (StatusCode::OK, Json(run)).into_response(),
        CancelOutcome::Requested(run) => (
            StatusCode::ACCEPTED,
            Json(CancelRequested {
                run,
                cancel_requested: true,
            }),
        )
            .into_response(),
    })
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/rerun", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, description = "The run, going again from its failed steps", body = RunState), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn rerun_run(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RunState>, ApiError> {
    Ok(Json(state.app().rerun_run(&principal.actor, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/approval-links", tag = "runs", params(("id" = String, Path)), request_body = LinkBody,
    responses((status = 201, body = LinkView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_link(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<LinkBody>,
) -> Result<(StatusCode, Json<LinkView>), ApiError> {
    let link = state
        .app()
        .create_approval_link(&principal.actor, &id, body)
        .await?;
    Ok((StatusCode::CREATED, Json(link)))
}

#[utoipa::path(get, path = "/api/v1/approval-links/{secret}", tag = "runs", params(("secret" = String, Path)),
    responses((status = 200, description = "The approval this link decides", body = ApprovalLinkView), (status = 401, body = Problem)))]
pub async fn show_link(
    State(state): State<AppState>,
    ApiPath(secret): ApiPath<String>,
) -> Result<Json<ApprovalLinkView>, ApiError> {
    Ok(Json(state.app().show_approval_link(&secret).await?))
}

#[utoipa::path(post, path = "/api/v1/approval-links/{secret}", tag = "runs", params(("secret" = String, Path)), request_body = ChoiceBody,
    responses((status = 200, description = "Decided; the link no longer works", body = RunRef), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn use_link(
    State(state): State<AppState>,
    ApiPath(secret): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<RunRef>, ApiError> {
    Ok(Json(
        state.app().decide_by_approval_link(&secret, &body).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{tenant}/{playbook}", tag = "playbooks",
    params(("tenant" = String, Path, description = "Tenant name"), ("playbook" = String, Path)),
    request_body(content = Object, description = "Any JSON; its keys fill the declared inputs they name (or the trigger's `inputs` mapping reads it). A delivery id header (`X-Garrison-Delivery`, `X-GitHub-Delivery`, `X-Delivery-Id` or `Idempotency-Key`) makes a redelivery answer the run it started instead of starting another"),
    responses((status = 202, description = "Run started", body = RunRef), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn webhook(
    State(state): State<AppState>,
    ApiPath((tenant, playbook)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<RunRef>), ApiError> {
    // The secret travels in a header; the operation checks it (and refuses a missing one).
    let secret = headers
        .get("x-garrison-webhook-secret")
        .and_then(|v| v.to_str().ok());
    let delivery = [
        "x-garrison-delivery",
        "x-github-delivery",
        "x-delivery-id",
        "idempotency-key",
    ]
    .iter()
    .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
    .map(str::trim)
    .filter(|d| !d.is_empty());
    let run = state
        .app()
        .start_run_by_webhook(&tenant, playbook, secret, delivery, &body)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

// ---------------------------------------------------------------- containments

#[utoipa::path(get, path = "/api/v1/containments", tag = "runs",
    responses((status = 200, description = "Every active lease: what was done to which target, when it is undone, and what its last reconciliation check found (drift)", body = Vec<ContainmentView>)),
    security(("bearer" = [])))]
pub async fn list_containments(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<ContainmentView>>, ApiError> {
    Ok(Json(state.app().list_containments(&principal.actor).await?))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/leases/{step}/extend", tag = "runs",
    params(("id" = String, Path), ("step" = String, Path, description = "The lease's step (`STEP` or `STEP[i]`)")), request_body = ExtendBody,
    responses((status = 200, description = "The run, with the lease's new end", body = RunState), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn extend_lease(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, step)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<ExtendBody>,
) -> Result<Json<RunState>, ApiError> {
    Ok(Json(
        state
            .app()
            .extend_lease(&principal.actor, &id, &step, body)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/leases/{step}/revoke", tag = "runs",
    params(("id" = String, Path), ("step" = String, Path)),
    responses((status = 200, description = "The lease ended now; its undo ran", body = RunState), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke_lease(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, step)): ApiPath<(String, String)>,
) -> Result<Json<RunState>, ApiError> {
    Ok(Json(
        state
            .app()
            .revoke_lease(&principal.actor, &id, &step)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/leases/{step}/reconcile", tag = "runs",
    params(("id" = String, Path), ("step" = String, Path, description = "The lease's step (`STEP` or `STEP[i]`)")),
    responses((status = 200, description = "The lease after re-checking its target now", body = ContainmentView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn reconcile_lease(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, step)): ApiPath<(String, String)>,
) -> Result<Json<ContainmentView>, ApiError> {
    Ok(Json(
        state
            .app()
            .reconcile_lease(&principal.actor, &id, &step)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/replay", tag = "runs", params(("id" = String, Path)),
    request_body(content = ReplayBody, description = "Optional; `{}` replays against the latest version"),
    responses((status = 200, description = "The path the version takes with the run's trigger and inputs, simulated (nothing is sent or stored), beside the run's own path", body = ReplayView), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn replay_run(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<ReplayView>, ApiError> {
    // The body is optional: nothing (or only whitespace) replays against the latest version.
    let body: ReplayBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("expected {{\"version\": N}}: {e}")))?
    };
    Ok(Json(
        state.app().replay_run(&principal.actor, &id, body).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/playbooks/sync", tag = "playbooks", request_body = SyncBody,
    responses((status = 200, description = "Per file: created, updated (a new version), unchanged, or error with every error's place; the good files are saved even when others fail", body = SyncReport), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn sync_playbooks(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<SyncBody>,
) -> Result<Json<SyncReport>, ApiError> {
    Ok(Json(
        state.app().sync_playbooks(&principal.actor, body).await?,
    ))
}
