//! The compiled rule set: logsource index, literal prefilter automata, evaluation.

use crate::compile::{Compiler, Expr, FieldDef, FieldId, Leaf, Pred, RefMode, TimePart, KW_FIELD};
use crate::correlation::CorrDef;
use crate::event::{parse_number, Event, FieldValue};
use crate::matcher::Anchor;
use crate::sstr::{ascii_lower_into, has_ascii_lowering, lower_into};
use crate::types::{Match, RuleMeta};
use crate::yaml::fmt_float;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

/// Largest pattern set compiled to a DFA (bounded memory); larger ones use a contiguous NFA.
const DFA_MAX_PATTERNS: usize = 300;
/// Keyword sets up to this size get a search of the whole string buffer first (the packed SIMD
/// searcher handles up to 64 patterns; beyond, the buffer search costs as much as the strings').
const KW_BUFFER_MAX_PATTERNS: usize = 64;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Patterns of one field: index by bytes, the patterns, and per pattern its (anchor, instance)
/// and (anchor, leaf) hits.
#[derive(Default)]
struct PatternTable {
    ix: HashMap<Vec<u8>, usize>,
    pats: Vec<Vec<u8>>,
    hits: Vec<Vec<(Anchor, u32)>>,
    leaf_hits: Vec<Vec<(Anchor, u32)>>,
}

impl PatternTable {
    fn pattern_ix(&mut self, lit: &[u8]) -> usize {
        match self.ix.get(lit) {
            Some(ix) => *ix,
            None => {
                let ix = self.pats.len();
                self.ix.insert(lit.to_vec(), ix);
                self.pats.push(lit.to_vec());
                self.hits.push(Vec::new());
                self.leaf_hits.push(Vec::new());
                ix
            }
        }
    }

    fn has(&self, p: usize, pred: impl Fn(Anchor) -> bool) -> bool {
        self.hits[p].iter().any(|h| pred(h.0)) || self.leaf_hits[p].iter().any(|h| pred(h.0))
    }
}

#[derive(Clone)]
pub(crate) struct Instance {
    pub rule: u32,
    pub expr: Expr,
    pub cover: Option<crate::compile::Lits>,
    /// (channel lowercased, event id) keys; empty = not indexed (generic).
    pub keys: Vec<(String, Option<u32>)>,
    /// For a generic instance: which events its logsource can apply to.
    pub scope: Scope,
}

/// Which events a rule that no pipeline maps (no event conditions) can apply to, by the product
/// of its logsource. Windows event log events (events with a `Channel`) are product `windows`,
/// or `linux` for Linux Sysmon's channels; events without a channel may be anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// No product, category or service: any event.
    Any,
    /// `product: windows`.
    Windows,
    /// `product: linux`.
    Linux,
    /// Any other product (macos, aws, zeek, ...) or a non-Windows category/service without a
    /// product (webserver, proxy, dns, ...): never a Windows event log event.
    Other,
}

impl Scope {
    pub(crate) fn of(ls: &crate::types::LogSource) -> Scope {
        match ls.product.as_deref().map(|p| p.trim().to_ascii_lowercase()) {
            Some(p) if p == "windows" => Scope::Windows,
            Some(p) if p == "linux" => Scope::Linux,
            Some(_) => Scope::Other,
            None if ls.category.is_some() || ls.service.is_some() => Scope::Other,
            None => Scope::Any,
        }
    }
}

