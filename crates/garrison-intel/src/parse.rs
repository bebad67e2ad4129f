//! What every feed parser shares: options, error places, the output, time and confidence
//! parsing.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::Indicator;

/// How to fill what a feed leaves out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// The source recorded on every indicator (a CSV `source` column overrides it per row).
    pub source: String,
    /// Confidence when a record gives none (0 to 100).
    pub default_confidence: u8,
    /// When a record has no expiry: expires this long after it was first seen (or after
    /// `now` when that is unknown). `None` leaves it without expiry.
    pub default_ttl: Option<SignedDuration>,
    /// The import time, for `default_ttl`.
    pub now: Timestamp,
    /// MISP: also take attributes with `to_ids: false` (context, not detection, by MISP's
    /// own convention). Off by default.
    pub misp_include_non_ids: bool,
}

impl ImportOptions {
    pub fn new(source: impl Into<String>, now: Timestamp) -> ImportOptions {
        ImportOptions {
            source: source.into(),
            default_confidence: crate::DEFAULT_CONFIDENCE,
            default_ttl: None,
            now,
            misp_include_non_ids: false,
        }
    }

    pub(crate) fn finish(&self, indicator: &mut Indicator) {
        if indicator.expires.is_none() {
            if let Some(ttl) = self.default_ttl {
                let from = indicator.first_seen.unwrap_or(self.now);
                indicator.expires = from.checked_add(ttl).ok();
            }
        }
    }
}

/// Where in the input a problem is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Location {
    /// A CSV record, by its first line (1-based), and the column when one is to blame.
    Line { line: u64, column: Option<String> },
    /// A place in a JSON document by JSON pointer (RFC 6901), with the object's id when it
    /// has one (STIX `id`, MISP `uuid`).
    Json { pointer: String, id: Option<String> },
    /// A position in text that could not be read at all (1-based).
    Text { line: u64, column: u64 },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line { line, column: None } => write!(f, "line {line}"),
            Location::Line {
                line,
                column: Some(c),
            } => write!(f, "line {line}, column {c:?}"),
            Location::Json { pointer, id: None } => write!(f, "{}", display_pointer(pointer)),
            Location::Json {
                pointer,
                id: Some(id),
            } => write!(f, "{} ({id})", display_pointer(pointer)),
            Location::Text { line, column } => write!(f, "line {line}, column {column}"),
        }
    }
}

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() {
        "/"
    } else {
        pointer
    }
}

/// One record that could not be imported (or, in [`ParseOutput::skipped`], one that was
/// well-formed but is not an indicator this crate can match), and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{location}: {reason}")]
pub struct ParseError {
    pub location: Location,
    pub reason: String,
}

/// What a parser returns: every good indicator, plus every bad record with its place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParseOutput {
    pub indicators: Vec<Indicator>,
    pub errors: Vec<ParseError>,
    /// Valid records deliberately not imported: MISP attributes of non-indicator types or
    /// without `to_ids`, STIX patterns that need more than one value to match
    /// (`AND`, `FOLLOWEDBY`, qualifiers), revoked STIX indicators.
    pub skipped: Vec<ParseError>,
}

/// The feed formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Stix,
    Misp,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Stix => "stix",
            Format::Misp => "misp",
        }
    }

    pub fn parse(self, input: &[u8], options: &ImportOptions) -> ParseOutput {
        match self {
            Format::Csv => crate::parse_csv(input, options),
            Format::Stix => crate::parse_stix(input, options),
            Format::Misp => crate::parse_misp(input, options),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "stix" | "stix2" | "stix2.1" => Ok(Format::Stix),
            "misp" => Ok(Format::Misp),
            other => Err(format!(
                "unknown format {other:?} (expected csv, stix or misp)"
            )),
        }
    }
}

/// A time as feeds write it: RFC 3339 (`2024-05-01T12:00:00Z`), a date (`2024-05-01`, midnight
/// UTC), a date and time without zone (UTC), or Unix seconds.
pub(crate) fn parse_time(text: &str) -> Result<Timestamp, String> {
    let t = text.trim();
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    if !t.is_empty() && t.len() <= 12 && t.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(secs) = t.parse::<i64>() {
            if let Ok(ts) = Timestamp::from_second(secs) {
                return Ok(ts);
            }
        }
    }
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        if let Ok(z) = dt.to_zoned(jiff::tz::TimeZone::UTC) {
            return Ok(z.timestamp());
        }
    }
    Err(format!(
        "{:?} is not a time (expected RFC 3339, YYYY-MM-DD or Unix seconds)",
        t.chars().take(64).collect::<String>()
    ))
}

/// A confidence: an integer 0 to 100, or `high` / `medium` / `low` / `none` (85 / 50 / 15 / 0,
/// the STIX 2.1 scale).
pub(crate) fn parse_confidence(text: &str) -> Result<u8, String> {
    let t = text.trim();
    match t.to_ascii_lowercase().as_str() {
        "high" => return Ok(85),
        "medium" => return Ok(50),
        "low" => return Ok(15),
        "none" => return Ok(0),
        _ => {}
    }
    match t.parse::<u8>() {
        Ok(c) if c <= 100 => Ok(c),
        _ => Err(format!(
            "confidence {:?} is not an integer from 0 to 100",
            t.chars().take(32).collect::<String>()
        )),
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
pub(crate) fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}
