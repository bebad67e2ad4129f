//! Ingest behaviour as senders see it: HEC answers, gzip, limits, syslog framings.

use std::io::Write;
use std::time::Duration;

use crate::harness::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hec_answers_like_splunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "hec"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start(dir.path());
    let client = client();
    let post = |path: &str, auth: Option<String>, body: &str| {
        let mut request = client.post(service.url(path)).body(body.to_string());
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        request.send()
    };
    let answer = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.expect("json"))
    };
    let splunk = Some(format!("Splunk {token}"));

    let (status, body) = answer(
        post("/services/collector/event", None, "{\"event\":\"x\"}")
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((status, body["code"].as_u64()), (401, Some(2)));
    let (status, body) = answer(
        post(
            "/services/collector/event",
            Some("Splunk nope".into()),
            "{\"event\":\"x\"}",
        )
        .await
        .expect("send"),
    )
    .await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(4)));
    let (status, body) = answer(
        post("/services/collector/event", splunk.clone(), "")
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(5)));
    let (status, body) = answer(
        post("/services/collector/event", splunk.clone(), "{\"event\":\"one\",\"host\":\"web1\",\"sourcetype\":\"access\",\"fields\":{\"dc\":\"eu\"}}{\"event\":{\"k\":1},\"time\":\"1700000000.250\"}")
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        (status, body["text"].as_str(), body["code"].as_u64()),
        (200, Some("Success"), Some(0))
    );
    let (status, body) = answer(
        post(
            "/services/collector/event",
            splunk.clone(),
            "{\"event\":\"good\"}{\"nope\":1}",
        )
        .await
        .expect("send"),
    )
    .await;
    assert_eq!(
        (
            status,
            body["code"].as_u64(),
            body["invalid-event-number"].as_u64()
        ),
        (400, Some(12), Some(1))
    );
    let (status, body) = answer(
        post(
            "/services/collector/raw?host=fw1&sourcetype=syslog",
            splunk.clone(),
            "line one\nline two\n",
        )
        .await
        .expect("send"),
    )
    .await;
    assert_eq!((status, body["code"].as_u64()), (200, Some(0)));
    // Indexer acknowledgement, as Splunk forwarders with useACK use it.
    let channel = "0aecbd9c-5b8e-4a3e-9bd3-1e5c0e3c7a11";
    let acked = client
        .post(service.url("/services/collector/event"))
        .header("Authorization", format!("Splunk {token}"))
        .header("X-Splunk-Request-Channel", channel)
        .body("{\"event\":\"with ack\"}")
        .send()
        .await
        .expect("send");
    let (status, body) = answer(acked).await;
    assert_eq!((status, body["code"].as_u64()), (200, Some(0)));
    let ack_id = body["ackId"].as_u64().expect("ackId");
    let acks: serde_json::Value = client
        .post(service.url("/services/collector/ack"))
        .header("Authorization", format!("Splunk {token}"))
        .header("X-Splunk-Request-Channel", channel)
        .body(format!("{{\"acks\":[{ack_id},{}]}}", ack_id + 1))
        .send()
        .await
        .expect("ack")
        .json()
        .await
        .expect("json");
    assert_eq!(acks["acks"][ack_id.to_string()], true);
    assert_eq!(
        acks["acks"][(ack_id + 1).to_string()],
        false,
        "not issued yet"
    );
    let (status, body) = answer(
        client
            .get(service.url("/services/collector/health"))
            .send()
            .await
            .expect("health"),
    )
    .await;
    assert_eq!((status, body["code"].as_u64()), (200, Some(17)));

    wait_indexed(&service).await;
    let events = all_events(&service, &admin, "hec").await;
    let messages: Vec<String> = events
        .iter()
        .filter_map(|e| e["fields"]["message"].as_str().map(String::from))
        .collect();
    for expected in ["one", "good", "line one", "line two"] {
        assert!(
            messages.iter().any(|m| m == expected),
            "{expected:?} not stored: {messages:?}"
        );
    }
    let one = events
        .iter()
        .find(|e| e["fields"]["message"] == "one")
        .expect("one");
    assert_eq!(one["fields"]["host"], "web1");
    assert_eq!(one["fields"]["dc"], "eu");
    let timed = events
        .iter()
        .find(|e| e["fields"]["k"] == 1)
        .expect("timed event");
    assert_eq!(timed["time"], "2023-11-14T22:13:20.25Z");

    // What happened shows in the metrics.
    let metrics = client
        .get(service.url("/metrics"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(value("garrison_events_received_total") >= 6.0, "{metrics}");
    assert!(value("garrison_events_stored_total") >= 5.0, "{metrics}");
    assert!(value("garrison_events_rejected_total") >= 1.0, "{metrics}");
    assert!(
        metrics.contains("garrison_ingest_ack_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("garrison_index_lag_bytes"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config = dir.path().join("garrison.toml");
    std::fs::write(
        &config,
        format!("http_addr = \"127.0.0.1:{file_port}\"\nsyslog_addr = \"off\"\n"),
    )
    .expect("config");
    let up = |port: u16| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    let spawn = |env_http: Option<u16>, flag_http: Option<u16>| {
        let mut command = std::process::Command::new(BIN);
        command
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("serve");
        if let Some(port) = flag_http {
            command.arg("--http-addr").arg(format!("127.0.0.1:{port}"));
        }
        command
            .env_remove("GARRISON_HTTP_ADDR")
            .env_remove("GARRISON_SYSLOG_ADDR")
            .env("GARRISON_LOG", "warn");
        if let Some(port) = env_http {
            command.env("GARRISON_HTTP_ADDR", format!("127.0.0.1:{port}"));
        }
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let wait_for = |port: u16| {
        for _ in 0..400 {
            if up(port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    };
    for (env_http, flag_http, expected) in [
        (None, None, file_port),
        (Some(env_port), None, env_port),
        (Some(env_port), Some(flag_port), flag_port),
    ] {
        let mut child = spawn(env_http, flag_http);
        assert!(
            wait_for(expected),
            "expected the service on port {expected} (env {env_http:?}, flag {flag_http:?})"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_ingest_keeps_good_records_takes_gzip_and_enforces_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("garrison.toml"),
        "max_body_bytes = 200000\nmax_depth = 8\n",
    )
    .expect("config");
    let token = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "app"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let config = dir.path().join("garrison.toml");
    let service = Service::start_with(
        dir.path(),
        free_port(),
        free_port(),
        &[("GARRISON_CONFIG", config.to_str().expect("path"))],
    );
    let client = client();
    let send = |body: Vec<u8>, gz: bool| {
        let mut request = client
            .post(service.url("/api/v1/ingest/events"))
            .bearer_auth(&token)
            .body(body);
        if gz {
            request = request.header("Content-Encoding", "gzip");
        }
        request.send()
    };

    let body =
        "{\"n\":1,\"@timestamp\":\"2021-03-04T05:06:07Z\"}\nnot json\n{\"n\":2}\n[1,2\n{\"n\":3}\n";
    let response = send(body.as_bytes().to_vec(), false).await.expect("send");
    assert_eq!(response.status().as_u16(), 200);
    let answer: serde_json::Value = response.json().await.expect("json");
    // The broken array keeps its complete elements (1 and 2); the record after it survives.
    assert_eq!(answer["accepted"], 5, "{answer}");
    assert_eq!(answer["rejected"], 2, "{answer}");
    assert_eq!(answer["errors"][0]["index"], 1);
    assert_eq!(answer["errors"][0]["line"], 2);

    let response = send(gzip(b"[{\"n\":10},{\"n\":11}]"), true)
        .await
        .expect("send gzip");
    assert_eq!(response.status().as_u16(), 200);

    let deep = format!("{}1{}", "{\"a\":".repeat(20), "}".repeat(20));
    let response = send(deep.into_bytes(), false).await.expect("send deep");
    assert_eq!(response.status().as_u16(), 400);
    let problem: serde_json::Value = response.json().await.expect("json");
    assert_eq!(problem["code"], "invalid_events");
    assert!(
        problem["errors"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("depth"),
        "{problem}"
    );

    let big = format!("{{\"x\":\"{}\"}}", "y".repeat(300_000));
    let response = send(big.into_bytes(), false).await.expect("send big");
    assert_eq!(response.status().as_u16(), 413);
    // A zip bomb is cut at the decompressed limit.
    let bomb = gzip(format!("{{\"x\":\"{}\"}}", "z".repeat(5_000_000)).as_bytes());
    let response = send(bomb, true).await.expect("send bomb");
    assert_eq!(response.status().as_u16(), 413);
    let problem: serde_json::Value = response.json().await.expect("json");
    assert_eq!(problem["code"], "payload_too_large");

    wait_indexed(&service).await;
    let events = all_events(&service, &admin, "app").await;
    let mut ns: Vec<i64> = events
        .iter()
        .filter_map(|e| e["fields"]["n"].as_i64())
        .collect();
    ns.sort();
    assert_eq!(ns, vec![1, 2, 3, 10, 11]);
    let first = events.iter().find(|e| e["fields"]["n"] == 1).expect("n=1");
    assert_eq!(
        first["time"], "2021-03-04T05:06:07Z",
        "event keeps its own time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_udp_tcp_octet_counting_and_cef_are_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start(dir.path());

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.send_to(
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        &service.syslog,
    )
    .expect("send udp");
    let mut tcp = std::net::TcpStream::connect(&service.syslog).expect("tcp");
    let cef = "<134>1 2024-02-03T04:05:06Z fw1 CEF - - - CEF:0|Palo Alto|PAN-OS|10.1|threat|Spyware detected|8|src=10.0.0.5 dst=203.0.113.9 spt=51515 dpt=443 act=block msg=C2 beacon\\=seen";
    let framed = format!("{} {cef}", cef.len());
    tcp.write_all(framed.as_bytes()).expect("octet counted");
    tcp.write_all(b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.\n").expect("newline framed");
    drop(tcp);
    // An HTTP client aimed at the syslog port: its headers (a token) must not become events.
    let mut http = std::net::TcpStream::connect(&service.syslog).expect("tcp");
    let _ = http.write_all(
        b"GET /api/v1/rules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer gar_api_secret\r\n\r\n",
    );
    drop(http);
    tokio::time::sleep(Duration::from_millis(200)).await;
    wait_indexed(&service).await;

    let events = all_events(&service, &admin, "syslog").await;
    assert_eq!(events.len(), 3, "{events:#?}");
    assert!(
        !events
            .iter()
            .any(|e| e.to_string().contains("gar_api_secret")),
        "an HTTP request's headers were stored: {events:#?}"
    );
    let cef_event = events
        .iter()
        .find(|e| e["fields"].get("cef").is_some())
        .expect("CEF parsed");
    assert_eq!(cef_event["fields"]["cef"]["device_vendor"], "Palo Alto");
    assert_eq!(cef_event["normalized"]["source.ip"], "10.0.0.5");
    assert_eq!(cef_event["normalized"]["destination.ip"], "203.0.113.9");
    assert_eq!(cef_event["time"], "2024-02-03T04:05:06Z");
    let donuts = events
        .iter()
        .find(|e| {
            e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("do-nuts"))
        })
        .expect("5424");
    assert_eq!(donuts["time"], "2003-08-24T12:14:15.000003Z");
}

fn corpus() -> Option<std::path::PathBuf> {
    let root = std::env::var_os("GARRISON_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
        });
    if root.is_dir() {
        Some(root)
    } else {
        eprintln!(
            "skipping: corpus not found at {} (set GARRISON_CORPUS)",
            root.display()
        );
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_command_uploads_evtx_once_however_often_it_runs() {
    let Some(corpus) = corpus() else { return };
    let folder = corpus.join("evtx-attack-samples/Credential Access");
    if !folder.is_dir() {
        eprintln!("skipping: {} not found", folder.display());
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "evtx"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start(dir.path());
    // An ingest token sends for its own source: naming another is refused, and says so.
    let refused = std::process::Command::new(BIN)
        .args(["ingest", "--quiet", "--source", "other", "--url"])
        .arg(service.url(""))
        .args(["--token", &ingest])
        .arg(&folder)
        .env("GARRISON_LOG", "warn")
        .output()
        .expect("run ingest");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("\"evtx\"") && said.contains("\"other\""),
        "{said}"
    );
    let upload = || {
        let output = std::process::Command::new(BIN)
            .args([
                "ingest",
                "--quiet",
                "--url",
                &service.url(""),
                "--token",
                &ingest,
            ])
            .arg(&folder)
            .env("GARRISON_LOG", "warn")
            .output()
            .expect("run ingest");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    let first = upload();
    let sent: u64 = first
        .split(" events sent")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("summary line");
    assert!(sent > 100, "{first}");
    upload();
    wait_indexed(&service).await;
    let events = all_events(&service, &admin, "evtx").await;
    let ids: std::collections::HashSet<_> =
        events.iter().map(|e| e["fields"].to_string()).collect();
    assert_eq!(ids.len(), events.len(), "stored twice");
    assert!(
        events.len() as u64 <= sent && events.len() as u64 >= sent - sent / 20,
        "{} of {sent}",
        events.len()
    );
    // Event time comes from the record, not from the upload.
    assert!(
        events
            .iter()
            .all(|e| e["time"].as_str().is_some_and(|t| t < "2024")),
        "times taken from upload"
    );
}
