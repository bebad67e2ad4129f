//! Web-compromise analysis of access logs (`garrison web analyze`).
//!
//! Reads NCSA common/combined (nginx, Apache), IIS W3C and JSON access logs ([`parse`]),
//! classifies each request's attack payloads ([`classify`]: SQL injection, XSS, traversal,
//! command injection, SSRF, Log4Shell, known exploit paths with their CVE, sensitive files,
//! webshells, scanner agents), then judges which attacks likely **succeeded**: a 2xx answer
//! whose size departs from the page's normal answers, further requests from the same address
//! after it, or a new script answered 200 after an upload by the same address. Scripts only a
//! few addresses reach, mostly by POST, are webshell candidates. The result is one report per
//! site ([`Report`]); `garrison` renders it as a table, JSON lines or HTML.

pub mod classify;
pub mod parse;
pub mod report;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use jiff::Timestamp;
use serde::Serialize;

pub use classify::{classify, Class, Classes};
pub use parse::{LineParser, Request, Skip};

/// An address's reputation from threat intelligence, as the caller knows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// `malicious`, `suspicious`, ...
    pub verdict: String,
    pub score: Option<f64>,
    /// Where it comes from (feed name).
    pub source: String,
}

/// How sure the analysis is that an attack worked.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "assessment", content = "reason", rename_all = "snake_case")]
pub enum Assessment {
    LikelySucceeded(String),
    Investigate(String),
    Failed(String),
}

impl Assessment {
    fn rank(&self) -> u8 {
        match self {
            Assessment::LikelySucceeded(_) => 0,
            Assessment::Investigate(_) => 1,
            Assessment::Failed(_) => 2,
        }
    }
}

/// One attack request, with its evidence line.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub classes: Vec<Class>,
    pub cve: Option<String>,
    pub client: String,
    #[serde(serialize_with = "ser_time")]
    pub time: Option<Timestamp>,
    pub method: String,
    pub target: String,
    pub status: u16,
    pub bytes: u64,
    #[serde(flatten)]
    pub assessment: Assessment,
    pub file: String,
    pub line: usize,
    pub evidence: String,
}

fn ser_time<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.to_string()),
        None => s.serialize_none(),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Attacker {
    pub client: String,
    pub requests: u64,
    pub attack_requests: u64,
    pub classes: Vec<Class>,
    pub likely_succeeded: u64,
    #[serde(serialize_with = "ser_time")]
    pub first_seen: Option<Timestamp>,
    #[serde(serialize_with = "ser_time")]
    pub last_seen: Option<Timestamp>,
    pub verdict: Option<Verdict>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AffectedUrl {
    pub path: String,
    pub attack_requests: u64,
    pub classes: Vec<Class>,
    pub likely_succeeded: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct WebshellCandidate {
    pub path: String,
    pub clients: Vec<String>,
    pub requests: u64,
    pub posts: u64,
    pub ok: u64,
    #[serde(serialize_with = "ser_time")]
    pub first_seen: Option<Timestamp>,
    pub reasons: Vec<String>,
}

/// The analysis of one site.
#[derive(Clone, Debug, Serialize)]
pub struct SiteReport {
    pub site: String,
    pub requests: u64,
    pub attack_requests: u64,
    #[serde(serialize_with = "ser_time")]
    pub first_attack: Option<Timestamp>,
    #[serde(serialize_with = "ser_time")]
    pub last_attack: Option<Timestamp>,
    /// Attack requests per hour (`2026-12-07T10`).
    pub timeline: BTreeMap<String, u64>,
    pub attackers: Vec<Attacker>,
    pub affected_urls: Vec<AffectedUrl>,
    /// Every attack request judged likely to have worked or worth a look, then a sample of the
    /// failed ones (at most `evidence_per_client` per address and class).
    pub findings: Vec<Finding>,
    pub findings_total: u64,
    pub webshells: Vec<WebshellCandidate>,
    pub recommendations: Vec<(Class, String)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub files: usize,
    pub lines: u64,
    pub requests: u64,
    /// Lines that are not requests of a known format (not directives).
    pub unreadable: u64,
    pub sites: Vec<SiteReport>,
}

#[derive(Clone, Debug)]
pub struct Options {
    /// Name every input one site (else a log's virtual host, else its file name).
    pub site: Option<String>,
    /// Worker threads for reading and classifying (0: every core).
    pub threads: usize,
    /// Failed findings kept per address and class (all likely successes are kept).
    pub evidence_per_client: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            site: None,
            threads: 0,
            evidence_per_client: 5,
        }
    }
}

