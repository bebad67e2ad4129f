//! Workflows as data: a tenant's states, the transitions between them and who may take them,
//! the fields an incident needs to enter a state, and the review before closing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use garrison_model::Role;
use serde::{Deserialize, Serialize};

/// Which SLA clock runs while an incident is in a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Not yet taken up by an analyst: the acknowledge clock runs.
    Acknowledge,
    /// Being analysed: the analysis clock runs.
    Analysis,
    /// Contained or under review, to be disposed of: the disposal clock runs.
    Disposal,
    /// Done: no clock runs. States of this stage are terminal.
    Closed,
}

/// One state of a workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StateDef {
    pub name: String,
    pub stage: Stage,
    /// Fields an incident must have to enter this state: `assignee`, `severity`,
    /// `classification`, `summary`, `tags`, or the name of a custom field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_fields: Vec<String>,
}

impl StateDef {
    pub fn is_terminal(&self) -> bool {
        self.stage == Stage::Closed
    }
}

/// A move between two states, and the roles allowed to make it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub roles: Vec<Role>,
}

/// N-of-M review: before an incident may enter `gates`, N distinct eligible reviewers must have
/// approved it while it was in `state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReviewPolicy {
    /// The state in which approvals are collected.
    pub state: String,
    /// The state that needs the approvals to be entered (usually the closed state).
    pub gates: String,
    /// Where a rejection sends the incident back to.
    pub reject_to: String,
    /// N: distinct approvals needed.
    pub required: u32,
    /// Users who may approve, by name (M is their number when no role is listed).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub users: Vec<String>,
    /// Roles whose holders may approve.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub roles: Vec<Role>,
    /// Whether the assignee may approve their own incident (four eyes when false).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub allow_assignee: bool,
}

/// A tenant's incident workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub name: String,
    /// Bumped on every change; an incident records the version it was opened under.
    #[serde(default = "one")]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub version: u32,
    pub initial: String,
    /// Where a reopened incident goes.
    pub reopen_to: String,
    pub states: Vec<StateDef>,
    pub transitions: Vec<Transition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub review: Option<ReviewPolicy>,
}

fn one() -> u32 {
    1
}

/// One problem in a workflow, with its place (`states[2].name`, `transitions[0].to`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValidationError {
    pub path: String,
    pub message: String,
}

/// Why a workflow text could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    #[error("workflow is not valid {format}: {message}")]
    Parse {
        format: &'static str,
        message: String,
    },
    #[error("workflow has {} error(s):\n{}", .0.len(), ErrorList(.0))]
    Invalid(Vec<ValidationError>),
}

struct ErrorList<'a>(&'a [ValidationError]);

impl fmt::Display for ErrorList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {e}")?;
        }
        Ok(())
    }
}

const WORKERS: [Role; 3] = [Role::Admin, Role::Analyst, Role::Responder];

impl Workflow {
    /// The default SOC workflow: new → triage → analysis → containment → review → closed,
    /// with analysis → review (nothing to contain), review → analysis (sent back), and closing
    /// after two approvals by analysts or admins other than the assignee.
    pub fn default_soc() -> Workflow {
        let state = |name: &str, stage, required: &[&str]| StateDef {
            name: name.into(),
            stage,
            required_fields: required.iter().map(|s| s.to_string()).collect(),
        };
        let go = |from: &str, to: &str, roles: &[Role]| Transition {
            from: from.into(),
            to: to.into(),
            roles: roles.to_vec(),
        };
        Workflow {
            name: "soc-default".into(),
            version: 1,
            initial: "new".into(),
            reopen_to: "triage".into(),
            states: vec![
                state("new", Stage::Acknowledge, &[]),
                state("triage", Stage::Analysis, &["assignee"]),
                state("analysis", Stage::Analysis, &["assignee"]),
                state("containment", Stage::Disposal, &["assignee"]),
                state("review", Stage::Disposal, &["assignee", "classification"]),
                state("closed", Stage::Closed, &["classification"]),
            ],
            transitions: vec![
                go("new", "triage", &WORKERS),
                go("triage", "analysis", &WORKERS),
                go("analysis", "containment", &WORKERS),
                go("analysis", "review", &[Role::Admin, Role::Analyst]),
                go("containment", "review", &WORKERS),
                go("triage", "review", &[Role::Admin, Role::Analyst]),
                go("review", "analysis", &WORKERS),
                go("review", "closed", &[Role::Admin, Role::Analyst]),
            ],
            review: Some(ReviewPolicy {
                state: "review".into(),
                gates: "closed".into(),
                reject_to: "analysis".into(),
                required: 2,
                users: vec![],
                roles: vec![Role::Admin, Role::Analyst],
                allow_assignee: false,
            }),
        }
    }

