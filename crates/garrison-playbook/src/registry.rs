//! Declared actions: names, typed parameters, undo actions and example outputs. Validation
//! checks every `action:` against this registry; dry runs take the example outputs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::model::InputType;

/// One parameter of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Name (a key of `with:`).
    pub name: String,
    /// Type (checked for literal values; templates are checked at run time).
    #[serde(flatten)]
    pub ty: InputType,
    /// Must `with:` give it?
    #[serde(default)]
    pub required: bool,
}

/// A declared action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSpec {
    /// Name, e.g. `fw.block_ip`.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Parameters.
    #[serde(default)]
    pub params: Vec<ParamSpec>,
    /// Accept parameters that are not declared (e.g. `core.set`).
    #[serde(default)]
    pub allow_extra_params: bool,
    /// The action that reverses this one, given the same input (block ↔ unblock).
    #[serde(default)]
    pub undo: Option<String>,
    /// The action that re-checks, given the same input, whether this one still holds on its
    /// target (for reconciliation of leases); its output carries `in_place: bool`.
    #[serde(default)]
    pub check: Option<String>,
    /// Output shown by dry runs.
    #[serde(default)]
    pub example_output: Option<Json>,
}

impl ActionSpec {
    /// A spec with a name and nothing else.
    pub fn new(name: impl Into<String>) -> Self {
        ActionSpec {
            name: name.into(),
            description: String::new(),
            params: Vec::new(),
            allow_extra_params: false,
            undo: None,
            check: None,
            example_output: None,
        }
    }

    /// Adds a parameter.
    pub fn param(mut self, name: &str, ty: InputType, required: bool) -> Self {
        self.params.push(ParamSpec {
            name: name.to_owned(),
            ty,
            required,
        });
        self
    }

    /// Declares the undo action.
    pub fn undo(mut self, undo: &str) -> Self {
        self.undo = Some(undo.to_owned());
        self
    }

    /// Declares the check action (reconciliation: does the action still hold?).
    pub fn check(mut self, check: &str) -> Self {
        self.check = Some(check.to_owned());
        self
    }

    /// Declares an example output.
    pub fn example(mut self, output: Json) -> Self {
        self.example_output = Some(output);
        self
    }

    /// Accepts any parameter.
    pub fn open(mut self) -> Self {
        self.allow_extra_params = true;
        self
    }

    /// Sets the description.
    pub fn describe(mut self, text: &str) -> Self {
        self.description = text.to_owned();
        self
    }
}

/// The actions a playbook may call.
#[derive(Debug, Clone, Default)]
pub struct ActionRegistry {
    actions: BTreeMap<String, ActionSpec>,
}

impl ActionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in `core.*` actions.
    pub fn with_core() -> Self {
        let mut r = Self::new();
        for spec in core_actions() {
            r.register(spec);
        }
        r
    }

    /// Adds or replaces an action.
    pub fn register(&mut self, spec: ActionSpec) -> &mut Self {
        self.actions.insert(spec.name.clone(), spec);
        self
    }

    /// Looks an action up.
    pub fn get(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.get(name)
    }

    /// Every action, by name.
    pub fn iter(&self) -> impl Iterator<Item = &ActionSpec> {
        self.actions.values()
    }

    /// Names close to `name` (same prefix before the dot), for "did you mean" hints.
    pub fn similar(&self, name: &str) -> Vec<&str> {
        let prefix = name.split('.').next().unwrap_or(name);
        self.actions
            .keys()
            .filter(|k| k.split('.').next() == Some(prefix))
            .map(String::as_str)
            .take(5)
            .collect()
    }
}

/// The declarations of the built-in actions.
pub fn core_actions() -> Vec<ActionSpec> {
    let string_map = InputType::Object;
    vec![
        ActionSpec::new("core.http")
            .describe(
                "HTTP request; output {status, headers, body} (body parsed as JSON when it is)",
            )
            .param("url", InputType::String, true)
            .param(
                "method",
                InputType::Enum {
                    values: ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
                        .map(String::from)
                        .to_vec(),
                },
                false,
            )
            .param("headers", string_map, false)
            .param("query", InputType::Object, false)
            .param("json", InputType::Any, false)
            .param("body", InputType::String, false)
            .param("timeout", InputType::String, false)
            .param(
                "ok_status",
                InputType::List {
                    items: Box::new(InputType::Int),
                },
                false,
            )
            .example(json!({"status": 200, "headers": {}, "body": {}})),
        ActionSpec::new("core.transform")
            .describe("jaq (jq) query over `input`; output: its value (several as a list)")
            .param("query", InputType::String, true)
            .param("input", InputType::Any, true)
            .example(json!(null)),
        ActionSpec::new("core.set")
            .describe("Sets variables: the output is the input object")
            .open()
            .example(json!({})),
        ActionSpec::new("core.log")
            .describe("Writes a line to the step's log")
            .param("message", InputType::Any, true)
            .param(
                "level",
                InputType::Enum {
                    values: ["debug", "info", "warn", "error"]
                        .map(String::from)
                        .to_vec(),
                },
                false,
            )
            .example(json!({"logged": true})),
        ActionSpec::new("core.sleep")
            .describe("Waits (a stored timer, not a sleeping task)")
            .param("for", InputType::String, true)
            .example(json!({"slept": true})),
    ]
}
