//! The specification's own examples (sigma-specification/tests and the documents' examples).
use super::common::*;
use garrison_sigma::{load_rules, rule_sources_from_dir, LoadOptions, RuleKind};

#[test]
fn specification_test_documents_parse() {
    let Some(root) = corpus() else { return };
    let dir = root.join("sigma-specification/tests");
    let sources = rule_sources_from_dir(&dir).unwrap();
    assert!(sources.len() >= 12);
    // Correlations and filters there name rules that are not in the folder; load each with a stub
    // for every rule it references so the references resolve.
    for src in sources {
        let mut stubs = String::new();
        for id in [
            "5638f7c0-ac70-491d-8465-2a65075e0d86",
            "recon_cmd_a",
            "recon_cmd_b",
            "recon_cmd_c",
            "rule_a_id",
            "website_access",
            "process_creation",
        ] {
            stubs.push_str(&format!(
                "---\ntitle: stub {id}\nname: {id}\nlogsource: {{product: x}}\ndetection:\n  s:\n    F: 1\n  condition: s\n"
            ));
        }
        let text = format!("{}\n{stubs}", src.text);
        let (set, errs) = load_rules(
            [garrison_sigma::RuleSource::new(src.path.clone(), text)],
            &LoadOptions::default(),
        );
        assert!(errs.is_empty(), "{}: {errs:?}", src.path);
        let own = set.rules();
        if src.path.contains("/correlation/") {
            assert!(
                own.iter().any(|m| m.kind == RuleKind::Correlation),
                "{}",
                src.path
            );
        }
    }
}

#[test]
fn whoami_example_from_the_rules_specification() {
    let s = set("title: Whoami Execution\ndescription: Detects a whoami.exe execution\nreferences:\n      - https://speakerdeck.com/heirhabarov/hunting-for-privilege-escalation-in-windows-environment\nauthor: Florian Roth\ndate: 2019-10-23\nlogsource:\n    category: process_creation\n    product: windows\ndetection:\n    selection:\n        Image: 'C:\\Windows\\System32\\whoami.exe'\n    condition: selection\nlevel: high\n");
    let m = &s.rules()[0];
    assert_eq!(m.level, Some(garrison_sigma::Level::High));
    assert_eq!(m.author.as_deref(), Some("Florian Roth"));
    assert_eq!(m.date.as_deref(), Some("2019-10-23"));
    assert!(hit(
        &s,
        serde_json::json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Image": "C:\\Windows\\System32\\whoami.exe"})
    ));
}

#[test]
fn spec_valid_null_example() {
    let s = set("title: t\nlogsource: {product: x}\ndetection:\n    selection_main:\n        FieldA: 'something'\n    selection_empty1:\n        FieldB: ''\n    selection_empty2:\n        FieldB: null\n    condition: selection_main and 1 of selection_empty*\n");
    assert!(hit(&s, serde_json::json!({"FieldA": "something"})));
    assert!(hit(
        &s,
        serde_json::json!({"FieldA": "something", "FieldB": ""})
    ));
    assert!(!hit(
        &s,
        serde_json::json!({"FieldA": "something", "FieldB": "x"})
    ));
}

#[test]
fn spec_eventlog_map_example() {
    let s = set("title: t\nlogsource: {product: x}\ndetection:\n    selection:\n          EventLog: Security\n          EventID: 4769\n          TicketOptions: '0x40810000'\n          TicketEncryption: '0x17'\n    condition: selection\n");
    assert!(hit(
        &s,
        serde_json::json!({"EventLog": "Security", "EventID": 4769, "TicketOptions": "0x40810000", "TicketEncryption": "0x17"})
    ));
    assert!(!hit(
        &s,
        serde_json::json!({"EventLog": "Security", "EventID": 4769, "TicketOptions": "0x40810000", "TicketEncryption": "0x12"})
    ));
}

