//! Syslog: RFC 5424, RFC 3164 and the common variants seen on the wire (no PRI, ISO timestamps,
//! no hostname, year in the timestamp), plus RFC 6587 TCP framing.
//!
//! Parsing never loses a line: whatever cannot be understood stays in `message`, and the full
//! line is kept in [`Record::raw`].

use crate::{time, Limits, Record};
use jiff::Timestamp;
use serde_json::{Map, Value};

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SyslogError {
    #[error("empty syslog message")]
    Empty,
    #[error("syslog message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLong { len: usize, limit: usize },
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("syslog frame exceeds the limit of {limit} bytes; skipped")]
    TooLong { limit: usize },
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

const SEVERITIES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
];

/// Name of a syslog facility code (0..=23).
pub fn facility_name(code: u8) -> Option<&'static str> {
    FACILITIES.get(usize::from(code)).copied()
}

/// Name of a syslog severity code (0..=7).
pub fn severity_name(code: u8) -> Option<&'static str> {
    SEVERITIES.get(usize::from(code)).copied()
}

/// What the header parsers found.
#[derive(Default)]
struct Parsed {
    pri: Option<u8>,
    version: Option<u32>,
    time: Option<Timestamp>,
    hostname: Option<String>,
    appname: Option<String>,
    procid: Option<String>,
    msgid: Option<String>,
    structured_data: Option<Map<String, Value>>,
    message: String,
}

/// Parses one syslog message (RFC 5424, RFC 3164 and variants).
///
/// Fields: `{"message", "log": {"syslog": {"facility": {"code","name"}, "severity":
/// {"code","name"}, "priority", "version", "hostname", "appname", "procid", "msgid",
/// "structured_data": {sd-id: {param: value}}}}, "host": {"hostname"}}` with only the parts that
/// are present, plus `"cef"` / `"leef"` when the message is CEF or LEEF. Invalid UTF-8 is
/// replaced, never rejected; a year-less RFC 3164 time gets its year from `received`.
pub fn parse(frame: &[u8], received: Timestamp, limits: &Limits) -> Result<Record, SyslogError> {
    if frame.len() > limits.max_line_bytes {
        return Err(SyslogError::TooLong {
            len: frame.len(),
            limit: limits.max_line_bytes,
        });
    }
    let text = String::from_utf8_lossy(frame);
    let line = text.trim_end_matches(['\n', '\r', '\0']);
    if line.trim().is_empty() {
        return Err(SyslogError::Empty);
    }
    let parsed = parse_line(line, received, limits);
    let mut fields = Map::new();
    fields.insert("message".into(), Value::String(parsed.message.clone()));

    let mut sys = Map::new();
    if let Some(pri) = parsed.pri {
        let (fac, sev) = (pri >> 3, pri & 7);
        sys.insert("facility".into(), code_name(fac, facility_name(fac)));
        sys.insert("severity".into(), code_name(sev, severity_name(sev)));
        sys.insert("priority".into(), Value::from(pri));
    }
    if let Some(v) = parsed.version {
        sys.insert("version".into(), Value::from(v));
    }
    let strings = [
        ("hostname", &parsed.hostname),
        ("appname", &parsed.appname),
        ("procid", &parsed.procid),
        ("msgid", &parsed.msgid),
    ];
    for (key, value) in strings {
        if let Some(v) = value {
            sys.insert(key.into(), Value::String(v.clone()));
        }
    }
    if let Some(sd) = parsed.structured_data {
        sys.insert("structured_data".into(), Value::Object(sd));
    }
    if !sys.is_empty() {
        let mut log = Map::new();
        log.insert("syslog".into(), Value::Object(sys));
        fields.insert("log".into(), Value::Object(log));
    }
    if let Some(h) = &parsed.hostname {
        let mut host = Map::new();
        host.insert("hostname".into(), Value::String(h.clone()));
        fields.insert("host".into(), Value::Object(host));
    }
    let mut unparsed = add_cef_leef(&parsed.message, &mut fields, limits);
    let decoded = fields.contains_key("cef") || fields.contains_key("leef");
    if unparsed.is_none()
        && !decoded
        && parsed.pri.is_none()
        && parsed.time.is_none()
        && parsed.hostname.is_none()
    {
        unparsed = Some("no syslog header (no <PRI>, time or hostname)".to_string());
    }
    Ok(Record {
        fields,
        time: parsed.time,
        raw: Some(line.to_owned()),
        source_json: None,
        unparsed,
    })
}

