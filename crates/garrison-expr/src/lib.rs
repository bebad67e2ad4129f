//! Garrison's one sandbox for the expressions that users write: templates (`"https://x/{{ inputs.ip }}"`),
//! conditions (`steps.lookup.output.score > 70`) and JSON queries (jaq, the jq language).
//!
//! # Use
//! ```
//! use garrison_expr::{Context, Sandbox};
//! let sandbox = Sandbox::default();
//! let ctx = Context::from_json(&serde_json::json!({"inputs": {"ip": "10.0.0.1", "ports": [22, 443]}}));
//! // A template that is exactly one `{{ expression }}` keeps the expression's type.
//! assert_eq!(sandbox.render("t", "{{ inputs.ports }}", &ctx).unwrap(), serde_json::json!([22, 443]));
//! assert_eq!(sandbox.render("t", "ip={{ inputs.ip }}", &ctx).unwrap(), serde_json::json!("ip=10.0.0.1"));
//! assert!(sandbox.eval_bool("c", "inputs.ports | length == 2", &ctx).unwrap());
//! // Undefined references are errors that name the template and the place.
//! let err = sandbox.render("steps.enrich.with.url", "x {{ inputs.nope }}", &ctx).unwrap_err();
//! assert_eq!(err.name, "steps.enrich.with.url");
//! assert_eq!((err.line, err.column), (Some(1), Some(6)));
//! ```
//!
//! # Limits
//! Every render and evaluation runs with a fuel budget (instructions and allocations, see
//! [`Limits::fuel`]), a recursion limit, a cap on the template's length and on its output. Macros,
//! `include` and `extends` are compiled out. JSON queries ([`JqQuery`]) may not define functions
//! (no user recursion), may not call the unbounded generators (`range`, `repeat`, `recurse` with
//! an argument, `while`, `until`, `limit` is allowed) nor anything that reads the environment,
//! and their outputs are capped in number and size.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fmt;
use std::sync::OnceLock;

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value as Json;

/// What went wrong in a template, an expression or a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExprErrorKind {
    /// The source does not parse.
    Syntax,
    /// A reference to something that does not exist (strict undefined).
    Undefined,
    /// The fuel budget ran out (endless loop or too much work).
    OutOfFuel,
    /// A length or size limit was exceeded (source, output, recursion).
    Limit,
    /// An operation on values of the wrong type, or any other evaluation error.
    Eval,
    /// A construct that the sandbox refuses (jaq `def`, unbounded generators).
    Forbidden,
}

/// An error with the template's name (e.g. `steps.enrich.with.url`) and, where known, the
/// 1-based line and column inside the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub struct ExprError {
    /// The template's name: where it comes from in the playbook.
    pub name: String,
    /// What kind of failure.
    pub kind: ExprErrorKind,
    /// The message, without the name and place.
    pub message: String,
    /// 1-based line inside the template.
    pub line: Option<usize>,
    /// 1-based column (in characters) inside the template.
    pub column: Option<usize>,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, ":{line}:{column}")?,
            (Some(line), None) => write!(f, ":{line}")?,
            _ => {}
        }
        write!(f, ": {}", self.message)
    }
}

impl ExprError {
    fn new(name: &str, kind: ExprErrorKind, message: impl Into<String>) -> Self {
        ExprError {
            name: name.to_owned(),
            kind,
            message: message.into(),
            line: None,
            column: None,
        }
    }

    fn at(mut self, source: &str, byte_offset: usize) -> Self {
        let (line, column) = line_column(source, byte_offset);
        self.line = Some(line);
        self.column = Some(column);
        self
    }
}

/// 1-based line and character column of a byte offset (clamped to the source).
pub fn line_column(source: &str, byte_offset: usize) -> (usize, usize) {
    let mut offset = byte_offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The budgets of the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// minijinja fuel per render or evaluation: roughly instructions, and about 64 bytes of
    /// allocation each.
    pub fuel: u64,
    /// Nesting depth of the template engine.
    pub recursion_limit: usize,
    /// Longest template or expression source, in bytes.
    pub max_source_len: usize,
    /// Longest rendered string, in bytes.
    pub max_output_len: usize,
    /// Most values a JSON query may produce.
    pub max_query_outputs: usize,
    /// Largest serialized JSON output (all values of a query together, or one rendered value).
    pub max_json_bytes: usize,
    /// Deepest nesting of a JSON value given to a query.
    pub max_json_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 100_000,
            recursion_limit: 64,
            max_source_len: 64 * 1024,
            max_output_len: 1024 * 1024,
            max_query_outputs: 10_000,
            max_json_bytes: 4 * 1024 * 1024,
            max_json_depth: 128,
        }
    }
}

