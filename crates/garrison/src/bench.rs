//! `garrison bench ...`: whole-pipeline measurements against the real service.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ingest throughput, ack latency and memory of `garrison serve`.
    ///
    /// Starts the service on a temporary data directory (or targets --url), sends NDJSON
    /// batches over HTTP (or lines over TCP syslog), and prints events/s, ack latency p50/p99,
    /// the service's peak RSS, and bytes on disk per event once indexing caught up.
    Ingest(IngestBench),
    /// Sigma hunting throughput over files: events/s, events per CPU-second, peak RSS, rule
    /// compile time (default: the corpus's EVTX samples with SigmaHQ's 2,407 Windows rules).
    Hunt(crate::hunt::HuntBench),
    /// Ingest → detect → alert: the service with SigmaHQ's Windows rules enabled (2,407),
    /// events sent at a rate; prints end-to-end events/s, detection lag p50/p99, alerts.
    Pipeline(PipelineBench),
    /// The playbook engine over the store: runs/s of a 10-step `core.*` playbook, overhead
    /// per step, and memory with 10,000 runs waiting on timers or approvals.
    Playbook(crate::bench_playbook::PlaybookBench),
}

#[derive(Debug, clap::Args)]
pub struct PipelineBench {
    /// Events to send.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Send at this many events per second (0: as fast as the service takes them).
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Events per HTTP request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Rule folder or zip (default: the corpus's sigma/rules/windows).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Folder of the OTRF zips (default: the corpus's otrf-atomic-windows).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Folder of EVTX files for the reduction pass (default: the corpus's evtx-attack-samples).
    #[arg(long)]
    evtx: Option<PathBuf>,
    /// Skip the second pass, which replays the whole EVTX and OTRF corpus through `garrison
    /// ingest` into a fresh service and reports the alert → incident reduction.
    #[arg(long)]
    no_reduction: bool,
}

#[derive(Debug, clap::Args)]
pub struct IngestBench {
    /// Protocol: http (NDJSON batches to /api/v1/ingest/events) or syslog-tcp.
    #[arg(long, default_value = "http", value_parser = ["http", "syslog-tcp"])]
    protocol: String,
    /// Events to send.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Events per HTTP request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Requests (or TCP connections) in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Send at most this many events per second (for latency at a given load).
    #[arg(long)]
    rate: Option<u64>,
    /// Use generated events instead of the OTRF corpus.
    #[arg(long)]
    generated: bool,
    /// Folder of the OTRF zips (default: $GARRISON_CORPUS/otrf-atomic-windows or ../shared/corpus/...).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Target a running service instead of starting one.
    #[arg(long, requires = "token")]
    url: Option<String>,
    /// Ingest token for --url.
    #[arg(long)]
    token: Option<String>,
}

pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest(args).await,
        // Hunting is blocking, CPU-bound work: off the async runtime.
        BenchCommand::Hunt(args) => {
            tokio::task::spawn_blocking(move || crate::hunt::bench(args)).await?
        }
        BenchCommand::Pipeline(args) => pipeline(args).await,
        BenchCommand::Playbook(args) => crate::bench_playbook::bench(args).await,
    }
}

/// The shared test corpus: `$GARRISON_CORPUS`, else `../shared/corpus` from the project root.
pub fn corpus_root() -> PathBuf {
    std::env::var_os("GARRISON_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/corpus"))
}

fn corpus_dir(explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(dir) => dir.to_path_buf(),
        None => corpus_root().join("otrf-atomic-windows"),
    }
}

/// Loads up to `limit` JSON lines from the OTRF zips (unzipped in memory).
fn load_corpus(dir: &Path, limit: usize) -> Result<Vec<String>> {
    let mut zips: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder)
            .with_context(|| format!("cannot read {}", folder.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "zip") {
                zips.push(path);
            }
        }
    }
    zips.sort();
    let mut lines = Vec::new();
    for zip_path in zips {
        let file = std::fs::File::open(&zip_path)?;
        let Ok(mut archive) = zip::ZipArchive::new(file) else {
            continue;
        };
        for i in 0..archive.len() {
            let Ok(mut entry) = archive.by_index(i) else {
                continue;
            };
            if !entry.is_file() {
                continue;
            }
            let mut text = String::new();
            if entry.read_to_string(&mut text).is_err() {
                continue;
            }
            for line in text.lines() {
                let line = line.trim();
                if line.starts_with('{') {
                    lines.push(line.to_string());
                    if lines.len() >= limit {
                        return Ok(lines);
                    }
                }
            }
        }
    }
    Ok(lines)
}

