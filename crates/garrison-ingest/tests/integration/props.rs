//! Properties of every decoder: no panics on arbitrary input, round trips, resynchronisation.

use garrison_ingest::hec::{self, RawParams};
use garrison_ingest::normalize::{normalize, FieldMapping, Normalizer};
use garrison_ingest::syslog::{self, Framer};
use garrison_ingest::{cef, decode_json, leef, time, Limits, Timestamp};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn small_limits() -> Limits {
    Limits {
        max_body_bytes: 1 << 16,
        max_line_bytes: 512,
        max_fields: 16,
        max_depth: 4,
    }
}

/// Bytes that look a bit like JSON / syslog so the fuzzing reaches past the first byte.
fn jsonish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(b":".to_vec()),
        Just(b",".to_vec()),
        Just(b"\n".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\"event\"".to_vec()),
        Just(b"\"time\"".to_vec()),
        Just(b"1700000000.5".to_vec()),
        Just(b"null".to_vec()),
        Just(b"<13>".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..4),
    ];
    proptest::collection::vec(token, 0..64).prop_map(|v| v.concat())
}

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        jsonish_bytes()
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e15f64..1e15).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map("[a-zA-Z@_.]{1,10}", json_value(), 0..6)
        .prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decode_json_never_panics(body in arb_bytes()) {
        if let Ok(d) = decode_json(&body, &small_limits()) {
            prop_assert_eq!(d.total, d.records.len() + d.errors.len() + d.errors_omitted);
            for (i, e) in d.errors.iter().enumerate() {
                prop_assert!(e.index < d.total);
                prop_assert!(i == 0 || d.errors[i - 1].index < e.index);
            }
        }
    }

    #[test]
    fn hec_never_panics(body in arb_bytes(), time in proptest::option::of(".{0,20}")) {
        if let Ok(d) = hec::decode_events(&body, &small_limits()) {
            prop_assert_eq!(d.total, d.records.len() + d.errors.len() + d.errors_omitted);
        }
        let params = RawParams { host: Some("h".into()), time, ..RawParams::default() };
        if let Ok(d) = hec::decode_raw(&body, &params, &small_limits()) {
            prop_assert_eq!(d.total, d.records.len() + d.errors.len() + d.errors_omitted);
            for r in &d.records {
                prop_assert!(r.raw.is_some());
            }
        }
    }

    #[test]
    fn syslog_never_panics_and_keeps_the_line(frame in arb_bytes(), secs in 0i64..4_000_000_000) {
        let received = Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH);
        match syslog::parse(&frame, received, &small_limits()) {
            Ok(r) => {
                let text = String::from_utf8_lossy(&frame);
                let line = text.trim_end_matches(['\n', '\r', '\0']);
                prop_assert_eq!(r.raw.as_deref(), Some(line));
                prop_assert!(r.fields.get("message").is_some_and(Value::is_string));
            }
            Err(syslog::SyslogError::Empty) => {
                prop_assert!(String::from_utf8_lossy(&frame).trim_matches(['\n', '\r', '\0', ' ', '\t']).trim().is_empty());
            }
            Err(syslog::SyslogError::TooLong { len, limit }) => prop_assert!(len > limit),
        }
    }

    #[test]
    fn cef_leef_time_never_panic(s in ".{0,200}", b in arb_bytes()) {
        let lossy = String::from_utf8_lossy(&b);
        for msg in [s.as_str(), &lossy, &format!("CEF:0|{s}"), &format!("LEEF:2.0|{s}")] {
            let _ = cef::parse(msg);
            let _ = leef::parse(msg);
            let _ = time::parse_str(msg);
            let _ = time::parse_bsd_prefix(msg.as_bytes(), Timestamp::UNIX_EPOCH);
        }
    }

    #[test]
    fn framer_never_panics_and_stays_bounded(stream in arb_bytes(), cuts in proptest::collection::vec(0usize..600, 0..8)) {
        let mut framer = Framer::new(32);
        let mut cuts = cuts;
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts {
            let cut = cut.min(stream.len()).max(start);
            framer.push(&stream[start..cut]);
            start = cut;
            while let Some(frame) = framer.next_frame() {
                if let Ok(f) = frame {
                    prop_assert!(f.len() <= 32);
                }
            }
        }
        if let Some(f) = framer.finish() {
            prop_assert!(f.len() <= 32);
        }
    }

    /// Any split of a stream of frames (octet-counted or LF / CRLF / NUL terminated, mixed)
    /// reassembles into the same frames.
    #[test]
    fn framer_reassembles_any_split(
        frames in proptest::collection::vec(
            (0u8..4, "[ -~]{0,40}", "[ -~\n\r\t]{0,40}"), 1..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (kind, plain, any_text) in &frames {
            let frame = match kind {
                0 => {
                    let f = format!("<13>{any_text}");
                    stream.extend_from_slice(format!("{} ", f.len()).as_bytes());
                    stream.extend_from_slice(f.as_bytes());
                    f
                }
                1 => { let f = format!("<14>{plain}"); stream.extend_from_slice(f.as_bytes()); stream.push(b'\n'); f }
                2 => { let f = format!("<15>{plain}"); stream.extend_from_slice(f.as_bytes()); stream.extend_from_slice(b"\r\n"); f }
                _ => { let f = format!("<16>{plain}"); stream.extend_from_slice(f.as_bytes()); stream.push(0); f }
            };
            want.push(frame.into_bytes());
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        let mut framer = Framer::new(64);
        let mut got = Vec::new();
        let mut start = 0;
        for p in points {
            framer.push(&stream[start..p]);
            start = p;
            while let Some(f) = framer.next_frame() {
                got.push(f.map_err(|e| e.to_string()));
            }
        }
        if let Some(f) = framer.finish() {
            got.push(Ok(f));
        }
        let want: Vec<Result<Vec<u8>, String>> = want.into_iter().map(Ok).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn cef_escape_round_trip(
        header in proptest::collection::vec("[^\\x00-\\x1f]{0,12}", 5),
        ext in proptest::collection::btree_map("[a-zA-Z][a-zA-Z0-9]{0,7}", "[a-z =\\\\|\n\r\té]{0,10}[a-z=\\\\|é]", 0..6),
    ) {
        let mut msg = String::from("CEF:0");
        for h in &header {
            msg.push('|');
            msg.push_str(&cef::escape_header(h));
        }
        msg.push_str("|7|");
        let parts: Vec<String> = ext.iter().map(|(k, v)| format!("{k}={}", cef::escape_value(v))).collect();
        msg.push_str(&parts.join(" "));
        let m = cef::parse(&msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let keys = ["device_vendor", "device_product", "device_version", "signature_id", "name"];
        for (k, h) in keys.iter().zip(&header) {
            prop_assert_eq!(m.get(*k).and_then(Value::as_str), Some(h.as_str()), "{}", msg);
        }
        prop_assert_eq!(m.get("severity").and_then(Value::as_str), Some("7"));
        let want: Map<String, Value> = ext.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        prop_assert_eq!(m.get("extensions"), Some(&Value::Object(want)), "{}", msg);
    }

    #[test]
    fn leef_round_trip(
        header in proptest::collection::vec("[^\\x00-\\x1f]{0,12}", 3),
        attrs in proptest::collection::btree_map("[a-zA-Z][a-zA-Z0-9]{0,7}", "[a-z =|\\\\\té]{0,12}", 0..6),
        v2 in any::<bool>(),
    ) {
        let (version, delim, sep) = if v2 { ("2.0", "^|", "^") } else { ("1.0", "", "\t") };
        let attrs: std::collections::BTreeMap<String, String> = if v2 {
            attrs
        } else {
            attrs.into_iter().map(|(k, v)| (k, v.replace(['\t', '='], "_"))).collect()
        };
        let mut msg = format!("LEEF:{version}");
        for h in &header {
            msg.push('|');
            msg.push_str(&leef::escape_header(h));
        }
        msg.push_str("|EV|");
        msg.push_str(delim);
        let parts: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        msg.push_str(&parts.join(sep));
        let m = leef::parse(&msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (k, h) in ["device_vendor", "device_product", "device_version"].iter().zip(&header) {
            prop_assert_eq!(m.get(*k).and_then(Value::as_str), Some(h.as_str()), "{}", msg);
        }
        prop_assert_eq!(m.get("event_id").and_then(Value::as_str), Some("EV"));
        let want: Map<String, Value> = attrs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        prop_assert_eq!(m.get("attributes"), Some(&Value::Object(want)), "{}", msg);
    }

    #[test]
    fn json_objects_round_trip(objs in proptest::collection::vec(json_object(), 1..8), layout in 0u8..4) {
        let body = match layout {
            0 => objs.iter().map(|o| serde_json::to_string(o).unwrap_or_default()).collect::<Vec<_>>().join("\n"),
            1 => serde_json::to_string_pretty(&objs).unwrap_or_default(),
            2 => objs.iter().map(|o| serde_json::to_string_pretty(o).unwrap_or_default()).collect::<String>(),
            _ => objs.iter().map(|o| serde_json::to_string(o).unwrap_or_default() + "\r\n\r\n").collect::<String>(),
        };
        let limits = Limits { max_fields: 10_000, max_depth: 64, ..Limits::default() };
        let d = decode_json(body.as_bytes(), &limits).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(d.errors.is_empty(), "{:?}\n{}", d.errors, body);
        let got: Vec<Map<String, Value>> = d.records.into_iter().map(|r| r.fields).collect();
        prop_assert_eq!(got, objs);
    }

    /// Garbage lines (non-JSON text, truncated JSON) between NDJSON records never lose or
    /// invent a good record.
    #[test]
    fn good_records_survive_garbage_lines(
        lines in proptest::collection::vec((any::<bool>(), json_object(), "[^\n]{0,30}", any::<prop::sample::Index>()), 1..16),
    ) {
        let mut body = String::new();
        let mut want = Vec::new();
        let mut garbage = 0;
        for (good, obj, text, cut) in &lines {
            let json = serde_json::to_string(obj).unwrap_or_default();
            if *good {
                body.push_str(&json);
                want.push(obj.clone());
            } else if text.len() % 2 == 0 {
                body.push('#');
                body.push_str(text);
                garbage += 1;
            } else {
                // Truncated record: a strict prefix, cut at a char boundary.
                let mut at = cut.index(json.len());
                while !json.is_char_boundary(at) {
                    at -= 1;
                }
                body.push_str(&json[..at]);
                if at > 0 {
                    garbage += 1;
                }
            }
            body.push('\n');
        }
        let limits = Limits { max_fields: 10_000, max_depth: 64, ..Limits::default() };
        match decode_json(body.as_bytes(), &limits) {
            Ok(d) => {
                let got: Vec<Map<String, Value>> = d.records.into_iter().map(|r| r.fields).collect();
                prop_assert_eq!(&got, &want, "{}", body);
                prop_assert!(d.errors.len() <= garbage);
                prop_assert_eq!(garbage > 0, !d.errors.is_empty(), "{}", body);
            }
            Err(e) => prop_assert!(want.is_empty() && garbage == 0, "{e}"),
        }
    }

    #[test]
    fn timestamps_round_trip(secs in 0i64..253_402_300_799, nanos in 0i32..1_000_000_000) {
        let t = Timestamp::new(secs, nanos).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(time::parse_str(&t.to_string()), Some(t));
        let offset = t.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(-5))).to_string();
        // "2024-01-02T03:04:05-05:00[-05:00]": drop the bracketed zone name.
        let offset = offset.split('[').next().unwrap_or_default();
        prop_assert_eq!(time::parse_str(offset), Some(t));
        if (1..100_000_000_000).contains(&secs) {
            prop_assert_eq!(time::parse_value(&Value::from(secs)), Timestamp::from_second(secs).ok());
            let millis = secs * 1000 + i64::from(nanos / 1_000_000);
            if millis >= 100_000_000_000 {
                prop_assert_eq!(time::parse_value(&Value::from(millis)), Timestamp::from_millisecond(millis).ok());
            }
        }
    }

    #[test]
    fn normalizer_equals_normalize(rec in json_object(), extra in proptest::collection::vec(("[a-zA-Z.]{1,12}", "[a-z.]{1,10}"), 0..6)) {
        let mut m = FieldMapping::builtin();
        m.extend(FieldMapping::from_pairs(extra));
        prop_assert_eq!(Normalizer::new(&m).normalize(&rec), normalize(&rec, &m));
    }
}

/// Decodes `body` in the parts `split_top_level` cuts it into, and merges the results as the
/// server does (record indexes offset by the records before each part).
type Records = Vec<Map<String, Value>>;
type ErrorPlaces = Vec<(usize, Option<usize>)>;

fn decode_in_parts(body: &[u8], parts: usize) -> (Records, ErrorPlaces) {
    let cuts = garrison_ingest::split_top_level(body, parts);
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut seen = 0;
    for (i, (start, first_line)) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).map_or(body.len(), |c| c.0);
        let part = &body[*start..end];
        if let Ok(d) = garrison_ingest::decode_json_from_line(part, &Limits::default(), *first_line)
        {
            records.extend(d.records.into_iter().map(|r| r.fields));
            errors.extend(d.errors.into_iter().map(|e| (e.index + seen, e.line)));
            seen += d.total;
        }
    }
    (records, errors)
}

