//! `garrison intel import|check|list|retro-hunt`: threat-intel feeds. `import` and `list` go through a
//! running service's API (`--url`, `--token`); `check` parses a file locally and prints what
//! would be refused, without storing anything.

use std::path::{Path, PathBuf};

use crate::client::{connect, print_lines};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use garrison_api::indicators::{ImportParams, ListParams};
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
    /// Retro-hunt: match the tenant's active indicators against stored events of a range
    /// (default: the last 7 days); matches become `ioc:<kind>` alerts as live ones do.
    RetroHunt {
        /// From (inclusive): RFC 3339 or Unix seconds.
        #[arg(long)]
        from: Option<String>,
        /// To (exclusive): RFC 3339 or Unix seconds; default now.
        #[arg(long)]
        to: Option<String>,
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
        #[arg(long, default_value_t = 100, value_parser = crate::client::page_size)]
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
            let params = ImportParams {
                format: format.as_str().to_string(),
                source,
                confidence,
                ttl_days,
                include_non_ids: include_non_ids.then_some(true),
            };
            let body = connect(&api.url, &api.token)?
                .import_indicators(&params, bytes)
                .await?;
            for e in &body.errors {
                eprintln!("{}: {}: {}", file.display(), e.at, e.reason);
            }
            println!(
                "imported {} indicators ({} new, {} updated); {} refused, {} skipped",
                body.imported,
                body.created,
                body.updated,
                body.errors.len(),
                body.skipped_count
            );
            Ok(if body.errors.is_empty() { 0 } else { 2 })
        }
        IntelCommand::RetroHunt { from, to, api } => {
            let bound = |name: &str, value: Option<String>| {
                value
                    .map(|v| {
                        garrison_model::parse_time_bound(&v)
                            .map(garrison_model::TimeBound)
                            .with_context(|| format!("--{name}"))
                    })
                    .transpose()
            };
            let request = garrison_api::indicators::RetroHuntRequest {
                from: bound("from", from)?,
                to: bound("to", to)?,
            };
            let spinner = indicatif::ProgressBar::new_spinner();
            spinner.set_message("matching indicators against stored events");
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            let answer = connect(&api.url, &api.token)?.retro_hunt(&request).await;
            spinner.finish_and_clear();
            let answer = answer?;
            println!(
                "{} indicators against {} events from {} to {}: {} matches, {} new alerts",
                answer.indicators,
                answer.events,
                answer.from,
                answer.to,
                answer.matches,
                answer.alerts_created
            );
            Ok(0)
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
            let client = connect(&api.url, &api.token)?;
            let mut params = ListParams {
                kind,
                source,
                value,
                active: active.then_some(true),
                min_confidence: None,
                limit: crate::client::limit(limit),
                cursor,
            };
            loop {
                let page = client.indicators(&params).await?;
                print_lines(&page.indicators)?;
                match page.next_cursor {
                    Some(next) if all => params.cursor = Some(next),
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