/// Whether a rule with logsource `rule` applies to events of a stream with logsource `stream`.
///
/// A rule that asks for nothing applies everywhere; a stream that says nothing gets only such
/// rules. Otherwise no key both set may differ (case-insensitively), a product the rule names
/// must be the stream's, and each other key the rule sets and the stream leaves open must be
/// decided another way: by the rule's event conditions (`mapped`: a pipeline maps its
/// logsource, as Windows channels are), or by the stream naming the rule's product (a
/// `product: linux` source gets `linux` rules of every category).
pub fn logsource_applies(
    rule: &crate::types::LogSource,
    stream: &crate::types::LogSource,
    mapped: bool,
) -> bool {
    // No allocation: this runs once per rule and distinct stream.
    fn norm(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    let keys = [
        (norm(&rule.product), norm(&stream.product)),
        (norm(&rule.category), norm(&stream.category)),
        (norm(&rule.service), norm(&stream.service)),
    ];
    if keys.iter().all(|(r, _)| r.is_none()) {
        return true;
    }
    if keys.iter().all(|(_, s)| s.is_none()) {
        return false;
    }
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let same_product = matches!(keys[0], (Some(r), Some(s)) if same(r, s));
    keys.iter().enumerate().all(|(i, (r, s))| match (r, s) {
        (None, _) => true,
        (Some(r), Some(s)) => same(r, s),
        // A product the stream does not name is never assumed (a `category: firewall` source
        // gets no `product: windows` rule); Windows records name theirs by their channel.
        (Some(_), None) if i == 0 => false,
        (Some(_), None) => mapped || same_product,
    })
}

/// A byte trie walked from one end of a value: reports the patterns that are a prefix (or, for
/// a trie of reversed patterns walked backwards, a suffix) of the value. Walks stop as soon as
/// the value leaves the trie, so they cost the length of the longest matching pattern.
#[derive(Default)]
struct Trie {
    /// Children of the root by byte (node + 1; 0 = none).
    root: Vec<u32>,
    /// Edges of node `i`: `edge_byte[edge_start[i]..edge_start[i + 1]]` (sorted) and targets.
    edge_start: Vec<u32>,
    edge_byte: Vec<u8>,
    edge_next: Vec<u32>,
    /// Patterns ending at node `i`: `pats[pat_start[i]..pat_start[i + 1]]`.
    pat_start: Vec<u32>,
    pats: Vec<u32>,
}

impl Trie {
    fn build<'p>(patterns: impl Iterator<Item = (u32, &'p [u8])>, reversed: bool) -> Trie {
        // Builder: node 0 is the root.
        let mut children: Vec<Vec<(u8, u32)>> = vec![Vec::new()];
        let mut ends: Vec<Vec<u32>> = vec![Vec::new()];
        for (id, p) in patterns {
            let mut node = 0usize;
            let mut step = |b: u8, node: &mut usize| {
                let found = children[*node].iter().find(|e| e.0 == b).map(|e| e.1);
                *node = match found {
                    Some(n) => n as usize,
                    None => {
                        let n = children.len();
                        children.push(Vec::new());
                        ends.push(Vec::new());
                        children[*node].push((b, n as u32));
                        n
                    }
                };
            };
            if reversed {
                p.iter().rev().for_each(|b| step(*b, &mut node));
            } else {
                p.iter().for_each(|b| step(*b, &mut node));
            }
            ends[node].push(id);
        }
        let mut t = Trie {
            root: vec![0; 256],
            ..Trie::default()
        };
        for (b, n) in &children[0] {
            t.root[*b as usize] = n + 1;
        }
        for (c, e) in children.iter_mut().zip(&ends) {
            c.sort_unstable();
            t.edge_start.push(t.edge_byte.len() as u32);
            t.edge_byte.extend(c.iter().map(|x| x.0));
            t.edge_next.extend(c.iter().map(|x| x.1));
            t.pat_start.push(t.pats.len() as u32);
            t.pats.extend_from_slice(e);
        }
        t.edge_start.push(t.edge_byte.len() as u32);
        t.pat_start.push(t.pats.len() as u32);
        t
    }

    /// Calls `f(pattern, depth)` for every pattern the walk over `bytes` passes.
    #[inline]
    fn walk(&self, mut bytes: impl Iterator<Item = u8>, mut f: impl FnMut(u32, usize)) {
        let Some(b) = bytes.next() else { return };
        let mut node = match self.root[b as usize] {
            0 => return,
            n => (n - 1) as usize,
        };
        let mut depth = 1;
        loop {
            let (ps, pe) = (
                self.pat_start[node] as usize,
                self.pat_start[node + 1] as usize,
            );
            for &p in &self.pats[ps..pe] {
                f(p, depth);
            }
            let Some(b) = bytes.next() else { return };
            let (es, ee) = (
                self.edge_start[node] as usize,
                self.edge_start[node + 1] as usize,
            );
            match self.edge_byte[es..ee].iter().position(|x| *x == b) {
                Some(i) => node = self.edge_next[es + i] as usize,
                None => return,
            }
            depth += 1;
        }
    }

    fn memory_usage(&self) -> usize {
        self.root.len() * 4
            + self.edge_start.len() * 4
            + self.edge_byte.len()
            + self.edge_next.len() * 4
            + self.pat_start.len() * 4
            + self.pats.len() * 4
    }
}

struct FieldAutomaton {
    field: FieldId,
    /// Start- and exact-anchored patterns, walked from the value's start.
    fwd: Option<Trie>,
    /// End-anchored patterns (reversed), walked from the value's end.
    rev: Option<Trie>,
    /// Unanchored patterns (overlapping search); AC pattern id → pattern via `ac_pats`.
    ac: Option<Arc<AhoCorasick>>,
    ac_pats: Vec<u32>,
    /// Keywords only (unanchored, all ASCII): `ac` matching ASCII case-insensitively, run on
    /// the event's ASCII strings as they are, with no lowercased copy of every string.
    ac_ascii_ci: Option<AhoCorasick>,
    /// Keywords only, when no pattern can match how a number or boolean is written: the same
    /// patterns for one search of the event's [`Event::string_buffer`] lowercased (ASCII), where
    /// no match means no keyword matches. Few patterns, so a SIMD searcher (Teddy) runs it.
    kw_buffer: Option<AhoCorasick>,
    /// per pattern: (anchor, instance) made candidates
    hits: Vec<Vec<(Anchor, u32)>>,
    /// per pattern: (anchor, leaf) decided true
    leaf_hits: Vec<Vec<(Anchor, u32)>>,
}

#[derive(Default)]
struct Bucket {
    always: Vec<u32>,
    automata: Vec<FieldAutomaton>,
}

/// A bucket's field automaton before its Aho-Corasick automaton is built.
struct PendingField {
    field: FieldId,
    table: PatternTable,
    /// Index into the list of distinct AC pattern sets.
    ac: Option<usize>,
    ac_pats: Vec<u32>,
}

