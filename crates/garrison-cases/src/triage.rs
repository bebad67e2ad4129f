//! Triage of alerts before and as they become incidents: grouping into incidents, suppression
//! (counted, never silent) and the score that orders the queue.

use std::collections::BTreeMap;

use garrison_model::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::observables::{extract_observables, ObservableKind};
use crate::workflow::ValidationError;

/// What grouping, suppression and scoring need of an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertInput {
    pub alert_id: String,
    pub rule_id: String,
    pub level: Level,
    /// The alert's first event.
    pub time: Timestamp,
    /// Events folded into the alert.
    #[serde(default = "one")]
    pub count: u64,
    /// The alert's entity and matched fields, as one JSON object (flat dotted or nested keys).
    pub fields: Json,
}

fn one() -> u64 {
    1
}

pub use garrison_model::Level;

/// Field names that name a host, most specific first.
pub(crate) const HOST_FIELDS: &[&str] = &[
    "host.name",
    "host.hostname",
    "Computer",
    "ComputerName",
    "Hostname",
    "hostname",
    "dvchost",
    "host",
];
/// Field names that name a user, most specific first.
pub(crate) const USER_FIELDS: &[&str] = &[
    "user.name",
    "TargetUserName",
    "SubjectUserName",
    "User",
    "UserName",
    "username",
    "suser",
    "duser",
    "user",
];

/// A field's value, by flat dotted key or nested path, as text. Empty values count as absent.
pub(crate) fn field_text(fields: &Json, name: &str) -> Option<String> {
    let Json::Object(map) = fields else {
        return None;
    };
    let value = map.get(name).or_else(|| {
        let mut current = fields;
        for part in name.split('.') {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    })?;
    let text = match value {
        Json::String(s) => s.trim().to_string(),
        Json::Number(n) => n.to_string(),
        Json::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

fn first_of(fields: &Json, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| field_text(fields, n))
}

/// What makes two alerts "the same" for a grouping rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntityKey {
    Host,
    User,
    /// The alert's first indicator (IP, domain, hash or URL, in sorted order).
    Indicator,
    Rule,
    /// Any field, by dotted name.
    Field(String),
}

/// Alerts with equal values for every key, within one window, go to one incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupingRule {
    pub name: String,
    pub keys: Vec<EntityKey>,
    /// Tumbling windows of this length, aligned to the epoch, so every node agrees.
    pub window_secs: u64,
    /// Rules this grouping applies to; empty: all.
    #[serde(default)]
    pub rule_ids: Vec<String>,
}

