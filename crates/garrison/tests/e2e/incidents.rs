//! Incidents over HTTP: the workflow is enforced per role (viewers read only, only reviewers
//! approve, closing needs two approvals), everything is tenant-scoped, and the SOC metrics see
//! the result.

use crate::harness::*;
use serde_json::json;

async fn send(
    service: &Service,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client()
        .request(method, service.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

async fn login(service: &Service, user: &str, password: &str) -> String {
    let (status, session) = send(
        service,
        "POST",
        "/api/v1/auth/login",
        "",
        Some(json!({"username": user, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    session["token"].as_str().expect("token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_follow_the_workflow_per_role_and_stay_in_their_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let viewer = cli(dir.path(), &["token", "create", "--role", "viewer"]);
    cli(dir.path(), &["tenant", "create", "bravo"]);
    let bravo = cli(
        dir.path(),
        &["token", "create", "--role", "admin", "--tenant", "bravo"],
    );
    let passwords: Vec<(String, String)> = ["ana", "bob", "carol"]
        .iter()
        .map(|u| {
            let password = cli(
                dir.path(),
                &["user", "create", "--username", u, "--role", "analyst"],
            );
            (u.to_string(), password)
        })
        .collect();
    let service = Service::start(dir.path());
    let mut sessions = Vec::new();
    for (user, password) in &passwords {
        sessions.push(login(&service, user, password).await);
    }
    let (ana, bob, carol) = (&sessions[0], &sessions[1], &sessions[2]);

    let (status, created) = send(
        &service,
        "POST",
        "/api/v1/incidents",
        ana,
        Some(json!({"title": "Mimikatz on ws1", "severity": "high"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["incident"]["id"].as_str().expect("id").to_string();
    assert_eq!(created["incident"]["state"], "new");
    let (status, _) = send(
        &service,
        "POST",
        "/api/v1/incidents",
        &viewer,
        Some(json!({"title": "x", "severity": "low"})),
    )
    .await;
    assert_eq!(status, 403, "viewers open nothing");

    let action = |body: serde_json::Value| Some(body);
    let path = format!("/api/v1/incidents/{id}/actions");
    let (status, body) = send(
        &service,
        "POST",
        &path,
        &viewer,
        action(json!({"action": "assign", "assignee": "ana"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    for step in [
        json!({"action": "assign", "assignee": "ana"}),
        json!({"action": "transition", "to": "triage"}),
        json!({"action": "transition", "to": "analysis"}),
    ] {
        let (status, body) = send(&service, "POST", &path, ana, action(step.clone())).await;
        assert_eq!(status, 200, "{step}: {body}");
    }
    let (status, body) = send(
        &service,
        "POST",
        &path,
        ana,
        action(json!({"action": "transition", "to": "review"})),
    )
    .await;
    assert_eq!(status, 409, "review needs a classification: {body}");
    let (status, body) = send(
        &service,
        "PATCH",
        &format!("/api/v1/incidents/{id}"),
        ana,
        Some(json!({"classification": "true_positive", "tags_add": ["credential-theft"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let transitions = format!("/api/v1/incidents/{id}/transitions");
    let (status, body) = send(
        &service,
        "POST",
        &transitions,
        &viewer,
        Some(json!({"to": "review"})),
    )
    .await;
    assert_eq!(status, 403, "viewers cannot change the state: {body}");
    let (status, body) = send(
        &service,
        "POST",
        &transitions,
        ana,
        Some(json!({"to": "review"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["incident"]["state"], "review");

    let approvals = format!("/api/v1/incidents/{id}/approvals");
    let (status, body) = send(&service, "POST", &approvals, ana, None).await;
    assert_eq!(status, 403, "the assignee does not review: {body}");
    let (status, _) = send(&service, "POST", &approvals, &viewer, None).await;
    assert_eq!(status, 403, "viewers do not review");
    let close = json!({"action": "close", "classification": "true_positive"});
    let (status, body) = send(&service, "POST", &path, ana, action(close.clone())).await;
    assert_eq!(status, 409, "no approvals yet: {body}");
    let (status, _) = send(&service, "POST", &approvals, bob, None).await;
    assert_eq!(status, 200);
    let (status, _) = send(&service, "POST", &approvals, bob, None).await;
    assert_eq!(status, 409, "one approval per reviewer");
    let (status, body) = send(&service, "POST", &path, ana, action(close.clone())).await;
    assert_eq!(status, 409, "one of two: {body}");
    let (status, _) = send(&service, "POST", &approvals, carol, None).await;
    assert_eq!(status, 200);
    let (status, body) = send(&service, "POST", &path, ana, action(close)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["incident"]["state"], "closed");

    let (status, _) = send(
        &service,
        "POST",
        &format!("/api/v1/incidents/{id}/comments"),
        ana,
        Some(json!({"text": "thanks @bob and @carol"})),
    )
    .await;
    assert_eq!(status, 200);
    let audit = get_json(&service, "/api/v1/audit?limit=1000", &bravo).await;
    assert!(
        !audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["target"] == id.as_str()),
        "another tenant's audit log shows this incident"
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let audit = get_json(&service, "/api/v1/audit?limit=1000", &admin).await;
    let comments = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "incident.comment" && e["target"] == id.as_str())
        .count();
    assert_eq!(comments, 1, "{audit}");
    let timeline = get_json(
        &service,
        &format!("/api/v1/incidents/{id}/timeline"),
        &viewer,
    )
    .await;
    let entries = timeline["entries"].as_array().expect("entries");
    assert_eq!(entries[0]["type"], "created");
    let last = entries.last().expect("comment");
    assert_eq!(last["type"], "comment");
    assert_eq!(last["mentions"], json!(["bob", "carol"]));
    assert!(entries.iter().filter(|e| e["type"] == "approved").count() == 2);

    let (status, tasks) = send(
        &service,
        "POST",
        &format!("/api/v1/incidents/{id}/tasks"),
        bob,
        Some(json!({"titles": ["Reset the password"]})),
    )
    .await;
    assert_eq!(status, 200, "{tasks}");
    let task_id = tasks[0]["id"].as_i64().expect("task id");
    let (status, task) = send(
        &service,
        "PATCH",
        &format!("/api/v1/incidents/{id}/tasks/{task_id}"),
        bob,
        Some(json!({"done": true})),
    )
    .await;
    assert_eq!((status, &task["done_by"]), (200, &json!("bob")));

    let detail = get_json(&service, &format!("/api/v1/incidents/{id}"), &viewer).await;
    assert_eq!(detail["incident"]["classification"], "true_positive");
    assert_eq!(detail["sla"].as_array().map(Vec::len), Some(3));
    let queue = get_json(
        &service,
        "/api/v1/incidents?order=score&open=false",
        &viewer,
    )
    .await;
    assert_eq!(queue["incidents"].as_array().map(Vec::len), Some(1));

    // Merging: analysts only; the merged incident leaves the list and refuses actions.
    let mut others = Vec::new();
    for title in ["duplicate a", "duplicate b"] {
        let (status, body) = send(
            &service,
            "POST",
            "/api/v1/incidents",
            bob,
            Some(json!({"title": title, "severity": "low"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        others.push(body["incident"]["id"].as_str().expect("id").to_string());
    }
    let merge = format!("/api/v1/incidents/{}/merge", others[0]);
    let (status, _) = send(
        &service,
        "POST",
        &merge,
        &viewer,
        Some(json!({"incidents": [others[1]]})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = send(
        &service,
        "POST",
        &merge,
        bob,
        Some(json!({"incidents": [others[1]]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &service,
        "POST",
        &format!("/api/v1/incidents/{}/comments", others[1]),
        bob,
        Some(json!({"text": "too late"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let open = get_json(&service, "/api/v1/incidents?open=true", &viewer).await;
    assert_eq!(
        open["incidents"].as_array().map(Vec::len),
        Some(1),
        "{open}"
    );
    let similar = get_json(
        &service,
        &format!("/api/v1/incidents/{id}/similar"),
        &viewer,
    )
    .await;
    assert_eq!(similar["similar"], json!([]), "nothing shared: {similar}");

    // Bravo sees nothing of it and can change nothing.
    let (status, _) = send(
        &service,
        "GET",
        &format!("/api/v1/incidents/{id}"),
        &bravo,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &service,
        "POST",
        &path,
        &bravo,
        action(json!({"action": "reopen", "reason": "mine now"})),
    )
    .await;
    assert_eq!(status, 404);
    let bravo_list = get_json(&service, "/api/v1/incidents", &bravo).await;
    assert_eq!(bravo_list["incidents"], json!([]));

    let metrics = get_json(&service, "/api/v1/metrics/soc", &viewer).await;
    assert_eq!(
        metrics["incidents"], 2,
        "merged ones are not counted: {metrics}"
    );
    assert!(metrics["mtta_secs"].is_number(), "{metrics}");
    let (status, _) = send(
        &service,
        "GET",
        "/api/v1/metrics/soc?from=banana",
        &viewer,
        None,
    )
    .await;
    assert_eq!(status, 400);
    let bravo_metrics = get_json(&service, "/api/v1/metrics/soc", &bravo).await;
    assert_eq!(bravo_metrics["incidents"], 0);

    // `garrison metrics`: the same figures through the API and from the local store.
    let url = service.url("");
    for args in [
        vec!["metrics", "--url", url.as_str(), "--token", viewer.as_str()],
        vec!["metrics"],
    ] {
        let out: serde_json::Value =
            serde_json::from_str(&cli(dir.path(), &args)).expect("metrics JSON");
        assert_eq!(out["incidents"], 2, "{args:?}: {out}");
    }
    let out: serde_json::Value =
        serde_json::from_str(&cli(dir.path(), &["metrics", "--tenant", "bravo"])).expect("JSON");
    assert_eq!(out["incidents"], 0);
}
