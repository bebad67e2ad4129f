//! Incidents and the one function that changes them, [`apply`].
//!
//! An incident moves only through [`apply`], which checks the workflow (transitions, roles,
//! required fields, review) and returns the new incident with the timeline entries that record
//! the change. It never mutates its input, so a refused action leaves nothing half done.

use std::collections::{BTreeMap, BTreeSet};

use garrison_model::{Role, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::workflow::{Stage, Workflow};
use crate::{Classification, Pap, Severity, Tlp};

/// Longest comment, reason or title accepted.
const MAX_TEXT: usize = 64 * 1024;
/// Most tags on one incident.
const MAX_TAGS: usize = 64;

/// An incident: the case an analyst works, grouping one or more alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Incident {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub summary: Option<String>,
    /// Picks the task checklist template (`phishing`, `malware`, ...).
    #[serde(default)]
    pub incident_type: Option<String>,
    pub state: String,
    pub severity: Severity,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub tlp: Tlp,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub pap: Pap,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub tags: BTreeSet<String>,
    #[serde(default)]
    pub classification: Option<Classification>,
    /// Custom fields, by name; a workflow state may require them.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub fields: BTreeMap<String, Json>,
    /// Users who approved in the current review round.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub approvals: BTreeSet<String>,
    /// Queue order: the highest score of its alerts.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub score: u32,
    pub workflow_version: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created: Timestamp,
    /// When it first left the acknowledge stage.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub acknowledged: Option<Timestamp>,
    /// When it first entered the disposal stage (analysis done).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub analysed: Option<Timestamp>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub closed: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub updated: Timestamp,
}

impl Incident {
    /// A new incident in the workflow's initial state, with its `created` timeline entry.
    pub fn open(
        workflow: &Workflow,
        id: impl Into<String>,
        title: impl Into<String>,
        severity: Severity,
        actor: &str,
        now: Timestamp,
    ) -> (Incident, TimelineEvent) {
        let incident = Incident {
            id: id.into(),
            title: title.into(),
            summary: None,
            incident_type: None,
            state: workflow.initial.clone(),
            severity,
            assignee: None,
            team: None,
            tlp: Tlp::default(),
            pap: Pap::default(),
            tags: BTreeSet::new(),
            classification: None,
            fields: BTreeMap::new(),
            approvals: BTreeSet::new(),
            score: 0,
            workflow_version: workflow.version,
            created: now,
            acknowledged: None,
            analysed: None,
            closed: None,
            updated: now,
        };
        let event = TimelineEvent {
            time: now,
            actor: actor.to_string(),
            kind: TimelineKind::Created {
                state: incident.state.clone(),
            },
        };
        (incident, event)
    }

    /// Whether the incident has what `field` names (see `StateDef::required_fields`).
    pub fn has_field(&self, field: &str) -> bool {
        match field {
            "assignee" => self.assignee.is_some(),
            "team" => self.team.is_some(),
            "severity" | "tlp" | "pap" | "title" => true,
            "summary" => self
                .summary
                .as_deref()
                .is_some_and(|s| !s.trim().is_empty()),
            "classification" => self.classification.is_some(),
            "tags" => !self.tags.is_empty(),
            other => self
                .fields
                .get(other)
                .is_some_and(|v| !v.is_null() && v.as_str() != Some("")),
        }
    }
}

/// Who acts: a user name and their roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user: String,
    pub roles: Vec<Role>,
}

impl Actor {
    pub fn new(user: impl Into<String>, roles: &[Role]) -> Actor {
        Actor {
            user: user.into(),
            roles: roles.to_vec(),
        }
    }

    /// Viewers read; every other role may work incidents.
    fn can_work(&self) -> bool {
        self.roles.iter().any(|r| *r != Role::Viewer)
    }

    fn has_any(&self, roles: &[Role]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }
}