impl GroupingRule {
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() {
            err_push(&mut errors, "name", "must not be empty");
        }
        if self.keys.is_empty() {
            err_push(
                &mut errors,
                "keys",
                "name at least one key; no key would group every alert together",
            );
        }
        for (i, key) in self.keys.iter().enumerate() {
            if matches!(key, EntityKey::Field(f) if f.trim().is_empty()) {
                err_push(
                    &mut errors,
                    &format!("keys[{i}]"),
                    "the field name must not be empty",
                );
            }
        }
        if self.window_secs == 0 {
            err_push(&mut errors, "window_secs", "must be 1 or more");
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

fn err_push(errors: &mut Vec<ValidationError>, path: &str, message: &str) {
    errors.push(ValidationError {
        path: path.into(),
        message: message.into(),
    });
}

/// The incident an alert belongs to under a grouping rule: same rule, key and window.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupKey {
    pub rule: String,
    /// `host=ws1|user=bob`: the keys' values, lowercased.
    pub key: String,
    pub window_start: Timestamp,
}

/// The group of `alert` under `rule`, or `None` when the rule does not apply to it or a key
/// has no value (such an alert opens an incident of its own).
pub fn group_key(alert: &AlertInput, rule: &GroupingRule) -> Option<GroupKey> {
    if rule.window_secs == 0 || rule.keys.is_empty() {
        return None;
    }
    if !rule.rule_ids.is_empty() && !rule.rule_ids.contains(&alert.rule_id) {
        return None;
    }
    let mut parts = Vec::with_capacity(rule.keys.len());
    for key in &rule.keys {
        let (name, value) = match key {
            EntityKey::Host => ("host".to_string(), first_of(&alert.fields, HOST_FIELDS)?),
            EntityKey::User => ("user".to_string(), first_of(&alert.fields, USER_FIELDS)?),
            EntityKey::Rule => ("rule".to_string(), alert.rule_id.clone()),
            EntityKey::Indicator => {
                let indicator = extract_observables(&alert.fields)
                    .into_iter()
                    .filter(|o| o.kind.is_indicator())
                    .map(|o| format!("{}:{}", o.kind.as_str(), o.value))
                    .min()?;
                ("indicator".to_string(), indicator)
            }
            EntityKey::Field(field) => (field.clone(), field_text(&alert.fields, field)?),
        };
        parts.push(format!("{name}={}", value.to_lowercase()));
    }
    let window = i64::try_from(rule.window_secs).unwrap_or(i64::MAX);
    let start = alert.time.as_second().div_euclid(window) * window;
    Some(GroupKey {
        rule: rule.name.clone(),
        key: parts.join("|"),
        window_start: Timestamp::from_second(start).unwrap_or(alert.time),
    })
}

/// A suppression: alerts in its scope are not turned into incidents until it expires. They
/// are still stored and counted against it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Suppression {
    pub id: String,
    /// Only alerts of this rule; `None`: any rule (then `fields` must narrow it).
    #[serde(default)]
    pub rule_id: Option<String>,
    /// Field matchers, all required: dotted field name → value, case-insensitive, `*` matches
    /// any run of characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub fields: BTreeMap<String, String>,
    pub reason: String,
    pub author: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created: Timestamp,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub expires: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuppressionError {
    #[error("a suppression needs a scope: a rule id or at least one field matcher")]
    NoScope,
    #[error("a suppression needs a reason")]
    NoReason,
    #[error("a suppression needs an author")]
    NoAuthor,
    #[error("the suppression expires ({expires}) before it is created ({created})")]
    ExpiresBeforeCreated {
        created: Timestamp,
        expires: Timestamp,
    },
    #[error("field matcher {0:?} has an empty name or value")]
    EmptyMatcher(String),
}

impl Suppression {
    /// Checks what makes a suppression accountable: a scope, a reason, an author.
    pub fn validate(&self) -> Result<(), SuppressionError> {
        if self.rule_id.as_deref().is_none_or(|r| r.trim().is_empty()) && self.fields.is_empty() {
            return Err(SuppressionError::NoScope);
        }
        if self.reason.trim().is_empty() {
            return Err(SuppressionError::NoReason);
        }
        if self.author.trim().is_empty() {
            return Err(SuppressionError::NoAuthor);
        }
        if let Some(expires) = self.expires {
            if expires <= self.created {
                return Err(SuppressionError::ExpiresBeforeCreated {
                    created: self.created,
                    expires,
                });
            }
        }
        for (name, value) in &self.fields {
            if name.trim().is_empty() || value.is_empty() {
                return Err(SuppressionError::EmptyMatcher(name.clone()));
            }
        }
        Ok(())
    }

    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expires.is_none_or(|e| now < e)
    }

    /// Whether this suppression, active at `now`, covers `alert`. A suppression without scope
    /// covers nothing: suppressing everything by mistake must not be possible.
    pub fn is_suppressed(&self, alert: &AlertInput, now: Timestamp) -> bool {
        if !self.is_active(now) {
            return false;
        }
        let rule = self.rule_id.as_deref().filter(|r| !r.trim().is_empty());
        if rule.is_none() && self.fields.is_empty() {
            return false;
        }
        if rule.is_some_and(|r| r != alert.rule_id) {
            return false;
        }
        self.fields.iter().all(|(name, pattern)| {
            field_text(&alert.fields, name).is_some_and(|value| wildcard(pattern, &value))
        })
    }

    /// Whether some field matcher names a field `fields` lacks (then the alert's event
    /// should be looked at: a suppression may name any stored field).
    pub fn names_fields_beyond(&self, fields: &Json) -> bool {
        self.fields
            .keys()
            .any(|name| field_text(fields, name).is_none())
    }

    /// The first of `suppressions` that covers `alert` at `now`.
    pub fn first_match<'a>(
        suppressions: &'a [Suppression],
        alert: &AlertInput,
        now: Timestamp,
    ) -> Option<&'a Suppression> {
        suppressions.iter().find(|s| s.is_suppressed(alert, now))
    }
}

