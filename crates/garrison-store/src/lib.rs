//! Garrison's persistence, behind repository traits.
//!
//! One implementation, [`SqlStore`], speaks to SQLite (embedded default) or PostgreSQL through
//! sqlx; the SQL that differs (full-text search, JSON access, types) lives in the [`Dialect`]
//! and each backend has its own migrations. The same conformance suite (`tests/`) runs against
//! both.
//!
//! **Invariant:** every method that reads or writes tenant data takes a [`TenantId`] and puts it
//! in the `WHERE` clause itself; callers cannot forget it. The only lookups that are not scoped
//! are the ones that establish a tenant: a token by its hash, a tenant by its name.
//!
//! **Invariant:** secrets (passwords, tokens) enter as plaintext and are stored only hashed;
//! nothing here returns or logs them.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod audit;
mod credentials;
mod detection;
mod incidents;
mod indicators;
mod page;
mod placeholders;
mod playbooks;
mod sql;

pub use audit::{
    audit_hash, AuditBreak, AuditEntry, AuditPage, AuditQuery, AuditRepo, AuditVerification,
    ExpectedEntry, NewAuditEntry, GENESIS_HASH,
};
pub use credentials::{
    burn_password_check, generate_token, hash_password, hash_token, verify_password, TokenSecret,
};
pub use detection::{
    Alert, AlertHit, AlertPage, AlertQuery, DetectionOutcome, DetectionRepo, ImportSummary,
    NewRule, RuleVersion, StoredRule,
};
pub use incidents::{
    Attachment, IncidentOrder, IncidentPage, IncidentQuery, IncidentRepo, LinkedAlert, Split,
    StoredGroupingRule, StoredIncident, StoredSuppression, StoredWorkflow, Task, TimelineEntry,
    DEFAULT_WORKFLOW_VERSION,
};
pub use indicators::{
    FeedImport, IndicatorFeed, IndicatorPage, IndicatorQuery, IndicatorRepo, IndicatorUpsert,
    NewIndicator, StoredIndicator,
};
pub use page::Page;
pub use placeholders::{PlaceholderRepo, PlaceholderVersion};
pub use playbooks::{
    ApprovalLink, PlaybookRepo, PlaybookSummary, PlaybookVersion, RunFilter, RunRecord, RunWrite,
    TimerRecord, WriteOutcome,
};
pub use sql::{Dialect, SqlStore};

use async_trait::async_trait;
use garrison_model::{Event, Role, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration {version} failed: {source}")]
    Migration {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    Conflict { what: String },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("corrupt stored value in {column}: {reason}")]
    Corrupt {
        column: &'static str,
        reason: String,
    },
    #[error("unsupported database url {0:?}: expected sqlite://... or postgres://...")]
    UnsupportedUrl(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The database refused this data itself (a constraint, an invalid value): retrying the
    /// same data cannot succeed, unlike a busy or unreachable database.
    #[error("the database rejected the data: {reason}")]
    Rejected { reason: String },
}

impl StoreError {
    /// Classifies a database error from a write of user data: data-level refusals become
    /// [`StoreError::Rejected`]; busy, lost connections, deadlocks, a full disk stay transient.
    pub fn from_write(error: sqlx::Error) -> StoreError {
        if let sqlx::Error::Database(db) = &error {
            if transient_reason(&error).is_none() {
                let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                return StoreError::Rejected {
                    reason: format!("{} (code {code})", db.message()),
                };
            }
        }
        StoreError::Database(error)
    }

    /// Why this error is a "try again later" condition of the database (busy or locked by
    /// another writer, disk full, an I/O error, a lost connection, no free connection), or
    /// `None` when retrying the same call cannot help.
    pub fn transient_reason(&self) -> Option<&'static str> {
        match self {
            StoreError::Database(error) => transient_reason(error),
            _ => None,
        }
    }
}

