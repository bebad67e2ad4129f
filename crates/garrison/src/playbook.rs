//! `garrison playbook`: validate playbook files (locally), and import, sync, run, list, show,
//! replay, approve, cancel and rerun through a running service's API (`--url`, `--token`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use garrison_api::playbooks::{
    ApproveBody, ImportBody, PlaybookBody, ReplayBody, RunListParams, StartRunBody, SyncBody,
    SyncFile,
};
use garrison_client::{CancelAnswer, Client};
use serde_json::{json, Value as Json};

#[derive(Debug, clap::Args)]
pub struct Api {
    /// The running service (default: the one the configuration runs, from http_addr).
    #[arg(long, env = "GARRISON_URL")]
    url: Option<String>,
    /// API token (a responder's or an admin's to change anything).
    #[arg(long, env = "GARRISON_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Api {
    fn client(&self) -> Result<Client> {
        let token = self
            .token
            .as_deref()
            .context("--token (or GARRISON_TOKEN) is needed to talk to the service")?;
        crate::client::connect(&self.url, token)
    }
}

#[derive(Debug, Subcommand)]
pub enum PlaybookCommand {
    /// Check playbook files (YAML or JSON) without a service: prints every error with its
    /// place (`FILE:LINE:COLUMN: PATH: MESSAGE`); exits 1 when any file has errors.
    Validate {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Start a run of a playbook FILE (imported first; an unchanged file keeps its version) or
    /// of a playbook NAME on the service.
    ///
    /// With --wait, prints the final run as JSON (status and each step's state, input and
    /// output) and exits 0 when it succeeded, 2 when it failed or was cancelled. With
    /// --dry-run and a FILE, simulates locally (example outputs, no I/O, no service needed).
    Run {
        #[arg(value_name = "FILE|NAME")]
        target: String,
        /// Input KEY=VALUE (VALUE as JSON when the input is not a string); repeatable.
        #[arg(long = "input", value_name = "KEY=VALUE")]
        inputs: Vec<String>,
        /// Simulate: example outputs, no actions, no timers.
        #[arg(long)]
        dry_run: bool,
        /// Wait for the run to finish and print it.
        #[arg(long)]
        wait: bool,
        /// Longest wait, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        #[command(flatten)]
        api: Api,
    },
    /// List runs, newest first (one JSON object per line).
    Runs {
        #[arg(long)]
        playbook: Option<String>,
        /// pending, running, succeeded, failed, cancelled.
        #[arg(long)]
        status: Option<String>,
        /// Only runs not finished or still holding leases.
        #[arg(long)]
        active: bool,
        #[arg(long, default_value_t = 50, value_parser = crate::client::page_size)]
        limit: usize,
        #[command(flatten)]
        api: Api,
    },
    /// Print a run: status, steps with inputs, outputs, attempts, timings and logs.
    Show {
        run_id: String,
        #[command(flatten)]
        api: Api,
    },
    /// Decide an approval step of a run.
    Approve {
        run_id: String,
        step: String,
        choice: String,
        #[command(flatten)]
        api: Api,
    },
    /// Cancel a run.
    Cancel {
        run_id: String,
        #[command(flatten)]
        api: Api,
    },
    /// Run a failed run again from its failed steps (completed steps are kept).
    Rerun {
        run_id: String,
        #[command(flatten)]
        api: Api,
    },
    /// Dry-run a past run's trigger and inputs against a version of its playbook (latest by
    /// default): prints the path that version takes beside the run's own, and each step's
    /// simulated state, as JSON. Nothing is sent or stored.
    Replay {
        run_id: String,
        /// The version to replay against.
        #[arg(long)]
        version: Option<u32>,
        /// Answer every action with its example output, not the run's recorded outputs.
        #[arg(long)]
        examples_only: bool,
        #[command(flatten)]
        api: Api,
    },
    /// Sync a folder of playbook files (.yml, .yaml, .json; subfolders too, hidden ones
    /// skipped): a file becomes a new version only when its text changed. Prints one line per
    /// file (created, updated, unchanged, or each error as FILE:LINE:COL: PATH: MESSAGE); the
    /// good files are saved even when others fail; exits 1 when any file failed.
    Sync {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[command(flatten)]
        api: Api,
    },
    /// Import playbook files, or every .yml/.yaml/.json file of folders (all or nothing).
    Import {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        api: Api,
    },
}

pub async fn run(command: PlaybookCommand) -> Result<()> {
    match command {
        PlaybookCommand::Validate { files } => validate(&files),
        PlaybookCommand::Run {
            target,
            inputs,
            dry_run,
            wait,
            timeout,
            api,
        } => run_playbook(&target, &inputs, dry_run, wait, timeout, api).await,
        PlaybookCommand::Runs {
            playbook,
            status,
            active,
            limit,
            api,
        } => {
            let runs = api
                .client()?
                .runs(&RunListParams {
                    playbook,
                    status,
                    active: active.then_some(true),
                    before: None,
                    limit: crate::client::limit(limit),
                })
                .await?;
            crate::client::print_lines(&runs)
        }
        PlaybookCommand::Show { run_id, api } => {
            let run = api.client()?.run(&run_id).await?;
            println!("{}", serde_json::to_string_pretty(&run)?);
            Ok(())
        }
        PlaybookCommand::Approve {
            run_id,
            step,
            choice,
            api,
        } => {
            let run = api
                .client()?
                .approve(&run_id, &ApproveBody { step, choice })
                .await?;
            let run = serde_json::to_value(&run)?;
            println!("{}", serde_json::to_string_pretty(&summary(&run))?);
            Ok(())
        }
        PlaybookCommand::Cancel { run_id, api } => {
            let run = match api.client()?.cancel(&run_id).await? {
                CancelAnswer::Cancelled(run) => serde_json::to_value(&run)?,
                CancelAnswer::Requested(requested) => serde_json::to_value(&requested)?,
            };
            println!("{}", serde_json::to_string_pretty(&summary(&run))?);
            Ok(())
        }
        PlaybookCommand::Rerun { run_id, api } => {
            let run = serde_json::to_value(api.client()?.rerun(&run_id).await?)?;
            println!("{}", serde_json::to_string_pretty(&summary(&run))?);
            Ok(())
        }
        PlaybookCommand::Replay {
            run_id,
            version,
            examples_only,
            api,
        } => {
            let replay = api
                .client()?
                .replay(
                    &run_id,
                    &ReplayBody {
                        version,
                        recorded_outputs: Some(!examples_only),
                    },
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&replay)?);
            Ok(())
        }
        PlaybookCommand::Sync { dir, api } => sync(&dir, &api).await,
        PlaybookCommand::Import { paths, api } => {
            let mut sources = Vec::new();
            let mut names = Vec::new();
            for file in playbook_files(&paths)? {
                sources.push(
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?,
                );
                names.push(file.display().to_string());
            }
            let saved = api
                .client()?
                .import_playbooks(&ImportBody {
                    sources,
                    paths: names,
                })
                .await?;
            for v in &saved {
                println!("{} v{}", v.name, v.version);
            }
            Ok(())
        }
    }
}

