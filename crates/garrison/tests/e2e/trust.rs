//! Detection you can trust on every source: nothing a sender sent is silently dropped.

use std::time::Duration;

use crate::harness::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_sharing_an_event_code_are_all_stored_and_a_resend_is_stored_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "winlogbeat"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    // Winlogbeat 6 puts the Windows event *code* in `event_id`.
    let logon = |user: &str| {
        format!(
            r#"{{"event_id":4624,"computer_name":"ws1","event_data":{{"TargetUserName":"{user}"}}}}"#
        )
    };
    let body = [logon("ana"), logon("bob"), logon("eve"), logon("ana")].join("\n");
    let service = Service::start(dir.path());
    let answer = post_events(&service, &ingest, &body).await;
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(
        answer["duplicates"], 1,
        "the same record twice is one: {answer}"
    );
    // A resend of the whole batch is acknowledged again and stored once.
    let again = post_events(&service, &ingest, &body).await;
    assert_eq!(again["accepted"], 3, "{again}");
    wait_indexed(&service).await;
    let stored = all_events(&service, &admin, "winlogbeat").await;
    assert_eq!(stored.len(), 3, "every 4624 kept, none twice");
    // Each is reachable by its id, as alerts give them.
    for event in &stored {
        let id = event["id"].as_str().expect("id");
        let one = get_json(&service, &format!("/api/v1/events/{id}"), &admin).await;
        assert_eq!(one["id"], id);
        assert_eq!(one["fields"], event["fields"]);
    }

    // A source that names its id field: the same id is one event, whatever else differs.
    cli(
        dir.path(),
        &[
            "source",
            "set",
            "fw",
            "--product",
            "fortigate",
            "--id-field",
            "log.uid",
        ],
    );
    let fw = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "fw"],
    );
    // Source settings reach a running service within a few seconds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let answer = post_events(
        &service,
        &fw,
        "{\"log\":{\"uid\":\"u-1\"},\"msg\":\"first\"}\n{\"log\":{\"uid\":\"u-1\"},\"msg\":\"retry with another timestamp\"}\n{\"log\":{\"uid\":\"u-2\"},\"msg\":\"other\"}",
    )
    .await;
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["duplicates"], 1, "{answer}");
    wait_indexed(&service).await;
    assert_eq!(all_events(&service, &admin, "fw").await.len(), 2);

    let counted = metric(
        &service,
        &admin,
        "garrison_events_duplicates_total{at=\"store\"}",
    )
    .await;
    assert!(
        counted >= 3.0,
        "the resend's duplicates are counted: {counted}"
    );
}

#[test]
fn hunt_says_when_nothing_could_be_read_or_no_rule_passes_its_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("dump.yml"),
        "title: Credential dump tool\nid: 6f0c1e4e-0000-4000-8000-000000000001\nstatus: test\ntags:\n    - attack.credential-access\n    - attack.t1003\nlogsource:\n    product: windows\n    category: process_creation\ndetection:\n    selection:\n        Image|endswith: '\\procdump.exe'\n    condition: selection\nlevel: high\n",
    )
    .expect("rule");
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"EventID\":1,\"Channel\":\"Microsoft-Windows-Sysmon/Operational\",\"Image\":\"C:\\\\t\\\\procdump.exe\"}\n",
    )
    .expect("events");
    let bad = dir.path().join("broken.evtx");
    std::fs::write(&bad, b"not an evtx file").expect("bad");
    let hunt = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(BIN)
            .arg("hunt")
            .args(args)
            .arg("--rules")
            .arg(&rules)
            .args(["--format", "jsonl", "--quiet"])
            .env("GARRISON_LOG", "error")
            .output()
            .expect("hunt")
    };
    let output = hunt(&[bad.as_os_str()]);
    assert_eq!(output.status.code(), Some(1), "every input failed");
    assert!(String::from_utf8_lossy(&output.stderr).contains("could be read"));

    // The tactic as people type it selects the rule Sigma tags with hyphens.
    for tag in ["credential_access", "credential-access", "attack.t1003"] {
        let output = hunt(&[events.as_os_str(), "--tag".as_ref(), tag.as_ref()]);
        assert!(output.status.success(), "{tag}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).lines().count(),
            1,
            "{tag}"
        );
    }
    let output = hunt(&[
        events.as_os_str(),
        "--tag".as_ref(),
        "exfiltration".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("no rule passes"));
}

