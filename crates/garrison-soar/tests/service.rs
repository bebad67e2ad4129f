//! The service over a real SQLite store: runs, saves, timers, blobs, crash resume, triggers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use garrison_model::TenantId;
use garrison_playbook::{ActionExecutor, ActionOutcome, ActionRequest, Event, RunStatus};
use garrison_soar::*;
use garrison_store::{PlaybookRepo, SqlStore, TenantRepo};
use serde_json::json;

async fn store() -> (Arc<SqlStore>, TenantId, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = SqlStore::connect(&url).await.expect("connect");
    let tenant = store.ensure_tenant("t").await.expect("tenant").id;
    (Arc::new(store), tenant, dir)
}

/// Counts external calls per idempotency key; they actions answer `{"done": action}`, or hang
/// forever (a process killed mid-call).
#[derive(Default)]
struct Counting {
    core: CoreActions,
    calls: Mutex<HashMap<String, usize>>,
    hang: bool,
}

impl Counting {
    fn calls(&self) -> HashMap<String, usize> {
        self.calls.lock().expect("lock").clone()
    }
}

#[async_trait]
impl ActionExecutor for Counting {
    async fn execute(&self, req: ActionRequest) -> ActionOutcome {
        if req.action.starts_with("core.") {
            return self.core.execute(req).await;
        }
        *self
            .calls
            .lock()
            .expect("lock")
            .entry(req.idempotency_key.clone())
            .or_default() += 1;
        if self.hang {
            std::future::pending::<()>().await;
        }
        ActionOutcome::ok(json!({"done": req.action}))
    }
}

const PURE: &str = r#"
name: pure
inputs:
  who: {type: string, default: world}
steps:
  - {id: a, action: core.set, with: {x: "hi {{ inputs.who }}"}}
  - {id: b, depends_on: [a], action: core.log, with: {message: "{{ steps.a.output.x }}"}}
  - {id: c, depends_on: [b], action: core.transform, with: {query: ".x | length", input: "{{ steps.a.output }}"}}
"#;

const EXTERNAL: &str = r#"
name: external
steps:
  - {id: a, action: core.set, with: {x: 1}}
  - {id: call, depends_on: [a], action: firewall.block_ip, with: {ip: "192.0.2.1"}}
  - {id: z, depends_on: [call], action: core.set, with: {after: "{{ steps.call.output.done }}"}}
"#;

