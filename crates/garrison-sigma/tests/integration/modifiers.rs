//! One test per modifier and value rule of the specification, with its edge cases.
use super::common::*;
use serde_json::json;

#[test]
fn plain_values_are_case_insensitive_and_whole() {
    let s = sel("Image: 'C:\\Windows\\System32\\whoami.exe'");
    assert!(hit(
        &s,
        json!({"Image": "c:\\windows\\system32\\WHOAMI.EXE"})
    ));
    assert!(!hit(
        &s,
        json!({"Image": "c:\\windows\\system32\\whoami.exe2"})
    ));
    assert!(!hit(&s, json!({"Other": "x"})));
}

#[test]
fn contains_startswith_endswith() {
    let s = sel("CommandLine|contains: ' -enc '");
    assert!(hit(&s, json!({"CommandLine": "powershell -ENC abc"})));
    assert!(!hit(&s, json!({"CommandLine": "powershell -encoded"})));
    let s = sel("Image|startswith: 'C:\\Temp\\'");
    assert!(hit(&s, json!({"Image": "c:\\temp\\x.exe"})));
    assert!(!hit(&s, json!({"Image": "d:\\c:\\temp\\x.exe"})));
    let s = sel("Image|endswith: '\\x.exe'");
    assert!(hit(&s, json!({"Image": "c:\\temp\\X.exe"})));
    assert!(!hit(&s, json!({"Image": "c:\\temp\\x.exe.bak"})));
}

#[test]
fn wildcards_and_escapes() {
    let s = sel("F: 'prog?.exe'");
    assert!(hit(&s, json!({"F": "progA.exe"})));
    assert!(!hit(&s, json!({"F": "progAB.exe"})));
    let s = sel("F: 'antivirus_V*.exe'");
    assert!(hit(&s, json!({"F": "antivirus_V21.2.1.exe"})));
    let s = sel("F: 'a\\*b'");
    assert!(hit(&s, json!({"F": "a*b"})));
    assert!(!hit(&s, json!({"F": "aXb"})));
    let s = sel("F: 'a\\\\*'"); // backslash then wildcard
    assert!(hit(&s, json!({"F": "a\\anything"})));
    let s = sel("F: 'a\\\\\\*'"); // backslash and a literal star
    assert!(hit(&s, json!({"F": "a\\*"})));
    assert!(!hit(&s, json!({"F": "a\\x"})));
    let s = sel("F: 'C:\\\\\\\\share'"); // four backslashes: two
    assert!(hit(&s, json!({"F": "C:\\\\share"})));
}

#[test]
fn all_modifier_and_lists() {
    let s = sel("CommandLine|contains|all:\n    - 'a1'\n    - 'b2'");
    assert!(hit(&s, json!({"CommandLine": "x b2 y a1"})));
    assert!(!hit(&s, json!({"CommandLine": "x a1"})));
    let s = sel("CommandLine|contains:\n    - 'a1'\n    - 'b2'");
    assert!(hit(&s, json!({"CommandLine": "x a1"})));
}

#[test]
fn maps_and_and_list_of_maps_or() {
    let s = set("title: t\nlogsource: {product: test}\ndetection:\n  sel:\n    - A: 1\n      B: 2\n    - C: 3\n  condition: sel\n");
    assert!(hit(&s, json!({"A": 1, "B": "2"})));
    assert!(!hit(&s, json!({"A": 1})));
    assert!(hit(&s, json!({"C": 3})));
}

#[test]
fn numbers_and_strings_compare() {
    let s = sel("EventID: 4688");
    assert!(hit(&s, json!({"EventID": 4688})));
    assert!(hit(&s, json!({"EventID": "4688"})));
    assert!(!hit(&s, json!({"EventID": 46880})));
    let s = sel("EventID: '4688'");
    assert!(hit(&s, json!({"EventID": 4688})));
    let s = sel("Enabled: true");
    assert!(hit(&s, json!({"Enabled": true})));
    assert!(hit(&s, json!({"Enabled": "True"})));
    assert!(!hit(&s, json!({"Enabled": false})));
}

