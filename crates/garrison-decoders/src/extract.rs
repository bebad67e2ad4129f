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

impl Extractor {
    pub(crate) fn extract(&self, text: &str) -> Option<Map<String, Value>> {
        match self {
            Extractor::Regex { regex, groups } => {
                let caps = regex.captures(text)?;
                let mut out = Map::new();
                for (group, field, conversion) in groups {
                    if let Some(m) = caps.name(group) {
                        let value = Value::String(m.as_str().to_string());
                        let value = match conversion {
                            Some(c) => crate::convert(&value, *c),
                            None => value,
                        };
                        if !m.as_str().is_empty() {
                            out.insert(field.clone(), value);
                        }
                    }
                }
                Some(out)
            }
            Extractor::Kv(kv) => {
                let out = kv.pairs(text);
                (!out.is_empty()).then_some(out)
            }
            Extractor::Csv(csv) => csv.split(text),
            Extractor::Pairs(regex) => {
                let mut out = Map::new();
                for caps in regex.captures_iter(text) {
                    if let (Some(k), Some(v)) = (caps.name("key"), caps.name("value")) {
                        if !k.as_str().is_empty() && out.len() < 1000 {
                            out.insert(
                                k.as_str().to_string(),
                                Value::String(unescape_xml(v.as_str())),
                            );
                        }
                    }
                }
                (!out.is_empty()).then_some(out)
            }
            Extractor::Json { from_brace } => {
                let text = if *from_brace {
                    &text[text.find('{')?..]
                } else {
                    text.trim_start()
                };
                match serde_json::from_str::<Value>(text.trim_end()) {
                    Ok(Value::Object(map)) => Some(map),
                    _ => None,
                }
            }
        }
    }
}

impl Kv {
    /// `k1=v1 k2="v 2" k3=` → pairs. Text without an assign sign between separators is
    /// skipped; a quoted value may hold separators and escaped quotes.
    fn pairs(&self, text: &str) -> Map<String, Value> {
        let mut out = Map::new();
        let mut rest = text;
        let sep = self.separator.as_str();
        // One-byte separators (the usual space, `,`, `;`, `=`) are found with memchr instead of
        // a substring searcher built per call.
        let find = |hay: &str, pat: &str| -> Option<usize> {
            match pat.as_bytes() {
                [b] => memchr::memchr(*b, hay.as_bytes()),
                _ => hay.find(pat),
            }
        };
        let rfind = |hay: &str, pat: &str| -> Option<usize> {
            match pat.as_bytes() {
                [b] => memchr::memrchr(*b, hay.as_bytes()),
                _ => hay.rfind(pat),
            }
        };
        loop {
            rest = rest.trim_start_matches(sep);
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
            if !key.is_empty() && key.len() <= 128 {
                let key = if self.key_prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{}{key}", self.key_prefix)
                };
                out.insert(key, Value::String(value));
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
    fn split(&self, text: &str) -> Option<Map<String, Value>> {
        let mut out = Map::new();
        let mut count = 0;
        let mut cell = String::new();
        let mut in_quotes = false;
        let mut chars = text.chars().peekable();
        let push = |cell: &mut String, count: &mut usize, out: &mut Map<String, Value>| {
            if let Some(Some(name)) = self.columns.get(*count) {
                if !cell.is_empty() {
                    out.insert(name.clone(), Value::String(std::mem::take(cell)));
                }
            }
            cell.clear();
            *count += 1;
        };
        while let Some(c) = chars.next() {
            if Some(c) == self.quote {
                if in_quotes && chars.peek() == self.quote.as_ref() {
                    cell.push(c);
                    chars.next();
                } else {
                    in_quotes = !in_quotes;
                }
            } else if c == self.separator && !in_quotes {
                push(&mut cell, &mut count, &mut out);
            } else {
                cell.push(c);
            }
        }
        push(&mut cell, &mut count, &mut out);
        if count < 2 || (!self.allow_short && count < self.columns.len()) {
            return None;
        }
        Some(out)
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
        let m = kv(" ", "\"'").pairs(r#"date=2019-05-10 msg="a \"b\" c" word x= y='1 2'"#);
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
        let m = csv.split(r#"1,skip,"x, ""y""",extra"#).expect("columns");
        assert_eq!(m["a"], "1");
        assert_eq!(m["c"], r#"x, "y""#);
        assert_eq!(m.len(), 2);
        assert!(csv.split("no separator").is_none());
    }
}
