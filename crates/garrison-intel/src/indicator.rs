//! The indicator model: kinds, canonical values, and the indicator record.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::canonical;

/// The hash algorithms an indicator can carry; the hex length tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgorithm {
    pub const ALL: [HashAlgorithm; 4] = [
        HashAlgorithm::Md5,
        HashAlgorithm::Sha1,
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha512,
    ];

    /// Length of the digest in hex digits.
    pub fn hex_len(self) -> usize {
        match self {
            HashAlgorithm::Md5 => 32,
            HashAlgorithm::Sha1 => 40,
            HashAlgorithm::Sha256 => 64,
            HashAlgorithm::Sha512 => 128,
        }
    }

    pub fn from_hex_len(len: usize) -> Option<HashAlgorithm> {
        HashAlgorithm::ALL.into_iter().find(|a| a.hex_len() == len)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Md5 => "md5",
            HashAlgorithm::Sha1 => "sha1",
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    /// `MD5`, `SHA-1`, `sha256`, `SHA_512`, ... (as STIX, MISP and CSV feeds spell them).
    pub fn from_name(name: &str) -> Option<HashAlgorithm> {
        let compact: String = name
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .collect::<String>()
            .to_ascii_lowercase();
        match compact.as_str() {
            "md5" => Some(HashAlgorithm::Md5),
            "sha1" => Some(HashAlgorithm::Sha1),
            "sha256" => Some(HashAlgorithm::Sha256),
            "sha512" => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }
}

/// What an indicator is. Stored and shown by [`IndicatorKind::as_str`]: `ip`, `cidr`,
/// `domain`, `url`, `md5`, `sha1`, `sha256`, `sha512`, `email`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum IndicatorKind {
    Ip,
    Cidr,
    Domain,
    Url,
    Hash(HashAlgorithm),
    Email,
}

impl IndicatorKind {
    pub const ALL: [IndicatorKind; 9] = [
        IndicatorKind::Ip,
        IndicatorKind::Cidr,
        IndicatorKind::Domain,
        IndicatorKind::Url,
        IndicatorKind::Hash(HashAlgorithm::Md5),
        IndicatorKind::Hash(HashAlgorithm::Sha1),
        IndicatorKind::Hash(HashAlgorithm::Sha256),
        IndicatorKind::Hash(HashAlgorithm::Sha512),
        IndicatorKind::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorKind::Ip => "ip",
            IndicatorKind::Cidr => "cidr",
            IndicatorKind::Domain => "domain",
            IndicatorKind::Url => "url",
            IndicatorKind::Hash(alg) => alg.as_str(),
            IndicatorKind::Email => "email",
        }
    }
}

impl From<IndicatorKind> for &'static str {
    fn from(kind: IndicatorKind) -> &'static str {
        kind.as_str()
    }
}

impl fmt::Display for IndicatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A type name no parser knows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown indicator type {0:?} (expected ip, cidr, domain, url, md5, sha1, sha256, sha512, hash or email)")]
pub struct UnknownKind(pub String);

/// What a type column may say; `hash` alone is [`KindName::AnyHash`] (the length decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KindName {
    Kind(IndicatorKind),
    /// `ip` also accepts a CIDR (`10.0.0.0/8` in an `ip-src` column is common).
    IpOrCidr,
    AnyHash,
}

impl KindName {
    pub(crate) fn parse(name: &str) -> Result<KindName, UnknownKind> {
        let lower = name.trim().to_ascii_lowercase().replace('_', "-");
        let kind = match lower.as_str() {
            "ip" | "ipv4" | "ipv6" | "ip-addr" | "ipv4-addr" | "ipv6-addr" | "ip-src"
            | "ip-dst" | "ipaddress" | "ip-address" | "address" => KindName::IpOrCidr,
            "cidr" | "net" | "network" | "subnet" | "ip-range" | "netblock" => {
                KindName::Kind(IndicatorKind::Cidr)
            }
            "domain" | "hostname" | "host" | "fqdn" | "domain-name" | "dns" => {
                KindName::Kind(IndicatorKind::Domain)
            }
            "url" | "uri" | "link" => KindName::Kind(IndicatorKind::Url),
            "hash" | "file-hash" | "filehash" => KindName::AnyHash,
            "email" | "email-addr" | "email-address" | "e-mail" | "mail" | "email-src"
            | "email-dst" => KindName::Kind(IndicatorKind::Email),
            other => match HashAlgorithm::from_name(other) {
                Some(alg) => KindName::Kind(IndicatorKind::Hash(alg)),
                None => return Err(UnknownKind(name.to_string())),
            },
        };
        Ok(kind)
    }
}