#[test]
fn null_and_empty() {
    let s = sel("F: null");
    assert!(hit(&s, json!({"G": 1})));
    assert!(hit(&s, json!({"F": null})));
    assert!(!hit(&s, json!({"F": "x"})));
    let s = sel("F: ''");
    assert!(hit(&s, json!({"F": ""})));
    assert!(!hit(&s, json!({"F": "x"})));
    assert!(!hit(&s, json!({"G": "x"})));
    let s = set("title: t\nlogsource: {product: test}\ndetection:\n  sel:\n    A: 1\n  f:\n    F: null\n  condition: sel and not f\n");
    assert!(hit(&s, json!({"A": 1, "F": "set"})));
    assert!(!hit(&s, json!({"A": 1})));
}

#[test]
fn exists() {
    let s = sel("F|exists: true");
    assert!(hit(&s, json!({"F": ""})));
    assert!(hit(&s, json!({"F": null})));
    assert!(!hit(&s, json!({"G": 1})));
    let s = sel("F|exists: false");
    assert!(hit(&s, json!({"G": 1})));
    assert!(!hit(&s, json!({"F": 1})));
}

#[test]
fn cased() {
    let s = sel("F|cased: 'AbC'");
    assert!(hit(&s, json!({"F": "AbC"})));
    assert!(!hit(&s, json!({"F": "abc"})));
    let s = sel("F|contains|cased: 'Evil'");
    assert!(hit(&s, json!({"F": "xEvilx"})));
    assert!(!hit(&s, json!({"F": "xevilx"})));
}

#[test]
fn neq() {
    let s = sel("F|neq: 'a'");
    assert!(hit(&s, json!({"F": "b"})));
    assert!(!hit(&s, json!({"F": "A"})));
    let s = sel("F|neq:\n    - 'a'\n    - 'b'");
    assert!(hit(&s, json!({"F": "c"})));
    assert!(!hit(&s, json!({"F": "b"})));
    let s = sel("N|neq: 5");
    assert!(hit(&s, json!({"N": 6})));
    assert!(!hit(&s, json!({"N": 5})));
}

#[test]
fn numeric_comparisons() {
    for (m, v, yes, no) in [
        ("gt", 10, 11, 10),
        ("gte", 10, 10, 9),
        ("lt", 10, 9, 10),
        ("lte", 10, 10, 11),
    ] {
        let s = sel(&format!("N|{m}: {v}"));
        assert!(hit(&s, json!({"N": yes})), "{m}");
        assert!(hit(&s, json!({"N": yes.to_string()})), "{m} string");
        assert!(!hit(&s, json!({"N": no})), "{m}");
        assert!(!hit(&s, json!({"N": "abc"})), "{m}");
    }
    let s = sel("N|gt: 1.5");
    assert!(hit(&s, json!({"N": 1.6})));
    assert!(!hit(&s, json!({"N": 1.5})));
}

#[test]
fn regex_and_flags() {
    let s = sel("F|re: '^ab.c$'");
    assert!(hit(&s, json!({"F": "abXc"})));
    assert!(!hit(&s, json!({"F": "ABXC"})), "re is case-sensitive");
    let s = sel("F|re|i: '^ab.c$'");
    assert!(hit(&s, json!({"F": "ABXC"})));
    let s = sel("F|re|m: '^second$'");
    assert!(hit(&s, json!({"F": "first\nsecond"})));
    let s = sel("F|re: '^second$'");
    assert!(!hit(&s, json!({"F": "first\nsecond"})));
    let s = sel("F|re|s: 'a.b'");
    assert!(hit(&s, json!({"F": "a\nb"})));
    let s = sel("F|re: 'a.b'");
    assert!(!hit(&s, json!({"F": "a\nb"})));
    assert!(load_err("title: t\nlogsource: {product: x}\ndetection:\n  s:\n    F|re: '(unclosed'\n  condition: s\n")
        .contains("regular expression"));
}

#[test]
fn cidr_v4_v6() {
    let s = sel("Ip|cidr: '10.0.0.0/8'");
    assert!(hit(&s, json!({"Ip": "10.1.2.3"})));
    assert!(hit(&s, json!({"Ip": "::ffff:10.1.2.3"})));
    assert!(!hit(&s, json!({"Ip": "11.1.2.3"})));
    assert!(!hit(&s, json!({"Ip": "not an ip"})));
    let s = sel("Ip|cidr:\n    - '192.168.0.0/16'\n    - 'fe80::/10'");
    assert!(hit(&s, json!({"Ip": "fe80::1"})));
    assert!(hit(&s, json!({"Ip": "192.168.5.5"})));
    assert!(!hit(&s, json!({"Ip": "2001:db8::1"})));
}

