//! Wire types of the `incidents` routes: shared by the server and the client.

use serde::{Deserialize, Serialize};

use garrison_cases::{ClockStatus, Incident, Observable, Severity, SimilarIncident, TimelineEvent};
use garrison_model::{PageLimit, TimeBound};
use garrison_store::{Attachment, LinkedAlert, StoredIncident, Task, TimelineEntry};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentView {
    /// The incident (id, title, state, severity, assignee, team, tlp, pap, tags,
    /// classification, fields, approvals, score, workflow_version and stage times).
    pub incident: Incident,
    /// Pass back as `rev` to update only if nobody changed it meanwhile.
    pub rev: i64,
    pub merged_into: Option<String>,
}

impl IncidentView {
    pub fn of(stored: &StoredIncident) -> IncidentView {
        IncidentView {
            incident: stored.incident.clone(),
            rev: stored.rev,
            merged_into: stored.merged_into.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentsPage {
    pub incidents: Vec<IncidentView>,
    /// Pass as `cursor` (with the same `order`) for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: IncidentView,
    /// Each SLA clock: due time, elapsed seconds, breached.
    pub sla: Vec<ClockStatus>,
    pub alerts: Vec<LinkedAlert>,
    pub observables: Vec<Observable>,
    pub tasks: Vec<Task>,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionResult {
    #[serde(flatten)]
    pub incident: IncidentView,
    /// The timeline entries the action added.
    pub events: Vec<TimelineEvent>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimelinePage {
    /// Oldest first: comments, state changes, playbook actions and system events.
    pub entries: Vec<TimelineEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SimilarPage {
    /// Past incidents most like this one, best first, with how they were resolved.
    pub similar: Vec<SimilarIncident>,
}

/// The order of an incident list.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IncidentOrderParam {
    /// Newest first.
    #[default]
    Newest,
    /// The queue: highest score first, then newest.
    Score,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    /// A workflow state, e.g. `new`.
    pub state: Option<String>,
    /// low, medium, high or critical.
    #[param(value_type = Option<String>)]
    pub severity: Option<garrison_cases::Severity>,
    /// The assignee's user name.
    pub assignee: Option<String>,
    /// true_positive, false_positive or benign.
    #[param(value_type = Option<String>)]
    pub classification: Option<garrison_cases::Classification>,
    pub tag: Option<String>,
    /// true: not closed; false: closed.
    pub open: Option<bool>,
    /// Created at or after this time: RFC 3339 or Unix seconds.
    #[param(value_type = Option<String>)]
    pub from: Option<TimeBound>,
    /// Created before this time.
    #[param(value_type = Option<String>)]
    pub to: Option<TimeBound>,
    /// `newest` (default) or `score` (the queue).
    #[param(inline)]
    pub order: Option<IncidentOrderParam>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<PageLimit>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    pub title: String,
    #[schema(value_type = String, example = "high")]
    pub severity: Severity,
    /// Picks the task checklist template.
    #[serde(default)]
    pub incident_type: Option<String>,
    /// Alerts of this tenant to attach; their observables are extracted.
    #[serde(default)]
    pub alert_ids: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    /// The state to move to, along one of the workflow's transitions.
    pub to: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// The comment; `@name` mentions a user.
    pub text: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TimelineParams {
    /// Entries after this position (the `next_after` of the previous page).
    pub after: Option<i64>,
    /// Page size, 1 to 1000 (default 200).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<PageLimit>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTasks {
    pub titles: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskDone {
    pub done: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// Incidents whose alerts and observables move into this one; they are marked merged.
    pub incidents: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitBody {
    /// Alerts of this incident that move to the new one.
    pub alert_ids: Vec<String>,
    pub title: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MetricsParams {
    /// Start of the period (default: 30 days before `to`): RFC 3339 or Unix seconds.
    #[param(value_type = Option<String>)]
    pub from: Option<TimeBound>,
    /// End of the period, exclusive (default: now).
    #[param(value_type = Option<String>)]
    pub to: Option<TimeBound>,
}