/// Builds the buckets over `members` (instance lists): pattern tables first, then every distinct
/// Aho-Corasick pattern set once (buckets of the same rules under different channels share
/// them), on all cores.
fn build_buckets(
    insts: &[Instance],
    leaves: &[Leaf],
    decided: &mut [bool],
    members: &[&[u32]],
) -> Vec<Bucket> {
    let mut ac_sets: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut ac_ix: HashMap<Vec<Vec<u8>>, usize> = HashMap::new();
    let mut pending: Vec<(Vec<u32>, Vec<PendingField>)> = Vec::new();
    let mut ids = Vec::new();
    for m in members {
        let mut always = Vec::new();
        let mut per_field: HashMap<FieldId, PatternTable> = HashMap::new();
        for &i in *m {
            match &insts[i as usize].cover {
                Some(lits) => {
                    for (f, anchor, lit) in lits {
                        let e = per_field.entry(*f).or_default();
                        let idx = e.pattern_ix(lit);
                        if !e.hits[idx].contains(&(*anchor, i)) {
                            e.hits[idx].push((*anchor, i));
                        }
                    }
                }
                None => always.push(i),
            }
            // Plain literal leaves are decided by the automata, not evaluated one by one.
            ids.clear();
            insts[i as usize].expr.leaves(&mut ids);
            for &l in &ids {
                let leaf = &leaves[l as usize];
                if let Pred::Str(sm) = &leaf.pred {
                    if let Some((anchor, lit)) = sm.decided_literal() {
                        let e = per_field.entry(leaf.field.unwrap_or(KW_FIELD)).or_default();
                        let idx = e.pattern_ix(lit);
                        if !e.leaf_hits[idx].contains(&(anchor, l)) {
                            e.leaf_hits[idx].push((anchor, l));
                        }
                        decided[l as usize] = true;
                    }
                }
            }
        }
        let mut fields: Vec<PendingField> = per_field
            .into_iter()
            .map(|(field, table)| {
                let ac_pats: Vec<u32> = (0..table.pats.len())
                    .filter(|p| table.has(*p, |a| a == Anchor::Anywhere))
                    .map(|p| p as u32)
                    .collect();
                let ac = (!ac_pats.is_empty()).then(|| {
                    let set: Vec<Vec<u8>> = ac_pats
                        .iter()
                        .map(|p| table.pats[*p as usize].clone())
                        .collect();
                    *ac_ix.entry(set).or_insert_with_key(|set| {
                        ac_sets.push(set.clone());
                        ac_sets.len() - 1
                    })
                });
                PendingField {
                    field,
                    table,
                    ac,
                    ac_pats,
                }
            })
            .collect();
        fields.sort_by_key(|f| f.field);
        pending.push((always, fields));
    }
    drop(ac_ix);

    // Build the distinct automata, largest first, on all cores.
    let mut order: Vec<usize> = (0..ac_sets.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(ac_sets[*i].iter().map(|p| p.len()).sum::<usize>()));
    let built: Vec<std::sync::OnceLock<Arc<AhoCorasick>>> = (0..ac_sets.len())
        .map(|_| std::sync::OnceLock::new())
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || loop {
        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(&i) = order.get(k) else { break };
        let _ = built[i].set(Arc::new(build_ac(&ac_sets[i])));
    };
    let threads = crate::compile_threads().min(ac_sets.len());
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(work);
            }
            work();
        });
    }
    let built: Vec<Arc<AhoCorasick>> = built
        .into_iter()
        .map(|c| c.into_inner().expect("automaton built"))
        .collect();

    pending
        .into_iter()
        .map(|(always, fields)| Bucket {
            always,
            automata: fields
                .into_iter()
                .map(|pf| {
                    let t = &pf.table;
                    let fwd_pats = (0..t.pats.len())
                        .filter(|p| t.has(*p, |a| matches!(a, Anchor::Start | Anchor::Exact)));
                    let fwd: Vec<(u32, &[u8])> =
                        fwd_pats.map(|p| (p as u32, t.pats[p].as_slice())).collect();
                    let rev: Vec<(u32, &[u8])> = (0..t.pats.len())
                        .filter(|p| t.has(*p, |a| a == Anchor::End))
                        .map(|p| (p as u32, t.pats[p].as_slice()))
                        .collect();
                    FieldAutomaton {
                        field: pf.field,
                        fwd: (!fwd.is_empty()).then(|| Trie::build(fwd.into_iter(), false)),
                        rev: (!rev.is_empty()).then(|| Trie::build(rev.into_iter(), true)),
                        ac: pf.ac.map(|i| Arc::clone(&built[i])),
                        ac_ascii_ci: (pf.field == KW_FIELD
                            && t.pats.iter().all(|p| !p.is_empty() && p.is_ascii())
                            && (t.hits.iter().chain(&t.leaf_hits))
                                .flatten()
                                .all(|h| h.0 == Anchor::Anywhere))
                        .then(|| {
                            let pats: Vec<&[u8]> = pf
                                .ac_pats
                                .iter()
                                .map(|p| t.pats[*p as usize].as_slice())
                                .collect();
                            AhoCorasickBuilder::new()
                                .match_kind(MatchKind::Standard)
                                .ascii_case_insensitive(true)
                                .kind(Some(if pats.len() <= DFA_MAX_PATTERNS {
                                    AhoCorasickKind::DFA
                                } else {
                                    AhoCorasickKind::ContiguousNFA
                                }))
                                .build(pats)
                                .expect("aho-corasick automaton")
                        }),
                        kw_buffer: (pf.field == KW_FIELD
                            && pf.ac_pats.len() <= KW_BUFFER_MAX_PATTERNS
                            && t.pats
                                .iter()
                                .all(|p| p.is_ascii() && !could_be_scalar_text(p)))
                        .then(|| {
                            AhoCorasickBuilder::new()
                                .match_kind(MatchKind::LeftmostFirst)
                                .build(pf.ac_pats.iter().map(|p| t.pats[*p as usize].as_slice()))
                                .expect("aho-corasick automaton")
                        }),
                        ac_pats: pf.ac_pats,
                        hits: pf.table.hits,
                        leaf_hits: pf.table.leaf_hits,
                    }
                })
                .collect(),
        })
        .collect()
}

/// Whether `pattern` (lowercase) can occur in how a number or boolean is written as text
/// (`-12`, `3.5e-7`, `true`, `inf`, `NaN`).
fn could_be_scalar_text(pattern: &[u8]) -> bool {
    let number = pattern
        .iter()
        .all(|b| b.is_ascii_digit() || b"+-.e".contains(b));
    let word = |w: &[u8]| w.windows(pattern.len()).any(|x| x == pattern);
    number || pattern.is_empty() || word(b"true") || word(b"false") || word(b"inf") || word(b"nan")
}

