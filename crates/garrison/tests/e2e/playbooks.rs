//! Playbooks end to end: runs survive `kill -9` with every side effect applied once, leases are
//! undone once across a restart, the CLI validates and runs, and the routes are tenant-scoped
//! and role-checked.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::*;
use serde_json::{json, Value};

/// One request the sink answered.
#[derive(Clone, Debug)]
struct Call {
    path: String,
    key: String,
    attempt: u32,
    at: Instant,
    status: u16,
}

/// An HTTP endpoint that records every call with its `Idempotency-Key`, answers after a short
/// delay (so calls are in flight when the service is killed), and fails the first attempt of
/// paths under `/flaky/` with a 500. As a firewall, it keeps the IPs sent to `/block` (until
/// `/unblock`) and answers `GET /check?ip=IP` with `{"blocked": bool}`.
#[derive(Clone, Default)]
struct Sink {
    calls: Arc<Mutex<Vec<Call>>>,
    blocked: Arc<Mutex<HashSet<String>>>,
}

impl Sink {
    async fn start() -> (Sink, String) {
        let sink = Sink::default();
        let s = sink.clone();
        let url = serve_http(move |request: HttpRequest| {
            let s = s.clone();
            async move { s.answer(request).await }
        })
        .await;
        (sink, url)
    }

