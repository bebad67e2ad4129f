//! Decoders as data, through the real service: device lines sent over syslog land parsed,
//! mapped and scoped; a rule that needs the decoder's logsource and fields fires; an
//! operator's own decoder file is read without a rebuild; the parse outcome is a metric.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const SSH_RULE: &str = r#"title: Root password failure over SSH
id: 5b0f3c1e-7d2a-4a55-9a53-0d1f7e2f0001
status: test
level: high
logsource:
  product: linux
  service: sshd
detection:
  selection:
    user.name: root
    event.outcome: failure
  condition: selection
"#;

const CUSTOM_DECODER: &str = r#"name: acme-door
title: ACME door controller
origin: made up for this test
logsource: {product: acme, category: physical}
match:
  prefix: ["ACME "]
parse:
  - regex: '^ACME badge=(?P<badge>\d+) door=(?P<door>\S+) result=(?P<result>\w+)$'
fields:
  user.id: badge
  event.outcome: result
tests:
  - line: 'ACME badge=7 door=lab result=failure'
    expect: {user.id: "7"}
  - line: 'ACME badge=8 door=lab result=success'
    expect: {event.outcome: success}
  - line: 'ACME badge=9 door=hall result=success'
    expect: {door: hall}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_lines_land_parsed_scoped_and_detected_and_operators_add_decoders() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The operator's own decoder, dropped into DATA_DIR/decoders: no rebuild.
    let own = dir.path().join("decoders");
    std::fs::create_dir_all(&own).expect("decoders dir");
    std::fs::write(own.join("acme.yml"), CUSTOM_DECODER).expect("decoder");
    let listed = cli(dir.path(), &["decoders", "list"]);
    assert!(
        listed.lines().any(|l| l.starts_with("acme-door ")),
        "{listed}"
    );
    assert!(
        listed.lines().any(|l| l.starts_with("linux-sshd ")),
        "{listed}"
    );

    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(rules.join("ssh.yml"), SSH_RULE).expect("rule");
    cli(
        dir.path(),
        &["rules", "import", rules.to_str().expect("path"), "--enable"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start(dir.path());

    // The listener's default source has no logsource: the decoders give each line its own.
    send_syslog(
        &service,
        &[
            "<38>Dec  7 10:01:02 web1 sshd[811]: Failed password for root from 203.0.113.9 port 52611 ssh2",
            "<38>Dec  7 10:01:05 web1 sshd[811]: Failed password for invalid user admin from 203.0.113.9 port 52613 ssh2",
            "<38>Dec  7 10:01:09 web1 sshd[812]: Accepted publickey for root from 198.51.100.7 port 40022 ssh2",
            // A headerless web server line is a good nginx line, not an unparsed syslog one.
            r#"192.0.2.10 - - [07/Dec/2026:10:01:10 +0000] "GET /index.php?id=1%27%20OR%201=1 HTTP/1.1" 200 512 "-" "sqlmap/1.7""#,
            "ACME badge=7 door=lab result=failure",
            // Nothing recognises this one: kept with the built-in mapping only.
            "<13>Dec  7 10:01:11 web1 myapp[1]: hello",
        ],
    );
    let events = wait_events(&service, &admin, "syslog", 6).await;
    assert_eq!(events.len(), 6, "{events:#?}");
    let by_message = |needle: &str| {
        events
            .iter()
            .find(|e| {
                e["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(needle))
            })
            .unwrap_or_else(|| panic!("no event with {needle}"))
            .clone()
    };
    let failed = by_message("Failed password for root");
    assert_eq!(
        failed["normalized"]["source.ip"], "203.0.113.9",
        "{failed:#}"
    );
    assert_eq!(failed["normalized"]["source.port"], 52611);
    assert_eq!(failed["normalized"]["event.outcome"], "failure");
    assert_eq!(failed["normalized"]["garrison.decoder"], "linux-sshd");
    assert_eq!(failed["logsource"]["product"], "linux", "{failed:#}");
    assert_eq!(failed["logsource"]["service"], "sshd");
    let web = by_message("sqlmap");
    assert_eq!(web["logsource"]["category"], "webserver", "{web:#}");
    assert_eq!(web["normalized"]["http.response.status_code"], 200);
    assert!(
        web["normalized"].get("garrison.unparsed").is_none(),
        "{web:#}"
    );
    let acme = by_message("ACME badge=7");
    assert_eq!(acme["normalized"]["user.id"], "7", "{acme:#}");
    assert_eq!(acme["logsource"]["product"], "acme");
    let plain = by_message("hello");
    assert!(
        plain["normalized"].get("garrison.decoder").is_none(),
        "{plain:#}"
    );

    // Searching by a decoded field finds the attacker's lines.
    let found = get_json(
        &service,
        "/api/v1/events?source=syslog&field.source.ip=203.0.113.9&limit=10",
        &admin,
    )
    .await;
    assert_eq!(
        found["events"].as_array().map(Vec::len),
        Some(2),
        "{found:#}"
    );

    // The rule needs product linux / service sshd and the decoded user and outcome: it fires
    // on the one root failure only (not on the accepted root login).
    let started = std::time::Instant::now();
    let alerts = loop {
        let page = get_json(&service, "/api/v1/alerts?limit=50", &admin).await;
        let alerts = page["alerts"].as_array().cloned().unwrap_or_default();
        if !alerts.is_empty() || started.elapsed() > Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            break get_json(&service, "/api/v1/alerts?limit=50", &admin).await["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["title"], "Root password failure over SSH");
    assert_eq!(alerts[0]["count"], 1);

    // The web analysis reads the same stored requests as it reads files.
    let analysis = cli(
        dir.path(),
        &[
            "web", "analyze", "--events", "--source", "syslog", "--format", "jsonl", "--quiet",
        ],
    );
    let attacker = analysis
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["kind"] == "attacker")
        .unwrap_or_else(|| panic!("no attacker in\n{analysis}"));
    assert_eq!(attacker["client"], "192.0.2.10", "{attacker}");
    let classes = attacker["classes"].to_string();
    assert!(
        classes.contains("sql_injection") && classes.contains("scanner"),
        "{classes}"
    );

    // The parse outcome per source is a metric: the parse-failure rate is the unparsed share.
    let metrics = metrics_text(&service, &admin).await;
    let decoded = metrics
        .lines()
        .find(|l| {
            l.starts_with("garrison_source_events_total")
                && l.contains("source=\"syslog\"")
                && l.contains("parse=\"decoded\"")
        })
        .unwrap_or_else(|| panic!("no decoded count in\n{metrics}"));
    assert!(decoded.trim_end().ends_with(" 5"), "{decoded}");
}

#[test]
fn decoders_test_shows_what_a_line_becomes_and_runs_a_files_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("acme.yml");
    std::fs::write(&file, CUSTOM_DECODER).expect("decoder");
    let path = file.to_str().expect("path");
    let data = dir.path().to_str().expect("path");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_garrison"))
            .args(["--data-dir", data])
            .args(args)
            .output()
            .expect("garrison runs")
    };
    let out = run(&["decoders", "test", path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 of 3 samples pass"));
    let out = run(&[
        "decoders",
        "test",
        path,
        "--sample",
        "ACME badge=12 door=x result=failure",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("decoder    acme-door") && text.contains("user.id = \"12\""),
        "{text}"
    );
    // A recognised line no pattern matches: said, and a failing exit.
    let out = run(&["decoders", "test", path, "--sample", "ACME something else"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no parse alternative matched"));
    // A broken file says where.
    std::fs::write(&file, CUSTOM_DECODER.replace("parse:", "parsee:")).expect("decoder");
    let out = run(&["decoders", "test", path]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("parsee") && err.contains("acme.yml"), "{err}");
}
