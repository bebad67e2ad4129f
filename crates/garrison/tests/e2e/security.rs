//! Every route is documented, authenticated and tenant-scoped.

use crate::harness::*;
use serde_json::json;

const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/api/v1/openapi.json",
    "/api/v1/auth/login",
    "/services/collector/health",
];
const MARKER: &str = "alpha-secret-marker";

async fn documented_routes(service: &Service) -> Vec<(String, String)> {
    let doc: serde_json::Value = client()
        .get(service.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    routes.sort();
    routes
}

fn request(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut builder = client.request(method, url);
    if let Some(token) = token {
        builder = builder.bearer_auth(token);
    }
    // A body that is valid for most routes; validation errors are fine, leaks are not.
    builder
        .header("content-type", "application/json")
        .body(json!({"name": "probe", "username": "probe-user", "password": "probe password long", "roles": ["admin"], "retention_days": 1, "disabled": true, "kind": "api", "event": "x"}).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_and_each_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = Service::start(dir.path());
    let routes = documented_routes(&service).await;
    for expected in [
        ("POST", "/api/v1/ingest/events"),
        ("GET", "/api/v1/events"),
        ("POST", "/services/collector/event"),
        ("POST", "/services/collector/raw"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("GET", "/metrics"),
    ] {
        assert!(
            routes.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} missing from {routes:?}"
        );
    }
    // Every documented route is routed: an unrouted path would give an empty 404.
    let client = client();
    for (method, path) in &routes {
        let url = service.url(&path.replace("{id}", "1").replace("{name}", "x"));
        let response = request(&client, method, &url, None)
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("body");
        assert!(
            !(status == 404 && body.is_empty()) && status != 405,
            "{method} {path} is documented but not routed ({status})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_answers_without_a_token_or_leaks_across_tenants() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alpha_admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let alpha_ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "alpha-src"],
    );
    cli(dir.path(), &["tenant", "create", "bravo"]);
    let bravo_admin = cli(
        dir.path(),
        &["token", "create", "--role", "admin", "--tenant", "bravo"],
    );
    let alpha_viewer = cli(dir.path(), &["token", "create", "--role", "viewer"]);
    let service = Service::start(dir.path());
    let client = client();

    // Alpha's data: events, a user, a source mapping.
    let response = client
        .post(service.url("/api/v1/ingest/events"))
        .bearer_auth(&alpha_ingest)
        .body(format!("{{\"msg\":\"{MARKER}\"}}"))
        .send()
        .await
        .expect("ingest");
    assert_eq!(response.status().as_u16(), 200);
    let user: serde_json::Value = client
        .post(service.url("/api/v1/users"))
        .bearer_auth(&alpha_admin)
        .json(&json!({"username": format!("{MARKER}-user"), "password": "a long enough password", "roles": ["analyst"]}))
        .send()
        .await
        .expect("user")
        .json()
        .await
        .expect("json");
    let user_id = user["id"].as_i64().expect("user id");
    let response = client
        .put(service.url("/api/v1/sources/alpha-src"))
        .bearer_auth(&alpha_admin)
        .json(&json!({"product": "alpha-product", "field_mapping": [["proc", "process.name"]]}))
        .send()
        .await
        .expect("source");
    assert_eq!(response.status().as_u16(), 200);
    wait_indexed(&service).await;
    let tokens: serde_json::Value = get_json(&service, "/api/v1/tokens", &alpha_admin).await;
    let alpha_token_id = tokens[0]["id"].as_i64().expect("token id");
    let me: serde_json::Value = get_json(&service, "/api/v1/me", &alpha_admin).await;
    let alpha_tenant_id = me["tenant"]["id"].as_i64().expect("tenant id");
    let bravo_me: serde_json::Value = get_json(&service, "/api/v1/me", &bravo_admin).await;
    let bravo_tenant_id = bravo_me["tenant"]["id"].as_i64().expect("tenant id");

    for (method, path) in documented_routes(&service).await {
        let is_public = PUBLIC.contains(&path.as_str());
        let ids = [user_id, alpha_token_id, alpha_tenant_id];
        for id in ids {
            // An id that happens to be bravo's own tenant is bravo's to change.
            if path.starts_with("/api/v1/tenants/") && id == bravo_tenant_id {
                continue;
            }
            let url = service.url(
                &path
                    .replace("{id}", &id.to_string())
                    .replace("{name}", "alpha-src"),
            );
            // No token: refused.
            let response = request(&client, &method, &url, None)
                .send()
                .await
                .expect("send");
            let status = response.status().as_u16();
            if !is_public {
                assert_eq!(
                    status, 401,
                    "{method} {path} without a token answered {status}"
                );
            }
            // Bravo's admin: never sees or changes alpha's data.
            let response = request(&client, &method, &url, Some(&bravo_admin))
                .send()
                .await
                .expect("send");
            let status = response.status().as_u16();
            let body = response.text().await.expect("body");
            assert!(
                !body.contains(MARKER),
                "{method} {path} leaked alpha's data to bravo: {body}"
            );
            // Names are per tenant: bravo may create its own source called alpha-src.
            if method != "GET" && path.contains("{id}") {
                assert!(
                    matches!(status, 400 | 403 | 404 | 422),
                    "{method} {path} with alpha's id {id} answered {status} to bravo: {body}"
                );
            }
        }
    }
    // Alpha's objects are untouched by all of that.
    let users: serde_json::Value = get_json(&service, "/api/v1/users", &alpha_admin).await;
    let user = users
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["id"] == user_id)
        .expect("user still there");
    assert_eq!(user["disabled"], false);
    let tokens: serde_json::Value = get_json(&service, "/api/v1/tokens", &alpha_admin).await;
    assert!(
        tokens
            .as_array()
            .expect("tokens")
            .iter()
            .all(|t| t["revoked"] == false),
        "{tokens}"
    );
    let events = all_events(&service, &alpha_admin, "alpha-src").await;
    assert_eq!(events.len(), 1);
    let sources: serde_json::Value = get_json(&service, "/api/v1/sources", &alpha_admin).await;
    let source = sources
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["name"] == "alpha-src")
        .expect("alpha-src");
    assert_eq!(
        source["product"], "alpha-product",
        "bravo changed alpha's source: {source}"
    );

    // Roles: a viewer reads but cannot administer; an ingest token cannot read.
    let status = client
        .get(service.url("/api/v1/events"))
        .bearer_auth(&alpha_viewer)
        .send()
        .await
        .expect("viewer")
        .status()
        .as_u16();
    assert_eq!(status, 200);
    let status = request(
        &client,
        "POST",
        &service.url("/api/v1/users"),
        Some(&alpha_viewer),
    )
    .send()
    .await
    .expect("viewer")
    .status()
    .as_u16();
    assert_eq!(status, 403);
    let status = client
        .get(service.url("/api/v1/events"))
        .bearer_auth(&alpha_ingest)
        .send()
        .await
        .expect("ingest")
        .status()
        .as_u16();
    assert_eq!(status, 403);
    // Login works, and a wrong password does not.
    let created = cli(
        dir.path(),
        &["user", "create", "--username", "ana", "--role", "analyst"],
    );
    let login = client
        .post(service.url("/api/v1/auth/login"))
        .json(&json!({"username": "ana", "password": created}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status().as_u16(), 200);
    let session: serde_json::Value = login.json().await.expect("json");
    let status = client
        .get(service.url("/api/v1/events"))
        .bearer_auth(session["token"].as_str().expect("token"))
        .send()
        .await
        .expect("events")
        .status()
        .as_u16();
    assert_eq!(status, 200);
    let status = client
        .post(service.url("/api/v1/auth/login"))
        .json(&json!({"username": "ana", "password": "wrong password!!"}))
        .send()
        .await
        .expect("login")
        .status()
        .as_u16();
    assert_eq!(status, 401);
}
