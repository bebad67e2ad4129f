//! Who is calling: a token from the `Authorization` header, resolved through the store.
//!
//! Handlers receive a [`Principal`] that carries the tenant; every store call takes that tenant,
//! so a handler cannot reach another tenant's data even by mistake.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use garrison_model::{Role, TenantId, Timestamp};
use garrison_store::{ApiToken, TokenKind, TokenRepo};

use crate::error::{ApiError, ErrorCode};
use crate::AppState;

/// An authenticated caller of the management and search API (API or session token).
#[derive(Clone, Debug)]
pub struct Principal {
    pub tenant: TenantId,
    pub token: ApiToken,
    /// The same caller as the application layer sees it.
    pub actor: garrison_app::Actor,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.token.roles.contains(&role)
    }

    /// Passes when the caller has any of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.has_role(*r)) {
            return Ok(());
        }
        let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::forbidden(format!(
            "this action needs one of the roles [{}]",
            wanted.join(", ")
        )))
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        self.require_any(&[Role::Admin])
    }
}

/// Extracts the secret from `Authorization: Bearer <token>`, `Authorization: Splunk <token>`
/// or HTTP Basic with the token as the password (`curl -u x:TOKEN`, as Splunk's HEC accepts).
pub fn presented_secret(
    headers: &HeaderMap,
) -> Result<Option<std::borrow::Cow<'_, str>>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidToken,
            "the Authorization header is not text",
        )
    })?;
    let (scheme, secret) = value.trim().split_once(' ').ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidToken,
            "the Authorization header must be `Bearer <token>`",
        )
    })?;
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine as _;
        let bad = || {
            ApiError::new(
                ErrorCode::InvalidToken,
                "Basic authorization must be base64 of `user:token`",
            )
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (_, password) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(std::borrow::Cow::Owned(password.to_string())));
    }
    if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("splunk")) {
        return Err(ApiError::new(
            ErrorCode::InvalidToken,
            format!("unsupported authorization scheme {scheme:?}; use Bearer"),
        ));
    }
    Ok(Some(std::borrow::Cow::Borrowed(secret.trim())))
}

/// Resolves the token of a request, any kind.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<ApiToken, ApiError> {
    let secret = presented_secret(headers)?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingAuthorization,
            "send `Authorization: Bearer <token>`",
        )
    })?;
    let token = state
        .store()
        .authenticate_token(&secret, Timestamp::now())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidToken,
                "the token is unknown, revoked or expired",
            )
        })?;
    crate::telemetry::token_used(token.kind.as_str());
    if state.first_use_this_hour(token.id) {
        // Token use is audited at most once per token and hour: which credentials are in use
        // shows in the log without one entry per request.
        let actor = garrison_app::Actor::from_token(&token);
        state
            .app()
            .record(
                &actor,
                "token.use",
                &token.prefix,
                serde_json::json!({"token_kind": token.kind.as_str(), "name": token.name}),
            )
            .await;
    }
    Ok(token)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = authenticate(state, &parts.headers).await?;
        if token.kind == TokenKind::Ingest {
            return Err(ApiError::forbidden(
                "an ingest token can only send events; use an API token here",
            ));
        }
        if token.roles.iter().all(|r| *r == Role::Metrics) {
            return Err(ApiError::forbidden(
                "a metrics token can only scrape /metrics; use a token with another role here",
            ));
        }
        Ok(Principal {
            tenant: token.tenant_id,
            actor: garrison_app::Actor::from_token(&token),
            token,
        })
    }
}
