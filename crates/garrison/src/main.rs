//! `garrison`: the one binary. It owns the terminal; every library below it is silent.

// Ingest allocates and frees many small JSON values per event: mimalloc cut that cost against
// glibc's malloc. Built without transparent huge pages, which otherwise raised peak RSS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// While the guard lives, mimalloc gives freed pages back to the system at once instead of after
/// its purge delay (1 s in mimalloc v3). Compiling thousands of rules makes tens of MiB of
/// short-lived garbage, spread over the compiling threads' heaps, that would otherwise stay
/// resident beside what the hunt's worker threads allocate: peak RSS of a two-thread hunt with
/// all SigmaHQ rules fell from ~150 to ~125 MiB.
pub(crate) struct PromptPurge(Option<std::ffi::c_long>);

/// `mi_option_purge_delay` in mimalloc v3's option enum (the crate exposes no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

impl PromptPurge {
    pub(crate) fn new() -> PromptPurge {
        // SAFETY: plain integer option reads and writes; nothing else changes options.
        let previous = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // Only v3's default is changed: a value set in the environment is the user's choice, and
        // any other value means the option enum has another layout and this is another option.
        if previous != 1000 || std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return PromptPurge(None);
        }
        // SAFETY: as above.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
        PromptPurge(Some(previous))
    }
}

impl Drop for PromptPurge {
    fn drop(&mut self) {
        if let Some(previous) = self.0 {
            // SAFETY: as in `new`.
            unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, previous) };
        }
    }
}

mod admin;
mod bench;
mod bench_playbook;
mod config;
mod detection;
mod hunt;
mod incidents;
mod intel;
mod playbook;
mod search;
mod upload;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use garrison_server::{bootstrap, open_store, ServerConfig};

#[derive(Debug, Parser)]
#[command(
    name = "garrison",
    version,
    about = "Garrison: security operations in one binary — ingest, detect, triage, respond.",
    long_about = "Garrison: security operations in one binary — ingest, detect, triage, respond.\n\n\
        Start the service with `garrison serve` (data in ./garrison-data, SQLite, HTTP on \
        127.0.0.1:8080, syslog on 127.0.0.1:5514). Settings come from a TOML file (--config), \
        GARRISON_* environment variables and flags, in that order of precedence (flags win).",
    after_help = "Examples:\n  garrison serve\n  garrison token create --ingest --source firewall\n  \
        garrison events search --q mimikatz --limit 20\n  garrison hunt ./logs --rules ./sigma/rules --min-level high\n  \
        garrison bench ingest --events 200000"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "GARRISON_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where Garrison keeps its data (event log, SQLite database).
    #[arg(
        long,
        global = true,
        env = "GARRISON_DATA_DIR",
        default_value = "./garrison-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// Database: sqlite://PATH or postgres://USER@HOST/DB (default: SQLite in the data dir).
    #[arg(
        long,
        global = true,
        env = "GARRISON_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, global = true, env = "GARRISON_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: HTTP API and ingest, Splunk HEC, syslog, background indexing.
    Serve(ServeArgs),
    /// Manage users (argon2id passwords, roles admin/analyst/responder/viewer).
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Create, list and revoke API and ingest tokens.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Manage tenants (customers of a managed provider) and their retention.
    #[command(subcommand)]
    Tenant(admin::TenantCommand),
    /// Configure ingest sources: logsource and field mapping.
    #[command(subcommand)]
    Source(admin::SourceCommand),
    /// Search stored events.
    #[command(subcommand)]
    Events(search::EventsCommand),
    /// Send log files (EVTX, JSON, JSONL, gz, zip) to a running service through its ingest API.
    ///
    /// Events get a stable `_id` (EVTX: computer/channel/record id), so sending the same files
    /// again stores nothing twice.
    Ingest(upload::IngestArgs),
    /// Hunt with Sigma rules over log files (EVTX, JSON, JSONL, gz, zip): a timeline of hits.
    ///
    /// Exit codes: 0 done, 1 error, 3 a hit at or above --fail-on.
    Hunt(hunt::HuntArgs),
    /// Work with Sigma rules.
    #[command(subcommand)]
    Rules(detection::RulesCommand),
    /// List the live detector's alerts.
    #[command(subcommand)]
    Alerts(detection::AlertsCommand),
    /// Verify or print a tenant's hash-chained audit log.
    #[command(subcommand)]
    Audit(detection::AuditCommand),
    /// Work incidents through a running service: list the queue, show one, comment, attach
    /// evidence files, download attachments (checked against their SHA-256).
    #[command(subcommand)]
    Incidents(incidents::IncidentsCommand),
    /// SOC figures: alerts per day, alerts -> incidents, MTTA/MTTR per stage, % within SLA,
    /// false-positive rate per rule (noisiest first), as JSON.
    Metrics(detection::MetricsArgs),
    /// Measure whole pipelines (ingest throughput, ack latency, memory).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Playbooks (SOAR): validate files, import, sync, run, list, inspect and replay runs, approve, cancel.
    #[command(subcommand)]
    Playbook(playbook::PlaybookCommand),
    /// Threat-intel indicators: import feeds (CSV, STIX 2.1, MISP), check files, list.
    ///
    /// Exit codes: 0 done, 1 error, 2 some records were refused (each printed with its place).
    #[command(subcommand)]
    Intel(intel::IntelCommand),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// HTTP(S) listen address.
    #[arg(
        long,
        env = "GARRISON_HTTP_ADDR",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    http_addr: String,
    /// Syslog listen address, UDP and TCP (`off` to disable).
    #[arg(
        long,
        env = "GARRISON_SYSLOG_ADDR",
        default_value = "127.0.0.1:5514",
        value_name = "ADDR"
    )]
    syslog_addr: String,
    /// Syslog over TLS (RFC 5425) listen address; needs --tls-cert and --tls-key.
    #[arg(long, env = "GARRISON_SYSLOG_TLS_ADDR", value_name = "ADDR")]
    syslog_tls_addr: Option<String>,
    /// PEM certificate chain: serve HTTPS instead of HTTP.
    #[arg(long, env = "GARRISON_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "GARRISON_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
}

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("GARRISON_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> Result<()> {
    // One TLS provider for the whole process (ring), before any TLS is set up.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    let file = config::FileConfig::load(cli.config.as_deref())?;
    let log_format = config::pick(
        &matches,
        "log_format",
        Some(&cli.log_format),
        file.log_format.clone(),
    )
    .unwrap_or_else(|| cli.log_format.clone());
    init_logging(&log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(cli, matches, file))
}