/// Case-insensitive match with `*` as any run of characters (iterative: no blow-up on many
/// stars).
fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// How much an asset matters, from the asset table.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Criticality {
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Criticality> {
        match text.trim().to_ascii_lowercase().as_str() {
            "low" | "1" => Some(Criticality::Low),
            "medium" | "2" => Some(Criticality::Medium),
            "high" | "3" => Some(Criticality::High),
            "critical" | "4" => Some(Criticality::Critical),
            _ => None,
        }
    }
}

/// What threat intelligence says of an indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Benign,
    Unknown,
    Suspicious,
    Malicious,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorVerdict {
    pub indicator: String,
    pub verdict: Verdict,
    /// Which feed or analyst said so.
    pub source: String,
}

/// How much a rule's author trusts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// One contribution to a score, shown to the analyst; the parts add up to the total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScorePart {
    pub name: String,
    pub points: i32,
    pub detail: String,
}

/// A 0..=100 queue score and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    pub total: u32,
    pub parts: Vec<ScorePart>,
}

/// Scores an alert: rule level, asset criticality, indicator verdicts and repetition, scaled by
/// the rule's confidence and capped at 100. Every part is listed, and the parts sum to `total`.
pub fn score(
    alert: &AlertInput,
    asset_criticality: Option<Criticality>,
    indicator_verdicts: &[IndicatorVerdict],
    level: Level,
    confidence: Confidence,
) -> Score {
    let mut parts = Vec::new();
    let mut part = |name: &str, points: i32, detail: String| {
        parts.push(ScorePart {
            name: name.into(),
            points,
            detail,
        })
    };
    let level_points = match level {
        Level::Informational => 5,
        Level::Low => 15,
        Level::Medium => 30,
        Level::High => 45,
        Level::Critical => 60,
    };
    part(
        "level",
        level_points,
        format!("rule level {level:?}").to_lowercase(),
    );
    let asset_points = match asset_criticality {
        None => 0,
        Some(Criticality::Low) => 0,
        Some(Criticality::Medium) => 5,
        Some(Criticality::High) => 15,
        Some(Criticality::Critical) => 25,
    };
    part(
        "asset",
        asset_points,
        match asset_criticality {
            Some(c) => format!("asset criticality {}", c.as_str()),
            None => "asset not in the asset table".into(),
        },
    );
    let worst = indicator_verdicts.iter().max_by_key(|v| v.verdict);
    let intel_points = match worst.map(|v| v.verdict) {
        Some(Verdict::Malicious) => 25,
        Some(Verdict::Suspicious) => 10,
        Some(Verdict::Benign) => -10,
        Some(Verdict::Unknown) | None => 0,
    };
    part(
        "intel",
        intel_points,
        match worst {
            Some(v) => format!(
                "{} is {:?} according to {}",
                v.indicator, v.verdict, v.source
            )
            .replace("Malicious", "malicious")
            .replace("Suspicious", "suspicious")
            .replace("Benign", "benign")
            .replace("Unknown", "unknown"),
            None => "no indicator verdict".into(),
        },
    );
    let repeats = alert.count.max(1);
    let repeat_points = (2 * i32::try_from(repeats.ilog2()).unwrap_or(5)).min(10);
    part("repetition", repeat_points, format!("{repeats} event(s)"));
    let sum = level_points + asset_points + intel_points + repeat_points;
    let (factor, name) = match confidence {
        Confidence::Low => (60, "low"),
        Confidence::Medium => (80, "medium"),
        Confidence::High => (100, "high"),
    };
    let scaled = (sum * factor + 50).div_euclid(100);
    part(
        "confidence",
        scaled - sum,
        format!(
            "{name} rule confidence: ×{}.{:02}",
            factor / 100,
            factor % 100
        ),
    );
    let total = scaled.clamp(0, 100);
    if total != scaled {
        part("cap", total - scaled, "scores are capped to 0..=100".into());
    }
    Score {
        total: u32::try_from(total).unwrap_or(0),
        parts,
    }
}

impl ObservableKind {
    /// Indicators (network and file) as opposed to identities (users, hosts).
    pub fn is_indicator(self) -> bool {
        !matches!(self, ObservableKind::User | ObservableKind::Host)
    }
}
