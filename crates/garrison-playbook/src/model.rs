//! The compiled playbook: what [`crate::validate`] produces from YAML or JSON text, and what the
//! executor walks. Raw serde shapes live in `validate.rs`; these types are already checked.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// A duration written as `30s`, `5m`, `24h`, `1d`, `1h30m`, `250ms` (kept in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(
        description = "A duration in milliseconds (written `30s`, `5m`, `1h30m` in a playbook's text)."
    )
)]
pub struct Duration(pub u64);

impl Duration {
    /// Milliseconds.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// As a jiff duration for timestamp arithmetic.
    pub fn to_signed(self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_millis(i64::try_from(self.0).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms.is_multiple_of(86_400_000) && ms > 0 {
            write!(f, "{}d", ms / 86_400_000)
        } else if ms.is_multiple_of(3_600_000) && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let s = text.trim();
        if s.is_empty() {
            return Err("empty duration".into());
        }
        let mut total: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!(
                    "invalid duration `{text}`: expected a number then a unit (ms, s, m, h, d, w), e.g. `30s`, `24h`, `1h30m`"
                ));
            }
            let number: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("invalid duration `{text}`: number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = rest[..unit_len].trim();
            rest = rest[unit_len..].trim_start();
            let factor: u64 = match unit {
                "ms" | "millisecond" | "milliseconds" => 1,
                "s" | "sec" | "secs" | "second" | "seconds" => 1000,
                "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
                "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
                "d" | "day" | "days" => 86_400_000,
                "w" | "week" | "weeks" => 7 * 86_400_000,
                "" => {
                    return Err(format!(
                        "invalid duration `{text}`: missing unit (ms, s, m, h, d, w)"
                    ))
                }
                other => {
                    return Err(format!(
                        "invalid duration `{text}`: unknown unit `{other}` (expected ms, s, m, h, d, w)"
                    ))
                }
            };
            total = number
                .checked_mul(factor)
                .and_then(|x| total.checked_add(x))
                .ok_or_else(|| format!("invalid duration `{text}`: too large"))?;
        }
        // Past ~100 years a duration is a typo.
        if total > 100 * 365 * 86_400_000 {
            return Err(format!("invalid duration `{text}`: longer than 100 years"));
        }
        Ok(Duration(total))
    }
}

/// The type of a playbook input or an action parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum InputType {
    /// Any string.
    String,
    /// An integer.
    Int,
    /// A number (integer or float).
    Number,
    /// `true` or `false`.
    Bool,
    /// An IPv4 or IPv6 address (a CIDR is accepted when `cidr` is set).
    Ip,
    /// One of the listed strings.
    Enum {
        /// Allowed values.
        values: Vec<String>,
    },
    /// A list of items of one type.
    List {
        /// The items' type.
        #[cfg_attr(feature = "openapi", schema(no_recursion))]
        items: Box<InputType>,
    },
    /// A JSON object.
    Object,
    /// Any JSON value.
    Any,
}

impl InputType {
    /// A short name for messages.
    pub fn describe(&self) -> String {
        match self {
            InputType::String => "string".into(),
            InputType::Int => "int".into(),
            InputType::Number => "number".into(),
            InputType::Bool => "bool".into(),
            InputType::Ip => "ip".into(),
            InputType::Enum { values } => format!("one of [{}]", values.join(", ")),
            InputType::List { items } => format!("list of {}", items.describe()),
            InputType::Object => "object".into(),
            InputType::Any => "any".into(),
        }
    }

    /// Checks a JSON value against the type; the message says what was expected.
    pub fn check(&self, value: &Json) -> Result<(), String> {
        let ok = match (self, value) {
            (InputType::Any, _) => true,
            (InputType::String, Json::String(_)) => true,
            (InputType::Int, Json::Number(n)) => n.is_i64() || n.is_u64(),
            (InputType::Number, Json::Number(_)) => true,
            (InputType::Bool, Json::Bool(_)) => true,
            (InputType::Object, Json::Object(_)) => true,
            (InputType::Ip, Json::String(s)) => {
                if s.parse::<std::net::IpAddr>().is_ok() {
                    true
                } else {
                    return Err(format!("expected an IP address, got `{s}`"));
                }
            }
            (InputType::Enum { values }, Json::String(s)) => {
                if values.iter().any(|v| v == s) {
                    true
                } else {
                    return Err(format!(
                        "expected one of [{}], got `{s}`",
                        values.join(", ")
                    ));
                }
            }
            (InputType::List { items }, Json::Array(list)) => {
                for (i, item) in list.iter().enumerate() {
                    items.check(item).map_err(|e| format!("item {i}: {e}"))?;
                }
                true
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "expected {}, got {}",
                self.describe(),
                garrison_expr::json_type(value)
            ))
        }
    }
}

