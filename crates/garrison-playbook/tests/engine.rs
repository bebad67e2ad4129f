//! The executor as a pure state machine: every step kind, error path, timer and lease.

use crate::common::*;
use garrison_playbook::*;
use proptest::prelude::*;
use serde_json::json;

const CHAIN: &str = r#"
name: chain
inputs:
  ip: {type: ip}
steps:
  - id: a
    action: core.set
    with: {ip: "{{ inputs.ip }}", n: 1}
  - id: b
    depends_on: [a]
    action: core.set
    with: {next: "{{ steps.a.output.n + 1 }}", ip: "ip={{ steps.a.output.ip }}"}
"#;

#[test]
fn actions_flow_outputs_through_templates() {
    let mut s = Sim::new(CHAIN, json!({"ip": "10.1.2.3"}));
    let calls = s.take_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "a");
    assert_eq!(calls[0].4, json!({"ip": "10.1.2.3", "n": 1}));
    s.ok("a", None, 1, calls[0].4.clone());
    let calls = s.take_calls();
    assert_eq!(calls[0].4, json!({"next": 2, "ip": "ip=10.1.2.3"}));
    let effs = s.ok("b", None, 1, json!({}));
    assert!(effs.contains(&Effect::Complete {
        status: RunStatus::Succeeded
    }));
    assert_eq!(s.st.status, RunStatus::Succeeded);
    let a = s.st.step("a").expect("a");
    assert_eq!(a.attempts.len(), 1);
    assert_eq!(a.attempts[0].idempotency_key, "r1/a");
    assert!(a.started_at.is_some() && a.finished_at.is_some());
}

const RETRY: &str = r#"
name: retry
steps:
  - id: a
    action: core.log
    with: {message: x}
    retry: {max_attempts: 3, backoff: 2s, factor: 3}
    timeout: 10s
"#;

#[test]
fn retries_with_backoff_then_success() {
    let mut s = Sim::new(RETRY, json!({}));
    assert_eq!(s.take_calls().len(), 1);
    s.fail("a", 1, true);
    assert_eq!(s.status("a"), StepStatus::Retrying);
    let retry = s
        .timers()
        .into_iter()
        .find(|t| matches!(t.kind, TimerKind::Retry { .. }))
        .expect("retry timer");
    assert_eq!(retry.due, secs(t0(), 2));
    s.at(2);
    s.send(Event::TimerFired(retry.kind.clone()));
    let calls = s.take_calls();
    assert_eq!(calls[0].2, 2, "second attempt");
    s.effects.clear();
    s.fail("a", 2, true);
    let retry = s
        .timers()
        .into_iter()
        .find(|t| matches!(t.kind, TimerKind::Retry { .. }))
        .expect("retry timer");
    assert_eq!(retry.due, secs(t0(), 2 + 6), "backoff x3");
    // the same timer delivered twice starts one attempt
    s.at(8);
    s.send(Event::TimerFired(retry.kind.clone()));
    s.send(Event::TimerFired(retry.kind.clone()));
    let calls = s.take_calls();
    assert_eq!(calls.len(), 1);
    s.ok("a", None, 3, json!({"ok": true}));
    assert_eq!(s.st.status, RunStatus::Succeeded);
    assert_eq!(s.st.step("a").expect("a").attempts.len(), 3);
}

#[test]
fn retries_exhausted_fail_the_run_and_stale_results_are_ignored() {
    let mut s = Sim::new(RETRY, json!({}));
    for attempt in 1..=3 {
        s.fail("a", attempt, true);
        if attempt < 3 {
            s.send(Event::TimerFired(TimerKind::Retry {
                step: "a".into(),
                item: None,
                attempt: attempt + 1,
            }));
        }
    }
    assert_eq!(s.st.status, RunStatus::Failed);
    assert!(s
        .st
        .error
        .as_deref()
        .unwrap_or("")
        .contains("step `a` failed"));
    // a late answer for attempt 1 changes nothing
    s.ok("a", None, 1, json!({}));
    assert_eq!(s.st.status, RunStatus::Failed);
}

#[test]
fn permanent_failure_is_not_retried() {
    let mut s = Sim::new(RETRY, json!({}));
    s.fail("a", 1, false);
    assert_eq!(s.st.status, RunStatus::Failed);
}