#[test]
fn base64_and_offset() {
    let s = sel("F|base64: 'http://'");
    assert!(hit(&s, json!({"F": "aHR0cDovLw=="})));
    let s = sel("F|base64|contains: 'http://'");
    assert!(hit(&s, json!({"F": "xx aHR0cDovLw== yy"})));
    let s = sel("F|base64offset|contains: '/c ping.exe'");
    for enc in ["L2MgcGluZy5leG", "9jIHBpbmcuZXhl", "vYyBwaW5nLmV4Z"] {
        assert!(hit(&s, json!({"F": format!("xx{enc}yy")})), "{enc}");
    }
    // every offset of a real encoding is found
    use base64::Engine as _;
    for pre in ["", "a", "ab"] {
        let enc =
            base64::engine::general_purpose::STANDARD.encode(format!("{pre}/c ping.exe tail"));
        assert!(hit(&s, json!({"F": enc})), "prefix {pre:?}");
    }
}

#[test]
fn utf16_and_wide() {
    use base64::Engine as _;
    let utf16le: Vec<u8> = "ping"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let s = sel("F|wide|base64offset|contains: 'ping'");
    let enc =
        base64::engine::general_purpose::STANDARD.encode([b"xx".as_slice(), &utf16le].concat());
    assert!(hit(&s, json!({"F": enc})));
    let s = sel("F|utf16le|base64: 'cmd'");
    assert!(hit(&s, json!({"F": "YwBtAGQA"})));
    let s = sel("F|utf16be|base64: 'cmd'");
    assert!(hit(&s, json!({"F": "AGMAbQBk"})));
    let s = sel("F|utf16|base64: 'cmd'");
    assert!(hit(&s, json!({"F": "//5jAG0AZAA="})));
    let s = sel("F|utf16le: 'ab'");
    assert!(hit(&s, json!({"F": "a\u{0}b\u{0}"})));
}

#[test]
fn windash_all_five_dashes() {
    let s = sel("CommandLine|windash|contains: ' -exec '");
    for d in ["-", "/", "\u{2013}", "\u{2014}", "\u{2015}"] {
        assert!(
            hit(&s, json!({"CommandLine": format!("x {d}exec y")})),
            "{d}"
        );
    }
    assert!(!hit(&s, json!({"CommandLine": "x +exec y"})));
}

#[test]
fn fieldref_and_combinations() {
    let s = sel("A|fieldref: B");
    assert!(hit(&s, json!({"A": "Same", "B": "same"})));
    assert!(!hit(&s, json!({"A": "x", "B": "y"})));
    assert!(!hit(&s, json!({"A": "x"})));
    let s = sel("A|fieldref|startswith: B");
    assert!(hit(&s, json!({"A": "prefix-rest", "B": "prefix"})));
    let s = sel("A|fieldref|endswith: B");
    assert!(hit(&s, json!({"A": "rest-suffix", "B": "suffix"})));
    assert!(!hit(&s, json!({"A": "suffix-rest", "B": "suffix"})));
    let s = sel("A|fieldref|contains: B");
    assert!(hit(&s, json!({"A": "aXYZb", "B": "xyz"})));
    let s = sel("A|fieldref|neq: B");
    assert!(hit(&s, json!({"A": "x", "B": "y"})));
    assert!(!hit(&s, json!({"A": "x", "B": "x"})));
}

#[test]
fn expand_placeholders() {
    use garrison_sigma::{load_rules, LoadOptions, RuleSource};
    let rule = "title: t\nlogsource: {product: x}\ndetection:\n  s:\n    User|expand: '%Administrators%'\n  condition: s\n";
    let (_, errs) = load_rules([RuleSource::new("p.yml", rule)], &LoadOptions::default());
    assert_eq!(errs.len(), 1);
    assert!(errs[0]
        .reason
        .contains("unresolved placeholder %Administrators%"));
    assert_eq!(errs[0].line, Some(5));
    let mut o = LoadOptions::default();
    o.placeholders
        .insert("Administrators".into(), vec!["root".into(), "adm_*".into()]);
    let (s, errs) = load_rules([RuleSource::new("p.yml", rule)], &o);
    assert!(errs.is_empty());
    assert!(hit(&s, json!({"User": "adm_bob"})));
    assert!(hit(&s, json!({"User": "ROOT"})));
    assert!(!hit(&s, json!({"User": "bob"})));
    // without expand, %x% is literal
    let s = sel("F: '%name%'");
    assert!(hit(&s, json!({"F": "%NAME%"})));
    // escaped percent
    let mut o = LoadOptions::default();
    o.placeholders.insert("name".into(), vec!["v".into()]);
    let (s, errs) = load_rules(
        [RuleSource::new("p.yml", "title: t\nlogsource: {product: x}\ndetection:\n  s:\n    F|expand: '\\%plain%name%'\n  condition: s\n")],
        &o,
    );
    assert!(errs.is_empty(), "{errs:?}");
    assert!(hit(&s, json!({"F": "%plainv"})));
}

