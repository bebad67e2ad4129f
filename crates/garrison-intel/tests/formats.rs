//! Each feed format with real-shaped samples: what is kept, what is refused and where.

use garrison_intel::*;
use jiff::Timestamp;

fn opts() -> ImportOptions {
    ImportOptions::new("test-feed", "2026-01-01T00:00:00Z".parse().expect("now"))
}

fn texts(out: &ParseOutput) -> Vec<String> {
    out.indicators
        .iter()
        .map(|i| format!("{}:{}", i.kind(), i.value))
        .collect()
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

#[test]
fn csv_with_a_header_keeps_good_rows_and_names_bad_ones() {
    let csv = "\
# exported 2026-01-01
type,value,confidence,expires,tags,description,extra
ip,198.51.100.7,90,2026-03-01T00:00:00Z,c2;cobalt-strike,beacon,x
domain,Evil.EXAMPLE.com.,70,,phishing,,
ip,300.1.1.1,90,,,,
sha256,E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855,,,,,
url,hxxp://bad[.]example[.]org/dl/a.exe,55,2026-02-01,,,
md5,abc,50,,,,
email,\"Mallory <MALLORY@Evil.Example.com>\",101,,,,
cidr,203.0.113.77/24,80,,,,
domain,ok.example.net,80,next tuesday,,,
";
    let out = parse_csv(csv.as_bytes(), &opts());
    assert_eq!(
        texts(&out),
        [
            "ip:198.51.100.7",
            "domain:evil.example.com",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "url:http://bad.example.org/dl/a.exe",
            "cidr:203.0.113.0/24",
        ]
    );
    let first = &out.indicators[0];
    assert_eq!(first.confidence, 90);
    assert_eq!(first.expires, Some(ts("2026-03-01T00:00:00Z")));
    assert_eq!(first.tags, ["c2", "cobalt-strike"]);
    assert_eq!(first.description.as_deref(), Some("beacon"));
    assert_eq!(first.source, "test-feed");
    assert_eq!(out.indicators[2].confidence, DEFAULT_CONFIDENCE);
    assert_eq!(out.indicators[3].expires, Some(ts("2026-02-01T00:00:00Z")));
    let errors: Vec<String> = out.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors[0].starts_with("line 5, column \"value\""),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("300.1.1.1"));
    assert!(
        errors[1].starts_with("line 8, column \"value\""),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].starts_with("line 9, column \"confidence\""),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].starts_with("line 11, column \"expires\""),
        "{}",
        errors[3]
    );
}

#[test]
fn csv_without_a_type_column_infers_kinds() {
    let csv = "indicator,comment\n\
               10.0.0.1,ip\n\
               2001:DB8::1,v6\n\
               192.0.2.0/24,net\n\
               d41d8cd98f00b204e9800998ecf8427e,md5\n\
               https://x.example.com/a#frag,url\n\
               evil.example.com/path,url without scheme\n\
               ops@evil.example.com,mail\n\
               *.wild.example.org,domain\n\
               not a value!,bad\n";
    let out = parse_csv(csv.as_bytes(), &opts());
    assert_eq!(
        texts(&out),
        [
            "ip:10.0.0.1",
            "ip:2001:db8::1",
            "cidr:192.0.2.0/24",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "url:https://x.example.com/a",
            "url:http://evil.example.com/path",
            "email:ops@evil.example.com",
            "domain:wild.example.org",
        ]
    );
    assert_eq!(out.errors.len(), 1);
    assert_eq!(
        out.errors[0].location,
        Location::Line {
            line: 10,
            column: Some("value".into())
        }
    );
}

#[test]
fn csv_without_a_header_is_a_list_of_values() {
    let out = parse_csv(
        b"1.2.3.4\r\nevil.example.com\r\n\r\n#c\r\nbad..name\r\n",
        &opts(),
    );
    assert_eq!(texts(&out), ["ip:1.2.3.4", "domain:evil.example.com"]);
    assert_eq!(out.errors.len(), 1);
    assert!(
        out.errors[0].to_string().starts_with("line 5"),
        "{}",
        out.errors[0]
    );
}

#[test]
fn csv_rows_with_invalid_utf8_or_a_per_row_source() {
    let mut csv = b"value,source\n1.1.1.1,abuse.ch\n".to_vec();
    csv.extend_from_slice(b"\xff\xfe,x\n2.2.2.2,\n");
    let out = parse_csv(&csv, &opts());
    assert_eq!(texts(&out), ["ip:1.1.1.1", "ip:2.2.2.2"]);
    assert_eq!(out.indicators[0].source, "abuse.ch");
    assert_eq!(out.indicators[1].source, "test-feed");
    assert_eq!(out.errors.len(), 1);
    assert!(out.errors[0].reason.contains("UTF-8"));
}

