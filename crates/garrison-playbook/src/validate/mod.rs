//! Parsing and validation: YAML or JSON text in, a [`Playbook`] and every error with its place out.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;
use serde_json::Value as Json;
use serde_saphyr::Spanned;

use crate::model::*;
use crate::registry::ActionRegistry;

mod graph;
mod raw;
mod step;
mod templates;

use graph::{ancestors, find_cycles, hint};
use raw::{clean_serde_message, parse_type, valid_id, RawInput, RawStep, RawTop};
use step::compile_step;
use templates::{list_or_none, template_message, TemplateUse, GLOBALS, STEP_FIELDS};

/// One problem in a playbook, with its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ValidationError {
    /// Where in the playbook: `steps.enrich.with.url`, `inputs.ip.default`, `triggers[1].cron`.
    pub path: String,
    /// 1-based line in the source, when known.
    pub line: Option<u64>,
    /// 1-based column in the source, when known.
    pub column: Option<u64>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{l}:{c}: ")?,
            (Some(l), None) => write!(f, "{l}: ")?,
            _ => {}
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Clone, Copy, Default)]
struct Place {
    line: Option<u64>,
    column: Option<u64>,
}

impl Place {
    fn of<T>(s: &Spanned<T>) -> Place {
        let l = s.referenced.line();
        if l == 0 {
            Place::default()
        } else {
            Place {
                line: Some(l),
                column: Some(s.referenced.column()),
            }
        }
    }
}

struct Errors(Vec<ValidationError>);

impl Errors {
    fn push(&mut self, place: Place, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError {
            path: path.into(),
            line: place.line,
            column: place.column,
            message: message.into(),
        });
    }
}

