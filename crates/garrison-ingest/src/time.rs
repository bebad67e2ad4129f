//! Timestamp detection: ISO 8601 / RFC 3339 (with or without zone), `YYYY-MM-DD hh:mm:ss`,
//! RFC 2822, BSD syslog `Mmm dd hh:mm:ss`, and epoch numbers in s/ms/µs/ns chosen by magnitude.
//!
//! Hand-rolled parsers: they are on the per-record hot path and must accept the many sloppy
//! variants senders produce while never panicking. A time without a zone is taken as UTC.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

/// Keys searched by [`find_in_record`], in order.
pub const TIME_KEYS: [&str; 10] = [
    "@timestamp",
    "timestamp",
    "time",
    "event.created",
    "EventTime",
    "TimeCreated",
    "UtcTime",
    "datetime",
    "date",
    // Zeek (and other loggers): epoch seconds with a fraction.
    "ts",
];

/// The event time of a JSON record: the first of [`TIME_KEYS`] that parses (`event.created`
/// also as `{"event": {"created": ..}}`, `TimeCreated` also as `{"SystemTime": ..}`).
pub fn find_in_record(fields: &Map<String, Value>) -> Option<Timestamp> {
    TIME_KEYS.iter().find_map(|key| {
        if let Some(t) = fields.get(*key).and_then(parse_value) {
            return Some(t);
        }
        if *key == "event.created" {
            return fields
                .get("event")
                .and_then(Value::as_object)
                .and_then(|event| event.get("created"))
                .and_then(parse_value);
        }
        None
    })
}

/// Parses a JSON value as a point in time: a string in any format of this module, or an epoch
/// number (seconds, millis, micros or nanos by magnitude); `{"SystemTime": ..}` (Windows
/// `TimeCreated`) and `{"$date": ..}` objects are looked into.
pub fn parse_value(v: &Value) -> Option<Timestamp> {
    match v {
        Value::String(s) => parse_str(s),
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                from_epoch_parts(u128::from(i), 0, 0)
            } else if n.as_i64().is_some() {
                None // negative epochs are counters or garbage, not event times
            } else {
                n.as_f64().and_then(from_epoch_f64)
            }
        }
        Value::Object(m) => m
            .get("SystemTime")
            .or_else(|| m.get("$date"))
            .and_then(|inner| match inner {
                Value::Object(_) => None, // one level is enough; stops recursion
                other => parse_value(other),
            }),
        _ => None,
    }
}

/// Parses a string as a point in time (see the module docs for the formats).
pub fn parse_str(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    let b = s.as_bytes();
    if b.first().is_some_and(u8::is_ascii_digit) {
        if let Some(t) = parse_epoch_str(b) {
            return Some(t);
        }
        if let Some((t, n)) = parse_iso_prefix(b) {
            if n == b.len() {
                return Some(t);
            }
        }
    }
    // RFC 2822 / RFC 1123 ("Tue, 1 Jul 2003 10:52:37 +0200"), as HTTP and mail senders use.
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(s)
        .ok()
}

/// Epoch number with an optional fraction, as digits: `1700000000`, `1700000000.123`,
/// `1700000000123`.
fn parse_epoch_str(b: &[u8]) -> Option<Timestamp> {
    let (int, frac) = match memchr::memchr(b'.', b) {
        Some(i) => (b.get(..i)?, b.get(i + 1..)?),
        None => (b, &b[..0]),
    };
    if int.is_empty() || int.len() > 20 || !int.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let int_val = digits_u128(int)?;
    // Keep at most 9 fraction digits; more precision than nanoseconds is noise.
    let frac = frac.get(..frac.len().min(9)).unwrap_or(frac);
    let frac_val = if frac.is_empty() {
        0
    } else {
        digits_u128(frac)?
    };
    from_epoch_parts(int_val, frac_val, frac.len() as u32)
}

