//! Decoders for everything Garrison ingests: JSON / NDJSON batches, Splunk HEC envelopes and raw
//! lines, syslog (RFC 5424, RFC 3164 and common variants, with TCP framing), CEF and LEEF, plus
//! timestamp detection and the ECS-style field normalization.
//!
//! Every entry point takes untrusted bytes: nothing here panics on input, recursion is bounded
//! by [`Limits::max_depth`] before a value is handed to `serde_json`, and memory is bounded by
//! [`Limits::max_body_bytes`] / [`Limits::max_line_bytes`]. Per-record problems are reported
//! beside the good records instead of failing the whole request.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;
use std::io::Read;

pub mod cef;
pub mod hec;
mod json;
pub mod leef;
pub mod normalize;
pub mod syslog;
pub mod time;

pub use jiff::Timestamp;

/// Size limits applied to every request. All are enforced before the expensive work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Whole body after decompression.
    pub max_body_bytes: usize,
    /// One NDJSON line / JSON array element / syslog frame / HEC envelope.
    pub max_line_bytes: usize,
    /// Object keys in one record, counted over all nesting levels.
    pub max_fields: usize,
    /// Nesting of objects and arrays in one record (a flat object has depth 1).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024 * 1024,
            max_line_bytes: 1024 * 1024,
            max_fields: 1000,
            max_depth: 32,
        }
    }
}

/// One decoded record, before tenant/source are applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// What the sender sent. Non-object JSON values are wrapped as `{"message": v}`.
    pub fields: Map<String, Value>,
    /// The event's own time, parsed from the payload ([`time::find_in_record`] for JSON).
    pub time: Option<Timestamp>,
    /// The original text for line-based inputs (syslog line, HEC raw line).
    pub raw: Option<String>,
    /// The JSON object exactly as it was sent, when the record is one (JSON ingest). Equal in
    /// meaning to `fields`; lets the store keep the sender's bytes without re-rendering.
    pub source_json: Option<String>,
    /// Why the decoder did not understand the record, when it did not (it is kept as text,
    /// flagged and counted rather than stored as if parsed).
    pub unparsed: Option<String>,
}

impl Record {
    /// Builds a record from a parsed JSON value: wraps non-objects, finds time and sender id.
    pub fn from_value(value: Value) -> Record {
        let fields = match value {
            Value::Object(map) => map,
            other => {
                let mut map = Map::new();
                map.insert("message".to_owned(), other);
                map
            }
        };
        Record::from_fields(fields)
    }

    /// Builds a record from a field map, finding its time in it. No field is taken as the
    /// sender's id unless the source names one (a Windows `event_id` is an event *code*:
    /// guessing made every 4624 after the first a duplicate).
    pub fn from_fields(fields: Map<String, Value>) -> Record {
        let time = time::find_in_record(&fields);
        Record {
            fields,
            time,
            raw: None,
            source_json: None,
            unparsed: None,
        }
    }
}

/// The value of the field at `path` (dotted into nested objects; a key that itself holds
/// dots is found too) as an id: a non-empty string or a number.
pub fn id_at(fields: &Map<String, Value>, path: &str) -> Option<String> {
    let value = fields.get(path).or_else(|| {
        let mut parts = path.split('.');
        let mut current = fields.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    })?;
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A record of a batch that could not be decoded. The other records are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// 0-based index of the record in the batch (good and bad records are counted).
    pub index: usize,
    /// 1-based line where the record starts, for NDJSON / raw inputs.
    pub line: Option<usize>,
    /// What is wrong and where, e.g. `line 3: expected `,` or `}` at column 17`.
    pub reason: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {}: {}", self.index, self.reason)
    }
}

/// The outcome of decoding one batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    pub records: Vec<Record>,
    pub errors: Vec<RecordError>,
    /// Records seen, including the bad ones.
    pub total: usize,
    /// Bad records beyond the first [`MAX_REPORTED_ERRORS`], counted but not described (a body
    /// of junk lines must not cost more memory as errors than it did as text).
    pub errors_omitted: usize,
}

