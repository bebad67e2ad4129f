use super::common::corpus;
use super::corpus::placeholder_options;
use super::upstream_miscounts::UPSTREAM_MISCOUNTS;
use garrison_sigma::{load_rules, rule_sources_from_dir, Match};
use std::collections::HashMap;

/// Every SigmaHQ regression test (JSON variant): the rule fires on its events exactly
/// `match_count` times, except where upstream's count is known to be wrong
/// ([`UPSTREAM_MISCOUNTS`], the same list as garrison-hunt's EVTX variant): there it fires the
/// true number of times.
#[test]
fn sigmahq_regression_data() {
    let Some(root) = corpus() else { return };
    let sigma = root.join("sigma");
    let mut sources = Vec::new();
    for d in [
        "rules",
        "rules-emerging-threats",
        "rules-threat-hunting",
        "rules-compliance",
        "rules-dfir",
        "rules-placeholder",
    ] {
        if sigma.join(d).is_dir() {
            sources.extend(rule_sources_from_dir(&sigma.join(d)).unwrap());
        }
    }
    let (set, _) = load_rules(sources, &placeholder_options());
    let by_id: HashMap<&str, usize> = set
        .rules()
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.id.as_deref().map(|id| (id, i)))
        .collect();
    let mut infos = Vec::new();
    let mut stack = vec![sigma.join("regression_data")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() == "info.yml" {
                infos.push(p);
            }
        }
    }
    infos.sort();
    let (mut passed, mut failed, mut tests, mut corrected) = (0, Vec::new(), 0, Vec::new());
    for info in &infos {
        let text = std::fs::read_to_string(info).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let Some(rule_id) = doc["rule_metadata"][0]["id"].as_str() else {
            continue;
        };
        let Some(tests_list) = doc["regression_tests_info"].as_array() else {
            continue;
        };
        for t in tests_list {
            let Some(evtx_path) = t["path"].as_str() else {
                continue;
            };
            tests += 1;
            let json_path = sigma.join(evtx_path).with_extension("json");
            let mut expected = t["match_count"].as_u64();
            if let Some((_, upstream, actual, why)) =
                UPSTREAM_MISCOUNTS.iter().find(|m| m.0 == rule_id)
            {
                assert_eq!(
                    expected,
                    Some(*upstream as u64),
                    "{rule_id}: upstream count changed"
                );
                expected = Some(*actual as u64);
                corrected.push(format!(
                    "{rule_id}: upstream match_count {upstream}, expected {actual}: {why}"
                ));
            }
            let Some(&rix) = by_id.get(rule_id) else {
                failed.push(format!("{}: rule {rule_id} not loaded", info.display()));
                continue;
            };
            let data = match std::fs::read_to_string(&json_path) {
                Ok(d) => d,
                Err(e) => {
                    failed.push(format!("{}: {e}", json_path.display()));
                    continue;
                }
            };
            let mut hits = 0u64;
            let mut n = 0;
            let mut out: Vec<Match> = Vec::new();
            for ev in serde_json::Deserializer::from_str(&data).into_iter::<serde_json::Value>() {
                let ev = ev.unwrap();
                n += 1;
                out.clear();
                set.matches(&ev, &mut out);
                hits += out.iter().filter(|m| m.rule_index == rix).count() as u64;
            }
            let ok = match expected {
                Some(c) => hits == c,
                None => hits > 0,
            };
            if ok {
                passed += 1;
            } else {
                failed.push(format!(
                    "{}: rule {rule_id} ({}) matched {hits} of {n} events, expected {expected:?}",
                    info.display(),
                    set.rules()[rix].title
                ));
            }
        }
    }
    for f in &failed {
        eprintln!("regression failure: {f}");
    }
    for c in &corrected {
        eprintln!("upstream miscount: {c}");
    }
    eprintln!(
        "regression tests passed: {passed}/{tests} (exactly match_count, {} upstream miscounts corrected)",
        corrected.len()
    );
    assert!(
        failed.is_empty(),
        "{} regression tests failed",
        failed.len()
    );
}
