//! Real data: OTRF Security-Datasets (Mordor) Windows exports, zipped JSON lines.

use garrison_ingest::normalize::{FieldMapping, Normalizer};
use garrison_ingest::{decode_json, Limits};
use std::io::Read;
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    match std::env::var_os("GARRISON_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    }
}

fn unzip_first(path: &std::path::Path) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    let mut archive = zip::ZipArchive::new(file).ok()?;
    let mut entry = archive.by_index(0).ok()?;
    let mut data = Vec::new();
    entry.read_to_end(&mut data).ok()?;
    Some(data)
}

#[test]
fn otrf_windows_exports_decode_without_errors() {
    let dir = corpus_dir().join("otrf-atomic-windows");
    let files = [
        "credential_access/cmd_lsass_memory_dumpert_syscalls.zip",
        "credential_access/psh_lsass_memory_dump_comsvcs.zip",
    ];
    if !dir.is_dir() {
        eprintln!(
            "skipping: corpus not found at {} (set GARRISON_CORPUS)",
            dir.display()
        );
        return;
    }
    let normalizer = Normalizer::new(&FieldMapping::builtin());
    for name in files {
        let path = dir.join(name);
        let Some(data) = unzip_first(&path) else {
            eprintln!("skipping {}: missing or not a readable zip", path.display());
            continue;
        };
        let decoded = decode_json(&data, &Limits::default()).expect("body decodes");
        assert!(
            decoded.errors.is_empty(),
            "{name}: {:?}",
            decoded.errors.first()
        );
        assert!(
            decoded.records.len() > 100,
            "{name}: only {} records",
            decoded.records.len()
        );
        assert_eq!(decoded.total, decoded.records.len());
        for (i, record) in decoded.records.iter().enumerate() {
            assert!(record.time.is_some(), "{name}: record {i} has no time");
            let norm = normalizer.normalize(&record.fields);
            // Every Windows event in these exports names its host and event code.
            assert!(
                norm.contains_key("host.name"),
                "{name}: record {i}: {norm:?}"
            );
            assert!(
                norm.contains_key("event.code"),
                "{name}: record {i}: {norm:?}"
            );
        }
        // Sysmon process creation events carry the process fields.
        let sysmon_1 = decoded
            .records
            .iter()
            .filter(|r| {
                r.fields.get("EventID") == Some(&serde_json::json!(1))
                    && r.fields.get("SourceName")
                        == Some(&serde_json::json!("Microsoft-Windows-Sysmon"))
            })
            .map(|r| normalizer.normalize(&r.fields))
            .collect::<Vec<_>>();
        for norm in &sysmon_1 {
            assert!(norm.contains_key("process.executable"), "{norm:?}");
            assert!(norm.contains_key("process.command_line"), "{norm:?}");
            assert!(
                norm.get("process.pid").is_some_and(|v| v.is_i64()),
                "{norm:?}"
            );
        }
        eprintln!(
            "{name}: {} records, {} sysmon process creations",
            decoded.records.len(),
            sysmon_1.len()
        );
    }
}

/// Decode + normalize throughput on real events. Run in release:
/// `cargo test -p garrison-ingest --release --test integration -- --ignored throughput --nocapture`
#[test]
#[ignore = "benchmark; run in release"]
fn throughput_on_otrf_events() {
    let path = corpus_dir().join("otrf-atomic-windows/collection/msf_record_mic.zip");
    let Some(data) = unzip_first(&path) else {
        eprintln!("skipping: {} not found", path.display());
        return;
    };
    let limits = Limits {
        max_body_bytes: usize::MAX,
        ..Limits::default()
    };
    let normalizer = Normalizer::new(&FieldMapping::builtin());
    // Bodies of ~1000 events, as a shipper batches them.
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let bodies: Vec<Vec<u8>> = lines.chunks(1000).map(|c| c.join(&b'\n')).collect();
    let start = std::time::Instant::now();
    let (mut events, mut fields) = (0usize, 0usize);
    for body in &bodies {
        let decoded = decode_json(body, &limits).expect("decodes");
        for r in &decoded.records {
            fields += normalizer.normalize(&r.fields).len();
        }
        events += decoded.records.len();
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{events} events ({:.0} bytes avg, {fields} normalized fields) in {secs:.3}s: {:.0} events/s on one core, {:.0} MB/s",
        data.len() as f64 / events as f64,
        events as f64 / secs,
        data.len() as f64 / secs / 1e6
    );
    let start = std::time::Instant::now();
    for body in &bodies {
        let decoded = decode_json(body, &limits).expect("decodes");
        std::hint::black_box(decoded);
    }
    let decode_secs = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    for line in &lines {
        let v: serde_json::Value = serde_json::from_slice(line).expect("parses");
        std::hint::black_box(v);
    }
    let serde_secs = start.elapsed().as_secs_f64();
    eprintln!(
        "decode_json alone {decode_secs:.3}s vs serde_json::from_slice per line {serde_secs:.3}s"
    );
}