/// A declared playbook input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InputDef {
    /// Name (`inputs.NAME` in templates).
    pub name: String,
    /// Type.
    #[serde(flatten)]
    pub ty: InputType,
    /// Must the caller give it (when there is no default)?
    pub required: bool,
    /// Value when the caller gives none.
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub default: Option<Json>,
    /// Text for the manual-run form.
    pub description: Option<String>,
}

/// When a playbook starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Trigger {
    /// An alert is created; when `condition` is set, only alerts for which it is true.
    Alert {
        /// Expression over `alert`.
        condition: Option<String>,
        /// Inputs taken from the payload: input name → template (see [`crate::payload`]).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        inputs: BTreeMap<String, String>,
    },
    /// An incident moves to a workflow state.
    IncidentState {
        /// Target state (any when unset).
        to: Option<String>,
        /// Previous state (any when unset).
        from: Option<String>,
        /// Inputs taken from the payload: input name → template (see [`crate::payload`]).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        inputs: BTreeMap<String, String>,
    },
    /// An SLA clock is breached.
    SlaBreach {
        /// SLA stage name (any when unset).
        stage: Option<String>,
        /// Inputs taken from the payload: input name → template (see [`crate::payload`]).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        inputs: BTreeMap<String, String>,
    },
    /// A cron schedule in a time zone.
    Schedule {
        /// Cron pattern (5 or 6 fields).
        cron: String,
        /// IANA time zone, e.g. `Europe/Paris` (UTC when unset).
        timezone: String,
        /// Inputs taken from the payload: input name → template (see [`crate::payload`]).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        inputs: BTreeMap<String, String>,
    },
    /// An HTTP webhook; the request must carry the secret named here.
    Webhook {
        /// Name of the secret (kept encrypted elsewhere) that callers must present.
        secret: String,
        /// Inputs taken from the payload: input name → template (see [`crate::payload`]).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        inputs: BTreeMap<String, String>,
    },
    /// Started by hand from a form derived from the typed inputs.
    Manual,
}

impl Trigger {
    /// The kind, as written in a playbook (`alert`, `incident_state`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Alert { .. } => "alert",
            Trigger::IncidentState { .. } => "incident_state",
            Trigger::SlaBreach { .. } => "sla_breach",
            Trigger::Schedule { .. } => "schedule",
            Trigger::Webhook { .. } => "webhook",
            Trigger::Manual => "manual",
        }
    }

    /// The explicit input mapping (empty: the default mapping only).
    pub fn input_mapping(&self) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        match self {
            Trigger::Alert { inputs, .. }
            | Trigger::IncidentState { inputs, .. }
            | Trigger::SlaBreach { inputs, .. }
            | Trigger::Schedule { inputs, .. }
            | Trigger::Webhook { inputs, .. } => inputs,
            Trigger::Manual => &NONE,
        }
    }

    /// The next time a schedule trigger fires strictly after `after` (None for other kinds or a
    /// pattern that never fires).
    pub fn next_fire(&self, after: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let Trigger::Schedule { cron, timezone, .. } = self else {
            return None;
        };
        let cron: croner::Cron = cron.parse().ok()?;
        let tz = jiff::tz::TimeZone::get(timezone).ok()?;
        let zoned = after.to_zoned(tz);
        cron.find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }
}

/// How a step waits for the steps it depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Join {
    /// Every dependency must have completed (a skipped or failed one skips this step).
    #[default]
    All,
    /// The first completed dependency starts this step.
    Any,
}

/// What happens when a step fails after its retries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The run fails (the default).
    #[default]
    Fail,
    /// The step counts as completed (output `null`, `error` set) and the run goes on.
    Continue,
    /// The named step runs instead of the steps that depend on this one.
    Goto(String),
}

/// Retries of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub backoff: Duration,
    /// Multiplier for each later delay.
    pub factor: u32,
    /// Cap on one delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Duration(1000),
            factor: 2,
            max_backoff: Duration(3_600_000),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let mut d = self.backoff.0;
        for _ in 1..attempt {
            d = d.saturating_mul(u64::from(self.factor.max(1)));
            if d >= self.max_backoff.0 {
                break;
            }
        }
        Duration(d.min(self.max_backoff.0))
    }
}