/// The variables that a template or expression reads, as dotted paths
/// (`steps.enrich.output.score`), found without evaluating it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Dotted paths of undeclared variables (attribute chains only; an index stops the chain).
    pub paths: BTreeSet<String>,
}

/// A template context: built once from JSON and shared by every render of one evaluation.
#[derive(Debug, Clone)]
pub struct Context(minijinja::Value);

impl Context {
    /// Converts a JSON object (its keys become top-level variables).
    pub fn from_json(value: &Json) -> Self {
        Context(minijinja::Value::from(minijinja::value::Serde(value)))
    }

    /// An empty context.
    pub fn empty() -> Self {
        Context(minijinja::Value::from(minijinja::value::Serde(
            Json::Object(Default::default()),
        )))
    }

    /// A context with one more variable (e.g. `item` inside `for_each`).
    pub fn with(&self, key: &str, value: &Json) -> Self {
        let mut map = serde_json::Map::new();
        if let Ok(iter) = self.0.try_iter() {
            for k in iter {
                if let (Some(name), Ok(v)) = (k.as_str(), self.0.get_item(&k)) {
                    if let Ok(json) = serde_json::to_value(&v) {
                        map.insert(name.to_owned(), json);
                    }
                }
            }
        }
        map.insert(key.to_owned(), value.clone());
        Context::from_json(&Json::Object(map))
    }

    /// Like [`Context::with`] for several variables at once, starting from a JSON object that
    /// is already at hand (cheaper than converting back).
    pub fn from_json_with(base: &Json, extra: &[(&str, &Json)]) -> Self {
        match base {
            Json::Object(m) => {
                let mut m = m.clone();
                for (k, v) in extra {
                    m.insert((*k).to_owned(), (*v).clone());
                }
                Context::from_json(&Json::Object(m))
            }
            other => Context::from_json(other),
        }
    }
}

/// The sandbox: a configured minijinja environment and the limits.
pub struct Sandbox {
    env: Environment<'static>,
    limits: Limits,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new(Limits::default())
    }
}

/// The process-wide sandbox with default limits, used by [`render`] and [`eval_bool`].
pub fn default_sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(Sandbox::default)
}

/// Renders a template with the default sandbox: see [`Sandbox::render`].
pub fn render(name: &str, template: &str, context: &Json) -> Result<Json, ExprError> {
    default_sandbox().render(name, template, &Context::from_json(context))
}

/// Evaluates a condition with the default sandbox: see [`Sandbox::eval_bool`].
pub fn eval_bool(name: &str, expr: &str, context: &Json) -> Result<bool, ExprError> {
    default_sandbox().eval_bool(name, expr, &Context::from_json(context))
}

/// True when a string contains template syntax (`{{`, `{%` or `{#`).
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// If the template is exactly one `{{ expression }}` (surrounding whitespace allowed), the
/// expression and its byte offset in the template.
fn single_expression(template: &str) -> Option<(&str, usize)> {
    let trimmed_start = template.len() - template.trim_start().len();
    let t = template.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#")
    {
        return None;
    }
    Some((inner, trimmed_start + 2))
}