    /// Parses YAML (or JSON, which is YAML) and validates.
    pub fn from_yaml(text: &str) -> Result<Workflow, WorkflowError> {
        let workflow: Workflow =
            serde_saphyr::from_str(text).map_err(|e| WorkflowError::Parse {
                format: "YAML",
                message: e.to_string(),
            })?;
        workflow.validate().map_err(WorkflowError::Invalid)?;
        Ok(workflow)
    }

    /// Parses JSON and validates.
    pub fn from_json(text: &str) -> Result<Workflow, WorkflowError> {
        let workflow: Workflow = serde_json::from_str(text).map_err(|e| WorkflowError::Parse {
            format: "JSON",
            message: e.to_string(),
        })?;
        workflow.validate().map_err(WorkflowError::Invalid)?;
        Ok(workflow)
    }

    pub fn state(&self, name: &str) -> Option<&StateDef> {
        self.states.iter().find(|s| s.name == name)
    }

    pub fn transition(&self, from: &str, to: &str) -> Option<&Transition> {
        self.transitions
            .iter()
            .find(|t| t.from == from && t.to == to)
    }

    /// Every error, each with its place; `Ok` only when there is none.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();
        let mut err =
            |path: String, message: String| errors.push(ValidationError { path, message });
        if self.name.trim().is_empty() {
            err("name".into(), "must not be empty".into());
        }
        if self.version == 0 {
            err("version".into(), "must be 1 or more".into());
        }
        if self.states.is_empty() {
            err(
                "states".into(),
                "a workflow needs at least one state".into(),
            );
        }
        let mut names = BTreeSet::new();
        for (i, state) in self.states.iter().enumerate() {
            if state.name.trim().is_empty() {
                err(format!("states[{i}].name"), "must not be empty".into());
            } else if !names.insert(state.name.as_str()) {
                err(
                    format!("states[{i}].name"),
                    format!("state {:?} is defined twice", state.name),
                );
            }
            let mut seen = BTreeSet::new();
            for (j, field) in state.required_fields.iter().enumerate() {
                if field.trim().is_empty() {
                    err(
                        format!("states[{i}].required_fields[{j}]"),
                        "must not be empty".into(),
                    );
                } else if !seen.insert(field) {
                    err(
                        format!("states[{i}].required_fields[{j}]"),
                        format!("field {field:?} is listed twice"),
                    );
                }
            }
        }
        let known = |name: &str| names.contains(name);
        if !known(&self.initial) {
            err(
                "initial".into(),
                format!("unknown state {:?}", self.initial),
            );
        } else if self.state(&self.initial).is_some_and(StateDef::is_terminal) {
            err(
                "initial".into(),
                format!(
                    "state {:?} is terminal; an incident could never move",
                    self.initial
                ),
            );
        }
        match self.state(&self.reopen_to) {
            None => err(
                "reopen_to".into(),
                format!("unknown state {:?}", self.reopen_to),
            ),
            Some(s) if s.is_terminal() => err(
                "reopen_to".into(),
                format!(
                    "state {:?} is terminal; reopening must leave the closed stage",
                    s.name
                ),
            ),
            Some(_) => {}
        }
        if !self.states.is_empty() && !self.states.iter().any(StateDef::is_terminal) {
            err(
                "states".into(),
                "no terminal state: at least one state needs stage `closed`".into(),
            );
        }
        let mut pairs = BTreeSet::new();
        for (i, t) in self.transitions.iter().enumerate() {
            for (field, name) in [("from", &t.from), ("to", &t.to)] {
                if !known(name) {
                    err(
                        format!("transitions[{i}].{field}"),
                        format!("unknown state {name:?}"),
                    );
                }
            }
            if t.from == t.to {
                err(
                    format!("transitions[{i}]"),
                    format!("a transition from {:?} to itself does nothing", t.from),
                );
            }
            if self.state(&t.from).is_some_and(StateDef::is_terminal) {
                err(
                    format!("transitions[{i}].from"),
                    format!(
                        "state {:?} is terminal; leave it by reopening, not by a transition",
                        t.from
                    ),
                );
            }
            if !pairs.insert((t.from.as_str(), t.to.as_str())) {
                err(
                    format!("transitions[{i}]"),
                    format!("transition {:?} → {:?} is defined twice", t.from, t.to),
                );
            }
            if t.roles.is_empty() {
                err(
                    format!("transitions[{i}].roles"),
                    "must name at least one role".into(),
                );
            }
            if t.roles.contains(&Role::Viewer) {
                err(
                    format!("transitions[{i}].roles"),
                    "viewers cannot change an incident's state".into(),
                );
            }
        }
        // Reachability from the initial state (and from the reopen state, which is entered
        // without a transition).
        if known(&self.initial) {
            let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for t in &self.transitions {
                graph
                    .entry(t.from.as_str())
                    .or_default()
                    .push(t.to.as_str());
            }
            let mut reached = BTreeSet::new();
            let mut queue: VecDeque<&str> = VecDeque::from([self.initial.as_str()]);
            while let Some(state) = queue.pop_front() {
                if reached.insert(state) {
                    queue.extend(graph.get(state).into_iter().flatten().copied());
                }
            }
            for (i, state) in self.states.iter().enumerate() {
                if !reached.contains(state.name.as_str()) {
                    err(
                        format!("states[{i}]"),
                        format!(
                            "state {:?} cannot be reached from {:?}",
                            state.name, self.initial
                        ),
                    );
                }
            }
            let terminal_reached = self
                .states
                .iter()
                .any(|s| s.is_terminal() && reached.contains(s.name.as_str()));
            if self.states.iter().any(StateDef::is_terminal) && !terminal_reached {
                err(
                    "transitions".into(),
                    format!("no terminal state can be reached from {:?}", self.initial),
                );
            }
        }
        if let Some(review) = &self.review {
            for (field, name) in [
                ("state", &review.state),
                ("gates", &review.gates),
                ("reject_to", &review.reject_to),
            ] {
                if !known(name) {
                    err(format!("review.{field}"), format!("unknown state {name:?}"));
                }
            }
            if known(&review.state)
                && known(&review.gates)
                && self.transition(&review.state, &review.gates).is_none()
            {
                err(
                    "review.gates".into(),
                    format!(
                        "no transition from the review state {:?} to {:?}",
                        review.state, review.gates
                    ),
                );
            }
            if review.state == review.gates {
                err(
                    "review.gates".into(),
                    "the review state cannot gate itself".into(),
                );
            }
            if self
                .state(&review.reject_to)
                .is_some_and(StateDef::is_terminal)
            {
                err(
                    "review.reject_to".into(),
                    format!("state {:?} is terminal", review.reject_to),
                );
            }
            if review.required == 0 {
                err(
                    "review.required".into(),
                    "must be 1 or more; leave `review` out for no review".into(),
                );
            }
            if review.users.is_empty() && review.roles.is_empty() {
                err(
                    "review".into(),
                    "name reviewer users or roles; nobody could approve".into(),
                );
            }
            if review.roles.contains(&Role::Viewer) {
                err("review.roles".into(), "viewers cannot review".into());
            }
            let users: BTreeSet<&String> = review.users.iter().collect();
            if users.len() != review.users.len() {
                err("review.users".into(), "a user is listed twice".into());
            }
            if review.roles.is_empty() && review.required as usize > users.len() {
                err(
                    "review.required".into(),
                    format!(
                        "{} approvals required but only {} reviewer(s) listed (N > M)",
                        review.required,
                        users.len()
                    ),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}
