//! Threat-intel indicators over the API and the CLI: imports keep the good records and name
//! the bad ones; viewers read but cannot import; tenants never see each other's indicators.

use std::process::Command;

use crate::harness::*;

const CSV: &str = "type,value,confidence,expires,tags\n\
                   ip,198.51.100.7,90,2099-01-01T00:00:00Z,c2\n\
                   domain,Evil.Example.COM.,70,,\n\
                   ip,300.1.1.1,50,,\n\
                   url,hxxp://bad[.]example[.]org/a,50,,\n";

async fn import(
    service: &Service,
    token: &str,
    query: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let response = client()
        .post(service.url(&format!("/api/v1/indicators/import?{query}")))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .expect("import");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_import_with_every_error_placed_and_stay_in_their_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let analyst = cli(dir.path(), &["token", "create", "--role", "analyst"]);
    let viewer = cli(dir.path(), &["token", "create", "--role", "viewer"]);
    cli(dir.path(), &["tenant", "create", "bravo"]);
    let bravo = cli(
        dir.path(),
        &["token", "create", "--role", "admin", "--tenant", "bravo"],
    );
    let service = Service::start(dir.path());

    let (status, body) = import(&service, &analyst, "format=csv&source=abuse", CSV).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["created"].as_u64(), body["updated"].as_u64()),
        (Some(3), Some(0))
    );
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["location"]["line"], 4);
    assert_eq!(errors[0]["location"]["column"], "value");
    assert!(errors[0]["reason"]
        .as_str()
        .expect("reason")
        .contains("300.1.1.1"));

    // The same feed again updates; the viewer may read but not import.
    let (_, again) = import(&service, &analyst, "format=csv&source=abuse", CSV).await;
    assert_eq!(again["updated"].as_u64(), Some(3));
    let (status, _) = import(&service, &viewer, "format=csv&source=abuse", CSV).await;
    assert_eq!(status, 403);
    let (status, _) = import(&service, &analyst, "format=yaml&source=abuse", CSV).await;
    assert_eq!(status, 400);

    let page = get_json(
        &service,
        "/api/v1/indicators?value=EVIL.example.com",
        &viewer,
    )
    .await;
    let found = page["indicators"].as_array().expect("indicators");
    assert_eq!(found.len(), 1, "{page}");
    assert_eq!(found[0]["value"], "evil.example.com");
    assert_eq!(found[0]["times_imported"], 2);
    let feeds = get_json(&service, "/api/v1/indicators/feeds", &viewer).await;
    assert_eq!(feeds[0]["name"], "abuse");
    assert_eq!(feeds[0]["last_errors"], 1);

    // Bravo sees nothing of alpha's and cannot delete it.
    let bravo_page = get_json(&service, "/api/v1/indicators", &bravo).await;
    assert_eq!(bravo_page["indicators"].as_array().map(Vec::len), Some(0));
    let id = found[0]["id"].as_i64().expect("id");
    let response = client()
        .delete(service.url(&format!("/api/v1/indicators/{id}")))
        .bearer_auth(&bravo)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status().as_u16(), 404);

    // The CLI imports a STIX bundle through the API and exits 2 for a refused record.
    let bundle = dir.path().join("bundle.json");
    std::fs::write(
        &bundle,
        r#"{"type":"bundle","id":"bundle--1","objects":[
            {"type":"indicator","id":"indicator--1","pattern":"[ipv4-addr:value = '203.0.113.9'] OR [domain-name:value = 'c2.example.net']","pattern_type":"stix","valid_from":"2025-01-01T00:00:00Z","confidence":80},
            {"type":"indicator","id":"indicator--2","pattern":"[ipv4-addr:value = '203.0.113.999']","pattern_type":"stix","valid_from":"2025-01-01T00:00:00Z"}]}"#,
    )
    .expect("write");
    let output = Command::new(BIN)
        .args(["intel", "import"])
        .arg(&bundle)
        .args([
            "--source",
            "cert",
            "--url",
            &service.url(""),
            "--token",
            &analyst,
        ])
        .env("GARRISON_LOG", "warn")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/objects/1/pattern (indicator--2)"),
        "{stderr}"
    );
    let cert = get_json(&service, "/api/v1/indicators?source=cert", &viewer).await;
    assert_eq!(
        cert["indicators"].as_array().map(Vec::len),
        Some(2),
        "{cert}"
    );
}
