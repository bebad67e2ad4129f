//! The hunt itself: read every input on all cores, match every event, collect a timeline.

use crate::event::{EventMeta, HuntEvent};
use crate::hit::{Hit, HitFilter, Level};
use crate::progress::Progress;
use crate::read::{collect_inputs, read_file};
use crate::scope::Scoping;
use crate::summary::Summary;
use crate::taxonomy::add_taxonomy_names;
use crate::HuntError;
use garrison_sigma::{CorrelationOptions, Correlator, Match, RuleKind, RuleMeta, RuleSet};
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

/// Options of [`hunt`].
#[derive(Clone, Debug, Default)]
pub struct HuntOptions {
    /// Files and folders to read (folders recursively).
    pub paths: Vec<PathBuf>,
    /// Which rules may hit.
    pub filter: HitFilter,
    /// Worker threads; 0 uses every core.
    pub threads: usize,
    /// The logsource every input is taken to have (`--logsource`); `None`: each event's own
    /// (see [`crate::inferred_logsource`]). Rules apply only to events whose logsource
    /// satisfies theirs.
    pub logsource: Option<garrison_sigma::LogSource>,
}

/// What [`hunt`] found.
#[derive(Clone, Debug, Default)]
pub struct HuntReport {
    /// Hits in timeline order (see [`Hit::timeline_cmp`]).
    pub hits: Vec<Hit>,
    pub summary: Summary,
}

impl HuntReport {
    /// The highest level among the hits, if any.
    pub fn max_level(&self) -> Option<Level> {
        self.hits.iter().map(|h| h.level).max()
    }

    /// `--fail-on LEVEL`: whether some hit is at `level` or above.
    pub fn fails_on(&self, level: Level) -> bool {
        self.max_level().is_some_and(|max| max >= level)
    }
}

/// A rule's level for filtering and reporting (a rule without one counts as informational).
pub fn rule_level(meta: &RuleMeta) -> Level {
    meta.level.unwrap_or(Level::Informational)
}

/// Whether hits of this rule are reported under `filter` (rules that only feed correlations,
/// `generate: false`, never are).
pub fn rule_enabled(meta: &RuleMeta, filter: &HitFilter) -> bool {
    let mut ids: Vec<&str> = Vec::new();
    ids.extend(meta.id.as_deref());
    ids.extend(meta.name.as_deref());
    (meta.generate || meta.kind == RuleKind::Correlation)
        && filter.accepts(&ids, rule_level(meta), &meta.tags)
}

fn rule_hit(
    meta: &RuleMeta,
    event: &HuntEvent,
    ev: &EventMeta,
    matched: Vec<(String, String)>,
) -> Hit {
    let ev = ev.clone();
    Hit {
        rule_id: meta
            .id
            .clone()
            .or_else(|| meta.name.clone())
            .unwrap_or_default(),
        rule_title: meta.title.clone(),
        level: rule_level(meta),
        tags: meta.tags.clone(),
        timestamp: ev.timestamp,
        file: event.file.to_string(),
        record_id: ev.record_id,
        computer: ev.computer,
        channel: ev.channel,
        event_id: ev.event_id,
        provider: ev.provider,
        matched,
    }
}

/// What one batch of events gave.
struct BatchOut<'r> {
    hits: Vec<Hit>,
    /// Events with detection matches, kept for the correlation pass.
    matched: Vec<(HuntEvent, Vec<Match<'r>>)>,
}

/// Hunts `rules` over every file under `opts.paths`, on all cores.
///
/// Detection rules are matched per event, in parallel. Correlation rules then run over the
/// events that matched any detection rule, in time order. Files that cannot be read are reported
/// in [`Summary::files_failed`], not as errors. `rules_rejected` of the summary is left to the
/// caller (see [`crate::LoadedRules`]).
pub fn hunt(
    opts: &HuntOptions,
    rules: &RuleSet,
    progress: &dyn Progress,
) -> Result<HuntReport, HuntError> {
    hunt_in(&thread_pool(opts.threads)?, opts, rules, progress)
}

/// The worker threads of a hunt (`threads` 0: one per core).
pub(crate) fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, HuntError> {
    let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("hunt-{i}"));
    if threads > 0 {
        builder = builder.num_threads(threads);
    }
    builder
        .build()
        .map_err(|e| HuntError::Threads(e.to_string()))
}

