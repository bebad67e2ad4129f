//! Alerts that do not come from Sigma rules: indicators matched live against normalised event
//! fields (once per event, not again after a restart), and an alert source's own alerts (an
//! EDR's), mapped to rule, title and level.

use std::time::{Duration, Instant};

use crate::harness::*;

const FEED: &str = "type,value,confidence\n\
                    ip,203.0.113.66,95\n\
                    domain,bad.example.net,60\n";

/// Waits until the detector has evaluated everything acknowledged.
async fn wait_detected(service: &Service) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(response) = client().get(service.url("/readyz")).send().await {
            if let Ok(body) = response.json::<serde_json::Value>().await {
                let committed = body["log_committed"].as_u64();
                if committed.is_some() && body["log_detected"].as_u64() == committed {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("detection did not catch up");
}

async fn send(service: &Service, token: &str, body: &str) {
    post_events(service, token, body).await;
}

async fn alerts(service: &Service, token: &str) -> Vec<serde_json::Value> {
    let page = get_json(service, "/api/v1/alerts?limit=100", token).await;
    page["alerts"].as_array().cloned().expect("alerts")
}

fn with_rule<'a>(alerts: &'a [serde_json::Value], rule: &str) -> Vec<&'a serde_json::Value> {
    alerts.iter().filter(|a| a["rule_id"] == rule).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicator_hits_and_external_alerts_become_alerts_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = cli(dir.path(), &["token", "create", "--role", "admin"]);
    let fw = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "fw"],
    );
    let edr = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "edr"],
    );
    let ids = cli(
        dir.path(),
        &["token", "create", "--ingest", "--source", "ids"],
    );
    let set = cli(
        dir.path(),
        &[
            "source",
            "set",
            "edr",
            "--alerts",
            "--alert-rule",
            "detect.rule_id",
            "--alert-title",
            "detect.name",
            "--alert-severity",
            "detect.severity",
        ],
    );
    assert!(set.contains("detect.rule_id"), "{set}");
    let mut service = Service::start(dir.path());

    let response = client()
        .post(service.url("/api/v1/indicators/import?format=csv&source=abuse"))
        .bearer_auth(&admin)
        .body(FEED)
        .send()
        .await
        .expect("import");
    assert_eq!(response.status().as_u16(), 200);

    // One event carries the indicator, one does not; a forged alert field on a source that is
    // not an alert source makes nothing.
    send(
        &service,
        &fw,
        "{\"_id\":\"c1\",\"dst\":\"203.0.113.66\",\"host\":\"ws1\"}\n\
         {\"_id\":\"c2\",\"dst\":\"198.51.100.1\",\"host\":\"ws1\"}\n\
         {\"_id\":\"c3\",\"garrison.alert\":{\"rule\":\"ext:forged\",\"title\":\"x\",\"level\":\"critical\"}}\n",
    )
    .await;
    wait_detected(&service).await;
    let found = alerts(&service, &admin).await;
    let ioc = with_rule(&found, "ioc:ip");
    assert_eq!(ioc.len(), 1, "{found:?}");
    assert_eq!(ioc[0]["count"], 1);
    assert_eq!(ioc[0]["level"], "critical");
    let title = ioc[0]["title"].as_str().expect("title");
    assert!(title.contains("203.0.113.66"), "{title}");
    assert!(title.contains("destination.ip"), "{title}");
    assert_eq!(ioc[0]["matched"]["destination.ip"], "203.0.113.66");
    assert!(with_rule(&found, "ext:forged").is_empty(), "{found:?}");
    assert_eq!(found.len(), 1, "{found:?}");

    // A restart (kill -9) and the same events again (a sender's retry): still one alert, one
    // event folded into it.
    service.kill9();
    let service = Service::start(dir.path());
    send(
        &service,
        &fw,
        "{\"_id\":\"c1\",\"dst\":\"203.0.113.66\",\"host\":\"ws1\"}\n",
    )
    .await;
    wait_detected(&service).await;
    let found = alerts(&service, &admin).await;
    let ioc = with_rule(&found, "ioc:ip");
    assert_eq!(ioc.len(), 1, "{found:?}");
    assert_eq!(ioc[0]["count"], 1, "{found:?}");

    // The EDR's own alerts: rule, title and level from its fields; repeats fold.
    send(
        &service,
        &edr,
        "{\"detect\":{\"rule_id\":\"R-1001\",\"name\":\"Mimikatz detected\",\"severity\":\"Critical\"},\"host\":{\"name\":\"ws2\"},\"pid\":4100}\n\
         {\"detect\":{\"rule_id\":\"R-1001\",\"name\":\"Mimikatz detected\",\"severity\":\"Critical\"},\"host\":{\"name\":\"ws2\"},\"pid\":4212}\n\
         {\"detect\":{\"rule_id\":\"R-2002\",\"name\":\"Suspicious PowerShell\",\"severity\":5},\"host\":{\"name\":\"ws2\"}}\n",
    )
    .await;
    wait_detected(&service).await;
    let found = alerts(&service, &admin).await;
    let mimikatz = with_rule(&found, "ext:R-1001");
    assert_eq!(mimikatz.len(), 1, "{found:?}");
    assert_eq!(mimikatz[0]["title"], "Mimikatz detected");
    assert_eq!(mimikatz[0]["level"], "critical");
    assert_eq!(mimikatz[0]["count"], 2);
    let powershell = with_rule(&found, "ext:R-2002");
    assert_eq!(powershell.len(), 1, "{found:?}");
    assert_eq!(powershell[0]["title"], "Suspicious PowerShell");
    assert_eq!(powershell[0]["level"], "medium");
    assert_eq!(found.len(), 3, "{found:?}");

    // The same through the API: an IDS made an alert source with `alert_mapping`.
    let response = client()
        .put(service.url("/api/v1/sources/ids"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"alert_mapping": {"rule": "alert.signature_id", "title": "alert.signature", "severity": "alert.severity"}}))
        .send()
        .await
        .expect("put source");
    assert_eq!(response.status().as_u16(), 200);
    let view: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        view["alert_mapping"]["rule"], "alert.signature_id",
        "{view}"
    );
    send(
        &service,
        &ids,
        "{\"alert\":{\"signature_id\":2019401,\"signature\":\"ET POLICY curl\",\"severity\":\"low\"}}\n",
    )
    .await;
    wait_detected(&service).await;
    let found = alerts(&service, &admin).await;
    let ids_alerts = with_rule(&found, "ext:2019401");
    assert_eq!(ids_alerts.len(), 1, "{found:?}");
    assert_eq!(ids_alerts[0]["title"], "ET POLICY curl");
    assert_eq!(ids_alerts[0]["level"], "low");
}
