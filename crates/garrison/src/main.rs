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
mod client;
mod config;
mod decoders;
mod detection;
mod hunt;
mod incidents;
mod intel;
mod playbook;
mod search;
mod upload;
mod web;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
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
    /// Where Garrison keeps its data (event log, SQLite database) [env GARRISON_DATA_DIR,
    /// default ./garrison-data].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database: sqlite://PATH or postgres://USER@HOST/DB [env GARRISON_DATABASE_URL; default:
    /// SQLite in the data dir].
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Log format: text or json [env GARRISON_LOG_FORMAT, default text].
    #[arg(long, global = true, value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Any setting, as KEY=VALUE (repeat for several); `garrison config show` lists them all
    /// with their environment variables and file keys.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE", value_parser = config::parse_set)]
    set: Vec<(String, String)>,
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
    /// Sigma placeholder values per tenant (%Admins_Workstations% and the like), versioned.
    #[command(subcommand)]
    Placeholder(admin::PlaceholderCommand),
    /// Decoders (YAML data) that parse device lines and records into fields: list them, try
    /// a line, run a file's sample tests, print the coverage table.
    ///
    /// Exit codes: 0 done, 1 a file did not load, a sample failed or a line was not parsed.
    #[command(subcommand)]
    Decoders(decoders::DecodersCommand),
    /// Search stored events.
    #[command(subcommand)]
    Events(search::EventsCommand),
    /// Send log files (EVTX, JSON, JSONL, gz, zip) to a running service through its ingest API.
    ///
    /// An event's id derives from its content (or the source's `--id-field`), so sending the
    /// same files again, from any path, stores nothing twice.
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
    /// Web-compromise analysis of access logs: attacks, likely successes, webshells, a report
    /// per site (table, JSON lines or HTML).
    ///
    /// Exit codes: 0 done, 1 error, 3 an attack likely succeeded.
    #[command(subcommand)]
    Web(web::WebCommand),
    /// Threat-intel indicators: import feeds (CSV, STIX 2.1, MISP), check files, list.
    ///
    /// Exit codes: 0 done, 1 error, 2 some records were refused (each printed with its place).
    #[command(subcommand)]
    Intel(intel::IntelCommand),
    /// Show the effective configuration: every setting, its value and where it came from
    /// (flag, environment, file or default), secrets redacted.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print every setting with its value, origin, environment variable and meaning.
    Show {
        /// One JSON object per setting instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// HTTP(S) listen address [env GARRISON_HTTP_ADDR, default 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    http_addr: Option<String>,
    /// Syslog listen address, UDP and TCP, `off` to disable [env GARRISON_SYSLOG_ADDR, default
    /// 127.0.0.1:5514].
    #[arg(long, value_name = "ADDR")]
    syslog_addr: Option<String>,
    /// Syslog over TLS (RFC 5425) listen address; needs --tls-cert and --tls-key [env
    /// GARRISON_SYSLOG_TLS_ADDR].
    #[arg(long, value_name = "ADDR")]
    syslog_tls_addr: Option<String>,
    /// PEM certificate chain: serve HTTPS instead of HTTP [env GARRISON_TLS_CERT].
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<String>,
    /// PEM private key for --tls-cert [env GARRISON_TLS_KEY].
    #[arg(long, value_name = "FILE")]
    tls_key: Option<String>,
    /// `/metrics` without a token on this address, e.g. 127.0.0.1:9464 [env
    /// GARRISON_METRICS_ADDR; default: only on the HTTP address, with a token].
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
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

/// The flags that name a setting of their own, as (key, value) pairs; `--set` comes after
/// them so it wins when both are given.
fn setting_flags(cli: &Cli) -> Vec<(String, String)> {
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            flags.push((key.to_string(), value));
        }
    };
    put(
        "data_dir",
        cli.data_dir.as_ref().map(|d| d.display().to_string()),
    );
    put("database_url", cli.database_url.clone());
    put("log_format", cli.log_format.clone());
    if let Command::Serve(args) = &cli.command {
        put("http_addr", args.http_addr.clone());
        put("syslog_addr", args.syslog_addr.clone());
        put("syslog_tls_addr", args.syslog_tls_addr.clone());
        put("tls_cert", args.tls_cert.clone());
        put("tls_key", args.tls_key.clone());
        put("metrics_addr", args.metrics_addr.clone());
    }
    flags.extend(cli.set.iter().cloned());
    flags
}

