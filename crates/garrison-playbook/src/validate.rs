//! Parsing and validation: YAML or JSON text in, a [`Playbook`] and every error with its place out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use serde_saphyr::Spanned;

use crate::model::*;
use crate::registry::ActionRegistry;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTop {
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    version: Option<Json>,
    #[serde(default)]
    inputs: Option<Spanned<Json>>,
    #[serde(default)]
    triggers: Option<Vec<Spanned<Json>>>,
    #[serde(default)]
    steps: Option<Vec<Spanned<Json>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    required: Option<bool>,
    #[serde(default)]
    default: Option<Json>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default)]
    items: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    backoff: Option<Json>,
    #[serde(default)]
    factor: Option<u32>,
    #[serde(default)]
    max_backoff: Option<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLease {
    #[serde(rename = "for")]
    duration: Json,
    target: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    #[serde(rename = "if")]
    condition: String,
    #[serde(default)]
    then: Vec<String>,
    #[serde(default, rename = "else")]
    otherwise: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    when: String,
    then: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBranch {
    cases: Vec<RawCase>,
    #[serde(default)]
    default: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForEach {
    items: String,
    #[serde(default)]
    concurrency: Option<usize>,
    action: String,
    #[serde(default)]
    with: Option<Json>,
    #[serde(default)]
    example_output: Option<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParallel {
    steps: Vec<String>,
    #[serde(default)]
    join: Option<Join>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWait {
    #[serde(default, rename = "for")]
    duration: Option<Json>,
    #[serde(default)]
    until: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    approvers: Approvers,
    #[serde(default)]
    choices: Option<Vec<String>>,
    #[serde(default)]
    timeout: Option<Json>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    routes: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSub {
    name: String,
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    with: Option<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnd {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    join: Option<Join>,
    #[serde(default)]
    when: Option<String>,
    #[serde(default)]
    retry: Option<RawRetry>,
    #[serde(default)]
    timeout: Option<Json>,
    #[serde(default)]
    on_error: Option<Json>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    with: Option<Json>,
    #[serde(default)]
    lease: Option<RawLease>,
    #[serde(default)]
    example_output: Option<Json>,
    #[serde(default)]
    condition: Option<RawCondition>,
    #[serde(default)]
    branch: Option<RawBranch>,
    #[serde(default)]
    for_each: Option<RawForEach>,
    #[serde(default)]
    parallel: Option<RawParallel>,
    #[serde(default)]
    wait: Option<RawWait>,
    #[serde(default)]
    approval: Option<RawApproval>,
    #[serde(default)]
    playbook: Option<RawSub>,
    #[serde(default)]
    end: Option<RawEnd>,
}

fn parse_duration(v: &Json) -> Result<Duration, String> {
    match v {
        Json::String(s) => s.parse(),
        Json::Number(n) => n
            .as_u64()
            .map(|secs| Duration(secs.saturating_mul(1000)))
            .ok_or_else(|| {
                format!("invalid duration `{n}`: expected whole seconds or text like `30s`")
            }),
        other => Err(format!(
            "invalid duration: expected text like `30s`, got {}",
            garrison_expr::json_type(other)
        )),
    }
}

fn parse_type(raw: &RawInput) -> Result<InputType, String> {
    Ok(match raw.ty.as_str() {
        "string" => InputType::String,
        "int" | "integer" => InputType::Int,
        "number" => InputType::Number,
        "bool" | "boolean" => InputType::Bool,
        "ip" => InputType::Ip,
        "object" => InputType::Object,
        "any" => InputType::Any,
        "enum" => match &raw.values {
            Some(v) if !v.is_empty() => InputType::Enum { values: v.clone() },
            _ => return Err("an enum input needs a non-empty `values` list".into()),
        },
        "list" => {
            let item = RawInput {
                ty: raw.items.clone().unwrap_or_else(|| "string".into()),
                required: None,
                default: None,
                description: None,
                values: raw.values.clone(),
                items: None,
            };
            if item.ty == "list" {
                return Err("lists of lists are not supported".into());
            }
            InputType::List {
                items: Box::new(parse_type(&item)?),
            }
        }
        other => {
            return Err(format!(
                "unknown type `{other}` (expected string, int, number, bool, ip, enum, list, object, any)"
            ))
        }
    })
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 64
}

fn clean_serde_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// A template or expression found in a step, to check.
struct TemplateUse {
    path: String,
    source: String,
    expression: bool,
    in_for_each: bool,
}

fn collect_json_templates(path: &str, v: &Json, in_for_each: bool, out: &mut Vec<TemplateUse>) {
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

const GLOBALS: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "debug",
    "lipsum",
    "cycler",
    "joiner",
    "loop",
];
const STEP_FIELDS: &[&str] = &[
    "output",
    "status",
    "error",
    "input",
    "started_at",
    "finished_at",
    "attempts",
];

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
            "alert" => &["condition"],
            "incident_state" => &["to", "from"],
            "sla_breach" => &["stage"],
            "schedule" => &["cron", "timezone"],
            "webhook" => &["secret"],
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
                                }
                            }
                        }
                        Err(e) => {
                            errors.push(place, format!("{path}.condition"), template_message(&e))
                        }
                    }
                }
                Trigger::Alert { condition }
            }
            "incident_state" => Trigger::IncidentState {
                to: field("to"),
                from: field("from"),
            },
            "sla_breach" => Trigger::SlaBreach {
                stage: field("stage"),
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
                    errors.push(
                        place,
                        format!("{path}.cron"),
                        format!("invalid cron pattern `{cron}`: {e}"),
                    );
                }
                let timezone = field("timezone").unwrap_or_else(|| "UTC".into());
                if jiff::tz::TimeZone::get(&timezone).is_err() {
                    errors.push(place, format!("{path}.timezone"), format!("unknown time zone `{timezone}` (expected an IANA name such as `Europe/Paris`)"));
                }
                Trigger::Schedule { cron, timezone }
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
                Trigger::Webhook { secret }
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
                    "trigger" | "run" => {}
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

