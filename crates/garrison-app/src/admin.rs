//! Tenants, users, tokens and sources: the administrative operations.

use garrison_model::{Role, SignedDuration, TenantId, Timestamp};
use garrison_store::{
    ApiToken, NewSource, NewToken, Source, SourceRepo, Tenant, TenantRepo, TokenKind, TokenRepo,
    TokenSecret, User, UserRepo,
};

use crate::{Actor, App, AppError, Result};

/// Longest a token may live: 100 years, so the expiry stays a valid timestamp.
pub const MAX_TOKEN_DAYS: i64 = 36_600;

pub use garrison_api::admin::{CreateTenant, CreateToken, CreateUser, NewTokenKind};

impl App {
    // ------------------------------------------------------------ tenants

    /// Every tenant for the provider's admins, otherwise the actor's own.
    pub async fn list_tenants(&self, actor: &Actor) -> Result<Vec<Tenant>> {
        if self.is_provider_admin(actor) {
            Ok(self.store().list_tenants().await?)
        } else {
            Ok(vec![self.store().tenant(actor.tenant).await?])
        }
    }

    /// Creates a tenant (the provider's admins). A name in use is a conflict.
    pub async fn create_tenant(&self, actor: &Actor, request: CreateTenant) -> Result<Tenant> {
        if !self.is_provider_admin(actor) {
            return Err(AppError::forbidden(
                "only the provider's admins create tenants",
            ));
        }
        check_retention(request.retention_days)?;
        if self.store().tenant_by_name(&request.name).await?.is_some() {
            return Err(AppError::Conflict(format!(
                "tenant {:?} already exists",
                request.name
            )));
        }
        let mut tenant = self.store().ensure_tenant(&request.name).await?;
        if request.retention_days.is_some() {
            tenant = self
                .store()
                .set_retention(tenant.id, request.retention_days)
                .await?;
        }
        self.record(
            actor,
            "tenant.create",
            &tenant.name,
            serde_json::json!({"tenant_id": tenant.id.0, "retention_days": tenant.retention_days}),
        )
        .await;
        Ok(tenant)
    }

    /// Sets (or with `None` removes) a tenant's retention: its own admins, or the provider's.
    pub async fn set_retention(
        &self,
        actor: &Actor,
        tenant: TenantId,
        days: Option<i64>,
    ) -> Result<Tenant> {
        if tenant != actor.tenant && !self.is_provider_admin(actor) {
            // Not 403: another tenant's existence is not the caller's business.
            return Err(AppError::NotFound(format!("tenant {}", tenant.0)));
        }
        actor.require_admin()?;
        check_retention(days)?;
        let tenant = self.store().set_retention(tenant, days).await?;
        self.record(
            actor,
            "tenant.retention",
            &tenant.name,
            serde_json::json!({"tenant_id": tenant.id.0, "retention_days": tenant.retention_days}),
        )
        .await;
        Ok(tenant)
    }

    /// A tenant by name, for doors that name tenants (the CLI's `--tenant`).
    pub async fn tenant_named(&self, name: &str) -> Result<Tenant> {
        self.store().tenant_by_name(name).await?.ok_or_else(|| {
            AppError::NotFound(format!(
                "tenant {name:?} (create it with `garrison tenant create {name}`)"
            ))
        })
    }

    // ------------------------------------------------------------ users

    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<User>> {
        actor.require_admin()?;
        Ok(self.store().list_users(actor.tenant).await?)
    }

    pub async fn create_user(&self, actor: &Actor, request: CreateUser) -> Result<User> {
        actor.require_admin()?;
        if request.roles.is_empty() {
            return Err(AppError::invalid(
                "a user needs at least one role (admin, analyst, responder or viewer)",
            ));
        }
        let user = self
            .store()
            .create_user(
                actor.tenant,
                &request.username,
                &request.password,
                &request.roles,
            )
            .await?;
        tracing::info!(tenant = %actor.tenant, user = %user.username, "user created");
        self.record(
            actor,
            "user.create",
            &user.username,
            serde_json::json!({"user_id": user.id, "roles": role_names(&user.roles)}),
        )
        .await;
        Ok(user)
    }

