use garrison_cases::*;

use super::{analyst, at, in_review, new_incident, responder, step, to, viewer};

fn kinds(events: &[TimelineEvent]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e.kind {
            TimelineKind::Created { .. } => "created",
            TimelineKind::StateChanged { .. } => "state_changed",
            TimelineKind::Assigned { .. } => "assigned",
            TimelineKind::Transferred { .. } => "transferred",
            TimelineKind::FieldsChanged { .. } => "fields_changed",
            TimelineKind::Approved { .. } => "approved",
            TimelineKind::Rejected { .. } => "rejected",
            TimelineKind::ApprovalsReset { .. } => "approvals_reset",
            TimelineKind::Closed { .. } => "closed",
            TimelineKind::Reopened { .. } => "reopened",
            TimelineKind::Comment { .. } => "comment",
            TimelineKind::PlaybookAction { .. } => "playbook_action",
            TimelineKind::SlaBreached { .. } => "sla_breached",
            TimelineKind::Merged { .. } => "merged",
            TimelineKind::Split { .. } => "split",
            TimelineKind::AttachmentAdded { .. } => "attachment_added",
            TimelineKind::AttachmentRemoved { .. } => "attachment_removed",
            TimelineKind::System { .. } => "system",
        })
        .collect()
}

#[test]
fn an_incident_goes_the_whole_way_and_records_each_stage() {
    let w = Workflow::default_soc();
    let (fresh, created) = Incident::open(&w, "inc-1", "t", Severity::High, "system", at(0));
    assert_eq!(fresh.state, "new");
    assert!(matches!(created.kind, TimelineKind::Created { ref state } if state == "new"));
    let review = in_review(&w);
    assert_eq!(review.state, "review");
    assert_eq!(review.acknowledged, Some(at(120)), "left `new` at 120");
    assert_eq!(
        review.analysed,
        Some(at(900)),
        "entered the disposal stage at 900"
    );
    assert_eq!(review.closed, None);
    let bob = analyst("bob");
    let carol = analyst("carol");
    let once = step(&w, &review, Action::Approve, &bob, 950);
    let twice = step(&w, &once, Action::Approve, &carol, 960);
    let (closed, events) =
        apply(&w, &twice, to("closed"), &analyst("ana"), at(1000)).expect("close");
    assert_eq!(closed.state, "closed");
    assert_eq!(closed.closed, Some(at(1000)));
    assert_eq!(closed.updated, at(1000));
    assert_eq!(kinds(&events), ["state_changed", "closed"]);
    assert_eq!(
        closed.approvals.len(),
        2,
        "the approvals that closed it are kept"
    );
}

#[test]
fn viewers_can_do_nothing() {
    let w = Workflow::default_soc();
    let i = new_incident(&w);
    for action in [
        to("triage"),
        Action::Comment { text: "hi".into() },
        Action::Assign {
            assignee: Some("v".into()),
            team: None,
        },
        Action::Approve,
    ] {
        let err = apply(&w, &i, action, &viewer("vic"), at(1)).expect_err("viewer");
        assert!(matches!(err, TransitionError::Forbidden { .. }), "{err}");
    }
}

#[test]
fn required_fields_are_checked_on_entry() {
    let w = Workflow::default_soc();
    let i = new_incident(&w);
    let err = apply(&w, &i, to("triage"), &analyst("ana"), at(1)).expect_err("no assignee");
    assert_eq!(
        err,
        TransitionError::MissingFields {
            state: "triage".into(),
            fields: vec!["assignee".into()]
        }
    );
}

#[test]
fn only_defined_transitions_by_allowed_roles() {
    let w = Workflow::default_soc();
    let ana = analyst("ana");
    let i = step(
        &w,
        &new_incident(&w),
        Action::Assign {
            assignee: Some("ana".into()),
            team: None,
        },
        &ana,
        1,
    );
    assert_eq!(
        apply(&w, &i, to("analysis"), &ana, at(2)).expect_err("skip"),
        TransitionError::NoTransition {
            from: "new".into(),
            to: "analysis".into()
        }
    );
    assert_eq!(
        apply(&w, &i, to("limbo"), &ana, at(2)).expect_err("unknown"),
        TransitionError::UnknownState("limbo".into())
    );
    let i = step(&w, &i, to("triage"), &ana, 3);
    let i = step(&w, &i, to("analysis"), &responder("rex"), 4);
    let err = apply(&w, &i, to("review"), &responder("rex"), at(5)).expect_err("role");
    assert!(
        matches!(err, TransitionError::Forbidden { ref reason, .. } if reason.contains("admin, analyst")),
        "{err}"
    );
    // The responder may go through containment instead.
    let i = step(&w, &i, to("containment"), &responder("rex"), 6);
    assert_eq!(i.state, "containment");
}