fn playbook_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| matches!(e, "yml" | "yaml" | "json"))
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The playbook files under `dir`, subfolders included (hidden entries skipped), sorted.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?
        {
            let path = entry
                .with_context(|| format!("cannot read {}", d.display()))?
                .path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yml" | "yaml" | "json"))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn sync(dir: &Path, api: &Api) -> Result<()> {
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let mut files = Vec::new();
    let mut failed = 0usize;
    for path in files_under(dir)? {
        let shown = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        match std::fs::read_to_string(&path) {
            Ok(source) => files.push(SyncFile {
                path: shown,
                source,
            }),
            Err(e) => {
                println!("{shown}: cannot read: {e}");
                failed += 1;
            }
        }
    }
    let report = api.client()?.sync_playbooks(&SyncBody { files }).await?;
    for f in &report.files {
        let path = &f.path;
        if f.status == "error" {
            for e in &f.errors {
                println!("{path}:{}", e.text);
            }
        } else {
            println!(
                "{path}: {} {} v{}",
                f.status,
                f.name.as_deref().unwrap_or("?"),
                f.version.unwrap_or(0)
            );
        }
    }
    failed += report.failed;
    eprintln!(
        "{} created, {} updated, {} unchanged, {failed} failed",
        report.created, report.updated, report.unchanged
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn validate(files: &[PathBuf]) -> Result<()> {
    let registry = garrison_soar::registry();
    let mut failed = false;
    for file in playbook_files(files)? {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                println!("{}: cannot read: {e}", file.display());
                failed = true;
                continue;
            }
        };
        let (playbook, errors) = garrison_playbook::validate(&text, &registry);
        if errors.is_empty() && playbook.is_some() {
            println!("{}: ok", file.display());
            continue;
        }
        failed = true;
        for e in &errors {
            println!("{}:{e}", file.display());
        }
        eprintln!("{}: {} error(s)", file.display(), errors.len().max(1));
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// The run's status and each step's state, input and output.
fn summary(run: &Json) -> Json {
    let steps: Vec<Json> = run["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            json!({
                "id": s["id"],
                "status": s["status"],
                "attempts": s["attempt"],
                "input": s.get("input").cloned().unwrap_or(Json::Null),
                "output": s.get("output").cloned().unwrap_or(Json::Null),
                "error": s.get("error").cloned().unwrap_or(Json::Null),
            })
        })
        .collect();
    json!({
        "run_id": run["run_id"],
        "playbook": run["playbook"],
        "version": run["version"],
        "status": run["status"],
        "error": run.get("error").cloned().unwrap_or(Json::Null),
        "dry_run": run.get("dry_run").cloned().unwrap_or(Json::Bool(false)),
        "steps": steps,
    })
}

