use super::common::corpus;
use garrison_sigma::{load_rules, rule_sources_from_dir, LoadOptions, RuleSource};
use std::time::Instant;

fn all_rule_sources(root: &std::path::Path) -> Vec<RuleSource> {
    let sigma = root.join("sigma");
    let mut dirs: Vec<_> = std::fs::read_dir(&sigma)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("rules")
        })
        .collect();
    dirs.sort();
    dirs.iter()
        .flat_map(|d| rule_sources_from_dir(d).unwrap())
        .collect()
}

/// Placeholders of the SigmaHQ placeholder rules, as a deployment would configure them.
pub fn placeholder_options() -> LoadOptions {
    let mut o = LoadOptions::default();
    for (k, v) in [
        ("Administrators", vec!["Administrator", "adm_*"]),
        ("Admins_Workstations", vec!["adminws-*"]),
        ("JumpServers", vec!["jump*"]),
        ("Workstations", vec!["ws-*"]),
        ("Servers", vec!["srv*"]),
        ("ServerSystems", vec!["srv*"]),
        ("DomainControllers", vec!["dc*"]),
        ("DC-MACHINE-NAME", vec!["DC01$"]),
        ("dc_machine_accounts", vec!["DC01$"]),
        ("domain_controller_hostnames", vec!["dc01"]),
        ("known_cdcs", vec!["dc01"]),
        ("Legitimate_Countries", vec!["CH"]),
        ("ApprovedUserUpn", vec!["admin@example.com"]),
        ("Approved_Inviters", vec!["admin@example.com"]),
        (
            "Important_AppIds",
            vec!["00000000-0000-0000-0000-000000000000"],
        ),
        ("Known_Location", vec!["CH"]),
        ("UnLegitCountries", vec!["XX"]),
        ("HomeTenantID", vec!["00000000-0000-0000-0000-000000000001"]),
        ("legtimate_identifiers", vec!["admin@example.com"]),
        ("internal_domains", vec!["*.corp.example"]),
        ("legit_ips", vec!["10.0.0.1"]),
        ("userdomain", vec!["CORP"]),
        ("Legitimate_IP_Ranges", vec!["10.*"]),
        ("UnApprovedIp", vec!["203.0.113.*"]),
        ("UnApprovedDevice", vec!["unmanaged-*"]),
        ("dc_ip_addresses", vec!["10.0.0.10"]),
    ] {
        o.placeholders
            .insert(k.to_string(), v.into_iter().map(String::from).collect());
    }
    o
}

#[test]
fn sigmahq_rules_compile() {
    let Some(root) = corpus() else { return };
    let sources = all_rule_sources(&root);
    assert!(
        sources.len() > 3000,
        "found only {} rule files",
        sources.len()
    );
    // Without placeholder values: only rules with unresolved placeholders may be rejected (the
    // specification requires rejecting them).
    let (set, errs) = load_rules(sources.clone(), &LoadOptions::default());
    let total = set.len() + errs.len();
    for e in &errs {
        eprintln!("rejected without placeholder values: {e}");
        assert!(
            e.reason.contains("unresolved placeholder"),
            "unexpected rejection: {e}"
        );
    }
    eprintln!(
        "without placeholder values: compiled {}/{} Sigma documents from {} files ({:.2}%)",
        set.len(),
        total,
        sources.len(),
        set.len() as f64 * 100.0 / total as f64
    );
    // With the placeholders a deployment configures, every rule must load.
    let (set, errs) = load_rules(sources.clone(), &placeholder_options());
    let total = set.len() + errs.len();
    for e in &errs {
        eprintln!("rejected: {e}");
    }
    let ok = set.len() as f64 / total as f64;
    eprintln!(
        "with placeholder values: compiled {}/{} ({:.2}%)",
        set.len(),
        total,
        ok * 100.0
    );
    assert!(ok >= 0.995, "only {:.2}% compiled", ok * 100.0);
}

#[test]
fn windows_rules_compile_fast() {
    let Some(root) = corpus() else { return };
    let sources = rule_sources_from_dir(&root.join("sigma/rules/windows")).unwrap();
    let t = Instant::now();
    let (set, errs) = load_rules(sources, &LoadOptions::default());
    let el = t.elapsed();
    eprintln!(
        "compiled {} windows rules ({} rejected) in {:?}",
        set.len(),
        errs.len(),
        el
    );
    assert!(set.len() >= 2390);
}

#[test]
fn index_statistics() {
    let Some(root) = corpus() else { return };
    let sources = rule_sources_from_dir(&root.join("sigma/rules/windows")).unwrap();
    let (set, _) = load_rules(sources, &LoadOptions::default());
    for (b, always, filtered) in set.index_stats().iter().take(12) {
        eprintln!("bucket {b}: {always} always evaluated, {filtered} behind the literal prefilter");
    }
    if std::env::var_os("SIGMA_STATS").is_some() {
        for t in set.unfiltered_rules() {
            eprintln!("unfiltered: {t}");
        }
    }
}

#[test]
fn automata_sizes() {
    let Some(root) = corpus() else { return };
    let sources = rule_sources_from_dir(&root.join("sigma/rules/windows")).unwrap();
    let (set, _) = load_rules(sources, &LoadOptions::default());
    eprintln!("automata heap bytes: {}", set.automata_memory());
}
