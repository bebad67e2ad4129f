//! The playbooks shipped in `playbooks/` validate against the service's own actions (not a
//! test registry), and each starts from its triggers' documented payload with the inputs it
//! needs and completes a dry run.

use garrison_playbook::{dry_run, validate, RunStatus, Trigger};
use serde_json::{json, Value as Json};

/// Shipped playbooks that call connectors not written yet; each must still fail validation on
/// an unknown action, so the list shrinks when the connector lands.
const AWAITING_CONNECTORS: &[&str] = &["isolate-host-after-approval"];

/// An alert as the alert follower hands it over (see `garrison_store::Alert`).
fn alert(rule_id: &str, title: &str, entity: Json) -> Json {
    json!({
        "kind": "alert",
        "alert": {
            "tenant_id": 1, "alert_id": "a1", "rule_id": rule_id, "title": title,
            "level": "high", "fingerprint": "f", "entity": entity,
            "window_start": "2026-12-07T10:00:00Z", "count": 12,
            "first_seen": "2026-12-07T10:02:00Z", "last_seen": "2026-12-07T10:02:33Z",
            "matched": {}, "incident_id": null, "status": "new",
            "created": "2026-12-07T10:02:34Z", "updated": "2026-12-07T10:02:34Z"
        }
    })
}

/// A payload each alert-triggered shipped playbook is meant to start from.
fn sample_payload(playbook: &str) -> Option<Json> {
    Some(match playbook {
        "block-brute-force-source" => alert(
            "0c6f3b4e-1a52-4f47-9d1e-5a8a3f0e7a03",
            "SSH brute force from one address",
            json!({"source.ip": "203.0.113.77"}),
        ),
        "block-beaconing-destination" => alert(
            "3b672d66-2911-4eb5-85ea-97729b4eb44f",
            "Possible beaconing",
            json!({"source.ip": "10.0.0.5", "destination.ip": "198.51.100.23"}),
        ),
        "block-ip-with-lease" => alert("any", "Port scan", json!({"source.ip": "192.0.2.44"})),
        "enrich-alert-iocs" => alert(
            "any",
            "Connection to a known C2",
            json!({"source.ip": "10.0.0.5", "destination.ip": "198.51.100.23"}),
        ),
        _ => return None,
    })
}

#[test]
fn shipped_playbooks_validate_and_start_from_their_triggers() {
    let registry = garrison_soar::registry();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../playbooks");
    let mut started = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("playbooks dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read");
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let (playbook, errors) = validate(&text, &registry);
        if AWAITING_CONNECTORS.contains(&name) {
            assert!(
                errors
                    .iter()
                    .any(|e| e.message.starts_with("unknown action")),
                "{name} validates now: take it off AWAITING_CONNECTORS"
            );
            continue;
        }
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        let playbook = playbook.expect("playbook");
        for trigger in &playbook.triggers {
            if !matches!(trigger, Trigger::Alert { .. }) {
                continue;
            }
            let payload = sample_payload(&playbook.name)
                .unwrap_or_else(|| panic!("{}: add a sample alert to this test", playbook.name));
            if let Trigger::Alert {
                condition: Some(c), ..
            } = trigger
            {
                let context = json!({"alert": payload["alert"]});
                let holds = garrison_expr::eval_bool("condition", c, &context)
                    .unwrap_or_else(|e| panic!("{}: {e}", playbook.name));
                assert!(
                    holds,
                    "{}: the sample alert does not pass {c}",
                    playbook.name
                );
            }
            let inputs = playbook
                .trigger_inputs(trigger, &payload)
                .unwrap_or_else(|e| panic!("{}: {e:?}", playbook.name));
            let run = dry_run(&playbook, &inputs, payload, jiff::Timestamp::now())
                .unwrap_or_else(|e| panic!("{}: {e:?}", playbook.name));
            assert_eq!(
                run.status,
                RunStatus::Succeeded,
                "{}: {run:#?}",
                playbook.name
            );
            started.push(playbook.name.clone());
        }
    }
    assert!(started.len() >= 4, "{started:?}");
}
