//! Configuration: one TOML file < `GARRISON_*` environment variables < command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;
use garrison_server::ServerConfig;
use serde::Deserialize;

/// The TOML file. Every key is optional; see `garrison.example.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub http_addr: Option<String>,
    pub syslog_addr: Option<String>,
    pub syslog_tls_addr: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub syslog_tenant: Option<String>,
    pub syslog_source: Option<String>,
    pub log_format: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub max_line_bytes: Option<usize>,
    pub max_fields: Option<usize>,
    pub max_depth: Option<usize>,
    pub max_index_backlog_bytes: Option<u64>,
    /// Largest incident attachment accepted (env `GARRISON_MAX_ATTACHMENT_BYTES`).
    pub max_attachment_bytes: Option<u64>,
    pub retention_interval_secs: Option<u64>,
    /// Live detection: repeats of a rule for one entity within this many seconds are one alert.
    pub detection_window_secs: Option<u64>,
    /// Live detection: the fields (ECS names, else event fields) that make an alert's entity.
    pub detection_entity_fields: Option<Vec<String>>,
    /// Live detection: most events evaluated and committed at once.
    pub detection_batch_events: Option<usize>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// The value from the command line or environment if given there, else the file's, else none.
pub fn pick<T: Clone>(
    matches: &ArgMatches,
    id: &str,
    cli: Option<&T>,
    file: Option<T>,
) -> Option<T> {
    match matches.value_source(id) {
        Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable) => cli.cloned(),
        _ => file.or_else(|| cli.cloned()),
    }
}

/// `off` (or empty) disables a listener; anything else must be host:port.
pub fn parse_optional_addr(name: &str, value: &str) -> Result<Option<SocketAddr>> {
    let value = value.trim();
    if value.is_empty() || value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match value.parse() {
        Ok(addr) => Ok(Some(addr)),
        Err(_) => bail!("{name}: {value:?} is not an address like 127.0.0.1:5514 (or `off`)"),
    }
}

pub struct Layered<'a> {
    pub matches: &'a ArgMatches,
    pub file: FileConfig,
}

impl Layered<'_> {
    pub fn string(&self, id: &str, cli: Option<&String>, file: Option<String>) -> Option<String> {
        pick(self.matches, id, cli, file)
    }
}

