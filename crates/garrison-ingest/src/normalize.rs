//! Field normalization: vendor / Sigma field names → ECS-style dotted names.
//!
//! A mapping is data: ordered `(source path, target)` pairs. For each target the first pair (in
//! order) whose source resolves to a scalar or array wins, so several vendor names can feed one
//! ECS field with a defined preference. A source path like `event.code` matches a flat key
//! `"event.code"` as well as nested objects `{"event": {"code": ..}}` (and mixtures).
//!
//! For batches, build a [`Normalizer`] once and reuse it: it indexes the mapping by top-level
//! key so a record costs one lookup per field it has, not one per mapping pair.

use serde_json::{Map, Number, Value};
use std::collections::HashMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldMapping {
    /// (source path with dots for nesting, target ECS name), in order of preference.
    pub pairs: Vec<(String, String)>,
}

/// Windows event-data names (Sysmon, Security log, NXLog / Winlogbeat flattening) → ECS.
const WINDOWS: &[(&str, &str)] = &[
    ("Hostname", "host.name"),
    ("Computer", "host.name"),
    ("ComputerName", "host.name"),
    ("EventID", "event.code"),
    ("EventId", "event.code"),
    ("Channel", "winlog.channel"),
    ("ProviderName", "winlog.provider_name"),
    ("SourceName", "winlog.provider_name"),
    ("RecordNumber", "winlog.record_id"),
    ("EventRecordID", "winlog.record_id"),
    ("User", "user.name"),
    ("TargetUserName", "user.name"),
    ("SubjectUserName", "user.name"),
    ("AccountName", "user.name"),
    ("TargetDomainName", "user.domain"),
    ("SubjectDomainName", "user.domain"),
    ("Domain", "user.domain"),
    ("TargetUserSid", "user.id"),
    ("SubjectUserSid", "user.id"),
    ("UserID", "user.id"),
    ("LogonType", "winlog.logon.type"),
    ("Image", "process.executable"),
    ("NewProcessName", "process.executable"),
    ("CommandLine", "process.command_line"),
    ("ProcessId", "process.pid"),
    ("ProcessID", "process.pid"),
    ("NewProcessId", "process.pid"),
    ("ProcessGuid", "process.entity_id"),
    ("CurrentDirectory", "process.working_directory"),
    ("OriginalFileName", "process.pe.original_file_name"),
    ("IntegrityLevel", "process.integrity_level"),
    ("Hashes", "process.hash"),
    ("ParentImage", "process.parent.executable"),
    ("ParentProcessName", "process.parent.executable"),
    ("ParentCommandLine", "process.parent.command_line"),
    ("ParentProcessId", "process.parent.pid"),
    ("ParentProcessGuid", "process.parent.entity_id"),
    ("SourceIp", "source.ip"),
    ("SourceAddress", "source.ip"),
    ("IpAddress", "source.ip"),
    ("SourcePort", "source.port"),
    ("IpPort", "source.port"),
    ("SourceHostname", "source.domain"),
    ("WorkstationName", "source.domain"),
    ("DestinationIp", "destination.ip"),
    ("DestAddress", "destination.ip"),
    ("DestinationPort", "destination.port"),
    ("DestPort", "destination.port"),
    ("DestinationHostname", "destination.domain"),
    ("Protocol", "network.transport"),
    ("QueryName", "dns.question.name"),
    ("QueryResults", "dns.answers_raw"),
    ("TargetFilename", "file.path"),
    ("ImageLoaded", "dll.path"),
    ("TargetObject", "registry.path"),
    ("ServiceName", "service.name"),
    ("ScriptBlockText", "powershell.file.script_block_text"),
    ("Message", "message"),
    ("Severity", "log.level"),
];

const SYSLOG: &[(&str, &str)] = &[
    ("log.syslog.hostname", "host.hostname"),
    ("log.syslog.appname", "process.name"),
    ("log.syslog.procid", "process.pid"),
    ("log.syslog.msgid", "event.code"),
    ("log.syslog.severity.name", "log.level"),
    ("log.syslog.facility.name", "log.syslog.facility.name"),
    ("log.syslog.severity.code", "log.syslog.severity.code"),
    ("log.syslog.priority", "log.syslog.priority"),
    ("host.hostname", "host.hostname"),
];

