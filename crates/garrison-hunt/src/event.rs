//! One event read from a log file, in the flat layout the Sigma engine evaluates fastest.
//!
//! # Layout
//!
//! Windows events (from `.evtx` files, or JSON in the evtx crate's `{"Event": {"System": ..,
//! "EventData": ..}}` layout such as SigmaHQ's regression data) are flattened into one map:
//!
//! * `System` children by name (`EventID`, `Channel`, `Computer`, `Level`, `Keywords`,
//!   `EventRecordID`, ...), and their XML attributes as `Element_Attribute` (`Provider_Name`,
//!   `Provider_Guid`, `TimeCreated_SystemTime`, `Execution_ProcessID`, `Security_UserID`,
//!   `EventID_Qualifiers`, ...);
//! * `EventData` and `UserData` leaves by their own name (`Image`, `CommandLine`, ...; the
//!   wrapper element inside `UserData` is dropped); an element with attributes and text gives
//!   `Name` = text and `Name_Attribute` = attribute; unnamed `<Data>` elements give `Data` (a
//!   string, or a list when there are several);
//! * `EventData`/`UserData` names with spaces (Defender's `Threat Name`) are also given without
//!   them (`ThreatName`), as Sigma rules name such fields;
//! * where an `EventData`/`UserData` name equals a `System` one, the data value wins (as in the
//!   engine's own look-up of the nested layout) and the `System` value is kept as `System_Name`.
//!
//! Other JSON objects (Winlogbeat, NXLog, OTRF exports, ...) keep their names; nested objects
//! become dotted names (`{"winlog": {"channel": ..}}` → `winlog.channel`). Lists stay lists;
//! a list element that is an object or a list is kept as its JSON text.

use crate::fields::{number_slot, FieldRef, Fields, Slot, Span};
use jiff::Timestamp;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// One event and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct HuntEvent {
    /// The event's fields (see the module docs for the layout).
    pub fields: Fields,
    /// The file it was read from; for an archive member `archive.zip:inner/path`.
    pub file: Arc<str>,
    /// The EVTX record id (from the record header), if the event came from an EVTX file.
    pub record_id: Option<u64>,
    /// The EVTX record header's time, if the event came from an EVTX file.
    pub header_time: Option<Timestamp>,
}

/// What a hit reports about its event, extracted from the fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventMeta {
    pub timestamp: Option<Timestamp>,
    pub computer: Option<String>,
    pub channel: Option<String>,
    pub event_id: Option<u32>,
    pub provider: Option<String>,
    pub record_id: Option<u64>,
}

const TIME_FIELDS: &[&str] = &[
    "TimeCreated_SystemTime",
    "System_TimeCreated_SystemTime",
    "@timestamp",
    "timestamp",
    "EventTime",
    "UtcTime",
    "event.created",
    "winlog.time_created",
    // Zeek: epoch seconds with a fraction.
    "ts",
];
const COMPUTER_FIELDS: &[&str] = &[
    "System_Computer",
    "Computer",
    "Hostname",
    "computer_name",
    "winlog.computer_name",
    "host.name",
    "host.hostname",
    "ComputerName",
];
const CHANNEL_FIELDS: &[&str] = &["System_Channel", "Channel", "winlog.channel", "log_name"];
const EVENT_ID_FIELDS: &[&str] = &[
    "System_EventID",
    "EventID",
    "winlog.event_id",
    "event.code",
    // Winlogbeat 6.
    "event_id",
];
const PROVIDER_FIELDS: &[&str] = &[
    "System_Provider_Name",
    "Provider_Name",
    "SourceName",
    "winlog.provider_name",
    "ProviderName",
    "Provider",
];
const RECORD_ID_FIELDS: &[&str] = &[
    "System_EventRecordID",
    "EventRecordID",
    "RecordNumber",
    "winlog.record_id",
    "record_id",
];

/// Parses the timestamps found in Windows logs and their JSON exports: RFC 3339
/// (`2025-11-27T07:40:10.165324Z`), and `YYYY-MM-DD HH:MM:SS[.fff]` taken as UTC.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    // Civil time without an offset: Sysmon's UtcTime, NXLog's EventTime. Taken as UTC.
    let civil: jiff::civil::DateTime = s.replacen(' ', "T", 1).parse().ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