/// One read line.
struct Line {
    file: usize,
    line: usize,
    req: Request,
    classes: Classes,
    site: usize,
    /// The line itself, kept for attacks and scripts (the evidence a finding shows).
    raw: Option<Box<str>>,
}

/// Reads and classifies the lines of one text (on a worker thread).
fn read_chunk(
    text: &str,
    first_line: usize,
    fields: Option<String>,
    file: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> (Vec<Line>, u64, u64) {
    let mut parser = LineParser::default();
    if let Some(f) = fields {
        let _ = parser.parse(&f);
    }
    let (mut out, mut unreadable, mut lines) = (Vec::new(), 0u64, 0u64);
    for (i, raw) in text.lines().enumerate() {
        lines += 1;
        if lines % 65_536 == 0 {
            progress(65_536);
        }
        match parser.parse(raw) {
            Ok(mut req) => {
                let classes = classify(&req);
                let raw = (!classes.is_empty() || classify::is_script(req.path()))
                    .then(|| raw.chars().take(2000).collect::<String>().into_boxed_str());
                if classes.is_empty() {
                    // Only attacks keep their headers: the rest is counted and timed.
                    req.user_agent = String::new();
                    req.referrer = String::new();
                }
                out.push(Line {
                    file,
                    line: first_line + i + 1,
                    req,
                    classes,
                    site: 0,
                    raw,
                });
            }
            Err(Skip::Directive) => {}
            Err(Skip::Unknown) => unreadable += 1,
        }
    }
    progress(lines % 65_536);
    (out, unreadable, lines)
}

/// Splits a text into up to `n` pieces at line ends, each with the number of lines before it
/// and the IIS `#Fields:` line in force at its start.
fn split(text: &str, n: usize) -> Vec<(&str, usize, Option<String>)> {
    let mut pieces = Vec::new();
    let target = text.len() / n.max(1) + 1;
    let (mut start, mut lines_before, mut fields) = (0usize, 0usize, None::<String>);
    while start < text.len() {
        let mut end = (start + target).min(text.len());
        while end < text.len() && text.as_bytes()[end - 1] != b'\n' {
            end += 1;
        }
        let piece = &text[start..end];
        pieces.push((piece, lines_before, fields.clone()));
        lines_before += memchr::memchr_iter(b'\n', piece.as_bytes()).count();
        if let Some(at) = piece.rfind("#Fields:") {
            fields = piece[at..].lines().next().map(str::to_string);
        }
        start = end;
    }
    pieces
}

const UPLOAD_HINTS: [&str; 6] = ["upload", "file", "media", "import", "attach", "admin"];

/// Analyses access logs: `inputs` are (file name, text). `progress` gets line counts as they
/// are read; `verdicts` gives an address's threat-intelligence verdict, if known.
pub fn analyze(
    inputs: &[(String, String)],
    options: &Options,
    progress: &(dyn Fn(u64) + Sync),
    verdicts: &dyn Fn(&str) -> Option<Verdict>,
) -> Report {
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.threads
    };
    let mut lines: Vec<Line> =
        Vec::with_capacity(inputs.iter().map(|(_, t)| t.len() / 160).sum::<usize>());
    let (mut unreadable, mut total_lines) = (0u64, 0u64);
    for (file, (_, text)) in inputs.iter().enumerate() {
        let pieces = split(text, threads);
        let results: Vec<(Vec<Line>, u64, u64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = pieces
                .into_iter()
                .map(|(piece, before, fields)| {
                    scope.spawn(move || read_chunk(piece, before, fields, file, progress))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| (Vec::new(), 0, 0)))
                .collect()
        });
        for (mut l, u, n) in results {
            lines.append(&mut l);
            unreadable += u;
            total_lines += n;
        }
    }
    finish(
        lines,
        inputs.iter().map(|(n, _)| n.clone()).collect(),
        total_lines,
        unreadable,
        options,
        verdicts,
    )
}