fn code_name(code: u8, name: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("code".into(), Value::from(code));
    if let Some(name) = name {
        m.insert("name".into(), Value::String(name.to_owned()));
    }
    Value::Object(m)
}

/// Adds `cef` / `leef` objects when the message carries one (at its start or after a space,
/// as devices that prepend their own header do). Returns why a CEF or LEEF message could not
/// be decoded, when it could not.
fn add_cef_leef(msg: &str, fields: &mut Map<String, Value>, limits: &Limits) -> Option<String> {
    let within = |m: &Map<String, Value>, attrs: &str| {
        m.get(attrs)
            .and_then(Value::as_object)
            .is_none_or(|a| a.len() <= limits.max_fields)
    };
    let too_many = || format!("more than {} extension fields", limits.max_fields);
    if let Some(at) = find_marker(msg, "CEF:") {
        match msg.get(at..).map(crate::cef::parse) {
            Some(Ok(m)) if within(&m, "extensions") => {
                fields.insert("cef".into(), Value::Object(m));
            }
            Some(Ok(_)) => return Some(format!("CEF: {}", too_many())),
            // Only what claims to be CEF (`CEF:0|`) counts as undecoded CEF.
            Some(Err(e)) if versioned(msg, at + 4) => return Some(format!("CEF: {e}")),
            Some(Err(_)) => {}
            None => {}
        }
    } else if let Some(at) = find_marker(msg, "LEEF:") {
        match msg.get(at..).map(crate::leef::parse) {
            Some(Ok(m)) if within(&m, "attributes") => {
                fields.insert("leef".into(), Value::Object(m));
            }
            Some(Ok(_)) => return Some(format!("LEEF: {}", too_many())),
            Some(Err(e)) if versioned(msg, at + 5) => return Some(format!("LEEF: {e}")),
            Some(Err(_)) => {}
            None => {}
        }
    }
    None
}

/// Whether a version number and `|` follow the marker ending at `at` (`CEF:0|`).
fn versioned(msg: &str, at: usize) -> bool {
    let rest = msg.get(at..).unwrap_or("").as_bytes();
    let digits = rest
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .count();
    digits > 0 && rest.get(digits) == Some(&b'|')
}

fn find_marker(msg: &str, marker: &str) -> Option<usize> {
    if msg.starts_with(marker) {
        return Some(0);
    }
    msg.match_indices(marker)
        .map(|(i, _)| i)
        .find(|&i| i > 0 && msg.as_bytes().get(i - 1) == Some(&b' '))
}

/// `<PRI>` at the start: value (0..=191) and bytes consumed.
fn parse_pri(b: &[u8]) -> Option<(u8, usize)> {
    if b.first() != Some(&b'<') {
        return None;
    }
    let mut value: u32 = 0;
    let mut n = 0;
    while let Some(d) = b.get(1 + n).filter(|d| d.is_ascii_digit()) {
        value = value * 10 + u32::from(d - b'0');
        n += 1;
        if n > 3 {
            return None;
        }
    }
    if n == 0 || b.get(1 + n) != Some(&b'>') || value > 191 {
        return None;
    }
    Some((value as u8, n + 2))
}

fn parse_line(line: &str, received: Timestamp, limits: &Limits) -> Parsed {
    let b = line.as_bytes();
    let (pri, mut pos) = match parse_pri(b) {
        Some((p, n)) => (Some(p), n),
        None => (None, 0),
    };
    if pri.is_some() {
        if let Some(p) = parse_5424(line, pos, limits) {
            return Parsed { pri, ..p };
        }
    }
    // RFC 3164 and variants. Some relays put a space after the PRI.
    if pri.is_some() && b.get(pos) == Some(&b' ') {
        pos += 1;
    }
    let rest = line.get(pos..).unwrap_or("");
    let mut p = parse_3164(rest, received);
    p.pri = pri;
    p
}

/// Splits off the next space-terminated token.
fn token(s: &str) -> (&str, Option<&str>) {
    match s.find(' ') {
        Some(i) => (s.get(..i).unwrap_or(""), s.get(i + 1..)),
        None => (s, None),
    }
}

fn nil_or(s: &str) -> Option<String> {
    (s != "-" && !s.is_empty()).then(|| s.to_owned())
}

