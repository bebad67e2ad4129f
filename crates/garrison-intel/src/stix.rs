//! STIX 2.1: bundles (or a single object, an array of objects, or a TAXII envelope
//! `{"objects": [...]}`).
//!
//! `indicator` objects with `pattern_type: "stix"` give one indicator per comparison that
//! alone identifies the threat: `[ipv4-addr:value = '1.2.3.4']`, `OR`-combined comparisons and
//! observations, `IN ('a', 'b')`, `ISSUBSET '10.0.0.0/8'` (a CIDR), and `AND` of several hashes
//! of one file. `valid_from` is the first seen time, `valid_until` the expiry, `confidence`,
//! `labels` and `indicator_types` (tags), `description` (or `name`). Patterns that need more
//! than one value at once (`AND` of different things, `FOLLOWEDBY`, qualifiers, `NOT`,
//! `LIKE`/`MATCHES`) are skipped with the reason. Cyber-observable objects (`ipv4-addr`,
//! `ipv6-addr`, `domain-name`, `url`, `email-addr`, `file` hashes) are indicators themselves.

use serde_json::{Map, Value};

use crate::parse::{parse_time, pointer_segment, ImportOptions, Location, ParseError, ParseOutput};
use crate::{HashAlgorithm, Indicator, IndicatorKind, IndicatorValue};

/// Deepest nesting of parentheses or brackets in a pattern.
const MAX_DEPTH: usize = 64;

/// Parses STIX 2.1 JSON (see the module docs).
pub fn parse_stix(input: &[u8], options: &ImportOptions) -> ParseOutput {
    let mut out = ParseOutput::default();
    let document: Value = match serde_json::from_slice(input) {
        Ok(v) => v,
        Err(e) => {
            out.errors.push(ParseError {
                location: Location::Text {
                    line: e.line() as u64,
                    column: e.column() as u64,
                },
                reason: format!("not JSON: {e}"),
            });
            return out;
        }
    };
    match &document {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                object(item, &format!("/{i}"), options, &mut out);
            }
        }
        Value::Object(map) => match map.get("objects") {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    object(item, &format!("/objects/{i}"), options, &mut out);
                }
            }
            Some(_) => out.errors.push(ParseError {
                location: Location::Json {
                    pointer: "/objects".into(),
                    id: str_field(map, "id").map(str::to_string),
                },
                reason: "\"objects\" is not an array".into(),
            }),
            None if map.contains_key("type") => object(&document, "", options, &mut out),
            None => out.errors.push(ParseError {
                location: Location::Json {
                    pointer: String::new(),
                    id: None,
                },
                reason: "not a STIX bundle: no \"objects\" array and no \"type\"".into(),
            }),
        },
        _ => out.errors.push(ParseError {
            location: Location::Json {
                pointer: String::new(),
                id: None,
            },
            reason: "not a STIX bundle: expected a JSON object or array".into(),
        }),
    }
    out
}

fn str_field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

fn object(value: &Value, pointer: &str, options: &ImportOptions, out: &mut ParseOutput) {
    let Value::Object(map) = value else {
        out.errors.push(ParseError {
            location: Location::Json {
                pointer: pointer.to_string(),
                id: None,
            },
            reason: "not a JSON object".into(),
        });
        return;
    };
    let id = str_field(map, "id").map(str::to_string);
    let at = |field: &str| Location::Json {
        pointer: if field.is_empty() {
            pointer.to_string()
        } else {
            format!("{pointer}/{}", pointer_segment(field))
        },
        id: id.clone(),
    };
    let Some(kind) = str_field(map, "type") else {
        out.errors.push(ParseError {
            location: at("type"),
            reason: "no \"type\"".into(),
        });
        return;
    };
    match kind {
        "indicator" => indicator(map, &at, options, out),
        "ipv4-addr" | "ipv6-addr" | "domain-name" | "url" | "email-addr" => {
            let Some(text) = str_field(map, "value") else {
                out.errors.push(ParseError {
                    location: at("value"),
                    reason: format!("{kind} has no string \"value\""),
                });
                return;
            };
            let parsed = match kind {
                "ipv4-addr" | "ipv6-addr" => IndicatorValue::parse_named("ip", text),
                "domain-name" => IndicatorValue::parse_named("domain", text),
                "url" => IndicatorValue::parse_named("url", text),
                _ => IndicatorValue::parse_named("email", text),
            };
            match parsed {
                Ok(v) => out.indicators.push(observable(v, options)),
                Err(e) => out.errors.push(ParseError {
                    location: at("value"),
                    reason: e.to_string(),
                }),
            }
        }
        "file" => match map.get("hashes") {
            Some(Value::Object(hashes)) => {
                for (name, hash) in hashes {
                    let field = format!("hashes/{}", pointer_segment(name));
                    let Some(alg) = HashAlgorithm::from_name(name) else {
                        out.skipped.push(ParseError {
                            location: at(&field),
                            reason: format!("hash algorithm {name:?} is not matched"),
                        });
                        continue;
                    };
                    match hash
                        .as_str()
                        .ok_or_else(|| "not a string".to_string())
                        .and_then(|h| {
                            IndicatorValue::parse(IndicatorKind::Hash(alg), h)
                                .map_err(|e| e.to_string())
                        }) {
                        Ok(v) => out.indicators.push(observable(v, options)),
                        Err(reason) => out.errors.push(ParseError {
                            location: Location::Json {
                                pointer: format!("{pointer}/hashes/{}", pointer_segment(name)),
                                id: id.clone(),
                            },
                            reason,
                        }),
                    }
                }
            }
            _ => out.skipped.push(ParseError {
                location: at(""),
                reason: "file without hashes".into(),
            }),
        },
        // Context objects (identities, relationships, markings, reports...) carry no value.
        _ => {}
    }
}

