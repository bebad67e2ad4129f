//! The compiled rule set: logsource index, literal prefilter automata, evaluation.

use crate::compile::{Compiler, Expr, FieldDef, FieldId, Leaf, Pred, RefMode, TimePart, KW_FIELD};
use crate::correlation::CorrDef;
use crate::event::{parse_number, Event, FieldValue};
use crate::matcher::Anchor;
use crate::sstr::lower_into;
use crate::types::{Match, RuleMeta};
use crate::yaml::fmt_float;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

/// Largest pattern set compiled to a DFA (bounded memory); larger ones use a contiguous NFA.
const DFA_MAX_PATTERNS: usize = 100;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;

/// Patterns of one field: index by bytes, the patterns, and per pattern its (anchor, instance) hits.
type PatternTable = (
    HashMap<Vec<u8>, usize>,
    Vec<Vec<u8>>,
    Vec<Vec<(Anchor, u32)>>,
    Vec<Vec<(Anchor, u32)>>,
);

fn pattern_ix(e: &mut PatternTable, lit: &[u8]) -> usize {
    match e.0.get(lit) {
        Some(ix) => *ix,
        None => {
            let ix = e.1.len();
            e.0.insert(lit.to_vec(), ix);
            e.1.push(lit.to_vec());
            e.2.push(Vec::new());
            e.3.push(Vec::new());
            ix
        }
    }
}

pub(crate) struct Instance {
    pub rule: u32,
    pub expr: Expr,
    pub cover: Option<crate::compile::Lits>,
    /// (channel lowercased, event id) keys; empty = not indexed (generic).
    pub keys: Vec<(String, Option<u32>)>,
}

struct FieldAutomaton {
    field: FieldId,
    ac: AhoCorasick,
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

impl Bucket {
    fn build(insts: &[Instance], leaves: &[Leaf], decided: &mut [bool], members: &[u32]) -> Bucket {
        let mut always = Vec::new();
        // field -> (pattern -> index), patterns, instance hits, leaf hits
        let mut per_field: HashMap<FieldId, PatternTable> = HashMap::new();
        let mut ids = Vec::new();
        for &i in members {
            match &insts[i as usize].cover {
                Some(lits) => {
                    for (f, anchor, lit) in lits {
                        let e = per_field.entry(*f).or_default();
                        let idx = pattern_ix(e, lit);
                        if !e.2[idx].contains(&(*anchor, i)) {
                            e.2[idx].push((*anchor, i));
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
                        let idx = pattern_ix(e, lit);
                        e.3[idx].push((anchor, l));
                        decided[l as usize] = true;
                    }
                }
            }
        }
        let mut automata: Vec<FieldAutomaton> = per_field
            .into_iter()
            .map(|(field, (_, pats, hits, leaf_hits))| FieldAutomaton {
                field,
                ac: AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    // a DFA is several times faster for overlapping search; keep it for moderate sets
                    .kind(Some(if pats.len() <= DFA_MAX_PATTERNS {
                        AhoCorasickKind::DFA
                    } else {
                        AhoCorasickKind::ContiguousNFA
                    }))
                    .build(&pats)
                    .expect("aho-corasick automaton"),
                hits,
                leaf_hits,
            })
            .collect();
        automata.sort_by_key(|a| a.field);
        Bucket { always, automata }
    }
}

#[derive(Default)]
struct ChanEntry {
    any: Option<Bucket>,
    by_eid: HashMap<u32, Bucket>,
}

/// A compiled, immutable set of Sigma rules. Cheap to share across threads (`Sync`).
pub struct RuleSet {
    pub(crate) metas: Vec<RuleMeta>,
    fields: Vec<FieldDef>,
    leaves: Vec<Leaf>,
    /// Leaves whose truth the automata decide (plain uncased literals).
    decided: Vec<bool>,
    insts: Vec<Instance>,
    channels: HashMap<String, ChanEntry>,
    generic: Bucket,
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
        let mut generic_m = Vec::new();
        let mut chan_any: HashMap<String, Vec<u32>> = HashMap::new();
        let mut chan_eid: HashMap<String, HashMap<u32, Vec<u32>>> = HashMap::new();
        for (i, inst) in insts.iter().enumerate() {
            let i = i as u32;
            if inst.keys.is_empty() {
                generic_m.push(i);
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
        let leaves = comp.leaves;
        let mut decided = vec![false; leaves.len()];
        let mut channels: HashMap<String, ChanEntry> = HashMap::new();
        for (c, m) in chan_any {
            channels.entry(c).or_default().any =
                Some(Bucket::build(&insts, &leaves, &mut decided, &m));
        }
        for (c, map) in chan_eid {
            let ce = channels.entry(c).or_default();
            for (e, m) in map {
                ce.by_eid
                    .insert(e, Bucket::build(&insts, &leaves, &mut decided, &m));
            }
        }
        let generic = Bucket::build(&insts, &leaves, &mut decided, &generic_m);
        RuleSet {
            metas,
            fields: comp.fields,
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

    /// Metadata of every loaded rule (detection and correlation rules), indexed by `Match::rule_index`.
    pub fn rules(&self) -> &[RuleMeta] {
        &self.metas
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
            self.generic.always.len(),
            count(&self.generic),
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
        let mut v: Vec<u32> = self.generic.always.clone();
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
        let mut all: Vec<&Bucket> = vec![&self.generic];
        for e in self.channels.values() {
            all.extend(e.any.iter());
            all.extend(e.by_eid.values());
        }
        all.iter()
            .flat_map(|b| b.automata.iter())
            .map(|a| a.ac.memory_usage())
            .sum()
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
        let mut buckets: [Option<&Bucket>; 3] = [Some(&self.generic), None, None];
        {
            let cs = &s.slots[self.chan_field as usize];
            if cs.n > 0 {
                if let Some(ce) = self.channels.get(cs.vals[0].lower.as_str()) {
                    buckets[1] = ce.any.as_ref();
                    let es = &s.slots[self.eid_field as usize];
                    if es.n > 0 {
                        let v = &es.vals[0];
                        let eid = v.num.or_else(|| parse_number(&v.raw));
                        if let Some(eid) = eid {
                            buckets[2] = ce.by_eid.get(&(eid as u32));
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
                    for m in fa.ac.find_overlapping_iter(hay) {
                        let ok = |anchor: Anchor| match anchor {
                            Anchor::Anywhere => true,
                            Anchor::Start => m.start() == 0,
                            Anchor::End => m.end() == hay.len(),
                            Anchor::Exact => m.start() == 0 && m.end() == hay.len(),
                        };
                        let p = m.pattern().as_usize();
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