impl FromStr for IndicatorKind {
    type Err = UnknownKind;

    /// Exactly the names of [`IndicatorKind::as_str`] (the stored form).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IndicatorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

impl TryFrom<String> for IndicatorKind {
    type Error = UnknownKind;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A value that is not a valid indicator of the kind asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {expected}: {reason}")]
pub struct InvalidValue {
    pub value: String,
    pub expected: &'static str,
    pub reason: String,
}

/// An indicator's value in canonical form (see [`IndicatorValue::parse`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndicatorValue {
    /// IPv4-mapped IPv6 addresses become IPv4.
    Ip(IpAddr),
    /// Host bits cleared: `10.1.2.3/8` is `10.0.0.0/8`.
    Cidr(IpNet),
    /// ASCII (IDNA punycode), lowercase, no trailing dot, at least two labels.
    Domain(String),
    /// WHATWG-parsed: scheme and host lowercase, default port and fragment dropped, path
    /// normalised; `http://` is assumed when no scheme is given.
    Url(String),
    /// Lowercase hex of the algorithm's length.
    Hash(HashAlgorithm, String),
    /// Lowercase `local@domain`, the domain as for [`IndicatorValue::Domain`].
    Email(String),
}

impl IndicatorValue {
    pub fn kind(&self) -> IndicatorKind {
        match self {
            IndicatorValue::Ip(_) => IndicatorKind::Ip,
            IndicatorValue::Cidr(_) => IndicatorKind::Cidr,
            IndicatorValue::Domain(_) => IndicatorKind::Domain,
            IndicatorValue::Url(_) => IndicatorKind::Url,
            IndicatorValue::Hash(alg, _) => IndicatorKind::Hash(*alg),
            IndicatorValue::Email(_) => IndicatorKind::Email,
        }
    }

    /// The canonical text: what is stored, shown and compared.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            IndicatorValue::Ip(ip) => Cow::Owned(ip.to_string()),
            IndicatorValue::Cidr(net) => Cow::Owned(net.to_string()),
            IndicatorValue::Domain(s)
            | IndicatorValue::Url(s)
            | IndicatorValue::Hash(_, s)
            | IndicatorValue::Email(s) => Cow::Borrowed(s),
        }
    }

    /// Parses `text` as a `kind`, into canonical form. Defanged text (`hxxp://`, `evil[.]com`,
    /// `a[@]b.com`) is refanged first.
    pub fn parse(kind: IndicatorKind, text: &str) -> Result<IndicatorValue, InvalidValue> {
        let text = canonical::refang(text);
        let invalid = |reason: String| InvalidValue {
            value: text.chars().take(200).collect(),
            expected: kind.as_str(),
            reason,
        };
        match kind {
            IndicatorKind::Ip => canonical::ip(&text)
                .map(IndicatorValue::Ip)
                .ok_or_else(|| invalid("not an IPv4 or IPv6 address".into())),
            IndicatorKind::Cidr => canonical::cidr(&text)
                .map(IndicatorValue::Cidr)
                .map_err(invalid),
            IndicatorKind::Domain => canonical::domain_indicator(&text)
                .map(IndicatorValue::Domain)
                .map_err(invalid),
            IndicatorKind::Url => canonical::url_indicator(&text)
                .map(IndicatorValue::Url)
                .map_err(invalid),
            IndicatorKind::Hash(alg) => match canonical::hash(&text) {
                Some((found, hex)) if found == alg => {
                    Ok(IndicatorValue::Hash(alg, hex.into_owned()))
                }
                Some((found, _)) => Err(invalid(format!(
                    "{} hex digits is a {} digest, not {}",
                    found.hex_len(),
                    found.as_str(),
                    alg.as_str()
                ))),
                None => Err(invalid(format!("expected {} hex digits", alg.hex_len()))),
            },
            IndicatorKind::Email => canonical::email_indicator(&text)
                .map(IndicatorValue::Email)
                .map_err(invalid),
        }
    }

    /// Parses text whose kind is not given: an IP, a CIDR, a hex digest (by length), a URL
    /// (has `://`), an email address (has `@`), else a domain.
    pub fn infer(text: &str) -> Result<IndicatorValue, InvalidValue> {
        let refanged = canonical::refang(text);
        let t = refanged.trim();
        if let Some(ip) = canonical::ip(t) {
            return Ok(IndicatorValue::Ip(ip));
        }
        if t.contains('/') && !t.contains("://") {
            if let Ok(net) = canonical::cidr(t) {
                return Ok(IndicatorValue::Cidr(net));
            }
        }
        if let Some((alg, hex)) = canonical::hash(t) {
            return Ok(IndicatorValue::Hash(alg, hex.into_owned()));
        }
        if t.contains("://") {
            return IndicatorValue::parse(IndicatorKind::Url, t);
        }
        if t.contains('@') {
            return IndicatorValue::parse(IndicatorKind::Email, t);
        }
        if t.contains('/') {
            return IndicatorValue::parse(IndicatorKind::Url, t);
        }
        IndicatorValue::parse(IndicatorKind::Domain, t).map_err(|e| InvalidValue {
            expected: "ip, cidr, hash, url, email or domain",
            ..e
        })
    }

    /// [`IndicatorValue::parse`] for a type name as feeds write it (`ip-src`, `hostname`,
    /// `SHA-256`, `hash`...).
    pub fn parse_named(type_name: &str, text: &str) -> Result<IndicatorValue, ParseNamedError> {
        match KindName::parse(type_name)? {
            KindName::Kind(kind) => Ok(IndicatorValue::parse(kind, text)?),
            KindName::IpOrCidr => {
                let refanged = canonical::refang(text);
                if refanged.contains('/') {
                    Ok(IndicatorValue::parse(IndicatorKind::Cidr, &refanged)?)
                } else {
                    Ok(IndicatorValue::parse(IndicatorKind::Ip, &refanged)?)
                }
            }
            KindName::AnyHash => {
                let refanged = canonical::refang(text);
                match canonical::hash(&refanged) {
                    Some((alg, hex)) => Ok(IndicatorValue::Hash(alg, hex.into_owned())),
                    None => Err(InvalidValue {
                        value: refanged.chars().take(200).collect(),
                        expected: "hash",
                        reason: "expected 32, 40, 64 or 128 hex digits (md5, sha1, sha256, sha512)"
                            .into(),
                    }
                    .into()),
                }
            }
        }
    }
}

