//! Playbook triggers end to end: a new alert and an incident state change each start their
//! playbooks once, across `kill -9` and restarts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::*;
use serde_json::{json, Value};

/// An HTTP endpoint that records the path of every request and answers 200.
#[derive(Clone, Default)]
struct Sink {
    paths: Arc<Mutex<Vec<String>>>,
    /// (path, Idempotency-Key) of every call.
    keys: Arc<Mutex<Vec<(String, String)>>>,
    /// (path, body) of every call.
    bodies: Arc<Mutex<Vec<(String, String)>>>,
}

impl Sink {
    async fn start() -> (Sink, String) {
        let sink = Sink::default();
        let s = sink.clone();
        let url = serve_http(move |request: HttpRequest| {
            let s = s.clone();
            async move {
                s.keys
                    .lock()
                    .expect("lock")
                    .push((request.path.clone(), request.idempotency_key));
                s.bodies.lock().expect("lock").push((
                    request.path.clone(),
                    String::from_utf8_lossy(&request.body).into_owned(),
                ));
                s.paths.lock().expect("lock").push(request.path);
                (200, "{\"ok\":true}".to_string())
            }
        })
        .await;
        (sink, url)
    }

    /// Distinct idempotency keys (runs and attempts) per path with `prefix`: a call resent
    /// with the same key is one side effect for the target.
    fn distinct_keys(&self, prefix: &str) -> BTreeMap<String, usize> {
        let mut keys: Vec<(String, String)> = self
            .keys
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        let mut counts = BTreeMap::new();
        for (p, _) in keys {
            *counts.entry(p).or_insert(0) += 1;
        }
        counts
    }

