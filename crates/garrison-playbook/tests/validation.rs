//! Validation: every error with its place.

use crate::common::*;
use garrison_playbook::*;
use proptest::prelude::*;

fn errors(yaml: &str) -> Vec<String> {
    let (p, errs) = validate(yaml, &registry());
    assert!(p.is_none() || errs.is_empty());
    errs.iter().map(ToString::to_string).collect()
}

fn has(errs: &[String], needle: &str) {
    assert!(
        errs.iter().any(|e| e.contains(needle)),
        "no error containing {needle:?} in {errs:#?}"
    );
}

#[test]
fn json_is_accepted() {
    let json =
        r#"{"name": "j", "steps": [{"id": "a", "action": "core.log", "with": {"message": "hi"}}]}"#;
    let (p, errs) = validate(json, &registry());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(p.expect("p").steps.len(), 1);
}

const BAD: &str = r#"
name: bad
inputs:
  ip: {type: ip, default: not-an-ip}
  level: {type: enum}
  n: {type: integer, default: "x"}
  kind: {type: colour}
triggers:
  - schedule: {cron: "61 * * * *", timezone: Mars/Olympus}
  - webhook: {}
  - alert: {condition: "alert.severity =="}
  - telepathy
steps:
  - id: a
    action: core.http
    with: {url: "http://x/{{ inputs.nope }}", verb: GET}
    depends_on: [c]
    timeout: 5 parsecs
  - id: b
    action: fw.block
    with: {ip: "{{ steps.zzz.output }}"}
  - id: c
    action: core.log
    depends_on: [a, ghost]
    with: {message: "{{ steps.d.output }} {{ item }}"}
  - id: a
    action: core.set
    with: {}
  - id: d
    action: core.log
    with: {message: "{{ oops( }}"}
    retry: {max_attempts: 0, backoff: soon}
  - id: e
    approval:
      approvers: {}
      choices: [go, stop]
      default: maybe
      timeout: 1h
      routes: {perhaps: [a]}
  - id: f
    action: core.log
    with: {message: hi}
    lease: {for: 1h, target: x}
  - id: g
    wait: {for: 10s, until: "2030-01-01T00:00:00Z"}
  - id: h
    end: {status: exploded}
  - id: i
    action: core.log
    condition: {if: "true", then: [a]}
  - id: bad-id
    action: core.sleep
    with: {for: forever}
  - id: j
    action: core.transform
    with: {query: ".a |", input: 1}
  - id: k
    on_error: {goto: nowhere}
    action: fw.block_ip
    with: {ip: 10.0.0.300}
"#;

#[test]
fn every_error_is_reported_with_its_place() {
    let errs = errors(BAD);
    insta::assert_snapshot!(errs.join("\n"));
}

#[test]
fn specific_errors() {
    let errs = errors(BAD);
    has(
        &errs,
        "inputs.ip.default: default does not match the type: expected an IP address",
    );
    has(
        &errs,
        "inputs.level.type: an enum input needs a non-empty `values` list",
    );
    has(&errs, "inputs.kind.type: unknown type `colour`");
    has(&errs, "triggers[0].cron: invalid cron pattern");
    has(
        &errs,
        "triggers[0].timezone: unknown time zone `Mars/Olympus`",
    );
    has(&errs, "triggers[1].secret: required");
    has(&errs, "triggers[2].condition");
    has(&errs, "unknown trigger `telepathy`");
    has(&errs, "undefined input `inputs.nope`");
    has(&errs, "`core.http` has no parameter `verb`");
    has(&errs, "invalid duration `5 parsecs`");
    has(
        &errs,
        "unknown action `fw.block` (known: fw.block_ip, fw.unblock_ip)",
    );
    has(&errs, "unknown step `ghost`");
    has(&errs, "duplicate step id `a`");
    has(&errs, "`steps.d.output`: step `d` does not run before `c`");
    has(&errs, "`item` exists only in a for_each step");
    has(&errs, "steps.d.with.message");
    has(&errs, "retry.max_attempts: must be between 1 and 100");
    has(
        &errs,
        "steps.e.approval.approvers: needs at least one role or user",
    );
    has(
        &errs,
        "steps.e.approval.default: `maybe` is not one of the choices",
    );
    has(&errs, "steps.e.approval.routes.perhaps");
    has(&errs, "`core.log` declares no undo action");
    has(&errs, "needs exactly one of `for` (a duration) or `until`");
    has(&errs, "unknown status `exploded`");
    has(
        &errs,
        "a step has exactly one kind, found: action, condition",
    );
    has(&errs, "invalid step id `bad-id`");
    has(&errs, "invalid duration `forever`");
    has(&errs, "steps.j.with.query");
    has(&errs, "steps.k.on_error.goto: unknown step `nowhere`");
    has(&errs, "steps.k.with.ip: expected an IP address");
    // places: the step's line is given
    assert!(
        errs.iter()
            .any(|e| e.starts_with("14:") || e.starts_with("14:5")),
        "{errs:#?}"
    );
}

