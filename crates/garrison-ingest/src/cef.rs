//! ArcSight Common Event Format:
//! `CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension`.
//!
//! Header fields escape `|` and `\` with a backslash; extension values escape `=` and `\` and
//! write newlines as `\n` / `\r`. Extension values may contain spaces: a value runs until the
//! next ` key=` with an unescaped `=`.

use serde_json::{Map, Value};

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CefError {
    #[error("not a CEF message: it must start with \"CEF:\"")]
    NotCef,
    #[error("CEF header has {found} of 7 fields (version|vendor|product|version|signature id|name|severity)")]
    TooFewFields { found: usize },
}

/// Header keys in order, as they appear in the parsed map.
pub const HEADER_KEYS: [&str; 7] = [
    "version",
    "device_vendor",
    "device_product",
    "device_version",
    "signature_id",
    "name",
    "severity",
];

/// Parses a CEF message into the header keys of [`HEADER_KEYS`] plus an `"extensions"` object of
/// string values (label pairs such as `cs1` / `cs1Label` are kept as they are).
pub fn parse(msg: &str) -> Result<Map<String, Value>, CefError> {
    let s = msg.trim_start().trim_end_matches(['\r', '\n', '\0']);
    let rest = s.strip_prefix("CEF:").ok_or(CefError::NotCef)?;
    let (header, ext) = split_header(rest, HEADER_KEYS.len());
    if header.len() < HEADER_KEYS.len() {
        return Err(CefError::TooFewFields {
            found: header.len(),
        });
    }
    let mut out = Map::new();
    for (key, value) in HEADER_KEYS.iter().zip(header) {
        let value = if *key == "version" {
            value.trim().to_owned()
        } else {
            value
        };
        out.insert((*key).to_owned(), Value::String(value));
    }
    out.insert(
        "extensions".to_owned(),
        Value::Object(parse_extension(ext.unwrap_or(""))),
    );
    Ok(out)
}

/// Splits up to `n` `|`-separated header fields (with `\|` and `\\` escapes). The last field may
/// end the input without a trailing `|`. Returns the fields and the text after the n-th `|`.
pub(crate) fn split_header(s: &str, n: usize) -> (Vec<String>, Option<&str>) {
    let mut fields = Vec::with_capacity(n);
    let mut cur = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.clone().next() {
                Some((_, e @ ('|' | '\\'))) => {
                    cur.push(e);
                    chars.next();
                }
                _ => cur.push('\\'),
            },
            '|' => {
                fields.push(std::mem::take(&mut cur));
                if fields.len() == n {
                    return (fields, s.get(i + 1..));
                }
            }
            _ => cur.push(c),
        }
    }
    // No trailing '|' after the last header field (a message without extension); an
    // incomplete header keeps its partial field so errors count it.
    if fields.len() + 1 == n || !cur.is_empty() {
        fields.push(cur);
    }
    (fields, None)
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'[' | b']')
}