#[test]
fn closing_needs_n_distinct_approvals() {
    let w = Workflow::default_soc();
    let ana = analyst("ana");
    let review = in_review(&w);
    assert_eq!(
        apply(&w, &review, to("closed"), &ana, at(1000)).expect_err("none"),
        TransitionError::ReviewIncomplete {
            state: "closed".into(),
            have: 0,
            required: 2
        }
    );
    let once = step(&w, &review, Action::Approve, &analyst("bob"), 950);
    assert_eq!(
        apply(&w, &once, Action::Approve, &analyst("bob"), at(951)).expect_err("twice"),
        TransitionError::AlreadyApproved("bob".into())
    );
    assert_eq!(
        apply(
            &w,
            &once,
            Action::Close {
                classification: Classification::TruePositive,
                to: None
            },
            &ana,
            at(1000)
        )
        .expect_err("one of two"),
        TransitionError::ReviewIncomplete {
            state: "closed".into(),
            have: 1,
            required: 2
        }
    );
    let twice = step(
        &w,
        &once,
        Action::Approve,
        &Actor::new("root", &[Role::Admin]),
        960,
    );
    let (closed, events) = apply(
        &w,
        &twice,
        Action::Close {
            classification: Classification::FalsePositive,
            to: None,
        },
        &ana,
        at(1000),
    )
    .expect("close");
    assert_eq!(closed.classification, Some(Classification::FalsePositive));
    assert_eq!(
        kinds(&events),
        ["fields_changed", "state_changed", "closed"]
    );
}

#[test]
fn reviewers_must_be_eligible_and_not_the_assignee() {
    let w = Workflow::default_soc();
    let review = in_review(&w);
    let err = apply(&w, &review, Action::Approve, &analyst("ana"), at(950)).expect_err("own");
    assert!(
        matches!(err, TransitionError::Forbidden { ref reason, .. } if reason.contains("assignee")),
        "{err}"
    );
    let err = apply(&w, &review, Action::Approve, &responder("rex"), at(950)).expect_err("role");
    assert!(
        matches!(err, TransitionError::Forbidden { ref reason, .. } if reason.contains("not a reviewer")),
        "{err}"
    );
    let early = new_incident(&w);
    assert_eq!(
        apply(&w, &early, Action::Approve, &analyst("bob"), at(1)).expect_err("not in review"),
        TransitionError::NotInReview {
            state: "new".into(),
            review_state: "review".into()
        }
    );
    // A reviewer named by user, whatever their role.
    let mut named = w.clone();
    if let Some(review) = named.review.as_mut() {
        review.users = vec!["rex".into()];
    }
    let approved = step(&named, &review, Action::Approve, &responder("rex"), 950);
    assert!(approved.approvals.contains("rex"));
    // Without a review policy there is nothing to approve.
    let mut none = w.clone();
    none.review = None;
    assert_eq!(
        apply(&none, &review, Action::Approve, &analyst("bob"), at(950)).expect_err("no review"),
        TransitionError::NoReview
    );
}

#[test]
fn rejection_drops_approvals_and_sends_the_incident_back() {
    let w = Workflow::default_soc();
    let once = step(&w, &in_review(&w), Action::Approve, &analyst("bob"), 950);
    let (back, events) = apply(
        &w,
        &once,
        Action::Reject {
            reason: "missing scope".into(),
        },
        &analyst("carol"),
        at(960),
    )
    .expect("reject");
    assert_eq!(back.state, "analysis");
    assert!(back.approvals.is_empty());
    assert_eq!(kinds(&events), ["rejected", "state_changed"]);
    assert!(matches!(
        apply(
            &w,
            &once,
            Action::Reject { reason: " ".into() },
            &analyst("carol"),
            at(960)
        ),
        Err(TransitionError::Invalid { what: "reason", .. })
    ));
    // Back in review, the earlier approval does not count.
    let again = step(&w, &back, to("review"), &analyst("ana"), 970);
    let one = step(&w, &again, Action::Approve, &analyst("carol"), 980);
    assert!(matches!(
        apply(&w, &one, to("closed"), &analyst("ana"), at(990)),
        Err(TransitionError::ReviewIncomplete { have: 1, .. })
    ));
}