impl HuntEvent {
    /// A new event with no EVTX header data.
    pub fn new(fields: Fields, file: Arc<str>) -> Self {
        HuntEvent {
            fields,
            file,
            record_id: None,
            header_time: None,
        }
    }

    /// Looks a field up as the Sigma engine names it: the flat name, then Winlogbeat's
    /// `winlog.event_data.<name>` and `event_data.<name>`.
    pub fn get(&self, name: &str) -> Option<FieldRef<'_>> {
        if let Some(v) = self.fields.get(name) {
            return Some(v);
        }
        if self.fields.has_event_data_names() && !name.contains('.') {
            for prefix in ["winlog.event_data.", "event_data."] {
                let mut key = String::with_capacity(prefix.len() + name.len());
                key.push_str(prefix);
                key.push_str(name);
                if let Some(v) = self.fields.get(&key) {
                    return Some(v);
                }
            }
        }
        None
    }

    fn first(&self, names: &[&str]) -> Option<FieldRef<'_>> {
        names
            .iter()
            .filter_map(|n| self.fields.get(n))
            .find(|v| !matches!(v, FieldRef::Null) && v.as_str() != Some(""))
    }

    /// The event's own time: the EVTX record header's, else `System/TimeCreated`, else the first
    /// of the usual JSON time fields (`@timestamp`, `EventTime`, `UtcTime`, ...) that parses.
    pub fn timestamp(&self) -> Option<Timestamp> {
        // A zero FILETIME (1601-01-01) in the header means "not set" (some tools that copy
        // records out of one log into another leave it so); the event's own time is used then.
        if let Some(t) = self.header_time.filter(|t| t.as_second() > 0) {
            return Some(t);
        }
        TIME_FIELDS
            .iter()
            .filter_map(|n| self.fields.get(n))
            .filter_map(|v| match v {
                FieldRef::Str(s) => parse_time(s),
                // Epoch seconds (Zeek's `ts`), within years a log can be from.
                FieldRef::Float(f) if (1e8..1e10).contains(&f) => {
                    Timestamp::from_microsecond((f * 1e6) as i64).ok()
                }
                FieldRef::Int(_) | FieldRef::UInt(_) => v
                    .as_u64()
                    .filter(|s| (100_000_000..10_000_000_000).contains(s))
                    .and_then(|s| Timestamp::from_second(s as i64).ok()),
                _ => None,
            })
            .next()
    }

    pub fn computer(&self) -> Option<String> {
        self.first(COMPUTER_FIELDS).and_then(|v| v.to_text())
    }

    /// The channel as stored, when it is a string (no allocation).
    pub fn channel_ref(&self) -> Option<&str> {
        match self.first(CHANNEL_FIELDS) {
            Some(FieldRef::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn channel(&self) -> Option<String> {
        self.first(CHANNEL_FIELDS).and_then(|v| v.to_text())
    }

    pub fn event_id(&self) -> Option<u32> {
        self.first(EVENT_ID_FIELDS)
            .and_then(|v| v.as_u64())
            .and_then(|v| u32::try_from(v).ok())
    }

    pub fn provider(&self) -> Option<String> {
        self.first(PROVIDER_FIELDS).and_then(|v| v.to_text())
    }

    /// The record id as the event states it (`EventRecordID`, `RecordNumber`,
    /// `winlog.record_id`), else the EVTX record header's. The two differ in logs exported from
    /// other logs (the header is renumbered, the event keeps its original id, which is what
    /// Event Viewer and JSON exports show).
    pub fn record_id(&self) -> Option<u64> {
        self.first(RECORD_ID_FIELDS)
            .and_then(|v| v.as_u64())
            .or(self.record_id)
    }

    /// Everything a hit reports about the event.
    pub fn meta(&self) -> EventMeta {
        EventMeta {
            timestamp: self.timestamp(),
            computer: self.computer(),
            channel: self.channel(),
            event_id: self.event_id(),
            provider: self.provider(),
            record_id: self.record_id(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Flattening, streaming over the JSON bytes (the evtx crate renders each record as JSON).
// ---------------------------------------------------------------------------------------------

/// Parses one JSON object into flat [`Fields`] (see the module docs). `Ok(None)` when the
/// JSON is valid but not an object.
pub fn parse_object(bytes: &[u8]) -> Result<Option<Fields>, serde_json::Error> {
    // Validating the UTF-8 once up front is cheaper than string by string.
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_with(serde_json::Deserializer::from_str(text), bytes.len()),
        Err(_) => parse_with(serde_json::Deserializer::from_slice(bytes), bytes.len()),
    }
}

fn parse_with<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    len: usize,
) -> Result<Option<Fields>, serde_json::Error> {
    // Flattened names repeat their parents' (`winlog.event_data.X`), so the text can outgrow
    // the JSON; room for half as much again saves the copies of growing it.
    let mut fields = Fields::with_capacity(len + len / 2, 64);
    let is_object = Seed {
        f: &mut fields,
        key: None,
        mode: Mode::Root,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(is_object.then_some(fields))
}

/// Flattens an already parsed JSON value (same result as [`parse_object`] on its text).
pub fn flatten_value(value: &Value) -> Option<Fields> {
    if !value.is_object() {
        return None;
    }
    let bytes = serde_json::to_vec(value).ok()?;
    parse_object(&bytes).ok().flatten()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The top-level object.
    Root,
    /// A value kept under its (dotted) name.
    Generic,
    /// The `Event` element.
    Event,
    /// The `System` element.
    System,
    /// A child of `System`.
    SysElem,
    /// XML attributes of the element `key`: `key_attr`; `data`: EventData/UserData rules.
    Attrs { data: bool },
    /// Inside EventData/UserData; `top` for those elements themselves.
    Data { top: bool },
}

struct Seed<'a> {
    f: &'a mut Fields,
    key: Option<Span>,
    mode: Mode,
}

/// A map key, pushed into the buffer.
struct KeySeed<'a>(&'a mut Fields);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Span;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Span, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Span;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Span, E> {
        Ok(self.0.push_text(v))
    }
}

/// One element of a list: a scalar, or JSON text for anything deeper.
struct ElemSeed<'a>(&'a mut Fields);

impl<'de> DeserializeSeed<'de> for ElemSeed<'_> {
    type Value = Slot;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Slot, D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! scalar_visits {
    () => {
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(self.scalar(Slot::Bool(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(self.scalar(Slot::Int(v)))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(self.scalar(Slot::UInt(v)))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(self.scalar(number_slot(
                &serde_json::Number::from_f64(v).unwrap_or_else(|| 0.into()),
            )))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(self.scalar(Slot::Null))
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(self.scalar(Slot::Null))
        }
    };
}

impl ElemSeed<'_> {
    fn scalar(self, s: Slot) -> Slot {
        s
    }
}

impl<'de> Visitor<'de> for ElemSeed<'_> {
    type Value = Slot;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    scalar_visits!();
    fn visit_str<E>(self, v: &str) -> Result<Slot, E> {
        Ok(self.0.str_slot(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Slot, A::Error> {
        let v: Value =
            serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        Ok(self.0.str_slot(&v.to_string()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Slot, A::Error> {
        let v: Value =
            serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(self.0.str_slot(&v.to_string()))
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    /// Whether the value was an object.
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl Seed<'_> {
    fn is_data(&self) -> bool {
        matches!(self.mode, Mode::Data { .. })
    }

    /// Puts a scalar (or list) under the key, where this mode keeps values.
    fn scalar(self, slot: Slot) -> bool {
        match (self.mode, self.key) {
            (Mode::Root, _) | (Mode::Attrs { .. }, _) | (Mode::System, _) => {}
            (_, Some(key)) => {
                let data = self.is_data();
                self.f.put(key, slot, data);
            }
            (_, None) => {}
        }
        false
    }

    fn child(&mut self, key: Option<Span>, mode: Mode) -> Seed<'_> {
        Seed {
            f: self.f,
            key,
            mode,
        }
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    scalar_visits!();

    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        if matches!(self.mode, Mode::Root | Mode::Attrs { .. } | Mode::System) || self.key.is_none()
        {
            return Ok(false);
        }
        let slot = self.f.str_slot(v);
        Ok(self.scalar(slot))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        if self.mode == Mode::Root || self.key.is_none() {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(false);
        }
        let mut items = Vec::new();
        while let Some(slot) = seq.next_element_seed(ElemSeed(self.f))? {
            items.push(slot);
        }
        let slot = self.f.list_slot(items);
        Ok(self.scalar(slot))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<bool, A::Error> {
        while let Some(k) = map.next_key_seed(KeySeed(self.f))? {
            let name = self.f.span_text(k);
            match self.mode {
                Mode::Root => {
                    let mode = if name == "Event" {
                        Mode::Event
                    } else {
                        Mode::Generic
                    };
                    map.next_value_seed(self.child(Some(k), mode))?;
                }
                Mode::Generic => {
                    let key = match self.key {
                        Some(parent) => {
                            let name = name.to_string();
                            self.f.join_key(parent, '.', &name)
                        }
                        None => k,
                    };
                    map.next_value_seed(self.child(Some(key), Mode::Generic))?;
                }
                Mode::Event => match name {
                    "#attributes" => {
                        map.next_value::<IgnoredAny>()?;
                    }
                    "System" => {
                        map.next_value_seed(self.child(None, Mode::System))?;
                    }
                    _ => {
                        map.next_value_seed(self.child(None, Mode::Data { top: true }))?;
                    }
                },
                Mode::System => {
                    map.next_value_seed(self.child(Some(k), Mode::SysElem))?;
                }
                Mode::SysElem => {
                    let Some(elem) = self.key else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    match name {
                        "#attributes" => {
                            map.next_value_seed(
                                self.child(Some(elem), Mode::Attrs { data: false }),
                            )?;
                        }
                        "#text" => {
                            map.next_value_seed(self.child(Some(elem), Mode::Generic))?;
                        }
                        _ => {
                            let name = name.to_string();
                            let key = self.f.join_key(elem, '_', &name);
                            map.next_value_seed(self.child(Some(key), Mode::Generic))?;
                        }
                    }
                }
                Mode::Attrs { data } => {
                    let Some(elem) = self.key else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    if data && name == "xmlns" {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let name = name.to_string();
                    let key = self.f.join_key(elem, '_', &name);
                    let mode = if data {
                        Mode::Data { top: false }
                    } else {
                        Mode::Generic
                    };
                    map.next_value_seed(self.child(Some(key), mode))?;
                }
                Mode::Data { top } => match name {
                    "#attributes" => {
                        if top || self.key.is_none() {
                            map.next_value::<IgnoredAny>()?;
                        } else {
                            let key = self.key;
                            map.next_value_seed(self.child(key, Mode::Attrs { data: true }))?;
                        }
                    }
                    "#text" if self.key.is_some() => {
                        let key = self.key;
                        map.next_value_seed(self.child(key, Mode::Data { top: false }))?;
                    }
                    _ => {
                        map.next_value_seed(self.child(Some(k), Mode::Data { top: false }))?;
                    }
                },
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r##"{"Event":{"#attributes":{"xmlns":"http://schemas.microsoft.com/win/2004/08/events/event"},
      "System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon","Guid":"5770385F"}},
        "EventID":{"#attributes":{"Qualifiers":16384},"#text":7},"Level":4,"Correlation":null,
        "TimeCreated":{"#attributes":{"SystemTime":"2025-11-27T07:40:10.165324Z"}},
        "EventRecordID":571146,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"host1",
        "Security":{"#attributes":{"UserID":"S-1-5-18"}}},
      "EventData":{"Image":"C:\\x.exe","ProcessId":4460,"Computer":"other","Hashes":null}}}"##;

    fn s(v: &str) -> Option<FieldRef<'_>> {
        Some(FieldRef::Str(v))
    }

    #[test]
    fn evtx_layout_is_flattened() {
        let a = parse_object(SAMPLE.as_bytes()).unwrap().unwrap();
        let b = flatten_value(&serde_json::from_str(SAMPLE).unwrap()).unwrap();
        assert_eq!(a.to_map(), b.to_map());
        assert_eq!(a.get("Provider_Name"), s("Microsoft-Windows-Sysmon"));
        assert_eq!(a.get("EventID"), Some(FieldRef::UInt(7)));
        assert_eq!(a.get("EventID_Qualifiers"), Some(FieldRef::UInt(16384)));
        assert_eq!(
            a.get("TimeCreated_SystemTime"),
            s("2025-11-27T07:40:10.165324Z")
        );
        assert_eq!(a.get("Security_UserID"), s("S-1-5-18"));
        assert_eq!(a.get("Image"), s("C:\\x.exe"));
        assert_eq!(a.get("Computer"), s("other"));
        assert_eq!(a.get("System_Computer"), s("host1"));
        assert_eq!(a.get("Hashes"), Some(FieldRef::Null));
        assert_eq!(a.get("Correlation"), Some(FieldRef::Null));
        assert_eq!(a.get("xmlns"), None);
        let ev = HuntEvent::new(a, "f".into());
        let meta = ev.meta();
        assert_eq!(meta.computer.as_deref(), Some("host1"));
        assert_eq!(meta.event_id, Some(7));
        assert_eq!(meta.record_id, Some(571146));
        assert_eq!(
            meta.timestamp.map(|t| t.to_string()),
            Some("2025-11-27T07:40:10.165324Z".to_string())
        );
    }

    #[test]
    fn a_zero_header_time_falls_back_to_the_events_own_time() {
        let fields = parse_object(SAMPLE.as_bytes()).unwrap().unwrap();
        let mut ev = HuntEvent::new(fields, "f".into());
        let filetime_epoch: Timestamp = "1601-01-01T00:00:00Z".parse().unwrap();
        ev.header_time = Some(filetime_epoch);
        assert_eq!(
            ev.timestamp().map(|t| t.to_string()),
            Some("2025-11-27T07:40:10.165324Z".to_string())
        );
        let header: Timestamp = "2024-01-02T03:04:05Z".parse().unwrap();
        ev.header_time = Some(header);
        assert_eq!(ev.timestamp(), Some(header));
    }

    #[test]
    fn userdata_and_unnamed_data() {
        let j = r##"{"Event":{"System":{"EventID":104,"Channel":"System"},
          "UserData":{"LogFileCleared":{"#attributes":{"xmlns":"x"},"SubjectUserName":"bob","Channel":"Security"}}}}"##;
        let a = parse_object(j.as_bytes()).unwrap().unwrap();
        assert_eq!(a.get("SubjectUserName"), s("bob"));
        assert_eq!(a.get("Channel"), s("Security"));
        assert_eq!(a.get("System_Channel"), s("System"));
        assert_eq!(a.get("LogFileCleared_xmlns"), None);
        let j = r##"{"Event":{"System":{"EventID":7045},"EventData":{"Data":{"#text":["a","b"]},"Binary":"00","X":{"#attributes":{"A":"1"},"#text":"t"}}}}"##;
        let a = parse_object(j.as_bytes()).unwrap().unwrap();
        assert_eq!(
            a.get("Data").map(|v| v.to_json()),
            Some(serde_json::json!(["a", "b"]))
        );
        assert_eq!(a.get("Binary"), s("00"));
        assert_eq!(a.get("X"), s("t"));
        assert_eq!(a.get("X_A"), s("1"));
    }

    #[test]
    fn plain_objects_keep_names() {
        let j = r#"{"EventID":4688,"Hostname":"WS1","winlog":{"channel":"Security","event_data":{"Image":"a.exe"}},"@timestamp":"2020-06-10T02:50:56.537Z","l":[{"x":1}]}"#;
        let a = parse_object(j.as_bytes()).unwrap().unwrap();
        assert_eq!(
            a.to_map(),
            flatten_value(&serde_json::from_str(j).unwrap())
                .unwrap()
                .to_map()
        );
        assert_eq!(
            a.get("l").and_then(|v| v.to_text()),
            Some(r#"{"x":1}"#.to_string())
        );
        let ev = HuntEvent::new(a, "f".into());
        assert_eq!(ev.channel().as_deref(), Some("Security"));
        assert_eq!(ev.computer().as_deref(), Some("WS1"));
        assert_eq!(ev.event_id(), Some(4688));
        assert_eq!(ev.get("Image"), s("a.exe"));
        assert!(ev.timestamp().is_some());
        assert_eq!(parse_object(b"[1,2]").unwrap(), None);
        assert_eq!(parse_object(b"3").unwrap(), None);
        assert!(parse_object(b"{").is_err());
        assert!(parse_object(b"{} x").is_err());
    }

    #[test]
    fn civil_times_parse_as_utc() {
        assert_eq!(
            parse_time("2020-06-10 02:50:54.631").map(|t| t.to_string()),
            Some("2020-06-10T02:50:54.631Z".to_string())
        );
        assert!(parse_time("yesterday").is_none());
    }
}
