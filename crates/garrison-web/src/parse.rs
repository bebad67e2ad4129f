//! Access-log lines into [`Request`]s: NCSA common and combined (nginx, Apache), IIS W3C
//! extended (its `#Fields:` directive names the columns), and JSON lines with the usual
//! names (nginx `json_combined`, ECS). A line that is none of these is counted, not fatal.

use jiff::Timestamp;
use serde_json::Value;

/// One request, as the analysis reads it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    pub time: Option<Timestamp>,
    pub client: String,
    pub method: String,
    /// The target as sent: path and query.
    pub target: String,
    pub status: u16,
    pub bytes: u64,
    pub user_agent: String,
    pub referrer: String,
    /// The virtual host, when the log has one.
    pub host: Option<String>,
}

impl Request {
    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or("")
    }
    /// The query part of the target (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

/// Remembers an IIS log's `#Fields:` columns across lines of one file.
#[derive(Default)]
pub struct LineParser {
    w3c_fields: Option<Vec<String>>,
}

/// Why a line is not a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// A comment or directive (`#Software:`), or blank.
    Directive,
    /// Not an access-log line this reader knows.
    Unknown,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `10/Oct/2000:13:55:36 -0700` → a timestamp.
fn ncsa_time(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 26 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i32> { s.get(r)?.parse().ok() };
    let day = num(0..2)?;
    let month = MONTHS.iter().position(|m| Some(*m) == s.get(3..6))? as i8 + 1;
    let year = num(7..11)?;
    let (h, m, sec) = (num(12..14)?, num(15..17)?, num(18..20)?);
    let sign = match b.get(21)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let off_h = num(22..24)?;
    let off_m = num(24..26)?;
    let dt = jiff::civil::DateTime::new(
        year as i16,
        month,
        day as i8,
        h as i8,
        m as i8,
        sec as i8,
        0,
    )
    .ok()?;
    let offset = jiff::tz::Offset::from_seconds(sign * (off_h * 3600 + off_m * 60)).ok()?;
    offset.to_timestamp(dt).ok()
}

/// The next space-separated token, or a `"..."` quoted one (with `\"` escapes).
fn next_token<'a>(s: &mut &'a str) -> Option<&'a str> {
    let t = s.trim_start_matches(' ');
    if let Some(rest) = t.strip_prefix('"') {
        let bytes = rest.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    *s = rest.get(i + 1..).unwrap_or("");
                    return rest.get(..i);
                }
                _ => i += 1,
            }
        }
        *s = "";
        return Some(rest);
    }
    if t.is_empty() {
        return None;
    }
    match memchr::memchr(b' ', t.as_bytes()) {
        Some(i) => {
            *s = &t[i..];
            Some(&t[..i])
        }
        None => {
            *s = "";
            Some(t)
        }
    }
}

fn dash_empty(s: &str) -> String {
    if s == "-" {
        String::new()
    } else {
        s.to_string()
    }
}

/// `client ident user [time] "request" status bytes ["referrer" "agent"]`, optionally with a
/// leading virtual host (`vhost_combined`).
fn ncsa(line: &str) -> Option<Request> {
    let open = memchr::memchr(b'[', line.as_bytes())?;
    let close = open + memchr::memchr(b']', line.as_bytes().get(open..)?)?;
    let head: Vec<&str> = line.get(..open)?.split_whitespace().collect();
    let (host, client) = match head.as_slice() {
        [client, _ident, _user] => (None, *client),
        [vhost, client, _ident, _user] => (
            Some(vhost.split(':').next().unwrap_or(vhost).to_string()),
            *client,
        ),
        _ => return None,
    };
    let time = ncsa_time(line.get(open + 1..close)?);
    let mut rest = line.get(close + 1..)?;
    let request = next_token(&mut rest)?;
    let mut parts = request.splitn(3, ' ');
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let status: u16 = next_token(&mut rest)?.parse().ok()?;
    let bytes = next_token(&mut rest)
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    let referrer = next_token(&mut rest).map(dash_empty).unwrap_or_default();
    let user_agent = next_token(&mut rest).map(dash_empty).unwrap_or_default();
    if client.is_empty() || !(100..=599).contains(&status) {
        return None;
    }
    Some(Request {
        time,
        client: client.to_string(),
        method: method.to_string(),
        target: target.to_string(),
        status,
        bytes,
        user_agent,
        referrer,
        host,
    })
}