fn observable(value: IndicatorValue, options: &ImportOptions) -> Indicator {
    let mut i = Indicator::new(value, options.source.clone());
    i.confidence = options.default_confidence;
    options.finish(&mut i);
    i
}

fn indicator(
    map: &Map<String, Value>,
    at: &dyn Fn(&str) -> Location,
    options: &ImportOptions,
    out: &mut ParseOutput,
) {
    let fail = |field: &str, reason: String| ParseError {
        location: at(field),
        reason,
    };
    if map.get("revoked") == Some(&Value::Bool(true)) {
        out.skipped.push(fail("revoked", "revoked".into()));
        return;
    }
    match str_field(map, "pattern_type") {
        Some("stix") | None => {}
        Some(other) => {
            out.skipped.push(fail(
                "pattern_type",
                format!("pattern type {other:?} is not matched"),
            ));
            return;
        }
    }
    let Some(pattern) = str_field(map, "pattern") else {
        out.errors
            .push(fail("pattern", "no string \"pattern\"".into()));
        return;
    };
    let time = |field: &str| -> Result<Option<jiff::Timestamp>, ParseError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_time(s).map(Some).map_err(|e| fail(field, e)),
            Some(_) => Err(fail(field, "not a timestamp string".into())),
        }
    };
    let (first_seen, expires) = match (time("valid_from"), time("valid_until")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            out.errors.push(e);
            return;
        }
    };
    if let (Some(from), Some(until)) = (first_seen, expires) {
        if until <= from {
            out.errors.push(fail(
                "valid_until",
                "valid_until is not after valid_from".into(),
            ));
            return;
        }
    }
    let confidence = match map.get("confidence") {
        None | Some(Value::Null) => options.default_confidence,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(c) if c <= 100 => c as u8,
            _ => {
                out.errors.push(fail(
                    "confidence",
                    format!("confidence {n} is not an integer from 0 to 100"),
                ));
                return;
            }
        },
        Some(_) => {
            out.errors
                .push(fail("confidence", "confidence is not a number".into()));
            return;
        }
    };
    let mut tags = Vec::new();
    for field in ["labels", "indicator_types"] {
        if let Some(Value::Array(items)) = map.get(field) {
            for t in items.iter().filter_map(Value::as_str) {
                if !tags.iter().any(|x: &String| x == t) {
                    tags.push(t.to_string());
                }
            }
        }
    }
    let description = str_field(map, "description")
        .or_else(|| str_field(map, "name"))
        .map(str::to_string);
    let extracted = match parse_pattern(pattern) {
        Ok(ast) => extract_observation(&ast),
        Err(reason) => {
            out.errors.push(fail("pattern", reason));
            return;
        }
    };
    for reason in extracted.unsupported {
        out.skipped.push(fail("pattern", reason));
    }
    for (path, text) in extracted.values {
        match value_for(&path, &text) {
            Ok(value) => {
                let mut i = Indicator::new(value, options.source.clone());
                i.confidence = confidence;
                i.first_seen = first_seen;
                i.expires = expires;
                i.tags = tags.clone();
                i.description = description.clone();
                options.finish(&mut i);
                out.indicators.push(i);
            }
            Err(reason) => out.errors.push(fail("pattern", reason)),
        }
    }
}

