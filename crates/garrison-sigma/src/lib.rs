//! Garrison's Sigma rule engine: the whole Sigma specification v2.1.0 (detection rules, every value
//! modifier, conditions, multi-document files, filters, correlation rules), compiled for fast
//! matching of events.
//!
//! # Use
//! ```
//! use garrison_sigma::{load_rules, LoadOptions, RuleSource};
//! let rule = r#"
//! title: Whoami
//! logsource: { product: windows, category: process_creation }
//! detection:
//!     selection:
//!         Image|endswith: '\whoami.exe'
//!     condition: selection
//! "#;
//! let (set, errors) = load_rules([RuleSource::new("whoami.yml", rule)], &LoadOptions::default());
//! assert!(errors.is_empty());
//! let event: serde_json::Value = serde_json::json!({
//!     "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1,
//!     "Image": "C:\\Windows\\System32\\whoami.exe"
//! });
//! let mut out = Vec::new();
//! set.matches(&event, &mut out);
//! assert_eq!(out[0].rule.title, "Whoami");
//! ```
//!
//! # Loading
//! [`load_rules`] never fails the batch: every document that cannot be compiled is reported as a
//! [`RuleError`] (file, line where known, rule id or title, reason) and the others load. Filters
//! (`filter:` documents) are applied to the rules they name (by id or name) with a matching
//! logsource; correlation rules are kept in the [`RuleSet`] and evaluated by a [`Correlator`].
//!
//! # Events and field resolution
//! Events implement [`Event`]; implementations ship for `serde_json::Value` / `Map` (flat keys first,
//! then the evtx-crate layout `Event.EventData.X` / `Event.System.X` / `Event.System.A.#attributes.B`
//! for `A_B`, then Winlogbeat's `winlog.event_data.X`, then the dotted path) and for string maps.
//! A Sigma field name is first mapped by the processing pipeline (see below) to a list of event field
//! names tried in order; the first present one gives the value. Values compare as text, numbers and
//! booleans rendered canonically (`EventID: 4688` matches `4688` and `"4688"`), case-insensitively
//! unless `cased`; `re` is case-sensitive unless `|re|i`.
//!
//! # Logsources and pipelines
//! A [`Pipeline`] (YAML; `pipelines/windows.yml` ships, see [`Pipeline::windows`]) maps a logsource
//! (product/category/service) to alternative event conditions (e.g. `process_creation` → Sysmon
//! EventID 1 or Security 4688, with Security's field names) which are ANDed to the rule's detection.
//! Conditions on `Channel` and `EventID` also index the rules, so for an event only the rules whose
//! logsource can match it are considered; among those, per-field Aho-Corasick automata over the
//! rules' literals select the candidates that are then evaluated fully. A rule whose logsource no
//! pipeline knows is evaluated against every event its product can apply to: an event with a
//! channel is a Windows event log event (product `windows`; `linux` for `Linux-*` channels such
//! as Linux Sysmon's), so `product: macos`/`aws`/`zeek`/... rules, and product-less rules of
//! other categories or services (`webserver`, `proxy`, `dns`, ...), never apply to it; events
//! without a channel may be anything and are matched against all of them.
//!
//! # Semantics chosen where the specification leaves room
//! - `null` matches an absent field, a JSON null, or an empty string; `''` matches an empty string
//!   or a JSON null.
//! - Keywords (keyless values) match when any string of the event contains them (wildcards allowed).
//! - `neq` negates the value list: the field is absent or differs from every value.
//! - `1 of`/`all of`/`N of` patterns are resolved against the rule's own search identifiers.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod compile;
mod cond;
mod correlation;
mod engine;
mod event;
mod matcher;
mod pipeline;
mod rule;
mod sstr;
mod types;
mod yaml;

pub use correlation::{CorrelationAlert, CorrelationOptions, Correlator};
pub use engine::{logsource_applies, RuleSet, Scratch};
pub use event::{json_lookup, Event, FieldValue};
pub use pipeline::{Branch, LogsourceMapping, Pipeline, WINDOWS_PIPELINE_YAML};
pub use types::{
    FilterMeta, Level, LoadOptions, LogSource, Match, RuleError, RuleKind, RuleMeta, RuleSource,
    UnknownLevel,
};

use compile::{Compiler, Expr};
use cond::Cond;
use correlation::CorrDef;
use engine::Instance;
use rule::{Doc, ParsedCorrelation, ParsedFilter, ParsedRule};
use std::collections::HashMap;
use yaml::Yaml;

fn err(path: &str, line: usize, rule: Option<String>, reason: impl Into<String>) -> RuleError {
    RuleError {
        path: path.to_string(),
        line: Some(line).filter(|l| *l > 0),
        rule,
        reason: reason.into(),
    }
}

fn label(m: &RuleMeta) -> Option<String> {
    m.id.clone().or_else(|| Some(m.title.clone()))
}