const STIX_BUNDLE: &str = r#"{
  "type": "bundle",
  "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
  "objects": [
    {"type": "identity", "spec_version": "2.1", "id": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff", "name": "ACME CERT", "identity_class": "organization"},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
     "created": "2025-12-01T10:00:00.000Z", "modified": "2025-12-01T10:00:00.000Z",
     "name": "C2 address", "indicator_types": ["malicious-activity"],
     "pattern": "[ipv4-addr:value = '198.51.100.1'] OR [ipv4-addr:value = '198.51.100.2']",
     "pattern_type": "stix", "pattern_version": "2.1",
     "valid_from": "2025-12-01T10:00:00Z", "valid_until": "2026-06-01T00:00:00Z",
     "confidence": 80, "labels": ["apt-x"]},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--a1",
     "pattern": "[domain-name:value = 'Evil.Example.COM' OR url:value = 'http://evil.example.com/a\\'b']",
     "pattern_type": "stix", "valid_from": "2025-12-01T10:00:00Z", "description": "phishing kit"},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--a2",
     "pattern": "[file:hashes.'SHA-256' = 'AEB2D2E5C8E2C4B0A8F4B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F708' AND file:hashes.MD5 = '79054025255fb1a26e4bc422aef54eb4']",
     "pattern_type": "stix", "valid_from": "2025-12-01T10:00:00Z"},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--a3",
     "pattern": "[email-addr:value IN ('a@evil.example.com', 'B@Evil.Example.com')] OR [ipv4-addr:value ISSUBSET '203.0.113.0/24']",
     "pattern_type": "stix", "valid_from": "2025-12-01T10:00:00Z"},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--a4",
     "pattern": "[ipv4-addr:value = '10.9.9.9' AND network-traffic:dst_port = 443]",
     "pattern_type": "stix", "valid_from": "2025-12-01T10:00:00Z"},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--a5",
     "pattern": "[ipv4-addr:value = '10.9.9.9'] FOLLOWEDBY [domain-name:value = 'x.example.com'] WITHIN 60 SECONDS",
     "pattern_type": "stix", "valid_from": "2025-12-01T10:00:00Z"},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--a6",
     "pattern": "alert tcp any any -> any 80", "pattern_type": "snort", "valid_from": "2025-12-01T10:00:00Z"},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--bad1",
     "pattern": "[ipv4-addr:value = '1.2.3.4'", "pattern_type": "stix", "valid_from": "2025-12-01T10:00:00Z"},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--bad2",
     "pattern": "[ipv4-addr:value = '1.2.3.999']", "pattern_type": "stix", "valid_from": "2025-12-01T10:00:00Z"},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--bad3",
     "pattern": "[ipv4-addr:value = '1.2.3.4']", "pattern_type": "stix", "valid_from": "2025-12-01T10:00:00Z", "confidence": 300},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--rev", "revoked": true,
     "pattern": "[ipv4-addr:value = '1.2.3.4']", "pattern_type": "stix", "valid_from": "2025-12-01T10:00:00Z"},
    {"type": "ipv6-addr", "spec_version": "2.1", "id": "ipv6-addr--1", "value": "2001:0DB8::0001"},
    {"type": "domain-name", "spec_version": "2.1", "id": "domain-name--1", "value": "sco.example.net"},
    {"type": "file", "spec_version": "2.1", "id": "file--1", "hashes": {"SHA-1": "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709", "SSDEEP": "3:abc"}},
    {"type": "relationship", "spec_version": "2.1", "id": "relationship--1", "relationship_type": "indicates", "source_ref": "indicator--a1", "target_ref": "malware--1"},
    "not an object"
  ]
}"#;

