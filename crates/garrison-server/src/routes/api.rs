//! Search and management routes. Every handler takes a [`Principal`] and passes its tenant to
//! the store; the store cannot be asked without one.

use super::{parse_limit, parse_time};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use garrison_model::{Event, Role, TenantId, Timestamp};
use garrison_store::{
    ApiToken, EventQuery, EventRepo, NewSource, NewToken, Source, SourceRepo, Tenant, TenantRepo,
    TokenKind, TokenRepo, User, UserRepo,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::routes::audit::{record, record_as};
use crate::AppState;

const SESSION_HOURS: i64 = 12;

// ---------------------------------------------------------------- views (the wire format)

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    /// The event's own time (RFC 3339).
    pub time: String,
    pub received: String,
    pub source: String,
    #[schema(value_type = Object)]
    pub logsource: garrison_model::LogSource,
    /// The fields as they were sent.
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
    /// The ECS-style view of the fields.
    #[schema(value_type = Object)]
    pub normalized: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        EventView {
            id: e.id,
            time: e.time.to_string(),
            received: e.received.to_string(),
            source: e.source,
            logsource: e.logsource,
            fields: e.fields,
            normalized: e.normalized,
            raw: e.raw,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    pub events: Vec<EventView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: i64,
    pub name: String,
    pub retention_days: Option<i64>,
    pub created: String,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        TenantView {
            id: t.id.0,
            name: t.name,
            retention_days: t.retention_days,
            created: t.created.to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub tenant_id: i64,
    pub username: String,
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    pub disabled: bool,
    pub created: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            tenant_id: u.tenant_id.0,
            username: u.username,
            roles: u.roles,
            disabled: u.disabled,
            created: u.created.to_string(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub tenant_id: i64,
    /// `api`, `ingest` or `session`.
    pub kind: String,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    pub source: Option<String>,
    pub user_id: Option<i64>,
    pub created: String,
    pub expires: Option<String>,
    pub last_used: Option<String>,
    pub revoked: bool,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        TokenView {
            id: t.id,
            tenant_id: t.tenant_id.0,
            kind: t.kind.as_str().to_string(),
            name: t.name,
            prefix: t.prefix,
            roles: t.roles,
            source: t.source,
            user_id: t.user_id,
            created: t.created.to_string(),
            expires: t.expires.map(|t| t.to_string()),
            last_used: t.last_used.map(|t| t.to_string()),
            revoked: t.revoked,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    pub name: String,
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
    /// Pairs of (field as sent, ECS-style name).
    pub field_mapping: Vec<(String, String)>,
    /// Set for an alert source: the fields giving each alert's rule id, title and severity.
    #[schema(value_type = Option<Object>)]
    pub alert_mapping: Option<garrison_store::AlertMapping>,
    pub created: String,
}

impl From<Source> for SourceView {
    fn from(s: Source) -> Self {
        SourceView {
            name: s.name,
            product: s.product,
            service: s.service,
            category: s.category,
            field_mapping: s.field_mapping,
            alert_mapping: s.alert_mapping,
            created: s.created.to_string(),
        }
    }
}

// ---------------------------------------------------------------- events

/// Query parameters of the event search. Besides these, `field.NAME=VALUE` filters on a field
/// (a dotted path into the fields as sent, or an ECS name); several are ANDed.
#[derive(Debug, Deserialize, IntoParams)]
#[allow(dead_code)] // documents the parameters; parsing is by hand for the `field.*` ones
pub struct EventSearchParams {
    /// Event time from (inclusive): RFC 3339 or Unix seconds.
    from: Option<String>,
    /// Event time to (exclusive): RFC 3339 or Unix seconds.
    to: Option<String>,
    /// Only events of this source.
    source: Option<String>,
    /// Full-text words; all must occur.
    q: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Search stored events, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(EventSearchParams),
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
    RawQuery(query): RawQuery,
) -> Result<Json<EventsPage>, ApiError> {
    let mut search = EventQuery {
        limit: 100,
        ..EventQuery::default()
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "from" => search.from = Some(parse_time("from", &value)?),
            "to" => search.to = Some(parse_time("to", &value)?),
            "source" => search.source = Some(value.into_owned()),
            "q" => search.text = Some(value.into_owned()),
            "cursor" => search.cursor = Some(value.into_owned()),
            "limit" => {
                search.limit = parse_limit(&value)?
            }
            other => match other.strip_prefix("field.") {
                Some(field) if !field.is_empty() => {
                    search.fields.push((field.to_string(), value.into_owned()))
                }
                _ => {
                    return Err(ApiError::invalid(format!(
                        "unknown parameter {other:?}; expected from, to, source, q, limit, cursor or field.NAME"
                    )))
                }
            },
        }
    }
    let page = state
        .store()
        .search_events(principal.tenant, &search)
        .await?;
    Ok(Json(EventsPage {
        events: page.events.into_iter().map(EventView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

// ---------------------------------------------------------------- sessions and self

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Tenant name; `default` when absent.
    pub tenant: Option<String>,
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// A session token for `Authorization: Bearer`.
    pub token: String,
    pub expires: String,
    pub user: UserView,
}

/// Exchange a user name and password for a session token (valid 12 hours).
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong credentials", body = Problem),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    Json(request): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let wrong = || {
        ApiError::new(
            ErrorCode::InvalidCredentials,
            "wrong tenant, user name or password",
        )
    };
    let tenant_name = request.tenant.as_deref().unwrap_or(crate::DEFAULT_TENANT);
    let tenant = state
        .store()
        .tenant_by_name(tenant_name)
        .await?
        .ok_or_else(wrong)?;
    let Some(user) = state
        .store()
        .authenticate_user(tenant.id, &request.username, &request.password)
        .await?
    else {
        record_as(
            &state,
            tenant.id,
            &format!("user:{}", request.username),
            "auth.login_failed",
            &request.username,
            serde_json::json!({}),
        )
        .await;
        return Err(wrong());
    };
    let expires = Timestamp::now()
        .checked_add(garrison_model::SignedDuration::from_hours(SESSION_HOURS))
        .map_err(ApiError::internal)?;
    let (_, secret) = state
        .store()
        .create_token(NewToken {
            tenant_id: tenant.id,
            kind: TokenKind::Session,
            name: format!("session of {}", user.username),
            roles: user.roles.clone(),
            source: None,
            user_id: Some(user.id),
            expires: Some(expires),
        })
        .await?;
    tracing::info!(tenant = %tenant.name, user = %user.username, "login");
    record_as(
        &state,
        tenant.id,
        &format!("user:{}", user.username),
        "auth.login",
        &user.username,
        serde_json::json!({"user_id": user.id}),
    )
    .await;
    Ok(Json(LoginResponse {
        token: secret.expose().to_string(),
        expires: expires.to_string(),
        user: user.into(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    pub tenant: TenantView,
    pub token: TokenView,
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
    let tenant = state.store().tenant(principal.tenant).await?;
    Ok(Json(MeResponse {
        tenant: tenant.into(),
        token: principal.token.into(),
    }))
}

// ---------------------------------------------------------------- tenants

fn is_provider_admin(state: &AppState, principal: &Principal) -> bool {
    principal.tenant == state.provider_tenant() && principal.has_role(Role::Admin)
}

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
    let tenants = if is_provider_admin(&state, &principal) {
        state.store().list_tenants().await?
    } else {
        vec![state.store().tenant(principal.tenant).await?]
    };
    Ok(Json(tenants.into_iter().map(TenantView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTenant {
    pub name: String,
    pub retention_days: Option<i64>,
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
    Json(request): Json<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    if !is_provider_admin(&state, &principal) {
        return Err(ApiError::forbidden(
            "only the provider's admins create tenants",
        ));
    }
    if state.store().tenant_by_name(&request.name).await?.is_some() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("tenant {:?} already exists", request.name),
        ));
    }
    let mut tenant = state.store().ensure_tenant(&request.name).await?;
    if request.retention_days.is_some() {
        tenant = state
            .store()
            .set_retention(tenant.id, request.retention_days)
            .await?;
    }
    record(
        &state,
        &principal,
        "tenant.create",
        &tenant.name,
        serde_json::json!({"tenant_id": tenant.id.0}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateTenant {
    /// Days to keep events; `null` keeps them forever.
    pub retention_days: Option<i64>,
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
    Path(id): Path<i64>,
    Json(request): Json<UpdateTenant>,
) -> Result<Json<TenantView>, ApiError> {
    let target = TenantId(id);
    if target != principal.tenant && !is_provider_admin(&state, &principal) {
        // Not 403: another tenant's existence is not the caller's business.
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("tenant {id} not found"),
        ));
    }
    principal.require_admin()?;
    let tenant = state
        .store()
        .set_retention(target, request.retention_days)
        .await?;
    record(
        &state,
        &principal,
        "tenant.retention",
        &tenant.name,
        serde_json::json!({"tenant_id": tenant.id.0, "retention_days": tenant.retention_days}),
    )
    .await;
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
    principal.require_admin()?;
    let users = state.store().list_users(principal.tenant).await?;
    Ok(Json(users.into_iter().map(UserView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUser {
    pub username: String,
    /// At least 12 characters; stored as an argon2id hash.
    pub password: String,
    /// Any of admin, analyst, responder, viewer.
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
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
    Json(request): Json<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    principal.require_admin()?;
    if request.roles.is_empty() {
        return Err(ApiError::invalid("a user needs at least one role"));
    }
    let user = state
        .store()
        .create_user(
            principal.tenant,
            &request.username,
            &request.password,
            &request.roles,
        )
        .await?;
    tracing::info!(tenant = %principal.tenant, user = %user.username, "user created");
    record(
        &state,
        &principal,
        "user.create",
        &user.username,
        serde_json::json!({"user_id": user.id, "roles": user.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateUser {
    /// Disabling also revokes the user's tokens.
    pub disabled: bool,
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
    Path(id): Path<i64>,
    Json(request): Json<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    principal.require_admin()?;
    let user = state
        .store()
        .set_user_disabled(principal.tenant, id, request.disabled)
        .await?;
    record(
        &state,
        &principal,
        if request.disabled {
            "user.disable"
        } else {
            "user.enable"
        },
        &user.username,
        serde_json::json!({"user_id": user.id}),
    )
    .await;
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
    let tokens = state.store().list_tokens(principal.tenant).await?;
    let is_admin = principal.has_role(Role::Admin);
    Ok(Json(
        tokens
            .into_iter()
            .filter(|t| is_admin || (t.user_id.is_some() && t.user_id == principal.token.user_id))
            .map(TokenView::from)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateToken {
    pub name: String,
    /// `api` (default) or `ingest`.
    pub kind: Option<String>,
    /// For API tokens: a subset of the caller's roles.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    /// For ingest tokens: the source its events belong to.
    pub source: Option<String>,
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret. Shown this once; only its hash is kept.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenView,
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
    Json(request): Json<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let kind = match request.kind.as_deref().unwrap_or("api") {
        "api" => TokenKind::Api,
        "ingest" => TokenKind::Ingest,
        other => {
            return Err(ApiError::invalid(format!(
                "kind {other:?}: expected api or ingest"
            )))
        }
    };
    let is_admin = principal.has_role(Role::Admin);
    match kind {
        TokenKind::Ingest => {
            principal.require_admin()?;
            if !request.roles.is_empty() {
                return Err(ApiError::invalid("an ingest token has no roles"));
            }
        }
        _ => {
            if request.roles.is_empty() {
                return Err(ApiError::invalid("an API token needs at least one role"));
            }
            if !is_admin && !request.roles.iter().all(|r| principal.has_role(*r)) {
                return Err(ApiError::forbidden(
                    "a token cannot have roles its creator lacks",
                ));
            }
        }
    }
    let expires = match request.expires_in_days {
        Some(days) if days < 1 => {
            return Err(ApiError::invalid("expires_in_days must be at least 1"))
        }
        Some(days) => Some(
            Timestamp::now()
                .checked_add(garrison_model::SignedDuration::from_hours(
                    days.saturating_mul(24).min(24 * 36600),
                ))
                .map_err(ApiError::internal)?,
        ),
        None => None,
    };
    if let (TokenKind::Ingest, Some(source)) = (kind, &request.source) {
        if state
            .store()
            .source(principal.tenant, source)
            .await?
            .is_none()
        {
            state
                .store()
                .upsert_source(
                    principal.tenant,
                    NewSource {
                        name: source.clone(),
                        ..NewSource::default()
                    },
                )
                .await?;
        }
    }
    let (token, secret) = state
        .store()
        .create_token(NewToken {
            tenant_id: principal.tenant,
            kind,
            name: request.name,
            roles: request.roles,
            source: request.source,
            user_id: principal.token.user_id,
            expires,
        })
        .await?;
    tracing::info!(tenant = %principal.tenant, token = %token.prefix, kind = token.kind.as_str(), "token created");
    record(
        &state,
        &principal,
        "token.create",
        &token.prefix,
        serde_json::json!({"created_token_id": token.id, "kind": token.kind.as_str(), "roles": token.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>()}),
    )
    .await;
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
    Path(id): Path<i64>,
) -> Result<Json<TokenView>, ApiError> {
    if !principal.has_role(Role::Admin) {
        let own = state
            .store()
            .list_tokens(principal.tenant)
            .await?
            .into_iter()
            .any(|t| t.id == id && t.user_id.is_some() && t.user_id == principal.token.user_id);
        if !own {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("token {id} not found"),
            ));
        }
    }
    let token = state.store().revoke_token(principal.tenant, id).await?;
    record(
        &state,
        &principal,
        "token.revoke",
        &token.prefix,
        serde_json::json!({"revoked_token_id": token.id}),
    )
    .await;
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
    let sources = state.store().list_sources(principal.tenant).await?;
    Ok(Json(sources.into_iter().map(SourceView::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PutSource {
    /// Sigma logsource of the events: product, service, category.
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
    /// Extra field mapping on top of the built-in one: pairs of (field as sent, ECS name).
    #[serde(default)]
    pub field_mapping: Vec<(String, String)>,
    /// Makes it an alert source (an EDR's or IDS's own alerts: each event becomes an alert):
    /// `{"rule": FIELD, "title": FIELD, "severity": FIELD}`, each optional.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub alert_mapping: Option<garrison_store::AlertMapping>,
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
    Path(name): Path<String>,
    Json(request): Json<PutSource>,
) -> Result<Json<SourceView>, ApiError> {
    principal.require_admin()?;
    let source = state
        .store()
        .upsert_source(
            principal.tenant,
            NewSource {
                name,
                product: request.product,
                service: request.service,
                category: request.category,
                field_mapping: request.field_mapping,
                alert_mapping: request.alert_mapping,
            },
        )
        .await?;
    record(
        &state,
        &principal,
        "source.put",
        &source.name,
        serde_json::json!({"product": source.product, "service": source.service, "category": source.category}),
    )
    .await;
    Ok(Json(source.into()))
}