fn mixed_body() -> impl Strategy<Value = String> {
    let record = prop_oneof![
        4 => json_object().prop_map(|o| Value::Object(o).to_string()),
        1 => json_object().prop_map(|o| serde_json::to_string_pretty(&Value::Object(o)).unwrap_or_default()),
        1 => Just("not json at all".to_string()),
        1 => Just("{\"broken\": [1, 2}".to_string()),
        1 => Just("{\"open\": 1".to_string()),
    ];
    proptest::collection::vec(record, 1..30).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decoding_in_parts_equals_decoding_whole(body in mixed_body(), parts in 1usize..6) {
        let whole = decode_json(body.as_bytes(), &Limits::default());
        let Ok(whole) = whole else { return Ok(()) };
        let whole_records: Vec<Map<String, Value>> = whole.records.into_iter().map(|r| r.fields).collect();
        let whole_errors: Vec<(usize, Option<usize>)> = whole.errors.iter().map(|e| (e.index, e.line)).collect();
        let (records, errors) = decode_in_parts(body.as_bytes(), parts);
        prop_assert_eq!(records, whole_records, "{}", body);
        prop_assert_eq!(errors, whole_errors, "{}", body);
    }
}

#[test]
fn cuts_fall_between_top_level_values_only() {
    let body = b"{\"a\":1}\n{\"b\":{\n  \"c\":2\n}\n}\n{\"d\":3}\n";
    assert_eq!(garrison_ingest::split_top_level(body, 1), vec![(0, 1)]);
    let cuts = garrison_ingest::split_top_level(body, 3);
    assert_eq!(cuts[0], (0, 1));
    assert!(cuts.len() >= 2, "{cuts:?}");
    for (start, line) in &cuts[1..] {
        assert_eq!(body[*start], b'{');
        assert_eq!(body[start - 1], b'\n');
        // The line number is that of the cut in the whole body.
        assert_eq!(
            *line,
            body[..*start].iter().filter(|b| **b == b'\n').count() + 1
        );
    }
    // Never inside the pretty-printed object that spans lines 2 to 5.
    assert!(
        cuts.iter()
            .all(|(start, _)| *start == 0 || *start == 8 || *start == 27),
        "{cuts:?}"
    );
    // One array is never cut.
    assert_eq!(
        garrison_ingest::split_top_level(b" [{\"a\":1},\n{\"b\":2}]", 4),
        vec![(0, 1)]
    );
}
