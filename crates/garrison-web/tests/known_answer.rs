//! The analysis on a log with a known answer (one attacker's SQL injection that worked, an
//! upload that dropped a webshell which was then used, refused traversal and scanner probes,
//! a reflected XSS, a Log4Shell attempt) and on the same day's traffic without the attacks.

use garrison_web::{analyze, report, Assessment, Class, Options, Verdict};

fn read(name: &str) -> (String, String) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    (
        name.to_string(),
        std::fs::read_to_string(path).expect("test data"),
    )
}

fn verdict(ip: &str) -> Option<Verdict> {
    (ip == "203.0.113.66").then(|| Verdict {
        verdict: "malicious".into(),
        score: Some(90.0),
        source: "test feed".into(),
    })
}

#[test]
fn the_attacked_log_gives_its_known_answer() {
    let report = analyze(
        &[read("attacked.log")],
        &Options::default(),
        &|_| {},
        &verdict,
    );
    assert_eq!(report.unreadable, 0);
    assert_eq!(report.sites.len(), 1);
    let site = &report.sites[0];
    // 14 attack requests: 3 probes, 3 sqlmap, 1 traversal, 4 to the dropped shell, XSS, JNDI.
    // (The upload itself carries no payload.)
    assert_eq!(site.attack_requests, 13, "{:#?}", site.findings);
    let attackers: Vec<&str> = site.attackers.iter().map(|a| a.client.as_str()).collect();
    assert_eq!(attackers.len(), 4, "{attackers:?}");
    assert_eq!(
        attackers[0], "203.0.113.66",
        "the one with successes comes first"
    );
    let main = &site.attackers[0];
    assert_eq!(
        main.verdict.as_ref().map(|v| v.verdict.as_str()),
        Some("malicious")
    );
    assert!(main.classes.contains(&Class::SqlInjection) && main.classes.contains(&Class::Webshell));

    let succeeded: Vec<(&str, u16)> = site
        .findings
        .iter()
        .filter(|f| matches!(f.assessment, Assessment::LikelySucceeded(_)))
        .map(|f| (f.target.as_str(), f.status))
        .collect();
    assert!(
        succeeded.contains(&("/item.php?id=-1%27%20UNION%20ALL%20SELECT%20username,password,email%20FROM%20users--%20-", 200)),
        "the union answered 48 KB where the page is 4 KB: {succeeded:?}"
    );
    assert!(
        succeeded.iter().any(|(t, _)| *t == "/uploads/img_4471.php"),
        "the new script after the upload: {succeeded:?}"
    );
    assert!(
        !succeeded
            .iter()
            .any(|(t, _)| t.contains("etc/passwd") || t.contains(".env")),
        "refused attacks did not succeed: {succeeded:?}"
    );
    // The blind SLEEP answered with the normal size: worth a look, not a success.
    let sleep = site
        .findings
        .iter()
        .find(|f| f.target.contains("SLEEP"))
        .expect("sleep finding");
    assert!(
        matches!(sleep.assessment, Assessment::Investigate(_)),
        "{sleep:?}"
    );
    let error = site
        .findings
        .iter()
        .find(|f| f.status == 500)
        .expect("500 finding");
    assert!(matches!(error.assessment, Assessment::Investigate(_)));
    let exploit = site
        .findings
        .iter()
        .find(|f| f.target.contains("eval-stdin"))
        .expect("cve probe");
    assert_eq!(exploit.cve.as_deref(), Some("CVE-2017-9841"));

    let shells: Vec<&str> = site.webshells.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(shells, ["/uploads/img_4471.php"]);
    assert!(site
        .affected_urls
        .iter()
        .any(|u| u.path == "/item.php" && u.likely_succeeded == 1));
    assert!(site
        .recommendations
        .iter()
        .any(|(c, _)| *c == Class::Webshell));
    assert_eq!(
        site.first_attack.map(|t| t.to_string()).as_deref(),
        Some("2026-12-07T09:00:01Z")
    );

    // Every format renders it; the HTML escapes what the log holds.
    let html = report::html(&report);
    assert!(html.contains("&lt;script&gt;alert(document.cookie)") || html.contains("%3Cscript%3E"));
    assert!(
        !html.contains("<script"),
        "no markup from the log reaches the page"
    );
    let lines = report::jsonl(&report);
    assert!(lines
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    assert!(report::table(&report).contains("LIKELY SUCCEEDED"));
}

#[test]
fn the_clean_log_gives_nothing() {
    let report = analyze(&[read("clean.log")], &Options::default(), &|_| {}, &|_| {
        None
    });
    let site = &report.sites[0];
    assert_eq!(site.attack_requests, 0, "{:#?}", site.findings);
    assert!(site.webshells.is_empty(), "{:#?}", site.webshells);
    assert!(report::table(&report).contains("no attack found"));
}

#[test]
fn threads_do_not_change_the_answer() {
    let one = analyze(
        &[read("attacked.log")],
        &Options {
            threads: 1,
            ..Options::default()
        },
        &|_| {},
        &|_| None,
    );
    let four = analyze(
        &[read("attacked.log")],
        &Options {
            threads: 4,
            ..Options::default()
        },
        &|_| {},
        &|_| None,
    );
    assert_eq!(report::jsonl(&one), report::jsonl(&four));
}

mod properties {
    use garrison_web::{classify, LineParser};
    use proptest::prelude::*;

    proptest! {
        /// Any line is read or skipped, and any request classified, without a panic.
        #[test]
        fn any_line_is_safe(line in ".{0,400}") {
            let mut p = LineParser::default();
            if let Ok(r) = p.parse(&line) {
                let _ = classify(&r);
            }
        }

        /// Combined lines with any target and agent parse back to what was written.
        #[test]
        fn combined_lines_round_trip(target in "/[a-zA-Z0-9/%?=&._-]{0,80}", status in 100u16..600, bytes in 0u64..1_000_000, agent in "[a-zA-Z0-9 ./;()-]{0,60}") {
            let line = format!("192.0.2.1 - - [07/Dec/2026:10:00:00 +0000] \"GET {target} HTTP/1.1\" {status} {bytes} \"-\" \"{agent}\"");
            let r = LineParser::default().parse(&line).expect("a combined line");
            prop_assert_eq!(r.target, target);
            prop_assert_eq!(r.status, status);
            prop_assert_eq!(r.bytes, bytes);
            prop_assert_eq!(r.user_agent, if agent == "-" { String::new() } else { agent });
        }
    }
}