/// An object path: `file:hashes.'SHA-256'` is `("file", "hashes.SHA-256")`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Path {
    object: String,
    property: String,
}

impl Path {
    fn hash_algorithm(&self) -> Option<HashAlgorithm> {
        if !matches!(self.object.as_str(), "file" | "artifact") {
            return None;
        }
        self.property
            .strip_prefix("hashes.")
            .and_then(HashAlgorithm::from_name)
    }

    fn display(&self) -> String {
        format!("{}:{}", self.object, self.property)
    }
}

/// What a supported comparison names: a kind, or one of two to infer.
enum Target {
    Kind(IndicatorKind),
    IpOrCidr,
    /// `network-traffic:src_ref.value` may be an address or a name.
    Address,
}

fn target(path: &Path) -> Option<Target> {
    if let Some(alg) = path.hash_algorithm() {
        return Some(Target::Kind(IndicatorKind::Hash(alg)));
    }
    Some(match (path.object.as_str(), path.property.as_str()) {
        ("ipv4-addr" | "ipv6-addr", "value") => Target::IpOrCidr,
        ("domain-name", "value") => Target::Kind(IndicatorKind::Domain),
        ("url", "value") => Target::Kind(IndicatorKind::Url),
        ("email-addr", "value") => Target::Kind(IndicatorKind::Email),
        (
            "email-message",
            "from_ref.value" | "sender_ref.value" | "to_refs[*].value" | "cc_refs[*].value"
            | "bcc_refs[*].value",
        ) => Target::Kind(IndicatorKind::Email),
        ("network-traffic", "src_ref.value" | "dst_ref.value") => Target::Address,
        _ => return None,
    })
}

fn value_for(path: &Path, text: &str) -> Result<IndicatorValue, String> {
    let result = match target(path) {
        Some(Target::Kind(kind)) => IndicatorValue::parse(kind, text).map_err(|e| e.to_string()),
        Some(Target::IpOrCidr) => {
            IndicatorValue::parse_named("ip", text).map_err(|e| e.to_string())
        }
        Some(Target::Address) => IndicatorValue::infer(text)
            .map_err(|e| e.to_string())
            .and_then(|v| match v.kind() {
                IndicatorKind::Ip | IndicatorKind::Cidr | IndicatorKind::Domain => Ok(v),
                other => Err(format!("{other} where an address was expected")),
            }),
        None => Err(format!("{} is not matched", path.display())),
    };
    result.map_err(|e| format!("{}: {e}", path.display()))
}

#[derive(Debug, PartialEq)]
enum Op {
    Eq,
    In,
    IsSubset,
    Other(String),
}

#[derive(Debug)]
struct Comparison {
    negated: bool,
    path: Path,
    op: Op,
    /// String literals; `None` for another literal (number, boolean, binary, timestamp).
    values: Vec<Option<String>>,
}

#[derive(Debug)]
enum CompExpr {
    Cmp(Comparison),
    And(Vec<CompExpr>),
    Or(Vec<CompExpr>),
}

