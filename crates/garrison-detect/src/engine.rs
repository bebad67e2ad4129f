//! Rules compiled per tenant, events evaluated against them, and matches turned into
//! [`AlertHit`]s with deterministic alert ids.

use std::collections::HashMap;
use std::sync::Arc;

use garrison_hunt::event::parse_object;
use garrison_hunt::{rule_enabled, rule_level, HitFilter, HuntEvent, ScopeCache};
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use garrison_sigma::{
    load_rules, CorrelationAlert, CorrelationOptions, Correlator, Event, LoadOptions, Match,
    RuleError, RuleMeta, RuleSet, RuleSource,
};
use garrison_store::{AlertHit, EventRow, StoredRule};
use sha2::{Digest, Sha256};

use crate::intel::{has_intel, ioc_hits, TenantIntel};
use crate::DetectConfig;
use garrison_pipeline::ALERT_FIELD;

type Corr<'a> = Correlator<'a>;

self_cell::self_cell!(
    /// A tenant's compiled rules with the correlation state that borrows them.
    struct Compiled {
        owner: RuleSet,
        #[not_covariant]
        dependent: Corr,
    }
);

/// One tenant's enabled rules, compiled.
pub struct TenantRules {
    pub revision: i64,
    compiled: Compiled,
    /// Rules whose matches are alerted (not `generate: false` feeders).
    alerting: Vec<bool>,
    feeders: Vec<bool>,
    has_correlations: bool,
    /// Rules that did not compile (they are skipped, not fatal).
    pub rejected: Vec<RuleError>,
    /// Which rules apply per stream logsource (see `garrison_hunt::ScopeCache`).
    scopes: ScopeCache,
}