fn service(repo: Arc<SqlStore>, executor: Arc<Counting>) -> Soar {
    Soar::with_executor(repo, SoarConfig::default(), executor, registry())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_pure_steps_finishes_before_the_answer_in_one_write() {
    let (repo, tenant, _dir) = store().await;
    let soar = service(repo.clone(), Arc::default());
    let v = soar
        .save_playbook(tenant, PURE, Some("t"))
        .await
        .expect("save");
    assert_eq!(v.version, 1);
    let run = soar
        .start_run(
            tenant,
            StartRun {
                playbook: "pure".into(),
                inputs: json!({"who": "ann"}),
                ..Default::default()
            },
        )
        .await
        .expect("start");
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.step("c").and_then(|s| s.output.clone()), Some(json!(6)));
    let (stored, rev) = soar
        .load(tenant, &run.run_id)
        .await
        .expect("load")
        .expect("run");
    assert_eq!(rev, 1, "pure steps are saved together");
    assert_eq!(stored, run);
    let record = repo
        .load_run(tenant, &run.run_id)
        .await
        .expect("load")
        .expect("row");
    assert_eq!(record.status, "succeeded");
    assert!(!record.active);
    // Bad inputs and unknown playbooks are errors, not runs.
    let err = soar
        .start_run(
            tenant,
            StartRun {
                playbook: "pure".into(),
                inputs: json!({"who": 5}),
                ..Default::default()
            },
        )
        .await
        .expect_err("bad input");
    assert!(matches!(err, SoarError::Inputs(_)), "{err}");
    assert!(matches!(
        soar.start_run(
            tenant,
            StartRun {
                playbook: "nope".into(),
                ..Default::default()
            }
        )
        .await,
        Err(SoarError::UnknownPlaybook { .. })
    ));
    // A disabled playbook does not start.
    repo.set_playbook_enabled(tenant, "pure", false)
        .await
        .expect("disable");
    assert!(matches!(
        soar.start_run(
            tenant,
            StartRun {
                playbook: "pure".into(),
                ..Default::default()
            }
        )
        .await,
        Err(SoarError::Refused(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_playbook_reports_every_error() {
    let (repo, tenant, _dir) = store().await;
    let soar = service(repo, Arc::default());
    let err = soar
        .save_playbook(
            tenant,
            "name: x\nsteps:\n  - {id: a, action: nope.x}\n  - {id: a, action: core.set}\n",
            None,
        )
        .await
        .expect_err("invalid");
    let SoarError::Invalid(errors) = err else {
        panic!("expected validation errors");
    };
    assert!(errors.len() >= 2, "{errors:?}");
    assert!(errors.iter().all(|e| e.line.is_some()), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_during_a_call_resends_that_attempt_once_with_its_key() {
    let (repo, tenant, _dir) = store().await;
    drop(repo);
    let url = format!("sqlite://{}", _dir.path().join("t.db").display());
    // The first "process": its call never answers; then the process dies.
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let hanging = Arc::new(Counting {
        hang: true,
        ..Default::default()
    });
    let run_id = {
        let hanging = hanging.clone();
        let url = url.clone();
        first
            .spawn(async move {
                let repo = Arc::new(SqlStore::connect(&url).await.expect("connect"));
                let soar = service(repo, hanging);
                soar.save_playbook(tenant, EXTERNAL, None)
                    .await
                    .expect("save");
                let run = soar
                    .start_run(
                        tenant,
                        StartRun {
                            playbook: "external".into(),
                            ..Default::default()
                        },
                    )
                    .await
                    .expect("start");
                assert_eq!(run.status, RunStatus::Running);
                run.run_id
            })
            .await
            .expect("join")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hanging.calls().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the call was never sent"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.shutdown_background(); // kill -9, as far as this run is concerned
    let key = format!("{run_id}/call");
    assert_eq!(hanging.calls(), HashMap::from([(key.clone(), 1)]));

    // The second process (its own connections to the same database) resumes: the same
    // attempt, the same key, once; then it finishes.
    let repo = Arc::new(SqlStore::connect(&url).await.expect("reconnect"));
    let counting = Arc::new(Counting::default());
    let soar = service(repo.clone(), counting.clone());
    soar.resume_all().await;
    let (run, _) = soar
        .load(tenant, &run_id)
        .await
        .expect("load")
        .expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        run.step("z").and_then(|s| s.output.clone()),
        Some(json!({"after": "firewall.block_ip"}))
    );
    assert_eq!(counting.calls(), HashMap::from([(key, 1)]));
    // Resuming again sends nothing: the step is done.
    soar.resume_all().await;
    assert_eq!(counting.calls().len(), 1);
    assert_eq!(counting.calls().values().sum::<usize>(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_are_timer_rows_fired_by_the_poller() {
    let (repo, tenant, _dir) = store().await;
    let soar = service(repo.clone(), Arc::default());
    soar.save_playbook(
        tenant,
        "name: w\nsteps:\n  - {id: p, wait: {for: 300ms}}\n  - {id: q, depends_on: [p], action: core.set, with: {done: true}}\n",
        None,
    )
    .await
    .expect("save");
    let run = soar
        .start_run(
            tenant,
            StartRun {
                playbook: "w".into(),
                ..Default::default()
            },
        )
        .await
        .expect("start");
    assert_eq!(run.status, RunStatus::Running);
    let timers = repo.run_timers(tenant, &run.run_id).await.expect("timers");
    assert_eq!(timers.len(), 1);
    assert_eq!(
        soar.fire_due_timers().await.expect("poll"),
        0,
        "not due yet"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(soar.fire_due_timers().await.expect("poll"), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (s, _) = soar
            .load(tenant, &run.run_id)
            .await
            .expect("load")
            .expect("run");
        if s.status == RunStatus::Succeeded {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(repo
        .run_timers(tenant, &run.run_id)
        .await
        .expect("timers")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_cancel_and_links() {
    let (repo, tenant, _dir) = store().await;
    let soar = service(repo.clone(), Arc::default());
    soar.save_playbook(
        tenant,
        "name: ask\nsteps:\n  - {id: ask, approval: {message: ok?, approvers: {users: [ann]}}}\n  - {id: next, depends_on: [ask], action: core.set, with: {v: \"{{ steps.ask.output.choice }}\"}}\n",
        None,
    )
    .await
    .expect("save");
    let start = || StartRun {
        playbook: "ask".into(),
        ..Default::default()
    };
    let run = soar.start_run(tenant, start()).await.expect("start");
    assert!(soar
        .decide(tenant, &run.run_id, "ask", "maybe", "ann")
        .await
        .is_err());
    let done = soar
        .decide(tenant, &run.run_id, "ask", "approve", "ann")
        .await
        .expect("decide");
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(
        done.step("next").and_then(|s| s.output.clone()),
        Some(json!({"v": "approve"}))
    );
    assert!(
        soar.decide(tenant, &run.run_id, "ask", "approve", "ann")
            .await
            .is_err(),
        "decided once"
    );

    let run = soar.start_run(tenant, start()).await.expect("start");
    let (secret, _) = soar
        .create_approval_link(tenant, &run.run_id, "ask", Duration::from_secs(60), None)
        .await
        .expect("link");
    assert!(soar.decide_by_link(&secret, "nope").await.is_err());
    let done = soar
        .decide_by_link(&secret, "reject")
        .await
        .expect("decide");
    assert_eq!(
        done.step("ask")
            .and_then(|s| s.output.clone())
            .map(|o| o["choice"].clone()),
        Some(json!("reject"))
    );
    assert!(
        soar.decide_by_link(&secret, "reject").await.is_err(),
        "single use"
    );
    assert!(soar.decide_by_link("gal_forged", "approve").await.is_err());

    let run = soar.start_run(tenant, start()).await.expect("start");
    let cancelled = soar
        .deliver(tenant, &run.run_id, Event::Cancel { by: "ann".into() })
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, RunStatus::Cancelled);

    assert!(may_approve(
        &garrison_playbook::Approvers {
            roles: vec![],
            users: vec!["ann".into()]
        },
        "ann",
        &["viewer"]
    ));
    assert!(!may_approve(
        &garrison_playbook::Approvers {
            roles: vec![],
            users: vec!["ann".into()]
        },
        "bob",
        &["responder"]
    ));
    assert!(may_approve(
        &garrison_playbook::Approvers::default(),
        "bob",
        &["responder"]
    ));
    assert!(!may_approve(
        &garrison_playbook::Approvers::default(),
        "bob",
        &["viewer"]
    ));
    assert!(may_approve(
        &garrison_playbook::Approvers {
            roles: vec!["analyst".into()],
            users: vec![]
        },
        "x",
        &["admin"]
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_outputs_are_stored_once_by_hash() {
    let (repo, tenant, _dir) = store().await;
    let soar = service(repo.clone(), Arc::default());
    soar.save_playbook(
        tenant,
        "name: big\ninputs:\n  text: {type: string}\nsteps:\n  - {id: a, action: core.set, with: {t: \"{{ inputs.text }}\"}}\n  - {id: b, depends_on: [a], action: core.set, with: {n: \"{{ steps.a.output.t | length }}\"}}\n",
        None,
    )
    .await
    .expect("save");
    let text = "x".repeat(BLOB_THRESHOLD + 10);
    let run = soar
        .start_run(
            tenant,
            StartRun {
                playbook: "big".into(),
                inputs: json!({"text": text}),
                ..Default::default()
            },
        )
        .await
        .expect("start");
    assert_eq!(
        run.step("b").and_then(|s| s.output.clone()),
        Some(json!({"n": BLOB_THRESHOLD + 10}))
    );
    let row = repo
        .load_run(tenant, &run.run_id)
        .await
        .expect("load")
        .expect("row");
    assert!(
        row.state.contains("\"$blob\":\"sha256:"),
        "output replaced by a reference"
    );
    assert!(
        row.state.len() < 2 * (BLOB_THRESHOLD + 10) + 4096,
        "the inputs are kept, the large output only by hash"
    );
    let (loaded, _) = soar
        .load(tenant, &run.run_id)
        .await
        .expect("load")
        .expect("run");
    assert_eq!(
        loaded.step("a").and_then(|s| s.output.clone()),
        Some(json!({"t": text}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_triggers_start_matching_enabled_playbooks_once() {
    let (repo, tenant, _dir) = store().await;
    let soar = service(repo.clone(), Arc::default());
    soar.save_playbook(
        tenant,
        "name: on-high\ntriggers:\n  - alert: {condition: \"alert.level == 'high'\"}\nsteps:\n  - {id: a, action: core.set, with: {id: \"{{ trigger.alert.alert_id }}\"}}\n",
        None,
    )
    .await
    .expect("save");
    soar.save_playbook(
        tenant,
        "name: manual-only\nsteps:\n  - {id: a, action: core.set, with: {}}\n",
        None,
    )
    .await
    .expect("save");
    let low = TriggerEvent::Alert(json!({"alert_id": "A1", "level": "low"}));
    assert!(soar
        .dispatch_trigger(tenant, &low, "A1")
        .await
        .expect("dispatch")
        .is_empty());
    let high = TriggerEvent::Alert(json!({"alert_id": "A2", "level": "high"}));
    let started = soar
        .dispatch_trigger(tenant, &high, "A2")
        .await
        .expect("dispatch");
    assert_eq!(started.len(), 1);
    let again = soar
        .dispatch_trigger(tenant, &high, "A2")
        .await
        .expect("dispatch");
    assert_eq!(again, started, "the same alert starts the same run");
    let (run, _) = soar
        .load(tenant, &started[0])
        .await
        .expect("load")
        .expect("run");
    assert_eq!(
        run.step("a").and_then(|s| s.output.clone()),
        Some(json!({"id": "A2"}))
    );
    let filter = garrison_store::RunFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        repo.list_runs(tenant, &filter, false)
            .await
            .expect("list")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_start_runs_with_one_id_per_occurrence() {
    let (repo, tenant, _dir) = store().await;
    let soar = service(repo.clone(), Arc::default());
    soar.save_playbook(
        tenant,
        "name: tick\ntriggers:\n  - schedule: {cron: '* * * * * *', timezone: Europe/Paris}\nsteps:\n  - {id: a, action: core.set, with: {at: \"{{ trigger.at }}\"}}\n",
        None,
    )
    .await
    .expect("save");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let tasks = soar.spawn_background(shutdown);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let _ = stop.send(true);
    for t in tasks {
        t.await.expect("task");
    }
    let filter = garrison_store::RunFilter {
        limit: 100,
        ..Default::default()
    };
    let runs = repo.list_runs(tenant, &filter, true).await.expect("list");
    assert!((1..=3).contains(&runs.len()), "{} runs", runs.len());
    for r in &runs {
        assert!(r.run_id.starts_with("sch-"), "{}", r.run_id);
        assert_eq!(r.status, "succeeded");
        assert!(r.state.contains("\"kind\":\"schedule\""));
    }
}

/// External calls that wait for the test to open a gate (an action call in flight for as long
/// as the test likes); counts calls per action.
#[derive(Default)]
struct Gated {
    core: CoreActions,
    open: tokio::sync::Notify,
    calls: Mutex<Vec<String>>,
}

impl Gated {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

#[async_trait]
impl ActionExecutor for Gated {
    async fn execute(&self, req: ActionRequest) -> ActionOutcome {
        if req.action.starts_with("core.") {
            return self.core.execute(req).await;
        }
        self.calls.lock().expect("lock").push(req.step.clone());
        self.open.notified().await;
        ActionOutcome::ok(json!({"done": req.action}))
    }
}

const TWO_CALLS: &str = r#"
name: two
steps:
  - {id: first, action: firewall.block_ip, with: {ip: "192.0.2.1"}}
  - {id: second, depends_on: [first], action: firewall.block_ip, with: {ip: "192.0.2.2"}}
"#;

async fn wait_until<F: Fn() -> bool>(what: &str, done: F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn status_of(soar: &Soar, tenant: TenantId, run: &str) -> RunStatus {
    soar.load(tenant, run)
        .await
        .expect("load")
        .expect("run")
        .0
        .status
}

/// A cancel while the run's call is in flight answers at once (stored as a request); when
/// the call returns, the run is cancelled before its next call is sent. A stored request is
/// also applied by another process (which never saw it in memory) while the first is busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_takes_effect_while_a_call_is_in_flight() {
    let (repo, tenant, _dir) = store().await;
    let gated = Arc::new(Gated::default());
    let soar = Soar::with_executor(
        repo.clone(),
        SoarConfig::default(),
        gated.clone(),
        registry(),
    );
    soar.save_playbook(tenant, TWO_CALLS, None)
        .await
        .expect("save");
    let start = || StartRun {
        playbook: "two".into(),
        ..Default::default()
    };

    // In this process: the request waits for the call, then no second call is sent.
    let run = soar.start_run(tenant, start()).await.expect("start");
    wait_until("the first call is sent", || gated.calls().len() == 1).await;
    let asked = std::time::Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(3),
        soar.cancel(tenant, &run.run_id, "ann"),
    )
    .await
    .expect("the cancel does not wait for the call")
    .expect("cancel");
    assert!(asked.elapsed() < Duration::from_secs(2));
    let CancelOutcome::Requested(now) = outcome else {
        panic!("the run is busy: the cancel is a request, got {outcome:?}");
    };
    assert_eq!(now.status, RunStatus::Running);
    let stored: Vec<String> = repo
        .run_timers(tenant, &run.run_id)
        .await
        .expect("timers")
        .into_iter()
        .map(|t| t.timer_id)
        .collect();
    assert!(
        stored.contains(&format!("{}/cancel", run.run_id)),
        "the request is stored: {stored:?}"
    );
    gated.open.notify_one();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status_of(&soar, tenant, &run.run_id).await != RunStatus::Cancelled {
        assert!(std::time::Instant::now() < deadline, "never cancelled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(gated.calls(), ["first"], "the second call is never sent");
    let (state, _) = soar
        .load(tenant, &run.run_id)
        .await
        .expect("load")
        .expect("run");
    assert_eq!(state.error.as_deref(), Some("cancelled by ann"));
    assert_eq!(
        state.step("first").map(|s| s.status),
        Some(garrison_playbook::StepStatus::Succeeded),
        "the call that was in flight keeps its result"
    );
    assert!(repo
        .run_timers(tenant, &run.run_id)
        .await
        .expect("timers")
        .is_empty());

    // Another process fires the stored request while this one is still in the call.
    let run = soar.start_run(tenant, start()).await.expect("start");
    wait_until("the call is sent", || gated.calls().len() == 2).await;
    let outcome = soar
        .cancel(tenant, &run.run_id, "bob")
        .await
        .expect("cancel");
    assert!(
        matches!(outcome, CancelOutcome::Requested(_)),
        "{outcome:?}"
    );
    let other = service(repo.clone(), Arc::default());
    assert!(other.fire_due_timers().await.expect("poll") >= 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status_of(&soar, tenant, &run.run_id).await != RunStatus::Cancelled {
        assert!(
            std::time::Instant::now() < deadline,
            "the other process did not apply it"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gated.open.notify_one();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gated.calls().len(), 2, "nothing more is sent");
    assert_eq!(
        status_of(&soar, tenant, &run.run_id).await,
        RunStatus::Cancelled
    );

    // A free run is cancelled at once.
    soar.save_playbook(
        tenant,
        "name: waits\nsteps:\n  - {id: w, wait: {for: 1h}}\n",
        None,
    )
    .await
    .expect("save");
    let run = soar
        .start_run(
            tenant,
            StartRun {
                playbook: "waits".into(),
                ..Default::default()
            },
        )
        .await
        .expect("start");
    let outcome = soar
        .cancel(tenant, &run.run_id, "cy")
        .await
        .expect("cancel");
    let CancelOutcome::Done(done) = outcome else {
        panic!("a free run is cancelled now: {outcome:?}");
    };
    assert_eq!(done.status, RunStatus::Cancelled);
}

/// Checks go through the executor with the lease's input; drift is recorded on the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_records_what_the_check_action_says() {
    #[derive(Default)]
    struct Firewall {
        core: CoreActions,
        present: Mutex<bool>,
        checks: Mutex<Vec<serde_json::Value>>,
    }
    #[async_trait]
    impl ActionExecutor for Firewall {
        async fn execute(&self, req: ActionRequest) -> ActionOutcome {
            match req.action.as_str() {
                "firewall.block_ip" => {
                    *self.present.lock().expect("lock") = true;
                    ActionOutcome::ok(json!({"blocked": true}))
                }
                "firewall.check_ip" => {
                    self.checks.lock().expect("lock").push(req.input.clone());
                    let b = *self.present.lock().expect("lock");
                    ActionOutcome::ok(json!({"in_place": b}))
                }
                _ => self.core.execute(req).await,
            }
        }
    }
    let (repo, tenant, _dir) = store().await;
    let fw = Arc::new(Firewall::default());
    let soar = Soar::with_executor(repo, SoarConfig::default(), fw.clone(), registry());
    soar.save_playbook(
        tenant,
        "name: hold\nsteps:\n  - {id: block, action: firewall.block_ip, with: {ip: 192.0.2.9}, lease: {for: 1h, target: 192.0.2.9}}\n",
        None,
    )
    .await
    .expect("save");
    let run = soar
        .start_run(
            tenant,
            StartRun {
                playbook: "hold".into(),
                ..Default::default()
            },
        )
        .await
        .expect("start");
    let lease = format!("{}/block", run.run_id);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status_of(&soar, tenant, &run.run_id).await != RunStatus::Succeeded {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    soar.reconcile_all().await;
    let state = soar
        .reconcile_run(tenant, &run.run_id, Some(&lease))
        .await
        .expect("reconcile");
    assert_eq!(fw.checks.lock().expect("lock").len(), 2);
    assert_eq!(fw.checks.lock().expect("lock")[0]["ip"], "192.0.2.9");
    let l = state.lease(&lease).expect("lease");
    assert_eq!(l.last_check.as_ref().and_then(|c| c.in_place), Some(true));
    *fw.present.lock().expect("lock") = false;
    soar.reconcile_all().await;
    let (state, _) = soar
        .load(tenant, &run.run_id)
        .await
        .expect("load")
        .expect("run");
    let l = state.lease(&lease).expect("lease");
    assert!(l.drift_since.is_some(), "{l:?}");
    assert!(state.logs.iter().any(|e| e.message.contains("drift:")));
    assert!(matches!(
        soar.reconcile_run(tenant, &run.run_id, Some("nope")).await,
        Err(SoarError::Refused(_))
    ));
}

/// The built-in `core.*` actions: transforms, logs, and `core.http` against a local server
/// (method, query, headers, JSON body, the idempotency key, retryable and permanent statuses).
mod core_actions {
    use garrison_playbook::{ActionExecutor, ActionRequest};
    use garrison_soar::CoreActions;
    use serde_json::{json, Value as Json};

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
}

/// A parent that calls a child playbook is checked when it is saved: the child must exist and
/// accept the inputs given; saved together (import, sync), the child may come after it.
#[tokio::test]
async fn child_references_are_checked_at_save_time() {
    let (repo, tenant, _dir) = store().await;
    let soar = service(repo.clone(), Arc::default());
    let parent = "name: parent\nsteps:\n  - id: call\n    playbook: {name: child, with: {host: ws-1, colour: red}}\n";
    let missing = soar
        .save_playbook(tenant, parent, None)
        .await
        .expect_err("no child yet");
    let SoarError::Invalid(errors) = missing else {
        panic!("{missing:?}")
    };
    assert!(
        errors[0].message.contains("no playbook `child`"),
        "{errors:?}"
    );
    let child = "name: child\ninputs:\n  host: {type: string}\n  reason: {type: string}\nsteps:\n  - id: a\n    action: core.set\n    with: {h: \"{{ inputs.host }}\"}\n";
    // Saved together, the child may come second; its inputs are checked all the same.
    let mut batch = garrison_soar::Batch::new();
    let child_pb = soar.validate(child).expect("child");
    batch.insert(child_pb.name.clone(), child_pb.inputs.clone());
    let wrong = soar
        .save_playbook_with(tenant, parent, None, &batch)
        .await
        .expect_err("bad inputs");
    let SoarError::Invalid(errors) = wrong else {
        panic!("{wrong:?}")
    };
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("has no input `colour`")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("needs its input `reason`")),
        "{messages:?}"
    );
    let fixed = parent.replace("colour: red", "reason: test");
    soar.save_playbook_with(tenant, &fixed, None, &batch)
        .await
        .expect("child in the batch");
    soar.save_playbook(tenant, child, None)
        .await
        .expect("child");
    soar.save_playbook(tenant, &fixed, None)
        .await
        .expect("child saved");
}
