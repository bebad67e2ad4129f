//! `garrison web analyze`: web-compromise analysis of access logs (see `garrison_web`).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use garrison_server::ServerConfig;
use garrison_web::{analyze, report, Options, Verdict};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Subcommand)]
pub enum WebCommand {
    /// Find the attacks in access logs and which likely succeeded; a report per site.
    ///
    /// Reads nginx/Apache common and combined logs (with or without a virtual host), IIS W3C
    /// logs (their #Fields line) and JSON access logs; plain or .gz; folders are read
    /// recursively. Classes: SQL injection, XSS, traversal, command injection, SSRF,
    /// Log4Shell, known exploit paths (with the CVE), sensitive files, webshells, scanners.
    /// An attack likely succeeded when it was answered 2xx with a size unlike the page's
    /// normal answers, or a new script answered 2xx after the same address uploaded. Attacking
    /// addresses get the verdict of the tenant's active indicators (`garrison intel`).
    ///
    /// Exit codes: 0 nothing likely succeeded, 1 error, 3 an attack likely succeeded.
    Analyze(AnalyzeArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Jsonl,
    Html,
}

#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Access log files or folders.
    #[arg(required_unless_present = "events")]
    paths: Vec<PathBuf>,
    /// Analyse the web server events stored in the local data directory instead of files
    /// (the ones a webserver decoder read: nginx, Apache, IIS, JSON access logs).
    #[arg(long, conflicts_with = "paths")]
    events: bool,
    /// With --events: only this source.
    #[arg(long, requires = "events")]
    source: Option<String>,
    /// With --events: event time from (RFC 3339 or Unix seconds).
    #[arg(long, requires = "events")]
    from: Option<String>,
    /// With --events: event time to (exclusive).
    #[arg(long, requires = "events")]
    to: Option<String>,
    /// Report every input as one site of this name (else by virtual host, else per file).
    #[arg(long)]
    site: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write the report here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Worker threads (0: every core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Failed attack lines kept as evidence per address and class.
    #[arg(long, default_value_t = 5)]
    evidence: usize,
    /// The tenant whose indicators give attacking addresses a verdict.
    #[arg(long, default_value = garrison_server::DEFAULT_TENANT)]
    tenant: String,
    /// Do not look attacking addresses up in the local indicator store.
    #[arg(long)]
    no_intel: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            collect(&e, out)?;
        }
    } else if path.exists() {
        out.push(path.to_path_buf());
    } else {
        bail!("{}: no such file or folder", path.display());
    }
    Ok(())
}

fn read(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{}: not a readable gzip file", path.display()))?;
        out
    } else {
        bytes
    };
    // Valid UTF-8 (the usual case) is taken as it is, without a copy.
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

pub async fn run(command: WebCommand, config: &ServerConfig) -> Result<i32> {
    let WebCommand::Analyze(args) = command;
    if args.events {
        let started = std::time::Instant::now();
        let sources = stored_requests(config, &args).await?;
        let options = Options {
            site: args.site.clone(),
            threads: args.threads,
            evidence_per_client: args.evidence,
        };
        let mut report = garrison_web::analyze_requests(sources, &options, &|_| None);
        if !args.no_intel {
            add_verdicts(&mut report, config, &args.tenant).await;
        }
        return finish(&args, &report, started.elapsed());
    }
    let mut files = Vec::new();
    for p in &args.paths {
        collect(p, &mut files)?;
    }
    let mut inputs = Vec::new();
    for f in &files {
        inputs.push((f.display().to_string(), read(f)?));
    }
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos} lines read ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    };
    let options = Options {
        site: args.site.clone(),
        threads: args.threads,
        evidence_per_client: args.evidence,
    };
    let started = std::time::Instant::now();
    let progress_bar = bar.clone();
    let mut report = tokio::task::spawn_blocking(move || {
        analyze(&inputs, &options, &|n| progress_bar.inc(n), &|_| None)
    })
    .await?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    if !args.no_intel {
        add_verdicts(&mut report, config, &args.tenant).await;
    }
    finish(&args, &report, elapsed)
}