/// Does the filter's logsource cover the rule's (every key the filter sets is equal)?
fn logsource_covers(filter: &LogSource, rule: &LogSource) -> bool {
    [
        (&filter.product, &rule.product),
        (&filter.category, &rule.category),
        (&filter.service, &rule.service),
    ]
    .iter()
    .all(|(f, r)| f.is_none() || f == r)
}

fn apply_filters(rules: &mut [ParsedRule], filters: &[ParsedFilter]) {
    for (fi, f) in filters.iter().enumerate() {
        let prefix = format!("__filter{fi}__");
        for r in rules.iter_mut() {
            let named = f.rules.iter().any(|x| {
                Some(x.as_str()) == r.meta.id.as_deref()
                    || Some(x.as_str()) == r.meta.name.as_deref()
            });
            if !named || !logsource_covers(&f.logsource, &r.meta.logsource) {
                continue;
            }
            for (k, v) in &f.detection {
                r.detection.push((format!("{prefix}{k}"), v.clone()));
            }
            let orig = std::mem::replace(&mut r.cond, Cond::Ident(String::new()));
            r.cond = Cond::And(vec![orig, Cond::Not(Box::new(f.cond.prefixed(&prefix)))]);
        }
    }
}

/// Index keys of a pipeline branch: (channel lowercased, event id) pairs.
fn branch_keys(b: &Branch) -> Vec<(String, Option<u32>)> {
    let mut chans = Vec::new();
    let mut eids: Vec<Option<u32>> = Vec::new();
    for (k, v) in &b.conditions {
        if k == "Channel" {
            chans = v.string_list().iter().map(|s| s.to_lowercase()).collect();
        } else if k == "EventID" {
            let items: Vec<&yaml::Node> = match &v.v {
                Yaml::Seq(s) => s.iter().collect(),
                _ => vec![v],
            };
            for it in items {
                match it.scalar_text().and_then(|t| t.parse::<u32>().ok()) {
                    Some(e) => eids.push(Some(e)),
                    None => return Vec::new(),
                }
            }
        }
    }
    if eids.is_empty() {
        eids.push(None);
    }
    let mut keys = Vec::new();
    for c in &chans {
        for e in &eids {
            keys.push((c.clone(), *e));
        }
    }
    keys
}

fn compile_rule(
    comp: &mut Compiler,
    r: &ParsedRule,
    rule_ix: u32,
    opts: &LoadOptions,
) -> Result<Vec<Instance>, (String, usize)> {
    let resolved = pipeline::resolve(&opts.pipelines, &r.meta.logsource);
    let mut insts = Vec::new();
    for branch in &resolved.branches {
        let global = &resolved.global;
        let fm = |f: &str| pipeline::field_names(f, branch, global);
        let mut ids: HashMap<String, Expr> = HashMap::new();
        for (name, node) in &r.detection {
            let e = comp.ident(node, &fm, &opts.placeholders)?;
            ids.insert(name.clone(), e);
        }
        let det = Compiler::cond(&r.cond, &ids);
        let cover = comp.cover(&det).map(|(_, l)| l);
        let mut parts = Vec::new();
        for (k, v) in &branch.conditions {
            let no_map = |f: &str| pipeline::field_names(f, &Branch::default(), global);
            parts.push(
                comp.item(k, v, &no_map, &opts.placeholders)
                    .map_err(|(m, l)| (format!("pipeline condition: {m}"), l))?,
            );
        }
        parts.push(det);
        let expr = if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Expr::And(parts)
        };
        insts.push(Instance {
            rule: rule_ix,
            expr,
            cover,
            keys: branch_keys(branch),
            scope: if branch.conditions.is_empty() {
                engine::Scope::of(&r.meta.logsource)
            } else {
                engine::Scope::Any
            },
        });
    }
    Ok(insts)
}

/// Threads used for loading rules (all cores, at most 8).
pub(crate) fn compile_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
}

