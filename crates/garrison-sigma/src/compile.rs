//! Compiling detections into expressions over leaves (field + predicate).

use crate::cond::{Cond, Quant};
use crate::matcher::{Anchor, StrMatcher};
use crate::rule::CmpOp;
use crate::sstr::{SStr, Utf16};
use crate::yaml::{Node, Yaml};
use ipnet::IpNet;
use regex::Regex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// A regular expression checked when the rule loads and compiled on its first use: most rules
/// never get past the prefilter, so most of their expressions are never needed.
#[derive(Debug)]
pub struct LazyRegex {
    pattern: Box<str>,
    flags: (bool, bool, bool),
    re: OnceLock<Option<Regex>>,
}

impl LazyRegex {
    /// Checks the syntax (the error is the reason reported for the rule).
    pub fn new(pattern: &str, i: bool, m: bool, s: bool) -> Result<LazyRegex, String> {
        regex_syntax::ParserBuilder::new()
            .case_insensitive(i)
            .multi_line(m)
            .dot_matches_new_line(s)
            .build()
            .parse(pattern)
            .map_err(|er| {
                format!(
                    "invalid regular expression: {}",
                    first_line(&er.to_string())
                )
            })?;
        Ok(LazyRegex {
            pattern: pattern.into(),
            flags: (i, m, s),
            re: OnceLock::new(),
        })
    }

    /// The compiled expression; `None` when it is valid but too large to compile (it then
    /// matches nothing).
    pub fn get(&self) -> Option<&Regex> {
        self.re
            .get_or_init(|| {
                let (i, m, s) = self.flags;
                regex::RegexBuilder::new(&self.pattern)
                    .case_insensitive(i)
                    .multi_line(m)
                    .dot_matches_new_line(s)
                    .size_limit(1 << 22)
                    .dfa_size_limit(1 << 22)
                    .build()
                    .ok()
            })
            .as_ref()
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.get().is_some_and(|r| r.is_match(text))
    }
}

pub type FieldId = u32;

/// Pseudo field of keyword (keyless) values: every string of the event.
pub const KW_FIELD: FieldId = u32::MAX;

/// Prefilter literals: (field, anchor, lowercased bytes).
pub type Lits = Vec<(FieldId, Anchor, Vec<u8>)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefMode {
    Exact,
    Prefix,
    Suffix,
    Contains,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

#[derive(Clone, Debug)]
pub enum Pred {
    Str(StrMatcher),
    Re(Arc<LazyRegex>),
    Cidr(IpNet),
    Cmp(CmpOp, f64),
    Exists(bool),
    /// Absent, null or empty.
    Null,
    FieldRef {
        other: FieldId,
        mode: RefMode,
        cased: bool,
    },
    TimePart {
        part: TimePart,
        op: CmpOp,
        value: f64,
    },
}

#[derive(Clone, Debug)]
pub struct Leaf {
    /// None: keyword (any string of the event).
    pub field: Option<FieldId>,
    /// The Sigma field name as the rule wrote it.
    pub sigma_field: Box<str>,
    pub pred: Pred,
}

#[derive(Clone, Debug)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    AtLeast(usize, Vec<Expr>),
    Leaf(u32),
    Const(bool),
}

impl Expr {
    /// Every leaf id of the expression.
    pub fn leaves(&self, out: &mut Vec<u32>) {
        match self {
            Expr::And(v) | Expr::Or(v) | Expr::AtLeast(_, v) => {
                v.iter().for_each(|c| c.leaves(out))
            }
            Expr::Not(c) => c.leaves(out),
            Expr::Leaf(id) => out.push(*id),
            Expr::Const(_) => {}
        }
    }