fn finish(
    args: &AnalyzeArgs,
    report: &garrison_web::Report,
    elapsed: std::time::Duration,
) -> Result<i32> {
    let text = match args.format {
        Format::Table => report::table(report),
        Format::Jsonl => report::jsonl(report),
        Format::Html => report::html(report),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    if report.requests == 0 {
        bail!(
            "no request could be read from {} line(s): not an access log of a known format (combined, common, vhost, IIS W3C, JSON with a request target)",
            report.lines
        );
    }
    let succeeded: usize = report
        .sites
        .iter()
        .flat_map(|s| &s.findings)
        .filter(|f| matches!(f.assessment, garrison_web::Assessment::LikelySucceeded(_)))
        .count();
    let attacks: u64 = report.sites.iter().map(|s| s.attack_requests).sum();
    eprintln!(
        "{} lines in {:.2} s ({:.0} lines/s): {} attack requests, {succeeded} likely succeeded, {} webshell candidate(s)",
        report.lines,
        elapsed.as_secs_f64(),
        report.lines as f64 / elapsed.as_secs_f64().max(1e-9),
        attacks,
        report.sites.iter().map(|s| s.webshells.len()).sum::<usize>()
    );
    Ok(if succeeded > 0 { 3 } else { 0 })
}

/// Verdicts for the attacking addresses from the tenant's active indicators, when the data
/// directory has a store (a missing one is not an error: the report goes without).
async fn add_verdicts(report: &mut garrison_web::Report, config: &ServerConfig, tenant: &str) {
    if !config.data_dir.exists() && config.database_url.is_none() {
        return;
    }
    let Ok(app) = crate::admin::local_app(config).await else {
        return;
    };
    let Ok(actor) = crate::admin::local_actor(&app, tenant).await else {
        return;
    };
    for site in &mut report.sites {
        for a in &mut site.attackers {
            let params = garrison_api::indicators::ListParams {
                kind: Some("ip".into()),
                source: None,
                value: Some(a.client.clone()),
                active: Some(true),
                min_confidence: None,
                limit: None,
                cursor: None,
            };
            if let Ok(page) = app.list_indicators(&actor, params).await {
                a.verdict = page
                    .indicators
                    .into_iter()
                    .max_by(|x, y| x.score.total_cmp(&y.score))
                    .map(|i| Verdict {
                        verdict: if i.score >= 70.0 {
                            "malicious"
                        } else {
                            "suspicious"
                        }
                        .into(),
                        score: Some(i.score),
                        source: i.source,
                    });
            }
        }
    }
}

/// The tenant's stored web server requests, per source, as the analysis reads them.
async fn stored_requests(
    config: &ServerConfig,
    args: &AnalyzeArgs,
) -> Result<Vec<(String, Vec<(garrison_web::Request, String)>)>> {
    let app = crate::admin::local_app(config).await?;
    let actor = crate::admin::local_actor(&app, &args.tenant).await?;
    let bound = |v: &Option<String>, what: &str| -> Result<Option<garrison_model::TimeBound>> {
        v.as_deref()
            .map(|t| {
                garrison_model::parse_time_bound(t)
                    .map(garrison_model::TimeBound)
                    .map_err(|e| anyhow::anyhow!("--{what} {t:?}: {e}"))
            })
            .transpose()
    };
    let (from, to) = (bound(&args.from, "from")?, bound(&args.to, "to")?);
    let mut by_source: std::collections::BTreeMap<String, Vec<(garrison_web::Request, String)>> =
        Default::default();
    let mut cursor = None;
    loop {
        let params = garrison_api::admin::EventSearchParams {
            from,
            to,
            source: args.source.clone(),
            q: None,
            limit: Some(garrison_model::PageLimit(garrison_model::PageLimit::MAX)),
            cursor: cursor.take(),
        };
        let page = app
            .search_events(&actor, params, Vec::new())
            .await
            .context("reading stored events")?;
        for e in page.events {
            if let Some(req) = request_of(&e.normalized, &e.time) {
                let evidence = e
                    .raw
                    .clone()
                    .or_else(|| {
                        e.normalized
                            .get("message")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| format!("event {}", e.id));
                by_source
                    .entry(e.source.clone())
                    .or_default()
                    .push((req, evidence));
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(by_source.into_iter().collect())
}

/// A stored event's normalised view as a request, when it is one (a webserver decoder's).
fn request_of(
    n: &serde_json::Map<String, serde_json::Value>,
    time: &str,
) -> Option<garrison_web::Request> {
    let text = |k: &str| -> Option<String> {
        match n.get(k)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(v) => Some(v.to_string()),
            _ => None,
        }
    };
    let status: u16 = text("http.response.status_code")?.parse().ok()?;
    let target = text("url.original").or_else(|| {
        let path = text("url.path")?;
        Some(match text("url.query") {
            Some(q) if !q.is_empty() => format!("{path}?{q}"),
            _ => path,
        })
    })?;
    Some(garrison_web::Request {
        time: time.parse().ok(),
        client: text("source.ip").or_else(|| text("client.ip"))?,
        method: text("http.request.method").unwrap_or_default(),
        target,
        status,
        bytes: text("http.response.body.bytes")
            .and_then(|b| b.parse().ok())
            .unwrap_or(0),
        user_agent: text("user_agent.original").unwrap_or_default(),
        referrer: text("http.request.referrer").unwrap_or_default(),
        host: text("url.domain"),
    })
}