impl TenantRules {
    /// Compiles the stored rules; each source is named by its stored rule id.
    pub fn build(revision: i64, rules: &[StoredRule], options: &LoadOptions) -> TenantRules {
        let sources = rules
            .iter()
            .map(|r| RuleSource::new(r.rule_id.clone(), r.yaml.clone()));
        let (set, rejected) = load_rules(sources, options);
        let filter = HitFilter::default();
        let alerting = set
            .rules()
            .iter()
            .map(|m| rule_enabled(m, &filter))
            .collect();
        let feeders = set.correlation_feeders();
        let has_correlations = set
            .rules()
            .iter()
            .any(|m| m.kind == garrison_sigma::RuleKind::Correlation);
        let compiled = Compiled::new(set, |set| {
            Correlator::new(set, CorrelationOptions::default())
        });
        TenantRules {
            revision,
            compiled,
            alerting,
            feeders,
            has_correlations,
            rejected,
            scopes: ScopeCache::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.compiled.borrow_owner().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The event of a log row as the rules see it (see ARCHITECTURE.md, "Names rules see"):
/// the sender's fields, flattened as `garrison hunt` flattens them; then the names of the
/// normalised view the sender's do not have (the source's mapped names, ECS); then the Sigma
/// taxonomy names of the stream's logsource. A sender's own name always wins.
pub fn row_event(row: &EventRow) -> Option<HuntEvent> {
    let mut fields = parse_object(row.fields_json.as_bytes()).ok().flatten()?;
    if let Ok(Some(normalized)) = parse_object(row.normalized_json.as_bytes()) {
        fields.add_missing_from(&normalized);
    }
    let mut event = HuntEvent::new(fields, Arc::from(row.source.as_str()));
    let stream = stream_logsource(&row.logsource, &event);
    garrison_hunt::add_taxonomy_names(&stream, &mut event.fields);
    Some(event)
}

/// The logsource a stored event is evaluated as: its source's, with what the event says of
/// itself (a Windows channel, a Zeek log) filling the keys the source leaves open when the
/// products agree; with no source logsource, the event's own; else none (only rules that ask
/// for none apply).
pub fn stream_logsource(
    logsource: &garrison_model::LogSource,
    event: &HuntEvent,
) -> garrison_sigma::LogSource {
    let inferred = garrison_hunt::inferred_logsource(event);
    if *logsource == garrison_model::LogSource::default() {
        return inferred;
    }
    let mut stream = garrison_sigma::LogSource {
        product: logsource.product.clone(),
        category: logsource.category.clone(),
        service: logsource.service.clone(),
        definition: None,
    };
    let agree = match (&stream.product, &inferred.product) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        (None, _) => true,
        (Some(_), None) => false,
    };
    if agree {
        stream.product = stream.product.or(inferred.product);
        stream.service = stream.service.or(inferred.service);
        stream.category = stream.category.or(inferred.category);
    }
    stream
}

/// The id a rule's alerts carry: its Sigma id, else its name, else the stored rule's id.
pub fn alert_rule_id(meta: &RuleMeta) -> String {
    meta.id
        .clone()
        .or_else(|| meta.name.clone())
        .unwrap_or_else(|| meta.path.clone())
}

fn field_text(value: &garrison_sigma::FieldValue<'_>) -> Option<String> {
    use garrison_sigma::FieldValue;
    match value {
        FieldValue::Null => None,
        FieldValue::Bool(b) => Some(b.to_string()),
        FieldValue::Int(i) => Some(i.to_string()),
        FieldValue::UInt(u) => Some(u.to_string()),
        FieldValue::Float(f) => Some(f.to_string()),
        FieldValue::Str(s) if s.is_empty() => None,
        FieldValue::Str(s) => Some(s.to_string()),
        FieldValue::List(items) => {
            let parts: Vec<String> = items.iter().filter_map(field_text).collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
    }
}

/// The entity of an event: each configured field from the normalised view, else the event's
/// own fields (missing ones are left out).
fn entity_of(
    row: &EventRow,
    event: &HuntEvent,
    fields: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    let normalized: Option<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&row.normalized_json).ok();
    entity_from(normalized.as_ref(), Some(event), fields)
}

/// [`entity_of`] from an already parsed normalised view (and the event, when readable).
pub(crate) fn entity_from(
    normalized: Option<&serde_json::Map<String, serde_json::Value>>,
    event: Option<&HuntEvent>,
    fields: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    let mut entity = entity_of_fields(normalized, event, fields);
    if entity.is_empty() {
        // No configured field (a syslog line has a host.hostname, not a host.name; a Zeek
        // record has addresses only): fall back, so alerts of different hosts stay apart.
        let fallback: Vec<String> = ENTITY_FALLBACK.iter().map(|f| f.to_string()).collect();
        entity = entity_of_fields(normalized, event, &fallback);
    }
    entity
}

/// Entity fields used when none of the configured ones is in an event.
const ENTITY_FALLBACK: &[&str] = &["host.hostname", "source.ip", "destination.ip"];

fn entity_of_fields(
    normalized: Option<&serde_json::Map<String, serde_json::Value>>,
    event: Option<&HuntEvent>,
    fields: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    let mut entity = serde_json::Map::new();
    for name in fields {
        let from_normalized = normalized.and_then(|n| n.get(name)).and_then(|v| match v {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let value = from_normalized.or_else(|| {
            event
                .and_then(|e| Event::get(e, name))
                .and_then(|v| field_text(&v))
        });
        if let Some(value) = value {
            entity.insert(name.clone(), serde_json::Value::String(value));
        }
    }
    entity
}

fn hex_digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// The fingerprint of (rule, entity): what repeats are folded by.
pub fn fingerprint(rule_id: &str, entity: &serde_json::Map<String, serde_json::Value>) -> String {
    let entity = serde_json::Value::Object(entity.clone()).to_string();
    hex_digest(&[rule_id, &entity])
}

/// Start of the window `time` falls in (windows are aligned on the epoch).
pub fn window_start(time: Timestamp, window_us: i64) -> Timestamp {
    let us = to_micros(time);
    from_micros(us - us.rem_euclid(window_us.max(1)))
}

/// The deterministic alert id of (tenant, rule, fingerprint, window).
pub fn alert_id(tenant: TenantId, rule_id: &str, fingerprint: &str, window: Timestamp) -> String {
    hex_digest(&[
        &tenant.0.to_string(),
        rule_id,
        fingerprint,
        &to_micros(window).to_string(),
    ])
}

fn matched_json(matched: &[(String, String)]) -> String {
    let mut map = serde_json::Map::new();
    for (field, value) in matched {
        let key = if field.is_empty() { "keywords" } else { field };
        map.entry(key.to_string())
            .or_insert_with(|| serde_json::Value::String(value.clone()));
    }
    serde_json::Value::Object(map).to_string()
}

fn make_hit(
    row: &EventRow,
    meta: &RuleMeta,
    matched: &[(String, String)],
    entity: serde_json::Map<String, serde_json::Value>,
    time: Timestamp,
    config: &DetectConfig,
) -> AlertHit {
    let rule_id = alert_rule_id(meta);
    let fp = fingerprint(&rule_id, &entity);
    let window = window_start(time, config.window_micros());
    AlertHit {
        tenant_id: row.tenant_id,
        alert_id: alert_id(row.tenant_id, &rule_id, &fp, window),
        rule_id,
        title: meta.title.clone(),
        level: rule_level(meta),
        fingerprint: fp,
        entity_json: serde_json::Value::Object(entity).to_string(),
        window_start: window,
        event_id: row.id.clone(),
        event_time: time,
        matched_json: matched_json(matched),
    }
}

/// Whether the row may come from an alert source (its normalised view names
/// [`ALERT_FIELD`]; [`external_hit`] checks that it really does).
fn is_external_alert(row: &EventRow) -> bool {
    row.normalized_json.contains(ALERT_FIELD)
}

/// The alert an alert source's event carries (its rule, title and level were resolved at
/// ingest by the source's mapping), folded like any other.
fn external_hit(row: &EventRow, config: &DetectConfig, out: &mut Vec<AlertHit>) {
    let Ok(normalized) =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&row.normalized_json)
    else {
        return;
    };
    let Some(serde_json::Value::Object(alert)) = normalized.get(ALERT_FIELD) else {
        return;
    };
    let text = |key: &str| alert.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let (Some(rule_id), Some(title), Some(level)) = (text("rule"), text("title"), text("level"))
    else {
        return;
    };
    let event = row_event(row);
    let entity = entity_from(Some(&normalized), event.as_ref(), &config.entity_fields);
    let fp = fingerprint(&rule_id, &entity);
    let window = window_start(row.time, config.window_micros());
    let mut matched = serde_json::Map::new();
    matched.insert(
        "source".into(),
        serde_json::Value::String(row.source.clone()),
    );
    matched.insert("rule".into(), serde_json::Value::String(rule_id.clone()));
    out.push(AlertHit {
        tenant_id: row.tenant_id,
        alert_id: alert_id(row.tenant_id, &rule_id, &fp, window),
        rule_id,
        title,
        level: garrison_model::Level::parse_lenient(&level),
        fingerprint: fp,
        entity_json: serde_json::Value::Object(entity).to_string(),
        window_start: window,
        event_id: row.id.clone(),
        event_time: row.time,
        matched_json: serde_json::Value::Object(matched).to_string(),
    });
}

/// What evaluating a batch gave.
#[derive(Debug, Default)]
pub struct Evaluated {
    pub hits: Vec<AlertHit>,
    /// Events evaluated against some tenant's rules.
    pub events: u64,
    /// Events whose fields could not be read as a JSON object.
    pub unreadable: u64,
}

/// The detection matches of one event, owned (rule indexes and matched fields).
struct EventMatches {
    index: usize,
    event: HuntEvent,
    matches: Vec<(usize, Vec<(String, String)>)>,
}

fn match_events(
    rows: &[EventRow],
    indexes: &[usize],
    tenants: &HashMap<TenantId, TenantRules>,
    intel: &HashMap<TenantId, Arc<TenantIntel>>,
    config: &DetectConfig,
) -> (Vec<EventMatches>, Vec<AlertHit>, u64) {
    let mut out = Vec::new();
    let mut ioc = Vec::new();
    let mut unreadable = 0;
    let mut matches: Vec<Match<'_>> = Vec::new();
    for &index in indexes {
        let row = &rows[index];
        if is_external_alert(row) {
            external_hit(row, config, &mut ioc);
        }
        if let Some(indicators) = intel.get(&row.tenant_id) {
            if !ioc_hits(row, indicators, config, &mut ioc) {
                unreadable += 1;
            }
        }
        let Some(rules) = tenants.get(&row.tenant_id) else {
            continue;
        };
        let Some(event) = row_event(row) else {
            unreadable += 1;
            continue;
        };
        let set = rules.compiled.borrow_owner();
        set.matches(&event, &mut matches);
        if !matches.is_empty() {
            let stream = stream_logsource(&row.logsource, &event);
            rules.scopes.retain(set, &stream, &mut matches);
        }
        if !matches.is_empty() {
            out.push(EventMatches {
                index,
                event,
                matches: matches
                    .drain(..)
                    .map(|m| (m.rule_index, m.matched))
                    .collect(),
            });
        }
    }
    (out, ioc, unreadable)
}

/// Evaluates rows against their tenants' rules and indicators on `threads` threads, then runs
/// correlation in event-time order (per batch), and returns the hits to fold (indicator hits
/// first, then rule hits, each in log order).
pub fn evaluate(
    rows: &[EventRow],
    tenants: &mut HashMap<TenantId, TenantRules>,
    intel: &HashMap<TenantId, Arc<TenantIntel>>,
    config: &DetectConfig,
    threads: usize,
) -> Evaluated {
    let candidates: Vec<usize> = (0..rows.len())
        .filter(|i| {
            let tenant = rows[*i].tenant_id;
            tenants.contains_key(&tenant)
                || has_intel(intel, tenant)
                || is_external_alert(&rows[*i])
        })
        .collect();
    let mut result = Evaluated {
        events: candidates.len() as u64,
        ..Evaluated::default()
    };
    if candidates.is_empty() {
        return result;
    }
    let threads = threads
        .clamp(1, 16)
        .min(candidates.len().div_ceil(64).max(1));
    let shared: &HashMap<TenantId, TenantRules> = tenants;
    let mut matched: Vec<EventMatches> = if threads <= 1 {
        let (m, ioc, u) = match_events(rows, &candidates, shared, intel, config);
        result.hits.extend(ioc);
        result.unreadable += u;
        m
    } else {
        let chunk = candidates.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = candidates
                .chunks(chunk)
                .map(|part| scope.spawn(move || match_events(rows, part, shared, intel, config)))
                .collect();
            let mut all = Vec::new();
            for handle in handles {
                match handle.join() {
                    Ok((m, ioc, u)) => {
                        all.extend(m);
                        result.hits.extend(ioc);
                        result.unreadable += u;
                    }
                    Err(_) => {
                        tracing::error!("a detection worker panicked; its events were skipped")
                    }
                }
            }
            all
        })
    };
    matched.sort_by_key(|m| m.index);
    let mut correlated: Vec<&EventMatches> = Vec::new();
    for em in &matched {
        let row = &rows[em.index];
        let Some(rules) = shared.get(&row.tenant_id) else {
            continue;
        };
        let metas = rules.compiled.borrow_owner().rules();
        let mut entity = None;
        for (rule_index, fields) in &em.matches {
            if !rules.alerting.get(*rule_index).copied().unwrap_or(false) {
                continue;
            }
            let Some(meta) = metas.get(*rule_index) else {
                continue;
            };
            let entity = entity
                .get_or_insert_with(|| entity_of(row, &em.event, &config.entity_fields))
                .clone();
            result
                .hits
                .push(make_hit(row, meta, fields, entity, row.time, config));
        }
        if rules.has_correlations
            && em
                .matches
                .iter()
                .any(|(i, _)| rules.feeders.get(*i).copied().unwrap_or(false))
        {
            correlated.push(em);
        }
    }
    // Correlation: in event-time order within the batch, state kept across batches.
    correlated.sort_by_key(|em| (rows[em.index].time, em.index));
    for em in correlated {
        let row = &rows[em.index];
        let Some(rules) = tenants.get_mut(&row.tenant_id) else {
            continue;
        };
        let alerting = &rules.alerting;
        let hits = &mut result.hits;
        rules.compiled.with_dependent_mut(|set, correlator| {
            let metas = set.rules();
            let matches: Vec<Match<'_>> = em
                .matches
                .iter()
                .filter_map(|(i, _)| {
                    metas.get(*i).map(|rule| Match {
                        rule,
                        rule_index: *i,
                        matched: Vec::new(),
                    })
                })
                .collect();
            let mut alerts: Vec<CorrelationAlert<'_>> = Vec::new();
            correlator.process_event(&matches, row.time, &em.event, Some(&row.id), &mut alerts);
            for alert in alerts {
                if !alerting.get(alert.rule_index).copied().unwrap_or(false) {
                    continue;
                }
                let mut entity = serde_json::Map::new();
                for (k, v) in &alert.group {
                    entity.insert(k.clone(), serde_json::Value::String(v.clone()));
                }
                let mut fields = alert.group.clone();
                fields.push(("value".into(), alert.value.to_string()));
                fields.push(("events".into(), alert.events.to_string()));
                let hit = make_hit(row, alert.rule, &fields, entity, alert.last, config);
                // Every event in the window made the correlation fire: each is folded into
                // the alert (and reachable from it), not only the one that tipped it over.
                for (id, at) in alert.event_ids.iter().filter(|(id, _)| *id != row.id) {
                    hits.push(AlertHit {
                        event_id: id.clone(),
                        event_time: *at,
                        ..hit.clone()
                    });
                }
                hits.push(hit);
            }
        });
    }
    result
}

/// A match of a rule test: the event and what matched.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TestMatch {
    pub event_id: String,
    pub time: Timestamp,
    pub rule_id: String,
    pub title: String,
    pub level: garrison_model::Level,
    pub matched: serde_json::Value,
}