#[test]
fn importing_thousands_of_rules_is_audited_with_a_summary_and_the_whole_kept_apart() {
    let Some(corpus) = crate::detection::corpus() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = corpus.join("sigma/rules/windows");
    cli(
        dir.path(),
        &["rules", "import", rules.to_str().expect("utf8 path")],
    );
    let listed = cli(dir.path(), &["audit", "list", "--action", "rule.import"]);
    let entry: Value = serde_json::from_str(listed.lines().next().expect("entry")).expect("json");
    let details = &entry["details"];
    let created = details["created"].as_u64().expect("created");
    assert!(created > 2000, "{details}");
    assert_eq!(details["rules"]["count"], created, "{details}");
    let summary = &details["summarised"];
    let stored = summary["stored"].as_str().expect("kept apart");
    let whole = std::fs::read_to_string(dir.path().join(stored)).expect("whole details");
    assert_eq!(
        whole.len() as u64,
        summary["bytes"].as_u64().expect("bytes")
    );
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(whole.as_bytes())),
        summary["sha256"].as_str().expect("sha256")
    );
    let whole: Value = serde_json::from_str(&whole).expect("json");
    assert_eq!(
        whole["rules"].as_array().map(Vec::len),
        Some(created as usize)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_the_sender_gives_in_ecs_reach_the_indicator_matcher_without_a_mapping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "zeek"],
    );
    let service = Service::start(dir.path());
    let response = client()
        .post(service.url("/api/v1/indicators/import?format=csv&source=intel"))
        .bearer_auth(&admin)
        .body("type,value,confidence\nip,198.51.100.23,95\nip,198.51.100.24,95\n")
        .send()
        .await
        .expect("import");
    assert_eq!(response.status().as_u16(), 200);
    // Indicators reach the detector on its next refresh.
    tokio::time::sleep(Duration::from_secs(3)).await;
    post_events(
        &service,
        &ingest,
        "{\"source\":{\"ip\":\"198.51.100.23\"},\"destination\":{\"port\":443}}\n{\"source.ip\":\"198.51.100.24\",\"destination.port\":22}",
    )
    .await;
    wait_indexed(&service).await;
    let events = all_events(&service, &admin, "zeek").await;
    for event in &events {
        assert!(
            event["normalized"]["source.ip"].is_string(),
            "ECS passes through: {event}"
        );
    }
    let started = std::time::Instant::now();
    let mut matched = 0;
    while started.elapsed() < Duration::from_secs(30) {
        let page = get_json(&service, "/api/v1/alerts?rule_id=ioc:ip&limit=100", &admin).await;
        matched = page["alerts"]
            .as_array()
            .map(|alerts| {
                alerts
                    .iter()
                    .map(|a| a["count"].as_u64().unwrap_or(0))
                    .sum::<u64>()
            })
            .unwrap_or(0);
        if matched >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(matched, 2, "both ECS shapes matched the indicators");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_sigma_filter_imports_and_tunes_the_rule_it_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("whoami.yml"),
        whoami_rule("0d3f3e1f-0000-4000-8000-000000000abc", "low"),
    )
    .expect("rule");
    std::fs::write(
        rules.join("filter_admin_ws.yml"),
        "title: Admin workstation runs whoami by design\nname: filter_admin_whoami\nlogsource:\n    product: windows\n    category: process_creation\nfilter:\n    rules:\n        - 0d3f3e1f-0000-4000-8000-000000000abc\n    selection:\n        Computer: admin-ws\n    condition: selection\n",
    )
    .expect("filter");
    let imported = cli(
        dir.path(),
        &["rules", "import", rules.to_str().expect("path"), "--enable"],
    );
    assert!(imported.contains("2 created"), "{imported}");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "sysmon"],
    );
    let service = Service::start(dir.path());
    let event = |host: &str| {
        format!(
            "{{\"EventID\":1,\"Channel\":\"Microsoft-Windows-Sysmon/Operational\",\"Computer\":\"{host}\",\"Image\":\"C:\\\\Windows\\\\System32\\\\whoami.exe\"}}"
        )
    };
    post_events(
        &service,
        &ingest,
        &format!("{}\n{}", event("admin-ws"), event("ws2")),
    )
    .await;
    let started = std::time::Instant::now();
    let mut alerts = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        let page = get_json(&service, "/api/v1/alerts?limit=100", &admin).await;
        alerts = page["alerts"].as_array().cloned().unwrap_or_default();
        if !alerts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give a wrongly unfiltered second match time to show, then check there is none.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let page = get_json(&service, "/api/v1/alerts?limit=100", &admin).await;
    let alerts_now = page["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts_now.len(), 1, "{alerts_now:?}");
    assert_eq!(alerts_now[0]["count"], 1, "only ws2's run: {alerts_now:?}");
    assert_eq!(
        alerts_now[0]["entity"]["host.name"], "ws2",
        "{alerts_now:?}"
    );
}

/// Runs the binary (no data dir: `hunt` needs none) and returns what it did.
fn run_garrison(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .output()
        .expect("run garrison")
}

/// Rules of a test: (file name, YAML).
const SCOPED_RULES: &[(&str, &str)] = &[
    // As SigmaHQ's zeek DNS rules: `not selection` on a field other events lack.
    (
        "zeek_dns.yml",
        "title: Zeek DNS not local\nid: 3a1c0000-0000-4000-8000-000000000001\nlevel: medium\nlogsource:\n    product: zeek\n    service: dns\ndetection:\n    selection:\n        query|endswith: '.local'\n    condition: not selection\n",
    ),
    // As SigmaHQ's Cisco AAA keyword rules.
    (
        "cisco_aaa.yml",
        "title: Cisco informational keyword\nid: 3a1c0000-0000-4000-8000-000000000002\nlevel: medium\nlogsource:\n    product: cisco\n    service: aaa\ndetection:\n    keywords:\n        - 'informational'\n    condition: keywords\n",
    ),
    // A firewall rule on the Sigma taxonomy name.
    (
        "fw_port.yml",
        "title: Connection to 4444\nid: 3a1c0000-0000-4000-8000-000000000003\nlevel: high\nlogsource:\n    category: firewall\ndetection:\n    selection:\n        dst_port: 4444\n    condition: selection\n",
    ),
    // No logsource: applies to every event.
    (
        "marker.yml",
        "title: Marker anywhere\nid: 3a1c0000-0000-4000-8000-000000000004\nlevel: low\nlogsource: {}\ndetection:\n    keywords:\n        - 'evil-marker'\n    condition: keywords\n",
    ),
];

