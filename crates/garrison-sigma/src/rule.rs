//! Reading Sigma documents: detection rules, filters, correlation rules, multi-document actions.

use crate::cond::{parse_condition, Cond};
use crate::types::{Level, LogSource, RuleError, RuleKind, RuleMeta};
use crate::yaml::{parse_documents, Node, Yaml};

/// A detection rule before compilation.
#[derive(Clone, Debug)]
pub struct ParsedRule {
    pub meta: RuleMeta,
    /// Search identifiers in order.
    pub detection: Vec<(String, Node)>,
    pub cond: Cond,
}

#[derive(Clone, Debug)]
pub struct ParsedFilter {
    pub title: String,
    pub id: Option<String>,
    pub path: String,
    pub line: usize,
    pub logsource: LogSource,
    pub rules: Vec<String>,
    pub detection: Vec<(String, Node)>,
    pub cond: Cond,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorrType {
    EventCount,
    ValueCount,
    Temporal,
    TemporalOrdered,
    ValueSum,
    ValueAvg,
    ValuePercentile,
}

/// Comparison operator of a correlation condition or a numeric modifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Neq,
}

impl CmpOp {
    pub fn eval(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Gt => a > b,
            CmpOp::Gte => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Lte => a <= b,
            CmpOp::Eq => a == b,
            CmpOp::Neq => a != b,
        }
    }
}

#[derive(Clone, Debug)]
pub struct ParsedCorrelation {
    pub meta: RuleMeta,
    pub ctype: CorrType,
    pub rules: Vec<String>,
    pub group_by: Vec<String>,
    pub timespan_ms: i64,
    /// ANDed criteria; empty for temporal types means "all referenced rules".
    pub condition: Vec<(CmpOp, f64)>,
    pub field: Vec<String>,
    /// alias → (rule name or id → field)
    pub aliases: Vec<(String, Vec<(String, String)>)>,
    /// `generate: true`: the referenced rules also alert on their own.
    pub generate: bool,
}

#[derive(Clone, Debug)]
pub enum Doc {
    Rule(ParsedRule),
    Filter(ParsedFilter),
    Correlation(ParsedCorrelation),
}

fn merge(base: &Node, over: &Node) -> Node {
    match (&base.v, &over.v) {
        (Yaml::Map(b), Yaml::Map(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                if let Some(slot) = out.iter_mut().find(|(bk, _)| bk.v == k.v) {
                    slot.1 = merge(&slot.1, v);
                } else {
                    out.push((k.clone(), v.clone()));
                }
            }
            Node {
                line: over.line.max(base.line),
                v: Yaml::Map(out),
            }
        }
        _ => over.clone(),
    }
}

fn without_action(n: &Node) -> Node {
    match &n.v {
        Yaml::Map(m) => Node {
            line: n.line,
            v: Yaml::Map(
                m.iter()
                    .filter(|(k, _)| k.as_str() != Some("action"))
                    .cloned()
                    .collect(),
            ),
        },
        _ => n.clone(),
    }
}

fn opt_str(n: &Node, key: &str) -> Option<String> {
    n.get(key).and_then(|v| v.scalar_text())
}

fn logsource(n: Option<&Node>) -> LogSource {
    match n {
        Some(ls) => LogSource {
            product: opt_str(ls, "product").map(|s| s.to_ascii_lowercase()),
            category: opt_str(ls, "category").map(|s| s.to_ascii_lowercase()),
            service: opt_str(ls, "service").map(|s| s.to_ascii_lowercase()),
            definition: opt_str(ls, "definition"),
        },
        None => LogSource::default(),
    }
}

fn meta(doc: &Node, path: &str, kind: RuleKind) -> Result<RuleMeta, String> {
    let title = opt_str(doc, "title").ok_or("missing `title`")?;
    let level = match doc.get("level").and_then(|l| l.scalar_text()) {
        Some(l) => Some(Level::parse(&l).ok_or_else(|| format!("unknown level `{l}`"))?),
        None => None,
    };
    Ok(RuleMeta {
        id: opt_str(doc, "id"),
        name: opt_str(doc, "name"),
        title,
        status: opt_str(doc, "status"),
        level,
        description: opt_str(doc, "description"),
        author: opt_str(doc, "author"),
        date: opt_str(doc, "date"),
        modified: opt_str(doc, "modified"),
        references: doc
            .get("references")
            .map(|n| n.string_list())
            .unwrap_or_default(),
        falsepositives: doc
            .get("falsepositives")
            .map(|n| n.string_list())
            .unwrap_or_default(),
        tags: doc.get("tags").map(|n| n.string_list()).unwrap_or_default(),
        fields: doc
            .get("fields")
            .map(|n| n.string_list())
            .unwrap_or_default(),
        logsource: logsource(doc.get("logsource")),
        kind,
        generate: true,
        path: path.to_string(),
        line: doc.line,
    })
}

