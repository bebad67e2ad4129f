//! Decoders as data.
//!
//! A decoder is a YAML file (`decoders/*.yml`, see [`spec::DecoderSpec`]) that recognises a
//! source's lines or records (syslog program, CEF/LEEF vendor and product, HEC sourcetype, a
//! prefix or pattern, JSON fields), extracts fields (regex, grok, key=value, CSV, JSON),
//! converts and translates values, and maps them to normalised (ECS) names and a Sigma
//! logsource. The shipped decoders are built into the binary; users add or override their own
//! by dropping files into a folder, no rebuild needed.
//!
//! [`DecoderSet::apply`] is the one entry point the pipeline, `garrison decoders test` and the
//! sample tests share: it adds what the winning decoder found to a record's normalised view.

mod extract;
mod grok;
pub mod spec;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use garrison_ingest::normalize::resolve;
use garrison_ingest::Record;
use garrison_model::{LogSource, Timestamp};
use regex::Regex;
use serde_json::{Map, Value};

use extract::{Csv, Extractor, Found, Kv};
use spec::{Conversion, DecoderSpec, ExtractSpec, TestSpec, TimeSpec};

/// The normalised field naming the decoder that read an event.
pub const DECODER_FIELD: &str = "garrison.decoder";

/// The shipped decoders: (file name, text), embedded at build time from `decoders/`.
const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// A decoder file that could not be read or compiled, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct LoadError {
    /// The file (or `builtin:<name>` for a shipped one).
    pub path: String,
    pub message: String,
}

/// A compiled decoder.
pub struct Decoder {
    pub name: String,
    pub title: String,
    pub origin: String,
    /// Where it was loaded from: `builtin:<file>` or a path.
    pub path: String,
    pub logsource: LogSource,
    recognise: Recognise,
    alternatives: Vec<Alternative>,
    fields: Vec<(String, Vec<String>)>,
    set: Map<String, Value>,
    time: Option<TimeSpec>,
    tests: Vec<TestSpec>,
    spec: DecoderSpec,
    /// What the decoder does with each name it reads (conversion, lookup table, mapped
    /// targets), found with one fast hash: a flat line is mapped in one pass over its fields.
    uses: HashMap<String, FieldUse, foldhash::fast::RandomState>,
}

/// What a decoder does with one extracted name: converts it, and which mapped targets read it
/// (target index in `fields`, rank of the path in that target's list).
#[derive(Default)]
struct FieldUse {
    convert: Option<Conversion>,
    lookup: Option<BTreeMap<String, Value>>,
    targets: Vec<(usize, usize)>,
}

struct Recognise {
    program: Vec<String>,
    vendor: Vec<String>,
    product: Vec<String>,
    prefix: Vec<String>,
    contains: Vec<String>,
    pattern: Option<Regex>,
    fields: Vec<(String, Value)>,
    /// Per field condition, the top-level names the record must have for its path to resolve
    /// (`a.b.c`: `a`, `a.b` or `a.b.c`): a cheap test that rules most decoders out before
    /// the paths are resolved.
    roots: Vec<Vec<String>>,
    conditions: usize,
}

struct Alternative {
    extractor: Extractor,
    on: Option<String>,
    when: Vec<(String, Value)>,
    set: Map<String, Value>,
    then: Vec<Alternative>,
}

/// What the winning decoder made of a record (see [`DecoderSet::apply`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub decoder: String,
    pub logsource: LogSource,
    /// The event's own time, when the decoder reads one.
    pub time: Option<Timestamp>,
    /// The decoder recognised the record but none of its patterns matched the text.
    pub failed: bool,
}

/// Every loaded decoder, indexed by what recognises it so a line tries only a few.
#[derive(Default)]
pub struct DecoderSet {
    decoders: Vec<Decoder>,
    by_program: HashMap<String, Vec<usize>>,
    by_vendor: HashMap<String, Vec<usize>>,
    /// Decoders with neither program nor vendor condition: tried on every record.
    others: Vec<usize>,
}

impl std::fmt::Debug for DecoderSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecoderSet({} decoders)", self.decoders.len())
    }
}

/// The facts a record offers for recognition.
struct Facts<'a> {
    message: Option<&'a str>,
    /// A second pass over the raw line: record decoders were tried already.
    text_only: bool,
    program: Option<String>,
    vendor: Option<&'a str>,
    product: Option<&'a str>,
    /// The record's top-level names.
    keys: std::collections::HashSet<&'a str, foldhash::fast::RandomState>,
}