fn digits_u128(b: &[u8]) -> Option<u128> {
    b.iter().try_fold(0u128, |acc, d| {
        acc.checked_mul(10)?
            .checked_add(u128::from(d.wrapping_sub(b'0')))
    })
}

/// Nanoseconds per unit of an epoch value, chosen by magnitude: below 1e11 it is seconds
/// (until year 5138), below 1e14 millis, below 1e17 micros, else nanos.
fn unit_nanos(int_val: u128) -> u128 {
    if int_val < 100_000_000_000 {
        1_000_000_000
    } else if int_val < 100_000_000_000_000 {
        1_000_000
    } else if int_val < 100_000_000_000_000_000 {
        1_000
    } else {
        1
    }
}

fn from_epoch_parts(int_val: u128, frac_val: u128, frac_digits: u32) -> Option<Timestamp> {
    let unit = unit_nanos(int_val);
    let frac_ns = frac_val.checked_mul(unit)? / 10u128.checked_pow(frac_digits)?;
    let total = int_val.checked_mul(unit)?.checked_add(frac_ns)?;
    Timestamp::from_nanosecond(i128::try_from(total).ok()?).ok()
}

fn from_epoch_f64(f: f64) -> Option<Timestamp> {
    if !f.is_finite() || !(0.0..1e20).contains(&f) {
        return None;
    }
    let int_val = f.trunc() as u128;
    let unit = unit_nanos(int_val) as f64;
    // Round to microseconds: f64 carries ~16 digits, so 1700000000.123 s is .1229999 anyway.
    let micros = (f * unit / 1000.0).round();
    let nanos = (micros as i128).checked_mul(1000)?;
    Timestamp::from_nanosecond(nanos).ok()
}

fn two(b: &[u8], at: usize) -> Option<i8> {
    let hi = *b.get(at)?;
    let lo = *b.get(at + 1)?;
    if hi.is_ascii_digit() && lo.is_ascii_digit() {
        Some(((hi - b'0') * 10 + (lo - b'0')) as i8)
    } else {
        None
    }
}

fn four(b: &[u8], at: usize) -> Option<i16> {
    let hi = two(b, at)?;
    let lo = two(b, at + 2)?;
    Some(i16::from(hi) * 100 + i16::from(lo))
}

/// `.123456789` fraction starting at `at` (the '.' or ','): nanoseconds and bytes consumed.
fn fraction(b: &[u8], at: usize) -> (i32, usize) {
    if !matches!(b.get(at), Some(b'.') | Some(b',')) {
        return (0, 0);
    }
    let mut n = 0usize;
    let mut nanos: i32 = 0;
    while let Some(d) = b.get(at + 1 + n).filter(|d| d.is_ascii_digit()) {
        if n < 9 {
            nanos = nanos * 10 + i32::from(d - b'0');
        }
        n += 1;
    }
    if n == 0 {
        return (0, 0);
    }
    for _ in n..9 {
        nanos *= 10;
    }
    (nanos, n + 1)
}

/// Zone designator at `at`: offset in seconds east of UTC and bytes consumed.
fn zone(b: &[u8], at: usize) -> (i64, usize) {
    match b.get(at) {
        Some(b'Z') | Some(b'z') => (0, 1),
        Some(&sign @ (b'+' | b'-')) => {
            let Some(h) = two(b, at + 1) else {
                return (0, 0);
            };
            let (m, used) = if b.get(at + 3) == Some(&b':') {
                match two(b, at + 4) {
                    Some(m) => (m, 6),
                    None => return (0, 0),
                }
            } else {
                match two(b, at + 3) {
                    Some(m) => (m, 5),
                    None => (0, 3),
                }
            };
            if h > 23 || m > 59 {
                return (0, 0);
            }
            let secs = i64::from(h) * 3600 + i64::from(m) * 60;
            (if sign == b'-' { -secs } else { secs }, used)
        }
        Some(b' ') => {
            let rest = b.get(at + 1..at + 4);
            if rest == Some(b"UTC") || rest == Some(b"GMT") {
                (0, 4)
            } else {
                (0, 0)
            }
        }
        _ => (0, 0),
    }
}