/// Parses and validates a playbook (YAML, or JSON which is YAML too) against the declared
/// actions. Returns the playbook when there is no error, and every error found with its place.
pub fn validate(text: &str, registry: &ActionRegistry) -> (Option<Playbook>, Vec<ValidationError>) {
    let mut errors = Errors(Vec::new());
    let top: RawTop = match serde_saphyr::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let loc = e.location();
            let message = e.to_string();
            let message = message.lines().next().unwrap_or("invalid YAML").to_owned();
            errors.push(
                Place {
                    line: loc.map(|l| l.line()),
                    column: loc.map(|l| l.column()),
                },
                "playbook",
                message,
            );
            return (None, errors.0);
        }
    };
    let name = match top.name {
        Some(n) if !n.trim().is_empty() => n,
        _ => {
            errors.push(
                Place::default(),
                "name",
                "required: a non-empty playbook name",
            );
            String::new()
        }
    };
    if let Some(v) = &top.version {
        if !v.is_u64() {
            errors.push(Place::default(), "version", "must be a whole number");
        }
    }

    // Inputs.
    let mut inputs = Vec::new();
    if let Some(raw_inputs) = &top.inputs {
        let place = Place::of(raw_inputs);
        match &raw_inputs.value {
            Json::Object(map) => {
                for (input_name, spec) in map {
                    let path = format!("inputs.{input_name}");
                    if !valid_id(input_name) {
                        errors.push(
                            place,
                            &path,
                            "input names are letters, digits and `_`, starting with a letter",
                        );
                    }
                    let raw: RawInput = match serde_json::from_value(spec.clone()) {
                        Ok(r) => r,
                        Err(e) => {
                            errors.push(place, &path, clean_serde_message(&e));
                            continue;
                        }
                    };
                    let ty = match parse_type(&raw) {
                        Ok(t) => t,
                        Err(e) => {
                            errors.push(place, format!("{path}.type"), e);
                            continue;
                        }
                    };
                    if let Some(d) = &raw.default {
                        if let Err(e) = ty.check(d) {
                            errors.push(
                                place,
                                format!("{path}.default"),
                                format!("default does not match the type: {e}"),
                            );
                        }
                    }
                    inputs.push(InputDef {
                        name: input_name.clone(),
                        ty,
                        required: raw.required.unwrap_or(raw.default.is_none()),
                        default: raw.default,
                        description: raw.description,
                    });
                }
            }
            Json::Null => {}
            other => errors.push(
                place,
                "inputs",
                format!(
                    "expected a mapping of input name to its type, got {}",
                    garrison_expr::json_type(other)
                ),
            ),
        }
    }
    let input_names: BTreeSet<&str> = inputs.iter().map(|i| i.name.as_str()).collect();

    let sandbox = garrison_expr::default_sandbox();

    // Triggers.
    let mut triggers = Vec::new();
    for (i, raw) in top.triggers.iter().flatten().enumerate() {
        let place = Place::of(raw);
        let path = format!("triggers[{i}]");
        let (kind, body) = match &raw.value {
            Json::String(s) => (s.clone(), Json::Null),
            Json::Object(m) if m.len() == 1 => match m.iter().next() {
                Some((k, v)) => (k.clone(), v.clone()),
                None => continue,
            },
            _ => {
                errors.push(place, &path, "a trigger is one of: alert, incident_state, sla_breach, schedule, webhook, manual (e.g. `- schedule: {cron: \"0 * * * *\"}`)");
                continue;
            }
        };
        let field = |key: &str| body.get(key).and_then(Json::as_str).map(str::to_owned);
        let allowed: &[&str] = match kind.as_str() {
            "alert" => &["condition", "inputs"],
            "incident_state" => &["to", "from", "inputs"],
            "sla_breach" => &["stage", "inputs"],
            "schedule" => &["cron", "timezone", "inputs"],
            "webhook" => &["secret", "inputs"],
            "manual" => &[],
            other => {
                errors.push(place, &path, format!("unknown trigger `{other}` (expected alert, incident_state, sla_breach, schedule, webhook, manual)"));
                continue;
            }
        };
        if let Json::Object(m) = &body {
            for k in m.keys() {
                if !allowed.contains(&k.as_str()) {
                    errors.push(
                        place,
                        format!("{path}.{k}"),
                        format!(
                            "unknown field for a {kind} trigger (expected {})",
                            allowed.join(", ")
                        ),
                    );
                }
            }
        } else if !body.is_null() {
            errors.push(place, &path, "trigger options must be a mapping");
        }
        let inputs = trigger_input_mapping(
            &kind,
            body.get("inputs"),
            &input_names,
            place,
            &path,
            &mut errors,
        );
        let trigger = match kind.as_str() {
            "alert" => {
                let condition = field("condition");
                if let Some(c) = &condition {
                    match sandbox.check_expression(&format!("{path}.condition"), c) {
                        Ok(refs) => {
                            for p in &refs.paths {
                                let root = p.split('.').next().unwrap_or("");
                                if root != "alert" && !GLOBALS.contains(&root) {
                                    errors.push(place, format!("{path}.condition"), format!("undefined variable `{p}` (an alert condition can read `alert`)"));
                                } else if let Some(e) = crate::payload::check_payload_path(p) {
                                    errors.push(place, format!("{path}.condition"), e);
                                }
                            }
                        }
                        Err(e) => {
                            errors.push(place, format!("{path}.condition"), template_message(&e))
                        }
                    }
                }
                Trigger::Alert { condition, inputs }
            }
            "incident_state" => Trigger::IncidentState {
                to: field("to"),
                from: field("from"),
                inputs,
            },
            "sla_breach" => Trigger::SlaBreach {
                stage: field("stage"),
                inputs,
            },
            "schedule" => {
                let cron = field("cron").unwrap_or_default();
                if cron.is_empty() {
                    errors.push(
                        place,
                        format!("{path}.cron"),
                        "required: a cron pattern such as `0 */6 * * *`",
                    );
                } else if let Err(e) = cron.parse::<croner::Cron>() {
                    let why = cron_field_problem(&cron).unwrap_or_else(|| e.to_string());
                    errors.push(
                        place,
                        format!("{path}.cron"),
                        format!("invalid cron pattern `{cron}`: {why}"),
                    );
                }
                let timezone = field("timezone").unwrap_or_else(|| "UTC".into());
                if jiff::tz::TimeZone::get(&timezone).is_err() {
                    errors.push(place, format!("{path}.timezone"), format!("unknown time zone `{timezone}` (expected an IANA name such as `Europe/Paris`)"));
                }
                Trigger::Schedule {
                    cron,
                    timezone,
                    inputs,
                }
            }
            "webhook" => {
                let secret = field("secret").unwrap_or_default();
                if secret.is_empty() {
                    errors.push(
                        place,
                        format!("{path}.secret"),
                        "required: the name of the secret that callers must present",
                    );
                }
                Trigger::Webhook { secret, inputs }
            }
            _ => Trigger::Manual,
        };
        triggers.push(trigger);
    }

    // Steps: first every id (so references in one step do not cascade from a bad sibling).
    let raw_steps: Vec<Spanned<Json>> = top.steps.unwrap_or_default();
    if raw_steps.is_empty() {
        errors.push(
            Place::default(),
            "steps",
            "a playbook needs at least one step",
        );
    }
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut places = Vec::new();
    for (i, raw) in raw_steps.iter().enumerate() {
        let place = Place::of(raw);
        places.push(place);
        let id = raw.value.get("id").and_then(Json::as_str).unwrap_or("");
        if id.is_empty() {
            continue;
        }
        if !valid_id(id) {
            errors.push(place, format!("steps[{i}].id"), format!("invalid step id `{id}`: letters, digits and `_`, starting with a letter (it is used as `steps.{id}` in templates)"));
        }
        if let Some(first) = index.get(id) {
            let first_line = places[*first]
                .line
                .map(|l| format!(" (first at line {l})"))
                .unwrap_or_default();
            errors.push(
                place,
                format!("steps.{id}"),
                format!("duplicate step id `{id}`{first_line}"),
            );
        } else {
            index.insert(id.to_owned(), i);
        }
    }

    let mut steps: Vec<Option<Step>> = Vec::new();
    let mut uses: Vec<Vec<TemplateUse>> = Vec::new();
    for (i, raw) in raw_steps.iter().enumerate() {
        let place = places[i];
        let mut step_uses = Vec::new();
        let raw_id = raw
            .value
            .get("id")
            .and_then(Json::as_str)
            .map(str::to_owned);
        let label = match &raw_id {
            Some(id) => format!("steps.{id}"),
            None => format!("steps[{i}]"),
        };
        let step: RawStep = match serde_json::from_value(raw.value.clone()) {
            Ok(s) => s,
            Err(e) => {
                errors.push(place, &label, clean_serde_message(&e));
                steps.push(None);
                uses.push(step_uses);
                continue;
            }
        };
        let compiled = compile_step(step, &label, place, registry, &mut errors, &mut step_uses);
        steps.push(compiled);
        uses.push(step_uses);
    }

    // References between steps.
    let n = steps.len();
    let mut deps = vec![Vec::new(); n];
    let mut routers: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut parent: Vec<Option<usize>> = vec![None; n];
    let resolve = |id: &str| index.get(id).copied();
    for (i, step) in steps.iter().enumerate() {
        let Some(step) = step else { continue };
        let place = places[i];
        let label = format!("steps.{}", step.id);
        for d in &step.depends_on {
            match resolve(d) {
                Some(j) if j == i => errors.push(
                    place,
                    format!("{label}.depends_on"),
                    "a step cannot depend on itself",
                ),
                Some(j) => deps[i].push(j),
                None => errors.push(
                    place,
                    format!("{label}.depends_on"),
                    format!("unknown step `{d}`{}", hint(d, &index)),
                ),
            }
        }
        let mut route = |targets: &[String], field: &str, errors: &mut Errors| {
            for t in targets {
                match resolve(t) {
                    Some(j) if j == i => errors.push(
                        place,
                        format!("{label}.{field}"),
                        "a step cannot route to itself",
                    ),
                    Some(j) => {
                        if !routers[j].contains(&i) {
                            routers[j].push(i);
                        }
                    }
                    None => errors.push(
                        place,
                        format!("{label}.{field}"),
                        format!("unknown step `{t}`{}", hint(t, &index)),
                    ),
                }
            }
        };
        match &step.kind {
            StepKind::Condition {
                then, otherwise, ..
            } => {
                route(then, "condition.then", &mut errors);
                route(otherwise, "condition.else", &mut errors);
            }
            StepKind::Branch { cases, default } => {
                for (c, case) in cases.iter().enumerate() {
                    route(&case.then, &format!("branch.cases[{c}].then"), &mut errors);
                }
                route(default, "branch.default", &mut errors);
            }
            StepKind::Approval { routes, .. } => {
                for (choice, targets) in routes {
                    route(targets, &format!("approval.routes.{choice}"), &mut errors);
                }
            }
            StepKind::Parallel { steps: members, .. } => {
                for m in members {
                    match resolve(m) {
                        Some(j) if j == i => errors.push(
                            place,
                            format!("{label}.parallel.steps"),
                            "a parallel step cannot contain itself",
                        ),
                        Some(j) => match parent[j] {
                            Some(other) if other != i => errors.push(
                                place,
                                format!("{label}.parallel.steps"),
                                format!(
                                    "step `{m}` already belongs to parallel step `{}`",
                                    steps[other].as_ref().map(|s| s.id.as_str()).unwrap_or("?")
                                ),
                            ),
                            _ => parent[j] = Some(i),
                        },
                        None => errors.push(
                            place,
                            format!("{label}.parallel.steps"),
                            format!("unknown step `{m}`{}", hint(m, &index)),
                        ),
                    }
                }
            }
            _ => {}
        }
        if let OnError::Goto(t) = &step.on_error {
            route(std::slice::from_ref(t), "on_error.goto", &mut errors);
        }
    }
    for (i, step) in steps.iter().enumerate() {
        let (Some(step), Some(p)) = (step, parent[i]) else {
            continue;
        };
        if !routers[i].is_empty() {
            errors.push(
                places[i],
                format!("steps.{}", step.id),
                "a parallel member cannot also be the target of a route",
            );
        }
        if deps[i].contains(&p) {
            errors.push(
                places[i],
                format!("steps.{}.depends_on", step.id),
                "a parallel member starts with its parallel step: it cannot depend on it",
            );
        }
    }

    // Cycles over every edge that orders steps: depends_on, routes, parallel membership.
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n]; // edges[i] = steps i waits on
    for i in 0..n {
        edges[i].extend(&deps[i]);
        edges[i].extend(&routers[i]);
        if let Some(p) = parent[i] {
            edges[i].extend(&deps[p]);
        }
    }
    let mut cyclic = vec![false; n];
    for cycle in find_cycles(&edges) {
        for &c in &cycle {
            cyclic[c] = true;
        }
        let names: Vec<&str> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&c| steps[c].as_ref().map(|s| s.id.as_str()).unwrap_or("?"))
            .collect();
        let first = cycle[0];
        errors.push(
            places[first],
            format!("steps.{}", names[0]),
            format!("cycle: {}", names.join(" → ")),
        );
    }

    // Ancestors: what a step may read in `steps.*`.
    let ancestors = ancestors(&edges, &parent, &cyclic);

    // Templates: syntax and references.
    for (i, step_uses) in uses.iter().enumerate() {
        let Some(step) = &steps[i] else { continue };
        for u in step_uses {
            let checked = if u.expression {
                sandbox.check_expression(&u.path, &u.source)
            } else {
                sandbox.check_template(&u.path, &u.source)
            };
            let refs = match checked {
                Ok(r) => r,
                Err(e) => {
                    errors.push(places[i], &u.path, template_message(&e));
                    continue;
                }
            };
            for p in &refs.paths {
                let mut parts = p.split('.');
                let root = parts.next().unwrap_or("");
                let second = parts.next();
                let third = parts.next();
                match root {
                    "inputs" => {
                        if let Some(name) = second {
                            if !input_names.contains(name) {
                                errors.push(
                                    places[i],
                                    &u.path,
                                    format!(
                                        "undefined input `inputs.{name}` (declared: {})",
                                        list_or_none(&input_names)
                                    ),
                                );
                            }
                        }
                    }
                    "steps" => {
                        let Some(target) = second else { continue };
                        match index.get(target) {
                            None => errors.push(
                                places[i],
                                &u.path,
                                format!("unknown step `{target}` in `{p}`{}", hint(target, &index)),
                            ),
                            Some(&j) => {
                                if j == i {
                                    errors.push(
                                        places[i],
                                        &u.path,
                                        format!(
                                            "step `{}` cannot read its own result (`{p}`)",
                                            step.id
                                        ),
                                    );
                                } else if !ancestors[i].contains(&j) {
                                    errors.push(places[i], &u.path, format!("`{p}`: step `{target}` does not run before `{}`; add it to depends_on", step.id));
                                }
                                if let Some(field) = third {
                                    if !STEP_FIELDS.contains(&field) {
                                        errors.push(
                                            places[i],
                                            &u.path,
                                            format!(
                                                "`{p}`: a step has {}, not `{field}`",
                                                STEP_FIELDS.join(", ")
                                            ),
                                        );
                                    }
                                }
                            }
                        }
                    }
                    "trigger" => {
                        if let Some(e) = crate::payload::check_payload_path(p) {
                            errors.push(places[i], &u.path, e);
                        }
                    }
                    "run" => {}
                    "item" | "index" if u.in_for_each => {}
                    "item" | "index" => errors.push(
                        places[i],
                        &u.path,
                        format!("`{root}` exists only in a for_each step's `with`"),
                    ),
                    r if GLOBALS.contains(&r) => {}
                    other => errors.push(
                        places[i],
                        &u.path,
                        format!(
                            "undefined variable `{other}` (expected inputs, steps, trigger or run)"
                        ),
                    ),
                }
            }
        }
    }

    if !errors.0.is_empty() {
        let mut list = errors.0;
        list.sort_by_key(|e| e.line.unwrap_or(0));
        return (None, list);
    }
    let steps: Vec<Step> = steps.into_iter().flatten().collect();
    let playbook = Playbook {
        name,
        description: top.description,
        inputs,
        triggers,
        graph: Graph {
            index,
            deps,
            routers,
            parent,
        },
        steps,
    };
    (Some(playbook), Vec::new())
}

