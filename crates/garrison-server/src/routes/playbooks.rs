//! Playbooks and runs (SOAR): create, validate, version, diff, export, import and sync
//! playbooks; start runs by hand or by webhook; list and inspect runs; replay a run against
//! another version; approve (also through a single-use link), cancel and rerun; list, extend,
//! revoke and re-check (reconcile) containments (leases).
//!
//! Every route but the webhook and the approval link takes a [`Principal`] and passes its
//! tenant to the service; reading needs any role, changing needs `admin` or `responder`.

use axum::extract::State;
use garrison_model::PageLimit;

use super::query::ApiQuery;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use garrison_model::{Role, TenantId};
use garrison_playbook::{Event, LeaseStatus, RunState};
use garrison_soar::{CancelOutcome, SoarError, StartRun};
use garrison_store::{
    PlaybookRepo, PlaybookSummary, PlaybookVersion, RunFilter, TenantRepo, UserRepo,
};
use jiff::Timestamp;
use serde_json::{json, Value as Json_};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::routes::audit::{record, record_as};
use crate::routes::extract::ApiJson;
use crate::routes::extract::ApiPath;
use crate::AppState;
pub use garrison_api::playbooks::*;

const WRITERS: &[Role] = &[Role::Admin, Role::Responder];

impl From<SoarError> for ApiError {
    fn from(error: SoarError) -> Self {
        match error {
            SoarError::Store(e) => e.into(),
            SoarError::UnknownPlaybook { .. } | SoarError::UnknownRun(_) => {
                ApiError::new(ErrorCode::NotFound, error.to_string())
            }
            SoarError::Invalid(errors) => {
                let n = errors.len();
                let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
                ApiError::invalid(format!("the playbook has {n} error(s); first: {first}"))
                    .with_errors(errors.iter().map(validation_error_json).collect())
            }
            SoarError::Inputs(e) => ApiError::invalid(e.to_string()),
            SoarError::Refused(reason) => ApiError::invalid(reason),
            SoarError::Contention(_) => ApiError::new(ErrorCode::Conflict, error.to_string()),
            SoarError::Runs(e) => ApiError::internal(e),
        }
    }
}

fn validation_error_json(e: &garrison_playbook::ValidationError) -> Json_ {
    json!({"path": e.path, "line": e.line, "column": e.column, "message": e.message, "text": e.to_string()})
}

// ---------------------------------------------------------------- views

