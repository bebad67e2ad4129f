//! The API answers as its document says: every operation of the served OpenAPI document is
//! called once with its documented parameters (ids of real objects where the path names one),
//! and the answer must be one of the documented statuses, with a body that validates against
//! the schema documented for that status.

use crate::harness::*;
use serde_json::{json, Value};

const PLAYBOOK: &str = r#"name: contract-probe
inputs:
  who: {type: string, default: world}
steps:
  - id: greet
    action: core.set
    with: {text: "hello {{ inputs.who }}"}
"#;

const RULE_ID: &str = "7d1c2a30-5b0e-4c8a-9f41-2b6e0c9a1d55";

/// The objects the walk points at.
struct Ids {
    incident: String,
    run: String,
    rule: String,
    tenant: i64,
    user: i64,
    token: i64,
    playbook: String,
}

async fn post(service: &Service, token: &str, path: &str, body: Value) -> Value {
    let response = client()
        .post(service.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(status.is_success(), "POST {path}: {status} {text}");
    serde_json::from_str(&text).expect("json")
}

async fn seed(service: &Service, admin: &str, ingest: &str) -> Ids {
    let response = client()
        .post(service.url("/api/v1/ingest/events"))
        .bearer_auth(ingest)
        .body(r#"{"id": "w1", "EventID": 4688, "Image": "C:\\Windows\\System32\\whoami.exe", "host": {"name": "ws1"}}"#)
        .send()
        .await
        .expect("ingest");
    assert!(response.status().is_success());
    post(
        service,
        admin,
        "/api/v1/rules/import",
        json!({"files": [{"path": "w.yml", "text": whoami_rule(RULE_ID, "high")}], "enable": true}),
    )
    .await;
    let incident = post(
        service,
        admin,
        "/api/v1/incidents",
        json!({"title": "Contract probe", "severity": "high"}),
    )
    .await;
    post(
        service,
        admin,
        "/api/v1/playbooks",
        json!({"source": PLAYBOOK}),
    )
    .await;
    let run = post(
        service,
        admin,
        "/api/v1/playbooks/contract-probe/runs",
        json!({"inputs": {}}),
    )
    .await;
    let tenant = post(
        service,
        admin,
        "/api/v1/tenants",
        json!({"name": "contract-tenant"}),
    )
    .await;
    let user = post(service, admin, "/api/v1/users", json!({"username": "contract-user", "password": "a long enough password", "roles": ["viewer"]})).await;
    let token = post(
        service,
        admin,
        "/api/v1/tokens",
        json!({"name": "throwaway", "roles": ["viewer"]}),
    )
    .await;
    wait_indexed(service).await;
    Ids {
        incident: incident["incident"]["id"]
            .as_str()
            .expect("incident id")
            .to_string(),
        run: run["run_id"].as_str().expect("run id").to_string(),
        rule: RULE_ID.to_string(),
        tenant: tenant["id"].as_i64().expect("tenant id"),
        user: user["id"].as_i64().expect("user id"),
        token: token["id"].as_i64().expect("token id"),
        playbook: "contract-probe".to_string(),
    }
}

/// A value for a path parameter: the id of a real object where the path names one.
fn path_value(path: &str, name: &str, ids: &Ids) -> String {
    let under = |prefix: &str| path.starts_with(prefix);
    match name {
        "id" if under("/api/v1/incidents") => ids.incident.clone(),
        "id" if under("/api/v1/runs") => ids.run.clone(),
        "id" if under("/api/v1/rules") => ids.rule.clone(),
        "id" if under("/api/v1/tenants") => ids.tenant.to_string(),
        "id" if under("/api/v1/users") => ids.user.to_string(),
        "id" if under("/api/v1/tokens") => ids.token.to_string(),
        "name" | "playbook" if under("/api/v1/playbooks") || under("/api/v1/webhooks") => {
            ids.playbook.clone()
        }
        "tenant" => "default".to_string(),
        "version" | "task_id" => "1".to_string(),
        "sha256" => "0".repeat(64),
        _ => "probe".to_string(),
    }
}

/// A value for a required query parameter.
fn query_value(name: &str, schema: &Value) -> String {
    match (name, schema["type"].as_str()) {
        ("format", _) => "csv".into(),
        ("name", _) => "probe.txt".into(),
        (_, Some("integer")) => "1".into(),
        (_, Some("boolean")) => "true".into(),
        _ => "probe".into(),
    }
}

/// The schema of a response as a standalone JSON Schema: its `$ref`s resolve against the
/// document's components.
fn standalone(schema: &Value, doc: &Value) -> Value {
    json!({"allOf": [schema], "components": doc["components"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "probe"],
    );
    let service = Service::start(dir.path());
    let ids = seed(&service, &admin, &ingest).await;
    let doc: Value = client()
        .get(service.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    let client = client();
    let mut checked = 0;
    let mut validated = 0;
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            let mut url = path.clone();
            let mut query = Vec::new();
            for p in operation["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().expect("name");
                match p["in"].as_str() {
                    Some("path") => {
                        url = url.replace(&format!("{{{name}}}"), &path_value(path, name, &ids))
                    }
                    Some("query") if p["required"] == true => {
                        query.push((name.to_string(), query_value(name, &p["schema"])))
                    }
                    _ => {}
                }
            }
            let mut request = client
                .request(
                    method.to_uppercase().parse().expect("method"),
                    service.url(&url),
                )
                .query(&query);
            // HEC routes take the ingest token in Splunk's form; the rest an admin's.
            request = if path.starts_with("/services/collector") {
                request.header("Authorization", format!("Splunk {ingest}"))
            } else {
                request.bearer_auth(&admin)
            };
            let body = &operation["requestBody"]["content"];
            if body.get("application/json").is_some() {
                request = request.json(&json!({}));
            } else if let Some((media, _)) = body.as_object().and_then(|c| c.iter().next()) {
                request = request
                    .header("content-type", media.as_str())
                    .body("{\"event\": \"probe\"}");
            }
            let response = request.send().await.expect("send");
            let status = response.status().as_u16().to_string();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .to_string();
            let text = response.text().await.expect("body");
            checked += 1;
            let Some(documented) = operation["responses"].get(&status) else {
                problems.push(format!(
                    "{method} {url}: status {status} is not documented: {text}"
                ));
                continue;
            };
            let Some(content) = documented["content"].as_object() else {
                continue;
            };
            let Some(media) = content.get(&content_type) else {
                problems.push(format!(
                    "{method} {url}: {status} answered {content_type:?}, documented {:?}",
                    content.keys().collect::<Vec<_>>()
                ));
                continue;
            };
            if !content_type.ends_with("json") {
                continue;
            }
            let value: Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{method} {url}: {status} body is not JSON ({e})"));
                    continue;
                }
            };
            let schema = standalone(&media["schema"], &doc);
            let validator = match jsonschema::validator_for(&schema) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!(
                        "{method} {path}: {status} schema does not compile: {e}"
                    ));
                    continue;
                }
            };
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .take(3)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            if errors.is_empty() {
                validated += 1;
            } else {
                problems.push(format!(
                    "{method} {url}: {status} body does not match: {errors:?}"
                ));
            }
        }
    }
    assert!(checked >= 90, "only {checked} operations");
    assert!(validated >= 60, "only {validated} bodies validated");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