/// A stored event, flattened for a rule test (compact: the JSON tree is not kept).
#[derive(Clone, Debug)]
pub struct TestEvent {
    pub id: String,
    pub time: Timestamp,
    pub event: HuntEvent,
    /// The logsource the event is evaluated as (see [`stream_logsource`]).
    pub stream: garrison_sigma::LogSource,
}

impl TestEvent {
    /// `None` when the event's fields are not a JSON object.
    pub fn of(stored: &garrison_model::Event) -> Option<TestEvent> {
        // The names rules see, as in live detection (see [`row_event`]).
        let mut fields = garrison_hunt::event::flatten_value(&stored.fields)?;
        for (key, value) in &stored.normalized {
            fields.add_missing(key, value);
        }
        let mut event = HuntEvent::new(fields, Arc::from(stored.source.as_str()));
        let stream = stream_logsource(&stored.logsource, &event);
        garrison_hunt::add_taxonomy_names(&stream, &mut event.fields);
        Some(TestEvent {
            id: stored.id.clone(),
            time: stored.time,
            stream,
            event,
        })
    }
}

/// Runs one rule file over events (as a `/rules/{id}/test` does): every detection match, and
/// correlation matches in time order. The rule must compile.
pub fn test_rule(
    rule_id: &str,
    yaml: &str,
    events: &[TestEvent],
    options: &LoadOptions,
) -> Result<Vec<TestMatch>, Vec<RuleError>> {
    let mut tester = RuleTester::new(rule_id, yaml, options, usize::MAX)?;
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|i| (events[*i].time, *i));
    for i in order {
        tester.feed(&events[i]);
    }
    Ok(tester.finish().0)
}