/// The same analysis on requests already read (stored events of web sources): per source
/// name, its requests with their evidence text.
pub fn analyze_requests(
    sources: Vec<(String, Vec<(Request, String)>)>,
    options: &Options,
    verdicts: &dyn Fn(&str) -> Option<Verdict>,
) -> Report {
    let mut names = Vec::new();
    let mut lines = Vec::new();
    for (file, (name, requests)) in sources.into_iter().enumerate() {
        names.push(name);
        for (i, (req, evidence)) in requests.into_iter().enumerate() {
            let classes = classify(&req);
            lines.push(Line {
                file,
                line: i + 1,
                req,
                classes,
                site: 0,
                raw: Some(evidence.into_boxed_str()),
            });
        }
    }
    let total = lines.len() as u64;
    finish(lines, names, total, 0, options, verdicts)
}

fn finish(
    mut lines: Vec<Line>,
    files: Vec<String>,
    total_lines: u64,
    unreadable: u64,
    options: &Options,
    verdicts: &dyn Fn(&str) -> Option<Verdict>,
) -> Report {
    // Sites: the option, else the virtual host, else the file.
    let mut site_names: Vec<String> = Vec::new();
    let mut site_index: HashMap<String, usize> = HashMap::new();
    for l in &mut lines {
        let name = options
            .site
            .clone()
            .or_else(|| l.req.host.clone())
            .unwrap_or_else(|| files.get(l.file).cloned().unwrap_or_default());
        let next = site_index.len();
        l.site = *site_index.entry(name.clone()).or_insert_with(|| {
            site_names.push(name);
            next
        });
    }
    let requests = lines.len() as u64;
    // One sort groups the sites and orders each in time; each site reads its own slice.
    lines.sort_by_key(|l| {
        (
            l.site,
            l.req.time.map(|t| t.as_microsecond()),
            l.file,
            l.line,
        )
    });
    let mut sites = Vec::with_capacity(site_names.len());
    let mut rest: &[Line] = &lines;
    for (index, name) in site_names.into_iter().enumerate() {
        let end = rest
            .iter()
            .position(|l| l.site != index)
            .unwrap_or(rest.len());
        let (mine, others) = rest.split_at(end);
        sites.push(site_report(name, mine, options, verdicts, &files));
        rest = others;
    }
    Report {
        files: files.len(),
        lines: total_lines,
        requests,
        unreadable,
        sites,
    }
}

