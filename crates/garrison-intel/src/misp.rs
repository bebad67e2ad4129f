//! MISP event JSON, as MISP feeds and exports write it: `{"Event": {...}}`, a list of those,
//! or a REST search answer `{"response": [{"Event": ...}]}`.
//!
//! Attributes of the event and of its objects (`Object[].Attribute[]`) become indicators by
//! type: `ip-src`, `ip-dst` (an address or a CIDR), `ip-src|port`, `ip-dst|port`, `domain`,
//! `hostname`, `hostname|port`, `domain|ip` (both), `url`, `md5`, `sha1`, `sha256`, `sha512`,
//! `filename|md5` (and the other hashes), `malware-sample`, `email`, `email-src`,
//! `email-dst`, `email-reply-to`, `whois-registrant-email`. Attributes with `to_ids: false` and
//! other types are skipped (listed in [`ParseOutput::skipped`]). `timestamp` (or
//! `first_seen`) is the first seen time, `comment` the description (else the event's `info`),
//! and event and attribute tags (`Tag[].name`) the tags. MISP has no per-attribute
//! confidence: the import's default applies.

use serde_json::{Map, Value};

use crate::parse::{parse_time, pointer_segment, ImportOptions, Location, ParseError, ParseOutput};
use crate::{Indicator, IndicatorValue};

/// Parses MISP event JSON (see the module docs).
pub fn parse_misp(input: &[u8], options: &ImportOptions) -> ParseOutput {
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
    let top = |reason: &str| ParseError {
        location: Location::Json {
            pointer: String::new(),
            id: None,
        },
        reason: reason.to_string(),
    };
    match &document {
        Value::Object(map) if map.contains_key("Event") => event(
            map.get("Event").unwrap_or(&Value::Null),
            "/Event",
            options,
            &mut out,
        ),
        Value::Object(map) if map.contains_key("response") => match map.get("response") {
            Some(Value::Array(items)) => events(items, "/response", options, &mut out),
            _ => out.errors.push(top("\"response\" is not an array")),
        },
        Value::Array(items) => events(items, "", options, &mut out),
        Value::Object(map)
            if !map.is_empty()
                && map
                    .values()
                    .all(|v| v.get("info").is_some() && v.get("Attribute").is_none()) =>
        {
            out.errors.push(top(
                "this is a MISP feed manifest (manifest.json): import the event files it lists",
            ))
        }
        Value::Object(map) if map.contains_key("Attribute") => {
            event(&document, "", options, &mut out)
        }
        _ => out
            .errors
            .push(top("not a MISP event: expected {\"Event\": {...}}")),
    }
    out
}

fn events(items: &[Value], pointer: &str, options: &ImportOptions, out: &mut ParseOutput) {
    for (i, item) in items.iter().enumerate() {
        match item.get("Event") {
            Some(e) => event(e, &format!("{pointer}/{i}/Event"), options, out),
            None => out.errors.push(ParseError {
                location: Location::Json {
                    pointer: format!("{pointer}/{i}"),
                    id: None,
                },
                reason: "no \"Event\"".into(),
            }),
        }
    }
}

fn tag_names(map: &Map<String, Value>) -> Vec<String> {
    match map.get("Tag") {
        Some(Value::Array(tags)) => tags
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

struct EventContext {
    tags: Vec<String>,
    info: Option<String>,
}

fn event(value: &Value, pointer: &str, options: &ImportOptions, out: &mut ParseOutput) {
    let Value::Object(map) = value else {
        out.errors.push(ParseError {
            location: Location::Json {
                pointer: pointer.to_string(),
                id: None,
            },
            reason: "the event is not a JSON object".into(),
        });
        return;
    };
    let context = EventContext {
        tags: tag_names(map),
        info: map.get("info").and_then(Value::as_str).map(str::to_string),
    };
    let id = map.get("uuid").and_then(Value::as_str).map(str::to_string);
    attributes(map, pointer, &id, &context, options, out);
    match map.get("Object") {
        None | Some(Value::Null) => {}
        Some(Value::Array(objects)) => {
            for (i, object) in objects.iter().enumerate() {
                let at = format!("{pointer}/Object/{i}");
                match object {
                    Value::Object(o) => {
                        let oid = o.get("uuid").and_then(Value::as_str).map(str::to_string);
                        attributes(o, &at, &oid, &context, options, out);
                    }
                    _ => out.errors.push(ParseError {
                        location: Location::Json {
                            pointer: at,
                            id: None,
                        },
                        reason: "not a JSON object".into(),
                    }),
                }
            }
        }
        Some(_) => out.errors.push(ParseError {
            location: Location::Json {
                pointer: format!("{pointer}/Object"),
                id,
            },
            reason: "\"Object\" is not an array".into(),
        }),
    }
}

fn attributes(
    map: &Map<String, Value>,
    pointer: &str,
    owner: &Option<String>,
    context: &EventContext,
    options: &ImportOptions,
    out: &mut ParseOutput,
) {
    match map.get("Attribute") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                attribute(
                    item,
                    &format!("{pointer}/Attribute/{i}"),
                    context,
                    options,
                    out,
                );
            }
        }
        Some(_) => out.errors.push(ParseError {
            location: Location::Json {
                pointer: format!("{pointer}/Attribute"),
                id: owner.clone(),
            },
            reason: "\"Attribute\" is not an array".into(),
        }),
    }
}