fn build_ac(pats: &[Vec<u8>]) -> AhoCorasick {
    AhoCorasickBuilder::new()
        .match_kind(MatchKind::Standard)
        // a DFA is several times faster for overlapping search; keep it for moderate sets
        .kind(Some(if pats.len() <= DFA_MAX_PATTERNS {
            AhoCorasickKind::DFA
        } else {
            AhoCorasickKind::ContiguousNFA
        }))
        .build(pats)
        .expect("aho-corasick automaton")
}

#[derive(Default)]
struct ChanEntry {
    any: Option<Arc<Bucket>>,
    by_eid: HashMap<u32, Arc<Bucket>>,
}

/// A compiled, immutable set of Sigma rules. Cheap to share across threads (`Sync`).
pub struct RuleSet {
    pub(crate) metas: Vec<RuleMeta>,
    /// The filters applied to the rules at load (already merged into their conditions).
    pub(crate) filters: Vec<crate::FilterMeta>,
    fields: Arc<Vec<FieldDef>>,
    leaves: Arc<Vec<Leaf>>,
    /// Leaves whose truth the automata decide (plain uncased literals).
    decided: Vec<bool>,
    insts: Vec<Instance>,
    channels: HashMap<String, ChanEntry>,
    /// Rules not indexed by channel: for events without a channel, Windows events, Linux events.
    generic: [Arc<Bucket>; 3],
    chan_field: FieldId,
    eid_field: FieldId,
    pub(crate) corrs: Vec<CorrDef>,
}

/// Reusable per-thread evaluation buffers (no allocation per event once warm).
#[derive(Default)]
pub struct Scratch {
    gen: u32,
    slots: Vec<Slot>,
    inst_mark: Vec<u32>,
    leaf_mark: Vec<u32>,
    rule_mark: Vec<u32>,
    cands: Vec<u32>,
    kw_gen: u32,
    kw: Vec<Val>,
    kw_n: usize,
    lower_buf: String,
}

#[derive(Default)]
struct Slot {
    gen: u32,
    present: bool,
    n: usize,
    vals: Vec<Val>,
}

#[derive(Default, Clone)]
struct Val {
    null: bool,
    num: Option<f64>,
    raw: String,
    lower: String,
}

fn set_val(val: &mut Val, v: &FieldValue) {
    val.raw.clear();
    val.null = false;
    val.num = None;
    match v {
        FieldValue::Null => val.null = true,
        FieldValue::Bool(b) => val.raw.push_str(if *b { "true" } else { "false" }),
        FieldValue::Int(i) => {
            let _ = write!(val.raw, "{i}");
            val.num = Some(*i as f64);
        }
        FieldValue::UInt(u) => {
            let _ = write!(val.raw, "{u}");
            val.num = Some(*u as f64);
        }
        FieldValue::Float(f) => {
            val.raw.push_str(&fmt_float(*f));
            val.num = Some(*f);
        }
        FieldValue::Str(s) => val.raw.push_str(s),
        FieldValue::List(_) => {}
    }
    lower_into(&val.raw, &mut val.lower);
}

