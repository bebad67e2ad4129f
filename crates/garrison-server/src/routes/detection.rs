//! Detection rules and alerts. Every handler takes a [`Principal`] and passes its tenant to the
//! store; changing rules needs the admin or analyst role and is recorded in the audit log.

use super::query::ApiQuery;
use axum::body::Bytes;
use axum::extract::{Multipart, Request, State};
use axum::http::header;
use axum::Json;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::routes::extract::{ApiJson, ApiPath};
use crate::AppState;
pub use garrison_api::detection::*;

// ---------------------------------------------------------------- views

// ---------------------------------------------------------------- rules

/// Import Sigma rule files: a JSON list of files, a zip archive (`Content-Type:
/// application/zip`, e.g. SigmaHQ's release), or a `multipart/form-data` upload of `.zip`,
/// `.yml` and `.yaml` files (and an optional `enable` field). Changed files become new versions;
/// admins and analysts.
#[utoipa::path(
    post,
    path = "/api/v1/rules/import",
    tag = "rules",
    params(ImportParams),
    request_body(content = ImportRequest, description = "JSON files, a zip archive as application/zip, or multipart/form-data files"),
    responses(
        (status = 200, description = "Imported", body = ImportResult),
        (status = 400, description = "Bad body", body = Problem),
        (status = 403, description = "Not allowed", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn import_rules(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ImportParams>,
    request: Request,
) -> Result<Json<ImportResult>, ApiError> {
    use axum::extract::FromRequest;
    principal.require_any(garrison_app::rules::RULE_AUTHORS)?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (sources, rejected, enable, origin) = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::invalid(format!("multipart body: {e}")))?;
        read_multipart(multipart).await?
    } else {
        let body = Bytes::from_request(request, &state)
            .await
            .map_err(|e| ApiError::invalid(format!("body: {e}")))?;
        read_body(&content_type, params, body).await?
    };
    import_sources(&state, &principal, sources, rejected, enable, origin).await
}

type ReadRules = (
    Vec<garrison_sigma::RuleSource>,
    Vec<garrison_sigma::RuleError>,
    bool,
    String,
);

async fn read_multipart(mut multipart: Multipart) -> Result<ReadRules, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::invalid(format!("multipart body: {e}"))
    };
    let mut sources = Vec::new();
    let mut rejected = Vec::new();
    let mut enable = false;
    let mut names = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let field_name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let data = field.bytes().await.map_err(bad)?;
        match file_name {
            None if field_name == "enable" => {
                enable = match String::from_utf8_lossy(&data).trim() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" | "" => false,
                    other => {
                        return Err(ApiError::invalid(format!(
                            "form field enable: {other:?} is not true or false"
                        )))
                    }
                }
            }
            None => {
                return Err(ApiError::invalid(format!(
                    "multipart field {field_name:?}: expected files and an optional `enable`"
                )))
            }
            Some(file) if file.to_ascii_lowercase().ends_with(".zip") => {
                let name = file.clone();
                let (mut s, mut r) = tokio::task::spawn_blocking(move || {
                    garrison_detect::rules::sources_from_zip(&name, &data)
                })
                .await
                .map_err(ApiError::internal)?
                .map_err(|e| ApiError::invalid(e.to_string()))?;
                sources.append(&mut s);
                rejected.append(&mut r);
                names.push(file);
            }
            Some(file) => match String::from_utf8(data.to_vec()) {
                Ok(text) => {
                    sources.push(garrison_sigma::RuleSource::new(file.clone(), text));
                    names.push(file);
                }
                Err(_) => rejected.push(garrison_sigma::RuleError {
                    path: file,
                    line: None,
                    rule: None,
                    reason: "not UTF-8 text".into(),
                }),
            },
        }
    }
    let origin = if names.len() == 1 {
        names.remove(0)
    } else {
        "upload".to_string()
    };
    Ok((sources, rejected, enable, origin))
}

