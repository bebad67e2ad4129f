//! The playbook text as deserialized, before any check, and parsers of its plain fields.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;
use serde_saphyr::Spanned;

use crate::model::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTop {
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) version: Option<Json>,
    #[serde(default)]
    pub(super) inputs: Option<Spanned<Json>>,
    #[serde(default)]
    pub(super) triggers: Option<Vec<Spanned<Json>>>,
    #[serde(default)]
    pub(super) steps: Option<Vec<Spanned<Json>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInput {
    #[serde(rename = "type")]
    pub(super) ty: String,
    #[serde(default)]
    pub(super) required: Option<bool>,
    #[serde(default)]
    pub(super) default: Option<Json>,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) values: Option<Vec<String>>,
    #[serde(default)]
    pub(super) items: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    #[serde(default)]
    pub(super) max_attempts: Option<u32>,
    #[serde(default)]
    pub(super) backoff: Option<Json>,
    #[serde(default)]
    pub(super) factor: Option<u32>,
    #[serde(default)]
    pub(super) max_backoff: Option<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLease {
    #[serde(rename = "for")]
    pub(super) duration: Json,
    pub(super) target: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCondition {
    #[serde(rename = "if")]
    pub(super) condition: String,
    #[serde(default)]
    pub(super) then: Vec<String>,
    #[serde(default, rename = "else")]
    pub(super) otherwise: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCase {
    pub(super) when: String,
    pub(super) then: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBranch {
    pub(super) cases: Vec<RawCase>,
    #[serde(default)]
    pub(super) default: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForEach {
    pub(super) items: String,
    #[serde(default)]
    pub(super) concurrency: Option<usize>,
    pub(super) action: String,
    #[serde(default)]
    pub(super) with: Option<Json>,
    #[serde(default)]
    pub(super) example_output: Option<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParallel {
    pub(super) steps: Vec<String>,
    #[serde(default)]
    pub(super) join: Option<Join>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWait {
    #[serde(default, rename = "for")]
    pub(super) duration: Option<Json>,
    #[serde(default)]
    pub(super) until: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApproval {
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) approvers: Approvers,
    /// Read as JSON values: an unquoted `yes` / `no` / `on` / `off` is a boolean to YAML 1.1
    /// readers, and the error should say so with the fix, not "expected a string".
    #[serde(default)]
    pub(super) choices: Option<Vec<Json>>,
    #[serde(default)]
    pub(super) timeout: Option<Json>,
    #[serde(default)]
    pub(super) default: Option<String>,
    #[serde(default)]
    pub(super) routes: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSub {
    pub(super) name: String,
    #[serde(default)]
    pub(super) version: Option<u32>,
    #[serde(default)]
    pub(super) with: Option<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnd {
    #[serde(default)]
    pub(super) status: Option<String>,
    #[serde(default)]
    pub(super) message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub(super) id: String,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) depends_on: Vec<String>,
    #[serde(default)]
    pub(super) join: Option<Join>,
    #[serde(default)]
    pub(super) when: Option<String>,
    #[serde(default)]
    pub(super) retry: Option<RawRetry>,
    #[serde(default)]
    pub(super) timeout: Option<Json>,
    #[serde(default)]
    pub(super) on_error: Option<Json>,
    #[serde(default)]
    pub(super) action: Option<String>,
    #[serde(default)]
    pub(super) with: Option<Json>,
    #[serde(default)]
    pub(super) lease: Option<RawLease>,
    #[serde(default)]
    pub(super) example_output: Option<Json>,
    #[serde(default)]
    pub(super) condition: Option<RawCondition>,
    #[serde(default)]
    pub(super) branch: Option<RawBranch>,
    #[serde(default)]
    pub(super) for_each: Option<RawForEach>,
    #[serde(default)]
    pub(super) parallel: Option<RawParallel>,
    #[serde(default)]
    pub(super) wait: Option<RawWait>,
    #[serde(default)]
    pub(super) approval: Option<RawApproval>,
    #[serde(default)]
    pub(super) playbook: Option<RawSub>,
    #[serde(default)]
    pub(super) end: Option<RawEnd>,
}

pub(super) fn parse_duration(v: &Json) -> Result<Duration, String> {
    match v {
        Json::String(s) => s.parse(),
        Json::Number(n) => n
            .as_u64()
            .map(|secs| Duration(secs.saturating_mul(1000)))
            .ok_or_else(|| {
                format!("invalid duration `{n}`: expected whole seconds or text like `30s`")
            }),
        other => Err(format!(
            "invalid duration: expected text like `30s`, got {}",
            garrison_expr::json_type(other)
        )),
    }
}

pub(super) fn parse_type(raw: &RawInput) -> Result<InputType, String> {
    Ok(match raw.ty.as_str() {
        "string" => InputType::String,
        "int" | "integer" => InputType::Int,
        "number" => InputType::Number,
        "bool" | "boolean" => InputType::Bool,
        "ip" => InputType::Ip,
        "object" => InputType::Object,
        "any" => InputType::Any,
        "enum" => match &raw.values {
            Some(v) if !v.is_empty() => InputType::Enum { values: v.clone() },
            _ => return Err("an enum input needs a non-empty `values` list".into()),
        },
        "list" => {
            let item = RawInput {
                ty: raw.items.clone().unwrap_or_else(|| "string".into()),
                required: None,
                default: None,
                description: None,
                values: raw.values.clone(),
                items: None,
            };
            if item.ty == "list" {
                return Err("lists of lists are not supported".into());
            }
            InputType::List {
                items: Box::new(parse_type(&item)?),
            }
        }
        other => {
            return Err(format!(
                "unknown type `{other}` (expected string, int, number, bool, ip, enum, list, object, any)"
            ))
        }
    })
}

pub(super) fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 64
}

pub(super) fn clean_serde_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}
