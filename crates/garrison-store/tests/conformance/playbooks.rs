//! Playbook storage: immutable versions, runs with optimistic revisions and their timers in one
//! write, due timers across tenants, blobs, secrets, single-use approval links, tenant scoping.

use garrison_model::{TenantId, Timestamp};
use garrison_store::*;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("time")
}

fn timer(tenant: TenantId, id: &str, run: &str, due: i64) -> TimerRecord {
    TimerRecord {
        tenant_id: tenant,
        timer_id: id.into(),
        run_id: run.into(),
        due: at(due),
        payload: format!("{{\"kind\":\"wait\",\"step\":\"{id}\"}}"),
    }
}

fn write(tenant: TenantId, run: &str, expected: Option<i64>, state: &str) -> RunWrite {
    RunWrite {
        tenant_id: tenant,
        run_id: run.into(),
        playbook: "pb".into(),
        version: 1,
        status: "running".into(),
        state: state.into(),
        active: true,
        expected_rev: expected,
        add_timers: Vec::new(),
        remove_timers: Vec::new(),
        blobs: Vec::new(),
        audit: Vec::new(),
        now: at(0),
    }
}

pub async fn playbook_versions_never_change_and_stay_in_their_tenant(store: &SqlStore) {
    let a = store.ensure_tenant("pb-a").await.expect("tenant").id;
    let b = store.ensure_tenant("pb-b").await.expect("tenant").id;
    let v1 = store
        .save_playbook_version(a, "contain", "{\"v\":1}", "name: contain\n", Some("alice"))
        .await
        .expect("v1");
    assert_eq!(v1.version, 1);
    let again = store
        .save_playbook_version(a, "contain", "{\"v\":1}", "name: contain\n", None)
        .await
        .expect("same text");
    assert_eq!(again.version, 1, "the same text is the same version");
    let v2 = store
        .save_playbook_version(a, "contain", "{\"v\":2}", "name: contain\n# v2\n", None)
        .await
        .expect("v2");
    assert_eq!(v2.version, 2);
    let old = store
        .playbook_version(a, "contain", Some(1))
        .await
        .expect("load")
        .expect("v1 kept");
    assert_eq!(old.source, "name: contain\n");
    assert_eq!(old.created_by.as_deref(), Some("alice"));
    let latest = store
        .playbook_version(a, "contain", None)
        .await
        .expect("load")
        .expect("latest");
    assert_eq!(latest.version, 2);
    assert_eq!(
        store
            .playbook_versions(a, "contain")
            .await
            .expect("list")
            .len(),
        2
    );
    // Another tenant sees nothing and numbers its own versions.
    assert!(store
        .playbook_version(b, "contain", None)
        .await
        .expect("load")
        .is_none());
    assert!(store.list_playbooks(b).await.expect("list").is_empty());
    assert!(store
        .set_playbook_enabled(b, "contain", false)
        .await
        .is_err());
    let s = store
        .set_playbook_enabled(a, "contain", false)
        .await
        .expect("disable");
    assert!(!s.enabled);
    assert_eq!(s.latest_version, 2);
    assert!(store
        .enabled_playbooks_all_tenants()
        .await
        .expect("enabled")
        .iter()
        .all(|v| v.name != "contain"));
    store
        .set_playbook_enabled(a, "contain", true)
        .await
        .expect("enable");
    let enabled = store
        .enabled_playbooks_all_tenants()
        .await
        .expect("enabled");
    assert!(enabled
        .iter()
        .any(|v| v.tenant_id == a && v.name == "contain" && v.version == 2));
    assert!(store
        .save_playbook_version(a, "bad name!", "{}", "x", None)
        .await
        .is_err());
}