#[test]
fn timeout_counts_as_a_failed_attempt() {
    let mut s = Sim::new(RETRY, json!({}));
    let t = s
        .timers()
        .into_iter()
        .find(|t| matches!(t.kind, TimerKind::StepTimeout { .. }))
        .expect("timeout timer");
    assert_eq!(t.due, secs(t0(), 10));
    s.at(10);
    let effs = s.send(Event::TimerFired(t.kind));
    assert!(effs
        .iter()
        .any(|e| matches!(e, Effect::CancelAction { .. })));
    assert_eq!(s.status("a"), StepStatus::Retrying);
    // the answer to the timed-out attempt arrives late: ignored
    s.ok("a", None, 1, json!({}));
    assert_eq!(s.status("a"), StepStatus::Retrying);
}

const ON_ERROR: &str = r#"
name: onerr
steps:
  - id: a
    action: core.log
    with: {message: x}
    on_error: continue
  - id: b
    depends_on: [a]
    action: core.log
    with: {message: "a said {{ steps.a.error }}"}
  - id: c
    depends_on: [b]
    action: core.log
    with: {message: x}
    on_error: {goto: handler}
  - id: d
    depends_on: [c]
    action: core.log
    with: {message: x}
  - id: handler
    action: core.log
    with: {message: "c failed: {{ steps.c.error }}"}
"#;

#[test]
fn on_error_continue_and_goto() {
    let mut s = Sim::new(ON_ERROR, json!({}));
    s.take_calls();
    s.fail("a", 1, false);
    assert_eq!(s.status("a"), StepStatus::Failed);
    let calls = s.take_calls();
    assert_eq!(calls[0].0, "b");
    assert_eq!(calls[0].4["message"], "a said boom");
    s.ok("b", None, 1, json!({}));
    s.take_calls();
    assert_eq!(
        s.status("handler"),
        StepStatus::Pending,
        "handler waits for its router"
    );
    s.fail("c", 1, false);
    assert_eq!(s.status("d"), StepStatus::Skipped);
    let calls = s.take_calls();
    assert_eq!(calls[0].0, "handler");
    assert_eq!(calls[0].4["message"], "c failed: boom");
    s.ok("handler", None, 1, json!({}));
    assert_eq!(s.st.status, RunStatus::Succeeded);
}

#[test]
fn goto_handler_is_skipped_when_not_needed() {
    let mut s = Sim::new(ON_ERROR, json!({}));
    s.answer_all();
    assert_eq!(s.status("handler"), StepStatus::Skipped);
    assert_eq!(s.st.status, RunStatus::Succeeded);
}

const COND: &str = r#"
name: cond
inputs:
  score: {type: int}
steps:
  - id: check
    condition: {if: "inputs.score > 50", then: [high], else: [low]}
  - id: high
    action: core.set
    with: {v: high}
  - id: low
    action: core.set
    with: {v: low}
  - id: merge
    depends_on: [high, low]
    join: any
    action: core.set
    with: {done: true}
  - id: sw
    branch:
      cases:
        - {when: "inputs.score > 90", then: [critical]}
        - {when: "inputs.score > 10", then: [medium]}
      default: [none]
  - id: critical
    action: core.set
    with: {}
  - id: medium
    action: core.set
    with: {}
  - id: none
    action: core.set
    with: {}
  - id: guarded
    when: "inputs.score == 0"
    action: core.set
    with: {}
"#;

#[test]
fn condition_branch_join_any_and_when() {
    let mut s = Sim::new(COND, json!({"score": 70}));
    s.answer_all();
    assert_eq!(s.st.status, RunStatus::Succeeded);
    assert_eq!(s.status("high"), StepStatus::Succeeded);
    assert_eq!(s.status("low"), StepStatus::Skipped);
    assert_eq!(s.status("merge"), StepStatus::Succeeded);
    assert_eq!(s.status("critical"), StepStatus::Skipped);
    assert_eq!(s.status("medium"), StepStatus::Succeeded);
    assert_eq!(s.status("none"), StepStatus::Skipped);
    assert_eq!(s.status("guarded"), StepStatus::Skipped);
    assert_eq!(
        s.st.step("sw").expect("sw").output,
        Some(json!({"case": 1}))
    );

    let mut s = Sim::new(COND, json!({"score": 0}));
    s.answer_all();
    assert_eq!(s.status("low"), StepStatus::Succeeded);
    assert_eq!(s.status("none"), StepStatus::Succeeded);
    assert_eq!(s.status("guarded"), StepStatus::Succeeded);
}