fn template_message(e: &garrison_expr::ExprError) -> String {
    match (e.line, e.column) {
        (Some(l), Some(c)) => format!("{} (template line {l}, column {c})", e.message),
        (Some(l), None) => format!("{} (template line {l})", e.message),
        _ => e.message.clone(),
    }
}

fn list_or_none(set: &BTreeSet<&str>) -> String {
    if set.is_empty() {
        "none".into()
    } else {
        set.iter().copied().collect::<Vec<_>>().join(", ")
    }
}

fn hint(id: &str, index: &HashMap<String, usize>) -> String {
    let mut best: Option<(&str, usize)> = None;
    for k in index.keys() {
        let d = edit_distance(id, k);
        if d <= 2 && best.is_none_or(|(_, bd)| d < bd) {
            best = Some((k, d));
        }
    }
    match best {
        Some((k, _)) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Every elementary cycle found by a DFS (each reported once, rotated to start at its
/// smallest index).
fn find_cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut color = vec![0u8; n]; // 0 new, 1 on stack, 2 done
    let mut stack: Vec<usize> = Vec::new();
    let mut found: BTreeSet<Vec<usize>> = BTreeSet::new();
    fn dfs(
        v: usize,
        edges: &[Vec<usize>],
        color: &mut [u8],
        stack: &mut Vec<usize>,
        found: &mut BTreeSet<Vec<usize>>,
    ) {
        color[v] = 1;
        stack.push(v);
        for &w in &edges[v] {
            if color[w] == 1 {
                if let Some(pos) = stack.iter().position(|&x| x == w) {
                    let mut cycle: Vec<usize> = stack[pos..].to_vec();
                    cycle.reverse(); // edges point at dependencies: show execution order
                    if let Some(min_pos) = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, &x)| x)
                        .map(|(i, _)| i)
                    {
                        cycle.rotate_left(min_pos);
                    }
                    found.insert(cycle);
                }
            } else if color[w] == 0 {
                dfs(w, edges, color, stack, found);
            }
        }
        stack.pop();
        color[v] = 2;
    }
    for v in 0..n {
        if color[v] == 0 {
            dfs(v, edges, &mut color, &mut stack, &mut found);
        }
    }
    found.into_iter().collect()
}

