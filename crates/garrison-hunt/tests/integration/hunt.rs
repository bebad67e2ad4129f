//! End-to-end hunts: small inline rules over temp files, and the Windows rules over the corpus.

use crate::common::corpus_dir;
use garrison_hunt::{
    hunt, load_rules, HitFilter, HuntOptions, HuntReport, Level, NoProgress, Progress,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const RULES: &str = r#"
title: Whoami Execution
id: 11111111-1111-4111-8111-111111111111
status: test
level: high
tags: [attack.discovery, attack.t1033]
logsource: { product: windows, category: process_creation }
detection:
    selection:
        Image|endswith: '\whoami.exe'
    condition: selection
---
title: Any Sysmon Process
id: 22222222-2222-4222-8222-222222222222
level: low
tags: [attack.execution]
logsource: { product: windows, category: process_creation }
detection:
    selection:
        Image|contains: '\'
    condition: selection
"#;

const EVENTS: &str = r#"{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"WS1","EventRecordID":7,"UtcTime":"2024-01-02 03:04:05.678","Image":"C:\\Windows\\System32\\whoami.exe","CommandLine":"whoami /all"}
{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"WS2","EventRecordID":3,"@timestamp":"2024-01-01T00:00:00Z","Image":"C:\\Windows\\notepad.exe"}
not json at all
{"EventID":4624,"Channel":"Security","Computer":"DC1"}
"#;

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("mkdir");
    std::fs::write(rules.join("two.yml"), RULES).expect("write");
    std::fs::write(rules.join("broken.yaml"), "title: [unclosed").expect("write");
    std::fs::write(rules.join("notes.txt"), "not a rule").expect("write");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("sub")).expect("mkdir");
    std::fs::write(logs.join("sub/events.jsonl"), EVENTS).expect("write");
    std::fs::write(logs.join("junk.evtx"), b"not an evtx file").expect("write");
    (dir, rules, logs)
}

#[derive(Default)]
struct Counting {
    started: AtomicU64,
    bytes: AtomicU64,
    events: AtomicU64,
    finished: AtomicU64,
    warnings: AtomicU64,
}

impl Progress for Counting {
    fn file_started(&self, _: &Path, _: u64) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }
    fn advanced(&self, bytes: u64, events: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
    }
    fn file_finished(
        &self,
        _: &Path,
        _: Result<&garrison_hunt::FileStats, &garrison_hunt::ReadError>,
    ) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
    fn warning(&self, _: &str) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(rules: &Path, logs: &Path, filter: HitFilter) -> HuntReport {
    let loaded = load_rules(&[rules.to_path_buf()], &Default::default()).expect("rules");
    let opts = HuntOptions {
        paths: vec![logs.to_path_buf()],
        filter,
        threads: 2,
        logsource: None,
    };
    hunt(&opts, &loaded.set, &NoProgress).expect("hunt")
}