/// A change of an incident's descriptive fields; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IncidentUpdate {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    /// The incident type (picks the task template); an empty text clears it.
    #[serde(default)]
    pub incident_type: Option<String>,
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub tlp: Option<Tlp>,
    #[serde(default)]
    pub pap: Option<Pap>,
    #[serde(default)]
    pub tags_add: Vec<String>,
    #[serde(default)]
    pub tags_remove: Vec<String>,
    #[serde(default)]
    pub classification: Option<Classification>,
    /// Custom fields to set; a JSON null removes one.
    #[serde(default)]
    pub fields: BTreeMap<String, Json>,
}

/// What an actor asks to do to an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Move to another state along a workflow transition.
    Transition {
        to: String,
    },
    Update(IncidentUpdate),
    /// Assign (or transfer, when someone already has it) to a user and/or team; `None`
    /// unassigns.
    Assign {
        assignee: Option<String>,
        #[serde(default)]
        team: Option<String>,
    },
    /// Approve in the review state.
    Approve,
    /// Reject in the review state: approvals are dropped and the incident goes back.
    Reject {
        reason: String,
    },
    /// Set the classification and enter a terminal state (`to`, or the only one reachable).
    Close {
        classification: Classification,
        #[serde(default)]
        to: Option<String>,
    },
    Reopen {
        reason: String,
    },
    Comment {
        text: String,
    },
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::Transition { .. } => "change the state",
            Action::Update(_) => "update the incident",
            Action::Assign { .. } => "assign the incident",
            Action::Approve => "approve",
            Action::Reject { .. } => "reject",
            Action::Close { .. } => "close the incident",
            Action::Reopen { .. } => "reopen the incident",
            Action::Comment { .. } => "comment",
        }
    }
}

/// One entry of an incident's timeline: comments, state changes, playbook actions and system
/// events in one stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEvent {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub time: Timestamp,
    /// A user name, or `system` / `playbook:<name>`.
    pub actor: String,
    #[serde(flatten)]
    pub kind: TimelineKind,
}

/// A field's value before and after an update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldChange {
    pub field: String,
    pub from: Json,
    pub to: Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TimelineKind {
    Created {
        state: String,
    },
    StateChanged {
        from: String,
        to: String,
    },
    Assigned {
        assignee: Option<String>,
        team: Option<String>,
    },
    /// Handed from one analyst or team to another.
    Transferred {
        from_assignee: Option<String>,
        from_team: Option<String>,
        assignee: Option<String>,
        team: Option<String>,
    },
    FieldsChanged {
        changes: Vec<FieldChange>,
    },
    Approved {
        approvals: u32,
        required: u32,
    },
    Rejected {
        reason: String,
    },
    ApprovalsReset {
        reason: String,
    },
    Closed {
        classification: Classification,
    },
    Reopened {
        reason: String,
    },
    Comment {
        text: String,
        mentions: Vec<String>,
    },
    PlaybookAction {
        playbook: String,
        action: String,
        outcome: String,
    },
    SlaBreached {
        clock: crate::Clock,
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        due: Timestamp,
    },
    Merged {
        incidents: Vec<String>,
    },
    Split {
        into: String,
        alerts: Vec<String>,
    },
    /// A file was attached (stored by its SHA-256).
    AttachmentAdded {
        name: String,
        sha256: String,
        size: i64,
    },
    AttachmentRemoved {
        name: String,
        sha256: String,
    },
    System {
        message: String,
    },
}

/// Why [`apply`] refused an action. The incident is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("{actor} may not {action}: {reason}")]
    Forbidden {
        actor: String,
        action: &'static str,
        reason: String,
    },
    #[error("unknown state {0:?}")]
    UnknownState(String),
    #[error("no transition from {from:?} to {to:?}")]
    NoTransition { from: String, to: String },
    #[error("cannot be in {state:?} without: {}", .fields.join(", "))]
    MissingFields { state: String, fields: Vec<String> },
    #[error("{state:?} needs {required} distinct approval(s); {have} given")]
    ReviewIncomplete {
        state: String,
        have: u32,
        required: u32,
    },
    #[error("approvals are given in {review_state:?}; the incident is in {state:?}")]
    NotInReview { state: String, review_state: String },
    #[error("the workflow has no review")]
    NoReview,
    #[error("{0} has already approved")]
    AlreadyApproved(String),
    #[error("the incident is closed; reopen it first")]
    IncidentClosed,
    #[error("the incident is not closed")]
    NotClosed,
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