const FOREACH: &str = r#"
name: fe
inputs:
  hosts: {type: list, items: string}
steps:
  - id: each
    for_each:
      items: "{{ inputs.hosts }}"
      concurrency: 2
      action: core.set
      with: {host: "{{ item }}", i: "{{ index }}"}
  - id: after
    depends_on: [each]
    action: core.set
    with: {n: "{{ steps.each.output | length }}"}
"#;

#[test]
fn for_each_respects_concurrency_and_keeps_order() {
    let mut s = Sim::new(FOREACH, json!({"hosts": ["a", "b", "c", "d", "e"]}));
    let calls = s.take_calls();
    assert_eq!(calls.len(), 2, "concurrency 2");
    assert_eq!(calls[0].4, json!({"host": "a", "i": 0}));
    s.ok("each", Some(1), 1, json!("B"));
    let calls = s.take_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, Some(2));
    s.ok("each", Some(0), 1, json!("A"));
    s.ok("each", Some(2), 1, json!("C"));
    let calls = s.take_calls();
    assert_eq!(calls.len(), 2);
    s.ok("each", Some(3), 1, json!("D"));
    s.ok("each", Some(4), 1, json!("E"));
    assert_eq!(
        s.st.step("each").expect("each").output,
        Some(json!(["A", "B", "C", "D", "E"]))
    );
    let calls = s.take_calls();
    assert_eq!(calls[0].4, json!({"n": 5}));
}

#[test]
fn for_each_empty_list_and_item_failure() {
    let mut s = Sim::new(FOREACH, json!({"hosts": []}));
    s.answer_all();
    assert_eq!(s.st.status, RunStatus::Succeeded);
    let mut s = Sim::new(FOREACH, json!({"hosts": ["a", "b", "c"]}));
    s.take_calls();
    let effs = s.send(Event::ActionFinished {
        step: "each".into(),
        item: Some(0),
        attempt: 1,
        result: Err(ActionFailure::permanent("no")),
        logs: vec![],
    });
    assert!(
        effs.iter()
            .any(|e| matches!(e, Effect::CancelAction { item: Some(1), .. })),
        "{effs:?}"
    );
    assert_eq!(s.st.status, RunStatus::Failed);
}

const PARALLEL: &str = r#"
name: par
steps:
  - id: start
    action: core.set
    with: {}
  - id: fan
    depends_on: [start]
    parallel: {steps: [xx, yy], join: JOIN}
  - id: xx
    action: core.set
    with: {}
  - id: yy
    action: core.set
    with: {}
  - id: done
    depends_on: [fan]
    action: core.set
    with: {got: "{{ steps.fan.output }}"}
"#;

#[test]
fn parallel_join_all() {
    let mut s = Sim::new(&PARALLEL.replace("JOIN", "all"), json!({}));
    s.answer_all();
    assert_eq!(s.st.status, RunStatus::Succeeded);
    let done = s.st.step("done").expect("done");
    assert_eq!(
        done.input.as_ref().expect("input")["got"],
        json!({"xx": {}, "yy": {}})
    );
}

#[test]
fn parallel_join_any_cancels_the_rest() {
    let mut s = Sim::new(&PARALLEL.replace("JOIN", "any"), json!({}));
    let c = s.take_calls();
    s.ok(&c[0].0, None, 1, json!({}));
    let calls = s.take_calls();
    assert_eq!(calls.len(), 2, "x and y start together");
    let effs = s.ok("yy", None, 1, json!({"winner": true}));
    assert!(effs
        .iter()
        .any(|e| matches!(e, Effect::CancelAction { step, .. } if step == "xx")));
    assert_eq!(s.status("xx"), StepStatus::Cancelled);
    assert_eq!(s.status("fan"), StepStatus::Succeeded);
    s.answer_all();
    assert_eq!(s.st.status, RunStatus::Succeeded);
}

const WAIT: &str = r#"
name: w
steps:
  - id: pause
    wait: {for: 1h}
  - id: until
    depends_on: [pause]
    wait: {until: "2030-01-02T00:00:00Z"}
  - id: nap
    depends_on: [until]
    action: core.sleep
    with: {for: 30s}
"#;