fn generated_event(i: usize) -> String {
    serde_json::json!({
        "@timestamp": format!("2026-11-25T10:{:02}:{:02}.{:03}Z", (i / 60) % 60, i % 60, i % 1000),
        "EventID": 4688 + (i % 7),
        "Channel": "Security",
        "Hostname": format!("host-{}", i % 50),
        "SubjectUserName": format!("user{}", i % 200),
        "NewProcessName": "C:\\Windows\\System32\\cmd.exe",
        "CommandLine": format!("cmd.exe /c echo benchmark event number {i} with some padding text to look real"),
        "ParentProcessName": "C:\\Windows\\explorer.exe",
        "ProcessId": format!("0x{:x}", 1000 + i % 5000),
    })
    .to_string()
}

struct Child {
    process: tokio::process::Child,
    pid: u32,
    data_dir: tempfile::TempDir,
    url: String,
    syslog: String,
}

fn free_port() -> Result<u16> {
    let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(socket.local_addr()?.port())
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => stack.push(path),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    total
}

async fn start_service() -> Result<(Child, String, String)> {
    let data_dir = tempfile::Builder::new()
        .prefix("garrison-bench")
        .tempdir()?;
    let exe = std::env::current_exe()?;
    let dir_arg = data_dir.path().to_string_lossy().to_string();
    // Tokens first, straight on the store, before the service opens it.
    let token = |args: &[&str]| -> Result<String> {
        let output = std::process::Command::new(&exe)
            .args(["--data-dir", &dir_arg, "token", "create"])
            .args(args)
            .env("GARRISON_LOG", "warn")
            .output()?;
        if !output.status.success() {
            bail!(
                "token create failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8(output.stdout)?.trim().to_string())
    };
    let ingest_token = token(&["--ingest", "--source", "bench"])?;
    let api_token = token(&["--role", "admin"])?;
    let http = format!("127.0.0.1:{}", free_port()?);
    let syslog = format!("127.0.0.1:{}", free_port()?);
    let process = tokio::process::Command::new(&exe)
        .args(["--data-dir", &dir_arg, "serve"])
        .env("GARRISON_HTTP_ADDR", &http)
        .env("GARRISON_SYSLOG_ADDR", &syslog)
        .env("GARRISON_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start garrison serve")?;
    let pid = process.id().context("service exited at once")?;
    let url = format!("http://{http}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if client.get(format!("{url}/healthz")).send().await.is_ok() {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the service did not come up within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((
        Child {
            process,
            pid,
            data_dir,
            url,
            syslog,
        },
        ingest_token,
        api_token,
    ))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} events {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

async fn ingest(args: IngestBench) -> Result<()> {
    let lines: Vec<String> = if args.generated {
        (0..args.events.min(100_000)).map(generated_event).collect()
    } else {
        let dir = corpus_dir(args.corpus.as_deref());
        if !dir.exists() {
            bail!(
                "corpus folder {} not found; pass --corpus DIR, set GARRISON_CORPUS, or use --generated",
                dir.display()
            );
        }
        load_corpus(&dir, args.events)?
    };
    if lines.is_empty() {
        bail!("no events to send");
    }
    let mean_bytes = lines.iter().map(String::len).sum::<usize>() / lines.len();
    eprintln!(
        "bench ingest: {} events over {} ({} distinct, mean {} bytes), batch {}, concurrency {}{}",
        args.events,
        args.protocol,
        lines.len(),
        mean_bytes,
        args.batch,
        args.concurrency,
        args.rate
            .map(|r| format!(", rate {r}/s"))
            .unwrap_or_default()
    );

    let (child, ingest_token, api_token, url) = match (&args.url, &args.token) {
        (Some(url), Some(token)) => (None, token.clone(), String::new(), url.clone()),
        _ => {
            let (child, ingest, api) = start_service().await?;
            let url = child.url.clone();
            (Some(child), ingest, api, url)
        }
    };

    let started = Instant::now();
    let latencies = if args.protocol == "http" {
        send_http(&args, &lines, &url, &ingest_token).await?
    } else {
        let syslog = child
            .as_ref()
            .map(|c| c.syslog.clone())
            .context("syslog-tcp needs the bench to start the service (no --url)")?;
        send_syslog(&args, &lines, &syslog).await?;
        Vec::new()
    };
    let mut sent_elapsed = started.elapsed();
    if args.protocol != "http" {
        // Syslog has no ack: count until the service has accepted everything.
        wait_accepted(&url, &api_token, "syslog_tcp", args.events as u64).await?;
        sent_elapsed = started.elapsed();
    }
    let rate = args.events as f64 / sent_elapsed.as_secs_f64();
    let mut sorted = latencies.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    println!("events:           {}", args.events);
    println!("elapsed:          {:.2} s", sent_elapsed.as_secs_f64());
    println!("throughput:       {rate:.0} events/s (acknowledged durable)");
    if !sorted.is_empty() {
        println!(
            "ack latency:      p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests)",
            percentile(&sorted, 50.0),
            percentile(&sorted, 99.0),
            percentile(&sorted, 100.0),
            sorted.len()
        );
    }
    if let Some(mut child) = child {
        let client = reqwest::Client::new();
        let index_started = Instant::now();
        loop {
            let ready: serde_json::Value = client
                .get(format!("{}/readyz", child.url))
                .send()
                .await?
                .json()
                .await?;
            if ready["index_backlog_bytes"].as_u64() == Some(0) {
                break;
            }
            if index_started.elapsed() > Duration::from_secs(1800) {
                bail!("indexing did not catch up within 30 min");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let total_index = started.elapsed().as_secs_f64();
        println!(
            "indexed:          all in {:.2} s from start ({:.0} events/s into the store with full-text index)",
            total_index,
            args.events as f64 / total_index
        );
        let stored: serde_json::Value = client
            .get(format!("{}/api/v1/events?limit=1", child.url))
            .bearer_auth(&api_token)
            .send()
            .await?
            .json()
            .await?;
        if stored["events"].as_array().is_none_or(|e| e.is_empty()) {
            bail!("no events found after the run");
        }
        if let Some(kib) = peak_rss_kib(child.pid) {
            println!("service peak RSS: {:.1} MiB", kib as f64 / 1024.0);
        }
        // Let the log cleanup drop indexed segments and SQLite checkpoint, then measure.
        tokio::time::sleep(Duration::from_secs(11)).await;
        let bytes = dir_bytes(child.data_dir.path());
        println!(
            "disk:             {:.1} MiB in all, {:.0} bytes per event (raw mean {} bytes)",
            bytes as f64 / 1048576.0,
            bytes as f64 / args.events as f64,
            mean_bytes
        );
        let _ = child.process.start_kill();
        let _ = child.process.wait().await;
    }
    Ok(())
}

/// One request of `bench ingest`.
struct Batch {
    body: bytes::Bytes,
    events: usize,
    /// Events in the batches before this one (when it is due at a given rate).
    sent_before: usize,
}

async fn send_http(
    args: &IngestBench,
    lines: &[String],
    url: &str,
    token: &str,
) -> Result<Vec<f64>> {
    // One pass builds every request body with its size and the events sent before it; bodies
    // are `Bytes`, so each attempt hands reqwest the same buffer instead of a copy.
    let mut batches: Vec<Batch> = Vec::new();
    let (mut sent, mut cursor) = (0usize, 0usize);
    while sent < args.events {
        let events = args.batch.min(args.events - sent);
        let mut body = String::with_capacity(events * 3000);
        for _ in 0..events {
            body.push_str(&lines[cursor % lines.len()]);
            body.push('\n');
            cursor += 1;
        }
        batches.push(Batch {
            body: bytes::Bytes::from(body),
            events,
            sent_before: sent,
        });
        sent += events;
    }
    let progress = bar(args.events as u64);
    let client = reqwest::Client::new();
    let next = Arc::new(Mutex::new(0usize));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(batches.len())));
    let batches = Arc::new(batches);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, next, latencies, batches, progress) = (
            client.clone(),
            next.clone(),
            latencies.clone(),
            batches.clone(),
            progress.clone(),
        );
        let endpoint = format!("{url}/api/v1/ingest/events");
        let token = token.to_string();
        let rate = args.rate;
        workers.push(tokio::spawn(async move {
            loop {
                let batch = {
                    let mut next = next.lock().await;
                    let Some(batch) = batches.get(*next) else {
                        return Ok::<(), anyhow::Error>(());
                    };
                    *next += 1;
                    batch
                };
                if let Some(rate) = rate {
                    // Pace: batch i may start once i's events are due at the target rate.
                    let due = Duration::from_secs_f64(batch.sent_before as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                loop {
                    let begun = Instant::now();
                    let response = client
                        .post(&endpoint)
                        .bearer_auth(&token)
                        .header("content-type", "application/x-ndjson")
                        .body(batch.body.clone())
                        .send()
                        .await?;
                    let status = response.status();
                    let _ = response.bytes().await?;
                    if status.as_u16() == 503 {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    if !status.is_success() {
                        bail!("ingest answered {status}");
                    }
                    latencies
                        .lock()
                        .await
                        .push(begun.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                progress.inc(batch.events as u64);
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    progress.finish_and_clear();
    let latencies = latencies.lock().await.clone();
    Ok(latencies)
}

async fn send_syslog(args: &IngestBench, lines: &[String], addr: &str) -> Result<()> {
    let connections = args.concurrency.max(1);
    let per_connection = args.events.div_ceil(connections);
    let progress = bar(args.events as u64);
    let mut workers = Vec::new();
    for c in 0..connections {
        let count = per_connection.min(args.events.saturating_sub(c * per_connection));
        let addr = addr.to_string();
        let progress = progress.clone();
        // Syslog lines carry a short message, as firewalls and servers send them.
        let messages: Vec<String> = lines
            .iter()
            .take(1000)
            .map(|l| l.chars().filter(|ch| *ch != '\n').take(240).collect())
            .collect();
        workers.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&addr).await?;
            let mut buffer = Vec::with_capacity(1 << 20);
            for i in 0..count {
                let message = &messages[i % messages.len()];
                buffer.extend_from_slice(
                    format!("<134>1 2026-11-25T10:00:00.000Z host{c} bench {i} ID47 - {message}\n")
                        .as_bytes(),
                );
                if buffer.len() > (1 << 20) - 512 {
                    stream.write_all(&buffer).await?;
                    buffer.clear();
                }
                if i % 1000 == 999 {
                    progress.inc(1000);
                }
            }
            stream.write_all(&buffer).await?;
            stream.shutdown().await?;
            Ok::<(), anyhow::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    progress.finish_and_clear();
    Ok(())
}

async fn wait_accepted(url: &str, token: &str, protocol: &str, expected: u64) -> Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let needle = format!("garrison_events_accepted_total{{protocol=\"{protocol}\"}}");
    loop {
        let text = client
            .get(format!("{url}/metrics"))
            .bearer_auth(token)
            .send()
            .await?
            .text()
            .await?;
        let accepted: u64 = text
            .lines()
            .find(|l| l.starts_with(&needle))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or(0);
        if accepted >= expected {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {accepted} of {expected} syslog lines accepted after 10 min");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The upper bound of the `q` quantile of a Prometheus histogram in `metrics` (from its
/// buckets), and its count.
fn histogram_quantile(metrics: &str, name: &str, q: f64) -> Option<(f64, u64)> {
    let count: f64 = metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name}_count")))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())?;
    let prefix = format!("{name}_bucket{{le=\"");
    for line in metrics.lines().filter(|l| l.starts_with(&prefix)) {
        let rest = &line[prefix.len()..];
        let (le, value) = rest.split_once("\"}")?;
        let cumulative: f64 = value.trim().parse().ok()?;
        if cumulative >= q * count {
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            return Some((bound, count as u64));
        }
    }
    None
}

/// A counter's total over all its label sets.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.split_whitespace().last())
        .filter_map(|v| v.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn pipeline(args: PipelineBench) -> Result<()> {
    let rules = args
        .rules
        .clone()
        .unwrap_or_else(|| corpus_root().join("sigma/rules/windows"));
    let dir = corpus_dir(args.corpus.as_deref());
    for path in [&rules, &dir] {
        if !path.exists() {
            bail!(
                "{} not found (set GARRISON_CORPUS or pass --rules/--corpus)",
                path.display()
            );
        }
    }
    let lines = load_corpus(&dir, args.events)?;
    if lines.is_empty() {
        bail!("no events in {}", dir.display());
    }
    let (mut child, ingest_token, api_token) = start_service().await?;
    // Rules straight on the store while the service runs; the detector picks them up.
    let imported = import_rules(&child, &rules)?;
    eprintln!(
        "bench pipeline: {} events ({} distinct OTRF records), rate {}, rules: {}",
        args.events,
        lines.len(),
        if args.rate == 0 {
            "unlimited".to_string()
        } else {
            format!("{}/s", args.rate)
        },
        imported
    );
    let client = reqwest::Client::new();
    // Let the detector compile the rules before the clock starts: a tiny first batch.
    let warmup = format!("{}\n", lines[0]);
    client
        .post(format!("{}/api/v1/ingest/events", child.url))
        .bearer_auth(&ingest_token)
        .body(warmup)
        .send()
        .await?;
    wait_detected(&client, &child.url, Duration::from_secs(120)).await?;
    let metrics_before = scrape(&client, &child.url, &api_token).await?;
    let ingest = IngestBench {
        protocol: "http".into(),
        events: args.events,
        batch: args.batch,
        concurrency: args.concurrency,
        rate: (args.rate > 0).then_some(args.rate),
        generated: false,
        corpus: None,
        url: None,
        token: None,
    };
    let started = Instant::now();
    send_http(&ingest, &lines, &child.url, &ingest_token).await?;
    let sent = started.elapsed();
    wait_detected(&client, &child.url, Duration::from_secs(1800)).await?;
    let detected = started.elapsed();
    let metrics = scrape(&client, &child.url, &api_token).await?;
    let events = args.events as f64;
    println!("events:           {}", args.events);
    println!(
        "sent:             {:.2} s ({:.0} events/s acknowledged)",
        sent.as_secs_f64(),
        events / sent.as_secs_f64()
    );
    println!(
        "detected:         all in {:.2} s from start ({:.0} events/s ingest → detect → alert)",
        detected.as_secs_f64(),
        events / detected.as_secs_f64()
    );
    for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
        if let Some((bound, count)) =
            histogram_quantile(&metrics, "garrison_detection_lag_seconds", q)
        {
            println!("detection lag {label}: <= {bound} s (histogram bound, {count} events)");
        }
    }
    let hits = counter(&metrics, "garrison_alert_hits_total")
        - counter(&metrics_before, "garrison_alert_hits_total");
    let alerts = counter(&metrics, "garrison_alerts_created_total")
        - counter(&metrics_before, "garrison_alerts_created_total");
    println!("alerts:           {alerts} created, {hits} rule matches folded into them");
    if let Some(kib) = peak_rss_kib(child.pid) {
        println!("service peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
    let _ = child.process.start_kill();
    let _ = child.process.wait().await;
    if !args.no_reduction {
        let evtx = args
            .evtx
            .clone()
            .unwrap_or_else(|| corpus_root().join("evtx-attack-samples"));
        reduction(&rules, &[("evtx", &evtx), ("otrf", &dir)]).await?;
    }
    Ok(())
}

/// The second pass: every file of the corpus through `garrison ingest` into a fresh service,
/// and what detection and triage made of it (rule matches → alerts → incidents).
async fn reduction(rules: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    for (_, path) in inputs {
        if !path.exists() {
            bail!("{} not found (set GARRISON_CORPUS)", path.display());
        }
    }
    let (mut child, _ingest_token, api_token) = start_service().await?;
    let exe = std::env::current_exe()?;
    import_rules(&child, rules)?;
    eprintln!("bench pipeline: reduction pass over the whole corpus");
    let client = reqwest::Client::new();
    let started = Instant::now();
    for (source, path) in inputs {
        let status = tokio::process::Command::new(&exe)
            .arg("ingest")
            .arg(path)
            .args([
                "--source", source, "--url", &child.url, "--token", &api_token,
            ])
            .env("GARRISON_LOG", "warn")
            .status()
            .await?;
        if !status.success() {
            bail!("garrison ingest {} failed", path.display());
        }
    }
    let sent = started.elapsed();
    wait_detected(&client, &child.url, Duration::from_secs(1800)).await?;
    wait_triaged(&client, &child.url, Duration::from_secs(1800)).await?;
    let done = started.elapsed();
    let metrics = scrape(&client, &child.url, &api_token).await?;
    let soc: serde_json::Value = client
        .get(format!("{}/api/v1/metrics/soc?from=0", child.url))
        .bearer_auth(&api_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let events = counter(&metrics, "garrison_events_accepted_total");
    let hits = counter(&metrics, "garrison_alert_hits_total");
    let alerts = soc["alerts"].as_u64().unwrap_or(0);
    let suppressed = soc["suppressed_alerts"].as_u64().unwrap_or(0);
    let incidents = soc["incidents"].as_u64().unwrap_or(0);
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            "-".to_string()
        } else {
            format!("{:.1} : 1", a as f64 / b as f64)
        }
    };
    println!(
        "reduction pass:   {} s to ingest, detect and triage ({:.2} s to send)",
        done.as_secs(),
        sent.as_secs_f64()
    );
    println!("  events:         {events}");
    println!("  rule matches:   {hits}");
    println!(
        "  alerts:         {alerts} ({} rule matches per alert; {suppressed} suppressed)",
        ratio(hits, alerts)
    );
    println!(
        "  incidents:      {incidents} ({} alerts per incident)",
        ratio(alerts.saturating_sub(suppressed), incidents)
    );
    if let Some(r) = soc["reduction_ratio"].as_f64() {
        println!(
            "  reduction:      {:.1}% fewer incidents than alerts; {} events per incident",
            100.0 * r,
            ratio(events, incidents)
        );
    }
    let _ = child.process.start_kill();
    let _ = child.process.wait().await;
    Ok(())
}

/// Imports and enables the rules straight on the service's store (the detector picks them
/// up while it runs); returns the import's summary line.
fn import_rules(child: &Child, rules: &Path) -> Result<String> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["--data-dir", &child.data_dir.path().to_string_lossy()])
        .args(["rules", "import", &rules.to_string_lossy(), "--enable"])
        .env("GARRISON_LOG", "warn")
        .output()?;
    if !output.status.success() {
        bail!(
            "rules import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The service's Prometheus text.
async fn scrape(client: &reqwest::Client, url: &str, token: &str) -> Result<String> {
    Ok(client
        .get(format!("{url}/metrics"))
        .bearer_auth(token)
        .send()
        .await?
        .text()
        .await?)
}

async fn wait_detected(client: &reqwest::Client, url: &str, limit: Duration) -> Result<()> {
    wait_ready(client, url, limit, "detection", |ready| {
        let committed = ready["log_committed"].as_u64();
        committed.is_some() && ready["log_detected"].as_u64() == committed
    })
    .await
}

/// Waits until automatic triage has handled every alert.
async fn wait_triaged(client: &reqwest::Client, url: &str, limit: Duration) -> Result<()> {
    wait_ready(client, url, limit, "triage", |ready| {
        let created = ready["alerts_created"].as_i64();
        created.is_some() && ready["alerts_triaged"].as_i64() == created
    })
    .await
}

/// Polls `/readyz` until `done` holds for its answer.
async fn wait_ready(
    client: &reqwest::Client,
    url: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let ready: serde_json::Value = client
            .get(format!("{url}/readyz"))
            .send()
            .await?
            .json()
            .await?;
        if done(&ready) {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("{what} did not catch up within {} s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