fn parse_5424(line: &str, pos: usize, limits: &Limits) -> Option<Parsed> {
    let rest = line.get(pos..)?;
    // VERSION: 1-2 digits, not starting with 0, then SP.
    let (ver, rest) = token(rest);
    if ver.is_empty()
        || ver.len() > 2
        || ver.starts_with('0')
        || !ver.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let version: u32 = ver.parse().ok()?;
    let rest = rest?;
    let mut p = Parsed {
        version: Some(version),
        ..Parsed::default()
    };
    let (ts, rest) = token(rest);
    if ts != "-" {
        let (t, n) = time::parse_iso_prefix(ts.as_bytes())?;
        if n != ts.len() {
            return None; // not a 5424 TIMESTAMP: let the 3164 parser try
        }
        p.time = Some(t);
    }
    let mut rest = rest;
    let mut header: [Option<String>; 4] = Default::default();
    for slot in header.iter_mut() {
        let Some(r) = rest else {
            break;
        };
        let (tok, next) = token(r);
        *slot = nil_or(tok);
        rest = next;
    }
    let [hostname, appname, procid, msgid] = header;
    p.hostname = hostname;
    p.appname = appname;
    p.procid = procid;
    p.msgid = msgid;
    let Some(r) = rest else {
        return Some(p);
    };
    if r == "-" {
        return Some(p);
    }
    if let Some(after) = r.strip_prefix("- ") {
        p.message = strip_bom(after).to_owned();
        return Some(p);
    }
    if r.starts_with('[') {
        if let Some((sd, used)) = parse_sd(r, limits.max_fields) {
            p.structured_data = Some(sd);
            let after = r.get(used..).unwrap_or("");
            p.message = strip_bom(after.strip_prefix(' ').unwrap_or(after)).to_owned();
            return Some(p);
        }
    }
    // Malformed STRUCTURED-DATA: keep everything after the header as the message.
    p.message = r.to_owned();
    Some(p)
}

fn strip_bom(s: &str) -> &str {
    s.strip_prefix('\u{feff}').unwrap_or(s)
}

/// RFC 5424 STRUCTURED-DATA at the start of `s`: the elements and bytes consumed, or None when
/// malformed (or more params than `max_params`).
fn parse_sd(s: &str, max_params: usize) -> Option<(Map<String, Value>, usize)> {
    let b = s.as_bytes();
    let mut out = Map::new();
    let mut pos = 0;
    let mut count = 0usize;
    while b.get(pos) == Some(&b'[') {
        pos += 1;
        let id_start = pos;
        while let Some(&c) = b.get(pos) {
            if c == b' ' || c == b']' || c == b'=' || c == b'"' {
                break;
            }
            pos += 1;
        }
        let id = s.get(id_start..pos)?;
        if id.is_empty() {
            return None;
        }
        let mut params = Map::new();
        loop {
            match b.get(pos)? {
                b']' => {
                    pos += 1;
                    break;
                }
                b' ' => {
                    while b.get(pos) == Some(&b' ') {
                        pos += 1;
                    }
                    let name_start = pos;
                    while let Some(&c) = b.get(pos) {
                        if c == b'=' || c == b' ' || c == b']' || c == b'"' {
                            break;
                        }
                        pos += 1;
                    }
                    let name = s.get(name_start..pos)?;
                    if b.get(pos) == Some(&b']') && name.is_empty() {
                        continue; // trailing space before ']'
                    }
                    if name.is_empty() || b.get(pos) != Some(&b'=') || b.get(pos + 1) != Some(&b'"')
                    {
                        return None;
                    }
                    pos += 2;
                    let mut value = String::new();
                    let mut seg_start = pos;
                    loop {
                        match b.get(pos)? {
                            b'"' => break,
                            b'\\' => {
                                // RFC 5424 6.3.3: only \" \\ \] are escapes; other backslashes stay.
                                if let Some(&e @ (b'"' | b'\\' | b']')) = b.get(pos + 1) {
                                    value.push_str(s.get(seg_start..pos)?);
                                    value.push(char::from(e));
                                    pos += 2;
                                    seg_start = pos;
                                } else {
                                    pos += 1;
                                }
                            }
                            _ => pos += 1,
                        }
                    }
                    value.push_str(s.get(seg_start..pos)?);
                    pos += 1;
                    count += 1;
                    if count > max_params {
                        return None;
                    }
                    insert_repeated(&mut params, name, value);
                }
                _ => return None,
            }
        }
        out.insert(id.to_owned(), Value::Object(params));
    }
    Some((out, pos))
}