    fn and(mut v: Vec<Expr>) -> Expr {
        if v.len() == 1 {
            return v.pop().unwrap();
        }
        let mut out = Vec::with_capacity(v.len());
        for e in v {
            match e {
                Expr::And(inner) => out.extend(inner),
                Expr::Const(true) => {}
                other => out.push(other),
            }
        }
        if out.is_empty() {
            return Expr::Const(true);
        }
        if out.len() == 1 {
            return out.pop().unwrap();
        }
        Expr::And(out)
    }
    fn or(mut v: Vec<Expr>) -> Expr {
        if v.len() == 1 {
            return v.pop().unwrap();
        }
        let mut out = Vec::with_capacity(v.len());
        for e in v {
            match e {
                Expr::Or(inner) => out.extend(inner),
                Expr::Const(false) => {}
                other => out.push(other),
            }
        }
        if out.is_empty() {
            return Expr::Const(false);
        }
        if out.len() == 1 {
            return out.pop().unwrap();
        }
        Expr::Or(out)
    }
    fn not(e: Expr) -> Expr {
        match e {
            Expr::Not(inner) => *inner,
            Expr::Const(b) => Expr::Const(!b),
            other => Expr::Not(Box::new(other)),
        }
    }
}

/// Error with the line it refers to.
pub type CErr = (String, usize);

pub struct FieldDef {
    pub names: Vec<String>,
}

/// (field, Sigma name, cased, pattern kind, literal) of a plain literal leaf.
type LiteralLeafKey = (FieldId, Box<str>, bool, u8, Vec<u8>);

#[derive(Default)]
pub struct Compiler {
    pub fields: Vec<FieldDef>,
    field_ix: HashMap<Vec<String>, FieldId>,
    pub leaves: Vec<Leaf>,
    /// Shared plain literal leaves: (field, Sigma name, cased, pattern kind, literal) → leaf.
    leaf_ix: HashMap<LiteralLeafKey, u32>,
    regex_cache: HashMap<(String, bool, bool, bool), Arc<LazyRegex>>,
}

/// How a Sigma field name becomes event field names.
pub type FieldMap<'a> = dyn Fn(&str) -> Vec<String> + 'a;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tf {
    Contains,
    Startswith,
    Endswith,
    Windash,
    Base64,
    Base64Offset,
    Utf16(Utf16),
}

#[derive(Default)]
struct Flags {
    all: bool,
    cased: bool,
    neq: bool,
    exists: bool,
    re: bool,
    re_i: bool,
    re_m: bool,
    re_s: bool,
    cidr: bool,
    cmp: Option<CmpOp>,
    fieldref: bool,
    expand: bool,
    time: Option<TimePart>,
    tfs: Vec<Tf>,
}

fn num_of(n: &Node) -> Option<f64> {
    match &n.v {
        Yaml::Int(i) => Some(*i as f64),
        Yaml::Float(f) => Some(*f),
        Yaml::Str(s) => crate::event::parse_number(s),
        _ => None,
    }
}

impl Compiler {
    pub fn field(&mut self, names: Vec<String>) -> FieldId {
        if let Some(id) = self.field_ix.get(&names) {
            return *id;
        }
        let id = self.fields.len() as FieldId;
        self.fields.push(FieldDef {
            names: names.clone(),
        });
        self.field_ix.insert(names, id);
        id
    }

    fn leaf(&mut self, field: Option<FieldId>, sigma_field: &str, pred: Pred) -> Expr {
        // Plain literal leaves are shared between rules: the automata decide each once per event.
        let key = match &pred {
            Pred::Str(sm) => sm.literal_key().map(|(kind, lit)| {
                (
                    field.unwrap_or(KW_FIELD),
                    Box::<str>::from(sigma_field),
                    sm.cased,
                    kind,
                    lit.to_vec(),
                )
            }),
            _ => None,
        };
        if let Some(k) = &key {
            if let Some(id) = self.leaf_ix.get(k) {
                return Expr::Leaf(*id);
            }
        }
        let id = self.leaves.len() as u32;
        if let Some(k) = key {
            self.leaf_ix.insert(k, id);
        }
        self.leaves.push(Leaf {
            field,
            sigma_field: sigma_field.into(),
            pred,
        });
        Expr::Leaf(id)
    }