fn text<'a>(fields: &'a Map<String, Value>, path: &str) -> Option<&'a str> {
    resolve(fields, path).and_then(Value::as_str)
}

impl<'a> Facts<'a> {
    fn of(fields: &'a Map<String, Value>) -> Facts<'a> {
        let header = |key: &str| {
            fields
                .get("cef")
                .or_else(|| fields.get("leef"))
                .and_then(Value::as_object)
                .and_then(|h| h.get(key))
                .and_then(Value::as_str)
        };
        Facts {
            message: fields.get("message").and_then(Value::as_str),
            text_only: false,
            program: text(fields, "log.syslog.appname")
                .or_else(|| fields.get("sourcetype").and_then(Value::as_str))
                .map(str::to_ascii_lowercase),
            vendor: header("device_vendor"),
            product: header("device_product"),
            keys: fields.keys().map(String::as_str).collect(),
        }
    }
}

fn any_eq(list: &[String], value: Option<&str>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l.eq_ignore_ascii_case(v)))
}

fn text_form(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// Whether `actual` satisfies a condition: `null` (present), a value, or a list of values.
fn satisfies(actual: Option<&Value>, wanted: &Value) -> bool {
    let Some(actual) = actual else {
        return false;
    };
    match wanted {
        Value::Null => true,
        Value::Array(options) => options.iter().any(|o| satisfies(Some(actual), o)),
        other => match (text_form(actual), text_form(other)) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(&b),
            _ => actual == other,
        },
    }
}

impl Recognise {
    fn holds(&self, facts: &Facts<'_>, fields: &Map<String, Value>) -> bool {
        let message = facts.message.unwrap_or_default();
        any_eq(&self.program, facts.program.as_deref())
            && any_eq(&self.vendor, facts.vendor)
            && any_eq(&self.product, facts.product)
            && (self.prefix.is_empty() || self.prefix.iter().any(|p| message.starts_with(p)))
            && (self.contains.is_empty() || self.contains.iter().any(|c| message.contains(c)))
            && self
                .roots
                .iter()
                .all(|roots| roots.iter().any(|r| facts.keys.contains(r.as_str())))
            && self.pattern.as_ref().is_none_or(|p| p.is_match(message))
            && self
                .fields
                .iter()
                .all(|(path, wanted)| satisfies(resolve(fields, path), wanted))
    }
}

/// Converts a value; one that does not convert is kept as it was.
pub(crate) fn convert(value: &Value, conversion: Conversion) -> Value {
    let Some(s) = text_form(value) else {
        return value.clone();
    };
    let s = s.trim();
    match conversion {
        Conversion::Int => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| value.clone()),
        Conversion::Float => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| value.clone()),
        Conversion::Bool => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Value::Bool(true),
            "false" | "no" | "0" | "off" => Value::Bool(false),
            _ => value.clone(),
        },
        Conversion::Lower => Value::String(s.to_lowercase()),
        Conversion::Upper => Value::String(s.to_uppercase()),
        Conversion::String => Value::String(s.to_string()),
    }
}