/// Positions of `key=` in an extension: (key start, '=' position). A key starts the extension
/// or follows a space, and its '=' is not escaped.
pub(crate) fn key_positions(ext: &str) -> Vec<(usize, usize)> {
    let b = ext.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => i += 2,
            b'=' => {
                let mut k = i;
                while k > 0 && b.get(k - 1).copied().is_some_and(is_key_byte) {
                    k -= 1;
                }
                let at_boundary = k == 0 || b.get(k - 1) == Some(&b' ');
                // A key cannot start inside the previous key=value's key.
                let after_prev = out.last().is_none_or(|&(_, eq)| k > eq);
                if k < i && at_boundary && after_prev {
                    out.push((k, i));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Parses `key=value key2=value with spaces` into a map of unescaped string values.
pub(crate) fn parse_extension(ext: &str) -> Map<String, Value> {
    let keys = key_positions(ext);
    let mut out = Map::new();
    for (n, &(k, eq)) in keys.iter().enumerate() {
        let end = keys.get(n + 1).map_or(ext.len(), |&(next, _)| next);
        let key = ext.get(k..eq).unwrap_or("");
        let raw = ext.get(eq + 1..end).unwrap_or("");
        // The separator before the next key is not part of the value.
        let raw = raw.trim_end_matches(' ');
        out.insert(key.to_owned(), Value::String(unescape_value(raw)));
    }
    out
}

/// Undoes extension value escapes: `\=` `\\` `\|` `\n` `\r`; any other backslash stays.
pub fn unescape_value(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some(e @ ('=' | '\\' | '|')) => {
                out.push(e);
                chars.next();
            }
            Some('n') => {
                out.push('\n');
                chars.next();
            }
            Some('r') => {
                out.push('\r');
                chars.next();
            }
            _ => out.push('\\'),
        }
    }
    out
}

/// Escapes a header field: `\` and `|`.
pub fn escape_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' || c == '|' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes an extension value: `\`, `=`, newlines.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_example_with_escapes() {
        // From the ArcSight CEF implementation standard.
        let m = parse(r"CEF:0|security|threatmanager|1.0|100|detected a \| in message|10|src=10.0.0.1 act=blocked a \= dst=1.1.1.1")
            .expect("parses");
        assert_eq!(m["version"], "0");
        assert_eq!(m["device_vendor"], "security");
        assert_eq!(m["device_product"], "threatmanager");
        assert_eq!(m["device_version"], "1.0");
        assert_eq!(m["signature_id"], "100");
        assert_eq!(m["name"], "detected a | in message");
        assert_eq!(m["severity"], "10");
        assert_eq!(
            m["extensions"],
            json!({"src": "10.0.0.1", "act": "blocked a =", "dst": "1.1.1.1"})
        );
    }

    #[test]
    fn backslashes_newlines_and_spaces() {
        let m = parse(r"CEF:0|security|threatmanager|1.0|100|detected a \\ in packet|10|src=10.0.0.1 msg=Detected a threat.\nNo action needed. filePath=C:\\Windows\\x.exe cs1Label=Policy cs1=Block all")
            .expect("parses");
        assert_eq!(m["name"], r"detected a \ in packet");
        let ext = &m["extensions"];
        assert_eq!(ext["msg"], "Detected a threat.\nNo action needed.");
        assert_eq!(ext["filePath"], r"C:\Windows\x.exe");
        assert_eq!(ext["cs1Label"], "Policy");
        assert_eq!(ext["cs1"], "Block all");
    }

    #[test]
    fn unescaped_equals_inside_value_stays() {
        let m = parse("CEF:0|V|P|1|sig|name|5|request=http://x/?a=b&c=d dpt=443").expect("parses");
        assert_eq!(m["extensions"]["request"], "http://x/?a=b&c=d");
        assert_eq!(m["extensions"]["dpt"], "443");
    }

    #[test]
    fn no_extension_and_trailing_pipe() {
        let m = parse("CEF:1|V|P|1|sig|name|Very-High").expect("parses");
        assert_eq!(m["severity"], "Very-High");
        assert_eq!(m["extensions"], json!({}));
        let m = parse("CEF:0|V|P|1|sig|name|3|").expect("parses");
        assert_eq!(m["extensions"], json!({}));
    }

    #[test]
    fn errors() {
        assert_eq!(parse("hello"), Err(CefError::NotCef));
        assert_eq!(
            parse("CEF:0|V|P|1|sig"),
            Err(CefError::TooFewFields { found: 5 })
        );
        assert_eq!(parse("CEF:"), Err(CefError::TooFewFields { found: 0 }));
    }

    #[test]
    fn escape_round_trip() {
        let value = "a=b \\ c\nd|e  f";
        let header = "x|y\\z";
        let msg = format!(
            "CEF:0|{}|P|1|s|n|3|k1={} k2=plain",
            escape_header(header),
            escape_value(value)
        );
        let m = parse(&msg).expect("parses");
        assert_eq!(m["device_vendor"], header);
        assert_eq!(m["extensions"]["k1"], value);
        assert_eq!(m["extensions"]["k2"], "plain");
    }
}