/// A reversible action held for a while.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseSpec {
    /// How long until the undo.
    pub duration: Duration,
    /// Template naming what was acted on (e.g. `{{ inputs.ip }}`).
    pub target: String,
    /// The undo action (from the action's declaration).
    pub undo: String,
    /// The action that re-checks the target (from the action's declaration), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub check: Option<String>,
}

/// Who may decide an approval.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approvers {
    /// Roles (any user with one of them).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub roles: Vec<String>,
    /// Users by name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub users: Vec<String>,
}

/// How a step ends a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Not started yet.
    Pending,
    /// Started, not finished.
    Running,
    /// Finished well.
    Succeeded,
    /// Finished with a failure.
    Failed,
    /// Stopped by someone.
    Cancelled,
}

impl RunStatus {
    /// Finished one way or another.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// An action call: a connector action or a built-in `core.*` one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionCall {
    /// Action name (`core.http`, `fw.block_ip`).
    pub action: String,
    /// Input, with templates in its strings.
    pub with: Json,
    /// Output used by dry runs (the step's own, else the action's declared example).
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub example_output: Option<Json>,
    /// Held as a lease and undone later.
    pub lease: Option<LeaseSpec>,
}

/// One case of a branch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BranchCase {
    /// Condition.
    pub when: String,
    /// Steps to run when it is the first true case.
    pub then: Vec<String>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StepKind {
    /// Calls an action.
    Action(ActionCall),
    /// Runs `then` or `else` by a condition.
    Condition {
        /// Condition.
        #[serde(rename = "if")]
        condition: String,
        /// Steps when true.
        then: Vec<String>,
        /// Steps when false.
        #[serde(rename = "else")]
        otherwise: Vec<String>,
    },
    /// Runs the steps of the first true case, else `default`.
    Branch {
        /// Cases in order.
        cases: Vec<BranchCase>,
        /// Steps when no case is true.
        default: Vec<String>,
    },
    /// Calls an action once per item, at most `concurrency` at a time.
    ForEach {
        /// Template yielding a list.
        items: String,
        /// Items in flight at once.
        concurrency: usize,
        /// The call (with `item` and `index` in its templates).
        call: ActionCall,
    },
    /// Starts its member steps together and completes when all (or any) complete.
    Parallel {
        /// Member steps.
        steps: Vec<String>,
        /// All or the first.
        join: Join,
    },
    /// Waits for a duration or until a time.
    Wait(WaitSpec),
    /// Asks people to choose.
    Approval {
        /// Message (template).
        message: String,
        /// Who may decide.
        approvers: Approvers,
        /// Possible choices.
        choices: Vec<String>,
        /// How long to wait for a decision.
        timeout: Option<Duration>,
        /// Choice taken at timeout.
        default: Option<String>,
        /// Steps to run per choice.
        routes: BTreeMap<String, Vec<String>>,
    },
    /// Runs another playbook as a child run.
    SubPlaybook {
        /// Playbook name.
        playbook: String,
        /// Pinned version (latest at start when unset).
        version: Option<u32>,
        /// Inputs (templates).
        with: Json,
    },
    /// Ends the run with a status.
    End {
        /// Status of the run.
        status: RunStatus,
        /// Message (template).
        message: Option<String>,
    },
}

/// How long a wait step waits.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WaitSpec {
    /// A duration.
    For(Duration),
    /// Until a time (template yielding RFC 3339).
    Until(String),
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Step {
    /// Id (`steps.ID` in templates).
    pub id: String,
    /// What it does.
    pub kind: StepKind,
    /// Steps that must be settled first.
    pub depends_on: Vec<String>,
    /// How dependencies combine.
    pub join: Join,
    /// Guard: the step is skipped when false.
    pub when: Option<String>,
    /// Retries.
    pub retry: RetryPolicy,
    /// Per-attempt timeout.
    pub timeout: Option<Duration>,
    /// What a failure does.
    pub on_error: OnError,
    /// Line of the step in the source (1-based; 0 when unknown).
    pub line: u64,
}