fn build(
    (y, mo, d): (i16, i8, i8),
    (h, mi, s, ns): (i8, i8, i8, i32),
    offset: i64,
) -> Option<Timestamp> {
    let date = Date::new(y, mo, d).ok()?;
    // A leap second is folded into the second before it.
    let time = Time::new(h, mi, s.min(59), ns).ok()?;
    let ts = TimeZone::UTC
        .to_timestamp(DateTime::from_parts(date, time))
        .ok()?;
    ts.checked_sub(SignedDuration::from_secs(offset)).ok()
}

/// ISO 8601 / RFC 3339 timestamp at the start of `b`: `YYYY-MM-DD[(T|t| )hh:mm[:ss[.frac]]][zone]`
/// (also `/` as date separator). Returns the time and the bytes consumed.
pub fn parse_iso_prefix(b: &[u8]) -> Option<(Timestamp, usize)> {
    let y = four(b, 0)?;
    let sep = *b.get(4)?;
    if sep != b'-' && sep != b'/' {
        return None;
    }
    let mo = two(b, 5)?;
    if *b.get(7)? != sep {
        return None;
    }
    let d = two(b, 8)?;
    let mut pos = 10;
    let (mut h, mut mi, mut s, mut ns) = (0, 0, 0, 0);
    if matches!(b.get(pos), Some(b'T') | Some(b't') | Some(b' ')) && two(b, pos + 1).is_some() {
        h = two(b, pos + 1)?;
        if b.get(pos + 3) != Some(&b':') {
            return None;
        }
        mi = two(b, pos + 4)?;
        pos += 6;
        if b.get(pos) == Some(&b':') {
            s = two(b, pos + 1)?;
            pos += 3;
            let (f, used) = fraction(b, pos);
            ns = f;
            pos += used;
        }
    } else if b.get(pos).is_some_and(u8::is_ascii_digit) {
        return None; // "2024-01-0212" is not a date
    }
    let (offset, used) = zone(b, pos);
    pos += used;
    Some((build((y, mo, d), (h, mi, s, ns), offset)?, pos))
}

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

fn month(b: &[u8]) -> Option<i8> {
    let m = [
        b.first()?.to_ascii_lowercase(),
        b.get(1)?.to_ascii_lowercase(),
        b.get(2)?.to_ascii_lowercase(),
    ];
    MONTHS
        .iter()
        .position(|name| **name == m)
        .map(|i| i as i8 + 1)
}

/// BSD syslog timestamp at the start of `b`: `Mmm dd hh:mm:ss[.frac]`, `Mmm  d ...` (space
/// padded) and `Mmm dd yyyy hh:mm:ss`. Without a year, the year is the one that puts the time
/// latest but not more than a day after `received` (so December logs read in January land in
/// the previous year). Returns the time and the bytes consumed.
pub fn parse_bsd_prefix(b: &[u8], received: Timestamp) -> Option<(Timestamp, usize)> {
    let mo = month(b)?;
    if *b.get(3)? != b' ' {
        return None;
    }
    let mut pos = 4;
    if b.get(pos) == Some(&b' ') {
        pos += 1;
    }
    let d = match two(b, pos) {
        Some(d) => {
            pos += 2;
            d
        }
        None => {
            let c = *b.get(pos)?;
            if !c.is_ascii_digit() {
                return None;
            }
            pos += 1;
            (c - b'0') as i8
        }
    };
    if *b.get(pos)? != b' ' {
        return None;
    }
    pos += 1;
    let mut year = None;
    if let (Some(y), Some(b' ')) = (four(b, pos), b.get(pos + 4)) {
        year = Some(y);
        pos += 5;
    }
    let h = two(b, pos)?;
    if *b.get(pos + 2)? != b':' {
        return None;
    }
    let mi = two(b, pos + 3)?;
    if *b.get(pos + 5)? != b':' {
        return None;
    }
    let s = two(b, pos + 6)?;
    pos += 8;
    let (ns, used) = fraction(b, pos);
    pos += used;
    let (offset, used) = zone(b, pos);
    pos += used;
    if let Some(y) = year {
        return Some((build((y, mo, d), (h, mi, s, ns), offset)?, pos));
    }
    let received_year = received.to_zoned(TimeZone::UTC).year();
    let horizon = received.checked_add(SignedDuration::from_hours(24)).ok()?;
    let t = [1i16, 0, -1].iter().find_map(|delta| {
        let year = received_year.checked_add(*delta)?;
        let t = build((year, mo, d), (h, mi, s, ns), offset)?;
        (t <= horizon).then_some(t)
    })?;
    Some((t, pos))
}