#[derive(Debug)]
enum ObsExpr {
    Comparisons(CompExpr),
    Or(Vec<ObsExpr>),
    /// `AND` or `FOLLOWEDBY` between observations.
    Together(&'static str),
    /// `WITHIN`, `REPEATS` or `START`/`STOP` on an observation.
    Qualified,
}

#[derive(Default)]
struct Extracted {
    values: Vec<(Path, String)>,
    unsupported: Vec<String>,
}

fn extract_observation(expr: &ObsExpr) -> Extracted {
    let mut out = Extracted::default();
    match expr {
        ObsExpr::Comparisons(c) => extract_comparisons(c, &mut out),
        ObsExpr::Or(items) => {
            for item in items {
                let e = extract_observation(item);
                out.values.extend(e.values);
                out.unsupported.extend(e.unsupported);
            }
        }
        ObsExpr::Together(op) => out.unsupported.push(format!(
            "observations combined with {op} need several events to match"
        )),
        ObsExpr::Qualified => out
            .unsupported
            .push("qualified observations (WITHIN, REPEATS, START/STOP) are not matched".into()),
    }
    out
}

fn extract_comparisons(expr: &CompExpr, out: &mut Extracted) {
    match expr {
        CompExpr::Cmp(c) => extract_comparison(c, out),
        CompExpr::Or(items) => items.iter().for_each(|i| extract_comparisons(i, out)),
        CompExpr::And(items) => {
            // Several hashes of one file: each alone identifies it.
            let all_hashes = items.iter().all(|i| {
                matches!(i, CompExpr::Cmp(c) if !c.negated && c.op == Op::Eq && c.path.hash_algorithm().is_some())
            });
            if all_hashes {
                items.iter().for_each(|i| extract_comparisons(i, out));
            } else {
                out.unsupported.push(
                    "comparisons combined with AND (other than hashes of one file) are not matched"
                        .into(),
                );
            }
        }
    }
}

fn extract_comparison(c: &Comparison, out: &mut Extracted) {
    if c.negated {
        out.unsupported
            .push(format!("NOT {} is not matched", c.path.display()));
        return;
    }
    if target(&c.path).is_none() {
        out.unsupported
            .push(format!("{} is not matched", c.path.display()));
        return;
    }
    let is_ip = matches!(c.path.object.as_str(), "ipv4-addr" | "ipv6-addr");
    match (&c.op, is_ip) {
        (Op::Eq | Op::In, _) | (Op::IsSubset, true) => {}
        (Op::IsSubset, false) | (Op::Other(_), _) => {
            let op = match &c.op {
                Op::Other(o) => o.clone(),
                _ => "ISSUBSET".into(),
            };
            out.unsupported
                .push(format!("{} {op} is not matched", c.path.display()));
            return;
        }
    }
    for value in &c.values {
        match value {
            Some(s) => out.values.push((c.path.clone(), s.clone())),
            None => out.unsupported.push(format!(
                "{}: only string values are matched",
                c.path.display()
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    Str(String),
    /// A literal that is not a plain string: `b'..'`, `h'..'`, `t'..'`, numbers, booleans.
    OtherLiteral,
    Path(Path),
    Word(String),
    Op(String),
}

fn tokenize(pattern: &str) -> Result<Vec<(usize, Token)>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let quoted = quoted_in(&chars);
    while let Some(&c) = chars.get(i) {
        let at = i + 1;
        match c {
            c if c.is_whitespace() => i += 1,
            '[' => {
                tokens.push((at, Token::LBracket));
                i += 1;
            }
            ']' => {
                tokens.push((at, Token::RBracket));
                i += 1;
            }
            '(' => {
                tokens.push((at, Token::LParen));
                i += 1;
            }
            ')' => {
                tokens.push((at, Token::RParen));
                i += 1;
            }
            ',' => {
                tokens.push((at, Token::Comma));
                i += 1;
            }
            '\'' => {
                let s = quoted(&mut i)?;
                tokens.push((at, Token::Str(s)));
            }
            '=' => {
                tokens.push((at, Token::Op("=".into())));
                i += 1;
            }
            '!' | '<' | '>' => {
                let mut op = c.to_string();
                if chars.get(i + 1) == Some(&'=') {
                    op.push('=');
                    i += 1;
                } else if c == '<' && chars.get(i + 1) == Some(&'>') {
                    op.push('>');
                    i += 1;
                }
                if op == "!" {
                    return Err(format!("unexpected '!' at column {at}"));
                }
                tokens.push((at, Token::Op(op)));
                i += 1;
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '+' || c == '.' => {
                let start = i;
                while chars.get(i).is_some_and(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.')
                }) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                // A prefixed literal: b'..', h'..', t'..'.
                if chars.get(i) == Some(&'\'') && matches!(word.as_str(), "b" | "h" | "t") {
                    quoted(&mut i)?;
                    tokens.push((at, Token::OtherLiteral));
                    continue;
                }
                if chars.get(i) == Some(&':') {
                    i += 1;
                    let property = property_path(&chars, &mut i, &quoted)?;
                    if property.is_empty() {
                        return Err(format!(
                            "object path {word}: has no property at column {at}"
                        ));
                    }
                    tokens.push((
                        at,
                        Token::Path(Path {
                            object: word.to_ascii_lowercase(),
                            property,
                        }),
                    ));
                    continue;
                }
                let first = word.chars().next().unwrap_or('x');
                if first.is_ascii_digit()
                    || first == '-'
                    || first == '+'
                    || word == "true"
                    || word == "false"
                {
                    tokens.push((at, Token::OtherLiteral));
                } else {
                    tokens.push((at, Token::Word(word.to_ascii_uppercase())));
                }
            }
            other => return Err(format!("unexpected {other:?} at column {at}")),
        }
    }
    Ok(tokens)
}

/// A string-reading helper for property paths (same rules as literals).
fn quoted_in(chars: &[char]) -> impl Fn(&mut usize) -> Result<String, String> + '_ {
    move |i: &mut usize| {
        let start = *i;
        *i += 1;
        let mut s = String::new();
        loop {
            match chars.get(*i) {
                None => {
                    return Err(format!(
                        "unterminated string starting at column {}",
                        start + 1
                    ))
                }
                Some('\\') => {
                    match chars.get(*i + 1) {
                        Some(c @ ('\'' | '\\')) => s.push(*c),
                        _ => {
                            return Err(format!(
                                "bad escape in string at column {} (only \\' and \\\\)",
                                *i + 1
                            ))
                        }
                    }
                    *i += 2;
                }
                Some('\'') => {
                    *i += 1;
                    return Ok(s);
                }
                Some(c) => {
                    s.push(*c);
                    *i += 1;
                }
            }
        }
    }
}

/// `hashes.'SHA-256'`, `to_refs[*].value`, `extensions.'x'.y[0]`.
fn property_path(
    chars: &[char],
    i: &mut usize,
    quoted: &dyn Fn(&mut usize) -> Result<String, String>,
) -> Result<String, String> {
    let mut property = String::new();
    loop {
        match chars.get(*i) {
            Some('\'') => property.push_str(&quoted(i)?),
            Some(c) if c.is_ascii_alphanumeric() || *c == '_' || *c == '-' => {
                while let Some(c) = chars
                    .get(*i)
                    .filter(|c| c.is_ascii_alphanumeric() || **c == '_' || **c == '-')
                {
                    property.push(*c);
                    *i += 1;
                }
            }
            _ => return Err(format!("bad object path at column {}", *i + 1)),
        }
        if chars.get(*i) == Some(&'[') {
            let start = *i;
            while chars.get(*i).is_some_and(|c| *c != ']') {
                *i += 1;
            }
            if chars.get(*i) != Some(&']') {
                return Err(format!(
                    "unclosed '[' in object path at column {}",
                    start + 1
                ));
            }
            *i += 1;
            property.extend(&chars[start..*i]);
        }
        if chars.get(*i) == Some(&'.') {
            property.push('.');
            *i += 1;
        } else {
            return Ok(property);
        }
    }
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn column(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(c, _)| *c)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(x)) if x == w)
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), String> {
        let column = self.column();
        match self.next() {
            Some(t) if t == token => Ok(()),
            Some(t) => Err(format!("expected {what} at column {column}, found {t:?}")),
            None => Err(format!("expected {what} at the end of the pattern")),
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn observation_or(&mut self) -> Result<ObsExpr, String> {
        let mut items = vec![self.observation_and()?];
        while self.is_word("OR") {
            self.pos += 1;
            items.push(self.observation_and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            ObsExpr::Or(items)
        })
    }

    fn observation_and(&mut self) -> Result<ObsExpr, String> {
        let mut items = vec![self.observation_qualified()?];
        let mut op = None;
        while self.is_word("AND") || self.is_word("FOLLOWEDBY") {
            op = Some(if self.is_word("AND") {
                "AND"
            } else {
                "FOLLOWEDBY"
            });
            self.pos += 1;
            items.push(self.observation_qualified()?);
        }
        Ok(match op {
            None => items.remove(0),
            Some(op) => ObsExpr::Together(op),
        })
    }

    fn observation_qualified(&mut self) -> Result<ObsExpr, String> {
        let mut expr = self.observation()?;
        loop {
            if self.is_word("WITHIN") {
                self.pos += 1;
                self.expect_literal("a number after WITHIN")?;
                self.expect(Token::Word("SECONDS".into()), "SECONDS")?;
            } else if self.is_word("REPEATS") {
                self.pos += 1;
                self.expect_literal("a number after REPEATS")?;
                self.expect(Token::Word("TIMES".into()), "TIMES")?;
            } else if self.is_word("START") {
                self.pos += 1;
                self.expect_literal("a timestamp after START")?;
                self.expect(Token::Word("STOP".into()), "STOP")?;
                self.expect_literal("a timestamp after STOP")?;
            } else {
                return Ok(expr);
            }
            expr = ObsExpr::Qualified;
        }
    }

    fn expect_literal(&mut self, what: &str) -> Result<(), String> {
        let column = self.column();
        match self.next() {
            Some(Token::OtherLiteral | Token::Str(_)) => Ok(()),
            _ => Err(format!("expected {what} at column {column}")),
        }
    }

    fn observation(&mut self) -> Result<ObsExpr, String> {
        let column = self.column();
        match self.next() {
            Some(Token::LBracket) => {
                self.enter()?;
                let c = self.comparison_or()?;
                self.expect(Token::RBracket, "']'")?;
                self.depth -= 1;
                Ok(ObsExpr::Comparisons(c))
            }
            Some(Token::LParen) => {
                self.enter()?;
                let o = self.observation_or()?;
                self.expect(Token::RParen, "')'")?;
                self.depth -= 1;
                Ok(o)
            }
            Some(t) => Err(format!(
                "expected '[' or '(' at column {column}, found {t:?}"
            )),
            None => Err("expected '[' at the end of the pattern".into()),
        }
    }

    fn comparison_or(&mut self) -> Result<CompExpr, String> {
        let mut items = vec![self.comparison_and()?];
        while self.is_word("OR") {
            self.pos += 1;
            items.push(self.comparison_and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            CompExpr::Or(items)
        })
    }

    fn comparison_and(&mut self) -> Result<CompExpr, String> {
        let mut items = vec![self.comparison()?];
        while self.is_word("AND") {
            self.pos += 1;
            items.push(self.comparison()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            CompExpr::And(items)
        })
    }

    fn comparison(&mut self) -> Result<CompExpr, String> {
        if self.peek() == Some(&Token::LParen) {
            self.pos += 1;
            self.enter()?;
            let c = self.comparison_or()?;
            self.expect(Token::RParen, "')'")?;
            self.depth -= 1;
            return Ok(c);
        }
        let column = self.column();
        let path = match self.next() {
            Some(Token::Path(p)) => p,
            Some(t) => {
                return Err(format!(
                    "expected an object path at column {column}, found {t:?}"
                ))
            }
            None => return Err("expected an object path at the end of the pattern".into()),
        };
        let mut negated = false;
        if self.is_word("NOT") {
            negated = true;
            self.pos += 1;
        }
        let column = self.column();
        let op = match self.next() {
            Some(Token::Op(o)) if o == "=" => Op::Eq,
            Some(Token::Op(o)) => Op::Other(o),
            Some(Token::Word(w)) if w == "IN" => Op::In,
            Some(Token::Word(w)) if w == "ISSUBSET" => Op::IsSubset,
            Some(Token::Word(w)) if matches!(w.as_str(), "LIKE" | "MATCHES" | "ISSUPERSET") => {
                Op::Other(w)
            }
            _ => return Err(format!("expected a comparison operator at column {column}")),
        };
        let mut values = Vec::new();
        if op == Op::In {
            self.expect(Token::LParen, "'(' after IN")?;
            loop {
                values.push(self.literal()?);
                let column = self.column();
                match self.next() {
                    Some(Token::Comma) => {}
                    Some(Token::RParen) => break,
                    _ => return Err(format!("expected ',' or ')' at column {column}")),
                }
            }
        } else {
            values.push(self.literal()?);
        }
        Ok(CompExpr::Cmp(Comparison {
            negated,
            path,
            op,
            values,
        }))
    }

    fn literal(&mut self) -> Result<Option<String>, String> {
        let column = self.column();
        match self.next() {
            Some(Token::Str(s)) => Ok(Some(s)),
            Some(Token::OtherLiteral) => Ok(None),
            _ => Err(format!("expected a value at column {column}")),
        }
    }
}

fn parse_pattern(pattern: &str) -> Result<ObsExpr, String> {
    if pattern.len() > 64 * 1024 {
        return Err("pattern longer than 64 KiB".into());
    }
    let tokens = tokenize(pattern).map_err(|e| format!("pattern: {e}"))?;
    let end = pattern.chars().count() + 1;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        end,
    };
    let expr = parser
        .observation_or()
        .map_err(|e| format!("pattern: {e}"))?;
    if parser.pos < parser.tokens.len() {
        return Err(format!(
            "pattern: unexpected text at column {}",
            parser.column()
        ));
    }
    Ok(expr)
}
