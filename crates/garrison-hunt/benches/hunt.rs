//! Throughput of `hunt` over the EVTX corpus with SigmaHQ's Windows rules, and of reading alone.
//!
//! `cargo bench -p garrison-hunt`; skips (saying why) when the corpus is absent.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use garrison_hunt::{hunt, load_rules, read_file, HuntOptions, NoProgress};
use std::path::PathBuf;

fn corpus() -> Option<PathBuf> {
    let path = std::env::var_os("GARRISON_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
        });
    if path.join("evtx-attack-samples").is_dir() && path.join("sigma/rules/windows").is_dir() {
        Some(path)
    } else {
        eprintln!(
            "skipped: corpus not found at {} (set GARRISON_CORPUS)",
            path.display()
        );
        None
    }
}

fn bench(c: &mut Criterion) {
    let Some(corpus) = corpus() else {
        return;
    };
    let samples = corpus.join("evtx-attack-samples");
    let inputs = garrison_hunt::collect_inputs(std::slice::from_ref(&samples)).expect("inputs");
    let events = 8255;

    let mut g = c.benchmark_group("evtx-corpus");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events));
    g.bench_function("read", |b| {
        b.iter(|| {
            let n: u64 = inputs
                .files
                .iter()
                .map(|f| {
                    read_file(
                        &f.path,
                        &|evs: Vec<garrison_hunt::HuntEvent>| evs.len(),
                        &NoProgress,
                    )
                    .map(|(_, s)| s.events)
                    .unwrap_or(0)
                })
                .sum();
            assert_eq!(n, events);
        })
    });
    let loaded =
        load_rules(&[corpus.join("sigma/rules/windows")], &Default::default()).expect("rules");
    for threads in [1, 0] {
        let opts = HuntOptions {
            paths: vec![samples.clone()],
            threads,
            ..Default::default()
        };
        let name = if threads == 1 {
            "hunt-2407-rules-1-thread"
        } else {
            "hunt-2407-rules-all-cores"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = hunt(&opts, &loaded.set, &NoProgress).expect("hunt");
                assert_eq!(r.summary.events, events);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
