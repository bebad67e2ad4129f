//! Wire types of the `detection` routes: shared by the server and the client.

use garrison_model::{AlertStatus, Level};
use serde::{Deserialize, Serialize};

use garrison_model::{PageLimit, TimeBound};
use garrison_store::{Alert, RuleVersion, StoredRule};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleView {
    /// The Sigma id of the file's first rule.
    pub id: String,
    pub title: String,
    pub level: Option<Level>,
    /// Where it was imported from (file path, `archive.zip:member`, upload name).
    pub origin: String,
    pub version: i64,
    pub enabled: bool,
    pub created: String,
    pub updated: String,
}

impl From<&StoredRule> for RuleView {
    fn from(r: &StoredRule) -> Self {
        RuleView {
            id: r.rule_id.clone(),
            title: r.title.clone(),
            level: r.level,
            origin: r.origin.clone(),
            version: r.version,
            enabled: r.enabled,
            created: r.created.to_string(),
            updated: r.updated.to_string(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleVersionView {
    pub version: i64,
    pub title: String,
    pub level: Option<Level>,
    pub origin: String,
    pub created: String,
    /// The rule file's text of this version.
    pub yaml: String,
}

impl From<RuleVersion> for RuleVersionView {
    fn from(v: RuleVersion) -> Self {
        RuleVersionView {
            version: v.version,
            title: v.title,
            level: v.level,
            origin: v.origin,
            created: v.created.to_string(),
            yaml: v.yaml,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleDetail {
    #[serde(flatten)]
    pub rule: RuleView,
    /// The current text.
    pub yaml: String,
    /// Every version, oldest first.
    pub versions: Vec<RuleVersionView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RejectedRule {
    pub path: String,
    pub line: Option<usize>,
    pub rule: Option<String>,
    pub reason: String,
}

impl From<garrison_sigma::RuleError> for RejectedRule {
    fn from(e: garrison_sigma::RuleError) -> Self {
        RejectedRule {
            path: e.path,
            line: e.line,
            rule: e.rule,
            reason: e.reason,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportResult {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rules enabled by this import.
    pub enabled: u64,
    /// Files that could not be imported, with the reason.
    pub rejected: Vec<RejectedRule>,
    /// Rules imported that use placeholders without values yet: they load live once the
    /// values are set (`PUT /api/v1/placeholders/{name}`).
    #[serde(default)]
    pub waiting: Vec<WaitingRule>,
}

/// A rule waiting for placeholder values.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WaitingRule {
    pub rule_id: String,
    /// Placeholder names (without `%`) that have no values.
    pub placeholders: Vec<String>,
}

/// New values of a placeholder.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPlaceholder {
    /// The values `%name%` expands to (each a Sigma string: `*` and `?` are wildcards).
    pub values: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertView {
    pub id: String,
    pub rule_id: String,
    pub title: String,
    pub level: Level,
    /// Hash of the rule and the entity: repeats with the same one in a window are one alert.
    pub fingerprint: String,
    /// The entity fields and their values.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub entity: serde_json::Value,
    /// Start of the folding window.
    pub window_start: String,
    /// Events folded into this alert.
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    /// The Sigma fields and values that matched (of the first event).
    #[schema(value_type = Object)]
    pub matched: serde_json::Value,
    /// Null until incidents exist.
    pub incident_id: Option<String>,
    pub status: AlertStatus,
    pub created: String,
    pub updated: String,
}

impl From<Alert> for AlertView {
    fn from(a: Alert) -> Self {
        AlertView {
            id: a.alert_id,
            rule_id: a.rule_id,
            title: a.title,
            level: a.level,
            fingerprint: a.fingerprint,
            entity: a.entity,
            window_start: a.window_start.to_string(),
            count: a.count,
            first_seen: a.first_seen.to_string(),
            last_seen: a.last_seen.to_string(),
            matched: a.matched,
            incident_id: a.incident_id,
            status: a.status,
            created: a.created.to_string(),
            updated: a.updated.to_string(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertsPage {
    pub alerts: Vec<AlertView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertView,
    /// Ids of the events folded into the alert, oldest first (at most 1,000).
    pub event_ids: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleFile {
    /// A name for the file (kept as the rule's origin).
    pub path: String,
    /// The Sigma YAML.
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportRequest {
    pub files: Vec<RuleFile>,
    /// Enable every imported rule.
    #[serde(default)]
    pub enable: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// With a zip body: enable every imported rule.
    pub enable: Option<bool>,
    /// With a zip body: the archive's name, kept in each rule's origin.
    pub name: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListRulesParams {
    /// Only enabled (true) or disabled (false) rules.
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, Default, ToSchema)]
pub struct TestRequest {
    /// Event time from (inclusive): RFC 3339 or Unix seconds. Default: 24 hours before `to`.
    #[schema(value_type = Option<String>)]
    pub from: Option<TimeBound>,
    /// Event time to (exclusive). Default: now.
    #[schema(value_type = Option<String>)]
    pub to: Option<TimeBound>,
    /// Stop after this many events, oldest first. Default: every event of the range (read a
    /// page at a time; closing the connection cancels the test).
    pub max_events: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TestMatchView {
    pub event_id: String,
    pub time: String,
    pub rule_id: String,
    pub title: String,
    pub level: Level,
    #[schema(value_type = Object)]
    pub matched: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TestResult {
    /// The range read (RFC 3339).
    pub from: String,
    pub to: String,
    /// The cap on events asked for, if any.
    pub max_events: Option<usize>,
    /// Stored events read, oldest first.
    pub events: usize,
    /// True when the test stopped at `max_events` before the end of the range.
    pub truncated: bool,
    /// Matches found; at most 10,000 are listed in `matches`.
    pub matches_total: usize,
    pub matches: Vec<TestMatchView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    /// Only alerts of this level (informational, low, medium, high, critical).
    pub level: Option<Level>,
    /// Only alerts of this rule id (`rule` is accepted too).
    #[serde(alias = "rule")]
    pub rule_id: Option<String>,
    /// Alerts whose last event is at or after this time: RFC 3339 or Unix seconds.
    #[param(value_type = Option<String>)]
    pub from: Option<TimeBound>,
    /// Alerts whose first event is before this time.
    #[param(value_type = Option<String>)]
    pub to: Option<TimeBound>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<PageLimit>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