/// MISP writes booleans as `true`, `"1"`, `1` or `"true"` depending on the version.
fn truthy(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => Some(n.as_i64() != Some(0)),
        Value::String(s) => Some(matches!(s.as_str(), "1" | "true" | "True")),
        _ => None,
    }
}

fn attribute(
    value: &Value,
    pointer: &str,
    context: &EventContext,
    options: &ImportOptions,
    out: &mut ParseOutput,
) {
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
    let id = map.get("uuid").and_then(Value::as_str).map(str::to_string);
    let at = |field: &str| Location::Json {
        pointer: format!("{pointer}/{}", pointer_segment(field)),
        id: id.clone(),
    };
    let fail = |field: &str, reason: String| ParseError {
        location: at(field),
        reason,
    };
    let (Some(kind), Some(text)) = (
        map.get("type").and_then(Value::as_str),
        map.get("value").and_then(Value::as_str),
    ) else {
        out.errors.push(fail(
            "type",
            "an attribute needs a string \"type\" and \"value\"".into(),
        ));
        return;
    };
    if truthy(map.get("deleted")) == Some(true) {
        out.skipped.push(fail("deleted", "deleted".into()));
        return;
    }
    if !options.misp_include_non_ids && truthy(map.get("to_ids")) == Some(false) {
        out.skipped.push(fail(
            "to_ids",
            "to_ids is false (context, not for detection)".into(),
        ));
        return;
    }
    // (type name for the value parser, part of a composite value) per indicator.
    let part = |n: usize| text.split('|').nth(n).unwrap_or("");
    let values: Vec<(&str, &str)> = match kind {
        "ip-src" | "ip-dst" => vec![("ip", text)],
        "ip-src|port" | "ip-dst|port" => vec![("ip", part(0))],
        "domain" | "hostname" => vec![("domain", text)],
        "hostname|port" => vec![("domain", part(0))],
        "domain|ip" => vec![("domain", part(0)), ("ip", part(1))],
        "url" => vec![("url", text)],
        "md5" | "sha1" | "sha256" | "sha512" => vec![(kind, text)],
        "filename|md5" | "filename|sha1" | "filename|sha256" | "filename|sha512" => {
            vec![(kind.trim_start_matches("filename|"), part(1))]
        }
        "malware-sample" => vec![("md5", part(1))],
        "email" | "email-src" | "email-dst" | "email-reply-to" | "whois-registrant-email" => {
            vec![("email", text)]
        }
        other => {
            out.skipped.push(fail(
                "type",
                format!("type {other:?} is not an indicator kind"),
            ));
            return;
        }
    };
    let first_seen = match map.get("first_seen").and_then(Value::as_str) {
        Some(t) => match parse_time(t) {
            Ok(t) => Some(t),
            Err(e) => {
                out.errors.push(fail("first_seen", e));
                return;
            }
        },
        None => match map.get("timestamp") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match parse_time(s) {
                Ok(t) => Some(t),
                Err(e) => {
                    out.errors.push(fail("timestamp", e));
                    return;
                }
            },
            Some(Value::Number(n)) => match n
                .as_i64()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
            {
                Some(t) => Some(t),
                None => {
                    out.errors
                        .push(fail("timestamp", format!("{n} is not a Unix time")));
                    return;
                }
            },
            Some(_) => {
                out.errors.push(fail("timestamp", "not a Unix time".into()));
                return;
            }
        },
    };
    let mut tags = context.tags.clone();
    for t in tag_names(map) {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let description = map
        .get("comment")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .or_else(|| context.info.clone());
    for (type_name, text) in values {
        match IndicatorValue::parse_named(type_name, text) {
            Ok(v) => {
                let mut i = Indicator::new(v, options.source.clone());
                i.confidence = options.default_confidence;
                i.first_seen = first_seen;
                i.tags = tags.clone();
                i.description = description.clone();
                options.finish(&mut i);
                out.indicators.push(i);
            }
            Err(e) => out.errors.push(fail("value", e.to_string())),
        }
    }
}
