//! The shipped scenario models (`rules/scenarios/*.yml`: Sigma rules and correlations for
//! brute force, spraying, lateral movement, mining, ransomware staging, webshells,
//! exfiltration, beaconing) against their replayable data sets (`rules/scenarios/tests/`).
//!
//! Every scenario rule is enabled at once, as a tenant would, and each data set goes through
//! the live path: syslog or JSON decoding, the shipped decoders, the pipeline's rows, then the
//! detector's `evaluate`. The alerts (distinct alert ids per rule title) must be exactly those
//! of the set's `.expected.json`: the attack fires, and nothing else does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use garrison_decoders::DecoderSet;
use garrison_detect::{evaluate, DetectConfig, TenantRules};
use garrison_model::{TenantId, Timestamp};
use garrison_pipeline::SourceContext;
use garrison_store::{EventRow, StoredRule};
use serde_json::Value;

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/scenarios")
}

fn scenario_rules(tenant: TenantId) -> Vec<StoredRule> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("rules/scenarios exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    paths.sort();
    let now = Timestamp::UNIX_EPOCH;
    let mut rules = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("readable rule");
        // One stored rule per YAML document, as `rules import` stores them.
        for (i, doc) in text.split("\n---\n").enumerate() {
            if doc.trim().is_empty() {
                continue;
            }
            rules.push(StoredRule {
                tenant_id: tenant,
                rule_id: format!(
                    "{}#{i}",
                    path.file_name().and_then(|n| n.to_str()).unwrap_or("rule")
                ),
                title: String::new(),
                level: None,
                yaml: doc.to_string(),
                origin: path.display().to_string(),
                version: 1,
                enabled: true,
                created: now,
                updated: now,
            });
        }
    }
    rules
}

/// The rows a data set becomes: `.log` files are syslog lines (one per line), `.jsonl` files
/// JSON records; both through the shipped decoders on a source with no logsource.
fn rows_of(path: &Path, tenant: TenantId, decoders: &Arc<DecoderSet>) -> Vec<EventRow> {
    let text = std::fs::read_to_string(path).expect("readable data set");
    let context = SourceContext::unconfigured(tenant, "scenario").decoding(decoders.clone());
    // Year-less syslog times take their year from the receive time.
    let received: Timestamp = "2026-12-07T12:00:00Z".parse().expect("time");
    let limits = garrison_ingest::Limits::default();
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let record = if path.extension().is_some_and(|x| x == "jsonl") {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1));
            garrison_ingest::Record::from_value(value)
        } else {
            garrison_ingest::syslog::parse(line.as_bytes(), received, &limits)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1))
        };
        rows.push(context.row(record, received));
    }
    rows
}

#[test]
fn every_scenario_fires_exactly_its_expected_alerts() {
    let tenant = TenantId(1);
    let rules = scenario_rules(tenant);
    assert!(!rules.is_empty(), "no scenario rule is shipped");
    let built = TenantRules::build(1, &rules, &Default::default());
    assert!(
        built.rejected.is_empty(),
        "scenario rules that do not load: {:#?}",
        built.rejected
    );
    drop(built);
    let decoders = Arc::new(DecoderSet::builtin().expect("shipped decoders load"));
    let tests = scenarios_dir().join("tests");
    let mut sets: Vec<PathBuf> = std::fs::read_dir(&tests)
        .expect("rules/scenarios/tests exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log" || x == "jsonl"))
        .collect();
    sets.sort();
    assert!(sets.len() >= 2, "scenario data sets: {sets:?}");
    let mut failures = Vec::new();
    for set in &sets {
        let expected_path = set.with_extension("expected.json");
        let expected: BTreeMap<String, u64> = serde_json::from_str(
            &std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let rows = rows_of(set, tenant, &decoders);
        let mut tenants = HashMap::new();
        tenants.insert(tenant, TenantRules::build(1, &rules, &Default::default()));
        let evaluated = evaluate(
            &rows,
            &mut tenants,
            &HashMap::new(),
            &DetectConfig::default(),
            1,
        );
        let mut alerts: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for hit in &evaluated.hits {
            alerts
                .entry(hit.title.clone())
                .or_default()
                .insert(hit.alert_id.clone());
        }
        let got: BTreeMap<String, u64> = alerts
            .into_iter()
            .map(|(title, ids)| (title, ids.len() as u64))
            .collect();
        if got != expected {
            failures.push(format!(
                "{}: expected {expected:?}\n   got {got:?}",
                set.file_name().and_then(|n| n.to_str()).unwrap_or("?")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
