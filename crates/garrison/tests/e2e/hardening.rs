//! The service as an attacker and a bad day meet it: a second instance on the same data
//! directory, sign-in brute force and timing, headers and error format on every answer, and
//! who may read the files it writes.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;
use serde_json::{json, Value};

async fn login(
    service: &Service,
    tenant: &str,
    user: &str,
    password: &str,
) -> (u16, Value, Option<String>) {
    login_from(service, [127, 0, 0, 1], tenant, user, password).await
}

/// A login from the local address `from` (any of 127.0.0.0/8).
async fn login_from(
    service: &Service,
    from: [u8; 4],
    tenant: &str,
    user: &str,
    password: &str,
) -> (u16, Value, Option<String>) {
    let response = client_from(from)
        .post(service.url("/api/v1/auth/login"))
        .json(&json!({"tenant": tenant, "username": user, "password": password}))
        .send()
        .await
        .expect("login");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        retry_after,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_service_on_the_same_data_directory_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = Service::start(dir.path());
    let pid = first.child.id();
    let output = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("serve")
        .env("GARRISON_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("GARRISON_SYSLOG_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("GARRISON_LOG", "warn")
        .output()
        .expect("second serve");
    assert!(!output.status.success(), "the second instance ran");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in use by another Garrison service")
            && stderr.contains(&format!("pid {pid}")),
        "{stderr}"
    );
    // The first still answers; after a kill -9 the directory is free again (no stale lock).
    let health = client()
        .get(first.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    first.kill9();
    let again = Service::start(dir.path());
    drop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_locks_an_account_after_repeated_failures_and_answers_alike_whatever_was_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let password = cli(
        dir.path(),
        &["user", "create", "--username", "ana", "--role", "analyst"],
    );
    cli(
        dir.path(),
        &["user", "create", "--username", "bob", "--role", "viewer"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start(dir.path());

    // Four wrong passwords: each a plain 401, the same answer as a wrong tenant or user.
    let mut details = Vec::new();
    for _ in 0..4 {
        let (status, body, _) = login(&service, "default", "ana", "wrong").await;
        assert_eq!(status, 401, "{body}");
        details.push(body["detail"].clone());
    }
    let (status, unknown_user, _) = login(&service, "default", "nobody", "wrong").await;
    assert_eq!(status, 401);
    let (status, unknown_tenant, _) = login(&service, "nowhere", "ana", "wrong").await;
    assert_eq!(status, 401);
    assert_eq!(unknown_user["detail"], details[0]);
    assert_eq!(unknown_tenant["detail"], details[0]);

    // The fifth failure locks the account: even the right password is refused for a while.
    let (status, body, _) = login(&service, "default", "ana", "wrong").await;
    assert_eq!(status, 401, "{body}");
    let (status, body, retry_after) = login(&service, "default", "ana", &password).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "too_many_attempts");
    let seconds: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=30).contains(&seconds), "{seconds}");
    // Another account of the tenant is not locked.
    let (status, _, _) = login(&service, "default", "bob", "wrong").await;
    assert_eq!(status, 401);

    // The lockout is audited once; failed attempts are not written at all.
    let audit = get_json(&service, "/api/v1/audit?limit=1000", &admin).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "auth.locked").count(),
        1,
        "{actions:?}"
    );
    assert!(!actions.contains(&"auth.login_failed"), "{actions:?}");

    // Timing: a wrong tenant, a wrong user and a wrong password cost the same (one password
    // hash each). Fresh names each time, so nothing locks while measuring.
    let median = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2]
    };
    let (mut tenant_t, mut user_t, mut password_t) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..9u8 {
        // Each round from its own address, so the per-address limit stays out of the figures.
        let from = [127, 0, 4, i + 1];
        let started = Instant::now();
        login_from(&service, from, &format!("no-tenant-{i}"), "ana", "wrong").await;
        tenant_t.push(started.elapsed());
        let started = Instant::now();
        login_from(&service, from, "default", &format!("no-user-{i}"), "wrong").await;
        user_t.push(started.elapsed());
        let user = format!("user{i}");
        if i % 3 == 0 {
            // A real account per three samples keeps each under the lockout threshold.
            cli(
                dir.path(),
                &["user", "create", "--username", &user, "--role", "viewer"],
            );
        }
        let started = Instant::now();
        login_from(
            &service,
            from,
            "default",
            &format!("user{}", i - i % 3),
            "wrong",
        )
        .await;
        password_t.push(started.elapsed());
    }
    let (t, u, p) = (
        median(&mut tenant_t),
        median(&mut user_t),
        median(&mut password_t),
    );
    eprintln!("median refusal: wrong tenant {t:?}, wrong user {u:?}, wrong password {p:?}");
    let slowest = t.max(u).max(p).as_secs_f64();
    let fastest = t.min(u).min(p).as_secs_f64();
    // Generous for a shared 2-core machine; without the dummy hash a wrong tenant was ~20x
    // faster than a wrong password.
    assert!(
        fastest >= slowest * 0.5,
        "wrong tenant {t:?}, wrong user {u:?}, wrong password {p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_says_nosniff_no_store_and_every_error_is_problem_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start_with(
        dir.path(),
        free_port(),
        free_port(),
        &[("GARRISON_MAX_BODY_BYTES", "1024")],
    );
    let check = |response: &reqwest::Response, what: &str| {
        let headers = response.headers();
        assert_eq!(
            headers.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{what}"
        );
        assert!(headers.get("cache-control").is_some(), "{what}");
    };
    let me = client()
        .get(service.url("/api/v1/me"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("me");
    check(&me, "me");
    assert_eq!(me.headers()["cache-control"], "no-store");

    for (method, path, body, status) in [
        ("GET", "/api/v1/no-such-route", None, 404),
        ("DELETE", "/api/v1/me", None, 405),
        ("POST", "/api/v1/tenants", Some(vec![b'x'; 4096]), 413),
    ] {
        let mut request = client()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                service.url(path),
            )
            .bearer_auth(&admin);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("send");
        check(&response, path);
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
        let problem: Value = response.json().await.expect("problem body");
        assert_eq!(problem["status"], status, "{problem}");
        assert!(problem["code"].is_string(), "{problem}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_the_owners_alone_and_first_start_credentials_stay_out_of_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let service = Service::start(&data);
    drop(service);
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700);
    for entry in std::fs::read_dir(&data).expect("read_dir").flatten() {
        let path = entry.path();
        let m = mode(&path);
        assert_eq!(m & 0o077, 0, "{} is {m:o}", path.display());
    }
    let credentials = data.join("first-start-credentials.txt");
    assert_eq!(mode(&credentials), 0o600);
    let text = std::fs::read_to_string(&credentials).expect("credentials");
    assert!(
        text.contains("API token: ") && text.contains("password: "),
        "{text}"
    );
    // The token in the file works.
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("API token: "))
        .expect("token line")
        .to_string();
    let service = Service::start(&data);
    let me = client()
        .get(service.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status().as_u16(), 200);
    // A restart does not write the credentials again.
    assert_eq!(std::fs::read_to_string(&credentials).expect("again"), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playbook_saves_succeed_while_ingest_runs_flat_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "load"],
    );
    let service = Service::start(dir.path());
    let url = service.url("/api/v1/ingest/events");
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = running.clone();
    let sender = tokio::spawn(async move {
        let client = client();
        let mut sent = 0usize;
        while flag.load(std::sync::atomic::Ordering::Relaxed) {
            let body: String = (0..500)
                .map(|i| format!("{{\"msg\":\"load {sent} {i}\",\"n\":{i}}}\n"))
                .collect();
            if let Ok(r) = client
                .post(&url)
                .bearer_auth(&ingest)
                .body(body)
                .send()
                .await
            {
                if r.status().is_success() {
                    sent += 500;
                }
            }
        }
        sent
    });
    // 100 in CI; scripts/faults.sh asks for the issue's 200.
    let saves: usize = std::env::var("GARRISON_FAULT_SAVES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let mut failures = Vec::new();
    let started = Instant::now();
    for i in 0..saves {
        let source = format!(
            "name: saved-under-load\ndescription: version {i}\nsteps:\n  - id: note\n    action: core.log\n    with: {{message: \"{i}\"}}\n"
        );
        let response = client()
            .post(service.url("/api/v1/playbooks"))
            .bearer_auth(&admin)
            .json(&json!({ "source": source }))
            .send()
            .await
            .expect("save");
        if response.status().as_u16() != 201 {
            failures.push(format!(
                "save {i}: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ));
        }
    }
    let took = started.elapsed();
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.await.expect("sender");
    eprintln!("{saves} saves in {took:?} while {sent} events were acknowledged");
    assert!(sent > 0, "ingest did not run");
    assert!(
        failures.is_empty(),
        "{} of {saves} saves failed: {failures:#?}",
        failures.len()
    );
    let detail = get_json(&service, "/api/v1/playbooks/saved-under-load", &admin).await;
    assert_eq!(detail["latest"]["version"], saves, "{detail}");
}

/// Creates viewer tokens through the API: each an audited action.
async fn create_viewer_tokens(service: &Service, admin: &str, names: &[&str]) {
    for name in names {
        let response = client()
            .post(service.url("/api/v1/tokens"))
            .bearer_auth(admin)
            .json(&json!({"name": name, "roles": ["viewer"]}))
            .send()
            .await
            .expect("token");
        assert_eq!(response.status().as_u16(), 201);
    }
}

fn verify(dir: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(["audit", "verify"])
        .env("GARRISON_LOG", "warn")
        .output()
        .expect("verify");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_newest_audit_entries_fails_verification_and_the_log_is_forwarded_as_cef() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let collector = std::net::UdpSocket::bind("127.0.0.1:0").expect("collector");
    collector
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let target = format!("udp://{}", collector.local_addr().expect("addr"));
    let service = Service::start_with(
        dir.path(),
        free_port(),
        free_port(),
        &[
            ("GARRISON_AUDIT_CHECKPOINT_INTERVAL", "200ms"),
            ("GARRISON_AUDIT_FORWARD", &target),
        ],
    );
    create_viewer_tokens(&service, &admin, &["one", "two", "three"]).await;
    // The collector receives every entry as CEF over syslog, and the checkpoints.
    let started = Instant::now();
    let (mut entries, mut checkpoints) = (0, 0);
    let mut buffer = [0u8; 8192];
    while started.elapsed() < Duration::from_secs(15) && (entries < 4 || checkpoints == 0) {
        let Ok(n) = collector.recv(&mut buffer) else {
            break;
        };
        let line = String::from_utf8_lossy(&buffer[..n]).to_string();
        assert!(line.starts_with("<85>1 "), "{line}");
        if line.contains("|audit.checkpoint|") {
            checkpoints += 1;
        } else if line.contains("CEF:0|Garrison|Garrison|") {
            entries += 1;
        }
    }
    assert!(entries >= 4, "entries forwarded: {entries}");
    assert!(checkpoints >= 1, "checkpoints forwarded: {checkpoints}");
    drop(service);

    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("holds entry"), "{out}");
    let exported = cli(dir.path(), &["audit", "export", "--format", "cef"]);
    let lines = exported.lines().count();
    assert!(lines >= 4 && exported.lines().all(|l| l.starts_with("CEF:0|")));
    let jsonl = cli(dir.path(), &["audit", "export"]);
    for line in jsonl.lines() {
        let entry: Value = serde_json::from_str(line).expect("json line");
        assert!(entry["hash"].as_str().is_some_and(|h| h.len() == 64));
    }
    assert_eq!(jsonl.lines().count(), lines);

    // An attacker with the database deletes the newest entries: the chain that is left is
    // valid, but the checkpoint saw more.
    let (store, tenant) = local_store(dir.path()).await;
    store
        .truncate_audit_for_tests(tenant, lines as i64 - 2)
        .await
        .expect("truncate");
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("entries were deleted"), "{out}");

    // The service runs on and writes past the old end under the same numbers: still caught
    // (every checkpoint is compared, not only the newest), and no new checkpoint buries it.
    let service = Service::start_with(
        dir.path(),
        free_port(),
        free_port(),
        &[("GARRISON_AUDIT_CHECKPOINT_INTERVAL", "200ms")],
    );
    create_viewer_tokens(&service, &admin, &["four", "five", "six", "seven"]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    drop(service);
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("written again"), "{out}");

    store
        .truncate_audit_for_tests(tenant, 0)
        .await
        .expect("truncate all");
    let (code, out) = verify(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no entry at all"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_beyond_64_bits_come_back_exactly_as_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "big"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start(dir.path());
    let sent = r#"{"id":"big-1","serial":123456789012345678901234567890,"negative":-98765432109876543210,"price":1.50}"#;
    let response = client()
        .post(service.url("/api/v1/ingest/events"))
        .bearer_auth(&ingest)
        .body(sent)
        .send()
        .await
        .expect("ingest");
    assert_eq!(response.status().as_u16(), 200);
    wait_indexed(&service).await;
    let text = client()
        .get(service.url("/api/v1/events?source=big"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("events")
        .text()
        .await
        .expect("text");
    for digits in [
        "123456789012345678901234567890",
        "-98765432109876543210",
        "1.50",
    ] {
        assert!(text.contains(digits), "{digits} not kept: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_wrong_passwords_lock_the_account_and_the_address_but_not_the_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let password = cli(
        dir.path(),
        &["user", "create", "--username", "ana", "--role", "analyst"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start_with(
        dir.path(),
        free_port(),
        free_port(),
        &[("GARRISON_SIGN_IN_LOCKOUT", "2s")],
    );
    let attacker = [127, 0, 5, 1];
    let started = Instant::now();
    let mut by_status: std::collections::BTreeMap<u16, usize> = Default::default();
    let client = client_from(attacker);
    for _ in 0..1000 {
        let status = client
            .post(service.url("/api/v1/auth/login"))
            .json(&json!({"username": "ana", "password": "guess"}))
            .send()
            .await
            .expect("login")
            .status()
            .as_u16();
        *by_status.entry(status).or_default() += 1;
    }
    eprintln!(
        "1000 wrong passwords in {:?}: {by_status:?}",
        started.elapsed()
    );
    // Five failures lock it; each later one that reaches the check (after a lockout ran out)
    // locks it again, for twice as long.
    let failures = by_status.get(&401).copied().unwrap_or(0);
    assert!((5..=10).contains(&failures), "{by_status:?}");
    assert_eq!(failures + by_status.get(&429).copied().unwrap_or(0), 1000);

    // A password spray from the same address: past 30 failures the address is locked, so
    // even a right password from it is refused.
    for i in 0..40 {
        login_from(
            &service,
            attacker,
            "default",
            &format!("sprayed{i}"),
            "guess",
        )
        .await;
    }
    let (status, body, _) = login_from(&service, attacker, "default", "ana", &password).await;
    assert_eq!(status, 429, "the attacking address is locked: {body}");
    // Once the account's own lockout runs out, its owner signs in from another address.
    let waited = Instant::now();
    let mut owner = 0;
    while waited.elapsed() < Duration::from_secs(40) {
        let (status, _, _) =
            login_from(&service, [127, 0, 5, 2], "default", "ana", &password).await;
        owner = status;
        if status != 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(owner, 200, "the owner signs in from elsewhere");
    eprintln!("owner signed in {:?} after the attack", waited.elapsed());

    // The admins hear of it as an alert, like any other.
    let alerts = get_json(&service, "/api/v1/alerts?limit=100", &admin).await;
    let lockouts: Vec<&Value> = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["rule_id"] == "garrison-sign-in-lockout")
        .collect();
    assert_eq!(lockouts.len(), 1, "{alerts}");
    assert!(lockouts[0]["title"]
        .as_str()
        .is_some_and(|t| t.contains("ana")));
    let audit = get_json(&service, "/api/v1/audit?limit=1000", &admin).await;
    let locked = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "auth.locked")
        .count();
    assert_eq!(
        locked,
        failures - 4,
        "one audit entry per lockout, not per attempt"
    );
}
