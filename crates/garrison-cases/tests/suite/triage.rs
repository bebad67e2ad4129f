use garrison_cases::*;
use serde_json::json;

use super::at;

fn alert(rule: &str, t: i64, fields: serde_json::Value) -> AlertInput {
    AlertInput {
        alert_id: format!("a-{rule}-{t}"),
        rule_id: rule.into(),
        level: Level::High,
        time: at(t),
        count: 1,
        fields,
    }
}

fn by_host(window: u64) -> GroupingRule {
    GroupingRule {
        name: "host".into(),
        keys: vec![EntityKey::Host],
        window_secs: window,
        rule_ids: vec![],
    }
}

#[test]
fn alerts_of_one_host_in_one_window_share_a_group() {
    let rule = by_host(3600);
    // at(0) is 22:13:20; the hour window runs 22:00..23:00.
    let a = group_key(&alert("r1", 0, json!({"host": {"name": "WS1"}})), &rule).expect("key");
    let b = group_key(&alert("r2", 600, json!({"Computer": "ws1"})), &rule).expect("key");
    assert_eq!(a, b, "same host, case-insensitive, any host field");
    assert_eq!(a.key, "host=ws1");
    let later = group_key(&alert("r1", 3000, json!({"host.name": "ws1"})), &rule).expect("key");
    assert_ne!(a, later, "next window");
    assert!(
        group_key(&alert("r1", 0, json!({"user": "bob"})), &rule).is_none(),
        "no host: no group"
    );
    let only_r1 = GroupingRule {
        rule_ids: vec!["r1".into()],
        ..rule.clone()
    };
    assert!(group_key(&alert("r2", 0, json!({"host": "ws1"})), &only_r1).is_none());
}

#[test]
fn composite_keys_join_every_entity() {
    let rule = GroupingRule {
        name: "who-where".into(),
        keys: vec![
            EntityKey::User,
            EntityKey::Rule,
            EntityKey::Field("src.ip".into()),
            EntityKey::Indicator,
        ],
        window_secs: 60,
        rule_ids: vec![],
    };
    let key = group_key(
        &alert("brute", 0, json!({"TargetUserName": "Bob", "src": {"ip": "10.1.1.1"}, "hash": "D41D8CD98F00B204E9800998ECF8427E"})),
        &rule,
    )
    .expect("key");
    assert_eq!(
        key.key,
        "user=bob|rule=brute|src.ip=10.1.1.1|indicator=ip:10.1.1.1"
    );
    assert!(by_host(0).validate().is_err());
    let errors = GroupingRule {
        name: "".into(),
        keys: vec![EntityKey::Field(" ".into())],
        window_secs: 0,
        rule_ids: vec![],
    }
    .validate()
    .expect_err("invalid");
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["name", "keys[0]", "window_secs"]);
}

fn suppression(rule: Option<&str>, fields: &[(&str, &str)], expires: Option<i64>) -> Suppression {
    Suppression {
        id: "s1".into(),
        rule_id: rule.map(String::from),
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        reason: "backup job".into(),
        author: "ana".into(),
        created: at(0),
        expires: expires.map(at),
    }
}

#[test]
fn suppressions_match_their_scope_until_they_expire() {
    let s = suppression(Some("r1"), &[("process.name", "*\\Backup*.EXE")], Some(100));
    assert_eq!(s.validate(), Ok(()));
    let hit = alert(
        "r1",
        0,
        json!({"process.name": "C:\\Tools\\backupAgent.exe"}),
    );
    assert!(s.is_suppressed(&hit, at(50)));
    assert!(!s.is_suppressed(&hit, at(100)), "expired at its expiry");
    assert!(
        !s.is_suppressed(
            &alert("r2", 0, json!({"process.name": "C:\\backup.exe"})),
            at(50)
        ),
        "other rule"
    );
    assert!(
        !s.is_suppressed(
            &alert("r1", 0, json!({"process.name": "C:\\cmd.exe"})),
            at(50)
        ),
        "other value"
    );
    assert!(
        !s.is_suppressed(&alert("r1", 0, json!({})), at(50)),
        "missing field"
    );
    let list = [suppression(Some("zzz"), &[], None), s.clone()];
    assert_eq!(
        Suppression::first_match(&list, &hit, at(1)).map(|s| s.rule_id.as_deref()),
        Some(Some("r1"))
    );
}

#[test]
fn suppressions_must_be_accountable() {
    assert_eq!(
        suppression(None, &[], None).validate(),
        Err(SuppressionError::NoScope)
    );
    assert!(
        !suppression(None, &[], None).is_suppressed(&alert("r1", 0, json!({})), at(0)),
        "no scope covers nothing"
    );
    let mut s = suppression(Some("r1"), &[], None);
    s.reason = " ".into();
    assert_eq!(s.validate(), Err(SuppressionError::NoReason));
    let mut s = suppression(Some("r1"), &[], None);
    s.author.clear();
    assert_eq!(s.validate(), Err(SuppressionError::NoAuthor));
    assert!(matches!(
        suppression(Some("r1"), &[], Some(0)).validate(),
        Err(SuppressionError::ExpiresBeforeCreated { .. })
    ));
    assert_eq!(
        suppression(None, &[("host", "")], None).validate(),
        Err(SuppressionError::EmptyMatcher("host".into()))
    );
}

