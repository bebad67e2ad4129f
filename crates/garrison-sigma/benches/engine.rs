//! Engine benchmarks: compiling the SigmaHQ Windows rules and matching OTRF events (Winlogbeat-style
//! flat JSON) against them. Uses the shared corpus (`GARRISON_CORPUS` or `../shared/corpus` from the
//! workspace root); falls back to synthetic rules and events when it is absent.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use garrison_sigma::{load_rules, rule_sources_from_dir, LoadOptions, Match, RuleSource};
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

fn corpus() -> Option<PathBuf> {
    let p = match std::env::var_os("GARRISON_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    p.is_dir().then_some(p)
}

fn rules() -> Vec<RuleSource> {
    match corpus() {
        Some(c) => rule_sources_from_dir(&c.join("sigma/rules/windows")).unwrap(),
        None => {
            eprintln!("corpus absent: synthetic rules");
            (0..2000)
                .map(|i| {
                    RuleSource::new(
                        format!("r{i}.yml"),
                        format!(
                            "title: r{i}\nlogsource: {{product: windows, category: process_creation}}\ndetection:\n  sel:\n    CommandLine|contains: 'needle{i} '\n    Image|endswith: '\\tool{i}.exe'\n  condition: sel\n"
                        ),
                    )
                })
                .collect()
        }
    }
}

fn events() -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = corpus() {
        let dir = c.join("otrf-atomic-windows");
        let mut stack = vec![dir];
        let mut zips = Vec::new();
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "zip") {
                    zips.push(p);
                }
            }
        }
        zips.sort();
        for z in zips.iter().take(8) {
            // unzip -p is the simplest portable reader here
            if let Ok(o) = std::process::Command::new("unzip")
                .arg("-p")
                .arg(z)
                .output()
            {
                let mut s = String::new();
                let _ = o.stdout.as_slice().read_to_string(&mut s);
                out.extend(s.lines().filter(|l| l.starts_with('{')).map(String::from));
            }
            if out.len() > 50_000 {
                break;
            }
        }
    }
    if out.is_empty() {
        eprintln!("corpus absent: synthetic events");
        for i in 0..10_000 {
            out.push(format!(
                r#"{{"Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1,"Image":"C:\\Windows\\System32\\cmd{i}.exe","CommandLine":"cmd.exe /c echo {i} hello world","ParentImage":"C:\\Windows\\explorer.exe","User":"CORP\\user"}}"#
            ));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let sources = rules();
    let mut g = c.benchmark_group("sigma");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("compile_windows_rules", |b| {
        b.iter(|| load_rules(sources.clone(), &LoadOptions::default()))
    });
    let (set, _) = load_rules(sources.clone(), &LoadOptions::default());
    let lines = events();
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    eprintln!("{} rules, {} events", set.len(), parsed.len());
    g.throughput(Throughput::Elements(parsed.len() as u64));
    g.bench_function("match_parsed_events", |b| {
        let mut out: Vec<Match> = Vec::new();
        b.iter(|| {
            let mut n = 0;
            for ev in &parsed {
                out.clear();
                set.matches(ev, &mut out);
                n += out.len();
            }
            n
        })
    });
    g.bench_function("parse_and_match_json_lines", |b| {
        let mut out: Vec<Match> = Vec::new();
        b.iter(|| {
            let mut n = 0;
            for l in &lines {
                let ev: serde_json::Value = serde_json::from_str(l).unwrap();
                out.clear();
                set.matches(&ev, &mut out);
                n += out.len();
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