/// At most this many [`RecordError`]s / HEC errors are kept per batch.
pub const MAX_REPORTED_ERRORS: usize = 1000;

/// Whole-request failures. Per-record problems are [`RecordError`]s instead.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    #[error("body exceeds the limit of {limit} bytes (after decompression)")]
    TooLarge { limit: usize },
    #[error("invalid gzip body: {0}")]
    Gzip(String),
    #[error("invalid deflate body: {0}")]
    Deflate(String),
    #[error("unsupported Content-Encoding {0:?}: use gzip, deflate or identity")]
    UnsupportedEncoding(String),
    #[error("body is empty")]
    Empty,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
    Deflate,
}

/// Undoes the body's content encoding: gzip when the header says so or the body starts with the
/// gzip magic bytes `1f 8b`, deflate (zlib or raw) when the header says so.
///
/// The decompressed size is bounded by `limits.max_body_bytes`: reading stops at limit + 1
/// bytes, so a zip bomb costs at most that much memory.
pub fn decompress_body<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<Cow<'a, [u8]>, BodyError> {
    let mut coding = Coding::Identity;
    for part in content_encoding.unwrap_or("").split(',') {
        let part = part.trim();
        let next = if part.is_empty() || part.eq_ignore_ascii_case("identity") {
            continue;
        } else if part.eq_ignore_ascii_case("gzip") || part.eq_ignore_ascii_case("x-gzip") {
            Coding::Gzip
        } else if part.eq_ignore_ascii_case("deflate") {
            Coding::Deflate
        } else {
            return Err(BodyError::UnsupportedEncoding(part.to_owned()));
        };
        // Stacked codings ("gzip, gzip") are legal HTTP but no log shipper sends them.
        if coding != Coding::Identity {
            return Err(BodyError::UnsupportedEncoding(
                content_encoding.unwrap_or("").to_owned(),
            ));
        }
        coding = next;
    }
    if coding == Coding::Identity && body.starts_with(&[0x1f, 0x8b]) {
        // Some shippers compress without saying so.
        coding = Coding::Gzip;
    }
    let limit = limits.max_body_bytes;
    let out = match coding {
        Coding::Identity => {
            if body.is_empty() {
                return Err(BodyError::Empty);
            }
            if body.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            return Ok(Cow::Borrowed(body));
        }
        Coding::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(body), body.len(), limit)
            .map_err(|e| e.into_body_error(BodyError::Gzip))?,
        Coding::Deflate => {
            // HTTP "deflate" is zlib-wrapped, but many clients send raw deflate.
            let zlib = body.first().is_some_and(|b| b & 0x0f == 8)
                && body.len() >= 2
                && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0;
            if zlib {
                read_bounded(flate2::read::ZlibDecoder::new(body), body.len(), limit)
            } else {
                read_bounded(flate2::read::DeflateDecoder::new(body), body.len(), limit)
            }
            .map_err(|e| e.into_body_error(BodyError::Deflate))?
        }
    };
    if out.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(Cow::Owned(out))
}

enum ReadError {
    TooLarge(usize),
    Io(std::io::Error),
}

impl ReadError {
    fn into_body_error(self, io: fn(String) -> BodyError) -> BodyError {
        match self {
            ReadError::TooLarge(limit) => BodyError::TooLarge { limit },
            ReadError::Io(e) => io(e.to_string()),
        }
    }
}

fn read_bounded(
    reader: impl Read,
    compressed_len: usize,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    // Size the buffer from the compressed length, never from the (attacker-chosen) gzip trailer.
    let mut out = Vec::with_capacity(compressed_len.saturating_mul(4).min(limit).min(8 << 20));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(ReadError::Io)?;
    if out.len() > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(out)
}

