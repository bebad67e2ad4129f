use garrison_sigma::{load_rules, LoadOptions, Match, RuleSet, RuleSource};
use std::path::PathBuf;

/// The shared corpus: `$GARRISON_CORPUS`, else `../shared/corpus` from the workspace root.
pub fn corpus() -> Option<PathBuf> {
    let p = match std::env::var_os("GARRISON_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipping: corpus not found at {} (set GARRISON_CORPUS)",
            p.display()
        );
        None
    }
}

pub fn set(yaml: &str) -> RuleSet {
    let (set, errs) = load_rules([RuleSource::new("test.yml", yaml)], &LoadOptions::default());
    assert!(errs.is_empty(), "{errs:?}");
    set
}

pub fn load_err(yaml: &str) -> String {
    let (_, errs) = load_rules([RuleSource::new("test.yml", yaml)], &LoadOptions::default());
    assert_eq!(errs.len(), 1, "expected one error, got {errs:?}");
    errs[0].reason.clone()
}

pub fn titles(set: &RuleSet, ev: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<Match> = Vec::new();
    set.matches(ev, &mut out);
    out.iter().map(|m| m.rule.title.clone()).collect()
}

/// A rule with no logsource restriction and one selection.
pub fn sel(selection: &str) -> RuleSet {
    let mut body = String::new();
    for l in selection.lines() {
        body.push_str("        ");
        body.push_str(l);
        body.push('\n');
    }
    set(&format!(
        "title: t\nlogsource:\n    product: test\ndetection:\n    selection:\n{body}    condition: selection\n"
    ))
}

pub fn hit(set: &RuleSet, ev: serde_json::Value) -> bool {
    !titles(set, &ev).is_empty()
}
