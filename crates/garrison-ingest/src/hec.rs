//! Splunk HTTP Event Collector: `/services/collector/event` envelopes and
//! `/services/collector/raw` lines.

use crate::json::{self, Bounds, Item};
use crate::{time, BodyError, Limits, Record};
use jiff::Timestamp;
use serde_json::{Map, Value};

/// One rejected event, with Splunk's code and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HecError {
    /// Splunk HEC status code: 6 invalid data format, 12 event field required, 13 event field
    /// blank, 15 error in handling indexed fields.
    pub code: u32,
    pub text: &'static str,
    /// 0-based index of the event in the body (Splunk's `invalid-event-number`).
    pub event_index: usize,
    /// What exactly was wrong, for logs (not part of Splunk's answer).
    pub detail: String,
}

pub const INVALID_DATA_FORMAT: (u32, &str) = (6, "Invalid data format");
pub const EVENT_FIELD_REQUIRED: (u32, &str) = (12, "Event field is required");
pub const EVENT_FIELD_BLANK: (u32, &str) = (13, "Event field cannot be blank");
pub const INDEXED_FIELDS_ERROR: (u32, &str) = (15, "Error in handling indexed fields");

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HecDecoded {
    pub records: Vec<Record>,
    pub errors: Vec<HecError>,
    /// Events seen, including rejected ones.
    pub total: usize,
    /// Rejected events beyond the first [`crate::MAX_REPORTED_ERRORS`], counted only.
    pub errors_omitted: usize,
}