fn compile_alternative(spec: &ExtractSpec, at: &str) -> Result<Alternative, String> {
    let given = [
        spec.regex.is_some(),
        spec.grok.is_some(),
        spec.kv.is_some(),
        spec.csv.is_some(),
        spec.json.is_some(),
        spec.pairs.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        return Err(format!(
            "{at}: give exactly one of regex, grok, kv, csv, json, pairs (found {given})"
        ));
    }
    let regex = |pattern: &str, groups| {
        regex::RegexBuilder::new(pattern)
            .size_limit(1 << 22)
            .build()
            .map(|regex| Extractor::Regex { regex, groups })
            .map_err(|e| format!("{at}: {e}"))
    };
    let extractor = if let Some(r) = &spec.regex {
        let compiled = Regex::new(r).map_err(|e| format!("{at}.regex: {e}"))?;
        let groups = compiled
            .capture_names()
            .flatten()
            .map(|n| (n.to_string(), n.to_string(), None))
            .collect::<Vec<_>>();
        if groups.is_empty() {
            return Err(format!(
                "{at}.regex: name at least one group: (?P<field>...)"
            ));
        }
        regex(r, groups)?
    } else if let Some(g) = &spec.grok {
        let compiled = grok::compile(g).map_err(|e| format!("{at}.grok: {e}"))?;
        let groups = compiled
            .fields
            .iter()
            .enumerate()
            .map(|(i, (f, c))| (format!("g{i}"), f.clone(), *c))
            .collect();
        regex(&compiled.regex, groups)?
    } else if let Some(p) = &spec.pairs {
        let regex = Regex::new(p).map_err(|e| format!("{at}.pairs: {e}"))?;
        let names: Vec<_> = regex.capture_names().flatten().collect();
        if !names.contains(&"key") || !names.contains(&"value") {
            return Err(format!(
                "{at}.pairs: name the groups (?P<key>..) and (?P<value>..)"
            ));
        }
        Extractor::Pairs(regex)
    } else if let Some(kv) = &spec.kv {
        Extractor::Kv(Kv::new(kv).map_err(|e| format!("{at}.{e}"))?)
    } else if let Some(csv) = &spec.csv {
        Extractor::Csv(Csv::new(csv).map_err(|e| format!("{at}.{e}"))?)
    } else {
        let from_brace = spec.json.as_ref().is_some_and(|j| j.from_brace);
        Extractor::Json { from_brace }
    };
    let then = spec
        .then
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let at = format!("{at}.then[{i}]");
            if t.on.is_none() {
                return Err(format!("{at}: a `then` step needs `on: <field>`"));
            }
            compile_alternative(t, &at)
        })
        .collect::<Result<_, _>>()?;
    Ok(Alternative {
        extractor,
        on: spec.on.clone(),
        when: spec.when.clone().into_iter().collect(),
        set: spec.set.clone(),
        then,
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Decoder {
    /// Reads and compiles one decoder file's text. The error says where.
    pub fn from_yaml(text: &str, path: &str) -> Result<Decoder, LoadError> {
        let err = |message: String| LoadError {
            path: path.to_string(),
            message,
        };
        let spec: DecoderSpec = serde_saphyr::from_str(text).map_err(|e| {
            // The YAML reader's message names no file and starts with its own "error:".
            let message = e.to_string().replace("<input>", path);
            err(message
                .strip_prefix("error: ")
                .unwrap_or(&message)
                .to_string())
        })?;
        Decoder::compile(spec, path).map_err(err)
    }

    fn compile(spec: DecoderSpec, path: &str) -> Result<Decoder, String> {
        if !valid_name(&spec.name) {
            return Err(format!(
                "name {:?}: use 1 to 64 lower-case letters, digits, '-' or '_'",
                spec.name
            ));
        }
        let m = &spec.recognise;
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
        let pattern = m
            .pattern
            .as_deref()
            .map(Regex::new)
            .transpose()
            .map_err(|e| format!("match.pattern: {e}"))?;
        let recognise = Recognise {
            program: lower(&m.program),
            vendor: lower(&m.vendor),
            product: lower(&m.product),
            prefix: m.prefix.clone(),
            contains: m.contains.clone(),
            pattern,
            fields: m.fields.clone().into_iter().collect(),
            roots: m
                .fields
                .keys()
                .map(|path| {
                    let mut roots: Vec<String> = path
                        .match_indices('.')
                        .map(|(i, _)| path[..i].to_string())
                        .collect();
                    roots.push(path.clone());
                    roots
                })
                .collect(),
            conditions: [
                !m.program.is_empty(),
                !m.vendor.is_empty(),
                !m.product.is_empty(),
                !m.prefix.is_empty(),
                !m.contains.is_empty(),
                m.pattern.is_some(),
            ]
            .iter()
            .filter(|c| **c)
            .count()
                + m.fields.len(),
        };
        if recognise.conditions == 0 {
            return Err("match: give at least one condition (program, vendor, product, prefix, contains, pattern, fields)".into());
        }
        let alternatives = spec
            .parse
            .iter()
            .enumerate()
            .map(|(i, a)| compile_alternative(a, &format!("parse[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        if spec.parse.is_empty() && spec.fields.is_empty() && spec.set.is_empty() {
            return Err("a decoder without `parse` must map `fields` or `set` values".into());
        }
        if let Some(t) = &spec.time {
            if !matches!(t.format.as_str(), "auto" | "unix" | "unix_ms") && !t.format.contains('%')
            {
                return Err(format!(
                    "time.format {:?}: auto, unix, unix_ms or a strftime format like %d/%b/%Y:%H:%M:%S %z",
                    t.format
                ));
            }
        }
        for (i, t) in spec.tests.iter().enumerate() {
            if t.line.is_some() == t.record.is_some() {
                return Err(format!("tests[{i}]: give either `line` or `record`"));
            }
            if t.expect.is_empty() {
                return Err(format!("tests[{i}]: `expect` names no field"));
            }
        }
        let mut uses: HashMap<String, FieldUse, foldhash::fast::RandomState> = HashMap::default();
        for (name, c) in &spec.convert {
            uses.entry(name.clone()).or_default().convert = Some(*c);
        }
        for (name, table) in &spec.lookup {
            uses.entry(name.clone()).or_default().lookup = Some(table.clone());
        }
        for (t, (_, paths)) in spec.fields.iter().enumerate() {
            for (rank, path) in paths.paths().iter().enumerate() {
                uses.entry(path.clone())
                    .or_default()
                    .targets
                    .push((t, rank));
            }
        }
        Ok(Decoder {
            uses,
            name: spec.name.clone(),
            title: spec.title.clone(),
            origin: spec.origin.clone(),
            path: path.to_string(),
            logsource: LogSource {
                product: spec.logsource.product.clone(),
                service: spec.logsource.service.clone(),
                category: spec.logsource.category.clone(),
            },
            recognise,
            alternatives,
            fields: spec
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.paths().to_vec()))
                .collect(),
            set: spec.set.clone(),
            time: spec.time.clone(),
            tests: spec.tests.clone(),
            spec,
        })
    }

    /// Whether it reads the message text (it has `parse` steps) rather than the record.
    pub fn reads_text(&self) -> bool {
        !self.alternatives.is_empty()
    }

    /// The file as it was read (for `decoders list --long` and the coverage table).
    pub fn spec(&self) -> &DecoderSpec {
        &self.spec
    }

    /// The normalised names it writes (mapped and constant).
    pub fn output_fields(&self) -> Vec<String> {
        let mut names: Vec<String> = self.fields.iter().map(|(k, _)| k.clone()).collect();
        names.extend(self.set.keys().cloned());
        for a in &self.spec.parse {
            names.extend(a.set.keys().cloned());
        }
        names.sort();
        names.dedup();
        names
    }

    /// How many sample tests it carries.
    pub fn sample_count(&self) -> usize {
        self.tests.len()
    }

    /// The value of a mapped path: translated by `lookup`, converted by `convert`.
    fn value_of(&self, source: &Source<'_>, path: &str) -> Option<Value> {
        let raw = source.get(path)?;
        Some(match self.uses.get(path) {
            Some(used) => translate(used, raw),
            None => raw.clone(),
        })
    }

    /// The mapped targets' values from flat fields, in one pass over them: for each target the
    /// first of its paths (in the order listed) that gives a value. Also each field's
    /// conversion, so the fields are looked up once.
    fn map_flat(
        &self,
        pairs: &[(String, Value)],
    ) -> (Vec<(usize, Value)>, Vec<Option<Conversion>>) {
        // (rank, value) per target; a name given twice keeps its first value.
        let mut best: Vec<Option<(usize, Value)>> = vec![None; self.fields.len()];
        let mut conversions = Vec::with_capacity(pairs.len());
        for (key, raw) in pairs {
            let Some(used) = self.uses.get(key.as_str()) else {
                conversions.push(None);
                continue;
            };
            conversions.push(used.convert);
            for &(t, rank) in &used.targets {
                if best[t].as_ref().is_some_and(|(r, _)| *r <= rank) {
                    continue;
                }
                let value = translate(used, raw);
                if !is_blank(&value) {
                    best[t] = Some((rank, value));
                }
            }
        }
        let mapped = best
            .into_iter()
            .enumerate()
            .filter_map(|(t, b)| b.map(|(_, v)| (t, v)))
            .collect();
        (mapped, conversions)
    }

    fn time_of(&self, source: &Source<'_>) -> Option<Timestamp> {
        let spec = self.time.as_ref()?;
        let value = source.get(&spec.field)?;
        match spec.format.as_str() {
            "auto" => garrison_ingest::time::parse_value(value),
            "unix" | "unix_ms" => {
                let n = text_form(value)?.trim().parse::<f64>().ok()?;
                let secs = if spec.format == "unix_ms" {
                    n / 1000.0
                } else {
                    n
                };
                if !secs.is_finite() || secs.abs() > 1e11 {
                    return None;
                }
                Timestamp::from_microsecond((secs * 1e6) as i64).ok()
            }
            format => {
                let text = text_form(value)?;
                let parsed = jiff::fmt::strtime::parse(format, text.trim()).ok()?;
                parsed.to_timestamp().ok().or_else(|| {
                    parsed
                        .to_datetime()
                        .ok()
                        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
                        .map(|z| z.timestamp())
                })
            }
        }
    }

    /// Runs the alternatives on `text`: the fields of the first that matches, and the `set`
    /// values of it and its `then` steps that matched, in order.
    fn extract(&self, text: &str) -> Option<(Found, Vec<&Map<String, Value>>)> {
        for alt in &self.alternatives {
            if let Some(found) = run_alternative(alt, text) {
                return Some(found);
            }
        }
        None
    }
}

fn run_alternative<'a>(
    alt: &'a Alternative,
    text: &str,
) -> Option<(Found, Vec<&'a Map<String, Value>>)> {
    let mut fields = alt.extractor.extract(text)?;
    if !alt
        .when
        .iter()
        .all(|(path, wanted)| satisfies(fields.get(path), wanted))
    {
        return None;
    }
    let mut set = vec![&alt.set];
    for step in &alt.then {
        let found = step
            .on
            .as_deref()
            .and_then(|f| fields.get(f))
            .and_then(Value::as_str)
            .and_then(|input| run_alternative(step, input));
        if let Some((more, more_set)) = found {
            fields.merge(more);
            set.extend(more_set);
        }
    }
    Some((fields, set))
}

impl DecoderSet {
    /// The shipped decoders only.
    pub fn builtin() -> Result<DecoderSet, Vec<LoadError>> {
        let (set, errors) = DecoderSet::load(&[]);
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// The shipped decoders, then every `*.yml` / `*.yaml` file of each folder in order (a
    /// decoder with a shipped one's name replaces it). Files that fail are reported and left
    /// out; the others load.
    pub fn load(dirs: &[&Path]) -> (DecoderSet, Vec<LoadError>) {
        let mut errors = Vec::new();
        let mut decoders: Vec<Decoder> = Vec::new();
        for (file, text) in BUILTIN {
            match Decoder::from_yaml(text, &format!("builtin:{file}")) {
                Ok(d) => decoders.push(d),
                Err(e) => errors.push(e),
            }
        }
        for dir in dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) => {
                    errors.push(LoadError {
                        path: dir.display().to_string(),
                        message: format!("cannot read the folder: {e}"),
                    });
                    continue;
                }
            };
            let mut paths: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
                .collect();
            paths.sort();
            for path in paths {
                let shown = path.display().to_string();
                let loaded = std::fs::read_to_string(&path)
                    .map_err(|e| LoadError {
                        path: shown.clone(),
                        message: format!("cannot read: {e}"),
                    })
                    .and_then(|text| Decoder::from_yaml(&text, &shown));
                match loaded {
                    Ok(d) => {
                        decoders.retain(|old| old.name != d.name);
                        decoders.push(d);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        let mut seen = HashMap::new();
        for d in &decoders {
            if let Some(first) = seen.insert(d.name.clone(), d.path.clone()) {
                errors.push(LoadError {
                    path: d.path.clone(),
                    message: format!("decoder name {:?} is already used by {first}", d.name),
                });
            }
        }
        (DecoderSet::from_decoders(decoders), errors)
    }

    /// Indexes decoders; the more conditions a decoder has, the earlier it is tried.
    pub fn from_decoders(mut decoders: Vec<Decoder>) -> DecoderSet {
        decoders.sort_by(|a, b| {
            b.recognise
                .conditions
                .cmp(&a.recognise.conditions)
                .then_with(|| a.name.cmp(&b.name))
        });
        let mut set = DecoderSet::default();
        for (i, d) in decoders.iter().enumerate() {
            if !d.recognise.program.is_empty() {
                for p in &d.recognise.program {
                    set.by_program.entry(p.clone()).or_default().push(i);
                }
            } else if !d.recognise.vendor.is_empty() {
                for v in &d.recognise.vendor {
                    set.by_vendor.entry(v.clone()).or_default().push(i);
                }
            } else {
                set.others.push(i);
            }
        }
        set.decoders = decoders;
        set
    }

    pub fn decoders(&self) -> &[Decoder] {
        &self.decoders
    }

    /// The decoders, to build another set from (a file tried beside the loaded ones).
    pub fn into_decoders(self) -> Vec<Decoder> {
        self.decoders
    }

    /// The coverage table of `docs/decoder-coverage.md`: one row per decoder, by name.
    pub fn coverage_markdown(&self) -> String {
        let mut rows: Vec<&Decoder> = self.decoders.iter().collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let mut out = String::from(
            "# Decoder coverage\n\nGenerated from `decoders/*.yml` by `garrison decoders coverage`; a test fails when\nthis file and the decoders differ (`GARRISON_WRITE_DOCS=1 cargo test -p garrison-decoders`\nrewrites it).\n\n",
        );
        let samples: usize = rows.iter().map(|d| d.sample_count()).sum();
        out.push_str(&format!(
            "{} decoders, {samples} sample tests.\n\n| decoder | source | logsource | reads | normalised fields | samples | samples from |\n|---|---|---|---|---|---|---|\n",
            rows.len()
        ));
        for d in rows {
            let ls = [
                &d.logsource.product,
                &d.logsource.service,
                &d.logsource.category,
            ]
            .iter()
            .filter_map(|v| v.as_deref())
            .collect::<Vec<_>>()
            .join(" / ");
            let reads = if d.reads_text() {
                "lines"
            } else {
                "JSON records"
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} |\n",
                d.name,
                cell(&d.title),
                cell(&ls),
                reads,
                cell(&d.output_fields().join(", ")),
                d.sample_count(),
                cell(&d.origin)
            ));
        }
        out
    }

    pub fn get(&self, name: &str) -> Option<&Decoder> {
        self.decoders.iter().find(|d| d.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.decoders.is_empty()
    }

    /// Finds the decoder for a record and adds what it extracts to `normalized` (the flat
    /// normalised view): the extracted names where the view has none yet, then the mapped
    /// names, constants and [`DECODER_FIELD`], which win. `None`: no decoder recognised it.
    ///
    /// `raw` is the line as received, when the record came from one: a text decoder that does
    /// not recognise or parse the message tries it too, because a line without a syslog
    /// header (an IIS or nginx error line) may have had its date or address taken for one.
    pub fn apply(
        &self,
        fields: &Map<String, Value>,
        raw: Option<&str>,
        normalized: &mut Map<String, Value>,
    ) -> Option<Applied> {
        if self.decoders.is_empty() {
            return None;
        }
        let mut facts = Facts::of(fields);
        let first = self.apply_with(&facts, fields, normalized);
        if first.as_ref().is_some_and(|a| !a.failed) {
            return first;
        }
        // Only a line without `<PRI>` can have had a header guessed out of its text; a real
        // header is never part of the message, so nothing is tried twice for those.
        let raw = raw.filter(|r| Some(*r) != facts.message && !r.starts_with('<'));
        if let Some(raw) = raw {
            facts.message = Some(raw);
            facts.text_only = true;
            if let Some(found) = self.apply_with(&facts, fields, normalized) {
                if !found.failed {
                    return Some(found);
                }
            }
        }
        if let Some(a) = &first {
            normalized.insert(DECODER_FIELD.into(), Value::String(a.decoder.clone()));
        }
        first
    }

    fn apply_with(
        &self,
        facts: &Facts<'_>,
        fields: &Map<String, Value>,
        normalized: &mut Map<String, Value>,
    ) -> Option<Applied> {
        let mut candidates: Vec<usize> = Vec::new();
        if let Some(p) = &facts.program {
            candidates.extend(self.by_program.get(p.as_str()).into_iter().flatten());
        }
        if let Some(v) = facts.vendor {
            if let Some(list) = self.by_vendor.get(&v.to_ascii_lowercase()) {
                candidates.extend(list);
            }
        }
        candidates.extend(&self.others);
        candidates.sort_unstable();
        candidates.dedup();
        let mut first_failed: Option<&Decoder> = None;
        for i in candidates {
            let Some(d) = self.decoders.get(i) else {
                continue;
            };
            if (facts.text_only && !d.reads_text()) || !d.recognise.holds(facts, fields) {
                continue;
            }
            if !d.reads_text() {
                return Some(self.write(d, Source::Record(fields), Vec::new(), normalized));
            }
            let Some(message) = facts.message else {
                continue;
            };
            match d.extract(message) {
                Some((extracted, set)) => {
                    return Some(self.write(d, Source::Found(extracted), set, normalized))
                }
                None => {
                    first_failed.get_or_insert(d);
                }
            }
        }
        first_failed.map(|d| Applied {
            decoder: d.name.clone(),
            logsource: d.logsource.clone(),
            time: None,
            failed: true,
        })
    }

    fn write(
        &self,
        d: &Decoder,
        source: Source<'_>,
        set: Vec<&Map<String, Value>>,
        normalized: &mut Map<String, Value>,
    ) -> Applied {
        // The first path with a value wins (`user.name: [userName, arn]`).
        let (mapped, conversions): (Vec<(usize, Value)>, Vec<Option<Conversion>>) = match &source {
            Source::Found(Found::Flat(pairs)) => d.map_flat(pairs),
            _ => (
                d.fields
                    .iter()
                    .enumerate()
                    .filter_map(|(t, (_, paths))| {
                        paths
                            .iter()
                            .filter_map(|p| d.value_of(&source, p))
                            .find(|v| !is_blank(v))
                            .map(|v| (t, v))
                    })
                    .collect(),
                Vec::new(),
            ),
        };
        let time = d.time_of(&source);
        // The view grows by dozens of names at once: sized once here (serde_json's map has no
        // `reserve`), not doubled four times on the way.
        let adding = match &source {
            Source::Found(Found::Flat(pairs)) => pairs.len(),
            Source::Found(Found::Tree(tree)) => tree.len(),
            Source::Record(_) => 0,
        } + mapped.len()
            + d.set.len()
            + 1;
        if adding > 8 && adding > normalized.len() {
            let mut bigger = Map::with_capacity(normalized.len() + adding);
            bigger.extend(std::mem::take(normalized));
            *normalized = bigger;
        }
        // Moved, not copied: a key=value line has dozens of fields.
        match source {
            Source::Found(Found::Tree(tree)) => flatten_owned("", tree, d, normalized, 0),
            Source::Found(Found::Flat(pairs)) => {
                for ((key, value), conversion) in pairs.into_iter().zip(conversions) {
                    if let serde_json::map::Entry::Vacant(slot) = normalized.entry(key) {
                        slot.insert(match conversion {
                            Some(c) => convert(&value, c),
                            None => value,
                        });
                    }
                }
            }
            Source::Record(_) => {}
        }
        for (t, v) in mapped {
            if let Some((target, _)) = d.fields.get(t) {
                normalized.insert(target.clone(), v);
            }
        }
        for (k, v) in d.set.iter().chain(set.into_iter().flatten()) {
            normalized.insert(k.clone(), v.clone());
        }
        normalized.insert(DECODER_FIELD.into(), Value::String(d.name.clone()));
        Applied {
            decoder: d.name.clone(),
            logsource: d.logsource.clone(),
            time,
            failed: false,
        }
    }
}

/// What a decoder maps from: the record itself, or the fields it extracted from the text.
enum Source<'a> {
    Record(&'a Map<String, Value>),
    Found(Found),
}

impl Source<'_> {
    fn get(&self, path: &str) -> Option<&Value> {
        match self {
            Source::Record(m) => resolve(m, path),
            Source::Found(found) => found.get(path),
        }
    }
}

/// Adds one extracted field to the normalised view unless it has that name already,
/// converted when `convert` names it.
fn add_new(key: String, value: Value, d: &Decoder, normalized: &mut Map<String, Value>) {
    if let serde_json::map::Entry::Vacant(slot) = normalized.entry(key) {
        let value = match d.uses.get(slot.key().as_str()).and_then(|u| u.convert) {
            Some(c) => convert(&value, c),
            None => value,
        };
        slot.insert(value);
    }
}

/// A value translated by its `lookup` table (exact, then ignoring case) and converted.
fn translate(used: &FieldUse, raw: &Value) -> Value {
    let mut value = match used.lookup.as_ref().zip(text_form(raw)) {
        Some((table, k)) => table
            .get(k.as_ref())
            .or_else(|| {
                table
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(&k))
                    .map(|(_, v)| v)
            })
            .unwrap_or(raw)
            .clone(),
        None => raw.clone(),
    };
    if let Some(c) = used.convert {
        value = convert(&value, c);
    }
    value
}

