//! Decoding throughput per decoder kind, one line at a time as the pipeline calls it:
//! key=value (FortiGate), regex (sshd) and JSON records. The normalised view starts empty so
//! the figure is the decoder's own cost (recognition, extraction, mapping). The binary's
//! allocator (mimalloc) is used: most of a key=value line's cost is allocation.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use garrison_decoders::{record_of_line, DecoderSet};
use serde_json::Map;

fn samples(set: &DecoderSet, name: &str) -> Vec<garrison_ingest::Record> {
    set.get(name)
        .map(|d| {
            d.spec()
                .tests
                .iter()
                .filter_map(|t| match (&t.line, &t.record) {
                    (Some(l), _) => Some(record_of_line(l)),
                    (None, Some(serde_json::Value::Object(r))) => {
                        Some(garrison_ingest::Record::from_fields(r.clone()))
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn decode(c: &mut Criterion) {
    let set = DecoderSet::builtin().expect("shipped decoders load");
    let mut group = c.benchmark_group("decode");
    for name in [
        "linux-sshd",
        "fortigate",
        "nginx-access",
        "pan-os-traffic",
        "suricata-eve",
        "aws-cloudtrail",
    ] {
        let records = samples(&set, name);
        if records.is_empty() {
            continue;
        }
        group.throughput(Throughput::Elements(records.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                for r in &records {
                    let mut normalized = Map::new();
                    std::hint::black_box(set.apply(&r.fields, r.raw.as_deref(), &mut normalized));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
