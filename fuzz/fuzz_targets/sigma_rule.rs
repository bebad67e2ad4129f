#![no_main]
//! Arbitrary bytes as a Sigma rule file (first part) and a JSON event (after a NUL byte):
//! loading and matching must never panic, and a load reports errors instead of failing. The
//! keyword prefilter over an event's string buffer must not change what matches.
use garrison_sigma::{load_rules, Event, FieldValue, LoadOptions, Match, RuleSource};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The event with a buffer of all its names and strings, as the hunter's events offer.
struct Buffered<'a> {
    value: &'a Value,
    buffer: String,
}

fn collect(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push_str(k);
            collect(x, out)
        }),
        _ => {}
    }
}

impl Event for Buffered<'_> {
    fn get(&self, field: &str) -> Option<FieldValue<'_>> {
        Event::get(self.value, field)
    }
    fn visit_strings(&self, visit: &mut dyn FnMut(&str) -> bool) {
        Event::visit_strings(self.value, visit)
    }
    fn string_buffer(&self) -> Option<&str> {
        Some(&self.buffer)
    }
}

fn indices(out: &[Match]) -> Vec<usize> {
    out.iter().map(|m| m.rule_index).collect()
}

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
    let ev: Value = serde_json::from_slice(event).unwrap_or(Value::Null);
    let wrapped = serde_json::json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "x": ev});
    for v in [&ev, &wrapped] {
        let mut plain: Vec<Match> = Vec::new();
        set.matches(v, &mut plain);
        for m in &plain {
            assert!(m.rule_index < set.len());
        }
        let mut buffer = String::new();
        collect(v, &mut buffer);
        let mut buffered: Vec<Match> = Vec::new();
        set.matches(&Buffered { value: v, buffer }, &mut buffered);
        assert_eq!(indices(&plain), indices(&buffered));
    }
});
