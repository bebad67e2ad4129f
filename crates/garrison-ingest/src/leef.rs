//! IBM QRadar Log Event Extended Format.
//!
//! LEEF 1.0: `LEEF:1.0|Vendor|Product|Version|EventID|key=value<TAB>key=value...`
//! LEEF 2.0: `LEEF:2.0|Vendor|Product|Version|EventID|DelimiterChar|key=value^key=value...`
//! where the delimiter is one character or its hex code (`x5E`, `0x5E`, `^`); it may be absent.

use serde_json::{Map, Value};

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum LeefError {
    #[error("not a LEEF message: it must start with \"LEEF:\"")]
    NotLeef,
    #[error("LEEF header has {found} of 5 fields (version|vendor|product|version|event id)")]
    TooFewFields { found: usize },
}

const HEADER_KEYS: [&str; 5] = [
    "version",
    "device_vendor",
    "device_product",
    "device_version",
    "event_id",
];

/// Parses a LEEF message: `version`, `device_vendor`, `device_product`, `device_version`,
/// `event_id`, `delimiter` (2.0 only, when given) and an `"attributes"` object of strings.
pub fn parse(msg: &str) -> Result<Map<String, Value>, LeefError> {
    let s = msg.trim_start().trim_end_matches(['\r', '\n', '\0']);
    let rest = s.strip_prefix("LEEF:").ok_or(LeefError::NotLeef)?;
    let (header, attrs) = crate::cef::split_header(rest, HEADER_KEYS.len());
    if header.len() < HEADER_KEYS.len() {
        return Err(LeefError::TooFewFields {
            found: header.len(),
        });
    }
    let mut out = Map::new();
    let mut version = String::new();
    for (key, value) in HEADER_KEYS.iter().zip(header) {
        if *key == "version" {
            version = value.trim().to_owned();
            out.insert((*key).to_owned(), Value::String(version.clone()));
        } else {
            out.insert((*key).to_owned(), Value::String(value));
        }
    }
    let mut attrs = attrs.unwrap_or("");
    let mut delimiter = '\t';
    if version.starts_with('2') {
        // The delimiter field is optional: it is there when the text up to the next '|' is
        // short and is not itself an attribute.
        if let Some(bar) = attrs.find('|') {
            let field = attrs.get(..bar).unwrap_or("");
            if field.len() <= 6 && !field.contains('=') {
                if let Some(d) = parse_delimiter(field) {
                    delimiter = d;
                    out.insert("delimiter".to_owned(), Value::String(d.to_string()));
                }
                attrs = attrs.get(bar + 1..).unwrap_or("");
            }
        }
    }
    out.insert(
        "attributes".to_owned(),
        Value::Object(parse_attributes(attrs, delimiter)),
    );
    Ok(out)
}

/// A LEEF 2.0 delimiter field: one character, or `xHH` / `0xHH` hex. Empty means tab.
fn parse_delimiter(field: &str) -> Option<char> {
    let hex = field
        .strip_prefix("0x")
        .or_else(|| field.strip_prefix("0X"))
        .or_else(|| field.strip_prefix('x'))
        .or_else(|| field.strip_prefix('X'));
    if let Some(hex) = hex.filter(|h| !h.is_empty() && h.len() <= 4) {
        if let Some(c) = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
            return Some(c);
        }
    }
    if field == "\\t" {
        return Some('\t');
    }
    let mut chars = field.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        (None, _) => Some('\t'),
        _ => None,
    }
}

fn parse_attributes(attrs: &str, delimiter: char) -> Map<String, Value> {
    // Some LEEF 1.0 senders separate with spaces instead of tabs; parse those like CEF.
    if delimiter == '\t' && !attrs.contains('\t') && crate::cef::key_positions(attrs).len() > 1 {
        return crate::cef::parse_extension(attrs);
    }
    let mut out = Map::new();
    let mut last_key: Option<String> = None;
    for piece in attrs.split(delimiter) {
        match piece.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                let k = k.trim().to_owned();
                out.insert(k.clone(), Value::String(v.to_owned()));
                last_key = Some(k);
            }
            _ => {
                if piece.is_empty() {
                    continue;
                }
                // A piece without '=' is a value that contained the delimiter: rejoin it.
                if let Some(Value::String(prev)) = last_key.as_ref().and_then(|k| out.get_mut(k)) {
                    prev.push(delimiter);
                    prev.push_str(piece);
                }
            }
        }
    }
    out
}

/// Escapes a header field (`\` and `|`), as [`parse`] reads them.
pub fn escape_header(s: &str) -> String {
    crate::cef::escape_header(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leef1_tab_delimited() {
        // Example from the IBM LEEF guide.
        let m = parse("LEEF:1.0|Microsoft|MSExchange|4.0 SP1|15345|src=192.0.2.0\tdst=172.50.123.1\tsev=5\tcat=anomaly\tsrcPort=81\tdstPort=21\tusrName=joe.black")
            .expect("parses");
        assert_eq!(m["version"], "1.0");
        assert_eq!(m["device_vendor"], "Microsoft");
        assert_eq!(m["device_product"], "MSExchange");
        assert_eq!(m["device_version"], "4.0 SP1");
        assert_eq!(m["event_id"], "15345");
        assert!(m.get("delimiter").is_none());
        assert_eq!(
            m["attributes"],
            json!({"src": "192.0.2.0", "dst": "172.50.123.1", "sev": "5", "cat": "anomaly",
                   "srcPort": "81", "dstPort": "21", "usrName": "joe.black"})
        );
    }

    #[test]
    fn leef2_caret_and_hex_delimiters() {
        let m = parse("LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^sev=5^srcPort=81^dstPort=21")
            .expect("parses");
        assert_eq!(m["delimiter"], "^");
        assert_eq!(m["attributes"]["dst"], "10.0.0.5");
        assert_eq!(m["attributes"]["dstPort"], "21");
        let m = parse("LEEF:2.0|Lancope|StealthWatch|1.0|41|x5E|src=10.0.1.8^msg=a=b c")
            .expect("parses");
        assert_eq!(m["delimiter"], "^");
        assert_eq!(m["attributes"]["msg"], "a=b c");
        let m = parse("LEEF:2.0|V|P|1|41|0x7C|a=1|b=2").expect("parses");
        assert_eq!(m["delimiter"], "|");
        assert_eq!(m["attributes"], json!({"a": "1", "b": "2"}));
    }

    #[test]
    fn leef2_without_delimiter_field() {
        let m = parse("LEEF:2.0|V|P|1|41|src=1.2.3.4\tdst=5.6.7.8").expect("parses");
        assert!(m.get("delimiter").is_none());
        assert_eq!(m["attributes"], json!({"src": "1.2.3.4", "dst": "5.6.7.8"}));
    }

    #[test]
    fn leef1_space_separated_fallback_and_rejoin() {
        let m =
            parse("LEEF:1.0|V|P|1|E|src=1.2.3.4 usrName=joe black dst=5.6.7.8").expect("parses");
        assert_eq!(
            m["attributes"],
            json!({"src": "1.2.3.4", "usrName": "joe black", "dst": "5.6.7.8"})
        );
        let m = parse("LEEF:2.0|V|P|1|E|^|msg=a^b^x=1").expect("parses");
        assert_eq!(m["attributes"], json!({"msg": "a^b", "x": "1"}));
    }

    #[test]
    fn errors() {
        assert_eq!(parse("CEF:0|a"), Err(LeefError::NotLeef));
        assert_eq!(
            parse("LEEF:1.0|V|P"),
            Err(LeefError::TooFewFields { found: 3 })
        );
    }
}