/// CEF extension keys (ArcSight dictionary) → ECS; used under `cef.extensions.` and flat.
const CEF_EXTENSIONS: &[(&str, &str)] = &[
    ("src", "source.ip"),
    ("dst", "destination.ip"),
    ("spt", "source.port"),
    ("dpt", "destination.port"),
    ("smac", "source.mac"),
    ("dmac", "destination.mac"),
    ("shost", "source.domain"),
    ("dhost", "destination.domain"),
    ("suser", "source.user.name"),
    ("duser", "destination.user.name"),
    ("act", "event.action"),
    ("outcome", "event.outcome"),
    ("proto", "network.transport"),
    ("app", "network.protocol"),
    ("request", "url.original"),
    ("requestMethod", "http.request.method"),
    ("requestClientApplication", "user_agent.original"),
    ("fname", "file.name"),
    ("filePath", "file.path"),
    ("fileHash", "file.hash"),
    ("sproc", "process.name"),
    ("spid", "process.pid"),
    ("dvc", "observer.ip"),
    ("dvchost", "observer.hostname"),
    ("msg", "message"),
    ("in", "source.bytes"),
    ("out", "destination.bytes"),
];

const CEF_HEADER: &[(&str, &str)] = &[
    ("cef.name", "rule.name"),
    ("cef.signature_id", "event.code"),
    ("cef.severity", "event.severity"),
    ("cef.device_vendor", "observer.vendor"),
    ("cef.device_product", "observer.product"),
    ("cef.device_version", "observer.version"),
];

const LEEF: &[(&str, &str)] = &[
    ("leef.attributes.src", "source.ip"),
    ("leef.attributes.dst", "destination.ip"),
    ("leef.attributes.srcPort", "source.port"),
    ("leef.attributes.dstPort", "destination.port"),
    ("leef.attributes.srcMAC", "source.mac"),
    ("leef.attributes.dstMAC", "destination.mac"),
    ("leef.attributes.usrName", "user.name"),
    ("leef.attributes.proto", "network.transport"),
    ("leef.attributes.sev", "event.severity"),
    ("leef.attributes.cat", "event.action"),
    ("leef.attributes.url", "url.original"),
    ("leef.event_id", "event.code"),
    ("leef.device_vendor", "observer.vendor"),
    ("leef.device_product", "observer.product"),
    ("leef.device_version", "observer.version"),
];

/// Zeek connection ids (`id.orig_h` as Zeek writes them, `id_orig_h` as some exporters do)
/// and the DNS query of a `dns` log.
const ZEEK: &[(&str, &str)] = &[
    ("id.orig_h", "source.ip"),
    ("id_orig_h", "source.ip"),
    ("id.orig_p", "source.port"),
    ("id_orig_p", "source.port"),
    ("id.resp_h", "destination.ip"),
    ("id_resp_h", "destination.ip"),
    ("id.resp_p", "destination.port"),
    ("id_resp_p", "destination.port"),
    ("uid", "zeek.session_id"),
];

/// Common generic names, last so vendor-specific names win.
const GENERIC: &[(&str, &str)] = &[
    ("src_ip", "source.ip"),
    ("dst_ip", "destination.ip"),
    ("src_port", "source.port"),
    ("dst_port", "destination.port"),
    ("sport", "source.port"),
    ("dport", "destination.port"),
    ("host", "host.name"),
    ("hostname", "host.hostname"),
    ("user", "user.name"),
    ("username", "user.name"),
    ("message", "message"),
    ("severity", "log.level"),
    ("level", "log.level"),
];

/// Targets stored as numbers (ECS `long`): digit strings are converted.
const NUMERIC_TARGETS: &[&str] = &[
    "process.pid",
    "process.parent.pid",
    "source.port",
    "destination.port",
    "source.bytes",
    "destination.bytes",
    "winlog.record_id",
];

