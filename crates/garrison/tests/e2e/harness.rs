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
}

impl Service {
    pub fn start(data_dir: &Path) -> Service {
        Self::start_with(data_dir, free_port(), free_port(), &[])
    }

    pub fn start_with(
        data_dir: &Path,
        http_port: u16,
        syslog_port: u16,
        env: &[(&str, &str)],
    ) -> Service {
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
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("spawn serve");
        let service = Service {
            child,
            http,
            syslog,
        };
        service.wait_healthy();
        service
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    fn wait_healthy(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if std::net::TcpStream::connect(&self.http).is_ok()
                && std::net::TcpStream::connect(&self.syslog).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("service on {} did not start", self.http);
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
