//! Templates and expressions in steps: collecting them, the names they may read, messages.

use std::collections::BTreeSet;

use serde_json::Value as Json;

/// A template or expression found in a step, to check.
pub(super) struct TemplateUse {
    pub(super) path: String,
    pub(super) source: String,
    pub(super) expression: bool,
    pub(super) in_for_each: bool,
}

pub(super) fn collect_json_templates(
    path: &str,
    v: &Json,
    in_for_each: bool,
    out: &mut Vec<TemplateUse>,
) {
    match v {
        Json::String(s) if garrison_expr::is_template(s) => out.push(TemplateUse {
            path: path.to_owned(),
            source: s.clone(),
            expression: false,
            in_for_each,
        }),
        Json::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_json_templates(&format!("{path}[{i}]"), x, in_for_each, out);
            }
        }
        Json::Object(m) => {
            for (k, x) in m {
                collect_json_templates(&format!("{path}.{k}"), x, in_for_each, out);
            }
        }
        _ => {}
    }
}

pub(super) const GLOBALS: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "debug",
    "lipsum",
    "cycler",
    "joiner",
    "loop",
];
pub(super) const STEP_FIELDS: &[&str] = &[
    "output",
    "status",
    "error",
    "input",
    "started_at",
    "finished_at",
    "attempts",
];

pub(super) fn template_message(e: &garrison_expr::ExprError) -> String {
    match (e.line, e.column) {
        (Some(l), Some(c)) => format!("{} (template line {l}, column {c})", e.message),
        (Some(l), None) => format!("{} (template line {l})", e.message),
        _ => e.message.clone(),
    }
}

pub(super) fn list_or_none(set: &BTreeSet<&str>) -> String {
    if set.is_empty() {
        "none".into()
    } else {
        set.iter().copied().collect::<Vec<_>>().join(", ")
    }
}

pub(super) fn json_has_template(v: &Json) -> bool {
    match v {
        Json::String(s) => garrison_expr::is_template(s),
        Json::Array(a) => a.iter().any(json_has_template),
        Json::Object(m) => m.values().any(json_has_template),
        _ => false,
    }
}
