//! Garrison's domain types. Pure data: no I/O, no clocks except where a caller passes one.
//!
//! Every record that belongs to a customer carries a [`TenantId`]; the store layer refuses
//! any query that does not name one.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use jiff::{SignedDuration, Timestamp};

pub mod health;
mod level;
pub use level::{AlertStatus, Level, UnknownLevel};

/// Identifier of a tenant (a customer of a managed provider, or the one organisation of a SOC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub i64);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Role of a user or API token. Ordered by power only where [`Role::allows`] says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Analyst,
    Responder,
    Viewer,
    /// Scrapes `/metrics` and nothing else (a Prometheus token).
    Metrics,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Analyst,
        Role::Responder,
        Role::Viewer,
        Role::Metrics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Responder => "responder",
            Role::Viewer => "viewer",
            Role::Metrics => "metrics",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}: expected one of admin, analyst, responder, viewer, metrics")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "analyst" => Ok(Role::Analyst),
            "responder" => Ok(Role::Responder),
            "viewer" => Ok(Role::Viewer),
            "metrics" => Ok(Role::Metrics),
            _ => Err(UnknownRole(s.to_string())),
        }
    }
}

/// What a principal may do. Kept as an explicit list so a new permission is a reviewed decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read events, alerts, incidents.
    Read,
    /// Manage tenants, users, tokens, sources, retention.
    Administer,
}

impl Role {
    pub fn allows(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => self != Role::Metrics,
            Permission::Administer => self == Role::Admin,
        }
    }
}

/// Sigma-style log source: which product/service/category a stream of events belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub category: Option<String>,
}

/// One event as it travels from a decoder to the event log and the store.
///
/// `fields` holds what the sender sent, unchanged. `normalized` is the ECS-style view derived
/// from it through the source's field mapping; both are kept so nothing a sender meant is lost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// ULID assigned at ingest, or derived from the sender's own id so a retry is stored once.
    pub id: String,
    pub tenant_id: TenantId,
    /// The event's own time (parsed from the payload), else the time it was received.
    pub time: Timestamp,
    pub received: Timestamp,
    /// Name of the ingest source (set by the ingest token).
    pub source: String,
    #[serde(default)]
    pub logsource: LogSource,
    pub fields: serde_json::Value,
    /// `fields` exactly as stored (the sender's bytes for JSON ingest), when read from the
    /// store: what the API answers, so numbers beyond 64 bits and the sender's formatting
    /// survive (a `Value` would turn a 30-digit integer into a float).
    #[serde(skip)]
    pub fields_text: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub normalized: serde_json::Map<String, serde_json::Value>,
    /// The original bytes where the input was text (a syslog line, a HEC raw line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// The key of the normalised view under which an event a decoder did not understand carries
/// why (e.g. a line with no syslog header): such events are kept, flagged and counted per
/// source (`garrison source health`), never stored as if parsed. Only the ingest pipeline
/// writes it.
pub const UNPARSED_FIELD: &str = "garrison.unparsed";

/// Derives the stored id of an event whose source names its id field: the same id value from
/// the same tenant and source always maps to the same record, so a retried batch is stored once.
pub fn event_id_from_sender(tenant: TenantId, source: &str, sender_id: &str) -> String {
    format!("s{}", id_digest(tenant, source, &[sender_id.as_bytes()]))
}

/// Derives the stored id of any other event: from the tenant, the source and the event's own
/// bytes (the fields as sent and the raw line). An exact resend maps to the same record
/// (stored once); any difference is another event.
pub fn event_id_from_content(tenant: TenantId, source: &str, parts: &[&[u8]]) -> String {
    format!("c{}", id_digest(tenant, source, parts))
}

/// SHA-256 (hardware-accelerated where the CPU has it) cut to 128 bits, hex. A cryptographic
/// hash because ids decide what is stored: whoever may send to one source must not be able to
/// craft an event whose id erases another source's (`insert or ignore` on the id).
fn id_digest(tenant: TenantId, source: &str, parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(tenant.0.to_le_bytes());
    hasher.update((source.len() as u64).to_le_bytes());
    hasher.update(source.as_bytes());
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(&hasher.finalize()[..16])
}

#[derive(Debug, thiserror::Error)]
#[error("{value:?} is neither RFC 3339 nor Unix seconds ({reason})")]
pub struct TimeBoundError {
    pub value: String,
    pub reason: String,
}

