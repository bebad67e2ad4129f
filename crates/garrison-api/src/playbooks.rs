//! Wire types of the `playbooks` routes: shared by the server and the client.

use serde::{Deserialize, Serialize};

use garrison_model::{PageLimit, TimeBound};
use garrison_playbook::{RunState, RunStatus, StepStatus};
use garrison_store::{PlaybookSummary, PlaybookVersion};
use serde_json::Value as Json_;
use utoipa::{IntoParams, ToSchema};

/// One problem of a playbook text, with its place when it has one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlaybookProblem {
    /// Where in the playbook: `steps.enrich.with.url`, `inputs.ip.default`, `name`; absent
    /// when the problem is not in one place.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub path: Option<String>,
    /// 1-based line in the source: null when unknown; absent with `column` when the problem
    /// is not a validation error.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub line: Option<Option<u64>>,
    /// 1-based column in the source: null when unknown; absent as `line` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub column: Option<Option<u64>>,
    /// What is wrong and what was expected.
    pub message: String,
    /// The whole problem as one line, place first.
    pub text: String,
}

impl PlaybookProblem {
    /// A problem that is not in one place of the text.
    pub fn unplaced(message: String) -> Self {
        PlaybookProblem {
            path: None,
            line: None,
            column: None,
            text: message.clone(),
            message,
        }
    }
}