    async fn answer(&self, request: HttpRequest) -> (u16, String) {
        let HttpRequest {
            path,
            idempotency_key: key,
            attempt,
            body,
        } = request;
        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
        let ip = body["ip"].as_str().map(str::to_string);
        let mut answer_body = None;
        match path.as_str() {
            "/block" => {
                if let Some(ip) = ip {
                    self.blocked.lock().expect("lock").insert(ip);
                }
            }
            "/unblock" => {
                if let Some(ip) = ip {
                    self.blocked.lock().expect("lock").remove(&ip);
                }
            }
            p if p.starts_with("/check?") => {
                let asked = p
                    .split_once("ip=")
                    .map(|(_, v)| v.split('&').next().unwrap_or("").replace("%3A", ":"))
                    .unwrap_or_default();
                let blocked = self.blocked.lock().expect("lock").contains(&asked);
                answer_body = Some(json!({"blocked": blocked}).to_string());
            }
            _ => {}
        }
        let first_attempt = attempt == 1;
        let status = if path.starts_with("/flaky/") && first_attempt {
            500
        } else {
            200
        };
        let arrived = Instant::now();
        // Varying by key, and long for the first calls, so calls are in flight at the kills.
        let spread = key.bytes().map(u64::from).sum::<u64>();
        let delay = if path.starts_with("/slow") {
            3000
        } else if path.starts_with("/effect/first") {
            200 + spread % 600
        } else if path.starts_with("/flaky/") {
            100 + spread % 300
        } else {
            20 + spread % 100
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        self.calls.lock().expect("lock").push(Call {
            path,
            key,
            attempt,
            at: arrived,
            status,
        });
        let body = match answer_body {
            Some(b) => b,
            None if status == 200 => "{\"ok\":true}".to_string(),
            None => "{\"ok\":false}".to_string(),
        };
        (status, body)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }

    /// The firewall "loses" a block (someone removed the rule by hand).
    fn lose(&self, ip: &str) {
        self.blocked.lock().expect("lock").remove(ip);
    }

    fn restore(&self, ip: &str) {
        self.blocked.lock().expect("lock").insert(ip.to_string());
    }
}

async fn post(service: &Service, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(service.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn try_get(service_url: &str, token: &str) -> Option<Value> {
    let r = client()
        .get(service_url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

const CRASH: &str = r#"
name: crash
inputs:
  n: {type: int}
  sink: {type: string}
steps:
  - id: first
    action: core.http
    with: {url: "{{ inputs.sink }}/effect/first", method: POST, json: {n: "{{ inputs.n }}"}}
  - id: note
    depends_on: [first]
    action: core.set
    with: {n: "{{ inputs.n }}"}
  - id: pause
    depends_on: [note]
    wait: {for: 1500ms}
  - id: flaky
    depends_on: [pause]
    action: core.http
    retry: {max_attempts: 4, backoff: 300ms}
    with: {url: "{{ inputs.sink }}/flaky/second", method: POST}
  - id: ask
    depends_on: [flaky]
    approval: {message: "continue {{ inputs.n }}?", approvers: {roles: [responder]}}
  - id: last
    depends_on: [ask]
    action: core.http
    with: {url: "{{ inputs.sink }}/effect/last", method: POST}
"#;

/// Approves every run waiting at `ask`, ignoring failures (the service may be down).
async fn approve_waiting(url: &str, token: &str) -> usize {
    let Some(runs) = try_get(
        &format!("{url}/api/v1/runs?active=true&status=running&limit=1000"),
        token,
    )
    .await
    else {
        return 0;
    };
    let mut approved = 0;
    for r in runs.as_array().into_iter().flatten() {
        let Some(id) = r["run_id"].as_str() else {
            continue;
        };
        let Some(run) = try_get(&format!("{url}/api/v1/runs/{id}"), token).await else {
            continue;
        };
        let waiting = run["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["id"] == "ask" && s["status"] == "waiting");
        if waiting {
            let ok = client()
                .post(format!("{url}/api/v1/runs/{id}/approve"))
                .bearer_auth(token)
                .json(&json!({"step": "ask", "choice": "approve"}))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            approved += usize::from(ok);
        }
    }
    approved
}

/// 200 runs with an HTTP call, a delay, a failing-then-retried call, an approval and a last
/// call; the service is killed (-9) twice while they run. Every run completes, and the sink
/// sees each side effect once: per (run, step) exactly one attempt got a 2xx answer,
/// and a key was sent more than once only when its first send was in flight at a kill (the
/// first send before the kill, the resend after the restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_two_kill_9_and_apply_each_effect_once() {
    let (sink, sink_url) = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let (http_port, syslog_port) = (free_port(), free_port());
    let mut service = Service::start_with(dir.path(), http_port, syslog_port, &[]);
    let url = format!("http://{}", service.http);

    let (status, created) = post(
        &service,
        "/api/v1/playbooks",
        &admin,
        json!({"source": CRASH}),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    let mut run_ids = Vec::new();
    let started = Instant::now();
    let mut pending = Vec::new();
    for n in 0..200 {
        let c = client();
        let u = service.url("/api/v1/playbooks/crash/runs");
        let t = admin.clone();
        let s = sink_url.clone();
        pending.push(tokio::spawn(async move {
            let r = c
                .post(u)
                .bearer_auth(t)
                .json(&json!({"inputs": {"n": n, "sink": s}}))
                .send()
                .await
                .expect("start");
            assert_eq!(r.status().as_u16(), 201);
            let v: Value = r.json().await.expect("json");
            v["run_id"].as_str().expect("run id").to_string()
        }));
    }
    for p in pending {
        run_ids.push(p.await.expect("join"));
    }
    eprintln!("200 runs started in {:?}", started.elapsed());

    // First kill: while the first calls are in flight.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut kills = vec![Instant::now()];
    service.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    service = Service::start_with(dir.path(), http_port, syslog_port, &[]);

    // Let runs reach the retries and the approvals, approving as they come.
    let second_kill_at = Instant::now() + Duration::from_millis(2200);
    while Instant::now() < second_kill_at {
        approve_waiting(&url, &admin).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kills.push(Instant::now());
    service.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    service = Service::start_with(dir.path(), http_port, syslog_port, &[]);

    // Until every run succeeded.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        approve_waiting(&url, &admin).await;
        let done = try_get(
            &format!("{url}/api/v1/runs?status=succeeded&limit=1000"),
            &admin,
        )
        .await
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0);
        if done == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of 200 runs succeeded; failed: {:?}",
            try_get(&format!("{url}/api/v1/runs?status=failed&limit=5"), &admin).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give any stray resend time to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let calls = sink.calls();
    // One send is one (key, attempt): the key is the step's, the same for its attempts.
    let mut by_key: HashMap<String, Vec<&Call>> = HashMap::new();
    for c in &calls {
        by_key
            .entry(format!("{}#{}", c.key, c.attempt))
            .or_default()
            .push(c);
    }
    // Side effects: per (run, step), the attempts that got a 2xx.
    let mut effects: HashMap<(String, String), Vec<&str>> = HashMap::new();
    for (key, cs) in &by_key {
        let step_key = key.split('#').next().unwrap_or_default();
        let parts: Vec<&str> = step_key.split('/').collect();
        assert_eq!(
            parts.len(),
            2,
            "key {key:?} is run/step, whatever the attempt"
        );
        if cs.iter().any(|c| c.status == 200) {
            effects
                .entry((parts[0].to_string(), parts[1].to_string()))
                .or_default()
                .push(key);
        }
    }
    for run in &run_ids {
        for step in ["first", "flaky", "last"] {
            let keys = effects
                .get(&(run.clone(), step.to_string()))
                .cloned()
                .unwrap_or_default();
            assert_eq!(keys.len(), 1, "run {run} step {step}: effects {keys:?}");
        }
    }
    assert_eq!(effects.len(), 600, "no effect for unknown runs or steps");
    // Resends: only of a call in flight at a kill, resent after the restart.
    let mut resent = 0;
    for (key, cs) in &by_key {
        if cs.len() < 2 {
            continue;
        }
        resent += cs.len() - 1;
        let mut times: Vec<Instant> = cs.iter().map(|c| c.at).collect();
        times.sort();
        for pair in times.windows(2) {
            // (The restarted service may resend before it answers HTTP, so the bound is
            // the kill, not the moment the test saw the service back.)
            let across_a_kill = kills.iter().any(|k| pair[0] <= *k && pair[1] > *k);
            assert!(
                across_a_kill,
                "send {key:?} was sent twice without a crash in between: sends at {:?} after the start, kills at {:?}",
                times.iter().map(|t| t.duration_since(started)).collect::<Vec<_>>(),
                kills.iter().map(|t| t.duration_since(started)).collect::<Vec<_>>()
            );
        }
    }
    let distinct = by_key.len();
    eprintln!(
        "sink: {} calls, {distinct} distinct keys, {resent} resends of calls in flight at a kill",
        calls.len()
    );
    // 200 runs x (first, flaky attempt 1 and 2, last): 800 sends (600 keys).
    assert_eq!(distinct, 800);
    drop(service);
    assert!(resent > 0, "the kills should have caught calls in flight");
    assert!(resent <= 400, "resends are bounded by the calls in flight");
}

const CONTAIN: &str = r#"
name: contain
inputs:
  ip: {type: ip}
steps:
  - id: block
    action: firewall.block_ip
    with: {ip: "{{ inputs.ip }}", comment: "e2e"}
    lease: {for: 2s, target: "{{ inputs.ip }}"}
"#;

const CONTAIN_LONG: &str = r#"
name: contain-long
inputs:
  ip: {type: ip}
steps:
  - id: block
    action: firewall.block_ip
    with: {ip: "{{ inputs.ip }}"}
    lease: {for: 1h, target: "{{ inputs.ip }}"}
"#;

async fn wait_status(url: &str, token: &str, run: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = try_get(&format!("{url}/api/v1/runs/{run}"), token).await {
            if v["status"] == want {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "run {run} never became {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A block held `for: 2s`: the service is killed before the lease ends and restarted after;
/// the undo happens once. A second block is revoked early through the API: undone at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_undone_once_across_a_restart_and_can_be_revoked() {
    let (sink, sink_url) = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let env = [("GARRISON_FIREWALL_URL", sink_url.as_str())];
    let (http_port, syslog_port) = (free_port(), free_port());
    let mut service = Service::start_with(dir.path(), http_port, syslog_port, &env);
    let url = format!("http://{}", service.http);
    for pb in [CONTAIN, CONTAIN_LONG] {
        let (status, body) =
            post(&service, "/api/v1/playbooks", &admin, json!({"source": pb})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, run) = post(
        &service,
        "/api/v1/playbooks/contain/runs",
        &admin,
        json!({"inputs": {"ip": "192.0.2.7"}}),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let run_id = run["run_id"].as_str().expect("id").to_string();
    wait_status(&url, &admin, &run_id, "succeeded").await;
    let held = get_json(&service, "/api/v1/containments", &admin).await;
    assert_eq!(held.as_array().map(Vec::len), Some(1), "{held}");
    assert_eq!(held[0]["target"], "192.0.2.7");
    assert_eq!(held[0]["action"], "firewall.block_ip");

    service.kill9();
    tokio::time::sleep(Duration::from_millis(2500)).await; // past the lease's end
    let unblocks = |sink: &Sink| {
        sink.calls()
            .into_iter()
            .filter(|c| c.path == "/unblock")
            .collect::<Vec<_>>()
    };
    assert!(
        unblocks(&sink).is_empty(),
        "nothing undoes while the service is down"
    );
    let service = Service::start_with(dir.path(), http_port, syslog_port, &env);
    let deadline = Instant::now() + Duration::from_secs(20);
    while unblocks(&sink).is_empty() {
        assert!(Instant::now() < deadline, "the lease was never undone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let undone = unblocks(&sink);
    assert_eq!(undone.len(), 1, "undone once: {undone:?}");
    assert_eq!(undone[0].key, format!("{run_id}/block/undo/1"));
    let blocks: Vec<Call> = sink
        .calls()
        .into_iter()
        .filter(|c| c.path == "/block")
        .collect();
    assert_eq!(blocks.len(), 1, "blocked once");
    let after = get_json(&service, "/api/v1/containments", &admin).await;
    assert_eq!(after, json!([]));
    let detail = get_json(&service, &format!("/api/v1/runs/{run_id}"), &admin).await;
    assert_eq!(detail["leases"][0]["status"], "released", "{detail}");

    // Extend, then revoke early.
    let (_, run) = post(
        &service,
        "/api/v1/playbooks/contain-long/runs",
        &admin,
        json!({"inputs": {"ip": "198.51.100.9"}}),
    )
    .await;
    let long_id = run["run_id"].as_str().expect("id").to_string();
    wait_status(&url, &admin, &long_id, "succeeded").await;
    let (status, extended) = post(
        &service,
        &format!("/api/v1/runs/{long_id}/leases/block/extend"),
        &admin,
        json!({"for": "48h"}),
    )
    .await;
    assert_eq!(status, 200, "{extended}");
    let held = get_json(&service, "/api/v1/containments", &admin).await;
    let expires: jiff::Timestamp = held[0]["expires_at"]
        .as_str()
        .expect("expires")
        .parse()
        .expect("time");
    assert!(expires > jiff::Timestamp::now() + jiff::SignedDuration::from_hours(47));
    let (status, revoked) = post(
        &service,
        &format!("/api/v1/runs/{long_id}/leases/block/revoke"),
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while unblocks(&sink).len() < 2 {
        assert!(Instant::now() < deadline, "revoke did not undo");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        get_json(&service, "/api/v1/containments", &admin).await,
        json!([])
    );

    // Every human and machine action is in the audit log: the playbooks saved, the runs
    // started, each firewall call (by the playbook) and its undo, the extension, the revoke.
    let audit = get_json(&service, "/api/v1/audit?limit=1000", &admin).await;
    let entries = audit["entries"].as_array().expect("entries");
    let count = |action: &str, actor_prefix: &str| {
        entries
            .iter()
            .filter(|e| {
                e["action"] == action
                    && e["actor"]
                        .as_str()
                        .is_some_and(|a| a.starts_with(actor_prefix))
            })
            .count()
    };
    assert_eq!(count("playbook.save", "token:"), 2, "{audit}");
    assert_eq!(count("run.start", "token:"), 2, "{audit}");
    assert_eq!(count("playbook.action", "playbook:contain"), 2, "{audit}");
    assert_eq!(count("playbook.undo", "playbook:contain"), 2, "{audit}");
    assert_eq!(count("lease.extend", "token:"), 1, "{audit}");
    assert_eq!(count("lease.revoke", "token:"), 1, "{audit}");
    assert!(count("token.use", "token:") >= 1, "{audit}");
    let call = entries
        .iter()
        .find(|e| e["action"] == "playbook.action")
        .expect("an action");
    assert_eq!(call["details"]["action"], "firewall.block_ip");
    assert_eq!(call["details"]["outcome"], "ok");
    cli(dir.path(), &["audit", "verify"]);
}

const GOOD: &str = r#"
name: greet
inputs:
  who: {type: string}
  times: {type: int, default: 2}
steps:
  - id: hello
    action: core.set
    with: {text: "hello {{ inputs.who }}", times: "{{ inputs.times }}"}
  - id: pause
    depends_on: [hello]
    action: core.sleep
    with: {for: 200ms}
  - id: say
    depends_on: [pause]
    action: core.log
    with: {message: "{{ steps.hello.output.text }}"}
"#;

const BAD: &str = r#"
name: broken
steps:
  - id: a
    action: core.nope
  - id: b
    depends_on: [ghost]
    action: core.log
    with: {message: "{{ steps.zzz.output }}"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_validates_and_runs_with_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("greet.yml");
    let bad = dir.path().join("broken.yml");
    std::fs::write(&good, GOOD).expect("write");
    std::fs::write(&bad, BAD).expect("write");

    let out = std::process::Command::new(BIN)
        .args(["playbook", "validate"])
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("broken.yml:4:5: steps.a.action: unknown action `core.nope`"),
        "{text}"
    );
    assert!(
        text.contains("steps.b.depends_on: unknown step `ghost`"),
        "{text}"
    );
    assert!(text.contains("steps.b.with.message"), "{text}");

    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start(dir.path());
    let url = format!("http://{}", service.http);
    let out = std::process::Command::new(BIN)
        .args(["playbook", "run"])
        .arg(&good)
        .args(["--input", "who=ada", "--input", "times=3", "--wait"])
        .args(["--url", &url, "--token", &admin])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["steps"][0]["output"],
        json!({"text": "hello ada", "times": 3})
    );
    assert_eq!(run["steps"][2]["input"]["message"], "hello ada");
    let id = run["run_id"].as_str().expect("id");
    let detail = get_json(&service, &format!("/api/v1/runs/{id}"), &admin).await;
    assert_eq!(detail["steps"][1]["status"], "succeeded");
    assert!(detail["steps"][2]["logs"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("hello ada")));

    // A dry run from a file needs no service.
    let out = std::process::Command::new(BIN)
        .args(["playbook", "run"])
        .arg(&good)
        .args(["--input", "who=x", "--dry-run"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dry: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["status"], "succeeded");

    // By name, without waiting: prints the run id.
    let out = std::process::Command::new(BIN)
        .args(["playbook", "run", "greet", "--input", "who=bo"])
        .args(["--url", &url, "--token", &admin])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = get_json(&service, &format!("/api/v1/runs/{id}"), &admin).await;
        if v["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const WAITER: &str = r#"
name: waiter
steps:
  - id: ask
    approval: {message: "go?", approvers: {roles: [responder]}}
  - id: done
    depends_on: [ask]
    action: core.set
    with: {ok: true}
"#;

/// Tenants never see each other's playbooks and runs; viewers read but cannot start,
/// approve or cancel; a single-use approval link works once; webhooks check their secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playbook_routes_are_tenant_scoped_and_role_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alpha = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let viewer = cli(dir.path(), &["token", "create", "--role", "viewer"]);
    let responder = cli(dir.path(), &["token", "create", "--role", "responder"]);
    // People an approval link can be issued to: one of the approvers, one not.
    cli(
        dir.path(),
        &[
            "user",
            "create",
            "--username",
            "rita",
            "--role",
            "responder",
        ],
    );
    cli(
        dir.path(),
        &["user", "create", "--username", "vic", "--role", "viewer"],
    );
    cli(dir.path(), &["tenant", "create", "bravo"]);
    let bravo = cli(
        dir.path(),
        &["token", "create", "--role", "admin", "--tenant", "bravo"],
    );
    let service = Service::start(dir.path());
    let (status, _) = post(
        &service,
        "/api/v1/playbooks",
        &alpha,
        json!({"source": WAITER}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, run) = post(&service, "/api/v1/playbooks/waiter/runs", &alpha, json!({})).await;
    assert_eq!(status, 201, "{run}");
    let id = run["run_id"].as_str().expect("id").to_string();

    // Bravo sees none of it, under any route.
    let c = client();
    for path in [
        "/api/v1/playbooks/waiter".to_string(),
        "/api/v1/playbooks/waiter/versions".into(),
        "/api/v1/playbooks/waiter/versions/1".into(),
        "/api/v1/playbooks/waiter/export".into(),
        "/api/v1/playbooks/waiter/diff?from=1".into(),
        format!("/api/v1/runs/{id}"),
    ] {
        let r = c
            .get(service.url(&path))
            .bearer_auth(&bravo)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status().as_u16(), 404, "bravo GET {path}");
    }
    assert_eq!(
        get_json(&service, "/api/v1/playbooks", &bravo).await,
        json!([])
    );
    assert_eq!(get_json(&service, "/api/v1/runs", &bravo).await, json!([]));
    for (path, body) in [
        (
            format!("/api/v1/runs/{id}/approve"),
            json!({"step": "ask", "choice": "approve"}),
        ),
        (format!("/api/v1/runs/{id}/cancel"), json!({})),
        (format!("/api/v1/runs/{id}/rerun"), json!({})),
        (
            format!("/api/v1/runs/{id}/approval-links"),
            json!({"step": "ask"}),
        ),
        ("/api/v1/playbooks/waiter/runs".into(), json!({})),
        ("/api/v1/playbooks/waiter/disable".into(), json!({})),
    ] {
        let (status, _) = post(&service, &path, &bravo, body).await;
        assert_eq!(status, 404, "bravo POST {path}");
    }
    // Viewers read, but cannot change anything.
    assert_eq!(
        get_json(&service, &format!("/api/v1/runs/{id}"), &viewer).await["status"],
        "running"
    );
    for (path, body) in [
        (
            format!("/api/v1/runs/{id}/approve"),
            json!({"step": "ask", "choice": "approve"}),
        ),
        (format!("/api/v1/runs/{id}/cancel"), json!({})),
        ("/api/v1/playbooks/waiter/runs".into(), json!({})),
        ("/api/v1/playbooks".into(), json!({"source": WAITER})),
    ] {
        let (status, _) = post(&service, &path, &viewer, body).await;
        assert_eq!(status, 403, "viewer POST {path}");
    }
    let r = c
        .get(service.url("/api/v1/runs"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 401, "no token");

    // A link goes to the approvers the step names, never around them: none without saying
    // whom it is for, none for someone outside the list.
    let links = format!("/api/v1/runs/{id}/approval-links");
    let (status, refused) = post(&service, &links, &responder, json!({"step": "ask"})).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("roles responder"),
        "{refused}"
    );
    let (status, refused) = post(
        &service,
        &links,
        &responder,
        json!({"step": "ask", "approver": "vic"}),
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    // A single-use link, made by a responder for an approver, decides once, as that approver.
    let (status, link) = post(
        &service,
        &links,
        &responder,
        json!({"step": "ask", "approver": "rita"}),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    assert_eq!(link["approver"], "rita");
    let path = link["path"].as_str().expect("path").to_string();
    let shown: Value = c
        .get(service.url(&path))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["message"], "go?");
    let r = c
        .post(service.url(&path))
        .json(&json!({"choice": "approve"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .post(service.url(&path))
        .json(&json!({"choice": "approve"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 401, "a link works once");
    let done = get_json(&service, &format!("/api/v1/runs/{id}"), &alpha).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let ask = done["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == "ask"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        ask["output"]["by"], "rita",
        "decided as the person: {ask:#}"
    );

    // A webhook trigger checks its secret.
    let hook = "name: hooked\ntriggers:\n  - webhook: {secret: hook-secret}\nsteps:\n  - id: a\n    action: core.set\n    with: {got: \"{{ trigger.body.x }}\"}\n";
    let (status, body) = post(
        &service,
        "/api/v1/playbooks",
        &alpha,
        json!({"source": hook}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let r = c
        .put(service.url("/api/v1/playbook-secrets/hook-secret"))
        .bearer_auth(&alpha)
        .json(&json!({"secret": "s3cret-s3cret-s3cret"}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 204);
    let hook_url = service.url("/api/v1/webhooks/default/hooked");
    let r = c
        .post(&hook_url)
        .header("x-garrison-webhook-secret", "wrong")
        .json(&json!({"x": 1}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 401);
    let r = c
        .post(&hook_url)
        .header("x-garrison-webhook-secret", "s3cret-s3cret-s3cret")
        .json(&json!({"x": 1}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 202);
    let started: Value = r.json().await.expect("json");
    let run = get_json(
        &service,
        &format!("/api/v1/runs/{}", started["run_id"].as_str().expect("id")),
        &alpha,
    )
    .await;
    assert_eq!(run["steps"][0]["output"]["got"], 1, "{run}");
    // A sender's redelivery (same delivery id) answers the run the first delivery started;
    // another id starts another run. The body's keys are the inputs, unwrapped.
    let typed = "name: typed-hook\ninputs:\n  ip: {type: ip}\ntriggers:\n  - webhook: {secret: hook-secret}\nsteps:\n  - id: a\n    action: core.set\n    with: {ip: \"{{ inputs.ip }}\"}\n";
    let (status, body) = post(
        &service,
        "/api/v1/playbooks",
        &alpha,
        json!({"source": typed}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let deliver = |id: &'static str| {
        let c = c.clone();
        let url = service.url("/api/v1/webhooks/default/typed-hook");
        async move {
            let r = c
                .post(&url)
                .header("x-garrison-webhook-secret", "s3cret-s3cret-s3cret")
                .header("x-github-delivery", id)
                .json(&json!({"ip": "198.51.100.9", "action": "opened"}))
                .send()
                .await
                .expect("post");
            assert_eq!(r.status().as_u16(), 202);
            let v: Value = r.json().await.expect("json");
            v["run_id"].as_str().expect("id").to_string()
        }
    };
    let first = deliver("d-1").await;
    assert_eq!(
        deliver("d-1").await,
        first,
        "a redelivery starts nothing new"
    );
    assert_ne!(deliver("d-2").await, first);
    let run = get_json(&service, &format!("/api/v1/runs/{first}"), &alpha).await;
    assert_eq!(run["inputs"]["ip"], "198.51.100.9", "{run}");
    let r = c
        .post(service.url("/api/v1/webhooks/bravo/hooked"))
        .header("x-garrison-webhook-secret", "s3cret-s3cret-s3cret")
        .json(&json!({}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 401, "another tenant's webhook name");
}

/// Waits until the only containment satisfies `done`; returns it.
async fn wait_containment(service: &Service, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = get_json(service, "/api/v1/containments", token).await;
        if let Some(c) = held.as_array().and_then(|a| a.first()) {
            if done(c) {
                return c.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "containments never got there: {held}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A block held for an hour is re-checked every second (`GARRISON_RECONCILE_INTERVAL`): in
/// place at first; once the firewall loses it, the containment shows drift, the run's log
/// says so and `garrison_containment_drift_total` counts it. Reconciling on demand finds the
/// block back in place, and a second loss at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_whose_target_lost_the_block_is_reported_as_drift() {
    let (sink, sink_url) = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let viewer = cli(dir.path(), &["token", "create", "--role", "viewer"]);
    let env = [
        ("GARRISON_FIREWALL_URL", sink_url.as_str()),
        ("GARRISON_RECONCILE_INTERVAL", "1s"),
    ];
    let service = Service::start_with(dir.path(), free_port(), free_port(), &env);
    let url = format!("http://{}", service.http);
    let (status, body) = post(
        &service,
        "/api/v1/playbooks",
        &admin,
        json!({"source": CONTAIN_LONG}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // A dry run holds nothing: never listed, never checked.
    let (status, dry) = post(
        &service,
        "/api/v1/playbooks/contain-long/runs",
        &admin,
        json!({"inputs": {"ip": "198.51.100.99"}, "dry_run": true}),
    )
    .await;
    assert_eq!(status, 201, "{dry}");
    assert_eq!(dry["status"], "succeeded", "{dry}");
    let ip = "198.51.100.20";
    let (status, run) = post(
        &service,
        "/api/v1/playbooks/contain-long/runs",
        &admin,
        json!({"inputs": {"ip": ip}}),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let run_id = run["run_id"].as_str().expect("id").to_string();
    wait_status(&url, &admin, &run_id, "succeeded").await;

    // The periodic check finds the block in place.
    let held = wait_containment(&service, &admin, |c| c["last_checked"].is_string()).await;
    assert_eq!(
        get_json(&service, "/api/v1/containments", &admin)
            .await
            .as_array()
            .map(Vec::len),
        Some(1),
        "the dry run's lease is not a containment"
    );
    assert_eq!(held["check_action"], "firewall.check_ip", "{held}");
    assert_eq!(held["in_place"], true, "{held}");
    assert_eq!(held["drift"], false, "{held}");
    assert_eq!(
        metric(&service, &admin, "garrison_containment_drift_total").await,
        0.0
    );

    // The firewall loses it: the next periodic check reports drift.
    sink.lose(ip);
    let held = wait_containment(&service, &admin, |c| c["drift"] == true).await;
    assert_eq!(held["in_place"], false, "{held}");
    assert!(
        held["check_detail"]
            .as_str()
            .is_some_and(|d| d.contains("not blocked")),
        "{held}"
    );
    assert!(held["drift_since"].is_string(), "{held}");
    assert_eq!(held["status"], "active", "drift is reported, not undone");
    let detail = get_json(&service, &format!("/api/v1/runs/{run_id}"), &admin).await;
    let logs = detail["logs"].to_string();
    assert!(
        logs.contains("drift: firewall.block_ip on 198.51.100.20"),
        "{detail}"
    );
    // Counted once, however many checks see it still missing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        metric(&service, &admin, "garrison_containment_drift_total").await,
        1.0
    );

    // On demand: back in place, then lost again.
    sink.restore(ip);
    let reconcile = format!("/api/v1/runs/{run_id}/leases/block/reconcile");
    let (status, _) = post(&service, &reconcile, &viewer, json!({})).await;
    assert_eq!(status, 403, "viewers read, responders reconcile");
    let (status, now) = post(&service, &reconcile, &admin, json!({})).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["in_place"], true, "{now}");
    assert_eq!(now["drift"], false, "{now}");
    sink.lose(ip);
    let (status, now) = post(&service, &reconcile, &admin, json!({})).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["drift"], true, "{now}");
    assert_eq!(
        metric(&service, &admin, "garrison_containment_drift_total").await,
        2.0
    );
    let (status, _) = post(
        &service,
        &format!("/api/v1/runs/{run_id}/leases/nope/reconcile"),
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(status, 404);

    // A released lease is no longer checked.
    let (status, _) = post(
        &service,
        &format!("/api/v1/runs/{run_id}/leases/block/revoke"),
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    wait_status(&url, &admin, &run_id, "succeeded").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_json(&service, "/api/v1/containments", &admin).await != json!([]) {
        assert!(Instant::now() < deadline, "the revoked lease stays listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = post(&service, &reconcile, &admin, json!({})).await;
    assert_eq!(status, 400, "only an active lease is checked");
    assert!(
        sink.calls()
            .iter()
            .all(|c| !c.path.contains("198.51.100.99")),
        "the dry run's lease was checked on the firewall"
    );
}

const TRIAGE_V1: &str = r#"
name: triage
inputs:
  severity: {type: string}
  sink: {type: string}
steps:
  - id: enrich
    action: core.http
    with: {url: "{{ inputs.sink }}/enrich", method: POST}
  - id: note
    depends_on: [enrich]
    action: core.set
    with: {severity: "{{ inputs.severity }}"}
"#;

/// Version 2 adds a branch on the enrichment's answer and the severity.
const TRIAGE_V2: &str = r#"
name: triage
inputs:
  severity: {type: string}
  sink: {type: string}
steps:
  - id: enrich
    action: core.http
    with: {url: "{{ inputs.sink }}/enrich", method: POST}
  - id: note
    depends_on: [enrich]
    action: core.set
    with: {severity: "{{ inputs.severity }}"}
  - id: route
    depends_on: [enrich]
    condition:
      if: "inputs.severity == 'high' and steps.enrich.output.body.ok"
      then: [escalate]
      else: [file]
  - id: escalate
    action: core.http
    with: {url: "{{ inputs.sink }}/escalate", method: POST}
  - id: file
    action: core.log
    with: {message: "filed"}
"#;

/// A past run replayed against a version that adds a branch shows the new path (taken
/// because of the run's recorded enrichment answer and its inputs), sends nothing and stores
/// nothing; replayed against its own version, the path is the run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_run_against_a_new_version_shows_the_new_path() {
    let (sink, sink_url) = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start(dir.path());
    let url = format!("http://{}", service.http);
    let (status, body) = post(
        &service,
        "/api/v1/playbooks",
        &admin,
        json!({"source": TRIAGE_V1}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, run) = post(
        &service,
        "/api/v1/playbooks/triage/runs",
        &admin,
        json!({"inputs": {"severity": "high", "sink": sink_url}}),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let run_id = run["run_id"].as_str().expect("id").to_string();
    wait_status(&url, &admin, &run_id, "succeeded").await;
    let (status, v2) = post(
        &service,
        "/api/v1/playbooks",
        &admin,
        json!({"source": TRIAGE_V2}),
    )
    .await;
    assert_eq!(status, 201, "{v2}");
    assert_eq!(v2["version"], 2);
    let runs_before = get_json(&service, "/api/v1/runs", &admin).await;
    let calls_before = sink.calls().len();

    // Against the latest version, through the CLI.
    let out = std::process::Command::new(BIN)
        .args(["playbook", "replay", &run_id])
        .args(["--url", &url, "--token", &admin])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replay: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(replay["version"], 2, "{replay}");
    assert_eq!(replay["original_version"], 1, "{replay}");
    assert_eq!(replay["status"], "succeeded", "{replay}");
    assert_eq!(
        replay["original_path"],
        json!(["enrich", "note"]),
        "{replay}"
    );
    assert_eq!(
        replay["path"],
        json!(["enrich", "note", "route", "escalate"]),
        "{replay}"
    );
    assert_eq!(replay["added_to_path"], json!(["route", "escalate"]));
    assert_eq!(replay["removed_from_path"], json!([]));
    let step = |id: &str| {
        replay["steps"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(step("enrich")["recorded"], true, "{replay}");
    assert_eq!(step("enrich")["output"]["body"]["ok"], true);
    assert_eq!(step("file")["status"], "skipped");
    assert_eq!(
        step("escalate")["input"]["url"],
        format!("{sink_url}/escalate")
    );

    // Against version 1 (the run's own), the path is the run's.
    let (status, same) = post(
        &service,
        &format!("/api/v1/runs/{run_id}/replay"),
        &admin,
        json!({"version": 1}),
    )
    .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["path"], same["original_path"], "{same}");
    assert_eq!(same["added_to_path"], json!([]));

    // With low severity, the new branch files instead: a different run, a different path.
    let (_, low) = post(
        &service,
        "/api/v1/playbooks/triage/runs",
        &admin,
        json!({"inputs": {"severity": "low", "sink": sink_url}, "version": 1}),
    )
    .await;
    let low_id = low["run_id"].as_str().expect("id").to_string();
    wait_status(&url, &admin, &low_id, "succeeded").await;
    let (status, low_replay) = post(
        &service,
        &format!("/api/v1/runs/{low_id}/replay"),
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{low_replay}");
    assert_eq!(low_replay["added_to_path"], json!(["route", "file"]));

    // Nothing was sent, nothing stored by the replays.
    assert_eq!(
        sink.calls().len(),
        calls_before + 1,
        "only the low run's own enrich call"
    );
    assert!(sink.calls().iter().all(|c| c.path != "/escalate"));
    let runs_after = get_json(&service, "/api/v1/runs", &admin).await;
    assert_eq!(
        runs_after.as_array().map(Vec::len),
        runs_before.as_array().map(|a| a.len() + 1)
    );
    let (status, _) = post(&service, "/api/v1/runs/nope/replay", &admin, json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = post(
        &service,
        &format!("/api/v1/runs/{run_id}/replay"),
        &admin,
        json!({"version": 9}),
    )
    .await;
    assert_eq!(status, 404);
}

/// `garrison playbook sync DIR`: every playbook file under the folder (subfolders too, hidden
/// ones skipped) is saved when its text changed; unchanged files are reported as such; a bad
/// file is reported with each error's place while the good ones are still saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_saves_changed_files_and_reports_each_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start(dir.path());
    let url = format!("http://{}", service.http);
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("nested")).expect("mkdir");
    std::fs::create_dir_all(repo.join(".git")).expect("mkdir");
    std::fs::write(repo.join("greet.yml"), GOOD).expect("write");
    std::fs::write(repo.join("nested/waiter.yml"), WAITER).expect("write");
    std::fs::write(repo.join("broken.yml"), BAD).expect("write");
    std::fs::write(repo.join("zz-dup.yml"), WAITER.replace("go?", "again?")).expect("write");
    std::fs::write(repo.join("README.md"), "not a playbook").expect("write");
    std::fs::write(repo.join(".git/x.yml"), BAD).expect("write");
    let sync = || {
        std::process::Command::new(BIN)
            .args(["playbook", "sync"])
            .arg(&repo)
            .args(["--url", &url, "--token", &admin])
            .output()
            .expect("run")
    };

    let out = sync();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "a file failed: {text}");
    assert!(text.contains("greet.yml: created greet v1"), "{text}");
    assert!(
        text.contains("nested/waiter.yml: created waiter v1"),
        "{text}"
    );
    assert!(
        text.contains("broken.yml:4:5: steps.a.action: unknown action `core.nope`"),
        "{text}"
    );
    assert!(
        text.contains("broken.yml:") && text.contains("unknown step `ghost`"),
        "{text}"
    );
    assert!(
        text.contains("zz-dup.yml:") && text.contains("also defined in nested/waiter.yml"),
        "{text}"
    );
    assert!(!text.contains(".git"), "hidden folders are skipped: {text}");
    assert!(!text.contains("README"), "{text}");
    let names: Vec<String> = get_json(&service, "/api/v1/playbooks", &admin)
        .await
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"greet".to_string()) && names.contains(&"waiter".to_string()));

    // One file changes, the bad ones are fixed or removed: only the change is a new version.
    std::fs::write(repo.join("greet.yml"), format!("{GOOD}# tuned\n")).expect("write");
    std::fs::remove_file(repo.join("broken.yml")).expect("rm");
    std::fs::remove_file(repo.join("zz-dup.yml")).expect("rm");
    let out = sync();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("greet.yml: updated greet v2"), "{text}");
    assert!(
        text.contains("nested/waiter.yml: unchanged waiter v1"),
        "{text}"
    );
    let versions = get_json(&service, "/api/v1/playbooks/waiter/versions", &admin).await;
    assert_eq!(versions.as_array().map(Vec::len), Some(1));

    // The API answers per file too.
    let (status, report) = post(
        &service,
        "/api/v1/playbooks/sync",
        &admin,
        json!({"files": [
            {"path": "a.yml", "source": GOOD},
            {"path": "b.yml", "source": "name: [oops"},
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["updated"], 1, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    assert_eq!(report["files"][0]["version"], 3);
    assert_eq!(report["files"][1]["status"], "error");
    assert!(
        report["files"][1]["errors"][0]["line"].is_number(),
        "{report}"
    );
}

const SLOW: &str = r#"
name: slow
inputs:
  sink: {type: string}
steps:
  - id: slow
    action: core.http
    with: {url: "{{ inputs.sink }}/slow", method: POST}
  - id: after
    depends_on: [slow]
    action: core.http
    with: {url: "{{ inputs.sink }}/effect/after", method: POST}
"#;

/// Cancelling a run blocked in a 3 s call answers 202 at once; the run is cancelled when the
/// call returns, and its next call is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_does_not_wait_for_the_call_in_flight() {
    let (sink, sink_url) = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start(dir.path());
    let url = format!("http://{}", service.http);
    let (status, body) = post(
        &service,
        "/api/v1/playbooks",
        &admin,
        json!({"source": SLOW}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, run) = post(
        &service,
        "/api/v1/playbooks/slow/runs",
        &admin,
        json!({"inputs": {"sink": sink_url}}),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let id = run["run_id"].as_str().expect("id").to_string();
    // Until the slow call is in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = get_json(&service, &format!("/api/v1/runs/{id}"), &admin).await;
        if v["steps"][0]["status"] == "running" && v["steps"][0]["attempt"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let (status, answer) = post(
        &service,
        &format!("/api/v1/runs/{id}/cancel"),
        &admin,
        json!({}),
    )
    .await;
    assert!(
        asked.elapsed() < Duration::from_millis(1500),
        "the cancel waited {:?}",
        asked.elapsed()
    );
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["cancel_requested"], true, "{answer}");
    assert_eq!(answer["status"], "running");
    let done = wait_status(&url, &admin, &id, "cancelled").await;
    assert_eq!(done["steps"][1]["status"], "cancelled", "{done}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paths: Vec<String> = sink.calls().into_iter().map(|c| c.path).collect();
    assert_eq!(paths, ["/slow"], "the next call is never sent");
    // A cancelled run answers 200 at once.
    let (status, again) = post(
        &service,
        &format!("/api/v1/runs/{id}/cancel"),
        &admin,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
}

const CONTAIN_SLOW: &str = r#"
name: contain-slow
inputs:
  ip: {type: ip}
steps:
  - id: block
    action: firewall.block_ip
    with: {ip: "{{ inputs.ip }}"}
    lease: {for: 4s, target: "{{ inputs.ip }}"}
    timeout: 1s
    retry: {max_attempts: 2, backoff: 1s}
"#;

/// A firewall slower than the step's timeout (3 s for 1 s): both attempts time out, yet the
/// firewall applies them. It sees one idempotency key for both (so it can apply the block
/// once), the run keeps the block as a lease whose outcome is unknown, and the lease is undone
/// when it ends: nothing is left blocked and forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_block_keeps_one_key_and_its_lease_is_undone() {
    let (sink, sink_url) = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let firewall = format!("{sink_url}/slow");
    let env = [("GARRISON_FIREWALL_URL", firewall.as_str())];
    let service = Service::start_with(dir.path(), free_port(), free_port(), &env);
    let url = format!("http://{}", service.http);
    let (status, body) = post(
        &service,
        "/api/v1/playbooks",
        &admin,
        json!({"source": CONTAIN_SLOW}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, run) = post(
        &service,
        "/api/v1/playbooks/contain-slow/runs",
        &admin,
        json!({"inputs": {"ip": "192.0.2.9"}}),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let run_id = run["run_id"].as_str().expect("id").to_string();
    wait_status(&url, &admin, &run_id, "failed").await;
    let detail = get_json(&service, &format!("/api/v1/runs/{run_id}"), &admin).await;
    let lease = &detail["leases"][0];
    assert_eq!(lease["target"], "192.0.2.9", "{detail:#}");
    assert_eq!(lease["output"]["outcome"], "unknown", "{detail:#}");

    let calls_to = |path: &str| {
        sink.calls()
            .into_iter()
            .filter(|c| c.path == path)
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while calls_to("/slow/unblock").is_empty() || calls_to("/slow/block").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "blocks {:?}, unblocks {:?}",
            calls_to("/slow/block"),
            calls_to("/slow/unblock")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let blocks = calls_to("/slow/block");
    let keys: std::collections::BTreeSet<&str> = blocks.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys.len(), 1, "one key for both attempts: {blocks:?}");
    let mut attempts: Vec<u32> = blocks.iter().map(|c| c.attempt).collect();
    attempts.sort();
    assert_eq!(attempts, vec![1, 2], "{blocks:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(calls_to("/slow/unblock").len(), 1, "undone once");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let detail = get_json(&service, &format!("/api/v1/runs/{run_id}"), &admin).await;
        if detail["leases"][0]["status"] == "released" {
            break;
        }
        assert!(Instant::now() < deadline, "{detail:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
