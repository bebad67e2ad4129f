use garrison_cases::*;

#[test]
fn the_default_soc_workflow_is_valid_and_has_the_issue_states() {
    let w = Workflow::default_soc();
    assert_eq!(w.validate(), Ok(()));
    let names: Vec<&str> = w.states.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "new",
            "triage",
            "analysis",
            "containment",
            "review",
            "closed"
        ]
    );
    let review = w.review.as_ref().expect("review");
    assert_eq!((review.required, review.gates.as_str()), (2, "closed"));
}

#[test]
fn a_workflow_round_trips_through_json() {
    let w = Workflow::default_soc();
    let text = serde_json::to_string_pretty(&w).expect("json");
    assert_eq!(Workflow::from_json(&text).expect("parse"), w);
}

#[test]
fn a_workflow_is_read_from_yaml() {
    let text = r#"
name: small
version: 3
initial: open
reopen_to: open
states:
  - {name: open, stage: acknowledge}
  - {name: working, stage: analysis, required_fields: [assignee]}
  - {name: done, stage: closed, required_fields: [classification]}
transitions:
  - {from: open, to: working, roles: [analyst, responder]}
  - {from: working, to: done, roles: [analyst]}
review:
  state: working
  gates: done
  reject_to: working
  required: 1
  users: [lead]
"#;
    let w = Workflow::from_yaml(text).expect("valid");
    assert_eq!(w.version, 3);
    assert_eq!(w.state("working").map(|s| s.stage), Some(Stage::Analysis));
    assert_eq!(
        w.review.as_ref().map(|r| r.users.clone()),
        Some(vec!["lead".to_string()])
    );
}

#[test]
fn unknown_keys_and_bad_syntax_are_parse_errors() {
    let err = Workflow::from_json(
        r#"{"name":"x","initial":"a","reopen_to":"a","states":[],"transitions":[],"colour":"red"}"#,
    )
    .expect_err("unknown key");
    assert!(
        matches!(err, WorkflowError::Parse { format: "JSON", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("colour"), "{err}");
    let err = Workflow::from_yaml("name: [unclosed").expect_err("syntax");
    assert!(
        matches!(err, WorkflowError::Parse { format: "YAML", .. }),
        "{err}"
    );
}

#[test]
fn every_error_is_reported_with_its_place() {
    let broken = Workflow {
        name: " ".into(),
        version: 0,
        initial: "start".into(),
        reopen_to: "done".into(),
        states: vec![
            StateDef {
                name: "new".into(),
                stage: Stage::Acknowledge,
                required_fields: vec!["assignee".into(), "assignee".into()],
            },
            StateDef {
                name: "new".into(),
                stage: Stage::Analysis,
                required_fields: vec![],
            },
            StateDef {
                name: "island".into(),
                stage: Stage::Analysis,
                required_fields: vec![],
            },
            StateDef {
                name: "done".into(),
                stage: Stage::Closed,
                required_fields: vec![],
            },
        ],
        transitions: vec![
            Transition {
                from: "new".into(),
                to: "nowhere".into(),
                roles: vec![Role::Analyst],
            },
            Transition {
                from: "new".into(),
                to: "new".into(),
                roles: vec![],
            },
            Transition {
                from: "done".into(),
                to: "new".into(),
                roles: vec![Role::Viewer],
            },
            Transition {
                from: "new".into(),
                to: "nowhere".into(),
                roles: vec![Role::Analyst],
            },
        ],
        review: Some(ReviewPolicy {
            state: "review".into(),
            gates: "done".into(),
            reject_to: "done".into(),
            required: 3,
            users: vec!["a".into(), "b".into()],
            roles: vec![],
            allow_assignee: false,
        }),
    };
    let errors = broken.validate().expect_err("invalid");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!(text.join("\n"));
    // The Display of the whole error lists them all too.
    let all = WorkflowError::Invalid(errors.clone()).to_string();
    assert!(
        all.starts_with(&format!("workflow has {} error(s)", errors.len())),
        "{all}"
    );
}

fn minimal() -> Workflow {
    Workflow {
        name: "w".into(),
        version: 1,
        initial: "a".into(),
        reopen_to: "a".into(),
        states: vec![
            StateDef {
                name: "a".into(),
                stage: Stage::Acknowledge,
                required_fields: vec![],
            },
            StateDef {
                name: "z".into(),
                stage: Stage::Closed,
                required_fields: vec![],
            },
        ],
        transitions: vec![Transition {
            from: "a".into(),
            to: "z".into(),
            roles: vec![Role::Analyst],
        }],
        review: None,
    }
}

fn paths(w: &Workflow) -> Vec<String> {
    w.validate()
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.path)
        .collect()
}

#[test]
fn a_workflow_without_a_terminal_state_is_refused() {
    let mut w = minimal();
    assert_eq!(w.validate(), Ok(()));
    w.states[1].stage = Stage::Analysis;
    let errors = w.validate().expect_err("no terminal");
    assert!(
        errors
            .iter()
            .any(|e| e.path == "states" && e.message.contains("no terminal state")),
        "{errors:?}"
    );
}

#[test]
fn unreachable_states_and_unreachable_terminals_are_named() {
    let mut w = minimal();
    w.transitions.clear();
    w.transitions.push(Transition {
        from: "a".into(),
        to: "b".into(),
        roles: vec![Role::Analyst],
    });
    w.states.push(StateDef {
        name: "b".into(),
        stage: Stage::Analysis,
        required_fields: vec![],
    });
    let errors = w.validate().expect_err("unreachable");
    assert!(
        errors
            .iter()
            .any(|e| e.path == "states[1]" && e.message.contains("\"z\" cannot be reached")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.path == "transitions"
                && e.message.contains("no terminal state can be reached")),
        "{errors:?}"
    );
}

#[test]
fn review_needs_reviewers_and_n_at_most_m() {
    let mut w = minimal();
    w.review = Some(ReviewPolicy {
        state: "a".into(),
        gates: "z".into(),
        reject_to: "a".into(),
        required: 2,
        users: vec!["only-one".into()],
        roles: vec![],
        allow_assignee: false,
    });
    assert_eq!(paths(&w), ["review.required"]);
    let review = w.review.as_mut().expect("review");
    // With a role, M is open-ended: N = 2 is fine.
    review.roles.push(Role::Analyst);
    assert_eq!(paths(&w), Vec::<String>::new());
    let review = w.review.as_mut().expect("review");
    review.required = 0;
    review.roles = vec![Role::Viewer];
    review.users.clear();
    assert_eq!(paths(&w), ["review.required", "review.roles"]);
    let review = w.review.as_mut().expect("review");
    review.roles.clear();
    assert!(paths(&w).contains(&"review".to_string()));
}

#[test]
fn the_initial_and_reopen_states_must_not_be_terminal() {
    let mut w = minimal();
    w.reopen_to = "z".into();
    assert_eq!(paths(&w), ["reopen_to"]);
    w.reopen_to = "ghost".into();
    assert_eq!(paths(&w), ["reopen_to"]);
}
