//! Rules, alerts and the audit log: the same behaviour from every backend.

use garrison_model::{TenantId, Timestamp};
use garrison_store::*;
use serde_json::json;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("time")
}

fn rule(id: &str, yaml: &str) -> NewRule {
    NewRule {
        rule_id: id.to_string(),
        title: format!("title of {id}"),
        level: Some(garrison_model::Level::High),
        yaml: yaml.to_string(),
        origin: format!("rules/{id}.yml"),
    }
}

fn hit(tenant: TenantId, alert: &str, event: &str, seconds: i64) -> AlertHit {
    AlertHit {
        tenant_id: tenant,
        alert_id: alert.to_string(),
        rule_id: format!("rule-of-{alert}"),
        title: "Whoami".into(),
        level: garrison_model::Level::High,
        fingerprint: format!("fp-{alert}"),
        entity_json: json!({"host.name": "ws1"}).to_string(),
        window_start: at(0),
        event_id: event.to_string(),
        event_time: at(seconds),
        matched_json: json!({"Image": "whoami.exe"}).to_string(),
    }
}

pub async fn rules_import_with_versions_and_stay_in_their_tenant(store: &SqlStore) {
    let alpha = store.ensure_tenant("alpha").await.expect("alpha");
    let bravo = store.ensure_tenant("bravo").await.expect("bravo");
    assert_eq!(store.rules_revision(alpha.id).await.expect("rev"), 0);
    let summary = store
        .import_rules(alpha.id, &[rule("r1", "one"), rule("r2", "two")], false)
        .await
        .expect("import");
    assert_eq!(
        (summary.created, summary.updated, summary.enabled),
        (2, 0, 0)
    );
    let rev1 = store.rules_revision(alpha.id).await.expect("rev");
    assert!(rev1 > 0);
    assert!(store
        .list_rules(alpha.id, true)
        .await
        .expect("list")
        .is_empty());
    // Same text again: nothing changes, not even the revision.
    let again = store
        .import_rules(alpha.id, &[rule("r1", "one")], false)
        .await
        .expect("again");
    assert_eq!(again.unchanged, 1);
    assert_eq!(store.rules_revision(alpha.id).await.expect("rev"), rev1);
    // A new text is a new version; the old one is kept.
    let changed = store
        .import_rules(alpha.id, &[rule("r1", "one, changed")], true)
        .await
        .expect("changed");
    assert_eq!((changed.updated, changed.enabled), (1, 1));
    let r1 = store.rule(alpha.id, "r1").await.expect("get").expect("r1");
    assert_eq!(
        (r1.version, r1.enabled, r1.yaml.as_str()),
        (2, true, "one, changed")
    );
    assert_eq!(r1.origin, "rules/r1.yml");
    let versions = store.rule_versions(alpha.id, "r1").await.expect("versions");
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.yaml.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "one"), (2, "one, changed")]
    );
    assert!(store.rules_revision(alpha.id).await.expect("rev") > rev1);
    // Enable and disable; the other tenant sees and changes nothing.
    let r2 = store
        .set_rule_enabled(alpha.id, "r2", true)
        .await
        .expect("enable");
    assert!(r2.enabled);
    assert_eq!(
        store.list_rules(alpha.id, true).await.expect("list").len(),
        2
    );
    assert!(matches!(
        store.set_rule_enabled(bravo.id, "r2", false).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.rule(bravo.id, "r1").await.expect("get").is_none());
    assert!(store
        .list_rules(bravo.id, false)
        .await
        .expect("list")
        .is_empty());
    assert!(store
        .rule_versions(bravo.id, "r1")
        .await
        .expect("versions")
        .is_empty());
    assert_eq!(store.rules_revision(bravo.id).await.expect("rev"), 0);
    let revisions = store.all_rules_revisions().await.expect("all");
    assert!(revisions.iter().any(|(t, r)| *t == alpha.id && *r > 0));
    assert!(!revisions.iter().any(|(t, _)| *t == bravo.id));
    store
        .set_rule_enabled(alpha.id, "r2", false)
        .await
        .expect("disable");
    assert_eq!(
        store.list_rules(alpha.id, true).await.expect("list").len(),
        1
    );
    // Bad input is a clear error.
    assert!(matches!(
        store.import_rules(alpha.id, &[rule("", "x")], false).await,
        Err(StoreError::Invalid { .. })
    ));
}

