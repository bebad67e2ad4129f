//! The report as a terminal table, JSON lines or one self-contained HTML page.

use std::fmt::Write;

use crate::{Assessment, Report};

fn time(t: &Option<jiff::Timestamp>) -> String {
    t.map_or_else(|| "-".to_string(), |t| t.to_string())
}

/// A summary for the terminal: per site, the attackers, likely successes and webshells.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} lines in {} file(s): {} requests, {} unreadable",
        report.lines, report.files, report.requests, report.unreadable
    );
    for site in &report.sites {
        let succeeded = site
            .findings
            .iter()
            .filter(|f| matches!(f.assessment, Assessment::LikelySucceeded(_)))
            .count();
        let _ = writeln!(
            out,
            "\nsite {}: {} requests, {} attack requests from {} address(es), {} likely succeeded, {} webshell candidate(s)",
            site.site,
            site.requests,
            site.attack_requests,
            site.attackers.len(),
            succeeded,
            site.webshells.len()
        );
        if site.attack_requests == 0 {
            let _ = writeln!(out, "  no attack found");
            continue;
        }
        let _ = writeln!(
            out,
            "  attacks from {} to {}",
            time(&site.first_attack),
            time(&site.last_attack)
        );
        let _ = writeln!(
            out,
            "  {:<40} {:>8} {:>8} {:>9}  classes / verdict",
            "address", "requests", "attacks", "succeeded"
        );
        for a in site.attackers.iter().take(20) {
            let classes: Vec<&str> = a.classes.iter().map(|c| c.label()).collect();
            let verdict = a
                .verdict
                .as_ref()
                .map(|v| format!("  [TI: {} from {}]", v.verdict, v.source))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<40} {:>8} {:>8} {:>9}  {}{verdict}",
                a.client,
                a.requests,
                a.attack_requests,
                a.likely_succeeded,
                classes.join(", ")
            );
        }
        for f in site
            .findings
            .iter()
            .filter(|f| !matches!(f.assessment, Assessment::Failed(_)))
            .take(20)
        {
            let (kind, reason) = match &f.assessment {
                Assessment::LikelySucceeded(r) => ("LIKELY SUCCEEDED", r),
                Assessment::Investigate(r) => ("investigate", r),
                Assessment::Failed(r) => ("failed", r),
            };
            let classes: Vec<&str> = f.classes.iter().map(|c| c.label()).collect();
            let _ = writeln!(
                out,
                "  {kind}: {} {} {} -> {} ({}){}: {reason} [{}:{}]",
                time(&f.time),
                f.client,
                f.method,
                f.status,
                classes.join(", "),
                f.cve.as_ref().map(|c| format!(" {c}")).unwrap_or_default(),
                f.file,
                f.line
            );
        }
        for w in &site.webshells {
            let _ = writeln!(out, "  WEBSHELL? {}: {}", w.path, w.reasons.join("; "));
        }
    }
    out
}