async fn wait_alert_rules(service: &Service, token: &str, want: usize) -> Vec<String> {
    let started = std::time::Instant::now();
    let mut rules = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        let page = get_json(service, "/api/v1/alerts?limit=200", token).await;
        rules = page["alerts"]
            .as_array()
            .map(|alerts| {
                alerts
                    .iter()
                    .map(|a| format!("{}@{}", a["title"].as_str().unwrap_or_default(), a["count"]))
                    .collect()
            })
            .unwrap_or_default();
        if rules.len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A wrong extra alert would come with the same detector pass: give it one more second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    rules.sort();
    rules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_fire_only_where_their_logsource_fits_and_see_mapped_and_taxonomy_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    for (name, yaml) in SCOPED_RULES {
        std::fs::write(rules.join(name), yaml).expect("rule");
    }
    let rules_arg = rules.to_str().expect("path");
    cli(dir.path(), &["rules", "import", rules_arg, "--enable"]);
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    // A Linux syslog source with no logsource, and a firewall that names its port `dstport`.
    let linux = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "linux"],
    );
    cli(
        dir.path(),
        &[
            "source",
            "set",
            "fw",
            "--category",
            "firewall",
            "--map",
            "dstport=dst_port",
        ],
    );
    let fw = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "fw"],
    );
    let service = Service::start(dir.path());
    let syslog = [
        r#"{"message":"sshd[311]: informational: session opened for user ana","host":"web1"}"#,
        r#"{"message":"sudo: evil-marker ran by bob","host":"web1"}"#,
    ]
    .join("\n");
    post_events(&service, &linux, &syslog).await;
    // One connection by the mapped name, one by the ECS name the taxonomy gives `dst_port`.
    let firewall = [
        r#"{"srcip":"10.0.0.9","dstport":4444}"#,
        r#"{"source":{"ip":"10.0.0.8"},"destination":{"port":4444}}"#,
    ]
    .join("\n");
    post_events(&service, &fw, &firewall).await;
    let alerts = wait_alert_rules(&service, &admin, 3).await;
    // Two firewall alerts: events without a host fold by their source address.
    assert_eq!(
        alerts,
        [
            "Connection to 4444@1",
            "Connection to 4444@1",
            "Marker anywhere@1"
        ],
        "no zeek or cisco rule on syslog; the firewall rule sees mapped and ECS ports"
    );

    // The same scoping in `garrison hunt`: the syslog lines as a file hit only the marker rule.
    let file = dir.path().join("syslog.jsonl");
    std::fs::write(&file, &syslog).expect("file");
    let hunt = |extra: &[&str]| {
        let mut args = vec!["hunt", file.to_str().expect("path"), "--rules", rules_arg];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--format", "jsonl", "--quiet"]);
        let out = run_garrison(&args);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|h| h["rule_title"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(hunt(&[]), ["Marker anywhere"]);
    // Told the file is Zeek DNS, the zeek rule applies (and finds no `query`).
    let mut zeek = hunt(&["--logsource", "product=zeek,service=dns"]);
    zeek.sort();
    assert_eq!(
        zeek,
        [
            "Marker anywhere",
            "Zeek DNS not local",
            "Zeek DNS not local"
        ]
    );
    let bad = run_garrison(&[
        "hunt",
        file.to_str().expect("path"),
        "--rules",
        rules_arg,
        "--logsource",
        "vendor=x",
    ]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a bad --logsource is a usage error"
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown logsource key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_senders_are_routed_to_their_sources_and_source_changes_apply_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let service = Service::start(dir.path());
    let fortigate = "<134>1 2026-12-07T10:00:00Z fw-paris-1 CEF - - - CEF:0|Fortinet|FortiGate|7.4|13|traffic deny|5|src=10.0.0.5 dst=203.0.113.9 dpt=4444 act=deny";
    let sshd = "<38>Dec  7 10:00:01 web1 sshd[311]: Failed password for root from 198.51.100.7 port 52211 ssh2";
    let other = "<13>Dec  7 10:00:02 printer1 lpd[9]: queue restarted";
    send_syslog(&service, &[fortigate, sshd, other]);
    let before = wait_events(&service, &admin, "syslog", 3).await;
    assert_eq!(before.len(), 3, "no routes yet: all to the default source");

    // Routes and the default source's logsource, set while the listener runs.
    cli(
        dir.path(),
        &[
            "source",
            "set",
            "fortigate",
            "--product",
            "fortinet",
            "--category",
            "firewall",
            "--syslog-from",
            "127.0.0.0/8",
            "--syslog-vendor",
            "Fortinet",
        ],
    );
    cli(
        dir.path(),
        &[
            "source",
            "set",
            "linux-auth",
            "--product",
            "linux",
            "--service",
            "sshd",
            "--syslog-app",
            "sshd",
        ],
    );
    cli(
        dir.path(),
        &["source", "set", "syslog", "--product", "unix"],
    );
    let bad = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["source", "set", "x", "--syslog-from", "10.0.0.0/33"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("10.0.0.0/33"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // Listeners reload their sources every 2 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = |s: &str| s.replace("10:00:0", "11:00:0");
    send_syslog(&service, &[&later(fortigate), &later(sshd), &later(other)]);
    let fw = wait_events(&service, &admin, "fortigate", 1).await;
    let auth = wait_events(&service, &admin, "linux-auth", 1).await;
    let rest = wait_events(&service, &admin, "syslog", 4).await;
    assert_eq!(fw.len(), 1, "{fw:?}");
    assert_eq!(fw[0]["logsource"]["product"], "fortinet");
    assert_eq!(fw[0]["normalized"]["destination.port"], 4444);
    assert_eq!(auth.len(), 1, "{auth:?}");
    assert_eq!(auth[0]["logsource"]["service"], "sshd");
    assert_eq!(rest.len(), 4, "{rest:?}");
    let newest = rest
        .iter()
        .find(|e| e["raw"].as_str().is_some_and(|r| r.contains("11:00:02")))
        .expect("the printer's second line");
    assert_eq!(
        newest["logsource"]["product"], "unix",
        "the default source's change applies without a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_health_shows_rates_duplicates_unparsed_lines_rules_and_silence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("linux.yml"),
        "title: Root login failed\nid: 5b0c0000-0000-4000-8000-000000000001\nlevel: medium\nlogsource:\n    product: linux\n    service: sshd\ndetection:\n    keywords:\n        - 'Failed password for root'\n    condition: keywords\n",
    )
    .expect("rule");
    std::fs::write(
        rules.join("whoami.yml"),
        whoami_rule("5b0c0000-0000-4000-8000-000000000002", "high"),
    )
    .expect("rule");
    cli(
        dir.path(),
        &["rules", "import", rules.to_str().expect("path"), "--enable"],
    );
    cli(
        dir.path(),
        &[
            "source",
            "set",
            "linux",
            "--product",
            "linux",
            "--service",
            "sshd",
            "--silent-after",
            "3s",
        ],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let linux = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "linux"],
    );
    let service = Service::start_with(
        dir.path(),
        free_port(),
        free_port(),
        &[("GARRISON_SILENT_CHECK_INTERVAL", "500ms")],
    );
    let failed =
        r#"{"message":"sshd[1]: Failed password for root from 198.51.100.7","host":"web1"}"#;
    let opened = r#"{"message":"sshd[2]: session opened for user ana","host":"web1"}"#;
    // One record twice in the batch, then a resend of one already stored.
    post_events(&service, &linux, &format!("{failed}\n{failed}\n{opened}")).await;
    post_events(&service, &linux, opened).await;
    // Over syslog (default source, no logsource): one line no decoder understands.
    send_syslog(
        &service,
        &[
            "<13>Dec  7 10:00:02 printer1 lpd[9]: queue restarted",
            "\u{1}\u{2} binary junk without a header",
        ],
    );
    let started = std::time::Instant::now();
    let health = loop {
        let h = get_json(&service, "/api/v1/sources/linux/health", &admin).await;
        if h["events_24h"] == 2
            && h["duplicates_24h"] == 2
            && h["rules_fired_24h"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        {
            break h;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(health["rules_enabled"], 2, "{health}");
    assert_eq!(
        health["rules_applicable"], 1,
        "the Windows rule does not apply: {health}"
    );
    assert_eq!(
        health["rules_fired_24h"][0]["rule_id"],
        "5b0c0000-0000-4000-8000-000000000001"
    );
    assert!(health["last_event_received"].is_string(), "{health}");
    assert!(
        health["events_per_second_1m"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{health}"
    );
    let syslog = loop {
        let h = get_json(&service, "/api/v1/sources/syslog/health", &admin).await;
        if h["events_24h"] == 2 {
            break h;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(syslog["unparsed_24h"], 1, "{syslog}");
    assert_eq!(syslog["unparsed_share_24h"], 0.5, "{syslog}");
    assert!(
        syslog["notes"].to_string().contains("no logsource set"),
        "{syslog}"
    );
    let flagged = get_json(&service, "/api/v1/events?source=syslog&limit=10", &admin).await;
    let flagged: Vec<&Value> = flagged["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["normalized"]["garrison.unparsed"].is_string())
        .collect();
    assert_eq!(flagged.len(), 1, "the junk line is kept and flagged");
    let missing = client()
        .get(service.url("/api/v1/sources/nope/health"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status().as_u16(), 404);

    // Silent past its 3 s limit: health says so and an alert is raised once per hour.
    let silent = loop {
        let page = get_json(
            &service,
            "/api/v1/alerts?rule_id=garrison-source-silent",
            &admin,
        )
        .await;
        if let Some(alert) = page["alerts"].as_array().and_then(|a| a.first()).cloned() {
            break alert;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no silent alert: {page}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(silent["entity"]["event.dataset"], "linux", "{silent}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let page = get_json(
        &service,
        "/api/v1/alerts?rule_id=garrison-source-silent",
        &admin,
    )
    .await;
    assert_eq!(page["alerts"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        page["alerts"][0]["count"], 1,
        "repeated checks fold without counting: {page}"
    );
    let health = get_json(&service, "/api/v1/sources/linux/health", &admin).await;
    assert_eq!(health["silent"], true, "{health}");
    let text = cli(dir.path(), &["source", "health", "linux"]);
    assert!(
        text.contains("SILENT") && text.contains("1 of 2 enabled"),
        "{text}"
    );
}

async fn post_json(service: &Service, path: &str, token: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(service.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The alert of `host` once triage has handled it (linked to an incident, or suppressed).
async fn triaged_alert(service: &Service, token: &str, host: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let page = get_json(service, "/api/v1/alerts?limit=100", token).await;
        let alert = page["alerts"].as_array().and_then(|alerts| {
            alerts
                .iter()
                .find(|a| a["entity"]["host.name"] == host)
                .cloned()
        });
        if let Some(alert) =
            alert.filter(|a| a["incident_id"].is_string() || a["status"] == "suppressed")
        {
            return alert;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{host}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressions_match_any_stored_field_later_folds_and_open_alerts_on_demand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    let rule_id = "7e110000-0000-4000-8000-000000000001";
    std::fs::write(rules.join("whoami.yml"), whoami_rule(rule_id, "high")).expect("rule");
    cli(
        dir.path(),
        &["rules", "import", rules.to_str().expect("path"), "--enable"],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "sysmon"],
    );
    let service = Service::start_with(
        dir.path(),
        free_port(),
        free_port(),
        &[("GARRISON_TRIGGER_POLL_INTERVAL", "100ms")],
    );
    let whoami = |host: &str, parent: &str, n: u32| {
        serde_json::json!({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": host, "Image": "C:\\Windows\\System32\\whoami.exe",
            "ParentImage": parent, "ProcessId": n})
        .to_string()
    };
    // (a) A field neither the alert's entity nor its matched fields hold: the parent process.
    let (status, body) = post_json(
        &service,
        "/api/v1/suppressions",
        &admin,
        serde_json::json!({"rule_id": rule_id, "fields": {"ParentImage": "*\\inventory-agent.exe"}, "reason": "the inventory agent runs whoami hourly"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    post_events(
        &service,
        &ingest,
        &whoami("ws1", "C:\\Program Files\\Inv\\inventory-agent.exe", 1),
    )
    .await;
    post_events(
        &service,
        &ingest,
        &whoami("ws2", "C:\\Windows\\explorer.exe", 2),
    )
    .await;
    post_events(
        &service,
        &ingest,
        &whoami("ws3", "C:\\Windows\\explorer.exe", 3),
    )
    .await;
    let ws1 = triaged_alert(&service, &admin, "ws1").await;
    assert_eq!(ws1["status"], "suppressed", "{ws1}");
    let ws2 = triaged_alert(&service, &admin, "ws2").await;
    assert_eq!(ws2["status"], "new", "{ws2}");
    let ws3 = triaged_alert(&service, &admin, "ws3").await;
    assert_eq!(ws3["status"], "new", "{ws3}");

    // (b) ws2 is triaged; a suppression created now covers what folds into it later.
    let (status, body) = post_json(
        &service,
        "/api/v1/suppressions",
        &admin,
        serde_json::json!({"fields": {"Computer": "ws2"}, "reason": "ws2 is the admins' jump host"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    post_events(
        &service,
        &ingest,
        &whoami("ws2", "C:\\Windows\\explorer.exe", 4),
    )
    .await;
    let started = std::time::Instant::now();
    loop {
        let alert = get_json(
            &service,
            &format!("/api/v1/alerts/{}", ws2["id"].as_str().expect("id")),
            &admin,
        )
        .await;
        if alert["status"] == "suppressed" {
            assert_eq!(alert["count"], 2, "{alert}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the fold was not suppressed: {alert}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // (c) ws3 is open and takes nothing new: applying a suppression on demand covers it.
    let (_, created) = post_json(
        &service,
        "/api/v1/suppressions",
        &admin,
        serde_json::json!({"fields": {"Computer": "ws3"}, "reason": "lab machine"}),
    )
    .await;
    let id = created["id"].as_str().expect("id");
    let (status, applied) = post_json(
        &service,
        &format!("/api/v1/suppressions/{id}/apply"),
        &admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["suppressed"], 1, "{applied}");
    let alert = get_json(
        &service,
        &format!("/api/v1/alerts/{}", ws3["id"].as_str().expect("id")),
        &admin,
    )
    .await;
    assert_eq!(alert["status"], "suppressed", "{alert}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholder_rules_import_waiting_and_load_live_once_the_tenant_sets_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    // SigmaHQ's placeholder rules import (none refused) and wait for their values.
    if let Some(corpus) = crate::detection::corpus() {
        let out = std::process::Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["rules", "import"])
            .arg(corpus.join("sigma/rules-placeholder"))
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("rejected"), "{stderr}");
        let waiting = stderr.lines().filter(|l| l.starts_with("waiting ")).count();
        assert!(waiting >= 20, "{waiting} waiting: {stderr}");
    }
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("admin_logon.yml"),
        "title: Logon from an admin workstation\nid: 9a1d0000-0000-4000-8000-000000000001\nlevel: medium\nlogsource:\n    product: windows\n    service: security\ndetection:\n    selection:\n        EventID: 4624\n        IpAddress|expand: '%Admins_Workstations%'\n    condition: selection\n",
    )
    .expect("rule");
    let import = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["rules", "import", rules.to_str().expect("path"), "--enable"])
        .output()
        .expect("run");
    assert!(import.status.success());
    assert!(
        String::from_utf8_lossy(&import.stderr).contains("Admins_Workstations"),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "dc"],
    );
    let service = Service::start(dir.path());
    let logon = |n: u32| {
        serde_json::json!({"EventID": 4624, "Channel": "Security", "Computer": "dc1",
            "IpAddress": "10.1.1.5", "TargetLogonId": n})
        .to_string()
    };
    post_events(&service, &ingest, &logon(1)).await;
    wait_indexed(&service).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let page = get_json(&service, "/api/v1/alerts", &admin).await;
    assert_eq!(
        page["alerts"].as_array().map(Vec::len),
        Some(0),
        "no values yet: {page}"
    );

    // Values through the API: a new version, the rule loads live.
    let response = client()
        .put(service.url("/api/v1/placeholders/Admins_Workstations"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"values": ["10.1.1.5", "10.1.1.6"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status().as_u16(), 200);
    let bad = client()
        .put(service.url("/api/v1/placeholders/bad%20name"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"values": ["x"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(bad.status().as_u16(), 400);
    let started = std::time::Instant::now();
    let mut n = 2;
    loop {
        post_events(&service, &ingest, &logon(n)).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let page = get_json(&service, "/api/v1/alerts", &admin).await;
        if page["alerts"].as_array().is_some_and(|a| !a.is_empty()) {
            assert_eq!(
                page["alerts"][0]["rule_id"],
                "9a1d0000-0000-4000-8000-000000000001"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "rule never loaded: {page}"
        );
    }
    // Versioned, through the CLI too.
    cli(
        dir.path(),
        &["placeholder", "set", "Admins_Workstations", "10.1.1.7"],
    );
    let history = get_json(
        &service,
        "/api/v1/placeholders/Admins_Workstations/versions",
        &admin,
    )
    .await;
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{history}");
    assert_eq!(history[0]["version"], 2);
    assert_eq!(
        history[1]["values"],
        serde_json::json!(["10.1.1.5", "10.1.1.6"])
    );
    let listed = cli(dir.path(), &["placeholder", "list"]);
    assert!(
        listed.contains("10.1.1.7") && !listed.contains("10.1.1.6"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_tests_read_the_whole_range_and_new_indicators_hunt_the_past() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    let rule_id = "b4c70000-0000-4000-8000-000000000001";
    std::fs::write(
        rules.join("marker.yml"),
        format!("title: Marker\nid: {rule_id}\nlevel: low\nlogsource: {{}}\ndetection:\n    selection:\n        msg|endswith: '7'\n    condition: selection\n"),
    )
    .expect("rule");
    // Imported but not enabled: the back-test alone reads the events.
    cli(
        dir.path(),
        &["rules", "import", rules.to_str().expect("path")],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let ingest = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "app"],
    );
    let service = Service::start(dir.path());
    // More events than the old 50,000 cap, over one day; every tenth ends in 7.
    const EVENTS: usize = 52_000;
    let base = 1_796_000_000i64;
    let mut body = String::with_capacity(EVENTS * 80);
    for i in 0..EVENTS {
        let at = garrison_model::Timestamp::from_second(base + i as i64).expect("time");
        body.push_str(&format!(
            "{{\"@timestamp\":\"{at}\",\"msg\":\"event {i}\",\"n\":{i}}}\n"
        ));
    }
    for chunk in body.lines().collect::<Vec<_>>().chunks(13_000) {
        post_events(&service, &ingest, &chunk.join("\n")).await;
    }
    wait_indexed(&service).await;
    let response = client()
        .post(service.url(&format!("/api/v1/rules/{rule_id}/test")))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"from": base.to_string(), "to": (base + EVENTS as i64).to_string()}))
        .send()
        .await
        .expect("test");
    assert_eq!(response.status().as_u16(), 200);
    let result: Value = response.json().await.expect("json");
    assert_eq!(result["events"], EVENTS, "every event of the range is read");
    assert_eq!(result["truncated"], false);
    assert_eq!(
        result["matches_total"],
        EVENTS / 10,
        "{}",
        result["matches_total"]
    );
    assert_eq!(
        result["matches"].as_array().map(Vec::len),
        Some(EVENTS / 10)
    );
    // Oldest first, as live detection saw them.
    assert_eq!(result["matches"][0]["matched"]["msg"], "event 7");

    // An indicator learnt today finds what already happened, once.
    let response = client()
        .post(service.url("/api/v1/indicators/import?format=csv&source=today"))
        .bearer_auth(&admin)
        .body("type,value,confidence\nip,198.51.100.99,90\n")
        .send()
        .await
        .expect("import");
    assert_eq!(response.status().as_u16(), 200);
    post_events(
        &service,
        &ingest,
        &format!(
            "{{\"@timestamp\":\"{}\",\"msg\":\"beacon\",\"destination\":{{\"ip\":\"198.51.100.99\"}}}}",
            garrison_model::Timestamp::from_second(base).expect("time")
        ),
    )
    .await;
    wait_indexed(&service).await;
    let hunt = |body: Value| {
        let service = &service;
        let admin = &admin;
        async move {
            let response = client()
                .post(service.url("/api/v1/indicators/retro-hunt"))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .expect("retro-hunt");
            assert_eq!(response.status().as_u16(), 200);
            response.json::<Value>().await.expect("json")
        }
    };
    let range = serde_json::json!({"from": (base - 10).to_string(), "to": (base + 10).to_string()});
    let first = hunt(range.clone()).await;
    assert_eq!(first["matches"], 1, "{first}");
    let started = std::time::Instant::now();
    let alerts = loop {
        let page = get_json(&service, "/api/v1/alerts?rule_id=ioc:ip", &admin).await;
        if page["alerts"].as_array().is_some_and(|a| !a.is_empty()) {
            break page;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alerts["alerts"][0]["count"], 1);
    let again = hunt(range).await;
    assert_eq!(again["alerts_created"], 0, "{again}");
    let alerts = get_json(&service, "/api/v1/alerts?rule_id=ioc:ip", &admin).await;
    assert_eq!(
        alerts["alerts"][0]["count"], 1,
        "a second retro-hunt counts nothing twice"
    );
}

/// Rules of the mixed replay: (file, YAML, the sources it may fire on).
const MIXED_RULES: &[(&str, &str, &[&str])] = &[
    (
        "whoami.yml",
        "title: Whoami\nid: 3e5d0000-0000-4000-8000-000000000001\nlevel: high\nlogsource:\n    product: windows\n    category: process_creation\ndetection:\n    selection:\n        Image|endswith: '\\whoami.exe'\n    condition: selection\n",
        &["winlogbeat"],
    ),
    (
        "sshd_root.yml",
        "title: Root password failure\nid: 3e5d0000-0000-4000-8000-000000000002\nlevel: medium\nlogsource:\n    product: linux\n    service: sshd\ndetection:\n    keywords:\n        - 'Failed password for root'\n    condition: keywords\n",
        &["syslog"],
    ),
    (
        "zeek_dns.yml",
        "title: Zeek DNS not local\nid: 3e5d0000-0000-4000-8000-000000000003\nlevel: medium\nlogsource:\n    product: zeek\n    service: dns\ndetection:\n    selection:\n        query|endswith: '.local'\n    condition: not selection\n",
        &["zeek"],
    ),
    (
        "cisco_aaa.yml",
        "title: Cisco keyword\nid: 3e5d0000-0000-4000-8000-000000000004\nlevel: medium\nlogsource:\n    product: cisco\n    service: aaa\ndetection:\n    keywords:\n        - 'informational'\n    condition: keywords\n",
        &[],
    ),
    (
        "fw_4444.yml",
        "title: Connection to 4444\nid: 3e5d0000-0000-4000-8000-000000000005\nlevel: high\nlogsource:\n    category: firewall\ndetection:\n    selection:\n        dst_port: 4444\n    condition: selection\n",
        &["fw"],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_replay_is_stored_once_scoped_by_logsource_and_agrees_with_hunt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    for (name, yaml, _) in MIXED_RULES {
        std::fs::write(rules.join(name), yaml).expect("rule");
    }
    let rules_arg = rules.to_str().expect("path").to_string();
    cli(dir.path(), &["rules", "import", &rules_arg, "--enable"]);
    // The syslog listener's default source is a Linux host's; a FortiGate is routed apart.
    cli(
        dir.path(),
        &["source", "set", "syslog", "--product", "linux"],
    );
    cli(
        dir.path(),
        &[
            "source",
            "set",
            "fw",
            "--category",
            "firewall",
            "--syslog-vendor",
            "Fortinet",
        ],
    );
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let token = |source: &str| {
        cli(
            dir.path(),
            &["token", "create", "--ingest", "--source", source],
        )
    };
    let (winlogbeat, zeek, ecs) = (token("winlogbeat"), token("zeek"), token("ecs"));
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).expect("files");
    let sysmon = |image: &str, n: u32| {
        serde_json::json!({"@timestamp": format!("2026-12-07T10:00:0{n}Z"), "event_id": 1,
            "log_name": "Microsoft-Windows-Sysmon/Operational", "computer_name": "ws1",
            "event_data": {"Image": image, "ProcessId": n}})
        .to_string()
    };
    // Winlogbeat 6: every record has `event_id: 1` (the event code), each is its own event.
    std::fs::write(
        files.join("winlogbeat6.jsonl"),
        [
            sysmon("C:\\Windows\\System32\\whoami.exe", 1),
            sysmon("C:\\Windows\\System32\\whoami.exe", 2),
            sysmon("C:\\Windows\\notepad.exe", 3),
        ]
        .join("\n"),
    )
    .expect("wb6");
    let wb8 = |image: &str, n: u32| {
        serde_json::json!({"@timestamp": format!("2026-12-07T10:01:0{n}Z"), "event": {"code": "1"},
            "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 1,
            "computer_name": "ws2", "event_data": {"Image": image, "ProcessId": n}},
            "host": {"name": "ws2"}})
        .to_string()
    };
    std::fs::write(
        files.join("winlogbeat8.jsonl"),
        [
            wb8("C:\\Windows\\System32\\whoami.exe", 4),
            wb8("C:\\Windows\\explorer.exe", 5),
        ]
        .join("\n"),
    )
    .expect("wb8");
    let zeek_dns = |query: &str, n: u32| {
        serde_json::json!({"@stream": "dns", "@system": "sensor1", "@proc": "zeek",
            "ts": 1_796_000_000 + n, "uid": format!("C{n}"), "id_orig_h": "10.0.1.6",
            "id_resp_h": "10.0.0.4", "query": query})
        .to_string()
    };
    std::fs::write(
        files.join("zeek_dns.log"),
        [
            zeek_dns("dc1.corp.local", 1),
            zeek_dns("evil.example.net", 2),
            serde_json::json!({"@stream": "conn", "@proc": "zeek", "ts": 1_796_000_003,
                "uid": "C3", "id_orig_h": "10.0.1.6", "id_resp_h": "203.0.113.9", "proto": "tcp"})
            .to_string(),
        ]
        .join("\n"),
    )
    .expect("zeek");
    std::fs::write(
        files.join("ecs.jsonl"),
        r#"{"source":{"ip":"198.51.100.23"},"event":{"action":"login"}}"#,
    )
    .expect("ecs");

    let service = Service::start(dir.path());
    let response = client()
        .post(service.url("/api/v1/indicators/import?format=csv&source=intel"))
        .bearer_auth(&admin)
        .body("type,value,confidence\nip,198.51.100.23,95\n")
        .send()
        .await
        .expect("import");
    assert_eq!(response.status().as_u16(), 200);
    // Indicators reach the detector on its next refresh.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ingest = |file: &str, token: &str| {
        let out = std::process::Command::new(BIN)
            .args([
                "ingest",
                "--quiet",
                "--url",
                &service.url(""),
                "--token",
                token,
            ])
            .arg(files.join(file))
            .env("GARRISON_LOG", "warn")
            .output()
            .expect("ingest");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // Each file twice: the resend stores nothing again.
    for _ in 0..2 {
        ingest("winlogbeat6.jsonl", &winlogbeat);
        ingest("winlogbeat8.jsonl", &winlogbeat);
        ingest("zeek_dns.log", &zeek);
        ingest("ecs.jsonl", &ecs);
    }
    send_syslog(
        &service,
        &[
            "<38>Dec  7 10:02:01 web1 sshd[311]: Failed password for root from 198.51.100.7 port 52211 ssh2",
            "<38>Dec  7 10:02:02 web1 sshd[311]: Failed password for root from 198.51.100.7 port 52212 ssh2",
            "<38>Dec  7 10:02:03 web1 sshd[311]: Failed password for root from 198.51.100.7 port 52213 ssh2",
            "<14>Dec  7 10:02:04 web1 rsyslogd: informational: rsyslogd was HUPed",
            "<134>1 2026-12-07T10:02:05Z fw-paris-1 CEF - - - CEF:0|Fortinet|FortiGate|7.4|13|traffic deny|5|src=10.0.0.5 dst=203.0.113.9 dpt=4444 act=deny",
            "<134>1 2026-12-07T10:02:06Z fw-paris-1 CEF - - - CEF:0|Fortinet|FortiGate|7.4|13|traffic allow|3|src=10.0.0.5 dst=203.0.113.10 dpt=443 act=accept",
        ],
    );
    // Every record stored once, per source.
    for (source, want) in [
        ("winlogbeat", 5),
        ("zeek", 3),
        ("ecs", 1),
        ("syslog", 4),
        ("fw", 2),
    ] {
        let events = wait_events(&service, &admin, source, want).await;
        assert_eq!(events.len(), want, "{source}: {events:?}");
    }
    // Alerts: per rule, the events counted and the sources they came from.
    let expected: [(&str, u64); 5] = [
        ("3e5d0000-0000-4000-8000-000000000001", 3),
        ("3e5d0000-0000-4000-8000-000000000002", 3),
        ("3e5d0000-0000-4000-8000-000000000003", 1),
        ("3e5d0000-0000-4000-8000-000000000005", 1),
        ("ioc:ip", 1),
    ];
    let started = std::time::Instant::now();
    let counts = loop {
        let page = get_json(&service, "/api/v1/alerts?limit=200", &admin).await;
        let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
        for alert in page["alerts"].as_array().into_iter().flatten() {
            *counts
                .entry(alert["rule_id"].as_str().unwrap_or_default().to_string())
                .or_default() += alert["count"].as_u64().unwrap_or(0);
        }
        let done = expected
            .iter()
            .all(|(rule, n)| counts.get(*rule) == Some(n));
        if done || started.elapsed() > Duration::from_secs(30) {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let page = get_json(&service, "/api/v1/alerts?limit=200", &admin).await;
    let alerts = page["alerts"].as_array().cloned().unwrap_or_default();
    let expected_map: std::collections::BTreeMap<String, u64> =
        expected.iter().map(|(r, n)| (r.to_string(), *n)).collect();
    assert_eq!(counts, expected_map, "{alerts:#?}");
    // No rule fired on an event of a source outside its logsource.
    for alert in &alerts {
        let rule = alert["rule_id"].as_str().unwrap_or_default();
        let Some((_, _, allowed)) = MIXED_RULES.iter().find(|(_, yaml, _)| yaml.contains(rule))
        else {
            continue;
        };
        let detail = get_json(
            &service,
            &format!(
                "/api/v1/alerts/{}",
                alert["id"].as_str().unwrap_or_default()
            ),
            &admin,
        )
        .await;
        for id in detail["event_ids"].as_array().into_iter().flatten() {
            let event = get_json(
                &service,
                &format!("/api/v1/events/{}", id.as_str().unwrap_or_default()),
                &admin,
            )
            .await;
            let source = event["source"].as_str().unwrap_or_default();
            assert!(
                allowed.contains(&source),
                "{rule} fired on {source}: {event}"
            );
        }
    }
    // Live alerts equal `garrison hunt` on the same files.
    let out = std::process::Command::new(BIN)
        .args([
            "hunt", "--quiet", "--format", "jsonl", "--rules", &rules_arg,
        ])
        .arg(&files)
        .output()
        .expect("hunt");
    let mut hunted: std::collections::BTreeMap<String, u64> = Default::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let hit: Value = serde_json::from_str(line).expect("jsonl");
        *hunted
            .entry(hit["rule_id"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let live_on_files: std::collections::BTreeMap<String, u64> = counts
        .iter()
        .filter(|(rule, _)| {
            MIXED_RULES.iter().any(|(_, yaml, allowed)| {
                yaml.contains(rule.as_str())
                    && allowed.iter().any(|s| ["winlogbeat", "zeek"].contains(s))
            })
        })
        .map(|(r, n)| (r.clone(), *n))
        .collect();
    assert_eq!(
        hunted,
        live_on_files,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