#[test]
fn approvals_reset_when_leaving_review_or_changing_the_verdict() {
    let w = Workflow::default_soc();
    let once = step(&w, &in_review(&w), Action::Approve, &analyst("bob"), 950);
    let left = step(&w, &once, to("analysis"), &analyst("ana"), 955);
    assert!(left.approvals.is_empty());
    let (changed, events) = apply(
        &w,
        &once,
        Action::Update(IncidentUpdate {
            classification: Some(Classification::Benign),
            ..IncidentUpdate::default()
        }),
        &analyst("ana"),
        at(956),
    )
    .expect("update");
    assert!(changed.approvals.is_empty());
    assert_eq!(kinds(&events), ["fields_changed", "approvals_reset"]);
    // A reviewer who takes the incident over no longer counts.
    let (taken, events) = apply(
        &w,
        &once,
        Action::Assign {
            assignee: Some("bob".into()),
            team: None,
        },
        &analyst("bob"),
        at(957),
    )
    .expect("take");
    assert!(taken.approvals.is_empty());
    assert_eq!(kinds(&events), ["transferred", "approvals_reset"]);
}

#[test]
fn closed_incidents_only_take_comments_and_reopening() {
    let w = Workflow::default_soc();
    let review = in_review(&w);
    let twice = step(
        &w,
        &step(&w, &review, Action::Approve, &analyst("bob"), 950),
        Action::Approve,
        &analyst("carol"),
        951,
    );
    let closed = step(&w, &twice, to("closed"), &analyst("ana"), 1000);
    assert_eq!(
        apply(&w, &closed, to("triage"), &analyst("ana"), at(1001)).expect_err("closed"),
        TransitionError::IncidentClosed
    );
    step(
        &w,
        &closed,
        Action::Comment {
            text: "post-mortem done".into(),
        },
        &analyst("ana"),
        1002,
    );
    let err = apply(
        &w,
        &closed,
        Action::Reopen {
            reason: "new evidence".into(),
        },
        &responder("rex"),
        at(1003),
    )
    .expect_err("responder");
    assert!(matches!(err, TransitionError::Forbidden { .. }), "{err}");
    let (open, events) = apply(
        &w,
        &closed,
        Action::Reopen {
            reason: "new evidence".into(),
        },
        &analyst("ana"),
        at(1003),
    )
    .expect("reopen");
    assert_eq!(open.state, "triage");
    assert_eq!((open.closed, open.classification), (None, None));
    assert!(open.approvals.is_empty());
    assert_eq!(
        open.acknowledged,
        Some(at(120)),
        "first acknowledgement kept"
    );
    assert_eq!(kinds(&events), ["reopened", "state_changed"]);
    assert_eq!(
        apply(
            &w,
            &open,
            Action::Reopen {
                reason: "again".into()
            },
            &analyst("ana"),
            at(1004)
        )
        .expect_err("open"),
        TransitionError::NotClosed
    );
}

#[test]
fn close_finds_the_closed_state_or_explains() {
    let w = Workflow::default_soc();
    let ana = analyst("ana");
    let triage = step(
        &w,
        &step(
            &w,
            &new_incident(&w),
            Action::Assign {
                assignee: Some("ana".into()),
                team: None,
            },
            &ana,
            1,
        ),
        to("triage"),
        &ana,
        2,
    );
    let close = |to: Option<&str>| Action::Close {
        classification: Classification::Benign,
        to: to.map(String::from),
    };
    assert_eq!(
        apply(&w, &triage, close(None), &ana, at(3)).expect_err("no path"),
        TransitionError::NoTransition {
            from: "triage".into(),
            to: "a closed state".into()
        }
    );
    assert!(matches!(
        apply(&w, &triage, close(Some("analysis")), &ana, at(3)),
        Err(TransitionError::Invalid { what: "close", .. })
    ));
    // Two closed states after one state: the caller must pick.
    let mut two = w.clone();
    two.states.push(StateDef {
        name: "duplicate".into(),
        stage: Stage::Closed,
        required_fields: vec![],
    });
    two.transitions.push(Transition {
        from: "triage".into(),
        to: "duplicate".into(),
        roles: vec![Role::Analyst],
    });
    two.transitions.push(Transition {
        from: "triage".into(),
        to: "closed".into(),
        roles: vec![Role::Analyst],
    });
    two.review = None;
    assert!(matches!(
        apply(&two, &triage, close(None), &ana, at(3)),
        Err(TransitionError::Invalid { .. })
    ));
    let dup = step(&two, &triage, close(Some("duplicate")), &ana, 4);
    assert_eq!(
        (dup.state.as_str(), dup.classification),
        ("duplicate", Some(Classification::Benign))
    );
}

