//! `garrison bench playbook`: the playbook engine over the real store, in this process.
//!
//! 1. Throughput: runs of a 10-step playbook of `core.*` actions, started from several tasks
//!    at once, each stored durably (SQLite, `synchronous = FULL`, group commit): runs/s.
//! 2. Overhead per step: the engine alone (state machine + built-in actions, no store), and a
//!    whole durable run divided by its steps.
//! 3. Memory: runs left waiting on timers and approvals, then the process's RSS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use garrison_playbook::{advance, ActionExecutor, ActionRequest, Effect, Event, RunState};
use garrison_soar::{CoreActions, Soar, SoarConfig, StartRun};
use garrison_store::{PlaybookRepo, SqlStore, TenantRepo};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct PlaybookBench {
    /// Runs of the 10-step playbook for the throughput figure.
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    /// Runs started at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Runs left waiting (half on a timer, half on an approval) for the memory figure.
    #[arg(long, default_value_t = 10_000)]
    waiting: usize,
    /// Database (default: SQLite in a temporary directory).
    #[arg(long)]
    database_url: Option<String>,
}

const TEN_STEPS: &str = r#"
name: bench-ten
inputs:
  ip: {type: ip, default: "198.51.100.23"}
steps:
  - {id: s1, action: core.set, with: {ip: "{{ inputs.ip }}", n: 1}}
  - {id: s2, depends_on: [s1], action: core.log, with: {message: "got {{ steps.s1.output.ip }}"}}
  - {id: s3, depends_on: [s2], action: core.transform, with: {query: ".ip | split(\".\") | length", input: "{{ steps.s1.output }}"}}
  - {id: s4, depends_on: [s3], action: core.set, with: {parts: "{{ steps.s3.output }}"}}
  - {id: s5, depends_on: [s4], action: core.set, with: {verdict: "{{ 'ok' if steps.s4.output.parts == 4 else 'bad' }}"}}
  - {id: s6, depends_on: [s5], action: core.log, with: {message: "verdict {{ steps.s5.output.verdict }}", level: debug}}
  - {id: s7, depends_on: [s6], action: core.transform, with: {query: "{v: .verdict, ip: .ip}", input: {verdict: "{{ steps.s5.output.verdict }}", ip: "{{ inputs.ip }}"}}}
  - {id: s8, depends_on: [s7], action: core.set, with: {summary: "{{ steps.s7.output.v }} for {{ steps.s7.output.ip }}"}}
  - {id: s9, depends_on: [s8], action: core.log, with: {message: "{{ steps.s8.output.summary }}"}}
  - {id: s10, depends_on: [s9], action: core.set, with: {done: true}}
"#;

const WAIT_TIMER: &str = r#"
name: bench-wait
steps:
  - {id: a, action: core.set, with: {x: 1}}
  - {id: pause, depends_on: [a], wait: {for: 24h}}
  - {id: b, depends_on: [pause], action: core.set, with: {x: 2}}
"#;

const WAIT_APPROVAL: &str = r#"
name: bench-ask
steps:
  - {id: a, action: core.set, with: {x: 1}}
  - {id: ask, depends_on: [a], approval: {message: "contain?", approvers: {roles: [responder]}, timeout: 24h, default: reject}}
  - {id: b, depends_on: [ask], action: core.set, with: {x: 2}}
"#;

fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn start_many(
    soar: &Soar,
    tenant: garrison_model::TenantId,
    playbook: &str,
    runs: usize,
    concurrency: usize,
) -> Result<(Duration, Vec<Duration>)> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let soar = soar.clone();
        let next = next.clone();
        let playbook = playbook.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < runs {
                let t = Instant::now();
                let run = soar
                    .start_run(
                        tenant,
                        StartRun {
                            playbook: playbook.clone(),
                            inputs: json!({}),
                            ..Default::default()
                        },
                    )
                    .await?;
                latencies.push(t.elapsed());
                anyhow::ensure!(
                    !run.status.is_terminal()
                        || run.status == garrison_playbook::RunStatus::Succeeded,
                    "run {} ended {:?}: {:?}",
                    run.run_id,
                    run.status,
                    run.error
                );
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok((elapsed, latencies))
}

