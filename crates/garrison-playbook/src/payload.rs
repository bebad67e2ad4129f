//! What each trigger hands a run (`trigger` in templates) and how it becomes the run's inputs.
//!
//! Every payload is an object with `kind` and the keys below. A playbook's trigger may map
//! inputs from it explicitly (`inputs: {ip: "{{ alert.entity['source.ip'] }}"}`); inputs it
//! does not map are filled by the default mapping: a declared input named like a payload key
//! (`alert`, `incident`, `from`, `to`, `stage`, `at`) takes that value, and a webhook's body
//! keys fill the inputs they name.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

/// The fields of an alert as triggers hand it over (`garrison_store::Alert`). `entity` and
/// `matched` hold the rule's own field names.
pub const ALERT_FIELDS: &[&str] = &[
    "tenant_id",
    "alert_id",
    "rule_id",
    "title",
    "level",
    "fingerprint",
    "entity",
    "window_start",
    "count",
    "first_seen",
    "last_seen",
    "matched",
    "incident_id",
    "status",
    "created",
    "updated",
];

/// The fields of an incident as triggers hand it over (`garrison_cases::Incident`).
pub const INCIDENT_FIELDS: &[&str] = &[
    "id",
    "title",
    "summary",
    "incident_type",
    "state",
    "severity",
    "assignee",
    "team",
    "tlp",
    "pap",
    "tags",
    "classification",
    "fields",
    "approvals",
    "score",
    "workflow_version",
    "created",
    "acknowledged",
    "analysed",
    "closed",
    "updated",
];

/// The keys of a trigger kind's payload besides `kind`.
pub fn payload_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "alert" => &["alert"],
        "incident_state" => &["from", "to", "incident"],
        "sla_breach" => &["stage", "incident"],
        "schedule" => &["at"],
        "webhook" => &["body"],
        _ => &[],
    }
}

/// What is wrong with a dotted path read from a payload, if anything: a record field that
/// alerts or incidents do not have (`alert.severity`: alerts carry `level`). `path` is relative
/// to the payload (`alert.level`); paths under `trigger.` are checked the same way.
pub fn check_payload_path(path: &str) -> Option<String> {
    let path = path.strip_prefix("trigger.").unwrap_or(path);
    let mut parts = path.split('.');
    let (record, field) = (parts.next()?, parts.next()?);
    let fields = match record {
        "alert" => ALERT_FIELDS,
        "incident" => INCIDENT_FIELDS,
        _ => return None,
    };
    if fields.contains(&field) {
        return None;
    }
    let hint = match (record, field) {
        ("alert", "severity") => " (an alert's severity is `level`)".to_string(),
        ("alert", f) if f.contains("ip") || f.contains("host") || f.contains("user") => {
            " (what the rule matched is in `alert.entity` and `alert.matched`, e.g. `alert.entity['source.ip']`)".to_string()
        }
        _ => String::new(),
    };
    Some(format!(
        "`{path}`: {record}s have no field `{field}`{hint}; they have {}",
        fields.join(", ")
    ))
}

/// The inputs a run gets from a trigger's payload: the trigger's explicit mapping (templates
/// reading the payload's keys and `trigger`), then the default mapping for declared inputs it
/// leaves out. Only declared inputs are filled; the result is then checked like any inputs.
pub fn map_inputs(
    declared: &[&str],
    mapping: &BTreeMap<String, String>,
    payload: &Json,
) -> Result<Json, Vec<String>> {
    let mut out = Map::new();
    let mut errors = Vec::new();
    let context = match payload {
        Json::Object(m) => {
            let mut c = m.clone();
            c.insert("trigger".into(), payload.clone());
            Json::Object(c)
        }
        _ => json!({ "trigger": payload }),
    };
    for (name, template) in mapping {
        match garrison_expr::render(&format!("triggers.inputs.{name}"), template, &context) {
            Ok(Json::Null) => {}
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(e) => errors.push(format!("inputs.{name}: {e}")),
        }
    }
    let kind = payload.get("kind").and_then(Json::as_str).unwrap_or("");
    // A webhook body's keys are the inputs; `{"inputs": {...}}` is read as before.
    let source = match kind {
        "webhook" => {
            let body = payload.get("body").unwrap_or(&Json::Null);
            match body.get("inputs") {
                Some(inner @ Json::Object(_)) if body.as_object().is_some_and(|b| b.len() == 1) => {
                    inner.clone()
                }
                _ => body.clone(),
            }
        }
        _ => payload.clone(),
    };
    for name in declared {
        if mapping.contains_key(*name) || *name == "kind" {
            continue;
        }
        if let Some(v) = source.get(*name).filter(|v| !v.is_null()) {
            out.insert((*name).to_string(), v.clone());
        }
    }
    if errors.is_empty() {
        Ok(Json::Object(out))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_reaches_the_input_named_alert_and_mapped_inputs() {
        let payload = json!({"kind": "alert", "alert": {"level": "high", "entity": {"source.ip": "203.0.113.9"}}});
        let mapping = BTreeMap::from([(
            "ip".to_string(),
            "{{ alert.entity['source.ip'] }}".to_string(),
        )]);
        let inputs = map_inputs(&["alert", "ip", "channel"], &mapping, &payload).expect("maps");
        assert_eq!(inputs["ip"], "203.0.113.9");
        assert_eq!(inputs["alert"]["level"], "high");
        assert!(inputs.get("channel").is_none());
    }

    #[test]
    fn a_webhook_body_needs_no_wrapping() {
        let plain = json!({"kind": "webhook", "body": {"ip": "198.51.100.7", "other": 1}});
        let inputs = map_inputs(&["ip"], &BTreeMap::new(), &plain).expect("maps");
        assert_eq!(inputs, json!({"ip": "198.51.100.7"}));
        let wrapped = json!({"kind": "webhook", "body": {"inputs": {"ip": "198.51.100.8"}}});
        let inputs = map_inputs(&["ip"], &BTreeMap::new(), &wrapped).expect("maps");
        assert_eq!(inputs, json!({"ip": "198.51.100.8"}));
    }

    #[test]
    fn a_mapping_that_fails_says_which_input() {
        let payload = json!({"kind": "alert", "alert": {}});
        let mapping = BTreeMap::from([("ip".to_string(), "{{ alert.entity.x.y }}".to_string())]);
        let errors = map_inputs(&["ip"], &mapping, &payload).expect_err("undefined");
        assert!(errors[0].starts_with("inputs.ip:"), "{errors:?}");
    }

    #[test]
    fn alert_fields_that_do_not_exist_are_named() {
        let e = check_payload_path("alert.severity").expect("no such field");
        assert!(e.contains("`level`"), "{e}");
        assert!(check_payload_path("trigger.alert.level").is_none());
        assert!(check_payload_path("trigger.incident.nope").is_some());
        assert!(check_payload_path("alert.entity.anything").is_none());
        assert!(check_payload_path("body.whatever").is_none());
    }
}
