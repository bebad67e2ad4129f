//! Properties: loading and evaluating arbitrary rule YAML and events never panics.
use garrison_sigma::{load_rules, LoadOptions, RuleSource};
use proptest::prelude::*;

fn modifier() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "",
        "|contains",
        "|startswith",
        "|endswith",
        "|all",
        "|base64",
        "|base64offset|contains",
        "|wide",
        "|utf16be",
        "|utf16",
        "|windash",
        "|re",
        "|re|i",
        "|re|m|s",
        "|cidr",
        "|exists",
        "|cased",
        "|neq",
        "|gt",
        "|lte",
        "|fieldref",
        "|expand",
        "|hour",
        "|week",
        "|contains|all",
        "|bogus",
    ])
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 *?%\\\\/.:-]{0,12}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
        any::<i32>().prop_map(|i| i.to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("'10.0.0.0/8'".to_string()),
        Just("'(a|b)+['".to_string()),
    ]
}

fn rule_yaml() -> impl Strategy<Value = String> {
    let item = (
        "[A-Ca-c]{1,2}",
        modifier(),
        prop::collection::vec(scalar(), 1..4),
    );
    let ident = prop::collection::vec(item, 1..4);
    (
        prop::collection::vec(ident, 1..4),
        prop::sample::select(vec![
            "s0",
            "1 of s*",
            "all of them",
            "s0 and not s1",
            "(s0 or s1) and s2",
            "not",
            "s0 |",
            "2 of them",
        ]),
        prop::sample::select(vec!["process_creation", "file_event", "ps_script", "none"]),
    )
        .prop_map(|(idents, cond, cat)| {
            let mut y = format!(
                "title: p\nlogsource:\n  product: windows\n  category: {cat}\ndetection:\n"
            );
            for (i, items) in idents.iter().enumerate() {
                y.push_str(&format!("  s{i}:\n"));
                for (f, m, vals) in items {
                    y.push_str(&format!("    '{f}{m}':\n"));
                    for v in vals {
                        y.push_str(&format!("      - {v}\n"));
                    }
                }
            }
            y.push_str(&format!("  condition: {cond}\n"));
            y
        })
}

fn event() -> impl Strategy<Value = serde_json::Value> {
    let val = prop_oneof![
        "[a-zA-Z0-9 *?\\\\/.:-]{0,16}".prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        Just(serde_json::json!(["x", 1, null])),
        Just(serde_json::Value::from("2024-01-02T03:04:05Z")),
        Just(serde_json::Value::from("10.1.2.3")),
    ];
    (
        prop::collection::btree_map("[A-Ca-c]{1,2}", val, 0..6),
        any::<bool>(),
    )
        .prop_map(|(m, sysmon)| {
            let mut o: serde_json::Map<String, serde_json::Value> = m.into_iter().collect();
            if sysmon {
                o.insert(
                    "Channel".into(),
                    "Microsoft-Windows-Sysmon/Operational".into(),
                );
                o.insert("EventID".into(), 1.into());
            }
            serde_json::Value::Object(o)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn load_and_match_never_panic(rules in prop::collection::vec(rule_yaml(), 1..4), events in prop::collection::vec(event(), 1..8)) {
        let sources: Vec<RuleSource> = rules.iter().enumerate().map(|(i, r)| RuleSource::new(format!("r{i}.yml"), r.clone())).collect();
        let (set, _errs) = load_rules(sources, &LoadOptions::default());
        let mut out = Vec::new();
        for ev in &events {
            out.clear();
            set.matches(ev, &mut out);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = load_rules([RuleSource::new("x.yml", text)], &LoadOptions::default());
    }

    #[test]
    fn contains_agrees_with_str_contains(needle in "[a-zA-Z]{1,5}", hay in "[a-zA-Z ]{0,30}") {
        let set = super::common::sel(&format!("F|contains: '{needle}'"));
        let expected = hay.to_lowercase().contains(&needle.to_lowercase());
        prop_assert_eq!(super::common::hit(&set, serde_json::json!({"F": hay})), expected);
    }
}