/// The engine alone: `advance` and the built-in actions, in memory, one run after another.
async fn engine_per_step(samples: usize) -> Result<Vec<Duration>> {
    let (playbook, errors) = garrison_playbook::validate(TEN_STEPS, &garrison_soar::registry());
    let playbook = playbook
        .filter(|_| errors.is_empty())
        .context("bench playbook")?;
    let core = CoreActions::new();
    let mut per_step = Vec::with_capacity(samples);
    for i in 0..samples {
        let now = jiff::Timestamp::now();
        let t = Instant::now();
        let mut state = RunState::new(format!("b{i}"), &playbook, 1, &json!({}), json!(null), now)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        advance(&playbook, &mut state, now, Event::Start);
        let mut steps = 0u32;
        loop {
            let Some(Effect::ExecuteAction {
                step,
                item,
                attempt,
                idempotency_key,
                action,
                input,
            }) = state.in_flight(&playbook).into_iter().next()
            else {
                break;
            };
            let outcome = core
                .execute(ActionRequest {
                    run_id: state.run_id.clone(),
                    step: step.clone(),
                    item,
                    attempt,
                    idempotency_key,
                    action,
                    input,
                })
                .await;
            advance(
                &playbook,
                &mut state,
                now,
                Event::ActionFinished {
                    step,
                    item,
                    attempt,
                    result: outcome.result,
                    logs: outcome.logs,
                },
            );
            steps += 1;
        }
        // The state a worker would save: part of the per-step cost.
        let _ = serde_json::to_string(&state)?;
        anyhow::ensure!(steps == 10 && state.status == garrison_playbook::RunStatus::Succeeded);
        per_step.push(t.elapsed() / steps);
    }
    per_step.sort();
    Ok(per_step)
}

pub async fn bench(args: PlaybookBench) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = Arc::new(SqlStore::connect(&url).await.context("open the store")?);
    let tenant = store.ensure_tenant("bench").await?.id;
    let soar = Soar::new(
        store.clone(),
        SoarConfig {
            max_parallel: 256,
            ..Default::default()
        },
    );
    for source in [TEN_STEPS, WAIT_TIMER, WAIT_APPROVAL] {
        soar.save_playbook(tenant, source, Some("bench")).await?;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("garrison bench playbook ({cores} cores, {url})");

    // Warm up caches and the database file.
    start_many(&soar, tenant, "bench-ten", 200, args.concurrency).await?;
    let (elapsed, latencies) =
        start_many(&soar, tenant, "bench-ten", args.runs, args.concurrency).await?;
    let rate = args.runs as f64 / elapsed.as_secs_f64();
    println!(
        "throughput: {} runs x 10 steps in {:.2}s = {:.0} runs/s ({:.0} steps/s), {} at once",
        args.runs,
        elapsed.as_secs_f64(),
        rate,
        rate * 10.0,
        args.concurrency
    );
    println!(
        "durable run latency (start to stored success): p50 {:.2} ms, p99 {:.2} ms; per step p50 {:.3} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3 / 10.0
    );
    let engine = engine_per_step(2000).await?;
    println!(
        "engine overhead per step (state machine + templates + built-in action + state encoding): p50 {:.1} µs, p99 {:.1} µs",
        percentile(&engine, 0.5).as_secs_f64() * 1e6,
        percentile(&engine, 0.99).as_secs_f64() * 1e6
    );

    let before = rss_kib("VmRSS:").unwrap_or(0);
    let half = args.waiting / 2;
    let t = Instant::now();
    start_many(&soar, tenant, "bench-wait", half, args.concurrency).await?;
    start_many(
        &soar,
        tenant,
        "bench-ask",
        args.waiting - half,
        args.concurrency,
    )
    .await?;
    let waiting = store.active_runs(args.waiting * 2).await?.len();
    // Let the allocator settle, then measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = rss_kib("VmRSS:").unwrap_or(0);
    let peak = rss_kib("VmHWM:").unwrap_or(0);
    let db_bytes: u64 = std::fs::read_dir(dir.path())
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "waiting: {waiting} runs waiting on timers or approvals (started in {:.2}s); RSS {:.1} MiB (before them {:.1} MiB, peak {:.1} MiB); database {:.1} MiB",
        t.elapsed().as_secs_f64(),
        rss as f64 / 1024.0,
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        db_bytes as f64 / 1_048_576.0
    );
    Ok(())
}