/// No value for a mapping: null (a lookup to `null`) or empty text.
fn is_blank(v: &Value) -> bool {
    v.is_null() || v.as_str().is_some_and(str::is_empty)
}

/// Adds extracted fields to the flat normalised view under dotted keys, where it has no such
/// key yet, converting those `convert` names.
fn flatten_owned(
    prefix: &str,
    map: Map<String, Value>,
    d: &Decoder,
    normalized: &mut Map<String, Value>,
    depth: usize,
) {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) if depth < 8 => {
                flatten_owned(&key, inner, d, normalized, depth + 1)
            }
            other => add_new(key, other, d, normalized),
        }
    }
}

/// A sample test that did not give what it expects.
#[derive(Debug, Clone)]
pub struct SampleFailure {
    pub decoder: String,
    pub index: usize,
    pub input: String,
    pub problems: Vec<String>,
}

impl std::fmt::Display for SampleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tests[{}] ({}): {}",
            self.decoder,
            self.index,
            self.input,
            self.problems.join("; ")
        )
    }
}

/// How a sample line arrives: as the syslog listener reads it (header parsed, CEF/LEEF
/// decoded, the line kept as `raw`).
pub fn record_of_line(line: &str) -> Record {
    let received = Timestamp::UNIX_EPOCH;
    match garrison_ingest::syslog::parse(line.as_bytes(), received, &Default::default()) {
        Ok(record) => record,
        Err(_) => {
            let mut m = Map::new();
            m.insert("message".into(), Value::String(line.to_string()));
            let mut record = Record::from_fields(m);
            record.raw = Some(line.to_string());
            record
        }
    }
}

