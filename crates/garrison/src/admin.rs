//! Administration from the command line, straight on the store. Works while the service runs
//! on the same data directory (SQLite WAL; PostgreSQL is shared anyway).

use std::io::Read;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use garrison_app::admin::{CreateTenant, CreateToken, CreateUser, NewTokenKind};
use garrison_app::{Actor, AppError};
use garrison_model::Role;
use garrison_server::{open_store, ServerConfig, DEFAULT_TENANT};
use garrison_store::{NewSource, TenantRepo, TokenKind};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Prints a generated password unless one is given on stdin.
    Create {
        #[arg(long)]
        username: String,
        /// Make the user an admin (same as --role admin).
        #[arg(long)]
        admin: bool,
        /// Role(s): admin, analyst, responder, viewer. Repeat for several.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<Role>,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// List the users of a tenant.
    List {
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// Disable a user (their tokens are revoked) or enable it again.
    Disable {
        #[arg(long)]
        username: String,
        #[arg(long)]
        enable: bool,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print only its secret on stdout (shown once).
    ///
    /// API token: `--role admin`. Ingest token: `--ingest --source NAME`.
    Create {
        /// Role(s) of an API token. Repeat for several.
        #[arg(long = "role", value_name = "ROLE", conflicts_with = "ingest")]
        roles: Vec<Role>,
        /// Make an ingest token (sends events for one source, nothing else).
        #[arg(long, requires = "source")]
        ingest: bool,
        /// The source an ingest token's events belong to (created if new).
        #[arg(long)]
        source: Option<String>,
        /// A name to recognise the token by.
        #[arg(long)]
        name: Option<String>,
        /// Expire after this many days.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<i64>,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// List a tenant's tokens (never their secrets).
    List {
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// Revoke a token by id.
    Revoke {
        id: i64,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (idempotent).
    Create {
        name: String,
        /// Delete events older than this many days.
        #[arg(long, value_name = "DAYS")]
        retention_days: Option<i64>,
    },
    /// List tenants.
    List,
    /// Set (or with `--keep-forever`, remove) a tenant's retention.
    Retention {
        name: String,
        #[arg(long, value_name = "DAYS", required_unless_present = "keep_forever")]
        days: Option<i64>,
        #[arg(long)]
        keep_forever: bool,
    },
}

/// Sigma placeholders of a tenant (`%name%` in rules with the `expand` modifier).
#[derive(Debug, Subcommand)]
pub enum PlaceholderCommand {
    /// Set a placeholder's values (a new version); rules using it load live within seconds.
    Set {
        /// The name without `%` (e.g. Admins_Workstations).
        name: String,
        /// The values (each a Sigma string: `*` and `?` are wildcards).
        #[arg(value_name = "VALUE")]
        values: Vec<String>,
        /// Read the values from a file, one per line (blank lines and `#` comments skipped).
        #[arg(long, value_name = "FILE")]
        file: Option<std::path::PathBuf>,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// List the tenant's placeholders and their values.
    List {
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// Delete a placeholder (its history stays; rules using it stop loading).
    Delete {
        name: String,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// Every version of a placeholder, newest first.
    History {
        name: String,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

pub async fn placeholder(command: PlaceholderCommand, config: &ServerConfig) -> Result<()> {
    let app = local_app(config).await?;
    match command {
        PlaceholderCommand::Set {
            name,
            mut values,
            file,
            tenant,
        } => {
            if let Some(file) = file {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                values.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string),
                );
            }
            let actor = local_actor(&app, &tenant).await?;
            print_json(&app.set_placeholder(&actor, &name, values).await?)?;
        }
        PlaceholderCommand::List { tenant } => {
            let actor = local_actor(&app, &tenant).await?;
            print_json(&app.list_placeholders(&actor).await?)?;
        }
        PlaceholderCommand::Delete { name, tenant } => {
            let actor = local_actor(&app, &tenant).await?;
            print_json(&app.delete_placeholder(&actor, &name).await?)?;
        }
        PlaceholderCommand::History { name, tenant } => {
            let actor = local_actor(&app, &tenant).await?;
            print_json(&app.placeholder_history(&actor, &name).await?)?;
        }
    }
    Ok(())
}

// Parsed once per process from the command line: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Create or update a source: its Sigma logsource, field mapping, syslog routing, silence
    /// limit. Settings not given keep their values (`--reset` starts from nothing).
    Set {
        name: String,
        #[arg(long)]
        product: Option<String>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        category: Option<String>,
        /// Field mapping `FIELD=ECS.NAME`; repeat for several.
        #[arg(long = "map", value_name = "FIELD=ECS")]
        mappings: Vec<String>,
        /// An alert source (an EDR's or IDS's own alerts): each of its events becomes an alert.
        #[arg(long)]
        alerts: bool,
        /// Field of an alert giving its rule id (the alert's rule is `ext:<value>`).
        #[arg(long, value_name = "FIELD", requires = "alerts")]
        alert_rule: Option<String>,
        /// Field of an alert giving its title.
        #[arg(long, value_name = "FIELD", requires = "alerts")]
        alert_title: Option<String>,
        /// Field of an alert giving its severity (a word like high, or 0-10 / 0-100).
        #[arg(long, value_name = "FIELD", requires = "alerts")]
        alert_severity: Option<String>,
        /// The field holding the sender's own unique event id (e.g. `event.id`): records with
        /// the same value are one event, stored once. Unset, an event's id derives from its
        /// bytes, so only an exact resend is one event.
        #[arg(long, value_name = "FIELD")]
        id_field: Option<String>,
        /// Syslog from these senders goes to this source: an address or network
        /// (`10.0.0.0/24`). Repeatable; the syslog options combine (all must hold), and the
        /// most specific matching source wins. Applies to running listeners within seconds.
        #[arg(long = "syslog-from", value_name = "CIDR")]
        syslog_from: Vec<String>,
        /// Syslog with this hostname (`*`, `?` wildcards) goes to this source. Repeatable.
        #[arg(long = "syslog-host", value_name = "GLOB")]
        syslog_host: Vec<String>,
        /// Syslog with this app name (APP-NAME / TAG, e.g. `sshd`) goes to this source.
        #[arg(long = "syslog-app", value_name = "NAME")]
        syslog_app: Vec<String>,
        /// CEF/LEEF messages of this device vendor (e.g. `Fortinet`) go to this source.
        #[arg(long = "syslog-vendor", value_name = "VENDOR")]
        syslog_vendor: Vec<String>,
        /// CEF/LEEF messages of this device product (e.g. `FortiGate`) go to this source.
        #[arg(long = "syslog-product", value_name = "PRODUCT")]
        syslog_product: Vec<String>,
        /// Raise an alert (`garrison-source-silent`) when the source sends nothing for this
        /// long (e.g. `15m`, `2h`); checked every minute.
        #[arg(long = "silent-after", value_name = "DURATION")]
        silent_after: Option<garrison_playbook::Duration>,
        /// Start from an empty source: without it, settings not given keep their values (a
        /// `--map` or any `--syslog-*` option replaces that whole list).
        #[arg(long)]
        reset: bool,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// List a tenant's sources.
    List {
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// A source's health: last event, rates, duplicates and unparsed events in 24 h, the rules
    /// that apply to its logsource and those that fired on it, silence.
    Health {
        name: String,
        /// Print the JSON document (as `GET /api/v1/sources/{name}/health` answers).
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

/// The application layer on the local data directory; creates the default tenant so commands
/// work before the first `serve`. Actions are audited as `local:<os user>`.
pub(crate) async fn local_app(config: &ServerConfig) -> Result<garrison_app::App> {
    let store = open_store(config)
        .await
        .with_context(|| format!("cannot open the database at {}", config.database_url()))?;
    let provider = store.ensure_tenant(DEFAULT_TENANT).await?;
    // The same checkpoint file as the service, so `audit verify` catches truncation here too.
    Ok(
        garrison_app::App::new(std::sync::Arc::new(store), provider.id)
            .with_anchors(&config.data_dir)?,
    )
}

/// The local operator acting in the tenant named `name`.
pub(crate) async fn local_actor(app: &garrison_app::App, name: &str) -> Result<Actor> {
    let tenant = app.tenant_named(name).await?;
    Ok(Actor::local(tenant.id, &os_user()))
}

/// Who runs this command, for the audit log: the login name from the environment, else the
/// process's user id resolved through `/etc/passwd` (services and containers often set no
/// `USER`), else `uid:N`.
pub(crate) fn os_user() -> String {
    for var in ["USER", "LOGNAME", "USERNAME"] {
        if let Ok(name) = std::env::var(var) {
            if !name.trim().is_empty() {
                return name;
            }
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) {
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            let name = passwd.lines().find_map(|line| {
                let mut parts = line.split(':');
                let name = parts.next()?;
                let id = parts.nth(1)?;
                (id.parse::<u32>().ok()? == uid).then(|| name.to_string())
            });
            return name.unwrap_or_else(|| format!("uid:{uid}"));
        }
    }
    "unknown".to_string()
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn user(command: UserCommand, config: &ServerConfig) -> Result<()> {
    let app = local_app(config).await?;
    match command {
        UserCommand::Create {
            username,
            admin,
            mut roles,
            password_stdin,
            tenant,
        } => {
            let actor = local_actor(&app, &tenant).await?;
            if admin && !roles.contains(&Role::Admin) {
                roles.push(Role::Admin);
            }
            if roles.is_empty() {
                bail!("give the user a role: --admin or --role analyst|responder|viewer");
            }
            let (password, generated) = if password_stdin {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("cannot read the password from stdin")?;
                (text.trim_end_matches(['\r', '\n']).to_string(), false)
            } else {
                (garrison_server::random_password(), true)
            };
            let user = app
                .create_user(
                    &actor,
                    CreateUser {
                        username,
                        password: password.clone(),
                        roles,
                    },
                )
                .await?;
            eprintln!(
                "created user {:?} in tenant {tenant:?} (id {})",
                user.username, user.id
            );
            if generated {
                println!("{password}");
            }
        }
        UserCommand::List { tenant } => {
            let actor = local_actor(&app, &tenant).await?;
            print_json(&app.list_users(&actor).await?)?;
        }
        UserCommand::Disable {
            username,
            enable,
            tenant,
        } => {
            let actor = local_actor(&app, &tenant).await?;
            let user = app.user_named(&actor, &username).await?;
            let user = app.set_user_disabled(&actor, user.id, !enable).await?;
            eprintln!(
                "user {:?} is now {}",
                user.username,
                if user.disabled {
                    "disabled (tokens revoked)"
                } else {
                    "enabled"
                }
            );
        }
    }
    Ok(())
}

pub async fn token(command: TokenCommand, config: &ServerConfig) -> Result<()> {
    let app = local_app(config).await?;
    match command {
        TokenCommand::Create {
            roles,
            ingest,
            source,
            name,
            expires_in_days,
            tenant,
        } => {
            let actor = local_actor(&app, &tenant).await?;
            let kind = if ingest {
                TokenKind::Ingest
            } else {
                TokenKind::Api
            };
            if kind == TokenKind::Api && roles.is_empty() {
                bail!("an API token needs --role (admin, analyst, responder or viewer); for an ingest token use --ingest --source NAME");
            }
            if kind == TokenKind::Api && source.is_some() {
                bail!("--source is for ingest tokens: add --ingest, or leave --source out");
            }
            let (_, secret) = app
                .create_token(
                    &actor,
                    CreateToken {
                        name,
                        kind: Some(if kind == TokenKind::Ingest {
                            NewTokenKind::Ingest
                        } else {
                            NewTokenKind::Api
                        }),
                        roles,
                        source,
                        expires_in_days,
                    },
                )
                .await?;
            // Only the secret on stdout, so scripts can capture it.
            println!("{}", secret.expose());
        }
        TokenCommand::List { tenant } => {
            let actor = local_actor(&app, &tenant).await?;
            print_json(&app.list_tokens(&actor).await?)?;
        }
        TokenCommand::Revoke { id, tenant } => {
            let actor = local_actor(&app, &tenant).await?;
            let token = app.revoke_token(&actor, id).await?;
            eprintln!("revoked token {} ({})", token.id, token.prefix);
        }
    }
    Ok(())
}

pub async fn tenant(command: TenantCommand, config: &ServerConfig) -> Result<()> {
    let app = local_app(config).await?;
    let operator = Actor::local(app.provider_tenant(), &os_user());
    match command {
        TenantCommand::Create {
            name,
            retention_days,
        } => {
            let request = CreateTenant {
                name: name.clone(),
                retention_days,
            };
            // Idempotent on the command line: an existing tenant is printed (and its retention
            // set when asked), not an error.
            let tenant = match app.create_tenant(&operator, request).await {
                Ok(tenant) => tenant,
                Err(AppError::Conflict(_)) => {
                    let tenant = app.tenant_named(&name).await?;
                    if retention_days.is_some() {
                        app.set_retention(&operator, tenant.id, retention_days)
                            .await?
                    } else {
                        tenant
                    }
                }
                Err(e) => return Err(e.into()),
            };
            print_json(&tenant)?;
        }
        TenantCommand::List => print_json(&app.list_tenants(&operator).await?)?,
        TenantCommand::Retention {
            name,
            days,
            keep_forever,
        } => {
            let tenant = app.tenant_named(&name).await?;
            let days = if keep_forever { None } else { days };
            print_json(&app.set_retention(&operator, tenant.id, days).await?)?;
        }
    }
    Ok(())
}

fn print_source_health(h: &garrison_api::admin::SourceHealthView) {
    let logsource: Vec<String> = [
        ("product", &h.product),
        ("service", &h.service),
        ("category", &h.category),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect();
    println!(
        "source        {}{}",
        h.source,
        if h.configured {
            ""
        } else {
            " (not configured)"
        }
    );
    println!(
        "logsource     {}",
        if logsource.is_empty() {
            "none".to_string()
        } else {
            logsource.join(", ")
        }
    );
    println!(
        "last event    {}{}",
        h.last_event_received.as_deref().unwrap_or("none in 8 days"),
        h.silent_for_secs
            .map(|s| format!(" ({s} s ago)"))
            .unwrap_or_default()
    );
    if let Some(limit) = h.silent_after_secs {
        println!(
            "silence       limit {limit} s: {}",
            if h.silent { "SILENT" } else { "ok" }
        );
    }
    println!(
        "rate          {:.3}/s over 1 min, {:.3}/s over 1 h",
        h.events_per_second_1m, h.events_per_second_1h
    );
    println!(
        "24 h          {} events, {} duplicates dropped, {} unparsed ({:.2} %)",
        h.events_24h,
        h.duplicates_24h,
        h.unparsed_24h,
        h.unparsed_share_24h * 100.0
    );
    println!(
        "rules         {} of {} enabled apply to its logsource",
        h.rules_applicable, h.rules_enabled
    );
    for rule in &h.rules_fired_24h {
        println!("  fired       {:>6}  {}", rule.hits, rule.rule_id);
    }
    for note in &h.notes {
        println!("note          {note}");
    }
}

pub async fn source(command: SourceCommand, config: &ServerConfig) -> Result<()> {
    let app = local_app(config).await?;
    match command {
        SourceCommand::Set {
            name,
            product,
            service,
            category,
            mappings,
            alerts,
            alert_rule,
            alert_title,
            alert_severity,
            id_field,
            syslog_from,
            syslog_host,
            syslog_app,
            syslog_vendor,
            syslog_product,
            silent_after,
            reset,
            tenant,
        } => {
            let actor = local_actor(&app, &tenant).await?;
            let current = if reset {
                None
            } else {
                app.list_sources(&actor)
                    .await?
                    .into_iter()
                    .find(|s| s.name == name)
            };
            let syslog = garrison_store::SyslogMatch {
                from: syslog_from,
                hostname: syslog_host,
                app: syslog_app,
                vendor: syslog_vendor,
                product: syslog_product,
            };
            let field_mapping = mappings
                .iter()
                .map(|m| {
                    m.split_once('=')
                        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                        .with_context(|| format!("--map {m:?}: expected FIELD=ECS.NAME"))
                })
                .collect::<Result<Vec<_>>>()?;
            // What is not given keeps its value (unless --reset).
            let keep = |given: Option<String>, old: Option<&Option<String>>| {
                given.or_else(|| old.cloned().flatten())
            };
            let c = current.as_ref();
            let source = app
                .put_source(
                    &actor,
                    NewSource {
                        product: keep(product, c.map(|c| &c.product)),
                        service: keep(service, c.map(|c| &c.service)),
                        category: keep(category, c.map(|c| &c.category)),
                        field_mapping: if field_mapping.is_empty() {
                            c.map(|c| c.field_mapping.clone()).unwrap_or_default()
                        } else {
                            field_mapping
                        },
                        alert_mapping: if alerts {
                            Some(garrison_store::AlertMapping {
                                rule: alert_rule,
                                title: alert_title,
                                severity: alert_severity,
                            })
                        } else {
                            c.and_then(|c| c.alert_mapping.clone())
                        },
                        id_field: keep(id_field, c.map(|c| &c.id_field)),
                        syslog: if syslog.is_empty() {
                            c.and_then(|c| c.syslog.clone())
                        } else {
                            Some(syslog)
                        },
                        silent_after_secs: silent_after
                            .map(|d| d.as_millis() / 1000)
                            .or_else(|| c.and_then(|c| c.silent_after_secs)),
                        name,
                    },
                )
                .await?;
            print_json(&source)?;
        }
        SourceCommand::List { tenant } => {
            let actor = local_actor(&app, &tenant).await?;
            print_json(&app.list_sources(&actor).await?)?;
        }
        SourceCommand::Health { name, json, tenant } => {
            let actor = local_actor(&app, &tenant).await?;
            let health = app.source_health(&actor, &name).await?;
            if json {
                print_json(&health)?;
            } else {
                print_source_health(&health);
            }
        }
    }
    Ok(())
}
