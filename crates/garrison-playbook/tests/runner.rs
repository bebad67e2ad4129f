//! The runner over a store: restarts, timers as rows, idempotency, child runs, core actions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use garrison_playbook::*;
use serde_json::{json, Value as Json};

use crate::common::*;

/// An executor that counts calls per step and applies each side effect once per idempotency key
/// (as a well-behaved connector does), and can "crash" after applying one.
#[derive(Default)]
struct Counting {
    core: CoreActions,
    calls: Mutex<HashMap<String, usize>>,
    applied: Mutex<HashMap<String, usize>>,
    seen: Mutex<HashMap<String, Json>>,
    crash_on: Mutex<Option<String>>,
}

impl Counting {
    fn calls(&self, step: &str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .get(step)
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait]
impl ActionExecutor for Counting {
    async fn execute(&self, req: ActionRequest) -> ActionOutcome {
        *self
            .calls
            .lock()
            .expect("lock")
            .entry(req.step.clone())
            .or_default() += 1;
        if let Some(prev) = self.seen.lock().expect("lock").get(&req.idempotency_key) {
            return ActionOutcome::ok(prev.clone()); // already done: answer without doing it again
        }
        let outcome = if CoreActions::handles(&req.action) {
            self.core.execute(req.clone()).await
        } else {
            ActionOutcome::ok(json!({"done": req.action, "input": req.input}))
        };
        *self
            .applied
            .lock()
            .expect("lock")
            .entry(req.idempotency_key.clone())
            .or_default() += 1;
        if let Ok(v) = &outcome.result {
            self.seen
                .lock()
                .expect("lock")
                .insert(req.idempotency_key.clone(), v.clone());
        }
        let crash = self.crash_on.lock().expect("lock").as_deref() == Some(req.step.as_str());
        if crash {
            *self.crash_on.lock().expect("lock") = None;
            panic!("simulated crash after the side effect of {}", req.step);
        }
        outcome
    }
}

const TEN: &str = r#"
name: ten
inputs:
  ip: {type: ip}
steps:
  - {id: s1, action: core.set, with: {ip: "{{ inputs.ip }}"}}
  - {id: s2, depends_on: [s1], action: core.log, with: {message: "got {{ steps.s1.output.ip }}"}}
  - {id: s3, depends_on: [s2], action: core.transform, with: {query: ".ip | split(\".\") | length", input: "{{ steps.s1.output }}"}}
  - {id: s4, depends_on: [s3], action: core.set, with: {parts: "{{ steps.s3.output }}"}}
  - {id: s5, depends_on: [s4], action: fw.block_ip, with: {ip: "{{ inputs.ip }}"}, lease: {for: 1h, target: "{{ inputs.ip }}"}}
  - {id: s6, depends_on: [s5], for_each: {items: "{{ [1, 2, 3] }}", concurrency: 2, action: core.set, with: {n: "{{ item }}"}}}
  - {id: s7, depends_on: [s6], action: core.set, with: {sum: "{{ steps.s6.output | map(attribute='n') | sum }}"}}
  - {id: s8, depends_on: [s7], action: core.log, with: {message: "sum {{ steps.s7.output.sum }}"}}
"#;

fn runner(
    store: Arc<MemoryRunStore>,
    exec: Arc<Counting>,
    extra: &[(&str, u32)],
) -> Runner<MemoryRunStore, Counting> {
    let mut catalog = Catalog::new();
    catalog.add(pb(TEN), 1);
    for (yaml, v) in extra {
        catalog.add(pb(yaml), *v);
    }
    Runner::new(store, exec, catalog)
}

#[tokio::test]
async fn restart_mid_run_never_repeats_completed_steps() {
    let store = Arc::new(MemoryRunStore::new());
    let exec = Arc::new(Counting::default());
    {
        let r = runner(store.clone(), exec.clone(), &[]);
        r.start(
            "run-1",
            "ten",
            None,
            &json!({"ip": "192.0.2.7"}),
            json!({}),
            t0(),
        )
        .await
        .expect("start");
        let calls = r.drive("run-1", t0(), 3).await.expect("drive");
        assert_eq!(calls, 3);
        // the runner is dropped here: a kill -9 between two steps
    }
    // crash in the middle of a step: after the side effect, before its result is stored
    *exec.crash_on.lock().expect("lock") = Some("s4".into());
    {
        let r = runner(store.clone(), exec.clone(), &[]);
        let task = tokio::spawn(async move {
            let _ = r.drive("run-1", t0(), 10).await;
        });
        assert!(task.await.is_err(), "the simulated crash");
    }
    let (state, _) = store.load("run-1").await.expect("load").expect("run");
    assert_eq!(
        state.step("s4").expect("s4").status,
        StepStatus::Running,
        "the crash lost the result"
    );
    // a brand-new runner over the same store finishes the run
    let r = runner(store.clone(), exec.clone(), &[]);
    r.run_until_idle(t0()).await.expect("idle");
    let (state, _) = store.load("run-1").await.expect("load").expect("run");
    assert_eq!(state.status, RunStatus::Succeeded, "{state:#?}");
    for s in ["s1", "s2", "s3", "s5", "s7", "s8"] {
        assert_eq!(exec.calls(s), 1, "{s} executed once");
    }
    assert_eq!(exec.calls("s4"), 2, "s4 was resent after the crash...");
    assert_eq!(exec.calls("s6"), 3, "one call per item");
    for (key, n) in exec.applied.lock().expect("lock").iter() {
        assert_eq!(*n, 1, "side effect of {key} applied once");
    }
    assert_eq!(
        state.step("s4").expect("s4").attempts.len(),
        1,
        "...with the same attempt and key"
    );
    assert_eq!(
        state.step("s7").expect("s7").output,
        Some(json!({"sum": 6}))
    );
    assert_eq!(state.step("s3").expect("s3").output, Some(json!(4)));
    assert!(state
        .step("s2")
        .expect("s2")
        .logs
        .iter()
        .any(|l| l.message.contains("got 192.0.2.7")));

    // the lease's undo is a timer row: due in an hour, fired by yet another runner
    let timers = store.timers().await;
    let lease_timer = timers
        .iter()
        .find(|t| matches!(t.kind, TimerKind::LeaseExpiry { .. }))
        .expect("lease timer");
    assert_eq!(lease_timer.due, secs(t0(), 3600));
    assert_eq!(
        store.active_runs().await.expect("active"),
        vec!["run-1".to_string()],
        "held lease keeps it active"
    );
    drop(r);
    let r = runner(store.clone(), exec.clone(), &[]);
    r.run_until_idle(secs(t0(), 1800)).await.expect("idle");
    assert_eq!(exec.calls("run-1/s5"), 0, "not due yet");
    r.run_until_idle(secs(t0(), 3600)).await.expect("idle");
    assert_eq!(exec.calls("run-1/s5"), 1, "undo ran once");
    let (state, _) = store.load("run-1").await.expect("load").expect("run");
    assert_eq!(
        state.lease("run-1/s5").expect("lease").status,
        LeaseStatus::Released
    );
    assert!(store.active_runs().await.expect("active").is_empty());
    assert!(store
        .timers()
        .await
        .iter()
        .all(|t| !matches!(t.kind, TimerKind::LeaseExpiry { .. }) || t.due > secs(t0(), 3600)));
}

const WAITER: &str = r#"
name: waiter
steps:
  - id: pause
    wait: {for: 10m}
  - id: ask
    depends_on: [pause]
    approval: {approvers: {users: [alice]}, timeout: 1h, default: reject}
  - id: child
    depends_on: [ask]
    playbook: {name: ten, with: {ip: "198.51.100.1"}}
"#;

#[tokio::test]
async fn timers_approvals_and_child_runs_through_the_store() {
    let store = Arc::new(MemoryRunStore::new());
    let exec = Arc::new(Counting::default());
    let r = runner(store.clone(), exec.clone(), &[(WAITER, 1)]);
    r.start("w1", "waiter", Some(1), &json!({}), json!({}), t0())
        .await
        .expect("start");
    r.run_until_idle(t0()).await.expect("idle");
    let (st, v1) = store.load("w1").await.expect("l").expect("r");
    assert_eq!(st.step("pause").expect("p").status, StepStatus::Waiting);
    drop(r);
    let r = runner(store.clone(), exec.clone(), &[(WAITER, 1)]);
    r.run_until_idle(secs(t0(), 600)).await.expect("idle");
    let (st, v2) = store.load("w1").await.expect("l").expect("r");
    assert!(v2 > v1);
    assert_eq!(st.step("ask").expect("a").status, StepStatus::Waiting);
    let notes = r.take_notifications().await;
    assert!(matches!(notes.first(), Some((run, Effect::RequestApproval { .. })) if run == "w1"));
    r.dispatch(
        "w1",
        Event::ApprovalDecided {
            step: "ask".into(),
            choice: "approve".into(),
            by: "alice".into(),
        },
        secs(t0(), 700),
    )
    .await
    .expect("decide");
    r.run_until_idle(secs(t0(), 700)).await.expect("idle");
    let (child, _) = store.load("w1.child").await.expect("l").expect("child run");
    assert_eq!(child.status, RunStatus::Succeeded);
    assert_eq!(child.parent.as_ref().expect("parent").run_id, "w1");
    let (st, _) = store.load("w1").await.expect("l").expect("r");
    assert_eq!(st.status, RunStatus::Succeeded, "{st:#?}");
    assert_eq!(
        st.step("child").expect("c").output.as_ref().expect("o")["s7"],
        json!({"sum": 6})
    );
}

#[tokio::test]
async fn optimistic_version_conflicts_are_detected() {
    let store = MemoryRunStore::new();
    let p = pb(TEN);
    let st = RunState::new("x", &p, 1, &json!({"ip": "::1"}), json!({}), t0()).expect("state");
    store.create(&st, &[]).await.expect("create");
    store
        .save(&st, 1, Commit::default())
        .await
        .expect("save v1");
    let err = store
        .save(&st, 1, Commit::default())
        .await
        .expect_err("stale");
    assert!(matches!(
        err,
        StoreError::Conflict {
            expected: 1,
            found: 2,
            ..
        }
    ));
}

#[tokio::test]
async fn dry_run_through_the_runner() {
    let store = Arc::new(MemoryRunStore::new());
    let exec = Arc::new(Counting::default());
    let r = runner(store, exec.clone(), &[]);
    let st = r
        .start_dry_run("d1", "ten", None, &json!({"ip": "192.0.2.1"}), t0())
        .await
        .expect("dry");
    assert_eq!(st.status, RunStatus::Succeeded);
    assert_eq!(
        exec.calls.lock().expect("lock").len(),
        0,
        "no action executed"
    );
}

#[tokio::test]
async fn core_actions() {
    let core = CoreActions::new();
    let req = |action: &str, input: Json| ActionRequest {
        run_id: "r".into(),
        step: "s".into(),
        item: None,
        attempt: 1,
        idempotency_key: "r/s/1".into(),
        action: action.into(),
        input,
    };
    let out = core
        .execute(req(
            "core.transform",
            json!({"query": "[.[] * 2]", "input": [1, 2]}),
        ))
        .await;
    assert_eq!(out.result, Ok(json!([2, 4])));
    let out = core
        .execute(req(
            "core.transform",
            json!({"query": "range(5)", "input": 1}),
        ))
        .await;
    assert!(out.result.is_err());
    let out = core.execute(req("core.set", json!({"a": 1}))).await;
    assert_eq!(out.result, Ok(json!({"a": 1})));
    let out = core
        .execute(req("core.log", json!({"message": "hi", "level": "warn"})))
        .await;
    assert_eq!(out.logs, vec!["[warn] hi".to_string()]);
    let out = core.execute(req("core.nope", json!({}))).await;
    assert!(out.result.is_err());
}

#[tokio::test]
async fn core_http_against_a_local_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for status in ["200 OK", "503 Service Unavailable", "404 Not Found"] {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.expect("read");
            seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
            let body = r#"{"score": 91}"#;
            let resp = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            sock.write_all(resp.as_bytes()).await.expect("write");
        }
        seen
    });
    let core = CoreActions::new();
    let req = |key: &str| ActionRequest {
        run_id: "r".into(),
        step: "s".into(),
        item: None,
        attempt: 1,
        idempotency_key: key.into(),
        action: "core.http".into(),
        input: json!({"url": format!("http://{addr}/ip"), "method": "POST", "json": {"ip": "1.2.3.4"}, "query": {"v": 2}, "headers": {"x-test": "yes"}}),
    };
    let out = core.execute(req("k-1")).await;
    let body = out.result.expect("200");
    assert_eq!(body["status"], 200);
    assert_eq!(body["body"]["score"], 91);
    let out = core.execute(req("k-2")).await;
    assert!(
        out.result.as_ref().is_err_and(|f| f.retryable),
        "503 is retryable"
    );
    let out = core.execute(req("k-3")).await;
    assert!(
        out.result.as_ref().is_err_and(|f| !f.retryable),
        "404 is not"
    );
    let seen = server.await.expect("server");
    let first = seen[0].to_lowercase();
    assert!(first.starts_with("post /ip?v=2 "), "{first}");
    assert!(first.contains("idempotency-key: k-1"));
    assert!(first.contains("x-test: yes"));
    assert!(first.contains(r#"{"ip":"1.2.3.4"}"#));
}
