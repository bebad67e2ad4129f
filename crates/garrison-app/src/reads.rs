//! What people and programs read: events, alerts, rules with their versions, the audit log,
//! and the session operations (login, who am I). Reads change nothing, but they are operations
//! like any other: the tenant and the roles come from the `Actor`, never from the request.

use garrison_api::admin::{EventSearchParams, EventView, EventsPage, LoginResponse, MeResponse};
use garrison_api::audit::{AuditEntryView, AuditPageView, AuditParams};
use garrison_api::detection::{
    AlertDetail, AlertParams, AlertView, AlertsPage, RuleDetail, RuleVersionView, RuleView,
};
use garrison_model::{PageLimit, Timestamp};
use garrison_store::{
    AlertQuery, ApiToken, AuditQuery, AuditRepo, AuditVerification, DetectionRepo, EventQuery,
    EventRepo, NewToken, TenantRepo, TokenKind, TokenRepo, UserRepo,
};
use serde_json::json;

use crate::{Actor, App, AppError, Result};

/// How long a session token lives.
pub const SESSION_HOURS: i64 = 12;
/// Most event ids listed with one alert.
const ALERT_EVENT_IDS: usize = 1000;

impl App {
    /// Stored events, newest first; `fields` are (field, value) filters, ANDed.
    pub async fn search_events(
        &self,
        actor: &Actor,
        params: EventSearchParams,
        fields: Vec<(String, String)>,
    ) -> Result<EventsPage> {
        let search = EventQuery {
            from: params.from.map(|t| t.0),
            to: params.to.map(|t| t.0),
            source: params.source,
            text: params.q,
            cursor: params.cursor,
            limit: PageLimit::or(params.limit, 100),
            fields,
            oldest_first: false,
        };
        let page = self.store().search_events(actor.tenant, &search).await?;
        Ok(EventsPage {
            events: page.items.into_iter().map(EventView::from).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// One stored event by its id (an alert's `event_ids`, a search result's `id`).
    pub async fn event(&self, actor: &Actor, id: &str) -> Result<EventView> {
        match self.store().event(actor.tenant, id).await? {
            Some(event) => Ok(EventView::from(event)),
            None => Err(AppError::NotFound(format!("event {id:?}"))),
        }
    }

    /// Alerts, newest first.
    pub async fn list_alerts(&self, actor: &Actor, params: AlertParams) -> Result<AlertsPage> {
        let search = AlertQuery {
            level: params.level,
            rule_id: params.rule_id,
            from: params.from.map(|t| t.0),
            to: params.to.map(|t| t.0),
            cursor: params.cursor,
            limit: PageLimit::or(params.limit, 100),
        };
        let page = self.store().list_alerts(actor.tenant, &search).await?;
        Ok(AlertsPage {
            alerts: page.items.into_iter().map(AlertView::from).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// An alert with the ids of (up to 1,000 of) the events folded into it.
    pub async fn alert(&self, actor: &Actor, id: &str) -> Result<AlertDetail> {
        let alert = self
            .store()
            .alert(actor.tenant, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("alert {id:?}")))?;
        let event_ids = self
            .store()
            .alert_event_ids(actor.tenant, id, ALERT_EVENT_IDS)
            .await?;
        Ok(AlertDetail {
            alert: alert.into(),
            event_ids,
        })
    }

    /// A rule with its text and every version.
    pub async fn rule_detail(&self, actor: &Actor, id: &str) -> Result<RuleDetail> {
        let rule = self.rule(actor, id).await?;
        let versions = self.store().rule_versions(actor.tenant, id).await?;
        Ok(RuleDetail {
            rule: RuleView::from(&rule),
            yaml: rule.yaml,
            versions: versions.into_iter().map(RuleVersionView::from).collect(),
        })
    }

    /// The tenant's audit log, oldest first; admins only.
    pub async fn audit_page(&self, actor: &Actor, params: AuditParams) -> Result<AuditPageView> {
        let page = self.audit_entries(actor, params).await?;
        Ok(AuditPageView {
            entries: page.entries.into_iter().map(AuditEntryView::from).collect(),
            next_after: page.next_after,
        })
    }

    /// Walks the tenant's whole audit chain and names the first entry that breaks it; admins.
    /// A page of stored entries as they are (hash and details text included): for export.
    pub async fn audit_entries(
        &self,
        actor: &Actor,
        params: AuditParams,
    ) -> Result<garrison_store::AuditPage> {
        actor.require_admin()?;
        let search = AuditQuery {
            after: params.after,
            action: params.action,
            limit: PageLimit::or(params.limit, 100),
        };
        Ok(self.store().list_audit(actor.tenant, &search).await?)
    }

    /// Reports an account lockout to the tenant's SOC as an alert (rule
    /// `garrison-sign-in-lockout`, high), so it reaches the admins the way every other alert
    /// does: the queue, triage into an incident, notification playbooks. Repeats within the
    /// hour fold into one alert per account.
    async fn report_lockout(
        &self,
        tenant: garrison_model::TenantId,
        username: &str,
        client: Option<std::net::IpAddr>,
        lockout: std::time::Duration,
    ) {
        const RULE: &str = "garrison-sign-in-lockout";
        let mut entity = serde_json::Map::new();
        entity.insert("user.name".into(), json!(username));
        self.raise_internal_alert(crate::InternalAlert {
            tenant,
            rule: RULE,
            title: format!("Account {username} locked after repeated failed sign-ins"),
            level: garrison_model::Level::High,
            entity,
            // One "event" per lockout, so each is counted in the alert.
            event_id: format!("sign-in-lockout-{}", garrison_model::new_ulid()),
            matched: json!({
                "user.name": username,
                "source.ip": client.map(|ip| ip.to_string()),
                "lockout.seconds": lockout.as_secs(),
            }),
            at: Timestamp::now(),
            consumer: "sign_in.lockouts",
        })
        .await;
    }

    /// When the service keeps checkpoints, the chain must also still hold every entry each one
    /// saw: deleting the last entries (or all of them, or cutting and writing again under the
    /// same numbers) is caught, not only edits.
    pub async fn verify_audit(&self, actor: &Actor) -> Result<AuditVerification> {
        actor.require_admin()?;
        let (expected, newest) = self.checkpoints_of(actor.tenant).await?;
        let mut result = self
            .store()
            .verify_audit_against(actor.tenant, &expected)
            .await?;
        result.checkpoint = newest.map(|c| (c.seq, c.time));
        Ok(result)
    }

    /// Exchanges a user name and password for a session token.
    ///
    /// Every refusal reads the same and costs the same (one password hash, whether the tenant,
    /// the user or the password was wrong), so neither the answer nor its timing tells which
    /// names exist. After [`crate::sign_in::FREE_ATTEMPTS`] failures in a row the account is
    /// locked for a while, longer each time; the lockout is audited once (in the tenant, when
    /// it exists), not each attempt.
    pub async fn login(
        &self,
        tenant_name: &str,
        username: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<LoginResponse> {
        let now = std::time::Instant::now();
        let locked = self
            .sign_in
            .locked_for(tenant_name, username, now)
            .or_else(|| client.and_then(|ip| self.sign_in.address_locked_for(ip, now)));
        if let Some(left) = locked {
            metrics::counter!(crate::sign_in::SIGN_IN_FAILURES).increment(1);
            return Err(AppError::Locked { retry_after: left });
        }
        let tenant = self.store().tenant_by_name(tenant_name).await?;
        let user = match &tenant {
            Some(tenant) => {
                self.store()
                    .authenticate_user(tenant.id, username, password)
                    .await?
            }
            None => {
                // The same work as a wrong password, so an unknown tenant is not faster.
                let password = password.to_string();
                tokio::task::spawn_blocking(move || garrison_store::burn_password_check(&password))
                    .await
                    .map_err(AppError::internal)?;
                None
            }
        };
        let (Some(tenant), Some(user)) = (tenant.clone(), user) else {
            metrics::counter!(crate::sign_in::SIGN_IN_FAILURES).increment(1);
            if let crate::sign_in::AfterFailure::Locked(lockout) =
                self.sign_in.failed(tenant_name, username, now)
            {
                metrics::counter!(crate::sign_in::SIGN_IN_LOCKOUTS).increment(1);
                tracing::warn!(
                    tenant = tenant_name,
                    user = username,
                    ?lockout,
                    "sign-in locked after repeated failures"
                );
                if let Some(tenant) = &tenant {
                    // Off the answer's path, so a lockout is not slower to answer.
                    let app = self.clone();
                    let (tenant_id, username) = (tenant.id, username.to_string());
                    tokio::spawn(async move {
                        app.record_named(
                            tenant_id,
                            &format!("user:{username}"),
                            "auth.locked",
                            &username,
                            json!({"seconds": lockout.as_secs(), "source_ip": client.map(|ip| ip.to_string())}),
                        )
                        .await;
                        app.report_lockout(tenant_id, &username, client, lockout)
                            .await;
                    });
                }
            }
            if let Some(ip) = client {
                if let crate::sign_in::AfterFailure::Locked(lockout) =
                    self.sign_in.failed_from(ip, now)
                {
                    metrics::counter!(crate::sign_in::SIGN_IN_LOCKOUTS).increment(1);
                    tracing::warn!(%ip, ?lockout, "sign-ins from an address locked after repeated failures");
                    // The address belongs to no tenant: the provider's log has it, once.
                    let app = self.clone();
                    tokio::spawn(async move {
                        app.record_named(
                            app.provider_tenant(),
                            "system:sign-in",
                            "auth.address_locked",
                            &ip.to_string(),
                            json!({"seconds": lockout.as_secs()}),
                        )
                        .await;
                    });
                }
            }
            return Err(AppError::BadCredentials(
                "wrong tenant, user name or password".into(),
            ));
        };
        self.sign_in.succeeded(tenant_name, username);
        let expires = Timestamp::now()
            .checked_add(garrison_model::SignedDuration::from_hours(SESSION_HOURS))
            .map_err(AppError::internal)?;
        let (_, secret) = self
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
        self.record_named(
            tenant.id,
            &format!("user:{}", user.username),
            "auth.login",
            &user.username,
            json!({"user_id": user.id}),
        )
        .await;
        Ok(LoginResponse {
            token: secret.expose().to_string(),
            expires: expires.to_string(),
            user: user.into(),
        })
    }

    /// Who the caller is: its tenant and the token it came with.
    pub async fn me(&self, actor: &Actor, token: ApiToken) -> Result<MeResponse> {
        let tenant = self.store().tenant(actor.tenant).await?;
        Ok(MeResponse {
            tenant: tenant.into(),
            token: token.into(),
        })
    }
}