/// Repeated SD-PARAM names are legal; keep every value as an array instead of the last only.
fn insert_repeated(params: &mut Map<String, Value>, name: &str, value: String) {
    match params.get_mut(name) {
        Some(Value::Array(values)) => values.push(Value::String(value)),
        Some(existing) => {
            let first = std::mem::take(existing);
            *existing = Value::Array(vec![first, Value::String(value)]);
        }
        None => {
            params.insert(name.to_owned(), Value::String(value));
        }
    }
}

fn parse_3164(rest: &str, received: Timestamp) -> Parsed {
    let mut p = Parsed::default();
    let b = rest.as_bytes();
    let mut rest = rest;
    if let Some((t, n)) = time::parse_text_prefix(b, received) {
        p.time = Some(t);
        rest = rest.get(n..).unwrap_or("").trim_start_matches(' ');
        // RFC 3164 4.1.2: HOSTNAME follows the TIMESTAMP, unless the next token is the TAG.
        let (tok, after) = token(rest);
        if looks_like_host(tok) && !tok.ends_with(':') && after.is_some() {
            p.hostname = Some(tok.to_owned());
            rest = after.unwrap_or("");
        } else if looks_like_host(tok) && after.is_none() && parse_tag(tok).is_none() {
            // "<13>Feb  5 17:32:18 host" with nothing after: still a hostname.
            p.hostname = Some(tok.to_owned());
            rest = "";
        }
        if let Some((app, pid, used)) = parse_tag(rest) {
            p.appname = Some(app.to_owned());
            p.procid = pid.map(str::to_owned);
            rest = rest.get(used..).unwrap_or("");
        }
    } else if rest.starts_with("CEF:") || rest.starts_with("LEEF:") {
        // Bare CEF/LEEF (no syslog header): the marker is not a TAG.
    } else if let Some((app, pid, used)) = parse_tag(rest) {
        p.appname = Some(app.to_owned());
        p.procid = pid.map(str::to_owned);
        rest = rest.get(used..).unwrap_or("");
    }
    p.message = rest.to_owned();
    p
}

/// Whether an RFC 3164 token can be a HOSTNAME (a name, an IPv4 or IPv6 address): a URL
/// (`https://evil.example/x`), a CEF header (`CEF:0|...`) or `key=value` text is message, not
/// the sender's host.
fn looks_like_host(tok: &str) -> bool {
    !tok.is_empty()
        && tok.len() <= 255
        && tok
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%'))
        && !tok.starts_with("CEF:")
        && !tok.starts_with("LEEF:")
}

/// RFC 3164 TAG: `name[pid]: ` or `name: ` at the start. Returns the name, pid and bytes up to
/// the message.
fn parse_tag(s: &str) -> Option<(&str, Option<&str>, usize)> {
    let b = s.as_bytes();
    let mut pos = 0;
    while let Some(&c) = b.get(pos) {
        if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/') {
            pos += 1;
        } else {
            break;
        }
    }
    if pos == 0 || pos > 64 {
        return None;
    }
    let name = s.get(..pos)?;
    let mut pid = None;
    if b.get(pos) == Some(&b'[') {
        let close = s.get(pos..)?.find(']')? + pos;
        let inner = s.get(pos + 1..close)?;
        if inner.is_empty() || inner.len() > 64 || inner.contains(' ') {
            return None;
        }
        pid = Some(inner);
        pos = close + 1;
    }
    if b.get(pos) != Some(&b':') {
        return None;
    }
    pos += 1;
    match b.get(pos) {
        None => Some((name, pid, pos)),
        Some(b' ') => Some((name, pid, pos + 1)),
        Some(_) => None,
    }
}

