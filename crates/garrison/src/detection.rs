//! `garrison rules import|list|enable|disable|test`, `garrison alerts list` and
//! `garrison audit verify|list`: straight on the store (safe while the service runs), or with
//! `--url` and `--token` through a running service's API.

use std::path::PathBuf;

use crate::client::{param, print_lines};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use garrison_api::audit::AuditParams;
use garrison_api::detection::{
    AlertParams, ImportParams, ImportRequest, ListRulesParams, RejectedRule, RuleFile, RuleView,
    TestRequest,
};
use garrison_api::incidents::MetricsParams;
use garrison_app::Actor;
use garrison_client::Client;
use garrison_model::TimeBound;
use garrison_server::{ServerConfig, DEFAULT_TENANT};

/// `--url`/`--token` of a running service, `--tenant` for the local store.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Tenant (local store only; with --url the token's tenant is used).
    #[arg(long, default_value = DEFAULT_TENANT, conflicts_with = "url")]
    tenant: String,
    /// A running service, e.g. http://127.0.0.1:8080 (default: the local data directory).
    #[arg(long, requires = "token", env = "GARRISON_URL")]
    url: Option<String>,
    /// API token for --url.
    #[arg(long, env = "GARRISON_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    #[command(flatten)]
    Local(crate::hunt::RulesCommand),
    /// Import Sigma rules from a folder, a file or a zip archive (e.g. all of SigmaHQ).
    ///
    /// Rules are named by their Sigma id; a changed file becomes a new version, the old one is
    /// kept. New rules start disabled unless --enable.
    Import {
        #[arg(value_name = "DIR|ZIP|FILE")]
        path: PathBuf,
        /// Enable every imported rule.
        #[arg(long)]
        enable: bool,
        #[command(flatten)]
        target: Target,
    },
    /// List rules: id, enabled, level, version, title.
    List {
        /// Only enabled rules.
        #[arg(long)]
        enabled: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Enable a rule: the live detector runs it from now on.
    Enable {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Disable a rule.
    Disable {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Run a rule over stored events of a time range; prints what it would have matched.
    Test {
        id: String,
        /// Event time from (RFC 3339 or Unix seconds; default 24 hours ago).
        #[arg(long)]
        from: Option<String>,
        /// Event time to, exclusive (default now).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first, one JSON object per line.
    List {
        /// Only this level.
        #[arg(long)]
        level: Option<String>,
        /// Only this rule id.
        #[arg(long = "rule")]
        rule_id: Option<String>,
        /// Alerts seen at or after (RFC 3339 or Unix seconds).
        #[arg(long)]
        from: Option<String>,
        /// Alerts seen before.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 100, value_parser = crate::client::page_size)]
        limit: usize,
        /// Fetch every page, not just one.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// Start of the period (RFC 3339 or Unix seconds; default: 30 days before --to).
    #[arg(long)]
    from: Option<String>,
    /// End of the period (default: now).
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check a tenant's hash chain; names the first tampered entry (exit code 1).
    Verify {
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// Sign every tenant's chain head into the checkpoint file now (the service does it every
    /// `audit_checkpoint_interval`).
    Checkpoint,
    /// Print a tenant's audit log for a SIEM: JSON lines (each stored entry, hash included) or
    /// CEF, oldest first, after --after.
    Export {
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Only entries after this sequence number.
        #[arg(long)]
        after: Option<i64>,
    },
    /// Print a tenant's audit entries, oldest first, one JSON object per line.
    List {
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
        /// Only this action (e.g. rule.enable).
        #[arg(long)]
        action: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Cef,
}

/// The application layer on the local data directory and the operator acting in `tenant`.
pub(crate) async fn local_app(
    config: &ServerConfig,
    tenant: &str,
) -> Result<(garrison_app::App, Actor)> {
    let app = crate::admin::local_app(config).await?;
    let actor = crate::admin::local_actor(&app, tenant).await?;
    Ok((app, actor))
}

/// What reads the local data directory (searches, lists, tests, the audit check) refuses one
/// that holds no database: a mistyped `--data-dir` would otherwise be created empty and answer
/// "nothing found" or "chain intact".
pub(crate) fn require_database(config: &ServerConfig) -> Result<()> {
    if config.database_url.is_none() {
        let db = config.data_dir.join("garrison.db");
        if !db.exists() {
            bail!(
                "no Garrison database at {} (is --data-dir right? `garrison serve` creates it)",
                db.display()
            );
        }
    }
    Ok(())
}

/// The service `--url` names, when it does (else the command works on the local store).
fn remote(target: &Target) -> Result<Option<Client>> {
    match (&target.url, &target.token) {
        (Some(url), Some(token)) => Ok(Some(Client::new(url, token)?)),
        _ => Ok(None),
    }
}

fn print_rejected(rejected: &[RejectedRule]) {
    for r in rejected {
        eprintln!(
            "rejected {}{}: {}",
            r.path,
            r.line.map(|l| format!(":{l}")).unwrap_or_default(),
            r.reason
        );
    }
}

pub async fn rules(command: RulesCommand, config: &ServerConfig) -> Result<()> {
    match command {
        RulesCommand::Local(_) => bail!("`rules check` runs without a store"),
        RulesCommand::Import {
            path,
            enable,
            target,
        } => import(path, enable, &target, config).await,
        RulesCommand::List { enabled, target } => {
            let rules: Vec<RuleView> = match remote(&target)? {
                Some(api) => {
                    api.rules(&ListRulesParams {
                        enabled: enabled.then_some(true),
                    })
                    .await?
                }
                None => {
                    require_database(config)?;
                    let (app, actor) = local_app(config, &target.tenant).await?;
                    app.list_rules(&actor, enabled)
                        .await?
                        .iter()
                        .map(RuleView::from)
                        .collect()
                }
            };
            for r in &rules {
                println!(
                    "{}\t{}\t{}\tv{}\t{}",
                    r.id,
                    if r.enabled { "enabled" } else { "disabled" },
                    r.level.map_or("-", |l| l.as_str()),
                    r.version,
                    r.title
                );
            }
            eprintln!("{} rules", rules.len());
            Ok(())
        }
        RulesCommand::Enable { id, target } => set_enabled(&id, true, &target, config).await,
        RulesCommand::Disable { id, target } => set_enabled(&id, false, &target, config).await,
        RulesCommand::Test {
            id,
            from,
            to,
            target,
        } => test(&id, from, to, &target, config).await,
    }
}

async fn import(path: PathBuf, enable: bool, target: &Target, config: &ServerConfig) -> Result<()> {
    let origin = path.display().to_string();
    if let Some(api) = remote(target)? {
        let is_zip = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
        let answer = if is_zip {
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {origin}"))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "rules.zip".into());
            api.import_rules_zip(
                &ImportParams {
                    enable: Some(enable),
                    name: Some(name),
                },
                bytes,
            )
            .await?
        } else {
            let (sources, rejected) = tokio::task::spawn_blocking(move || {
                garrison_detect::rules::sources_from_path(&path)
            })
            .await??;
            for r in &rejected {
                eprintln!("rejected {r}");
            }
            let files = sources
                .into_iter()
                .map(|s| RuleFile {
                    path: s.path,
                    text: s.text,
                })
                .collect();
            api.import_rules(&ImportRequest { files, enable }).await?
        };
        print_rejected(&answer.rejected);
        for waiting in &answer.waiting {
            eprintln!(
                "waiting {}: needs values for {} (garrison placeholder set NAME VALUE...)",
                waiting.rule_id,
                waiting.placeholders.join(", ")
            );
        }
        println!(
            "{} created, {} updated, {} unchanged, {} enabled, {} rejected",
            answer.created,
            answer.updated,
            answer.unchanged,
            answer.enabled,
            answer.rejected.len()
        );
        return exit_if_rejected(answer.rejected.len());
    }
    let (app, actor) = local_app(config, &target.tenant).await?;
    let (sources, rejected) =
        tokio::task::spawn_blocking(move || garrison_detect::rules::sources_from_path(&path))
            .await??;
    let outcome = app
        .import_rules(&actor, sources, rejected, enable, &origin)
        .await?;
    for r in &outcome.rejected {
        eprintln!("rejected {r}");
    }
    for (rule, names) in &outcome.waiting {
        eprintln!(
            "waiting {rule}: needs values for {} (garrison placeholder set NAME VALUE...)",
            names.join(", ")
        );
    }
    let summary = outcome.summary;
    println!(
        "{} created, {} updated, {} unchanged, {} enabled, {} rejected",
        summary.created,
        summary.updated,
        summary.unchanged,
        summary.enabled,
        outcome.rejected.len()
    );
    exit_if_rejected(outcome.rejected.len())
}

/// An import that refused files exits 2 (as `intel import` does), so a script notices.
fn exit_if_rejected(rejected: usize) -> Result<()> {
    if rejected > 0 {
        std::process::exit(2);
    }
    Ok(())
}

async fn set_enabled(
    id: &str,
    enabled: bool,
    target: &Target,
    config: &ServerConfig,
) -> Result<()> {
    let verb = if enabled { "enable" } else { "disable" };
    if let Some(api) = remote(target)? {
        api.set_rule_enabled(id, enabled).await?;
    } else {
        let (app, actor) = local_app(config, &target.tenant).await?;
        app.set_rule_enabled(&actor, id, enabled).await?;
    }
    println!("rule {id} {verb}d");
    Ok(())
}

async fn test(
    id: &str,
    from: Option<String>,
    to: Option<String>,
    target: &Target,
    config: &ServerConfig,
) -> Result<()> {
    // Read once, as the API reads them, for either door.
    let (from, to): (Option<TimeBound>, Option<TimeBound>) =
        (param("from", from)?, param("to", to)?);
    if let Some(api) = remote(target)? {
        let answer = api
            .test_rule(
                id,
                &TestRequest {
                    from,
                    to,
                    max_events: None,
                },
            )
            .await?;
        print_lines(&answer.matches)?;
        print_test_summary(answer.events, answer.matches_total, answer.matches.len());
        return Ok(());
    }
    require_database(config)?;
    let (app, actor) = local_app(config, &target.tenant).await?;
    let bounds = garrison_app::rules::TestBounds {
        from: from.map(|t| t.0),
        to: to.map(|t| t.0),
        max_events: None,
    };
    // A progress bar over the time range (the test reads it oldest first); Ctrl-C cancels.
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:30}] {percent}% of the range, {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let report = {
        let bar = bar.clone();
        move |p: &garrison_app::rules::TestProgress| {
            let span = (p.to.as_microsecond() - p.from.as_microsecond()).max(1) as f64;
            let done = (p.position.as_microsecond() - p.from.as_microsecond()) as f64 / span;
            bar.set_position((done.clamp(0.0, 1.0) * 1000.0) as u64);
            bar.set_message(format!("{} events read", p.events));
        }
    };
    let result = app.test_rule(&actor, id, bounds, Some(&report)).await;
    bar.finish_and_clear();
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(garrison_app::AppError::InvalidWithErrors { message, errors }) => {
            for e in &errors {
                eprintln!("{e}");
            }
            bail!("{message}")
        }
        Err(e) => return Err(e.into()),
    };
    for m in &outcome.matches {
        println!("{}", serde_json::to_string(m)?);
    }
    print_test_summary(outcome.events, outcome.matches_total, outcome.matches.len());
    Ok(())
}

/// One line on what a rule test read, the same for both doors.
fn print_test_summary(events: usize, matches: usize, listed: usize) {
    if listed < matches {
        eprintln!("{events} events read, {matches} matches ({listed} listed)");
    } else {
        eprintln!("{events} events read, {matches} matches");
    }
}

pub async fn alerts(command: AlertsCommand, config: &ServerConfig) -> Result<()> {
    let AlertsCommand::List {
        level,
        rule_id,
        from,
        to,
        limit,
        all,
        target,
    } = command;
    let mut params = AlertParams {
        level: param("level", level)?,
        rule_id,
        from: param("from", from)?,
        to: param("to", to)?,
        limit: crate::client::limit(limit),
        cursor: None,
    };
    let door = Door::of(&target, config).await?;
    loop {
        let page = match &door {
            Door::Api(api) => api.alerts(&params).await?,
            Door::Local(app, actor) => app.list_alerts(actor, params.clone()).await?,
        };
        print_lines(&page.alerts)?;
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

/// Where a command that works on either side goes: a running service (`--url`) or the local
/// data directory; both answer with the same types.
pub(crate) enum Door {
    Api(Client),
    Local(Box<garrison_app::App>, Actor),
}

impl Door {
    async fn of(target: &Target, config: &ServerConfig) -> Result<Door> {
        Door::open(&target.url, &target.token, &target.tenant, config).await
    }

    /// The service `url` names with `token`, else the local data directory (which must hold a
    /// database) as `tenant`'s operator.
    pub(crate) async fn open(
        url: &Option<String>,
        token: &Option<String>,
        tenant: &str,
        config: &ServerConfig,
    ) -> Result<Door> {
        Ok(match (url, token) {
            (Some(url), Some(token)) => Door::Api(Client::new(url, token)?),
            _ => {
                require_database(config)?;
                let (app, actor) = local_app(config, tenant).await?;
                Door::Local(Box::new(app), actor)
            }
        })
    }
}

/// `garrison metrics`: the figures of `GET /api/v1/metrics/soc`, from a service or the local store.
pub async fn metrics(args: MetricsArgs, config: &ServerConfig) -> Result<()> {
    let MetricsArgs { from, to, target } = args;
    let (from, to): (Option<TimeBound>, Option<TimeBound>) =
        (param("from", from)?, param("to", to)?);
    if let Some(api) = remote(&target)? {
        let figures = api.soc_metrics(&MetricsParams { from, to }).await?;
        println!("{}", serde_json::to_string_pretty(&figures)?);
        return Ok(());
    }
    require_database(config)?;
    let (app, actor) = local_app(config, &target.tenant).await?;
    let figures = app
        .soc_metrics(&actor, from.map(|t| t.0), to.map(|t| t.0))
        .await?;
    println!("{}", serde_json::to_string_pretty(&figures)?);
    Ok(())
}

/// Returns the process exit code: 0 when the chain holds, 1 when it is broken.
pub async fn audit(command: AuditCommand, config: &ServerConfig) -> Result<i32> {
    match command {
        AuditCommand::Verify { tenant } => {
            require_database(config)?;
            let (app, actor) = local_app(config, &tenant).await?;
            let result = app.verify_audit(&actor).await?;
            let anchored = match &result.checkpoint {
                Some((seq, time)) => format!("; holds entry {seq} of the checkpoint of {time}"),
                None => "; no checkpoint yet (truncation is caught from the first one on)".into(),
            };
            match result.first_bad {
                None => {
                    println!(
                        "audit log of tenant {tenant:?}: {} entries, chain intact{anchored}",
                        result.entries
                    );
                    Ok(0)
                }
                Some(bad) => {
                    println!(
                        "audit log of tenant {tenant:?}: TAMPERED at entry {}: {} ({} entries before it verify)",
                        bad.seq, bad.reason, result.entries
                    );
                    Ok(1)
                }
            }
        }
        AuditCommand::Checkpoint => {
            require_database(config)?;
            let app = crate::admin::local_app(config).await?;
            let written = app.checkpoint_audit().await?;
            println!("{} checkpoints written", written.len());
            Ok(0)
        }
        AuditCommand::Export {
            tenant,
            format,
            after,
        } => {
            require_database(config)?;
            let (app, actor) = local_app(config, &tenant).await?;
            let mut params = AuditParams {
                after,
                action: None,
                limit: Some(garrison_model::PageLimit(garrison_model::PageLimit::MAX)),
            };
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            loop {
                let page = app.audit_entries(&actor, params.clone()).await?;
                for entry in &page.entries {
                    let line = match format {
                        ExportFormat::Jsonl => garrison_app::audit_export::json_entry(entry),
                        ExportFormat::Cef => garrison_app::audit_export::cef_entry(&tenant, entry),
                    };
                    writeln!(out, "{line}")?;
                }
                match page.next_after {
                    Some(next) => params.after = Some(next),
                    None => break,
                }
            }
            out.flush()?;
            Ok(0)
        }
        AuditCommand::List { tenant, action } => {
            require_database(config)?;
            let (app, actor) = local_app(config, &tenant).await?;
            let mut params = AuditParams {
                after: None,
                action,
                limit: Some(garrison_model::PageLimit(garrison_model::PageLimit::MAX)),
            };
            loop {
                let page = app.audit_page(&actor, params.clone()).await?;
                print_lines(&page.entries)?;
                match page.next_after {
                    Some(after) => params.after = Some(after),
                    None => return Ok(0),
                }
            }
        }
    }
}