#[test]
fn unmapped_logsources_apply_only_to_events_of_their_product() {
    // Rules no pipeline maps are evaluated without event conditions; their logsource product
    // still decides which events they can apply to: a Windows event log event (it has a
    // channel) is never a zeek, macOS or proxy event.
    let rules = [
        ("zeek", "product: zeek\n    service: rdp"),
        ("macos", "product: macos\n    category: process_creation"),
        ("proxy", "category: proxy"),
        ("windows", "product: windows"),
        ("linux", "product: linux"),
        ("any", "definition: anything"),
    ];
    let mut text = String::new();
    for (title, ls) in rules {
        text.push_str(&format!(
            "---\ntitle: {title}\nlogsource:\n    {ls}\ndetection:\n    selection:\n        Image|endswith: 'x.exe'\n    condition: selection\n"
        ));
    }
    let (set, errs) = load_rules(
        [garrison_sigma::RuleSource::new("t.yml", text)],
        &LoadOptions::default(),
    );
    assert!(errs.is_empty(), "{errs:?}");
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let win = serde_json::json!({"Channel": "Security", "EventID": 1, "Image": "C:\\x.exe"});
    assert_eq!(sorted(titles(&set, &win)), ["any", "windows"]);
    let lin = serde_json::json!({"Channel": "Linux-Sysmon/Operational", "EventID": 99, "Image": "/x.exe"});
    assert_eq!(sorted(titles(&set, &lin)), ["any", "linux"]);
    let other = serde_json::json!({"Image": "x.exe"});
    assert_eq!(
        sorted(titles(&set, &other)),
        ["any", "linux", "macos", "proxy", "windows", "zeek"]
    );
}

#[test]
fn keywords_match_ascii_and_unicode_strings_case_insensitively() {
    let set = set("title: kw\nlogsource:\n    product: windows\ndetection:\n    keywords:\n        - 'sekurlsa::'\n        - 'mimikatz'\n    condition: keywords\n");
    let ev =
        |v: &str| serde_json::json!({"Channel": "Security", "EventID": 4688, "CommandLine": v});
    assert_eq!(titles(&set, &ev("Invoke-MIMIKATZ -x")), ["kw"]);
    assert_eq!(
        titles(&set, &ev("Ünïcode SEKURLSA::logonpasswords")),
        ["kw"]
    );
    assert!(titles(&set, &ev("Ünïcode sekurlsa:")).is_empty());
    assert!(titles(&set, &ev("nothing here")).is_empty());
}

#[test]
fn rules_apply_only_to_streams_that_satisfy_their_logsource() {
    use garrison_sigma::{logsource_applies, LogSource};
    let ls = |p: Option<&str>, c: Option<&str>, s: Option<&str>| LogSource {
        product: p.map(Into::into),
        category: c.map(Into::into),
        service: s.map(Into::into),
        definition: None,
    };
    let none = ls(None, None, None);
    let zeek_conn = ls(Some("zeek"), None, Some("conn"));
    let linux = ls(Some("linux"), None, None);
    // A rule that asks for nothing applies everywhere; a stream that says nothing gets only those.
    assert!(logsource_applies(&none, &none, false));
    assert!(logsource_applies(&none, &zeek_conn, false));
    assert!(!logsource_applies(
        &ls(Some("zeek"), None, Some("conn")),
        &none,
        false
    ));
    assert!(!logsource_applies(
        &ls(Some("windows"), Some("process_creation"), None),
        &none,
        true
    ));
    // Keys both set must agree, case-insensitively.
    assert!(logsource_applies(
        &ls(Some("Zeek"), None, Some("conn")),
        &zeek_conn,
        false
    ));
    assert!(!logsource_applies(
        &ls(Some("zeek"), None, Some("dns")),
        &zeek_conn,
        false
    ));
    assert!(!logsource_applies(
        &ls(Some("cisco"), None, Some("aaa")),
        &linux,
        false
    ));
    // Keys the stream leaves open: decided by the product or the rule's event conditions.
    assert!(logsource_applies(
        &ls(Some("linux"), None, Some("sshd")),
        &linux,
        false
    ));
    assert!(logsource_applies(
        &ls(Some("windows"), Some("process_creation"), None),
        &ls(Some("windows"), None, None),
        true
    ));
    assert!(!logsource_applies(
        &ls(Some("windows"), None, Some("security")),
        &ls(None, Some("firewall"), None),
        true
    ));
    assert!(!logsource_applies(
        &ls(Some("fortigate"), Some("firewall"), None),
        &ls(None, Some("firewall"), None),
        false
    ));
}
