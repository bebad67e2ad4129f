//! Storage faults and hostile clients: a full disk is a state the service leaves by itself,
//! and idle or slow connections cannot starve a normal client.
//!
//! The disk-full scenario mounts a tmpfs, so it needs root; without it the test says so and
//! passes. `scripts/faults.sh` runs these with the sizes (20,000 connections).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::harness::*;

/// Unmounts the test's tmpfs however the test ends.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Result<Mounted, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let output = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    Ok(Mounted(dir.to_path_buf()))
}

/// Writes 1 MiB chunks into `path` until the file system refuses, then gives `leave` bytes
/// back; returns the bytes kept.
fn fill(path: &Path, leave: u64) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![7u8; 1024 * 1024];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    // A last partial block: the disk is now truly full.
    while let Ok(n) = file.write(&chunk[..512]) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    let kept = written.saturating_sub(leave);
    let _ = file.set_len(kept);
    let _ = file.sync_all();
    kept
}

#[derive(Default)]
struct Answers {
    acked: Vec<usize>,
    by_status: HashMap<u16, usize>,
}

fn batch(n: usize, events: usize) -> String {
    (0..events)
        .map(|i| {
            format!(
                "{{\"id\":\"d-{n}-{i}\",\"msg\":\"disk probe {n} {i}\",\"pad\":\"{}\"}}\n",
                "y".repeat(300)
            )
        })
        .collect()
}

