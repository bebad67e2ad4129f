//! Logsource scoping: which rules apply to an event, by the logsource of its stream.
//!
//! The stream's logsource is the source's configured one (live detection), the one given with
//! `garrison hunt --logsource`, or else what the event says of itself ([`inferred_logsource`]).
//! A rule applies when its logsource is satisfied ([`garrison_sigma::logsource_applies`]);
//! matches of other rules are dropped before they are reported or correlated, so a Zeek rule
//! never fires on a syslog line and a `not selection` rule cannot fire on events it was not
//! written for.

use crate::event::HuntEvent;
use crate::fields::FieldRef;
use garrison_sigma::{LogSource, Match, RuleSet};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// What an event says of its own logsource: a Windows event log channel is `product: windows`
/// (`linux` for Sysmon for Linux's `Linux-Sysmon/...`), a Zeek log record (`_path`, or
/// `@stream` with `@proc: zeek`) is `product: zeek` with its log as the service. Anything else
/// says nothing.
pub fn inferred_logsource(event: &HuntEvent) -> LogSource {
    match infer(event) {
        Inferred::Windows => product("windows"),
        Inferred::Linux => product("linux"),
        Inferred::Zeek(service) => LogSource {
            service: Some(service),
            ..product("zeek")
        },
        Inferred::Nothing => LogSource::default(),
    }
}

fn product(name: &str) -> LogSource {
    LogSource {
        product: Some(name.into()),
        ..LogSource::default()
    }
}

enum Inferred {
    Windows,
    Linux,
    Zeek(String),
    Nothing,
}

/// [`inferred_logsource`] without allocating for the common cases (it runs per event).
fn infer(event: &HuntEvent) -> Inferred {
    if let Some(channel) = event.channel_ref() {
        let linux = channel
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("linux-"));
        return if linux {
            Inferred::Linux
        } else {
            Inferred::Windows
        };
    }
    let text = |name: &str| event.fields.get(name).and_then(|v| v.to_text());
    let zeek_stream = match event.fields.get("@proc") {
        Some(FieldRef::Str(proc))
            if proc.eq_ignore_ascii_case("zeek") || proc.eq_ignore_ascii_case("bro") =>
        {
            text("@stream")
        }
        _ if event.fields.contains_key("_path")
            && (event.fields.contains_key("uid") || event.fields.contains_key("ts")) =>
        {
            text("_path")
        }
        _ => None,
    };
    zeek_stream.map_or(Inferred::Nothing, Inferred::Zeek)
}

/// Most distinct streams whose tables a [`ScopeCache`] keeps.
const MAX_CACHED_STREAMS: usize = 256;

/// Which rules of one rule set apply per stream logsource, computed once per distinct
/// logsource and shared by threads (live detection keeps one per tenant rule set).
#[derive(Default)]
pub struct ScopeCache {
    tables: RwLock<HashMap<LogSource, Arc<[bool]>>>,
}

impl ScopeCache {
    /// The applicability table of `rules` (the set this cache belongs to) for `stream`.
    pub fn table(&self, rules: &RuleSet, stream: &LogSource) -> Arc<[bool]> {
        if let Ok(tables) = self.tables.read() {
            if let Some(table) = tables.get(stream) {
                return Arc::clone(table);
            }
        }
        let table: Arc<[bool]> = rules.applicable(stream).into();
        if let Ok(mut tables) = self.tables.write() {
            // Streams partly come from events (a Zeek log's name): past a bound, tables are
            // computed without being kept, so no sender can grow the cache without end.
            if tables.len() < MAX_CACHED_STREAMS {
                tables.insert(stream.clone(), Arc::clone(&table));
            }
        }
        table
    }

    /// Drops the matches of rules that do not apply to events of `stream`.
    pub fn retain(&self, rules: &RuleSet, stream: &LogSource, matches: &mut Vec<Match<'_>>) {
        if matches.is_empty() {
            return;
        }
        let table = self.table(rules, stream);
        matches.retain(|m| table.get(m.rule_index).copied().unwrap_or(false));
    }
}

/// Which rules apply per stream logsource, computed once per distinct logsource.
pub struct Scoping<'r> {
    rules: &'r RuleSet,
    windows: LogSource,
    linux: LogSource,
    nothing: LogSource,
    /// The logsource every event is taken to have (a source's, `--logsource`), if any.
    fixed: Option<LogSource>,
    cache: ScopeCache,
}

impl<'r> Scoping<'r> {
    /// Scoping over `rules`; `fixed` is the logsource all events share, if known (an empty
    /// one counts as unknown: each event's own then decides).
    pub fn new(rules: &'r RuleSet, fixed: Option<LogSource>) -> Self {
        Scoping {
            rules,
            windows: product("windows"),
            linux: product("linux"),
            nothing: LogSource::default(),
            fixed: fixed.filter(|ls| *ls != LogSource::default()),
            cache: ScopeCache::default(),
        }
    }

    /// The logsource `event` is evaluated as.
    pub fn stream_of(&self, event: &HuntEvent) -> Cow<'_, LogSource> {
        if let Some(ls) = &self.fixed {
            return Cow::Borrowed(ls);
        }
        match infer(event) {
            Inferred::Windows => Cow::Borrowed(&self.windows),
            Inferred::Linux => Cow::Borrowed(&self.linux),
            Inferred::Nothing => Cow::Borrowed(&self.nothing),
            Inferred::Zeek(service) => Cow::Owned(LogSource {
                service: Some(service),
                ..product("zeek")
            }),
        }
    }

    /// Whether rule `index` applies to events of `stream`.
    pub fn applies(&self, stream: &LogSource, index: usize) -> bool {
        self.table(stream).get(index).copied().unwrap_or(false)
    }

    /// Computed once per distinct stream for the whole run (shared by every worker).
    fn table(&self, stream: &LogSource) -> Arc<[bool]> {
        self.cache.table(self.rules, stream)
    }

    /// Drops the matches of rules that do not apply to `event`'s stream.
    pub fn retain(&self, event: &HuntEvent, matches: &mut Vec<Match<'_>>) {
        if matches.is_empty() {
            return;
        }
        self.retain_as(&self.stream_of(event), matches);
    }

    /// Drops the matches of rules that do not apply to events of `stream`.
    pub fn retain_as(&self, stream: &LogSource, matches: &mut Vec<Match<'_>>) {
        if matches.is_empty() {
            return;
        }
        let table = self.table(stream);
        matches.retain(|m| table.get(m.rule_index).copied().unwrap_or(false));
    }
}