/// A time bound as users give one in a search: RFC 3339, or whole Unix seconds.
pub fn parse_time_bound(value: &str) -> Result<Timestamp, TimeBoundError> {
    let error = |reason: String| TimeBoundError {
        value: value.to_string(),
        reason,
    };
    match value.parse::<i64>() {
        Ok(seconds) => Timestamp::from_second(seconds).map_err(|e| error(e.to_string())),
        Err(_) => value.parse::<Timestamp>().map_err(|e| error(e.to_string())),
    }
}

/// A fresh sortable id for a record.
pub fn new_ulid() -> String {
    ulid::Ulid::new().to_string()
}

/// Microseconds since the Unix epoch: the one integer encoding of time in the stores.
pub fn to_micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub fn from_micros(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_ids_are_stable_and_scoped() {
        let a = event_id_from_sender(TenantId(1), "fw", "abc");
        assert_eq!(a, event_id_from_sender(TenantId(1), "fw", "abc"));
        assert_ne!(a, event_id_from_sender(TenantId(2), "fw", "abc"));
        assert_ne!(a, event_id_from_sender(TenantId(1), "fw2", "abc"));
        assert_ne!(
            event_id_from_sender(TenantId(1), "a", "bc"),
            event_id_from_sender(TenantId(1), "ab", "c")
        );
        assert_eq!(a.len(), 33);
    }

    #[test]
    fn content_ids_separate_their_parts_and_their_sources() {
        let id = |source: &str, parts: &[&[u8]]| event_id_from_content(TenantId(1), source, parts);
        assert_eq!(id("fw", &[b"{}", b""]), id("fw", &[b"{}", b""]));
        assert_ne!(id("fw", &[b"{}", b"x"]), id("fw", &[b"{}x", b""]));
        assert_ne!(id("fw", &[b"{}", b""]), id("edr", &[b"{}", b""]));
        assert!(id("fw", &[b"{}"]).starts_with('c'));
    }

    #[test]
    fn time_bounds_take_rfc3339_or_unix_seconds() {
        let t = parse_time_bound("2024-05-01T10:00:00Z").expect("rfc3339");
        assert_eq!(parse_time_bound("1714557600").expect("seconds"), t);
        let error = parse_time_bound("yesterday")
            .expect_err("not a time")
            .to_string();
        assert!(
            error.contains("\"yesterday\" is neither RFC 3339 nor Unix seconds"),
            "{error}"
        );
        assert!(parse_time_bound("99999999999999999").is_err());
    }

    #[test]
    fn roles_parse_and_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
        }
        assert!("root".parse::<Role>().is_err());
        assert!(Role::Admin.allows(Permission::Administer));
        assert!(!Role::Viewer.allows(Permission::Administer));
    }
}

/// A time bound in a query string: RFC 3339 or whole Unix seconds, parsed on the way in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeBound(pub Timestamp);

impl Serialize for TimeBound {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TimeBound {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_time_bound(&text)
            .map(TimeBound)
            .map_err(serde::de::Error::custom)
    }
}

/// A page size: 1 to [`PageLimit::MAX`], the same bound on every list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLimit(pub usize);

impl PageLimit {
    pub const MAX: usize = 1000;

    /// The size asked for, or `default`.
    pub fn or(limit: Option<PageLimit>, default: usize) -> usize {
        limit.map_or(default, |l| l.0)
    }
}

impl Serialize for PageLimit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0 as u64)
    }
}

/// Reads a page size as a query string or a flag gives it; the one place the bound is checked.
impl std::str::FromStr for PageLimit {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=PageLimit::MAX).contains(n))
            .map(PageLimit)
            .ok_or_else(|| format!("{text:?} is not a page size from 1 to {}", PageLimit::MAX))
    }
}

impl<'de> Deserialize<'de> for PageLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod query_type_tests {
    use super::*;

    #[test]
    fn page_limits_and_time_bounds_parse_from_text() {
        let limit: PageLimit = serde_json::from_str("\"1000\"").expect("in range");
        assert_eq!(limit, PageLimit(1000));
        for bad in ["\"0\"", "\"1001\"", "\"-1\"", "\"ten\""] {
            assert!(serde_json::from_str::<PageLimit>(bad).is_err(), "{bad}");
        }
        let t: TimeBound = serde_json::from_str("\"1700000000\"").expect("seconds");
        assert_eq!(t.0.as_second(), 1_700_000_000);
        assert!(serde_json::from_str::<TimeBound>("\"yesterday\"").is_err());
    }
}