    /// A search identifier's value: a map (AND), a list of maps / keywords (OR), or a keyword.
    pub fn ident(
        &mut self,
        node: &Node,
        fm: &FieldMap,
        placeholders: &HashMap<String, Vec<String>>,
    ) -> Result<Expr, CErr> {
        match &node.v {
            Yaml::Map(m) => {
                if m.is_empty() {
                    return Err(("empty search identifier".into(), node.line));
                }
                let mut v = Vec::new();
                for (k, val) in m {
                    let key = k
                        .scalar_text()
                        .ok_or_else(|| ("field name must be a string".to_string(), k.line))?;
                    v.push(self.item(&key, val, fm, placeholders)?);
                }
                Ok(Expr::and(v))
            }
            Yaml::Seq(items) => {
                if items.is_empty() {
                    return Err(("empty search identifier".into(), node.line));
                }
                let mut v = Vec::new();
                for it in items {
                    match &it.v {
                        Yaml::Map(_) => v.push(self.ident(it, fm, placeholders)?),
                        Yaml::Seq(_) => {
                            return Err(("nested lists are not allowed".into(), it.line))
                        }
                        _ => v.push(self.item("", it, fm, placeholders)?),
                    }
                }
                Ok(Expr::or(v))
            }
            Yaml::Null => Err(("empty search identifier".into(), node.line)),
            _ => self.item("", node, fm, placeholders),
        }
    }

    /// One `field|modifiers: value(s)` item (or a keyword when the field is empty).
    pub fn item(
        &mut self,
        key: &str,
        val: &Node,
        fm: &FieldMap,
        placeholders: &HashMap<String, Vec<String>>,
    ) -> Result<Expr, CErr> {
        let line = val.line;
        let e = |s: String| (s, line);
        let mut parts = key.split('|');
        let fname = parts.next().unwrap_or("").trim();
        let mut f = Flags::default();
        for m in parts {
            match m.trim().to_ascii_lowercase().as_str() {
                "contains" => f.tfs.push(Tf::Contains),
                "startswith" => f.tfs.push(Tf::Startswith),
                "endswith" => f.tfs.push(Tf::Endswith),
                "windash" => f.tfs.push(Tf::Windash),
                "base64" => f.tfs.push(Tf::Base64),
                "base64offset" => f.tfs.push(Tf::Base64Offset),
                "utf16le" | "wide" => f.tfs.push(Tf::Utf16(Utf16::Le)),
                "utf16be" => f.tfs.push(Tf::Utf16(Utf16::Be)),
                "utf16" => f.tfs.push(Tf::Utf16(Utf16::Bom)),
                "all" => f.all = true,
                "cased" => f.cased = true,
                "neq" => f.neq = true,
                "exists" => f.exists = true,
                "re" => f.re = true,
                "i" | "ignorecase" if f.re => f.re_i = true,
                "m" | "multiline" if f.re => f.re_m = true,
                "s" | "dotall" if f.re => f.re_s = true,
                "cidr" => f.cidr = true,
                "gt" => f.cmp = Some(CmpOp::Gt),
                "gte" => f.cmp = Some(CmpOp::Gte),
                "lt" => f.cmp = Some(CmpOp::Lt),
                "lte" => f.cmp = Some(CmpOp::Lte),
                "fieldref" => f.fieldref = true,
                "expand" => f.expand = true,
                "minute" => f.time = Some(TimePart::Minute),
                "hour" => f.time = Some(TimePart::Hour),
                "day" => f.time = Some(TimePart::Day),
                "week" => f.time = Some(TimePart::Week),
                "month" => f.time = Some(TimePart::Month),
                "year" => f.time = Some(TimePart::Year),
                "" => return Err(e("empty modifier".into())),
                other => return Err(e(format!("unknown modifier `{other}`"))),
            }
        }
        let field = if fname.is_empty() {
            None
        } else {
            Some(self.field(fm(fname)))
        };
        if field.is_none()
            && (f.exists || f.fieldref || f.cmp.is_some() || f.time.is_some() || f.cidr)
        {
            return Err(e("this modifier needs a field name".into()));
        }
        let values: Vec<&Node> = match &val.v {
            Yaml::Seq(items) => items.iter().collect(),
            _ => vec![val],
        };
        if values.is_empty() {
            return Err(e(format!("`{key}` has an empty list of values")));
        }
        let mut exprs = Vec::with_capacity(values.len());
        for v in values {
            exprs.push(self.value(field, fname, v, &f, fm, placeholders)?);
        }
        let combined = if f.all {
            Expr::and(exprs)
        } else {
            Expr::or(exprs)
        };
        Ok(if f.neq { Expr::not(combined) } else { combined })
    }