#[test]
fn assignment_and_transfer_are_recorded() {
    let w = Workflow::default_soc();
    let ana = analyst("ana");
    let (assigned, events) = apply(
        &w,
        &new_incident(&w),
        Action::Assign {
            assignee: Some("ana".into()),
            team: None,
        },
        &ana,
        at(1),
    )
    .expect("assign");
    assert_eq!(kinds(&events), ["assigned"]);
    let (same, events) = apply(
        &w,
        &assigned,
        Action::Assign {
            assignee: Some("ana".into()),
            team: None,
        },
        &ana,
        at(2),
    )
    .expect("again");
    assert!(events.is_empty());
    assert_eq!(
        same, assigned,
        "a no-op changes nothing, not even `updated`"
    );
    let (moved, events) = apply(
        &w,
        &assigned,
        Action::Assign {
            assignee: Some("bob".into()),
            team: Some("tier2".into()),
        },
        &ana,
        at(3),
    )
    .expect("transfer");
    assert_eq!(
        (moved.assignee.as_deref(), moved.team.as_deref()),
        (Some("bob"), Some("tier2"))
    );
    assert!(matches!(
        &events[0].kind,
        TimelineKind::Transferred { from_assignee: Some(a), assignee: Some(b), .. } if a == "ana" && b == "bob"
    ));
    let triage = step(&w, &moved, to("triage"), &ana, 4);
    assert_eq!(
        apply(
            &w,
            &triage,
            Action::Assign {
                assignee: None,
                team: None
            },
            &ana,
            at(5)
        )
        .expect_err("required"),
        TransitionError::MissingFields {
            state: "triage".into(),
            fields: vec!["assignee".into()]
        }
    );
    assert!(matches!(
        apply(
            &w,
            &triage,
            Action::Assign {
                assignee: Some(" ".into()),
                team: None
            },
            &ana,
            at(5)
        ),
        Err(TransitionError::Invalid {
            what: "assignee",
            ..
        })
    ));
}

#[test]
fn updates_record_each_change_and_validate_input() {
    let w = Workflow::default_soc();
    let ana = analyst("ana");
    let i = new_incident(&w);
    let update = IncidentUpdate {
        severity: Some(Severity::Critical),
        tlp: Some(Tlp::Red),
        pap: Some(Pap::Green),
        tags_add: vec!["ransomware".into(), " finance ".into()],
        incident_type: Some(" phishing ".into()),
        fields: [("ticket".to_string(), serde_json::json!("CHG-1"))].into(),
        ..IncidentUpdate::default()
    };
    let (next, events) = apply(&w, &i, Action::Update(update), &ana, at(1)).expect("update");
    assert_eq!(
        next.tags.iter().map(String::as_str).collect::<Vec<_>>(),
        ["finance", "ransomware"]
    );
    let TimelineKind::FieldsChanged { changes } = &events[0].kind else {
        panic!("{events:?}")
    };
    let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "incident_type",
            "severity",
            "tlp",
            "pap",
            "tags",
            "fields.ticket"
        ]
    );
    assert_eq!(next.incident_type.as_deref(), Some("phishing"));
    let removed = step(
        &w,
        &next,
        Action::Update(IncidentUpdate {
            tags_remove: vec!["finance".into()],
            fields: [("ticket".to_string(), serde_json::Value::Null)].into(),
            ..IncidentUpdate::default()
        }),
        &ana,
        2,
    );
    assert!(!removed.fields.contains_key("ticket"));
    assert_eq!(removed.tags.len(), 1);
    for bad in [
        IncidentUpdate {
            title: Some("".into()),
            ..IncidentUpdate::default()
        },
        IncidentUpdate {
            tags_add: vec!["".into()],
            ..IncidentUpdate::default()
        },
        IncidentUpdate {
            tags_add: (0..65).map(|i| format!("t{i}")).collect(),
            ..IncidentUpdate::default()
        },
        IncidentUpdate {
            fields: [(String::new(), serde_json::json!(1))].into(),
            ..IncidentUpdate::default()
        },
    ] {
        assert!(matches!(
            apply(&w, &i, Action::Update(bad), &ana, at(3)),
            Err(TransitionError::Invalid { .. })
        ));
    }
}

