//! `garrison incidents list|show|comment|attach|download`: work incidents from a terminal,
//! through a running service's API (the service enforces the workflow, roles and tenant).
//! `attach` streams evidence files the way `garrison ingest` sends logs; `download` checks
//! what it wrote against the attachment's SHA-256.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::client::{connect, param, print_lines};
use garrison_api::attachments::AttachmentView;
use garrison_api::incidents::IncidentParams;
use garrison_client::Client;

/// The service and the token to act with.
#[derive(Debug, Clone, clap::Args)]
pub struct Service {
    /// The service (default: the one the configuration runs, from http_addr).
    #[arg(long, env = "GARRISON_URL")]
    url: Option<String>,
    /// API token (its tenant and roles apply).
    #[arg(long, env = "GARRISON_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// List incidents, one JSON object per line (the queue: highest score first by default).
    List {
        /// Only this state (e.g. new, triage, analysis).
        #[arg(long)]
        state: Option<String>,
        /// Only this severity (low, medium, high, critical).
        #[arg(long)]
        severity: Option<String>,
        /// Only incidents assigned to this analyst.
        #[arg(long)]
        assignee: Option<String>,
        /// Only open (true) or closed (false) incidents.
        #[arg(long)]
        open: Option<bool>,
        /// Order: score (the queue), newest.
        #[arg(long, default_value = "score")]
        order: String,
        #[arg(long, default_value_t = 100, value_parser = crate::client::page_size)]
        limit: usize,
        /// Fetch every page, not just one.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        service: Service,
    },
    /// Print one incident with its SLA clocks, alerts, observables, tasks and attachments.
    Show {
        id: String,
        #[command(flatten)]
        service: Service,
    },
    /// Add a comment to the incident's timeline (`@name` mentions a user).
    Comment {
        id: String,
        text: String,
        #[command(flatten)]
        service: Service,
    },
    /// Attach evidence files to an incident (streamed; stored once by SHA-256).
    Attach {
        id: String,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Media type to declare (default application/octet-stream).
        #[arg(long)]
        content_type: Option<String>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        service: Service,
    },
    /// Download an attachment and check it against its SHA-256.
    Download {
        id: String,
        sha256: String,
        /// Where to write it (default: the attachment's name in the current folder).
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        service: Service,
    },
}

/// Path segments are ids the service gave out; encode them anyway.
pub async fn run(command: IncidentsCommand) -> Result<()> {
    match command {
        IncidentsCommand::List {
            state,
            severity,
            assignee,
            open,
            order,
            limit,
            all,
            service,
        } => {
            let api = connect(&service.url, &service.token)?;
            let mut params = IncidentParams {
                state,
                severity: param("severity", severity)?,
                assignee,
                open,
                order: param("order", Some(order))?,
                limit: crate::client::limit(limit),
                ..IncidentParams::default()
            };
            loop {
                let page = api.incidents(&params).await?;
                print_lines(&page.incidents)?;
                match page.next_cursor {
                    Some(next) if all => params.cursor = Some(next),
                    Some(_) => {
                        eprintln!("more results: add --all");
                        return Ok(());
                    }
                    None => return Ok(()),
                }
            }
        }
        IncidentsCommand::Show { id, service } => {
            let api = connect(&service.url, &service.token)?;
            let detail = api.incident(&id).await?;
            println!("{}", serde_json::to_string_pretty(&detail)?);
            Ok(())
        }
        IncidentsCommand::Comment { id, text, service } => {
            let api = connect(&service.url, &service.token)?;
            let result = api.comment(&id, &text).await?;
            // The timeline entries the comment added (with its mentions), one JSON line each.
            print_lines(&result.events)
        }
        IncidentsCommand::Attach {
            id,
            files,
            content_type,
            quiet,
            service,
        } => {
            let api = connect(&service.url, &service.token)?;
            for file in &files {
                let attached = attach(&api, &id, file, content_type.as_deref(), quiet)
                    .await
                    .with_context(|| format!("cannot attach {}", file.display()))?;
                println!("{}", serde_json::to_string(&attached)?);
            }
            Ok(())
        }
        IncidentsCommand::Download {
            id,
            sha256,
            output,
            service,
        } => {
            download(
                &connect(&service.url, &service.token)?,
                &id,
                &sha256,
                output,
            )
            .await
        }
    }
}

/// Streams one file to the incident; returns the attachment as the service recorded it.
async fn attach(
    api: &Client,
    id: &str,
    file: &Path,
    content_type: Option<&str>,
    quiet: bool,
) -> Result<AttachmentView> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .context("the file has no usable name")?
        .to_string();
    let handle = tokio::fs::File::open(file).await?;
    let size = handle.metadata().await?.len();
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(name.clone());
        bar
    };
    let progress = bar.clone();
    let stream = futures_util::stream::unfold(handle, |mut handle| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 256 * 1024];
        match handle.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buffer)), handle))
            }
            Err(e) => Some((Err(e), handle)),
        }
    })
    .inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            progress.inc(chunk.len() as u64);
        }
    });
    let result = api
        .upload_attachment(
            id,
            &name,
            content_type.unwrap_or("application/octet-stream"),
            size,
            garrison_client::Body::wrap_stream(stream),
        )
        .await;
    bar.finish_and_clear();
    Ok(result?)
}

/// Streams an attachment to a file, hashing as it goes; a mismatch removes the file.
async fn download(api: &Client, id: &str, sha256: &str, output: Option<PathBuf>) -> Result<()> {
    let mut response = api.download_attachment(id, sha256).await?;
    let path = match output {
        Some(path) => path,
        None => {
            // The attachment's own name, reduced to a plain file name here.
            let wanted = sha256.to_ascii_lowercase();
            let name = api
                .attachments(id)
                .await?
                .attachments
                .into_iter()
                .find(|a| a.sha256 == wanted)
                .and_then(|a| {
                    Path::new(&a.name)
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                })
                .unwrap_or_else(|| sha256.to_string());
            PathBuf::from(name)
        }
    };
    if path.exists() {
        bail!("{} exists; pass --output", path.display());
    }
    let mut file = tokio::fs::File::create(&path)
        .await
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    while let Some(chunk) = response.chunk().await.context("the download broke off")? {
        hasher.update(&chunk);
        file.write_all(&chunk).await?;
        written += chunk.len() as u64;
    }
    file.flush().await?;
    drop(file);
    let actual = hex::encode(hasher.finalize());
    if !actual.eq_ignore_ascii_case(sha256) {
        let _ = tokio::fs::remove_file(&path).await;
        bail!("the download hashes to {actual}, not {sha256}; nothing was kept");
    }
    eprintln!("{}: {written} bytes, SHA-256 checked", path.display());
    Ok(())
}