fn ancestors(
    edges: &[Vec<usize>],
    parent: &[Option<usize>],
    cyclic: &[bool],
) -> Vec<BTreeSet<usize>> {
    let n = edges.len();
    let mut out = vec![BTreeSet::new(); n];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, p) in parent.iter().enumerate() {
        if let Some(p) = p {
            members[*p].push(i);
        }
    }
    for i in 0..n {
        if cyclic[i] {
            continue;
        }
        let mut seen = BTreeSet::new();
        let mut todo: Vec<usize> = edges[i].clone();
        while let Some(v) = todo.pop() {
            if !seen.insert(v) {
                continue;
            }
            todo.extend(&edges[v]);
            // a completed parallel step implies its members are settled
            todo.extend(&members[v]);
        }
        seen.remove(&i);
        out[i] = seen;
    }
    out
}

fn compile_step(
    raw: RawStep,
    label: &str,
    place: Place,
    registry: &ActionRegistry,
    errors: &mut Errors,
    uses: &mut Vec<TemplateUse>,
) -> Option<Step> {
    let _ = &raw.description;
    let mut kinds: Vec<&str> = Vec::new();
    if raw.action.is_some() {
        kinds.push("action");
    }
    for (present, name) in [
        (raw.condition.is_some(), "condition"),
        (raw.branch.is_some(), "branch"),
        (raw.for_each.is_some(), "for_each"),
        (raw.parallel.is_some(), "parallel"),
        (raw.wait.is_some(), "wait"),
        (raw.approval.is_some(), "approval"),
        (raw.playbook.is_some(), "playbook"),
        (raw.end.is_some(), "end"),
    ] {
        if present {
            kinds.push(name);
        }
    }
    if kinds.len() != 1 {
        let msg = if kinds.is_empty() {
            "a step needs exactly one of: action, condition, branch, for_each, parallel, wait, approval, playbook, end".to_owned()
        } else {
            format!("a step has exactly one kind, found: {}", kinds.join(", "))
        };
        errors.push(place, label, msg);
        return None;
    }
    let duration = |v: &Json, field: &str, errors: &mut Errors| -> Option<Duration> {
        match parse_duration(v) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(place, format!("{label}.{field}"), e);
                None
            }
        }
    };
    let retry = match &raw.retry {
        None => RetryPolicy::default(),
        Some(r) => {
            let d = RetryPolicy::default();
            let p = RetryPolicy {
                max_attempts: r.max_attempts.unwrap_or(3),
                backoff: r
                    .backoff
                    .as_ref()
                    .and_then(|b| duration(b, "retry.backoff", errors))
                    .unwrap_or(d.backoff),
                factor: r.factor.unwrap_or(d.factor),
                max_backoff: r
                    .max_backoff
                    .as_ref()
                    .and_then(|b| duration(b, "retry.max_backoff", errors))
                    .unwrap_or(d.max_backoff),
            };
            if p.max_attempts == 0 || p.max_attempts > 100 {
                errors.push(
                    place,
                    format!("{label}.retry.max_attempts"),
                    "must be between 1 and 100",
                );
            }
            p
        }
    };
    let timeout = raw
        .timeout
        .as_ref()
        .and_then(|t| duration(t, "timeout", errors));
    if timeout == Some(Duration(0)) {
        errors.push(place, format!("{label}.timeout"), "must be longer than 0");
    }
    let on_error = match &raw.on_error {
        None => OnError::Fail,
        Some(Json::String(s)) if s == "fail" => OnError::Fail,
        Some(Json::String(s)) if s == "continue" => OnError::Continue,
        Some(Json::Object(m)) if m.len() == 1 && m.get("goto").is_some_and(Json::is_string) => {
            OnError::Goto(
                m.get("goto")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_owned(),
            )
        }
        Some(_) => {
            errors.push(
                place,
                format!("{label}.on_error"),
                "expected `fail`, `continue` or `{goto: STEP}`",
            );
            OnError::Fail
        }
    };
    if let Some(w) = &raw.when {
        uses.push(TemplateUse {
            path: format!("{label}.when"),
            source: w.clone(),
            expression: true,
            in_for_each: false,
        });
    }

    let action_call = |action: &str,
                       with: Option<Json>,
                       example: Option<Json>,
                       lease: Option<&RawLease>,
                       field: &str,
                       in_for_each: bool,
                       errors: &mut Errors,
                       uses: &mut Vec<TemplateUse>|
     -> Option<ActionCall> {
        let with = with.unwrap_or(Json::Object(Default::default()));
        let with_path = format!("{label}.{field}");
        collect_json_templates(&with_path, &with, in_for_each, uses);
        let Some(spec) = registry.get(action) else {
            let similar = registry.similar(action);
            let hint = if similar.is_empty() {
                String::new()
            } else {
                format!(" (known: {})", similar.join(", "))
            };
            errors.push(
                place,
                format!("{label}.action"),
                format!("unknown action `{action}`{hint}"),
            );
            return Some(ActionCall {
                action: action.to_owned(),
                with,
                example_output: example,
                lease: None,
            });
        };
        match &with {
            Json::Object(m) => {
                for (k, v) in m {
                    match spec.params.iter().find(|p| &p.name == k) {
                        None if !spec.allow_extra_params => {
                            let known: Vec<&str> =
                                spec.params.iter().map(|p| p.name.as_str()).collect();
                            errors.push(
                                place,
                                format!("{with_path}.{k}"),
                                format!(
                                    "`{action}` has no parameter `{k}` (parameters: {})",
                                    known.join(", ")
                                ),
                            );
                        }
                        None => {}
                        Some(p) => {
                            let is_templated =
                                matches!(v, Json::String(s) if garrison_expr::is_template(s));
                            if !is_templated && !json_has_template(v) {
                                if let Err(e) = p.ty.check(v) {
                                    errors.push(place, format!("{with_path}.{k}"), e);
                                }
                            }
                        }
                    }
                }
                for p in &spec.params {
                    if p.required && !m.contains_key(&p.name) {
                        errors.push(
                            place,
                            &with_path,
                            format!(
                                "`{action}` needs parameter `{}` ({})",
                                p.name,
                                p.ty.describe()
                            ),
                        );
                    }
                }
                if action == "core.sleep" {
                    if let Some(Json::String(s)) = m.get("for") {
                        if !garrison_expr::is_template(s) {
                            if let Err(e) = s.parse::<Duration>() {
                                errors.push(place, format!("{with_path}.for"), e);
                            }
                        }
                    }
                }
                if action == "core.transform" {
                    if let Some(Json::String(q)) = m.get("query") {
                        if !garrison_expr::is_template(q) {
                            if let Err(e) =
                                garrison_expr::JqQuery::compile(&format!("{with_path}.query"), q)
                            {
                                errors.push(
                                    place,
                                    format!("{with_path}.query"),
                                    template_message(&e),
                                );
                            }
                        }
                    }
                }
            }
            other => errors.push(
                place,
                &with_path,
                format!(
                    "expected a mapping of parameters, got {}",
                    garrison_expr::json_type(other)
                ),
            ),
        }
        let lease = match lease {
            None => None,
            Some(l) => {
                let d = match parse_duration(&l.duration) {
                    Ok(d) => d,
                    Err(e) => {
                        errors.push(place, format!("{label}.lease.for"), e);
                        Duration(0)
                    }
                };
                if garrison_expr::is_template(&l.target) {
                    uses.push(TemplateUse {
                        path: format!("{label}.lease.target"),
                        source: l.target.clone(),
                        expression: false,
                        in_for_each,
                    });
                }
                match &spec.undo {
                    Some(undo) => Some(LeaseSpec {
                        duration: d,
                        target: l.target.clone(),
                        undo: undo.clone(),
                        check: spec.check.clone(),
                    }),
                    None => {
                        errors.push(place, format!("{label}.lease"), format!("`{action}` declares no undo action, so it cannot be held with a lease"));
                        None
                    }
                }
            }
        };
        Some(ActionCall {
            action: action.to_owned(),
            with,
            example_output: example.or_else(|| spec.example_output.clone()),
            lease,
        })
    };

    let kind = if let Some(action) = &raw.action {
        let call = action_call(
            action,
            raw.with.clone(),
            raw.example_output.clone(),
            raw.lease.as_ref(),
            "with",
            false,
            errors,
            uses,
        );
        match call {
            Some(c) => StepKind::Action(c),
            None => return None,
        }
    } else {
        if raw.with.is_some() {
            errors.push(
                place,
                format!("{label}.with"),
                "`with` belongs to an action step",
            );
        }
        if raw.lease.is_some() {
            errors.push(
                place,
                format!("{label}.lease"),
                "`lease` belongs to an action or for_each step",
            );
        }
        if let Some(c) = raw.condition {
            uses.push(TemplateUse {
                path: format!("{label}.condition.if"),
                source: c.condition.clone(),
                expression: true,
                in_for_each: false,
            });
            if c.then.is_empty() && c.otherwise.is_empty() {
                errors.push(
                    place,
                    format!("{label}.condition"),
                    "needs `then` or `else` steps",
                );
            }
            StepKind::Condition {
                condition: c.condition,
                then: c.then,
                otherwise: c.otherwise,
            }
        } else if let Some(b) = raw.branch {
            if b.cases.is_empty() {
                errors.push(
                    place,
                    format!("{label}.branch.cases"),
                    "needs at least one case",
                );
            }
            for (ci, c) in b.cases.iter().enumerate() {
                uses.push(TemplateUse {
                    path: format!("{label}.branch.cases[{ci}].when"),
                    source: c.when.clone(),
                    expression: true,
                    in_for_each: false,
                });
            }
            StepKind::Branch {
                cases: b
                    .cases
                    .into_iter()
                    .map(|c| BranchCase {
                        when: c.when,
                        then: c.then,
                    })
                    .collect(),
                default: b.default,
            }
        } else if let Some(f) = raw.for_each {
            uses.push(TemplateUse {
                path: format!("{label}.for_each.items"),
                source: f.items.clone(),
                expression: !garrison_expr::is_template(&f.items),
                in_for_each: false,
            });
            let concurrency = f.concurrency.unwrap_or(1);
            if concurrency == 0 || concurrency > 1000 {
                errors.push(
                    place,
                    format!("{label}.for_each.concurrency"),
                    "must be between 1 and 1000",
                );
            }
            let call = action_call(
                &f.action,
                f.with,
                f.example_output,
                raw.lease.as_ref(),
                "for_each.with",
                true,
                errors,
                uses,
            )?;
            StepKind::ForEach {
                items: f.items,
                concurrency,
                call,
            }
        } else if let Some(p) = raw.parallel {
            if p.steps.is_empty() {
                errors.push(
                    place,
                    format!("{label}.parallel.steps"),
                    "needs at least one step",
                );
            }
            StepKind::Parallel {
                steps: p.steps,
                join: p.join.unwrap_or_default(),
            }
        } else if let Some(w) = raw.wait {
            match (w.duration, w.until) {
                (Some(d), None) => StepKind::Wait(WaitSpec::For(
                    duration(&d, "wait.for", errors).unwrap_or(Duration(0)),
                )),
                (None, Some(u)) => {
                    uses.push(TemplateUse {
                        path: format!("{label}.wait.until"),
                        source: u.clone(),
                        expression: false,
                        in_for_each: false,
                    });
                    if !garrison_expr::is_template(&u) && u.parse::<jiff::Timestamp>().is_err() {
                        errors.push(
                            place,
                            format!("{label}.wait.until"),
                            format!(
                                "invalid time `{u}`: expected RFC 3339, e.g. 2030-01-01T00:00:00Z"
                            ),
                        );
                    }
                    StepKind::Wait(WaitSpec::Until(u))
                }
                _ => {
                    errors.push(
                        place,
                        format!("{label}.wait"),
                        "needs exactly one of `for` (a duration) or `until` (a time)",
                    );
                    return None;
                }
            }
        } else if let Some(a) = raw.approval {
            let choices = a
                .choices
                .unwrap_or_else(|| vec!["approve".into(), "reject".into()]);
            if choices.is_empty() {
                errors.push(
                    place,
                    format!("{label}.approval.choices"),
                    "needs at least one choice",
                );
            }
            if a.approvers.roles.is_empty() && a.approvers.users.is_empty() {
                errors.push(
                    place,
                    format!("{label}.approval.approvers"),
                    "needs at least one role or user",
                );
            }
            if let Some(d) = &a.default {
                if !choices.contains(d) {
                    errors.push(
                        place,
                        format!("{label}.approval.default"),
                        format!("`{d}` is not one of the choices [{}]", choices.join(", ")),
                    );
                }
            }
            let timeout = a
                .timeout
                .as_ref()
                .and_then(|t| duration(t, "approval.timeout", errors));
            if timeout.is_some() && a.default.is_none() {
                errors.push(
                    place,
                    format!("{label}.approval.default"),
                    "a timeout needs a default choice",
                );
            }
            for k in a.routes.keys() {
                if !choices.contains(k) {
                    errors.push(
                        place,
                        format!("{label}.approval.routes.{k}"),
                        format!("`{k}` is not one of the choices [{}]", choices.join(", ")),
                    );
                }
            }
            let message = a.message.unwrap_or_else(|| "Approve?".into());
            uses.push(TemplateUse {
                path: format!("{label}.approval.message"),
                source: message.clone(),
                expression: false,
                in_for_each: false,
            });
            StepKind::Approval {
                message,
                approvers: a.approvers,
                choices,
                timeout,
                default: a.default,
                routes: a.routes,
            }
        } else if let Some(s) = raw.playbook {
            let with = s.with.unwrap_or(Json::Object(Default::default()));
            collect_json_templates(&format!("{label}.playbook.with"), &with, false, uses);
            if s.name.trim().is_empty() {
                errors.push(
                    place,
                    format!("{label}.playbook.name"),
                    "required: the playbook to run",
                );
            }
            StepKind::SubPlaybook {
                playbook: s.name,
                version: s.version,
                with,
            }
        } else if let Some(e) = raw.end {
            let status = match e.status.as_deref().unwrap_or("succeeded") {
                "succeeded" | "success" => RunStatus::Succeeded,
                "failed" | "failure" => RunStatus::Failed,
                "cancelled" => RunStatus::Cancelled,
                other => {
                    errors.push(
                        place,
                        format!("{label}.end.status"),
                        format!("unknown status `{other}` (expected succeeded, failed, cancelled)"),
                    );
                    RunStatus::Failed
                }
            };
            if let Some(m) = &e.message {
                uses.push(TemplateUse {
                    path: format!("{label}.end.message"),
                    source: m.clone(),
                    expression: false,
                    in_for_each: false,
                });
            }
            StepKind::End {
                status,
                message: e.message,
            }
        } else {
            return None;
        }
    };
    if raw.example_output.is_some() && !matches!(kind, StepKind::Action(_)) {
        errors.push(
            place,
            format!("{label}.example_output"),
            "`example_output` belongs to an action step (for_each: inside for_each)",
        );
    }
    Some(Step {
        id: raw.id,
        kind,
        depends_on: raw.depends_on,
        join: raw.join.unwrap_or_default(),
        when: raw.when,
        retry,
        timeout,
        on_error,
        line: place.line.unwrap_or(0),
    })
}

fn json_has_template(v: &Json) -> bool {
    match v {
        Json::String(s) => garrison_expr::is_template(s),
        Json::Array(a) => a.iter().any(json_has_template),
        Json::Object(m) => m.values().any(json_has_template),
        _ => false,
    }
}