#[test]
fn waits_are_timers() {
    let mut s = Sim::new(WAIT, json!({}));
    let t = s.timers();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].due, secs(t0(), 3600));
    // a timer delivered early (clock skew) is re-armed, not honoured
    s.at(10);
    let effs = s.send(Event::TimerFired(t[0].kind.clone()));
    assert!(matches!(&effs[..], [Effect::ScheduleTimer(_)]), "{effs:?}");
    assert_eq!(s.status("pause"), StepStatus::Waiting);
    s.at(3600);
    s.send(Event::TimerFired(t[0].kind.clone()));
    assert_eq!(s.status("pause"), StepStatus::Succeeded);
    assert_eq!(
        s.st.step("until").expect("u").wait_until,
        Some(secs(t0(), 86400))
    );
    s.at(86400);
    s.send(Event::TimerFired(TimerKind::Wait {
        step: "until".into(),
    }));
    assert_eq!(
        s.status("nap"),
        StepStatus::Waiting,
        "core.sleep is a timer too"
    );
    assert!(s.take_calls().is_empty());
    s.at(86430);
    s.send(Event::TimerFired(TimerKind::Wait { step: "nap".into() }));
    assert_eq!(s.st.status, RunStatus::Succeeded);
}

const APPROVAL: &str = r#"
name: ap
inputs:
  host: {type: string}
steps:
  - id: ask
    approval:
      message: "Isolate {{ inputs.host }}?"
      approvers: {roles: [responder]}
      choices: [isolate, skip]
      timeout: 30m
      default: skip
      routes: {isolate: [isolate], skip: [skipped]}
  - id: isolate
    action: edr.isolate_host
    with: {host: "{{ inputs.host }}"}
  - id: skipped
    action: core.set
    with: {by: "{{ steps.ask.output.by }}"}
"#;

#[test]
fn approval_decision_routes() {
    let mut s = Sim::new(APPROVAL, json!({"host": "ws1"}));
    let req = s
        .effects
        .iter()
        .find(|e| matches!(e, Effect::RequestApproval { .. }))
        .cloned()
        .expect("request");
    let Effect::RequestApproval {
        message,
        expires_at,
        ..
    } = req
    else {
        unreachable!()
    };
    assert_eq!(message, "Isolate ws1?");
    assert_eq!(expires_at, Some(secs(t0(), 1800)));
    // a choice that does not exist is ignored
    s.send(Event::ApprovalDecided {
        step: "ask".into(),
        choice: "nuke".into(),
        by: "eve".into(),
    });
    assert_eq!(s.status("ask"), StepStatus::Waiting);
    s.send(Event::ApprovalDecided {
        step: "ask".into(),
        choice: "isolate".into(),
        by: "alice".into(),
    });
    let calls = s.take_calls();
    assert_eq!(calls[0].0, "isolate");
    assert_eq!(s.status("skipped"), StepStatus::Skipped);
    // the timeout timer later is harmless
    s.send(Event::TimerFired(TimerKind::ApprovalTimeout {
        step: "ask".into(),
    }));
    assert_eq!(
        s.st.step("ask").expect("ask").output.as_ref().expect("o")["by"],
        "alice"
    );
}

#[test]
fn approval_timeout_takes_the_default() {
    let mut s = Sim::new(APPROVAL, json!({"host": "ws1"}));
    s.at(1800);
    s.send(Event::TimerFired(TimerKind::ApprovalTimeout {
        step: "ask".into(),
    }));
    s.answer_all();
    assert_eq!(s.status("isolate"), StepStatus::Skipped);
    assert_eq!(
        s.st.step("skipped").expect("s").output,
        Some(json!({"by": "timeout"}))
    );
    assert_eq!(s.st.status, RunStatus::Succeeded);
}

const SUB_END: &str = r#"
name: sub
steps:
  - id: child
    playbook: {name: other, with: {x: 1}}
  - id: check
    depends_on: [child]
    condition: {if: "steps.child.output.ok", then: [good], else: [bad]}
  - id: good
    action: core.set
    with: {}
  - id: bad
    end: {status: failed, message: "child said no"}
  - id: after_bad
    depends_on: [bad]
    action: core.set
    with: {}
"#;