impl Sandbox {
    /// A sandbox with the given limits.
    pub fn new(limits: Limits) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(limits.fuel));
        env.set_recursion_limit(limits.recursion_limit);
        env.set_debug(true);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let query_limits = limits;
        env.add_filter(
            "jq",
            move |value: minijinja::Value,
                  query: String|
                  -> Result<minijinja::Value, minijinja::Error> {
                let json = serde_json::to_value(&value).map_err(|e| {
                    minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string())
                })?;
                let program = JqQuery::compile_with("jq", &query, &query_limits).map_err(|e| {
                    minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string())
                })?;
                let out = program.run_one(&json).map_err(|e| {
                    minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string())
                })?;
                Ok(minijinja::Value::from(minijinja::value::Serde(&out)))
            },
        );
        Sandbox { env, limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn check_len(&self, name: &str, source: &str) -> Result<(), ExprError> {
        if source.len() > self.limits.max_source_len {
            return Err(ExprError::new(
                name,
                ExprErrorKind::Limit,
                format!(
                    "source is {} bytes, more than the limit of {}",
                    source.len(),
                    self.limits.max_source_len
                ),
            ));
        }
        Ok(())
    }

    /// Parses a template without rendering it, and returns what it references.
    pub fn check_template(&self, name: &str, template: &str) -> Result<References, ExprError> {
        self.check_len(name, template)?;
        let tmpl = self
            .env
            .template_from_named_str(name, template)
            .map_err(|e| convert_error(name, template, 0, &e))?;
        Ok(References {
            paths: tmpl.undeclared_variables(true).into_iter().collect(),
        })
    }

    /// Parses an expression without evaluating it, and returns what it references.
    pub fn check_expression(&self, name: &str, expr: &str) -> Result<References, ExprError> {
        self.check_len(name, expr)?;
        let compiled = self
            .env
            .compile_expression(expr)
            .map_err(|e| convert_error(name, expr, 0, &e))?;
        Ok(References {
            paths: compiled.undeclared_variables(true).into_iter().collect(),
        })
    }

    /// Renders a template to a string.
    pub fn render_string(
        &self,
        name: &str,
        template: &str,
        ctx: &Context,
    ) -> Result<String, ExprError> {
        self.check_len(name, template)?;
        let tmpl = self
            .env
            .template_from_named_str(name, template)
            .map_err(|e| convert_error(name, template, 0, &e))?;
        let out = tmpl
            .render(ctx.0.clone())
            .map_err(|e| convert_error(name, template, 0, &e))?;
        if out.len() > self.limits.max_output_len {
            return Err(ExprError::new(
                name,
                ExprErrorKind::Limit,
                format!(
                    "output is {} bytes, more than the limit of {}",
                    out.len(),
                    self.limits.max_output_len
                ),
            ));
        }
        Ok(out)
    }

    /// Renders a template to a JSON value: a template that is exactly one `{{ expression }}`
    /// yields the expression's value with its type (a list stays a list); any other template
    /// yields the rendered string. A string without template syntax is returned as it is.
    pub fn render(&self, name: &str, template: &str, ctx: &Context) -> Result<Json, ExprError> {
        if !is_template(template) {
            return Ok(Json::String(template.to_owned()));
        }
        if let Some((expr, offset)) = single_expression(template) {
            // `{{ x }}` where x does not parse as an expression falls back to the template
            // path so the error points into the template.
            if self.env.compile_expression(expr).is_ok() {
                return self.eval_at(name, expr, offset, template, ctx);
            }
        }
        self.render_string(name, template, ctx).map(Json::String)
    }

    /// Renders every string inside a JSON value (objects and arrays are walked; the name is
    /// extended with `.key` and `[index]`). Non-string scalars are kept.
    pub fn render_json(&self, name: &str, value: &Json, ctx: &Context) -> Result<Json, ExprError> {
        let mut errors = Vec::new();
        let out = self.render_json_inner(name, value, ctx, &mut errors);
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Like [`Sandbox::render_json`], but keeps going and returns every error.
    pub fn render_json_all(
        &self,
        name: &str,
        value: &Json,
        ctx: &Context,
    ) -> Result<Json, Vec<ExprError>> {
        let mut errors = Vec::new();
        let out = self.render_json_inner(name, value, ctx, &mut errors);
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    fn render_json_inner(
        &self,
        name: &str,
        value: &Json,
        ctx: &Context,
        errors: &mut Vec<ExprError>,
    ) -> Json {
        match value {
            Json::String(s) => match self.render(name, s, ctx) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(e);
                    Json::Null
                }
            },
            Json::Array(items) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.render_json_inner(&format!("{name}[{i}]"), v, ctx, errors))
                    .collect(),
            ),
            Json::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            self.render_json_inner(&format!("{name}.{k}"), v, ctx, errors),
                        )
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Evaluates an expression to a JSON value.
    pub fn eval(&self, name: &str, expr: &str, ctx: &Context) -> Result<Json, ExprError> {
        self.eval_at(name, expr, 0, expr, ctx)
    }

    fn eval_at(
        &self,
        name: &str,
        expr: &str,
        offset: usize,
        full_source: &str,
        ctx: &Context,
    ) -> Result<Json, ExprError> {
        self.check_len(name, full_source)?;
        let compiled = self
            .env
            .compile_expression(expr)
            .map_err(|e| convert_error_in(name, full_source, expr, offset, &e))?;
        let value = compiled
            .eval(ctx.0.clone())
            .map_err(|e| convert_error_in(name, full_source, expr, offset, &e))?;
        if value.is_undefined() {
            let lead = expr.len() - expr.trim_start().len();
            return Err(ExprError::new(
                name,
                ExprErrorKind::Undefined,
                format!("undefined value: `{}`", expr.trim()),
            )
            .at(full_source, offset + lead));
        }
        let json = serde_json::to_value(&value)
            .map_err(|e| ExprError::new(name, ExprErrorKind::Eval, e.to_string()))?;
        let size = approx_json_size(&json, self.limits.max_json_bytes + 1);
        if size > self.limits.max_json_bytes {
            return Err(ExprError::new(
                name,
                ExprErrorKind::Limit,
                format!(
                    "value is larger than the limit of {} bytes",
                    self.limits.max_json_bytes
                ),
            ));
        }
        Ok(json)
    }

    /// Evaluates a condition. The result must be a boolean (`none` and other types are errors,
    /// so a typo cannot silently read as false).
    pub fn eval_bool(&self, name: &str, expr: &str, ctx: &Context) -> Result<bool, ExprError> {
        let source = expr.trim();
        // Accept `{{ cond }}` as well as a bare expression.
        let (inner, offset) = match single_expression(source) {
            Some(x) => x,
            None => (source, 0),
        };
        match self.eval_at(name, inner, offset, source, ctx)? {
            Json::Bool(b) => Ok(b),
            other => Err(ExprError::new(
                name,
                ExprErrorKind::Eval,
                format!("condition must be true or false, got {}", json_type(&other)),
            )),
        }
    }
}

