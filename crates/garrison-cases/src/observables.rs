//! Observables extracted from alert fields: the IPs, domains, URLs, hashes, users and hosts an
//! incident is about, typed, so they can be enriched, shared and compared.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::triage::{HOST_FIELDS, USER_FIELDS};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ObservableKind {
    Ip,
    Domain,
    Url,
    Email,
    Md5,
    Sha1,
    Sha256,
    User,
    Host,
}

impl ObservableKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObservableKind::Ip => "ip",
            ObservableKind::Domain => "domain",
            ObservableKind::Url => "url",
            ObservableKind::Email => "email",
            ObservableKind::Md5 => "md5",
            ObservableKind::Sha1 => "sha1",
            ObservableKind::Sha256 => "sha256",
            ObservableKind::User => "user",
            ObservableKind::Host => "host",
        }
    }

    pub fn parse(text: &str) -> Option<ObservableKind> {
        [
            ObservableKind::Ip,
            ObservableKind::Domain,
            ObservableKind::Url,
            ObservableKind::Email,
            ObservableKind::Md5,
            ObservableKind::Sha1,
            ObservableKind::Sha256,
            ObservableKind::User,
            ObservableKind::Host,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One observable: its type, its value (normalised: lowercase except URLs and users, IPs in
/// canonical form) and the field it was first found in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Observable {
    pub kind: ObservableKind,
    pub value: String,
    pub field: String,
}

/// Deepest nesting and most values looked at: alerts come from untrusted events.
const MAX_DEPTH: usize = 16;
const MAX_VALUES: usize = 4096;
/// User values that name nobody.
const NO_USER: &[&str] = &["-", "n/a", "none", "null", "unknown"];

/// Every observable in `fields` (a JSON object, flat dotted or nested), once per (type, value),
/// sorted by type and value.
pub fn extract_observables(fields: &Json) -> Vec<Observable> {
    let mut found: BTreeMap<(ObservableKind, String), String> = BTreeMap::new();
    let mut budget = MAX_VALUES;
    walk(fields, "", 0, &mut budget, &mut found);
    found
        .into_iter()
        .map(|((kind, value), field)| Observable { kind, value, field })
        .collect()
}

fn walk(
    value: &Json,
    path: &str,
    depth: usize,
    budget: &mut usize,
    found: &mut BTreeMap<(ObservableKind, String), String>,
) {
    if depth > MAX_DEPTH || *budget == 0 {
        return;
    }
    match value {
        Json::Object(map) => {
            for (key, item) in map {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(item, &child, depth + 1, budget, found);
            }
        }
        Json::Array(items) => {
            for item in items {
                walk(item, path, depth + 1, budget, found);
            }
        }
        Json::String(text) => {
            *budget -= 1;
            classify(path, text.trim(), found);
        }
        _ => {}
    }
}

fn add(
    found: &mut BTreeMap<(ObservableKind, String), String>,
    kind: ObservableKind,
    value: String,
    field: &str,
) {
    found
        .entry((kind, value))
        .or_insert_with(|| field.to_string());
}

fn classify(field: &str, text: &str, found: &mut BTreeMap<(ObservableKind, String), String>) {
    if text.is_empty() || text.len() > 4096 {
        return;
    }
    if HOST_FIELDS.contains(&field) {
        add(found, ObservableKind::Host, text.to_lowercase(), field);
        return;
    }
    if USER_FIELDS.contains(&field) {
        if !NO_USER.contains(&text.to_ascii_lowercase().as_str()) {
            add(found, ObservableKind::User, text.to_string(), field);
        }
        return;
    }
    // Sysmon's `Hashes`: `SHA256=...,MD5=...,IMPHASH=...`.
    if text.contains('=') && text.contains(',') || text.to_ascii_uppercase().starts_with("SHA") {
        let mut any = false;
        for pair in text.split(',') {
            if let Some((_, hash)) = pair.split_once('=') {
                if let Some(kind) = hash_kind(hash.trim()) {
                    add(found, kind, hash.trim().to_ascii_lowercase(), field);
                    any = true;
                }
            }
        }
        if any {
            return;
        }
    }
    if let Some(kind) = hash_kind(text) {
        add(found, kind, text.to_ascii_lowercase(), field);
        return;
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        if !(ip.is_loopback() || ip.is_unspecified()) {
            add(found, ObservableKind::Ip, ip.to_string(), field);
        }
        return;
    }
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        add(found, ObservableKind::Url, text.to_string(), field);
        let rest = &text[text.find("://").map_or(0, |i| i + 3)..];
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        let host = host.split(':').next().unwrap_or("");
        if let Ok(ip) = host.parse::<IpAddr>() {
            add(found, ObservableKind::Ip, ip.to_string(), field);
        } else if is_domain(host) {
            add(
                found,
                ObservableKind::Domain,
                host.to_ascii_lowercase(),
                field,
            );
        }
        return;
    }
    if let Some((local, domain)) = text.split_once('@') {
        if !local.is_empty() && !local.contains(char::is_whitespace) && is_domain(domain) {
            add(found, ObservableKind::Email, lower, field);
        }
        return;
    }
    // A bare name is a domain only where the field says so: `cmd.exe` is a file.
    let key = field
        .rsplit('.')
        .next()
        .unwrap_or(field)
        .to_ascii_lowercase();
    let domain_field = [
        "domain",
        "query",
        "fqdn",
        "dns",
        "queryname",
        "destinationhostname",
    ]
    .iter()
    .any(|k| key.contains(k))
        || field.to_ascii_lowercase().starts_with("dns.")
        || field.to_ascii_lowercase().starts_with("url.domain");
    if domain_field && is_domain(text) {
        add(
            found,
            ObservableKind::Domain,
            lower.trim_end_matches('.').to_string(),
            field,
        );
    }
}

fn hash_kind(text: &str) -> Option<ObservableKind> {
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match text.len() {
        32 => Some(ObservableKind::Md5),
        40 => Some(ObservableKind::Sha1),
        64 => Some(ObservableKind::Sha256),
        _ => None,
    }
}

fn is_domain(text: &str) -> bool {
    let text = text.trim_end_matches('.');
    if text.len() > 253 || text.parse::<IpAddr>().is_ok() {
        return false;
    }
    let labels: Vec<&str> = text.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()))
}
