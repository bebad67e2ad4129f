//! CSV feeds.
//!
//! The header names the columns (case-insensitive; aliases in brackets): `value` (`indicator`,
//! `ioc`, `observable`), `type` (`kind`, `indicator_type`, `ioc_type`), `confidence`
//! (`score`), `expires` (`valid_until`, `expiration`, `expiry`), `first_seen` (`firstseen`,
//! `valid_from`, `created`), `tags` (`labels`; split at `;`, `|` or `,`), `description`
//! (`comment`, `name`), `source` (overrides the import's source for that row). Other columns
//! are ignored. Without a `type` column each value's kind is inferred
//! ([`IndicatorValue::infer`]). Lines starting with `#` are comments.
//!
//! A file whose first line names no value column is read as a list of values, one per line,
//! from the first column.

use csv::{ByteRecord, ReaderBuilder};

use crate::parse::{
    parse_confidence, parse_time, ImportOptions, Location, ParseError, ParseOutput,
};
use crate::{Indicator, IndicatorValue};

#[derive(Default)]
struct Columns {
    value: Option<usize>,
    kind: Option<usize>,
    confidence: Option<usize>,
    expires: Option<usize>,
    first_seen: Option<usize>,
    tags: Option<usize>,
    description: Option<usize>,
    source: Option<usize>,
}

impl Columns {
    fn from_header(header: &ByteRecord) -> Columns {
        let mut c = Columns::default();
        for (i, name) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(name)
                .trim()
                .trim_start_matches('\u{feff}')
                .to_ascii_lowercase()
                .replace([' ', '-'], "_");
            let slot = match name.as_str() {
                "value" | "indicator" | "ioc" | "observable" | "ioc_value" | "indicator_value" => {
                    &mut c.value
                }
                "type" | "kind" | "indicator_type" | "ioc_type" | "observable_type" => &mut c.kind,
                "confidence" | "score" => &mut c.confidence,
                "expires" | "valid_until" | "expiration" | "expiry" | "expires_at" => {
                    &mut c.expires
                }
                "first_seen" | "firstseen" | "valid_from" | "created" | "first_seen_utc" => {
                    &mut c.first_seen
                }
                "tags" | "labels" | "tag" => &mut c.tags,
                "description" | "comment" | "name" => &mut c.description,
                "source" | "feed" => &mut c.source,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(i);
            }
        }
        c
    }

    fn names(&self) -> [(Option<usize>, &'static str); 7] {
        [
            (self.kind, "type"),
            (self.confidence, "confidence"),
            (self.expires, "expires"),
            (self.first_seen, "first_seen"),
            (self.tags, "tags"),
            (self.description, "description"),
            (self.source, "source"),
        ]
    }
}

/// Parses a CSV feed (see the module docs). Never fails as a whole: each bad row is an error
/// with its line, and every good row is kept.
pub fn parse_csv(input: &[u8], options: &ImportOptions) -> ParseOutput {
    let mut out = ParseOutput::default();
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut record = ByteRecord::new();
    let mut columns: Option<Columns> = None;
    // The csv crate's own line numbers skip blank and comment lines (and count CRLF oddly):
    // lines are counted here from where each record starts.
    let mut lines = LineCounter::default();
    let mut end = 0usize;
    loop {
        let start = record_start(input, end);
        let line = lines.line_at(input, start);
        let result = reader.read_byte_record(&mut record);
        let next_end = usize::try_from(reader.position().byte()).unwrap_or(input.len());
        match result {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                out.errors.push(ParseError {
                    location: Location::Line { line, column: None },
                    reason: format!("unreadable CSV: {e}"),
                });
                // Never loop on a reader that does not move.
                if next_end <= end {
                    break;
                }
                end = next_end;
                continue;
            }
        }
        end = next_end.max(end);
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        let cols = match &columns {
            Some(c) => c,
            None => {
                let header = Columns::from_header(&record);
                if header.value.is_some() {
                    columns = Some(header);
                    continue;
                }
                // No header: a plain list of values in the first column.
                columns = Some(Columns {
                    value: Some(0),
                    ..Columns::default()
                });
                match &columns {
                    Some(c) => c,
                    None => continue,
                }
            }
        };
        match row(&record, cols, line, options) {
            Ok(indicator) => out.indicators.push(indicator),
            Err(error) => out.errors.push(error),
        }
    }
    out
}

fn row(
    record: &ByteRecord,
    cols: &Columns,
    line: u64,
    options: &ImportOptions,
) -> Result<Indicator, ParseError> {
    let err = |column: &str, reason: String| ParseError {
        location: Location::Line {
            line,
            column: Some(column.to_string()),
        },
        reason,
    };
    let field = |index: Option<usize>, name: &str| -> Result<Option<&str>, ParseError> {
        match index.and_then(|i| record.get(i)) {
            None => Ok(None),
            Some([]) => Ok(None),
            Some(bytes) => std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|e| err(name, format!("not UTF-8 text: {e}"))),
        }
    };
    for (index, name) in cols.names() {
        field(index, name)?;
    }
    let value = field(cols.value, "value")?.ok_or_else(|| err("value", "no value".into()))?;
    let parsed = match field(cols.kind, "type")? {
        Some(kind) => {
            IndicatorValue::parse_named(kind, value).map_err(|e| err("value", e.to_string()))?
        }
        None => IndicatorValue::infer(value).map_err(|e| err("value", e.to_string()))?,
    };
    let source = field(cols.source, "source")?.unwrap_or(&options.source);
    let mut indicator = Indicator::new(parsed, source);
    indicator.confidence = match field(cols.confidence, "confidence")? {
        Some(c) => parse_confidence(c).map_err(|e| err("confidence", e))?,
        None => options.default_confidence,
    };
    indicator.expires = field(cols.expires, "expires")?
        .map(parse_time)
        .transpose()
        .map_err(|e| err("expires", e))?;
    indicator.first_seen = field(cols.first_seen, "first_seen")?
        .map(parse_time)
        .transpose()
        .map_err(|e| err("first_seen", e))?;
    if let Some(tags) = field(cols.tags, "tags")? {
        indicator.tags = tags
            .split([';', '|', ','])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
    }
    indicator.description = field(cols.description, "description")?.map(str::to_string);
    options.finish(&mut indicator);
    Ok(indicator)
}

/// Where the next record starts, from the end of the previous one: past line ends, blank
/// lines and `#` comment lines.
fn record_start(input: &[u8], mut i: usize) -> usize {
    loop {
        while matches!(input.get(i), Some(b'\n' | b'\r')) {
            i += 1;
        }
        if input.get(i) != Some(&b'#') {
            return i.min(input.len());
        }
        match input
            .get(i..)
            .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
        {
            Some(n) => i += n + 1,
            None => return input.len(),
        }
    }
}

/// 1-based line numbers of byte offsets met in increasing order.
#[derive(Default)]
struct LineCounter {
    offset: usize,
    newlines: u64,
}

impl LineCounter {
    fn line_at(&mut self, input: &[u8], offset: usize) -> u64 {
        if let Some(span) = input.get(self.offset..offset) {
            self.newlines += span.iter().filter(|b| **b == b'\n').count() as u64;
            self.offset = offset;
        }
        self.newlines + 1
    }
}