impl From<&garrison_playbook::ValidationError> for PlaybookProblem {
    fn from(e: &garrison_playbook::ValidationError) -> Self {
        PlaybookProblem {
            path: Some(e.path.clone()),
            line: Some(e.line),
            column: Some(e.column),
            message: e.message.clone(),
            text: e.to_string(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlaybookView {
    pub name: String,
    pub latest_version: i64,
    pub enabled: bool,
    pub created: String,
    pub updated: String,
}

impl From<PlaybookSummary> for PlaybookView {
    fn from(s: PlaybookSummary) -> Self {
        PlaybookView {
            name: s.name,
            latest_version: s.latest_version,
            enabled: s.enabled,
            created: s.created.to_string(),
            updated: s.updated.to_string(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlaybookVersionView {
    pub name: String,
    pub version: i64,
    /// The validated definition.
    #[schema(value_type = garrison_playbook::Playbook)]
    pub definition: Json_,
    /// The text as written (YAML or JSON).
    pub source: String,
    pub source_sha256: String,
    pub created: String,
    pub created_by: Option<String>,
}

/// The form of a manual run, as a JSON Schema object derived from the playbook's typed inputs
/// (what `garrison_playbook::Playbook::input_form` builds).
#[derive(Serialize, Deserialize, ToSchema)]
#[allow(dead_code)] // Describes a JSON value built elsewhere; never constructed here.
pub struct InputForm {
    /// The playbook's name.
    title: String,
    /// Always `object`.
    #[schema(rename = "type", pattern = "^object$")]
    kind: String,
    /// Input name → its JSON Schema (`type`, and `format`, `enum`, `items`, `description`,
    /// `default` as declared).
    #[schema(value_type = std::collections::BTreeMap<String, Object>)]
    properties: serde_json::Map<String, Json_>,
    /// Inputs the caller must give (required, with no default).
    required: Vec<String>,
}

impl From<PlaybookVersion> for PlaybookVersionView {
    fn from(v: PlaybookVersion) -> Self {
        PlaybookVersionView {
            name: v.name,
            version: v.version,
            definition: serde_json::from_str(&v.definition).unwrap_or(Json_::Null),
            source: v.source,
            source_sha256: v.source_hash,
            created: v.created.to_string(),
            created_by: v.created_by,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlaybookDetail {
    #[serde(flatten)]
    pub playbook: PlaybookView,
    pub latest: PlaybookVersionView,
    /// JSON Schema of the manual-run form, from the typed inputs.
    #[schema(value_type = InputForm)]
    pub input_form: Json_,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlaybookBody {
    /// The playbook as YAML or JSON text.
    pub source: Option<String>,
    /// The playbook as a JSON object (instead of `source`).
    #[schema(value_type = Object)]
    pub definition: Option<Json_>,
}

impl PlaybookBody {
    /// The playbook's text, or what is wrong with the body.
    pub fn text(self) -> Result<String, String> {
        match (self.source, self.definition) {
            (Some(s), None) => Ok(s),
            (None, Some(d)) => serde_json::to_string_pretty(&d).map_err(|e| e.to_string()),
            _ => Err(
                "send exactly one of `source` (YAML or JSON text) or `definition` (JSON)".into(),
            ),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidationReport {
    pub valid: bool,
    pub name: Option<String>,
    /// Every error with its place.
    pub errors: Vec<PlaybookProblem>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunSummary {
    pub run_id: String,
    pub playbook: String,
    pub version: i64,
    pub status: String,
    pub active: bool,
    pub created: String,
    pub updated: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StartRunBody {
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: Option<Json_>,
    pub version: Option<u32>,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApproveBody {
    pub step: String,
    pub choice: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkBody {
    pub step: String,
    /// Seconds the link stays valid (default 86400).
    pub valid_for_seconds: Option<u64>,
    /// The user the link is for: required when the approval names its approvers, and then one
    /// of them (by name or role). The decision made through the link is recorded as theirs.
    #[serde(default)]
    pub approver: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkView {
    /// Open (GET) to see the approval, POST `{"choice": ...}` to decide; works once.
    pub path: String,
    pub expires: String,
    /// The user it was issued to, when the approval names its approvers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChoiceBody {
    pub choice: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExtendBody {
    /// New end (RFC 3339), or...
    pub until: Option<String>,
    /// ...a duration from now (`2h`, `30m`).
    pub r#for: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportBody {
    /// Playbook texts (YAML or JSON), e.g. the files of a folder.
    pub sources: Vec<String>,
    /// What each source is called (its file), in the same order: errors name it.
    #[serde(default)]
    pub paths: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretBody {
    pub secret: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContainmentView {
    pub lease_id: String,
    pub run_id: String,
    pub playbook: String,
    pub step: String,
    pub action: String,
    pub undo_action: String,
    /// What it was done to: the lease's rendered `target` (usually a string).
    pub target: Json_,
    pub status: String,
    pub acquired_at: String,
    pub expires_at: String,
    /// The action that re-checks the target (none: the lease is never reconciled).
    pub check_action: Option<String>,
    /// When the target was last checked.
    pub last_checked: Option<String>,
    /// What the last check found: the action still holds (true), not (false), or unknown
    /// (null: never checked, or the check failed).
    pub in_place: Option<bool>,
    /// What the last check saw, or why it failed.
    pub check_detail: Option<String>,
    /// The last conclusive check found the target not in place.
    pub drift: bool,
    /// Since when.
    pub drift_since: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncFile {
    /// Where the text comes from (a file's path), echoed in the answer.
    pub path: String,
    /// The playbook as YAML or JSON text.
    pub source: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncBody {
    pub files: Vec<SyncFile>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncFileResult {
    pub path: String,
    /// `created`, `updated`, `unchanged` or `error`.
    pub status: String,
    pub name: Option<String>,
    pub version: Option<i64>,
    /// Every error with its place (`line`, `column`, `path`, `message`, `text`).
    pub errors: Vec<PlaybookProblem>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncReport {
    pub files: Vec<SyncFileResult>,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub failed: usize,
}

#[derive(Debug, Serialize, Deserialize, Default, ToSchema)]
pub struct ReplayBody {
    /// The version to replay against (latest when absent).
    pub version: Option<u32>,
    /// Answer steps that match the past run's succeeded steps with their recorded outputs
    /// (default true); false: every action answers with its example output.
    pub recorded_outputs: Option<bool>,
}

/// A run with its stored revision.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunState,
    /// The stored revision of the run: it changes with every write.
    pub rev: i64,
}

/// A run whose cancellation is stored and applied when its action call returns.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CancelRequested {
    #[serde(flatten)]
    pub run: RunState,
    /// Always true.
    pub cancel_requested: bool,
}

/// A run and where it stands.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunRef {
    pub run_id: String,
    pub status: RunStatus,
}

impl From<RunState> for RunRef {
    fn from(run: RunState) -> Self {
        RunRef {
            run_id: run.run_id,
            status: run.status,
        }
    }
}

/// What a single-use approval link decides.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalLinkView {
    pub run_id: String,
    pub playbook: String,
    /// The approval step.
    pub step: String,
    /// The approval's rendered message.
    pub message: String,
    /// The choices; POST one of them to the link.
    pub choices: Vec<String>,
    /// When the link stops working (RFC 3339).
    pub expires: String,
}

/// One step of a replay.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayStep {
    pub id: String,
    pub status: StepStatus,
    /// Answered with the past run's recorded output (or decision) instead of an example.
    pub recorded: bool,
    /// The rendered input (null when the step did not start).
    #[schema(nullable = false)]
    pub input: Option<Json_>,
    /// The output (null when there is none).
    #[schema(nullable = false)]
    pub output: Option<Json_>,
    pub error: Option<String>,
}

/// A past run replayed against a playbook version, simulated, beside the run's own path.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplayView {
    /// The past run.
    pub run_id: String,
    pub playbook: String,
    /// The version the past run ran.
    pub original_version: u32,
    /// The version replayed.
    pub version: u32,
    /// How the simulated run ended.
    pub status: RunStatus,
    pub error: Option<String>,
    /// Steps the simulated run took, in the playbook's order.
    pub path: Vec<String>,
    /// Steps the past run took.
    pub original_path: Vec<String>,
    /// In `path`, not in `original_path`.
    pub added_to_path: Vec<String>,
    /// In `original_path`, not in `path`.
    pub removed_from_path: Vec<String>,
    pub steps: Vec<ReplayStep>,
    /// Past inputs the replayed version does not declare (left out).
    pub ignored_inputs: Vec<String>,
    /// Steps answered with the past run's recorded outputs.
    pub recorded_steps: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffParams {
    /// Older version.
    pub from: i64,
    /// Newer version (latest when absent).
    pub to: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// Version (latest when absent).
    pub version: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunListParams {
    pub playbook: Option<String>,
    /// pending, running, succeeded, failed, cancelled.
    pub status: Option<String>,
    /// Only runs not finished or holding leases (true), or the others (false).
    pub active: Option<bool>,
    /// Runs created before this time (RFC 3339 or Unix seconds): the next page after a run's
    /// `created`.
    #[param(value_type = Option<String>)]
    pub before: Option<TimeBound>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<PageLimit>,
}