/// A validated playbook with its graph resolved to indices.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Playbook {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Typed inputs.
    pub inputs: Vec<InputDef>,
    /// Triggers.
    pub triggers: Vec<Trigger>,
    /// Steps in source order.
    pub steps: Vec<Step>,
    #[serde(skip)]
    pub(crate) graph: Graph,
}

/// Indices derived from the steps.
#[derive(Debug, Clone, Default)]
pub(crate) struct Graph {
    pub index: HashMap<String, usize>,
    /// Explicit `depends_on`.
    pub deps: Vec<Vec<usize>>,
    /// Steps that can route to this one (condition/branch/approval targets, on_error goto).
    pub routers: Vec<Vec<usize>>,
    /// The parallel step a step belongs to.
    pub parent: Vec<Option<usize>>,
}

impl Playbook {
    /// Index of a step by id.
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.graph.index.get(id).copied()
    }

    /// A step by id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.step_index(id).map(|i| &self.steps[i])
    }

    /// The form for a manual run: a JSON Schema object derived from the typed inputs.
    pub fn input_form(&self) -> Json {
        fn schema(ty: &InputType) -> Json {
            match ty {
                InputType::String => serde_json::json!({"type": "string"}),
                InputType::Int => serde_json::json!({"type": "integer"}),
                InputType::Number => serde_json::json!({"type": "number"}),
                InputType::Bool => serde_json::json!({"type": "boolean"}),
                InputType::Ip => serde_json::json!({"type": "string", "format": "ip"}),
                InputType::Enum { values } => serde_json::json!({"type": "string", "enum": values}),
                InputType::List { items } => {
                    serde_json::json!({"type": "array", "items": schema(items)})
                }
                InputType::Object => serde_json::json!({"type": "object"}),
                InputType::Any => serde_json::json!({}),
            }
        }
        let mut properties = serde_json::Map::new();
        let mut required = Vec::new();
        for input in &self.inputs {
            let mut s = schema(&input.ty);
            if let Json::Object(m) = &mut s {
                if let Some(d) = &input.description {
                    m.insert("description".into(), Json::String(d.clone()));
                }
                if let Some(d) = &input.default {
                    m.insert("default".into(), d.clone());
                }
            }
            if input.required && input.default.is_none() {
                required.push(Json::String(input.name.clone()));
            }
            properties.insert(input.name.clone(), s);
        }
        serde_json::json!({
            "title": self.name,
            "type": "object",
            "properties": properties,
            "required": required,
        })
    }

    /// Checks the caller's inputs against the declared types, applies defaults and returns the
    /// `inputs` object for a run; every problem is reported.
    pub fn resolve_inputs(&self, given: &Json) -> Result<Json, Vec<String>> {
        self.resolve_inputs_inner(given)
    }

    /// The inputs of a run started by `trigger` with `payload` (see [`crate::payload`]),
    /// checked against the declared ones.
    pub fn trigger_inputs(&self, trigger: &Trigger, payload: &Json) -> Result<Json, Vec<String>> {
        let declared: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
        let mapped = crate::payload::map_inputs(&declared, trigger.input_mapping(), payload)?;
        self.resolve_inputs(&mapped)
    }

    fn resolve_inputs_inner(&self, given: &Json) -> Result<Json, Vec<String>> {
        let empty = serde_json::Map::new();
        let given_map = match given {
            Json::Object(m) => m,
            Json::Null => &empty,
            other => {
                return Err(vec![format!(
                    "inputs must be an object, got {}",
                    garrison_expr::json_type(other)
                )])
            }
        };
        let mut errors = Vec::new();
        let mut out = serde_json::Map::new();
        for (key, _) in given_map {
            if !self.inputs.iter().any(|i| &i.name == key) {
                errors.push(format!("inputs.{key}: not a declared input"));
            }
        }
        for input in &self.inputs {
            match given_map.get(&input.name) {
                Some(v) => match input.ty.check(v) {
                    Ok(()) => {
                        out.insert(input.name.clone(), v.clone());
                    }
                    Err(e) => errors.push(format!("inputs.{}: {e}", input.name)),
                },
                None => match &input.default {
                    Some(d) => {
                        out.insert(input.name.clone(), d.clone());
                    }
                    None if input.required => {
                        errors.push(format!("inputs.{}: required", input.name))
                    }
                    None => {
                        out.insert(input.name.clone(), Json::Null);
                    }
                },
            }
        }
        if errors.is_empty() {
            Ok(Json::Object(out))
        } else {
            Err(errors)
        }
    }
}
