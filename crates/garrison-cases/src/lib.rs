//! Garrison's incident management core: the triage and case side of a SOC, as pure functions.
//!
//! Nothing here does I/O, reads a clock or touches SQL: callers pass `now`, the records and
//! the policies, and store what comes back. That keeps every rule (who may move an incident,
//! when it may close, when an SLA is breached, how alerts group) testable in isolation and the
//! same in the API, the CLI and playbooks.
//!
//! - [`Workflow`]: states, transitions, required fields and review policy, per tenant, as data;
//!   [`Workflow::validate`] reports every error with its place.
//! - [`apply`]: the one transition function; an [`Incident`] only changes through it.
//! - [`SlaPolicy`] and [`sla_status`]: clocks, due times, breaches.
//! - [`GroupingRule`], [`Suppression`], [`score`], [`extract_observables`]: triage of alerts.
//! - [`similarity`] and [`similar_incidents`]: past incidents like this one, and how they ended.
//! - [`SocMetrics`]: the figures behind `GET /api/v1/metrics/soc`.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod assets;
mod incident;
mod metrics;
mod observables;
mod similarity;
mod sla;
mod triage;
mod workflow;

pub use assets::{parse_assets_csv, Asset, CsvError};
pub use incident::{
    apply, mentions, Action, Actor, FieldChange, Incident, IncidentUpdate, TimelineEvent,
    TimelineKind, TransitionError,
};
pub use metrics::{AlertRecord, DayCount, IncidentRecord, RuleNoise, SocMetrics, StageTimes};
pub use observables::{extract_observables, Observable, ObservableKind};
pub use similarity::{similar_incidents, similarity, IncidentProfile, SimilarIncident, Similarity};
pub use sla::{
    sla_breaches_between, sla_status, Clock, ClockStatus, SlaBreach, SlaPolicy, SlaTargets,
};
pub use triage::{
    group_key, score, AlertInput, Confidence, Criticality, EntityKey, GroupKey, GroupingRule,
    IndicatorVerdict, Level, Score, ScorePart, Suppression, SuppressionError, Verdict,
};
pub use workflow::{
    ReviewPolicy, Stage, StateDef, Transition, ValidationError, Workflow, WorkflowError,
};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use garrison_model::{Role, Timestamp};

/// How bad an incident is; orders the queue and picks the SLA targets.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Traffic Light Protocol: who may see what the incident holds.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Tlp {
    Clear,
    Green,
    #[default]
    Amber,
    AmberStrict,
    Red,
}

impl Tlp {
    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "clear",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::AmberStrict => "amber-strict",
            Tlp::Red => "red",
        }
    }
}

/// Permissible Actions Protocol: what may be done with the incident's indicators.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Pap {
    Clear,
    Green,
    #[default]
    Amber,
    Red,
}

impl Pap {
    pub fn as_str(self) -> &'static str {
        match self {
            Pap::Clear => "clear",
            Pap::Green => "green",
            Pap::Amber => "amber",
            Pap::Red => "red",
        }
    }
}

/// How a closed incident turned out; false positives feed the noise figures per rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    TruePositive,
    FalsePositive,
    Benign,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::TruePositive => "true_positive",
            Classification::FalsePositive => "false_positive",
            Classification::Benign => "benign",
        }
    }
}

/// A value that is not one of an enum's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected one of {expected}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! parse_enum {
    ($ty:ty, $what:literal, $expected:literal, [$($variant:expr),*]) => {
        impl FromStr for $ty {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                [$($variant),*]
                    .into_iter()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
                    .ok_or_else(|| UnknownValue { what: $what, value: s.to_string(), expected: $expected })
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

parse_enum!(
    Severity,
    "severity",
    "low, medium, high, critical",
    [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical
    ]
);
parse_enum!(
    Tlp,
    "TLP",
    "clear, green, amber, amber-strict, red",
    [
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red
    ]
);
parse_enum!(
    Pap,
    "PAP",
    "clear, green, amber, red",
    [Pap::Clear, Pap::Green, Pap::Amber, Pap::Red]
);
parse_enum!(
    Classification,
    "classification",
    "true_positive, false_positive, benign",
    [
        Classification::TruePositive,
        Classification::FalsePositive,
        Classification::Benign
    ]
);