/// Split a detection section into search identifiers and the condition.
fn detection(det: &Node, ctx: &str) -> Result<(Vec<(String, Node)>, Cond), String> {
    let m = det
        .as_map()
        .ok_or_else(|| format!("`{ctx}` must be a map of search identifiers and a condition"))?;
    let mut idents = Vec::new();
    let mut cond_node = None;
    for (k, v) in m {
        let key = k
            .scalar_text()
            .ok_or("search identifier must be a string")?;
        match key.as_str() {
            "condition" => cond_node = Some(v),
            "timeframe" | "rules" => {}
            _ => idents.push((key, v.clone())),
        }
    }
    let cond_node = cond_node.ok_or_else(|| format!("`{ctx}` has no `condition`"))?;
    let names: Vec<String> = idents.iter().map(|(k, _)| k.clone()).collect();
    let cond = match &cond_node.v {
        Yaml::Str(s) => parse_condition(s, &names)?,
        Yaml::Seq(items) => {
            let mut v = Vec::new();
            for it in items {
                let s = it.as_str().ok_or("condition list items must be strings")?;
                v.push(parse_condition(s, &names)?);
            }
            if v.is_empty() {
                return Err("empty condition list".into());
            }
            if v.len() == 1 {
                v.pop().unwrap()
            } else {
                Cond::Or(v)
            }
        }
        _ => return Err("condition must be a string or a list of strings".into()),
    };
    Ok((idents, cond))
}

fn parse_timespan(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| {
        format!("invalid timespan `{s}`: expected a number and s, m, h, d (or w, M, y)")
    })?;
    let mult = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "M" => 30 * 86_400_000,
        "y" => 365 * 86_400_000,
        _ => return Err(format!("invalid timespan unit in `{s}`")),
    };
    Ok(n.saturating_mul(mult))
}

fn correlation(doc: &Node, path: &str) -> Result<ParsedCorrelation, String> {
    let meta = meta(doc, path, RuleKind::Correlation)?;
    let c = doc.get("correlation").unwrap();
    if c.as_map().is_none() {
        return Err("`correlation` must be a map".into());
    }
    let t = opt_str(c, "type").ok_or("correlation has no `type`")?;
    let ctype = match t.as_str() {
        "event_count" => CorrType::EventCount,
        "value_count" => CorrType::ValueCount,
        "temporal" => CorrType::Temporal,
        "temporal_ordered" => CorrType::TemporalOrdered,
        "value_sum" => CorrType::ValueSum,
        "value_avg" => CorrType::ValueAvg,
        "value_percentile" => CorrType::ValuePercentile,
        other => return Err(format!("unknown correlation type `{other}`")),
    };
    let rules = c.get("rules").map(|n| n.string_list()).unwrap_or_default();
    if rules.is_empty() {
        return Err("correlation has no `rules`".into());
    }
    let group_by = c
        .get("group-by")
        .map(|n| n.string_list())
        .unwrap_or_default();
    let timespan_ms = parse_timespan(
        &opt_str(c, "timespan")
            .or_else(|| opt_str(c, "timeframe"))
            .ok_or("correlation has no `timespan`")?,
    )?;
    let mut condition = Vec::new();
    let mut field = Vec::new();
    if let Some(cn) = c.get("condition") {
        let m = cn.as_map().ok_or("correlation condition must be a map")?;
        for (k, v) in m {
            let key = k.scalar_text().unwrap_or_default();
            let op = match key.as_str() {
                "gt" => CmpOp::Gt,
                "gte" => CmpOp::Gte,
                "lt" => CmpOp::Lt,
                "lte" => CmpOp::Lte,
                "eq" => CmpOp::Eq,
                "neq" => CmpOp::Neq,
                "field" => {
                    field = v.string_list();
                    continue;
                }
                other => return Err(format!("unknown correlation condition operator `{other}`")),
            };
            let n = v
                .scalar_text()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .ok_or_else(|| format!("correlation condition `{key}` needs a number"))?;
            condition.push((op, n));
        }
    }
    let needs_cond = !matches!(ctype, CorrType::Temporal | CorrType::TemporalOrdered);
    if needs_cond && condition.is_empty() {
        return Err(format!("correlation type `{t}` needs a `condition`"));
    }
    if matches!(
        ctype,
        CorrType::ValueCount | CorrType::ValueSum | CorrType::ValueAvg | CorrType::ValuePercentile
    ) && field.is_empty()
    {
        return Err(format!(
            "correlation type `{t}` needs `field` in its condition"
        ));
    }
    let mut aliases = Vec::new();
    if let Some(a) = c.get("aliases").and_then(|a| a.as_map()) {
        for (k, v) in a {
            let name = k.scalar_text().unwrap_or_default();
            let mut per = Vec::new();
            for (rk, rv) in v.as_map().unwrap_or(&[]) {
                per.push((
                    rk.scalar_text().unwrap_or_default(),
                    rv.scalar_text().unwrap_or_default(),
                ));
            }
            aliases.push((name, per));
        }
    }
    let generate = c
        .get("generate")
        .or_else(|| doc.get("generate"))
        .is_some_and(|g| matches!(g.v, Yaml::Bool(true)));
    Ok(ParsedCorrelation {
        meta,
        ctype,
        rules,
        group_by,
        timespan_ms,
        condition,
        field,
        aliases,
        generate,
    })
}