fn is_ok(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The evidence: the line as it is in its file.
fn evidence(l: &Line) -> String {
    l.raw.as_deref().unwrap_or_default().to_string()
}

fn median(values: &mut [u64]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    Some(values[values.len() / 2])
}

fn site_report(
    site: String,
    lines: &[Line],
    options: &Options,
    verdicts: &dyn Fn(&str) -> Option<Verdict>,
    files: &[String],
) -> SiteReport {
    // Normal answers per path: sizes of 2xx answers to requests that carry no attack.
    let mut normal: HashMap<&str, Vec<u64>> = HashMap::new();
    // Per script path: who reaches it, how, and when first.
    struct ScriptUse<'a> {
        clients: BTreeSet<&'a str>,
        requests: u64,
        posts: u64,
        ok: u64,
        first: Option<Timestamp>,
    }
    let mut scripts: HashMap<&str, ScriptUse<'_>> = HashMap::new();
    let mut ordinary_clients: HashMap<&str, HashSet<&str>> = HashMap::new();
    for l in lines {
        let path = l.req.path();
        if l.classes.is_empty() && is_ok(l.req.status) {
            let sizes = normal.entry(path).or_default();
            if sizes.len() < 256 {
                sizes.push(l.req.bytes);
            }
        }
        if classify::is_script(path) {
            let s = scripts.entry(path).or_insert_with(|| ScriptUse {
                clients: BTreeSet::new(),
                requests: 0,
                posts: 0,
                ok: 0,
                first: l.req.time,
            });
            s.clients.insert(&l.req.client);
            s.requests += 1;
            s.posts += u64::from(l.req.method.eq_ignore_ascii_case("POST"));
            s.ok += u64::from(is_ok(l.req.status));
            if l.classes.is_empty() {
                ordinary_clients
                    .entry(path)
                    .or_default()
                    .insert(&l.req.client);
            }
        }
    }
    let baseline: HashMap<&str, u64> = normal
        .into_iter()
        .filter_map(|(p, mut v)| {
            (v.len() >= 3)
                .then(|| median(&mut v).map(|m| (p, m)))
                .flatten()
        })
        .collect();
    // Per client: request times with whether each was an ordinary 2xx (for follow-ups).
    let mut client_times: HashMap<&str, Vec<(i64, bool)>> = HashMap::new();
    for l in lines {
        let t = l.req.time.map_or(0, |t| t.as_microsecond());
        client_times
            .entry(&l.req.client)
            .or_default()
            .push((t, l.classes.is_empty() && is_ok(l.req.status)));
    }
    let follow_ups = |client: &str, after: Option<Timestamp>| -> usize {
        let t0 = after.map_or(i64::MAX, |t| t.as_microsecond());
        client_times
            .get(client)
            .map_or(0, |v| v.iter().filter(|(t, ok)| *t > t0 && *ok).count())
    };

    let mut findings: Vec<Finding> = Vec::new();
    let mut kept_per: HashMap<(&str, Class), usize> = HashMap::new();
    let mut findings_total = 0u64;
    let mut attackers: HashMap<&str, Attacker> = HashMap::new();
    let mut urls: BTreeMap<&str, AffectedUrl> = BTreeMap::new();
    let mut timeline: BTreeMap<String, u64> = BTreeMap::new();
    let (mut first_attack, mut last_attack) = (None, None);
    let mut upload_at: HashMap<&str, i64> = HashMap::new();
    let mut seen_scripts: HashSet<&str> = HashSet::new();
    let mut dropped_scripts: HashSet<&str> = HashSet::new();
    let mut site_requests = 0u64;
    let mut attack_requests = 0u64;

    for l in lines {
        site_requests += 1;
        let r = &l.req;
        let path = r.path();
        let t_us = r.time.map_or(0, |t| t.as_microsecond());
        let entry = attackers.entry(&r.client).or_insert_with(|| Attacker {
            client: r.client.clone(),
            requests: 0,
            attack_requests: 0,
            classes: Vec::new(),
            likely_succeeded: 0,
            first_seen: r.time,
            last_seen: r.time,
            verdict: None,
        });
        entry.requests += 1;
        entry.last_seen = r.time.or(entry.last_seen);
        // A new script answered 200 right after the same client uploaded something.
        let mut classes = l.classes;
        let mut dropped = None;
        if dropped_scripts.contains(path) {
            classes.insert(Class::Webshell);
            if is_ok(r.status) {
                dropped = Some("the script dropped by an upload answered again".to_string());
            }
        } else if classify::is_script(path) && !seen_scripts.contains(path) {
            if let Some(up) = upload_at.get(r.client.as_str()) {
                if is_ok(r.status) && t_us >= *up {
                    classes.insert(Class::Webshell);
                    dropped_scripts.insert(path);
                    dropped = Some(
                        "a script nobody had requested before answered 2xx right after this address uploaded"
                            .to_string(),
                    );
                }
            }
        }
        if classify::is_script(path) {
            seen_scripts.insert(path);
        }
        if r.method.eq_ignore_ascii_case("POST")
            && is_ok(r.status)
            && UPLOAD_HINTS
                .iter()
                .any(|h| path.to_ascii_lowercase().contains(h))
        {
            upload_at.entry(&r.client).or_insert(t_us);
        }
        if classes.is_empty() {
            continue;
        }
        attack_requests += 1;
        entry.attack_requests += 1;
        for c in classes.iter() {
            if !entry.classes.contains(&c) {
                entry.classes.push(c);
            }
        }
        if let Some(t) = r.time {
            first_attack = first_attack.or(Some(t));
            last_attack = Some(t);
            let hour = t.to_string();
            timeline
                .entry(hour.get(..13).unwrap_or(&hour).to_string())
                .and_modify(|n| *n += 1)
                .or_insert(1);
        }
        let assessment = if let Some(reason) = dropped {
            Assessment::LikelySucceeded(reason)
        } else {
            assess(
                r,
                classes,
                baseline.get(path).copied(),
                follow_ups(&r.client, r.time),
            )
        };
        let succeeded = matches!(assessment, Assessment::LikelySucceeded(_));
        entry.likely_succeeded += u64::from(succeeded);
        let url = urls.entry(path).or_insert_with(|| AffectedUrl {
            path: path.to_string(),
            attack_requests: 0,
            classes: Vec::new(),
            likely_succeeded: 0,
        });
        url.attack_requests += 1;
        url.likely_succeeded += u64::from(succeeded);
        for c in classes.iter() {
            if !url.classes.contains(&c) {
                url.classes.push(c);
            }
        }
        findings_total += 1;
        let primary = classes.iter().next().unwrap_or(Class::Scanner);
        let kept = kept_per.entry((&r.client, primary)).or_insert(0);
        if matches!(assessment, Assessment::Failed(_)) && *kept >= options.evidence_per_client {
            continue;
        }
        *kept += 1;
        findings.push(Finding {
            classes: classes.iter().collect(),
            cve: classes.cve.map(str::to_string),
            client: r.client.clone(),
            time: r.time,
            method: r.method.clone(),
            target: r.target.clone(),
            status: r.status,
            bytes: r.bytes,
            assessment,
            file: files.get(l.file).cloned().unwrap_or_default(),
            line: l.line,
            evidence: evidence(l),
        });
    }
    findings.sort_by(|a, b| {
        a.assessment
            .rank()
            .cmp(&b.assessment.rank())
            .then(a.time.cmp(&b.time))
    });
    let mut attackers: Vec<Attacker> = attackers
        .into_values()
        .filter(|a| a.attack_requests > 0)
        .map(|mut a| {
            a.verdict = verdicts(&a.client);
            a.classes.sort();
            a
        })
        .collect();
    attackers.sort_by(|a, b| {
        b.likely_succeeded
            .cmp(&a.likely_succeeded)
            .then(b.attack_requests.cmp(&a.attack_requests))
            .then_with(|| a.client.cmp(&b.client))
    });
    let mut affected_urls: Vec<AffectedUrl> = urls.into_values().collect();
    affected_urls.sort_by(|a, b| {
        b.likely_succeeded
            .cmp(&a.likely_succeeded)
            .then(b.attack_requests.cmp(&a.attack_requests))
            .then_with(|| a.path.cmp(&b.path))
    });
    let mut webshells: Vec<WebshellCandidate> = scripts
        .into_iter()
        .filter_map(|(path, s)| {
            let ordinary = ordinary_clients.get(path).map_or(0, HashSet::len);
            let mut reasons = Vec::new();
            if s.clients.len() <= 2 && s.requests >= 3 && s.posts * 2 >= s.requests && s.ok * 2 >= s.requests {
                reasons.push(format!(
                    "reached by {} address(es) only, {} of {} requests by POST, {} answered 2xx",
                    s.clients.len(),
                    s.posts,
                    s.requests,
                    s.ok
                ));
            }
            if findings.iter().any(|f| f.target.starts_with(path) && f.classes.contains(&Class::Webshell) && matches!(f.assessment, Assessment::LikelySucceeded(_))) {
                reasons.push("requests to it were judged a working webshell (dropped by an upload, or command parameters / a known webshell name answered 2xx)".into());
            }
            (!reasons.is_empty() && ordinary <= 2).then(|| WebshellCandidate {
                path: path.to_string(),
                clients: s.clients.iter().map(|c| c.to_string()).collect(),
                requests: s.requests,
                posts: s.posts,
                ok: s.ok,
                first_seen: s.first,
                reasons,
            })
        })
        .collect();
    webshells.sort_by(|a, b| a.path.cmp(&b.path));
    let mut classes_seen: BTreeSet<Class> = BTreeSet::new();
    for f in &findings {
        classes_seen.extend(f.classes.iter().copied());
    }
    if !webshells.is_empty() {
        classes_seen.insert(Class::Webshell);
    }
    SiteReport {
        site,
        requests: site_requests,
        attack_requests,
        first_attack,
        last_attack,
        timeline,
        attackers,
        affected_urls,
        findings,
        findings_total,
        webshells,
        recommendations: classes_seen
            .into_iter()
            .map(|c| (c, c.advice().to_string()))
            .collect(),
    }
}