/// Why [`IndicatorValue::parse_named`] refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseNamedError {
    #[error(transparent)]
    Kind(#[from] UnknownKind),
    #[error(transparent)]
    Value(#[from] InvalidValue),
}

impl fmt::Display for IndicatorValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// Confidence used when a feed gives none.
pub const DEFAULT_CONFIDENCE: u8 = 50;

/// One indicator of compromise from one source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "IndicatorRecord", try_from = "IndicatorRecord")]
pub struct Indicator {
    /// The canonical value; its kind is [`Indicator::kind`].
    pub value: IndicatorValue,
    /// The feed or source it came from (a name chosen by the importer).
    pub source: String,
    /// 0 to 100.
    pub confidence: u8,
    pub first_seen: Option<Timestamp>,
    /// No longer valid from this moment on.
    pub expires: Option<Timestamp>,
    pub tags: Vec<String>,
    pub description: Option<String>,
}

impl Indicator {
    pub fn new(value: IndicatorValue, source: impl Into<String>) -> Indicator {
        Indicator {
            value,
            source: source.into(),
            confidence: DEFAULT_CONFIDENCE,
            first_seen: None,
            expires: None,
            tags: Vec::new(),
            description: None,
        }
    }

    pub fn kind(&self) -> IndicatorKind {
        self.value.kind()
    }

    /// Not expired at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expires.is_none_or(|expires| now < expires)
    }
}

/// The flat serialised form of an [`Indicator`]: `{"kind": "ip", "value": "1.2.3.4", ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorRecord {
    pub kind: IndicatorKind,
    pub value: String,
    pub source: String,
    pub confidence: u8,
    #[serde(default)]
    pub first_seen: Option<Timestamp>,
    #[serde(default)]
    pub expires: Option<Timestamp>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl From<Indicator> for IndicatorRecord {
    fn from(i: Indicator) -> IndicatorRecord {
        IndicatorRecord {
            kind: i.value.kind(),
            value: i.value.text().into_owned(),
            source: i.source,
            confidence: i.confidence,
            first_seen: i.first_seen,
            expires: i.expires,
            tags: i.tags,
            description: i.description,
        }
    }
}

/// Why a record is not a valid indicator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRecord {
    #[error(transparent)]
    Value(#[from] InvalidValue),
    #[error("confidence {0} is not between 0 and 100")]
    Confidence(u8),
}

impl TryFrom<IndicatorRecord> for Indicator {
    type Error = InvalidRecord;
    fn try_from(r: IndicatorRecord) -> Result<Indicator, InvalidRecord> {
        if r.confidence > 100 {
            return Err(InvalidRecord::Confidence(r.confidence));
        }
        Ok(Indicator {
            value: IndicatorValue::parse(r.kind, &r.value)?,
            source: r.source,
            confidence: r.confidence,
            first_seen: r.first_seen,
            expires: r.expires,
            tags: r.tags,
            description: r.description,
        })
    }
}