/// ECS names a sender may already use (nested, or flat as dotted keys): they pass through as
/// themselves, first, so an ECS shipper's fields reach the indicator matcher and the rules
/// without a mapping.
const ECS: &[&str] = &[
    "event.code",
    "event.action",
    "event.category",
    "event.type",
    "event.outcome",
    "event.id",
    "event.provider",
    "event.dataset",
    "event.module",
    "event.severity",
    "host.name",
    "host.hostname",
    "host.ip",
    "host.os.name",
    "host.os.family",
    "user.name",
    "user.domain",
    "user.id",
    "user.email",
    "user.target.name",
    "source.ip",
    "source.port",
    "source.domain",
    "source.nat.ip",
    "source.user.email",
    "destination.ip",
    "destination.port",
    "destination.domain",
    "destination.nat.ip",
    "client.ip",
    "client.domain",
    "server.ip",
    "server.domain",
    "network.transport",
    "network.protocol",
    "network.direction",
    "network.forwarded_ip",
    "process.name",
    "process.executable",
    "process.command_line",
    "process.pid",
    "process.parent.name",
    "process.parent.executable",
    "process.parent.command_line",
    "process.hash.md5",
    "process.hash.sha1",
    "process.hash.sha256",
    "process.hash.sha512",
    "process.parent.hash.md5",
    "process.parent.hash.sha1",
    "process.parent.hash.sha256",
    "process.parent.hash.sha512",
    "file.path",
    "file.name",
    "file.hash.md5",
    "file.hash.sha1",
    "file.hash.sha256",
    "file.hash.sha512",
    "dll.path",
    "dll.hash.md5",
    "dll.hash.sha1",
    "dll.hash.sha256",
    "dll.hash.sha512",
    "registry.path",
    "registry.key",
    "registry.value",
    "url.full",
    "url.original",
    "url.domain",
    "url.path",
    "dns.question.name",
    "dns.resolved_ip",
    "http.request.method",
    "http.request.referrer",
    "http.response.status_code",
    "tls.client.server_name",
    "user_agent.original",
    "related.ip",
    "related.hosts",
    "related.hash",
    "related.user",
    "rule.name",
    "rule.id",
    "observer.name",
    "observer.vendor",
    "observer.product",
    "log.level",
    "log.syslog.hostname",
    "log.syslog.appname",
];

/// Targets stored as strings (ECS `keyword`): numbers are converted.
const KEYWORD_TARGETS: &[&str] = &["event.code", "winlog.logon.type", "log.level"];

impl FieldMapping {
    /// The default mapping: Windows (Sysmon / Security, flat NXLog keys and Winlogbeat's
    /// `winlog.event_data.*` and `EventData.*` nesting), syslog, CEF, LEEF, then generic names.
    pub fn builtin() -> Self {
        let mut pairs = Vec::new();
        let mut add = |s: &str, t: &str| pairs.push((s.to_owned(), t.to_owned()));
        for name in ECS {
            add(name, name);
        }
        for (s, t) in WINDOWS {
            add(s, t);
            add(&format!("winlog.event_data.{s}"), t);
            add(&format!("EventData.{s}"), t);
        }
        add("winlog.event_id", "event.code");
        add("winlog.channel", "winlog.channel");
        add("winlog.provider_name", "winlog.provider_name");
        add("winlog.computer_name", "host.name");
        for (s, t) in SYSLOG {
            add(s, t);
        }
        for (s, t) in CEF_HEADER {
            add(s, t);
        }
        for (s, t) in CEF_EXTENSIONS {
            add(&format!("cef.extensions.{s}"), t);
        }
        // The CEF Name is the action only when the event has no `act` of its own.
        add("cef.name", "event.action");
        for (s, t) in LEEF {
            add(s, t);
        }
        for (s, t) in ZEEK {
            add(s, t);
        }
        for (s, t) in GENERIC {
            add(s, t);
        }
        // Flat CEF keys (a JSON export of CEF) last: "src"/"dst"/"act" are generic enough.
        for (s, t) in CEF_EXTENSIONS {
            add(s, t);
        }
        FieldMapping { pairs }
    }

    pub fn from_pairs<S: Into<String>, T: Into<String>>(
        pairs: impl IntoIterator<Item = (S, T)>,
    ) -> Self {
        FieldMapping {
            pairs: pairs
                .into_iter()
                .map(|(s, t)| (s.into(), t.into()))
                .collect(),
        }
    }

    /// Adds `other`'s pairs with higher priority than the existing ones, so a source's own
    /// mapping overrides the builtin: `let mut m = FieldMapping::builtin(); m.extend(own);`.
    pub fn extend(&mut self, other: FieldMapping) {
        let mut pairs = other.pairs;
        pairs.append(&mut self.pairs);
        self.pairs = pairs;
    }
}