/// [`hunt`] on the given threads (a benchmark reuses them across passes, as one long hunt
/// would, instead of paying for new threads, heaps and caches each pass).
pub(crate) fn hunt_in(
    pool: &rayon::ThreadPool,
    opts: &HuntOptions,
    rules: &RuleSet,
    progress: &dyn Progress,
) -> Result<HuntReport, HuntError> {
    let start = Instant::now();
    let rules_loaded = rules.len() as u64;
    // Evaluate only the rules that may hit (and what their correlations need): a filtered set.
    let filtered;
    let rules = if rules
        .rules()
        .iter()
        .all(|m| rule_enabled(m, &opts.filter) || !m.generate)
    {
        rules
    } else {
        filtered = rules.retain(|m| rule_enabled(m, &opts.filter));
        &filtered
    };
    let metas = rules.rules();
    let enabled: Vec<bool> = metas
        .iter()
        .map(|m| rule_enabled(m, &opts.filter))
        .collect();
    // Detection rules whose matches correlation rules use: only events they matched are kept.
    let feeders = rules.correlation_feeders();
    let has_correlations = metas.iter().any(|m| m.kind == RuleKind::Correlation);
    let inputs = collect_inputs(&opts.paths)?;
    let mut summary = Summary {
        files_failed: inputs
            .errors
            .iter()
            .map(|(p, e)| (p.display().to_string(), e.clone()))
            .collect(),
        bytes: inputs.total_bytes(),
        rules_loaded,
        rules_used: enabled.iter().filter(|e| **e).count() as u64,
        ..Summary::default()
    };
    summary.threads = pool.current_num_threads();
    progress.started(inputs.files.len(), inputs.total_bytes());

    let any_rules = !metas.is_empty() && (has_correlations || enabled.iter().any(|e| *e));
    // Which rules apply per stream: computed once per distinct logsource, for every worker.
    let scoping = Scoping::new(rules, opts.logsource.clone());
    let scoping = &scoping;
    let sink = |events: Vec<HuntEvent>| -> BatchOut<'_> {
        let mut out = BatchOut {
            hits: Vec::new(),
            matched: Vec::new(),
        };
        if !any_rules {
            return out;
        }
        let mut matches: Vec<Match<'_>> = Vec::new();
        for mut event in events {
            let stream = scoping.stream_of(&event);
            add_taxonomy_names(&stream, &mut event.fields);
            rules.matches(&event, &mut matches);
            scoping.retain_as(&stream, &mut matches);
            if matches.is_empty() {
                continue;
            }
            // The event's metadata is extracted once, only for events with hits.
            let mut ev: Option<EventMeta> = None;
            for m in &mut matches {
                if enabled.get(m.rule_index).copied().unwrap_or(false) {
                    let ev = ev.get_or_insert_with(|| event.meta());
                    // The correlator never reads `matched`: hand it over, no copy.
                    let matched = std::mem::take(&mut m.matched);
                    out.hits.push(rule_hit(m.rule, &event, ev, matched));
                }
            }
            if has_correlations {
                matches.retain(|m| feeders[m.rule_index]);
                if !matches.is_empty() {
                    out.matched.push((event, std::mem::take(&mut matches)));
                }
            }
            matches.clear();
        }
        out
    };
    let results: Vec<_> = pool.install(|| {
        inputs
            .files
            .par_iter()
            .map(|input| {
                progress.file_started(&input.path, input.size);
                let result = read_file(&input.path, &sink, progress);
                progress.file_finished(&input.path, result.as_ref().map(|(_, s)| s));
                (input, result)
            })
            .collect()
    });
    let mut hits = Vec::new();
    let mut matched = Vec::new();
    for (input, result) in results {
        match result {
            Ok((batches, stats)) => {
                summary.files_read += 1;
                summary.events += stats.events;
                summary.records_skipped += stats.records_skipped;
                summary.chunks_skipped += stats.chunks_skipped;
                summary.files_failed.extend(stats.members_failed);
                summary.warnings.extend(stats.warnings);
                if stats.warnings_dropped > 0 {
                    summary.warnings.push(format!(
                        "{}: {} more warnings",
                        input.path.display(),
                        stats.warnings_dropped
                    ));
                }
                for b in batches {
                    hits.extend(b.hits);
                    matched.extend(b.matched);
                }
            }
            Err(e) => summary
                .files_failed
                .push((input.path.display().to_string(), e.to_string())),
        }
    }
    // Correlation (sequential in time order) runs while the detection hits are sorted.
    let (corr_hits, ()) = pool.install(|| {
        rayon::join(
            || {
                if has_correlations {
                    correlate(rules, &enabled, matched)
                } else {
                    Vec::new()
                }
            },
            || hits.par_sort_by(|a, b| a.timeline_cmp(b)),
        )
    });
    if !corr_hits.is_empty() {
        hits.extend(corr_hits);
        // Two sorted runs (the correlation hits are nearly sorted): a cheap merge.
        pool.install(|| hits.par_sort_by(|a, b| a.timeline_cmp(b)));
    }
    summary.count_hits(&hits);
    summary.elapsed = start.elapsed();
    Ok(HuntReport { hits, summary })
}

/// Runs the correlation rules over the matched events in time order.
fn correlate<'r>(
    rules: &'r RuleSet,
    enabled: &[bool],
    mut matched: Vec<(HuntEvent, Vec<Match<'r>>)>,
) -> Vec<Hit> {
    let mut timed: Vec<(jiff::Timestamp, HuntEvent, Vec<Match<'r>>)> = matched
        .drain(..)
        .filter_map(|(e, m)| e.timestamp().map(|t| (t, e, m)))
        .collect();
    timed.par_sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.file.cmp(&b.1.file))
            .then_with(|| a.1.record_id.cmp(&b.1.record_id))
    });
    let mut correlator = Correlator::new(rules, CorrelationOptions::default());
    let mut alerts = Vec::new();
    let mut hits = Vec::new();
    for (time, event, matches) in &timed {
        correlator.process(matches, *time, event, &mut alerts);
        for alert in alerts.drain(..) {
            if !enabled.get(alert.rule_index).copied().unwrap_or(false) {
                continue;
            }
            let mut matched = alert.group.clone();
            matched.push(("value".to_string(), alert.value.to_string()));
            matched.push(("events".to_string(), alert.events.to_string()));
            let mut hit = rule_hit(alert.rule, event, &event.meta(), matched);
            hit.timestamp = Some(alert.last);
            hits.push(hit);
        }
    }
    hits
}