/// Incremental RFC 6587 framing for syslog over TCP: octet-counting (`"123 <msg>"`) or
/// non-transparent framing (LF, CRLF or NUL terminated), detected per frame.
///
/// Memory is bounded by about `max_frame` bytes: an over-long frame yields one
/// [`FrameError::TooLong`] and is skipped (by its length when octet-counted, else up to the next
/// newline).
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf`; compacted on push so draining stays linear.
    start: usize,
    max_frame: usize,
    state: Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    None,
    /// Discard up to and including the next LF / NUL.
    ToNewline,
    /// Discard this many more bytes (rest of an over-long octet-counted frame).
    Bytes(usize),
}

/// Longest octet count accepted (9 digits is already far above any sane frame limit).
const MAX_COUNT_DIGITS: usize = 9;

/// Whether a frame is an HTTP request line (`GET /path HTTP/1.1`): an HTTP client aimed at a
/// syslog port. Its next lines are its headers, credentials included, so the listener closes
/// such a connection instead of storing them as events. No syslog message has this shape.
pub fn is_http_request_line(frame: &[u8]) -> bool {
    const METHODS: &[&[u8]] = &[
        b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS", b"CONNECT", b"TRACE",
    ];
    let line = frame.strip_suffix(b"\r").unwrap_or(frame);
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    METHODS.contains(&method) && !target.is_empty() && version.starts_with(b"HTTP/")
}

impl Framer {
    pub fn new(max_frame: usize) -> Self {
        Framer {
            buf: Vec::new(),
            start: 0,
            max_frame: max_frame.max(1),
            state: Skip::None,
        }
    }

    /// Adds received bytes. Bytes of a frame being skipped are dropped at once.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.apply_skip();
    }

    fn pending(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }

    /// Drops pending bytes that belong to a frame being skipped.
    fn apply_skip(&mut self) {
        let pending_len = self.pending().len();
        match self.state {
            Skip::None => {}
            Skip::Bytes(n) => {
                let k = n.min(pending_len);
                self.start += k;
                self.state = if k == n {
                    Skip::None
                } else {
                    Skip::Bytes(n - k)
                };
            }
            Skip::ToNewline => match memchr::memchr2(b'\n', b'\0', self.pending()) {
                Some(i) => {
                    self.start += i + 1;
                    self.state = Skip::None;
                }
                None => self.start += pending_len,
            },
        }
        if self.start >= self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// The next complete frame, an error for a skipped over-long frame, or None when more bytes
    /// are needed.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        loop {
            self.apply_skip();
            if self.state != Skip::None {
                return None;
            }
            let pending = self.pending();
            if pending.is_empty() {
                return None;
            }
            match octet_header(pending) {
                Header::Count { len, header } => {
                    if len > self.max_frame {
                        self.start += header;
                        self.state = Skip::Bytes(len);
                        return Some(Err(FrameError::TooLong {
                            limit: self.max_frame,
                        }));
                    }
                    let frame = pending.get(header..header + len)?.to_vec();
                    self.start += header + len;
                    return Some(Ok(frame));
                }
                Header::NeedMore => return None,
                Header::NotCounted => {}
            }
            match memchr::memchr2(b'\n', b'\0', pending) {
                Some(i) => {
                    let frame = pending.get(..i).unwrap_or(&[]);
                    let frame = frame.strip_suffix(b"\r").unwrap_or(frame);
                    let too_long = frame.len() > self.max_frame;
                    let blank = frame.iter().all(u8::is_ascii_whitespace);
                    let out = if too_long || blank {
                        Vec::new()
                    } else {
                        frame.to_vec()
                    };
                    self.start += i + 1;
                    if too_long {
                        return Some(Err(FrameError::TooLong {
                            limit: self.max_frame,
                        }));
                    }
                    if blank {
                        continue;
                    }
                    return Some(Ok(out));
                }
                None => {
                    // +1: a frame of exactly max_frame may still be waiting for its CR LF.
                    if pending.len() > self.max_frame.saturating_add(1) {
                        self.buf.clear();
                        self.start = 0;
                        self.state = Skip::ToNewline;
                        return Some(Err(FrameError::TooLong {
                            limit: self.max_frame,
                        }));
                    }
                    return None;
                }
            }
        }
    }

    /// At end of stream: the trailing frame that had no terminator, if any (a truncated
    /// octet-counted frame yields what arrived of it).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        self.apply_skip();
        let skipping = self.state != Skip::None;
        let pending = self.pending().to_vec();
        self.buf.clear();
        self.start = 0;
        self.state = Skip::None;
        if skipping {
            return None;
        }
        let body = match octet_header(&pending) {
            Header::Count { header, .. } => pending.get(header..).unwrap_or(&[]).to_vec(),
            _ => pending,
        };
        let body = match body.strip_suffix(b"\r") {
            Some(b) => b.to_vec(),
            None => body,
        };
        if body.iter().all(u8::is_ascii_whitespace) || body.len() > self.max_frame {
            return None;
        }
        Some(body)
    }
}

enum Header {
    /// Octet-counted frame of `len` bytes after a `header`-byte prefix ("123 "); the frame
    /// itself may not have fully arrived yet.
    Count {
        len: usize,
        header: usize,
    },
    /// Looks like the start of an octet count; need more bytes to tell.
    NeedMore,
    NotCounted,
}

/// RFC 6587 3.4.1 octet counting: NONZERO-DIGIT *DIGIT SP, then a message that starts with '<'
/// (requiring the '<' keeps a non-transparent line such as "12 apples" from being misread).
fn octet_header(b: &[u8]) -> Header {
    let Some(first) = b.first() else {
        return Header::NotCounted;
    };
    if !(b'1'..=b'9').contains(first) {
        return Header::NotCounted;
    }
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > MAX_COUNT_DIGITS {
        return Header::NotCounted;
    }
    match b.get(digits) {
        None => return Header::NeedMore,
        Some(b' ') => {}
        Some(_) => return Header::NotCounted,
    }
    match b.get(digits + 1) {
        None => return Header::NeedMore,
        Some(b'<') => {}
        Some(_) => return Header::NotCounted,
    }
    let len = b
        .get(..digits)
        .unwrap_or(&[])
        .iter()
        .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
    Header::Count {
        len,
        header: digits + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_url_or_cef_header_after_the_time_is_not_the_senders_hostname() {
        let now = Timestamp::now();
        let limits = Limits::default();
        let url = parse(
            b"<14>Dec  7 10:00:00 https://evil.example/x GET 200",
            now,
            &limits,
        )
        .expect("kept");
        assert!(url.fields.get("host").is_none(), "{:?}", url.fields);
        let cef = parse(
            b"<134>Dec  7 10:00:00 CEF:0|Fortinet|FortiGate|7.4|13|traffic deny|5|src=10.0.0.5 dst=203.0.113.9",
            now,
            &limits,
        )
        .expect("kept");
        assert!(cef.fields.get("host").is_none(), "{:?}", cef.fields);
        assert_eq!(cef.fields["cef"]["device_vendor"], "Fortinet");
        let ipv6 = parse(
            b"<14>Dec  7 10:00:00 2001:db8::7 sshd[1]: hello",
            now,
            &limits,
        )
        .expect("kept");
        assert_eq!(ipv6.fields["host"]["hostname"], "2001:db8::7");
    }

    #[test]
    fn lines_the_decoder_does_not_understand_are_flagged_not_passed_as_parsed() {
        let now = Timestamp::now();
        let limits = Limits::default();
        let flagged = |line: &str| parse(line.as_bytes(), now, &limits).expect("kept").unparsed;
        assert!(flagged("just some text without any header").is_some());
        // Bare CEF (no syslog header) is understood.
        assert_eq!(flagged("CEF:0|Acme|FW|1|100|blocked|5|src=10.0.0.1"), None);
        assert!(flagged("CEF:0|Acme|FW|1|100")
            .unwrap_or_default()
            .starts_with("CEF:"));
        assert_eq!(
            flagged("<13>Dec  7 10:00:02 printer1 lpd[9]: queue restarted"),
            None
        );
        assert_eq!(
            flagged("<134>1 2026-12-07T10:00:00Z fw CEF - - - CEF:0|A|B|1|2|n|5|src=1.2.3.4"),
            None
        );
        // Prose that mentions CEF is not a broken CEF message.
        assert_eq!(
            flagged("<13>Dec  7 10:00:02 h app: parsing CEF: done"),
            None
        );
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid test timestamp")
    }

    fn received() -> Timestamp {
        ts("2024-03-10T12:00:00Z")
    }

    fn parse_ok(line: &str) -> Record {
        parse(line.as_bytes(), received(), &Limits::default()).expect("parses")
    }

    fn sys(r: &Record) -> &Value {
        &r.fields["log"]["syslog"]
    }

    #[test]
    fn rfc5424_example_1() {
        let r = parse_ok("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(r.time, Some(ts("2003-10-11T22:14:15.003Z")));
        assert_eq!(
            r.fields["message"],
            "'su root' failed for lonvick on /dev/pts/8"
        );
        assert_eq!(
            *sys(&r),
            json!({"facility": {"code": 4, "name": "auth"}, "severity": {"code": 2, "name": "critical"},
                   "priority": 34, "version": 1, "hostname": "mymachine.example.com",
                   "appname": "su", "msgid": "ID47"})
        );
        assert_eq!(r.fields["host"]["hostname"], "mymachine.example.com");
        assert!(r
            .raw
            .as_deref()
            .is_some_and(|raw| raw.starts_with("<34>1 2003")));
    }

    #[test]
    fn rfc5424_example_2_offset_and_no_sd() {
        let r = parse_ok("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.");
        assert_eq!(r.time, Some(ts("2003-08-24T12:14:15.000003Z")));
        assert_eq!(sys(&r)["procid"], "8710");
        assert_eq!(sys(&r)["facility"]["name"], "local4");
        assert_eq!(sys(&r)["severity"]["name"], "notice");
        assert!(sys(&r).get("msgid").is_none());
        assert_eq!(r.fields["message"], "%% It's time to make the do-nuts.");
    }

    #[test]
    fn rfc5424_structured_data() {
        let r = parse_ok(
            r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event log entry..."#,
        );
        assert_eq!(
            sys(&r)["structured_data"],
            json!({"exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
                   "examplePriority@32473": {"class": "high"}})
        );
        assert_eq!(r.fields["message"], "An application event log entry...");
        // SD only, no MSG; escapes \" \\ \] and a kept lone backslash.
        let r = parse_ok(
            r#"<165>1 2003-10-11T22:14:15.003Z host app - - [a@1 p="q \"x\" \\ \] \n" p="2"]"#,
        );
        assert_eq!(
            sys(&r)["structured_data"]["a@1"]["p"],
            json!([r#"q "x" \ ] \n"#, "2"])
        );
        assert_eq!(r.fields["message"], "");
    }

    #[test]
    fn rfc5424_malformed_sd_keeps_text_and_nil_timestamp() {
        let r = parse_ok(r#"<14>1 - host app 12 - [broken sd here"#);
        assert_eq!(r.time, None);
        assert_eq!(r.fields["message"], "[broken sd here");
        assert_eq!(sys(&r)["procid"], "12");
    }

    #[test]
    fn rfc3164_examples() {
        let r = parse_ok(
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        );
        assert_eq!(r.time, Some(ts("2023-10-11T22:14:15Z")));
        assert_eq!(sys(&r)["hostname"], "mymachine");
        assert_eq!(sys(&r)["appname"], "su");
        assert_eq!(
            r.fields["message"],
            "'su root' failed for lonvick on /dev/pts/8"
        );
        assert!(sys(&r).get("version").is_none());

        let r = parse_ok("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!");
        assert_eq!(r.time, Some(ts("2024-02-05T17:32:18Z")));
        assert_eq!(sys(&r)["hostname"], "10.0.0.99");
        assert!(sys(&r).get("appname").is_none());
        assert_eq!(r.fields["message"], "Use the BFG!");

        let r = parse_ok("<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!");
        assert_eq!(r.time, None);
        assert_eq!(r.fields["message"], "1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!");
        assert_eq!(sys(&r)["severity"]["name"], "emergency");
    }

    #[test]
    fn rfc3164_variants() {
        // PID in the tag, ISO time, no hostname, no PRI.
        let r =
            parse_ok("<38>2024-03-10T11:00:00+01:00 web1 sshd[4242]: Accepted publickey for root");
        assert_eq!(r.time, Some(ts("2024-03-10T10:00:00Z")));
        assert_eq!(sys(&r)["hostname"], "web1");
        assert_eq!(sys(&r)["appname"], "sshd");
        assert_eq!(sys(&r)["procid"], "4242");
        assert_eq!(r.fields["message"], "Accepted publickey for root");

        let r = parse_ok("<86>Mar  9 08:00:01 CRON[99]: pam_unix(cron:session): session opened");
        assert!(sys(&r).get("hostname").is_none());
        assert_eq!(sys(&r)["appname"], "CRON");

        let r = parse_ok("Mar  9 08:00:01 host kernel: eth0 up");
        assert!(sys(&r).get("priority").is_none());
        assert_eq!(sys(&r)["appname"], "kernel");
        assert_eq!(r.time, Some(ts("2024-03-09T08:00:01Z")));

        let r = parse_ok("just some text\r\n");
        assert_eq!(r.fields["message"], "just some text");
        assert!(r.fields.get("log").is_none());
        assert_eq!(r.time, None);

        // An out-of-range PRI is text, not a header.
        let r = parse_ok("<192>Mar  9 08:00:01 h a: b");
        assert!(r.fields.get("log").is_none());
        assert_eq!(r.fields["message"], "<192>Mar  9 08:00:01 h a: b");
    }

    #[test]
    fn cef_and_leef_inside_syslog() {
        let r = parse_ok("<134>Feb 10 12:00:00 fw CEF:0|Vendor|Product|1.0|100|Port scan|5|src=10.0.0.1 dst=10.0.0.2");
        assert_eq!(r.fields["cef"]["name"], "Port scan");
        assert_eq!(r.fields["cef"]["extensions"]["dst"], "10.0.0.2");
        let r = parse_ok("<13>1 2024-01-01T00:00:00Z qr app - - - LEEF:2.0|IBM|QRadar|7|E1|^|src=1.1.1.1^dst=2.2.2.2");
        assert_eq!(r.fields["leef"]["attributes"]["dst"], "2.2.2.2");
        assert!(r.fields.get("cef").is_none());
    }

    #[test]
    fn errors_and_lossy_utf8() {
        assert_eq!(
            parse(b"", received(), &Limits::default()),
            Err(SyslogError::Empty)
        );
        assert_eq!(
            parse(b" \r\n", received(), &Limits::default()),
            Err(SyslogError::Empty)
        );
        let limits = Limits {
            max_line_bytes: 8,
            ..Limits::default()
        };
        assert_eq!(
            parse(b"<13>123456789", received(), &limits),
            Err(SyslogError::TooLong { len: 13, limit: 8 })
        );
        let r = parse(
            b"<13>Mar  9 08:00:01 h app: caf\xe9",
            received(),
            &Limits::default(),
        )
        .expect("parses");
        assert_eq!(r.fields["message"], "caf\u{fffd}");
    }

    fn frames(framer: &mut Framer) -> Vec<Result<Vec<u8>, FrameError>> {
        std::iter::from_fn(|| framer.next_frame()).collect()
    }

    #[test]
    fn framer_octet_counting_and_newlines() {
        let mut f = Framer::new(1024);
        f.push(b"11 <13>hello a");
        assert_eq!(frames(&mut f), vec![Ok(b"<13>hello a".to_vec())]);
        f.push(b"<13>line one\r\n<13>line two\n\n<13>nul\0");
        f.push(b"11 <13>split ");
        assert_eq!(
            frames(&mut f),
            vec![
                Ok(b"<13>line one".to_vec()),
                Ok(b"<13>line two".to_vec()),
                Ok(b"<13>nul".to_vec())
            ]
        );
        f.push(b"x");
        assert_eq!(frames(&mut f), vec![Ok(b"<13>split x".to_vec())]);
        // "12 apples" is a newline-framed line, not a count.
        f.push(b"12 apples\n");
        assert_eq!(frames(&mut f), vec![Ok(b"12 apples".to_vec())]);
        f.push(b"<13>tail");
        assert!(frames(&mut f).is_empty());
        assert_eq!(f.finish(), Some(b"<13>tail".to_vec()));
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn framer_overlong_frames_resync() {
        let mut f = Framer::new(8);
        f.push(b"20 <13>aaaaaaaaaaaaaaaa");
        f.push(b"<1>ok\n");
        assert_eq!(
            frames(&mut f),
            vec![Err(FrameError::TooLong { limit: 8 }), Ok(b"<1>ok".to_vec())]
        );
        f.push(b"<13>this line is far too long");
        assert_eq!(frames(&mut f), vec![Err(FrameError::TooLong { limit: 8 })]);
        f.push(b" and continues");
        assert!(frames(&mut f).is_empty());
        assert!(f.buf.len() <= 8, "skipped bytes are not buffered");
        f.push(b" until here\n<1>next\n");
        assert_eq!(frames(&mut f), vec![Ok(b"<1>next".to_vec())]);
        f.push(b"<13>also way too long\n<1>b\n");
        assert_eq!(
            frames(&mut f),
            vec![Err(FrameError::TooLong { limit: 8 }), Ok(b"<1>b".to_vec())]
        );
    }
}

#[cfg(test)]
mod http_on_syslog_tests {
    use super::is_http_request_line;

    #[test]
    fn http_request_lines_are_told_from_syslog_lines() {
        assert!(is_http_request_line(b"GET /api/v1/rules HTTP/1.1"));
        assert!(is_http_request_line(b"POST /services/collector HTTP/1.0\r"));
        assert!(!is_http_request_line(
            b"<34>1 2026-12-07T10:00:00Z host app - - - GET / HTTP/1.1"
        ));
        assert!(!is_http_request_line(
            b"<13>Dec  7 10:00:00 web1 nginx: GET /index.html HTTP/1.1"
        ));
        assert!(!is_http_request_line(b"GET /x HTTP/1.1 extra"));
        assert!(!is_http_request_line(b"FETCH / HTTP/1.1"));
        assert!(!is_http_request_line(b""));
    }
}
