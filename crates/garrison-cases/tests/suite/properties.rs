use std::collections::BTreeSet;

use garrison_cases::*;
use proptest::prelude::*;
use serde_json::Value as Json;

use super::at;

const USERS: [(&str, Role); 5] = [
    ("ana", Role::Analyst),
    ("bob", Role::Analyst),
    ("carol", Role::Admin),
    ("rex", Role::Responder),
    ("vic", Role::Viewer),
];
const STATES: [&str; 7] = [
    "new",
    "triage",
    "analysis",
    "containment",
    "review",
    "closed",
    "limbo",
];

fn classification() -> impl Strategy<Value = Classification> {
    prop_oneof![
        Just(Classification::TruePositive),
        Just(Classification::FalsePositive),
        Just(Classification::Benign)
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..STATES.len()).prop_map(|i| Action::Transition { to: STATES[i].into() }),
        2 => (proptest::option::of(0..USERS.len()), proptest::option::of("[a-z]{1,4}"))
            .prop_map(|(u, team)| Action::Assign { assignee: u.map(|i| USERS[i].0.to_string()), team }),
        6 => Just(Action::Approve),
        1 => "[a-z ]{0,6}".prop_map(|reason| Action::Reject { reason }),
        4 => (classification(), proptest::option::of(0..STATES.len()))
            .prop_map(|(classification, to)| Action::Close { classification, to: to.map(|i| STATES[i].to_string()) }),
        1 => "[a-z ]{0,6}".prop_map(|reason| Action::Reopen { reason }),
        1 => "\\PC{0,20}".prop_map(|text| Action::Comment { text }),
        2 => (proptest::option::of(classification()), proptest::option::of(0..4usize)).prop_map(|(c, s)| {
            Action::Update(IncidentUpdate {
                classification: c,
                severity: s.map(|i| Severity::ALL[i]),
                ..IncidentUpdate::default()
            })
        }),
    ]
}