async fn read_body(
    content_type: &str,
    params: ImportParams,
    body: Bytes,
) -> Result<ReadRules, ApiError> {
    let is_zip = content_type.starts_with("application/zip")
        || content_type.starts_with("application/x-zip")
        || content_type.starts_with("application/octet-stream")
        || body.starts_with(b"PK\x03\x04");
    let (sources, rejected, enable, origin) = if is_zip {
        let enable = params.enable.unwrap_or(false);
        let name = params.name.unwrap_or_else(|| "upload.zip".to_string());
        let archive = name.clone();
        let (sources, rejected) = tokio::task::spawn_blocking(move || {
            garrison_detect::rules::sources_from_zip(&name, &body)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::invalid(e.to_string()))?;
        (sources, rejected, enable, archive)
    } else {
        let request: ImportRequest =
            serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("body: {e}")))?;
        let sources: Vec<garrison_sigma::RuleSource> = request
            .files
            .into_iter()
            .map(|f| garrison_sigma::RuleSource::new(f.path, f.text))
            .collect();
        (sources, Vec::new(), request.enable, "upload".to_string())
    };
    Ok((sources, rejected, enable, origin))
}

async fn import_sources(
    state: &AppState,
    principal: &Principal,
    sources: Vec<garrison_sigma::RuleSource>,
    rejected: Vec<garrison_sigma::RuleError>,
    enable: bool,
    origin: String,
) -> Result<Json<ImportResult>, ApiError> {
    let outcome = state
        .app()
        .import_rules(&principal.actor, sources, rejected, enable, &origin)
        .await?;
    let summary = outcome.summary;
    Ok(Json(ImportResult {
        created: summary.created,
        updated: summary.updated,
        unchanged: summary.unchanged,
        enabled: summary.enabled,
        rejected: outcome
            .rejected
            .into_iter()
            .map(RejectedRule::from)
            .collect(),
        waiting: outcome
            .waiting
            .into_iter()
            .map(|(rule_id, placeholders)| WaitingRule {
                rule_id,
                placeholders,
            })
            .collect(),
    }))
}

// ---------------------------------------------------------------- placeholders