#[test]
fn stix_bundles_give_one_indicator_per_sufficient_comparison() {
    let out = parse_stix(STIX_BUNDLE.as_bytes(), &opts());
    assert_eq!(
        texts(&out),
        [
            "ip:198.51.100.1",
            "ip:198.51.100.2",
            "domain:evil.example.com",
            "url:http://evil.example.com/a'b",
            "sha256:aeb2d2e5c8e2c4b0a8f4b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708",
            "md5:79054025255fb1a26e4bc422aef54eb4",
            "email:a@evil.example.com",
            "email:b@evil.example.com",
            "cidr:203.0.113.0/24",
            "ip:2001:db8::1",
            "domain:sco.example.net",
            "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ]
    );
    let c2 = &out.indicators[0];
    assert_eq!(c2.confidence, 80);
    assert_eq!(c2.first_seen, Some(ts("2025-12-01T10:00:00Z")));
    assert_eq!(c2.expires, Some(ts("2026-06-01T00:00:00Z")));
    assert_eq!(c2.tags, ["apt-x", "malicious-activity"]);
    assert_eq!(c2.description.as_deref(), Some("C2 address"));
    assert_eq!(
        out.indicators[2].description.as_deref(),
        Some("phishing kit")
    );

    let errors: Vec<String> = out.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors[0].starts_with("/objects/8/pattern (indicator--bad1): pattern: expected ']'"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("/objects/9/pattern (indicator--bad2)"),
        "{}",
        errors[1]
    );
    assert!(errors[1].contains("1.2.3.999"));
    assert!(
        errors[2].starts_with("/objects/10/confidence (indicator--bad3)"),
        "{}",
        errors[2]
    );
    assert!(errors[3].starts_with("/objects/16"), "{}", errors[3]);

    let skipped: Vec<String> = out.skipped.iter().map(ToString::to_string).collect();
    assert!(
        skipped
            .iter()
            .any(|s| s.contains("indicator--a4") && s.contains("AND")),
        "{skipped:#?}"
    );
    assert!(
        skipped
            .iter()
            .any(|s| s.contains("indicator--a5") && s.contains("FOLLOWEDBY")),
        "{skipped:#?}"
    );
    assert!(
        skipped
            .iter()
            .any(|s| s.contains("indicator--a6") && s.contains("snort")),
        "{skipped:#?}"
    );
    assert!(
        skipped.iter().any(|s| s.contains("indicator--rev")),
        "{skipped:#?}"
    );
    assert!(skipped.iter().any(|s| s.contains("SSDEEP")), "{skipped:#?}");
}

#[test]
fn stix_single_objects_and_broken_json() {
    let one = r#"{"type": "indicator", "id": "indicator--x", "pattern": "[url:value = 'HTTPS://Evil.Example.com:443/x/../y']", "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z"}"#;
    let out = parse_stix(one.as_bytes(), &opts());
    assert_eq!(texts(&out), ["url:https://evil.example.com/y"]);
    let broken = parse_stix(b"{\"type\": \"bundle\",\n \"objects\": [", &opts());
    assert!(broken.indicators.is_empty());
    assert!(
        matches!(broken.errors[0].location, Location::Text { line: 2, .. }),
        "{:?}",
        broken.errors
    );
}

const MISP_EVENT: &str = r#"{
  "Event": {
    "uuid": "5f1c4b2a-1b2c-4d5e-8f90-0a1b2c3d4e5f",
    "info": "Emotet epoch 5 distribution",
    "date": "2025-11-30",
    "threat_level_id": "1",
    "timestamp": "1764460800",
    "Tag": [{"name": "tlp:amber"}, {"name": "misp-galaxy:malpedia=\"Emotet\""}],
    "Attribute": [
      {"uuid": "a-1", "type": "ip-dst", "category": "Network activity", "value": "198.51.100.23", "to_ids": true, "comment": "C2", "timestamp": "1764460800"},
      {"uuid": "a-2", "type": "ip-dst|port", "value": "198.51.100.24|8080", "to_ids": true, "timestamp": "1764460800"},
      {"uuid": "a-3", "type": "domain|ip", "value": "emotet.example.com|192.0.2.55", "to_ids": true, "timestamp": "1764460800"},
      {"uuid": "a-4", "type": "url", "value": "http://emotet.example.com/wp-content/x.php", "to_ids": "1", "timestamp": 1764460800},
      {"uuid": "a-5", "type": "filename|sha256", "value": "invoice.doc|0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A69788796A5B4C3D2E1F0", "to_ids": true, "timestamp": "1764460800", "Tag": [{"name": "maldoc"}]},
      {"uuid": "a-6", "type": "email-src", "value": "Billing@Invoices.Example.net", "to_ids": true, "timestamp": "1764460800"},
      {"uuid": "a-7", "type": "text", "value": "some note", "to_ids": false, "timestamp": "1764460800"},
      {"uuid": "a-8", "type": "ip-src", "value": "10.0.0.1", "to_ids": false, "timestamp": "1764460800"},
      {"uuid": "a-9", "type": "md5", "value": "nothex", "to_ids": true, "timestamp": "1764460800"},
      {"uuid": "a-10", "type": "hostname", "value": "cdn.emotet.example.com", "to_ids": true, "timestamp": "yesterday"},
      {"uuid": "a-11", "type": "vulnerability", "value": "CVE-2017-11882", "to_ids": true, "timestamp": "1764460800"}
    ],
    "Object": [
      {"uuid": "o-1", "name": "file", "meta-category": "file", "Attribute": [
        {"uuid": "o-1-a", "type": "filename", "object_relation": "filename", "value": "x.exe", "to_ids": false},
        {"uuid": "o-1-b", "type": "sha1", "object_relation": "sha1", "value": "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709", "to_ids": true, "timestamp": "1764460800"},
        {"uuid": "o-1-c", "type": "ip-src", "object_relation": "ip", "value": "not-an-ip", "to_ids": true}
      ]}
    ]
  }
}"#;

