//! SOC figures from incident and alert records: volume, how much grouping saves, how fast the
//! stages go, how often SLAs hold, and which rules are noisiest.

use std::collections::BTreeMap;

use garrison_model::Timestamp;
use serde::{Deserialize, Serialize};

use crate::incident::Incident;
use crate::sla::{sla_status, Clock, SlaPolicy};
use crate::Classification;

/// An alert as metrics see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub rule_id: String,
    /// First event of the alert.
    pub time: Timestamp,
    pub incident_id: Option<String>,
    pub suppressed: bool,
}

/// An incident as metrics see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub incident: Incident,
    /// Rules of the incident's alerts.
    pub rule_ids: Vec<String>,
}

/// A figure per SLA stage, plus the whole (created → closed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StageTimes {
    pub acknowledge: Option<f64>,
    pub analysis: Option<f64>,
    pub disposal: Option<f64>,
    pub resolution: Option<f64>,
}

/// False positives of one rule among its closed incidents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleNoise {
    pub rule_id: String,
    pub closed: u64,
    pub true_positive: u64,
    pub false_positive: u64,
    pub benign: u64,
    /// `false_positive / closed`.
    pub false_positive_rate: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayCount {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub alerts: u64,
}

/// The figures of `GET /api/v1/metrics/soc` for one period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SocMetrics {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub from: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub to: Timestamp,
    pub alerts: u64,
    pub suppressed_alerts: u64,
    pub incidents: u64,
    /// Days with alerts only, oldest first.
    pub alerts_per_day: Vec<DayCount>,
    /// Alerts (not suppressed) per incident opened for them.
    pub alerts_per_incident: Option<f64>,
    /// `1 - incidents / alerts` (not suppressed): the share of work grouping saved.
    pub reduction_ratio: Option<f64>,
    /// Mean time to acknowledge, seconds.
    pub mtta_secs: Option<f64>,
    /// Mean seconds per stage and to resolution, over incidents that finished the stage.
    pub mttr_secs: StageTimes,
    /// Percent of finished (or already late) stage clocks that met their target; `resolution`
    /// is the percent of closed incidents with no clock breached.
    pub within_sla_pct: StageTimes,
    /// Rules by false-positive rate, noisiest first.
    pub false_positive_rate_per_rule: Vec<RuleNoise>,
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn percent(hit: u64, of: u64) -> Option<f64> {
    (of > 0).then(|| 100.0 * hit as f64 / of as f64)
}

impl SocMetrics {
    /// Alerts whose time and incidents whose creation fall in `[from, to)`; SLA clocks are
    /// judged at `now`.
    pub fn compute(
        alerts: &[AlertRecord],
        incidents: &[IncidentRecord],
        policy: &SlaPolicy,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
    ) -> SocMetrics {
        let alerts: Vec<&AlertRecord> = alerts
            .iter()
            .filter(|a| a.time >= from && a.time < to)
            .collect();
        let incidents: Vec<&IncidentRecord> = incidents
            .iter()
            .filter(|i| i.incident.created >= from && i.incident.created < to)
            .collect();
        let suppressed = alerts.iter().filter(|a| a.suppressed).count() as u64;
        let live = alerts.len() as u64 - suppressed;
        let mut per_day: BTreeMap<String, u64> = BTreeMap::new();
        for alert in &alerts {
            let day = alert
                .time
                .to_zoned(jiff::tz::TimeZone::UTC)
                .date()
                .to_string();
            *per_day.entry(day).or_default() += 1;
        }
        let incident_count = incidents.len() as u64;
        let (alerts_per_incident, reduction_ratio) = if live > 0 && incident_count > 0 {
            (
                Some(live as f64 / incident_count as f64),
                Some((1.0 - incident_count as f64 / live as f64).max(0.0)),
            )
        } else {
            (None, None)
        };

        let mut durations: BTreeMap<Clock, Vec<f64>> = BTreeMap::new();
        let mut met: BTreeMap<Clock, (u64, u64)> = BTreeMap::new();
        let mut resolution = Vec::new();
        let (mut closed_ok, mut closed) = (0u64, 0u64);
        for record in &incidents {
            let incident = &record.incident;
            let status = sla_status(incident, policy, now);
            for clock in &status {
                if clock.stopped.is_some() {
                    durations
                        .entry(clock.clock)
                        .or_default()
                        .push(clock.elapsed_secs as f64);
                }
                if clock.stopped.is_some() || clock.breached {
                    let entry = met.entry(clock.clock).or_default();
                    entry.1 += 1;
                    if !clock.breached {
                        entry.0 += 1;
                    }
                }
            }
            if let Some(end) = incident.closed {
                closed += 1;
                resolution.push((end.as_second() - incident.created.as_second()).max(0) as f64);
                if status.iter().all(|c| !c.breached) {
                    closed_ok += 1;
                }
            }
        }
        let stage_mean = |clock| durations.get(&clock).and_then(|v| mean(v));
        let stage_pct = |clock| met.get(&clock).and_then(|&(ok, of)| percent(ok, of));

        let mut noise: BTreeMap<&str, RuleNoise> = BTreeMap::new();
        for record in &incidents {
            let Some(classification) = record.incident.classification else {
                continue;
            };
            if record.incident.closed.is_none() {
                continue;
            }
            let mut rules: Vec<&str> = record.rule_ids.iter().map(String::as_str).collect();
            rules.sort_unstable();
            rules.dedup();
            for rule in rules {
                let entry = noise.entry(rule).or_insert_with(|| RuleNoise {
                    rule_id: rule.to_string(),
                    closed: 0,
                    true_positive: 0,
                    false_positive: 0,
                    benign: 0,
                    false_positive_rate: 0.0,
                });
                entry.closed += 1;
                match classification {
                    Classification::TruePositive => entry.true_positive += 1,
                    Classification::FalsePositive => entry.false_positive += 1,
                    Classification::Benign => entry.benign += 1,
                }
            }
        }
        let mut noise: Vec<RuleNoise> = noise
            .into_values()
            .map(|mut n| {
                n.false_positive_rate = n.false_positive as f64 / n.closed as f64;
                n
            })
            .collect();
        noise.sort_by(|a, b| {
            b.false_positive_rate
                .total_cmp(&a.false_positive_rate)
                .then_with(|| b.false_positive.cmp(&a.false_positive))
                .then_with(|| a.rule_id.cmp(&b.rule_id))
        });

        SocMetrics {
            from,
            to,
            alerts: alerts.len() as u64,
            suppressed_alerts: suppressed,
            incidents: incident_count,
            alerts_per_day: per_day
                .into_iter()
                .map(|(day, alerts)| DayCount { day, alerts })
                .collect(),
            alerts_per_incident,
            reduction_ratio,
            mtta_secs: stage_mean(Clock::Acknowledge),
            mttr_secs: StageTimes {
                acknowledge: stage_mean(Clock::Acknowledge),
                analysis: stage_mean(Clock::Analysis),
                disposal: stage_mean(Clock::Disposal),
                resolution: mean(&resolution),
            },
            within_sla_pct: StageTimes {
                acknowledge: stage_pct(Clock::Acknowledge),
                analysis: stage_pct(Clock::Analysis),
                disposal: stage_pct(Clock::Disposal),
                resolution: percent(closed_ok, closed),
            },
            false_positive_rate_per_rule: noise,
        }
    }
}
