//! SLA clocks: time to acknowledge, to finish analysis and to dispose of an incident, with
//! targets per severity.
//!
//! Clocks are derived from the incident's stage times, never stored: `created → acknowledged`
//! (acknowledge), `acknowledged → analysed` (analysis), `analysed → closed` (disposal).

use std::collections::BTreeMap;

use garrison_model::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::incident::{Incident, TimelineEvent, TimelineKind};
use crate::Severity;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    Acknowledge,
    Analysis,
    Disposal,
}

impl Clock {
    pub const ALL: [Clock; 3] = [Clock::Acknowledge, Clock::Analysis, Clock::Disposal];

    pub fn as_str(self) -> &'static str {
        match self {
            Clock::Acknowledge => "acknowledge",
            Clock::Analysis => "analysis",
            Clock::Disposal => "disposal",
        }
    }

    /// When this clock starts and stops for an incident (each `None` until it happens).
    pub fn span(self, incident: &Incident) -> (Option<Timestamp>, Option<Timestamp>) {
        match self {
            Clock::Acknowledge => (Some(incident.created), incident.acknowledged),
            Clock::Analysis => (incident.acknowledged, incident.analysed),
            Clock::Disposal => (incident.analysed, incident.closed),
        }
    }
}

/// Targets for one severity, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SlaTargets {
    pub acknowledge_secs: u64,
    pub analysis_secs: u64,
    pub disposal_secs: u64,
}

impl SlaTargets {
    pub fn get(&self, clock: Clock) -> u64 {
        match clock {
            Clock::Acknowledge => self.acknowledge_secs,
            Clock::Analysis => self.analysis_secs,
            Clock::Disposal => self.disposal_secs,
        }
    }
}

impl Default for SlaTargets {
    /// The defaults: 3 minutes to acknowledge, 20 of analysis, 7 to dispose.
    fn default() -> Self {
        SlaTargets {
            acknowledge_secs: 3 * 60,
            analysis_secs: 20 * 60,
            disposal_secs: 7 * 60,
        }
    }
}

/// A tenant's SLA targets: one set per severity, falling back to `default`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    #[serde(default)]
    pub default: SlaTargets,
    #[serde(default)]
    pub per_severity: BTreeMap<Severity, SlaTargets>,
}

impl SlaPolicy {
    pub fn targets(&self, severity: Severity) -> SlaTargets {
        self.per_severity
            .get(&severity)
            .copied()
            .unwrap_or(self.default)
    }
}

/// One clock of one incident at `now`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClockStatus {
    pub clock: Clock,
    pub target_secs: u64,
    /// `None`: the clock has not started (the previous stage is not done).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub started: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub due: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub stopped: Option<Timestamp>,
    /// Seconds run so far (until `stopped` if stopped, else until `now`).
    pub elapsed_secs: i64,
    pub breached: bool,
}

fn plus_secs(t: Timestamp, secs: u64) -> Timestamp {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    t.checked_add(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MAX)
}

/// Every clock of `incident` at `now`.
pub fn sla_status(incident: &Incident, policy: &SlaPolicy, now: Timestamp) -> Vec<ClockStatus> {
    let targets = policy.targets(incident.severity);
    Clock::ALL
        .iter()
        .map(|&clock| {
            let target_secs = targets.get(clock);
            let (started, stopped) = clock.span(incident);
            let (due, elapsed_secs) = match started {
                Some(start) => {
                    let end = stopped.unwrap_or(now);
                    let elapsed = end.as_second().saturating_sub(start.as_second()).max(0);
                    (Some(plus_secs(start, target_secs)), elapsed)
                }
                None => (None, 0),
            };
            ClockStatus {
                clock,
                target_secs,
                started,
                due,
                stopped,
                elapsed_secs,
                breached: started.is_some()
                    && u64::try_from(elapsed_secs).unwrap_or(0) > target_secs,
            }
        })
        .collect()
}

/// A clock that ran past its due time: the event notifications and playbooks subscribe to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaBreach {
    pub incident_id: String,
    pub severity: Severity,
    pub clock: Clock,
    pub due: Timestamp,
}

impl SlaBreach {
    /// The breach as a timeline entry of the incident.
    pub fn timeline_event(&self) -> TimelineEvent {
        TimelineEvent {
            time: self.due,
            actor: "system".into(),
            kind: TimelineKind::SlaBreached {
                clock: self.clock,
                due: self.due,
            },
        }
    }
}

/// The breaches whose due time falls in `[since, now)` (a clock breaches once `now` passes its
/// due time): a periodic checker that passes its previous `now` as `since` raises each breach
/// exactly once.
pub fn sla_breaches_between(
    incident: &Incident,
    policy: &SlaPolicy,
    since: Timestamp,
    now: Timestamp,
) -> Vec<SlaBreach> {
    sla_status(incident, policy, now)
        .into_iter()
        .filter_map(|status| {
            let due = status.due?;
            let stopped_in_time = status.stopped.is_some_and(|s| s <= due);
            (due >= since && due < now && !stopped_in_time).then(|| SlaBreach {
                incident_id: incident.id.clone(),
                severity: incident.severity,
                clock: status.clock,
                due,
            })
        })
        .collect()
}