/// A timestamp at the start of a text line: ISO 8601 or BSD syslog style.
pub fn parse_text_prefix(b: &[u8], received: Timestamp) -> Option<(Timestamp, usize)> {
    parse_iso_prefix(b).or_else(|| parse_bsd_prefix(b, received))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid test timestamp")
    }

    fn p(s: &str) -> Option<String> {
        parse_str(s).map(|t| t.to_string())
    }

    #[test]
    fn iso_variants() {
        assert_eq!(
            p("2024-01-02T03:04:05Z").as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            p("2024-01-02t03:04:05z").as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            p("2024-01-02T03:04:05.123+02:00").as_deref(),
            Some("2024-01-02T01:04:05.123Z")
        );
        assert_eq!(
            p("2024-01-02T03:04:05-0530").as_deref(),
            Some("2024-01-02T08:34:05Z")
        );
        assert_eq!(
            p("2024-01-02T03:04:05+01").as_deref(),
            Some("2024-01-02T02:04:05Z")
        );
        assert_eq!(
            p("2024-01-02 03:04:05.123").as_deref(),
            Some("2024-01-02T03:04:05.123Z")
        );
        assert_eq!(
            p("2024-01-02 03:04:05 UTC").as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            p("2024/01/02 03:04").as_deref(),
            Some("2024-01-02T03:04:00Z")
        );
        assert_eq!(p("2024-01-02").as_deref(), Some("2024-01-02T00:00:00Z"));
        // Windows: 7 fraction digits, and more than 9 are truncated.
        assert_eq!(
            p("2019-05-12T02:59:33.1234567Z").as_deref(),
            Some("2019-05-12T02:59:33.1234567Z")
        );
        assert_eq!(
            p("2019-05-12T02:59:33.123456Z").as_deref(),
            Some("2019-05-12T02:59:33.123456Z")
        );
        assert_eq!(
            p("2019-05-12T02:59:33.123456789123Z").as_deref(),
            Some("2019-05-12T02:59:33.123456789Z")
        );
        assert_eq!(
            p("2016-12-31T23:59:60Z").as_deref(),
            Some("2016-12-31T23:59:59Z")
        );
    }

    #[test]
    fn invalid_strings() {
        for s in [
            "",
            "   ",
            "2024-13-02T03:04:05Z",
            "2024-02-30",
            "2024-01-02T25:00:00Z",
            "2024-01-02T03:04:05Zjunk",
            "hello",
            "2024-01-0212",
            "-5",
            "12a",
            "1.2.3",
            "2024-01-02T03",
            "99999999999999999999999",
        ] {
            assert_eq!(p(s), None, "{s:?}");
        }
    }

    #[test]
    fn epochs_by_magnitude() {
        let want = "2023-11-14T22:13:20Z";
        for v in [
            json!(1700000000),
            json!(1700000000000u64),
            json!(1700000000000000u64),
            json!(1700000000000000000u64),
            json!("1700000000"),
            json!("1700000000000"),
            json!(1700000000.0),
        ] {
            assert_eq!(
                parse_value(&v).map(|t| t.to_string()).as_deref(),
                Some(want),
                "{v}"
            );
        }
        assert_eq!(
            parse_value(&json!(1700000000.123))
                .map(|t| t.to_string())
                .as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(
            parse_value(&json!("1700000000.123456"))
                .map(|t| t.to_string())
                .as_deref(),
            Some("2023-11-14T22:13:20.123456Z")
        );
        assert_eq!(
            parse_value(&json!("1700000000123.5"))
                .map(|t| t.to_string())
                .as_deref(),
            Some("2023-11-14T22:13:20.1235Z")
        );
        assert_eq!(parse_value(&json!(-5)), None);
        assert_eq!(parse_value(&json!(f64::MAX)), None);
        assert_eq!(parse_value(&json!(true)), None);
        assert_eq!(parse_value(&json!(null)), None);
    }

    #[test]
    fn rfc2822() {
        assert_eq!(
            p("Tue, 1 Jul 2003 10:52:37 +0200").as_deref(),
            Some("2003-07-01T08:52:37Z")
        );
    }

    #[test]
    fn record_keys_in_order() {
        let rec = json!({"date": "2001-01-01", "time": "2002-02-02T00:00:00Z"});
        let m = rec.as_object().expect("object");
        assert_eq!(find_in_record(m), Some(ts("2002-02-02T00:00:00Z")));
        // An unparsable earlier key falls through to the next one.
        let rec = json!({"@timestamp": "soon", "UtcTime": "2020-06-10 02:50:54.631"});
        assert_eq!(
            find_in_record(rec.as_object().expect("object")),
            Some(ts("2020-06-10T02:50:54.631Z"))
        );
        let rec = json!({"event": {"created": 1700000000}});
        assert_eq!(
            find_in_record(rec.as_object().expect("object")),
            Some(ts("2023-11-14T22:13:20Z"))
        );
        let rec = json!({"TimeCreated": {"SystemTime": "2019-05-12T02:59:33.1234567Z"}});
        assert_eq!(
            find_in_record(rec.as_object().expect("object")),
            Some(ts("2019-05-12T02:59:33.1234567Z"))
        );
        assert_eq!(
            find_in_record(json!({"x": 1}).as_object().expect("object")),
            None
        );
    }

    #[test]
    fn bsd_year_inference() {
        let received = ts("2024-01-01T00:00:30Z");
        // December log read just after new year: last year.
        let (t, n) = parse_bsd_prefix(b"Dec 31 23:59:50 host", received).expect("parses");
        assert_eq!(t, ts("2023-12-31T23:59:50Z"));
        assert_eq!(n, 15);
        // Sender clock slightly ahead across new year: next year, not a year in the past.
        let received = ts("2023-12-31T23:59:50Z");
        let (t, _) = parse_bsd_prefix(b"Jan  1 00:00:10", received).expect("parses");
        assert_eq!(t, ts("2024-01-01T00:00:10Z"));
        // Same day.
        let received = ts("2024-06-15T12:00:00Z");
        let (t, n) = parse_bsd_prefix(b"Jun  5 01:02:03.250 rest", received).expect("parses");
        assert_eq!(t, ts("2024-06-05T01:02:03.25Z"));
        assert_eq!(n, 19);
        // Explicit year.
        let (t, _) = parse_bsd_prefix(b"Aug 24 1987 05:34:00", received).expect("parses");
        assert_eq!(t, ts("1987-08-24T05:34:00Z"));
        // Feb 29 picks a leap year that is not in the future.
        let received = ts("2025-03-01T00:00:00Z");
        assert_eq!(
            parse_bsd_prefix(b"Feb 29 10:00:00", received).map(|x| x.0),
            Some(ts("2024-02-29T10:00:00Z"))
        );
        assert_eq!(parse_bsd_prefix(b"Foo 29 10:00:00", received), None);
        assert_eq!(parse_bsd_prefix(b"Feb 29 1000:00", received), None);
    }
}