    /// A user of the actor's tenant by name (admins).
    pub async fn user_named(&self, actor: &Actor, username: &str) -> Result<User> {
        self.list_users(actor)
            .await?
            .into_iter()
            .find(|u| u.username == username)
            .ok_or_else(|| AppError::NotFound(format!("user {username:?}")))
    }

    /// Disables (revoking the user's tokens) or enables a user (admins).
    pub async fn set_user_disabled(
        &self,
        actor: &Actor,
        user_id: i64,
        disabled: bool,
    ) -> Result<User> {
        actor.require_admin()?;
        let user = self
            .store()
            .set_user_disabled(actor.tenant, user_id, disabled)
            .await?;
        self.record(
            actor,
            if disabled {
                "user.disable"
            } else {
                "user.enable"
            },
            &user.username,
            serde_json::json!({"user_id": user.id}),
        )
        .await;
        Ok(user)
    }

    // ------------------------------------------------------------ tokens

    /// All of the tenant's tokens for admins, otherwise the actor's own.
    pub async fn list_tokens(&self, actor: &Actor) -> Result<Vec<ApiToken>> {
        let tokens = self.store().list_tokens(actor.tenant).await?;
        if actor.has_role(Role::Admin) {
            return Ok(tokens);
        }
        let me = actor.user_id();
        Ok(tokens
            .into_iter()
            .filter(|t| me.is_some() && t.user_id == me)
            .collect())
    }

    /// Creates a token. Anyone may create an API token with some of their own roles; ingest
    /// tokens and tokens with other roles need an admin. Returns the secret, shown once.
    pub async fn create_token(
        &self,
        actor: &Actor,
        request: CreateToken,
    ) -> Result<(ApiToken, TokenSecret)> {
        let kind = TokenKind::from(request.kind.unwrap_or_default());
        match kind {
            TokenKind::Ingest => {
                actor.require_admin()?;
                if !request.roles.is_empty() {
                    return Err(AppError::invalid("an ingest token has no roles"));
                }
                if request
                    .source
                    .as_deref()
                    .is_none_or(|s| s.trim().is_empty())
                {
                    return Err(AppError::invalid(
                        "an ingest token needs the source its events belong to",
                    ));
                }
            }
            TokenKind::Api => {
                if request.roles.is_empty() {
                    return Err(AppError::invalid(
                        "an API token needs at least one role (admin, analyst, responder or viewer)",
                    ));
                }
                if !actor.has_role(Role::Admin) && !request.roles.iter().all(|r| actor.has_role(*r))
                {
                    return Err(AppError::forbidden(
                        "a token cannot have roles its creator lacks",
                    ));
                }
                if request.source.is_some() {
                    return Err(AppError::invalid(
                        "only an ingest token has a source; leave it out or make an ingest token",
                    ));
                }
            }
            TokenKind::Session => {
                return Err(AppError::invalid(
                    "session tokens come from a login; create an api or ingest token",
                ))
            }
        }
        let expires = match request.expires_in_days {
            Some(days) if !(1..=MAX_TOKEN_DAYS).contains(&days) => {
                return Err(AppError::invalid(format!(
                    "expires_in_days must be 1 to {MAX_TOKEN_DAYS}, not {days}"
                )))
            }
            Some(days) => Some(
                Timestamp::now()
                    .checked_add(SignedDuration::from_hours(days * 24))
                    .map_err(AppError::internal)?,
            ),
            None => None,
        };
        if let (TokenKind::Ingest, Some(source)) = (kind, &request.source) {
            if self.store().source(actor.tenant, source).await?.is_none() {
                self.store()
                    .upsert_source(
                        actor.tenant,
                        NewSource {
                            name: source.clone(),
                            ..NewSource::default()
                        },
                    )
                    .await?;
            }
        }
        let name = request.name.unwrap_or_else(|| match &request.source {
            Some(source) if kind == TokenKind::Ingest => format!("ingest for {source}"),
            _ => format!("{} {}", actor.via(), role_names(&request.roles).join("+")),
        });
        let (token, secret) = self
            .store()
            .create_token(NewToken {
                tenant_id: actor.tenant,
                kind,
                name,
                roles: request.roles,
                source: request.source,
                user_id: actor.user_id(),
                expires,
            })
            .await?;
        tracing::info!(tenant = %actor.tenant, token = %token.prefix, kind = token.kind.as_str(), "token created");
        self.record(
            actor,
            "token.create",
            &token.prefix,
            serde_json::json!({
                "created_token_id": token.id, "kind": token.kind.as_str(),
                "roles": role_names(&token.roles), "source": token.source,
                "expires": token.expires.map(|t| t.to_string()),
            }),
        )
        .await;
        Ok((token, secret))
    }

