//! Search and management routes. Every handler takes a [`Principal`] and passes its tenant to
//! the store; the store cannot be asked without one.

use super::query::ApiQueryWithFields;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use garrison_model::{Event, PageLimit, Role, TenantId, TimeBound, Timestamp};
use garrison_store::{
    ApiToken, EventQuery, EventRepo, NewSource, NewToken, Source, Tenant, TenantRepo, TokenKind,
    TokenRepo, User, UserRepo,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorCode, Problem};
use crate::routes::audit::record_as;
use crate::routes::extract::ApiJson;
use crate::routes::extract::ApiPath;
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
    #[schema(value_type = Vec<FieldPair>)]
    pub field_mapping: Vec<(String, String)>,
    /// Set for an alert source: the fields giving each alert's rule id, title and severity.
    pub alert_mapping: Option<garrison_store::AlertMapping>,
    pub created: String,
}

/// One field mapping: `[field as sent, ECS-style name]`, as serde writes a pair.
pub struct FieldPair;

impl utoipa::PartialSchema for FieldPair {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::String))
            .min_items(Some(2))
            .max_items(Some(2))
            .description(Some("`[field as sent, ECS-style name]`"))
            .into()
    }
}

impl ToSchema for FieldPair {}

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
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventSearchParams {
    /// Event time from (inclusive): RFC 3339 or Unix seconds.
    #[param(value_type = Option<String>)]
    pub from: Option<TimeBound>,
    /// Event time to (exclusive): RFC 3339 or Unix seconds.
    #[param(value_type = Option<String>)]
    pub to: Option<TimeBound>,
    /// Only events of this source.
    pub source: Option<String>,
    /// Full-text words; all must occur.
    pub q: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<PageLimit>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

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
    let search = EventQuery {
        from: params.from.map(|t| t.0),
        to: params.to.map(|t| t.0),
        source: params.source,
        text: params.q,
        cursor: params.cursor,
        limit: PageLimit::or(params.limit, 100),
        fields,
    };
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
    ApiJson(request): ApiJson<LoginRequest>,
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
    ApiJson(request): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let tenant = state
        .app()
        .create_tenant(
            &principal.actor,
            garrison_app::admin::CreateTenant {
                name: request.name,
                retention_days: request.retention_days,
            },
        )
        .await?;
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
    ApiJson(request): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state
        .app()
        .create_user(
            &principal.actor,
            garrison_app::admin::CreateUser {
                username: request.username,
                password: request.password,
                roles: request.roles,
            },
        )
        .await?;
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
    ApiJson(request): ApiJson<CreateToken>,
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
    let (token, secret) = state
        .app()
        .create_token(
            &principal.actor,
            garrison_app::admin::CreateToken {
                name: Some(request.name),
                kind,
                roles: request.roles,
                source: request.source,
                expires_in_days: request.expires_in_days,
            },
        )
        .await?;
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

#[derive(Debug, Deserialize, ToSchema)]
pub struct PutSource {
    /// Sigma logsource of the events: product, service, category.
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
    /// Extra field mapping on top of the built-in one: pairs of (field as sent, ECS name).
    #[serde(default)]
    #[schema(value_type = Vec<FieldPair>)]
    pub field_mapping: Vec<(String, String)>,
    /// Makes it an alert source (an EDR's or IDS's own alerts: each event becomes an alert):
    /// `{"rule": FIELD, "title": FIELD, "severity": FIELD}`, each optional.
    #[serde(default)]
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
            },
        )
        .await?;
    Ok(Json(source.into()))
}