/// Normalizes one record with `mapping` (see the module docs). For many records, build a
/// [`Normalizer`] once instead.
pub fn normalize(fields: &Map<String, Value>, mapping: &FieldMapping) -> Map<String, Value> {
    let mut out = Map::new();
    for (source, target) in &mapping.pairs {
        if out.contains_key(target) || has_expanded(&out, target) {
            continue;
        }
        if let Some(v) = resolve(fields, source).filter(|v| mappable(v)) {
            emit(&mut out, target, v);
        }
    }
    out
}

/// Whether a hash target was already expanded into `target.<alg>` keys.
fn has_expanded(out: &Map<String, Value>, target: &str) -> bool {
    target.ends_with(".hash")
        && out.keys().any(|k| {
            k.len() > target.len()
                && k.starts_with(target)
                && k.as_bytes().get(target.len()) == Some(&b'.')
        })
}

/// Only leaf values are mapped: an object under a leaf name (e.g. `host` as
/// `{"hostname": ..}`) lets a later pair supply the value.
fn mappable(v: &Value) -> bool {
    match v {
        Value::Null | Value::Object(_) => false,
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// Finds `path` in `map`: as a flat key, or by splitting at any dot into a nested object.
pub fn resolve<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    resolve_depth(map, path, 0)
}

fn resolve_depth<'a>(map: &'a Map<String, Value>, path: &str, depth: usize) -> Option<&'a Value> {
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    // Paths are mapping data, not input, but stay bounded anyway.
    if depth > 16 {
        return None;
    }
    for (i, _) in path.match_indices('.') {
        let (head, tail) = (path.get(..i)?, path.get(i + 1..)?);
        if let Some(Value::Object(inner)) = map.get(head) {
            if let Some(v) = resolve_depth(inner, tail, depth + 1) {
                return Some(v);
            }
        }
    }
    None
}

fn emit(out: &mut Map<String, Value>, target: &str, value: &Value) {
    if target.ends_with(".hash") {
        if let Value::String(s) = value {
            if let Some(hashes) = split_hashes(s) {
                for (alg, h) in hashes {
                    out.insert(format!("{target}.{alg}"), Value::String(h.to_owned()));
                }
                return;
            }
            // A bare hash (CEF `fileHash`): its algorithm by its length.
            if let Some(alg) = hash_algorithm(s.trim()) {
                out.insert(
                    format!("{target}.{alg}"),
                    Value::String(s.trim().to_ascii_lowercase()),
                );
                return;
            }
        }
    }
    if target == "network.transport" {
        out.insert(target.to_owned(), transport_name(value));
        return;
    }
    out.insert(target.to_owned(), coerce(target, value));
}

/// The algorithm of a bare hex digest, by its length.
fn hash_algorithm(s: &str) -> Option<&'static str> {
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match s.len() {
        32 => Some("md5"),
        40 => Some("sha1"),
        64 => Some("sha256"),
        128 => Some("sha512"),
        _ => None,
    }
}

/// ECS `network.transport` is a lower-case name: IANA protocol numbers (CEF `proto=6`) are
/// named, names are lower-cased, an unknown number is kept as its digits.
fn transport_name(value: &Value) -> Value {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => return other.clone(),
    };
    let name = match text.as_str() {
        "1" => "icmp",
        "2" => "igmp",
        "6" => "tcp",
        "17" => "udp",
        "41" => "ipv6",
        "47" => "gre",
        "50" => "esp",
        "51" => "ah",
        "58" => "ipv6-icmp",
        "89" => "ospf",
        "132" => "sctp",
        other => return Value::String(other.to_ascii_lowercase()),
    };
    Value::String(name.to_owned())
}

/// Sysmon's `SHA1=..,MD5=..,SHA256=..,IMPHASH=..` → (lower-case algorithm, hash) pairs.
fn split_hashes(s: &str) -> Option<Vec<(String, &str)>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (alg, hash) = part.split_once('=')?;
        let alg = alg.trim();
        if alg.is_empty() || !alg.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        out.push((alg.to_ascii_lowercase(), hash.trim()));
    }
    (!out.is_empty()).then_some(out)
}

fn coerce(target: &str, value: &Value) -> Value {
    match value {
        Value::String(s) if NUMERIC_TARGETS.contains(&target) => match s.trim().parse::<i64>() {
            Ok(n) => Value::Number(Number::from(n)),
            Err(_) => value.clone(),
        },
        Value::Number(n) if KEYWORD_TARGETS.contains(&target) => Value::String(n.to_string()),
        _ => value.clone(),
    }
}