pub async fn alerts_fold_hits_once_even_when_replayed(store: &SqlStore) {
    let alpha = store.ensure_tenant("alpha").await.expect("alpha");
    let bravo = store.ensure_tenant("bravo").await.expect("bravo");
    let batch = vec![
        hit(alpha.id, "A", "e1", 10),
        hit(alpha.id, "A", "e2", 5),
        hit(alpha.id, "A", "e2", 5), // the same event twice in the log
        hit(alpha.id, "B", "e1", 10),
    ];
    let outcome = store
        .record_detections(&batch, "detector", 100)
        .await
        .expect("record");
    assert_eq!(outcome.hits_new, 3);
    assert_eq!(outcome.alerts_created, 2);
    assert_eq!(store.consumer_position("detector").await.expect("pos"), 100);
    // A replay of the same range, then a later event.
    let replay = store
        .record_detections(&batch, "detector", 100)
        .await
        .expect("replay");
    assert_eq!(replay, DetectionOutcome::default());
    let later = store
        .record_detections(&[hit(alpha.id, "A", "e3", 20)], "detector", 200)
        .await
        .expect("later");
    assert_eq!((later.hits_new, later.alerts_updated), (1, 1));
    let a = store.alert(alpha.id, "A").await.expect("get").expect("A");
    assert_eq!(a.count, 3);
    assert_eq!(a.first_seen, at(5));
    assert_eq!(a.last_seen, at(20));
    assert_eq!(a.incident_id, None);
    assert_eq!(a.matched["Image"], "whoami.exe");
    assert_eq!(a.entity["host.name"], "ws1");
    assert_eq!(
        store
            .alert_event_ids(alpha.id, "A", 10)
            .await
            .expect("events"),
        vec!["e2", "e1", "e3"]
    );
    // Tenants are apart.
    assert!(store.alert(bravo.id, "A").await.expect("get").is_none());
    assert!(store
        .alert_event_ids(bravo.id, "A", 10)
        .await
        .expect("events")
        .is_empty());
    let page = store
        .list_alerts(
            bravo.id,
            &AlertQuery {
                limit: 10,
                ..AlertQuery::default()
            },
        )
        .await
        .expect("list");
    assert!(page.items.is_empty());
    // Filters and pages.
    let by_rule = store
        .list_alerts(
            alpha.id,
            &AlertQuery {
                rule_id: Some("rule-of-B".into()),
                limit: 10,
                ..AlertQuery::default()
            },
        )
        .await
        .expect("by rule");
    assert_eq!(by_rule.items.len(), 1);
    assert_eq!(by_rule.items[0].alert_id, "B");
    let late = store
        .list_alerts(
            alpha.id,
            &AlertQuery {
                from: Some(at(15)),
                limit: 10,
                ..AlertQuery::default()
            },
        )
        .await
        .expect("from");
    assert_eq!(late.items.len(), 1);
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_alerts(
                alpha.id,
                &AlertQuery {
                    limit: 1,
                    cursor: cursor.clone(),
                    ..AlertQuery::default()
                },
            )
            .await
            .expect("page");
        seen.extend(page.items.into_iter().map(|a| a.alert_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, vec!["A", "B"]);
    assert!(matches!(
        store
            .list_alerts(
                alpha.id,
                &AlertQuery {
                    cursor: Some("bogus".into()),
                    limit: 1,
                    ..AlertQuery::default()
                }
            )
            .await,
        Err(StoreError::Invalid { .. })
    ));
}

pub async fn the_audit_chain_verifies_and_names_the_first_tampered_entry(store: &SqlStore) {
    let alpha = store.ensure_tenant("alpha").await.expect("alpha");
    let bravo = store.ensure_tenant("bravo").await.expect("bravo");
    for i in 0..5 {
        store
            .append_audit(
                alpha.id,
                NewAuditEntry {
                    actor: "user:ana".into(),
                    action: "rule.enable".into(),
                    target: format!("r{i}"),
                    details: json!({"i": i}),
                },
            )
            .await
            .expect("append");
    }
    let first_bravo = store
        .append_audit(
            bravo.id,
            NewAuditEntry {
                actor: "user:bob".into(),
                action: "auth.login".into(),
                target: "bob".into(),
                details: json!({}),
            },
        )
        .await
        .expect("append");
    assert_eq!(first_bravo.seq, 1);
    assert_eq!(first_bravo.prev_hash, GENESIS_HASH);
    let page = store
        .list_audit(
            alpha.id,
            &AuditQuery {
                limit: 3,
                ..AuditQuery::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(page.entries.len(), 3);
    assert_eq!(page.entries[1].prev_hash, page.entries[0].hash);
    let rest = store
        .list_audit(
            alpha.id,
            &AuditQuery {
                after: page.next_after,
                limit: 10,
                ..AuditQuery::default()
            },
        )
        .await
        .expect("rest");
    assert_eq!(
        rest.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert!(rest.entries.iter().all(|e| e.tenant_id == alpha.id));
    let ok = store.verify_audit(alpha.id).await.expect("verify");
    assert_eq!(
        ok,
        AuditVerification {
            entries: 5,
            first_bad: None,
            checkpoint: None,
        }
    );
    // Concurrent appends still make one chain.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let tenant = alpha.id;
        tasks.push(tokio::spawn(async move {
            store
                .append_audit(
                    tenant,
                    NewAuditEntry {
                        actor: "system:test".into(),
                        action: "probe".into(),
                        target: i.to_string(),
                        details: json!(null),
                    },
                )
                .await
                .expect("append")
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let ok = store.verify_audit(alpha.id).await.expect("verify");
    assert_eq!(
        ok,
        AuditVerification {
            entries: 13,
            first_bad: None,
            checkpoint: None,
        }
    );
    // A tampered entry is found and named; the other tenant's chain is unaffected.
    store
        .tamper_audit_for_tests(alpha.id, 3, "user:mallory")
        .await
        .expect("tamper");
    let bad = store.verify_audit(alpha.id).await.expect("verify");
    assert_eq!(bad.entries, 2);
    let first_bad = bad.first_bad.expect("tampering found");
    assert_eq!(first_bad.seq, 3);
    assert!(first_bad.reason.contains("changed"), "{}", first_bad.reason);
    assert_eq!(
        store
            .verify_audit(bravo.id)
            .await
            .expect("verify")
            .first_bad,
        None
    );
}