#[test]
fn the_score_shows_its_parts_and_orders_the_queue() {
    let a = alert("r1", 0, json!({}));
    let bad = [IndicatorVerdict {
        indicator: "1.2.3.4".into(),
        verdict: Verdict::Malicious,
        source: "feed".into(),
    }];
    let high = score(
        &a,
        Some(Criticality::High),
        &bad,
        Level::High,
        Confidence::High,
    );
    let names: Vec<&str> = high.parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["level", "asset", "intel", "repetition", "confidence"]
    );
    assert_eq!(high.total, 45 + 15 + 25);
    assert_eq!(
        high.parts[2].detail,
        "1.2.3.4 is malicious according to feed"
    );
    let low = score(&a, None, &[], Level::Low, Confidence::Low);
    assert_eq!(low.total, 9, "15 × 0.6");
    assert!(high.total > low.total);
    let capped = score(
        &AlertInput {
            count: 1000,
            ..a.clone()
        },
        Some(Criticality::Critical),
        &bad,
        Level::Critical,
        Confidence::High,
    );
    assert_eq!(capped.total, 100);
    assert_eq!(capped.parts.last().map(|p| p.name.as_str()), Some("cap"));
    for s in [&high, &low, &capped] {
        assert_eq!(
            s.parts.iter().map(|p| p.points).sum::<i32>(),
            s.total as i32
        );
    }
    let benign = [IndicatorVerdict {
        indicator: "x".into(),
        verdict: Verdict::Benign,
        source: "allowlist".into(),
    }];
    assert!(
        score(&a, None, &benign, Level::High, Confidence::High).total
            < score(&a, None, &[], Level::High, Confidence::High).total
    );
}

#[test]
fn observables_are_typed_and_deduplicated() {
    let fields = json!({
        "Computer": "WS1.corp.local",
        "TargetUserName": "Bob",
        "SubjectUserName": "-",
        "Hashes": "SHA1=A94A8FE5CCB19BA61C4C0873D391E987982FBBD3,MD5=D41D8CD98F00B204E9800998ECF8427E,IMPHASH=00",
        "src": {"ip": "10.1.1.1"},
        "dst_ip": "::1",
        "dns": {"question": {"name": "evil.example.com"}},
        "Image": "C:\\Windows\\System32\\cmd.exe",
        "url": "https://user@bad.example.org:8443/payload?x=1",
        "ips": ["10.1.1.1", "192.0.2.7"],
        "mail": "Alice@Example.COM",
    });
    let got: Vec<(ObservableKind, String)> = extract_observables(&fields)
        .into_iter()
        .map(|o| (o.kind, o.value))
        .collect();
    let expected = vec![
        (ObservableKind::Ip, "10.1.1.1".to_string()),
        (ObservableKind::Ip, "192.0.2.7".into()),
        (ObservableKind::Domain, "bad.example.org".into()),
        (ObservableKind::Domain, "evil.example.com".into()),
        (
            ObservableKind::Url,
            "https://user@bad.example.org:8443/payload?x=1".into(),
        ),
        (ObservableKind::Email, "alice@example.com".into()),
        (
            ObservableKind::Md5,
            "d41d8cd98f00b204e9800998ecf8427e".into(),
        ),
        (
            ObservableKind::Sha1,
            "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3".into(),
        ),
        (ObservableKind::User, "Bob".into()),
        (ObservableKind::Host, "ws1.corp.local".into()),
    ];
    assert_eq!(got, expected);
    let src = extract_observables(&fields)
        .into_iter()
        .find(|o| o.value == "10.1.1.1")
        .expect("ip");
    assert_eq!(src.field, "src.ip", "the first field it was found in");
    assert_eq!(
        ObservableKind::parse("sha256"),
        Some(ObservableKind::Sha256)
    );
}

fn profile(
    id: &str,
    obs: &[&str],
    rule: &str,
    host: &str,
    classification: Option<Classification>,
) -> IncidentProfile {
    IncidentProfile {
        incident_id: id.into(),
        title: id.into(),
        observables: obs
            .iter()
            .map(|o| (ObservableKind::Ip, o.to_string()))
            .collect(),
        rule_ids: [rule.to_string()].into(),
        hosts: [host.to_string()].into(),
        classification,
        closed: classification.map(|_| at(10)),
    }
}

#[test]
fn similarity_weighs_observables_rules_and_hosts() {
    let a = profile("a", &["1", "2", "3"], "r1", "h1", None);
    let same = similarity(&a, &a);
    assert!((same.score - 1.0).abs() < 1e-9, "{same:?}");
    let b = profile(
        "b",
        &["2", "3", "4"],
        "r1",
        "h9",
        Some(Classification::FalsePositive),
    );
    let s = similarity(&a, &b);
    assert!((s.jaccard - 0.5).abs() < 1e-9);
    assert!((s.score - (0.6 * 0.5 + 0.25)).abs() < 1e-9, "{s:?}");
    assert_eq!(s.shared_observables.len(), 2);
    assert!(
        (similarity(&b, &a).score - s.score).abs() < 1e-12,
        "symmetric"
    );
    let none = profile("c", &["9"], "r2", "h2", Some(Classification::Benign));
    assert_eq!(similarity(&a, &none).score, 0.0);
    let host_only = profile("d", &[], "r3", "h1", Some(Classification::TruePositive));
    let found = similar_incidents(&a, &[none, b.clone(), a.clone(), host_only], 0.1, 10);
    let ids: Vec<&str> = found.iter().map(|f| f.incident_id.as_str()).collect();
    assert_eq!(ids, ["b", "d"], "best first, self and zero scores left out");
    assert_eq!(found[0].classification, Some(Classification::FalsePositive));
    assert_eq!(similar_incidents(&a, &[b], 0.9, 10).len(), 0);
}