/// What the pipeline makes of one record: the built-in normalised view plus the decoder's.
pub fn decode_record(set: &DecoderSet, record: &Record) -> (Map<String, Value>, Option<Applied>) {
    // Built once: the built-in mapping compiles to a sizeable table.
    static NORMALIZER: std::sync::OnceLock<garrison_ingest::normalize::Normalizer> =
        std::sync::OnceLock::new();
    let normalizer = NORMALIZER.get_or_init(|| {
        garrison_ingest::normalize::Normalizer::new(
            &garrison_ingest::normalize::FieldMapping::builtin(),
        )
    });
    let mut normalized = normalizer.normalize(&record.fields);
    let applied = set.apply(&record.fields, record.raw.as_deref(), &mut normalized);
    (normalized, applied)
}

impl DecoderSet {
    /// Runs every sample test of the named decoder (all decoders when `None`) through the whole
    /// set, as the pipeline would: the sample must be read by its own decoder and give every
    /// expected value.
    pub fn run_samples(&self, only: Option<&str>) -> (usize, Vec<SampleFailure>) {
        let mut ran = 0;
        let mut failures = Vec::new();
        for d in &self.decoders {
            if only.is_some_and(|n| n != d.name) {
                continue;
            }
            for (index, test) in d.tests.iter().enumerate() {
                ran += 1;
                let (record, input) = match (&test.line, &test.record) {
                    (Some(line), _) => (record_of_line(line), line.clone()),
                    (None, Some(Value::Object(record))) => (
                        Record::from_fields(record.clone()),
                        Value::Object(record.clone()).to_string(),
                    ),
                    _ => {
                        failures.push(SampleFailure {
                            decoder: d.name.clone(),
                            index,
                            input: String::new(),
                            problems: vec!["the record must be a JSON object".into()],
                        });
                        continue;
                    }
                };
                let (normalized, applied) = decode_record(self, &record);
                let mut problems = Vec::new();
                match &applied {
                    None => problems.push("no decoder recognised it".to_string()),
                    Some(a) if a.decoder != d.name => {
                        problems.push(format!("decoder {} read it first", a.decoder))
                    }
                    Some(a) if a.failed => problems.push("no parse alternative matched".into()),
                    Some(_) => {}
                }
                for (key, want) in &test.expect {
                    let got = normalized.get(key);
                    let ok = match (want, got) {
                        (Value::Null, None) => true,
                        (Value::Null, Some(_)) => false,
                        (_, None) => false,
                        (want, Some(got)) => {
                            want == got
                                || text_form(want)
                                    .is_some_and(|w| text_form(got).is_some_and(|g| w == g))
                                    && want.is_string() == got.is_string()
                        }
                    };
                    if !ok {
                        problems.push(format!(
                            "{key}: expected {want}, got {}",
                            got.map_or("nothing".to_string(), Value::to_string)
                        ));
                    }
                }
                if !problems.is_empty() {
                    failures.push(SampleFailure {
                        decoder: d.name.clone(),
                        index,
                        input: input.chars().take(120).collect(),
                        problems,
                    });
                }
            }
        }
        (ran, failures)
    }
}
