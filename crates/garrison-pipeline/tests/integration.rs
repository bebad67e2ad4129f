//! The pipeline over a real log and a real (SQLite) store.

use std::sync::Arc;

use garrison_bus::{EventLog, LogConfig};
use garrison_ingest::Record;
use garrison_model::{SignedDuration, Timestamp};
use garrison_pipeline::{
    enforce_retention, Indexer, Ingestor, PipelineError, SourceContext, INDEXER,
};
use garrison_store::{EventQuery, EventRepo, SqlStore, TenantRepo};
use serde_json::json;

async fn setup() -> (tempfile::TempDir, Arc<SqlStore>, EventLog) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqlStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("db.sqlite").display()
    ))
    .await
    .expect("store");
    let log = EventLog::open(LogConfig::new(dir.path().join("log"))).expect("log");
    (dir, Arc::new(store), log)
}

fn record(fields: serde_json::Value) -> Record {
    let serde_json::Value::Object(fields) = fields else {
        panic!("object")
    };
    Record {
        fields,
        time: None,
        raw: None,
        source_json: None,
        unparsed: None,
    }
}

#[tokio::test]
async fn events_flow_from_log_to_store_once_even_when_replayed() {
    let (_dir, store, log) = setup().await;
    let tenant = store.ensure_tenant("acme").await.expect("tenant");
    let context = SourceContext::unconfigured(tenant.id, "edr");
    let (indexer, indexed) = Indexer::new(store.clone(), log.clone())
        .await
        .expect("indexer");
    let ingestor = Ingestor::new(log.clone(), indexed, u64::MAX);
    let now = Timestamp::now();
    // Built from the records each time, so the retry's ids come from the sender ids again.
    let make_batch = || -> Vec<_> {
        (0..10)
            .map(|i| context.row(record(json!({"n": i, "Hostname": "ws1"})), now))
            .collect()
    };
    let batch = make_batch();
    ingestor.accept(&batch, "test").await.expect("accept");
    // The same batch again, as a client retry would: same ids.
    let retry = make_batch();
    ingestor.accept(&retry, "test").await.expect("accept retry");
    assert_eq!(indexer.run_once().await.expect("index"), 20);
    assert_eq!(store.count_events(tenant.id).await.expect("count"), 10);
    assert_eq!(
        store.consumer_position(INDEXER).await.expect("position"),
        log.committed_end()
    );

    // A restarted indexer resumes at the committed position and finds nothing new.
    let (again, _) = Indexer::new(store.clone(), log.clone())
        .await
        .expect("indexer");
    assert_eq!(again.run_once().await.expect("index"), 0);
    let page = store
        .search_events(
            tenant.id,
            &EventQuery {
                limit: 1,
                ..EventQuery::default()
            },
        )
        .await
        .expect("search");
    assert_eq!(
        page.items[0].normalized["host.name"], "ws1",
        "normalised view stored"
    );
}

#[tokio::test]
async fn a_full_backlog_refuses_new_data_until_indexed() {
    let (_dir, store, log) = setup().await;
    let tenant = store.ensure_tenant("acme").await.expect("tenant");
    let context = SourceContext::unconfigured(tenant.id, "edr");
    let (indexer, indexed) = Indexer::new(store.clone(), log.clone())
        .await
        .expect("indexer");
    let ingestor = Ingestor::new(log.clone(), indexed, 0);
    let event = |n: i64| context.row(record(json!({"n": n})), Timestamp::now());
    ingestor
        .accept(&[event(1)], "test")
        .await
        .expect("first batch fits");
    match ingestor.accept(&[event(2)], "test").await {
        Err(PipelineError::Busy { reason }) => assert!(reason.contains("indexed"), "{reason}"),
        other => panic!("expected busy, got {other:?}"),
    }
    indexer.run_once().await.expect("index");
    ingestor
        .accept(&[event(3)], "test")
        .await
        .expect("accepted again once indexed");
}

#[tokio::test]
async fn another_consumer_behind_also_refuses_new_data() {
    let (_dir, store, log) = setup().await;
    let tenant = store.ensure_tenant("acme").await.expect("tenant");
    let context = SourceContext::unconfigured(tenant.id, "edr");
    let (indexer, indexed) = Indexer::new(store.clone(), log.clone())
        .await
        .expect("indexer");
    // A consumer (the detector) that has read nothing yet.
    let (detected, detected_rx) = tokio::sync::watch::channel(0u64);
    let ingestor = Ingestor::new(log.clone(), indexed, 0).bounded_by(detected_rx);
    let event = |n: i64| context.row(record(json!({"n": n})), Timestamp::now());
    ingestor.accept(&[event(1)], "test").await.expect("fits");
    indexer.run_once().await.expect("index");
    assert_eq!(ingestor.backlog_bytes(), 0, "the indexer caught up");
    match ingestor.accept(&[event(2)], "test").await {
        Err(PipelineError::Busy { reason }) => assert!(reason.contains("detected"), "{reason}"),
        other => panic!("expected busy while the other consumer is behind, got {other:?}"),
    }
    detected.send_replace(log.committed_end());
    ingestor
        .accept(&[event(3)], "test")
        .await
        .expect("accepted once the other consumer caught up");
}