    /// Revokes a token: admins any of the tenant's, others only their own (anything else is
    /// "not found", so ids of other people's tokens are not confirmed).
    pub async fn revoke_token(&self, actor: &Actor, token_id: i64) -> Result<ApiToken> {
        if !actor.has_role(Role::Admin) {
            let own = self
                .list_tokens(actor)
                .await?
                .into_iter()
                .any(|t| t.id == token_id);
            if !own {
                return Err(AppError::NotFound(format!("token {token_id}")));
            }
        }
        let token = self.store().revoke_token(actor.tenant, token_id).await?;
        self.record(
            actor,
            "token.revoke",
            &token.prefix,
            serde_json::json!({"revoked_token_id": token.id}),
        )
        .await;
        Ok(token)
    }

    // ------------------------------------------------------------ sources

    pub async fn list_sources(&self, actor: &Actor) -> Result<Vec<Source>> {
        Ok(self.store().list_sources(actor.tenant).await?)
    }

    /// Creates or replaces a source's logsource, field mapping and alert mapping (admins).
    pub async fn put_source(&self, actor: &Actor, source: NewSource) -> Result<Source> {
        actor.require_admin()?;
        if source.name.trim().is_empty() {
            return Err(AppError::invalid("a source needs a name"));
        }
        for (from, to) in &source.field_mapping {
            if from.trim().is_empty() || to.trim().is_empty() {
                return Err(AppError::invalid(format!(
                    "field mapping {from:?} -> {to:?}: both names must be non-empty"
                )));
            }
        }
        if source
            .id_field
            .as_deref()
            .is_some_and(|f| f.trim().is_empty() || f.split('.').any(str::is_empty))
        {
            return Err(AppError::invalid(
                "id_field: a field path like `event.id` (dotted, no empty part)",
            ));
        }
        if source
            .silent_after_secs
            .is_some_and(|s| s < crate::source_health::MIN_SILENT_AFTER_SECS)
        {
            return Err(AppError::invalid(format!(
                "silent_after_secs: at least {} second",
                crate::source_health::MIN_SILENT_AFTER_SECS
            )));
        }
        if let Some(syslog) = &source.syslog {
            garrison_pipeline::SyslogRule::compile(syslog).map_err(AppError::invalid)?;
        }
        let source = self.store().upsert_source(actor.tenant, source).await?;
        self.record(
            actor,
            "source.put",
            &source.name,
            serde_json::json!({
                "product": source.product, "service": source.service, "category": source.category,
                "field_mapping": source.field_mapping.len(), "alerts": source.alert_mapping.is_some(),
                "id_field": source.id_field, "syslog": source.syslog,
                "silent_after_secs": source.silent_after_secs,
            }),
        )
        .await;
        Ok(source)
    }
}

fn check_retention(days: Option<i64>) -> Result<()> {
    match days {
        Some(d) if d < 1 => Err(AppError::invalid(format!(
            "retention_days must be at least 1 (or absent to keep events forever), not {d}"
        ))),
        _ => Ok(()),
    }
}

fn role_names(roles: &[Role]) -> Vec<&'static str> {
    roles.iter().map(|r| r.as_str()).collect()
}
