//! garrison-expr integration tests: templates, conditions, queries, hostile input.

use garrison_expr::{eval_bool, jq, render, Context, ExprErrorKind, JqQuery, Limits, Sandbox};
use proptest::prelude::*;
use serde_json::json;

fn ctx() -> Context {
    Context::from_json(&json!({
        "inputs": {"ip": "10.0.0.1", "ports": [22, 443], "n": 3},
        "steps": {"lookup": {"output": {"score": 80, "tags": ["c2"]}, "status": "succeeded"}},
    }))
}

#[test]
fn single_expression_keeps_type() {
    let s = Sandbox::default();
    assert_eq!(
        s.render("t", "{{ inputs.ports }}", &ctx()).unwrap(),
        json!([22, 443])
    );
    assert_eq!(
        s.render("t", " {{ inputs.n + 1 }} ", &ctx()).unwrap(),
        json!(4)
    );
    assert_eq!(
        s.render("t", "{{- inputs.ip -}}", &ctx()).unwrap(),
        json!("10.0.0.1")
    );
}

#[test]
fn mixed_template_is_a_string() {
    let s = Sandbox::default();
    assert_eq!(
        s.render("t", "block {{ inputs.ip }} ({{ inputs.n }})", &ctx())
            .unwrap(),
        json!("block 10.0.0.1 (3)")
    );
    assert_eq!(
        s.render("t", "plain text", &ctx()).unwrap(),
        json!("plain text")
    );
    assert_eq!(
        s.render(
            "t",
            "{% for p in inputs.ports %}{{ p }},{% endfor %}",
            &ctx()
        )
        .unwrap(),
        json!("22,443,")
    );
}

#[test]
fn render_json_walks_and_names_fields() {
    let s = Sandbox::default();
    let v = json!({"url": "https://x/{{ inputs.ip }}", "n": 5, "list": ["{{ inputs.n }}", "{{ nope }}"]});
    let errs = s.render_json_all("steps.a.with", &v, &ctx()).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].name, "steps.a.with.list[1]");
    let ok = s
        .render_json(
            "steps.a.with",
            &json!({"url": "https://x/{{ inputs.ip }}", "n": 5}),
            &ctx(),
        )
        .unwrap();
    assert_eq!(ok, json!({"url": "https://x/10.0.0.1", "n": 5}));
}

#[test]
fn strict_undefined_names_template_and_position() {
    let s = Sandbox::default();
    let e = s
        .render(
            "steps.enrich.with.url",
            "line one\nhttp://{{ steps.missing.output }}",
            &ctx(),
        )
        .unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::Undefined);
    assert_eq!(e.name, "steps.enrich.with.url");
    assert_eq!(e.line, Some(2));
    assert!(e.column.is_some());
    assert!(e.to_string().starts_with("steps.enrich.with.url:2:"), "{e}");

    let e = s.render("x", "{{ inputs.nope }}", &ctx()).unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::Undefined);
    assert_eq!((e.line, e.column), (Some(1), Some(4)));
    assert!(e.message.contains("inputs.nope"), "{}", e.message);
}

#[test]
fn syntax_errors_have_positions() {
    let s = Sandbox::default();
    let e = s.check_template("t", "ok\n{{ a + }}").unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::Syntax);
    assert_eq!(e.line, Some(2));
    let e = s.check_expression("c", "a ==").unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::Syntax);
}

#[test]
fn references_are_found() {
    let s = Sandbox::default();
    let r = s
        .check_template(
            "t",
            "{{ steps.a.output.x }} {{ inputs.ip }} {% for i in items %}{{ i }}{% endfor %}",
        )
        .unwrap();
    assert!(r.paths.contains("steps.a.output.x"));
    assert!(r.paths.contains("inputs.ip"));
    assert!(r.paths.contains("items"));
    assert!(!r.paths.iter().any(|p| p == "i"));
    let r = s.check_expression("c", "steps.b.output.score > 3").unwrap();
    assert!(r.paths.contains("steps.b.output.score"));
}

#[test]
fn conditions() {
    let s = Sandbox::default();
    assert!(s
        .eval_bool("c", "steps.lookup.output.score > 70", &ctx())
        .unwrap());
    assert!(s
        .eval_bool("c", "{{ 'c2' in steps.lookup.output.tags }}", &ctx())
        .unwrap());
    assert!(!s.eval_bool("c", "inputs.n is undefined", &ctx()).unwrap());
    let e = s.eval_bool("c", "inputs.n", &ctx()).unwrap_err();
    assert!(e.message.contains("true or false"), "{e}");
    let e = s.eval_bool("c", "inputs.zzz == 1", &ctx()).unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::Undefined);
}

#[test]
fn free_functions() {
    let c = json!({"a": {"b": 2}});
    assert_eq!(render("t", "{{ a.b * 2 }}", &c).unwrap(), json!(4));
    assert!(eval_bool("c", "a.b == 2", &c).unwrap());
}

#[test]
fn hostile_infinite_loop_stopped_by_fuel() {
    let s = Sandbox::default();
    let e = s
        .render_string(
            "t",
            "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",
            &ctx(),
        )
        .unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::OutOfFuel, "{e}");
}