#[test]
fn sub_playbook_and_end() {
    let mut s = Sim::new(SUB_END, json!({}));
    let start = s
        .effects
        .iter()
        .find(|e| matches!(e, Effect::StartSubPlaybook { .. }))
        .cloned()
        .expect("start");
    assert_eq!(
        start,
        Effect::StartSubPlaybook {
            step: "child".into(),
            child_run_id: "r1.child".into(),
            playbook: "other".into(),
            version: None,
            inputs: json!({"x": 1})
        }
    );
    s.send(Event::SubPlaybookFinished {
        step: "child".into(),
        status: RunStatus::Succeeded,
        output: json!({"ok": false}),
    });
    assert_eq!(s.st.status, RunStatus::Failed);
    assert_eq!(s.st.error.as_deref(), Some("child said no"));
    assert_eq!(s.status("after_bad"), StepStatus::Cancelled);

    let mut s = Sim::new(SUB_END, json!({}));
    s.send(Event::SubPlaybookFinished {
        step: "child".into(),
        status: RunStatus::Failed,
        output: json!(null),
    });
    assert_eq!(s.st.status, RunStatus::Failed);
}

#[test]
fn cancellation_stops_everything() {
    let mut s = Sim::new(FOREACH, json!({"hosts": ["a", "b", "c"]}));
    let effs = s.send(Event::Cancel { by: "bob".into() });
    assert_eq!(
        effs.iter()
            .filter(|e| matches!(e, Effect::CancelAction { .. }))
            .count(),
        2
    );
    assert!(effs.contains(&Effect::Complete {
        status: RunStatus::Cancelled
    }));
    assert_eq!(s.st.status, RunStatus::Cancelled);
    assert!(s
        .st
        .steps
        .iter()
        .all(|st| st.status == StepStatus::Cancelled));
    // nothing happens after
    assert!(s.ok("each", Some(0), 1, json!(1)).is_empty());
}

#[test]
fn a_stored_cancel_request_cancels_when_it_fires() {
    let mut s = Sim::new(FOREACH, json!({"hosts": ["a", "b"]}));
    let effs = s.send(Event::TimerFired(TimerKind::Cancel { by: "bob".into() }));
    assert!(effs.contains(&Effect::Complete {
        status: RunStatus::Cancelled
    }));
    assert_eq!(s.st.error.as_deref(), Some("cancelled by bob"));
    // fired again (a second process, a restart): nothing more
    let effs = s.send(Event::TimerFired(TimerKind::Cancel { by: "bob".into() }));
    assert!(effs.is_empty(), "{effs:?}");
    assert_eq!(cancel_timer_id("r1"), "r1/cancel");
}

#[test]
fn rerun_from_failed_keeps_completed_steps() {
    let mut s = Sim::new(CHAIN, json!({"ip": "10.0.0.1"}));
    let c = s.take_calls();
    s.ok("a", None, 1, c[0].4.clone());
    s.take_calls();
    s.fail("b", 1, false);
    assert_eq!(s.st.status, RunStatus::Failed);
    s.send(Event::Rerun);
    let calls = s.take_calls();
    assert_eq!(calls.len(), 1, "only the failed step runs again");
    assert_eq!(calls[0].0, "b");
    assert_eq!(
        calls[0].2, 2,
        "attempts keep counting: a new idempotency key"
    );
    assert_eq!(calls[0].4["ip"], "ip=10.0.0.1", "same inputs");
    s.ok("b", None, 2, json!({}));
    assert_eq!(s.st.status, RunStatus::Succeeded);
    assert_eq!(s.st.step("a").expect("a").attempts.len(), 1);
    // rerun of a succeeded run is ignored
    s.send(Event::Rerun);
    assert!(s.take_calls().is_empty());
}

const LEASE: &str = r#"
name: lease
inputs:
  ip: {type: ip}
steps:
  - id: block
    action: fw.block_ip
    with: {ip: "{{ inputs.ip }}"}
    lease: {for: 24h, target: "{{ inputs.ip }}"}
"#;