fn main() -> std::process::ExitCode {
    match run_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line: the error and its causes joined (`{:#}`), never a backtrace, which
            // would only show the user our source paths.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_main() -> Result<()> {
    // Everything this process creates (database, log segments, evidence, lock and credential
    // files) is the owner's alone: files 0600, directories 0700.
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
    // One TLS provider for the whole process (ring), before any TLS is set up.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        // A command piped into `head` stops quietly when the reader goes away, as Unix tools
        // do, instead of panicking on a broken pipe. (The service keeps Rust's default, so a
        // closed client socket is an error to handle, not a signal.)
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let settings = config::Settings::resolve(cli.config.as_deref(), &setting_flags(&cli))?;
    init_logging(&settings.log_format()?);
    config::set_default_url(settings.client_url());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(cli, settings))
}

async fn run(cli: Cli, settings: config::Settings) -> Result<()> {
    let store_config = || settings.store_config();
    match cli.command {
        Command::Serve(_) => serve(settings.server_config()?).await,
        Command::Config(ConfigCommand::Show { json }) => {
            show_config(&settings, json);
            Ok(())
        }
        Command::User(command) => admin::user(command, &store_config()).await,
        Command::Token(command) => admin::token(command, &store_config()).await,
        Command::Tenant(command) => admin::tenant(command, &store_config()).await,
        Command::Source(command) => admin::source(command, &store_config()).await,
        Command::Placeholder(command) => admin::placeholder(command, &store_config()).await,
        Command::Events(command) => search::run(command, &store_config()).await,
        Command::Decoders(command) => {
            let code = decoders::run(command, &settings)?;
            exit_with(code)
        }
        Command::Bench(command) => bench::run(command).await,
        Command::Playbook(command) => playbook::run(command).await,
        Command::Intel(command) => {
            let code = intel::run(command).await?;
            exit_with(code)
        }
        Command::Ingest(args) => upload::run(args).await,
        Command::Web(command) => {
            let code = web::run(command, &store_config()).await?;
            exit_with(code)
        }
        Command::Hunt(args) => {
            let code = tokio::task::spawn_blocking(move || hunt::hunt(args)).await??;
            exit_with(code)
        }
        Command::Rules(detection::RulesCommand::Local(command)) => {
            let code = tokio::task::spawn_blocking(move || hunt::rules(command)).await??;
            exit_with(code)
        }
        Command::Rules(command) => detection::rules(command, &store_config()).await,
        Command::Alerts(command) => detection::alerts(command, &store_config()).await,
        Command::Audit(command) => {
            let code = detection::audit(command, &store_config()).await?;
            exit_with(code)
        }
        Command::Incidents(command) => incidents::run(command).await,
        Command::Metrics(args) => detection::metrics(args, &store_config()).await,
    }
}

/// `garrison config show`: a table, or JSON lines with `--json`.
fn show_config(settings: &config::Settings, json: bool) {
    let rows = settings.show();
    if json {
        for row in &rows {
            if let Ok(line) = serde_json::to_string(row) {
                println!("{line}");
            }
        }
        return;
    }
    let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    for row in &rows {
        let value = row.value.as_deref().unwrap_or("(unset)");
        println!(
            "{:width$}  {value}  [{}; env {}]",
            row.key,
            row.origin,
            row.env,
            width = width
        );
    }
}

fn exit_with(code: i32) -> Result<()> {
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

async fn serve(config: ServerConfig) -> Result<()> {
    let store = open_store(&config)
        .await
        .with_context(|| format!("cannot open the database at {}", config.database_url()))?;
    if let Some(created) = bootstrap(&store).await? {
        first_start_credentials(&config, &created)?;
    }
    let running = garrison_server::start(config.clone(), store).await?;
    tracing::info!(
        http = %running.http_addr,
        https = running.https,
        syslog = ?running.syslog_addr,
        syslog_tls = ?running.syslog_tls_addr,
        data_dir = %config.data_dir.display(),
        database = %config::redact(&config.database_url()),
        "garrison is serving"
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// The first start's admin credentials, shown once (only hashes are stored): written to a file
/// only the owner can read, and printed only to a terminal, never into a captured service log.
fn first_start_credentials(
    config: &ServerConfig,
    created: &garrison_server::Bootstrap,
) -> Result<()> {
    use std::io::{IsTerminal, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let text = format!(
        "Garrison first start: created tenant {:?} and admin user {:?}.\n  password:  {}\n  API token: {}\nStore them now and delete this file; they are not shown again.\n",
        created.tenant, created.username, created.password, created.api_token
    );
    let path = config.data_dir.join("first-start-credentials.txt");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    if std::io::stderr().is_terminal() {
        eprintln!(
            "\n{text}(also in {}, readable only by you)\n",
            path.display()
        );
    } else {
        tracing::warn!(
            file = %path.display(),
            "first start: the admin password and API token are in this file (owner-only); store them and delete it"
        );
    }
    Ok(())
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
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