async fn readyz(client: &reqwest::Client, service: &Service) -> (u16, serde_json::Value) {
    match client.get(service.url("/readyz")).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or_default())
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_state_the_service_leaves_by_itself() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let _mounted = match mount_tmpfs(&data, "48m") {
        Ok(mounted) => mounted,
        Err(reason) => {
            eprintln!(
                "skipped: cannot mount a tmpfs for the disk-full scenario ({reason}); run as root"
            );
            return;
        }
    };
    let ingest = cli(&data, &["token", "create", "--ingest", "--source", "probe"]);
    let admin = cli(&data, &["token", "create", "--role", "admin"]);
    let log = root.path().join("service.log");
    let mut service = Service::start_logging(
        &data,
        free_port(),
        free_port(),
        // A small watermark; the filler below takes the disk past it at once, as another
        // process would, so the log and the database both meet a really full disk.
        &[("GARRISON_MIN_FREE_DISK_BYTES", "4194304")],
        Some(&log),
    );
    let client = client();

    let stop = Arc::new(AtomicBool::new(false));
    // Flat out until the disk is freed (so the indexer has a backlog when it fills), then
    // at a steady pace.
    let flat_out = Arc::new(AtomicBool::new(true));
    let answers = Arc::new(Mutex::new(Answers::default()));
    let sender = {
        let (client, url, token) = (
            client.clone(),
            service.url("/api/v1/ingest/events"),
            ingest.clone(),
        );
        let (stop, answers, flat_out) = (stop.clone(), answers.clone(), flat_out.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .body(batch(n, 400))
                    .send()
                    .await;
                let status = response.map(|r| r.status().as_u16()).unwrap_or(0);
                {
                    let mut answers = answers.lock().expect("answers");
                    *answers.by_status.entry(status).or_default() += 1;
                    if status == 200 {
                        answers.acked.push(n);
                    }
                }
                n += 1;
                let pause = if flat_out.load(Ordering::Relaxed) {
                    5
                } else {
                    100
                };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    let filler = data.join("filler");
    let filled = tokio::task::spawn_blocking({
        let filler = filler.clone();
        move || fill(&filler, 0)
    })
    .await
    .expect("fill");
    eprintln!("disk filled with {} MiB", filled / (1024 * 1024));

    // Full: the service says so and refuses with 503, never 500.
    let started = Instant::now();
    let mut reported = None;
    while started.elapsed() < Duration::from_secs(10) {
        let (status, body) = readyz(&client, &service).await;
        if status == 503 && body["degraded"].as_array().is_some_and(|d| !d.is_empty()) {
            reported = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reported = reported.expect("/readyz reports the full disk");
    eprintln!("readyz while full: {}", reported["degraded"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let incident = client
        .post(service.url("/api/v1/incidents"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"title": "while the disk is full", "severity": "low"}))
        .send()
        .await
        .expect("incident");
    let while_full = incident.status().as_u16();
    assert!(
        while_full == 201 || while_full == 503,
        "an incident while the disk is full answers 201 or 503, not {while_full}"
    );
    if while_full == 503 {
        assert!(incident.headers().contains_key("retry-after"));
    }

    // Space returns: everything resumes within 10 s, without a restart.
    flat_out.store(false, Ordering::Relaxed);
    std::fs::remove_file(&filler).expect("free the disk");
    let freed = Instant::now();
    let mut recovered = None;
    while freed.elapsed() < Duration::from_secs(30) {
        let (status, body) = readyz(&client, &service).await;
        let committed = body["log_committed"].as_u64().unwrap_or(u64::MAX);
        if status == 200
            && body["log_indexed"].as_u64() >= Some(committed)
            && body["log_detected"].as_u64() >= Some(committed)
        {
            recovered = Some(freed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(recovered) = recovered else {
        let (_, body) = readyz(&client, &service).await;
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!(
            "indexing and detection did not resume after space returned: {body}\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    };
    eprintln!("ready, indexed and detected {recovered:?} after space returned");
    assert!(
        recovered < Duration::from_secs(10),
        "took {recovered:?} to resume"
    );
    // New data is taken again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    sender.await.expect("sender");
    wait_indexed(&service).await;

    let answers = std::mem::take(&mut *answers.lock().expect("answers"));
    eprintln!("ingest answers by status: {:?}", answers.by_status);
    assert_eq!(
        answers.by_status.get(&500),
        None,
        "no 500 during the fault: {:?}",
        answers.by_status
    );
    assert!(
        answers.by_status.get(&503).copied().unwrap_or(0) > 0,
        "the full disk was refused with 503: {:?}",
        answers.by_status
    );
    let stored = all_events(&service, &admin, "probe").await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for event in &stored {
        let id = event["fields"]["id"].as_str().expect("id").to_string();
        *counts.entry(id).or_default() += 1;
    }
    assert!(counts.values().all(|n| *n == 1), "an event stored twice");
    for n in &answers.acked {
        for i in 0..400 {
            let id = format!("d-{n}-{i}");
            assert_eq!(counts.get(&id), Some(&1), "acknowledged event {id} missing");
        }
    }
    assert_eq!(stored.len(), answers.acked.len() * 400);
    let last_acked = answers.acked.last().copied().unwrap_or(0);
    assert!(
        answers.acked.iter().any(|n| *n > 0) && last_acked > 0,
        "ingest accepted data again after recovery"
    );

    let incident = client
        .post(service.url("/api/v1/incidents"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"title": "after the disk was freed", "severity": "low"}))
        .send()
        .await
        .expect("incident");
    assert_eq!(incident.status().as_u16(), 201);

    // A stop completes in bounded time whatever happened before.
    let pid = service.child.id().to_string();
    let asked = Instant::now();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let mut exited = false;
    while asked.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = service.child.try_wait() {
            exited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("SIGTERM to exit: {:?}", asked.elapsed());
    assert!(exited, "the service did not exit within 30 s of SIGTERM");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    for line in log.lines().filter(|l| {
        ["failing", "recovered", "closed", "refusing"]
            .iter()
            .any(|w| l.contains(w))
    }) {
        eprintln!("service: {line}");
    }
    assert!(
        !log.contains("non-zero transaction depth"),
        "a connection was reused inside a failed transaction:\n{log}"
    );
}

#[tokio::test]
async fn below_the_free_space_watermark_ingest_is_refused_with_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "probe"],
    );
    let service = Service::start_with(
        dir.path(),
        free_port(),
        free_port(),
        // More than any disk has free.
        &[("GARRISON_MIN_FREE_DISK_BYTES", "1125899906842624")],
    );
    let client = client();
    let mut answer = None;
    for _ in 0..50 {
        let response = client
            .post(service.url("/api/v1/ingest/events"))
            .bearer_auth(&ingest)
            .body(batch(0, 1))
            .send()
            .await
            .expect("ingest");
        if response.status().as_u16() == 503 {
            answer = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = answer.expect("ingest refused below the watermark");
    assert_eq!(answer.headers()["retry-after"], "5");
    let problem: serde_json::Value = answer.json().await.expect("problem");
    assert_eq!(problem["code"], "unavailable");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("min_free_disk_bytes")),
        "{problem}"
    );
    let (status, readiness) = readyz(&client, &service).await;
    assert_eq!(status, 503);
    assert_eq!(readiness["accepting"], false);
    assert_eq!(readiness["degraded"][0]["component"], "disk");
}

/// Opens `n` TCP connections to `addr` from the source addresses 127.0.`subnet`.1 to
/// 127.0.`subnet`.`addresses` in turn, and keeps them until dropped.
async fn open_idle(
    addr: &str,
    n: usize,
    subnet: u8,
    addresses: usize,
) -> Vec<tokio::net::TcpStream> {
    let target: std::net::SocketAddr = addr.parse().expect("addr");
    let mut streams = Vec::with_capacity(n);
    for i in 0..n {
        let source = std::net::SocketAddr::from(([127, 0, subnet, (i % addresses) as u8 + 1], 0));
        // Out of descriptors (the test's own limit) ends the crowd where it is.
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
            break;
        };
        if socket.bind(source).is_err() {
            break;
        }
        match socket.connect(target).await {
            Ok(stream) => streams.push(stream),
            Err(_) => break,
        }
    }
    streams
}

/// More connections than one process may hold: a helper process (python3) holds each further
/// 8,000 and prints how many it opened. `None` when python3 is missing.
fn crowd_process(
    addr: &str,
    n: usize,
    subnet: u8,
    addresses: usize,
) -> Option<(std::process::Child, usize)> {
    use std::io::BufRead;
    let (host, port) = addr.rsplit_once(':')?;
    let script = format!(
        "import socket,sys,time\nheld=[]\nfor i in range({n}):\n    c=socket.socket()\n    try:\n        c.bind(('127.0.{subnet}.%d' % (i % {addresses} + 1), 0))\n        c.connect(('{host}', {port}))\n    except OSError:\n        break\n    held.append(c)\nprint(len(held), flush=True)\ntime.sleep(600)\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut()?)
        .read_line(&mut line)
        .ok()?;
    let opened = line.trim().parse().ok()?;
    Some((child, opened))
}

fn raise_own_fd_limit(wanted: u64) {
    // Root may raise the hard limit too; otherwise the soft one goes as far as allowed.
    // SAFETY: plain system calls on a local struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            let raised = libc::rlimit {
                rlim_cur: wanted.max(limit.rlim_cur),
                rlim_max: wanted.max(limit.rlim_max),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_do_not_starve_a_normal_client() {
    let idle: usize = std::env::var("GARRISON_FAULT_CONNECTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1500);
    raise_own_fd_limit(idle as u64 + 4096);
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "slow"],
    );
    let service = Service::start_with(
        dir.path(),
        free_port(),
        free_port(),
        &[
            ("GARRISON_MAX_CONNECTIONS", "1000"),
            ("GARRISON_MAX_CONNECTIONS_PER_ADDRESS", "50"),
            ("GARRISON_HEADER_TIMEOUT", "2s"),
            ("GARRISON_IDLE_TIMEOUT", "2s"),
            ("GARRISON_BODY_TIMEOUT", "1s"),
        ],
    );

    // A body that stops arriving is cut off with 408, on a JSON route and on ingest.
    for (path, head) in [
        (
            "/api/v1/auth/login",
            "content-type: application/json\r\n".to_string(),
        ),
        (
            "/api/v1/ingest/events",
            format!("authorization: Bearer {ingest}\r\n"),
        ),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&service.http)
            .await
            .expect("slow body");
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\n{head}content-length: 100\r\n\r\n{{\"username\":"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("partial body");
        let mut answer = vec![0u8; 2048];
        use tokio::io::AsyncReadExt;
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
            .await
            .expect("answered within the body timeout")
            .expect("read");
        let text = String::from_utf8_lossy(&answer[..n]);
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        assert!(text.contains("request_timeout"), "{path}: {text}");
    }

    // A normal client from its own address, measured while the crowd arrives.
    let answered = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let normal = {
        let (answered, failed, stop) = (answered.clone(), failed.clone(), stop.clone());
        let url = service.url("/api/v1/me");
        let admin = admin.clone();
        tokio::spawn(async move {
            let client = client_from([127, 0, 0, 2]);
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match client.get(&url).bearer_auth(&admin).send().await {
                    Ok(r) if r.status().is_success() => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        slowest = slowest.max(started.elapsed());
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            slowest
        })
    };

    // The crowd comes from four addresses: each keeps 50 connections, the rest are refused
    // at once; the normal client's address is not among them.
    let in_process = idle.min(8000);
    let crowd = open_idle(&service.http, in_process, 1, 4).await;
    let mut helpers = Vec::new();
    let mut held_elsewhere = 0;
    let mut left = idle - in_process;
    while left > 0 {
        let n = left.min(8000);
        left -= n;
        match crowd_process(&service.http, n, 3 + helpers.len() as u8, 4) {
            Some((child, opened)) => {
                held_elsewhere += opened;
                helpers.push(child);
            }
            None => {
                eprintln!("python3 missing: {n} of the crowd's connections not opened");
                break;
            }
        }
    }
    let mut syslog_crowd = open_idle(&service.syslog, 100, 2, 2).await;
    // Slow headers: a request line and one header, then nothing.
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(&service.http)
            .await
            .expect("slow");
        stream
            .write_all(b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("partial head");
        slow.push(stream);
    }
    eprintln!(
        "opened {} idle HTTP, {} idle syslog and {} slow-header connections",
        crowd.len() + held_elsewhere,
        syslog_crowd.len(),
        slow.len()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let metrics = client()
        .get(service.url("/metrics"))
        .bearer_auth(&admin)
        .header("x-forwarded-for", "ignored")
        .send()
        .await;
    // From 127.0.0.1 (not the crowd's addresses) the metrics answer too.
    let metrics = metrics.expect("metrics").text().await.expect("text");
    assert!(
        metrics.contains("garrison_connections_refused_total"),
        "refusals are counted"
    );

    // After the header and idle timeouts, the server has closed the crowd's connections.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut closed = 0;
    for stream in slow.iter_mut().chain(syslog_crowd.iter_mut().take(20)) {
        // The admitted ones are closed by the timeouts, the refused ones at once.
        let mut byte = [0u8; 256];
        use tokio::io::AsyncReadExt;
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte)).await {
            Ok(Ok(_)) | Ok(Err(_)) => closed += 1,
            Err(_) => {}
        }
    }
    assert_eq!(closed, 40, "slow-header and idle connections are closed");

    stop.store(true, Ordering::Relaxed);
    let slowest = normal.await.expect("normal client");
    let (ok, bad) = (
        answered.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("normal client: {ok} answered, {bad} failed, slowest {slowest:?}");
    assert!(ok > 10, "the normal client was served ({ok} answers)");
    assert_eq!(bad, 0, "the normal client was never refused");
    // Beyond its address's limit, the crowd was answered 503 and closed at once.
    let mut refused = 0;
    for stream in crowd.iter().rev().take(20) {
        let mut answer = [0u8; 64];
        if let Ok(n) = stream.try_read(&mut answer) {
            if answer[..n].starts_with(b"HTTP/1.1 503") {
                refused += 1;
            }
        }
    }
    assert!(
        crowd.len() < 200 + 20 || refused > 0,
        "connections past the per-address limit were refused with 503"
    );
    for mut helper in helpers {
        let _ = helper.kill();
        let _ = helper.wait();
    }
}
