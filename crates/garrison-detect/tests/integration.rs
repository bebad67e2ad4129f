//! The detector against a real log and a real (SQLite) store.

use std::sync::Arc;

use garrison_bus::{EventLog, LogConfig};
use garrison_detect::{DetectConfig, Detector, DETECTOR};
use garrison_model::{LogSource, TenantId, Timestamp};
use garrison_pipeline::codec;
use garrison_store::*;
use serde_json::json;

const WHOAMI: &str = "title: Whoami\nid: 11111111-0000-4000-8000-000000000001\nlevel: high\nlogsource: { product: windows, category: process_creation }\ndetection: { selection: { Image|endswith: '\\whoami.exe' }, condition: selection }\n";
const WHOAMI_ID: &str = "11111111-0000-4000-8000-000000000001";
const BURST: &str = "title: Whoami burst\nid: 22222222-0000-4000-8000-000000000002\nlevel: critical\ncorrelation:\n  type: event_count\n  rules: [11111111-0000-4000-8000-000000000001]\n  group-by: [Computer]\n  timespan: 1h\n  condition: { gte: 3 }\ngenerate: true\n";

fn row(tenant: TenantId, id: &str, seconds: i64, host: &str, image: &str) -> EventRow {
    let fields = json!({
        "EventID": 1,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": host,
        "User": "CORP\\ana",
        "Image": image,
    });
    let time = Timestamp::from_second(1_700_000_000 + seconds).expect("time");
    EventRow {
        id: id.to_string(),
        tenant_id: tenant,
        time,
        received: Timestamp::now(),
        source: "sysmon".into(),
        logsource: LogSource::default(),
        fields_json: fields.to_string(),
        normalized_json: json!({"host.name": host, "user.name": "CORP\\ana"}).to_string(),
        raw: None,
        search_text: String::new(),
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<SqlStore>,
    log: EventLog,
    alpha: TenantId,
    bravo: TenantId,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = Arc::new(SqlStore::connect(&url).await.expect("store"));
    let log = EventLog::open(LogConfig::new(dir.path().join("log"))).expect("log");
    let alpha = store.ensure_tenant("alpha").await.expect("alpha").id;
    let bravo = store.ensure_tenant("bravo").await.expect("bravo").id;
    let parsed = garrison_detect::rules::parse_rule_files(
        vec![
            garrison_sigma::RuleSource::new("whoami.yml", WHOAMI),
            garrison_sigma::RuleSource::new("burst.yml", BURST),
        ],
        &Default::default(),
    );
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    store
        .import_rules(alpha, &parsed.rules, true)
        .await
        .expect("import");
    Setup {
        _dir: dir,
        store,
        log,
        alpha,
        bravo,
    }
}

async fn alerts(store: &SqlStore, tenant: TenantId) -> Vec<Alert> {
    store
        .list_alerts(
            tenant,
            &AlertQuery {
                limit: 1000,
                ..AlertQuery::default()
            },
        )
        .await
        .expect("alerts")
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_fold_into_alerts_once_and_a_replay_changes_nothing() {
    let s = setup().await;
    let batch = vec![
        row(
            s.alpha,
            "e1",
            10,
            "ws1",
            "C:\\Windows\\System32\\whoami.exe",
        ),
        row(
            s.alpha,
            "e2",
            20,
            "ws1",
            "C:\\Windows\\System32\\whoami.exe",
        ),
        row(
            s.alpha,
            "e3",
            30,
            "ws2",
            "C:\\Windows\\System32\\whoami.exe",
        ),
        row(s.alpha, "e4", 40, "ws1", "C:\\Windows\\notepad.exe"),
        // Bravo has no rules: its whoami is nobody's alert.
        row(
            s.bravo,
            "b1",
            10,
            "ws1",
            "C:\\Windows\\System32\\whoami.exe",
        ),
    ];
    s.log.append(&codec::encode(&batch)).await.expect("append");
    // The same events again (a sender's retry), and a third whoami on ws1 in the same hour.
    s.log
        .append(&codec::encode(&batch[..2]))
        .await
        .expect("append");
    s.log
        .append(&codec::encode(&[row(
            s.alpha,
            "e5",
            50,
            "ws1",
            "C:\\Windows\\System32\\whoami.exe",
        )]))
        .await
        .expect("append");
    let config = DetectConfig {
        max_batch_events: 3,
        ..DetectConfig::default()
    };
    let (mut detector, position) = Detector::new(s.store.clone(), s.log.clone(), config.clone())
        .await
        .expect("detector");
    let read = detector.run_once().await.expect("run");
    assert_eq!(read, 8);
    assert_eq!(*position.borrow(), s.log.committed_end());
    assert_eq!(
        s.store.consumer_position(DETECTOR).await.expect("position"),
        s.log.committed_end()
    );

    let check = |alerts: Vec<Alert>| {
        let whoami: Vec<&Alert> = alerts.iter().filter(|a| a.rule_id == WHOAMI_ID).collect();
        assert_eq!(whoami.len(), 2, "{alerts:?}");
        let ws1 = whoami
            .iter()
            .find(|a| a.entity["host.name"] == "ws1")
            .expect("ws1 alert");
        assert_eq!(ws1.count, 3);
        assert_eq!(ws1.first_seen.as_second(), 1_700_000_010);
        assert_eq!(ws1.last_seen.as_second(), 1_700_000_050);
        assert_eq!(ws1.level, garrison_model::Level::High);
        assert_eq!(ws1.entity["user.name"], "CORP\\ana");
        let ws2 = whoami
            .iter()
            .find(|a| a.entity["host.name"] == "ws2")
            .expect("ws2 alert");
        assert_eq!(ws2.count, 1);
        // The correlation fired once, on the third whoami of ws1.
        let burst: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.rule_id == "22222222-0000-4000-8000-000000000002")
            .collect();
        assert_eq!(burst.len(), 1, "{alerts:?}");
        assert_eq!(burst[0].level, garrison_model::Level::Critical);
        // Every event that made it fire is folded into it, not only the third.
        assert_eq!(burst[0].count, 3);
        (ws1.alert_id.clone(), burst[0].alert_id.clone())
    };
    let (ws1, burst) = check(alerts(&s.store, s.alpha).await);
    assert!(alerts(&s.store, s.bravo).await.is_empty());
    assert_eq!(
        s.store
            .alert_event_ids(s.alpha, &ws1, 10)
            .await
            .expect("ids"),
        vec!["e1", "e2", "e5"]
    );
    let mut contributing = s
        .store
        .alert_event_ids(s.alpha, &burst, 10)
        .await
        .expect("ids");
    contributing.sort();
    assert_eq!(contributing, vec!["e1", "e2", "e5"]);

    // A crash before the position was kept: the whole log is read again. Same alerts, same
    // counts, same ids.
    s.store
        .store_events(&[], DETECTOR, 0)
        .await
        .expect("rewind");
    let (mut again, _) = Detector::new(s.store.clone(), s.log.clone(), config)
        .await
        .expect("detector");
    assert_eq!(again.run_once().await.expect("run"), 8);
    assert_eq!(check(alerts(&s.store, s.alpha).await), (ws1, burst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_rules_stop_alerting_and_enabled_ones_start() {
    let s = setup().await;
    let (mut detector, _) = Detector::new(s.store.clone(), s.log.clone(), DetectConfig::default())
        .await
        .expect("detector");
    detector.refresh_rules().await.expect("refresh");
    assert_eq!(detector.loaded_rules(), vec![(s.alpha, 2)]);
    s.store
        .set_rule_enabled(s.alpha, WHOAMI_ID, false)
        .await
        .expect("disable");
    assert!(detector.refresh_rules().await.expect("refresh"));
    s.log
        .append(&codec::encode(&[row(
            s.alpha,
            "e1",
            10,
            "ws1",
            "C:\\whoami.exe",
        )]))
        .await
        .expect("append");
    detector.run_once().await.expect("run");
    assert!(alerts(&s.store, s.alpha).await.is_empty());
    // Bravo imports and enables the rule: its events alert, alpha's still do not.
    let parsed = garrison_detect::rules::parse_rule_files(
        vec![garrison_sigma::RuleSource::new("whoami.yml", WHOAMI)],
        &Default::default(),
    );
    s.store
        .import_rules(s.bravo, &parsed.rules, true)
        .await
        .expect("import");
    detector.refresh_rules().await.expect("refresh");
    s.log
        .append(&codec::encode(&[
            row(s.bravo, "b1", 10, "ws9", "C:\\whoami.exe"),
            row(s.alpha, "e2", 11, "ws1", "C:\\whoami.exe"),
        ]))
        .await
        .expect("append");
    detector.run_once().await.expect("run");
    assert!(alerts(&s.store, s.alpha).await.is_empty());
    let bravo = alerts(&s.store, s.bravo).await;
    assert_eq!(bravo.len(), 1);
    assert_eq!(bravo[0].tenant_id, s.bravo);
}

#[test]
fn a_rule_test_reports_what_it_would_have_matched() {
    let event = |id: &str, image: &str| garrison_model::Event {
        id: id.into(),
        tenant_id: TenantId(1),
        time: Timestamp::from_second(1_700_000_000).expect("time"),
        received: Timestamp::from_second(1_700_000_000).expect("time"),
        source: "s".into(),
        logsource: LogSource::default(),
        fields: json!({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Image": image}),
        fields_text: None,
        normalized: serde_json::Map::new(),
        raw: None,
    };
    let matches = garrison_detect::test_rule(
        WHOAMI_ID,
        WHOAMI,
        &[event("a", "C:\\whoami.exe"), event("b", "C:\\calc.exe")]
            .iter()
            .filter_map(garrison_detect::TestEvent::of)
            .collect::<Vec<_>>(),
        &Default::default(),
    )
    .expect("compiles");
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].event_id, "a");
    assert_eq!(matches[0].matched["Image"], "C:\\whoami.exe");
    assert!(
        garrison_detect::test_rule("x", "title: x\ndetection: {}\n", &[], &Default::default())
            .is_err()
    );
}

fn net_row(tenant: TenantId, id: &str, seconds: i64, normalized: serde_json::Value) -> EventRow {
    EventRow {
        id: id.to_string(),
        tenant_id: tenant,
        time: Timestamp::from_second(1_700_000_000 + seconds).expect("time"),
        received: Timestamp::now(),
        source: "fw".into(),
        logsource: LogSource::default(),
        fields_json: json!({"msg": id}).to_string(),
        normalized_json: normalized.to_string(),
        raw: None,
        search_text: String::new(),
    }
}

fn indicator(kind: &str, value: &str, source: &str, confidence: i64) -> NewIndicator {
    NewIndicator {
        kind: kind.into(),
        value: value.into(),
        source: source.into(),
        confidence,
        first_seen: None,
        expires: None,
        tags: Vec::new(),
        description: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicators_in_normalised_fields_fold_into_alerts_once() {
    let s = setup().await;
    // Bravo has no rules: indicators alone make its events worth reading.
    s.store
        .upsert_indicators(
            s.bravo,
            &[
                indicator("ip", "203.0.113.7", "feed-a", 80),
                indicator("ip", "203.0.113.7", "feed-c", 50),
                indicator("domain", "evil.example", "feed-b", 95),
            ],
            Timestamp::now(),
        )
        .await
        .expect("indicators");
    let batch = vec![
        net_row(
            s.bravo,
            "b1",
            10,
            json!({"host.name": "ws9", "source.ip": "10.0.0.1", "destination.ip": "203.0.113.7"}),
        ),
        net_row(
            s.bravo,
            "b2",
            20,
            json!({"host.name": "ws9", "dns.question.name": "A.Evil.Example."}),
        ),
        net_row(
            s.bravo,
            "b3",
            30,
            json!({"host.name": "ws9", "destination.ip": "198.51.100.1"}),
        ),
        net_row(
            s.bravo,
            "b4",
            40,
            json!({"host.name": "ws9", "destination.ip": "203.0.113.7", "related.ip": ["203.0.113.7"]}),
        ),
    ];
    s.log.append(&codec::encode(&batch)).await.expect("append");
    let (mut detector, _) = Detector::new(s.store.clone(), s.log.clone(), DetectConfig::default())
        .await
        .expect("detector");
    assert_eq!(detector.run_once().await.expect("run"), 4);
    assert_eq!(detector.loaded_indicators(), vec![(s.bravo, 3)]);

    let check = |alerts: Vec<Alert>| {
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        let ip = alerts
            .iter()
            .find(|a| a.rule_id == "ioc:ip")
            .expect("ip alert");
        // Two events, one alert; the same value in two fields of b4 counts once.
        assert_eq!(ip.count, 2);
        // The best source's confidence (80, not decayed: no first-seen time) is the level.
        assert_eq!(ip.level, garrison_model::Level::High);
        assert!(ip.title.contains("203.0.113.7"), "{}", ip.title);
        assert!(ip.title.contains("destination.ip"), "{}", ip.title);
        assert_eq!(ip.matched["destination.ip"], "203.0.113.7");
        assert_eq!(ip.matched["indicator.source"], "feed-a");
        assert_eq!(ip.entity["host.name"], "ws9");
        assert_eq!(ip.entity["indicator"], "ip:203.0.113.7");
        let domain = alerts
            .iter()
            .find(|a| a.rule_id == "ioc:domain")
            .expect("domain alert");
        assert_eq!(domain.count, 1);
        assert_eq!(domain.level, garrison_model::Level::Critical);
        assert_eq!(domain.matched["dns.question.name"], "A.Evil.Example.");
        (ip.alert_id.clone(), domain.alert_id.clone())
    };
    let ids = check(alerts(&s.store, s.bravo).await);
    // Alpha's events and alerts are untouched by bravo's indicators.
    assert!(alerts(&s.store, s.alpha).await.is_empty());

    // A replay of the whole log: same alerts, same counts.
    s.store
        .store_events(&[], DETECTOR, 0)
        .await
        .expect("rewind");
    let (mut again, _) = Detector::new(s.store.clone(), s.log.clone(), DetectConfig::default())
        .await
        .expect("detector");
    assert_eq!(again.run_once().await.expect("run"), 4);
    assert_eq!(check(alerts(&s.store, s.bravo).await), ids);

    // An indicator expired, another imported: the set is rebuilt before the next batch.
    let domain = s
        .store
        .list_indicators(
            s.bravo,
            &IndicatorQuery {
                kind: Some("domain".into()),
                limit: 10,
                ..IndicatorQuery::default()
            },
        )
        .await
        .expect("list")
        .items;
    s.store
        .expire_indicator(s.bravo, domain[0].id, Timestamp::now())
        .await
        .expect("expire");
    s.store
        .upsert_indicators(
            s.bravo,
            &[indicator("cidr", "198.51.100.0/24", "feed-d", 30)],
            Timestamp::now(),
        )
        .await
        .expect("cidr");
    s.log
        .append(&codec::encode(&[
            net_row(
                s.bravo,
                "b5",
                50,
                json!({"dns.question.name": "evil.example"}),
            ),
            net_row(s.bravo, "b6", 60, json!({"destination.ip": "198.51.100.9"})),
        ]))
        .await
        .expect("append");
    assert_eq!(again.run_once().await.expect("run"), 2);
    let after = alerts(&s.store, s.bravo).await;
    assert_eq!(after.len(), 3, "{after:?}");
    let cidr = after
        .iter()
        .find(|a| a.rule_id == "ioc:cidr")
        .expect("cidr alert");
    assert_eq!(cidr.level, garrison_model::Level::Low);
    assert_eq!(cidr.matched["destination.ip"], "198.51.100.9");
    let domain = after
        .iter()
        .find(|a| a.rule_id == "ioc:domain")
        .expect("domain");
    assert_eq!(domain.count, 1, "an expired indicator raised an alert");
}
