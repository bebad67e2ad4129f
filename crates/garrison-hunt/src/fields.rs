//! [`Fields`]: an event's flat fields, stored compactly (one text buffer, one entry table), so
//! that reading an event costs a few allocations instead of two per field.

use serde_json::{Map, Value};
use std::fmt;

/// Where a piece of text lies in [`Fields`]' buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Slot {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Span),
    /// Elements `start..end` of the item table.
    List(u32, u32),
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Entry {
    hash: u32,
    key: Span,
    value: Slot,
}

/// An event's fields: flat names (see [`crate::event`] for the layout) to scalar values or
/// lists of scalars. Insertion order is kept; a name is present at most once.
#[derive(Clone, Default, PartialEq)]
pub struct Fields {
    text: String,
    entries: Vec<Entry>,
    items: Vec<Slot>,
    /// Open-addressing index over `entries` (entry index + 1, 0 = empty; length a power of two,
    /// at least twice the entries), or empty while it is not worth it or too large.
    index: Vec<u32>,
    /// Some name was made from a nested object (`a.b`).
    dotted: bool,
    /// Some name is under Winlogbeat's `winlog.event_data.` or `event_data.`.
    event_data: bool,
}

/// Below this many fields a linear scan is as fast as the index.
const INDEX_FROM: usize = 8;

/// A borrowed field value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldRef<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
    List(ListRef<'a>),
}

/// A borrowed list value.
#[derive(Clone, Copy, PartialEq)]
pub struct ListRef<'a> {
    fields: &'a Fields,
    items: &'a [Slot],
}

impl fmt::Debug for ListRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> ListRef<'a> {
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = FieldRef<'a>> + 'a {
        let fields = self.fields;
        self.items.iter().map(move |s| fields.resolve(*s))
    }
}