impl HecDecoded {
    fn reject(&mut self, (code, text): (u32, &'static str), detail: String) {
        if self.errors.len() < crate::MAX_REPORTED_ERRORS {
            self.errors.push(HecError {
                code,
                text,
                event_index: self.total,
                detail,
            });
        } else {
            self.errors_omitted += 1;
        }
        self.total += 1;
    }
}

/// Envelope keys copied into the record when the event does not have them.
const META_KEYS: [&str; 4] = ["host", "source", "sourcetype", "index"];

/// Where the envelope's metadata (`host`, `source`, `sourcetype`, `index` and the indexed
/// `fields`) is kept whole in a stored event.
pub const HEC_META_KEY: &str = "hec";

/// Splunk's code for a request channel that is not a GUID.
pub const INVALID_CHANNEL: (u32, &str) = (11, "Invalid data channel");

/// True when `channel` is a GUID (`8-4-4-4-12` hex digits), as Splunk requires of a request
/// channel.
pub fn is_valid_channel(channel: &str) -> bool {
    let groups: Vec<&str> = channel.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Decodes `/services/collector/event` bodies: one or many concatenated JSON envelopes
/// `{"event": .., "time": .., "host", "source", "sourcetype", "index", "fields": {..}}`.
///
/// A rejected envelope does not lose the others; after a JSON syntax error decoding resumes at
/// the next line that starts with `{`. The envelope may be one nesting level and a few keys
/// bigger than [`Limits`] allow for a record. An empty body is [`BodyError::Empty`] (Splunk's
/// code 5, "No data").
pub fn decode_events(body: &[u8], limits: &Limits) -> Result<HecDecoded, BodyError> {
    if body.len() > limits.max_body_bytes {
        return Err(BodyError::TooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let bounds = Bounds {
        max_bytes: limits.max_line_bytes,
        max_depth: limits.max_depth.saturating_add(1),
        max_fields: limits.max_fields.saturating_add(META_KEYS.len() + 3),
    };
    let mut out = HecDecoded::default();
    let seen_any = json::for_each_value(body, &bounds, false, 1, |item| match item {
        Item::Error { reason, .. } => out.reject(INVALID_DATA_FORMAT, reason),
        Item::Value { value, text } => match envelope(value, text) {
            Ok(record) => {
                out.records.push(record);
                out.total += 1;
            }
            Err((code, detail)) => out.reject(code, detail),
        },
    });
    if !seen_any {
        return Err(BodyError::Empty);
    }
    Ok(out)
}

type Reject = ((u32, &'static str), String);

fn envelope(value: Value, text: &[u8]) -> Result<Record, Reject> {
    let Value::Object(mut env) = value else {
        return Err((
            INVALID_DATA_FORMAT,
            "an event envelope must be a JSON object".to_owned(),
        ));
    };
    let event = match env.remove("event") {
        None => {
            return Err((
                EVENT_FIELD_REQUIRED,
                "the envelope has no \"event\" key".to_owned(),
            ))
        }
        Some(Value::Null) => {
            return Err((EVENT_FIELD_BLANK, "\"event\" is null".to_owned()));
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err((EVENT_FIELD_BLANK, "\"event\" is an empty string".to_owned()));
        }
        Some(event) => event,
    };
    let indexed = match env.remove("fields") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err((
                INDEXED_FIELDS_ERROR,
                "\"fields\" must be a JSON object".to_owned(),
            ))
        }
    };
    // Splunk's indexed fields are flat: a value is a string, number, boolean or an array of
    // those; a nested object is refused (code 15), as Splunk does.
    for (key, value) in &indexed {
        let flat = |v: &Value| !matches!(v, Value::Object(_) | Value::Array(_));
        let ok = match value {
            Value::Object(_) => false,
            Value::Array(items) => items.iter().all(flat),
            _ => true,
        };
        if !ok {
            return Err((
                INDEXED_FIELDS_ERROR,
                format!("indexed field {key:?} is nested; values must be flat (or arrays of flat values)"),
            ));
        }
    }
    // A `time` that is present must be readable: Splunk refuses the event (code 6) rather
    // than index it at the wrong time.
    let envelope_time = match env.get("time") {
        None | Some(Value::Null) => None,
        Some(value) => match time::parse_value(value) {
            Some(t) => Some(t),
            None => {
                return Err((
                    INVALID_DATA_FORMAT,
                    format!("\"time\" {value} is not epoch seconds or a timestamp"),
                ))
            }
        },
    };
    let own_keys: Option<Vec<String>> = match &event {
        Value::Object(m) => Some(m.keys().cloned().collect()),
        _ => None,
    };
    let mut fields = match event {
        Value::Object(m) => m,
        other => {
            let mut m = Map::new();
            m.insert("message".to_owned(), other);
            m
        }
    };
    // The envelope's metadata is kept whole under `hec` (apart from the event's own fields, so
    // an event with its own `host` loses neither), and also fills the top-level names the
    // event does not use itself, where searches and mappings look first.
    let mut meta = Map::new();
    for key in META_KEYS {
        if let Some(v) = env.remove(key) {
            if v.is_null() {
                continue;
            }
            if !fields.contains_key(key) {
                fields.insert(key.to_owned(), v.clone());
            }
            meta.insert(key.to_owned(), v);
        }
    }
    if !indexed.is_empty() {
        for (k, v) in &indexed {
            if !fields.contains_key(k) {
                fields.insert(k.clone(), v.clone());
            }
        }
        meta.insert("fields".to_owned(), Value::Object(indexed));
    }
    if !meta.is_empty() {
        match fields.get_mut(HEC_META_KEY) {
            // The event has a `hec` key of its own: it stays, the envelope goes beside it.
            Some(_) => {
                fields.insert(format!("{HEC_META_KEY}_envelope"), Value::Object(meta));
            }
            None => {
                fields.insert(HEC_META_KEY.to_owned(), Value::Object(meta));
            }
        }
    }
    let exact = match &own_keys {
        Some(own) if has_long_number(text) => exact_event_text(text, &fields, own),
        _ => None,
    };
    let mut record = Record::from_fields(fields);
    record.source_json = exact;
    if envelope_time.is_some() {
        record.time = envelope_time;
    }
    Ok(record)
}

/// A run of 16 or more digits: a number a 64-bit float may not hold exactly.
fn has_long_number(text: &[u8]) -> bool {
    let mut run = 0;
    for byte in text {
        run = if byte.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 16 {
            return true;
        }
    }
    false
}

/// The stored form of an object event whose numbers a parsed value would round: the event's
/// own text as sent, with the keys the envelope added spliced in front. `None` when the
/// envelope cannot be read that way (the parsed value is then stored, as for every event).
fn exact_event_text(text: &[u8], fields: &Map<String, Value>, own: &[String]) -> Option<String> {
    let envelope: std::collections::HashMap<String, &serde_json::value::RawValue> =
        serde_json::from_slice(text).ok()?;
    let event = envelope.get("event")?.get().trim();
    let inner = event.strip_prefix('{')?;
    let added: Map<String, Value> = fields
        .iter()
        .filter(|(key, _)| !own.iter().any(|k| k == *key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if added.is_empty() {
        return Some(event.to_owned());
    }
    let added = serde_json::to_string(&added).ok()?;
    let added = added.strip_suffix('}')?;
    let separator = if inner.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    Some(format!("{added}{separator}{inner}"))
}

/// Query-string parameters of `/services/collector/raw`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawParams {
    pub host: Option<String>,
    pub source: Option<String>,
    pub sourcetype: Option<String>,
    pub index: Option<String>,
    /// Epoch seconds (with fraction) or any format [`time::parse_str`] reads.
    pub time: Option<String>,
}

/// Decodes `/services/collector/raw`: one event per line (LF or CRLF; blank lines skipped).
/// Fields are `{"message": line}` plus host/source/sourcetype/index from the query; time comes
/// from the query, else a timestamp at the start of the line (syslog or ISO), else None.
/// Year-less syslog times are resolved against the current clock; use [`decode_raw_at`] to
/// pass the receive time instead.
pub fn decode_raw(
    body: &[u8],
    params: &RawParams,
    limits: &Limits,
) -> Result<HecDecoded, BodyError> {
    decode_raw_at(body, params, limits, Timestamp::now())
}

/// [`decode_raw`] with an explicit receive time (for year-less syslog timestamps).
pub fn decode_raw_at(
    body: &[u8],
    params: &RawParams,
    limits: &Limits,
    received: Timestamp,
) -> Result<HecDecoded, BodyError> {
    if body.len() > limits.max_body_bytes {
        return Err(BodyError::TooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let param_time = params.time.as_deref().and_then(time::parse_str);
    let meta = [
        ("host", &params.host),
        ("source", &params.source),
        ("sourcetype", &params.sourcetype),
        ("index", &params.index),
    ];
    let mut out = HecDecoded::default();
    let mut seen_any = false;
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        seen_any = true;
        if line.len() > limits.max_line_bytes {
            out.reject(
                INVALID_DATA_FORMAT,
                format!(
                    "line of {} bytes exceeds the limit of {} bytes",
                    line.len(),
                    limits.max_line_bytes
                ),
            );
            continue;
        }
        let text = String::from_utf8_lossy(line).into_owned();
        let mut fields = Map::new();
        fields.insert("message".to_owned(), Value::String(text.clone()));
        for (key, value) in meta {
            if let Some(v) = value {
                fields.insert(key.to_owned(), Value::String(v.clone()));
            }
        }
        let time = param_time.or_else(|| line_time(text.as_bytes(), received));
        out.records.push(Record {
            fields,
            time,
            raw: Some(text),
            source_json: None,
            unparsed: None,
        });
        out.total += 1;
    }
    if !seen_any {
        return Err(BodyError::Empty);
    }
    Ok(out)
}

/// A timestamp at the start of a raw line, after an optional syslog `<PRI>` and RFC 5424
/// version.
fn line_time(line: &[u8], received: Timestamp) -> Option<Timestamp> {
    let mut b = line;
    if b.first() == Some(&b'<') {
        if let Some(close) = b.iter().take(5).position(|&c| c == b'>') {
            b = b.get(close + 1..)?;
            // RFC 5424 "1 " version.
            if let [d, b' ', rest @ ..] = b {
                if d.is_ascii_digit() {
                    b = rest;
                }
            }
        }
    }
    time::parse_text_prefix(b, received).map(|(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid test timestamp")
    }

    #[test]
    fn splunk_doc_envelopes_concatenated() {
        // As in Splunk's "Format events for HTTP Event Collector": batched, no separator.
        let body = br#"{"event": "Pony 1 has left the barn"}{"event": "Pony 2 has left the barn"}{"event": "Pony 3 has left the barn", "nested": {"key1": "value1"}}"#;
        let out = decode_events(body, &Limits::default()).expect("decodes");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.total, 3);
        assert_eq!(out.records[1].fields["message"], "Pony 2 has left the barn");
    }

    #[test]
    fn metadata_time_and_indexed_fields() {
        let body = br#"{"time": 1426279439, "host": "localhost", "source": "random-data-generator", "sourcetype": "my_sample_data", "index": "main", "event": {"message": "Something happened", "severity": "INFO", "host": "app-7"}, "fields": {"region": "eu", "severity": "ignored"}}
{"time": "1426279439.500", "event": "Hello world!"}
"#;
        let out = decode_events(body, &Limits::default()).expect("decodes");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let first = &out.records[0];
        assert_eq!(first.time, Some(ts("2015-03-13T20:43:59Z")));
        assert_eq!(
            serde_json::Value::Object(first.fields.clone()),
            json!({"message": "Something happened", "severity": "INFO", "host": "app-7",
                   "source": "random-data-generator", "sourcetype": "my_sample_data",
                   "index": "main", "region": "eu",
                   "hec": {"host": "localhost", "source": "random-data-generator",
                           "sourcetype": "my_sample_data", "index": "main",
                           "fields": {"region": "eu", "severity": "ignored"}}})
        );
        assert_eq!(out.records[1].time, Some(ts("2015-03-13T20:43:59.5Z")));
        assert_eq!(out.records[1].fields["message"], "Hello world!");
    }

    #[test]
    fn unreadable_time_and_nested_indexed_fields_are_refused_alone() {
        let body = br#"{"time": "yesterday-ish", "event": "a"}
{"event": "b", "fields": {"user": {"name": "x"}}}
{"event": "c", "fields": {"tags": ["x", 1, true]}, "time": null}
{"event": "d", "fields": {"bad": [["nested"]]}}
"#;
        let out = decode_events(body, &Limits::default()).expect("decodes");
        assert_eq!(out.records.len(), 1, "{:?}", out.errors);
        assert_eq!(out.records[0].fields["message"], "c");
        let codes: Vec<(u32, usize)> = out.errors.iter().map(|e| (e.code, e.event_index)).collect();
        assert_eq!(codes, vec![(6, 0), (15, 1), (15, 3)]);
        assert!(
            out.errors[0].detail.contains("yesterday-ish"),
            "{}",
            out.errors[0].detail
        );
    }

    #[test]
    fn an_event_of_its_own_hec_key_keeps_it() {
        let body = br#"{"host": "h1", "event": {"hec": "mine"}}"#;
        let out = decode_events(body, &Limits::default()).expect("decodes");
        let fields = &out.records[0].fields;
        assert_eq!(fields["hec"], "mine");
        assert_eq!(fields["hec_envelope"], json!({"host": "h1"}));
    }

    #[test]
    fn an_object_event_with_long_numbers_is_stored_as_sent() {
        let big = br#"{"host": "h1", "time": 1426279439, "event": {"n": 123456789012345678901234567890, "m": -1.50}}"#;
        let decoded = decode_events(big, &Limits::default()).expect("decoded");
        let record = &decoded.records[0];
        let text = record.source_json.clone().expect("exact text kept");
        assert!(text.contains("123456789012345678901234567890"), "{text}");
        assert!(text.contains("-1.50"), "{text}");
        let reparsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            reparsed.as_object().map(|m| m.len()),
            Some(record.fields.len())
        );
        assert_eq!(reparsed["host"], "h1");
        assert_eq!(reparsed["hec"], json!({"host": "h1"}));
        let empty = br#"{"host": "h1", "event": { }, "x": 12345678901234567890}"#;
        let decoded = decode_events(empty, &Limits::default()).expect("decoded");
        let text = decoded.records[0].source_json.clone().expect("kept");
        let reparsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(reparsed["host"], "h1");
        // Without long numbers nothing extra is done.
        let plain = br#"{"event": {"n": 1}}"#;
        let decoded = decode_events(plain, &Limits::default()).expect("decoded");
        assert_eq!(decoded.records[0].source_json, None);
    }

    #[test]
    fn channels_must_be_guids() {
        assert!(is_valid_channel("0aeeac95-ac74-4aa9-b30d-6c4c0ac581ba"));
        assert!(is_valid_channel("0AEEAC95-AC74-4AA9-B30D-6C4C0AC581BA"));
        for bad in [
            "",
            "abc",
            "0aeeac95ac744aa9b30d6c4c0ac581ba",
            "0aeeac95-ac74-4aa9-b30d-6c4c0ac581bz",
            "0aeeac95-ac74-4aa9-b30d-6c4c0ac581ba-",
        ] {
            assert!(!is_valid_channel(bad), "{bad}");
        }
    }

    #[test]
    fn time_falls_back_to_event_payload() {
        let body = br#"{"event": {"@timestamp": "2024-05-01T10:00:00Z", "id": "abc"}}"#;
        let out = decode_events(body, &Limits::default()).expect("decodes");
        assert_eq!(out.records[0].time, Some(ts("2024-05-01T10:00:00Z")));
    }

    #[test]
    fn hec_error_codes_keep_good_events() {
        let body = br#"{"event": "ok 0"}
{"host": "h"}
{"event": ""}
{"event": null}
{"event": "ok 4", "fields": [1]}
["not an envelope"]
{"event": "ok 6"}
"#;
        let out = decode_events(body, &Limits::default()).expect("decodes");
        let codes: Vec<(u32, usize)> = out.errors.iter().map(|e| (e.code, e.event_index)).collect();
        assert_eq!(codes, vec![(12, 1), (13, 2), (13, 3), (15, 4), (6, 5)]);
        assert_eq!(out.errors[0].text, "Event field is required");
        assert_eq!(out.errors[1].text, "Event field cannot be blank");
        assert_eq!(out.errors[4].text, "Invalid data format");
        assert_eq!(out.total, 7);
        let msgs: Vec<&Value> = out.records.iter().map(|r| &r.fields["message"]).collect();
        assert_eq!(msgs, vec!["ok 0", "ok 6"]);
    }

    #[test]
    fn syntax_error_resyncs_at_next_line() {
        let body = b"{\"event\": \"a\"}\n{\"event\": \"b\", oops}\n{\"event\": \"c\"\n{\"event\": \"d\"}\n";
        let out = decode_events(body, &Limits::default()).expect("decodes");
        let msgs: Vec<&Value> = out.records.iter().map(|r| &r.fields["message"]).collect();
        assert_eq!(msgs, vec!["a", "d"]);
        let idx: Vec<(u32, usize)> = out.errors.iter().map(|e| (e.code, e.event_index)).collect();
        assert_eq!(idx, vec![(6, 1), (6, 2)]);
        assert!(
            out.errors[0].detail.contains("line 2"),
            "{}",
            out.errors[0].detail
        );
    }

    #[test]
    fn empty_body() {
        assert_eq!(
            decode_events(b" \n ", &Limits::default()),
            Err(BodyError::Empty)
        );
        assert_eq!(
            decode_raw(b"\r\n\n", &RawParams::default(), &Limits::default()),
            Err(BodyError::Empty)
        );
    }

    #[test]
    fn raw_lines_with_params_and_line_times() {
        let received = ts("2024-03-10T12:00:00Z");
        let params = RawParams {
            host: Some("web-1".into()),
            sourcetype: Some("access".into()),
            ..RawParams::default()
        };
        let body = b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed\r\n\n2024-03-10T11:59:00.5Z started\nno time here\n<165>1 2003-10-11T22:14:15.003Z host app - - - x\n";
        let out = decode_raw_at(body, &params, &Limits::default(), received).expect("decodes");
        assert!(out.errors.is_empty());
        assert_eq!(out.total, 4);
        let r = &out.records[0];
        assert_eq!(
            r.fields["message"],
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed"
        );
        assert_eq!(
            r.raw.as_deref(),
            Some("<34>Oct 11 22:14:15 mymachine su: 'su root' failed")
        );
        assert_eq!(r.fields["host"], "web-1");
        assert_eq!(r.fields["sourcetype"], "access");
        assert!(r.fields.get("source").is_none());
        assert_eq!(r.time, Some(ts("2023-10-11T22:14:15Z")));
        assert_eq!(out.records[1].time, Some(ts("2024-03-10T11:59:00.5Z")));
        assert_eq!(out.records[2].time, None);
        assert_eq!(out.records[3].time, Some(ts("2003-10-11T22:14:15.003Z")));

        let params = RawParams {
            time: Some("1700000000".into()),
            ..RawParams::default()
        };
        let out = decode_raw_at(
            b"2024-03-10T11:59:00Z x",
            &params,
            &Limits::default(),
            received,
        )
        .expect("decodes");
        assert_eq!(out.records[0].time, Some(ts("2023-11-14T22:13:20Z")));
    }

    #[test]
    fn raw_line_limit() {
        let limits = Limits {
            max_line_bytes: 10,
            ..Limits::default()
        };
        let out = decode_raw(
            b"short\nthis line is too long\nok",
            &RawParams::default(),
            &limits,
        )
        .expect("decodes");
        assert_eq!(out.records.len(), 2);
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].event_index, 1);
        assert!(
            out.errors[0].detail.contains("limit of 10"),
            "{}",
            out.errors[0].detail
        );
    }

    #[test]
    fn envelope_limits() {
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        let body = br#"{"event": {"a": {"b": 1}}}
{"event": {"a": {"b": {"c": 1}}}}"#;
        let out = decode_events(body, &limits).expect("decodes");
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.errors.len(), 1);
        assert!(
            out.errors[0].detail.contains("nesting depth 4"),
            "{}",
            out.errors[0].detail
        );
    }
}