fn classify(doc: &Node, path: &str) -> Result<Doc, String> {
    if doc.as_map().is_none() {
        return Err("a Sigma document must be a map".into());
    }
    if doc.get("correlation").is_some() {
        return Ok(Doc::Correlation(correlation(doc, path)?));
    }
    if let Some(f) = doc.get("filter") {
        if doc.get("detection").is_none() {
            let title = opt_str(doc, "title").ok_or("missing `title`")?;
            let rules = f.get("rules").map(|n| n.string_list()).unwrap_or_default();
            if rules.is_empty() {
                return Err("filter has no `rules`".into());
            }
            let (det, cond) = detection(f, "filter")?;
            return Ok(Doc::Filter(ParsedFilter {
                title,
                id: opt_str(doc, "id"),
                path: path.to_string(),
                line: doc.line,
                logsource: logsource(doc.get("logsource")),
                rules,
                detection: det,
                cond,
            }));
        }
    }
    let det = doc
        .get("detection")
        .ok_or("no `detection`, `correlation` or `filter` section")?;
    let meta = meta(doc, path, RuleKind::Detection)?;
    let (detection, cond) = detection(det, "detection")?;
    Ok(Doc::Rule(ParsedRule {
        meta,
        detection,
        cond,
    }))
}

fn rule_label(doc: &Node) -> Option<String> {
    opt_str(doc, "id").or_else(|| opt_str(doc, "title"))
}

/// Parse one file into documents; errors are per document.
pub fn parse_file(path: &str, text: &str) -> (Vec<Doc>, Vec<RuleError>) {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    let docs = match parse_documents(text) {
        Ok(d) => d,
        Err((msg, line)) => {
            errs.push(RuleError {
                path: path.to_string(),
                line,
                rule: None,
                reason: format!("invalid YAML: {msg}"),
            });
            return (out, errs);
        }
    };
    let mut global: Option<Node> = None;
    let mut prev: Option<Node> = None;
    for doc in docs {
        let action = doc.get("action").and_then(|a| a.scalar_text());
        let effective = match action.as_deref() {
            Some("global") => {
                global = Some(without_action(&doc));
                continue;
            }
            Some("reset") => {
                global = None;
                continue;
            }
            Some("repeat") => match &prev {
                Some(p) => merge(p, &without_action(&doc)),
                None => {
                    errs.push(RuleError {
                        path: path.to_string(),
                        line: Some(doc.line),
                        rule: None,
                        reason: "`action: repeat` without a previous document".into(),
                    });
                    continue;
                }
            },
            Some(other) => {
                errs.push(RuleError {
                    path: path.to_string(),
                    line: Some(doc.line),
                    rule: rule_label(&doc),
                    reason: format!("unknown action `{other}`"),
                });
                continue;
            }
            None => match &global {
                Some(g) => merge(g, &doc),
                None => doc,
            },
        };
        prev = Some(effective.clone());
        match classify(&effective, path) {
            Ok(d) => out.push(d),
            Err(reason) => errs.push(RuleError {
                path: path.to_string(),
                line: Some(effective.line).filter(|l| *l > 0),
                rule: rule_label(&effective),
                reason,
            }),
        }
    }
    (out, errs)
}