/// The JSON type name of a value.
pub fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn approx_json_size(v: &Json, stop_at: usize) -> usize {
    fn walk(v: &Json, acc: &mut usize, stop_at: usize) {
        if *acc > stop_at {
            return;
        }
        match v {
            Json::Null | Json::Bool(_) => *acc += 5,
            Json::Number(_) => *acc += 8,
            Json::String(s) => *acc += s.len() + 2,
            Json::Array(a) => {
                *acc += 2;
                for x in a {
                    walk(x, acc, stop_at);
                    *acc += 1;
                }
            }
            Json::Object(m) => {
                *acc += 2;
                for (k, x) in m {
                    *acc += k.len() + 4;
                    walk(x, acc, stop_at);
                }
            }
        }
    }
    let mut acc = 0;
    walk(v, &mut acc, stop_at);
    acc
}

fn kind_of(e: &minijinja::Error) -> ExprErrorKind {
    match e.kind() {
        ErrorKind::SyntaxError => ExprErrorKind::Syntax,
        ErrorKind::UndefinedError
        | ErrorKind::UnknownFilter
        | ErrorKind::UnknownTest
        | ErrorKind::UnknownFunction
        | ErrorKind::UnknownMethod => ExprErrorKind::Undefined,
        ErrorKind::OutOfFuel => ExprErrorKind::OutOfFuel,
        ErrorKind::InvalidOperation => {
            if e.detail().is_some_and(|d| d.contains("recursion")) {
                ExprErrorKind::Limit
            } else {
                ExprErrorKind::Eval
            }
        }
        _ => ExprErrorKind::Eval,
    }
}

fn convert_error(name: &str, source: &str, offset: usize, e: &minijinja::Error) -> ExprError {
    convert_error_in(name, source, source, offset, e)
}