/// Whether one attack request likely worked.
fn assess(r: &Request, classes: Classes, normal: Option<u64>, follow_ups: usize) -> Assessment {
    if classes.only_scanner() {
        return Assessment::Failed("a scanner's request without a payload".into());
    }
    let follow = if follow_ups >= 3 {
        format!("; {follow_ups} further ordinary requests from this address followed")
    } else {
        String::new()
    };
    match r.status {
        s if (500..600).contains(&s) => Assessment::Investigate(format!(
            "the server failed ({s}): the payload reached the application{follow}"
        )),
        // A webshell's command answered: it ran, whatever the size (IIS logs no size by default).
        s if (200..300).contains(&s) && classes.contains(Class::Webshell) => {
            Assessment::LikelySucceeded(format!(
                "a webshell command was answered {s} ({}){follow}",
                if r.bytes == 0 {
                    "size not logged or empty".to_string()
                } else {
                    format!("{} bytes", r.bytes)
                }
            ))
        }
        s if (200..300).contains(&s) => match normal {
            Some(m) if r.bytes > m.saturating_mul(2) + 200 || r.bytes * 2 < m => {
                Assessment::LikelySucceeded(format!(
                    "answered {s} with {} bytes where this page normally answers {m}{follow}",
                    r.bytes
                ))
            }
            // A normal-size answer says nothing either way (a blind injection looks like
            // this); the address's further requests are worth reading, not proof.
            Some(m) => Assessment::Investigate(format!(
                "answered {s} with a normal size ({} bytes, usually {m}){follow}",
                r.bytes
            )),
            None if r.bytes > 0
                && (classes.contains(Class::PathTraversal)
                    || classes.contains(Class::SensitiveFile)
                    || classes.contains(Class::KnownExploit)
                    || classes.contains(Class::Webshell)
                    || classes.contains(Class::CommandInjection)) =>
            {
                Assessment::LikelySucceeded(format!(
                    "answered {s} with {} bytes to a request only an attack makes{follow}",
                    r.bytes
                ))
            }
            None => Assessment::Investigate(format!(
                "answered {s} ({} bytes; no normal answer of this page to compare){follow}",
                r.bytes
            )),
        },
        s => Assessment::Failed(format!("answered {s}")),
    }
}