#[test]
fn cycles_are_reported() {
    let errs = errors(
        "name: c\nsteps:\n  - id: a\n    depends_on: [c]\n    action: core.log\n    with: {message: x}\n  - id: b\n    depends_on: [a]\n    action: core.log\n    with: {message: x}\n  - id: c\n    depends_on: [b]\n    action: core.log\n    with: {message: x}\n  - id: d\n    depends_on: [d]\n    action: core.log\n    with: {message: x}\n",
    );
    has(&errs, "cycle: a → b → c → a");
    has(&errs, "3:5: steps.a");
    has(&errs, "a step cannot depend on itself");
}

#[test]
fn routes_create_order_and_cycles() {
    let errs = errors(
        "name: c\nsteps:\n  - id: a\n    depends_on: [b]\n    condition: {if: 'true', then: [b]}\n  - id: b\n    action: core.log\n    with: {message: x}\n",
    );
    has(&errs, "cycle");
}

#[test]
fn yaml_syntax_error_has_line() {
    let errs = errors("name: x\nsteps:\n  - id: a\n    action: [unclosed\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains(':'), "{errs:?}");
    let (_, e) = validate(
        "name: x\nsteps:\n  - id: a\n    action: [unclosed\n",
        &registry(),
    );
    assert!(e[0].line.is_some(), "{e:?}");
}

#[test]
fn unknown_top_level_field() {
    let errs = errors("name: x\nstepz: []\n");
    has(&errs, "unknown field `stepz`");
}

#[test]
fn missing_parameters_and_literal_types() {
    let errs =
        errors("name: x\nsteps:\n  - id: a\n    action: fw.block_ip\n    with: {comment: 5}\n");
    has(&errs, "`fw.block_ip` needs parameter `ip` (ip)");
    has(&errs, "steps.a.with.comment: expected string, got number");
}

#[test]
fn reference_to_a_step_field_that_does_not_exist() {
    let errs = errors("name: x\nsteps:\n  - id: a\n    action: core.set\n    with: {}\n  - id: b\n    depends_on: [a]\n    action: core.log\n    with: {message: '{{ steps.a.outptu }}'}\n");
    has(&errs, "a step has output, status, error");
}

#[test]
fn parallel_membership_rules() {
    let errs = errors(
        "name: x\nsteps:\n  - id: p\n    parallel: {steps: [a, nope]}\n  - id: q\n    parallel: {steps: [a]}\n  - id: a\n    action: core.set\n    with: {}\n",
    );
    has(&errs, "unknown step `nope`");
    has(&errs, "already belongs to parallel step `p`");
}

#[test]
fn input_form_and_resolution() {
    let p = pb("name: f\ninputs:\n  ip: {type: ip, description: target}\n  n: {type: int, default: 3}\n  tags: {type: list, items: string, required: false}\n  sev: {type: enum, values: [low, high], default: low}\nsteps:\n  - id: a\n    action: core.set\n    with: {}\n");
    let form = p.input_form();
    assert_eq!(form["required"], serde_json::json!(["ip"]));
    assert_eq!(
        form["properties"]["sev"]["enum"],
        serde_json::json!(["low", "high"])
    );
    assert_eq!(form["properties"]["ip"]["format"], "ip");
    let ok = p
        .resolve_inputs(&serde_json::json!({"ip": "::1"}))
        .expect("ok");
    assert_eq!(ok["n"], 3);
    let errs = p
        .resolve_inputs(&serde_json::json!({"ip": "nope", "sev": "mid", "extra": 1, "tags": [1]}))
        .expect_err("bad");
    assert_eq!(errs.len(), 4, "{errs:?}");
    let errs = p
        .resolve_inputs(&serde_json::json!({}))
        .expect_err("missing");
    assert_eq!(errs, vec!["inputs.ip: required".to_string()]);
}

#[test]
fn schedule_next_fire_uses_time_zone() {
    let p = pb("name: s\ntriggers:\n  - schedule: {cron: '0 2 * * *', timezone: Europe/Paris}\nsteps:\n  - id: a\n    action: core.set\n    with: {}\n");
    let next = p.triggers[0].next_fire(t0()).expect("next");
    // 02:00 in Paris (UTC+1 in January) is 01:00 UTC
    assert_eq!(next.to_string(), "2030-01-01T01:00:00Z");
}

#[test]
fn durations() {
    assert_eq!("1h30m".parse::<Duration>(), Ok(Duration(5_400_000)));
    assert_eq!("250ms".parse::<Duration>(), Ok(Duration(250)));
    // Words as people write them in a playbook.
    assert_eq!("10 minutes".parse::<Duration>(), Ok(Duration(600_000)));
    assert_eq!(
        "1 hour 30 minutes".parse::<Duration>(),
        Ok(Duration(5_400_000))
    );
    assert_eq!("45 seconds".parse::<Duration>(), Ok(Duration(45_000)));
    assert_eq!(
        "2d".parse::<Duration>().map(|d| d.to_string()),
        Ok("2d".into())
    );
    assert!("".parse::<Duration>().is_err());
    assert!("10".parse::<Duration>().is_err());
    assert!("99999999999999999999s".parse::<Duration>().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn validate_never_panics(text in "[ -~\\n]{0,300}") {
        let _ = validate(&text, &registry());
    }

    #[test]
    fn validate_never_panics_on_yamlish(
        ids in proptest::collection::vec("[a-c]{1,2}", 1..6),
        deps in proptest::collection::vec("[a-c]{1,2}", 0..6),
        tmpl in "[a-z.{} ]{0,30}",
    ) {
        let mut y = String::from("name: p\nsteps:\n");
        for (i, id) in ids.iter().enumerate() {
            let d = deps.get(i).map(|d| format!("[{d}]")).unwrap_or_else(|| "[]".into());
            y.push_str(&format!("  - id: {id}\n    depends_on: {d}\n    action: core.log\n    with: {{message: '{tmpl}'}}\n"));
        }
        let _ = validate(&y, &registry());
    }
}

#[test]
fn a_choice_read_as_a_boolean_is_named_with_the_fix() {
    let yaml = "name: b\nsteps:\n  - id: ask\n    approval:\n      message: go?\n      approvers: {roles: [responder]}\n      choices: [true, \"no\"]\n";
    let errs = errors(yaml);
    has(&errs, "steps.ask.approval.choices[0]");
    has(&errs, "quote the choice");
}

#[test]
fn a_cron_value_out_of_range_names_its_field() {
    let yaml = "name: c\ntriggers:\n  - schedule: {cron: \"0 25 * * *\"}\nsteps:\n  - id: a\n    action: core.log\n    with: {message: hi}\n";
    let errs = errors(yaml);
    has(&errs, "the hour field has 25; it takes 0-23");
}
