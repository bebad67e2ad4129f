//! Correlation rules: the specification's examples on events built here.
use super::common::*;
use garrison_sigma::{CorrelationAlert, CorrelationOptions, Correlator, Match, RuleSet};
use jiff::Timestamp;
use serde_json::{json, Value};

type Fired = (String, Vec<(String, String)>, f64);

fn run(set: &RuleSet, events: &[(i64, Value)]) -> Vec<Fired> {
    let mut c = Correlator::new(set, CorrelationOptions::default());
    let mut alerts: Vec<CorrelationAlert> = Vec::new();
    let mut out: Vec<Match> = Vec::new();
    for (t, ev) in events {
        out.clear();
        set.matches(ev, &mut out);
        c.process(&out, Timestamp::from_second(*t).unwrap(), ev, &mut alerts);
    }
    alerts
        .iter()
        .map(|a| (a.rule.title.clone(), a.group.clone(), a.value))
        .collect()
}

const FAILED_SUCCESS: &str = r#"title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
status: experimental
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - User
    timespan: 10m
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
name: multiple_failed_login
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 10
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 529
            - 4625
    condition: selection
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
name: successful_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 528
            - 4624
    condition: selection
"#;

fn login(eid: u32, user: &str) -> Value {
    json!({"Channel": "Security", "EventID": eid, "User": user})
}

#[test]
fn failed_logins_followed_by_success() {
    let s = set(FAILED_SUCCESS);
    // base rules feed the correlation only
    assert!(
        !s.rules()
            .iter()
            .find(|m| m.title == "Single failed login")
            .unwrap()
            .generate
    );
    let mut evs = Vec::new();
    for i in 0..10 {
        evs.push((i * 10, login(4625, "alice")));
    }
    evs.push((120, login(4624, "alice")));
    // bob: too few failures
    for i in 0..5 {
        evs.push((i * 10, login(4625, "bob")));
    }
    evs.push((130, login(4624, "bob")));
    let alerts = run(&s, &evs);
    let titles: Vec<&str> = alerts.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(
        titles,
        vec![
            "Multiple failed logons",
            "Correlation - Multiple Failed Logins Followed by Successful Login"
        ]
    );
    assert_eq!(alerts[1].1, vec![("User".to_string(), "alice".to_string())]);
    // success first, then failures: not in order
    let mut evs = vec![(0, login(4624, "carol"))];
    for i in 0..10 {
        evs.push((10 + i, login(4625, "carol")));
    }
    let alerts = run(&s, &evs);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
}

#[test]
fn event_count_respects_timespan_and_groups() {
    let s = set("title: many\ncorrelation:\n  type: event_count\n  rules: [base]\n  group-by: [ComputerName]\n  timespan: 1h\n  condition:\n    gte: 3\n---\ntitle: b\nname: base\nlogsource: {product: x}\ndetection:\n  s:\n    A: 1\n  condition: s\n");
    let ev = |h: &str| json!({"A": 1, "ComputerName": h});
    // spread over more than an hour: no alert
    assert!(run(&s, &[(0, ev("h1")), (3000, ev("h1")), (7300, ev("h1"))]).is_empty());
    // different hosts: no alert
    assert!(run(&s, &[(0, ev("h1")), (1, ev("h2")), (2, ev("h3"))]).is_empty());
    let a = run(
        &s,
        &[(0, ev("h1")), (1, ev("h2")), (2, ev("h1")), (3, ev("h1"))],
    );
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].2, 3.0);
}

#[test]
fn value_count() {
    let s = set("title: spray\ncorrelation:\n  type: value_count\n  rules: [base]\n  group-by: [ComputerName]\n  timespan: 1d\n  condition:\n    field: User\n    gte: 3\n---\ntitle: b\nname: base\nlogsource: {product: x}\ndetection:\n  s:\n    A: 1\n  condition: s\n");
    let ev = |u: &str| json!({"A": 1, "ComputerName": "h", "User": u});
    assert!(run(
        &s,
        &[(0, ev("a")), (1, ev("a")), (2, ev("b")), (3, ev("b"))]
    )
    .is_empty());
    let a = run(
        &s,
        &[(0, ev("a")), (1, ev("b")), (2, ev("a")), (3, ev("c"))],
    );
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].2, 3.0);
}

#[test]
fn temporal_any_order_with_aliases() {
    let s = set("title: both\ncorrelation:\n  type: temporal\n  rules: [internal_error, new_network_connection]\n  group-by: [internal_ip, remote_ip]\n  timespan: 10s\n  aliases:\n    internal_ip:\n      internal_error: destination.ip\n      new_network_connection: source.ip\n    remote_ip:\n      internal_error: source.ip\n      new_network_connection: destination.ip\n---\ntitle: e\nname: internal_error\nlogsource: {product: x}\ndetection:\n  s:\n    http.response.status_code: 500\n  condition: s\n---\ntitle: n\nname: new_network_connection\nlogsource: {product: x}\ndetection:\n  s:\n    event.category: network\n    event.type: connection\n    event.outcome: success\n  condition: s\n");
    let err = json!({"http": {"response": {"status_code": 500}}, "destination": {"ip": "10.0.0.1"}, "source": {"ip": "1.2.3.4"}});
    let conn = json!({"event": {"category": "network", "type": "connection", "outcome": "success"}, "source": {"ip": "10.0.0.1"}, "destination": {"ip": "1.2.3.4"}});
    let other = json!({"event": {"category": "network", "type": "connection", "outcome": "success"}, "source": {"ip": "10.0.0.9"}, "destination": {"ip": "1.2.3.4"}});
    let a = run(&s, &[(0, conn.clone()), (5, err.clone())]);
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0].1,
        vec![
            ("internal_ip".into(), "10.0.0.1".into()),
            ("remote_ip".into(), "1.2.3.4".into())
        ]
    );
    assert!(run(&s, &[(0, other), (5, err.clone())]).is_empty());
    assert!(
        run(&s, &[(0, conn), (20, err)]).is_empty(),
        "outside timespan"
    );
}

