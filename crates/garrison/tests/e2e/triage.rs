//! Automatic triage end to end: EVTX samples through live detection become incidents grouped
//! by host, suppressed alerts are counted and never linked, a `kill -9` during triage
//! duplicates nothing, and the triage settings are role-checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

const FAST: &[(&str, &str)] = &[("GARRISON_TRIGGER_POLL_INTERVAL", "100ms")];
/// A host of the `Execution` samples whose alerts are suppressed before they arrive.
const QUIET_HOST: &str = "LAPTOP-JU4M3I0E*";

fn corpus() -> Option<PathBuf> {
    let root = std::env::var_os("GARRISON_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"));
    let needed = [
        root.join("sigma/rules/windows/process_creation"),
        root.join("evtx-attack-samples/Execution"),
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
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn send_text(
    service: &Service,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let response = client()
        .request(method, service.url(path))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn all_alerts(service: &Service, token: &str) -> Vec<Value> {
    all_pages(service, "/api/v1/alerts?limit=500", "alerts", token).await
}

async fn all_incidents(service: &Service, token: &str) -> Vec<Value> {
    all_pages(service, "/api/v1/incidents?limit=200", "incidents", token).await
}

/// Waits until detection has read everything acknowledged, then until every alert is linked
/// or suppressed and that has held for a while.
async fn wait_triaged(service: &Service, token: &str) -> Vec<Value> {
    let started = Instant::now();
    let mut settled_since: Option<(Instant, usize)> = None;
    while started.elapsed() < Duration::from_secs(180) {
        let ready: Option<Value> = async {
            client()
                .get(service.url("/readyz"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()
        }
        .await;
        let detected = ready.as_ref().is_some_and(|b| {
            b["log_committed"].as_u64().is_some() && b["log_detected"] == b["log_committed"]
        });
        if detected {
            let alerts = all_alerts(service, token).await;
            let pending = alerts
                .iter()
                .filter(|a| a["incident_id"].is_null() && a["status"] != "suppressed")
                .count();
            if pending == 0 && !alerts.is_empty() {
                match settled_since {
                    Some((since, n)) if n == alerts.len() => {
                        if since.elapsed() > Duration::from_secs(2) {
                            return alerts;
                        }
                    }
                    _ => settled_since = Some((Instant::now(), alerts.len())),
                }
            } else {
                settled_since = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("triage did not catch up");
}

fn ingest(service: &Service, token: &str, paths: &[PathBuf]) -> std::process::Child {
    Command::new(BIN)
        .arg("ingest")
        .args(paths)
        .args(["--source", "evtx", "--batch", "50", "--quiet"])
        .args(["--url", &format!("http://{}", service.http)])
        .args(["--token", token])
        .env("GARRISON_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ingest")
}

/// Checks what triage left: every alert linked (once, to a live incident) or suppressed and
/// unlinked, one incident per (grouping rule, key, window), the score's parts on each.
/// Returns (incidents, linked alerts, suppressed alerts).
async fn check_triage(service: &Service, token: &str, alerts: &[Value]) -> (usize, usize, usize) {
    let incidents = all_incidents(service, token).await;
    let by_id: BTreeMap<&str, &Value> = incidents
        .iter()
        .filter_map(|i| Some((i["incident"]["id"].as_str()?, i)))
        .collect();
    assert_eq!(by_id.len(), incidents.len(), "an incident was listed twice");
    let mut groups = BTreeSet::new();
    for incident in &incidents {
        let fields = &incident["incident"]["fields"];
        assert!(
            fields["score_parts"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "no score parts: {incident}"
        );
        let parts_sum: i64 = fields["score_parts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["points"].as_i64())
            .sum();
        // The parts of the highest-scoring alert add up to the incident's score.
        assert_eq!(
            Some(parts_sum),
            incident["incident"]["score"].as_i64(),
            "{incident}"
        );
        if !fields["group"].is_null() {
            assert!(
                groups.insert(fields["group"].to_string()),
                "two incidents for one group: {}",
                fields["group"]
            );
        }
    }
    let (mut linked, mut suppressed) = (0, 0);
    let mut per_incident: BTreeMap<String, usize> = BTreeMap::new();
    let mut hosts_per_incident: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for alert in alerts {
        if alert["status"] == "suppressed" {
            assert!(
                alert["incident_id"].is_null(),
                "suppressed yet linked: {alert}"
            );
            suppressed += 1;
            continue;
        }
        let id = alert["incident_id"].as_str().expect("linked");
        assert!(
            by_id.contains_key(id),
            "linked to a missing incident: {alert}"
        );
        linked += 1;
        *per_incident.entry(id.to_string()).or_insert(0) += 1;
        if let Some(host) = alert["entity"]["host.name"].as_str() {
            hosts_per_incident
                .entry(id.to_string())
                .or_default()
                .insert(host.to_lowercase());
        }
    }
    for (id, hosts) in &hosts_per_incident {
        assert_eq!(hosts.len(), 1, "incident {id} mixes hosts {hosts:?}");
    }
    // Every incident holds at least one alert: none was opened twice for one alert.
    for id in by_id.keys() {
        assert!(per_incident.contains_key(*id), "incident {id} has no alert");
    }
    (incidents.len(), linked, suppressed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_become_grouped_incidents_suppressions_count_and_kill_9_duplicates_nothing() {
    let Some(corpus) = corpus() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest_token = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "evtx"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let viewer = cli(dir.path(), &["token", "create", "--role", "viewer"]);
    let rules = corpus.join("sigma/rules/windows/process_creation");
    cli(
        dir.path(),
        &["rules", "import", rules.to_str().expect("path"), "--enable"],
    );
    let (http_port, syslog_port) = (free_port(), free_port());
    let mut service = Service::start_with(dir.path(), http_port, syslog_port, FAST);

    // Settings: viewers change nothing; bad settings are refused with their places.
    let (status, _) = send(
        &service,
        "POST",
        "/api/v1/suppressions",
        &viewer,
        json!({"fields": {"host.name": "x"}, "reason": "no"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = send(
        &service,
        "POST",
        "/api/v1/suppressions",
        &admin,
        json!({"reason": "everything"}),
    )
    .await;
    assert_eq!(status, 400, "a suppression without scope: {body}");
    let (status, body) = send(
        &service,
        "PUT",
        "/api/v1/grouping-rules/bad",
        &admin,
        json!({"keys": [], "window_secs": 0}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    let (status, body) = send_text(
        &service,
        "PUT",
        "/api/v1/workflow",
        &admin,
        "name: broken\ninitial: nowhere\nstates: []\ntransitions: []\n",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = send(
        &service,
        "PUT",
        "/api/v1/sla-policy",
        &admin,
        json!({"default": {"acknowledge_secs": 0, "analysis_secs": 60, "disposal_secs": 60}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0]["path"], "default.acknowledge_secs",
        "{body}"
    );
    let policy = get_json(&service, "/api/v1/sla-policy", &viewer).await;
    assert_eq!(policy["default"]["acknowledge_secs"], 180, "{policy}");
    let workflow = get_json(&service, "/api/v1/workflow", &viewer).await;
    assert_eq!(workflow["version"], 1, "{workflow}");

    // The asset table: one critical host, one bad line reported.
    let (status, imported) = send_text(
        &service,
        "POST",
        "/api/v1/assets/import",
        &admin,
        "name,criticality,ip\nIEWIN7,critical,\nsomething,unheard-of,\n",
    )
    .await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["imported"], 1, "{imported}");
    assert_eq!(
        imported["errors"].as_array().map(Vec::len),
        Some(1),
        "{imported}"
    );
    let assets = get_json(&service, "/api/v1/assets", &viewer).await;
    assert_eq!(assets.as_array().map(Vec::len), Some(1), "{assets}");

    // A suppression before anything arrives.
    let (status, created) = send(
        &service,
        "POST",
        "/api/v1/suppressions",
        &admin,
        json!({"id": "quiet-laptop", "fields": {"host.name": QUIET_HOST}, "reason": "lab machine"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    // Ingest, and kill -9 as soon as triage has opened its first incident.
    let paths = vec![corpus.join("evtx-attack-samples/Execution")];
    let mut uploader = ingest(&service, &ingest_token, &paths);
    let started = Instant::now();
    let mut killed = false;
    while started.elapsed() < Duration::from_secs(120) {
        let page = get_json(&service, "/api/v1/incidents?limit=1", &admin).await;
        if page["incidents"].as_array().is_some_and(|i| !i.is_empty()) {
            service.kill9();
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(killed, "no incident appeared");
    let _ = uploader.wait();
    service = Service::start_with(dir.path(), http_port, syslog_port, FAST);
    // The uploader died with the service: send everything again (same ids, same alerts).
    let status = ingest(&service, &ingest_token, &paths)
        .wait()
        .expect("ingest again");
    assert!(status.success(), "second upload failed");
    let alerts = wait_triaged(&service, &admin).await;
    let (incidents, linked, suppressed) = check_triage(&service, &admin, &alerts).await;

    // The suppression counted exactly the alerts it held back, and only those of its host.
    let quiet: Vec<&Value> = alerts
        .iter()
        .filter(|a| {
            a["entity"]["host.name"]
                .as_str()
                .is_some_and(|h| h.to_uppercase().starts_with("LAPTOP-JU4M3I0E"))
        })
        .collect();
    assert!(!quiet.is_empty(), "the samples have alerts of {QUIET_HOST}");
    assert!(
        quiet.iter().all(|a| a["status"] == "suppressed"),
        "{quiet:?}"
    );
    assert_eq!(
        quiet.len(),
        suppressed,
        "only the quiet host's alerts are suppressed"
    );
    let suppressions = get_json(&service, "/api/v1/suppressions", &viewer).await;
    assert_eq!(suppressions[0]["id"], "quiet-laptop", "{suppressions}");
    assert_eq!(
        suppressions[0]["hits"].as_u64(),
        Some(suppressed as u64),
        "{suppressions}"
    );

    // The critical asset scores higher than the same rule level elsewhere would: its part shows.
    let all = all_incidents(&service, &admin).await;
    let critical = all.iter().find(|i| {
        i["incident"]["title"]
            .as_str()
            .is_some_and(|t| t.to_uppercase().contains("IEWIN7"))
    });
    let critical = critical.expect("an incident of the critical asset IEWIN7");
    let parts = critical["incident"]["fields"]["score_parts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        parts
            .iter()
            .any(|p| p["name"] == "asset" && p["points"] == 25),
        "{critical}"
    );
    // An incident's detail lists its alerts and the "alert added" entries are on its timeline.
    let biggest = all
        .iter()
        .filter_map(|i| i["incident"]["id"].as_str())
        .max_by_key(|id| {
            alerts
                .iter()
                .filter(|a| a["incident_id"].as_str() == Some(id))
                .count()
        })
        .expect("an incident");
    let in_biggest = alerts
        .iter()
        .filter(|a| a["incident_id"].as_str() == Some(biggest))
        .count();
    let detail = get_json(&service, &format!("/api/v1/incidents/{biggest}"), &viewer).await;
    assert_eq!(
        detail["alerts"].as_array().map(Vec::len),
        Some(in_biggest),
        "{detail}"
    );
    assert!(
        detail["observables"]
            .as_array()
            .is_some_and(|o| !o.is_empty()),
        "{detail}"
    );
    let timeline = get_json(
        &service,
        &format!("/api/v1/incidents/{biggest}/timeline?limit=1000"),
        &viewer,
    )
    .await;
    let added = timeline["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("alert added"))
        })
        .count();
    assert_eq!(added, in_biggest - 1, "{timeline}");

    // A plain restart changes nothing.
    service.kill9();
    service = Service::start_with(dir.path(), http_port, syslog_port, FAST);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = wait_triaged(&service, &admin).await;
    assert_eq!(again.len(), alerts.len());
    assert_eq!(
        check_triage(&service, &admin, &again).await,
        (incidents, linked, suppressed)
    );

    eprintln!(
        "triage: {} alerts ({linked} linked, {suppressed} suppressed) -> {incidents} incidents: {:.1} alerts per incident",
        alerts.len(),
        linked as f64 / incidents.max(1) as f64
    );
    assert!(incidents < linked, "grouping merged nothing");
    // Each incident triage opened is a machine action in the audit log, committed with the
    // incident: noted exactly once though triage ran again after kill -9.
    let audit = get_json(&service, "/api/v1/audit?limit=1000", &admin).await;
    let opened = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "incident.create" && e["actor"] == "system:triage")
        .count();
    assert_eq!(opened, incidents, "{audit}");
    drop(service);
}