/// A trigger's `inputs`: declared input name → template over the payload. Every problem is
/// reported at the trigger.
fn trigger_input_mapping(
    kind: &str,
    raw: Option<&Json>,
    input_names: &BTreeSet<&str>,
    place: Place,
    path: &str,
    errors: &mut Errors,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let Some(raw) = raw else {
        return out;
    };
    let Json::Object(map) = raw else {
        errors.push(
            place,
            format!("{path}.inputs"),
            "expected a mapping of input name to a template over the trigger (e.g. `ip: \"{{ alert.entity['source.ip'] }}\"`)",
        );
        return out;
    };
    let keys = crate::payload::payload_keys(kind);
    let sandbox = garrison_expr::default_sandbox();
    for (name, value) in map {
        let at = format!("{path}.inputs.{name}");
        if !input_names.contains(name.as_str()) {
            errors.push(
                place,
                &at,
                format!(
                    "not a declared input (declared: {})",
                    list_or_none(input_names)
                ),
            );
            continue;
        }
        let template = match value {
            Json::String(t) => t.clone(),
            other => {
                errors.push(
                    place,
                    &at,
                    format!(
                        "expected a template string, got {}",
                        garrison_expr::json_type(other)
                    ),
                );
                continue;
            }
        };
        match sandbox.check_template(&at, &template) {
            Ok(refs) => {
                for p in &refs.paths {
                    let root = p.split('.').next().unwrap_or("");
                    if root != "trigger"
                        && root != "kind"
                        && !keys.contains(&root)
                        && !GLOBALS.contains(&root)
                    {
                        errors.push(
                            place,
                            &at,
                            format!(
                                "undefined variable `{p}` (a {kind} trigger gives {}, and `trigger`)",
                                if keys.is_empty() { "nothing".to_string() } else { keys.join(", ") }
                            ),
                        );
                    } else if let Some(e) = crate::payload::check_payload_path(p) {
                        errors.push(place, &at, e);
                    }
                }
            }
            Err(e) => errors.push(place, &at, template_message(&e)),
        }
        out.insert(name.clone(), template);
    }
    out
}

/// Which field of a cron pattern holds a number out of its range, said by name (`the hour
/// field has 25; hours are 0-23`): the cron parser's own message does not name the field.
fn cron_field_problem(cron: &str) -> Option<String> {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    // The six-field form has seconds first; the five-field form is the rest.
    const FIELDS: [(&str, u32, u32); 6] = [
        ("second", 0, 59),
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day-of-month", 1, 31),
        ("month", 1, 12),
        ("day-of-week", 0, 7),
    ];
    let names: &[(&str, u32, u32)] = match fields.len() {
        5 => &FIELDS[1..],
        6 => &FIELDS,
        n => return Some(format!("{n} fields; a pattern has 5 (minute hour day-of-month month day-of-week) or 6 (with seconds first)")),
    };
    for (field, (name, low, high)) in fields.iter().zip(names) {
        // Numbers of a field: `1,5-7,*/15` → 1, 5, 7 (a step is not a value).
        for part in field.split(',') {
            let range = part.split('/').next().unwrap_or(part);
            for n in range.split('-').filter_map(|x| x.parse::<u32>().ok()) {
                if n < *low || n > *high {
                    return Some(format!("the {name} field has {n}; it takes {low}-{high}"));
                }
            }
        }
    }
    None
}
