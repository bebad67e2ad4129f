//! Acknowledged data survives `kill -9`, and retried batches are stored once.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;

fn batch_body(batch: usize) -> String {
    (0..250)
        .map(|i| {
            format!(
                "{{\"id\":\"h-{batch}-{i}\",\"batch\":{batch},\"msg\":\"durability probe {batch} {i}\",\"pad\":\"{}\"}}\n",
                "x".repeat(200)
            )
        })
        .collect()
}

async fn send_until_acked(client: &reqwest::Client, service: &Service, token: &str, body: &str) {
    loop {
        let response = client
            .post(service.url("/api/v1/ingest/events"))
            .bearer_auth(token)
            .body(body.to_string())
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => return,
            Ok(r) if r.status().as_u16() == 503 => {}
            Ok(r) => panic!("ingest answered {}", r.status()),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Streams numbered syslog lines over TCP, reconnecting after each crash.
fn syslog_streamer(addr: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut seq = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let Ok(mut stream) = std::net::TcpStream::connect(&addr) else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            while !stop.load(Ordering::Relaxed) {
                let line =
                    format!("<13>1 2026-11-25T10:00:00Z probe-host app - - - syslog-seq={seq}\n");
                if stream.write_all(line.as_bytes()).is_err() {
                    break;
                }
                seq += 1;
                if seq.is_multiple_of(50) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        seq
    })
}

fn syslog_seqs(events: &[serde_json::Value]) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| e["fields"]["message"].as_str())
        .filter_map(|m| m.rsplit("syslog-seq=").next())
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_9_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "probe"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let (http_port, syslog_port) = (free_port(), free_port());
    let mut service = Service::start_with(dir.path(), http_port, syslog_port, &[]);
    let client = client();

    let stop = Arc::new(AtomicBool::new(false));
    let streamer = syslog_streamer(service.syslog.clone(), stop.clone());

    let mut acked_batches = Vec::new();
    let mut confirmed_syslog: HashSet<usize> = HashSet::new();
    for batch in 0..24 {
        let body = batch_body(batch);
        if batch == 8 || batch == 16 {
            // Kill while this batch is in flight; its fate is unknown, so it is retried.
            let in_flight = {
                let (client, url, token, body) = (
                    client.clone(),
                    service.url("/api/v1/ingest/events"),
                    ingest.clone(),
                    body.clone(),
                );
                tokio::spawn(
                    async move { client.post(url).bearer_auth(token).body(body).send().await },
                )
            };
            // Everything syslog had stored so far must survive the crash.
            wait_indexed(&service).await;
            confirmed_syslog.extend(syslog_seqs(&all_events(&service, &admin, "syslog").await));
            tokio::time::sleep(Duration::from_millis(3 + batch as u64)).await;
            service.kill9();
            let _ = in_flight.await;
            service = Service::start_with(dir.path(), http_port, syslog_port, &[]);
        }
        send_until_acked(&client, &service, &ingest, &body).await;
        acked_batches.push(batch);
    }
    stop.store(true, Ordering::Relaxed);
    let sent_syslog = streamer.join().expect("streamer");
    // Let the last syslog lines reach the log before checking.
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_indexed(&service).await;

    let stored = all_events(&service, &admin, "probe").await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for event in &stored {
        let id = event["fields"]["id"].as_str().expect("id kept").to_string();
        *counts.entry(id).or_default() += 1;
    }
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "stored more than once: {duplicates:?}"
    );
    for batch in &acked_batches {
        for i in 0..250 {
            let id = format!("h-{batch}-{i}");
            assert_eq!(counts.get(&id), Some(&1), "acknowledged event {id} missing");
        }
    }
    assert_eq!(stored.len(), acked_batches.len() * 250);

    let syslog = syslog_seqs(&all_events(&service, &admin, "syslog").await);
    let unique: HashSet<usize> = syslog.iter().copied().collect();
    assert_eq!(unique.len(), syslog.len(), "a syslog line was stored twice");
    let lost: Vec<_> = confirmed_syslog.difference(&unique).collect();
    assert!(
        lost.is_empty(),
        "syslog lines stored before a crash were lost: {lost:?}"
    );
    assert!(
        unique.len() > 100,
        "syslog stream stored only {} of {sent_syslog} lines",
        unique.len()
    );
}
