//! What the engine needs from an event: field look-up and, for keyword selections, its strings.

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// One field value of an event.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue<'a> {
    /// Present but null (JSON `null`).
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    /// A multi-valued field: it matches when one of its values matches.
    List(Vec<FieldValue<'a>>),
}

impl FieldValue<'_> {
    /// The value as a number, when it is one or a string that parses as one (decimal or `0x` hex).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FieldValue::Int(i) => Some(*i as f64),
            FieldValue::UInt(u) => Some(*u as f64),
            FieldValue::Float(f) => Some(*f),
            FieldValue::Str(s) => parse_number(s),
            _ => None,
        }
    }
}

pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    let b = t.as_bytes();
    // Only plain decimal notation (no "inf", "nan", ...).
    if !b
        .iter()
        .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    t.parse::<f64>().ok()
}

/// An event the engine can evaluate.
///
/// `get` receives a field name as the rule (after the processing pipeline's field mapping) names it.
/// Implementations should try the name as a flat key first and may then look in nested layouts.
pub trait Event {
    /// The value of `field`, or `None` when the event has no such field.
    fn get(&self, field: &str) -> Option<FieldValue<'_>>;
    /// Calls `visit` with every string value of the event (numbers rendered as text), for keyword
    /// (keyless) selections. Stops early when `visit` returns `true`.
    fn visit_strings(&self, visit: &mut dyn FnMut(&str) -> bool);
    /// A text in which every string value that [`Event::visit_strings`] visits appears whole
    /// (numbers and booleans need not), such as the buffer the event keeps its strings in, with
    /// anything else between them. Optional: the engine scans it once for keywords and visits
    /// the strings one by one only when it finds one, which saves most of the keyword cost.
    fn string_buffer(&self) -> Option<&str> {
        None
    }
}

impl<E: Event + ?Sized> Event for &E {
    fn get(&self, field: &str) -> Option<FieldValue<'_>> {
        (**self).get(field)
    }
    fn visit_strings(&self, visit: &mut dyn FnMut(&str) -> bool) {
        (**self).visit_strings(visit)
    }
    fn string_buffer(&self) -> Option<&str> {
        (**self).string_buffer()
    }
}

fn json_to_field(v: &Value) -> FieldValue<'_> {
    match v {
        Value::Null => FieldValue::Null,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                FieldValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                FieldValue::UInt(u)
            } else {
                FieldValue::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => FieldValue::Str(Cow::Borrowed(s)),
        Value::Array(a) => FieldValue::List(a.iter().map(json_to_field).collect()),
        Value::Object(o) => match o.get("#text") {
            Some(t) => json_to_field(t),
            None => FieldValue::Str(Cow::Owned(v.to_string())),
        },
    }
}

/// Looks `field` up in a JSON object, in this order:
/// 1. the flat key (`"Image"`, `"EventID"`, `"winlog.channel"` ...);
/// 2. the evtx-crate layout (`Event.EventData.X`, `Event.UserData.*.X`, `Event.System.X`, and
///    `Event.System.A.#attributes.B` for `A_B`, e.g. `Provider_Name`), also without the `Event` wrapper;
/// 3. Winlogbeat's `winlog.event_data.X`;
/// 4. the dotted path (`process.executable` → `{"process": {"executable": ..}}`).
///
/// Names with spaces (Defender's `Threat Name`) are found without them (`ThreatName`), as Sigma
/// rules write them, at the top level and in `EventData`, `UserData` and `winlog.event_data`.
pub fn json_lookup<'a>(root: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    if let Some(v) = root.get(field) {
        return Some(v);
    }
    let ev = match root.get("Event") {
        Some(Value::Object(o)) => Some(o),
        _ => None,
    };
    for base in ev.into_iter().chain(std::iter::once(root)) {
        if let Some(Value::Object(ed)) = base.get("EventData") {
            if let Some(v) = ed.get(field) {
                return Some(v);
            }
            // Sigma strips spaces from Windows field names ("Source Name" -> SourceName).
            if let Some(v) = find_spaced(ed, field) {
                return Some(v);
            }
        }
        if let Some(Value::Object(ud)) = base.get("UserData") {
            for inner in ud.values() {
                if let Value::Object(io) = inner {
                    if let Some(v) = io.get(field).or_else(|| find_spaced(io, field)) {
                        return Some(v);
                    }
                }
            }
        }
        if let Some(Value::Object(sys)) = base.get("System") {
            if let Some(v) = sys.get(field) {
                return Some(v);
            }
            if let Some((a, b)) = field.split_once('_') {
                if let Some(Value::Object(ao)) = sys.get(a) {
                    if let Some(Value::Object(attrs)) = ao.get("#attributes") {
                        if let Some(v) = attrs.get(b) {
                            return Some(v);
                        }
                    }
                }
            }
        }
    }
    if let Some(Value::Object(w)) = root.get("winlog") {
        if let Some(Value::Object(ed)) = w.get("event_data") {
            if let Some(v) = ed.get(field).or_else(|| find_spaced(ed, field)) {
                return Some(v);
            }
        }
    }
    if field.contains('.') {
        let mut cur: &Map<String, Value> = root;
        let mut parts = field.split('.').peekable();
        while let Some(p) = parts.next() {
            let v = cur.get(p)?;
            if parts.peek().is_none() {
                return Some(v);
            }
            match v {
                Value::Object(o) => cur = o,
                _ => return None,
            }
        }
    }
    // Sigma names fields without their spaces (`Threat Name` -> `ThreatName`), also flat ones.
    find_spaced(root, field)
}

