//! HTTPS, syslog over TLS (RFC 5425), and the service running on PostgreSQL.

use std::io::Write;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use std::time::Duration;

use crate::harness::*;

fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params");
    let cert = params.self_signed(&key).expect("cert");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path, cert.pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_syslog_over_tls_work_with_a_given_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key, cert_pem) = self_signed(dir.path());
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "tls-app"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let tls_port = free_port();
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let service = Service::start_with(
        dir.path(),
        free_port(),
        free_port(),
        &[
            ("GARRISON_TLS_CERT", cert.to_str().expect("path")),
            ("GARRISON_TLS_KEY", key.to_str().expect("path")),
            ("GARRISON_SYSLOG_TLS_ADDR", &tls_addr),
        ],
    );
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let https = |path: &str| {
        format!(
            "https://localhost:{}{path}",
            service.http.rsplit(':').next().expect("port")
        )
    };
    // Plain HTTP is not served on the TLS port.
    assert!(client
        .get(format!("http://{}/healthz", service.http))
        .send()
        .await
        .is_err());
    let response = client
        .post(https("/api/v1/ingest/events"))
        .bearer_auth(&ingest)
        .body("{\"via\":\"https\"}")
        .send()
        .await
        .expect("https ingest");
    assert_eq!(response.status().as_u16(), 200);

    // Syslog over TLS, octet-counted as RFC 5425 says.
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots.add(der.expect("cert")).expect("root");
    }
    let config = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let connection = rustls::ClientConnection::new(config, name).expect("tls");
    let tcp = std::net::TcpStream::connect(&tls_addr).expect("connect tls syslog");
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    let message = "<14>1 2026-11-25T10:00:00Z tlshost app - - - over tls";
    stream
        .write_all(format!("{} {message}", message.len()).as_bytes())
        .expect("send");
    stream.flush().expect("flush");
    stream.conn.send_close_notify();
    let _ = stream.flush();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Search over HTTPS finds both.
    let mut found = 0;
    for _ in 0..100 {
        let page: serde_json::Value = client
            .get(https("/api/v1/events?limit=10"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("json");
        let events = page["events"].as_array().cloned().unwrap_or_default();
        found = events
            .iter()
            .filter(|e| e["fields"]["via"] == "https" || e["fields"]["message"] == "over tls")
            .count();
        if found == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        found, 2,
        "events over HTTPS and syslog-TLS were not both stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_on_postgresql() {
    let Ok(base) = std::env::var("GARRISON_TEST_POSTGRES_URL") else {
        eprintln!(
            "skipping: GARRISON_TEST_POSTGRES_URL is not set (scripts/with-postgres.sh sets it)"
        );
        return;
    };
    let name = format!("garrison_e2e_{}", garrison_model::new_ulid().to_lowercase());
    let admin_store = garrison_store::SqlStore::connect(&base)
        .await
        .expect("connect postgres");
    admin_store
        .create_database_for_tests(&name)
        .await
        .expect("create database");
    let url = format!("{}/{name}", base.rsplit_once('/').expect("url").0);
    let dir = tempfile::tempdir().expect("tempdir");
    let with_db = |args: &[&str]| {
        let mut full = vec!["--database-url", url.as_str()];
        full.extend_from_slice(args);
        cli(dir.path(), &full)
    };
    let ingest = with_db(&["token", "create", "--ingest", "--source", "pg-app"]);
    // The rule below asks for `product: test`: the source says it is that.
    with_db(&["source", "set", "pg-app", "--product", "test"]);
    let admin = with_db(&["token", "create", "--role", "admin"]);
    // Live detection and triage on PostgreSQL too: one rule that every event matches.
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("pg.yml"),
        "title: Postgres marker\nid: 5d2c8c4e-8a4e-4b61-9a57-2f3d7f1c0a01\nstatus: test\nlevel: high\n\
         logsource: { product: test }\ndetection: { selection: { msg|contains: 'postgres event' }, condition: selection }\n",
    )
    .expect("rule");
    with_db(&["rules", "import", rules.to_str().expect("path"), "--enable"]);
    let service = Service::start_with(
        dir.path(),
        free_port(),
        free_port(),
        &[("GARRISON_DATABASE_URL", &url)],
    );
    let client = client();
    // Fixed event times within one hour, so grouping cannot straddle an hour boundary.
    let body: String = (0..300).map(|i| format!("{{\"id\":\"pg-{i}\",\"@timestamp\":\"2026-01-01T10:00:{:02}Z\",\"msg\":\"postgres event {i}\",\"host\":{{\"name\":\"db{}\"}}}}\n", i % 60, i % 3)).collect();
    for _ in 0..2 {
        let response = client
            .post(service.url("/api/v1/ingest/events"))
            .bearer_auth(&ingest)
            .body(body.clone())
            .send()
            .await
            .expect("ingest");
        assert_eq!(response.status().as_u16(), 200);
    }
    wait_indexed(&service).await;
    let events = all_events(&service, &admin, "pg-app").await;
    assert_eq!(events.len(), 300, "retried batch stored once");
    let page: serde_json::Value = client
        .get(service.url("/api/v1/events"))
        .bearer_auth(&admin)
        .query(&[("q", "postgres event 7"), ("field.host.name", "db1")])
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("json");
    let hits = page["events"].as_array().expect("events");
    assert!(hits.iter().any(|e| e["fields"]["id"] == "pg-7"), "{page}");
    assert!(hits.iter().all(|e| e["fields"]["host"]["name"] == "db1"));

    // Each host's 100 matches fold into one alert, and triage opens one incident per host.
    let started = std::time::Instant::now();
    let (alerts, incidents) = loop {
        let alerts = get_json(&service, "/api/v1/alerts?limit=100", &admin).await;
        let incidents = get_json(&service, "/api/v1/incidents?limit=100", &admin).await;
        let alerts = alerts["alerts"].as_array().cloned().unwrap_or_default();
        let incidents = incidents["incidents"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let linked = alerts.iter().all(|a| a["incident_id"].is_string());
        if (alerts.len() == 3 && linked && incidents.len() == 3)
            || started.elapsed() > Duration::from_secs(60)
        {
            break (alerts, incidents);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(alerts.len(), 3, "{alerts:?}");
    assert!(alerts.iter().all(|a| a["count"] == 100), "{alerts:?}");
    assert_eq!(incidents.len(), 3, "{incidents:?}");
    let incident = incidents[0]["incident"]["id"].as_str().expect("id");
    // An attachment on PostgreSQL metadata.
    let response = client
        .post(service.url(&format!("/api/v1/incidents/{incident}/attachments")))
        .query(&[("name", "notes.txt")])
        .bearer_auth(&admin)
        .body("evidence on postgres")
        .send()
        .await
        .expect("attach");
    assert_eq!(response.status().as_u16(), 201);
    let listed = get_json(
        &service,
        &format!("/api/v1/incidents/{incident}/attachments"),
        &admin,
    )
    .await;
    assert_eq!(listed["attachments"][0]["name"], "notes.txt");
}
