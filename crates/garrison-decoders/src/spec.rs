//! The YAML form of a decoder, as written in `decoders/*.yml`. Unknown keys are refused so
//! a typo (`paterns:`) is an error with its place, not a decoder that silently does less.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// One decoder file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderSpec {
    /// Unique name: lower-case letters, digits, `-` and `_`.
    pub name: String,
    /// What the decoder reads, for people (`decoders list`).
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Where its sample lines come from (vendor documentation, a public corpus...).
    pub origin: String,
    /// The Sigma logsource of what it decodes; fills what the source leaves open.
    #[serde(default)]
    pub logsource: LogSourceSpec,
    /// How a line or record is recognised as this decoder's.
    #[serde(rename = "match")]
    pub recognise: MatchSpec,
    /// Alternatives tried in order on the text; the first that matches wins. Empty for a
    /// decoder of JSON records, whose fields are already there.
    #[serde(default)]
    pub parse: Vec<ExtractSpec>,
    /// Type conversions of extracted fields: `int`, `float`, `bool`, `lower`, `upper`.
    #[serde(default)]
    pub convert: BTreeMap<String, Conversion>,
    /// ECS (or other normalised) name → the extracted field (dotted into JSON) it takes, or
    /// a list of them: the first with a value wins.
    #[serde(default)]
    pub fields: BTreeMap<String, Paths>,
    /// Values to translate, per extracted field: `{action: {deny: denied, _: other}}` (`_`:
    /// every value not named), before `fields`.
    #[serde(default)]
    pub lookup: BTreeMap<String, BTreeMap<String, Value>>,
    /// Constant normalised fields every decoded event gets.
    #[serde(default)]
    pub set: Map<String, Value>,
    /// The event's own time, from an extracted field.
    #[serde(default)]
    pub time: Option<TimeSpec>,
    /// Sample inputs with what they must give; run by the test suite and `decoders test`.
    #[serde(default)]
    pub tests: Vec<TestSpec>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSourceSpec {
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
}

/// Every condition given must hold; each list holds if any of its entries does.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Syslog program (APP-NAME / TAG), case-insensitive.
    #[serde(default)]
    pub program: Vec<String>,
    /// CEF / LEEF device vendor, case-insensitive.
    #[serde(default)]
    pub vendor: Vec<String>,
    /// CEF / LEEF device product, case-insensitive.
    #[serde(default)]
    pub product: Vec<String>,
    /// The message starts with one of these.
    #[serde(default)]
    pub prefix: Vec<String>,
    /// The message contains one of these.
    #[serde(default)]
    pub contains: Vec<String>,
    /// A regular expression the message must match (searched, not anchored unless it says so).
    #[serde(default)]
    pub pattern: Option<String>,
    /// For JSON records: field path → `null` (present), a value, or a list of values.
    /// A decoder with field conditions reads records, not text.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
}

/// One way of extracting fields. Exactly one of `regex`, `grok`, `kv`, `csv`, `json`, `pairs`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractSpec {
    /// A regular expression with named groups; must match.
    #[serde(default)]
    pub regex: Option<String>,
    /// A grok pattern (`%{IP:client} %{WORD}`) over the built-in pattern library.
    #[serde(default)]
    pub grok: Option<String>,
    /// `key=value` pairs.
    #[serde(default)]
    pub kv: Option<KvSpec>,
    /// Delimited columns.
    #[serde(default)]
    pub csv: Option<CsvSpec>,
    /// The text is a JSON object.
    #[serde(default)]
    pub json: Option<JsonSpec>,
    /// A regular expression with groups `key` and `value`, applied at every match
    /// (`<Data Name="(?P<key>[^"]+)">(?P<value>[^<]*)</Data>`).
    #[serde(default)]
    pub pairs: Option<String>,
    /// Read this already extracted field instead of the message (in `then` steps).
    #[serde(default)]
    pub on: Option<String>,
    /// The alternative applies only when these extracted fields have these values.
    #[serde(default)]
    pub when: BTreeMap<String, Value>,
    /// Constant normalised fields set when this alternative matches.
    #[serde(default)]
    pub set: Map<String, Value>,
    /// Further extractions on extracted fields, applied in order when this one matched.
    #[serde(default)]
    pub then: Vec<ExtractSpec>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvSpec {
    /// Between pairs (default: a space).
    #[serde(default = "space")]
    pub separator: String,
    /// Between a key and its value (default `=`).
    #[serde(default = "equals")]
    pub assign: String,
    /// Characters that quote a value (default `"`).
    #[serde(default = "double_quote")]
    pub quotes: String,
    /// A prefix to put before every key (`fgt.`), to keep vendor names apart.
    #[serde(default)]
    pub key_prefix: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSpec {
    /// Between columns (default `,`); one character.
    #[serde(default = "comma")]
    pub separator: String,
    /// Names of the columns in order; `-` or an empty name skips a column.
    pub columns: Vec<String>,
    /// The quote character (default `"`).
    #[serde(default = "double_quote")]
    pub quote: String,
    /// Whether a line with fewer columns than named still matches (default: yes).
    #[serde(default = "yes")]
    pub allow_short: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSpec {
    /// Only the text from the first `{` on is JSON (a program's own prefix before it).
    #[serde(default)]
    pub from_brace: bool,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Conversion {
    Int,
    Float,
    Bool,
    Lower,
    Upper,
    String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSpec {
    /// The extracted field (or record path) holding the time.
    pub field: String,
    /// `auto` (ISO 8601, RFC 2822, epoch seconds or milliseconds), `unix`, `unix_ms`, or a
    /// strftime format (`%d/%b/%Y:%H:%M:%S %z`). A format without a zone reads UTC.
    #[serde(default = "auto")]
    pub format: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// A line as the device sends it (a full syslog line, or the message alone).
    #[serde(default)]
    pub line: Option<String>,
    /// A JSON record, for decoders of records.
    #[serde(default)]
    pub record: Option<Value>,
    /// Normalised fields the result must have, with these values (`null`: must be absent).
    #[serde(default)]
    pub expect: Map<String, Value>,
    /// Where the sample comes from, when not the decoder's `origin`.
    #[serde(default)]
    pub origin: Option<String>,
}

fn space() -> String {
    " ".into()
}
fn equals() -> String {
    "=".into()
}
fn double_quote() -> String {
    "\"".into()
}
fn comma() -> String {
    ",".into()
}
fn auto() -> String {
    "auto".into()
}
fn yes() -> bool {
    true
}

/// One path or several, tried in order.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Paths {
    One(String),
    Many(Vec<String>),
}

impl Paths {
    pub fn paths(&self) -> &[String] {
        match self {
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(list) => list,
        }
    }
}