fn json_line(line: &str) -> Option<Request> {
    let v: Value = serde_json::from_str(line).ok()?;
    let get = |paths: &[&str]| -> Option<String> {
        paths.iter().find_map(|p| {
            let mut cur = &v;
            for part in p.split('.') {
                cur = cur.get(part)?;
            }
            match cur {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        })
    };
    let (mut method, mut target) = (
        get(&[
            "request_method",
            "method",
            "http.request.method",
            "request.method",
            "RequestMethod",
        ])
        .unwrap_or_default(),
        get(&[
            "request_uri",
            "uri",
            "url.original",
            "url",
            "request.uri",
            "RequestPath",
            "path",
        ])
        .unwrap_or_default(),
    );
    if target.is_empty() {
        if let Some(request) = get(&["request"]) {
            let mut parts = request.splitn(3, ' ');
            method = parts.next().unwrap_or("").to_string();
            target = parts.next().unwrap_or("").to_string();
        }
    }
    let client = get(&[
        "remote_addr",
        "client_ip",
        "clientip",
        "source.ip",
        "client.ip",
    ])?;
    let status = get(&["status", "http.response.status_code", "response"])?
        .parse()
        .ok()?;
    let time = get(&["time_local"])
        .and_then(|t| ncsa_time(&t))
        .or_else(|| {
            get(&["time_iso8601", "@timestamp", "timestamp", "time"])
                .and_then(|t| t.parse::<Timestamp>().ok())
        });
    Some(Request {
        time,
        client,
        method,
        target,
        status,
        bytes: get(&[
            "body_bytes_sent",
            "bytes_sent",
            "http.response.body.bytes",
            "bytes",
        ])
        .and_then(|b| b.parse().ok())
        .unwrap_or(0),
        user_agent: get(&[
            "http_user_agent",
            "user_agent.original",
            "agent",
            "user_agent",
        ])
        .map(|s| dash_empty(&s))
        .unwrap_or_default(),
        referrer: get(&["http_referer", "http.request.referrer", "referrer"])
            .map(|s| dash_empty(&s))
            .unwrap_or_default(),
        host: get(&["host", "server_name", "url.domain"]),
    })
}

/// IIS W3C: space-separated columns named by the last `#Fields:` line.
fn w3c(line: &str, fields: &[String]) -> Option<Request> {
    let cols: Vec<&str> = line.split(' ').collect();
    if cols.len() != fields.len() {
        return None;
    }
    let mut r = Request::default();
    let (mut date, mut time, mut stem, mut query) = ("", "", "", "");
    for (name, value) in fields.iter().zip(&cols) {
        let value = *value;
        match name.as_str() {
            "date" => date = value,
            "time" => time = value,
            "c-ip" => r.client = value.to_string(),
            "cs-method" => r.method = value.to_string(),
            "cs-uri-stem" => stem = value,
            "cs-uri-query" => query = value,
            "sc-status" => r.status = value.parse().ok()?,
            "sc-bytes" => r.bytes = value.parse().unwrap_or(0),
            // IIS writes spaces in the agent as `+`.
            "cs(User-Agent)" => r.user_agent = dash_empty(value).replace('+', " "),
            "cs(Referer)" => r.referrer = dash_empty(value),
            "cs-host" => r.host = Some(value.to_string()).filter(|h| h != "-"),
            _ => {}
        }
    }
    r.target = if query.is_empty() || query == "-" {
        stem.to_string()
    } else {
        format!("{stem}?{query}")
    };
    r.time = format!("{date}T{time}Z").parse().ok();
    (!r.client.is_empty() && r.status > 0).then_some(r)
}

impl LineParser {
    /// Reads one line. Directives update the parser (IIS `#Fields:`).
    pub fn parse(&mut self, line: &str) -> Result<Request, Skip> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return Err(Skip::Directive);
        }
        if let Some(directive) = line.strip_prefix('#') {
            if let Some(fields) = directive.strip_prefix("Fields:") {
                self.w3c_fields = Some(fields.split_whitespace().map(str::to_string).collect());
            }
            return Err(Skip::Directive);
        }
        if line.starts_with('{') {
            return json_line(line).ok_or(Skip::Unknown);
        }
        if let Some(fields) = &self.w3c_fields {
            if let Some(r) = w3c(line, fields) {
                return Ok(r);
            }
        }
        ncsa(line).ok_or(Skip::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_combined_vhost_json_and_iis() {
        let mut p = LineParser::default();
        let r = p
            .parse(r#"192.0.2.7 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=1 HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#)
            .expect("combined");
        assert_eq!(r.client, "192.0.2.7");
        assert_eq!(r.path(), "/apache_pb.gif");
        assert_eq!(r.query(), Some("a=1"));
        assert_eq!(r.status, 200);
        assert_eq!(r.bytes, 2326);
        assert_eq!(r.user_agent, "Mozilla/4.08 [en] (Win98; I ;Nav)");
        assert_eq!(
            r.time.map(|t| t.to_string()).as_deref(),
            Some("2000-10-10T20:55:36Z")
        );
        let v = p
            .parse(r#"www.example.com:443 192.0.2.8 - - [10/Oct/2000:13:55:36 +0000] "POST /login HTTP/1.1" 401 12 "-" "curl/8""#)
            .expect("vhost");
        assert_eq!(v.host.as_deref(), Some("www.example.com"));
        assert_eq!(v.referrer, "");
        let j = p
            .parse(r#"{"time_local":"10/Oct/2000:13:55:36 +0000","remote_addr":"192.0.2.9","request":"GET /x?id=1 HTTP/1.1","status":"404","body_bytes_sent":"5","http_user_agent":"sqlmap/1.7"}"#)
            .expect("json");
        assert_eq!((j.status, j.target.as_str()), (404, "/x?id=1"));
        assert_eq!(
            p.parse("#Software: Microsoft Internet Information Services 10.0"),
            Err(Skip::Directive)
        );
        p.parse("#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken").ok();
        let i = p
            .parse("2024-01-02 03:04:05 10.0.0.5 GET /default.aspx id=5 443 - 192.0.2.10 Mozilla/5.0+(Windows) - 200 0 0 15")
            .expect("iis");
        assert_eq!(
            (i.client.as_str(), i.target.as_str()),
            ("192.0.2.10", "/default.aspx?id=5")
        );
        assert_eq!(i.user_agent, "Mozilla/5.0 (Windows)");
        assert_eq!(p.parse("garbage line"), Err(Skip::Unknown));
    }
}
