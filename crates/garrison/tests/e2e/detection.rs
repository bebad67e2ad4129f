//! Live detection: alerts agree with `garrison hunt`, survive `kill -9` exactly once; rules and
//! alerts are tenant-scoped and role-checked; the audit log is hash-chained and verifiable.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use serde_json::json;

const MARKER: &str = "alpha-detection-marker";
/// SigmaHQ rule folders and the EVTX samples the comparison with `garrison hunt` uses.
const SAMPLES: &[&str] = &["Execution", "Discovery", "Credential Access"];

pub(crate) fn corpus() -> Option<PathBuf> {
    let root = std::env::var_os("GARRISON_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"));
    let needed = [
        root.join("sigma/rules/windows"),
        root.join("evtx-attack-samples"),
    ];
    if needed.iter().all(|p| p.is_dir()) {
        Some(root)
    } else {
        eprintln!(
            "skipping: corpus not found at {} (set GARRISON_CORPUS)",
            root.display()
        );
        None
    }
}

async fn readiness(service: &Service) -> Option<serde_json::Value> {
    client()
        .get(service.url("/readyz"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Waits until the detector has evaluated everything acknowledged (and stays there).
async fn wait_detected(service: &Service) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if let Some(body) = readiness(service).await {
            let committed = body["log_committed"].as_u64();
            if committed.is_some() && body["log_detected"].as_u64() == committed {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("detection did not catch up");
}

/// Every alert through the API, all pages.
async fn all_alerts(service: &Service, token: &str) -> Vec<serde_json::Value> {
    all_pages(service, "/api/v1/alerts?limit=7", "alerts", token).await
}

fn ingest_command(service: &Service, token: &str, paths: &[PathBuf]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("ingest")
        .args(paths)
        .args(["--source", "evtx", "--batch", "50", "--quiet"])
        .args(["--url", &format!("http://{}", service.http)])
        .args(["--token", token])
        .env("GARRISON_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// One of `garrison hunt`'s hits: its rule, the event's host and the hour it fell in.
struct HuntHit {
    rule: String,
    host: String,
    /// `YYYY-MM-DDTHH` of the event time (UTC).
    hour: String,
}

/// `garrison hunt` over the same files, each (rule, event) once (events by the id `garrison
/// ingest` gives them: computer/channel/record), as the alerts count them.
fn hunt_hits(paths: &[PathBuf], rules: &Path) -> Vec<HuntHit> {
    let output = Command::new(BIN)
        .arg("hunt")
        .args(paths)
        .arg("--rules")
        .arg(rules)
        .args(["--format", "jsonl", "--quiet"])
        .env("GARRISON_LOG", "error")
        .output()
        .expect("hunt");
    assert!(
        output.status.success(),
        "hunt failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut seen = HashSet::new();
    let mut hits = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let hit: serde_json::Value = serde_json::from_str(line).expect("hit json");
        let rule = hit["rule_id"].as_str().expect("rule id").to_string();
        let host = hit["computer"].as_str().unwrap_or("").to_lowercase();
        let event = format!(
            "{host}/{}/{}",
            hit["channel"].as_str().unwrap_or(""),
            hit["record_id"]
        );
        let time = hit["timestamp"].as_str().expect("hit time");
        if seen.insert((rule.clone(), event)) {
            hits.push(HuntHit {
                rule,
                host,
                hour: time.get(..13).expect("RFC 3339 time").to_string(),
            });
        }
    }
    hits
}

/// Waits until automatic triage has handled every alert.
async fn wait_triaged(service: &Service) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if let Some(body) = readiness(service).await {
            let created = body["alerts_created"].as_i64();
            if created.is_some() && body["alerts_triaged"].as_i64() == created {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("triage did not catch up");
}

/// Every incident through the API, all pages.
async fn all_incidents(service: &Service, token: &str) -> Vec<serde_json::Value> {
    all_pages(service, "/api/v1/incidents?limit=5", "incidents", token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_alerts_agree_with_hunt_and_survive_kill_9_exactly_once() {
    let Some(corpus) = corpus() else { return };
    let rules = corpus.join("sigma/rules/windows");
    let paths: Vec<PathBuf> = SAMPLES
        .iter()
        .map(|s| corpus.join("evtx-attack-samples").join(s))
        .filter(|p| p.is_dir())
        .collect();
    assert!(!paths.is_empty(), "no sample folders");
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "evtx"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let imported = cli(
        dir.path(),
        &["rules", "import", rules.to_str().expect("path"), "--enable"],
    );
    assert!(
        imported.contains("2407 created") || imported.contains(" created"),
        "{imported}"
    );
    let env = [("GARRISON_DETECTION_BATCH_EVENTS", "50")];
    let (http_port, syslog_port) = (free_port(), free_port());
    let mut service = Service::start_with(dir.path(), http_port, syslog_port, &env);

    // Upload; kill -9 the service as soon as detection has committed something.
    let mut uploader = ingest_command(&service, &ingest, &paths)
        .spawn()
        .expect("ingest");
    let started = Instant::now();
    let mut killed_at = None;
    while started.elapsed() < Duration::from_secs(120) {
        if let Some(body) = readiness(&service).await {
            let detected = body["log_detected"].as_u64().unwrap_or(0);
            let committed = body["log_committed"].as_u64().unwrap_or(0);
            if detected > 0 {
                service.kill9();
                killed_at = Some((detected, committed));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (detected, committed) = killed_at.expect("detection never committed a batch");
    eprintln!("killed with {detected} of {committed} log bytes detected");
    let _ = uploader.wait();
    // Restart and send everything again (the uploader died with the service): the log then
    // holds many events twice; detection must still count each once.
    service = Service::start_with(dir.path(), http_port, syslog_port, &env);
    let status = ingest_command(&service, &ingest, &paths)
        .status()
        .expect("ingest again");
    assert!(status.success(), "second upload failed");
    wait_detected(&service).await;

    let alerts = all_alerts(&service, &admin).await;
    assert!(!alerts.is_empty(), "no alerts");
    let ids: HashSet<&str> = alerts.iter().filter_map(|a| a["id"].as_str()).collect();
    assert_eq!(ids.len(), alerts.len(), "an alert was listed twice");
    let mut live: BTreeMap<String, u64> = BTreeMap::new();
    for alert in &alerts {
        // Unlinked, or linked by automatic triage to the incident of its host.
        assert!(alert["incident_id"].is_null() || alert["incident_id"].is_string());
        assert!(alert["first_seen"].as_str() <= alert["last_seen"].as_str());
        let count = alert["count"].as_u64().expect("count");
        assert!(count >= 1);
        *live
            .entry(alert["rule_id"].as_str().expect("rule").to_string())
            .or_insert(0) += count;
    }
    let hits = hunt_hits(&paths, &rules);
    let mut hunted: BTreeMap<String, u64> = BTreeMap::new();
    for hit in &hits {
        *hunted.entry(hit.rule.clone()).or_insert(0) += 1;
    }
    assert_eq!(
        live, hunted,
        "alert counts per rule differ from garrison hunt's hits per rule"
    );
    // Folding: alerts are fewer than hits when a rule repeats for one host and user.
    eprintln!(
        "{} alerts fold {} hits of {} rules",
        alerts.len(),
        hits.len(),
        hunted.len()
    );

    // Incidents: the default grouping puts every alert of one host and hour into one incident,
    // so the incidents must be hunt's hits grouped by (host, hour), none lost or doubled.
    wait_triaged(&service).await;
    let alerts = all_alerts(&service, &admin).await;
    let mut hits_per_incident: BTreeMap<String, u64> = BTreeMap::new();
    for alert in &alerts {
        let incident = alert["incident_id"]
            .as_str()
            .unwrap_or_else(|| panic!("alert left out of every incident: {alert}"));
        *hits_per_incident.entry(incident.to_string()).or_insert(0) +=
            alert["count"].as_u64().expect("count");
    }
    let incidents = all_incidents(&service, &admin).await;
    let mut live_groups: BTreeMap<(String, String), u64> = BTreeMap::new();
    for view in &incidents {
        let incident = &view["incident"];
        let id = incident["id"].as_str().expect("incident id");
        let group = &incident["fields"]["group"];
        let key = group["key"].as_str().expect("group key").to_string();
        let hour = group["window_start"]
            .as_str()
            .and_then(|t| t.get(..13))
            .expect("window start")
            .to_string();
        let count = hits_per_incident.remove(id).unwrap_or(0);
        assert!(count > 0, "incident {id} holds no alert");
        assert!(
            live_groups
                .insert((key.clone(), hour.clone()), count)
                .is_none(),
            "two incidents for {key} in {hour}"
        );
    }
    assert!(
        hits_per_incident.is_empty(),
        "alerts linked to incidents not listed: {hits_per_incident:?}"
    );
    let mut hunted_groups: BTreeMap<(String, String), u64> = BTreeMap::new();
    for hit in &hits {
        *hunted_groups
            .entry((format!("host={}", hit.host), hit.hour.clone()))
            .or_insert(0) += 1;
    }
    assert_eq!(
        live_groups, hunted_groups,
        "incidents differ from garrison hunt's hits grouped by host and hour"
    );
    eprintln!(
        "{} alerts grouped into {} incidents ({:.1} : 1)",
        alerts.len(),
        incidents.len(),
        alerts.len() as f64 / incidents.len() as f64
    );
    // An alert's events are listed; the lag is a metric.
    let first = alerts[0]["id"].as_str().expect("id");
    let detail = get_json(&service, &format!("/api/v1/alerts/{first}"), &admin).await;
    assert_eq!(
        detail["event_ids"].as_array().map(Vec::len),
        alerts[0]["count"].as_u64().map(|c| c as usize)
    );
    let metrics = metrics_text(&service, &admin).await;
    assert!(
        metrics.contains("garrison_detection_lag_seconds_bucket"),
        "no lag metric"
    );
    // The CLI lists the same alerts from the store.
    let listed = cli(dir.path(), &["alerts", "list", "--all"]);
    assert_eq!(listed.lines().count(), alerts.len());
}

fn rule_yaml(id: &str) -> String {
    format!(
        "title: {MARKER} whoami\nid: {id}\nlevel: high\nlogsource: {{ product: windows, category: process_creation }}\ndetection: {{ selection: {{ Image|endswith: '\\whoami.exe' }}, condition: selection }}\n"
    )
}

async fn post(
    service: &Service,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = client()
        .post(service.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_alerts_and_audit_are_tenant_scoped_role_checked_and_tamper_evident() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alpha_admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let alpha_viewer = cli(dir.path(), &["token", "create", "--role", "viewer"]);
    let alpha_ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "sysmon"],
    );
    cli(dir.path(), &["tenant", "create", "bravo"]);
    let bravo_admin = cli(
        dir.path(),
        &["token", "create", "--role", "admin", "--tenant", "bravo"],
    );
    let password = cli(
        dir.path(),
        &["user", "create", "--username", "ana", "--role", "analyst"],
    );
    let mut service = Service::start(dir.path());
    let rule_id = "33333333-0000-4000-8000-000000000003";

    // A login and an analyst's rule import, enabled.
    let (status, session) = post(
        &service,
        "/api/v1/auth/login",
        "",
        json!({"username": "ana", "password": password}),
    )
    .await;
    assert_eq!(status, 200);
    let analyst = session["token"].as_str().expect("session").to_string();
    let files = json!({"files": [{"path": "mine/whoami.yml", "text": rule_yaml(rule_id)},
                                  {"path": "mine/broken.yml", "text": "title: broken\n"}], "enable": true});
    let (status, imported) = post(&service, "/api/v1/rules/import", &analyst, files.clone()).await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["created"], 1);
    assert_eq!(imported["rejected"].as_array().map(Vec::len), Some(1));
    // A viewer cannot change rules; every role can read them.
    let (status, _) = post(&service, "/api/v1/rules/import", &alpha_viewer, files).await;
    assert_eq!(status, 403);
    for verb in ["enable", "disable"] {
        let (status, _) = post(
            &service,
            &format!("/api/v1/rules/{rule_id}/{verb}"),
            &alpha_viewer,
            json!({}),
        )
        .await;
        assert_eq!(status, 403, "viewer could {verb}");
    }
    let rules = get_json(&service, "/api/v1/rules", &alpha_viewer).await;
    assert_eq!(rules[0]["id"], rule_id);
    assert_eq!(rules[0]["enabled"], true);
    assert_eq!(rules[0]["origin"], "mine/whoami.yml");

    // An event that matches: an alert for alpha.
    let event = json!({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "ws1", "Image": "C:\\Windows\\System32\\whoami.exe", "_id": "ev-1",
        "@timestamp": "2026-11-25T10:00:00Z"});
    let response = client()
        .post(service.url("/api/v1/ingest/events"))
        .bearer_auth(&alpha_ingest)
        .body(event.to_string())
        .send()
        .await
        .expect("ingest");
    assert_eq!(response.status().as_u16(), 200);
    wait_indexed(&service).await;
    wait_detected(&service).await;
    let alerts = all_alerts(&service, &alpha_viewer).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["rule_id"], rule_id);
    assert_eq!(alerts[0]["count"], 1);
    let alert_id = alerts[0]["id"].as_str().expect("id").to_string();
    // The rule test finds the stored event.
    let (status, tested) = post(
        &service,
        &format!("/api/v1/rules/{rule_id}/test"),
        &alpha_viewer,
        json!({"from": "2026-11-25T00:00:00Z", "to": "2026-11-26T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(
        tested["matches"].as_array().map(Vec::len),
        Some(1),
        "{tested}"
    );

    // Bravo sees none of it and changes nothing.
    for path in [
        format!("/api/v1/rules/{rule_id}"),
        format!("/api/v1/alerts/{alert_id}"),
    ] {
        let response = client()
            .get(service.url(&path))
            .bearer_auth(&bravo_admin)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
    for verb in ["enable", "disable", "test"] {
        let (status, body) = post(
            &service,
            &format!("/api/v1/rules/{rule_id}/{verb}"),
            &bravo_admin,
            json!({}),
        )
        .await;
        assert_eq!(status, 404, "bravo could {verb} alpha's rule: {body}");
    }
    for path in ["/api/v1/rules", "/api/v1/alerts", "/api/v1/audit"] {
        let body = get_json(&service, path, &bravo_admin).await.to_string();
        assert!(
            !body.contains(MARKER) && !body.contains(rule_id),
            "{path} leaked: {body}"
        );
    }
    assert!(all_alerts(&service, &bravo_admin).await.is_empty());
    let alpha_rule = get_json(&service, &format!("/api/v1/rules/{rule_id}"), &alpha_admin).await;
    assert_eq!(alpha_rule["enabled"], true);
    assert_eq!(alpha_rule["versions"].as_array().map(Vec::len), Some(1));

    // The analyst disables the rule; the audit log has every action, for admins only.
    let (status, _) = post(
        &service,
        &format!("/api/v1/rules/{rule_id}/disable"),
        &analyst,
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let response = client()
        .get(service.url("/api/v1/audit"))
        .bearer_auth(&alpha_viewer)
        .send()
        .await
        .expect("audit");
    assert_eq!(response.status().as_u16(), 403);
    let audit = get_json(&service, "/api/v1/audit", &alpha_admin).await;
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["actor"].as_str().unwrap_or(""),
            )
        })
        .collect();
    // Token use is noted once an hour per token, beside the actions; triage's own actions
    // (incidents it opens for the alerts) are there too, under `system:triage`.
    assert!(actions.contains(&("token.use", "user:ana")), "{actions:?}");
    let changes: Vec<(&str, &str)> = actions
        .iter()
        .copied()
        .filter(|(action, actor)| *action != "token.use" && actor.starts_with("user:"))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("auth.login", "user:ana"),
            ("rule.import", "user:ana"),
            ("rule.disable", "user:ana")
        ]
    );
    // A multipart upload (a browser form) with a rule file and `enable`.
    let extra = "44444444-0000-4000-8000-000000000004";
    let boundary = "garrison-test-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"enable\"\r\n\r\ntrue\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"extra.yml\"\r\n\
         Content-Type: application/yaml\r\n\r\n{}\r\n--{boundary}--\r\n",
        rule_yaml(extra)
    );
    let response = client()
        .post(service.url("/api/v1/rules/import"))
        .bearer_auth(&alpha_admin)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("multipart");
    assert_eq!(response.status().as_u16(), 200);
    let imported: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        (imported["created"].as_u64(), imported["enabled"].as_u64()),
        (Some(1), Some(1))
    );
    let rule = get_json(&service, &format!("/api/v1/rules/{extra}"), &alpha_admin).await;
    assert_eq!(rule["origin"], "extra.yml");
    assert_eq!(rule["enabled"], true);
    service.kill9();

    // verify holds; after a row is edited in SQLite, it fails and names that entry.
    let output = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["audit", "verify"])
        .env("GARRISON_LOG", "warn")
        .output()
        .expect("verify");
    assert!(output.status.success(), "{output:?}");
    let (store, tenant) = local_store(dir.path()).await;
    store
        .tamper_audit_for_tests(tenant, 2, "user:mallory")
        .await
        .expect("tamper");
    let output = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["audit", "verify"])
        .env("GARRISON_LOG", "warn")
        .output()
        .expect("verify");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("TAMPERED at entry 2"), "{stdout}");
}
