//! Search and management routes. Every handler takes a [`Principal`] and passes its tenant to
//! the store; the store cannot be asked without one.

use super::query::ApiQueryWithFields;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use garrison_model::TenantId;
use garrison_store::NewSource;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::routes::extract::ApiJson;
use crate::routes::extract::ApiPath;
use crate::AppState;
pub use garrison_api::admin::*;

// ---------------------------------------------------------------- views (the wire format)

// ---------------------------------------------------------------- events

/// Search stored events, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(
        EventSearchParams,
        ("field.NAME" = Option<String>, Query, description = "Only events whose field NAME (a dotted path into the fields as sent, or an ECS name) equals the value; repeat with other names to AND them. Replace NAME, e.g. `field.user.name=alice`."),
    ),
    responses(
        (status = 200, description = "A page of events", body = EventsPage),
        (status = 400, description = "Bad parameter", body = Problem),
        (status = 401, description = "No or invalid token", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn search_events(
    State(state): State<AppState>,
    principal: Principal,
    ApiQueryWithFields { params, fields }: ApiQueryWithFields<EventSearchParams>,
) -> Result<Json<EventsPage>, ApiError> {
    Ok(Json(
        state
            .app()
            .search_events(&principal.actor, params, fields)
            .await?,
    ))
}

/// One stored event by its id (an alert's `event_ids`, a search result's `id`).
#[utoipa::path(
    get,
    path = "/api/v1/events/{id}",
    tag = "events",
    params(("id" = String, Path, description = "Event id")),
    responses(
        (status = 200, description = "The event", body = EventView),
        (status = 404, description = "No such event in this tenant", body = Problem),
        (status = 401, description = "No or invalid token", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn get_event(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EventView>, ApiError> {
    Ok(Json(state.app().event(&principal.actor, &id).await?))
}

// ---------------------------------------------------------------- sessions and self

/// Exchange a user name and password for a session token (valid 12 hours).
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong credentials", body = Problem),
        (status = 429, description = "Too many failed sign-ins: the account is locked for the `Retry-After` seconds", body = Problem),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let tenant = request.tenant.as_deref().unwrap_or(crate::DEFAULT_TENANT);
    // The peer address the listener recorded (absent only for in-process callers).
    let client = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    Ok(Json(
        state
            .app()
            .login(tenant, &request.username, &request.password, client)
            .await?,
    ))
}

/// Who am I: the tenant and token of the caller.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "auth",
    responses((status = 200, body = MeResponse), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
pub async fn me(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<MeResponse>, ApiError> {
    Ok(Json(
        state.app().me(&principal.actor, principal.token).await?,
    ))
}

// ---------------------------------------------------------------- tenants

/// List tenants: all of them for the provider's admins, otherwise the caller's own.
#[utoipa::path(
    get,
    path = "/api/v1/tenants",
    tag = "tenants",
    responses((status = 200, body = Vec<TenantView>), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_tenants(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    let tenants = state.app().list_tenants(&principal.actor).await?;
    Ok(Json(tenants.into_iter().map(TenantView::from).collect()))
}

/// Create a tenant (the provider's admins only).
#[utoipa::path(
    post,
    path = "/api/v1/tenants",
    tag = "tenants",
    request_body = CreateTenant,
    responses((status = 201, body = TenantView), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
pub async fn create_tenant(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let tenant = state.app().create_tenant(&principal.actor, request).await?;
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

/// Change a tenant's retention (its admins, or the provider's).
#[utoipa::path(
    patch,
    path = "/api/v1/tenants/{id}",
    tag = "tenants",
    params(("id" = i64, Path, description = "Tenant id")),
    request_body = UpdateTenant,
    responses((status = 200, body = TenantView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn update_tenant(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<UpdateTenant>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = state
        .app()
        .set_retention(&principal.actor, TenantId(id), request.retention_days)
        .await?;
    Ok(Json(tenant.into()))
}

// ---------------------------------------------------------------- users

/// List the tenant's users (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    responses((status = 200, body = Vec<UserView>), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let users = state.app().list_users(&principal.actor).await?;
    Ok(Json(users.into_iter().map(UserView::from).collect()))
}

/// Create a user in the caller's tenant (admins).
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    request_body = CreateUser,
    responses((status = 201, body = UserView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
pub async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state.app().create_user(&principal.actor, request).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Disable or enable a user (admins).
#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    request_body = UpdateUser,
    responses((status = 200, body = UserView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn update_user(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(request): ApiJson<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    let user = state
        .app()
        .set_user_disabled(&principal.actor, id, request.disabled)
        .await?;
    Ok(Json(user.into()))
}

// ---------------------------------------------------------------- tokens

/// List tokens: all of the tenant's for admins, otherwise the caller's own.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    responses((status = 200, body = Vec<TokenView>), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let tokens = state.app().list_tokens(&principal.actor).await?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

/// Create a token. Anyone may create an API token with some of their own roles; ingest tokens
/// and tokens with other roles need an admin.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let (token, secret) = state.app().create_token(&principal.actor, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: secret.expose().to_string(),
            info: token.into(),
        }),
    ))
}

/// Revoke a token (admins, or the token's owner).
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, body = TokenView), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TokenView>, ApiError> {
    let token = state.app().revoke_token(&principal.actor, id).await?;
    Ok(Json(token.into()))
}

// ---------------------------------------------------------------- sources

/// List the tenant's ingest sources.
#[utoipa::path(
    get,
    path = "/api/v1/sources",
    tag = "sources",
    responses((status = 200, body = Vec<SourceView>), (status = 401, body = Problem)),
    security(("bearer" = []))
)]
pub async fn list_sources(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<SourceView>>, ApiError> {
    let sources = state.app().list_sources(&principal.actor).await?;
    Ok(Json(sources.into_iter().map(SourceView::from).collect()))
}

/// The health of a source: last event, rates, duplicates, unparsed events, the rules that
/// apply to its logsource and those that fired on it in 24 h, and whether it is silent.
#[utoipa::path(
    get,
    path = "/api/v1/sources/{name}/health",
    tag = "sources",
    params(("name" = String, Path, description = "Source name")),
    responses((status = 200, body = SourceHealthView), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
pub async fn source_health(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<SourceHealthView>, ApiError> {
    Ok(Json(
        state.app().source_health(&principal.actor, &name).await?,
    ))
}

/// Create or replace a source's logsource and field mapping (admins).
#[utoipa::path(
    put,
    path = "/api/v1/sources/{name}",
    tag = "sources",
    params(("name" = String, Path, description = "Source name")),
    request_body = PutSource,
    responses((status = 200, body = SourceView), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []))
)]
pub async fn put_source(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(name): ApiPath<String>,
    ApiJson(request): ApiJson<PutSource>,
) -> Result<Json<SourceView>, ApiError> {
    let source = state
        .app()
        .put_source(
            &principal.actor,
            NewSource {
                name,
                product: request.product,
                service: request.service,
                category: request.category,
                field_mapping: request.field_mapping,
                alert_mapping: request.alert_mapping,
                id_field: request.id_field,
                syslog: request.syslog.filter(|m| !m.is_empty()),
                silent_after_secs: request.silent_after_secs,
            },
        )
        .await?;
    Ok(Json(source.into()))
}
