//! Wire types of the `indicators` routes: shared by the server and the client.

use serde::{Deserialize, Serialize};

use garrison_intel::{DecayModel, Indicator, IndicatorRecord, ParseError};
use garrison_model::{PageLimit, Timestamp};
use garrison_store::{IndicatorFeed, StoredIndicator};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IndicatorView {
    pub id: i64,
    /// `ip`, `cidr`, `domain`, `url`, `md5`, `sha1`, `sha256`, `sha512`, `email`.
    pub kind: String,
    pub value: String,
    pub source: String,
    pub confidence: i64,
    /// Confidence decayed by age now (half-life per kind), 0 once expired.
    pub score: f64,
    pub first_seen: Option<String>,
    pub expires: Option<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub times_imported: i64,
    pub created: String,
    pub updated: String,
}

impl IndicatorView {
    pub fn new(stored: StoredIndicator, now: Timestamp) -> IndicatorView {
        let score = to_intel(&stored).map_or(0.0, |i| DecayModel::default().score(&i, now));
        IndicatorView {
            id: stored.id,
            kind: stored.kind,
            value: stored.value,
            source: stored.source,
            confidence: stored.confidence,
            score: (score * 100.0).round() / 100.0,
            first_seen: stored.first_seen.map(|t| t.to_string()),
            expires: stored.expires.map(|t| t.to_string()),
            tags: stored.tags,
            description: stored.description,
            times_imported: stored.times_imported,
            created: stored.created.to_string(),
            updated: stored.updated.to_string(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IndicatorsPage {
    pub indicators: Vec<IndicatorView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FeedView {
    pub name: String,
    pub format: String,
    pub last_import: String,
    /// Indicators the last import brought (new or updated).
    pub last_imported: i64,
    /// Records the last import refused.
    pub last_errors: i64,
    pub imports: i64,
    pub created: String,
}

impl From<IndicatorFeed> for FeedView {
    fn from(f: IndicatorFeed) -> Self {
        FeedView {
            name: f.name,
            format: f.format,
            last_import: f.last_import.to_string(),
            last_imported: f.last_imported,
            last_errors: f.last_errors,
            imports: f.imports,
            created: f.created.to_string(),
        }
    }
}

/// A record that was refused (or skipped), and where it is in the input.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordProblem {
    /// `{"type": "line", "line": 3, "column": "value"}`,
    /// `{"type": "json", "pointer": "/objects/4", "id": "indicator--..."}` or
    /// `{"type": "text", "line": 1, "column": 9}`.
    pub location: garrison_intel::Location,
    /// The place, readable: `line 3, column "value"`, `/objects/4 (indicator--...)`.
    pub at: String,
    pub reason: String,
}

impl From<ParseError> for RecordProblem {
    fn from(e: ParseError) -> Self {
        RecordProblem {
            at: e.location.to_string(),
            location: e.location,
            reason: e.reason,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IndicatorImportResult {
    pub format: String,
    pub source: String,
    /// Indicators read from the input (before merging duplicates).
    pub parsed: u64,
    /// Indicators stored: new plus updated.
    pub imported: u64,
    pub created: u64,
    pub updated: u64,
    /// Every refused record with its place.
    pub errors: Vec<RecordProblem>,
    /// Well-formed records that are not matchable indicators (first 1,000).
    pub skipped: Vec<RecordProblem>,
    pub skipped_count: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// `csv`, `stix` or `misp`.
    pub format: String,
    /// The feed's name, recorded as every indicator's source (1 to 256 characters).
    pub source: String,
    /// Confidence for records that give none (0 to 100, default 50).
    #[param(minimum = 0, maximum = 100)]
    pub confidence: Option<u8>,
    /// Records without expiry expire this many days after first seen.
    pub ttl_days: Option<u32>,
    /// MISP: also import attributes with `to_ids: false`.
    pub include_non_ids: Option<bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// `ip`, `cidr`, `domain`, `url`, `md5`, `sha1`, `sha256`, `sha512` or `email`.
    pub kind: Option<String>,
    /// Only indicators of this feed.
    pub source: Option<String>,
    /// An exact value (canonicalised first: `Evil.COM.` finds `evil.com`).
    pub value: Option<String>,
    /// Only indicators not expired now (true).
    pub active: Option<bool>,
    /// Only indicators of at least this confidence.
    pub min_confidence: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<PageLimit>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeletedFeed {
    /// Indicators deleted with the feed.
    pub deleted: u64,
}

/// The stored indicator as the intel crate's type, to score it.
pub fn to_intel(stored: &StoredIndicator) -> Option<Indicator> {
    let record = IndicatorRecord {
        kind: stored.kind.parse().ok()?,
        value: stored.value.clone(),
        source: stored.source.clone(),
        confidence: u8::try_from(stored.confidence).ok()?,
        first_seen: stored.first_seen,
        expires: stored.expires,
        tags: Vec::new(),
        description: None,
    };
    Indicator::try_from(record).ok()
}

/// A retro-hunt: the tenant's active indicators matched against stored events of a range.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetroHuntRequest {
    /// Event time from (inclusive): RFC 3339 or Unix seconds. Default: 7 days before `to`.
    #[schema(value_type = Option<String>)]
    pub from: Option<garrison_model::TimeBound>,
    /// Event time to (exclusive). Default: now.
    #[schema(value_type = Option<String>)]
    pub to: Option<garrison_model::TimeBound>,
}

/// What a retro-hunt found. Matches become `ioc:<kind>` alerts, folded like live ones (an
/// event already alerted on is not counted again; a second retro-hunt adds nothing).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RetroHuntResult {
    pub from: String,
    pub to: String,
    /// Active indicators matched.
    pub indicators: usize,
    /// Stored events read, oldest first.
    pub events: u64,
    /// Indicator matches found.
    pub matches: u64,
    /// Alerts the matches created (the others folded into existing alerts).
    pub alerts_created: u64,
}