#[test]
fn lease_expiry_undoes_the_action() {
    let mut s = Sim::new(LEASE, json!({"ip": "192.0.2.1"}));
    let c = s.take_calls();
    s.ok("block", None, 1, json!({"rule": 7}));
    assert_eq!(s.st.status, RunStatus::Succeeded);
    assert!(!s.st.is_quiescent(), "a lease is held");
    let lease = s.st.lease("r1/block").expect("lease").clone();
    assert_eq!(lease.target, json!("192.0.2.1"));
    assert_eq!(lease.input, c[0].4);
    assert_eq!(lease.undo_action, "fw.unblock_ip");
    assert_eq!(lease.expires_at, secs(t0(), 86400));
    let timer = s
        .timers()
        .into_iter()
        .find(|t| matches!(t.kind, TimerKind::LeaseExpiry { .. }))
        .expect("timer");
    assert_eq!(timer.due, secs(t0(), 86400));
    s.at(86400);
    let effs = s.send(Event::TimerFired(timer.kind));
    let Some(Effect::ExecuteUndo {
        action,
        input,
        attempt,
        idempotency_key,
        ..
    }) = effs.first().cloned()
    else {
        panic!("{effs:?}")
    };
    assert_eq!(action, "fw.unblock_ip");
    assert_eq!(input, json!({"ip": "192.0.2.1"}));
    assert_eq!(idempotency_key, "r1/block/undo/1");
    // the undo fails once: retried later
    s.send(Event::UndoFinished {
        lease: "r1/block".into(),
        attempt,
        result: Err(ActionFailure::retryable("fw down")),
    });
    assert_eq!(
        s.st.lease("r1/block").expect("l").status,
        LeaseStatus::Active
    );
    let later = s.st.lease("r1/block").expect("l").expires_at;
    s.now = later;
    let effs = s.send(Event::TimerFired(TimerKind::LeaseExpiry {
        lease: "r1/block".into(),
    }));
    assert!(matches!(
        effs.first(),
        Some(Effect::ExecuteUndo { attempt: 2, .. })
    ));
    s.send(Event::UndoFinished {
        lease: "r1/block".into(),
        attempt: 2,
        result: Ok(json!({})),
    });
    assert_eq!(
        s.st.lease("r1/block").expect("l").status,
        LeaseStatus::Released
    );
    assert!(s.st.is_quiescent());
}

#[test]
fn lease_extend_and_revoke() {
    let mut s = Sim::new(LEASE, json!({"ip": "192.0.2.1"}));
    s.answer_all();
    let until = secs(t0(), 2 * 86400);
    let effs = s.send(Event::ExtendLease {
        lease: "r1/block".into(),
        until,
        by: "bob".into(),
    });
    assert!(matches!(&effs[..], [Effect::ScheduleTimer(t)] if t.due == until));
    // the original timer fires: the lease now ends later, nothing happens
    s.at(86400);
    let effs = s.send(Event::TimerFired(TimerKind::LeaseExpiry {
        lease: "r1/block".into(),
    }));
    assert!(effs.is_empty(), "{effs:?}");
    // revoked early: the undo runs now
    let effs = s.send(Event::RevokeLease {
        lease: "r1/block".into(),
        by: "carol".into(),
    });
    assert!(matches!(effs.first(), Some(Effect::ExecuteUndo { .. })));
    assert_eq!(
        s.st.lease("r1/block").expect("l").status,
        LeaseStatus::Releasing
    );
    let log = &s.st.lease("r1/block").expect("l").log;
    assert!(log.iter().any(|l| l.message.contains("extended by bob")));
    assert!(log.iter().any(|l| l.message.contains("revoked by carol")));
}