#[test]
fn custom_required_fields_gate_their_state() {
    let mut w = Workflow::default_soc();
    if let Some(s) = w.states.iter_mut().find(|s| s.name == "containment") {
        s.required_fields.push("change_ticket".into());
    }
    let ana = analyst("ana");
    let mut i = step(
        &w,
        &new_incident(&w),
        Action::Assign {
            assignee: Some("ana".into()),
            team: None,
        },
        &ana,
        1,
    );
    i = step(&w, &i, to("triage"), &ana, 2);
    i = step(&w, &i, to("analysis"), &ana, 3);
    assert_eq!(
        apply(&w, &i, to("containment"), &ana, at(4)).expect_err("ticket"),
        TransitionError::MissingFields {
            state: "containment".into(),
            fields: vec!["change_ticket".into()]
        }
    );
    i = step(
        &w,
        &i,
        Action::Update(IncidentUpdate {
            fields: [("change_ticket".to_string(), serde_json::json!("CHG-7"))].into(),
            ..IncidentUpdate::default()
        }),
        &ana,
        5,
    );
    assert_eq!(
        step(&w, &i, to("containment"), &ana, 6).state,
        "containment"
    );
}

#[test]
fn comments_carry_their_mentions() {
    let w = Workflow::default_soc();
    let (_, events) = apply(
        &w,
        &new_incident(&w),
        Action::Comment {
            text: "@bob please check, cc @carol.d and @bob; mail ana@example.com.".into(),
        },
        &analyst("ana"),
        at(1),
    )
    .expect("comment");
    assert!(
        matches!(&events[0].kind, TimelineKind::Comment { mentions, .. } if mentions == &["bob", "carol.d"])
    );
    assert_eq!(mentions("@x. @-y @ z @_w"), ["x", "_w"]);
    assert!(matches!(
        apply(
            &w,
            &new_incident(&w),
            Action::Comment { text: "  ".into() },
            &analyst("ana"),
            at(1)
        ),
        Err(TransitionError::Invalid {
            what: "comment",
            ..
        })
    ));
}

#[test]
fn an_incident_in_a_state_the_workflow_lacks_is_refused() {
    let w = Workflow::default_soc();
    let mut i = new_incident(&w);
    i.state = "legacy".into();
    assert_eq!(
        apply(&w, &i, to("triage"), &analyst("ana"), at(1)).expect_err("unknown"),
        TransitionError::UnknownState("legacy".into())
    );
}

#[test]
fn error_messages_read_well() {
    let errors = [
        TransitionError::Forbidden {
            actor: "vic".into(),
            action: "change the state",
            reason: "viewers can only read incidents".into(),
        },
        TransitionError::UnknownState("limbo".into()),
        TransitionError::NoTransition {
            from: "new".into(),
            to: "closed".into(),
        },
        TransitionError::MissingFields {
            state: "closed".into(),
            fields: vec!["classification".into(), "assignee".into()],
        },
        TransitionError::ReviewIncomplete {
            state: "closed".into(),
            have: 1,
            required: 2,
        },
        TransitionError::NotInReview {
            state: "new".into(),
            review_state: "review".into(),
        },
        TransitionError::NoReview,
        TransitionError::AlreadyApproved("bob".into()),
        TransitionError::IncidentClosed,
        TransitionError::NotClosed,
        TransitionError::Invalid {
            what: "comment",
            reason: "must not be empty".into(),
        },
    ];
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!(text.join("\n"));
}

#[test]
fn actions_and_timeline_entries_have_a_stable_json_shape() {
    let action: Action =
        serde_json::from_str(r#"{"action":"close","classification":"false_positive"}"#)
            .expect("close");
    assert_eq!(
        action,
        Action::Close {
            classification: Classification::FalsePositive,
            to: None
        }
    );
    let action: Action =
        serde_json::from_str(r#"{"action":"update","severity":"critical","tags_add":["x"]}"#)
            .expect("update");
    assert!(matches!(
        action,
        Action::Update(IncidentUpdate {
            severity: Some(Severity::Critical),
            ..
        })
    ));
    let event = TimelineEvent {
        time: at(0),
        actor: "ana".into(),
        kind: TimelineKind::StateChanged {
            from: "new".into(),
            to: "triage".into(),
        },
    };
    assert_eq!(
        serde_json::to_value(&event).expect("json"),
        serde_json::json!({"time": "2023-11-14T22:13:20Z", "actor": "ana", "type": "state_changed", "from": "new", "to": "triage"})
    );
    let back: TimelineEvent =
        serde_json::from_value(serde_json::to_value(&event).expect("json")).expect("back");
    assert_eq!(back, event);
}
