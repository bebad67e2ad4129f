//! Sigma correlation rules evaluated over a stream of rule matches, with bounded state.
//!
//! Semantics (streaming, evaluated on every contributing match):
//! - `event_count`: number of matching events of the group within `timespan`.
//! - `value_count`: distinct values of `field` (several fields: distinct tuples) within `timespan`.
//! - `temporal`: distinct referenced rules seen within `timespan` (default condition: all of them).
//! - `temporal_ordered`: as `temporal`, and the rules appeared in the listed order.
//! - `value_sum` / `value_avg`: sum / average of the numeric `field` within `timespan`.
//! - `value_percentile`: for a numeric field, the percentile rank (0–100) of the current value among
//!   the group's values within `timespan`; for a text field, the share (0–100) of the group's events
//!   within `timespan` that have the current value (so `lte: 1` finds rare values).
//!
//! When a correlation fires, its group's window is cleared (so one burst gives one alert), and the
//! correlation counts as a match for correlations that reference it (chaining).

use crate::event::{parse_number, Event, FieldValue};
use crate::rule::{CmpOp, CorrType};
use crate::types::{Match, RuleMeta};
use crate::yaml::fmt_float;
use jiff::Timestamp;
use std::collections::{HashMap, VecDeque};

/// A compiled correlation rule.
#[derive(Clone, Debug)]
pub(crate) struct CorrDef {
    pub rule: u32,
    pub ctype: CorrType,
    pub refs: Vec<u32>,
    /// group-by output name, and per reference (same order as `refs`) the event field to read.
    pub group_by: Vec<(String, Vec<String>)>,
    pub timespan_ms: i64,
    pub condition: Vec<(CmpOp, f64)>,
    pub field: Vec<String>,
}

/// Limits of a [`Correlator`].
#[derive(Clone, Debug)]
pub struct CorrelationOptions {
    /// Most events kept across all groups; past it the least recently updated groups are dropped.
    pub max_entries: usize,
}

impl Default for CorrelationOptions {
    fn default() -> Self {
        CorrelationOptions {
            max_entries: 1_000_000,
        }
    }
}

/// A correlation rule that fired.
#[derive(Clone, Debug)]
pub struct CorrelationAlert<'r> {
    pub rule: &'r RuleMeta,
    pub rule_index: usize,
    /// The group-by fields and their values.
    pub group: Vec<(String, String)>,
    /// The measured value (count, distinct count, rules seen, sum, average, percentile).
    pub value: f64,
    /// Time of the first and last event in the window.
    pub first: Timestamp,
    pub last: Timestamp,
    /// How many events were in the window.
    pub events: usize,
    /// The ids of the window's events that were fed with one ([`Correlator::process_event`]),
    /// with their times, in time order: every event that made the correlation fire.
    pub event_ids: Vec<(String, Timestamp)>,
}

struct Entry {
    ts: i64,
    ref_ix: u32,
    value: Option<String>,
    id: Option<Box<str>>,
}

struct GroupState {
    entries: VecDeque<Entry>,
    last_seen: u64,
}

/// Streaming evaluator of the correlation rules of a [`crate::RuleSet`].
pub struct Correlator<'r> {
    set: &'r crate::RuleSet,
    opts: CorrelationOptions,
    /// rule index → correlations referencing it (index into set.corrs, position in refs)
    by_ref: HashMap<u32, Vec<(usize, u32)>>,
    states: HashMap<(usize, Vec<String>), GroupState>,
    entries: usize,
    tick: u64,
    evictions: u64,
}

fn field_text(ev: &(impl Event + ?Sized), field: &str) -> Option<String> {
    fn text(v: &FieldValue) -> String {
        match v {
            FieldValue::Null => String::new(),
            FieldValue::Bool(b) => b.to_string(),
            FieldValue::Int(i) => i.to_string(),
            FieldValue::UInt(u) => u.to_string(),
            FieldValue::Float(f) => fmt_float(*f),
            FieldValue::Str(s) => s.to_string(),
            FieldValue::List(l) => l.iter().map(text).collect::<Vec<_>>().join(","),
        }
    }
    ev.get(field).map(|v| text(&v))
}