/// The tenant's Sigma placeholders (`%name%` with the `expand` modifier) and their values.
#[utoipa::path(
    get,
    path = "/api/v1/placeholders",
    tag = "rules",
    responses((status = 200, body = Vec<garrison_store::PlaceholderVersion>), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_placeholders(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<garrison_store::PlaceholderVersion>>, ApiError> {
    Ok(Json(state.app().list_placeholders(&principal.actor).await?))
}

/// Set a placeholder's values (a new version; admins and analysts). Rules using it are
/// recompiled live.
#[utoipa::path(
    put,
    path = "/api/v1/placeholders/{name}",
    tag = "rules",
    params(("name" = String, Path, description = "Placeholder name, without %")),
    request_body = PutPlaceholder,
    responses((status = 200, body = garrison_store::PlaceholderVersion), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn put_placeholder(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PutPlaceholder>,
) -> Result<Json<garrison_store::PlaceholderVersion>, ApiError> {
    Ok(Json(
        state
            .app()
            .set_placeholder(&principal.actor, &name, body.values)
            .await?,
    ))
}

/// Delete a placeholder (its history stays; rules using it stop loading).
#[utoipa::path(
    delete,
    path = "/api/v1/placeholders/{name}",
    tag = "rules",
    params(("name" = String, Path, description = "Placeholder name, without %")),
    responses((status = 200, body = garrison_store::PlaceholderVersion), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn delete_placeholder(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<garrison_store::PlaceholderVersion>, ApiError> {
    Ok(Json(
        state
            .app()
            .delete_placeholder(&principal.actor, &name)
            .await?,
    ))
}

/// Every version of a placeholder, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/placeholders/{name}/versions",
    tag = "rules",
    params(("name" = String, Path, description = "Placeholder name, without %")),
    responses((status = 200, body = Vec<garrison_store::PlaceholderVersion>), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn placeholder_versions(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<garrison_store::PlaceholderVersion>>, ApiError> {
    Ok(Json(
        state
            .app()
            .placeholder_history(&principal.actor, &name)
            .await?,
    ))
}

/// List the tenant's rules (without their text).
#[utoipa::path(
    get,
    path = "/api/v1/rules",
    tag = "rules",
    params(ListRulesParams),
    responses((status = 200, body = Vec<RuleView>), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_rules(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(ListRulesParams { enabled }): ApiQuery<ListRulesParams>,
) -> Result<Json<Vec<RuleView>>, ApiError> {
    let rules = state
        .app()
        .list_rules(&principal.actor, enabled == Some(true))
        .await?;
    Ok(Json(
        rules
            .iter()
            .filter(|r| enabled.is_none_or(|e| r.enabled == e))
            .map(RuleView::from)
            .collect(),
    ))
}

/// A rule with its text and every version.
#[utoipa::path(
    get,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 200, body = RuleDetail), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn get_rule(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RuleDetail>, ApiError> {
    Ok(Json(state.app().rule_detail(&principal.actor, &id).await?))
}

async fn set_enabled(
    state: AppState,
    principal: Principal,
    id: String,
    enabled: bool,
) -> Result<Json<RuleView>, ApiError> {
    let rule = state
        .app()
        .set_rule_enabled(&principal.actor, &id, enabled)
        .await?;
    Ok(Json(RuleView::from(&rule)))
}

/// Enable a rule: the live detector runs it from now on (admins and analysts).
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/enable",
    tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 200, body = RuleView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn enable_rule(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RuleView>, ApiError> {
    set_enabled(state, principal, id, true).await
}

/// Disable a rule (admins and analysts).
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/disable",
    tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    responses((status = 200, body = RuleView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn disable_rule(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RuleView>, ApiError> {
    set_enabled(state, principal, id, false).await
}

/// Run a rule over every stored event of a time range, oldest first, as live detection would
/// have: what it matches (correlations included). Read a page at a time whatever the range
/// holds; closing the connection cancels it.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/test",
    tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    request_body = TestRequest,
    responses((status = 200, body = TestResult), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn test_rule(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<TestResult>, ApiError> {
    let request: TestRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TestRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("body: {e}")))?
    };
    let bounds = garrison_app::rules::TestBounds {
        from: request.from.map(|t| t.0),
        to: request.to.map(|t| t.0),
        max_events: request.max_events,
    };
    let outcome = state
        .app()
        .test_rule(&principal.actor, &id, bounds, None)
        .await?;
    Ok(Json(TestResult {
        from: outcome.from.to_string(),
        to: outcome.to.to_string(),
        max_events: outcome.max_events,
        events: outcome.events,
        truncated: outcome.truncated,
        matches_total: outcome.matches_total,
        matches: outcome
            .matches
            .into_iter()
            .map(|m| TestMatchView {
                event_id: m.event_id,
                time: m.time.to_string(),
                rule_id: m.rule_id,
                title: m.title,
                level: m.level,
                matched: m.matched,
            })
            .collect(),
    }))
}

// ---------------------------------------------------------------- alerts

/// List alerts, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    params(AlertParams),
    responses((status = 200, body = AlertsPage), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<AlertParams>,
) -> Result<Json<AlertsPage>, ApiError> {
    Ok(Json(
        state.app().list_alerts(&principal.actor, params).await?,
    ))
}

/// An alert with the ids of the events folded into it.
#[utoipa::path(
    get,
    path = "/api/v1/alerts/{id}",
    tag = "alerts",
    params(("id" = String, Path, description = "Alert id")),
    responses((status = 200, body = AlertDetail), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn get_alert(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AlertDetail>, ApiError> {
    Ok(Json(state.app().alert(&principal.actor, &id).await?))
}
