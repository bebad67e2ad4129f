use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_garrison");

pub fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

/// Runs a CLI command on the data dir and returns its stdout.
pub fn cli(data_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("GARRISON_LOG", "warn")
        .output()
        .expect("run garrison");
    assert!(
        output.status.success(),
        "garrison {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

pub struct Service {
    pub child: Child,
    pub http: String,
    pub syslog: String,
    /// Where the service's log goes when the test did not ask for it: read when it fails.
    stderr: Option<tempfile::NamedTempFile>,
}

impl Service {
    /// On free ports. A port `free_port` found free can be taken by another test before the
    /// service binds it: then the service is started again on other ports.
    pub fn start(data_dir: &Path) -> Service {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(data_dir, free_port(), free_port(), &[], None) {
                Ok(service) => return service,
                Err(error) => last = error,
            }
        }
        panic!("{last}");
    }

    pub fn start_with(
        data_dir: &Path,
        http_port: u16,
        syslog_port: u16,
        env: &[(&str, &str)],
    ) -> Service {
        Self::start_logging(data_dir, http_port, syslog_port, env, None)
    }

    /// Like [`Service::start_with`], the service's log (stderr) written to `log` when given.
    pub fn start_logging(
        data_dir: &Path,
        http_port: u16,
        syslog_port: u16,
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Service {
        Self::try_start(data_dir, http_port, syslog_port, env, log)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start(
        data_dir: &Path,
        http_port: u16,
        syslog_port: u16,
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Result<Service, String> {
        let http = format!("127.0.0.1:{http_port}");
        let syslog = format!("127.0.0.1:{syslog_port}");
        let mut command = Command::new(BIN);
        command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("serve")
            .env("GARRISON_HTTP_ADDR", &http)
            .env("GARRISON_SYSLOG_ADDR", &syslog)
            .env("GARRISON_LOG", "warn")
            .stdout(Stdio::null());
        let stderr = match log {
            Some(path) => {
                command.stderr(Stdio::from(std::fs::File::create(path).expect("log file")));
                None
            }
            None => {
                let file = tempfile::NamedTempFile::new().expect("log file");
                command.stderr(Stdio::from(file.reopen().expect("log file")));
                Some(file)
            }
        };
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("spawn serve");
        let mut service = Service {
            child,
            http,
            syslog,
            stderr,
        };
        service.wait_healthy()?;
        Ok(service)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    fn wait_healthy(&mut self) -> Result<(), String> {
        let started = Instant::now();
        // Generous: a 2-core CI machine runs many services at once.
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self
                    .stderr
                    .as_ref()
                    .and_then(|f| std::fs::read_to_string(f.path()).ok())
                    .unwrap_or_default();
                return Err(format!(
                    "service on {} exited at start: {status}\n{log}",
                    self.http
                ));
            }
            if std::net::TcpStream::connect(&self.http).is_ok()
                && std::net::TcpStream::connect(&self.syslog).is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(format!("service on {} did not start", self.http))
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A client whose connections come from the local address `from` (any of 127.0.0.0/8), for
/// tests of per-address limits.
pub fn client_from(from: [u8; 4]) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(from))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The Prometheus text of `/metrics`.
pub async fn metrics_text(service: &Service, token: &str) -> String {
    client()
        .get(service.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The value of the series `name` (with its labels, as Prometheus writes them), 0 if absent.
pub async fn metric(service: &Service, token: &str, name: &str) -> f64 {
    metrics_text(service, token)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// `POST /api/v1/ingest/events` with an ingest token; asserts 200, returns the answer.
pub async fn post_events(service: &Service, token: &str, body: &str) -> serde_json::Value {
    let response = client()
        .post(service.url("/api/v1/ingest/events"))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .expect("ingest");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("answer")
}

/// Opens the service's SQLite store in `dir` from the test (as an attacker with database
/// access would) and finds the default tenant.
pub async fn local_store(dir: &Path) -> (garrison_store::SqlStore, garrison_model::TenantId) {
    let store = garrison_store::SqlStore::connect(&format!(
        "sqlite://{}",
        dir.join("garrison.db").display()
    ))
    .await
    .expect("store");
    let tenant = {
        use garrison_store::TenantRepo;
        store
            .tenant_by_name("default")
            .await
            .expect("tenant")
            .expect("default")
    };
    (store, tenant.id)
}

/// Every stored event of a source, through the API, all pages.
pub async fn all_events(service: &Service, token: &str, source: &str) -> Vec<serde_json::Value> {
    let client = client();
    let mut cursor: Option<String> = None;
    let mut events = Vec::new();
    loop {
        let mut query = vec![
            ("source", source.to_string()),
            ("limit", "1000".to_string()),
        ];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page: serde_json::Value = client
            .get(service.url("/api/v1/events"))
            .bearer_auth(token)
            .query(&query)
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("json");
        events.extend(page["events"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return events,
        }
    }
}

async fn readiness(client: &reqwest::Client, service: &Service) -> Option<serde_json::Value> {
    client
        .get(service.url("/readyz"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Waits until the indexer has caught up with everything acknowledged before this call
/// (senders may keep sending meanwhile).
pub async fn wait_indexed(service: &Service) {
    let client = client();
    let started = Instant::now();
    let mut target = None;
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(body) = readiness(&client, service).await {
            let committed = body["log_committed"].as_u64().unwrap_or(u64::MAX);
            let target = *target.get_or_insert(committed);
            if body["log_indexed"]
                .as_u64()
                .is_some_and(|indexed| indexed >= target)
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("indexing did not catch up");
}

/// `GET path` with a bearer token, answer as JSON.
pub async fn get_json(service: &Service, path: &str, token: &str) -> serde_json::Value {
    client()
        .get(service.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: answer is not JSON: {e}"))
}

/// Every item of a cursor-paged list (`{KEY: [...], "next_cursor": ...}`): `path` with its
/// query (`?limit=N`), all pages.
pub async fn all_pages(
    service: &Service,
    path: &str,
    key: &str,
    token: &str,
) -> Vec<serde_json::Value> {
    let mut cursor: Option<String> = None;
    let mut items = Vec::new();
    loop {
        let mut page_path = path.to_string();
        if let Some(c) = &cursor {
            page_path.push_str(&format!("&cursor={c}"));
        }
        let page = get_json(service, &page_path, token).await;
        items.extend(page[key].as_array().cloned().expect("a list"));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return items,
        }
    }
}

/// One request a test HTTP endpoint ([`serve_http`]) received.
pub struct HttpRequest {
    /// The request target: path and query.
    pub path: String,
    /// The `Idempotency-Key` header, empty when absent.
    pub idempotency_key: String,
    /// The `X-Garrison-Attempt` header (0 when absent).
    pub attempt: u32,
    pub body: Vec<u8>,
}

/// Starts a minimal HTTP/1.1 endpoint (keep-alive, `Content-Length` bodies) that answers each
/// request with `handle`'s status and JSON body; returns its base URL.
pub async fn serve_http<F, Fut>(handle: F) -> String
where
    F: Fn(HttpRequest) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = (u16, String)> + Send,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind test endpoint");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let mut buf: Vec<u8> = Vec::new();
                loop {
                    // One request: headers, then Content-Length bytes of body.
                    let header_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let path = lines
                        .next()
                        .and_then(|l| l.split(' ').nth(1))
                        .unwrap_or("")
                        .to_string();
                    let (mut length, mut idempotency_key, mut attempt) =
                        (0usize, String::new(), 0u32);
                    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
                        match k.trim().to_ascii_lowercase().as_str() {
                            "content-length" => length = v.trim().parse().unwrap_or(0),
                            "idempotency-key" => idempotency_key = v.trim().to_string(),
                            "x-garrison-attempt" => attempt = v.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                    while buf.len() < header_end + length {
                        let mut chunk = [0u8; 4096];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buf[header_end..header_end + length].to_vec();
                    buf.drain(..header_end + length);
                    let (status, answer) = handle(HttpRequest {
                        path,
                        idempotency_key,
                        attempt,
                        body,
                    })
                    .await;
                    let reason = if status == 200 {
                        "OK"
                    } else {
                        "Internal Server Error"
                    };
                    let response = format!(
                        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// A Sigma rule that matches `whoami.exe` process creations, with the given id and level.
pub fn whoami_rule(id: &str, level: &str) -> String {
    format!(
        r#"title: Whoami run {id}
id: {id}
status: test
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\whoami.exe'
    condition: selection
level: {level}
"#
    )
}

/// Sends syslog lines over TCP (newline framed) and closes the connection.
pub fn send_syslog(service: &Service, lines: &[&str]) {
    use std::io::Write;
    let mut tcp = std::net::TcpStream::connect(&service.syslog).expect("tcp");
    for line in lines {
        tcp.write_all(line.as_bytes()).expect("send");
        tcp.write_all(b"\n").expect("send");
    }
}

/// The source's stored events once at least `want` are there (or after 20 s, what there is).
pub async fn wait_events(
    service: &Service,
    token: &str,
    source: &str,
    want: usize,
) -> Vec<serde_json::Value> {
    let started = Instant::now();
    loop {
        wait_indexed(service).await;
        let events = all_events(service, token, source).await;
        if events.len() >= want || started.elapsed() > Duration::from_secs(20) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