async fn run(cli: Cli, matches: clap::ArgMatches, file: config::FileConfig) -> Result<()> {
    let data_dir = config::pick(
        &matches,
        "data_dir",
        Some(&cli.data_dir),
        file.data_dir.clone(),
    )
    .unwrap_or_else(|| cli.data_dir.clone());
    let database_url = config::pick(
        &matches,
        "database_url",
        cli.database_url.as_ref(),
        file.database_url.clone(),
    );
    match cli.command {
        Command::Serve(args) => {
            let serve_matches = matches
                .subcommand_matches("serve")
                .context("serve arguments")?;
            let layered = config::Layered {
                matches: serve_matches,
                file,
            };
            let config = config::server_config(
                layered,
                &data_dir,
                database_url,
                Some(&args.http_addr),
                Some(&args.syslog_addr),
                args.syslog_tls_addr.as_ref(),
                args.tls_cert.as_ref(),
                args.tls_key.as_ref(),
            )?;
            serve(config).await
        }
        Command::User(command) => {
            admin::user(command, &store_config(&data_dir, database_url)).await
        }
        Command::Token(command) => {
            admin::token(command, &store_config(&data_dir, database_url)).await
        }
        Command::Tenant(command) => {
            admin::tenant(command, &store_config(&data_dir, database_url)).await
        }
        Command::Source(command) => {
            admin::source(command, &store_config(&data_dir, database_url)).await
        }
        Command::Events(command) => {
            search::run(command, &store_config(&data_dir, database_url)).await
        }
        Command::Bench(command) => bench::run(command).await,
        Command::Playbook(command) => playbook::run(command).await,
        Command::Intel(command) => {
            let code = intel::run(command).await?;
            exit_with(code)
        }
        Command::Ingest(args) => upload::run(args).await,
        Command::Hunt(args) => {
            let code = tokio::task::spawn_blocking(move || hunt::hunt(args)).await??;
            exit_with(code)
        }
        Command::Rules(detection::RulesCommand::Local(command)) => {
            let code = tokio::task::spawn_blocking(move || hunt::rules(command)).await??;
            exit_with(code)
        }
        Command::Rules(command) => {
            detection::rules(command, &store_config(&data_dir, database_url)).await
        }
        Command::Alerts(command) => {
            detection::alerts(command, &store_config(&data_dir, database_url)).await
        }
        Command::Audit(command) => {
            let code = detection::audit(command, &store_config(&data_dir, database_url)).await?;
            exit_with(code)
        }
        Command::Incidents(command) => incidents::run(command).await,
        Command::Metrics(args) => {
            detection::metrics(args, &store_config(&data_dir, database_url)).await
        }
    }
}

fn exit_with(code: i32) -> Result<()> {
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

fn store_config(data_dir: &std::path::Path, database_url: Option<String>) -> ServerConfig {
    let mut config = ServerConfig::new(data_dir);
    config.database_url = database_url;
    config
}

async fn serve(config: ServerConfig) -> Result<()> {
    let store = open_store(&config)
        .await
        .with_context(|| format!("cannot open the database at {}", config.database_url()))?;
    if let Some(created) = bootstrap(&store).await? {
        // Shown once: only hashes are stored.
        eprintln!(
            "\nGarrison first start: created tenant {:?} and admin user {:?}.\n  password:  {}\n  API token: {}\nStore them now; they are not shown again.\n",
            created.tenant, created.username, created.password, created.api_token
        );
    }
    let running = garrison_server::start(config.clone(), store).await?;
    tracing::info!(
        http = %running.http_addr,
        https = running.https,
        syslog = ?running.syslog_addr,
        syslog_tls = ?running.syslog_tls_addr,
        data_dir = %config.data_dir.display(),
        database = %redact_url(&config.database_url()),
        "garrison is serving"
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// A database URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