/// See [`StoreError::transient_reason`].
fn transient_reason(error: &sqlx::Error) -> Option<&'static str> {
    match error {
        sqlx::Error::PoolTimedOut => Some("no database connection is free"),
        sqlx::Error::PoolClosed => Some("the database is closing"),
        sqlx::Error::Io(_) => Some("the database connection failed"),
        sqlx::Error::WorkerCrashed => Some("the database connection failed"),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            // SQLite reports extended codes; the primary code is the low byte:
            // 5 busy, 6 locked, 10 I/O error, 13 full, 14 cannot open.
            if let Ok(number) = code.parse::<i64>() {
                return match number & 0xff {
                    5 | 6 => Some("the database is locked by another writer"),
                    10 => Some("the database had an I/O error"),
                    13 => Some("the disk is full"),
                    14 => Some("the database file cannot be opened"),
                    _ => None,
                };
            }
            // PostgreSQL classes: 08 connection, 40 rollback (deadlock, serialization),
            // 53 insufficient resources (53100 disk full), 57 operator intervention, 58 system.
            match code.get(..2) {
                Some("08") => Some("the database connection failed"),
                Some("40") => Some("the database rolled back a conflicting transaction"),
                Some("53") if code == "53100" => Some("the disk is full"),
                Some("53") => Some("the database is out of resources"),
                Some("57") | Some("58") => Some("the database is unavailable"),
                _ => None,
            }
        }
        _ => None,
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// Events older than this many days (by time received) are deleted; `None` keeps them.
    pub retention_days: Option<i64>,
    pub created: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub tenant_id: TenantId,
    pub username: String,
    pub roles: Vec<Role>,
    pub disabled: bool,
    pub created: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A personal or service API token for `/api/v1`.
    Api,
    /// Sends events for one source; nothing else.
    Ingest,
    /// Issued by a password login; expires.
    Session,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Ingest => "ingest",
            TokenKind::Session => "session",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s {
            "api" => Ok(TokenKind::Api),
            "ingest" => Ok(TokenKind::Ingest),
            "session" => Ok(TokenKind::Session),
            other => Err(StoreError::Corrupt {
                column: "tokens.kind",
                reason: format!("unknown kind {other:?}"),
            }),
        }
    }
}

/// A token as stored: never its secret, only what it may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: i64,
    pub tenant_id: TenantId,
    pub kind: TokenKind,
    pub name: String,
    /// The first characters of the secret, to recognise a token in lists.
    pub prefix: String,
    pub roles: Vec<Role>,
    /// For ingest tokens: the source the events are attributed to.
    pub source: Option<String>,
    pub user_id: Option<i64>,
    pub created: Timestamp,
    pub expires: Option<Timestamp>,
    pub last_used: Option<Timestamp>,
    pub revoked: bool,
}

#[derive(Clone, Debug)]
pub struct NewToken {
    pub tenant_id: TenantId,
    pub kind: TokenKind,
    pub name: String,
    pub roles: Vec<Role>,
    pub source: Option<String>,
    pub user_id: Option<i64>,
    pub expires: Option<Timestamp>,
}

/// An ingest source: sets the logsource and the field mapping of the events it sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub id: i64,
    pub tenant_id: TenantId,
    pub name: String,
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
    /// Pairs of (field path as sent, ECS-style name), applied on top of the built-in mapping.
    pub field_mapping: Vec<(String, String)>,
    /// Set for an alert source (an EDR's or IDS's own alerts): each of its events becomes an
    /// alert, named and levelled by these fields.
    #[serde(default)]
    pub alert_mapping: Option<AlertMapping>,
    /// The field (a dotted path into the fields as sent) that is the sender's own unique id
    /// of an event: records with the same value are one event, stored once. Unset, an
    /// event's id derives from its content, so only an exact resend is one event.
    #[serde(default)]
    pub id_field: Option<String>,
    /// Which syslog messages belong to this source (see [`SyslogMatch`]); unset, only the
    /// listener's default source gets syslog.
    #[serde(default)]
    pub syslog: Option<SyslogMatch>,
    /// A source silent for longer than this (seconds since its last stored event) raises
    /// an alert (`garrison-source-silent`); unset, silence is not watched.
    #[serde(default)]
    pub silent_after_secs: Option<u64>,
    pub created: Timestamp,
}

/// Which syslog messages a source receives. Every condition given must hold (a list holds
/// when any of its entries does); the most specific matching source wins (most conditions,
/// then name), and a message no source matches goes to the listener's default source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyslogMatch {
    /// Sender addresses or networks (`10.0.0.5`, `10.0.0.0/24`, `2001:db8::/32`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    /// Syslog hostnames, `*` and `?` as wildcards, case-insensitive (`fw-*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostname: Vec<String>,
    /// Syslog app names (APP-NAME / TAG), case-insensitive (`sshd`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app: Vec<String>,
    /// CEF or LEEF device vendors, case-insensitive (`Fortinet`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vendor: Vec<String>,
    /// CEF or LEEF device products, case-insensitive (`FortiGate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub product: Vec<String>,
}

