//! `garrison ingest`: send log files (EVTX, JSON, JSONL, gz, zip) to a running service through
//! its ingest API, the way an analyst uploads logs collected from a host.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use garrison_api::ingest::IngestParams;
use garrison_client::ClientError;
use garrison_hunt::{collect_inputs, read_events, HuntEvent};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Files or folders: .evtx, .json, .jsonl, .ndjson, and .gz/.zip/.tar of them.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Source the events belong to, for an API token. An ingest token sends for its own
    /// source: leave this out (naming another source is refused).
    #[arg(long)]
    source: Option<String>,
    /// The service (default: the one the configuration runs, from http_addr).
    #[arg(long, env = "GARRISON_URL")]
    url: Option<String>,
    /// Ingest token (or an API token with the admin, analyst or responder role).
    #[arg(long, env = "GARRISON_TOKEN", hide_env_values = true)]
    token: String,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// One event as the JSON line sent. Nothing is added to make it idempotent: the service
/// derives each record's id from its bytes, so uploading the same files again (from any path)
/// stores nothing twice. Only the time the reader found is added where the event has none.
fn to_json_line(event: &HuntEvent, out: &mut String) -> Result<()> {
    let mut map = event.fields.to_map();
    if !map.contains_key("@timestamp") {
        if let Some(time) = event.timestamp() {
            map.insert("@timestamp".into(), time.to_string().into());
        }
    }
    out.push_str(&serde_json::to_string(&map)?);
    out.push('\n');
    Ok(())
}

#[derive(Default)]
struct Totals {
    files: usize,
    events: u64,
    accepted: u64,
    rejected: u64,
}

async fn send(
    api: &garrison_client::Client,
    args: &IngestArgs,
    body: bytes::Bytes,
    totals: &mut Totals,
) -> Result<()> {
    let params = IngestParams {
        source: args.source.clone(),
    };
    let mut delay = Duration::from_millis(200);
    loop {
        match api.ingest_ndjson(&params, body.clone()).await {
            Ok(answer) => {
                totals.accepted += answer.accepted as u64;
                totals.rejected += answer.rejected as u64;
                for error in answer.errors.iter().take(5) {
                    tracing::warn!(reason = %error.reason, "record rejected");
                }
                return Ok(());
            }
            // Busy: nothing was stored; wait and send the same batch again.
            Err(ClientError::Busy { retry_after }) => {
                tokio::time::sleep(delay.max(retry_after.min(Duration::from_secs(10)))).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub async fn run(args: IngestArgs) -> Result<()> {
    let inputs = collect_inputs(&args.paths)?;
    for (path, reason) in &inputs.errors {
        tracing::warn!(path = %path.display(), %reason, "skipped");
    }
    if inputs.files.is_empty() {
        bail!("no readable log files under {:?}", args.paths);
    }
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(inputs.total_bytes())
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let client = crate::client::connect(&args.url, &args.token)?;
    let started = Instant::now();
    let mut totals = Totals::default();
    for input in &inputs.files {
        let path = input.path.clone();
        let read = tokio::task::spawn_blocking(move || read_events(&path)).await?;
        let events = match read {
            Ok((events, stats)) => {
                for warning in &stats.warnings {
                    bar.suspend(|| tracing::warn!(file = %input.path.display(), "{warning}"));
                }
                events
            }
            Err(e) => {
                bar.suspend(
                    || tracing::warn!(file = %input.path.display(), error = %e, "file skipped"),
                );
                bar.inc(input.size);
                continue;
            }
        };
        totals.files += 1;
        for chunk in events.chunks(args.batch.max(1)) {
            let mut body = String::with_capacity(chunk.len() * 2048);
            for event in chunk {
                to_json_line(event, &mut body)?;
            }
            send(&client, &args, bytes::Bytes::from(body), &mut totals).await?;
            totals.events += chunk.len() as u64;
            bar.set_message(format!("{} events", totals.events));
        }
        bar.inc(input.size);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{} files, {} events sent: {} stored durably, {} rejected, in {:.1} s ({:.0} events/s)",
        totals.files,
        totals.events,
        totals.accepted,
        totals.rejected,
        seconds,
        totals.events as f64 / seconds.max(0.001)
    );
    Ok(())
}
