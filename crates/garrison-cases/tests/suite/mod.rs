mod metrics;
mod properties;
mod sla;
mod transitions;
mod triage;
mod workflow;

use garrison_cases::*;

pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("time")
}

pub fn analyst(name: &str) -> Actor {
    Actor::new(name, &[Role::Analyst])
}

pub fn responder(name: &str) -> Actor {
    Actor::new(name, &[Role::Responder])
}

pub fn viewer(name: &str) -> Actor {
    Actor::new(name, &[Role::Viewer])
}

/// A new incident under the default workflow, created at `at(0)`.
pub fn new_incident(workflow: &Workflow) -> Incident {
    Incident::open(
        workflow,
        "inc-1",
        "Mimikatz on ws1",
        Severity::High,
        "system",
        at(0),
    )
    .0
}

/// Applies and unwraps, for the steps of a test that are not the point.
pub fn step(
    workflow: &Workflow,
    incident: &Incident,
    action: Action,
    actor: &Actor,
    t: i64,
) -> Incident {
    match apply(workflow, incident, action.clone(), actor, at(t)) {
        Ok((next, _)) => next,
        Err(e) => panic!("{action:?} by {} failed: {e}", actor.user),
    }
}

pub fn to(state: &str) -> Action {
    Action::Transition { to: state.into() }
}

/// Default workflow, taken to `review` by ana (assignee) with a classification.
pub fn in_review(workflow: &Workflow) -> Incident {
    let ana = analyst("ana");
    let mut i = new_incident(workflow);
    i = step(
        workflow,
        &i,
        Action::Assign {
            assignee: Some("ana".into()),
            team: None,
        },
        &ana,
        60,
    );
    i = step(workflow, &i, to("triage"), &ana, 120);
    i = step(workflow, &i, to("analysis"), &ana, 300);
    i = step(
        workflow,
        &i,
        Action::Update(IncidentUpdate {
            classification: Some(Classification::TruePositive),
            ..IncidentUpdate::default()
        }),
        &ana,
        400,
    );
    step(workflow, &i, to("review"), &ana, 900)
}