/// A [`FieldMapping`] indexed for repeated use.
#[derive(Clone, Debug)]
pub struct Normalizer {
    targets: Vec<String>,
    /// Top-level key → (rest of the path, target index, priority). A source `a.b.c` is
    /// registered under `a.b.c`, `a` (rest `b.c`) and `a.b` (rest `c`), ranked like
    /// [`resolve`] tries them.
    index: HashMap<String, Vec<(Option<String>, usize, u64)>>,
}

impl Normalizer {
    pub fn new(mapping: &FieldMapping) -> Self {
        let mut targets: Vec<String> = Vec::new();
        let mut target_ids: HashMap<&str, usize> = HashMap::new();
        let mut index: HashMap<String, Vec<(Option<String>, usize, u64)>> = HashMap::new();
        for (n, (source, target)) in mapping.pairs.iter().enumerate() {
            let t = *target_ids.entry(target.as_str()).or_insert_with(|| {
                targets.push(target.clone());
                targets.len() - 1
            });
            let base = (n as u64) << 16;
            index
                .entry(source.clone())
                .or_default()
                .push((None, t, base));
            for (rank, (i, _)) in source.match_indices('.').enumerate() {
                if let (Some(head), Some(tail)) = (source.get(..i), source.get(i + 1..)) {
                    index.entry(head.to_owned()).or_default().push((
                        Some(tail.to_owned()),
                        t,
                        base + 1 + rank as u64,
                    ));
                }
            }
        }
        Normalizer { targets, index }
    }