#[test]
fn lease_checks_record_drift_once_and_its_end() {
    let mut s = Sim::new(LEASE, json!({"ip": "192.0.2.1"}));
    s.answer_all();
    let lease = |s: &Sim| s.st.lease("r1/block").expect("lease").clone();
    assert_eq!(lease(&s).check_action.as_deref(), Some("fw.check_ip"));
    assert!(lease(&s).last_check.is_none());
    let check = |s: &mut Sim, result| {
        s.send(Event::LeaseChecked {
            lease: "r1/block".into(),
            result,
        })
    };
    let effs = check(&mut s, Ok(json!({"in_place": true})));
    assert!(effs.is_empty(), "a check asks for nothing: {effs:?}");
    assert_eq!(lease(&s).last_check.expect("checked").in_place, Some(true));
    assert!(lease(&s).drift_since.is_none());
    // The target lost the block: drift, noted once on the lease and in the run's log.
    s.at(60);
    check(
        &mut s,
        Ok(json!({"in_place": false, "detail": "no rule for 192.0.2.1"})),
    );
    s.at(120);
    check(&mut s, Ok(json!({"in_place": false})));
    let l = lease(&s);
    assert_eq!(
        l.drift_since,
        Some(secs(t0(), 60)),
        "drift starts at the first miss"
    );
    assert_eq!(l.last_check.as_ref().and_then(|c| c.in_place), Some(false));
    assert_eq!(l.last_check.expect("checked").at, secs(t0(), 120));
    let drift_lines = |s: &Sim| {
        s.st.logs
            .iter()
            .filter(|e| e.message.contains("drift:"))
            .count()
    };
    assert_eq!(drift_lines(&s), 1, "{:?}", s.st.logs);
    assert!(s.st.logs[0].message.contains("no rule for 192.0.2.1"));
    // A failed check says nothing about the target: drift stays, in_place unknown.
    check(&mut s, Err(ActionFailure::retryable("firewall down")));
    let l = lease(&s);
    assert!(l.drift_since.is_some());
    assert_eq!(l.last_check.as_ref().and_then(|c| c.in_place), None);
    assert!(l
        .last_check
        .expect("checked")
        .detail
        .contains("firewall down"));
    // An answer without `in_place` is not taken as "in place".
    check(&mut s, Ok(json!({"status": 200})));
    assert_eq!(lease(&s).last_check.and_then(|c| c.in_place), None);
    // Back in place: drift ends.
    check(&mut s, Ok(json!({"in_place": true})));
    assert!(lease(&s).drift_since.is_none());
    assert!(lease(&s)
        .log
        .iter()
        .any(|e| e.message.contains("in place again")));
    // Once released, checks are ignored.
    s.send(Event::RevokeLease {
        lease: "r1/block".into(),
        by: "carol".into(),
    });
    s.send(Event::UndoFinished {
        lease: "r1/block".into(),
        attempt: 1,
        result: Ok(json!({})),
    });
    check(&mut s, Ok(json!({"in_place": false})));
    assert!(lease(&s).drift_since.is_none());
    assert_eq!(drift_lines(&s), 1);
}

#[test]
fn dry_run_shows_the_path() {
    let p = pb(APPROVAL);
    let st = dry_run(&p, &json!({"host": "ws9"}), json!(null), t0()).expect("inputs");
    assert_eq!(st.status, RunStatus::Succeeded);
    assert_eq!(
        st.step("ask").expect("ask").output.as_ref().expect("o")["choice"],
        "skip",
        "the default"
    );
    assert_eq!(st.step("isolate").expect("i").status, StepStatus::Skipped);
    assert_eq!(st.step("skipped").expect("s").status, StepStatus::Succeeded);

    let p = pb(LEASE);
    let st = dry_run(&p, &json!({"ip": "192.0.2.1"}), json!(null), t0()).expect("inputs");
    assert_eq!(
        st.step("block").expect("b").output,
        Some(json!({"rule_id": "r-1"})),
        "declared example"
    );
    assert_eq!(st.leases.len(), 1, "the lease it would take is shown");
    assert!(dry_run(&p, &json!({"ip": "nope"}), json!(null), t0()).is_err());
}

#[test]
fn state_round_trips_through_json() {
    let mut s = Sim::new(FOREACH, json!({"hosts": ["a", "b"]}));
    s.take_calls();
    let text = serde_json::to_string(&s.st).expect("ser");
    let back: RunState = serde_json::from_str(&text).expect("de");
    assert_eq!(back, s.st);
    assert_eq!(back.in_flight(&s.pb).len(), 2);
}

#[test]
fn template_errors_fail_the_step_with_the_place() {
    let mut s = Sim::new("name: t\ninputs:\n  o: {type: object}\nsteps:\n  - id: a\n    action: core.set\n    with: {x: '{{ inputs.o.missing.deeper }}'}\n", json!({"o": {}}));
    assert_eq!(s.st.status, RunStatus::Failed);
    let err = s.st.step("a").expect("a").error.clone().expect("error");
    assert!(err.starts_with("steps.a.with.x:1:"), "{err}");
    assert!(s.take_calls().is_empty());
}