#[test]
fn misp_events_take_ids_attributes_of_event_and_objects() {
    let out = parse_misp(MISP_EVENT.as_bytes(), &opts());
    assert_eq!(
        texts(&out),
        [
            "ip:198.51.100.23",
            "ip:198.51.100.24",
            "domain:emotet.example.com",
            "ip:192.0.2.55",
            "url:http://emotet.example.com/wp-content/x.php",
            "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "email:billing@invoices.example.net",
            "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ]
    );
    let first = &out.indicators[0];
    assert_eq!(first.description.as_deref(), Some("C2"));
    assert_eq!(
        first.first_seen,
        Some(Timestamp::from_second(1_764_460_800).expect("t"))
    );
    assert_eq!(first.tags, ["tlp:amber", "misp-galaxy:malpedia=\"Emotet\""]);
    assert_eq!(
        out.indicators[1].description.as_deref(),
        Some("Emotet epoch 5 distribution")
    );
    assert!(out.indicators[5].tags.contains(&"maldoc".to_string()));
    let errors: Vec<String> = out.errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].starts_with("/Event/Attribute/8/value (a-9)"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("/Event/Attribute/9/timestamp (a-10)"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].starts_with("/Event/Object/0/Attribute/2/value (o-1-c)"),
        "{}",
        errors[2]
    );
    assert_eq!(out.skipped.len(), 4, "{:#?}", out.skipped);

    let mut all = opts();
    all.misp_include_non_ids = true;
    let with_context = parse_misp(MISP_EVENT.as_bytes(), &all);
    assert!(texts(&with_context).contains(&"ip:10.0.0.1".to_string()));
}

#[test]
fn misp_lists_responses_manifests_and_garbage() {
    let list = format!("[{MISP_EVENT}, {{\"nope\": 1}}]");
    let out = parse_misp(list.as_bytes(), &opts());
    assert_eq!(out.indicators.len(), 8);
    assert!(
        out.errors
            .iter()
            .any(|e| e.to_string().starts_with("/1: no \"Event\"")),
        "{:?}",
        out.errors
    );
    let response = format!("{{\"response\": [{MISP_EVENT}]}}");
    assert_eq!(parse_misp(response.as_bytes(), &opts()).indicators.len(), 8);
    let manifest = r#"{"5f1c4b2a-1b2c-4d5e-8f90-0a1b2c3d4e5f": {"info": "x", "Orgc": {}, "Tag": [], "timestamp": "1"}}"#;
    let out = parse_misp(manifest.as_bytes(), &opts());
    assert!(
        out.errors[0].reason.contains("manifest"),
        "{:?}",
        out.errors
    );
    let out = parse_misp(b"\"just a string\"", &opts());
    assert_eq!(out.errors.len(), 1);
}

#[test]
fn default_ttl_sets_expiry_from_first_seen() {
    let mut o = opts();
    o.default_ttl = Some(jiff::SignedDuration::from_hours(24));
    let out = parse_csv(b"value,first_seen\n1.2.3.4,2025-12-31\n5.6.7.8,\n", &o);
    assert_eq!(out.indicators[0].expires, Some(ts("2026-01-01T00:00:00Z")));
    assert_eq!(out.indicators[1].expires, Some(ts("2026-01-02T00:00:00Z")));
}

#[test]
fn indicators_serialise_flat_and_are_revalidated_on_the_way_back() {
    let out = parse_csv(b"value\nEvil.Example.com\n", &opts());
    let json = serde_json::to_value(&out.indicators[0]).expect("serialise");
    assert_eq!(json["kind"], "domain");
    assert_eq!(json["value"], "evil.example.com");
    let back: Indicator = serde_json::from_value(json).expect("deserialise");
    assert_eq!(back, out.indicators[0]);
    let bad = serde_json::json!({"kind": "ip", "value": "nope", "source": "x", "confidence": 1});
    assert!(serde_json::from_value::<Indicator>(bad).is_err());
}