#[allow(clippy::too_many_arguments)]
pub fn server_config(
    layered: Layered<'_>,
    data_dir: &Path,
    database_url: Option<String>,
    http_addr: Option<&String>,
    syslog_addr: Option<&String>,
    syslog_tls_addr: Option<&String>,
    tls_cert: Option<&PathBuf>,
    tls_key: Option<&PathBuf>,
) -> Result<ServerConfig> {
    let file = &layered.file;
    let mut config = ServerConfig::new(data_dir);
    config.database_url = database_url;
    // The firewall connector of the `firewall.*` playbook actions.
    config.firewall_url = std::env::var("GARRISON_FIREWALL_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    // How often active leases are re-checked (`5m`, `30s`).
    if let Ok(every) = std::env::var("GARRISON_RECONCILE_INTERVAL") {
        let d: garrison_playbook::Duration = every
            .parse()
            .map_err(|e: String| anyhow::anyhow!("GARRISON_RECONCILE_INTERVAL: {e}"))?;
        config.reconcile_interval = Duration::from_millis(d.as_millis().max(100));
    }
    // Playbook triggers: how often new alerts and incident timeline entries are looked for
    // (`250ms`), and how often SLA breaches are checked (`15s`).
    if let Ok(every) = std::env::var("GARRISON_TRIGGER_POLL_INTERVAL") {
        let d: garrison_playbook::Duration = every
            .parse()
            .map_err(|e: String| anyhow::anyhow!("GARRISON_TRIGGER_POLL_INTERVAL: {e}"))?;
        config.triggers.poll_interval = Duration::from_millis(d.as_millis().max(10));
    }
    if let Ok(every) = std::env::var("GARRISON_SLA_CHECK_INTERVAL") {
        let d: garrison_playbook::Duration = every
            .parse()
            .map_err(|e: String| anyhow::anyhow!("GARRISON_SLA_CHECK_INTERVAL: {e}"))?;
        config.triggers.sla_interval = Duration::from_millis(d.as_millis().max(100));
    }
    if let Some(http) = layered.string("http_addr", http_addr, file.http_addr.clone()) {
        config.http_addr = http
            .parse()
            .with_context(|| format!("http address {http:?} is not host:port"))?;
    }
    if let Some(syslog) = layered.string("syslog_addr", syslog_addr, file.syslog_addr.clone()) {
        config.syslog_addr = parse_optional_addr("syslog address", &syslog)?;
    }
    if let Some(syslog_tls) = layered.string(
        "syslog_tls_addr",
        syslog_tls_addr,
        file.syslog_tls_addr.clone(),
    ) {
        config.syslog_tls_addr = parse_optional_addr("syslog TLS address", &syslog_tls)?;
    }
    config.tls_cert = pick(layered.matches, "tls_cert", tls_cert, file.tls_cert.clone());
    config.tls_key = pick(layered.matches, "tls_key", tls_key, file.tls_key.clone());
    if let Some(tenant) = &file.syslog_tenant {
        config.syslog_tenant = tenant.clone();
    }
    if let Some(source) = &file.syslog_source {
        config.syslog_source = source.clone();
    }
    if let Some(v) = file.max_body_bytes {
        config.limits.max_body_bytes = v;
    }
    if let Some(v) = file.max_line_bytes {
        config.limits.max_line_bytes = v;
    }
    if let Some(v) = file.max_fields {
        config.limits.max_fields = v;
    }
    if let Some(v) = file.max_depth {
        config.limits.max_depth = v;
    }
    if let Some(v) = file.max_index_backlog_bytes {
        config.max_index_backlog_bytes = v;
    }
    if let Some(v) =
        env_number::<u64>("GARRISON_MAX_ATTACHMENT_BYTES")?.or(file.max_attachment_bytes)
    {
        config.max_attachment_bytes = v;
    }
    if let Some(v) = file.retention_interval_secs {
        config.retention_interval = Duration::from_secs(v.max(1));
    }
    detection_config(&mut config.detection, file)?;
    Ok(config)
}

/// A number from the environment, if set.
fn env_number<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
        Some(v) => match v.trim().parse::<T>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => anyhow::bail!("{name} {v:?} is not a number"),
        },
        None => Ok(None),
    }
}

/// Detection settings: the file, overridden by `GARRISON_DETECTION_*` variables.
fn detection_config(
    detection: &mut garrison_detect::DetectConfig,
    file: &FileConfig,
) -> Result<()> {
    let window =
        env_number::<u64>("GARRISON_DETECTION_WINDOW_SECS")?.or(file.detection_window_secs);
    if let Some(secs) = window {
        detection.window = Duration::from_secs(secs.max(1));
    }
    let fields = match std::env::var("GARRISON_DETECTION_ENTITY_FIELDS") {
        Ok(v) if !v.trim().is_empty() => Some(
            v.split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect(),
        ),
        _ => file.detection_entity_fields.clone(),
    };
    if let Some(fields) = fields {
        detection.entity_fields = fields;
    }
    let batch =
        env_number::<usize>("GARRISON_DETECTION_BATCH_EVENTS")?.or(file.detection_batch_events);
    if let Some(batch) = batch {
        detection.max_batch_events = batch.clamp(1, 100_000);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../garrison.example.toml");
        let config = FileConfig::load(Some(&path)).expect("example config");
        assert_eq!(config.http_addr.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(config.max_depth, Some(32));
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "htp_addr = \"x\"\n").expect("write");
        let error = format!(
            "{:#}",
            FileConfig::load(Some(&path)).expect_err("unknown key")
        );
        assert!(
            error.contains("bad.toml") && error.contains("htp_addr"),
            "{error}"
        );
    }

    #[test]
    fn listeners_can_be_turned_off() {
        assert_eq!(parse_optional_addr("x", "off").expect("off"), None);
        assert!(parse_optional_addr("x", "127.0.0.1:1")
            .expect("addr")
            .is_some());
        assert!(parse_optional_addr("x", "nonsense").is_err());
    }
}