/// Cuts a body of concatenated JSON values (NDJSON, or values one after another) into at most
/// `parts` pieces that can be decoded independently and in parallel: `(start offset, first
/// line)` of each piece, the first at `(0, 1)`.
///
/// A cut is made only at a newline whose previous non-blank byte is `}` and whose next is `{`.
/// In valid JSON that happens only between two top-level values (inside an object or array a
/// `,` or a closing bracket must come first, and strings hold no raw newline), so a cut never
/// splits a valid record. A body that starts with `[` (one array) is never cut.
pub fn split_top_level(body: &[u8], parts: usize) -> Vec<(usize, usize)> {
    let mut cuts = vec![(0usize, 1usize)];
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    if parts <= 1 || first.is_none_or(|i| body.get(i) == Some(&b'[')) {
        return cuts;
    }
    let (mut counted_to, mut line) = (0usize, 1usize);
    for k in 1..parts {
        let target = body.len() * k / parts;
        let Some(from) = cuts.last().map(|c| c.0.max(target)) else {
            break;
        };
        let mut found = None;
        for newline in memchr::memchr_iter(b'\n', body.get(from..).unwrap_or_default()) {
            let at = from + newline;
            let before = body[..at].iter().rposition(|b| !b.is_ascii_whitespace());
            let after = body[at + 1..].iter().position(|b| !b.is_ascii_whitespace());
            if before.is_some_and(|i| body[i] == b'}')
                && after.is_some_and(|i| body[at + 1 + i] == b'{')
            {
                found = Some(at + 1);
                break;
            }
            // Only look a little way: a body with no cut point near the target stays whole.
            if newline > 1 << 20 {
                break;
            }
        }
        let Some(start) = found else { break };
        line += memchr::memchr_iter(b'\n', &body[counted_to..start]).count();
        counted_to = start;
        cuts.push((start, line));
    }
    cuts
}

/// Decodes a JSON body: one value, a JSON array of objects, NDJSON (blank lines skipped) or
/// concatenated values with or without whitespace between.
///
/// A bad line or element does not lose the good ones: it becomes a [`RecordError`] with its
/// index and line, and decoding resynchronises at the next line that starts with `{`.
/// Limits are enforced per record before parsing it.
pub fn decode_json(body: &[u8], limits: &Limits) -> Result<Decoded, BodyError> {
    decode_json_from_line(body, limits, 1)
}