    /// Same result as [`normalize`] with the mapping this was built from.
    pub fn normalize(&self, fields: &Map<String, Value>) -> Map<String, Value> {
        // (target, priority, value): the lowest priority per target wins.
        let mut hits: Vec<(usize, u64, &Value)> = Vec::new();
        for (key, value) in fields {
            let Some(entries) = self.index.get(key.as_str()) else {
                continue;
            };
            for (rest, target, prio) in entries {
                // None: the key itself; Some(tail): look inside (tail may be "" for `a.`).
                let found = match (rest, value) {
                    (None, _) => Some(value),
                    (Some(tail), Value::Object(inner)) => resolve(inner, tail),
                    (Some(_), _) => None,
                };
                if let Some(v) = found.filter(|v| mappable(v)) {
                    hits.push((*target, *prio, v));
                }
            }
        }
        hits.sort_unstable_by_key(|&(t, prio, _)| (prio, t));
        let mut done = vec![false; self.targets.len()];
        let mut out = Map::new();
        // Emit in mapping order so both implementations build identical maps.
        for (t, _, v) in hits {
            if let (Some(false), Some(target)) = (done.get(t).copied(), self.targets.get(t)) {
                if let Some(d) = done.get_mut(t) {
                    *d = true;
                }
                emit(&mut out, target, v);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn sysmon_flat_record() {
        let rec = obj(json!({
            "Hostname": "WORKSTATION6.mordor.local", "EventID": 1,
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "SourceName": "Microsoft-Windows-Sysmon", "User": "MORDOR\\pgustavo",
            "Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "cmd.exe /c whoami",
            "ProcessId": "6196", "ParentImage": "C:\\Windows\\explorer.exe",
            "Hashes": "SHA1=AA,MD5=BB,SHA256=CC,IMPHASH=DD",
            "host": "wec.internal.cloudapp.net", "AccountName": "SYSTEM"
        }));
        let out = normalize(&rec, &FieldMapping::builtin());
        assert_eq!(out["host.name"], "WORKSTATION6.mordor.local");
        assert_eq!(out["event.code"], "1");
        assert_eq!(
            out["winlog.channel"],
            "Microsoft-Windows-Sysmon/Operational"
        );
        assert_eq!(out["winlog.provider_name"], "Microsoft-Windows-Sysmon");
        assert_eq!(out["user.name"], "MORDOR\\pgustavo");
        assert_eq!(out["process.executable"], "C:\\Windows\\System32\\cmd.exe");
        assert_eq!(out["process.command_line"], "cmd.exe /c whoami");
        assert_eq!(out["process.pid"], 6196);
        assert_eq!(
            out["process.parent.executable"],
            "C:\\Windows\\explorer.exe"
        );
        assert_eq!(out["process.hash.sha256"], "CC");
        assert_eq!(out["process.hash.imphash"], "DD");
        assert!(out.get("process.hash").is_none());
    }

    #[test]
    fn nested_and_flat_dotted_sources() {
        let rec = obj(json!({
            "winlog": {"event_id": 4624, "event_data": {"TargetUserName": "bob", "IpAddress": "10.0.0.5"}},
            "log.syslog": {"appname": "sshd"}
        }));
        let out = normalize(&rec, &FieldMapping::builtin());
        assert_eq!(out["event.code"], "4624");
        assert_eq!(out["user.name"], "bob");
        assert_eq!(out["source.ip"], "10.0.0.5");
        assert_eq!(out["process.name"], "sshd");
    }

    #[test]
    fn syslog_and_cef_records() {
        let rec = obj(json!({
            "message": "m",
            "log": {"syslog": {"hostname": "fw1", "appname": "asa", "procid": "77",
                    "severity": {"code": 3, "name": "error"}}},
            "host": {"hostname": "fw1"},
            "cef": {"name": "Port scan", "signature_id": "100", "severity": "7",
                    "extensions": {"src": "10.0.0.1", "dst": "10.0.0.2", "spt": "1234",
                                   "dpt": "22", "suser": "alice", "act": "blocked",
                                   "request": "http://x/", "proto": "6",
                                   "fileHash": "D41D8CD98F00B204E9800998ECF8427E"}}
        }));
        let out = normalize(&rec, &FieldMapping::builtin());
        assert_eq!(out["host.hostname"], "fw1");
        assert_eq!(out["process.name"], "asa");
        assert_eq!(out["process.pid"], 77);
        assert_eq!(out["log.level"], "error");
        assert_eq!(out["source.ip"], "10.0.0.1");
        assert_eq!(out["destination.port"], 22);
        assert_eq!(out["source.user.name"], "alice");
        // The device's own action, not the event's name (the name is the rule).
        assert_eq!(out["event.action"], "blocked");
        assert_eq!(out["rule.name"], "Port scan");
        assert_eq!(out["network.transport"], "tcp");
        assert_eq!(out["file.hash.md5"], "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(out["url.original"], "http://x/");
        assert_eq!(out["message"], "m");
        // "host" is an object here, so it does not become host.name.
        assert!(out.get("host.name").is_none());
    }

    #[test]
    fn without_act_the_cef_name_is_the_action_and_transports_are_named() {
        let rec = obj(json!({"cef": {"name": "Login failed", "extensions": {"proto": 17}}}));
        let out = normalize(&rec, &FieldMapping::builtin());
        assert_eq!(out["event.action"], "Login failed");
        assert_eq!(out["network.transport"], "udp");
        let rec = obj(json!({"proto": "TCP"}));
        assert_eq!(
            normalize(&rec, &FieldMapping::builtin())["network.transport"],
            "tcp"
        );
        let rec = obj(json!({"proto": "253"}));
        assert_eq!(
            normalize(&rec, &FieldMapping::builtin())["network.transport"],
            "253"
        );
    }

    #[test]
    fn preference_order_and_extend() {
        let rec = obj(json!({"SubjectUserName": "svc", "TargetUserName": "bob"}));
        let out = normalize(&rec, &FieldMapping::builtin());
        assert_eq!(out["user.name"], "bob");
        let mut m = FieldMapping::builtin();
        m.extend(FieldMapping::from_pairs([("SubjectUserName", "user.name")]));
        let out = normalize(&rec, &m);
        assert_eq!(out["user.name"], "svc");
        assert_eq!(Normalizer::new(&m).normalize(&rec), out);
    }

    #[test]
    fn normalizer_matches_normalize() {
        let rec = obj(json!({
            "EventID": 4688, "NewProcessName": "C:\\a.exe", "user": "x", "src_ip": "1.2.3.4",
            "event.code": "flat", "winlog": {"event_data": {"NewProcessId": "0x1a"}},
            "leef": {"attributes": {"src": "9.9.9.9", "dstPort": "80"}, "event_id": "E1"}
        }));
        let m = FieldMapping::builtin();
        assert_eq!(Normalizer::new(&m).normalize(&rec), normalize(&rec, &m));
    }
}