#[test]
fn time_parts() {
    let s = sel("T|hour: 3");
    assert!(hit(&s, json!({"T": "2024-05-06T03:04:05Z"})));
    assert!(hit(&s, json!({"T": "2024-05-06 03:04:05.123"})));
    assert!(!hit(&s, json!({"T": "2024-05-06T04:04:05Z"})));
    let s = sel("T|minute: 4");
    assert!(hit(&s, json!({"T": "2024-05-06T03:04:05Z"})));
    let s = sel("T|day: 6");
    assert!(hit(&s, json!({"T": "2024-05-06T03:04:05Z"})));
    let s = sel("T|month: 5");
    assert!(hit(&s, json!({"T": "2024-05-06T03:04:05Z"})));
    let s = sel("T|year: 2024");
    assert!(hit(&s, json!({"T": "2024-05-06T03:04:05Z"})));
    let s = sel("T|week: 19");
    assert!(hit(&s, json!({"T": "2024-05-06T03:04:05Z"})));
    let s = sel("T|hour|gte: 22");
    assert!(hit(&s, json!({"T": "2024-05-06T23:00:00Z"})));
    assert!(!hit(&s, json!({"T": "2024-05-06T21:00:00Z"})));
    assert!(!hit(&s, json!({"T": "garbage"})));
}

#[test]
fn keywords() {
    let s = set("title: t\nlogsource: {product: x}\ndetection:\n  keywords:\n    - 'event::clear'\n    - 'event::drop'\n  condition: keywords\n");
    assert!(hit(&s, json!({"Message": "mimikatz EVENT::CLEAR now"})));
    assert!(!hit(&s, json!({"Message": "nothing"})));
    let s = set("title: t\nlogsource: {product: x}\ndetection:\n  kw:\n    '|all':\n      - 'OabVirtualDirectory'\n      - ' -ExternalUrl '\n  condition: kw\n");
    assert!(hit(
        &s,
        json!({"a": "Set-OabVirtualDirectory", "b": "x -ExternalUrl y"})
    ));
    assert!(!hit(&s, json!({"a": "Set-OabVirtualDirectory"})));
    let s = set(
        "title: t\nlogsource: {product: x}\ndetection:\n  kw: 'single*word'\n  condition: kw\n",
    );
    assert!(hit(&s, json!({"nested": {"deep": ["SINGLE big WORD"]}})));
}

/// A JSON event that also offers the buffer of its names and strings, as the hunter's events do,
/// so the engine takes its keyword prefilter path.
struct Buffered {
    map: serde_json::Map<String, serde_json::Value>,
    buffer: String,
}

impl Buffered {
    fn new(v: serde_json::Value) -> Buffered {
        let map = v.as_object().cloned().unwrap_or_default();
        let mut buffer = String::new();
        for (k, v) in &map {
            buffer.push_str(k);
            if let Some(s) = v.as_str() {
                buffer.push_str(s);
            }
        }
        Buffered { map, buffer }
    }
}

impl garrison_sigma::Event for Buffered {
    fn get(&self, field: &str) -> Option<garrison_sigma::FieldValue<'_>> {
        garrison_sigma::Event::get(&self.map, field)
    }
    fn visit_strings(&self, visit: &mut dyn FnMut(&str) -> bool) {
        garrison_sigma::Event::visit_strings(&self.map, visit)
    }
    fn string_buffer(&self) -> Option<&str> {
        Some(&self.buffer)
    }
}