pub async fn runs_save_with_revisions_and_timers_atomically(store: &SqlStore) {
    let a = store.ensure_tenant("runs-a").await.expect("tenant").id;
    let b = store.ensure_tenant("runs-b").await.expect("tenant").id;
    let mut create = write(a, "r1", None, "{\"s\":0}");
    create.add_timers = vec![timer(a, "t1", "r1", 10), timer(a, "t2", "r1", 20)];
    let out = store.commit_runs(&[create.clone()]).await.expect("create");
    assert_eq!(out, vec![WriteOutcome::Saved(1)]);
    assert_eq!(
        store.commit_runs(&[create]).await.expect("again"),
        vec![WriteOutcome::Exists]
    );
    // A stale revision is refused and changes nothing (neither state nor timers).
    let call = |what: &str| NewAuditEntry {
        actor: "playbook:pb".into(),
        action: "playbook.action".into(),
        target: format!("r1/{what}"),
        details: serde_json::json!({}),
    };
    let mut stale = write(a, "r1", Some(7), "{\"s\":9}");
    stale.remove_timers = vec!["t1".into()];
    stale.audit = vec![call("stale")];
    let mut good = write(a, "r1", Some(1), "{\"s\":1}");
    good.remove_timers = vec!["t2".into()];
    good.add_timers = vec![timer(a, "t3", "r1", 5)];
    good.audit = vec![call("good")];
    let out = store.commit_runs(&[stale, good]).await.expect("batch");
    assert_eq!(out, vec![WriteOutcome::Conflict(1), WriteOutcome::Saved(2)]);
    // Audit entries go with their write: only the saved one's, chained like any other.
    let audit = store
        .list_audit(
            a,
            &AuditQuery {
                after: None,
                action: None,
                limit: 100,
            },
        )
        .await
        .expect("audit");
    let targets: Vec<&str> = audit.entries.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, ["r1/good"]);
    assert!(store
        .verify_audit(a)
        .await
        .expect("verify")
        .first_bad
        .is_none());
    let run = store.load_run(a, "r1").await.expect("load").expect("run");
    assert_eq!((run.state.as_str(), run.rev), ("{\"s\":1}", 2));
    let ids: Vec<String> = store
        .run_timers(a, "r1")
        .await
        .expect("timers")
        .into_iter()
        .map(|t| t.timer_id)
        .collect();
    assert_eq!(ids, ["t3", "t1"]);
    // Other tenants cannot see or write it.
    assert!(store.load_run(b, "r1").await.expect("load").is_none());
    assert_eq!(
        store
            .commit_runs(&[write(b, "r1", Some(2), "{}")])
            .await
            .expect("write"),
        vec![WriteOutcome::Conflict(0)]
    );
    // Due timers of every tenant, earliest first, with their tenant.
    let mut other = write(b, "r9", None, "{}");
    other.add_timers = vec![timer(b, "u1", "r9", 7)];
    store.commit_runs(&[other]).await.expect("other tenant");
    let due = store.due_timers(at(10), 100).await.expect("due");
    let got: Vec<(TenantId, String)> = due
        .iter()
        .map(|t| (t.tenant_id, t.timer_id.clone()))
        .collect();
    assert_eq!(
        got,
        [(a, "t3".to_string()), (b, "u1".into()), (a, "t1".into())]
    );
    store.delete_timer(a, "t3").await.expect("delete");
    assert_eq!(store.due_timers(at(10), 100).await.expect("due").len(), 2);
    // A timer stored on its own (a request for a busy run), replaced by the same id.
    store
        .put_timer(&timer(a, "c1", "r1", 8))
        .await
        .expect("put");
    store
        .put_timer(&timer(a, "c1", "r1", 3))
        .await
        .expect("put again");
    let due = store.due_timers(at(10), 100).await.expect("due");
    assert_eq!(due.len(), 3);
    assert_eq!((due[0].timer_id.as_str(), due[0].due), ("c1", at(3)));
    store.delete_timer(a, "c1").await.expect("delete");
    // Active runs and list filters.
    let mut done = write(a, "r2", None, "{}");
    done.status = "succeeded".into();
    done.active = false;
    store.commit_runs(&[done]).await.expect("done");
    let active = store.active_runs(100).await.expect("active");
    assert!(active.contains(&(a, "r1".to_string())));
    assert!(!active.contains(&(a, "r2".to_string())));
    let filter = RunFilter {
        status: Some("succeeded".into()),
        limit: 10,
        ..Default::default()
    };
    let listed = store.list_runs(a, &filter, false).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].run_id, "r2");
    assert!(listed[0].state.is_empty());
    let all = store
        .list_runs(
            a,
            &RunFilter {
                limit: 10,
                ..Default::default()
            },
            true,
        )
        .await
        .expect("list");
    assert_eq!(all.len(), 2);
    assert!(store
        .list_runs(
            b,
            &RunFilter {
                playbook: Some("pb".into()),
                limit: 10,
                ..Default::default()
            },
            false
        )
        .await
        .expect("list")
        .iter()
        .all(|r| r.tenant_id == b));
}

pub async fn blobs_secrets_and_links_are_scoped_and_single_use(store: &SqlStore) {
    let a = store.ensure_tenant("blob-a").await.expect("tenant").id;
    let b = store.ensure_tenant("blob-b").await.expect("tenant").id;
    let mut w = write(a, "rb", None, "{}");
    w.blobs = vec![("sha256:x".into(), "big".into())];
    store.commit_runs(&[w.clone()]).await.expect("create");
    let mut w2 = write(a, "rb", Some(1), "{}");
    w2.blobs = w.blobs.clone();
    store.commit_runs(&[w2]).await.expect("same blob again");
    assert_eq!(
        store.blob(a, "sha256:x").await.expect("blob").as_deref(),
        Some("big")
    );
    assert!(store.blob(b, "sha256:x").await.expect("blob").is_none());

    store
        .put_secret_hash(a, "hook", "h1")
        .await
        .expect("secret");
    store
        .put_secret_hash(a, "hook", "h2")
        .await
        .expect("replace");
    assert_eq!(
        store.secret_hash(a, "hook").await.expect("get").as_deref(),
        Some("h2")
    );
    assert!(store.secret_hash(b, "hook").await.expect("get").is_none());

    let link = ApprovalLink {
        link_hash: "lh".into(),
        tenant_id: a,
        run_id: "rb".into(),
        step: "ask".into(),
        expires: at(100),
        issued_to: Some("rita".into()),
    };
    store.create_approval_link(&link).await.expect("link");
    assert_eq!(
        store.approval_link("lh", at(50)).await.expect("get"),
        Some(link)
    );
    assert!(
        store
            .approval_link("lh", at(100))
            .await
            .expect("get")
            .is_none(),
        "expired"
    );
    assert!(!store.use_approval_link("lh", at(200)).await.expect("use"));
    assert!(store.use_approval_link("lh", at(50)).await.expect("use"));
    assert!(
        !store.use_approval_link("lh", at(51)).await.expect("use"),
        "a link works once"
    );
    assert!(store
        .approval_link("lh", at(52))
        .await
        .expect("get")
        .is_none());
}
