//! The summary of a hunt and its renderer.

use crate::hit::{Hit, Level, TACTICS};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// What a hunt read and found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Input files read (in whole or in part).
    pub files_read: u64,
    /// Input files (or archive members, or walked paths) that could not be read: (path, reason).
    pub files_failed: Vec<(String, String)>,
    /// Bytes of the input files on disk.
    pub bytes: u64,
    /// Events read and hunted.
    pub events: u64,
    /// Corrupt records skipped (EVTX records, JSON lines).
    pub records_skipped: u64,
    /// Corrupt EVTX chunks skipped.
    pub chunks_skipped: u64,
    /// Warnings about skipped data (the first ones of each file).
    pub warnings: Vec<String>,
    /// Rules loaded (all of them, before filters).
    pub rules_loaded: u64,
    /// Rules that could not be loaded.
    pub rules_rejected: u64,
    /// Rules hunted with, after `--min-level`, `--tag` and `--rule` filters.
    pub rules_used: u64,
    /// Hits in all.
    pub hits: u64,
    /// Hits per level (every level present, zero or not).
    pub hits_per_level: BTreeMap<Level, u64>,
    /// Hits per ATT&CK tactic of the rule's tags (a hit counts once for each of its tactics).
    pub hits_per_tactic: BTreeMap<String, u64>,
    /// Distinct rules that hit.
    pub rules_hit: u64,
    /// Wall-clock time of the hunt (reading, matching, sorting).
    pub elapsed: Duration,
    /// Worker threads used.
    pub threads: usize,
}

impl Summary {
    /// Events per second of wall-clock time.
    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        }
    }

    /// Counts `hits` into `hits`, `hits_per_level`, `hits_per_tactic` and `rules_hit`.
    pub fn count_hits(&mut self, hits: &[Hit]) {
        self.hits = hits.len() as u64;
        self.hits_per_level = Level::ALL.iter().map(|l| (*l, 0)).collect();
        self.hits_per_tactic.clear();
        let mut rules = std::collections::HashSet::new();
        for hit in hits {
            *self.hits_per_level.entry(hit.level).or_default() += 1;
            let mut seen: Vec<&str> = Vec::new();
            for tactic in hit.tactics() {
                if !seen.contains(&tactic) {
                    seen.push(tactic);
                    *self.hits_per_tactic.entry(tactic.to_string()).or_default() += 1;
                }
            }
            rules.insert((&hit.rule_id, &hit.rule_title));
        }
        self.rules_hit = rules.len() as u64;
    }

    /// The highest level among the hits (for `--fail-on LEVEL`).
    pub fn max_level(&self) -> Option<Level> {
        self.hits_per_level
            .iter()
            .rev()
            .find(|(_, n)| **n > 0)
            .map(|(l, _)| *l)
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Renders the summary as a few aligned lines of text (for stderr or the end of a report).
pub fn write_summary(summary: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    let s = summary;
    writeln!(out, "Hunt summary")?;
    writeln!(
        out,
        "  files      {} read, {} failed ({:.1} MiB)",
        thousands(s.files_read),
        thousands(s.files_failed.len() as u64),
        s.bytes as f64 / (1024.0 * 1024.0)
    )?;
    for (path, reason) in &s.files_failed {
        writeln!(out, "    failed: {path}: {reason}")?;
    }
    writeln!(
        out,
        "  events     {} read, {} corrupt records and {} corrupt chunks skipped",
        thousands(s.events),
        thousands(s.records_skipped),
        thousands(s.chunks_skipped)
    )?;
    writeln!(
        out,
        "  rules      {} loaded, {} rejected, {} used after filters, {} hit",
        thousands(s.rules_loaded),
        thousands(s.rules_rejected),
        thousands(s.rules_used),
        thousands(s.rules_hit)
    )?;
    let per_level = Level::ALL
        .iter()
        .rev()
        .map(|l| {
            format!(
                "{} {}",
                l,
                thousands(s.hits_per_level.get(l).copied().unwrap_or(0))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    writeln!(out, "  hits       {} ({per_level})", thousands(s.hits))?;
    if !s.hits_per_tactic.is_empty() {
        // In kill-chain order.
        let per_tactic = TACTICS
            .iter()
            .filter_map(|t| {
                s.hits_per_tactic
                    .get(*t)
                    .map(|n| format!("{t} {}", thousands(*n)))
            })
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(out, "  tactics    {per_tactic}")?;
    }
    writeln!(
        out,
        "  time       {:.2} s, {} events/s on {} threads",
        s.elapsed.as_secs_f64(),
        thousands(s.events_per_second().round() as u64),
        s.threads
    )?;
    if !s.warnings.is_empty() {
        writeln!(out, "  warnings   {} (first ones):", s.warnings.len())?;
        for w in s.warnings.iter().take(10) {
            writeln!(out, "    {w}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(8255), "8,255");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