#[test]
fn hunt_small_rules_over_json_lines() {
    let (_dir, rules, logs) = setup();
    let loaded = load_rules(std::slice::from_ref(&rules), &Default::default()).expect("rules");
    assert_eq!(loaded.set.len(), 2);
    assert_eq!(loaded.files, 2, "only .yml/.yaml files are read");
    assert_eq!(loaded.rejected.len(), 1, "{:?}", loaded.rejected);
    assert!(loaded.rejected[0].path.ends_with("broken.yaml"));

    let progress = Counting::default();
    let opts = HuntOptions {
        paths: vec![logs.clone()],
        ..Default::default()
    };
    let report = hunt(&opts, &loaded.set, &progress).expect("hunt");
    let s = &report.summary;
    assert_eq!(
        (s.files_read, s.files_failed.len()),
        (1, 1),
        "{:?}",
        s.files_failed
    );
    assert!(s.files_failed[0].0.ends_with("junk.evtx"));
    assert_eq!(s.events, 3);
    assert_eq!(s.records_skipped, 1);
    assert_eq!(s.rules_loaded, 2);
    assert_eq!(progress.started.load(Ordering::Relaxed), 2);
    assert_eq!(progress.finished.load(Ordering::Relaxed), 2);
    assert_eq!(progress.events.load(Ordering::Relaxed), 3);
    assert_eq!(progress.warnings.load(Ordering::Relaxed), 1);
    assert_eq!(progress.bytes.load(Ordering::Relaxed), EVENTS.len() as u64);

    // Timeline: the notepad event (2024-01-01) before both whoami hits (2024-01-02).
    let titles: Vec<&str> = report.hits.iter().map(|h| h.rule_title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Any Sysmon Process",
            "Any Sysmon Process",
            "Whoami Execution"
        ]
    );
    let whoami = &report.hits[2];
    assert_eq!(whoami.rule_id, "11111111-1111-4111-8111-111111111111");
    assert_eq!(whoami.level, Level::High);
    assert_eq!(whoami.computer.as_deref(), Some("WS1"));
    assert_eq!(
        whoami.channel.as_deref(),
        Some("Microsoft-Windows-Sysmon/Operational")
    );
    assert_eq!(whoami.event_id, Some(1));
    assert_eq!(whoami.record_id, Some(7));
    assert_eq!(
        whoami.timestamp.map(|t| t.to_string()).as_deref(),
        Some("2024-01-02T03:04:05.678Z")
    );
    assert!(whoami.file.ends_with("events.jsonl"));
    assert!(
        whoami
            .matched
            .iter()
            .any(|(f, v)| f == "Image" && v.ends_with("whoami.exe")),
        "{:?}",
        whoami.matched
    );
    assert_eq!(report.max_level(), Some(Level::High));
    assert!(report.fails_on(Level::High) && !report.fails_on(Level::Critical));
    assert_eq!(s.hits, 3);
    assert_eq!(s.hits_per_level[&Level::Low], 2);
    assert_eq!(s.hits_per_tactic["execution"], 2);
    assert_eq!(s.hits_per_tactic["discovery"], 1);
    assert_eq!(s.max_level(), Some(Level::High));
}

#[test]
fn hunt_filters() {
    let (_dir, rules, logs) = setup();
    let by_level = run(
        &rules,
        &logs,
        HitFilter {
            min_level: Some(Level::Medium),
            ..Default::default()
        },
    );
    assert_eq!(by_level.hits.len(), 1);
    assert_eq!(by_level.summary.rules_used, 1);
    let by_tag = run(
        &rules,
        &logs,
        HitFilter {
            tags: vec!["execution".into()],
            ..Default::default()
        },
    );
    assert_eq!(by_tag.hits.len(), 2);
    let by_technique = run(
        &rules,
        &logs,
        HitFilter {
            tags: vec!["attack.t1033".into()],
            ..Default::default()
        },
    );
    assert_eq!(by_technique.hits.len(), 1);
    let by_id = run(
        &rules,
        &logs,
        HitFilter {
            rule_ids: vec!["22222222-2222-4222-8222-222222222222".into()],
            ..Default::default()
        },
    );
    assert_eq!(by_id.hits.len(), 2);
    let none = run(
        &rules,
        &logs,
        HitFilter {
            min_level: Some(Level::Critical),
            ..Default::default()
        },
    );
    assert!(none.hits.is_empty());
    assert_eq!(none.max_level(), None);
    assert!(!none.fails_on(Level::Informational));
}

#[test]
fn missing_paths_are_errors() {
    let (_dir, rules, logs) = setup();
    assert!(load_rules(&[rules.join("nope")], &Default::default()).is_err());
    let loaded = load_rules(&[rules], &Default::default()).expect("rules");
    let opts = HuntOptions {
        paths: vec![logs.join("nope")],
        ..Default::default()
    };
    assert!(matches!(
        hunt(&opts, &loaded.set, &NoProgress),
        Err(garrison_hunt::HuntError::Input { .. })
    ));
}