#[test]
fn keyword_buffer_prefilter_agrees_with_visiting_every_string() {
    let s = set("title: t\nlogsource: {product: x}\ndetection:\n  keywords:\n    - 'kerberos::golden'\n    - 'event::clear'\n  condition: keywords\n");
    let both = |v: serde_json::Value| {
        let plain = hit(&s, v.clone());
        let mut out = Vec::new();
        s.matches(&Buffered::new(v), &mut out);
        assert_eq!(plain, !out.is_empty(), "prefilter and plain disagree");
        plain
    };
    assert!(both(json!({"CommandLine": "x EVENT::Clear y"})));
    // Across two strings, or in a name, the buffer has it but no string does.
    assert!(!both(json!({"A": "event::", "B": "clear"})));
    assert!(!both(json!({"event::clear": "x"})));
    // The Kelvin sign lowercases to an ASCII `k`.
    assert!(both(json!({"A": "\u{212A}erberos::GOLDEN"})));
    assert!(both(json!({"A": "Ünïcödé kerberos::golden"})));
    assert!(!both(json!({"A": "Ünïcödé"})));
    // A keyword that a number can spell skips the buffer (numbers are not in it).
    let n = set("title: t\nlogsource: {product: x}\ndetection:\n  keywords:\n    - '4688'\n  condition: keywords\n");
    let mut out = Vec::new();
    n.matches(&Buffered::new(json!({"EventID": 4688})), &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn conditions() {
    let s = set("title: t\nlogsource: {product: x}\ndetection:\n  sel_a:\n    A: 1\n  sel_b:\n    B: 1\n  filter_1:\n    F: 1\n  _helper:\n    H: 1\n  condition: (1 of sel_* and not 1 of filter*) or all of them\n");
    assert!(hit(&s, json!({"A": 1})));
    assert!(!hit(&s, json!({"A": 1, "F": 1})));
    assert!(
        hit(&s, json!({"A": 1, "B": 1, "F": 1})),
        "all of them ignores _helper"
    );
    let s = set("title: t\nlogsource: {product: x}\ndetection:\n  a:\n    A: 1\n  b:\n    B: 1\n  condition:\n    - a\n    - b\n");
    assert!(hit(&s, json!({"B": 1})), "condition list is OR");
    let s = set("title: t\nlogsource: {product: x}\ndetection:\n  a:\n    A: 1\n  b:\n    B: 1\n  c:\n    C: 1\n  condition: 2 of them\n");
    assert!(hit(&s, json!({"A": 1, "C": 1})));
    assert!(!hit(&s, json!({"A": 1})));
    let s = set("title: t\nlogsource: {product: x}\ndetection:\n  a:\n    A: 1\n  b:\n    B: 1\n  condition: not a and not b\n");
    assert!(hit(&s, json!({"C": 1})));
    assert!(!hit(&s, json!({"B": 1})));
}

#[test]
fn invalid_rules_are_reported_with_lines() {
    assert!(load_err(
        "title: t\nlogsource: {product: x}\ndetection:\n  s:\n    F|nosuchmod: 1\n  condition: s\n"
    )
    .contains("unknown modifier"));
    assert!(
        load_err("title: t\nlogsource: {product: x}\ndetection:\n  s:\n    F: 1\n")
            .contains("condition")
    );
    assert!(load_err(
        "title: t\nlogsource: {product: x}\ndetection:\n  s:\n    F: 1\n  condition: s and t\n"
    )
    .contains("unknown search identifier"));
    assert!(load_err("title: t\nlogsource: {product: x}\ndetection:\n  s:\n    F: 1\n  condition: s | count() > 5\n").contains("correlation"));
    assert!(load_err("title: t\ndetection: [\n").contains("YAML"));
    assert!(
        load_err("logsource: {product: x}\ndetection:\n  s:\n    F: 1\n  condition: s\n")
            .contains("title")
    );
    use garrison_sigma::{load_rules, LoadOptions, RuleSource};
    let (set, errs) = load_rules(
        [
            RuleSource::new("good.yml", "title: good\nlogsource: {product: x}\ndetection:\n  s:\n    F: 1\n  condition: s\n"),
            RuleSource::new("bad.yml", "title: bad\nid: bad-id\nlogsource: {product: x}\ndetection:\n  s:\n    F|re: '('\n  condition: s\n"),
        ],
        &LoadOptions::default(),
    );
    assert_eq!(set.len(), 1);
    assert_eq!(errs[0].path, "bad.yml");
    assert_eq!(errs[0].line, Some(6));
    assert_eq!(errs[0].rule.as_deref(), Some("bad-id"));
}

#[test]
fn logsource_pipeline_selects_events_and_maps_fields() {
    let s = set("title: t\nlogsource: {product: windows, category: process_creation}\ndetection:\n  s:\n    Image|endswith: '\\whoami.exe'\n  condition: s\n");
    // Sysmon 1
    assert!(hit(
        &s,
        json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Image": "C:\\x\\whoami.exe"})
    ));
    // wrong event id / channel
    assert!(!hit(
        &s,
        json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 11, "Image": "C:\\x\\whoami.exe"})
    ));
    assert!(!hit(
        &s,
        json!({"Channel": "Security", "EventID": 1, "Image": "C:\\x\\whoami.exe"})
    ));
    // Security 4688 with its own field name
    assert!(hit(
        &s,
        json!({"Channel": "Security", "EventID": 4688, "NewProcessName": "C:\\x\\whoami.exe"})
    ));
    // evtx JSON layout
    assert!(hit(
        &s,
        json!({"Event": {"System": {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1}, "EventData": {"Image": "C:\\x\\whoami.exe"}}})
    ));
    // Winlogbeat layout
    assert!(hit(
        &s,
        json!({"winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 1, "event_data": {"Image": "C:\\x\\whoami.exe"}}})
    ));
    let s = set("title: t\nlogsource: {product: windows, service: security}\ndetection:\n  s:\n    EventID: 4624\n  condition: s\n");
    assert!(hit(&s, json!({"Channel": "Security", "EventID": 4624})));
    assert!(!hit(&s, json!({"Channel": "System", "EventID": 4624})));
}

#[test]
fn matched_fields_are_reported() {
    let s = sel("Image|endswith: '\\x.exe'\nCommandLine|contains: 'evil'");
    let ev = json!({"Image": "C:\\X.exe", "CommandLine": "run evil", "Other": 1});
    let mut out = Vec::new();
    s.matches(&ev, &mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0]
        .matched
        .contains(&("Image".to_string(), "C:\\X.exe".to_string())));
    assert!(out[0]
        .matched
        .contains(&("CommandLine".to_string(), "run evil".to_string())));
}

#[test]
fn multi_document_actions() {
    let text = "action: global\ntitle: base\nlogsource: {product: x}\ndetection:\n  base:\n    A: 1\n  condition: base and s\n---\ndetection:\n  s:\n    B: 1\n---\ntitle: second\ndetection:\n  s:\n    B: 2\n---\naction: repeat\ntitle: third\ndetection:\n  s:\n    B: 3\n---\naction: reset\n---\ntitle: alone\nlogsource: {product: x}\ndetection:\n  s:\n    C: 1\n  condition: s\n";
    let s = set(text);
    assert_eq!(s.len(), 4);
    assert_eq!(titles(&s, &json!({"A": 1, "B": 1})), vec!["base"]);
    assert_eq!(titles(&s, &json!({"A": 1, "B": 2})), vec!["second"]);
    assert_eq!(titles(&s, &json!({"A": 1, "B": 3})), vec!["third"]);
    assert_eq!(titles(&s, &json!({"C": 1})), vec!["alone"]);
}

#[test]
fn filters_apply_to_named_rules() {
    let text = "title: rule\nid: 6f3e2987-db24-4c78-a860-b4f4095a7095\nlogsource: {product: windows, category: process_creation}\ndetection:\n  s:\n    Image|endswith: '\\rar.exe'\n  condition: s\n---\ntitle: other\nid: 11111111-db24-4c78-a860-b4f4095a7095\nlogsource: {product: windows, category: process_creation}\ndetection:\n  s:\n    Image|endswith: '\\rar.exe'\n  condition: s\n---\ntitle: Filter Administrator account\nlogsource:\n    category: process_creation\n    product: windows\nfilter:\n    rules:\n        - 6f3e2987-db24-4c78-a860-b4f4095a7095\n    selection:\n        User|startswith: 'adm_'\n    condition: selection\n";
    let s = set(text);
    let base = json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Image": "C:\\rar.exe", "User": "adm_bob"});
    assert_eq!(titles(&s, &base), vec!["other"]);
    let other = json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Image": "C:\\rar.exe", "User": "bob"});
    assert_eq!(titles(&s, &other), vec!["rule", "other"]);
}
