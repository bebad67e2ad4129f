//! Live indicator matching: each tenant's active indicators, indexed once per indicator
//! revision, matched against every event's normalised fields; a match is an [`AlertHit`]
//! folded like a rule's.
//!
//! An indicator hit's rule id is `ioc:<kind>` (`ioc:ip`, `ioc:sha256`...), its entity the
//! indicator (`kind:value`) and the configured entity fields, its level the indicator's decayed
//! score at the time the event was received (so a replay of the log scores it the same).

use garrison_model::Level;
use std::collections::BTreeMap;

use garrison_intel::{decayed_score, Indicator, IndicatorKind, IndicatorSet, IndicatorValue};
use garrison_model::TenantId;
use garrison_store::{AlertHit, EventRow, StoredIndicator};

use crate::engine::{alert_id, entity_from, fingerprint, row_event, window_start};
use crate::DetectConfig;

/// One tenant's active indicators, indexed for matching.
pub struct TenantIntel {
    pub revision: i64,
    pub set: IndicatorSet,
    /// Stored indicators that could not be read back (skipped).
    pub rejected: usize,
}

impl TenantIntel {
    /// Indexes stored indicators; one that does not parse (it was canonical when stored, so
    /// this means a corrupt row) is skipped and counted.
    pub fn build(revision: i64, stored: &[StoredIndicator]) -> TenantIntel {
        let mut rejected = 0;
        let mut indicators = Vec::with_capacity(stored.len());
        for row in stored {
            match indicator_of(row) {
                Some(indicator) => indicators.push(indicator),
                None => rejected += 1,
            }
        }
        TenantIntel {
            revision,
            set: IndicatorSet::build(indicators),
            rejected,
        }
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// A stored indicator as the matcher's model; `None` when its kind or value does not parse.
pub fn indicator_of(stored: &StoredIndicator) -> Option<Indicator> {
    let kind: IndicatorKind = stored.kind.parse().ok()?;
    let value = IndicatorValue::parse(kind, &stored.value).ok()?;
    let mut indicator = Indicator::new(value, stored.source.clone());
    indicator.confidence = u8::try_from(stored.confidence.clamp(0, 100)).unwrap_or(100);
    indicator.first_seen = stored.first_seen;
    indicator.expires = stored.expires;
    indicator.tags = stored.tags.clone();
    indicator.description = stored.description.clone();
    Some(indicator)
}

/// The alert level of a decayed score (0 to 100); `None` for 0 (expired: no alert).
pub fn score_level(score: f64) -> Option<Level> {
    if score.is_nan() || score <= 0.0 {
        None
    } else if score >= 90.0 {
        Some(Level::Critical)
    } else if score >= 70.0 {
        Some(Level::High)
    } else if score >= 40.0 {
        Some(Level::Medium)
    } else {
        Some(Level::Low)
    }
}

/// The best-scoring indicator of one (kind, value) that an event matched, and where.
struct IocMatch<'s> {
    indicator: &'s Indicator,
    score: f64,
    /// (field, value as the event carries it), in the order found, without repeats.
    fields: Vec<(String, String)>,
}

/// Matches one event's normalised fields against the tenant's indicators and appends one hit
/// per matched indicator (kind, value). Returns whether the normalised view could be read.
pub(crate) fn ioc_hits(
    row: &EventRow,
    intel: &TenantIntel,
    config: &DetectConfig,
    out: &mut Vec<AlertHit>,
) -> bool {
    ioc_hits_scored_at(row, intel, config, row.received, out)
}

/// [`ioc_hits`] with the indicators scored at `scored_at` instead of the event's receipt: a
/// retro-hunt matches today's indicators against past events, scored as they stand today.
/// Returns false when the event's normalised view cannot be read.
pub fn ioc_hits_scored_at(
    row: &EventRow,
    intel: &TenantIntel,
    config: &DetectConfig,
    scored_at: garrison_model::Timestamp,
    out: &mut Vec<AlertHit>,
) -> bool {
    if intel.is_empty() {
        return true;
    }
    let Ok(normalized) =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&row.normalized_json)
    else {
        return false;
    };
    let mut matches = Vec::new();
    intel.set.match_json(&normalized, &mut matches);
    if matches.is_empty() {
        return true;
    }
    let mut by_value: BTreeMap<(IndicatorKind, String), IocMatch<'_>> = BTreeMap::new();
    for m in &matches {
        let score = decayed_score(m.indicator, scored_at);
        if score_level(score).is_none() {
            continue;
        }
        let key = (m.indicator.kind(), m.indicator.value.text().into_owned());
        let entry = by_value.entry(key).or_insert_with(|| IocMatch {
            indicator: m.indicator,
            score,
            fields: Vec::new(),
        });
        // The highest score wins; equal scores keep the first source by name, so the choice
        // does not depend on the order indicators were loaded in.
        if score > entry.score
            || (score == entry.score && m.indicator.source < entry.indicator.source)
        {
            entry.indicator = m.indicator;
            entry.score = score;
        }
        let pair = (m.field.to_string(), m.value.to_string());
        if !entry.fields.contains(&pair) {
            entry.fields.push(pair);
        }
    }
    if by_value.is_empty() {
        return true;
    }
    let event = row_event(row);
    let base = entity_from(Some(&normalized), event.as_ref(), &config.entity_fields);
    for ((kind, value), found) in by_value {
        let Some(level) = score_level(found.score) else {
            continue;
        };
        let rule_id = format!("ioc:{kind}");
        let mut entity = base.clone();
        entity.insert(
            "indicator".into(),
            serde_json::Value::String(format!("{kind}:{value}")),
        );
        let fp = fingerprint(&rule_id, &entity);
        let window = window_start(row.time, config.window_micros());
        let fields = found
            .fields
            .iter()
            .map(|(f, _)| f.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut matched = serde_json::Map::new();
        for (field, value) in &found.fields {
            matched
                .entry(field.clone())
                .or_insert_with(|| serde_json::Value::String(value.clone()));
        }
        matched.insert(
            "indicator.source".into(),
            serde_json::Value::String(found.indicator.source.clone()),
        );
        matched.insert(
            "indicator.score".into(),
            serde_json::Value::from((found.score * 10.0).round() / 10.0),
        );
        out.push(AlertHit {
            tenant_id: row.tenant_id,
            alert_id: alert_id(row.tenant_id, &rule_id, &fp, window),
            title: format!(
                "Indicator {kind} {value} ({}) seen in {fields}",
                found.indicator.source
            ),
            rule_id,
            level,
            fingerprint: fp,
            entity_json: serde_json::Value::Object(entity).to_string(),
            window_start: window,
            event_id: row.id.clone(),
            event_time: row.time,
            matched_json: serde_json::Value::Object(matched).to_string(),
        });
    }
    true
}

/// Whether a tenant has indicators to match.
pub(crate) fn has_intel(
    intel: &std::collections::HashMap<TenantId, std::sync::Arc<TenantIntel>>,
    tenant: TenantId,
) -> bool {
    intel.get(&tenant).is_some_and(|i| !i.is_empty())
}
