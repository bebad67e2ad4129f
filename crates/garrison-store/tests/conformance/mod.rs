mod detection;
pub use detection::*;
mod incidents;
pub use incidents::*;
mod indicators;
pub use indicators::*;
mod playbooks;
pub use playbooks::*;

use garrison_model::{Event, LogSource, Role, TenantId, Timestamp};
use garrison_store::*;
use serde_json::json;

pub struct Fixture {
    pub store: SqlStore,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite_store() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = SqlStore::connect(&url).await.expect("connect sqlite");
    Some(Fixture {
        store,
        _dir: Some(dir),
    })
}

pub async fn postgres_store() -> Option<Fixture> {
    let Ok(base) = std::env::var("GARRISON_TEST_POSTGRES_URL") else {
        eprintln!("skipping PostgreSQL conformance: GARRISON_TEST_POSTGRES_URL is not set");
        return None;
    };
    // A database per test, so tests run in parallel without seeing each other.
    let name = format!(
        "garrison_test_{}",
        garrison_model::new_ulid().to_lowercase()
    );
    let admin = SqlStore::connect(&base).await.expect("connect postgres");
    admin
        .create_database_for_tests(&name)
        .await
        .expect("create database");
    let url = match base.rsplit_once('/') {
        Some((prefix, _)) => format!("{prefix}/{name}"),
        None => panic!("GARRISON_TEST_POSTGRES_URL must end in /DATABASE"),
    };
    let store = SqlStore::connect(&url)
        .await
        .expect("connect test database");
    Some(Fixture { store, _dir: None })
}

fn rows(events: &[Event]) -> Vec<EventRow> {
    events.iter().map(EventRow::from_event).collect()
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("time")
}

fn event(
    tenant: TenantId,
    id: &str,
    seconds: i64,
    source: &str,
    fields: serde_json::Value,
) -> Event {
    Event {
        id: id.to_string(),
        tenant_id: tenant,
        time: at(seconds),
        received: at(seconds),
        source: source.to_string(),
        logsource: LogSource {
            product: Some("windows".into()),
            service: None,
            category: None,
        },
        fields,
        fields_text: None,
        normalized: serde_json::Map::new(),
        raw: None,
    }
}

async fn two_tenants(store: &SqlStore) -> (Tenant, Tenant) {
    (
        store.ensure_tenant("alpha").await.expect("alpha"),
        store.ensure_tenant("bravo").await.expect("bravo"),
    )
}

pub async fn tenants_are_created_once_and_found_by_name(store: &SqlStore) {
    let first = store.ensure_tenant("alpha").await.expect("create");
    let again = store.ensure_tenant("alpha").await.expect("again");
    assert_eq!(first, again);
    assert_eq!(
        store.tenant_by_name("alpha").await.expect("find"),
        Some(first.clone())
    );
    assert_eq!(store.tenant_by_name("nobody").await.expect("find"), None);
    assert_eq!(store.tenant(first.id).await.expect("by id").name, "alpha");
    assert!(store.ensure_tenant("").await.is_err());
    assert!(store
        .list_tenants()
        .await
        .expect("list")
        .iter()
        .any(|t| t.name == "alpha"));
}