/// One JSON object per line: `{"kind":"site",...}` (the summary), then its findings,
/// attackers and webshell candidates, each with its site.
pub fn jsonl(report: &Report) -> String {
    let mut out = String::new();
    let line = |out: &mut String, kind: &str, site: &str, value: serde_json::Value| {
        let mut obj = serde_json::Map::new();
        obj.insert("kind".into(), kind.into());
        obj.insert("site".into(), site.into());
        if let serde_json::Value::Object(map) = value {
            obj.extend(map);
        }
        out.push_str(&serde_json::Value::Object(obj).to_string());
        out.push('\n');
    };
    for s in &report.sites {
        line(
            &mut out,
            "site",
            &s.site,
            serde_json::json!({
                "requests": s.requests, "attack_requests": s.attack_requests,
                "first_attack": time(&s.first_attack), "last_attack": time(&s.last_attack),
                "timeline": s.timeline, "affected_urls": s.affected_urls,
                "findings_total": s.findings_total, "recommendations": s.recommendations,
            }),
        );
        for a in &s.attackers {
            line(
                &mut out,
                "attacker",
                &s.site,
                serde_json::to_value(a).unwrap_or_default(),
            );
        }
        for f in &s.findings {
            line(
                &mut out,
                "finding",
                &s.site,
                serde_json::to_value(f).unwrap_or_default(),
            );
        }
        for w in &s.webshells {
            line(
                &mut out,
                "webshell",
                &s.site,
                serde_json::to_value(w).unwrap_or_default(),
            );
        }
    }
    out
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One HTML page, no script and nothing fetched: every value from the log is escaped.
pub fn html(report: &Report) -> String {
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\"><title>Garrison web analysis</title><style>body{font:14px system-ui,sans-serif;margin:2em;color:#1b1f24}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccd;padding:3px 7px;text-align:left;vertical-align:top}th{background:#eef}code{font-size:12px;word-break:break-all}.ok{color:#b00020;font-weight:600}.inv{color:#8a5a00}.bar{background:#c33;height:10px;display:inline-block}</style></head><body>",
    );
    let _ = write!(
        out,
        "<h1>Web-compromise analysis</h1><p>{} lines in {} file(s): {} requests, {} unreadable.</p>",
        report.lines, report.files, report.requests, report.unreadable
    );
    for s in &report.sites {
        let _ = write!(
            out,
            "<h2>{}</h2><p>{} requests, {} attack requests, from {} to {}.</p>",
            esc(&s.site),
            s.requests,
            s.attack_requests,
            esc(&time(&s.first_attack)),
            esc(&time(&s.last_attack))
        );
        if s.attack_requests == 0 {
            out.push_str("<p>No attack found.</p>");
            continue;
        }
        let max = s.timeline.values().copied().max().unwrap_or(1).max(1);
        out.push_str("<h3>Timeline (attack requests per hour, UTC)</h3><table>");
        for (hour, n) in &s.timeline {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{n}</td><td><span class=\"bar\" style=\"width:{}px\"></span></td></tr>",
                esc(hour),
                n * 300 / max
            );
        }
        out.push_str("</table><h3>Attacking addresses</h3><table><tr><th>address</th><th>requests</th><th>attacks</th><th>likely succeeded</th><th>classes</th><th>threat intelligence</th><th>first / last seen</th></tr>");
        for a in &s.attackers {
            let classes: Vec<&str> = a.classes.iter().map(|c| c.label()).collect();
            let ti = a
                .verdict
                .as_ref()
                .map(|v| format!("{} ({})", esc(&v.verdict), esc(&v.source)))
                .unwrap_or_else(|| "-".into());
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{ti}</td><td>{}<br>{}</td></tr>",
                esc(&a.client),
                a.requests,
                a.attack_requests,
                a.likely_succeeded,
                esc(&classes.join(", ")),
                esc(&time(&a.first_seen)),
                esc(&time(&a.last_seen))
            );
        }
        out.push_str("</table><h3>Affected URLs</h3><table><tr><th>path</th><th>attacks</th><th>likely succeeded</th><th>classes</th></tr>");
        for u in &s.affected_urls {
            let classes: Vec<&str> = u.classes.iter().map(|c| c.label()).collect();
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&u.path),
                u.attack_requests,
                u.likely_succeeded,
                esc(&classes.join(", "))
            );
        }
        if !s.webshells.is_empty() {
            out.push_str("</table><h3>Webshell candidates</h3><table><tr><th>script</th><th>addresses</th><th>requests / POST / 2xx</th><th>first seen</th><th>why</th></tr>");
            for w in &s.webshells {
                let _ = write!(
                    out,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{} / {} / {}</td><td>{}</td><td>{}</td></tr>",
                    esc(&w.path),
                    esc(&w.clients.join(", ")),
                    w.requests,
                    w.posts,
                    w.ok,
                    esc(&time(&w.first_seen)),
                    esc(&w.reasons.join("; "))
                );
            }
        }
        let _ = write!(
            out,
            "</table><h3>Evidence ({} shown of {} attack requests)</h3><table><tr><th>assessment</th><th>time</th><th>address</th><th>classes</th><th>line</th></tr>",
            s.findings.len(),
            s.findings_total
        );
        for f in &s.findings {
            let (class, kind, reason) = match &f.assessment {
                Assessment::LikelySucceeded(r) => ("ok", "likely succeeded", r),
                Assessment::Investigate(r) => ("inv", "investigate", r),
                Assessment::Failed(r) => ("", "failed", r),
            };
            let classes: Vec<&str> = f.classes.iter().map(|c| c.label()).collect();
            let _ = write!(
                out,
                "<tr><td class=\"{class}\">{kind}<br><small>{}</small></td><td>{}</td><td>{}</td><td>{}{}</td><td><code>{}:{}: {}</code></td></tr>",
                esc(reason),
                esc(&time(&f.time)),
                esc(&f.client),
                esc(&classes.join(", ")),
                f.cve.as_ref().map(|c| format!(" <b>{}</b>", esc(c))).unwrap_or_default(),
                esc(&f.file),
                f.line,
                esc(&f.evidence)
            );
        }
        out.push_str("</table><h3>Recommendations</h3><ul>");
        for (c, advice) in &s.recommendations {
            let _ = write!(out, "<li><b>{}</b>: {}</li>", esc(c.label()), esc(advice));
        }
        out.push_str("</ul>");
    }
    out.push_str("</body></html>\n");
    out
}
