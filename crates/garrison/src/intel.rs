//! `garrison intel import|check|list`: threat-intel feeds. `import` and `list` go through a
//! running service's API (`--url`, `--token`); `check` parses a file locally and prints what
//! would be refused, without storing anything.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use garrison_intel::{Format, ImportOptions};

/// A running service.
#[derive(Debug, Clone, clap::Args)]
pub struct Api {
    /// The running service (default: the one the configuration runs, from http_addr).
    #[arg(long, env = "GARRISON_URL")]
    url: Option<String>,
    /// API token (admin, analyst or responder to import).
    #[arg(long, env = "GARRISON_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Debug, Subcommand)]
pub enum IntelCommand {
    /// Import a feed file (CSV, STIX 2.1 bundle, MISP event JSON) into the token's tenant.
    ///
    /// Good records are stored, upserted by kind, value and source; every refused record is
    /// printed with its place (line, JSON pointer, object id). Exit code 2 when any was refused.
    Import {
        file: PathBuf,
        /// csv, stix or misp (default: by the file's extension and content).
        #[arg(long)]
        format: Option<Format>,
        /// The feed's name, recorded as every indicator's source.
        #[arg(long)]
        source: String,
        /// Confidence for records that give none (0 to 100).
        #[arg(long)]
        confidence: Option<u8>,
        /// Records without expiry expire this many days after first seen.
        #[arg(long)]
        ttl_days: Option<u32>,
        /// MISP: also import attributes with to_ids false.
        #[arg(long)]
        include_non_ids: bool,
        #[command(flatten)]
        api: Api,
    },
    /// Parse a feed file locally and print what it holds and what would be refused.
    Check {
        file: PathBuf,
        #[arg(long)]
        format: Option<Format>,
    },
    /// List indicators, oldest first, one JSON object per line.
    List {
        /// ip, cidr, domain, url, md5, sha1, sha256, sha512 or email.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        source: Option<String>,
        /// An exact value.
        #[arg(long)]
        value: Option<String>,
        /// Only indicators not expired.
        #[arg(long)]
        active: bool,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue after a previous page (its printed next cursor).
        #[arg(long)]
        cursor: Option<String>,
        /// Fetch every page, not just one.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        api: Api,
    },
}

/// The format from the extension, then the content (`"Event"` means MISP).
fn guess_format(path: &Path, bytes: &[u8]) -> Result<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "csv" | "txt" => Ok(Format::Csv),
        "json" => {
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
            if head.contains("\"Event\"") || head.contains("\"Attribute\"") {
                Ok(Format::Misp)
            } else {
                Ok(Format::Stix)
            }
        }
        _ => bail!(
            "cannot tell the format of {}: pass --format csv, stix or misp",
            path.display()
        ),
    }
}

fn read(file: &Path, format: Option<Format>) -> Result<(Vec<u8>, Format)> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let format = match format {
        Some(f) => f,
        None => guess_format(file, &bytes)?,
    };
    Ok((bytes, format))
}

async fn send(request: reqwest::RequestBuilder, url: &str) -> Result<serde_json::Value> {
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.context("answer is not JSON")?;
    if !status.is_success() {
        bail!(
            "{status}: {}",
            body.get("detail")
                .and_then(|d| d.as_str())
                .unwrap_or("request failed")
        );
    }
    Ok(body)
}

pub async fn run(command: IntelCommand) -> Result<i32> {
    match command {
        IntelCommand::Import {
            file,
            format,
            source,
            confidence,
            ttl_days,
            include_non_ids,
            api,
        } => {
            let (bytes, format) = read(&file, format)?;
            let mut query: Vec<(&str, String)> =
                vec![("format", format.as_str().to_string()), ("source", source)];
            if let Some(c) = confidence {
                query.push(("confidence", c.to_string()));
            }
            if let Some(d) = ttl_days {
                query.push(("ttl_days", d.to_string()));
            }
            if include_non_ids {
                query.push(("include_non_ids", "true".into()));
            }
            let base = crate::config::service_url(&api.url);
            let base = base.trim_end_matches('/');
            let body = send(
                reqwest::Client::new()
                    .post(format!("{base}/api/v1/indicators/import"))
                    .bearer_auth(&api.token)
                    .query(&query)
                    .header("content-type", "application/octet-stream")
                    .body(bytes),
                base,
            )
            .await?;
            let errors = body["errors"].as_array().cloned().unwrap_or_default();
            for e in &errors {
                eprintln!(
                    "{}: {}: {}",
                    file.display(),
                    e["at"].as_str().unwrap_or("?"),
                    e["reason"].as_str().unwrap_or("?")
                );
            }
            println!(
                "imported {} indicators ({} new, {} updated); {} refused, {} skipped",
                body["imported"],
                body["created"],
                body["updated"],
                errors.len(),
                body["skipped_count"]
            );
            Ok(if errors.is_empty() { 0 } else { 2 })
        }
        IntelCommand::Check { file, format } => {
            let (bytes, format) = read(&file, format)?;
            let options = ImportOptions::new("check", garrison_model::Timestamp::now());
            let out = tokio::task::spawn_blocking(move || format.parse(&bytes, &options)).await?;
            for e in &out.errors {
                eprintln!("{}: {e}", file.display());
            }
            for s in &out.skipped {
                eprintln!("{}: skipped: {s}", file.display());
            }
            let mut kinds = std::collections::BTreeMap::new();
            for i in &out.indicators {
                *kinds.entry(i.kind().as_str()).or_insert(0usize) += 1;
            }
            let summary: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            println!(
                "{} indicators ({}); {} refused, {} skipped",
                out.indicators.len(),
                summary.join(", "),
                out.errors.len(),
                out.skipped.len()
            );
            Ok(if out.errors.is_empty() { 0 } else { 2 })
        }
        IntelCommand::List {
            kind,
            source,
            value,
            active,
            limit,
            cursor,
            all,
            api,
        } => {
            let base = crate::config::service_url(&api.url);
            let base = base.trim_end_matches('/');
            let mut params: Vec<(&str, String)> = vec![("limit", limit.clamp(1, 1000).to_string())];
            for (name, v) in [("kind", kind), ("source", source), ("value", value)] {
                if let Some(v) = v {
                    params.push((name, v));
                }
            }
            if active {
                params.push(("active", "true".into()));
            }
            let client = reqwest::Client::new();
            let mut cursor = cursor;
            loop {
                let mut page_params = params.clone();
                if let Some(c) = &cursor {
                    page_params.push(("cursor", c.clone()));
                }
                let body = send(
                    client
                        .get(format!("{base}/api/v1/indicators"))
                        .bearer_auth(&api.token)
                        .query(&page_params),
                    base,
                )
                .await?;
                for indicator in body["indicators"].as_array().into_iter().flatten() {
                    println!("{}", serde_json::to_string(indicator)?);
                }
                match body["next_cursor"].as_str() {
                    Some(next) if all => cursor = Some(next.to_string()),
                    Some(next) => {
                        eprintln!("more results: --cursor {next}");
                        return Ok(0);
                    }
                    None => return Ok(0),
                }
            }
        }
    }
}