impl FieldRef<'_> {
    /// The value as JSON.
    pub fn to_json(&self) -> Value {
        match *self {
            FieldRef::Null => Value::Null,
            FieldRef::Bool(b) => Value::Bool(b),
            FieldRef::Int(i) => Value::from(i),
            FieldRef::UInt(u) => Value::from(u),
            FieldRef::Float(f) => Value::from(f),
            FieldRef::Str(s) => Value::String(s.to_string()),
            FieldRef::List(l) => Value::Array(l.iter().map(|v| v.to_json()).collect()),
        }
    }

    /// The value as text: strings as they are, numbers and booleans formatted, lists joined
    /// by `, `; `None` for null.
    pub fn to_text(&self) -> Option<String> {
        match *self {
            FieldRef::Null => None,
            FieldRef::Bool(b) => Some(b.to_string()),
            FieldRef::Int(i) => Some(i.to_string()),
            FieldRef::UInt(u) => Some(u.to_string()),
            FieldRef::Float(f) => Some(f.to_string()),
            FieldRef::Str(s) => Some(s.to_string()),
            FieldRef::List(l) => Some(
                l.iter()
                    .filter_map(|v| v.to_text())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an unsigned integer (numbers, and strings holding decimal digits).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            FieldRef::Int(i) => u64::try_from(i).ok(),
            FieldRef::UInt(u) => Some(u),
            FieldRef::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

#[inline]
fn hash_key(key: &[u8]) -> u32 {
    // FxHash over 8-byte words: keys are short, this is a few multiplications.
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = key.len() as u64;
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    (h >> 32) as u32
}

impl Fields {
    pub fn new() -> Self {
        Fields::default()
    }

    pub(crate) fn with_capacity(text: usize, entries: usize) -> Self {
        Fields {
            text: String::with_capacity(text),
            entries: Vec::with_capacity(entries),
            items: Vec::new(),
            index: Vec::new(),
            dotted: false,
            event_data: false,
        }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn text_of(&self, span: Span) -> &str {
        &self.text[span.start as usize..span.end as usize]
    }

    fn resolve(&self, slot: Slot) -> FieldRef<'_> {
        match slot {
            Slot::Null => FieldRef::Null,
            Slot::Bool(b) => FieldRef::Bool(b),
            Slot::Int(i) => FieldRef::Int(i),
            Slot::UInt(u) => FieldRef::UInt(u),
            Slot::Float(f) => FieldRef::Float(f),
            Slot::Str(s) => FieldRef::Str(self.text_of(s)),
            Slot::List(a, b) => FieldRef::List(ListRef {
                fields: self,
                items: &self.items[a as usize..b as usize],
            }),
        }
    }

    fn find(&self, key: &str) -> Option<usize> {
        self.find_hashed(key, hash_key(key.as_bytes()))
    }

    fn find_hashed(&self, key: &str, hash: u32) -> Option<usize> {
        if self.index.is_empty() {
            return self
                .entries
                .iter()
                .position(|e| e.hash == hash && self.text_of(e.key) == key);
        }
        let mask = self.index.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = self.index[i] as usize;
            if slot == 0 {
                return None;
            }
            let e = &self.entries[slot - 1];
            if e.hash == hash && self.text_of(e.key) == key {
                return Some(slot - 1);
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds the last entry to the index, growing (or dropping) the index as needed.
    fn index_last(&mut self) {
        let n = self.entries.len();
        if n < INDEX_FROM || n >= (u32::MAX / 4) as usize {
            self.index.clear();
            return;
        }
        if self.index.len() < 2 * n {
            let size = (4 * n).next_power_of_two().max(64);
            self.index.clear();
            self.index.resize(size, 0);
            for i in 0..n {
                self.index_insert(i);
            }
        } else {
            self.index_insert(n - 1);
        }
    }

    fn index_insert(&mut self, entry: usize) {
        let mask = self.index.len() - 1;
        let mut i = self.entries[entry].hash as usize & mask;
        while self.index[i] != 0 {
            i = (i + 1) & mask;
        }
        self.index[i] = (entry + 1) as u32;
    }

    /// The value of the field named exactly `key`.
    pub fn get(&self, key: &str) -> Option<FieldRef<'_>> {
        self.find(key).map(|i| self.resolve(self.entries[i].value))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// Fields in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, FieldRef<'_>)> + '_ {
        self.entries
            .iter()
            .map(|e| (self.text_of(e.key), self.resolve(e.value)))
    }

    /// Calls `visit` with every string value, lists included; numbers and booleans rendered as
    /// text. Stops when `visit` returns true.
    pub fn visit_strings(&self, visit: &mut dyn FnMut(&str) -> bool) {
        fn one(v: FieldRef<'_>, visit: &mut dyn FnMut(&str) -> bool) -> bool {
            match v {
                FieldRef::Str(s) => visit(s),
                FieldRef::List(l) => l.iter().any(|x| one(x, visit)),
                FieldRef::Null => false,
                other => other.to_text().is_some_and(|t| visit(&t)),
            }
        }
        for (_, v) in self.iter() {
            if one(v, visit) {
                return;
            }
        }
    }

    /// The buffer holding every name and string value, each whole (see
    /// `garrison_sigma::Event::string_buffer`).
    pub fn text_buffer(&self) -> &str {
        &self.text
    }

    /// The fields as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_json()))
            .collect()
    }

    /// Builds fields from a flat JSON object (nested objects become dotted names, see
    /// [`crate::event::flatten_value`] for the evtx layout).
    pub fn from_map(map: &Map<String, Value>) -> Self {
        let mut f = Fields::new();
        for (k, v) in map {
            let key = f.push_text(k);
            f.put_json(key, v, false);
        }
        f
    }

    /// Adds `key` with `value` (a nested object becomes dotted names) unless the event
    /// already has a field of that name: what the sender gave always wins.
    pub fn add_missing(&mut self, key: &str, value: &Value) -> bool {
        if self.contains_key(key) {
            return false;
        }
        let span = self.push_text(key);
        self.put_json(span, value, false);
        true
    }

    /// Adds every field of `other` this event does not have (see [`Fields::add_missing`]).
    pub fn add_missing_from(&mut self, other: &Fields) {
        for (key, value) in other.iter() {
            if !self.contains_key(key) {
                self.add_missing(key, &value.to_json());
            }
        }
    }

    // --- building ---

    pub(crate) fn push_text(&mut self, s: &str) -> Span {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Span {
            start,
            end: self.text.len() as u32,
        }
    }

    /// Whether some name was made from a nested object (`{"a": {"b": 1}}` → `a.b`).
    pub fn has_dotted_names(&self) -> bool {
        self.dotted
    }

    /// Whether some name is under Winlogbeat's `winlog.event_data.` or `event_data.`.
    pub fn has_event_data_names(&self) -> bool {
        self.event_data
    }

    /// `a` + `sep` + `b` as a new key.
    pub(crate) fn join_key(&mut self, a: Span, sep: char, b: &str) -> Span {
        self.dotted |= sep == '.';
        let start = self.text.len() as u32;
        // Stable since 1.87; this crate's dependencies (zip 9, evtx 0.15) already need 1.89.
        #[allow(clippy::incompatible_msrv)]
        self.text
            .extend_from_within(a.start as usize..a.end as usize);
        self.text.push(sep);
        self.text.push_str(b);
        Span {
            start,
            end: self.text.len() as u32,
        }
    }

    pub(crate) fn span_text(&self, span: Span) -> &str {
        self.text_of(span)
    }

    pub(crate) fn str_slot(&mut self, s: &str) -> Slot {
        Slot::Str(self.push_text(s))
    }

    pub(crate) fn list_slot(&mut self, items: Vec<Slot>) -> Slot {
        let a = self.items.len() as u32;
        self.items.extend(items);
        Slot::List(a, self.items.len() as u32)
    }

    /// Sets `key` (a span of this buffer). With `data`, an existing value is displaced to
    /// `System_<key>` (kept if that is free) instead of being dropped.
    ///
    /// Data names with spaces (Defender's `Threat Name`) are also put without them
    /// (`ThreatName`), as Sigma rules name them, unless the event has that name too.
    pub(crate) fn put(&mut self, key: Span, value: Slot, data: bool) {
        if data && self.text_of(key).contains(' ') {
            let alias: String = self.text_of(key).chars().filter(|c| *c != ' ').collect();
            if !alias.is_empty() && !self.contains_key(&alias) {
                let alias = self.push_text(&alias);
                self.put_one(alias, value, false);
            }
        }
        self.put_one(key, value, data);
    }

    fn put_one(&mut self, key: Span, value: Slot, data: bool) {
        // Winlogbeat's data names, nested or sent already dotted (`winlog.event_data.Image`,
        // as `garrison ingest` sends them): the short Sigma name finds them (see
        // `HuntEvent::get`). Checked per name, so events without them pay no fallback lookups.
        if !self.event_data {
            let name = self.text_of(key).as_bytes();
            self.event_data =
                name.starts_with(b"winlog.event_data.") || name.starts_with(b"event_data.");
        }
        let hash = hash_key(self.text_of(key).as_bytes());
        let found = self.find_hashed(self.text_of(key), hash);
        match found {
            None => {
                self.entries.push(Entry { hash, key, value });
                self.index_last();
            }
            Some(i) => {
                let old = std::mem::replace(&mut self.entries[i].value, value);
                if data {
                    let sys = self.join_key_prefix("System_", key);
                    if !self.contains_key(self.text_of(sys)) {
                        let hash = hash_key(self.text_of(sys).as_bytes());
                        self.entries.push(Entry {
                            hash,
                            key: sys,
                            value: old,
                        });
                        self.index_last();
                    }
                }
            }
        }
    }

    fn join_key_prefix(&mut self, prefix: &str, key: Span) -> Span {
        let start = self.text.len() as u32;
        self.text.push_str(prefix);
        #[allow(clippy::incompatible_msrv)]
        self.text
            .extend_from_within(key.start as usize..key.end as usize);
        Span {
            start,
            end: self.text.len() as u32,
        }
    }

    /// Puts a JSON value: scalars and lists as they are, objects as dotted names; a list's
    /// elements that are objects or lists are kept as their JSON text.
    pub(crate) fn put_json(&mut self, key: Span, v: &Value, data: bool) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    let sub = self.join_key(key, '.', k);
                    self.put_json(sub, v, data);
                }
            }
            other => {
                let slot = self.json_slot(other);
                self.put(key, slot, data);
            }
        }
    }

    pub(crate) fn json_slot(&mut self, v: &Value) -> Slot {
        match v {
            Value::Null => Slot::Null,
            Value::Bool(b) => Slot::Bool(*b),
            Value::Number(n) => number_slot(n),
            Value::String(s) => self.str_slot(s),
            Value::Array(items) => {
                let slots = items
                    .iter()
                    .map(|i| match i {
                        Value::Array(_) | Value::Object(_) => self.str_slot(&i.to_string()),
                        scalar => self.json_slot(scalar),
                    })
                    .collect();
                self.list_slot(slots)
            }
            Value::Object(_) => self.str_slot(&v.to_string()),
        }
    }
}

