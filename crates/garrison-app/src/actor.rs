//! Who acts: the principal every operation takes. Doors build it (a route from the token, the
//! CLI from the operating-system user, a worker from its task name); operations read the tenant
//! and roles from it, never from the request.

use garrison_model::{Role, TenantId};
use garrison_store::{ApiToken, TokenKind};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActorKind {
    /// A person signed in with a session.
    User { id: Option<i64>, name: String },
    /// An API token (a person's or a service's).
    Token {
        id: i64,
        prefix: String,
        /// The name its creator gave it (how playbook runs and versions name their author).
        name: String,
        kind: TokenKind,
        user_id: Option<i64>,
    },
    /// The operator on the data directory (`garrison token create` and friends): whoever can
    /// read the database can do anything, so this actor has every role.
    Local { os_user: String },
    /// A background task of the service (triage, triggers, the SLA checker).
    System { task: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub tenant: TenantId,
    pub roles: Vec<Role>,
    pub kind: ActorKind,
}

impl Actor {
    /// The actor behind an API or session token.
    pub fn from_token(token: &ApiToken) -> Actor {
        let kind = match (token.kind, token.name.strip_prefix("session of ")) {
            (TokenKind::Session, Some(user)) => ActorKind::User {
                id: token.user_id,
                name: user.to_string(),
            },
            _ => ActorKind::Token {
                id: token.id,
                prefix: token.prefix.clone(),
                name: token.name.clone(),
                kind: token.kind,
                user_id: token.user_id,
            },
        };
        Actor {
            tenant: token.tenant_id,
            roles: token.roles.clone(),
            kind,
        }
    }

    /// The operator running the CLI on the data directory as `os_user`, in `tenant`.
    pub fn local(tenant: TenantId, os_user: &str) -> Actor {
        Actor {
            tenant,
            roles: Role::ALL.to_vec(),
            kind: ActorKind::Local {
                os_user: os_user.to_string(),
            },
        }
    }

    /// A background task of the service, in `tenant`.
    pub fn system(tenant: TenantId, task: &str) -> Actor {
        Actor {
            tenant,
            roles: Role::ALL.to_vec(),
            kind: ActorKind::System {
                task: task.to_string(),
            },
        }
    }

    /// The same actor acting in another tenant (the provider's admins, the local operator).
    pub fn in_tenant(&self, tenant: TenantId) -> Actor {
        Actor {
            tenant,
            ..self.clone()
        }
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The user this actor speaks for, if any (a session, or a token a user created).
    pub fn user_id(&self) -> Option<i64> {
        match &self.kind {
            ActorKind::User { id, .. } => *id,
            ActorKind::Token { user_id, .. } => *user_id,
            _ => None,
        }
    }

    /// The token id, if the actor came with one.
    pub fn token_id(&self) -> Option<i64> {
        match &self.kind {
            ActorKind::Token { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// Passes when the actor has any of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> crate::Result<()> {
        if roles.iter().any(|r| self.has_role(*r)) {
            return Ok(());
        }
        let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(crate::AppError::Forbidden(format!(
            "this action needs one of the roles [{}]",
            wanted.join(", ")
        )))
    }

    pub fn require_admin(&self) -> crate::Result<()> {
        self.require_any(&[Role::Admin])
    }

    /// How the audit log names this actor: `user:NAME`, `token:PREFIX`, `local:OSUSER`,
    /// `system:TASK`.
    pub fn audit_name(&self) -> String {
        match &self.kind {
            ActorKind::User { name, .. } => format!("user:{name}"),
            ActorKind::Token { prefix, .. } => format!("token:{prefix}"),
            ActorKind::Local { os_user } => format!("local:{os_user}"),
            ActorKind::System { task } => format!("system:{task}"),
        }
    }

    /// Which door or credential acted: `session`, `api`, `ingest`, `local` or `system`. Kept in
    /// every audit entry, so entries from each door have the same shape.
    pub fn via(&self) -> &'static str {
        match &self.kind {
            ActorKind::User { .. } => "session",
            ActorKind::Token { kind, .. } => kind.as_str(),
            ActorKind::Local { .. } => "local",
            ActorKind::System { .. } => "system",
        }
    }
}
