//! The matcher: exact values, parent domains, CIDRs, URLs, the field table.

use garrison_intel::*;
use serde_json::json;

fn ind(kind: IndicatorKind, value: &str, source: &str) -> Indicator {
    Indicator::new(IndicatorValue::parse(kind, value).expect("valid"), source)
}

fn set() -> IndicatorSet {
    IndicatorSet::build(vec![
        ind(IndicatorKind::Ip, "198.51.100.7", "a"),    // 0
        ind(IndicatorKind::Ip, "198.51.100.7", "b"),    // 1: same value, other source
        ind(IndicatorKind::Cidr, "10.0.0.0/8", "a"),    // 2
        ind(IndicatorKind::Cidr, "10.1.0.0/16", "a"),   // 3
        ind(IndicatorKind::Cidr, "2001:db8::/32", "a"), // 4
        ind(IndicatorKind::Domain, "evil.com", "a"),    // 5
        ind(IndicatorKind::Domain, "b.evil.com", "a"),  // 6
        ind(IndicatorKind::Url, "http://bad.example.org/x?y=1", "a"), // 7
        ind(
            IndicatorKind::Hash(HashAlgorithm::Sha256),
            &"ab".repeat(32),
            "a",
        ), // 8
        ind(IndicatorKind::Email, "ceo@phish.example.net", "a"), // 9
        ind(IndicatorKind::Ip, "2001:db8::1", "a"),     // 10
    ])
}

fn hits(set: &IndicatorSet, ty: FieldType, value: &str) -> Vec<usize> {
    let mut v = Vec::new();
    set.lookup(ty, value, |i| v.push(i));
    v.sort();
    v
}

#[test]
fn ips_match_exactly_and_by_every_covering_network() {
    let s = set();
    assert_eq!(hits(&s, FieldType::Ip, "198.51.100.7"), [0, 1]);
    assert_eq!(hits(&s, FieldType::Ip, "::ffff:198.51.100.7"), [0, 1]);
    assert_eq!(hits(&s, FieldType::Ip, "198.51.100.7:443"), [0, 1]);
    assert_eq!(hits(&s, FieldType::Ip, "198.51.100.8"), Vec::<usize>::new());
    assert_eq!(hits(&s, FieldType::Ip, "10.1.2.3"), [2, 3]);
    assert_eq!(hits(&s, FieldType::Ip, "10.2.2.3"), [2]);
    assert_eq!(hits(&s, FieldType::Ip, "11.0.0.0"), Vec::<usize>::new());
    assert_eq!(hits(&s, FieldType::Ip, "2001:db8::1"), [4, 10]);
    assert_eq!(hits(&s, FieldType::Ip, "[2001:db8::2]:80"), [4]);
    assert_eq!(hits(&s, FieldType::Ip, "not an ip"), Vec::<usize>::new());
}

#[test]
fn domains_match_themselves_and_their_subdomains_only() {
    let s = set();
    assert_eq!(hits(&s, FieldType::Domain, "evil.com"), [5]);
    assert_eq!(hits(&s, FieldType::Domain, "A.B.Evil.COM."), [5, 6]);
    assert_eq!(hits(&s, FieldType::Domain, "x.evil.com"), [5]);
    assert_eq!(
        hits(&s, FieldType::Domain, "notevil.com"),
        Vec::<usize>::new()
    );
    assert_eq!(
        hits(&s, FieldType::Domain, "evil.com.au"),
        Vec::<usize>::new()
    );
    assert_eq!(hits(&s, FieldType::Domain, "com"), Vec::<usize>::new());
}

#[test]
fn urls_match_exactly_after_canonicalisation_and_by_host() {
    let s = set();
    assert_eq!(
        hits(&s, FieldType::Url, "HTTP://Bad.Example.ORG:80/x?y=1#top"),
        [7]
    );
    assert_eq!(hits(&s, FieldType::Url, "bad.example.org/x?y=1"), [7]);
    assert_eq!(
        hits(&s, FieldType::Url, "http://bad.example.org/x?y=2"),
        Vec::<usize>::new()
    );
    // A URL's host is checked against domains and IPs.
    assert_eq!(
        hits(&s, FieldType::Url, "https://cdn.b.evil.com/a.js"),
        [5, 6]
    );
    assert_eq!(hits(&s, FieldType::Url, "http://10.1.1.1:8080/"), [2, 3]);
    assert_eq!(
        hits(&s, FieldType::Url, "/relative/path"),
        Vec::<usize>::new()
    );
}

#[test]
fn hashes_and_emails_match_case_insensitively() {
    let s = set();
    assert_eq!(hits(&s, FieldType::Hash, &"AB".repeat(32)), [8]);
    assert_eq!(
        hits(&s, FieldType::Hash, &"ab".repeat(20)),
        Vec::<usize>::new()
    );
    assert_eq!(hits(&s, FieldType::Email, "CEO@Phish.Example.NET"), [9]);
    assert_eq!(
        hits(&s, FieldType::Email, "Boss <ceo@phish.example.net>"),
        [9]
    );
    assert_eq!(
        hits(&s, FieldType::Email, "cfo@phish.example.net"),
        Vec::<usize>::new()
    );
}

#[test]
fn events_are_matched_by_the_field_table_flat_nested_and_in_arrays() {
    let s = set();
    let event = json!({
        "source.ip": "10.1.0.9",
        "destination": {"ip": "198.51.100.7", "port": 443},
        "related.ip": ["192.0.2.1", "2001:db8::1"],
        "dns.question.name": "www.evil.com",
        "message": "198.51.100.7 evil.com",
        "user.email": "ceo@phish.example.net",
        "file": {"hash": {"sha256": "ab".repeat(32)}},
    });
    let mut out = Vec::new();
    s.match_json(event.as_object().expect("object"), &mut out);
    let mut got: Vec<(String, usize)> =
        out.iter().map(|m| (m.field.to_string(), m.index)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("destination.ip".to_string(), 0),
            ("destination.ip".to_string(), 1),
            ("dns.question.name".to_string(), 5),
            ("file.hash.sha256".to_string(), 8),
            ("related.ip".to_string(), 4),
            ("related.ip".to_string(), 10),
            ("source.ip".to_string(), 2),
            ("source.ip".to_string(), 3),
            ("user.email".to_string(), 9),
        ]
    );
    assert!(out.iter().all(|m| m.indicator == &s.indicators()[m.index]));

    // The table is overridable: check `message` as a domain, stop checking `source.ip`.
    let mut table = FieldTable::ecs();
    table.set("message", FieldType::Domain).remove("source.ip");
    let custom = IndicatorSet::build_with(s.indicators().to_vec(), table);
    let mut out = Vec::new();
    custom.match_fields(
        [("source.ip", "10.1.0.9"), ("message", "evil.com")],
        &mut out,
    );
    assert_eq!(out.iter().map(|m| m.index).collect::<Vec<_>>(), [5]);
}