impl SyslogMatch {
    /// How many conditions it sets (0: it matches nothing, see [`SyslogMatch::is_empty`]).
    pub fn conditions(&self) -> usize {
        [
            &self.from,
            &self.hostname,
            &self.app,
            &self.vendor,
            &self.product,
        ]
        .iter()
        .filter(|l| !l.is_empty())
        .count()
    }

    pub fn is_empty(&self) -> bool {
        self.conditions() == 0
    }
}

/// Which fields of an alert source's events (paths as sent, dotted into nested objects) give
/// the alert's rule id (`ext:<value>`), title and severity. A missing field falls back to the
/// source's name and level `medium`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertMapping {
    pub rule: Option<String>,
    pub title: Option<String>,
    pub severity: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct NewSource {
    pub name: String,
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
    pub field_mapping: Vec<(String, String)>,
    pub alert_mapping: Option<AlertMapping>,
    pub id_field: Option<String>,
    pub syslog: Option<SyslogMatch>,
    pub silent_after_secs: Option<u64>,
}

/// An event in the shape the store writes it: JSON already rendered to text and the words for
/// full-text search already collected, so this work happens once, at ingest, on every core.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventRow {
    pub id: String,
    pub tenant_id: TenantId,
    pub time: Timestamp,
    pub received: Timestamp,
    pub source: String,
    pub logsource: garrison_model::LogSource,
    /// The fields as sent, as a JSON object.
    pub fields_json: String,
    /// The ECS-style view, as a JSON object.
    pub normalized_json: String,
    pub raw: Option<String>,
    /// Words for full-text search.
    pub search_text: String,
}

/// Longest text indexed for full-text search per event.
pub const MAX_INDEXED_TEXT: usize = 16 * 1024;

impl EventRow {
    pub fn from_event(event: &Event) -> EventRow {
        EventRow {
            id: event.id.clone(),
            tenant_id: event.tenant_id,
            time: event.time,
            received: event.received,
            source: event.source.clone(),
            logsource: event.logsource.clone(),
            fields_json: event.fields.to_string(),
            normalized_json: serde_json::Value::Object(event.normalized.clone()).to_string(),
            raw: event.raw.clone(),
            search_text: searchable_text(event),
        }
    }
}

/// The words of an event for full-text search: every string and number value, and the raw text.
pub fn searchable_text(event: &Event) -> String {
    match &event.fields {
        serde_json::Value::Object(fields) => searchable_text_of(fields, event.raw.as_deref()),
        other => {
            let mut map = serde_json::Map::new();
            map.insert("value".into(), other.clone());
            searchable_text_of(&map, event.raw.as_deref())
        }
    }
}

/// [`searchable_text`] straight from a JSON object's text: every string value and number, keys
/// left out, escapes decoded, without building a JSON tree (this runs once per stored event).
/// Text that is not valid JSON still yields its words; nothing here can fail.
pub fn searchable_text_from_json(json: &str, raw: Option<&str>) -> String {
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len().min(MAX_INDEXED_TEXT) + raw.map_or(0, str::len));
    let mut i = 0;
    while i < bytes.len() && out.len() < MAX_INDEXED_TEXT {
        match bytes[i] {
            b'"' => {
                let start = out.len();
                i = read_json_string(bytes, i + 1, &mut out);
                // A key is followed by ':'; keys are not searchable words.
                let mut j = i;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                if bytes.get(j) == Some(&b':') {
                    out.truncate(start);
                } else {
                    out.push(' ');
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                out.push_str(&json[start..i]);
                out.push(' ');
            }
            _ => i += 1,
        }
    }
    if let Some(raw) = raw {
        out.push_str(raw);
    }
    if out.len() > MAX_INDEXED_TEXT {
        let mut cut = MAX_INDEXED_TEXT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// Appends the JSON string starting at `i` (after its opening quote) to `out`, decoding
/// escapes; returns the index after the closing quote.
fn read_json_string(bytes: &[u8], mut i: usize, out: &mut String) -> usize {
    let mut run_start = i;
    let flush = |out: &mut String, from: usize, to: usize| {
        if let Some(run) = bytes.get(from..to) {
            out.push_str(&String::from_utf8_lossy(run));
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                flush(out, run_start, i);
                return i + 1;
            }
            b'\\' => {
                flush(out, run_start, i);
                let escape = bytes.get(i + 1).copied().unwrap_or(b' ');
                i += 2;
                match escape {
                    b'u' => {
                        let code = bytes
                            .get(i..i + 4)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u32::from_str_radix(h, 16).ok());
                        if let Some(c) = code.and_then(char::from_u32) {
                            out.push(c);
                        } else {
                            // Surrogate halves and bad escapes separate words.
                            out.push(' ');
                        }
                        i += 4;
                    }
                    b'n' | b't' | b'r' | b'b' | b'f' => out.push(' '),
                    other => out.push(other as char),
                }
                run_start = i;
            }
            _ => i += 1,
        }
    }
    flush(out, run_start, bytes.len().min(i));
    bytes.len()
}

