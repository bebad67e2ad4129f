//! Cost per event of live indicator matching: `cargo bench -p garrison-detect --bench intel`.
//!
//! 20,000 events with ECS network, DNS, URL and hash fields (about 1% carrying an indicator),
//! evaluated on one thread by [`garrison_detect::evaluate`] for a tenant with no indicators and
//! with 100,000 (60k IPs, 10k CIDRs, 20k domains, 10k SHA-256). Prints ns per event.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use garrison_detect::intel::TenantIntel;
use garrison_detect::{evaluate, DetectConfig};
use garrison_model::{LogSource, TenantId, Timestamp};
use garrison_store::{EventRow, StoredIndicator};
use serde_json::json;

fn rng(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn stored(kind: &str, value: String, id: i64) -> StoredIndicator {
    StoredIndicator {
        id,
        tenant_id: TenantId(1),
        kind: kind.into(),
        value,
        source: "bench".into(),
        confidence: 80,
        first_seen: None,
        expires: None,
        tags: Vec::new(),
        description: None,
        times_imported: 1,
        created: Timestamp::now(),
        updated: Timestamp::now(),
    }
}

fn main() {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut indicators = Vec::new();
    let mut ips = Vec::new();
    for i in 0..60_000 {
        let ip = Ipv4Addr::from((rng(&mut s) as u32) | 0x0100_0000).to_string();
        ips.push(ip.clone());
        indicators.push(stored("ip", ip, i));
    }
    for i in 0..10_000 {
        let ip = Ipv4Addr::from(rng(&mut s) as u32 & 0xffff_ff00);
        indicators.push(stored("cidr", format!("{ip}/24"), 60_000 + i));
    }
    for i in 0..20_000 {
        indicators.push(stored("domain", format!("bad{i}.example.net"), 70_000 + i));
    }
    for i in 0..10_000 {
        indicators.push(stored("sha256", format!("{:064x}", i + 1), 90_000 + i));
    }
    let started = Instant::now();
    let intel = TenantIntel::build(1, &indicators);
    println!(
        "built {} indicators in {:.0} ms",
        intel.len(),
        started.elapsed().as_secs_f64() * 1e3
    );

    let rows: Vec<EventRow> = (0..20_000)
        .map(|i| {
            let hit = i % 100 == 0;
            let dst = if hit {
                ips[i % ips.len()].clone()
            } else {
                Ipv4Addr::from(rng(&mut s) as u32).to_string()
            };
            let normalized = json!({
                "host.name": format!("ws{}", i % 50),
                "user.name": "ana",
                "source.ip": "10.1.2.3",
                "destination.ip": dst,
                "destination.port": "443",
                "dns.question.name": format!("host{i}.cdn.example.com"),
                "url.full": format!("https://www.example.org/path/{i}?q=1"),
                "file.hash.sha256": format!("{:064x}", rng(&mut s) | (1 << 63)),
                "process.name": "chrome.exe",
            });
            EventRow {
                id: format!("e{i}"),
                tenant_id: TenantId(1),
                time: Timestamp::now(),
                received: Timestamp::now(),
                source: "fw".into(),
                logsource: LogSource::default(),
                fields_json: json!({"msg": "connection"}).to_string(),
                normalized_json: normalized.to_string(),
                raw: None,
                search_text: String::new(),
            }
        })
        .collect();
    let config = DetectConfig::default();
    let empty = TenantIntel::build(1, &[]);
    for (name, set) in [("no indicators", empty), ("100k indicators", intel)] {
        let mut map = HashMap::new();
        map.insert(TenantId(1), Arc::new(set));
        let mut tenants = HashMap::new();
        let mut best = f64::MAX;
        let mut hits = 0;
        for _ in 0..5 {
            let started = Instant::now();
            let evaluated = black_box(evaluate(&rows, &mut tenants, &map, &config, 1));
            best = best.min(started.elapsed().as_secs_f64());
            hits = evaluated.hits.len();
        }
        println!(
            "{name}: {:.0} ns/event on one thread ({:.0} events/s), {hits} hits per {} events",
            best * 1e9 / rows.len() as f64,
            rows.len() as f64 / best,
            rows.len()
        );
    }
}