fn push_vals(slot: &mut Slot, v: &FieldValue) {
    match v {
        FieldValue::List(items) => {
            for it in items {
                push_vals(slot, it);
            }
        }
        other => {
            if slot.vals.len() <= slot.n {
                slot.vals.push(Val::default());
            }
            set_val(&mut slot.vals[slot.n], other);
            slot.n += 1;
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn time_part(raw: &str, part: TimePart) -> Option<f64> {
    let t = raw.trim();
    let dt: jiff::civil::DateTime = if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        ts.to_zoned(jiff::tz::TimeZone::UTC).datetime()
    } else {
        let norm = t.replacen(' ', "T", 1);
        let norm = norm.trim_end_matches('Z');
        match norm.parse::<jiff::civil::DateTime>() {
            Ok(d) => d,
            Err(_) => norm
                .parse::<jiff::civil::Date>()
                .ok()?
                .to_datetime(jiff::civil::Time::midnight()),
        }
    };
    Some(match part {
        TimePart::Minute => dt.minute() as f64,
        TimePart::Hour => dt.hour() as f64,
        TimePart::Day => dt.day() as f64,
        TimePart::Week => dt.date().iso_week_date().week() as f64,
        TimePart::Month => dt.month() as f64,
        TimePart::Year => dt.year() as f64,
    })
}

impl RuleSet {
    pub(crate) fn build(
        metas: Vec<RuleMeta>,
        comp: Compiler,
        insts: Vec<Instance>,
        chan_field: FieldId,
        eid_field: FieldId,
        corrs: Vec<CorrDef>,
    ) -> RuleSet {
        let fields = Arc::new(comp.fields);
        let leaves = Arc::new(comp.leaves);
        RuleSet::build_from(metas, fields, leaves, insts, chan_field, eid_field, corrs)
    }

    fn build_from(
        metas: Vec<RuleMeta>,
        fields: Arc<Vec<FieldDef>>,
        leaves: Arc<Vec<Leaf>>,
        insts: Vec<Instance>,
        chan_field: FieldId,
        eid_field: FieldId,
        corrs: Vec<CorrDef>,
    ) -> RuleSet {
        // Generic instances by the events they can apply to: [any event (no channel), Windows
        // event log events, Linux Sysmon events].
        let mut generic_m: [Vec<u32>; 3] = Default::default();
        let mut chan_any: HashMap<String, Vec<u32>> = HashMap::new();
        let mut chan_eid: HashMap<String, HashMap<u32, Vec<u32>>> = HashMap::new();
        for (i, inst) in insts.iter().enumerate() {
            let i = i as u32;
            if inst.keys.is_empty() {
                generic_m[0].push(i);
                if matches!(inst.scope, Scope::Any | Scope::Windows) {
                    generic_m[1].push(i);
                }
                if matches!(inst.scope, Scope::Any | Scope::Linux) {
                    generic_m[2].push(i);
                }
            }
            for (c, e) in &inst.keys {
                match e {
                    None => chan_any.entry(c.clone()).or_default().push(i),
                    Some(e) => chan_eid
                        .entry(c.clone())
                        .or_default()
                        .entry(*e)
                        .or_default()
                        .push(i),
                }
            }
        }
        let mut decided = vec![false; leaves.len()];
        // Distinct member lists (the same rules often index several channels, e.g. Windows
        // PowerShell and PowerShell Core): one bucket each, shared.
        let mut lists: Vec<Vec<u32>> = Vec::new();
        let mut list_ix: HashMap<Vec<u32>, usize> = HashMap::new();
        let mut intern = |m: Vec<u32>, lists: &mut Vec<Vec<u32>>| -> usize {
            *list_ix.entry(m).or_insert_with_key(|m| {
                lists.push(m.clone());
                lists.len() - 1
            })
        };
        let generic_ix = generic_m.map(|m| intern(m, &mut lists));
        let mut chan_slots: Vec<(String, Option<u32>, usize)> = Vec::new();
        for (c, m) in chan_any {
            let i = intern(m, &mut lists);
            chan_slots.push((c, None, i));
        }
        for (c, map) in chan_eid {
            for (e, m) in map {
                let i = intern(m, &mut lists);
                chan_slots.push((c.clone(), Some(e), i));
            }
        }
        let refs: Vec<&[u32]> = lists.iter().map(|v| v.as_slice()).collect();
        let built: Vec<Arc<Bucket>> = build_buckets(&insts, &leaves, &mut decided, &refs)
            .into_iter()
            .map(Arc::new)
            .collect();
        let mut channels: HashMap<String, ChanEntry> = HashMap::new();
        for (c, e, i) in chan_slots {
            let ce = channels.entry(c).or_default();
            let b = Arc::clone(&built[i]);
            match e {
                None => ce.any = Some(b),
                Some(e) => {
                    ce.by_eid.insert(e, b);
                }
            }
        }
        let generic = generic_ix.map(|i| Arc::clone(&built[i]));
        RuleSet {
            metas,
            filters: Vec::new(),
            fields,
            leaves,
            decided,
            insts,
            channels,
            generic,
            chan_field,
            eid_field,
            corrs,
        }
    }

    /// A set with only the rules `keep` accepts (detection and correlation rules), plus the
    /// rules that kept correlation rules reference (directly or through other correlations),
    /// so those still work. Rules are renumbered: [`Match::rule_index`] indexes the new set's
    /// [`RuleSet::rules`]. Only the kept rules are evaluated, so matching gets cheaper. The
    /// compiled leaves are shared with `self`; only the index and automata are rebuilt.
    pub fn retain(&self, mut keep: impl FnMut(&RuleMeta) -> bool) -> RuleSet {
        let mut kept: Vec<bool> = self.metas.iter().map(&mut keep).collect();
        // Correlations pull in what they reference (correlations only reference earlier ones
        // or detection rules, but iterate to a fixed point to be safe).
        loop {
            let mut changed = false;
            for c in &self.corrs {
                if kept[c.rule as usize] {
                    for r in &c.refs {
                        if !kept[*r as usize] {
                            kept[*r as usize] = true;
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let mut new_ix = vec![u32::MAX; self.metas.len()];
        let mut metas = Vec::new();
        for (i, m) in self.metas.iter().enumerate() {
            if kept[i] {
                new_ix[i] = metas.len() as u32;
                metas.push(m.clone());
            }
        }
        let insts: Vec<Instance> = self
            .insts
            .iter()
            .filter(|inst| kept[inst.rule as usize])
            .map(|inst| Instance {
                rule: new_ix[inst.rule as usize],
                ..inst.clone()
            })
            .collect();
        let corrs: Vec<CorrDef> = self
            .corrs
            .iter()
            .filter(|c| kept[c.rule as usize])
            .map(|c| CorrDef {
                rule: new_ix[c.rule as usize],
                refs: c.refs.iter().map(|r| new_ix[*r as usize]).collect(),
                ..c.clone()
            })
            .collect();
        let mut set = RuleSet::build_from(
            metas,
            Arc::clone(&self.fields),
            Arc::clone(&self.leaves),
            insts,
            self.chan_field,
            self.eid_field,
            corrs,
        );
        set.filters = self.filters.clone();
        set
    }

    /// Per rule (indexed like [`RuleSet::rules`]): whether it applies to events of `stream`,
    /// the logsource of where the events come from (a source's configured logsource, or what
    /// an event says of itself; see [`logsource_applies`]). Matches of other rules are dropped.
    pub fn applicable(&self, stream: &crate::types::LogSource) -> Vec<bool> {
        // A rule whose logsource a pipeline maps to event conditions (Channel, EventID, ...)
        // lets the events decide what its logsource leaves open.
        let mut mapped = vec![false; self.metas.len()];
        for inst in &self.insts {
            if inst.scope == Scope::Any {
                mapped[inst.rule as usize] = true;
            }
        }
        self.metas
            .iter()
            .zip(mapped)
            .map(|(m, mapped)| logsource_applies(&m.logsource, stream, mapped))
            .collect()
    }

    /// Per rule (indexed like [`RuleSet::rules`]): whether it is a detection rule that some
    /// correlation rule uses, directly or through other correlation rules. Only matches of
    /// these rules matter to a [`crate::Correlator`]; events that matched none of them need
    /// not be kept for correlation.
    pub fn correlation_feeders(&self) -> Vec<bool> {
        let mut used = vec![false; self.metas.len()];
        for c in &self.corrs {
            for r in &c.refs {
                used[*r as usize] = true;
            }
        }
        self.metas
            .iter()
            .zip(used)
            .map(|(m, u)| u && m.kind == crate::types::RuleKind::Detection)
            .collect()
    }

    /// Metadata of every loaded rule (detection and correlation rules), indexed by `Match::rule_index`.
    pub fn rules(&self) -> &[RuleMeta] {
        &self.metas
    }

    /// The filters (Sigma tuning documents) merged into the rules they name.
    pub fn filters(&self) -> &[crate::FilterMeta] {
        &self.filters
    }

    /// Index statistics (for diagnostics): buckets with their always-evaluated and prefiltered rule
    /// instance counts.
    #[doc(hidden)]
    pub fn index_stats(&self) -> Vec<(String, usize, usize)> {
        let mut v = Vec::new();
        let count = |b: &Bucket| {
            let mut insts: Vec<u32> = b
                .automata
                .iter()
                .flat_map(|a| a.hits.iter().flatten().map(|h| h.1))
                .collect();
            insts.sort_unstable();
            insts.dedup();
            insts.len()
        };
        v.push((
            "*".to_string(),
            self.generic[0].always.len(),
            count(&self.generic[0]),
        ));
        for (c, e) in &self.channels {
            if let Some(b) = &e.any {
                v.push((format!("{c}/*"), b.always.len(), count(b)));
            }
            for (id, b) in &e.by_eid {
                v.push((format!("{c}/{id}"), b.always.len(), count(b)));
            }
        }
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v
    }

    /// Titles of the rules evaluated on every event of their bucket (no prefilter literal).
    #[doc(hidden)]
    pub fn unfiltered_rules(&self) -> Vec<&str> {
        let mut v: Vec<u32> = self.generic[0].always.clone();
        for e in self.channels.values() {
            v.extend(e.any.iter().flat_map(|b| b.always.iter().copied()));
            v.extend(e.by_eid.values().flat_map(|b| b.always.iter().copied()));
        }
        v.iter()
            .map(|i| {
                self.metas[self.insts[*i as usize].rule as usize]
                    .title
                    .as_str()
            })
            .collect()
    }

    /// Heap bytes used by the prefilter automata.
    #[doc(hidden)]
    pub fn automata_memory(&self) -> usize {
        let mut all: Vec<&Arc<Bucket>> = self.generic.iter().collect();
        for e in self.channels.values() {
            all.extend(e.any.iter());
            all.extend(e.by_eid.values());
        }
        all.sort_by_key(|b| Arc::as_ptr(b));
        all.dedup_by_key(|b| Arc::as_ptr(b));
        let mut acs: Vec<&Arc<AhoCorasick>> = Vec::new();
        let mut total = 0;
        for a in all.iter().flat_map(|b| b.automata.iter()) {
            total += a.fwd.as_ref().map_or(0, Trie::memory_usage);
            total += a.rev.as_ref().map_or(0, Trie::memory_usage);
            acs.extend(a.ac.iter());
        }
        acs.sort_by_key(|a| Arc::as_ptr(a));
        acs.dedup_by_key(|a| Arc::as_ptr(a));
        total + acs.iter().map(|a| a.memory_usage()).sum::<usize>()
    }

    /// Number of loaded rules.
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// Evaluate the detection rules on `event`, appending one [`Match`] per matching rule (in rule
    /// order) to `out`. Uses a thread-local [`Scratch`].
    pub fn matches<'a, E: Event + ?Sized>(&'a self, event: &E, out: &mut Vec<Match<'a>>) {
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => self.matches_with(&mut s, event, out),
            Err(_) => self.matches_with(&mut Scratch::default(), event, out),
        })
    }

    /// Like [`RuleSet::matches`] with caller-owned buffers.
    pub fn matches_with<'a, E: Event + ?Sized>(
        &'a self,
        s: &mut Scratch,
        event: &E,
        out: &mut Vec<Match<'a>>,
    ) {
        s.gen = s.gen.wrapping_add(1);
        if s.gen == 0 {
            // wrapped: reset stamps
            s.slots.iter_mut().for_each(|x| x.gen = 0);
            s.inst_mark.iter_mut().for_each(|x| *x = 0);
            s.leaf_mark.iter_mut().for_each(|x| *x = 0);
            s.rule_mark.iter_mut().for_each(|x| *x = 0);
            s.kw_gen = 0;
            s.gen = 1;
        }
        if s.slots.len() < self.fields.len() {
            s.slots.resize_with(self.fields.len(), Slot::default);
        }
        if s.inst_mark.len() < self.insts.len() {
            s.inst_mark.resize(self.insts.len(), 0);
        }
        if s.leaf_mark.len() < self.leaves.len() {
            s.leaf_mark.resize(self.leaves.len(), 0);
        }
        if s.rule_mark.len() < self.metas.len() {
            s.rule_mark.resize(self.metas.len(), 0);
        }
        s.cands.clear();

        // Which buckets: by channel and event id.
        self.resolve(s, event, self.chan_field);
        self.resolve(s, event, self.eid_field);
        let mut buckets: [Option<&Bucket>; 3] = [Some(&self.generic[0]), None, None];
        {
            let cs = &s.slots[self.chan_field as usize];
            if cs.n > 0 {
                // An event log event: only the generic rules of its product apply.
                let linux = cs.vals[0].lower.starts_with("linux-");
                buckets[0] = Some(&self.generic[if linux { 2 } else { 1 }]);
                if let Some(ce) = self.channels.get(cs.vals[0].lower.as_str()) {
                    buckets[1] = ce.any.as_deref();
                    let es = &s.slots[self.eid_field as usize];
                    if es.n > 0 {
                        let v = &es.vals[0];
                        let eid = v.num.or_else(|| parse_number(&v.raw));
                        if let Some(eid) = eid {
                            buckets[2] = ce.by_eid.get(&(eid as u32)).map(|b| &**b);
                        }
                    }
                }
            }
        }
        let gen = s.gen;
        for b in buckets.iter().flatten() {
            for &i in &b.always {
                if s.inst_mark[i as usize] != gen {
                    s.inst_mark[i as usize] = gen;
                    s.cands.push(i);
                }
            }
            for fa in &b.automata {
                if let (Some(ci), Some(ac)) = (&fa.ac_ascii_ci, &fa.ac) {
                    // Keywords: first one scan of the buffer holding all the event's strings,
                    // when the event has one: no match there, no match in any string.
                    // (Lowercasing is per character, so the lowercased buffer holds every
                    // lowercased string whole; for ASCII patterns, lowercasing the ASCII
                    // letters is enough unless one of two characters lowers to ASCII.)
                    if let (Some(kwb), Some(buf)) = (&fa.kw_buffer, event.string_buffer()) {
                        if has_ascii_lowering(buf) {
                            lower_into(buf, &mut s.lower_buf);
                        } else {
                            ascii_lower_into(buf, &mut s.lower_buf);
                        }
                        if !kwb.is_match(s.lower_buf.as_str()) {
                            continue;
                        }
                    }
                    // Then every string of the event as it is visited; ASCII ones need no
                    // lowercased copy. (Equivalent to scanning the lowercased strings: the
                    // patterns are lowercase ASCII, only unanchored.)
                    let Scratch {
                        inst_mark,
                        leaf_mark,
                        cands,
                        lower_buf,
                        ..
                    } = s;
                    let mut hit = |p: usize| {
                        for &(_, leaf) in &fa.leaf_hits[p] {
                            leaf_mark[leaf as usize] = gen;
                        }
                        for &(_, inst) in &fa.hits[p] {
                            if inst_mark[inst as usize] != gen {
                                inst_mark[inst as usize] = gen;
                                cands.push(inst);
                            }
                        }
                    };
                    event.visit_strings(&mut |text: &str| {
                        if text.is_ascii() {
                            for m in ci.find_overlapping_iter(text.as_bytes()) {
                                hit(fa.ac_pats[m.pattern().as_usize()] as usize);
                            }
                        } else {
                            lower_into(text, lower_buf);
                            for m in ac.find_overlapping_iter(lower_buf.as_bytes()) {
                                hit(fa.ac_pats[m.pattern().as_usize()] as usize);
                            }
                        }
                        false
                    });
                    continue;
                }
                if fa.field == KW_FIELD {
                    self.keywords(s, event);
                } else {
                    self.resolve(s, event, fa.field);
                }
                let Scratch {
                    slots,
                    inst_mark,
                    leaf_mark,
                    cands,
                    kw,
                    kw_n,
                    ..
                } = s;
                let vals = if fa.field == KW_FIELD {
                    &kw[..*kw_n]
                } else {
                    let slot = &slots[fa.field as usize];
                    &slot.vals[..slot.n]
                };
                for val in vals {
                    let hay = val.lower.as_bytes();
                    let len = hay.len();
                    let mut hit = |p: usize, start: usize, end: usize, kinds: u8| {
                        let ok = |anchor: Anchor| match anchor {
                            Anchor::Anywhere => kinds & 1 != 0,
                            Anchor::Start => kinds & 2 != 0,
                            Anchor::End => kinds & 4 != 0,
                            Anchor::Exact => kinds & 2 != 0 && start == 0 && end == len,
                        };
                        for &(anchor, leaf) in &fa.leaf_hits[p] {
                            if ok(anchor) {
                                leaf_mark[leaf as usize] = gen;
                            }
                        }
                        for &(anchor, inst) in &fa.hits[p] {
                            if inst_mark[inst as usize] != gen && ok(anchor) {
                                inst_mark[inst as usize] = gen;
                                cands.push(inst);
                            }
                        }
                    };
                    if let Some(t) = &fa.fwd {
                        t.walk(hay.iter().copied(), |p, d| hit(p as usize, 0, d, 2));
                    }
                    if let Some(t) = &fa.rev {
                        t.walk(hay.iter().rev().copied(), |p, d| {
                            hit(p as usize, len - d, len, 4)
                        });
                    }
                    if let Some(ac) = &fa.ac {
                        for m in ac.find_overlapping_iter(hay) {
                            let p = fa.ac_pats[m.pattern().as_usize()] as usize;
                            hit(p, m.start(), m.end(), 1);
                        }
                    }
                }
            }
        }
        if s.cands.is_empty() {
            return;
        }
        s.cands.sort_unstable();
        let cands = std::mem::take(&mut s.cands);
        for &i in &cands {
            let inst = &self.insts[i as usize];
            if s.rule_mark[inst.rule as usize] == gen {
                continue;
            }
            if self.eval(s, event, &inst.expr) {
                s.rule_mark[inst.rule as usize] = gen;
                let mut matched = Vec::new();
                self.record(s, event, &inst.expr, &mut matched);
                out.push(Match {
                    rule: &self.metas[inst.rule as usize],
                    rule_index: inst.rule as usize,
                    matched,
                });
            }
        }
        s.cands = cands;
    }

    fn resolve<E: Event + ?Sized>(&self, s: &mut Scratch, event: &E, f: FieldId) {
        let gen = s.gen;
        let slot = &mut s.slots[f as usize];
        if slot.gen == gen {
            return;
        }
        slot.gen = gen;
        slot.n = 0;
        slot.present = false;
        for name in &self.fields[f as usize].names {
            if let Some(v) = event.get(name) {
                slot.present = true;
                push_vals(slot, &v);
                break;
            }
        }
    }

    fn keywords<E: Event + ?Sized>(&self, s: &mut Scratch, event: &E) {
        if s.kw_gen == s.gen {
            return;
        }
        s.kw_gen = s.gen;
        s.kw_n = 0;
        let kw = &mut s.kw;
        let n = &mut s.kw_n;
        event.visit_strings(&mut |text: &str| {
            if kw.len() <= *n {
                kw.push(Val::default());
            }
            set_val(&mut kw[*n], &FieldValue::Str(text.into()));
            *n += 1;
            false
        });
    }

    fn eval<E: Event + ?Sized>(&self, s: &mut Scratch, event: &E, e: &Expr) -> bool {
        match e {
            Expr::And(v) => v.iter().all(|c| self.eval(s, event, c)),
            Expr::Or(v) => v.iter().any(|c| self.eval(s, event, c)),
            Expr::Not(c) => !self.eval(s, event, c),
            Expr::AtLeast(n, v) => {
                let mut k = 0;
                for c in v {
                    if self.eval(s, event, c) {
                        k += 1;
                        if k >= *n {
                            return true;
                        }
                    }
                }
                false
            }
            Expr::Const(b) => *b,
            Expr::Leaf(id) => {
                if self.decided[*id as usize] {
                    s.leaf_mark[*id as usize] == s.gen
                } else {
                    self.leaf(s, event, *id).is_some()
                }
            }
        }
    }

    /// Record the leaves that hold (outside negations).
    fn record<E: Event + ?Sized>(
        &self,
        s: &mut Scratch,
        event: &E,
        e: &Expr,
        out: &mut Vec<(String, String)>,
    ) {
        match e {
            Expr::And(v) | Expr::Or(v) | Expr::AtLeast(_, v) => {
                for c in v {
                    if self.eval(s, event, c) {
                        self.record(s, event, c, out);
                    }
                }
            }
            Expr::Leaf(id) => {
                if let Some(ix) = self.leaf(s, event, *id) {
                    let leaf = &self.leaves[*id as usize];
                    let val = match (leaf.field, &leaf.pred) {
                        (None, _) => s.kw[ix].raw.clone(),
                        (Some(_), Pred::Exists(b)) => b.to_string(),
                        (Some(_), Pred::Null) => String::new(),
                        (Some(f), _) => s.slots[f as usize].vals[ix].raw.clone(),
                    };
                    let name = self.leaves[*id as usize].sigma_field.to_string();
                    if !out.iter().any(|(n, v)| *n == name && *v == val) {
                        out.push((name, val));
                    }
                }
            }
            _ => {}
        }
    }

    /// Evaluate a leaf; Some(index of the matching value) when it holds.
    fn leaf<E: Event + ?Sized>(&self, s: &mut Scratch, event: &E, id: u32) -> Option<usize> {
        let leaf = &self.leaves[id as usize];
        let Some(f) = leaf.field else {
            self.keywords(s, event);
            let kws = &s.kw[..s.kw_n];
            return kws.iter().position(|v| pred_val(&leaf.pred, v));
        };
        self.resolve(s, event, f);
        if let Pred::FieldRef { other, .. } = &leaf.pred {
            self.resolve(s, event, *other);
        }
        let slot = &s.slots[f as usize];
        let vals = &slot.vals[..slot.n];
        match &leaf.pred {
            Pred::Exists(b) => (slot.present == *b).then_some(0),
            Pred::Null => {
                (!slot.present || vals.iter().all(|v| v.null || v.raw.is_empty())).then_some(0)
            }
            Pred::FieldRef { other, mode, cased } => {
                let os = &s.slots[*other as usize];
                let ovals = &os.vals[..os.n];
                for (i, v) in vals.iter().enumerate() {
                    for o in ovals {
                        let (a, b) = if *cased {
                            (&v.raw, &o.raw)
                        } else {
                            (&v.lower, &o.lower)
                        };
                        let ok = match mode {
                            RefMode::Exact => a == b,
                            RefMode::Prefix => a.starts_with(b.as_str()),
                            RefMode::Suffix => a.ends_with(b.as_str()),
                            RefMode::Contains => a.contains(b.as_str()),
                        };
                        if ok {
                            return Some(i);
                        }
                    }
                }
                None
            }
            p => vals.iter().position(|v| pred_val(p, v)),
        }
    }
}

fn pred_val(p: &Pred, v: &Val) -> bool {
    match p {
        Pred::Str(m) => {
            if v.null {
                // null compares as the empty string
                return m.is_match(b"", b"");
            }
            m.is_match(v.raw.as_bytes(), v.lower.as_bytes())
        }
        Pred::Re(r) => !v.null && r.is_match(&v.raw),
        Pred::Cidr(net) => {
            let t = v.raw.trim().trim_start_matches('[').trim_end_matches(']');
            match t.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V6(v6)) if net.addr().is_ipv4() => match v6.to_ipv4_mapped() {
                    Some(v4) => net.contains(&std::net::IpAddr::V4(v4)),
                    None => false,
                },
                Ok(ip) => net.contains(&ip),
                Err(_) => false,
            }
        }
        Pred::Cmp(op, n) => match v.num.or_else(|| parse_number(&v.raw)) {
            Some(x) => op.eval(x, *n),
            None => false,
        },
        Pred::TimePart { part, op, value } => match time_part(&v.raw, *part) {
            Some(x) => op.eval(x, *value),
            None => false,
        },
        Pred::Exists(_) | Pred::Null | Pred::FieldRef { .. } => false,
    }
}
