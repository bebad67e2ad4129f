//! Incidents, their timeline, tasks, attachments, suppressions, grouping, assets and SLA
//! policy: the same behaviour from every backend, and nothing crosses tenants.

use garrison_cases::{
    apply, extract_observables, parse_assets_csv, similar_incidents, Action, Actor, Asset,
    Classification, Criticality, EntityKey, GroupKey, GroupingRule, Incident, IncidentUpdate,
    Observable, ObservableKind, Severity, SlaPolicy, SlaTargets, SocMetrics, StateDef, Suppression,
    TimelineKind, Workflow,
};
use garrison_model::{Role, TenantId, Timestamp};
use garrison_store::*;
use serde_json::json;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("time")
}

async fn tenants(store: &SqlStore) -> (TenantId, TenantId) {
    (
        store.ensure_tenant("alpha").await.expect("alpha").id,
        store.ensure_tenant("bravo").await.expect("bravo").id,
    )
}

fn ana() -> Actor {
    Actor::new("ana", &[Role::Analyst])
}

fn open(id: &str, t: i64) -> (Incident, Vec<garrison_cases::TimelineEvent>) {
    let (incident, created) = Incident::open(
        &Workflow::default_soc(),
        id,
        format!("incident {id}"),
        Severity::High,
        "system",
        at(t),
    );
    (incident, vec![created])
}

fn link(alert: &str, rule: &str) -> LinkedAlert {
    LinkedAlert {
        alert_id: alert.into(),
        rule_id: rule.into(),
    }
}

fn observable(kind: ObservableKind, value: &str) -> Observable {
    Observable {
        kind,
        value: value.into(),
        field: "f".into(),
    }
}

/// Stores an alert through the detection path, so `alerts` rows exist to link and suppress.
async fn alert(store: &SqlStore, tenant: TenantId, alert_id: &str, rule: &str, t: i64) {
    store
        .record_detections(
            &[AlertHit {
                tenant_id: tenant,
                alert_id: alert_id.into(),
                rule_id: rule.into(),
                title: "t".into(),
                level: garrison_model::Level::High,
                fingerprint: format!("fp-{alert_id}"),
                entity_json: json!({"host.name": "ws1"}).to_string(),
                window_start: at(t),
                event_id: format!("e-{alert_id}"),
                event_time: at(t),
                matched_json: json!({}).to_string(),
            }],
            "detector",
            1,
        )
        .await
        .expect("record");
}