#[tokio::test]
async fn retention_removes_only_what_is_past_each_tenants_limit() {
    let (_dir, store, log) = setup().await;
    let keep = store.ensure_tenant("keep-forever").await.expect("tenant");
    let short = store.ensure_tenant("short").await.expect("tenant");
    store
        .set_retention(short.id, Some(7))
        .await
        .expect("retention");
    let now = Timestamp::now();
    let old = now
        .checked_sub(SignedDuration::from_hours(24 * 30))
        .expect("time");
    let recent = now
        .checked_sub(SignedDuration::from_hours(24))
        .expect("time");
    let (indexer, indexed) = Indexer::new(store.clone(), log.clone())
        .await
        .expect("indexer");
    let ingestor = Ingestor::new(log.clone(), indexed, u64::MAX);
    let mut batch = Vec::new();
    for tenant in [keep.id, short.id] {
        let context = SourceContext::unconfigured(tenant, "app");
        batch.push(context.row(record(json!({"age": "old"})), old));
        batch.push(context.row(record(json!({"age": "recent"})), recent));
    }
    ingestor.accept(&batch, "test").await.expect("accept");
    indexer.run_once().await.expect("index");
    assert_eq!(
        enforce_retention(store.as_ref(), now)
            .await
            .expect("retention"),
        1
    );
    assert_eq!(store.count_events(keep.id).await.expect("count"), 2);
    assert_eq!(store.count_events(short.id).await.expect("count"), 1);
}

#[tokio::test]
async fn a_source_mapping_overrides_the_builtin_names() {
    let (_dir, store, _log) = setup().await;
    let tenant = store.ensure_tenant("acme").await.expect("tenant");
    let source = garrison_store::SourceRepo::upsert_source(
        store.as_ref(),
        tenant.id,
        garrison_store::NewSource {
            name: "fw".into(),
            product: Some("paloalto".into()),
            field_mapping: vec![("srcaddr".into(), "source.ip".into())],
            ..Default::default()
        },
    )
    .await
    .expect("source");
    let context = SourceContext::from_source(&source);
    let event = context.row(record(json!({"srcaddr": "10.9.8.7"})), Timestamp::now());
    let normalized: serde_json::Value = serde_json::from_str(&event.normalized_json).expect("json");
    let fields: serde_json::Value = serde_json::from_str(&event.fields_json).expect("json");
    assert_eq!(normalized["source.ip"], "10.9.8.7");
    assert_eq!(event.logsource.product.as_deref(), Some("paloalto"));
    assert_eq!(fields["srcaddr"], "10.9.8.7", "original kept");
}

/// A store that refuses, as a database would refuse a value it cannot hold, any event whose
/// fields mention "poison".
struct PoisonStore(Arc<SqlStore>);

#[async_trait::async_trait]
impl EventRepo for PoisonStore {
    async fn store_events(
        &self,
        events: &[garrison_store::EventRow],
        consumer: &str,
        position: u64,
    ) -> garrison_store::Result<u64> {
        if events.iter().any(|e| e.fields_json.contains("poison")) {
            return Err(garrison_store::StoreError::Rejected {
                reason: "value out of range".into(),
            });
        }
        self.0.store_events(events, consumer, position).await
    }
    async fn search_events(
        &self,
        tenant: garrison_model::TenantId,
        query: &EventQuery,
    ) -> garrison_store::Result<garrison_store::EventPage> {
        self.0.search_events(tenant, query).await
    }
    async fn event(
        &self,
        tenant: garrison_model::TenantId,
        id: &str,
    ) -> garrison_store::Result<Option<garrison_model::Event>> {
        self.0.event(tenant, id).await
    }
    async fn count_events(&self, tenant: garrison_model::TenantId) -> garrison_store::Result<i64> {
        self.0.count_events(tenant).await
    }
    async fn delete_events_received_before(
        &self,
        tenant: garrison_model::TenantId,
        cutoff: Timestamp,
    ) -> garrison_store::Result<u64> {
        self.0.delete_events_received_before(tenant, cutoff).await
    }
    async fn consumer_position(&self, consumer: &str) -> garrison_store::Result<u64> {
        self.0.consumer_position(consumer).await
    }
}

#[tokio::test]
async fn an_event_the_store_refuses_is_kept_aside_and_indexing_goes_on() {
    let (dir, store, log) = setup().await;
    let tenant = store.ensure_tenant("acme").await.expect("tenant");
    let context = SourceContext::unconfigured(tenant.id, "app");
    let poison = Arc::new(PoisonStore(store.clone()));
    let (mut indexer, indexed) = Indexer::new(poison.clone(), log.clone())
        .await
        .expect("indexer");
    let ingestor = Ingestor::new(log.clone(), indexed, u64::MAX);
    let batch: Vec<_> = ["good one", "poison pill", "good two"]
        .iter()
        .map(|m| context.row(record(json!({"msg": m})), Timestamp::now()))
        .collect();
    ingestor.accept(&batch, "test").await.expect("accept");

    // Without a dead-letter file the refusal stops indexing: nothing is dropped silently.
    assert!(indexer.run_once().await.is_err());
    assert_eq!(store.count_events(tenant.id).await.expect("count"), 0);

    let dead_letter = dir.path().join("dead-letter.jsonl");
    indexer.dead_letter = Some(dead_letter.clone());
    assert_eq!(indexer.run_once().await.expect("index"), 3);
    assert_eq!(store.count_events(tenant.id).await.expect("count"), 2);
    assert_eq!(
        store.consumer_position(INDEXER).await.expect("position"),
        log.committed_end()
    );
    let kept = std::fs::read_to_string(&dead_letter).expect("dead letter");
    let lines: Vec<serde_json::Value> = kept
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert!(lines[0]["event"]["fields_json"]
        .as_str()
        .expect("fields")
        .contains("poison pill"));
    assert_eq!(lines[0]["reason"], "value out of range");
}
