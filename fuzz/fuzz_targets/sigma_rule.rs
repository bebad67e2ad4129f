#![no_main]
//! Arbitrary bytes as a Sigma rule file (first part) and a JSON event (after a NUL byte):
//! loading and matching must never panic, and a load reports errors instead of failing.
use garrison_sigma::{load_rules, LoadOptions, Match, RuleSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (rule, event) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{}"[..]),
    };
    let text = String::from_utf8_lossy(rule).into_owned();
    let (set, errs) = load_rules([RuleSource::new("fuzz.yml", text)], &LoadOptions::default());
    for e in &errs {
        assert_eq!(e.path, "fuzz.yml");
    }
    let ev: serde_json::Value = serde_json::from_slice(event).unwrap_or(serde_json::Value::Null);
    let mut out: Vec<Match> = Vec::new();
    set.matches(&ev, &mut out);
    let wrapped = serde_json::json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "x": ev});
    set.matches(&wrapped, &mut out);
    for m in &out {
        assert!(m.rule_index < set.len());
    }
});