/// Compile Sigma documents. Never fails as a whole: documents that cannot be compiled are returned
/// as errors and the others load.
pub fn load_rules(
    sources: impl IntoIterator<Item = RuleSource>,
    opts: &LoadOptions,
) -> (RuleSet, Vec<RuleError>) {
    let mut errors = Vec::new();
    let mut rules: Vec<ParsedRule> = Vec::new();
    let mut filters: Vec<ParsedFilter> = Vec::new();
    let mut corrs: Vec<ParsedCorrelation> = Vec::new();
    // YAML parsing dominates loading: parse files on all cores, keep the input order.
    let sources: Vec<RuleSource> = sources.into_iter().collect();
    let threads = compile_threads().min(sources.len().max(1));
    let chunk = sources.len().div_ceil(threads).max(1);
    let parsed: Vec<(Vec<Doc>, Vec<RuleError>)> = if threads <= 1 || sources.len() < 64 {
        sources
            .iter()
            .map(|s| rule::parse_file(&s.path, &s.text))
            .collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = sources
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|s| rule::parse_file(&s.path, &s.text))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    };
    for (docs, errs) in parsed {
        errors.extend(errs);
        for d in docs {
            match d {
                Doc::Rule(r) => rules.push(r),
                Doc::Filter(f) => filters.push(f),
                Doc::Correlation(c) => corrs.push(c),
            }
        }
    }

    // Validate filters on their own before merging them into rules.
    let mut good_filters = Vec::new();
    for f in filters {
        let mut scratch = Compiler::default();
        let fm = |x: &str| vec![x.to_string()];
        let mut bad = None;
        for (_, node) in &f.detection {
            if let Err((m, l)) = scratch.ident(node, &fm, &opts.placeholders) {
                bad = Some((m, l));
                break;
            }
        }
        match bad {
            Some((m, l)) => errors.push(err(
                &f.path,
                if l > 0 { l } else { f.line },
                f.id.clone().or(Some(f.title.clone())),
                m,
            )),
            None => good_filters.push(f),
        }
    }
    apply_filters(&mut rules, &good_filters);
    let filter_metas: Vec<FilterMeta> = good_filters
        .iter()
        .map(|f| FilterMeta {
            title: f.title.clone(),
            id: f.id.clone(),
            path: f.path.clone(),
            line: f.line,
            rules: f.rules.clone(),
        })
        .collect();

    let mut comp = Compiler::default();
    let mut metas: Vec<RuleMeta> = Vec::new();
    let mut insts: Vec<Instance> = Vec::new();
    for r in &rules {
        let ix = metas.len() as u32;
        match compile_rule(&mut comp, r, ix, opts) {
            Ok(mut v) => {
                metas.push(r.meta.clone());
                insts.append(&mut v);
            }
            Err((m, l)) => errors.push(err(&r.meta.path, l, label(&r.meta), m)),
        }
    }

    // Correlations: references by id or name, to detection rules or other correlations.
    let mut known: HashMap<String, ()> = HashMap::new();
    for m in &metas {
        for k in [&m.id, &m.name].into_iter().flatten() {
            known.insert(k.clone(), ());
        }
    }
    for c in &corrs {
        for k in [&c.meta.id, &c.meta.name].into_iter().flatten() {
            known.insert(k.clone(), ());
        }
    }
    let valid: Vec<ParsedCorrelation> = corrs
        .into_iter()
        .filter(|c| match c.rules.iter().find(|r| !known.contains_key(*r)) {
            Some(missing) => {
                errors.push(err(
                    &c.meta.path,
                    c.meta.line,
                    label(&c.meta),
                    format!("correlation references unknown rule `{missing}`"),
                ));
                false
            }
            None => true,
        })
        .collect();
    let first_corr = metas.len();
    for c in &valid {
        metas.push(c.meta.clone());
    }
    let lookup: HashMap<String, u32> = {
        let mut h = HashMap::new();
        for (i, m) in metas.iter().enumerate() {
            for k in [&m.id, &m.name].into_iter().flatten() {
                h.entry(k.clone()).or_insert(i as u32);
            }
        }
        h
    };
    let mut defs = Vec::new();
    for (k, c) in valid.iter().enumerate() {
        let refs: Vec<u32> = c.rules.iter().map(|r| lookup[r]).collect();
        let group_by = c
            .group_by
            .iter()
            .map(|g| {
                let per = refs
                    .iter()
                    .zip(&c.rules)
                    .map(|(ri, rname)| {
                        let m = &metas[*ri as usize];
                        c.aliases
                            .iter()
                            .find(|(a, _)| a == g)
                            .and_then(|(_, per)| {
                                per.iter()
                                    .find(|(n, _)| {
                                        n == rname
                                            || Some(n) == m.name.as_ref()
                                            || Some(n) == m.id.as_ref()
                                    })
                                    .map(|(_, f)| f.clone())
                            })
                            .unwrap_or_else(|| g.clone())
                    })
                    .collect();
                (g.clone(), per)
            })
            .collect();
        if !c.generate {
            for r in &refs {
                if (*r as usize) < first_corr {
                    metas[*r as usize].generate = false;
                }
            }
        }
        defs.push(CorrDef {
            rule: (first_corr + k) as u32,
            ctype: c.ctype,
            refs,
            group_by,
            timespan_ms: c.timespan_ms,
            condition: c.condition.clone(),
            field: c.field.clone(),
        });
    }

    let global: Vec<&(String, Vec<String>)> = opts
        .pipelines
        .iter()
        .flat_map(|p| p.fieldmappings.iter())
        .collect();
    let chan = comp.field(pipeline::field_names(
        "Channel",
        &Branch::default(),
        &global,
    ));
    let eid = comp.field(pipeline::field_names(
        "EventID",
        &Branch::default(),
        &global,
    ));
    let mut set = RuleSet::build(metas, comp, insts, chan, eid, defs);
    set.filters = filter_metas;
    (set, errors)
}

/// Every `.yml` / `.yaml` file under `dir` (recursively, sorted by path) as a [`RuleSource`].
pub fn rule_sources_from_dir(dir: &std::path::Path) -> std::io::Result<Vec<RuleSource>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for p in files {
        let text = std::fs::read_to_string(&p)?;
        out.push(RuleSource::new(p.to_string_lossy().into_owned(), text));
    }
    Ok(out)
}