/// `part` is the text that minijinja saw, found at `offset` in `full` (the text the user wrote).
fn convert_error_in(
    name: &str,
    full: &str,
    part: &str,
    offset: usize,
    e: &minijinja::Error,
) -> ExprError {
    let kind = kind_of(e);
    let mut message = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    let mut err = ExprError::new(name, kind, String::new());
    if let Some(range) = e.range() {
        if range.start <= part.len() && range.end <= part.len() && range.start <= range.end {
            if let Some(text) = part.get(range.clone()) {
                if kind == ExprErrorKind::Undefined && !text.is_empty() && text.len() <= 200 {
                    message = format!("{message} in `{text}`");
                }
            }
            let mut at = offset + range.start;
            while full[at.min(full.len())..].starts_with(char::is_whitespace) {
                at += 1;
            }
            err = err.at(full, at);
        }
    } else if let Some(line) = e.line() {
        if offset == 0 {
            err.line = Some(line);
        } else {
            let mut at = offset;
            while full[at.min(full.len())..].starts_with(char::is_whitespace) {
                at += 1;
            }
            err = err.at(full, at);
        }
    }
    err.message = message;
    err
}

// ---------------------------------------------------------------------------------------------
// JSON queries (jaq)

/// Identifiers a query may not use: unbounded generators and anything that reads the outside.
const JQ_FORBIDDEN: &[&str] = &[
    "def",
    "range",
    "repeat",
    "while",
    "until",
    "recurse",
    "recurse_down",
    "input",
    "inputs",
    "env",
    "$ENV",
    "$__loc__",
    "halt",
    "halt_error",
    "debug",
    "stderr",
    "input_filename",
    "now",
    "import",
    "include",
];

/// A compiled jaq query.
pub struct JqQuery {
    name: String,
    filter: jaq_core::Filter<jaq_core::data::JustLut<jaq_json::Val>>,
    limits: Limits,
}

impl fmt::Debug for JqQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JqQuery").field("name", &self.name).finish()
    }
}

/// Finds a forbidden identifier outside string literals and comments; returns it and its offset.
fn forbidden_identifier(code: &str) -> Option<(&'static str, usize)> {
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'$' || c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            i += 1;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
            {
                i += 1;
            }
            let word = &code[start..i];
            // `.range` is a field access, not a call.
            let is_field = start > 0 && bytes[start - 1] == b'.';
            if !is_field {
                if let Some(f) = JQ_FORBIDDEN.iter().find(|f| **f == word) {
                    return Some((f, start));
                }
            }
            continue;
        }
        i += 1;
    }
    None
}

fn json_depth(v: &Json, limit: usize) -> usize {
    fn walk(v: &Json, depth: usize, limit: usize) -> usize {
        if depth > limit {
            return depth;
        }
        match v {
            Json::Array(a) => a
                .iter()
                .map(|x| walk(x, depth + 1, limit))
                .max()
                .unwrap_or(depth),
            Json::Object(m) => m
                .values()
                .map(|x| walk(x, depth + 1, limit))
                .max()
                .unwrap_or(depth),
            _ => depth,
        }
    }
    walk(v, 0, limit)
}

fn offset_in(code: &str, part: &str) -> usize {
    let start = code.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    if p >= start && p <= start + code.len() {
        p - start
    } else {
        0
    }
}

impl JqQuery {
    /// Compiles a query with the default limits.
    pub fn compile(name: &str, code: &str) -> Result<Self, ExprError> {
        Self::compile_with(name, code, &Limits::default())
    }