pub async fn workflows_are_versioned_per_tenant(store: &SqlStore) {
    let (alpha, bravo) = tenants(store).await;
    let builtin = store.workflow(alpha, None).await.expect("default");
    assert_eq!(
        (builtin.version, &builtin.workflow),
        (1, &Workflow::default_soc())
    );
    let mut custom = Workflow::default_soc();
    custom.name = "alpha-soc".into();
    let saved = store
        .save_workflow(alpha, &custom, "ana", at(0))
        .await
        .expect("save");
    assert_eq!((saved.version, saved.workflow.version), (2, 2));
    let again = store
        .save_workflow(alpha, &custom, "ana", at(1))
        .await
        .expect("again");
    assert_eq!(again.version, 2, "the same definition is not a new version");
    custom.states[1].required_fields.push("summary".into());
    let third = store
        .save_workflow(alpha, &custom, "bob", at(2))
        .await
        .expect("third");
    assert_eq!(third.version, 3);
    assert_eq!(
        store.workflow(alpha, None).await.expect("latest").version,
        3
    );
    let second = store.workflow(alpha, Some(2)).await.expect("v2");
    assert!(second.workflow.states[1].required_fields == ["assignee"]);
    assert_eq!(second.created_by, "ana");
    assert_eq!(
        store.workflow(alpha, Some(1)).await.expect("v1").workflow,
        Workflow::default_soc()
    );
    assert!(matches!(
        store.workflow(alpha, Some(9)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.workflow(bravo, None).await.expect("bravo").version,
        1,
        "another tenant's workflow is not bravo's"
    );
    let mut broken = Workflow::default_soc();
    broken.states.push(StateDef {
        name: "orphan".into(),
        stage: garrison_cases::Stage::Analysis,
        required_fields: vec![],
    });
    let err = store
        .save_workflow(alpha, &broken, "ana", at(3))
        .await
        .expect_err("invalid");
    assert!(err.to_string().contains("orphan"), "{err}");
}

pub async fn incidents_change_by_revision_with_their_timeline(store: &SqlStore) {
    let (alpha, bravo) = tenants(store).await;
    let w = Workflow::default_soc();
    let (incident, events) = open("inc-1", 0);
    let stored = store
        .create_incident(alpha, &incident, &events, &[], &[])
        .await
        .expect("create");
    assert_eq!((stored.rev, &stored.incident), (1, &incident));
    assert!(matches!(
        store
            .create_incident(alpha, &incident, &events, &[], &[])
            .await,
        Err(StoreError::Conflict { .. })
    ));
    // The same id in another tenant is another incident.
    store
        .create_incident(bravo, &incident, &events, &[], &[])
        .await
        .expect("bravo's own");

    let (assigned, new_events) = apply(
        &w,
        &stored.incident,
        Action::Assign {
            assignee: Some("ana".into()),
            team: None,
        },
        &ana(),
        at(10),
    )
    .expect("assign");
    let (triaged, more) = apply(
        &w,
        &assigned,
        Action::Transition {
            to: "triage".into(),
        },
        &ana(),
        at(20),
    )
    .expect("triage");
    let all: Vec<_> = new_events.into_iter().chain(more).collect();
    let updated = store
        .update_incident(alpha, &triaged, stored.rev, &all)
        .await
        .expect("update");
    assert_eq!(updated.rev, 2);
    assert_eq!(updated.incident, triaged);
    assert_eq!(updated.incident.acknowledged, Some(at(20)));
    // A writer holding the old revision loses, and writes nothing.
    let err = store
        .update_incident(alpha, &assigned, stored.rev, &[])
        .await
        .expect_err("stale");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(matches!(
        store.update_incident(bravo, &triaged, 2, &[]).await,
        Err(StoreError::Conflict { .. })
    ));
    let bravo_copy = store
        .incident(bravo, "inc-1")
        .await
        .expect("get")
        .expect("bravo");
    assert_eq!(
        bravo_copy.incident.state, "new",
        "bravo's incident is untouched"
    );

    let timeline = store
        .timeline(alpha, "inc-1", 0, 100)
        .await
        .expect("timeline");
    let kinds: Vec<&str> = timeline
        .iter()
        .map(|e| match e.event.kind {
            TimelineKind::Created { .. } => "created",
            TimelineKind::Assigned { .. } => "assigned",
            TimelineKind::StateChanged { .. } => "state_changed",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["created", "assigned", "state_changed"]);
    let after = store
        .timeline(alpha, "inc-1", timeline[0].seq, 100)
        .await
        .expect("page");
    assert_eq!(after.len(), 2);
    store
        .append_timeline(
            alpha,
            "inc-1",
            &[garrison_cases::TimelineEvent {
                time: at(30),
                actor: "playbook:enrich".into(),
                kind: TimelineKind::PlaybookAction {
                    playbook: "enrich".into(),
                    action: "whois".into(),
                    outcome: "ok".into(),
                },
            }],
        )
        .await
        .expect("append");
    assert_eq!(
        store
            .timeline(alpha, "inc-1", 0, 100)
            .await
            .expect("t")
            .len(),
        4
    );
    assert_eq!(
        store
            .timeline(bravo, "inc-1", 0, 100)
            .await
            .expect("t")
            .len(),
        1
    );
    assert!(matches!(
        store.append_timeline(alpha, "ghost", &[]).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn incidents_list_with_filters_and_cursors(store: &SqlStore) {
    let (alpha, bravo) = tenants(store).await;
    for i in 0..23 {
        let (mut incident, events) = open(&format!("i{i:02}"), i);
        incident.score = (i % 5) as u32 * 10;
        incident.severity = if i % 2 == 0 {
            Severity::High
        } else {
            Severity::Low
        };
        if i % 3 == 0 {
            incident.tags.insert("ransomware".into());
        }
        store
            .create_incident(alpha, &incident, &events, &[], &[])
            .await
            .expect("create");
    }
    let (other, events) = open("b0", 0);
    store
        .create_incident(bravo, &other, &events, &[], &[])
        .await
        .expect("bravo");
    for order in [IncidentOrder::Newest, IncidentOrder::Score] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_incidents(
                    alpha,
                    &IncidentQuery {
                        order,
                        limit: 4,
                        cursor: cursor.clone(),
                        ..IncidentQuery::default()
                    },
                )
                .await
                .expect("page");
            seen.extend(page.items.into_iter().map(|i| i.incident));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 23, "{order:?}: no gaps, no repeats, no bravo");
        let mut ids: Vec<&str> = seen.iter().map(|i| i.id.as_str()).collect();
        if order == IncidentOrder::Score {
            assert!(
                seen.windows(2).all(|w| w[0].score >= w[1].score),
                "queue order"
            );
            assert_eq!(seen[0].id, "i19", "highest score, newest first");
        } else {
            assert_eq!(ids[0], "i22");
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 23);
    }
    let count = |q: IncidentQuery| async move {
        store
            .list_incidents(alpha, &IncidentQuery { limit: 100, ..q })
            .await
            .expect("list")
            .items
            .len()
    };
    assert_eq!(
        count(IncidentQuery {
            severity: Some(Severity::High),
            ..IncidentQuery::default()
        })
        .await,
        12
    );
    assert_eq!(
        count(IncidentQuery {
            tag: Some("ransomware".into()),
            ..IncidentQuery::default()
        })
        .await,
        8
    );
    assert_eq!(
        count(IncidentQuery {
            state: Some("new".into()),
            open: Some(true),
            from: Some(at(20)),
            ..IncidentQuery::default()
        })
        .await,
        3
    );
    assert_eq!(
        count(IncidentQuery {
            open: Some(false),
            ..IncidentQuery::default()
        })
        .await,
        0
    );
    let err = store
        .list_incidents(
            alpha,
            &IncidentQuery {
                order: IncidentOrder::Score,
                cursor: Some("n5".into()),
                limit: 5,
                ..IncidentQuery::default()
            },
        )
        .await
        .expect_err("cursor of the other order");
    assert!(err.to_string().contains("cursor"), "{err}");
}

pub async fn alerts_link_merge_and_split_between_incidents(store: &SqlStore) {
    let (alpha, bravo) = tenants(store).await;
    for (id, rule) in [("a1", "r1"), ("a2", "r1"), ("a3", "r2"), ("a4", "r3")] {
        alert(store, alpha, id, rule, 0).await;
    }
    let (one, events) = open("one", 0);
    store
        .create_incident(
            alpha,
            &one,
            &events,
            &[link("a1", "r1"), link("a2", "r1")],
            &[observable(ObservableKind::Ip, "10.0.0.1")],
        )
        .await
        .expect("one");
    let (mut two, events) = open("two", 1);
    two.score = 70;
    store
        .create_incident(
            alpha,
            &two,
            &events,
            &[link("a3", "r2")],
            &[observable(ObservableKind::Domain, "evil.example")],
        )
        .await
        .expect("two");
    let (three, events) = open("three", 2);
    store
        .create_incident(alpha, &three, &events, &[], &[])
        .await
        .expect("three");
    assert_eq!(
        store
            .alert(alpha, "a1")
            .await
            .expect("alert")
            .and_then(|a| a.incident_id),
        Some("one".to_string()),
        "the alert row names its incident"
    );
    assert_eq!(
        store
            .link_alerts(alpha, "three", &[link("a4", "r3")], at(3))
            .await
            .expect("link"),
        1
    );
    assert!(matches!(
        store
            .link_alerts(bravo, "three", &[link("a4", "r3")], at(3))
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let merged = store
        .merge_incidents(alpha, "one", &["two".into(), "three".into()], "ana", at(10))
        .await
        .expect("merge");
    assert_eq!(merged.incident.score, 70, "the highest score is kept");
    let alerts: Vec<String> = store
        .incident_alerts(alpha, "one")
        .await
        .expect("alerts")
        .into_iter()
        .map(|l| l.alert_id)
        .collect();
    assert_eq!(alerts.len(), 4, "{alerts:?}");
    assert_eq!(store.observables(alpha, "one").await.expect("obs").len(), 2);
    assert_eq!(
        store
            .alert(alpha, "a3")
            .await
            .expect("alert")
            .and_then(|a| a.incident_id),
        Some("one".to_string())
    );
    let two_now = store
        .incident(alpha, "two")
        .await
        .expect("get")
        .expect("two");
    assert_eq!(two_now.merged_into.as_deref(), Some("one"));
    assert!(
        store
            .update_incident(alpha, &two_now.incident, two_now.rev, &[])
            .await
            .is_err(),
        "a merged incident no longer changes"
    );
    let open_ids: Vec<String> = store
        .list_incidents(
            alpha,
            &IncidentQuery {
                limit: 10,
                ..IncidentQuery::default()
            },
        )
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|i| i.incident.id)
        .collect();
    assert_eq!(open_ids, ["one"], "merged incidents leave the list");
    assert!(matches!(
        store
            .merge_incidents(alpha, "one", &["one".into()], "ana", at(11))
            .await,
        Err(StoreError::Invalid { .. })
    ));
    let timeline = store
        .timeline(alpha, "one", 0, 100)
        .await
        .expect("timeline");
    assert!(timeline
        .iter()
        .any(|e| matches!(&e.event.kind, TimelineKind::Merged { incidents } if incidents == &["three", "two"])));

    let (four, events) = open("four", 20);
    let split = Split {
        new_incident: four,
        events,
        alert_ids: vec!["a3".into()],
        observables: vec![observable(ObservableKind::Domain, "evil.example")],
    };
    let created = store
        .split_incident(alpha, "one", &split, "ana", at(20))
        .await
        .expect("split");
    assert_eq!(created.incident.id, "four");
    let moved = store.incident_alerts(alpha, "four").await.expect("alerts");
    assert_eq!(
        moved,
        vec![link("a3", "r2")],
        "the rule travels with the alert"
    );
    assert_eq!(
        store.incident_alerts(alpha, "one").await.expect("a").len(),
        3
    );
    let bad = Split {
        alert_ids: vec!["a1".into(), "a2".into(), "a4".into()],
        new_incident: open("five", 21).0,
        ..split.clone()
    };
    assert!(matches!(
        store
            .split_incident(alpha, "one", &bad, "ana", at(21))
            .await,
        Err(StoreError::Invalid { .. })
    ));
    let stranger = Split {
        alert_ids: vec!["a3".into()],
        new_incident: open("five", 21).0,
        ..split
    };
    assert!(matches!(
        store
            .split_incident(alpha, "one", &stranger, "ana", at(21))
            .await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(
        store.incident(alpha, "five").await.expect("get").is_none(),
        "a refused split leaves nothing"
    );
}

pub async fn tasks_templates_and_attachments_belong_to_their_incident(store: &SqlStore) {
    let (alpha, bravo) = tenants(store).await;
    let (mut incident, events) = open("inc", 0);
    incident.incident_type = Some("phishing".into());
    store
        .create_incident(alpha, &incident, &events, &[], &[])
        .await
        .expect("create");
    let template = vec!["Pull the mail".to_string(), "Block the sender".to_string()];
    store
        .set_task_template(alpha, "phishing", &template, at(0))
        .await
        .expect("template");
    assert_eq!(
        store.task_template(bravo, "phishing").await.expect("bravo"),
        None
    );
    let tasks = store
        .apply_task_template(alpha, "inc", at(1))
        .await
        .expect("apply");
    assert_eq!(
        tasks.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(),
        ["Pull the mail", "Block the sender"]
    );
    store
        .add_tasks(alpha, "inc", &["Reset password".into()], at(2))
        .await
        .expect("add");
    let done = store
        .set_task_done(alpha, "inc", tasks[0].id, true, "ana", at(3))
        .await
        .expect("done");
    assert_eq!(
        (done.done, done.done_by.as_deref(), done.done_at),
        (true, Some("ana"), Some(at(3)))
    );
    assert!(matches!(
        store
            .set_task_done(bravo, "inc", tasks[0].id, true, "eve", at(3))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let undone = store
        .set_task_done(alpha, "inc", tasks[0].id, false, "ana", at(4))
        .await
        .expect("undo");
    assert_eq!((undone.done, undone.done_by), (false, None));
    assert_eq!(store.tasks(alpha, "inc").await.expect("tasks").len(), 3);
    assert!(store.tasks(bravo, "inc").await.expect("tasks").is_empty());
    assert!(matches!(
        store.add_tasks(alpha, "inc", &[" ".into()], at(5)).await,
        Err(StoreError::Invalid { .. })
    ));

    let attachment = Attachment {
        incident_id: "inc".into(),
        sha256: "AB".repeat(32),
        name: "mail.eml".into(),
        size: 2048,
        content_type: Some("message/rfc822".into()),
        uploaded_by: "ana".into(),
        created: at(6),
    };
    let (stored, created) = store
        .add_attachment(alpha, &attachment)
        .await
        .expect("attach");
    assert!(created);
    assert_eq!(stored.sha256, "ab".repeat(32));
    let (again, created) = store
        .add_attachment(
            alpha,
            &Attachment {
                name: "copy.eml".into(),
                ..attachment.clone()
            },
        )
        .await
        .expect("again");
    assert_eq!(again.name, "mail.eml", "the same content is one attachment");
    assert!(!created);
    assert_eq!(
        store.attachments(alpha, "inc").await.expect("list").len(),
        1
    );
    assert!(store
        .attachments(bravo, "inc")
        .await
        .expect("list")
        .is_empty());
    assert!(matches!(
        store.add_attachment(bravo, &attachment).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .add_attachment(
                alpha,
                &Attachment {
                    sha256: "xyz".into(),
                    ..attachment.clone()
                }
            )
            .await,
        Err(StoreError::Invalid { .. })
    ));
    // One look-up, by hash in any case; the timeline notes the attachment once.
    let found = store
        .attachment(alpha, "inc", &"AB".repeat(32))
        .await
        .expect("get");
    assert_eq!(found.map(|a| a.name), Some("mail.eml".to_string()));
    assert_eq!(
        store
            .attachment(bravo, "inc", &"ab".repeat(32))
            .await
            .expect("get"),
        None
    );
    let added = |entries: &[TimelineEntry]| {
        entries
            .iter()
            .filter(|e| matches!(e.event.kind, TimelineKind::AttachmentAdded { .. }))
            .count()
    };
    let timeline = store
        .timeline(alpha, "inc", 0, 1000)
        .await
        .expect("timeline");
    assert_eq!(added(&timeline), 1);

    // The same content on a second incident: removing it from one says the other holds it.
    let (second, events) = open("inc2", 0);
    store
        .create_incident(alpha, &second, &events, &[], &[])
        .await
        .expect("second incident");
    store
        .add_attachment(
            alpha,
            &Attachment {
                incident_id: "inc2".into(),
                ..attachment.clone()
            },
        )
        .await
        .expect("attach to the second");
    assert!(matches!(
        store
            .remove_attachment(bravo, "inc", &"ab".repeat(32), "eve", at(7))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let still_held = store
        .remove_attachment(alpha, "inc", &"ab".repeat(32), "ana", at(7))
        .await
        .expect("remove");
    assert!(still_held, "inc2 still holds the content");
    assert_eq!(
        store
            .attachment_holders(alpha, &"ab".repeat(32))
            .await
            .expect("holders"),
        1
    );
    assert_eq!(
        store
            .attachment_holders(bravo, &"ab".repeat(32))
            .await
            .expect("holders"),
        0
    );
    assert!(store
        .attachments(alpha, "inc")
        .await
        .expect("list")
        .is_empty());
    assert!(matches!(
        store
            .remove_attachment(alpha, "inc", &"ab".repeat(32), "ana", at(8))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let still_held = store
        .remove_attachment(alpha, "inc2", &"ab".repeat(32), "ana", at(8))
        .await
        .expect("remove the last");
    assert!(!still_held, "nothing holds the content any more");
    let timeline = store
        .timeline(alpha, "inc", 0, 1000)
        .await
        .expect("timeline");
    assert!(timeline.iter().any(|e| matches!(
        &e.event.kind,
        TimelineKind::AttachmentRemoved { name, .. } if name == "mail.eml"
    )));
}

pub async fn an_audited_incident_is_created_with_its_audit_entry_or_not_at_all(store: &SqlStore) {
    let (alpha, _) = tenants(store).await;
    let audit = NewAuditEntry {
        actor: "system:triage".into(),
        action: "incident.create".into(),
        target: "audited".into(),
        details: json!({"alert": "a1"}),
    };
    let (incident, events) = open("audited", 0);
    store
        .create_incident_audited(alpha, &incident, &events, &[], &[], &audit)
        .await
        .expect("create");
    // The same id again fails, and its audit entry goes with it.
    assert!(store
        .create_incident_audited(alpha, &incident, &events, &[], &[], &audit)
        .await
        .is_err());
    let page = store
        .list_audit(
            alpha,
            &AuditQuery {
                after: None,
                action: Some("incident.create".into()),
                limit: 100,
            },
        )
        .await
        .expect("audit");
    let targets: Vec<&str> = page.entries.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, ["audited"]);
    assert!(store
        .verify_audit(alpha)
        .await
        .expect("verify")
        .first_bad
        .is_none());
}

pub async fn suppressions_count_what_they_hold_back(store: &SqlStore) {
    let (alpha, bravo) = tenants(store).await;
    for id in ["s1", "s2", "s3"] {
        alert(store, alpha, id, "noisy", 0).await;
    }
    let suppression = Suppression {
        id: "backup".into(),
        rule_id: Some("noisy".into()),
        fields: [("host.name".to_string(), "backup-*".to_string())].into(),
        reason: "nightly backup".into(),
        author: "ana".into(),
        created: at(0),
        expires: Some(at(1000)),
    };
    let stored = store
        .create_suppression(alpha, &suppression)
        .await
        .expect("create");
    assert_eq!(
        (stored.suppression.clone(), stored.hits),
        (suppression.clone(), 0)
    );
    assert!(matches!(
        store.create_suppression(alpha, &suppression).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .create_suppression(
                alpha,
                &Suppression {
                    id: "x".into(),
                    rule_id: None,
                    fields: Default::default(),
                    ..suppression.clone()
                }
            )
            .await,
        Err(StoreError::Invalid { .. })
    ));
    let ids: Vec<String> = ["s1", "s2"].map(String::from).to_vec();
    assert_eq!(
        store
            .suppress_alerts(alpha, "backup", &ids, at(5))
            .await
            .expect("suppress"),
        2
    );
    assert_eq!(
        store
            .suppress_alerts(alpha, "backup", &ids, at(6))
            .await
            .expect("again"),
        0,
        "an alert is counted once"
    );
    assert_eq!(
        store
            .suppress_alerts(bravo, "backup", &ids, at(6))
            .await
            .map_err(|e| e.to_string()),
        Err("suppression \"backup\" not found".to_string())
    );
    assert_eq!(
        store
            .alert(alpha, "s1")
            .await
            .expect("alert")
            .map(|a| a.status),
        Some(garrison_model::AlertStatus::Suppressed),
        "suppressed alerts are kept, marked"
    );
    let listed = store
        .list_suppressions(alpha, Some(at(10)))
        .await
        .expect("list");
    assert_eq!(
        (listed.len(), listed[0].hits, listed[0].last_hit),
        (1, 2, Some(at(5)))
    );
    assert!(store
        .list_suppressions(bravo, None)
        .await
        .expect("list")
        .is_empty());
    let expired = store
        .expire_suppression(alpha, "backup", at(20))
        .await
        .expect("expire");
    assert_eq!(expired.suppression.expires, Some(at(20)));
    assert!(store
        .list_suppressions(alpha, Some(at(21)))
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        store
            .list_suppressions(alpha, None)
            .await
            .expect("all")
            .len(),
        1,
        "kept for the record"
    );
    assert!(matches!(
        store.expire_suppression(bravo, "backup", at(20)).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn grouping_assets_and_sla_policy_are_per_tenant(store: &SqlStore) {
    let (alpha, bravo) = tenants(store).await;
    let rule = GroupingRule {
        name: "by-host".into(),
        keys: vec![EntityKey::Host],
        window_secs: 3600,
        rule_ids: vec![],
    };
    store
        .upsert_grouping_rule(alpha, &rule, true, at(0))
        .await
        .expect("upsert");
    store
        .upsert_grouping_rule(alpha, &rule, false, at(1))
        .await
        .expect("update");
    let rules = store.grouping_rules(alpha).await.expect("list");
    assert_eq!(
        (rules.len(), rules[0].enabled, &rules[0].rule),
        (1, false, &rule)
    );
    assert!(store.grouping_rules(bravo).await.expect("list").is_empty());
    assert!(store
        .upsert_grouping_rule(
            alpha,
            &GroupingRule {
                keys: vec![],
                ..rule.clone()
            },
            true,
            at(2)
        )
        .await
        .is_err());
    let key = GroupKey {
        rule: "by-host".into(),
        key: "host=ws1".into(),
        window_start: at(0),
    };
    assert_eq!(
        store
            .claim_group(alpha, &key, "first")
            .await
            .expect("claim"),
        "first"
    );
    assert_eq!(
        store
            .claim_group(alpha, &key, "second")
            .await
            .expect("claim"),
        "first"
    );
    assert_eq!(
        store
            .claim_group(bravo, &key, "bravo's")
            .await
            .expect("claim"),
        "bravo's"
    );
    store
        .delete_grouping_rule(alpha, "by-host")
        .await
        .expect("delete");
    assert!(matches!(
        store.delete_grouping_rule(alpha, "by-host").await,
        Err(StoreError::NotFound { .. })
    ));

    let (assets, errors) =
        parse_assets_csv("name,ip,criticality,owner\nDC01,10.0.0.10,critical,it\nws1,,low,\n");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        store
            .upsert_assets(alpha, &assets, at(0))
            .await
            .expect("import"),
        2
    );
    let dc = store
        .asset_for(alpha, None, "10.0.0.10".parse().ok())
        .await
        .expect("by ip")
        .expect("dc");
    assert_eq!(
        (dc.name.as_str(), dc.criticality),
        ("dc01", Criticality::Critical)
    );
    assert_eq!(
        store
            .asset_for(alpha, Some("WS1"), None)
            .await
            .expect("by name")
            .map(|a| a.criticality),
        Some(Criticality::Low)
    );
    assert_eq!(
        store
            .asset_for(bravo, Some("dc01"), None)
            .await
            .expect("bravo"),
        None
    );
    store
        .upsert_assets(
            alpha,
            &[Asset {
                name: "ws1".into(),
                ip: None,
                criticality: Criticality::High,
                owner: Some("ana".into()),
            }],
            at(1),
        )
        .await
        .expect("replace");
    assert_eq!(store.assets(alpha).await.expect("list").len(), 2);
    store.delete_asset(alpha, "WS1").await.expect("delete");
    assert_eq!(store.assets(alpha).await.expect("list").len(), 1);
    assert!(store.assets(bravo).await.expect("list").is_empty());

    assert_eq!(
        store.sla_policy(alpha).await.expect("default"),
        SlaPolicy::default()
    );
    let mut policy = SlaPolicy::default();
    policy.per_severity.insert(
        Severity::Critical,
        SlaTargets {
            acknowledge_secs: 60,
            analysis_secs: 600,
            disposal_secs: 300,
        },
    );
    store
        .set_sla_policy(alpha, &policy, at(0))
        .await
        .expect("set");
    assert_eq!(store.sla_policy(alpha).await.expect("get"), policy);
    assert_eq!(
        store.sla_policy(bravo).await.expect("bravo"),
        SlaPolicy::default()
    );
}

pub async fn similar_incidents_and_soc_metrics_come_from_stored_records(store: &SqlStore) {
    let (alpha, bravo) = tenants(store).await;
    let w = Workflow::default_soc();
    let fields = json!({"host.name": "ws1", "src.ip": "203.0.113.9", "TargetUserName": "bob"});
    let observables = extract_observables(&fields);
    for (id, t) in [("a1", 0), ("a2", 100), ("a3", 200)] {
        alert(store, alpha, id, "brute", t).await;
    }
    // A past incident, closed as a false positive.
    let (past, events) = open("past", 0);
    store
        .create_incident(alpha, &past, &events, &[link("a1", "brute")], &observables)
        .await
        .expect("past");
    let mut incident = past.clone();
    let steps: Vec<(Action, Actor)> = vec![
        (
            Action::Assign {
                assignee: Some("ana".into()),
                team: None,
            },
            ana(),
        ),
        (
            Action::Transition {
                to: "triage".into(),
            },
            ana(),
        ),
        (
            Action::Transition {
                to: "analysis".into(),
            },
            ana(),
        ),
        (
            Action::Update(IncidentUpdate {
                classification: Some(Classification::FalsePositive),
                ..IncidentUpdate::default()
            }),
            ana(),
        ),
        (
            Action::Transition {
                to: "review".into(),
            },
            ana(),
        ),
        (Action::Approve, Actor::new("bob", &[Role::Analyst])),
        (Action::Approve, Actor::new("carol", &[Role::Admin])),
        (
            Action::Transition {
                to: "closed".into(),
            },
            ana(),
        ),
    ];
    let mut rev = 1;
    for (i, (action, actor)) in steps.into_iter().enumerate() {
        let (next, events) =
            apply(&w, &incident, action, &actor, at(60 * (i as i64 + 1))).expect("step");
        rev = store
            .update_incident(alpha, &next, rev, &events)
            .await
            .expect("save")
            .rev;
        incident = next;
    }
    assert_eq!(incident.state, "closed");
    // Today's, sharing the IP and the rule; and an unrelated one.
    let (today, events) = open("today", 1000);
    store
        .create_incident(
            alpha,
            &today,
            &events,
            &[link("a2", "brute")],
            &observables[..1],
        )
        .await
        .expect("today");
    let (other, events) = open("other", 1000);
    store
        .create_incident(
            alpha,
            &other,
            &events,
            &[link("a3", "other-rule")],
            &[observable(ObservableKind::Md5, &"0".repeat(32))],
        )
        .await
        .expect("other");
    let (bravo_twin, events) = open("twin", 0);
    store
        .create_incident(bravo, &bravo_twin, &events, &[], &observables)
        .await
        .expect("bravo");

    let (target, candidates) = store
        .similarity_profiles(alpha, "today", 50)
        .await
        .expect("profiles");
    assert_eq!(target.rule_ids.iter().collect::<Vec<_>>(), ["brute"]);
    let ids: Vec<&str> = candidates.iter().map(|c| c.incident_id.as_str()).collect();
    assert_eq!(
        ids,
        ["past"],
        "only incidents sharing something, of this tenant"
    );
    let similar = similar_incidents(&target, &candidates, 0.0, 5);
    assert_eq!(
        similar[0].classification,
        Some(Classification::FalsePositive)
    );
    assert!(similar[0].similarity.same_rule);
    assert!(candidates[0].hosts.contains("ws1"));
    assert!(matches!(
        store.similarity_profiles(bravo, "today", 5).await,
        Err(StoreError::NotFound { .. })
    ));

    let (alerts, incidents) = store
        .metrics_records(alpha, at(0), at(86_400))
        .await
        .expect("records");
    assert_eq!(alerts.len(), 3);
    assert_eq!(incidents.len(), 3);
    let metrics = SocMetrics::compute(
        &alerts,
        &incidents,
        &SlaPolicy::default(),
        at(0),
        at(86_400),
        at(2000),
    );
    assert_eq!(metrics.false_positive_rate_per_rule.len(), 1);
    assert_eq!(metrics.false_positive_rate_per_rule[0].rule_id, "brute");
    assert_eq!(
        metrics.false_positive_rate_per_rule[0].false_positive_rate,
        1.0
    );
    assert_eq!(metrics.mtta_secs, Some(120.0));
    let (_, bravo_incidents) = store
        .metrics_records(bravo, at(0), at(86_400))
        .await
        .expect("bravo");
    assert_eq!(bravo_incidents.len(), 1);
}
