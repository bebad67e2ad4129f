use garrison_cases::*;

use super::{at, in_review, new_incident};

#[test]
fn the_defaults_are_the_issues() {
    let policy = SlaPolicy::default();
    let t = policy.targets(Severity::Critical);
    assert_eq!(
        (t.acknowledge_secs, t.analysis_secs, t.disposal_secs),
        (180, 1200, 420)
    );
}

#[test]
fn clocks_start_stop_and_breach() {
    let w = Workflow::default_soc();
    let policy = SlaPolicy::default();
    let fresh = new_incident(&w);
    let status = sla_status(&fresh, &policy, at(100));
    assert_eq!(status[0].clock, Clock::Acknowledge);
    assert_eq!((status[0].elapsed_secs, status[0].breached), (100, false));
    assert_eq!(status[0].due, Some(at(180)));
    assert_eq!(
        (status[1].started, status[1].due),
        (None, None),
        "analysis not started"
    );
    assert!(sla_status(&fresh, &policy, at(181))[0].breached);
    assert!(
        !sla_status(&fresh, &policy, at(180))[0].breached,
        "due is still in time"
    );

    // Acknowledged at 120, analysed at 900 (780 s of analysis, within 1200).
    let review = in_review(&w);
    let status = sla_status(&review, &policy, at(5000));
    assert_eq!((status[0].elapsed_secs, status[0].breached), (120, false));
    assert_eq!((status[1].elapsed_secs, status[1].breached), (780, false));
    assert_eq!(status[1].stopped, Some(at(900)));
    assert_eq!(
        (status[2].elapsed_secs, status[2].breached),
        (4100, true),
        "disposal still running"
    );
}

#[test]
fn targets_follow_the_severity() {
    let w = Workflow::default_soc();
    let mut policy = SlaPolicy::default();
    policy.per_severity.insert(
        Severity::High,
        SlaTargets {
            acknowledge_secs: 60,
            analysis_secs: 600,
            disposal_secs: 300,
        },
    );
    let fresh = new_incident(&w); // high
    assert!(sla_status(&fresh, &policy, at(61))[0].breached);
    let mut low = fresh.clone();
    low.severity = Severity::Low;
    assert!(!sla_status(&low, &policy, at(61))[0].breached);
}

#[test]
fn breaches_are_raised_once_across_checks() {
    let w = Workflow::default_soc();
    let policy = SlaPolicy::default();
    let fresh = new_incident(&w);
    assert!(
        sla_breaches_between(&fresh, &policy, at(0), at(180)).is_empty(),
        "due exactly now: not yet"
    );
    let raised = sla_breaches_between(&fresh, &policy, at(180), at(200));
    assert_eq!(raised.len(), 1);
    assert_eq!(
        (raised[0].clock, raised[0].due),
        (Clock::Acknowledge, at(180))
    );
    assert!(sla_breaches_between(&fresh, &policy, at(200), at(300)).is_empty());
    let event = raised[0].timeline_event();
    assert_eq!(event.actor, "system");
    assert!(matches!(
        event.kind,
        TimelineKind::SlaBreached {
            clock: Clock::Acknowledge,
            ..
        }
    ));
    // Acknowledged in time: no breach, however late the check.
    let review = in_review(&w);
    let late = sla_breaches_between(&review, &policy, at(0), at(10_000));
    assert_eq!(
        late.iter().map(|b| b.clock).collect::<Vec<_>>(),
        [Clock::Disposal]
    );
}