fn arbitrary_event() -> impl Strategy<Value = Event> {
    let step = prop_oneof![
        Just("each".to_string()),
        Just("after".to_string()),
        Just("nope".to_string()),
        Just("ask".to_string())
    ];
    prop_oneof![
        Just(Event::Start),
        Just(Event::Rerun),
        Just(Event::Cancel { by: "x".into() }),
        (
            step.clone(),
            proptest::option::of(0usize..4),
            0u32..4,
            any::<bool>()
        )
            .prop_map(|(step, item, attempt, ok)| Event::ActionFinished {
                step,
                item,
                attempt,
                result: if ok {
                    Ok(json!({"v": 1}))
                } else {
                    Err(ActionFailure::retryable("x"))
                },
                logs: vec![],
            }),
        (step.clone(), proptest::option::of(0usize..4), 0u32..4).prop_map(
            |(step, item, attempt)| Event::TimerFired(TimerKind::Retry {
                step,
                item,
                attempt
            })
        ),
        step.clone()
            .prop_map(|step| Event::TimerFired(TimerKind::Wait { step })),
        step.clone().prop_map(|step| Event::ApprovalDecided {
            step,
            choice: "isolate".into(),
            by: "p".into()
        }),
        step.prop_map(|step| Event::SubPlaybookFinished {
            step,
            status: RunStatus::Failed,
            output: json!(null)
        }),
        Just(Event::RevokeLease {
            lease: "r1/block".into(),
            by: "p".into()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn advance_never_panics(events in proptest::collection::vec(arbitrary_event(), 0..30), which in 0usize..4) {
        let (yaml, inputs) = match which {
            0 => (FOREACH, json!({"hosts": ["a", "b", "c"]})),
            1 => (APPROVAL, json!({"host": "h"})),
            2 => (LEASE, json!({"ip": "192.0.2.1"})),
            _ => (ON_ERROR, json!({})),
        };
        let mut s = Sim::new(yaml, inputs);
        for (k, ev) in events.into_iter().enumerate() {
            s.at(k as i64 * 10);
            s.send(ev);
        }
    }
}

const SLOW_LEASE: &str = r#"
name: slow-lease
inputs:
  ip: {type: ip}
steps:
  - id: block
    action: fw.block_ip
    with: {ip: "{{ inputs.ip }}"}
    lease: {for: 24h, target: "{{ inputs.ip }}"}
    retry: {max_attempts: 2, backoff: 1s}
    timeout: 1s
"#;

/// A reversible action whose attempts time out may have been applied on the target: its lease
/// is held (and undone when it ends) even though no attempt answered, and every attempt of the
/// step carries one idempotency key, so a target that applied the first does not apply the
/// retry again.
#[test]
fn a_timed_out_reversible_action_keeps_one_key_and_holds_its_lease() {
    let mut s = Sim::new(SLOW_LEASE, json!({"ip": "192.0.2.7"}));
    let first = s.take_calls();
    assert_eq!(first.len(), 1);
    let timeout = |attempt: u32| TimerKind::StepTimeout {
        step: "block".into(),
        item: None,
        attempt,
    };
    s.at(1);
    s.send(Event::TimerFired(timeout(1)));
    let lease =
        s.st.lease("r1/block")
            .expect("a lease is held after a timeout")
            .clone();
    assert_eq!(lease.target, json!("192.0.2.7"));
    assert_eq!(lease.output["outcome"], "unknown", "{:?}", lease.output);
    s.at(2);
    s.send(Event::TimerFired(TimerKind::Retry {
        step: "block".into(),
        item: None,
        attempt: 2,
    }));
    assert_eq!(s.take_calls().len(), 1, "the retry is sent");
    s.at(3);
    s.send(Event::TimerFired(timeout(2)));
    assert_eq!(s.st.status, RunStatus::Failed);
    let step = s.st.step("block").expect("step");
    let keys: std::collections::BTreeSet<&str> = step
        .attempts
        .iter()
        .map(|a| a.idempotency_key.as_str())
        .collect();
    assert_eq!(keys.len(), 1, "one key for every attempt: {keys:?}");
    // Still held: undone when it ends, not forgotten.
    assert!(!s.st.is_quiescent(), "{:?}", s.st.leases);
    assert!(s.timers().iter().any(|t| matches!(
        &t.kind,
        TimerKind::LeaseExpiry { lease } if lease == "r1/block"
    )));
}

/// A target's `Retry-After` is honoured when it asks for longer than the step's backoff.
#[test]
fn a_retry_waits_at_least_what_the_target_asked() {
    let mut s = Sim::new(RETRY, json!({}));
    s.take_calls();
    s.send(Event::ActionFinished {
        step: "a".into(),
        item: None,
        attempt: 1,
        result: Err(
            ActionFailure::retryable("status 429").retry_after(std::time::Duration::from_secs(8))
        ),
        logs: vec![],
    });
    let retry = s
        .timers()
        .into_iter()
        .find(|t| matches!(t.kind, TimerKind::Retry { .. }))
        .expect("retry timer");
    assert_eq!(retry.due, secs(t0(), 8), "8 s asked, 2 s backoff");
}
