//! Public data types: rule metadata, errors, load options, matches.

use crate::pipeline::Pipeline;
use std::collections::HashMap;

/// A rule file to load: where it came from (for error reports) and its text.
#[derive(Clone, Debug)]
pub struct RuleSource {
    pub path: String,
    pub text: String,
}

impl RuleSource {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        RuleSource {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// How rules are compiled.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Values for `%name%` placeholders used with the `expand` modifier (name without `%`).
    /// A rule with a placeholder that is not here fails to compile.
    pub placeholders: HashMap<String, Vec<String>>,
    /// Processing pipelines: logsource → event conditions and field mappings. Defaults to the
    /// shipped Windows pipeline. Later pipelines win over earlier ones for the same logsource.
    pub pipelines: Vec<Pipeline>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            placeholders: HashMap::new(),
            pipelines: vec![Pipeline::windows()],
        }
    }
}

/// Sigma `logsource`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LogSource {
    pub product: Option<String>,
    pub category: Option<String>,
    pub service: Option<String>,
    pub definition: Option<String>,
}

/// Sigma `level`: the one level type of Garrison, defined in `garrison-model`.
pub use garrison_model::{Level, UnknownLevel};

/// What kind of Sigma document a rule is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    Detection,
    Correlation,
}

/// A Sigma filter (a tuning document that narrows the rules it names) that loaded cleanly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterMeta {
    pub title: String,
    pub id: Option<String>,
    pub path: String,
    pub line: usize,
    /// The rules (ids or names) it applies to.
    pub rules: Vec<String>,
}

/// Metadata of a loaded rule.
#[derive(Clone, Debug)]
pub struct RuleMeta {
    pub id: Option<String>,
    pub name: Option<String>,
    pub title: String,
    pub status: Option<String>,
    pub level: Option<Level>,
    pub description: Option<String>,
    pub author: Option<String>,
    pub date: Option<String>,
    pub modified: Option<String>,
    pub references: Vec<String>,
    pub falsepositives: Vec<String>,
    pub tags: Vec<String>,
    pub fields: Vec<String>,
    pub logsource: LogSource,
    pub kind: RuleKind,
    /// False for a detection rule that only feeds correlation rules (`generate: false`, the default):
    /// its matches should not be alerted on by themselves.
    pub generate: bool,
    /// File the rule came from and the line its document starts on.
    pub path: String,
    pub line: usize,
}

/// A rule (or filter) that could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}{}: {}{reason}", line.map(|l| format!(":{l}")).unwrap_or_default(), rule.as_ref().map(|r| format!("rule {r}: ")).unwrap_or_default())]
pub struct RuleError {
    pub path: String,
    pub line: Option<usize>,
    /// The rule's id, or else its title, when known.
    pub rule: Option<String>,
    pub reason: String,
}

/// One rule that matched an event.
#[derive(Clone, Debug)]
pub struct Match<'a> {
    pub rule: &'a RuleMeta,
    /// Index of the rule in [`crate::RuleSet::rules`].
    pub rule_index: usize,
    /// The Sigma fields and event values that made it match (field is empty for keywords).
    pub matched: Vec<(String, String)>,
}
