//! `garrison events search`: the same search as `GET /api/v1/events`, from the terminal.

use anyhow::{Context, Result};
use clap::Subcommand;
use garrison_api::admin::EventSearchParams;
use garrison_model::{TimeBound, Timestamp};
use garrison_server::{ServerConfig, DEFAULT_TENANT};

use crate::detection::Door;

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Search events, newest first; prints one JSON event per line.
    ///
    /// Without --url, reads the local data directory (safe while the service runs).
    /// With --url and --token, asks a running service over its API.
    Search {
        /// Full-text words; all must occur.
        #[arg(long, short)]
        q: Option<String>,
        /// Only events of this source.
        #[arg(long)]
        source: Option<String>,
        /// Field filter FIELD=VALUE (a dotted path as sent, or an ECS name); repeatable.
        #[arg(long = "field", value_name = "FIELD=VALUE")]
        fields: Vec<String>,
        /// Event time from (RFC 3339 or Unix seconds).
        #[arg(long)]
        from: Option<String>,
        /// Event time to, exclusive (RFC 3339 or Unix seconds).
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 100, value_parser = crate::client::page_size)]
        limit: usize,
        /// Continue after a previous page (its printed next cursor).
        #[arg(long)]
        cursor: Option<String>,
        /// Fetch every page, not just one.
        #[arg(long)]
        all: bool,
        /// Tenant (local data directory only; with --url the token's tenant is used).
        #[arg(long, default_value = DEFAULT_TENANT, conflicts_with = "url")]
        tenant: String,
        /// A running service, e.g. http://127.0.0.1:8080.
        #[arg(long, requires = "token", env = "GARRISON_URL")]
        url: Option<String>,
        /// API token for --url.
        #[arg(long, env = "GARRISON_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

fn parse_time(name: &str, value: &str) -> Result<Timestamp> {
    garrison_model::parse_time_bound(value).with_context(|| format!("--{name}"))
}

pub async fn run(command: EventsCommand, config: &ServerConfig) -> Result<()> {
    let EventsCommand::Search {
        q,
        source,
        fields,
        from,
        to,
        limit,
        cursor,
        all,
        tenant,
        url,
        token,
    } = command;
    let fields = fields
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--field {f:?}: expected FIELD=VALUE"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut params = EventSearchParams {
        from: from
            .as_deref()
            .map(|v| parse_time("from", v))
            .transpose()?
            .map(TimeBound),
        to: to
            .as_deref()
            .map(|v| parse_time("to", v))
            .transpose()?
            .map(TimeBound),
        source,
        q,
        limit: crate::client::limit(limit),
        cursor,
    };
    let door = Door::open(&url, &token, &tenant, config).await?;
    loop {
        let page = match &door {
            Door::Api(api) => api.events(&params, &fields).await?,
            Door::Local(app, actor) => {
                app.search_events(actor, params.clone(), fields.clone())
                    .await?
            }
        };
        crate::client::print_lines(&page.events)?;
        match page.next_cursor {
            Some(next) if all => params.cursor = Some(next),
            Some(next) => {
                eprintln!("more results: --cursor {next}");
                return Ok(());
            }
            None => return Ok(()),
        }
    }
}