/// The `@names` in a comment, once each, in order. An `@` inside a word (an e-mail address)
/// is not a mention.
pub fn mentions(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut previous: Option<char> = None;
    for (i, c) in text.char_indices() {
        let starts = c == '@' && !previous.is_some_and(|p| p.is_alphanumeric() || p == '_');
        previous = Some(c);
        if !starts {
            continue;
        }
        let rest = &text[i + 1..];
        let len = rest
            .find(|ch: char| !(ch.is_alphanumeric() || matches!(ch, '.' | '_' | '-')))
            .unwrap_or(rest.len());
        let name = rest[..len].trim_end_matches(['.', '-']);
        let starts_well = name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if starts_well && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    out
}

fn check_text(what: &'static str, text: &str) -> Result<(), TransitionError> {
    if text.trim().is_empty() {
        return Err(TransitionError::Invalid {
            what,
            reason: "must not be empty".into(),
        });
    }
    if text.len() > MAX_TEXT {
        return Err(TransitionError::Invalid {
            what,
            reason: format!("longer than {MAX_TEXT} bytes"),
        });
    }
    Ok(())
}

fn missing_fields(workflow: &Workflow, incident: &Incident, state: &str) -> Vec<String> {
    workflow
        .state(state)
        .map(|s| {
            s.required_fields
                .iter()
                .filter(|f| !incident.has_field(f))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn json_of<T: Serialize>(value: &T) -> Json {
    serde_json::to_value(value).unwrap_or(Json::Null)
}

/// Applies `action` by `actor` at `now`: the incident as it is afterwards and the timeline
/// entries that record the change, or why it was refused (the input is never changed).
pub fn apply(
    workflow: &Workflow,
    incident: &Incident,
    action: Action,
    actor: &Actor,
    now: Timestamp,
) -> Result<(Incident, Vec<TimelineEvent>), TransitionError> {
    let forbidden = |reason: &str| TransitionError::Forbidden {
        actor: actor.user.clone(),
        action: action.name(),
        reason: reason.to_string(),
    };
    if !actor.can_work() {
        return Err(forbidden("viewers can only read incidents"));
    }
    let current = workflow
        .state(&incident.state)
        .ok_or_else(|| TransitionError::UnknownState(incident.state.clone()))?;
    let is_closed = current.is_terminal();
    if is_closed && !matches!(action, Action::Reopen { .. } | Action::Comment { .. }) {
        return Err(TransitionError::IncidentClosed);
    }
    let mut next = incident.clone();
    next.updated = now;
    let mut events = Vec::new();
    let event = |kind| TimelineEvent {
        time: now,
        actor: actor.user.clone(),
        kind,
    };
    match &action {
        Action::Transition { to } => {
            enter(workflow, &mut next, to, actor, now, &mut events)?;
        }
        Action::Close { classification, to } => {
            let target = match to {
                Some(to) => to.clone(),
                None => {
                    let terminals: Vec<&str> = workflow
                        .transitions
                        .iter()
                        .filter(|t| t.from == incident.state)
                        .filter(|t| workflow.state(&t.to).is_some_and(|s| s.is_terminal()))
                        .map(|t| t.to.as_str())
                        .collect();
                    match terminals.as_slice() {
                        [only] => only.to_string(),
                        [] => {
                            return Err(TransitionError::NoTransition {
                                from: incident.state.clone(),
                                to: "a closed state".into(),
                            })
                        }
                        _ => {
                            return Err(TransitionError::Invalid {
                                what: "close",
                                reason: format!(
                                    "several closed states can follow {:?}: {}; name one",
                                    incident.state,
                                    terminals.join(", ")
                                ),
                            })
                        }
                    }
                }
            };
            if !workflow.state(&target).is_some_and(|s| s.is_terminal()) {
                return Err(TransitionError::Invalid {
                    what: "close",
                    reason: format!("{target:?} is not a closed state"),
                });
            }
            if next.classification != Some(*classification) {
                events.push(event(TimelineKind::FieldsChanged {
                    changes: vec![FieldChange {
                        field: "classification".into(),
                        from: json_of(&next.classification),
                        to: json_of(classification),
                    }],
                }));
                next.classification = Some(*classification);
            }
            enter(workflow, &mut next, &target, actor, now, &mut events)?;
        }
        Action::Update(update) => {
            let changes = update_fields(&mut next, update)?;
            let resets_review = changes
                .iter()
                .any(|c| c.field == "classification" || c.field == "severity");
            if !changes.is_empty() {
                events.push(event(TimelineKind::FieldsChanged { changes }));
            }
            if resets_review && !next.approvals.is_empty() {
                next.approvals.clear();
                events.push(event(TimelineKind::ApprovalsReset {
                    reason: "the classification or severity changed after approval".into(),
                }));
            }
            let missing = missing_fields(workflow, &next, &next.state);
            if !missing.is_empty() {
                return Err(TransitionError::MissingFields {
                    state: next.state.clone(),
                    fields: missing,
                });
            }
        }
        Action::Assign { assignee, team } => {
            for (what, value) in [("assignee", assignee), ("team", team)] {
                if let Some(v) = value {
                    if v.trim().is_empty() || v.len() > 256 {
                        return Err(TransitionError::Invalid {
                            what: if what == "team" { "team" } else { "assignee" },
                            reason: "must have 1 to 256 characters".into(),
                        });
                    }
                }
            }
            if next.assignee == *assignee && next.team == *team {
                return Ok((incident.clone(), Vec::new()));
            }
            let had_owner = next.assignee.is_some() || next.team.is_some();
            let kind = if had_owner && (assignee.is_some() || team.is_some()) {
                TimelineKind::Transferred {
                    from_assignee: next.assignee.clone(),
                    from_team: next.team.clone(),
                    assignee: assignee.clone(),
                    team: team.clone(),
                }
            } else {
                TimelineKind::Assigned {
                    assignee: assignee.clone(),
                    team: team.clone(),
                }
            };
            next.assignee = assignee.clone();
            next.team = team.clone();
            let missing = missing_fields(workflow, &next, &next.state);
            if !missing.is_empty() {
                return Err(TransitionError::MissingFields {
                    state: next.state.clone(),
                    fields: missing,
                });
            }
            // Four eyes: a reviewer who now owns the incident no longer counts.
            let policy = workflow.review.as_ref();
            if let (Some(policy), Some(user)) = (policy, &next.assignee) {
                if !policy.allow_assignee && next.approvals.remove(user) {
                    events.push(event(kind));
                    events.push(event(TimelineKind::ApprovalsReset {
                        reason: format!("{user} approved and is now the assignee"),
                    }));
                    return Ok((next, events));
                }
            }
            events.push(event(kind));
        }
        Action::Approve => {
            let policy = workflow.review.as_ref().ok_or(TransitionError::NoReview)?;
            if incident.state != policy.state {
                return Err(TransitionError::NotInReview {
                    state: incident.state.clone(),
                    review_state: policy.state.clone(),
                });
            }
            let eligible = policy.users.contains(&actor.user) || actor.has_any(&policy.roles);
            if !eligible {
                return Err(forbidden("not a reviewer of this workflow"));
            }
            if !policy.allow_assignee && incident.assignee.as_deref() == Some(actor.user.as_str()) {
                return Err(forbidden("the assignee cannot review their own incident"));
            }
            if !next.approvals.insert(actor.user.clone()) {
                return Err(TransitionError::AlreadyApproved(actor.user.clone()));
            }
            events.push(event(TimelineKind::Approved {
                approvals: count(&next.approvals),
                required: policy.required,
            }));
        }
        Action::Reject { reason } => {
            check_text("reason", reason)?;
            let policy = workflow.review.as_ref().ok_or(TransitionError::NoReview)?;
            if incident.state != policy.state {
                return Err(TransitionError::NotInReview {
                    state: incident.state.clone(),
                    review_state: policy.state.clone(),
                });
            }
            let eligible = policy.users.contains(&actor.user) || actor.has_any(&policy.roles);
            if !eligible {
                return Err(forbidden("not a reviewer of this workflow"));
            }
            events.push(event(TimelineKind::Rejected {
                reason: reason.clone(),
            }));
            // Sent back without a transition check: the review policy names where to.
            let from = next.state.clone();
            move_to(workflow, &mut next, &policy.reject_to, now)?;
            events.push(event(TimelineKind::StateChanged {
                from,
                to: policy.reject_to.clone(),
            }));
        }
        Action::Reopen { reason } => {
            check_text("reason", reason)?;
            if !is_closed {
                return Err(TransitionError::NotClosed);
            }
            if !actor.has_any(&[Role::Admin, Role::Analyst]) {
                return Err(forbidden("only analysts and admins reopen incidents"));
            }
            let from = next.state.clone();
            next.classification = None;
            next.closed = None;
            next.approvals.clear();
            move_to(workflow, &mut next, &workflow.reopen_to, now)?;
            events.push(event(TimelineKind::Reopened {
                reason: reason.clone(),
            }));
            events.push(event(TimelineKind::StateChanged {
                from,
                to: workflow.reopen_to.clone(),
            }));
        }
        Action::Comment { text } => {
            check_text("comment", text)?;
            events.push(event(TimelineKind::Comment {
                text: text.clone(),
                mentions: mentions(text),
            }));
        }
    }
    Ok((next, events))
}

fn count(set: &BTreeSet<String>) -> u32 {
    u32::try_from(set.len()).unwrap_or(u32::MAX)
}

/// Enters `to` along a transition: roles, required fields and the review gate are checked.
fn enter(
    workflow: &Workflow,
    next: &mut Incident,
    to: &str,
    actor: &Actor,
    now: Timestamp,
    events: &mut Vec<TimelineEvent>,
) -> Result<(), TransitionError> {
    if workflow.state(to).is_none() {
        return Err(TransitionError::UnknownState(to.to_string()));
    }
    let transition =
        workflow
            .transition(&next.state, to)
            .ok_or_else(|| TransitionError::NoTransition {
                from: next.state.clone(),
                to: to.to_string(),
            })?;
    if !actor.has_any(&transition.roles) {
        let roles: Vec<&str> = transition.roles.iter().map(|r| r.as_str()).collect();
        return Err(TransitionError::Forbidden {
            actor: actor.user.clone(),
            action: "change the state",
            reason: format!(
                "{:?} → {:?} needs one of the roles {}",
                next.state,
                to,
                roles.join(", ")
            ),
        });
    }
    let missing = missing_fields(workflow, next, to);
    if !missing.is_empty() {
        return Err(TransitionError::MissingFields {
            state: to.to_string(),
            fields: missing,
        });
    }
    if let Some(policy) = &workflow.review {
        if policy.gates == to {
            // Only approvals collected in the review state count; they are cleared whenever
            // the incident leaves it another way.
            let have = if next.state == policy.state {
                count(&next.approvals)
            } else {
                0
            };
            if have < policy.required {
                return Err(TransitionError::ReviewIncomplete {
                    state: to.to_string(),
                    have,
                    required: policy.required,
                });
            }
        }
    }
    let from = next.state.clone();
    move_to(workflow, next, to, now)?;
    events.push(TimelineEvent {
        time: now,
        actor: actor.user.clone(),
        kind: TimelineKind::StateChanged {
            from,
            to: to.to_string(),
        },
    });
    if next.closed == Some(now) {
        if let Some(classification) = next.classification {
            events.push(TimelineEvent {
                time: now,
                actor: actor.user.clone(),
                kind: TimelineKind::Closed { classification },
            });
        }
    }
    Ok(())
}

/// Sets the state and the stage times; clears approvals unless the move is the one they gate.
fn move_to(
    workflow: &Workflow,
    next: &mut Incident,
    to: &str,
    now: Timestamp,
) -> Result<(), TransitionError> {
    let stage = workflow
        .state(to)
        .ok_or_else(|| TransitionError::UnknownState(to.to_string()))?
        .stage;
    let gated = workflow
        .review
        .as_ref()
        .is_some_and(|p| p.gates == to && p.state == next.state);
    if !gated {
        next.approvals.clear();
    }
    next.state = to.to_string();
    if stage != Stage::Acknowledge && next.acknowledged.is_none() {
        next.acknowledged = Some(now);
    }
    if matches!(stage, Stage::Disposal | Stage::Closed) && next.analysed.is_none() {
        next.analysed = Some(now);
    }
    if stage == Stage::Closed {
        next.closed = Some(now);
    }
    Ok(())
}

fn update_fields(
    next: &mut Incident,
    update: &IncidentUpdate,
) -> Result<Vec<FieldChange>, TransitionError> {
    let mut changes = Vec::new();
    let mut change = |field: &str, from: Json, to: Json| {
        if from != to {
            changes.push(FieldChange {
                field: field.to_string(),
                from,
                to,
            });
        }
    };
    if let Some(title) = &update.title {
        check_text("title", title)?;
        change("title", json_of(&next.title), json_of(title));
        next.title = title.clone();
    }
    if let Some(summary) = &update.summary {
        if summary.len() > MAX_TEXT {
            return Err(TransitionError::Invalid {
                what: "summary",
                reason: format!("longer than {MAX_TEXT} bytes"),
            });
        }
        change("summary", json_of(&next.summary), json_of(summary));
        next.summary = Some(summary.clone()).filter(|s| !s.trim().is_empty());
    }
    if let Some(kind) = &update.incident_type {
        if kind.len() > 128 {
            return Err(TransitionError::Invalid {
                what: "incident type",
                reason: "longer than 128 bytes".into(),
            });
        }
        let kind = Some(kind.trim().to_string()).filter(|k| !k.is_empty());
        change(
            "incident_type",
            json_of(&next.incident_type),
            json_of(&kind),
        );
        next.incident_type = kind;
    }
    if let Some(severity) = update.severity {
        change("severity", json_of(&next.severity), json_of(&severity));
        next.severity = severity;
    }
    if let Some(tlp) = update.tlp {
        change("tlp", json_of(&next.tlp), json_of(&tlp));
        next.tlp = tlp;
    }
    if let Some(pap) = update.pap {
        change("pap", json_of(&next.pap), json_of(&pap));
        next.pap = pap;
    }
    if let Some(classification) = update.classification {
        change(
            "classification",
            json_of(&next.classification),
            json_of(&classification),
        );
        next.classification = Some(classification);
    }
    if !update.tags_add.is_empty() || !update.tags_remove.is_empty() {
        let before = next.tags.clone();
        for tag in &update.tags_add {
            let tag = tag.trim();
            if tag.is_empty() || tag.len() > 128 {
                return Err(TransitionError::Invalid {
                    what: "tag",
                    reason: "must have 1 to 128 characters".into(),
                });
            }
            next.tags.insert(tag.to_string());
        }
        for tag in &update.tags_remove {
            next.tags.remove(tag.trim());
        }
        if next.tags.len() > MAX_TAGS {
            return Err(TransitionError::Invalid {
                what: "tags",
                reason: format!("at most {MAX_TAGS} per incident"),
            });
        }
        change("tags", json_of(&before), json_of(&next.tags));
    }
    for (name, value) in &update.fields {
        if name.trim().is_empty() || name.len() > 128 {
            return Err(TransitionError::Invalid {
                what: "field name",
                reason: "must have 1 to 128 characters".into(),
            });
        }
        let before = next.fields.get(name).cloned().unwrap_or(Json::Null);
        change(&format!("fields.{name}"), before, value.clone());
        if value.is_null() {
            next.fields.remove(name);
        } else {
            next.fields.insert(name.clone(), value.clone());
        }
    }
    Ok(changes)
}