/// `KEY=VALUE` pairs as inputs: a value stays text for string-like inputs (per the form's
/// types), and is read as JSON otherwise when it parses.
fn parse_inputs(pairs: &[String], form: &Json) -> Result<Json> {
    let mut out = serde_json::Map::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("--input {pair:?}: expected KEY=VALUE"))?;
        let ty = form["properties"][k]["type"].as_str().unwrap_or("");
        let value = if ty == "string" {
            Json::String(v.to_string())
        } else {
            serde_json::from_str(v).unwrap_or_else(|_| Json::String(v.to_string()))
        };
        out.insert(k.to_string(), value);
    }
    Ok(Json::Object(out))
}

async fn run_playbook(
    target: &str,
    inputs: &[String],
    dry_run: bool,
    wait: bool,
    timeout: u64,
    api: Api,
) -> Result<()> {
    let path = Path::new(target);
    let is_file = path.is_file();
    let looks_like_a_file = target.contains('/')
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yml" | "yaml" | "json"));
    if !is_file && looks_like_a_file {
        bail!("{target}: no such file (give a playbook file, or the name of a saved playbook)");
    }
    if is_file && dry_run {
        // Local simulation: nothing leaves this process.
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let (playbook, errors) = garrison_playbook::validate(&text, &garrison_soar::registry());
        let Some(playbook) = playbook.filter(|_| errors.is_empty()) else {
            for e in &errors {
                eprintln!("{}:{e}", path.display());
            }
            std::process::exit(1);
        };
        let inputs = parse_inputs(inputs, &playbook.input_form())?;
        let state = garrison_playbook::dry_run(
            &playbook,
            &inputs,
            json!({"kind": "manual", "by": "cli"}),
            jiff::Timestamp::now(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let run = serde_json::to_value(&state)?;
        println!("{}", serde_json::to_string_pretty(&summary(&run))?);
        return exit_for(&run);
    }
    let client = api.client()?;
    let name = if is_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let saved = client
            .save_playbook(&PlaybookBody {
                source: Some(text),
                definition: None,
            })
            .await;
        match saved {
            Ok(saved) => saved.name,
            // Each problem with its place in the file, as `playbook validate` prints them.
            Err(garrison_client::ClientError::Api { problem, .. })
                if !problem.errors.is_empty() =>
            {
                for e in &problem.errors {
                    if let Some(text) = e.get("text").and_then(Json::as_str) {
                        println!("{}:{text}", path.display());
                    }
                }
                bail!("{}: {} error(s)", path.display(), problem.errors.len());
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        target.to_string()
    };
    let detail = client.playbook(&name).await?;
    let inputs = parse_inputs(inputs, &detail.input_form)?;
    let started = client
        .start_run(
            &name,
            &StartRunBody {
                inputs: Some(inputs),
                version: None,
                dry_run,
            },
        )
        .await?;
    let run_id = started.run_id.clone();
    if !wait {
        println!("{run_id}");
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut run = serde_json::to_value(&started)?;
    loop {
        let done = run["status"]
            .as_str()
            .is_some_and(|s| matches!(s, "succeeded" | "failed" | "cancelled"));
        if done {
            break;
        }
        if Instant::now() > deadline {
            println!("{}", serde_json::to_string_pretty(&summary(&run))?);
            bail!("run {run_id} did not finish within {timeout}s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        run = serde_json::to_value(client.run(&run_id).await?)?;
    }
    println!("{}", serde_json::to_string_pretty(&summary(&run))?);
    exit_for(&run)
}

fn exit_for(run: &Json) -> Result<()> {
    if run["status"].as_str() != Some("succeeded") {
        std::process::exit(2);
    }
    Ok(())
}
