//! Threat-intel indicators and their feeds: the same behaviour from every backend.

use garrison_model::Timestamp;
use garrison_store::*;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("time")
}

fn ioc(kind: &str, value: &str, source: &str) -> NewIndicator {
    NewIndicator {
        kind: kind.into(),
        value: value.into(),
        source: source.into(),
        confidence: 70,
        first_seen: Some(at(100)),
        expires: None,
        tags: vec!["c2".into()],
        description: Some("from a feed".into()),
    }
}

pub async fn indicators_upsert_by_kind_value_and_source_per_tenant(store: &SqlStore) {
    let alpha = store.ensure_tenant("alpha").await.expect("alpha");
    let bravo = store.ensure_tenant("bravo").await.expect("bravo");
    assert_eq!(store.indicators_revision(alpha.id).await.expect("rev"), 0);
    let first = store
        .upsert_indicators(
            alpha.id,
            &[
                ioc("ip", "198.51.100.7", "feed-a"),
                ioc("ip", "198.51.100.7", "feed-b"),
                ioc("domain", "evil.example.com", "feed-a"),
                // The same key again in one call: counted once, the last wins.
                NewIndicator {
                    confidence: 90,
                    ..ioc("domain", "evil.example.com", "feed-a")
                },
            ],
            at(1000),
        )
        .await
        .expect("upsert");
    assert_eq!((first.created, first.updated), (3, 0));
    let rev1 = store.indicators_revision(alpha.id).await.expect("rev");
    assert!(rev1 > 0);
    // Again, with an earlier first-seen time, a later one and a new expiry.
    let mut earlier = ioc("ip", "198.51.100.7", "feed-a");
    earlier.first_seen = Some(at(50));
    earlier.expires = Some(at(5000));
    earlier.tags = vec!["c2".into(), "botnet".into()];
    let mut later = ioc("ip", "198.51.100.7", "feed-b");
    later.first_seen = Some(at(900));
    let second = store
        .upsert_indicators(alpha.id, &[earlier, later], at(2000))
        .await
        .expect("again");
    assert_eq!((second.created, second.updated), (0, 2));
    assert!(store.indicators_revision(alpha.id).await.expect("rev") > rev1);
    let page = store
        .list_indicators(
            alpha.id,
            &IndicatorQuery {
                value: Some("198.51.100.7".into()),
                limit: 10,
                ..IndicatorQuery::default()
            },
        )
        .await
        .expect("list");
    let by_source = |s: &str| {
        page.items
            .iter()
            .find(|i| i.source == s)
            .cloned()
            .expect("present")
    };
    let a = by_source("feed-a");
    assert_eq!(
        a.first_seen,
        Some(at(50)),
        "the earliest first-seen is kept"
    );
    assert_eq!(a.expires, Some(at(5000)));
    assert_eq!(a.tags, ["c2", "botnet"]);
    assert_eq!(a.times_imported, 2);
    assert_eq!((a.created, a.updated), (at(1000), at(2000)));
    assert_eq!(by_source("feed-b").first_seen, Some(at(100)));
    let domain = store
        .list_indicators(
            alpha.id,
            &IndicatorQuery {
                kind: Some("domain".into()),
                limit: 10,
                ..IndicatorQuery::default()
            },
        )
        .await
        .expect("domain");
    assert_eq!(domain.items.len(), 1);
    assert_eq!(domain.items[0].confidence, 90);

    // Nothing crosses tenants.
    assert_eq!(
        store.count_indicators(bravo.id, None).await.expect("count"),
        0
    );
    assert!(store
        .indicator(bravo.id, a.id)
        .await
        .expect("get")
        .is_none());
    assert!(matches!(
        store.delete_indicator(bravo.id, a.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.expire_indicator(bravo.id, a.id, at(0)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store
            .delete_indicator_source(bravo.id, "feed-a")
            .await
            .expect("delete"),
        0
    );
    assert_eq!(
        store.count_indicators(alpha.id, None).await.expect("count"),
        3
    );
    assert_eq!(store.indicators_revision(bravo.id).await.expect("rev"), 0);

    // Bad input is refused whole, naming the indicator.
    for bad in [
        NewIndicator {
            confidence: 101,
            ..ioc("ip", "1.1.1.1", "f")
        },
        ioc("", "1.1.1.1", "f"),
        ioc("ip", "", "f"),
        ioc("ip", "1.1.1.1", " "),
        ioc("ip", "1.1\u{0}.1.1", "f"),
    ] {
        let err = store
            .upsert_indicators(alpha.id, &[ioc("ip", "2.2.2.2", "f"), bad], at(0))
            .await
            .expect_err("invalid");
        assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("indicator 1"), "{err}");
    }
    assert_eq!(
        store.count_indicators(alpha.id, None).await.expect("count"),
        3
    );
}

pub async fn indicators_page_filter_expire_and_delete(store: &SqlStore) {
    let alpha = store.ensure_tenant("alpha").await.expect("alpha");
    let many: Vec<NewIndicator> = (0..250)
        .map(|i| {
            let mut n = ioc("ip", &format!("10.0.{}.{}", i / 200, i % 200), "bulk");
            n.confidence = i % 101;
            n.expires = (i % 2 == 0).then(|| at(10_000 + i));
            n
        })
        .collect();
    let summary = store
        .upsert_indicators(alpha.id, &many, at(0))
        .await
        .expect("bulk");
    assert_eq!(summary.created, 250);
    // Pages in order without gaps or repeats.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_indicators(
                alpha.id,
                &IndicatorQuery {
                    source: Some("bulk".into()),
                    limit: 40,
                    cursor: cursor.clone(),
                    ..IndicatorQuery::default()
                },
            )
            .await
            .expect("page");
        assert!(page.items.len() <= 40);
        seen.extend(page.items.iter().map(|i| i.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(seen.len(), 250);
    assert_eq!(sorted, seen, "ascending, no repeats");
    // Activity and confidence filters.
    let now = at(10_100);
    let active = store
        .count_indicators(alpha.id, Some(now))
        .await
        .expect("active");
    // Odd ones never expire (125); even ones expire at 10_000 + i: those with i > 100 (74).
    assert_eq!(active, 125 + 74);
    assert_eq!(
        store
            .active_indicators(alpha.id, now)
            .await
            .expect("load")
            .len() as i64,
        active
    );
    let confident = store
        .list_indicators(
            alpha.id,
            &IndicatorQuery {
                min_confidence: Some(95),
                active_at: Some(now),
                limit: 1000,
                ..IndicatorQuery::default()
            },
        )
        .await
        .expect("filter");
    assert!(confident
        .items
        .iter()
        .all(|i| i.confidence >= 95 && i.expires.is_none_or(|e| e > now)));
    assert!(!confident.items.is_empty());
    // Expire one now: it stays, but is no longer active.
    let target = confident.items[0].clone();
    let expired = store
        .expire_indicator(alpha.id, target.id, now)
        .await
        .expect("expire");
    assert_eq!(expired.expires, Some(now));
    assert_eq!(
        store
            .count_indicators(alpha.id, Some(now))
            .await
            .expect("active"),
        active - 1
    );
    // Delete one; purge the expired; delete the source.
    store
        .delete_indicator(alpha.id, target.id)
        .await
        .expect("delete");
    assert!(store
        .indicator(alpha.id, target.id)
        .await
        .expect("get")
        .is_none());
    let purged = store
        .purge_expired_indicators(alpha.id, now)
        .await
        .expect("purge");
    assert_eq!(purged, 125 - 74);
    assert_eq!(
        store.count_indicators(alpha.id, None).await.expect("count"),
        active - 1
    );
    assert_eq!(
        store
            .delete_indicator_source(alpha.id, "bulk")
            .await
            .expect("delete source"),
        (active - 1) as u64
    );
    assert_eq!(
        store.count_indicators(alpha.id, None).await.expect("count"),
        0
    );
    let err = store
        .list_indicators(
            alpha.id,
            &IndicatorQuery {
                cursor: Some("garbage".into()),
                limit: 10,
                ..IndicatorQuery::default()
            },
        )
        .await
        .expect_err("bad cursor");
    assert!(err.to_string().contains("cursor"), "{err}");
}

pub async fn feeds_record_their_last_import(store: &SqlStore) {
    let alpha = store.ensure_tenant("alpha").await.expect("alpha");
    let bravo = store.ensure_tenant("bravo").await.expect("bravo");
    let feed = FeedImport {
        name: "abuse-ch".into(),
        format: "csv".into(),
        errors: 2,
    };
    let (summary, record) = store
        .import_indicators(
            alpha.id,
            &feed,
            &[
                ioc("ip", "1.2.3.4", "abuse-ch"),
                ioc("sha256", &"ab".repeat(32), "abuse-ch"),
            ],
            at(10),
        )
        .await
        .expect("import");
    assert_eq!(summary.created, 2);
    assert_eq!(
        (
            record.last_import,
            record.last_imported,
            record.last_errors,
            record.imports
        ),
        (at(10), 2, 2, 1)
    );
    let (_, again) = store
        .import_indicators(
            alpha.id,
            &FeedImport {
                errors: 0,
                format: "stix".into(),
                ..feed.clone()
            },
            &[ioc("ip", "1.2.3.4", "abuse-ch")],
            at(20),
        )
        .await
        .expect("again");
    assert_eq!(
        (
            again.format.as_str(),
            again.last_import,
            again.last_imported,
            again.last_errors,
            again.imports,
            again.created
        ),
        ("stix", at(20), 1, 0, 2, at(10))
    );
    assert_eq!(
        store.list_feeds(alpha.id).await.expect("feeds"),
        vec![again]
    );
    assert!(store.list_feeds(bravo.id).await.expect("feeds").is_empty());
    assert!(matches!(
        store
            .import_indicators(
                alpha.id,
                &FeedImport {
                    name: String::new(),
                    ..feed
                },
                &[],
                at(30)
            )
            .await,
        Err(StoreError::Invalid { .. })
    ));
    // Deleting the source removes its feed record too.
    assert_eq!(
        store
            .delete_indicator_source(alpha.id, "abuse-ch")
            .await
            .expect("delete"),
        2
    );
    assert!(store.list_feeds(alpha.id).await.expect("feeds").is_empty());
}