fn find_spaced<'a>(m: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    if field.is_empty() || field.contains(' ') {
        return None;
    }
    m.iter()
        .find(|(k, _)| k.contains(' ') && k.bytes().filter(|b| *b != b' ').eq(field.bytes()))
        .map(|(_, v)| v)
}

fn visit_json(v: &Value, visit: &mut dyn FnMut(&str) -> bool) -> bool {
    match v {
        Value::String(s) => visit(s),
        Value::Number(n) => visit(&n.to_string()),
        Value::Array(a) => a.iter().any(|x| visit_json(x, visit)),
        Value::Object(o) => o.values().any(|x| visit_json(x, visit)),
        _ => false,
    }
}

impl Event for Map<String, Value> {
    fn get(&self, field: &str) -> Option<FieldValue<'_>> {
        json_lookup(self, field).map(json_to_field)
    }
    fn visit_strings(&self, visit: &mut dyn FnMut(&str) -> bool) {
        for v in self.values() {
            if visit_json(v, visit) {
                return;
            }
        }
    }
}

impl Event for Value {
    fn get(&self, field: &str) -> Option<FieldValue<'_>> {
        match self {
            Value::Object(o) => json_lookup(o, field).map(json_to_field),
            _ => None,
        }
    }
    fn visit_strings(&self, visit: &mut dyn FnMut(&str) -> bool) {
        visit_json(self, visit);
    }
}

macro_rules! string_map_event {
    ($t:ty) => {
        impl Event for $t {
            fn get(&self, field: &str) -> Option<FieldValue<'_>> {
                self.get(field)
                    .map(|s| FieldValue::Str(Cow::Borrowed(s.as_str())))
            }
            fn visit_strings(&self, visit: &mut dyn FnMut(&str) -> bool) {
                for v in self.values() {
                    if visit(v) {
                        return;
                    }
                }
            }
        }
    };
}
string_map_event!(HashMap<String, String>);
string_map_event!(BTreeMap<String, String>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evtx_layout() {
        let v: Value = serde_json::from_str(
            r##"{"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon"}},
            "EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational"},
            "EventData":{"Image":"C:\\x.exe"}}}"##,
        )
        .unwrap();
        let m = v.as_object().unwrap();
        assert_eq!(
            Event::get(m, "Image"),
            Some(FieldValue::Str("C:\\x.exe".into()))
        );
        assert_eq!(Event::get(m, "EventID"), Some(FieldValue::Int(1)));
        assert_eq!(
            Event::get(m, "Provider_Name"),
            Some(FieldValue::Str("Microsoft-Windows-Sysmon".into()))
        );
        assert_eq!(Event::get(m, "Missing"), None);
    }

    #[test]
    fn dotted_and_flat() {
        let v: Value = serde_json::from_str(
            r#"{"a.b":1,"process":{"executable":"x"},"winlog":{"event_data":{"Y":"z"}}}"#,
        )
        .unwrap();
        let m = v.as_object().unwrap();
        assert_eq!(Event::get(m, "a.b"), Some(FieldValue::Int(1)));
        assert_eq!(
            Event::get(m, "process.executable"),
            Some(FieldValue::Str("x".into()))
        );
        assert_eq!(Event::get(m, "Y"), Some(FieldValue::Str("z".into())));
    }

    #[test]
    fn spaced_names() {
        let v: Value = serde_json::from_str(
            r#"{"Threat Name":"EICAR","winlog":{"event_data":{"Source Name":"x"}},
            "Event":{"UserData":{"R":{"Process Name":"p"}}}}"#,
        )
        .unwrap();
        let m = v.as_object().unwrap();
        assert_eq!(
            Event::get(m, "ThreatName"),
            Some(FieldValue::Str("EICAR".into()))
        );
        assert_eq!(
            Event::get(m, "Threat Name"),
            Some(FieldValue::Str("EICAR".into()))
        );
        assert_eq!(
            Event::get(m, "SourceName"),
            Some(FieldValue::Str("x".into()))
        );
        assert_eq!(
            Event::get(m, "ProcessName"),
            Some(FieldValue::Str("p".into()))
        );
        assert_eq!(Event::get(m, "Threat"), None);
    }
}
