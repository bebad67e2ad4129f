//! Wire types of the `api` routes: shared by the server and the client.

use serde::{Deserialize, Serialize};

use garrison_model::{Event, PageLimit, Role, TimeBound};
use garrison_store::{ApiToken, Source, Tenant, User};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub id: String,
    /// The event's own time (RFC 3339).
    pub time: String,
    pub received: String,
    pub source: String,
    pub logsource: garrison_model::LogSource,
    /// The fields as they were sent: for JSON ingest the sender's own bytes, so integers
    /// beyond 64 bits stay exact.
    #[schema(value_type = Object)]
    pub fields: Box<serde_json::value::RawValue>,
    /// The ECS-style view of the fields.
    #[schema(value_type = Object)]
    pub normalized: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// The stored text when it is there (and valid), else the parsed value rendered.
fn exact_fields(
    text: Option<String>,
    value: &serde_json::Value,
) -> Box<serde_json::value::RawValue> {
    text.and_then(|text| serde_json::value::RawValue::from_string(text).ok())
        .or_else(|| serde_json::value::to_raw_value(value).ok())
        .unwrap_or_else(|| {
            serde_json::value::RawValue::from_string("{}".to_string())
                .unwrap_or_else(|_| unreachable!("{{}} is JSON"))
        })
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        EventView {
            id: e.id,
            time: e.time.to_string(),
            received: e.received.to_string(),
            source: e.source,
            logsource: e.logsource,
            fields: exact_fields(e.fields_text, &e.fields),
            normalized: e.normalized,
            raw: e.raw,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsPage {
    pub events: Vec<EventView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
    /// The field holding the sender's own unique event id, if the source names one.
    pub id_field: Option<String>,
    /// Which syslog messages go to this source, if any.
    pub syslog: Option<garrison_store::SyslogMatch>,
    /// Seconds of silence after which the source raises an alert, if watched.
    pub silent_after_secs: Option<u64>,
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
            id_field: s.id_field,
            syslog: s.syslog,
            silent_after_secs: s.silent_after_secs,
            created: s.created.to_string(),
        }
    }
}

/// Query parameters of the event search. Besides these, `field.NAME=VALUE` filters on a field
/// (a dotted path into the fields as sent, or an ECS name); several are ANDed.
#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
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

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Tenant name; `default` when absent.
    pub tenant: Option<String>,
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// A session token for `Authorization: Bearer`.
    pub token: String,
    pub expires: String,
    pub user: UserView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeResponse {
    pub tenant: TenantView,
    pub token: TokenView,
}

/// A new tenant.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateTenant {
    pub name: String,
    pub retention_days: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UpdateTenant {
    /// Days to keep events; `null` keeps them forever.
    pub retention_days: Option<i64>,
}

/// A new user of the caller's tenant.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateUser {
    pub username: String,
    /// At least 12 characters; stored as an argon2id hash.
    pub password: String,
    /// Any of admin, analyst, responder, viewer.
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UpdateUser {
    /// Disabling also revokes the user's tokens.
    pub disabled: bool,
}

/// The kinds of token a request may create (sessions come only from a login).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NewTokenKind {
    /// Calls the API with its roles.
    #[default]
    Api,
    /// Only sends events, into its one source.
    Ingest,
}

impl From<NewTokenKind> for garrison_store::TokenKind {
    fn from(kind: NewTokenKind) -> Self {
        match kind {
            NewTokenKind::Api => garrison_store::TokenKind::Api,
            NewTokenKind::Ingest => garrison_store::TokenKind::Ingest,
        }
    }
}

/// A new token in the caller's tenant.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateToken {
    /// A name to recognise it by; derived from the kind, the source and the roles when absent.
    pub name: Option<String>,
    /// `api` (default) or `ingest`.
    pub kind: Option<NewTokenKind>,
    /// For API tokens: a subset of the caller's roles.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    /// For ingest tokens: the source its events belong to.
    pub source: Option<String>,
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The secret. Shown this once; only its hash is kept.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
    /// The field (dotted path into the fields as sent) holding the sender's own unique event
    /// id: records with the same value are one event, stored once. Unset: an event's id
    /// derives from its bytes (only an exact resend is one event).
    #[serde(default)]
    pub id_field: Option<String>,
    /// Which syslog messages go to this source (sender networks, hostnames, app names,
    /// CEF/LEEF vendors and products; all given must hold). The most specific matching
    /// source wins; unmatched messages go to the listener's default source. Running
    /// listeners pick changes up within seconds.
    #[serde(default)]
    pub syslog: Option<garrison_store::SyslogMatch>,
    /// Raise an alert (`garrison-source-silent`) when the source sends nothing for this many
    /// seconds (checked every `silent_check_interval`, 1 minute by default). Unset: silence
    /// is not watched.
    #[serde(default)]
    pub silent_after_secs: Option<u64>,
}

/// The health of one source: is it sending, at what rate, how much of it is understood, and
/// which rules watch it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SourceHealthView {
    pub source: String,
    /// Whether the source is configured (`source set`), or only named by tokens or syslog.
    pub configured: bool,
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
    /// When an event of the source was last stored (RFC 3339), if in the last 8 days.
    pub last_event_received: Option<String>,
    /// Seconds since then.
    pub silent_for_secs: Option<u64>,
    /// The configured silence limit, if watched.
    pub silent_after_secs: Option<u64>,
    /// Silent for longer than its limit (an alert `garrison-source-silent` is raised).
    pub silent: bool,
    /// Events stored per second over the last minute and the last hour.
    pub events_per_second_1m: f64,
    pub events_per_second_1h: f64,
    /// Over the last 24 hours: events stored, records dropped as duplicates (resends), events
    /// a decoder did not understand (kept, flagged `garrison.unparsed`), and their share.
    pub events_24h: u64,
    pub duplicates_24h: u64,
    pub unparsed_24h: u64,
    pub unparsed_share_24h: f64,
    /// Enabled rules, and how many of them apply to the source's logsource.
    pub rules_enabled: u64,
    pub rules_applicable: u64,
    /// Rules that fired on the source's events in the last 24 hours, most hits first.
    pub rules_fired_24h: Vec<RuleHitsView>,
    /// What an operator should know (no logsource set, unparsed lines, silence).
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleHitsView {
    pub rule_id: String,
    pub hits: u64,
}