/// [`decode_json`] of a part of a larger body that starts on line `first_line` (see
/// [`split_top_level`]): error lines are reported as lines of the whole body.
pub fn decode_json_from_line(
    body: &[u8],
    limits: &Limits,
    first_line: usize,
) -> Result<Decoded, BodyError> {
    if body.len() > limits.max_body_bytes {
        return Err(BodyError::TooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let mut out = Decoded::default();
    let bounds = json::Bounds::from_limits(limits);
    let seen_any = json::for_each_value(body, &bounds, true, first_line, |item| {
        match item {
            json::Item::Value { value, text } => {
                let is_object = value.is_object();
                let mut record = Record::from_value(value);
                // The object as sent, byte for byte: kept so the store need not render it
                // again (and keeps the sender's own number formatting and key order).
                if is_object {
                    record.source_json = std::str::from_utf8(text).ok().map(str::to_owned);
                }
                out.records.push(record);
            }
            json::Item::Error { line, reason } => {
                if out.errors.len() < MAX_REPORTED_ERRORS {
                    out.errors.push(RecordError {
                        index: out.total,
                        line: Some(line),
                        reason,
                    });
                } else {
                    out.errors_omitted += 1;
                }
            }
        }
        out.total += 1;
    });
    if !seen_any {
        return Err(BodyError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).expect("write to vec");
        enc.finish().expect("finish gzip")
    }

    #[test]
    fn identity_body_is_borrowed() {
        let body = br#"{"a":1}"#;
        let out = decompress_body(body, None, &Limits::default()).expect("decodes");
        assert!(matches!(out, Cow::Borrowed(_)));
        assert_eq!(&*out, body);
    }

    #[test]
    fn gzip_by_header_and_by_magic() {
        let plain = b"{\"a\":1}\n{\"a\":2}\n";
        let gz = gzip(plain);
        for enc in [Some("gzip"), Some("GZIP"), Some("x-gzip"), None] {
            let out = decompress_body(&gz, enc, &Limits::default()).expect("gunzips");
            assert_eq!(&*out, plain, "encoding {enc:?}");
        }
    }

    #[test]
    fn concatenated_gzip_members_are_read() {
        let mut gz = gzip(b"{\"a\":1}\n");
        gz.extend(gzip(b"{\"a\":2}\n"));
        let out = decompress_body(&gz, Some("gzip"), &Limits::default()).expect("gunzips");
        assert_eq!(&*out, b"{\"a\":1}\n{\"a\":2}\n");
    }

    #[test]
    fn deflate_zlib_and_raw() {
        let plain = b"hello deflate";
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(plain).expect("write");
        let zlib = z.finish().expect("finish");
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(plain).expect("write");
        let raw = d.finish().expect("finish");
        for body in [zlib, raw] {
            let out =
                decompress_body(&body, Some("deflate"), &Limits::default()).expect("inflates");
            assert_eq!(&*out, plain);
        }
    }

    #[test]
    fn gzip_bomb_stops_at_limit() {
        let zeros = vec![0u8; 4 * 1024 * 1024];
        let gz = gzip(&zeros);
        assert!(gz.len() < 64 * 1024, "compresses well");
        let limits = Limits {
            max_body_bytes: 1024 * 1024,
            ..Limits::default()
        };
        let err = decompress_body(&gz, Some("gzip"), &limits).expect_err("too large");
        assert_eq!(err, BodyError::TooLarge { limit: 1024 * 1024 });
        // Exactly at the limit is fine.
        let exact = gzip(&zeros[..1024 * 1024]);
        assert_eq!(
            decompress_body(&exact, None, &limits).expect("fits").len(),
            1024 * 1024
        );
    }

    #[test]
    fn bad_gzip_and_unknown_encoding_and_empty() {
        let err = decompress_body(b"\x1f\x8bnot really gzip", None, &Limits::default())
            .expect_err("bad gzip");
        assert!(matches!(err, BodyError::Gzip(_)), "{err:?}");
        let err = decompress_body(b"{}", Some("gzip"), &Limits::default()).expect_err("not gzip");
        assert!(matches!(err, BodyError::Gzip(_)), "{err:?}");
        let err = decompress_body(b"{}", Some("br"), &Limits::default()).expect_err("brotli");
        assert_eq!(err, BodyError::UnsupportedEncoding("br".into()));
        assert_eq!(
            decompress_body(b"", None, &Limits::default()),
            Err(BodyError::Empty)
        );
        assert_eq!(
            decompress_body(&gzip(b""), None, &Limits::default()),
            Err(BodyError::Empty)
        );
        let small = Limits {
            max_body_bytes: 3,
            ..Limits::default()
        };
        assert_eq!(
            decompress_body(b"{ }\n", None, &small),
            Err(BodyError::TooLarge { limit: 3 })
        );
    }

    #[test]
    fn gzip_body_decodes_as_ndjson() {
        let gz = gzip(b"{\"id\":\"a\",\"@timestamp\":\"2024-01-02T03:04:05Z\"}\n{\"id\":2}\n");
        let body = decompress_body(&gz, Some("gzip"), &Limits::default()).expect("gunzips");
        let decoded = decode_json(&body, &Limits::default()).expect("decodes");
        assert_eq!(decoded.records.len(), 2);
        assert_eq!(
            decoded.records[0].time.map(|t| t.to_string()).as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
    }

    #[test]
    fn ids_are_read_at_a_dotted_path_or_a_dotted_key() {
        let fields = serde_json::json!({"event": {"id": 7}, "a.b": "x", "blank": "  ", "o": {}});
        let fields = fields.as_object().expect("object");
        assert_eq!(id_at(fields, "event.id").as_deref(), Some("7"));
        assert_eq!(id_at(fields, "a.b").as_deref(), Some("x"));
        assert_eq!(id_at(fields, "blank"), None);
        assert_eq!(id_at(fields, "o"), None);
        assert_eq!(id_at(fields, "missing.path"), None);
    }

    #[test]
    fn scalars_are_wrapped_as_message() {
        let rec = Record::from_value(serde_json::json!("hello"));
        assert_eq!(rec.fields.get("message"), Some(&serde_json::json!("hello")));
    }

    fn messages(d: &Decoded) -> Vec<String> {
        d.records
            .iter()
            .map(|r| serde_json::Value::Object(r.fields.clone()).to_string())
            .collect()
    }

    fn errs(d: &Decoded) -> Vec<(usize, Option<usize>, String)> {
        d.errors
            .iter()
            .map(|e| (e.index, e.line, e.reason.clone()))
            .collect()
    }

    #[test]
    fn json_shapes() {
        let l = Limits::default();
        let one = decode_json(br#" {"a": 1} "#, &l).expect("one object");
        assert_eq!(messages(&one), vec![r#"{"a":1}"#]);
        let arr = decode_json(b"[{\"a\":1},\n {\"a\":2} , 3, []]", &l).expect("array");
        assert_eq!(
            messages(&arr),
            vec![
                r#"{"a":1}"#,
                r#"{"a":2}"#,
                r#"{"message":3}"#,
                r#"{"message":[]}"#
            ]
        );
        assert_eq!(arr.total, 4);
        let nd = decode_json(b"{\"a\":1}\r\n\n   \n{\"a\":2}\n", &l).expect("ndjson");
        assert_eq!(messages(&nd), vec![r#"{"a":1}"#, r#"{"a":2}"#]);
        let cat = decode_json(b"{\"a\":1}{\"a\":2}  {\n  \"a\": {\"b\": [1,\n 2]}\n}", &l)
            .expect("concatenated");
        assert_eq!(
            messages(&cat),
            vec![r#"{"a":1}"#, r#"{"a":2}"#, r#"{"a":{"b":[1,2]}}"#]
        );
        let bom = decode_json(b"\xEF\xBB\xBF{\"a\":1}", &l).expect("bom");
        assert_eq!(bom.records.len(), 1);
        assert_eq!(decode_json(b"[]", &l).expect("empty array").total, 0);
        assert_eq!(decode_json(b" \n\t", &l), Err(BodyError::Empty));
    }

    #[test]
    fn bad_lines_keep_good_ones_with_index_and_line() {
        let body = b"{\"n\":0}\n{\"n\":1, \"x\" 2}\n{\"n\":2}\nnot json at all\n{\"n\":3\n{\"n\":4}\n{\"s\":\"unterminated\n{\"n\":5}\n";
        let d = decode_json(body, &Limits::default()).expect("decodes");
        assert_eq!(
            messages(&d),
            vec![r#"{"n":0}"#, r#"{"n":2}"#, r#"{"n":4}"#, r#"{"n":5}"#]
        );
        assert_eq!(d.total, 8);
        let e = errs(&d);
        assert_eq!(e.len(), 4);
        assert_eq!((e[0].0, e[0].1), (1, Some(2)));
        assert_eq!(e[0].2, "line 2: expected `:` at column 13");
        assert_eq!((e[1].0, e[1].1), (3, Some(4)));
        assert!(e[1].2.starts_with("line 4: "), "{}", e[1].2);
        assert_eq!((e[2].0, e[2].1), (4, Some(5)));
        assert!(e[2].2.contains("not closed"), "{}", e[2].2);
        assert_eq!((e[3].0, e[3].1), (6, Some(7)));
        assert_eq!(
            e[3].2,
            "line 7: string not closed before end of line at column 19"
        );
    }

    #[test]
    fn multi_line_value_error_position() {
        let d = decode_json(
            b"{\"a\":1}\n{\n  \"b\": 1,\n  \"c\": 1 2\n}\n{\"d\":1}",
            &Limits::default(),
        )
        .expect("decodes");
        assert_eq!(d.records.len(), 2);
        assert_eq!(d.errors[0].line, Some(2));
        assert_eq!(
            d.errors[0].reason,
            "line 4: expected `,` or `}` at column 10"
        );
    }

    #[test]
    fn broken_array_keeps_earlier_elements() {
        let d =
            decode_json(b"[{\"a\":1}, {\"a\":2} {\"a\":3}]", &Limits::default()).expect("decodes");
        assert_eq!(messages(&d), vec![r#"{"a":1}"#, r#"{"a":2}"#]);
        assert_eq!(d.errors.len(), 1);
        assert!(
            d.errors[0].reason.contains("expected ',' or ']'"),
            "{}",
            d.errors[0].reason
        );
        let d = decode_json(b"[{\"a\":1}, {\"a\":2}", &Limits::default()).expect("decodes");
        assert_eq!(d.records.len(), 2);
        assert!(
            d.errors[0].reason.contains("array not closed"),
            "{}",
            d.errors[0].reason
        );
    }

    #[test]
    fn limits_are_enforced_per_record_with_clear_messages() {
        let limits = Limits {
            max_depth: 3,
            max_fields: 4,
            max_line_bytes: 40,
            ..Limits::default()
        };
        let body = b"{\"a\":{\"b\":{\"c\":1}}}\n{\"a\":{\"b\":{\"c\":{\"d\":1}}}}\n{\"a\":1,\"b\":2,\"c\":3,\"d\":4}\n{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}\n{\"long\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}\n{\"a\":[[[1]]]}\n{\"ok\":true}";
        let d = decode_json(body, &limits).expect("decodes");
        assert_eq!(d.records.len(), 3, "{:?}", d.errors);
        assert_eq!(
            errs(&d),
            vec![
                (
                    1,
                    Some(2),
                    "line 2: nesting depth 4 exceeds the limit of 3".to_owned()
                ),
                (
                    3,
                    Some(4),
                    "line 4: 5 fields exceed the limit of 4".to_owned()
                ),
                (
                    4,
                    Some(5),
                    "line 5: record exceeds the limit of 40 bytes".to_owned()
                ),
                (
                    5,
                    Some(6),
                    "line 6: nesting depth 4 exceeds the limit of 3".to_owned()
                ),
            ]
        );
        let tiny = Limits {
            max_body_bytes: 4,
            ..Limits::default()
        };
        assert_eq!(
            decode_json(b"{\"a\":1}", &tiny),
            Err(BodyError::TooLarge { limit: 4 })
        );
    }

    #[test]
    fn deep_nesting_never_reaches_serde() {
        let mut body = vec![b'['; 100_000];
        body.extend(vec![b']'; 100_000]);
        let d = decode_json(&body, &Limits::default()).expect("decodes");
        assert_eq!(d.records.len(), 0);
        assert_eq!(d.errors.len(), 1);
        let mut body = vec![b'{'; 50_000];
        body.push(b'\n');
        body.extend_from_slice(b"{\"ok\":1}\n");
        let d = decode_json(&body, &Limits::default()).expect("decodes");
        assert_eq!(d.records.len(), 1);
    }

    #[test]
    fn error_list_is_capped_but_counted() {
        let body = "{\n".repeat(MAX_REPORTED_ERRORS + 10) + "{\"ok\":1}";
        let d = decode_json(body.as_bytes(), &Limits::default()).expect("decodes");
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.errors.len(), MAX_REPORTED_ERRORS);
        assert_eq!(d.errors_omitted, 10);
        assert_eq!(d.total, MAX_REPORTED_ERRORS + 11);
    }
}
