//! One operation behind every door: the same audit entries from the CLI and the API, the typed
//! API contract (unknown parameters refused, bounds said), metrics behind a token, Splunk HEC as
//! Splunk documents it, and the configuration table.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const RULE_ID: &str = "4c5e0b5f-5d9c-4d3e-9a51-8a1f3e6b2c01";

async fn send(request: reqwest::RequestBuilder, expected: u16) -> Value {
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(status, expected, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Entries of one action, by the door that made them (`via`).
fn by_door(entries: &[Value], action: &str) -> BTreeMap<String, Vec<Value>> {
    let mut doors: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for entry in entries.iter().filter(|e| e["action"] == action) {
        let via = entry["details"]["via"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        doors.entry(via).or_default().push(entry.clone());
    }
    doors
}

fn keys(entry: &Value) -> BTreeSet<String> {
    entry["details"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_admin_action_is_audited_once_with_the_same_shape_from_the_cli_and_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let admin = cli(data, &["token", "create", "--role", "admin"]);
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(&rules_dir).expect("mkdir");
    std::fs::write(rules_dir.join("whoami.yml"), whoami_rule(RULE_ID, "medium")).expect("rule");
    let rules_path = rules_dir.display().to_string();

    // Through the CLI, on the data directory.
    cli(data, &["tenant", "create", "cli-tenant"]);
    cli(data, &["tenant", "retention", "cli-tenant", "--days", "30"]);
    cli(
        data,
        &[
            "user",
            "create",
            "--username",
            "cli-user",
            "--role",
            "analyst",
        ],
    );
    cli(data, &["user", "disable", "--username", "cli-user"]);
    cli(
        data,
        &[
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "cli-viewer",
        ],
    );
    cli(data, &["source", "set", "cli-src", "--product", "linux"]);
    cli(data, &["rules", "import", &rules_path]);
    cli(data, &["rules", "enable", RULE_ID]);
    let tokens: Value = serde_json::from_str(&cli(data, &["token", "list"])).expect("json");
    let cli_viewer = tokens
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["name"] == "cli-viewer")
        .and_then(|t| t["id"].as_i64())
        .expect("cli token");
    cli(data, &["token", "revoke", &cli_viewer.to_string()]);

    // Through the API.
    let service = Service::start(data);
    let client = client();
    let tenant = send(
        client
            .post(service.url("/api/v1/tenants"))
            .bearer_auth(&admin)
            .json(&json!({"name": "api-tenant"})),
        201,
    )
    .await;
    send(
        client
            .patch(service.url(&format!("/api/v1/tenants/{}", tenant["id"])))
            .bearer_auth(&admin)
            .json(&json!({"retention_days": 30})),
        200,
    )
    .await;
    let user = send(
        client
            .post(service.url("/api/v1/users"))
            .bearer_auth(&admin)
            .json(&json!({"username": "api-user", "password": "a long enough password", "roles": ["analyst"]})),
        201,
    )
    .await;
    send(
        client
            .patch(service.url(&format!("/api/v1/users/{}", user["id"])))
            .bearer_auth(&admin)
            .json(&json!({"disabled": true})),
        200,
    )
    .await;
    let token = send(
        client
            .post(service.url("/api/v1/tokens"))
            .bearer_auth(&admin)
            .json(&json!({"name": "api-viewer", "roles": ["viewer"]})),
        201,
    )
    .await;
    send(
        client
            .put(service.url("/api/v1/sources/api-src"))
            .bearer_auth(&admin)
            .json(&json!({"product": "linux"})),
        200,
    )
    .await;
    send(
        client
            .post(service.url("/api/v1/rules/import"))
            .bearer_auth(&admin)
            .json(
                &json!({"files": [{"path": "whoami.yml", "text": whoami_rule(RULE_ID, "medium")}]}),
            ),
        200,
    )
    .await;
    send(
        client
            .post(service.url(&format!("/api/v1/rules/{RULE_ID}/disable")))
            .bearer_auth(&admin),
        200,
    )
    .await;
    send(
        client
            .delete(service.url(&format!("/api/v1/tokens/{}", token["id"])))
            .bearer_auth(&admin),
        200,
    )
    .await;

    let page = get_json(&service, "/api/v1/audit?limit=1000", &admin).await;
    assert!(page["next_after"].is_null(), "more than one page");
    let entries = page["entries"].as_array().cloned().expect("entries");
    for action in [
        "tenant.create",
        "tenant.retention",
        "user.create",
        "user.disable",
        "token.revoke",
        "source.put",
        "rule.import",
    ] {
        let doors = by_door(&entries, action);
        let local = doors.get("local").map_or(0, Vec::len);
        let api = doors.get("api").map_or(0, Vec::len);
        assert_eq!((local, api), (1, 1), "{action}: {doors:#?}");
        let (l, a) = (&doors["local"][0], &doors["api"][0]);
        assert_eq!(
            keys(l),
            keys(a),
            "{action}: the doors' entries differ in shape"
        );
        assert!(
            l["actor"].as_str().is_some_and(|s| s.starts_with("local:")),
            "{l}"
        );
        assert!(
            a["actor"].as_str().is_some_and(|s| s.starts_with("token:")),
            "{a}"
        );
        assert!(l["details"]["token_id"].is_null() && a["details"]["token_id"].is_i64());
    }
    // Tokens: two from the CLI (the admin's and the viewer's), one over the API, one shape.
    let doors = by_door(&entries, "token.create");
    assert_eq!(doors["local"].len(), 2, "{doors:#?}");
    assert_eq!(doors["api"].len(), 1, "{doors:#?}");
    assert_eq!(keys(&doors["local"][1]), keys(&doors["api"][0]));
    // Enabling and disabling a rule are the same operation.
    assert_eq!(by_door(&entries, "rule.enable")["local"].len(), 1);
    assert_eq!(by_door(&entries, "rule.disable")["api"].len(), 1);
    assert_eq!(
        keys(&by_door(&entries, "rule.enable")["local"][0]),
        keys(&by_door(&entries, "rule.disable")["api"][0])
    );
    // The CLI's token expiry follows the same rule as the API's.
    let output = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args([
            "token",
            "create",
            "--role",
            "viewer",
            "--expires-in-days",
            "999999",
        ])
        .env("GARRISON_LOG", "warn")
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("expires_in_days must be 1 to 36600"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_contract_refuses_unknown_parameters_and_says_its_bounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let viewer = cli(dir.path(), &["token", "create", "--role", "viewer"]);
    let service = Service::start(dir.path());
    let client = client();
    for (path, named) in [
        ("/api/v1/events?sort=asc", "sort"),
        ("/api/v1/alerts?limit=0", "limit"),
        ("/api/v1/incidents?order=oldest", "order"),
        ("/api/v1/audit?after=x", "after"),
        ("/api/v1/runs?limit=5000", "limit"),
        ("/api/v1/indicators?limit=2000", "limit"),
        ("/api/v1/suppressions?activ=true", "activ"),
        ("/api/v1/events?from=yesterday", "from"),
    ] {
        let response = client
            .get(service.url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 400, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["code"], "invalid_request");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(named)),
            "{path}: {problem}"
        );
    }
    // Every answer carries a request id: the client's when it sent a sane one, else a new one.
    let response = client
        .get(service.url("/api/v1/events?bogus=1"))
        .bearer_auth(&admin)
        .header("X-Request-Id", "trace-me-42")
        .send()
        .await
        .expect("send");
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let response = client
        .get(service.url("/healthz"))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .expect("send");
    let generated = response.headers()["x-request-id"].to_str().expect("ascii");
    assert_eq!(generated.len(), 26, "{generated}");
    // field.NAME filters stay allowed beside the typed parameters.
    send(
        client
            .get(service.url("/api/v1/events?field.user.name=alice&limit=5"))
            .bearer_auth(&admin),
        200,
    )
    .await;
    // A rule test reads the range it is given, and says what it read.
    send(
        client
            .post(service.url("/api/v1/rules/import"))
            .bearer_auth(&admin)
            .json(
                &json!({"files": [{"path": "whoami.yml", "text": whoami_rule(RULE_ID, "medium")}]}),
            ),
        200,
    )
    .await;
    let answer = send(
        client
            .post(service.url(&format!("/api/v1/rules/{RULE_ID}/test")))
            .bearer_auth(&viewer)
            .json(&json!({"max_events": 10_000_000})),
        200,
    )
    .await;
    assert_eq!(answer["max_events"], 10_000_000, "{answer}");
    assert!(answer["from"].is_string() && answer["to"].is_string());
    let answer = send(
        client
            .post(service.url(&format!("/api/v1/rules/{RULE_ID}/test")))
            .bearer_auth(&viewer)
            .json(&json!({"from": "2021-01-01T00:00:00Z", "to": "2020-01-01T00:00:00Z"})),
        400,
    )
    .await;
    assert!(answer["detail"]
        .as_str()
        .is_some_and(|d| d.contains("from must be before to")));
    // The committed contract is what the service serves.
    let served: Value = client
        .get(service.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/openapi.json"
        ))
        .expect("docs/openapi.json"),
    )
    .expect("json");
    assert_eq!(served, committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_metrics_token_or_their_own_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics_token = cli(dir.path(), &["token", "create", "--role", "metrics"]);
    let viewer = cli(dir.path(), &["token", "create", "--role", "viewer"]);
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let service = Service::start_with(
        dir.path(),
        free_port(),
        free_port(),
        &[("GARRISON_METRICS_ADDR", &metrics_addr)],
    );
    let client = client();
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.expect("send").status().as_u16()
    };
    assert_eq!(status(client.get(service.url("/metrics"))).await, 401);
    assert_eq!(
        status(client.get(service.url("/metrics")).bearer_auth(&viewer)).await,
        403
    );
    let text = client
        .get(service.url("/metrics"))
        .bearer_auth(&metrics_token)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(text.contains("garrison_"), "{text}");
    // A metrics token reads nothing else.
    assert_eq!(
        status(
            client
                .get(service.url("/api/v1/events"))
                .bearer_auth(&metrics_token)
        )
        .await,
        403
    );
    // Its own address answers without a token and names no tenant.
    let open = client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .expect("send");
    assert_eq!(open.status().as_u16(), 200);
    let text = open.text().await.expect("text");
    assert!(text.contains("garrison_"));
    assert!(!text.contains("tenant=\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hec_takes_basic_auth_and_refuses_what_splunk_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "hec"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start(dir.path());
    let client = client();
    let hec = |body: &str| {
        client
            .post(service.url("/services/collector/event"))
            .basic_auth("x", Some(&token))
            .body(body.to_string())
    };
    let ok = send(
        hec(r#"{"host": "envelope-host", "index": "main", "event": {"host": "event-host", "msg": "basic-auth-works"}, "fields": {"dc": "eu"}}"#),
        200,
    )
    .await;
    assert_eq!(ok["code"], 0);
    let bad_time = send(hec(r#"{"time": "not a time", "event": "x"}"#), 400).await;
    assert_eq!(bad_time["code"], 6, "{bad_time}");
    let nested = send(
        hec(r#"{"event": "x", "fields": {"user": {"name": "a"}}}"#),
        400,
    )
    .await;
    assert_eq!(nested["code"], 15, "{nested}");
    let channel = send(
        hec(r#"{"event": "x"}"#).header("X-Splunk-Request-Channel", "not-a-guid"),
        400,
    )
    .await;
    assert_eq!(channel["code"], 11, "{channel}");
    let acked = send(
        hec(r#"{"event": "x"}"#).header(
            "X-Splunk-Request-Channel",
            "0aeeac95-ac74-4aa9-b30d-6c4c0ac581ba",
        ),
        200,
    )
    .await;
    assert!(acked["ackId"].is_u64(), "{acked}");
    wait_indexed(&service).await;
    let events = all_events(&service, &admin, "hec").await;
    let stored = events
        .iter()
        .find(|e| e["fields"]["msg"] == "basic-auth-works")
        .expect("stored");
    // Both hosts kept: the event's own, and the envelope's apart from it.
    assert_eq!(stored["fields"]["host"], "event-host");
    assert_eq!(stored["fields"]["hec"]["host"], "envelope-host");
    assert_eq!(stored["fields"]["hec"]["fields"]["dc"], "eu");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_show_prints_every_setting_with_its_origin_and_clients_follow_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("garrison.toml");
    let port = free_port();
    std::fs::write(
        &config,
        format!("http_addr = \"127.0.0.1:{port}\"\nmax_depth = 7\nfirewall_url = \"https://fw:hunter2@fw.example\"\n"),
    )
    .expect("config");
    let output = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["--set", "max_fields=99", "config", "show", "--json"])
        .env_remove("GARRISON_HTTP_ADDR")
        .env("GARRISON_SLA_CHECK_INTERVAL", "30s")
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("hunter2"), "a secret was printed: {text}");
    let rows: BTreeMap<String, Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .map(|v| (v["key"].as_str().expect("key").to_string(), v))
        .collect();
    assert_eq!(rows["max_fields"]["origin"], "flag");
    assert_eq!(rows["max_fields"]["value"], "99");
    assert!(rows["max_depth"]["origin"]
        .as_str()
        .is_some_and(|o| o.starts_with("file ")));
    assert_eq!(
        rows["sla_check_interval"]["origin"],
        "env GARRISON_SLA_CHECK_INTERVAL"
    );
    assert_eq!(rows["max_line_bytes"]["origin"], "default");
    assert_eq!(rows["http_addr"]["value"], format!("127.0.0.1:{port}"));

    // A client command with no --url goes to the service the configuration runs.
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let mut service = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--syslog-addr", "off"])
        .env_remove("GARRISON_HTTP_ADDR")
        .env("GARRISON_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let mut up = false;
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(up, "service did not start on {port}");
    let output = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["incidents", "list", "--token", &admin])
        .env_remove("GARRISON_URL")
        .env_remove("GARRISON_HTTP_ADDR")
        .env("GARRISON_LOG", "warn")
        .output()
        .expect("run");
    let _ = service.kill();
    let _ = service.wait();
    assert!(
        output.status.success(),
        "incidents list did not reach the configured service: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