/// The whole EVTX corpus with SigmaHQ's 2,407 Windows rules.
#[test]
fn windows_rules_over_evtx_corpus() {
    let (Some(samples), Some(sigma)) = (corpus_dir("evtx-attack-samples"), corpus_dir("sigma"))
    else {
        return;
    };
    let loaded = load_rules(&[sigma.join("rules/windows")], &Default::default()).expect("rules");
    assert_eq!(loaded.files, 2407);
    assert!(
        loaded.rejected.is_empty(),
        "{:?}",
        &loaded.rejected[..loaded.rejected.len().min(5)]
    );
    let opts = HuntOptions {
        paths: vec![samples],
        ..Default::default()
    };
    let report = hunt(&opts, &loaded.set, &NoProgress).expect("hunt");
    let s = &report.summary;
    assert_eq!(s.events, 8255);
    assert_eq!(s.files_read, 277);
    assert!(s.files_failed.is_empty(), "{:?}", s.files_failed);
    assert!(s.hits > 500, "{} hits", s.hits);
    assert!(s.rules_hit > 100, "{} rules hit", s.rules_hit);
    assert_eq!(s.hits_per_level.values().sum::<u64>(), s.hits);
    assert!(report
        .hits
        .windows(2)
        .all(|w| w[0].timeline_cmp(&w[1]).is_le()));
    assert!(report
        .hits
        .iter()
        .all(|h| h.timestamp.is_some() && h.record_id.is_some()));
    for tactic in [
        "execution",
        "persistence",
        "credential-access",
        "lateral-movement",
    ] {
        assert!(
            s.hits_per_tactic.get(tactic).copied().unwrap_or(0) > 0,
            "{tactic}: {:?}",
            s.hits_per_tactic
        );
    }
    // Every hit says why it matched.
    assert!(report.hits.iter().all(|h| !h.matched.is_empty()));
}

#[test]
fn correlation_rules_run_in_time_order() {
    let rules = r#"
title: Failed Logon
id: 33333333-3333-4333-8333-333333333333
name: failed_logon
level: low
logsource: { product: windows, service: security }
detection:
    selection:
        EventID: 4625
    condition: selection
---
title: Many Failed Logons
id: 44444444-4444-4444-8444-444444444444
level: high
tags: [attack.credential-access]
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 5m
    condition:
        gte: 3
"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let rule_path = dir.path().join("corr.yml");
    std::fs::write(&rule_path, rules).expect("write");
    // Two files, events interleaved in time: only the time order shows three in five minutes.
    let line = |user: &str, minute: u32| {
        format!(
            "{{\"EventID\":4625,\"Channel\":\"Security\",\"Computer\":\"DC1\",\"TargetUserName\":\"{user}\",\"@timestamp\":\"2024-05-01T10:{minute:02}:00Z\"}}\n"
        )
    };
    let a = [line("bob", 0), line("alice", 1), line("bob", 3)].concat();
    let b = [line("bob", 2), line("alice", 30), line("alice", 59)].concat();
    std::fs::write(dir.path().join("a.jsonl"), a).expect("write");
    std::fs::write(dir.path().join("b.jsonl"), b).expect("write");
    let loaded = load_rules(&[rule_path], &Default::default()).expect("rules");
    assert!(loaded.rejected.is_empty(), "{:?}", loaded.rejected);
    let opts = HuntOptions {
        paths: vec![dir.path().to_path_buf()],
        ..Default::default()
    };
    let report = loaded.hunt(&opts, &NoProgress).expect("hunt");
    // The base rule only feeds the correlation (generate: false by default): not reported.
    let titles: Vec<&str> = report.hits.iter().map(|h| h.rule_title.as_str()).collect();
    assert_eq!(titles, ["Many Failed Logons"], "{:?}", report.hits);
    let hit = &report.hits[0];
    assert_eq!(hit.level, Level::High);
    assert_eq!(
        hit.timestamp.map(|t| t.to_string()).as_deref(),
        Some("2024-05-01T10:03:00Z")
    );
    assert!(
        hit.matched
            .contains(&("TargetUserName".to_string(), "bob".to_string())),
        "{:?}",
        hit.matched
    );
    assert_eq!(report.summary.rules_rejected, 0);
    assert_eq!(report.summary.hits_per_tactic["credential-access"], 1);
}