    /// Compiles a query.
    pub fn compile_with(name: &str, code: &str, limits: &Limits) -> Result<Self, ExprError> {
        use jaq_core::load::{Arena, File, Loader};
        if code.len() > limits.max_source_len {
            return Err(ExprError::new(
                name,
                ExprErrorKind::Limit,
                format!("query is longer than {} bytes", limits.max_source_len),
            ));
        }
        if let Some((word, at)) = forbidden_identifier(code) {
            return Err(ExprError::new(
                name,
                ExprErrorKind::Forbidden,
                format!("`{word}` is not allowed in a query"),
            )
            .at(code, at));
        }
        let loader = Loader::new(
            jaq_core::defs()
                .chain(jaq_std::defs())
                .chain(jaq_json::defs()),
        );
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errs| {
                let mut first: Option<ExprError> = None;
                for (_file, err) in errs {
                    let (msg, at) = match err {
                        jaq_core::load::Error::Io(v) => {
                            (v.first().map(|x| x.1.clone()).unwrap_or_default(), None)
                        }
                        jaq_core::load::Error::Lex(v) => match v.first() {
                            Some((expect, s)) => (
                                format!("expected {}", expect.as_str()),
                                Some(offset_in(code, s)),
                            ),
                            None => ("lex error".into(), None),
                        },
                        jaq_core::load::Error::Parse(v) => match v.first() {
                            Some((expect, s)) => (
                                format!("expected {}", expect.as_str()),
                                Some(offset_in(code, s)),
                            ),
                            None => ("parse error".into(), None),
                        },
                    };
                    if first.is_none() {
                        let e = ExprError::new(name, ExprErrorKind::Syntax, msg);
                        first = Some(match at {
                            Some(at) => e.at(code, at),
                            None => e,
                        });
                    }
                }
                first
                    .unwrap_or_else(|| ExprError::new(name, ExprErrorKind::Syntax, "invalid query"))
            })?;
        let filter = jaq_core::Compiler::default()
            .with_funs(
                jaq_core::funs()
                    .chain(jaq_std::funs())
                    .chain(jaq_json::funs()),
            )
            .compile(modules)
            .map_err(|errs| {
                let mut out = ExprError::new(name, ExprErrorKind::Syntax, "invalid query");
                if let Some((_file, list)) = errs.into_iter().next() {
                    if let Some((s, undefined)) = list.first() {
                        out = ExprError::new(
                            name,
                            ExprErrorKind::Undefined,
                            format!("undefined {} `{s}`", undefined.as_str()),
                        )
                        .at(code, offset_in(code, s));
                    }
                }
                out
            })?;
        Ok(JqQuery {
            name: name.to_owned(),
            filter,
            limits: *limits,
        })
    }

    /// Runs the query and returns every output.
    pub fn run(&self, input: &Json) -> Result<Vec<Json>, ExprError> {
        use jaq_core::{data, unwrap_valr, Ctx, Vars};
        let name = self.name.as_str();
        if json_depth(input, self.limits.max_json_depth) > self.limits.max_json_depth {
            return Err(ExprError::new(
                name,
                ExprErrorKind::Limit,
                format!("input nests deeper than {}", self.limits.max_json_depth),
            ));
        }
        let bytes = serde_json::to_vec(input)
            .map_err(|e| ExprError::new(name, ExprErrorKind::Eval, e.to_string()))?;
        let val = jaq_json::read::parse_single(&bytes)
            .map_err(|e| ExprError::new(name, ExprErrorKind::Eval, format!("input: {e}")))?;
        let ctx = Ctx::<data::JustLut<jaq_json::Val>>::new(&self.filter.lut, Vars::new([]));
        let mut out = Vec::new();
        let mut total = 0usize;
        for item in self.filter.id.run((ctx, val)).map(unwrap_valr) {
            let v = item.map_err(|e| ExprError::new(name, ExprErrorKind::Eval, e.to_string()))?;
            if out.len() >= self.limits.max_query_outputs {
                return Err(ExprError::new(
                    name,
                    ExprErrorKind::Limit,
                    format!(
                        "query produced more than {} values",
                        self.limits.max_query_outputs
                    ),
                ));
            }
            let text = v.to_string();
            total += text.len();
            if total > self.limits.max_json_bytes {
                return Err(ExprError::new(
                    name,
                    ExprErrorKind::Limit,
                    format!(
                        "query output is larger than {} bytes",
                        self.limits.max_json_bytes
                    ),
                ));
            }
            let json: Json = serde_json::from_str(&text).map_err(|e| {
                ExprError::new(
                    name,
                    ExprErrorKind::Eval,
                    format!("output is not JSON: {e}"),
                )
            })?;
            out.push(json);
        }
        Ok(out)
    }

    /// Runs the query: one output is returned as it is, none as `null`, several as an array.
    pub fn run_one(&self, input: &Json) -> Result<Json, ExprError> {
        let mut all = self.run(input)?;
        Ok(match all.len() {
            0 => Json::Null,
            1 => all.pop().unwrap_or(Json::Null),
            _ => Json::Array(all),
        })
    }
}

/// Compiles and runs a query with the default limits.
pub fn jq(name: &str, query: &str, input: &Json) -> Result<Vec<Json>, ExprError> {
    JqQuery::compile(name, query)?.run(input)
}