#[test]
fn value_sum_avg_percentile() {
    let base = "---\ntitle: b\nname: web\nlogsource: {product: x}\ndetection:\n  s:\n    A: 1\n  condition: s\n";
    let s = set(&format!("title: exfil\ncorrelation:\n  type: value_sum\n  rules: [web]\n  group-by: [SourceIP]\n  timespan: 1h\n  condition:\n    field: bytes_sent\n    gt: 1000\n{base}"));
    let ev = |b: u64| json!({"A": 1, "SourceIP": "1.1.1.1", "bytes_sent": b});
    assert!(run(&s, &[(0, ev(400)), (1, ev(500))]).is_empty());
    assert_eq!(
        run(&s, &[(0, ev(400)), (1, ev(500)), (2, ev(200))])[0].2,
        1100.0
    );
    let s = set(&format!("title: avg\ncorrelation:\n  type: value_avg\n  rules: [web]\n  group-by: [SourceIP]\n  timespan: 1h\n  condition:\n    field: bytes_sent\n    gt: 500\n{base}"));
    assert!(run(&s, &[(0, ev(400)), (1, ev(500))]).is_empty());
    assert_eq!(run(&s, &[(0, ev(400)), (1, ev(900))])[0].2, 650.0);
    let s = set(&format!("title: rare\ncorrelation:\n  type: value_percentile\n  rules: [web]\n  group-by: [SourceIP]\n  timespan: 1h\n  condition:\n    field: Image\n    lte: 10\n{base}"));
    let img = |i: &str| json!({"A": 1, "SourceIP": "h", "Image": i});
    let mut evs: Vec<(i64, Value)> = (0..20).map(|t| (t, img("common.exe"))).collect();
    evs.push((30, img("rare.exe")));
    let a = run(&s, &evs);
    assert_eq!(a.len(), 1);
    assert!(a[0].2 <= 10.0);
}

#[test]
fn state_is_bounded() {
    let s = set("title: many\ncorrelation:\n  type: event_count\n  rules: [base]\n  group-by: [User]\n  timespan: 1d\n  condition:\n    gte: 1000\n---\ntitle: b\nname: base\nlogsource: {product: x}\ndetection:\n  s:\n    A: 1\n  condition: s\n");
    let mut c = Correlator::new(&s, CorrelationOptions { max_entries: 1000 });
    let mut alerts = Vec::new();
    let mut out = Vec::new();
    for i in 0..5000 {
        let ev = json!({"A": 1, "User": format!("u{i}")});
        out.clear();
        s.matches(&ev, &mut out);
        c.process(&out, Timestamp::from_second(i).unwrap(), &ev, &mut alerts);
        assert!(c.entries() <= 1001);
    }
    assert!(c.evictions() > 0);
}

#[test]
fn unknown_reference_is_an_error() {
    let e = load_err("title: c\ncorrelation:\n  type: event_count\n  rules: [nope]\n  group-by: [x]\n  timespan: 1h\n  condition:\n    gte: 2\n");
    assert!(e.contains("unknown rule"));
    let e = load_err("title: c\ncorrelation:\n  type: event_count\n  rules: [nope]\n  group-by: [x]\n  timespan: 1 hour\n  condition:\n    gte: 2\n");
    assert!(e.contains("timespan"));
}

#[test]
fn retain_keeps_what_correlations_need() {
    let s = set(FAILED_SUCCESS);
    let titles =
        |s: &RuleSet| -> Vec<String> { s.rules().iter().map(|m| m.title.clone()).collect() };
    // Feeders: the two detection rules (through the nested correlation too).
    let feeders: Vec<String> = s
        .rules()
        .iter()
        .zip(s.correlation_feeders())
        .filter(|(_, f)| *f)
        .map(|(m, _)| m.title.clone())
        .collect();
    assert_eq!(feeders, ["Single failed login", "Successful login"]);
    // Keeping the outer correlation keeps everything it references, and it still fires.
    let kept = s.retain(|m| m.title.starts_with("Correlation"));
    assert_eq!(kept.len(), 4);
    let mut evs: Vec<(i64, Value)> = (0..10).map(|i| (i * 10, login(4625, "alice"))).collect();
    evs.push((120, login(4624, "alice")));
    assert_eq!(run(&kept, &evs).len(), 2);
    // Keeping one detection rule: only it is evaluated, renumbered.
    let one = s.retain(|m| m.title == "Successful login");
    assert_eq!(titles(&one), ["Successful login"]);
    assert!(one.correlation_feeders().iter().all(|f| !f));
    let mut out: Vec<Match> = Vec::new();
    one.matches(&login(4624, "x"), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rule_index, 0);
    out.clear();
    one.matches(&login(4625, "x"), &mut out);
    assert!(out.is_empty());
}
