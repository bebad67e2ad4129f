//! Incident attachments: evidence stored on disk by hash, durable once acknowledged (even
//! across `kill -9`), read back byte for byte, altered files refused, tenant-scoped and
//! role-checked, and every upload, download and removal audited.

use std::path::Path;

use crate::harness::*;
use serde_json::json;
use sha2::{Digest, Sha256};

async fn upload(
    service: &Service,
    token: &str,
    incident: &str,
    name: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let response = client()
        .post(service.url(&format!("/api/v1/incidents/{incident}/attachments")))
        .query(&[("name", name)])
        .bearer_auth(token)
        .header("content-type", "application/vnd.tcpdump.pcap")
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn download(
    service: &Service,
    token: &str,
    incident: &str,
    sha: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let response = client()
        .get(service.url(&format!("/api/v1/incidents/{incident}/attachments/{sha}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("download");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.bytes().await.expect("body").to_vec(),
    )
}

async fn delete(service: &Service, token: &str, incident: &str, sha: &str) -> u16 {
    client()
        .delete(service.url(&format!("/api/v1/incidents/{incident}/attachments/{sha}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("delete")
        .status()
        .as_u16()
}

async fn open_incident(service: &Service, token: &str, title: &str) -> String {
    let response = client()
        .post(service.url("/api/v1/incidents"))
        .bearer_auth(token)
        .json(&json!({"title": title, "severity": "high"}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status().as_u16(), 201);
    let body: serde_json::Value = response.json().await.expect("json");
    body["incident"]["id"].as_str().expect("id").to_string()
}

/// The blob file of tenant 1 (the default tenant) with this hash.
fn blob_path(data_dir: &Path, sha: &str) -> std::path::PathBuf {
    data_dir
        .join("attachments")
        .join("t1")
        .join(&sha[..2])
        .join(sha)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_are_stored_by_hash_verified_scoped_and_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let analyst = cli(dir.path(), &["token", "create", "--role", "analyst"]);
    let viewer = cli(dir.path(), &["token", "create", "--role", "viewer"]);
    cli(dir.path(), &["tenant", "create", "bravo"]);
    let bravo = cli(
        dir.path(),
        &["token", "create", "--role", "admin", "--tenant", "bravo"],
    );
    let env = [("GARRISON_MAX_ATTACHMENT_BYTES", "3000000")];
    let (http, syslog) = (free_port(), free_port());
    let mut service = Service::start_with(dir.path(), http, syslog, &env);
    let first = open_incident(&service, &analyst, "Beacon from ws7").await;
    let second = open_incident(&service, &analyst, "Beacon from ws8").await;

    // 2 MB of non-repeating bytes: more than one chunk on the wire and on disk.
    let content: Vec<u8> = (0u32..2_000_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sha = hex::encode(Sha256::digest(&content));
    let (status, body) = upload(
        &service,
        &analyst,
        &first,
        "capture ws7.pcap",
        content.clone(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["sha256"], sha.as_str());
    assert_eq!(body["size"], 2_000_000);
    assert_eq!(body["content_type"], "application/vnd.tcpdump.pcap");
    // Acknowledged means durable: kill -9 at once, and the file and its record are there.
    service.kill9();
    service = Service::start_with(dir.path(), http, syslog, &env);
    let (status, headers, bytes) = download(&service, &viewer, &first, &sha).await;
    assert_eq!(status, 200);
    assert!(bytes == content, "the download differs from the upload");
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let disposition = headers["content-disposition"].to_str().expect("ascii");
    assert!(
        disposition.starts_with("attachment;") && disposition.contains("capture%20ws7.pcap"),
        "{disposition}"
    );
    assert!(headers["repr-digest"]
        .to_str()
        .expect("ascii")
        .starts_with("sha-256=:"));
    // Upper-case hashes name the same file.
    let (status, _, _) = download(&service, &viewer, &first, &sha.to_uppercase()).await;
    assert_eq!(status, 200);

    // The same content again on the same incident is the same attachment; on another
    // incident it is a second record of one file.
    let (status, body) = upload(&service, &analyst, &first, "copy.pcap", content.clone()).await;
    assert_eq!(
        (status, body["name"].as_str()),
        (200, Some("capture ws7.pcap"))
    );
    let (status, _) = upload(&service, &analyst, &second, "ws8.pcap", content.clone()).await;
    assert_eq!(status, 201);
    let listed = get_json(
        &service,
        &format!("/api/v1/incidents/{first}/attachments"),
        &viewer,
    )
    .await;
    assert_eq!(listed["attachments"].as_array().map(Vec::len), Some(1));
    let detail = get_json(&service, &format!("/api/v1/incidents/{first}"), &viewer).await;
    assert_eq!(detail["attachments"][0]["sha256"], sha.as_str());
    let timeline = get_json(
        &service,
        &format!("/api/v1/incidents/{first}/timeline"),
        &viewer,
    )
    .await;
    let noted = timeline["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["type"] == "attachment_added")
        .count();
    assert_eq!(noted, 1, "{timeline}");

    // Refusals, each with its reason; nothing is left behind on disk.
    let (status, body) = upload(&service, &viewer, &first, "x.bin", b"x".to_vec()).await;
    assert_eq!(status, 403, "viewers attach nothing: {body}");
    let (status, body) = upload(&service, &analyst, &first, "big.bin", vec![7u8; 3_000_001]).await;
    assert_eq!(status, 413, "{body}");
    // Without a declared length (chunked), the limit holds while the bytes stream in.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![9u8; 1_000_000])).collect();
    let response = client()
        .post(service.url(&format!("/api/v1/incidents/{first}/attachments")))
        .query(&[("name", "chunked.bin")])
        .bearer_auth(&analyst)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    // The service may answer 413 or close the connection mid-upload; never 2xx.
    if let Ok(response) = response {
        assert_eq!(response.status().as_u16(), 413);
    }
    let (status, body) = upload(&service, &analyst, &first, "../etc/passwd", b"x".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("name"),
        "{body}"
    );
    let (status, _) = upload(&service, &analyst, &first, "empty.txt", Vec::new()).await;
    assert_eq!(status, 400);
    let (status, _) = upload(
        &service,
        &analyst,
        "no-such-incident",
        "a.txt",
        b"a".to_vec(),
    )
    .await;
    assert_eq!(status, 404);
    let leftovers = std::fs::read_dir(dir.path().join("attachments/tmp"))
        .expect("tmp")
        .count();
    assert_eq!(leftovers, 0, "a refused upload left a partial file");
    let (status, _, _) = download(&service, &viewer, &first, "not-a-hash").await;
    assert_eq!(status, 400);

    // Another tenant sees nothing and can change nothing.
    let (status, _, _) = download(&service, &bravo, &first, &sha).await;
    assert_eq!(status, 404);
    let (status, _) = upload(&service, &bravo, &first, "x.bin", b"x".to_vec()).await;
    assert_eq!(status, 404);
    assert_eq!(delete(&service, &bravo, &first, &sha).await, 404);

    // Evidence altered on disk is reported, not served.
    let path = blob_path(dir.path(), &sha);
    let mut altered = content.clone();
    altered[1234] ^= 0xff;
    std::fs::write(&path, &altered).expect("alter");
    let (status, _, body) = download(&service, &viewer, &first, &sha).await;
    assert_eq!(status, 500);
    assert!(
        String::from_utf8_lossy(&body).contains("does not match its hash"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // A fresh upload of the true content repairs it.
    let (status, _) = upload(&service, &analyst, &first, "again.pcap", content.clone()).await;
    assert_eq!(status, 200);
    let (status, _, bytes) = download(&service, &viewer, &first, &sha).await;
    assert!(status == 200 && bytes == content);

    // Removal: admins only; the file stays while another incident holds it.
    assert_eq!(delete(&service, &analyst, &first, &sha).await, 403);
    assert_eq!(delete(&service, &admin, &first, &sha).await, 204);
    assert_eq!(delete(&service, &admin, &first, &sha).await, 404);
    assert!(path.exists(), "the second incident still holds the file");
    let (status, _, _) = download(&service, &viewer, &first, &sha).await;
    assert_eq!(status, 404);
    assert_eq!(delete(&service, &admin, &second, &sha).await, 204);
    assert!(!path.exists(), "no incident holds the file any more");

    // Chain of custody: uploads, downloads and removals are in the audit log.
    let audit = get_json(&service, "/api/v1/audit?limit=1000", &admin).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "incident.attachment.add",
        "incident.attachment.download",
        "incident.attachment.remove",
    ] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {actions:?}"
        );
    }
    cli(dir.path(), &["audit", "verify"]);
}

/// Runs `garrison incidents ...` against the service; returns (success, stdout, stderr).
fn incidents_cli(service: &Service, token: &str, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(BIN)
        .arg("incidents")
        .args(args)
        .args([
            "--url",
            &format!("http://{}", service.http),
            "--token",
            token,
        ])
        .env("GARRISON_LOG", "warn")
        .output()
        .expect("run garrison incidents");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incidents_cli_attaches_downloads_comments_and_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let analyst = cli(dir.path(), &["token", "create", "--role", "analyst"]);
    let viewer = cli(dir.path(), &["token", "create", "--role", "viewer"]);
    let service = Service::start(dir.path());
    let id = open_incident(&service, &analyst, "Collected triage package").await;

    let evidence = dir.path().join("triage package.zip");
    let content: Vec<u8> = (0u32..700_000).map(|i| (i % 251) as u8).collect();
    std::fs::write(&evidence, &content).expect("write evidence");
    let sha = hex::encode(Sha256::digest(&content));
    let (ok, out, err) = incidents_cli(
        &service,
        &analyst,
        &["attach", &id, evidence.to_str().expect("path"), "--quiet"],
    );
    assert!(ok, "{err}");
    let attached: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(attached["sha256"], sha.as_str());
    assert_eq!(attached["name"], "triage package.zip");

    // Download to a file; the CLI checks the hash.
    let target = dir.path().join("back.zip");
    let (ok, _, err) = incidents_cli(
        &service,
        &viewer,
        &[
            "download",
            &id,
            &sha,
            "--output",
            target.to_str().expect("path"),
        ],
    );
    assert!(ok, "{err}");
    assert!(std::fs::read(&target).expect("read") == content);
    // An existing file is not overwritten; a viewer cannot attach.
    let (ok, _, err) = incidents_cli(
        &service,
        &viewer,
        &[
            "download",
            &id,
            &sha,
            "--output",
            target.to_str().expect("path"),
        ],
    );
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, _, err) = incidents_cli(
        &service,
        &viewer,
        &["attach", &id, evidence.to_str().expect("path"), "--quiet"],
    );
    assert!(!ok && err.contains("403"), "{err}");

    let (ok, _, err) = incidents_cli(&service, &analyst, &["comment", &id, "package attached"]);
    assert!(ok, "{err}");
    let (ok, out, err) = incidents_cli(&service, &viewer, &["list", "--state", "new", "--all"]);
    assert!(ok, "{err}");
    let listed: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["incident"]["id"], id.as_str());
    let (ok, out, err) = incidents_cli(&service, &viewer, &["show", &id]);
    assert!(ok, "{err}");
    let detail: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(detail["attachments"][0]["sha256"], sha.as_str());
    let timeline = get_json(
        &service,
        &format!("/api/v1/incidents/{id}/timeline"),
        &viewer,
    )
    .await;
    assert!(timeline["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .any(|e| e["type"] == "comment" && e["text"] == "package attached"));
}