/// [`searchable_text`] from an event's parts.
pub fn searchable_text_of(
    fields: &serde_json::Map<String, serde_json::Value>,
    raw: Option<&str>,
) -> String {
    fn walk(value: &serde_json::Value, out: &mut String) {
        if out.len() >= MAX_INDEXED_TEXT {
            return;
        }
        match value {
            serde_json::Value::String(s) => {
                out.push_str(s);
                out.push(' ');
            }
            serde_json::Value::Number(n) => {
                out.push_str(&n.to_string());
                out.push(' ');
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            serde_json::Value::Bool(_) | serde_json::Value::Null => {}
        }
    }
    let mut text = String::new();
    fields.values().for_each(|v| walk(v, &mut text));
    if let Some(raw) = raw {
        text.push_str(raw);
    }
    if text.len() > MAX_INDEXED_TEXT {
        let mut cut = MAX_INDEXED_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// A search over stored events. All conditions are ANDed.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    /// Event time, inclusive.
    pub from: Option<Timestamp>,
    /// Event time, exclusive.
    pub to: Option<Timestamp>,
    pub source: Option<String>,
    /// Equality on a field: a dotted path into the original fields, or an ECS name.
    pub fields: Vec<(String, String)>,
    /// Full-text words; every word must occur.
    pub text: Option<String>,
    pub limit: usize,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Oldest first (event time, then arrival) instead of newest first: for replays in time
    /// order (rule back-tests, retro-hunts). A cursor holds its order.
    pub oldest_first: bool,
}

/// A page of events, newest first (or oldest first, see [`EventQuery::oldest_first`]).
pub type EventPage = Page<Event>;

#[async_trait]
pub trait TenantRepo: Send + Sync {
    /// Creates a tenant, or returns the existing one of that name.
    async fn ensure_tenant(&self, name: &str) -> Result<Tenant>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>>;
    async fn tenant(&self, id: TenantId) -> Result<Tenant>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    async fn set_retention(&self, id: TenantId, days: Option<i64>) -> Result<Tenant>;
}

#[async_trait]
pub trait UserRepo: Send + Sync {
    async fn create_user(
        &self,
        tenant: TenantId,
        username: &str,
        password: &str,
        roles: &[Role],
    ) -> Result<User>;
    async fn list_users(&self, tenant: TenantId) -> Result<Vec<User>>;
    /// Checks a password; `None` for an unknown user, a wrong password or a disabled account
    /// (callers must not be able to tell which).
    async fn authenticate_user(
        &self,
        tenant: TenantId,
        username: &str,
        password: &str,
    ) -> Result<Option<User>>;
    async fn set_user_disabled(
        &self,
        tenant: TenantId,
        user_id: i64,
        disabled: bool,
    ) -> Result<User>;
    async fn count_users(&self, tenant: TenantId) -> Result<i64>;
}

#[async_trait]
pub trait TokenRepo: Send + Sync {
    /// Creates a token; the secret is returned once and only its hash is kept.
    async fn create_token(&self, token: NewToken) -> Result<(ApiToken, TokenSecret)>;
    /// Resolves a presented secret to its token, if it exists, is not revoked and not expired.
    async fn authenticate_token(&self, secret: &str, now: Timestamp) -> Result<Option<ApiToken>>;
    async fn list_tokens(&self, tenant: TenantId) -> Result<Vec<ApiToken>>;
    async fn revoke_token(&self, tenant: TenantId, token_id: i64) -> Result<ApiToken>;
    /// Deletes session tokens that expired before `now` (logins leave one each); returns how
    /// many. API and ingest tokens are kept even when expired or revoked, for the record.
    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64>;
}

#[async_trait]
pub trait SourceRepo: Send + Sync {
    /// Creates or updates the source of that name in the tenant.
    async fn upsert_source(&self, tenant: TenantId, source: NewSource) -> Result<Source>;
    async fn source(&self, tenant: TenantId, name: &str) -> Result<Option<Source>>;
    async fn list_sources(&self, tenant: TenantId) -> Result<Vec<Source>>;
    /// The per-minute counts of `source` since `since` (oldest first).
    async fn source_minutes(
        &self,
        tenant: TenantId,
        source: &str,
        since: Timestamp,
    ) -> Result<Vec<SourceMinute>>;
    /// When each source of the tenant last had an event stored (as far as kept counts go).
    async fn sources_last_received(&self, tenant: TenantId) -> Result<Vec<(String, Timestamp)>>;
    /// Counts records dropped as duplicates before they reached the log (the same record
    /// twice in one batch).
    async fn add_source_duplicates(
        &self,
        tenant: TenantId,
        source: &str,
        at: Timestamp,
        count: u64,
    ) -> Result<()>;
    /// Alert hits per rule on events of `source`, in alerts that took an event at or after
    /// `since` (by when they fired, not the events' own time: backfilled logs count too).
    async fn source_rule_hits(
        &self,
        tenant: TenantId,
        source: &str,
        since: Timestamp,
    ) -> Result<Vec<(String, u64)>>;
    /// Drops per-minute counts older than `before` (all tenants: housekeeping).
    async fn purge_source_minutes(&self, before: Timestamp) -> Result<u64>;
}

/// One minute of a source's ingest (see [`SourceRepo::source_minutes`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceMinute {
    pub minute: Timestamp,
    pub events: u64,
    pub duplicates: u64,
    pub unparsed: u64,
    pub last_received: Timestamp,
}

#[async_trait]
pub trait EventRepo: Send + Sync {
    /// Stores events (of any tenants; each carries its own) and moves `consumer`'s position to
    /// `position` in the same transaction. An event whose (tenant, id) exists is skipped, so
    /// replaying a log range stores each event once. Returns how many were new.
    async fn store_events(&self, events: &[EventRow], consumer: &str, position: u64)
        -> Result<u64>;
    async fn search_events(&self, tenant: TenantId, query: &EventQuery) -> Result<EventPage>;
    /// One stored event by its id (the id alerts and searches give).
    async fn event(&self, tenant: TenantId, id: &str) -> Result<Option<Event>>;
    async fn count_events(&self, tenant: TenantId) -> Result<i64>;
    /// Deletes the tenant's events received before `cutoff`; returns how many.
    async fn delete_events_received_before(
        &self,
        tenant: TenantId,
        cutoff: Timestamp,
    ) -> Result<u64>;
    async fn consumer_position(&self, consumer: &str) -> Result<u64>;
}

/// Everything the service needs from storage.
pub trait Store: TenantRepo + UserRepo + TokenRepo + SourceRepo + EventRepo {}
impl<T: TenantRepo + UserRepo + TokenRepo + SourceRepo + EventRepo> Store for T {}

fn roles_to_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn roles_from_text(text: &str) -> Result<Vec<Role>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|e: garrison_model::UnknownRole| StoreError::Corrupt {
                    column: "roles",
                    reason: e.to_string(),
                })
        })
        .collect()
}

