//! `analyze` throughput on a generated log: mostly ordinary traffic with attacks mixed in.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use garrison_web::{analyze, Options};

fn log(lines: usize) -> String {
    let mut out = String::with_capacity(lines * 180);
    for i in 0..lines {
        let target = match i % 50 {
            0 => "/item.php?id=1%27%20UNION%20SELECT%20user,pass%20FROM%20users--".to_string(),
            1 => "/download?f=../../../../etc/passwd".to_string(),
            _ => format!("/products/{}?page={}", i % 400, i % 7),
        };
        out.push_str(&format!(
            "198.51.100.{} - - [07/Dec/2026:10:{:02}:{:02} +0000] \"GET {target} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"\n",
            i % 250,
            (i / 60) % 60,
            i % 60,
            1000 + i % 300
        ));
    }
    out
}

fn bench(c: &mut Criterion) {
    let text = log(200_000);
    let inputs = vec![("access.log".to_string(), text)];
    let mut group = c.benchmark_group("web");
    group.sample_size(10);
    group.throughput(Throughput::Elements(200_000));
    group.bench_function("analyze_200k_lines", |b| {
        b.iter(|| analyze(&inputs, &Options::default(), &|_| {}, &|_| None))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
