//! SigmaHQ regression data: each tested rule must fire on its EVTX sample with exactly
//! `match_count` hits (where given), and agree with the JSON export of the same events.

use crate::common::{corpus_dir, files_with_ext};
use garrison_hunt::{hunt, load_rules, HuntOptions, NoProgress};
use std::path::{Path, PathBuf};

// The list of upstream miscounts lives with garrison-sigma's regression test, which uses it too.
#[allow(dead_code)]
mod upstream {
    include!("../../../garrison-sigma/tests/integration/upstream_miscounts.rs");
}
use upstream::UPSTREAM_MISCOUNTS;

struct Case {
    info: PathBuf,
    rule_id: String,
    match_count: Option<usize>,
    evtx: PathBuf,
    json: Option<PathBuf>,
}

/// Reads the few keys of an `info.yml` the test needs (lines starting with `#` are comments).
fn parse_info(sigma: &Path, info: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(info).map_err(|e| e.to_string())?;
    let mut rule_id = None;
    let mut match_count = None;
    let mut path = None;
    let mut kind = None;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('#') {
            continue;
        }
        let t = t.trim_start_matches("- ");
        let Some((k, v)) = t.split_once(':') else {
            continue;
        };
        let v = v.trim().trim_matches('\'').trim_matches('"');
        match k.trim() {
            "id" if line.starts_with("    ") && rule_id.is_none() => rule_id = Some(v.to_string()),
            "match_count" => match_count = v.parse().ok(),
            "path" => path = Some(v.to_string()),
            "type" => kind = Some(v.to_string()),
            _ => {}
        }
    }
    let rule_id = rule_id.ok_or("no rule_metadata id")?;
    if kind.as_deref() != Some("evtx") {
        return Err(format!("type {kind:?}"));
    }
    let evtx = sigma.join(path.ok_or("no path")?);
    let json = Some(evtx.with_extension("json")).filter(|p| p.is_file());
    Ok(Case {
        info: info.to_path_buf(),
        rule_id,
        match_count,
        evtx,
        json,
    })
}

/// The rule file: `regression_data/<tree>/<name>/` belongs to `<tree>/<name>.yml`; failing
/// that, the rule file whose `id:` is the rule id.
fn rule_file(
    sigma: &Path,
    case: &Case,
    by_id: &dyn Fn(&str) -> Option<PathBuf>,
) -> Option<PathBuf> {
    let dir = case.info.parent()?;
    let rel = dir.strip_prefix(sigma.join("regression_data")).ok()?;
    let candidate = sigma.join(rel).with_extension("yml");
    if candidate.is_file() {
        return Some(candidate);
    }
    by_id(&case.rule_id)
}

fn hits_of(rule: &Path, input: &Path, rule_id: &str) -> Result<Vec<u64>, String> {
    let loaded =
        load_rules(&[rule.to_path_buf()], &Default::default()).map_err(|e| e.to_string())?;
    if !loaded.rejected.is_empty() {
        return Err(format!("rule rejected: {:?}", loaded.rejected));
    }
    let opts = HuntOptions {
        paths: vec![input.to_path_buf()],
        threads: 1,
        ..Default::default()
    };
    let report = hunt(&opts, &loaded.set, &NoProgress).map_err(|e| e.to_string())?;
    if !report.summary.files_failed.is_empty() {
        return Err(format!("unreadable: {:?}", report.summary.files_failed));
    }
    let mut ids: Vec<u64> = report
        .hits
        .iter()
        .filter(|h| h.rule_id == rule_id)
        .map(|h| h.record_id.unwrap_or(0))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

#[test]
fn sigma_regression_data() {
    let Some(sigma) = corpus_dir("sigma") else {
        return;
    };
    let infos: Vec<PathBuf> = files_with_ext(&sigma.join("regression_data"), "yml")
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "info.yml"))
        .collect();
    assert!(infos.len() >= 200, "{} info.yml files", infos.len());
    // id → rule file, built on first need.
    let index = std::sync::OnceLock::<std::collections::HashMap<String, PathBuf>>::new();
    let by_id = |id: &str| -> Option<PathBuf> {
        index
            .get_or_init(|| {
                let mut m = std::collections::HashMap::new();
                for entry in std::fs::read_dir(&sigma).into_iter().flatten().flatten() {
                    let p = entry.path();
                    let is_rules = p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("rules"));
                    if !is_rules {
                        continue;
                    }
                    for f in files_with_ext(&p, "yml") {
                        if let Ok(t) = std::fs::read_to_string(&f) {
                            if let Some(l) = t.lines().find(|l| l.starts_with("id:")) {
                                m.insert(l[3..].trim().to_string(), f);
                            }
                        }
                    }
                }
                m
            })
            .get(id)
            .cloned()
    };
    let (mut passed, mut skipped) = (0, 0);
    let mut failures = Vec::new();
    for info in &infos {
        let case = match parse_info(&sigma, info) {
            Ok(c) => c,
            Err(why) => {
                eprintln!("skipped {}: {why}", info.display());
                skipped += 1;
                continue;
            }
        };
        let Some(rule) = rule_file(&sigma, &case, &by_id) else {
            failures.push(format!(
                "{}: rule {} not found",
                info.display(),
                case.rule_id
            ));
            continue;
        };
        let evtx_hits = match hits_of(&rule, &case.evtx, &case.rule_id) {
            Ok(h) => h,
            Err(e) => {
                failures.push(format!("{}: {e}", rule.display()));
                continue;
            }
        };
        let mut problems = Vec::new();
        let mut expected = case.match_count;
        if let Some((_, upstream, actual, _)) =
            UPSTREAM_MISCOUNTS.iter().find(|m| m.0 == case.rule_id)
        {
            assert_eq!(
                case.match_count,
                Some(*upstream),
                "{}: upstream count changed",
                case.rule_id
            );
            expected = Some(*actual);
        }
        match expected {
            Some(n) if evtx_hits.len() != n => {
                problems.push(format!("EVTX: {} hits, expected {n}", evtx_hits.len()))
            }
            None if evtx_hits.is_empty() => problems.push("EVTX: no hit".to_string()),
            _ => {}
        }
        if let Some(json) = &case.json {
            match hits_of(&rule, json, &case.rule_id) {
                Ok(json_hits) if json_hits != evtx_hits => problems.push(format!(
                    "JSON variant disagrees: records {json_hits:?} vs EVTX {evtx_hits:?}"
                )),
                Ok(_) => {}
                Err(e) => problems.push(format!("JSON: {e}")),
            }
        }
        if problems.is_empty() {
            passed += 1;
        } else {
            failures.push(format!(
                "{} ({}): {}",
                rule.display(),
                case.rule_id,
                problems.join("; ")
            ));
        }
    }
    eprintln!(
        "sigma regression data: {passed} passed, {} failed, {skipped} skipped",
        failures.len()
    );
    for f in &failures {
        eprintln!("  FAIL {f}");
    }
    assert!(
        failures.is_empty(),
        "{} regression cases failed (see above)",
        failures.len()
    );
}