pub async fn retention_is_validated_and_kept(store: &SqlStore) {
    let tenant = store.ensure_tenant("alpha").await.expect("create");
    assert_eq!(
        store
            .set_retention(tenant.id, Some(30))
            .await
            .expect("set")
            .retention_days,
        Some(30)
    );
    assert!(matches!(
        store.set_retention(tenant.id, Some(0)).await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(
        store
            .set_retention(tenant.id, None)
            .await
            .expect("unset")
            .retention_days,
        None
    );
}

pub async fn users_authenticate_only_with_their_password_in_their_tenant(store: &SqlStore) {
    let (alpha, bravo) = two_tenants(store).await;
    let user = store
        .create_user(alpha.id, "ana", "a long passphrase", &[Role::Analyst])
        .await
        .expect("create");
    assert_eq!(user.roles, vec![Role::Analyst]);
    assert!(matches!(
        store
            .create_user(alpha.id, "ana", "another long one", &[Role::Viewer])
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .create_user(alpha.id, "bob", "short", &[Role::Viewer])
            .await,
        Err(StoreError::Invalid { .. })
    ));
    let ok = store
        .authenticate_user(alpha.id, "ana", "a long passphrase")
        .await
        .expect("auth");
    assert_eq!(ok.map(|u| u.id), Some(user.id));
    assert!(store
        .authenticate_user(alpha.id, "ana", "wrong passphrase!")
        .await
        .expect("auth")
        .is_none());
    assert!(store
        .authenticate_user(bravo.id, "ana", "a long passphrase")
        .await
        .expect("auth")
        .is_none());
    assert!(store
        .authenticate_user(alpha.id, "nobody", "a long passphrase")
        .await
        .expect("auth")
        .is_none());
    assert_eq!(store.list_users(alpha.id).await.expect("list").len(), 1);
    assert_eq!(store.list_users(bravo.id).await.expect("list").len(), 0);
}

pub async fn disabling_a_user_revokes_their_tokens(store: &SqlStore) {
    let (alpha, bravo) = two_tenants(store).await;
    let user = store
        .create_user(alpha.id, "ana", "a long passphrase", &[Role::Admin])
        .await
        .expect("create");
    let (_, secret) = store
        .create_token(NewToken {
            tenant_id: alpha.id,
            kind: TokenKind::Api,
            name: "ana's".into(),
            roles: vec![Role::Admin],
            source: None,
            user_id: Some(user.id),
            expires: None,
        })
        .await
        .expect("token");
    // Another tenant cannot touch the user.
    assert!(matches!(
        store.set_user_disabled(bravo.id, user.id, true).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store
        .authenticate_token(secret.expose(), Timestamp::now())
        .await
        .expect("auth")
        .is_some());
    assert!(
        store
            .set_user_disabled(alpha.id, user.id, true)
            .await
            .expect("disable")
            .disabled
    );
    assert!(store
        .authenticate_token(secret.expose(), Timestamp::now())
        .await
        .expect("auth")
        .is_none());
    assert!(store
        .authenticate_user(alpha.id, "ana", "a long passphrase")
        .await
        .expect("auth")
        .is_none());
}

pub async fn tokens_are_stored_hashed_and_resolve_to_their_tenant(store: &SqlStore) {
    let (alpha, bravo) = two_tenants(store).await;
    let (token, secret) = store
        .create_token(NewToken {
            tenant_id: bravo.id,
            kind: TokenKind::Ingest,
            name: "firewall".into(),
            roles: vec![],
            source: Some("fw".into()),
            user_id: None,
            expires: None,
        })
        .await
        .expect("create");
    assert!(secret.expose().starts_with("gar_ingest_"));
    assert!(secret.expose().starts_with(&token.prefix));
    let found = store
        .authenticate_token(secret.expose(), Timestamp::now())
        .await
        .expect("auth")
        .expect("found");
    assert_eq!(found.tenant_id, bravo.id);
    assert_eq!(found.source.as_deref(), Some("fw"));
    assert!(store
        .authenticate_token("gar_ingest_not-a-token", Timestamp::now())
        .await
        .expect("auth")
        .is_none());
    assert!(store.list_tokens(alpha.id).await.expect("list").is_empty());
    assert_eq!(store.list_tokens(bravo.id).await.expect("list").len(), 1);
    assert!(matches!(
        store
            .create_token(NewToken {
                tenant_id: bravo.id,
                kind: TokenKind::Ingest,
                name: "no source".into(),
                roles: vec![],
                source: None,
                user_id: None,
                expires: None,
            })
            .await,
        Err(StoreError::Invalid { .. })
    ));
}

pub async fn expired_and_revoked_tokens_do_not_authenticate(store: &SqlStore) {
    let (alpha, bravo) = two_tenants(store).await;
    let new = |expires| NewToken {
        tenant_id: alpha.id,
        kind: TokenKind::Session,
        name: "session".into(),
        roles: vec![Role::Viewer],
        source: None,
        user_id: None,
        expires,
    };
    let (_, expired) = store
        .create_token(new(Some(at(-10))))
        .await
        .expect("create");
    assert!(store
        .authenticate_token(expired.expose(), Timestamp::now())
        .await
        .expect("auth")
        .is_none());
    let (token, live) = store.create_token(new(None)).await.expect("create");
    assert!(store
        .authenticate_token(live.expose(), Timestamp::now())
        .await
        .expect("auth")
        .is_some());
    assert!(matches!(
        store.revoke_token(bravo.id, token.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store
        .authenticate_token(live.expose(), Timestamp::now())
        .await
        .expect("auth")
        .is_some());
    assert!(
        store
            .revoke_token(alpha.id, token.id)
            .await
            .expect("revoke")
            .revoked
    );
    assert!(store
        .authenticate_token(live.expose(), Timestamp::now())
        .await
        .expect("auth")
        .is_none());
}

pub async fn sources_upsert_and_stay_in_their_tenant(store: &SqlStore) {
    let (alpha, bravo) = two_tenants(store).await;
    let mut source = NewSource {
        name: "edr".into(),
        product: Some("windows".into()),
        field_mapping: vec![("proc".into(), "process.name".into())],
        ..NewSource::default()
    };
    let first = store
        .upsert_source(alpha.id, source.clone())
        .await
        .expect("create");
    source.category = Some("process_creation".into());
    let second = store.upsert_source(alpha.id, source).await.expect("update");
    assert_eq!(first.id, second.id);
    assert_eq!(second.category.as_deref(), Some("process_creation"));
    assert_eq!(
        second.field_mapping,
        vec![("proc".to_string(), "process.name".to_string())]
    );
    assert_eq!(second.alert_mapping, None);
    // An alert source keeps its pairs and its alert mapping; unmarking it drops the mapping.
    let mapping = AlertMapping {
        rule: Some("detect.rule_id".into()),
        title: Some("detect.name".into()),
        severity: None,
    };
    let mut alerts = NewSource {
        name: "edr".into(),
        field_mapping: vec![("proc".into(), "process.name".into())],
        alert_mapping: Some(mapping.clone()),
        ..NewSource::default()
    };
    let third = store
        .upsert_source(alpha.id, alerts.clone())
        .await
        .expect("alerts");
    assert_eq!(third.alert_mapping, Some(mapping));
    assert_eq!(third.field_mapping, second.field_mapping);
    // The sender's id field is kept beside the mappings, with or without an alert mapping.
    alerts.id_field = Some("event.id".into());
    let with_id = store
        .upsert_source(alpha.id, alerts.clone())
        .await
        .expect("id field");
    assert_eq!(with_id.id_field.as_deref(), Some("event.id"));
    assert_eq!(with_id.alert_mapping, third.alert_mapping);
    let plain = store
        .upsert_source(
            alpha.id,
            NewSource {
                name: "fw".into(),
                id_field: Some("uid".into()),
                ..NewSource::default()
            },
        )
        .await
        .expect("plain with id");
    assert_eq!(plain.id_field.as_deref(), Some("uid"));
    assert_eq!(plain.alert_mapping, None);
    alerts.alert_mapping = None;
    let fourth = store.upsert_source(alpha.id, alerts).await.expect("plain");
    assert_eq!(fourth.alert_mapping, None);
    assert_eq!(fourth.field_mapping, second.field_mapping);
    assert!(store.source(bravo.id, "edr").await.expect("get").is_none());
    assert_eq!(store.list_sources(alpha.id).await.expect("list").len(), 2);
    let routed = garrison_store::SyslogMatch {
        from: vec!["10.0.0.0/24".into()],
        vendor: vec!["Fortinet".into()],
        ..Default::default()
    };
    let fw = store
        .upsert_source(
            alpha.id,
            NewSource {
                name: "fw".into(),
                syslog: Some(routed.clone()),
                ..NewSource::default()
            },
        )
        .await
        .expect("syslog route");
    assert_eq!(fw.syslog.as_ref(), Some(&routed));
    let again = store
        .source(alpha.id, "fw")
        .await
        .expect("get")
        .expect("fw");
    assert_eq!(again.syslog, Some(routed));
    assert_eq!(
        again.id_field, None,
        "a replaced source keeps only what it was given"
    );
}

pub async fn stored_events_are_idempotent_and_move_the_position(store: &SqlStore) {
    let (alpha, _) = two_tenants(store).await;
    assert_eq!(
        store.consumer_position("indexer").await.expect("position"),
        0
    );
    let batch: Vec<Event> = (0..900)
        .map(|i| {
            event(
                alpha.id,
                &format!("e{i}"),
                i,
                "fw",
                json!({"n": i, "msg": format!("hello {i}")}),
            )
        })
        .collect();
    assert_eq!(
        store
            .store_events(&rows(&batch), "indexer", 4242)
            .await
            .expect("store"),
        900
    );
    assert_eq!(
        store.consumer_position("indexer").await.expect("position"),
        4242
    );
    // A replay of the same log range stores nothing new.
    assert_eq!(
        store
            .store_events(&rows(&batch), "indexer", 4242)
            .await
            .expect("replay"),
        0
    );
    assert_eq!(store.count_events(alpha.id).await.expect("count"), 900);
    // Duplicates inside one batch count once.
    let dupes = vec![
        event(alpha.id, "d", 1, "fw", json!({})),
        event(alpha.id, "d", 1, "fw", json!({})),
    ];
    assert_eq!(
        store
            .store_events(&rows(&dupes), "indexer", 5000)
            .await
            .expect("store"),
        1
    );
    assert_eq!(
        store.consumer_position("indexer").await.expect("position"),
        5000
    );
}

pub async fn search_filters_by_time_source_field_and_text(store: &SqlStore) {
    let (alpha, _) = two_tenants(store).await;
    let events = vec![
        event(
            alpha.id,
            "a",
            10,
            "fw",
            json!({"action": "block", "src": {"ip": "10.0.0.1"}, "msg": "denied inbound mimikatz"}),
        ),
        event(
            alpha.id,
            "b",
            20,
            "fw",
            json!({"action": "allow", "src": {"ip": "10.0.0.2"}, "EventID": 4688}),
        ),
        event(
            alpha.id,
            "c",
            30,
            "edr",
            json!({"action": "block", "event.code": "1", "msg": "powershell encoded"}),
        ),
    ];
    store
        .store_events(&rows(&events), "indexer", 1)
        .await
        .expect("store");
    let ids = |page: EventPage| page.items.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let q = |f: &dyn Fn(&mut EventQuery)| {
        let mut query = EventQuery {
            limit: 50,
            ..EventQuery::default()
        };
        f(&mut query);
        query
    };
    let all = store
        .search_events(alpha.id, &q(&|_| {}))
        .await
        .expect("all");
    assert_eq!(ids(all.clone()), vec!["c", "b", "a"], "newest first");
    // Oldest first, page by page, for replays in time order.
    let mut replay = Vec::new();
    let mut query = q(&|q| {
        q.oldest_first = true;
        q.limit = 2;
    });
    loop {
        let page = store.search_events(alpha.id, &query).await.expect("replay");
        let next = page.next_cursor.clone();
        replay.extend(ids(page));
        match next {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(replay, vec!["a", "b", "c"], "oldest first, paged");
    assert_eq!(
        all.items[0].fields["msg"], "powershell encoded",
        "fields kept as sent"
    );
    assert_eq!(
        ids(store
            .search_events(alpha.id, &q(&|q| q.source = Some("fw".into())))
            .await
            .expect("source")),
        vec!["b", "a"]
    );
    assert_eq!(
        ids(store
            .search_events(
                alpha.id,
                &q(&|q| {
                    q.from = Some(at(15));
                    q.to = Some(at(30));
                })
            )
            .await
            .expect("range")),
        vec!["b"]
    );
    assert_eq!(
        ids(store
            .search_events(
                alpha.id,
                &q(&|q| q.fields = vec![("src.ip".into(), "10.0.0.1".into())])
            )
            .await
            .expect("nested")),
        vec!["a"]
    );
    assert_eq!(
        ids(store
            .search_events(
                alpha.id,
                &q(&|q| q.fields = vec![("EventID".into(), "4688".into())])
            )
            .await
            .expect("number")),
        vec!["b"]
    );
    assert_eq!(
        ids(store
            .search_events(
                alpha.id,
                &q(&|q| q.fields = vec![("event.code".into(), "1".into())])
            )
            .await
            .expect("flat dotted")),
        vec!["c"]
    );
    assert_eq!(
        ids(store
            .search_events(
                alpha.id,
                &q(&|q| q.fields = vec![
                    ("action".into(), "block".into()),
                    ("src.ip".into(), "10.0.0.1".into())
                ])
            )
            .await
            .expect("and")),
        vec!["a"]
    );
    assert_eq!(
        ids(store
            .search_events(alpha.id, &q(&|q| q.text = Some("mimikatz".into())))
            .await
            .expect("text")),
        vec!["a"]
    );
    assert_eq!(
        ids(store
            .search_events(
                alpha.id,
                &q(&|q| q.text = Some("POWERSHELL encoded".into()))
            )
            .await
            .expect("text")),
        vec!["c"]
    );
    assert!(ids(store
        .search_events(alpha.id, &q(&|q| q.text = Some("\"unbalanced OR (".into())))
        .await
        .expect("hostile text"))
    .is_empty());
}

pub async fn search_pages_with_a_cursor_without_gaps_or_repeats(store: &SqlStore) {
    let (alpha, _) = two_tenants(store).await;
    // Many events share a time, so the cursor must break ties.
    let events: Vec<Event> = (0..57)
        .map(|i| event(alpha.id, &format!("p{i}"), i / 5, "fw", json!({"i": i})))
        .collect();
    store
        .store_events(&rows(&events), "indexer", 1)
        .await
        .expect("store");
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .search_events(
                alpha.id,
                &EventQuery {
                    limit: 10,
                    cursor: cursor.clone(),
                    ..EventQuery::default()
                },
            )
            .await
            .expect("page");
        assert!(page.items.len() <= 10);
        seen.extend(page.items.into_iter().map(|e| e.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen.len(), 57);
    assert_eq!(sorted.len(), 57);
}

pub async fn tenants_never_see_each_others_events(store: &SqlStore) {
    let (alpha, bravo) = two_tenants(store).await;
    let events = vec![
        event(alpha.id, "same-id", 1, "fw", json!({"secret": "alpha's"})),
        event(bravo.id, "same-id", 1, "fw", json!({"secret": "bravo's"})),
    ];
    assert_eq!(
        store
            .store_events(&rows(&events), "indexer", 1)
            .await
            .expect("store"),
        2,
        "ids are per tenant"
    );
    for (tenant, expected) in [(alpha.id, "alpha's"), (bravo.id, "bravo's")] {
        let page = store
            .search_events(
                tenant,
                &EventQuery {
                    limit: 10,
                    text: Some("secret alpha's bravo's".into()),
                    ..EventQuery::default()
                },
            )
            .await
            .expect("search");
        assert!(page.items.is_empty(), "text search must not cross tenants");
        let page = store
            .search_events(
                tenant,
                &EventQuery {
                    limit: 10,
                    ..EventQuery::default()
                },
            )
            .await
            .expect("search");
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].fields["secret"], expected);
        assert_eq!(page.items[0].tenant_id, tenant);
    }
}

pub async fn retention_deletes_only_old_events_of_one_tenant(store: &SqlStore) {
    let (alpha, bravo) = two_tenants(store).await;
    let events = vec![
        event(alpha.id, "old", 0, "fw", json!({"w": "ancient"})),
        event(alpha.id, "new", 100, "fw", json!({"w": "fresh"})),
        event(bravo.id, "old", 0, "fw", json!({"w": "ancient"})),
    ];
    store
        .store_events(&rows(&events), "indexer", 1)
        .await
        .expect("store");
    assert_eq!(
        store
            .delete_events_received_before(alpha.id, at(50))
            .await
            .expect("purge"),
        1
    );
    assert_eq!(store.count_events(alpha.id).await.expect("count"), 1);
    assert_eq!(store.count_events(bravo.id).await.expect("count"), 1);
    let page = store
        .search_events(
            alpha.id,
            &EventQuery {
                limit: 10,
                text: Some("ancient".into()),
                ..EventQuery::default()
            },
        )
        .await
        .expect("search");
    assert!(page.items.is_empty());
}

pub async fn bad_cursors_and_filters_are_clear_errors(store: &SqlStore) {
    let (alpha, _) = two_tenants(store).await;
    let err = store
        .search_events(
            alpha.id,
            &EventQuery {
                limit: 10,
                cursor: Some("garbage".into()),
                ..EventQuery::default()
            },
        )
        .await
        .expect_err("bad cursor");
    assert!(err.to_string().contains("cursor"), "{err}");
    let err = store
        .search_events(
            alpha.id,
            &EventQuery {
                limit: 10,
                fields: vec![(String::new(), "x".into())],
                ..EventQuery::default()
            },
        )
        .await
        .expect_err("empty field");
    assert!(err.to_string().contains("field"), "{err}");
}

pub async fn nul_characters_are_stored_without_failing_the_batch(store: &SqlStore) {
    let (alpha, _) = two_tenants(store).await;
    let mut row = EventRow::from_event(&event(
        alpha.id,
        "nul",
        1,
        "fw",
        json!({"msg": "a\u{0}b", "k\u{0}": 1}),
    ));
    row.raw = Some("raw\u{0}line".into());
    let fine = EventRow::from_event(&event(alpha.id, "fine", 2, "fw", json!({"msg": "plain"})));
    assert_eq!(
        store
            .store_events(&[row, fine], "indexer", 9)
            .await
            .expect("store"),
        2
    );
    let page = store
        .search_events(
            alpha.id,
            &EventQuery {
                limit: 10,
                ..EventQuery::default()
            },
        )
        .await
        .expect("search");
    assert_eq!(page.items.len(), 2);
    let nul = page.items.iter().find(|e| e.id == "nul").expect("stored");
    let msg = nul.fields["msg"].as_str().expect("msg");
    assert!(msg == "a\u{0}b" || msg == "a\u{FFFD}b", "{msg:?}");
}