fn containment_view(run: &RunState, l: &garrison_playbook::LeaseRecord) -> ContainmentView {
    ContainmentView {
        lease_id: l.id.clone(),
        run_id: run.run_id.clone(),
        playbook: run.playbook.clone(),
        step: l.step.clone(),
        action: l.action.clone(),
        undo_action: l.undo_action.clone(),
        target: l.target.clone(),
        status: serde_json::to_value(l.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        acquired_at: l.acquired_at.to_string(),
        expires_at: l.expires_at.to_string(),
        check_action: l.check_action.clone(),
        last_checked: l.last_check.as_ref().map(|c| c.at.to_string()),
        in_place: l.last_check.as_ref().and_then(|c| c.in_place),
        check_detail: l.last_check.as_ref().map(|c| c.detail.clone()),
        drift: l.drift_since.is_some(),
        drift_since: l.drift_since.map(|t| t.to_string()),
    }
}

async fn actor(state: &AppState, principal: &Principal) -> String {
    if let Some(id) = principal.token.user_id {
        if let Ok(users) = state.store().list_users(principal.tenant).await {
            if let Some(u) = users.into_iter().find(|u| u.id == id) {
                return u.username;
            }
        }
    }
    format!("token:{}", principal.token.name)
}

// ---------------------------------------------------------------- playbooks

#[utoipa::path(post, path = "/api/v1/playbooks/validate", tag = "playbooks", request_body = PlaybookBody,
    responses((status = 200, body = ValidationReport), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn validate_playbook(
    State(state): State<AppState>,
    _principal: Principal,
    ApiJson(body): ApiJson<PlaybookBody>,
) -> Result<Json<ValidationReport>, ApiError> {
    let text = body.text().map_err(ApiError::invalid)?;
    let (playbook, errors) = garrison_playbook::validate(&text, state.soar().registry());
    Ok(Json(ValidationReport {
        valid: errors.is_empty() && playbook.is_some(),
        name: playbook.map(|p| p.name),
        errors: errors.iter().map(PlaybookProblem::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/playbooks", tag = "playbooks", request_body = PlaybookBody,
    responses((status = 201, body = PlaybookVersionView), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_playbook(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<PlaybookBody>,
) -> Result<(StatusCode, Json<PlaybookVersionView>), ApiError> {
    principal.require_any(WRITERS)?;
    let text = body.text().map_err(ApiError::invalid)?;
    let by = actor(&state, &principal).await;
    let version = state
        .soar()
        .save_playbook(principal.tenant, &text, Some(&by))
        .await?;
    let view: PlaybookVersionView = version.into();
    record(
        &state,
        &principal,
        "playbook.save",
        &view.name,
        json!({"version": view.version, "source_sha256": view.source_sha256}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/api/v1/playbooks", tag = "playbooks",
    responses((status = 200, body = Vec<PlaybookView>), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn list_playbooks(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<PlaybookView>>, ApiError> {
    let list = state.store().list_playbooks(principal.tenant).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

async fn summary(
    state: &AppState,
    tenant: TenantId,
    name: &str,
) -> Result<PlaybookSummary, ApiError> {
    state
        .store()
        .playbook_summary(tenant, name)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("playbook {name:?} not found")))
}

async fn version_row(
    state: &AppState,
    tenant: TenantId,
    name: &str,
    version: Option<i64>,
) -> Result<PlaybookVersion, ApiError> {
    state
        .store()
        .playbook_version(tenant, name, version)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!(
                    "playbook {name:?}{} not found",
                    version.map(|v| format!(" version {v}")).unwrap_or_default()
                ),
            )
        })
}

#[utoipa::path(get, path = "/api/v1/playbooks/{name}", tag = "playbooks", params(("name" = String, Path)),
    responses((status = 200, body = PlaybookDetail), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_playbook(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PlaybookDetail>, ApiError> {
    let s = summary(&state, principal.tenant, &name).await?;
    let latest = version_row(&state, principal.tenant, &name, Some(s.latest_version)).await?;
    let (pb, _) = state
        .soar()
        .playbook(
            principal.tenant,
            &name,
            u32::try_from(s.latest_version).ok(),
        )
        .await?;
    Ok(Json(PlaybookDetail {
        playbook: s.into(),
        latest: latest.into(),
        input_form: pb.input_form(),
    }))
}

async fn set_enabled(
    state: AppState,
    principal: Principal,
    name: String,
    enabled: bool,
) -> Result<Json<PlaybookView>, ApiError> {
    principal.require_any(WRITERS)?;
    let s = state
        .store()
        .set_playbook_enabled(principal.tenant, &name, enabled)
        .await?;
    let action = if enabled {
        "playbook.enable"
    } else {
        "playbook.disable"
    };
    record(&state, &principal, action, &name, json!({})).await;
    Ok(Json(s.into()))
}

#[utoipa::path(post, path = "/api/v1/playbooks/{name}/enable", tag = "playbooks", params(("name" = String, Path)),
    responses((status = 200, body = PlaybookView), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn enable_playbook(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PlaybookView>, ApiError> {
    set_enabled(state, principal, name, true).await
}

#[utoipa::path(post, path = "/api/v1/playbooks/{name}/disable", tag = "playbooks", params(("name" = String, Path)),
    responses((status = 200, body = PlaybookView), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn disable_playbook(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PlaybookView>, ApiError> {
    set_enabled(state, principal, name, false).await
}

#[utoipa::path(get, path = "/api/v1/playbooks/{name}/versions", tag = "playbooks", params(("name" = String, Path)),
    responses((status = 200, body = Vec<PlaybookVersionView>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn list_versions(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<PlaybookVersionView>>, ApiError> {
    summary(&state, principal.tenant, &name).await?;
    let versions = state
        .store()
        .playbook_versions(principal.tenant, &name)
        .await?;
    Ok(Json(versions.into_iter().map(Into::into).collect()))
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
        version_row(&state, principal.tenant, &name, Some(version))
            .await?
            .into(),
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
    let a = version_row(&state, principal.tenant, &name, Some(params.from)).await?;
    let b = version_row(&state, principal.tenant, &name, params.to).await?;
    let text = line_diff(
        &a.source,
        &b.source,
        &format!("{name} v{}", a.version),
        &format!("{name} v{}", b.version),
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// A unified diff (every line, `-`, `+` or ` `) by longest common subsequence.
pub fn line_diff(a: &str, b: &str, a_name: &str, b_name: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut out = format!("--- {a_name}\n+++ {b_name}\n");
    if n.saturating_mul(m) > 4_000_000 {
        a.iter().for_each(|l| out.push_str(&format!("-{l}\n")));
        b.iter().for_each(|l| out.push_str(&format!("+{l}\n")));
        return out;
    }
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str(&format!(" {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
    out
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
    let v = version_row(&state, principal.tenant, &name, params.version).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        v.source,
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
    principal.require_any(WRITERS)?;
    // Validate every text first: a folder is synced whole or not at all.
    let mut errors = Vec::new();
    for (i, source) in body.sources.iter().enumerate() {
        if let Err(SoarError::Invalid(list)) = state.soar().validate(source) {
            for e in list {
                let mut v = validation_error_json(&e);
                if let Some(o) = v.as_object_mut() {
                    o.insert("source".into(), json!(i));
                }
                errors.push(v);
            }
        }
    }
    if !errors.is_empty() {
        return Err(
            ApiError::invalid(format!("{} error(s); nothing was imported", errors.len()))
                .with_errors(errors),
        );
    }
    let by = actor(&state, &principal).await;
    let mut saved: Vec<PlaybookVersionView> = Vec::new();
    for source in &body.sources {
        saved.push(
            state
                .soar()
                .save_playbook(principal.tenant, source, Some(&by))
                .await?
                .into(),
        );
    }
    let versions: Vec<Json_> = saved
        .iter()
        .map(|v| json!({"name": v.name, "version": v.version}))
        .collect();
    record(
        &state,
        &principal,
        "playbook.import",
        "playbooks",
        json!({"versions": versions}),
    )
    .await;
    Ok(Json(saved))
}

#[utoipa::path(put, path = "/api/v1/playbook-secrets/{name}", tag = "playbooks", params(("name" = String, Path)), request_body = SecretBody,
    responses((status = 204, description = "Stored (hashed)"), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn put_secret(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SecretBody>,
) -> Result<StatusCode, ApiError> {
    principal.require_admin()?;
    if body.secret.len() < 16 {
        return Err(ApiError::invalid(
            "a webhook secret needs at least 16 characters",
        ));
    }
    state
        .store()
        .put_secret_hash(
            principal.tenant,
            &name,
            &garrison_soar::secret_hash(&body.secret),
        )
        .await?;
    // The secret itself never goes to the log.
    record(&state, &principal, "playbook.secret.put", &name, json!({})).await;
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
    principal.require_any(WRITERS)?;
    let by = actor(&state, &principal).await;
    let run = state
        .soar()
        .start_run(
            principal.tenant,
            StartRun {
                playbook: name,
                version: body.version,
                inputs: body.inputs.unwrap_or_else(|| json!({})),
                trigger: json!({"kind": "manual", "by": by}),
                dry_run: body.dry_run,
                ..Default::default()
            },
        )
        .await?;
    record(
        &state,
        &principal,
        "run.start",
        &run.run_id,
        json!({"playbook": run.playbook, "version": run.version, "dry_run": run.dry_run}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(run)))
}

#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunListParams),
    responses((status = 200, body = Vec<RunSummary>), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn list_runs(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<RunListParams>,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    let filter = RunFilter {
        playbook: params.playbook,
        status: params.status,
        active: params.active,
        before: params.before.map(|t| t.0),
        limit: PageLimit::or(params.limit, 100),
    };
    let runs = state
        .store()
        .list_runs(principal.tenant, &filter, false)
        .await?;
    Ok(Json(
        runs.into_iter()
            .map(|r| RunSummary {
                run_id: r.run_id,
                playbook: r.playbook,
                version: r.version,
                status: r.status,
                active: r.active,
                created: r.created.to_string(),
                updated: r.updated.to_string(),
            })
            .collect(),
    ))
}

async fn load_run(
    state: &AppState,
    tenant: TenantId,
    id: &str,
) -> Result<(RunState, i64), ApiError> {
    state
        .soar()
        .load(tenant, id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("run {id:?} not found")))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, description = "The run: status, and each step's state, input, output, attempts, timings and logs", body = RunDetail), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_run(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let (run, rev) = load_run(&state, principal.tenant, &id).await?;
    Ok(Json(RunDetail { run, rev }))
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
    principal.require_any(WRITERS)?;
    let (run, _) = load_run(&state, principal.tenant, &id).await?;
    let by = actor(&state, &principal).await;
    if let Some(approval) = run.step(&body.step).and_then(|s| s.approval.as_ref()) {
        let roles: Vec<&str> = principal.token.roles.iter().map(|r| r.as_str()).collect();
        if !garrison_soar::may_approve(&approval.approvers, &by, &roles) {
            return Err(ApiError::forbidden(
                "you are not among this approval's approvers",
            ));
        }
    }
    let run = state
        .soar()
        .decide(principal.tenant, &id, &body.step, &body.choice, &by)
        .await?;
    record(
        &state,
        &principal,
        "run.approve",
        &id,
        json!({"step": body.step, "choice": body.choice}),
    )
    .await;
    Ok(Json(run))
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
    principal.require_any(WRITERS)?;
    load_run(&state, principal.tenant, &id).await?;
    let by = actor(&state, &principal).await;
    let outcome = state.soar().cancel(principal.tenant, &id, &by).await?;
    let requested = matches!(outcome, CancelOutcome::Requested(_));
    record(
        &state,
        &principal,
        "run.cancel",
        &id,
        json!({"deferred": requested}),
    )
    .await;
    Ok(match outcome {
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
    principal.require_any(WRITERS)?;
    let (before, _) = load_run(&state, principal.tenant, &id).await?;
    if before.status != garrison_playbook::RunStatus::Failed {
        return Err(ApiError::invalid("only a failed run can be rerun"));
    }
    let run = state
        .soar()
        .deliver(principal.tenant, &id, Event::Rerun)
        .await?;
    record(&state, &principal, "run.rerun", &id, json!({})).await;
    Ok(Json(run))
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
    principal.require_any(WRITERS)?;
    load_run(&state, principal.tenant, &id).await?;
    let valid = std::time::Duration::from_secs(
        body.valid_for_seconds
            .unwrap_or(86_400)
            .clamp(60, 30 * 86_400),
    );
    let (secret, expires) = state
        .soar()
        .create_approval_link(principal.tenant, &id, &body.step, valid)
        .await?;
    record(
        &state,
        &principal,
        "run.approval_link.create",
        &id,
        json!({"step": body.step, "expires": expires.to_string()}),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(LinkView {
            path: format!("/api/v1/approval-links/{secret}"),
            expires: expires.to_string(),
        }),
    ))
}

/// The link is the credential: an unknown, used or expired one is refused like a bad token.
fn link_gone() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidToken,
        "the approval link is unknown, used or expired",
    )
}

#[utoipa::path(get, path = "/api/v1/approval-links/{secret}", tag = "runs", params(("secret" = String, Path)),
    responses((status = 200, description = "The approval this link decides", body = ApprovalLinkView), (status = 401, body = Problem)))]
pub async fn show_link(
    State(state): State<AppState>,
    ApiPath(secret): ApiPath<String>,
) -> Result<Json<ApprovalLinkView>, ApiError> {
    let gone = link_gone;
    let link = state
        .soar()
        .approval_link(&secret)
        .await?
        .ok_or_else(gone)?;
    let (run, _) = load_run(&state, link.tenant_id, &link.run_id).await?;
    let approval = run
        .step(&link.step)
        .and_then(|s| s.approval.clone())
        .ok_or_else(gone)?;
    Ok(Json(ApprovalLinkView {
        run_id: link.run_id,
        playbook: run.playbook,
        step: link.step,
        message: approval.message,
        choices: approval.choices,
        expires: link.expires.to_string(),
    }))
}

#[utoipa::path(post, path = "/api/v1/approval-links/{secret}", tag = "runs", params(("secret" = String, Path)), request_body = ChoiceBody,
    responses((status = 200, description = "Decided; the link no longer works", body = RunRef), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn use_link(
    State(state): State<AppState>,
    ApiPath(secret): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<RunRef>, ApiError> {
    // The link is checked before the body is read: without it, nothing is said.
    if state.soar().approval_link(&secret).await?.is_none() {
        return Err(link_gone());
    }
    let body: ChoiceBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("expected {{\"choice\": \"...\"}}: {e}")))?;
    let link = state.soar().approval_link(&secret).await?;
    let run = match state.soar().decide_by_link(&secret, &body.choice).await {
        Err(SoarError::Refused(reason)) if reason.contains("unknown, used or expired") => {
            return Err(link_gone())
        }
        other => other?,
    };
    if let Some(link) = link {
        record_as(
            &state,
            link.tenant_id,
            "approval-link",
            "run.approve",
            &run.run_id,
            json!({"step": link.step, "choice": body.choice, "via": "approval link"}),
        )
        .await;
    }
    Ok(Json(RunRef {
        run_id: run.run_id,
        status: run.status,
    }))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{tenant}/{playbook}", tag = "playbooks",
    params(("tenant" = String, Path, description = "Tenant name"), ("playbook" = String, Path)),
    request_body(content = Object, description = "Any JSON; `inputs` (an object) become the run's inputs"),
    responses((status = 202, description = "Run started", body = RunRef), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn webhook(
    State(state): State<AppState>,
    ApiPath((tenant, playbook)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<RunRef>), ApiError> {
    // One answer for every failure before the secret is checked: callers cannot probe which
    // tenants, playbooks or secrets exist.
    let refused = || {
        ApiError::new(
            ErrorCode::InvalidToken,
            "unknown webhook or wrong secret (send X-Garrison-Webhook-Secret)",
        )
    };
    let presented = headers
        .get("x-garrison-webhook-secret")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(refused)?;
    let tenant = state
        .store()
        .tenant_by_name(&tenant)
        .await?
        .ok_or_else(refused)?;
    let (pb, version) = match state.soar().playbook(tenant.id, &playbook, None).await {
        Ok(p) => p,
        Err(SoarError::UnknownPlaybook { .. }) => return Err(refused()),
        Err(e) => return Err(e.into()),
    };
    let secret_names: Vec<&str> = pb
        .triggers
        .iter()
        .filter_map(|t| match t {
            garrison_playbook::Trigger::Webhook { secret } => Some(secret.as_str()),
            _ => None,
        })
        .collect();
    let presented_hash = garrison_soar::secret_hash(presented);
    let mut ok = false;
    for name in secret_names {
        if let Some(stored) = state.store().secret_hash(tenant.id, name).await? {
            ok |= garrison_soar::constant_time_eq(&stored, &presented_hash);
        }
    }
    if !ok {
        return Err(refused());
    }
    let body: Json_ = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("the body is not JSON: {e}")))?
    };
    let inputs = body
        .get("inputs")
        .filter(|i| i.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    let run = state
        .soar()
        .start_run(
            tenant.id,
            StartRun {
                playbook,
                version: Some(version),
                inputs,
                trigger: json!({"kind": "webhook", "body": body}),
                ..Default::default()
            },
        )
        .await?;
    record_as(
        &state,
        tenant.id,
        &format!("webhook:{}", run.playbook),
        "run.start",
        &run.run_id,
        json!({"playbook": run.playbook, "version": run.version, "trigger": "webhook"}),
    )
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(RunRef {
            run_id: run.run_id,
            status: run.status,
        }),
    ))
}

// ---------------------------------------------------------------- containments

#[utoipa::path(get, path = "/api/v1/containments", tag = "runs",
    responses((status = 200, description = "Every active lease: what was done to which target, when it is undone, and what its last reconciliation check found (drift)", body = Vec<ContainmentView>)),
    security(("bearer" = [])))]
pub async fn list_containments(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<ContainmentView>>, ApiError> {
    let filter = RunFilter {
        active: Some(true),
        limit: 10_000,
        ..Default::default()
    };
    let runs = state
        .store()
        .list_runs(principal.tenant, &filter, false)
        .await?;
    let mut out = Vec::new();
    for r in runs {
        let Some((run, _)) = state.soar().load(principal.tenant, &r.run_id).await? else {
            continue;
        };
        if run.dry_run {
            // Simulated: nothing is held on any target.
            continue;
        }
        for l in &run.leases {
            if matches!(
                l.status,
                LeaseStatus::Active | LeaseStatus::Releasing | LeaseStatus::UndoFailed
            ) {
                out.push(containment_view(&run, l));
            }
        }
    }
    Ok(Json(out))
}

fn lease_of(run: &RunState, lease: &str) -> Result<(), ApiError> {
    if run.lease(lease).is_none() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("lease {lease:?} not found"),
        ));
    }
    Ok(())
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
    principal.require_any(WRITERS)?;
    let (run, _) = load_run(&state, principal.tenant, &id).await?;
    let lease = format!("{id}/{step}");
    lease_of(&run, &lease)?;
    let until = match (&body.until, &body.r#for) {
        (Some(u), None) => u
            .parse::<Timestamp>()
            .map_err(|e| ApiError::invalid(format!("until: {e}")))?,
        (None, Some(f)) => {
            let d: garrison_playbook::Duration = f
                .parse()
                .map_err(|e: String| ApiError::invalid(format!("for: {e}")))?;
            Timestamp::now()
                .checked_add(d.to_signed())
                .map_err(|e| ApiError::invalid(format!("for: {e}")))?
        }
        _ => return Err(ApiError::invalid("send one of `until` or `for`")),
    };
    let by = actor(&state, &principal).await;
    let run = state
        .soar()
        .deliver(
            principal.tenant,
            &id,
            Event::ExtendLease {
                lease: lease.clone(),
                until,
                by,
            },
        )
        .await?;
    record(
        &state,
        &principal,
        "lease.extend",
        &lease,
        json!({"until": until.to_string()}),
    )
    .await;
    Ok(Json(run))
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
    principal.require_any(WRITERS)?;
    let (run, _) = load_run(&state, principal.tenant, &id).await?;
    let lease = format!("{id}/{step}");
    lease_of(&run, &lease)?;
    let by = actor(&state, &principal).await;
    let run = state
        .soar()
        .deliver(
            principal.tenant,
            &id,
            Event::RevokeLease {
                lease: lease.clone(),
                by,
            },
        )
        .await?;
    record(&state, &principal, "lease.revoke", &lease, json!({})).await;
    Ok(Json(run))
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
    principal.require_any(WRITERS)?;
    let (run, _) = load_run(&state, principal.tenant, &id).await?;
    let lease = format!("{id}/{step}");
    lease_of(&run, &lease)?;
    let run = state
        .soar()
        .reconcile_run(principal.tenant, &id, Some(&lease))
        .await?;
    let l = run
        .lease(&lease)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("lease {lease:?} not found")))?;
    Ok(Json(containment_view(&run, l)))
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
    let body: ReplayBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("expected {{\"version\": N}}: {e}")))?
    };
    load_run(&state, principal.tenant, &id).await?;
    let replay = state
        .soar()
        .replay(
            principal.tenant,
            &id,
            body.version,
            body.recorded_outputs.unwrap_or(true),
        )
        .await?;
    let path = garrison_soar::path_taken(&replay.state);
    let original_path = garrison_soar::path_taken(&replay.original);
    let added: Vec<String> = path
        .iter()
        .filter(|s| !original_path.contains(s))
        .cloned()
        .collect();
    let removed: Vec<String> = original_path
        .iter()
        .filter(|s| !path.contains(s))
        .cloned()
        .collect();
    let steps: Vec<ReplayStep> = replay
        .state
        .steps
        .iter()
        .map(|s| ReplayStep {
            id: s.id.clone(),
            status: s.status,
            recorded: replay.recorded_steps.contains(&s.id),
            input: s.input.clone(),
            output: s.output.clone(),
            error: s.error.clone(),
        })
        .collect();
    Ok(Json(ReplayView {
        run_id: id,
        playbook: replay.original.playbook,
        original_version: replay.original.version,
        version: replay.state.version,
        status: replay.state.status,
        error: replay.state.error,
        path,
        original_path,
        added_to_path: added,
        removed_from_path: removed,
        steps,
        ignored_inputs: replay.ignored_inputs,
        recorded_steps: replay.recorded_steps,
    }))
}

#[utoipa::path(post, path = "/api/v1/playbooks/sync", tag = "playbooks", request_body = SyncBody,
    responses((status = 200, description = "Per file: created, updated (a new version), unchanged, or error with every error's place; the good files are saved even when others fail", body = SyncReport), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn sync_playbooks(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<SyncBody>,
) -> Result<Json<SyncReport>, ApiError> {
    principal.require_any(WRITERS)?;
    let by = actor(&state, &principal).await;
    let mut report = SyncReport {
        files: Vec::new(),
        created: 0,
        updated: 0,
        unchanged: 0,
        failed: 0,
    };
    // Which file defined each name first: a second file with the same name is an error.
    let mut names: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for file in body.files {
        let mut result = SyncFileResult {
            path: file.path.clone(),
            status: "error".into(),
            name: None,
            version: None,
            errors: Vec::new(),
        };
        let name = match state.soar().validate(&file.source) {
            Ok(p) => Some(p.name),
            Err(SoarError::Invalid(list)) => {
                result.errors = list.iter().map(PlaybookProblem::from).collect();
                None
            }
            Err(e) => {
                result.errors = vec![PlaybookProblem::unplaced(e.to_string())];
                None
            }
        };
        if let Some(name) = name {
            result.name = Some(name.clone());
            if let Some(first) = names.get(&name) {
                let message = format!("playbook {name:?} is also defined in {first}");
                result.errors = vec![PlaybookProblem {
                    path: Some("name".into()),
                    line: None,
                    column: None,
                    text: format!("name: {message}"),
                    message,
                }];
            } else {
                names.insert(name, file.path.clone());
                match state
                    .soar()
                    .sync_playbook(principal.tenant, &file.source, Some(&by))
                    .await
                {
                    Ok((version, status)) => {
                        result.version = Some(version.version);
                        result.status = serde_json::to_value(status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default();
                    }
                    Err(SoarError::Invalid(list)) => {
                        result.errors = list.iter().map(PlaybookProblem::from).collect();
                    }
                    Err(SoarError::Store(e)) => return Err(e.into()),
                    Err(e) => {
                        result.errors = vec![PlaybookProblem::unplaced(e.to_string())];
                    }
                }
            }
        }
        match result.status.as_str() {
            "created" => report.created += 1,
            "updated" => report.updated += 1,
            "unchanged" => report.unchanged += 1,
            _ => report.failed += 1,
        }
        report.files.push(result);
    }
    let changed: Vec<Json_> = report
        .files
        .iter()
        .filter(|f| f.status == "created" || f.status == "updated")
        .map(|f| json!({"name": f.name, "version": f.version, "status": f.status}))
        .collect();
    record(
        &state,
        &principal,
        "playbook.sync",
        "playbooks",
        json!({"changed": changed, "failed": report.failed}),
    )
    .await;
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines() {
        let d = line_diff("a\nb\nc\n", "a\nx\nc\n", "v1", "v2");
        assert_eq!(d, "--- v1\n+++ v2\n a\n-b\n+x\n c\n");
    }
}
