//! Output writers on fixed hits: snapshots, and CSV/JSON round trips.

use garrison_hunt::{write_csv, write_jsonl, write_summary, write_table, Hit, Level, Summary};

fn fixed_hits() -> Vec<Hit> {
    vec![
        Hit {
            rule_id: "5b6cbd5a-0000-4000-8000-000000000001".into(),
            rule_title: "Whoami Execution".into(),
            level: Level::High,
            tags: vec!["attack.discovery".into(), "attack.t1033".into()],
            timestamp: Some("2019-03-19T23:34:25.123456Z".parse().expect("time")),
            file: "/logs/Security.evtx".into(),
            record_id: Some(4242),
            computer: Some("WS01.corp.local".into()),
            channel: Some("Microsoft-Windows-Sysmon/Operational".into()),
            event_id: Some(1),
            provider: Some("Microsoft-Windows-Sysmon".into()),
            matched: vec![
                ("Image".into(), "C:\\Windows\\System32\\whoami.exe".into()),
                ("CommandLine".into(), "whoami /all".into()),
            ],
        },
        Hit {
            rule_id: "".into(),
            rule_title: "A rule title that is much too long to fit into the table's rule column, so it is cut".into(),
            level: Level::Informational,
            tags: vec![],
            timestamp: None,
            file: "/very/long/path/to/some/archive/of/exported/logs/from/the/incident.zip:inner/dir/events.jsonl".into(),
            record_id: None,
            computer: None,
            channel: Some("Security".into()),
            event_id: None,
            provider: None,
            matched: vec![
                ("".into(), "mimikatz".into()),
                ("".into(), "sekurlsa".into()),
                ("Quote".into(), "say \"hi\", then\nleave; ok".into()),
            ],
        },
    ]
}

fn render(
    f: fn(&[Hit], &mut dyn std::io::Write) -> Result<(), garrison_hunt::HuntError>,
) -> String {
    let mut out = Vec::new();
    f(&fixed_hits(), &mut out).expect("write");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn table_snapshot() {
    insta::assert_snapshot!("table", render(write_table));
}

#[test]
fn jsonl_snapshot_and_shape() {
    let text = render(write_jsonl);
    insta::assert_snapshot!("jsonl", text);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["timestamp"], "2019-03-19T23:34:25.123456Z");
    assert_eq!(
        lines[0]["matched"]["Image"],
        "C:\\Windows\\System32\\whoami.exe"
    );
    assert_eq!(lines[0]["event_id"], 1);
    assert_eq!(
        lines[1]["matched"]["keywords"],
        serde_json::json!(["mimikatz", "sekurlsa"])
    );
    assert!(lines[1]["timestamp"].is_null());
}

#[test]
fn csv_snapshot_and_round_trip() {
    let text = render(write_csv);
    insta::assert_snapshot!("csv", text);
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(header, garrison_hunt::CSV_HEADER);
    let rows: Vec<csv::StringRecord> = r.records().map(|r| r.expect("record")).collect();
    assert_eq!(rows.len(), 2);
    let hits = fixed_hits();
    for (row, hit) in rows.iter().zip(&hits) {
        assert_eq!(&row[2], hit.rule_title);
        assert_eq!(&row[10], hit.file);
        assert_eq!(&row[0], garrison_hunt::format_time(hit));
    }
    assert_eq!(
        &rows[1][11],
        "mimikatz; sekurlsa; Quote=say \"hi\", then\nleave; ok"
    );
    assert_eq!(&rows[0][4], "attack.discovery;attack.t1033");
}

#[test]
fn summary_snapshot() {
    let mut s = Summary {
        files_read: 277,
        files_failed: vec![("/logs/broken.evtx".into(), "not an EVTX file".into())],
        bytes: 25 * 1024 * 1024,
        events: 8255,
        records_skipped: 3,
        chunks_skipped: 1,
        rules_loaded: 2407,
        rules_rejected: 2,
        rules_used: 2407,
        elapsed: std::time::Duration::from_millis(125),
        threads: 2,
        ..Default::default()
    };
    s.count_hits(&fixed_hits());
    assert_eq!(s.max_level(), Some(Level::High));
    assert_eq!(s.hits_per_tactic.get("discovery"), Some(&1));
    let mut out = Vec::new();
    write_summary(&s, &mut out).expect("write");
    insta::assert_snapshot!("summary", String::from_utf8(out).expect("utf-8"));
}