pub(crate) fn number_slot(n: &serde_json::Number) -> Slot {
    if let Some(u) = n.as_u64() {
        Slot::UInt(u)
    } else if let Some(i) = n.as_i64() {
        Slot::Int(i)
    } else {
        Slot::Float(n.as_f64().unwrap_or(0.0))
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_fields_are_indexed() {
        let mut f = Fields::new();
        for i in 0..300 {
            let k = f.push_text(&format!("field{i}"));
            f.put(k, Slot::UInt(i), i % 2 == 0);
        }
        // A hostile object with very many names stays fast (no quadratic scan).
        let mut big = Fields::new();
        for i in 0..200_000u64 {
            let k = big.push_text(&format!("k{i}"));
            big.put(k, Slot::UInt(i), false);
        }
        assert_eq!(big.get("k199999"), Some(FieldRef::UInt(199_999)));
        // Overwrites keep one entry per name.
        for i in 0..300 {
            let k = f.push_text(&format!("field{i}"));
            f.put(k, Slot::UInt(i + 1000), false);
        }
        assert_eq!(f.len(), 300);
        for i in 0..300 {
            assert_eq!(f.get(&format!("field{i}")), Some(FieldRef::UInt(i + 1000)));
        }
        assert_eq!(f.get("field300"), None);
        assert_eq!(f.iter().next().map(|(k, _)| k), Some("field0"));
    }

    #[test]
    fn put_get_and_displace() {
        let mut f = Fields::new();
        let k = f.push_text("Computer");
        let v = f.str_slot("sys");
        f.put(k, v, false);
        let k = f.push_text("Computer");
        let v = f.str_slot("data");
        f.put(k, v, true);
        assert_eq!(f.get("Computer"), Some(FieldRef::Str("data")));
        assert_eq!(f.get("System_Computer"), Some(FieldRef::Str("sys")));
        assert_eq!(f.len(), 2);
        assert_eq!(f.get("computer"), None);
        let k = f.push_text("Threat Name");
        let v = f.str_slot("EICAR");
        f.put(k, v, true);
        assert_eq!(f.get("ThreatName"), Some(FieldRef::Str("EICAR")));
        assert_eq!(f.get("Threat Name"), Some(FieldRef::Str("EICAR")));
        let m: Map<String, Value> =
            serde_json::from_str(r#"{"a":{"b":[1,"x"],"c":null},"d":[{"e":1}],"n":-3,"f":1.5}"#)
                .unwrap();
        let f = Fields::from_map(&m);
        assert_eq!(f.get("a.c"), Some(FieldRef::Null));
        assert_eq!(f.get("n"), Some(FieldRef::Int(-3)));
        assert_eq!(
            f.get("d").and_then(|v| v.to_text()),
            Some(r#"{"e":1}"#.to_string())
        );
        assert_eq!(
            f.get("a.b").map(|v| v.to_json()),
            Some(serde_json::json!([1, "x"]))
        );
        assert_eq!(
            f.get("a.b").and_then(|v| v.to_text()),
            Some("1, x".to_string())
        );
        let mut seen = Vec::new();
        f.visit_strings(&mut |s| {
            seen.push(s.to_string());
            false
        });
        assert_eq!(seen, ["1", "x", r#"{"e":1}"#, "-3", "1.5"]);
    }
}
