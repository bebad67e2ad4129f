//! The extractors: regular expressions (and grok, compiled to one), key=value pairs,
//! delimited columns and JSON. Each takes text and returns the fields it found, or `None`
//! when the text is not of its shape.

use regex::Regex;
use serde_json::{Map, Value};

use crate::spec::{Conversion, CsvSpec, KvSpec};

pub(crate) enum Extractor {
    /// A regular expression; group `i` of `groups` fills that field.
    Regex {
        regex: Regex,
        groups: Vec<(String, String, Option<Conversion>)>,
    },
    Kv(Kv),
    Csv(Csv),
    Json {
        from_brace: bool,
    },
    /// Every match of a regex with `key` and `value` groups is one field.
    Pairs(Regex),
}

pub(crate) struct Kv {
    separator: String,
    assign: String,
    quotes: Vec<char>,
    key_prefix: String,
}

pub(crate) struct Csv {
    separator: char,
    quote: Option<char>,
    columns: Vec<Option<String>>,
    allow_short: bool,
}

impl Kv {
    pub(crate) fn new(spec: &KvSpec) -> Result<Kv, String> {
        if spec.separator.is_empty() || spec.assign.is_empty() {
            return Err("kv: separator and assign must not be empty".into());
        }
        Ok(Kv {
            separator: spec.separator.clone(),
            assign: spec.assign.clone(),
            quotes: spec.quotes.chars().collect(),
            key_prefix: spec.key_prefix.clone().unwrap_or_default(),
        })
    }
}

impl Csv {
    pub(crate) fn new(spec: &CsvSpec) -> Result<Csv, String> {
        let mut sep = spec.separator.chars();
        let (Some(separator), None) = (sep.next(), sep.next()) else {
            return Err(format!(
                "csv: separator must be one character, not {:?}",
                spec.separator
            ));
        };
        let mut quote = spec.quote.chars();
        let quote = match (quote.next(), quote.next()) {
            (None, _) => None,
            (Some(q), None) => Some(q),
            _ => {
                return Err(format!(
                    "csv: quote must be one character, not {:?}",
                    spec.quote
                ))
            }
        };
        if spec.columns.is_empty() {
            return Err("csv: name at least one column".into());
        }
        Ok(Csv {
            separator,
            quote,
            columns: spec
                .columns
                .iter()
                .map(|c| (!c.is_empty() && c != "-").then(|| c.clone()))
                .collect(),
            allow_short: spec.allow_short,
        })
    }
}

/// The fields an extractor found: flat (name, value) pairs in the order of the text (regex,
/// key=value, CSV, pairs), or a JSON tree. Flat fields are a list, not a map: a FortiGate line
/// has dozens of keys and hashing each twice (here, then into the normalised view) was most
/// of a line's cost. A name given twice keeps its first value.
#[derive(Debug)]
pub(crate) enum Found {
    Flat(Vec<(String, Value)>),
    Tree(Map<String, Value>),
}

impl Found {
    pub(crate) fn get(&self, path: &str) -> Option<&Value> {
        match self {
            Found::Flat(pairs) => pairs.iter().find(|(k, _)| k == path).map(|(_, v)| v),
            Found::Tree(map) => garrison_ingest::normalize::resolve(map, path),
        }
    }

    /// Adds a `then` step's fields: a name already present takes the new value.
    pub(crate) fn merge(&mut self, more: Found) {
        let more: Vec<(String, Value)> = match more {
            Found::Flat(pairs) => pairs,
            Found::Tree(map) => map.into_iter().collect(),
        };
        match self {
            Found::Flat(pairs) => {
                for (k, v) in more {
                    match pairs.iter_mut().find(|(x, _)| *x == k) {
                        Some(slot) => slot.1 = v,
                        None => pairs.push((k, v)),
                    }
                }
            }
            Found::Tree(map) => map.extend(more),
        }
    }
}