    fn value(
        &mut self,
        field: Option<FieldId>,
        fname: &str,
        v: &Node,
        f: &Flags,
        fm: &FieldMap,
        placeholders: &HashMap<String, Vec<String>>,
    ) -> Result<Expr, CErr> {
        let line = v.line;
        let e = |s: String| (s, line);
        if matches!(v.v, Yaml::Map(_) | Yaml::Seq(_)) {
            return Err(e("a value must be a scalar or a list of scalars".into()));
        }
        if f.exists {
            let b = match &v.v {
                Yaml::Bool(b) => *b,
                Yaml::Str(s) if s.eq_ignore_ascii_case("true") => true,
                Yaml::Str(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return Err(e("`exists` needs true or false".into())),
            };
            return Ok(self.leaf(field, fname, Pred::Exists(b)));
        }
        if let Yaml::Null = v.v {
            if field.is_none() {
                return Err(e("a keyword cannot be null".into()));
            }
            return Ok(self.leaf(field, fname, Pred::Null));
        }
        let text = v.scalar_text().unwrap_or_default();
        if f.re {
            let key = (text.clone(), f.re_i, f.re_m, f.re_s);
            let re = match self.regex_cache.get(&key) {
                Some(r) => Arc::clone(r),
                None => {
                    let r = Arc::new(LazyRegex::new(&text, f.re_i, f.re_m, f.re_s).map_err(e)?);
                    self.regex_cache.insert(key, Arc::clone(&r));
                    r
                }
            };
            return Ok(self.leaf(field, fname, Pred::Re(re)));
        }
        if f.cidr {
            let t = text.trim();
            let net: IpNet = match t.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match t.parse::<std::net::IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(e(format!("invalid CIDR network `{t}`"))),
                },
            };
            return Ok(self.leaf(field, fname, Pred::Cidr(net.trunc())));
        }
        if let Some(part) = f.time {
            let n = num_of(v).ok_or_else(|| e("a time-part modifier needs a number".into()))?;
            return Ok(self.leaf(
                field,
                fname,
                Pred::TimePart {
                    part,
                    op: f.cmp.unwrap_or(CmpOp::Eq),
                    value: n,
                },
            ));
        }
        if let Some(op) = f.cmp {
            let n =
                num_of(v).ok_or_else(|| e(format!("`{op:?}` needs a number").to_lowercase()))?;
            return Ok(self.leaf(field, fname, Pred::Cmp(op, n)));
        }
        if f.fieldref {
            let other = self.field(fm(text.trim()));
            let mut mode = RefMode::Exact;
            for t in &f.tfs {
                mode = match t {
                    Tf::Contains => RefMode::Contains,
                    Tf::Startswith => RefMode::Prefix,
                    Tf::Endswith => RefMode::Suffix,
                    _ => {
                        return Err(e(
                            "`fieldref` only combines with contains, startswith, endswith".into(),
                        ))
                    }
                };
            }
            return Ok(self.leaf(
                field,
                fname,
                Pred::FieldRef {
                    other,
                    mode,
                    cased: f.cased,
                },
            ));
        }
        // Strings (numbers and booleans as their text).
        let parsed = match &v.v {
            Yaml::Str(s) => SStr::parse(s, f.expand),
            _ => SStr::literal(text.as_bytes()),
        };
        let mut variants = if parsed.has_placeholders() {
            parsed.expand(placeholders).map_err(e)?
        } else {
            vec![parsed]
        };
        for tf in &f.tfs {
            let mut next = Vec::with_capacity(variants.len());
            for s in variants {
                match tf {
                    Tf::Contains => next.push(s.contains()),
                    Tf::Startswith => next.push(s.startswith()),
                    Tf::Endswith => next.push(s.endswith()),
                    Tf::Windash => next.extend(s.windash().map_err(e)?),
                    Tf::Base64 => next.push(s.base64().map_err(e)?),
                    Tf::Base64Offset => next.extend(s.base64offset().map_err(e)?),
                    Tf::Utf16(enc) => next.push(s.utf16(*enc)),
                }
            }
            variants = next;
        }
        if field.is_none() {
            variants = variants.into_iter().map(|s| s.contains()).collect();
        }
        let mut leaves = Vec::with_capacity(variants.len());
        let mut seen = std::collections::HashSet::new();
        for s in variants {
            if seen.insert(s.clone()) {
                leaves.push(self.leaf(field, fname, Pred::Str(StrMatcher::new(&s, f.cased))));
            }
        }
        Ok(Expr::or(leaves))
    }

    /// Inline a condition over compiled search identifiers.
    pub fn cond(cond: &Cond, ids: &HashMap<String, Expr>) -> Expr {
        match cond {
            Cond::And(v) => Expr::and(v.iter().map(|c| Self::cond(c, ids)).collect()),
            Cond::Or(v) => Expr::or(v.iter().map(|c| Self::cond(c, ids)).collect()),
            Cond::Not(c) => Expr::not(Self::cond(c, ids)),
            Cond::Ident(i) => ids.get(i).cloned().unwrap_or(Expr::Const(false)),
            Cond::Of(q, names) => {
                let v: Vec<Expr> = names
                    .iter()
                    .map(|n| ids.get(n).cloned().unwrap_or(Expr::Const(false)))
                    .collect();
                match q {
                    Quant::All => Expr::and(v),
                    Quant::AtLeast(1) => Expr::or(v),
                    Quant::AtLeast(0) => Expr::Const(true),
                    Quant::AtLeast(n) => Expr::AtLeast(*n, v),
                }
            }
        }
    }

    /// A set of prefilter literals at least one of which occurs whenever `e` holds, with its cost.
    pub fn cover(&self, e: &Expr) -> Option<(f64, Lits)> {
        match e {
            Expr::Leaf(id) => {
                let l = &self.leaves[*id as usize];
                let field = l.field.unwrap_or(KW_FIELD);
                match &l.pred {
                    Pred::Str(sm) => {
                        let (anchor, lit) = sm.prefilter_literal()?;
                        let factor = match anchor {
                            Anchor::Exact => 0.3,
                            Anchor::Start | Anchor::End => 0.6,
                            Anchor::Anywhere => 1.0,
                        };
                        Some((
                            factor / (lit.len() as f64 + 1.0),
                            vec![(field, anchor, lit.to_vec())],
                        ))
                    }
                    _ => None,
                }
            }
            Expr::And(v) => v
                .iter()
                .filter_map(|c| self.cover(c))
                .min_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal)),
            Expr::Or(v) | Expr::AtLeast(_, v) => {
                let mut cost = 0.0;
                let mut lits = Vec::new();
                for c in v {
                    let (cc, l) = self.cover(c)?;
                    cost += cc;
                    lits.extend(l);
                }
                if lits.len() > 20_000 {
                    return None;
                }
                Some((cost, lits))
            }
            Expr::Const(false) => Some((0.0, Vec::new())),
            _ => None,
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}
