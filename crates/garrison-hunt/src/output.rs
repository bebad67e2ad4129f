//! Hit writers: an aligned table for a terminal, JSON lines, CSV.

use crate::hit::Hit;
use crate::HuntError;
use serde_json::{Map, Value};
use std::io::Write;
use std::str::FromStr;

/// Output formats of `garrison hunt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Jsonl,
    Csv,
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(OutputFormat::Table),
            "jsonl" | "json" | "ndjson" => Ok(OutputFormat::Jsonl),
            "csv" => Ok(OutputFormat::Csv),
            other => Err(format!(
                "unknown output format {other:?}: expected table, jsonl or csv"
            )),
        }
    }
}

/// Writes `hits` in `format`.
pub fn write_hits(
    format: OutputFormat,
    hits: &[Hit],
    out: &mut dyn Write,
) -> Result<(), HuntError> {
    match format {
        OutputFormat::Table => write_table(hits, out),
        OutputFormat::Jsonl => write_jsonl(hits, out),
        OutputFormat::Csv => write_csv(hits, out),
    }
}

/// RFC 3339 in UTC with the event's own precision (`2025-11-27T07:40:10.165324Z`).
pub fn format_time(hit: &Hit) -> String {
    hit.timestamp.map(|t| t.to_string()).unwrap_or_default()
}

fn channel_and_id(hit: &Hit) -> String {
    match (&hit.channel, hit.event_id) {
        (Some(c), Some(id)) => format!("{c}/{id}"),
        (Some(c), None) => c.clone(),
        (None, Some(id)) => id.to_string(),
        (None, None) => String::new(),
    }
}

/// Cuts `s` to at most `max` characters, marking the cut with `…`; `keep_end` keeps the end
/// (for paths) instead of the start. Control characters become spaces so a row stays one line.
pub fn truncate(s: &str, max: usize, keep_end: bool) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let n = clean.chars().count();
    if n <= max {
        return clean;
    }
    if max == 0 {
        return String::new();
    }
    if keep_end {
        let tail: String = clean.chars().skip(n - (max - 1)).collect();
        format!("…{tail}")
    } else {
        let head: String = clean.chars().take(max - 1).collect();
        format!("{head}…")
    }
}

/// Column limits of the table (characters).
const TABLE_COLUMNS: [(&str, usize, bool); 6] = [
    ("TIME", 27, false),
    ("LEVEL", 4, false),
    ("RULE", 60, false),
    ("COMPUTER", 28, false),
    ("CHANNEL/EVENT", 48, true),
    ("FILE", 48, true),
];

/// An aligned table for a terminal: time, level, rule title, computer, channel/event id, file.
/// Long cells are cut (paths and channels keep their end).
pub fn write_table(hits: &[Hit], out: &mut dyn Write) -> Result<(), HuntError> {
    let rows: Vec<[String; 6]> = hits
        .iter()
        .map(|h| {
            let cells = [
                format_time(h),
                h.level.short().to_string(),
                h.rule_title.clone(),
                h.computer.clone().unwrap_or_default(),
                channel_and_id(h),
                h.file.clone(),
            ];
            let mut i = 0;
            cells.map(|c| {
                let (_, max, keep_end) = TABLE_COLUMNS[i];
                i += 1;
                truncate(&c, max, keep_end)
            })
        })
        .collect();
    let mut widths = TABLE_COLUMNS.map(|(name, _, _)| name.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header = TABLE_COLUMNS.map(|(name, _, _)| name.to_string());
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `matched` as a JSON object: field → value, or field → `[values]` where a field matched more
/// than once. Keyword matches (no field) are under `"keywords"`.
pub fn matched_object(hit: &Hit) -> Map<String, Value> {
    let mut m = Map::new();
    for (field, value) in &hit.matched {
        let key = if field.is_empty() {
            "keywords"
        } else {
            field.as_str()
        };
        match m.get_mut(key) {
            None => {
                m.insert(key.to_string(), Value::String(value.clone()));
            }
            Some(Value::Array(items)) => items.push(Value::String(value.clone())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value.clone())]);
            }
        }
    }
    m
}

/// A hit as one JSON object (the `jsonl` line).
pub fn hit_to_json(hit: &Hit) -> Value {
    let mut m = Map::new();
    m.insert(
        "timestamp".into(),
        hit.timestamp.map(|t| t.to_string()).into(),
    );
    m.insert("rule_id".into(), hit.rule_id.clone().into());
    m.insert("rule_title".into(), hit.rule_title.clone().into());
    m.insert("level".into(), hit.level.as_str().into());
    m.insert("tags".into(), hit.tags.clone().into());
    m.insert("file".into(), hit.file.clone().into());
    m.insert("record_id".into(), hit.record_id.into());
    m.insert("computer".into(), hit.computer.clone().into());
    m.insert("channel".into(), hit.channel.clone().into());
    m.insert("event_id".into(), hit.event_id.into());
    m.insert("provider".into(), hit.provider.clone().into());
    m.insert("matched".into(), Value::Object(matched_object(hit)));
    Value::Object(m)
}

/// One JSON object per line (see [`hit_to_json`]).
pub fn write_jsonl(hits: &[Hit], out: &mut dyn Write) -> Result<(), HuntError> {
    for hit in hits {
        serde_json::to_writer(&mut *out, &hit_to_json(hit)).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// CSV header of [`write_csv`].
pub const CSV_HEADER: [&str; 12] = [
    "timestamp",
    "level",
    "rule_title",
    "rule_id",
    "tags",
    "computer",
    "channel",
    "event_id",
    "provider",
    "record_id",
    "file",
    "matched",
];

/// CSV with a header row; `tags` joined by `;`, `matched` as `field=value` pairs joined by `; `.
pub fn write_csv(hits: &[Hit], out: &mut dyn Write) -> Result<(), HuntError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    for h in hits {
        let matched = h
            .matched
            .iter()
            .map(|(f, v)| {
                if f.is_empty() {
                    v.clone()
                } else {
                    format!("{f}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        w.write_record([
            format_time(h),
            h.level.as_str().to_string(),
            h.rule_title.clone(),
            h.rule_id.clone(),
            h.tags.join(";"),
            h.computer.clone().unwrap_or_default(),
            h.channel.clone().unwrap_or_default(),
            h.event_id.map(|v| v.to_string()).unwrap_or_default(),
            h.provider.clone().unwrap_or_default(),
            h.record_id.map(|v| v.to_string()).unwrap_or_default(),
            h.file.clone(),
            matched,
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation() {
        assert_eq!(truncate("abcdef", 10, false), "abcdef");
        assert_eq!(truncate("abcdef", 4, false), "abc…");
        assert_eq!(truncate("abcdef", 4, true), "…def");
        assert_eq!(truncate("a\nb", 5, false), "a b");
        assert_eq!(truncate("äöüäöü", 3, false), "äö…");
        assert_eq!(truncate("abc", 0, false), "");
    }

    #[test]
    fn formats_parse() {
        assert_eq!("CSV".parse::<OutputFormat>(), Ok(OutputFormat::Csv));
        assert!("xml".parse::<OutputFormat>().is_err());
    }
}