    /// Calls per path with `prefix`.
    fn counts(&self, prefix: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for p in self.paths.lock().expect("lock").iter() {
            if p.starts_with(prefix) {
                *counts.entry(p.clone()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Waits until `n` distinct paths with `prefix` were called (or 30 s).
    async fn wait_distinct(&self, prefix: &str, n: usize) -> BTreeMap<String, usize> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let counts = self.counts(prefix);
            if counts.len() >= n {
                return counts;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.counts(prefix)
    }
}

async fn send(
    service: &Service,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let response = client()
        .request(method, service.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const RULE_ID: &str = "44444444-0000-4000-8000-000000000004";

fn rule_yaml() -> String {
    format!(
        "title: trigger whoami\nid: {RULE_ID}\nlevel: high\nlogsource: {{ product: windows, category: process_creation }}\ndetection: {{ selection: {{ Image|endswith: '\\whoami.exe' }}, condition: selection }}\n"
    )
}

/// Sends one whoami event per host (each host is another alert's entity).
async fn ingest_whoami(service: &Service, token: &str, hosts: &[String]) {
    let body: String = hosts
        .iter()
        .map(|host| {
            json!({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": host, "Image": "C:\\Windows\\System32\\whoami.exe",
                "_id": format!("ev-{host}"), "@timestamp": "2026-11-25T10:00:00Z"})
            .to_string()
                + "\n"
        })
        .collect();
    let response = client()
        .post(service.url("/api/v1/ingest/events"))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("ingest");
    assert_eq!(response.status().as_u16(), 200);
}

/// Alert ids of the rule, through the API.
async fn alert_ids(service: &Service, token: &str) -> Vec<String> {
    let page = get_json(service, "/api/v1/alerts?limit=1000", token).await;
    page["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["rule_id"] == RULE_ID)
        .map(|a| a["id"].as_str().expect("id").to_string())
        .collect()
}

async fn wait_alerts(service: &Service, token: &str, n: usize) -> Vec<String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let ids = alert_ids(service, token).await;
        if ids.len() >= n {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "expected {n} alerts, have {:?}",
        alert_ids(service, token).await
    );
}

const FAST: &[(&str, &str)] = &[("GARRISON_TRIGGER_POLL_INTERVAL", "100ms")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_alert_starts_its_playbook_once_across_kill_9() {
    let (sink, sink_url) = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "sysmon"],
    );
    let (http_port, syslog_port) = (free_port(), free_port());
    let mut service = Service::start_with(dir.path(), http_port, syslog_port, FAST);

    let files = json!({"files": [{"path": "t/whoami.yml", "text": rule_yaml()}], "enable": true});
    let (status, imported) = send(&service, "POST", "/api/v1/rules/import", &admin, files).await;
    assert_eq!(status, 200, "{imported}");
    // Two playbooks on alerts: one for every alert, one whose condition never holds.
    let on_alert = format!(
        "name: on-alert\ntriggers:\n  - alert: {{}}\nsteps:\n  - id: call\n    action: core.http\n    with: {{url: \"{sink_url}/alert/{{{{ trigger.alert.alert_id }}}}\", method: POST}}\n"
    );
    let never = format!(
        "name: never\ntriggers:\n  - alert: {{condition: \"alert.level == 'low'\"}}\nsteps:\n  - id: call\n    action: core.http\n    with: {{url: \"{sink_url}/never\", method: POST}}\n"
    );
    for source in [on_alert, never] {
        let (status, body) = send(
            &service,
            "POST",
            "/api/v1/playbooks",
            &admin,
            json!({ "source": source }),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }

    // First batch: every alert calls the sink once.
    let first: Vec<String> = (0..3).map(|i| format!("ws-a{i}")).collect();
    ingest_whoami(&service, &ingest, &first).await;
    let ids = wait_alerts(&service, &admin, 3).await;
    let counts = sink.wait_distinct("/alert/", 3).await;
    let expected: BTreeMap<String, usize> =
        ids.iter().map(|id| (format!("/alert/{id}"), 1)).collect();
    assert_eq!(counts, expected, "one call per alert");

    // A second batch, killed as soon as its alerts exist (dispatch in flight or not yet
    // committed), then a restart: every alert still starts its playbook exactly once.
    let second: Vec<String> = (0..4).map(|i| format!("ws-b{i}")).collect();
    ingest_whoami(&service, &ingest, &second).await;
    let ids = wait_alerts(&service, &admin, 7).await;
    service.kill9();
    service = Service::start_with(dir.path(), http_port, syslog_port, FAST);
    sink.wait_distinct("/alert/", 7).await;
    // And once more, a plain restart with nothing new.
    service.kill9();
    service = Service::start_with(dir.path(), http_port, syslog_port, FAST);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let expected: BTreeMap<String, usize> =
        ids.iter().map(|id| (format!("/alert/{id}"), 1)).collect();
    // One run per alert: one idempotency key per alert's call. (The kill may land while a
    // call is in flight; the run then resends it with the same key after the restart, which
    // the target sees as one effect.)
    assert_eq!(
        sink.distinct_keys("/alert/"),
        expected,
        "no alert started twice: calls {:?}",
        sink.counts("/alert/")
    );
    assert!(
        sink.counts("/never").is_empty(),
        "the condition was ignored"
    );

    // One run per alert, each started by the trigger.
    let runs = get_json(
        &service,
        "/api/v1/runs?playbook=on-alert&limit=1000",
        &admin,
    )
    .await;
    let runs = runs.as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 7, "{runs:?}");
    assert!(runs.iter().all(|r| r["run_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("trg-"))));
    drop(service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_state_changes_start_their_playbooks_once() {
    let (sink, sink_url) = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let (http_port, syslog_port) = (free_port(), free_port());
    let mut service = Service::start_with(dir.path(), http_port, syslog_port, FAST);

    let on_triage = format!(
        "name: on-triage\ntriggers:\n  - incident_state: {{to: triage}}\nsteps:\n  - id: call\n    action: core.http\n    with: {{url: \"{sink_url}/state/{{{{ trigger.incident.id }}}}/{{{{ trigger.from }}}}/{{{{ trigger.to }}}}\", method: POST}}\n"
    );
    let (status, body) = send(
        &service,
        "POST",
        "/api/v1/playbooks",
        &admin,
        json!({ "source": on_triage }),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let mut ids = Vec::new();
    for n in 0..2 {
        let (status, created) = send(
            &service,
            "POST",
            "/api/v1/incidents",
            &admin,
            json!({"title": format!("incident {n}"), "severity": "high"}),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let id = created["incident"]["id"].as_str().expect("id").to_string();
        for step in [
            json!({"action": "assign", "assignee": "admin"}),
            json!({"action": "transition", "to": "triage"}),
        ] {
            let (status, body) = send(
                &service,
                "POST",
                &format!("/api/v1/incidents/{id}/actions"),
                &admin,
                step.clone(),
            )
            .await;
            assert_eq!(status, 200, "{step}: {body}");
        }
        ids.push(id);
    }
    let calls = sink.wait_distinct("/state/", 2).await;
    let expected: BTreeMap<String, usize> = ids
        .iter()
        .map(|id| (format!("/state/{id}/new/triage"), 1))
        .collect();
    // One run (one idempotency key) per move to triage, none for creation. (A call resent
    // with the same key by the transport is still one side effect for the target.)
    assert_eq!(
        sink.distinct_keys("/state/"),
        expected,
        "calls per path: {calls:?}"
    );

    // A restart replays nothing.
    service.kill9();
    service = Service::start_with(dir.path(), http_port, syslog_port, FAST);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.distinct_keys("/state/"), expected);
    drop(service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sla_breach_is_recorded_once_and_starts_its_playbook_once() {
    let (sink, sink_url) = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let (http_port, syslog_port) = (free_port(), free_port());
    let env = [
        ("GARRISON_TRIGGER_POLL_INTERVAL", "100ms"),
        ("GARRISON_SLA_CHECK_INTERVAL", "200ms"),
    ];
    let mut service = Service::start_with(dir.path(), http_port, syslog_port, &env);
    // Two seconds to acknowledge; the other clocks far away.
    let (status, body) = send(
        &service,
        "PUT",
        "/api/v1/sla-policy",
        &admin,
        json!({"default": {"acknowledge_secs": 2, "analysis_secs": 86400, "disposal_secs": 86400}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let on_breach = format!(
        "name: on-breach\ntriggers:\n  - sla_breach: {{stage: acknowledge}}\nsteps:\n  - id: call\n    action: core.http\n    with: {{url: \"{sink_url}/breach/{{{{ trigger.incident.id }}}}/{{{{ trigger.stage }}}}\", method: POST}}\n"
    );
    let (status, body) = send(
        &service,
        "POST",
        "/api/v1/playbooks",
        &admin,
        json!({ "source": on_breach }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, created) = send(
        &service,
        "POST",
        "/api/v1/incidents",
        &admin,
        json!({"title": "nobody looks at this", "severity": "high"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["incident"]["id"].as_str().expect("id").to_string();
    // A second incident acknowledged in time breaches nothing.
    let (_, prompt) = send(
        &service,
        "POST",
        "/api/v1/incidents",
        &admin,
        json!({"title": "looked at at once", "severity": "high"}),
    )
    .await;
    let prompt_id = prompt["incident"]["id"].as_str().expect("id").to_string();
    let (status, body) = send(
        &service,
        "POST",
        &format!("/api/v1/incidents/{prompt_id}/actions"),
        &admin,
        json!({"action": "assign", "assignee": "admin"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &service,
        "POST",
        &format!("/api/v1/incidents/{prompt_id}/transitions"),
        &admin,
        json!({"to": "triage"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let calls = sink.wait_distinct("/breach/", 1).await;
    let expected: BTreeMap<String, usize> = [(format!("/breach/{id}/acknowledge"), 1)]
        .into_iter()
        .collect();
    assert_eq!(sink.distinct_keys("/breach/"), expected, "{calls:?}");
    let breaches = |timeline: &serde_json::Value| {
        timeline["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["type"] == "sla_breached")
            .count()
    };
    let timeline = get_json(
        &service,
        &format!("/api/v1/incidents/{id}/timeline"),
        &admin,
    )
    .await;
    assert_eq!(breaches(&timeline), 1, "{timeline}");

    // Across kill -9 and further checks: still one breach, one run.
    service.kill9();
    service = Service::start_with(dir.path(), http_port, syslog_port, &env);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let timeline = get_json(
        &service,
        &format!("/api/v1/incidents/{id}/timeline"),
        &admin,
    )
    .await;
    assert_eq!(breaches(&timeline), 1, "{timeline}");
    let prompt_timeline = get_json(
        &service,
        &format!("/api/v1/incidents/{prompt_id}/timeline"),
        &admin,
    )
    .await;
    assert_eq!(breaches(&prompt_timeline), 0, "{prompt_timeline}");
    assert_eq!(sink.distinct_keys("/breach/"), expected);
    let metrics = get_json(&service, "/api/v1/metrics/soc", &admin).await;
    assert!(
        metrics["within_sla_pct"]["acknowledge"]
            .as_f64()
            .is_some_and(|p| p < 100.0),
        "{metrics}"
    );
    drop(service);
}

/// One alert's path reads in the service's log, each stage naming what the next one names:
/// the ingest request (its `X-Request-Id`) acknowledges the event, the detector matches the
/// event into the alert, triage opens the alert's incident, and the trigger starts the run,
/// inside a span carrying the alert id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alerts_path_from_ingest_to_its_run_reads_in_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("service.log");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "sysmon"],
    );
    let env = [
        ("GARRISON_TRIGGER_POLL_INTERVAL", "100ms"),
        ("GARRISON_LOG_FORMAT", "json"),
        (
            "GARRISON_LOG",
            "info,garrison_server=debug,garrison_detect=debug,garrison_triage=debug,garrison_soar=debug",
        ),
    ];
    let service = Service::start_logging(dir.path(), free_port(), free_port(), &env, Some(&log));
    let files = json!({"files": [{"path": "t/whoami.yml", "text": rule_yaml()}], "enable": true});
    let (status, imported) = send(&service, "POST", "/api/v1/rules/import", &admin, files).await;
    assert_eq!(status, 200, "{imported}");
    let playbook = "name: on-alert\ntriggers:\n  - alert: {}\nsteps:\n  - id: note\n    action: core.log\n    with: {message: \"seen {{ trigger.alert.alert_id }}\"}\n";
    let (status, body) = send(
        &service,
        "POST",
        "/api/v1/playbooks",
        &admin,
        json!({ "source": playbook }),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let event = json!({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "ws-trace", "Image": "C:\\Windows\\System32\\whoami.exe",
        "@timestamp": "2026-11-25T10:00:00Z"});
    let response = client()
        .post(service.url("/api/v1/ingest/events"))
        .bearer_auth(&ingest)
        .header("x-request-id", "trace-me-1")
        .body(event.to_string())
        .send()
        .await
        .expect("ingest");
    assert_eq!(response.status().as_u16(), 200);
    let alert = wait_alerts(&service, &admin, 1).await.remove(0);
    let started = Instant::now();
    let run = loop {
        let runs = get_json(&service, "/api/v1/runs?playbook=on-alert", &admin).await;
        if let Some(id) = runs[0]["run_id"].as_str() {
            break id.to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no run: {runs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Triage and the trigger follow alerts apart: wait for the incident too.
    let incident = loop {
        let detail = get_json(&service, &format!("/api/v1/alerts/{alert}"), &admin).await;
        if let Some(id) = detail["incident_id"].as_str() {
            break id.to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not triaged: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(service);

    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // A line's own fields and those of its spans, as one text to search.
    let text = |line: &Value| line.to_string();
    let find = |message: &str, needles: &[&str]| -> Value {
        lines
            .iter()
            .find(|l| {
                l["fields"]["message"] == message && needles.iter().all(|n| text(l).contains(n))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no {message:?} line with {needles:?} in the log"))
    };
    let acked = find("events acknowledged", &["trace-me-1"]);
    let event_id = acked["fields"]["first_event"]
        .as_str()
        .expect("first_event")
        .to_string();
    find("event matched", &[&event_id, &alert]);
    find("incident opened", &[&alert, &incident]);
    let started = find("playbook started by trigger", &[&run]);
    assert_eq!(
        started["span"]["alert_id"], alert,
        "the trigger's span names the alert: {started}"
    );
}

/// The shipped brute-force pair, as an operator sets it up: the scenario rules and the
/// playbook from the repository, sshd failures arriving over syslog. The correlation's alert
/// starts `block-brute-force-source` with the attacker's address mapped from the alert, the
/// firewall receives the block and the run holds it under a lease. A playbook whose required
/// input no trigger fills is kept as a failed run that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brute_force_alert_blocks_its_source_through_the_shipped_pair() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (sink, sink_url) = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = repo.join("rules/scenarios/ssh-authentication.yml");
    cli(
        dir.path(),
        &["rules", "import", rules.to_str().expect("path"), "--enable"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let env = [
        ("GARRISON_TRIGGER_POLL_INTERVAL", "100ms"),
        ("GARRISON_FIREWALL_URL", sink_url.as_str()),
    ];
    let service = Service::start_with(dir.path(), free_port(), free_port(), &env);

    let shipped = std::fs::read_to_string(repo.join("playbooks/block-brute-force-source.yml"))
        .expect("shipped playbook");
    // Needs a host that an alert trigger's payload does not give.
    let unmappable = "name: needs-host\ninputs:\n  host: {type: string}\ntriggers:\n  - alert: {}\nsteps:\n  - id: say\n    action: core.log\n    with: {message: \"{{ inputs.host }}\"}\n";
    for source in [shipped.as_str(), unmappable] {
        let (status, body) = send(
            &service,
            "POST",
            "/api/v1/playbooks",
            &admin,
            json!({ "source": source }),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }

    let lines: Vec<String> = (0..12)
        .map(|i| {
            format!(
                "<38>Dec  7 10:02:{:02} bastion sshd[9{i:02}]: Failed password for root from 203.0.113.77 port {} ssh2",
                i * 3,
                50000 + i
            )
        })
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    send_syslog(&service, &lines);

    // The firewall is asked to block the attacker, once.
    let started = Instant::now();
    let blocks = loop {
        let blocks: Vec<String> = sink
            .bodies
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| p.starts_with("/block"))
            .map(|(_, b)| b.clone())
            .collect();
        if !blocks.is_empty() || started.elapsed() > Duration::from_secs(30) {
            break blocks;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert!(blocks[0].contains("203.0.113.77"), "{}", blocks[0]);
    assert!(
        blocks[0].contains("SSH brute force from one address"),
        "the alert's title is in the comment: {}",
        blocks[0]
    );

    let run_of = |playbook: &'static str| {
        let service = &service;
        let admin = admin.clone();
        async move {
            let started = Instant::now();
            loop {
                let runs = get_json(
                    service,
                    &format!("/api/v1/runs?playbook={playbook}"),
                    &admin,
                )
                .await;
                let runs = runs.as_array().cloned().unwrap_or_default();
                if let Some(run) = runs.iter().find(|r| {
                    // A succeeded run holding a lease stays active until the lease ends.
                    matches!(
                        r["status"].as_str(),
                        Some("succeeded" | "failed" | "cancelled")
                    )
                }) {
                    let id = run["run_id"].as_str().expect("run id").to_string();
                    return get_json(service, &format!("/api/v1/runs/{id}"), &admin).await;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "{playbook}: {runs:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let blocked = run_of("block-brute-force-source").await;
    let run = &blocked;
    assert_eq!(run["status"], "succeeded", "{blocked:#}");
    assert_eq!(run["inputs"]["ip"], "203.0.113.77");
    assert_eq!(run["inputs"]["rule"], "SSH brute force from one address");
    assert_eq!(run["trigger"]["kind"], "alert");
    let leases = run["leases"].as_array().cloned().unwrap_or_default();
    assert_eq!(leases.len(), 1, "the block is held under a lease: {run:#}");
    assert_eq!(leases[0]["target"], "203.0.113.77");

    let refused = run_of("needs-host").await;
    let run = &refused;
    assert_eq!(run["status"], "failed", "{refused:#}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("not started: the alert trigger's inputs")
            && error.contains("inputs.host: required"),
        "{error}"
    );
    drop(service);
}
