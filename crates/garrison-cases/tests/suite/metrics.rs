use garrison_cases::*;

use super::{analyst, at, in_review, step};

fn closed_incident(id: &str, classification: Classification) -> Incident {
    let w = Workflow::default_soc();
    let mut i = in_review(&w);
    i.id = id.into();
    i = step(&w, &i, Action::Approve, &analyst("bob"), 950);
    i = step(&w, &i, Action::Approve, &analyst("carol"), 960);
    step(
        &w,
        &i,
        Action::Close {
            classification,
            to: None,
        },
        &analyst("ana"),
        1000,
    )
}

fn alert(rule: &str, t: i64, incident: Option<&str>, suppressed: bool) -> AlertRecord {
    AlertRecord {
        rule_id: rule.into(),
        time: at(t),
        incident_id: incident.map(String::from),
        suppressed,
    }
}

#[test]
fn soc_metrics_from_known_records() {
    let fp = closed_incident("i1", Classification::FalsePositive);
    let tp = closed_incident("i2", Classification::TruePositive);
    let w = Workflow::default_soc();
    let open = super::new_incident(&w); // never acknowledged: late by `now`
    let incidents = vec![
        IncidentRecord {
            incident: fp,
            rule_ids: vec!["noisy".into(), "noisy".into()],
        },
        IncidentRecord {
            incident: tp,
            rule_ids: vec!["noisy".into(), "good".into()],
        },
        IncidentRecord {
            incident: open,
            rule_ids: vec!["good".into()],
        },
    ];
    let day = 86_400;
    let alerts = vec![
        alert("noisy", 0, Some("i1"), false),
        alert("noisy", 10, Some("i1"), false),
        alert("noisy", 20, Some("i2"), false),
        alert("good", 30, Some("i2"), false),
        alert("good", 40, Some("inc-1"), false),
        alert("noisy", 50, None, true),
        alert("good", day, None, false),
        alert("good", 100 * day, None, false), // outside the period
    ];
    let m = SocMetrics::compute(
        &alerts,
        &incidents,
        &SlaPolicy::default(),
        at(0),
        at(2 * day),
        at(10_000),
    );
    assert_eq!((m.alerts, m.suppressed_alerts, m.incidents), (7, 1, 3));
    let days: Vec<(&str, u64)> = m
        .alerts_per_day
        .iter()
        .map(|d| (d.day.as_str(), d.alerts))
        .collect();
    assert_eq!(days, [("2023-11-14", 6), ("2023-11-15", 1)]);
    assert_eq!(m.alerts_per_incident, Some(2.0));
    assert_eq!(m.reduction_ratio, Some(0.5));
    // Two closed incidents: ack 120 s, analysis 780 s, disposal 100 s, resolution 1000 s.
    assert_eq!(m.mtta_secs, Some(120.0));
    assert_eq!(
        m.mttr_secs,
        StageTimes {
            acknowledge: Some(120.0),
            analysis: Some(780.0),
            disposal: Some(100.0),
            resolution: Some(1000.0)
        }
    );
    // The open one missed acknowledgement (10,000 s > 180 s): 2 of 3 acknowledged in time.
    let ack = m.within_sla_pct.acknowledge.expect("ack");
    assert!((ack - 200.0 / 3.0).abs() < 1e-9, "{ack}");
    assert_eq!(m.within_sla_pct.analysis, Some(100.0));
    assert_eq!(m.within_sla_pct.resolution, Some(100.0));
    let noise: Vec<(&str, u64, f64)> = m
        .false_positive_rate_per_rule
        .iter()
        .map(|n| (n.rule_id.as_str(), n.closed, n.false_positive_rate))
        .collect();
    assert_eq!(
        noise,
        [("noisy", 2, 0.5), ("good", 1, 0.0)],
        "noisiest first, each incident once per rule"
    );
}

#[test]
fn empty_periods_have_no_ratios() {
    let m = SocMetrics::compute(&[], &[], &SlaPolicy::default(), at(0), at(1), at(1));
    assert_eq!((m.alerts, m.incidents), (0, 0));
    assert_eq!(
        (m.reduction_ratio, m.mtta_secs, m.within_sla_pct.resolution),
        (None, None, None)
    );
    assert!(m.false_positive_rate_per_rule.is_empty());
}