impl Extractor {
    pub(crate) fn extract(&self, text: &str) -> Option<Found> {
        match self {
            Extractor::Regex { regex, groups } => {
                // Most alternatives and `then` steps do not match: finding that out without
                // the capture slots is cheaper.
                if !regex.is_match(text) {
                    return None;
                }
                let caps = regex.captures(text)?;
                let mut out: Vec<(String, Value)> = Vec::with_capacity(groups.len());
                for (group, field, conversion) in groups {
                    let Some(m) = caps.name(group) else {
                        continue;
                    };
                    if m.as_str().is_empty() {
                        continue;
                    }
                    let value = Value::String(m.as_str().to_string());
                    let value = match conversion {
                        Some(c) => crate::convert(&value, *c),
                        None => value,
                    };
                    // Two groups may fill one field (grok alternatives): the later wins.
                    match out.iter_mut().find(|(k, _)| k == field) {
                        Some(slot) => slot.1 = value,
                        None => out.push((field.clone(), value)),
                    }
                }
                Some(Found::Flat(out))
            }
            Extractor::Kv(kv) => {
                let out = kv.pairs(text);
                (!out.is_empty()).then_some(Found::Flat(out))
            }
            Extractor::Csv(csv) => csv.split(text).map(Found::Flat),
            Extractor::Pairs(regex) => {
                let mut out = Vec::new();
                for caps in regex.captures_iter(text) {
                    if let (Some(k), Some(v)) = (caps.name("key"), caps.name("value")) {
                        if !k.as_str().is_empty() && out.len() < 1000 {
                            out.push((
                                k.as_str().to_string(),
                                Value::String(unescape_xml(v.as_str())),
                            ));
                        }
                    }
                }
                (!out.is_empty()).then_some(Found::Flat(out))
            }
            Extractor::Json { from_brace } => {
                let text = if *from_brace {
                    &text[text.find('{')?..]
                } else {
                    text.trim_start()
                };
                match serde_json::from_str::<Value>(text.trim_end()) {
                    Ok(Value::Object(map)) => Some(Found::Tree(map)),
                    _ => None,
                }
            }
        }
    }
}

/// The first occurrence of a one-byte needle with memchr, else a substring search.
fn find(hay: &str, pat: &str) -> Option<usize> {
    match pat.as_bytes() {
        [b] => memchr::memchr(*b, hay.as_bytes()),
        _ => hay.find(pat),
    }
}

fn rfind(hay: &str, pat: &str) -> Option<usize> {
    match pat.as_bytes() {
        [b] => memchr::memrchr(*b, hay.as_bytes()),
        _ => hay.rfind(pat),
    }
}

fn trim_start_sep<'t>(mut s: &'t str, sep: &str) -> &'t str {
    while let Some(rest) = s.strip_prefix(sep) {
        s = rest;
    }
    s
}

impl Kv {
    /// `k1=v1 k2="v 2" k3=` → pairs. Text without an assign sign between separators is
    /// skipped; a quoted value may hold separators and escaped quotes.
    fn pairs(&self, text: &str) -> Vec<(String, Value)> {
        // Sized once: counting the assign signs is one SIMD pass, growing the list was five.
        let mut out = match self.assign.as_bytes() {
            [b] => Vec::with_capacity(memchr::memchr_iter(*b, text.as_bytes()).count().min(1000)),
            _ => Vec::new(),
        };
        let mut rest = text;
        let sep = self.separator.as_str();
        loop {
            rest = trim_start_sep(rest, sep);
            if rest.is_empty() {
                break;
            }
            let Some(at) = find(rest, &self.assign) else {
                break;
            };
            // A key never holds the separator: text before it is a word without a value.
            let key_part = &rest[..at];
            let key = match rfind(key_part, sep) {
                Some(s) => &key_part[s + sep.len()..],
                None => key_part,
            };
            let after = &rest[at + self.assign.len()..];
            let (value, next) = match after.chars().next() {
                Some(q) if self.quotes.contains(&q) => quoted(&after[q.len_utf8()..], q),
                _ => match find(after, sep) {
                    Some(end) => (after[..end].to_string(), &after[end..]),
                    None => (after.to_string(), ""),
                },
            };
            let key = key.trim();
            if !key.is_empty() && key.len() <= 128 && out.len() < 1000 {
                let key = if self.key_prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{}{key}", self.key_prefix)
                };
                out.push((key, Value::String(value)));
            }
            rest = next;
        }
        out
    }
}