#[test]
fn hostile_memory_bomb_stopped() {
    let s = Sandbox::default();
    let bomb = "{% set a = 'x' * 99999999 %}{% set b = a ~ a %}{% set c = b ~ b %}{% set d = c ~ c %}{{ d | length }}";
    let e = s.render_string("t", bomb, &ctx()).unwrap_err();
    assert!(
        matches!(
            e.kind,
            ExprErrorKind::OutOfFuel | ExprErrorKind::Limit | ExprErrorKind::Eval
        ),
        "{e}"
    );
}

#[test]
fn hostile_huge_output_refused() {
    let s = Sandbox::new(Limits {
        max_output_len: 1000,
        ..Limits::default()
    });
    let e = s
        .render_string("t", "{{ 'x' * 5000 }}", &ctx())
        .unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::Limit, "{e}");
    let e = s.render("t", "{{ 'x' * 99999999 }}", &ctx());
    assert!(e.is_err());
}

#[test]
fn hostile_deep_nesting_refused() {
    let s = Sandbox::default();
    let deep = format!(
        "{}x{}",
        "{% if true %}".repeat(200),
        "{% endif %}".repeat(200)
    );
    let e = s.render_string("t", &deep, &ctx()).unwrap_err();
    assert!(
        matches!(
            e.kind,
            ExprErrorKind::Limit | ExprErrorKind::Syntax | ExprErrorKind::Eval
        ),
        "{e}"
    );
    let deep_expr = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(s.eval("t", &deep_expr, &ctx()).is_err());
}

#[test]
fn no_macros_or_includes() {
    let s = Sandbox::default();
    assert!(s
        .render_string(
            "t",
            "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
            &ctx()
        )
        .is_err());
    assert!(s
        .render_string("t", "{% include 'other' %}", &ctx())
        .is_err());
}

#[test]
fn source_too_long() {
    let s = Sandbox::new(Limits {
        max_source_len: 10,
        ..Limits::default()
    });
    let e = s.render("t", "{{ 1 }}{{ 2 }}{{ 3 }}", &ctx()).unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::Limit);
}

#[test]
fn jq_queries() {
    let input = json!({"hits": [{"ip": "1.1.1.1", "score": 9}, {"ip": "2.2.2.2", "score": 2}]});
    let out = jq("q", "[.hits[] | select(.score > 5) | .ip]", &input).unwrap();
    assert_eq!(out, vec![json!(["1.1.1.1"])]);
    let q = JqQuery::compile("q", ".hits[].ip").unwrap();
    assert_eq!(q.run_one(&input).unwrap(), json!(["1.1.1.1", "2.2.2.2"]));
    assert_eq!(q.run_one(&json!({"hits": []})).unwrap(), json!(null));
    assert_eq!(
        jq("q", ".range", &json!({"range": 1})).unwrap(),
        vec![json!(1)]
    );
}

#[test]
fn jq_errors_and_forbidden() {
    let e = JqQuery::compile("steps.t.with.query", ".a |").unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::Syntax);
    assert_eq!(e.name, "steps.t.with.query");
    let e = JqQuery::compile("q", "nosuchfn(1)").unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::Undefined, "{e}");
    for bad in [
        "def f: f; f",
        "[range(1e9)]",
        "repeat(1)",
        "recurse(.+1)",
        "$ENV",
        "last(while(true; .))",
    ] {
        let e = JqQuery::compile("q", bad).unwrap_err();
        assert_eq!(e.kind, ExprErrorKind::Forbidden, "{bad}: {e}");
    }
    // a forbidden word inside a string is fine
    assert_eq!(
        jq("q", "\"range\"", &json!(null)).unwrap(),
        vec![json!("range")]
    );
    let e = jq("q", ".a + 1", &json!({"a": "x"})).unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::Eval);
}

#[test]
fn jq_output_limits() {
    let limits = Limits {
        max_query_outputs: 5,
        ..Limits::default()
    };
    let q = JqQuery::compile_with("q", ".[]", &limits).unwrap();
    let e = q.run(&json!([1, 2, 3, 4, 5, 6, 7])).unwrap_err();
    assert_eq!(e.kind, ExprErrorKind::Limit);
    let limits = Limits {
        max_json_bytes: 100,
        ..Limits::default()
    };
    let q = JqQuery::compile_with("q", ".[]", &limits).unwrap();
    assert!(q.run(&json!(["x".repeat(200)])).is_err());
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    assert!(JqQuery::compile("q", ".").unwrap().run(&deep).is_err());
}

#[test]
fn jq_filter_in_templates() {
    let s = Sandbox::default();
    let v = s
        .render(
            "t",
            "{{ steps.lookup.output | jq('.tags | length') }}",
            &ctx(),
        )
        .unwrap();
    assert_eq!(v, json!(1));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn templates_never_panic(src in "[ -~\\n]{0,80}") {
        let s = Sandbox::default();
        let _ = s.render("t", &src, &ctx());
        let _ = s.eval_bool("c", &src, &ctx());
        let _ = s.check_template("t", &src);
    }

    #[test]
    fn queries_never_panic(src in "[ -~]{0,40}") {
        if let Ok(q) = JqQuery::compile("q", &src) {
            let _ = q.run(&json!({"a": [1, 2, {"b": "c"}]}));
        }
    }
}
