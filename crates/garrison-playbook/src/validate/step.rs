//! Compiling one step: its kind, action call, options, and the templates it uses.

use serde_json::{json, Value as Json};

use crate::model::*;
use crate::registry::ActionRegistry;

use super::raw::{parse_duration, RawLease, RawStep};
use super::templates::{collect_json_templates, json_has_template, template_message, TemplateUse};
use super::{Errors, Place};

pub(super) fn compile_step(
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
            let mut choices = Vec::new();
            let given = a
                .choices
                .unwrap_or_else(|| vec![json!("approve"), json!("reject")]);
            let given_count = given.len();
            for (i, c) in given.into_iter().enumerate() {
                match c {
                    Json::String(s) => choices.push(s),
                    Json::Bool(b) => errors.push(
                        place,
                        format!("{label}.approval.choices[{i}]"),
                        format!("read as the boolean {b}: YAML takes unquoted yes/no/on/off/true/false for booleans; quote the choice (e.g. \"yes\")"),
                    ),
                    Json::Number(n) => choices.push(n.to_string()),
                    other => errors.push(
                        place,
                        format!("{label}.approval.choices[{i}]"),
                        format!("expected a word, got {}", garrison_expr::json_type(&other)),
                    ),
                }
            }
            if given_count == 0 {
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