/// One rule run over a stream of events in time order, a page at a time (a back-test over
/// any range reads as many events as the range holds, holding one page): detection matches
/// and correlations, with at most `max_matches` kept (all counted).
pub struct RuleTester {
    compiled: Compiled,
    scopes: ScopeCache,
    out: Vec<TestMatch>,
    total: usize,
    max_matches: usize,
}

impl RuleTester {
    pub fn new(
        rule_id: &str,
        yaml: &str,
        options: &LoadOptions,
        max_matches: usize,
    ) -> Result<RuleTester, Vec<RuleError>> {
        let (set, errors) = load_rules([RuleSource::new(rule_id, yaml)], options);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RuleTester {
            compiled: Compiled::new(set, |set| {
                Correlator::new(set, CorrelationOptions::default())
            }),
            scopes: ScopeCache::default(),
            out: Vec::new(),
            total: 0,
            max_matches,
        })
    }

    fn push(&mut self, m: TestMatch) {
        self.total += 1;
        if self.out.len() < self.max_matches {
            self.out.push(m);
        }
    }

    /// Evaluates the next event (events must come in time order for correlations).
    pub fn feed(&mut self, stored: &TestEvent) {
        let filter = HitFilter::default();
        let mut found: Vec<TestMatch> = Vec::new();
        let scopes = &self.scopes;
        self.compiled.with_dependent_mut(|set, correlator| {
            let mut matches = Vec::new();
            set.matches(&stored.event, &mut matches);
            scopes.retain(set, &stored.stream, &mut matches);
            for m in &matches {
                if rule_enabled(m.rule, &filter) {
                    found.push(TestMatch {
                        event_id: stored.id.clone(),
                        time: stored.time,
                        rule_id: alert_rule_id(m.rule),
                        title: m.rule.title.clone(),
                        level: rule_level(m.rule),
                        matched: serde_json::from_str(&matched_json(&m.matched))
                            .unwrap_or(serde_json::Value::Null),
                    });
                }
            }
            let mut alerts = Vec::new();
            correlator.process_event(
                &matches,
                stored.time,
                &stored.event,
                Some(&stored.id),
                &mut alerts,
            );
            for alert in alerts {
                let mut fields = alert.group.clone();
                fields.push(("value".into(), alert.value.to_string()));
                fields.push(("events".into(), alert.event_ids.len().to_string()));
                found.push(TestMatch {
                    event_id: stored.id.clone(),
                    time: alert.last,
                    rule_id: alert_rule_id(alert.rule),
                    title: alert.rule.title.clone(),
                    level: rule_level(alert.rule),
                    matched: serde_json::from_str(&matched_json(&fields))
                        .unwrap_or(serde_json::Value::Null),
                });
            }
        });
        for m in found {
            self.push(m);
        }
    }

    /// The matches kept (at most `max_matches`) and how many there were in all.
    pub fn finish(self) -> (Vec<TestMatch>, usize) {
        (self.out, self.total)
    }
}