/// XML's five predefined entities, as Sysmon for Linux writes them.
fn unescape_xml(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The value up to the closing `quote` (backslash escapes it) and the text after it.
fn quoted(s: &str, quote: char) -> (String, &str) {
    // Fast path: no backslash before the closing quote (the usual case) is one slice.
    if quote.is_ascii() {
        let bytes = s.as_bytes();
        match memchr::memchr2(quote as u8, b'\\', bytes) {
            Some(i) if bytes[i] == quote as u8 => return (s[..i].to_string(), &s[i + 1..]),
            None => return (s.to_string(), ""),
            Some(_) => {}
        }
    }
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            if let Some((_, e)) = chars.next() {
                if e != quote && e != '\\' {
                    value.push('\\');
                }
                value.push(e);
            }
        } else if c == quote {
            return (value, &s[i + c.len_utf8()..]);
        } else {
            value.push(c);
        }
    }
    (value, "")
}

impl Csv {
    /// The named columns' non-empty cells, or `None` when the text has too few columns.
    fn split(&self, text: &str) -> Option<Vec<(String, Value)>> {
        let mut out = Vec::with_capacity(self.columns.len());
        let mut count = 0;
        let mut rest = Some(text);
        // Cells after the last named column only count (at least two cells make a CSV line).
        while let Some(s) = rest {
            if count >= self.columns.len() && count >= 2 {
                break;
            }
            let (cell, next) = self.cell(s);
            if let Some(Some(name)) = self.columns.get(count) {
                if !cell.is_empty() {
                    out.push((name.clone(), Value::String(cell.into_owned())));
                }
            }
            count += 1;
            rest = next;
        }
        if count < 2 || (!self.allow_short && count < self.columns.len()) {
            return None;
        }
        Some(out)
    }

    /// One cell from the start of `s` and the text after its separator (`None`: last cell).
    fn cell<'t>(&self, s: &'t str) -> (std::borrow::Cow<'t, str>, Option<&'t str>) {
        use std::borrow::Cow;
        let sep = self.separator;
        if sep.is_ascii() && self.quote.is_none_or(|q| q.is_ascii()) {
            let bytes = s.as_bytes();
            let stop = match self.quote {
                Some(q) => memchr::memchr2(sep as u8, q as u8, bytes),
                None => memchr::memchr(sep as u8, bytes),
            };
            match stop {
                None => return (Cow::Borrowed(s), None),
                Some(i) if bytes[i] == sep as u8 => {
                    return (Cow::Borrowed(&s[..i]), Some(&s[i + 1..]))
                }
                Some(_) => {}
            }
        }
        // A quote in the cell: quoted text may hold separators, and a doubled quote is one.
        let mut cell = String::new();
        let mut in_quotes = false;
        let mut chars = s.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if Some(c) == self.quote {
                if in_quotes && chars.peek().map(|(_, n)| *n) == self.quote {
                    cell.push(c);
                    chars.next();
                } else {
                    in_quotes = !in_quotes;
                }
            } else if c == sep && !in_quotes {
                return (Cow::Owned(cell), Some(&s[i + c.len_utf8()..]));
            } else {
                cell.push(c);
            }
        }
        (Cow::Owned(cell), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(sep: &str, quotes: &str) -> Kv {
        Kv::new(&KvSpec {
            separator: sep.into(),
            assign: "=".into(),
            quotes: quotes.into(),
            key_prefix: None,
        })
        .expect("valid")
    }

    #[test]
    fn kv_reads_quoted_values_and_skips_bare_words() {
        let m: Map<String, Value> = kv(" ", "\"'")
            .pairs(r#"date=2019-05-10 msg="a \"b\" c" word x= y='1 2'"#)
            .into_iter()
            .collect();
        assert_eq!(m["date"], "2019-05-10");
        assert_eq!(m["msg"], r#"a "b" c"#);
        assert_eq!(m["x"], "");
        assert_eq!(m["y"], "1 2");
        assert!(!m.contains_key("word"));
    }

    #[test]
    fn csv_honours_quotes_and_skipped_columns() {
        let csv = Csv::new(&CsvSpec {
            separator: ",".into(),
            columns: vec!["a".into(), "-".into(), "c".into()],
            quote: "\"".into(),
            allow_short: true,
        })
        .expect("valid");
        let m: Map<String, Value> = csv
            .split(r#"1,skip,"x, ""y""",extra"#)
            .expect("columns")
            .into_iter()
            .collect();
        assert_eq!(m["a"], "1");
        assert_eq!(m["c"], r#"x, "y""#);
        assert_eq!(m.len(), 2);
        assert!(csv.split("no separator").is_none());
    }
}