impl<'r> Correlator<'r> {
    pub fn new(set: &'r crate::RuleSet, opts: CorrelationOptions) -> Self {
        let mut by_ref: HashMap<u32, Vec<(usize, u32)>> = HashMap::new();
        for (ci, c) in set.corrs.iter().enumerate() {
            for (pos, r) in c.refs.iter().enumerate() {
                by_ref.entry(*r).or_default().push((ci, pos as u32));
            }
        }
        Correlator {
            set,
            opts,
            by_ref,
            states: HashMap::new(),
            entries: 0,
            tick: 0,
            evictions: 0,
        }
    }

    /// Groups dropped because of the memory cap so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Events currently held.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Feed the detection matches of one event (with its time); appends fired correlations to `out`.
    pub fn process<E: Event + ?Sized>(
        &mut self,
        matches: &[Match<'_>],
        time: Timestamp,
        event: &E,
        out: &mut Vec<CorrelationAlert<'r>>,
    ) {
        self.process_event(matches, time, event, None, out)
    }

    /// [`Correlator::process`] for an event with an id: a correlation that fires lists the
    /// ids of every event in its window ([`CorrelationAlert::event_ids`]).
    pub fn process_event<E: Event + ?Sized>(
        &mut self,
        matches: &[Match<'_>],
        time: Timestamp,
        event: &E,
        id: Option<&str>,
        out: &mut Vec<CorrelationAlert<'r>>,
    ) {
        let ts = time.as_millisecond();
        let mut pending: Vec<u32> = matches.iter().map(|m| m.rule_index as u32).collect();
        pending.sort_unstable();
        pending.dedup();
        let mut guard = 0;
        while let Some(hit) = pending.pop() {
            guard += 1;
            if guard > 10_000 {
                break;
            }
            let Some(users) = self.by_ref.get(&hit).cloned() else {
                continue;
            };
            for (ci, pos) in users {
                if let Some(alert) = self.feed(ci, pos, ts, event, id) {
                    pending.push(alert.rule_index as u32);
                    out.push(alert);
                }
            }
        }
        if self.entries > self.opts.max_entries {
            self.evict();
        }
    }

    fn feed<E: Event + ?Sized>(
        &mut self,
        ci: usize,
        pos: u32,
        ts: i64,
        event: &E,
        id: Option<&str>,
    ) -> Option<CorrelationAlert<'r>> {
        let set = self.set;
        let c = &set.corrs[ci];
        let group: Vec<String> = c
            .group_by
            .iter()
            .map(|(_, per)| field_text(event, &per[pos as usize]).unwrap_or_default())
            .collect();
        let value = if c.field.is_empty() {
            None
        } else {
            let parts: Vec<String> = c
                .field
                .iter()
                .map(|f| field_text(event, f).unwrap_or_default())
                .collect();
            Some(parts.join("\u{1f}"))
        };
        self.tick += 1;
        let tick = self.tick;
        let st = self
            .states
            .entry((ci, group.clone()))
            .or_insert_with(|| GroupState {
                entries: VecDeque::new(),
                last_seen: 0,
            });
        st.last_seen = tick;
        // The same event fed again (a sender's retry read from the log once more) is one
        // event: counting it twice would fire on fewer events than the rule asks for.
        if let Some(id) = id {
            // A retry carries the same time: only entries of that time can be it.
            let start = st.entries.partition_point(|e| e.ts < ts);
            let end = st.entries.partition_point(|e| e.ts <= ts);
            if st
                .entries
                .range(start..end)
                .any(|e| e.id.as_deref() == Some(id))
            {
                return None;
            }
        }
        // keep the window sorted by time; drop what fell out of it
        let idx = st.entries.partition_point(|e| e.ts <= ts);
        st.entries.insert(
            idx,
            Entry {
                ts,
                ref_ix: pos,
                value: value.clone(),
                id: id.map(Box::from),
            },
        );
        self.entries += 1;
        let lo = ts - c.timespan_ms;
        while st.entries.front().map(|e| e.ts < lo).unwrap_or(false) {
            st.entries.pop_front();
            self.entries -= 1;
        }
        let window: Vec<&Entry> = st
            .entries
            .iter()
            .filter(|e| e.ts <= ts + c.timespan_ms)
            .collect();
        let measured: f64 = match c.ctype {
            CorrType::EventCount => window.len() as f64,
            CorrType::ValueCount => {
                let mut seen: Vec<&str> =
                    window.iter().filter_map(|e| e.value.as_deref()).collect();
                seen.sort_unstable();
                seen.dedup();
                seen.len() as f64
            }
            CorrType::Temporal => {
                let mut refs: Vec<u32> = window.iter().map(|e| e.ref_ix).collect();
                refs.sort_unstable();
                refs.dedup();
                refs.len() as f64
            }
            CorrType::TemporalOrdered => {
                // longest in-order prefix of refs found as a subsequence
                let mut next = 0u32;
                for e in &window {
                    if e.ref_ix == next {
                        next += 1;
                        if next as usize == c.refs.len() {
                            break;
                        }
                    }
                }
                next as f64
            }
            CorrType::ValueSum | CorrType::ValueAvg => {
                let nums: Vec<f64> = window
                    .iter()
                    .filter_map(|e| e.value.as_deref().and_then(parse_number))
                    .collect();
                let sum: f64 = nums.iter().sum();
                if c.ctype == CorrType::ValueSum {
                    sum
                } else if nums.is_empty() {
                    0.0
                } else {
                    sum / nums.len() as f64
                }
            }
            CorrType::ValuePercentile => {
                let cur = value.as_deref().unwrap_or("");
                let n = window.len().max(1) as f64;
                match parse_number(cur) {
                    Some(x) => {
                        let below = window
                            .iter()
                            .filter(|e| {
                                e.value
                                    .as_deref()
                                    .and_then(parse_number)
                                    .map(|v| v <= x)
                                    .unwrap_or(false)
                            })
                            .count();
                        below as f64 * 100.0 / n
                    }
                    None => {
                        let same = window
                            .iter()
                            .filter(|e| e.value.as_deref() == Some(cur))
                            .count();
                        same as f64 * 100.0 / n
                    }
                }
            }
        };
        let fired = if c.condition.is_empty() {
            measured >= c.refs.len() as f64
        } else {
            c.condition.iter().all(|(op, v)| op.eval(measured, *v))
        };
        if !fired {
            return None;
        }
        let first = window.first().map(|e| e.ts).unwrap_or(ts);
        let last = window.last().map(|e| e.ts).unwrap_or(ts);
        let events = window.len();
        let event_ids = window
            .iter()
            .filter_map(|e| {
                let at = Timestamp::from_millisecond(e.ts).unwrap_or(Timestamp::UNIX_EPOCH);
                e.id.as_deref().map(|id| (id.to_string(), at))
            })
            .collect();
        self.entries -= st.entries.len();
        st.entries.clear();
        Some(CorrelationAlert {
            rule: &set.metas[c.rule as usize],
            rule_index: c.rule as usize,
            group: c
                .group_by
                .iter()
                .map(|(n, _)| n.clone())
                .zip(group)
                .collect(),
            value: measured,
            first: Timestamp::from_millisecond(first).unwrap_or(Timestamp::UNIX_EPOCH),
            last: Timestamp::from_millisecond(last).unwrap_or(Timestamp::UNIX_EPOCH),
            events,
            event_ids,
        })
    }

    fn evict(&mut self) {
        // drop the least recently updated groups until under 90% of the cap
        let target = self.opts.max_entries / 10 * 9;
        let mut order: Vec<(u64, (usize, Vec<String>))> = self
            .states
            .iter()
            .map(|(k, v)| (v.last_seen, k.clone()))
            .collect();
        order.sort_unstable_by_key(|(t, _)| *t);
        for (_, k) in order {
            if self.entries <= target {
                break;
            }
            if let Some(st) = self.states.remove(&k) {
                self.entries -= st.entries.len();
                self.evictions += 1;
            }
        }
        self.states.retain(|_, v| !v.entries.is_empty());
    }
}