#[cfg(test)]
mod search_text_tests {
    use super::*;
    use proptest::prelude::*;

    fn words(text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            "\\PC{0,20}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("\\PC{0,8}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn keys_are_not_words_and_escapes_are_decoded() {
        let text = searchable_text_from_json(
            r#"{"CommandLine":"C:\\Windows\\cmd.exe /c \"whoami\"","EventID":4688,"nested":{"k":["caf\u00e9",true,null,-1.5e3]}}"#,
            Some("raw words"),
        );
        assert_eq!(
            words(&text),
            [
                "C", "Windows", "cmd", "exe", "c", "whoami", "4688", "café", "1", "5e3", "raw",
                "words"
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn the_text_scan_finds_the_same_words_as_the_tree_walk(fields in proptest::collection::btree_map("\\PC{0,8}", json_value(), 0..6)) {
            let fields: serde_json::Map<String, serde_json::Value> = fields.into_iter().collect();
            let json = serde_json::Value::Object(fields.clone()).to_string();
            prop_assert_eq!(words(&searchable_text_from_json(&json, None)), words(&searchable_text_of(&fields, None)));
        }

        #[test]
        fn any_text_is_scanned_without_panicking(text in "\\PC{0,200}") {
            let _ = searchable_text_from_json(&text, Some("x"));
        }
    }
}