fn workflow() -> impl Strategy<Value = Workflow> {
    // The default, or one with named reviewers and a different N.
    (1u32..=3, any::<bool>(), any::<bool>()).prop_map(|(n, by_name, allow_assignee)| {
        let mut w = Workflow::default_soc();
        if let Some(review) = w.review.as_mut() {
            review.required = n;
            review.allow_assignee = allow_assignee;
            if by_name {
                review.roles.clear();
                review.users = vec!["ana".into(), "bob".into(), "carol".into(), "rex".into()];
            }
        }
        w
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever anyone does, in any order: no panic, and the workflow's rules hold after every
    /// accepted action.
    #[test]
    fn no_sequence_breaks_the_workflow(w in workflow(), from_review in any::<bool>(), steps in proptest::collection::vec((0..USERS.len(), action()), 0..60)) {
        prop_assert_eq!(w.validate(), Ok(()));
        let review = w.review.clone().expect("review");
        // Starting in review too, so random sequences reach the close often.
        let mut incident = if from_review {
            super::in_review(&w)
        } else {
            Incident::open(&w, "i", "t", Severity::Medium, "system", at(0)).0
        };
        for (t, (who, action)) in steps.into_iter().enumerate() {
            let (user, role) = USERS[who];
            let actor = Actor::new(user, &[role]);
            let now = at(t as i64 + 1000);
            match apply(&w, &incident, action, &actor, now) {
                Ok((next, events)) => {
                    prop_assert!(role != Role::Viewer, "a viewer changed the incident");
                    let state = w.state(&next.state);
                    prop_assert!(state.is_some(), "unknown state {}", next.state);
                    let was_closed = w.state(&incident.state).is_some_and(|s| s.is_terminal());
                    let is_closed = state.is_some_and(|s| s.is_terminal());
                    if is_closed && !was_closed {
                        prop_assert_eq!(&incident.state, &review.state, "closed without review");
                        prop_assert!(incident.approvals.len() >= review.required as usize,
                            "closed with {} of {} approvals", incident.approvals.len(), review.required);
                        if !review.allow_assignee {
                            if let Some(assignee) = &incident.assignee {
                                prop_assert!(!incident.approvals.contains(assignee), "the assignee approved");
                            }
                        }
                        prop_assert!(next.classification.is_some());
                        prop_assert_eq!(next.closed, Some(now));
                    }
                    if !next.approvals.is_empty() {
                        prop_assert!(next.state == review.state || is_closed, "approvals outside review in {}", next.state);
                    }
                    if !is_closed {
                        prop_assert_eq!(next.closed, None);
                    }
                    if let (Some(a), Some(b)) = (next.acknowledged, next.analysed) {
                        prop_assert!(a <= b);
                    }
                    prop_assert!(next.analysed.is_none() || next.acknowledged.is_some());
                    for event in &events {
                        prop_assert_eq!(event.time, now);
                        prop_assert_eq!(&event.actor, user);
                    }
                    incident = next;
                }
                Err(e) => {
                    // Every refusal explains itself.
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn mentions_and_observables_never_panic(text in "\\PC{0,200}", value in json_value()) {
        let names = mentions(&text);
        let unique: BTreeSet<&String> = names.iter().collect();
        prop_assert_eq!(unique.len(), names.len());
        let observables = extract_observables(&value);
        let mut sorted = observables.clone();
        sorted.sort();
        prop_assert_eq!(sorted, observables);
    }

    #[test]
    fn scores_stay_in_range_and_their_parts_add_up(
        count in 0u64..u64::MAX,
        level in 0usize..5,
        criticality in proptest::option::of(0usize..4),
        verdicts in proptest::collection::vec(0usize..4, 0..4),
        confidence in 0usize..3,
    ) {
        let levels = [Level::Informational, Level::Low, Level::Medium, Level::High, Level::Critical];
        let crit = [Criticality::Low, Criticality::Medium, Criticality::High, Criticality::Critical];
        let verdict = [Verdict::Benign, Verdict::Unknown, Verdict::Suspicious, Verdict::Malicious];
        let confidences = [Confidence::Low, Confidence::Medium, Confidence::High];
        let alert = AlertInput { alert_id: "a".into(), rule_id: "r".into(), level: levels[level], time: at(0), count, fields: Json::Null };
        let verdicts: Vec<IndicatorVerdict> = verdicts
            .into_iter()
            .map(|v| IndicatorVerdict { indicator: "x".into(), verdict: verdict[v], source: "s".into() })
            .collect();
        let s = score(&alert, criticality.map(|c| crit[c]), &verdicts, levels[level], confidences[confidence]);
        prop_assert!(s.total <= 100);
        prop_assert_eq!(s.parts.iter().map(|p| p.points).sum::<i32>(), s.total as i32);
    }

    /// However a checker slices time, each breach is raised exactly once.
    #[test]
    fn breaches_are_raised_exactly_once(mut cuts in proptest::collection::vec(0i64..5000, 0..20)) {
        let w = Workflow::default_soc();
        let (incident, _) = Incident::open(&w, "i", "t", Severity::Low, "system", at(0));
        let policy = SlaPolicy::default();
        cuts.push(0);
        cuts.push(5000);
        cuts.sort_unstable();
        let mut raised = Vec::new();
        for pair in cuts.windows(2) {
            raised.extend(sla_breaches_between(&incident, &policy, at(pair[0]), at(pair[1])));
        }
        prop_assert_eq!(raised.len(), 1, "{:?}", raised);
    }

    #[test]
    fn similarity_is_symmetric_and_bounded(
        a in proptest::collection::btree_set("[a-d]", 0..4),
        b in proptest::collection::btree_set("[a-d]", 0..4),
        ra in "[xy]", rb in "[xy]",
    ) {
        let profile = |id: &str, obs: &BTreeSet<String>, rule: &str| IncidentProfile {
            incident_id: id.into(),
            observables: obs.iter().map(|o| (ObservableKind::Domain, o.clone())).collect(),
            rule_ids: [rule.to_string()].into(),
            ..IncidentProfile::default()
        };
        let (pa, pb) = (profile("a", &a, &ra), profile("b", &b, &rb));
        let ab = similarity(&pa, &pb);
        prop_assert!((0.0..=1.0).contains(&ab.score));
        prop_assert!((ab.score - similarity(&pb, &pa).score).abs() < 1e-12);
    }
}

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<i64>().prop_map(Json::from),
        "\\PC{0,40}".prop_map(Json::String),
        "[0-9a-f]{32}|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}|https?://[a-z.@:]{0,20}|[a-z]{1,5}@[a-z]{1,5}\\.[a-z]{2,3}"
            .prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            proptest::collection::btree_map("[a-zA-Z.]{0,10}", inner, 0..5)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}
