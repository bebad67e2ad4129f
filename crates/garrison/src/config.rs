//! Configuration from one table.
//!
//! Every setting is a row of [`SETTINGS`]: the same key in the TOML file (`--config`), as
//! `GARRISON_<KEY>` in the environment, and as `--set KEY=VALUE` on the command line (the
//! common ones also have a flag of their own, such as `--http-addr`). One rule for all of them:
//! flag > environment > file > default. `garrison config show` prints the effective value of
//! each and where it came from, secrets redacted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use garrison_server::ServerConfig;

/// One setting.
pub struct Setting {
    /// The key in the file; `GARRISON_` + the key in capitals in the environment.
    pub key: &'static str,
    /// The value when nothing sets it (`None`: unset, which has a meaning of its own).
    pub default: Option<&'static str>,
    /// Printed redacted (a URL's password) by `config show`.
    pub secret: bool,
    pub help: &'static str,
}

const fn setting(key: &'static str, default: Option<&'static str>, help: &'static str) -> Setting {
    Setting {
        key,
        default,
        secret: false,
        help,
    }
}

/// Every setting Garrison reads.
pub const SETTINGS: &[Setting] = &[
    setting("data_dir", Some("./garrison-data"), "Where the event log, the SQLite database and attachments live."),
    Setting { key: "database_url", default: None, secret: true, help: "sqlite://PATH or postgres://USER:PASSWORD@HOST/DB (unset: SQLite in data_dir)." },
    setting("log_format", Some("text"), "Log format: text or json."),
    setting("http_addr", Some("127.0.0.1:8080"), "HTTP(S) listen address of the API, ingest and HEC; CLI client commands default to it."),
    setting("metrics_addr", None, "Serve /metrics without a token on this address (keep it on loopback); unset or `off`: only on http_addr, with a metrics or admin token."),
    setting("syslog_addr", Some("127.0.0.1:5514"), "Syslog listen address, UDP and TCP (`off` disables)."),
    setting("syslog_tls_addr", None, "Syslog over TLS (RFC 5425) listen address; needs tls_cert and tls_key."),
    setting("tls_cert", None, "PEM certificate chain: serve HTTPS instead of HTTP."),
    setting("tls_key", None, "PEM private key for tls_cert."),
    setting("syslog_tenant", Some("default"), "Tenant that syslog events (which carry no token) belong to."),
    setting("syslog_source", Some("syslog"), "Source that syslog events belong to."),
    setting("max_body_bytes", Some("16777216"), "Largest request body, after decompression."),
    setting("max_line_bytes", Some("1048576"), "Largest single record (JSON value, NDJSON or syslog line)."),
    setting("max_fields", Some("1000"), "Most fields in one record."),
    setting("max_depth", Some("32"), "Deepest nesting in one record."),
    setting("max_index_backlog_bytes", Some("2147483648"), "New data is refused (503) while this many bytes of event log wait to be indexed."),
    setting("max_attachment_bytes", Some("1073741824"), "Largest incident attachment accepted."),
    setting("min_free_disk_bytes", Some("268435456"), "Ingest answers 503 while the data directory's file system has less free space than this, so what was acknowledged can still be indexed."),
    setting("max_connections", Some("8192"), "Most open client connections over all listeners (HTTP, HEC, TCP syslog); lowered to fit the open-file limit with a reserve for the database and the log."),
    setting("max_connections_per_address", Some("512"), "Most open connections from one client IP address."),
    setting("header_timeout", Some("15s"), "An HTTP request's head must arrive within this, counted from the connection's start or the previous answer (so it also closes idle keep-alive connections)."),
    setting("body_timeout", Some("30s"), "Longest pause while an HTTP request body is being read."),
    setting("idle_timeout", Some("10m"), "A TCP or TLS syslog connection that sends nothing for this long is closed."),
    setting("decoders_dir", None, "A folder of your own decoder files (YAML), read after the shipped ones and DATA_DIR/decoders; a file with a shipped decoder's name replaces it. See `garrison decoders`."),
    setting("silent_check_interval", Some("1m"), "How often sources with `--silent-after` are checked for silence (a silent one raises `garrison-source-silent`)."),
    setting("audit_checkpoint_interval", Some("1m"), "How often each tenant's audit chain head is signed into DATA_DIR/audit-checkpoints.jsonl (so deleted entries are caught by `audit verify`)."),
    setting("audit_forward", None, "Send every audit entry and checkpoint as CEF over syslog to udp://HOST:PORT or tcp://HOST:PORT."),
    setting("sign_in_lockout", Some("30s"), "An account locked after 5 failed sign-ins in a row (an address after 30) stays locked this long, doubling with each further failure up to 15 minutes."),
    setting("retention_interval_secs", Some("3600"), "How often per-tenant retention runs."),
    setting("detection_window_secs", Some("3600"), "Repeats of a rule for one entity within this window are one alert."),
    setting("detection_entity_fields", Some("host.name,user.name"), "Fields (ECS names, else the event's own) that make an alert's entity; comma-separated or a TOML list."),
    setting("detection_batch_events", Some("20000"), "Most events the live detector evaluates and commits at once."),
    Setting { key: "firewall_url", default: None, secret: true, help: "Base URL of the firewall connector for the firewall.* playbook actions." },
    setting("reconcile_interval", Some("5m"), "How often active playbook leases are re-checked on their targets (drift)."),
    setting("trigger_poll_interval", Some("250ms"), "How often new alerts and incident timeline entries are looked for (triage, playbook triggers)."),
    setting("sla_check_interval", Some("15s"), "How often SLA breaches are checked."),
];

/// Where an effective value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env(String),
    File(PathBuf),
    Default,
    Unset,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag => f.write_str("flag"),
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Default => f.write_str("default"),
            Origin::Unset => f.write_str("unset"),
        }
    }
}

/// The effective settings.
pub struct Settings {
    values: BTreeMap<&'static str, (Option<String>, Origin)>,
}

fn env_name(key: &str) -> String {
    format!("GARRISON_{}", key.to_ascii_uppercase())
}

fn known(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

fn known_keys() -> String {
    SETTINGS
        .iter()
        .map(|s| s.key)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A TOML value as the one text form every source shares (lists comma-separated).
fn toml_text(key: &str, value: &toml::Value) -> Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(n) => n.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                toml::Value::String(s) => Ok(s.clone()),
                other => bail!(
                    "{key}: list items must be strings, not a {}",
                    other.type_str()
                ),
            })
            .collect::<Result<Vec<_>>>()?
            .join(","),
        other => bail!(
            "{key}: a {} is not a string, number, boolean or list",
            other.type_str()
        ),
    })
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        if known(&key).is_none() {
            bail!(
                "invalid config file {}: unknown key {key:?} (known keys: {})",
                path.display(),
                known_keys()
            );
        }
        let text = toml_text(&key, &value)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        values.insert(key, text);
    }
    Ok(values)
}

/// `KEY=VALUE` of `--set`.
pub fn parse_set(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected KEY=VALUE"))?;
    let key = key.trim();
    if known(key).is_none() {
        return Err(format!("unknown setting {key:?} (known: {})", known_keys()));
    }
    Ok((key.to_string(), value.to_string()))
}

impl Settings {
    /// Resolves every setting from `flags` (pairs of key and value, from `--set` and the
    /// flags of their own), the environment, the file, and the defaults.
    pub fn resolve(file: Option<&Path>, flags: &[(String, String)]) -> Result<Settings> {
        Self::resolve_with(file, flags, |name| std::env::var(name).ok())
    }

    fn resolve_with(
        file: Option<&Path>,
        flags: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings> {
        let from_file = match file {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        let mut values = BTreeMap::new();
        for setting in SETTINGS {
            let flag = flags.iter().rev().find(|(k, _)| k == setting.key);
            let env_var = env_name(setting.key);
            let value = if let Some((_, v)) = flag {
                (Some(v.clone()), Origin::Flag)
            } else if let Some(v) = env(&env_var).filter(|v| !v.trim().is_empty()) {
                (Some(v), Origin::Env(env_var))
            } else if let Some(v) = from_file.get(setting.key) {
                (
                    Some(v.clone()),
                    Origin::File(file.map(Path::to_path_buf).unwrap_or_default()),
                )
            } else if let Some(v) = setting.default {
                (Some(v.to_string()), Origin::Default)
            } else {
                (None, Origin::Unset)
            };
            values.insert(setting.key, value);
        }
        Ok(Settings { values })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(|(v, _)| v.as_deref())
    }

    fn origin(&self, key: &str) -> Origin {
        self.values
            .get(key)
            .map_or(Origin::Unset, |(_, origin)| origin.clone())
    }

    /// A setting parsed as `T`; the error names the setting and where its value came from.
    fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(None),
            Some(text) => text.trim().parse::<T>().map(Some).map_err(|e| {
                anyhow::anyhow!("setting {key} = {text:?} (from {}): {e}", self.origin(key))
            }),
        }
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>> {
        Ok(self
            .parse::<garrison_playbook::Duration>(key)?
            .map(|d| Duration::from_millis(d.as_millis())))
    }

    /// An address, or `None` for `off` or unset.
    fn optional_addr(&self, key: &str) -> Result<Option<SocketAddr>> {
        match self.get(key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("off") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                anyhow::anyhow!(
                    "setting {key} = {v:?} (from {}): not an address like 127.0.0.1:5514 (or `off`)",
                    self.origin(key)
                )
            }),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(self.get("data_dir").unwrap_or("./garrison-data"))
    }

    pub fn log_format(&self) -> Result<String> {
        match self.get("log_format").unwrap_or("text") {
            f @ ("text" | "json") => Ok(f.to_string()),
            other => bail!(
                "setting log_format = {other:?} (from {}): expected text or json",
                self.origin("log_format")
            ),
        }
    }

    /// The configuration of the store alone (commands that work on the data directory).
    pub fn store_config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(self.data_dir());
        config.database_url = self.get("database_url").map(str::to_string);
        config
    }

    /// The service's whole configuration.
    pub fn server_config(&self) -> Result<ServerConfig> {
        let mut config = self.store_config();
        if let Some(addr) = self.parse::<SocketAddr>("http_addr")? {
            config.http_addr = addr;
        }
        config.metrics_addr = self.optional_addr("metrics_addr")?;
        config.syslog_addr = self.optional_addr("syslog_addr")?;
        config.syslog_tls_addr = self.optional_addr("syslog_tls_addr")?;
        config.tls_cert = self.get("tls_cert").map(PathBuf::from);
        config.tls_key = self.get("tls_key").map(PathBuf::from);
        if let Some(tenant) = self.get("syslog_tenant") {
            config.syslog_tenant = tenant.to_string();
        }
        if let Some(source) = self.get("syslog_source") {
            config.syslog_source = source.to_string();
        }
        if let Some(v) = self.parse("max_body_bytes")? {
            config.limits.max_body_bytes = v;
        }
        if let Some(v) = self.parse("max_line_bytes")? {
            config.limits.max_line_bytes = v;
        }
        if let Some(v) = self.parse("max_fields")? {
            config.limits.max_fields = v;
        }
        if let Some(v) = self.parse("max_depth")? {
            config.limits.max_depth = v;
        }
        if let Some(v) = self.parse("max_index_backlog_bytes")? {
            config.max_index_backlog_bytes = v;
        }
        if let Some(v) = self.parse("max_attachment_bytes")? {
            config.max_attachment_bytes = v;
        }
        if let Some(v) = self.parse("min_free_disk_bytes")? {
            config.min_free_disk_bytes = v;
        }
        if let Some(v) = self.parse::<usize>("max_connections")? {
            config.listen.max_connections = v.max(1);
        }
        if let Some(v) = self.parse::<usize>("max_connections_per_address")? {
            config.listen.max_connections_per_address = v.max(1);
        }
        if let Some(every) = self.duration("header_timeout")? {
            config.listen.header_timeout = every.max(Duration::from_millis(100));
        }
        if let Some(every) = self.duration("body_timeout")? {
            config.listen.body_timeout = every.max(Duration::from_millis(100));
        }
        if let Some(every) = self.duration("idle_timeout")? {
            config.listen.idle_timeout = every.max(Duration::from_millis(100));
        }
        if let Some(first) = self.duration("sign_in_lockout")? {
            config.sign_in_lockout = first.max(Duration::from_millis(100));
        }
        if let Some(dir) = self.get("decoders_dir").filter(|d| !d.trim().is_empty()) {
            config.decoders_dirs.push(PathBuf::from(dir.trim()));
        }
        if let Some(every) = self.duration("silent_check_interval")? {
            config.silent_check_interval = every.max(Duration::from_millis(100));
        }
        if let Some(every) = self.duration("audit_checkpoint_interval")? {
            config.audit_checkpoint_interval = every.max(Duration::from_millis(100));
        }
        config.audit_forward = match self.get("audit_forward").filter(|t| !t.trim().is_empty()) {
            Some(target) => Some(
                target
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("audit_forward: {e}"))?,
            ),
            None => None,
        };
        if let Some(v) = self.parse::<u64>("retention_interval_secs")? {
            config.retention_interval = Duration::from_secs(v.max(1));
        }
        if let Some(secs) = self.parse::<u64>("detection_window_secs")? {
            config.detection.window = Duration::from_secs(secs.max(1));
        }
        if let Some(fields) = self.get("detection_entity_fields") {
            config.detection.entity_fields = fields
                .split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect();
        }
        if let Some(batch) = self.parse::<usize>("detection_batch_events")? {
            config.detection.max_batch_events = batch.clamp(1, 100_000);
        }
        config.firewall_url = self
            .get("firewall_url")
            .filter(|u| !u.trim().is_empty())
            .map(str::to_string);
        if let Some(every) = self.duration("reconcile_interval")? {
            config.reconcile_interval = every.max(Duration::from_millis(100));
        }
        if let Some(every) = self.duration("trigger_poll_interval")? {
            config.triggers.poll_interval = every.max(Duration::from_millis(10));
        }
        if let Some(every) = self.duration("sla_check_interval")? {
            config.triggers.sla_interval = every.max(Duration::from_millis(100));
        }
        Ok(config)
    }

    /// The service this configuration runs, as a URL for CLI client commands: the HTTP
    /// address (loopback for an any-address bind), https when a certificate is set.
    pub fn client_url(&self) -> String {
        let scheme = if self.get("tls_cert").is_some() {
            "https"
        } else {
            "http"
        };
        let addr = self
            .parse::<SocketAddr>("http_addr")
            .ok()
            .flatten()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let host = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
            ip if ip.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("{scheme}://{host}:{}", addr.port())
    }

    /// Every setting with its effective value (secrets redacted) and origin.
    pub fn show(&self) -> Vec<Shown> {
        SETTINGS
            .iter()
            .map(|s| {
                let value = self
                    .get(s.key)
                    .map(|v| if s.secret { redact(v) } else { v.to_string() });
                Shown {
                    key: s.key,
                    env: env_name(s.key),
                    value,
                    origin: self.origin(s.key).to_string(),
                    help: s.help,
                }
            })
            .collect()
    }
}

/// One line of `garrison config show`.
#[derive(Debug, serde::Serialize)]
pub struct Shown {
    pub key: &'static str,
    pub env: String,
    pub value: Option<String>,
    pub origin: String,
    pub help: &'static str,
}

/// A secret for display: a URL keeps its scheme, user and host, the password goes; anything
/// else is replaced whole.
pub fn redact(value: &str) -> String {
    match (value.find("://"), value.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &value[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &value[..scheme + 3], &value[at..]),
                None => format!("{}***{}", &value[..scheme + 3], &value[at..]),
            }
        }
        (Some(_), _) => value.to_string(),
        _ => "***".to_string(),
    }
}

/// The service URL CLI client commands use when `--url`/`GARRISON_URL` is not given: derived
/// from the same settings the service reads (set once by `main`).
static DEFAULT_URL: OnceLock<String> = OnceLock::new();

pub fn set_default_url(url: String) {
    let _ = DEFAULT_URL.set(url);
}

/// `--url` if given, else the configured service.
pub fn service_url(given: &Option<String>) -> String {
    given.clone().unwrap_or_else(|| {
        DEFAULT_URL
            .get()
            .cloned()
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(file: Option<&Path>, flags: &[(&str, &str)], env: &[(&str, &str)]) -> Settings {
        let flags: Vec<(String, String)> = flags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve_with(file, &flags, |name| env.get(name).cloned()).expect("resolves")
    }

    #[test]
    fn the_example_config_parses_and_sets_every_key_it_names() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../garrison.example.toml");
        let settings = resolve(Some(&path), &[], &[]);
        assert_eq!(settings.get("http_addr"), Some("127.0.0.1:8080"));
        assert_eq!(settings.get("max_depth"), Some("32"));
        assert_eq!(
            settings.get("detection_entity_fields"),
            Some("host.name,user.name")
        );
        let config = settings.server_config().expect("valid");
        assert_eq!(config.limits.max_depth, 32);
        assert!(matches!(settings.origin("max_depth"), Origin::File(_)));
    }

    #[test]
    fn one_rule_for_every_setting_flag_env_file_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("g.toml");
        std::fs::write(
            &path,
            "max_fields = 10\nmax_depth = 5\nsla_check_interval = \"1m\"\nfirewall_url = \"https://fw:pw@fw.example/api\"\n",
        )
        .expect("write");
        let settings = resolve(
            Some(&path),
            &[("max_fields", "30")],
            &[("GARRISON_MAX_FIELDS", "20"), ("GARRISON_MAX_DEPTH", "6")],
        );
        assert_eq!(settings.get("max_fields"), Some("30"));
        assert_eq!(settings.origin("max_fields"), Origin::Flag);
        assert_eq!(settings.get("max_depth"), Some("6"));
        assert_eq!(
            settings.origin("max_depth"),
            Origin::Env("GARRISON_MAX_DEPTH".into())
        );
        assert_eq!(settings.origin("max_line_bytes"), Origin::Default);
        assert_eq!(settings.origin("metrics_addr"), Origin::Unset);
        let config = settings.server_config().expect("valid");
        assert_eq!(config.triggers.sla_interval, Duration::from_secs(60));
        assert_eq!(config.limits.max_fields, 30);
        let shown = settings.show();
        let fw = shown.iter().find(|s| s.key == "firewall_url").expect("row");
        assert_eq!(fw.value.as_deref(), Some("https://fw:***@fw.example/api"));
        assert_eq!(shown.len(), SETTINGS.len());
    }

    #[test]
    fn bad_values_name_the_setting_and_its_origin() {
        let settings = resolve(None, &[], &[("GARRISON_MAX_DEPTH", "deep")]);
        let error = format!("{:#}", settings.server_config().expect_err("bad"));
        assert!(
            error.contains("max_depth") && error.contains("GARRISON_MAX_DEPTH"),
            "{error}"
        );
        let settings = resolve(None, &[("syslog_addr", "nonsense")], &[]);
        assert!(settings.server_config().is_err());
        let settings = resolve(None, &[("syslog_addr", "off")], &[]);
        assert_eq!(settings.server_config().expect("off").syslog_addr, None);
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "htp_addr = \"x\"\n").expect("write");
        let error = format!(
            "{:#}",
            Settings::resolve(Some(&path), &[])
                .err()
                .expect("unknown key")
        );
        assert!(
            error.contains("bad.toml") && error.contains("htp_addr"),
            "{error}"
        );
        assert!(parse_set("htp_addr=1").is_err());
        assert_eq!(
            parse_set("max_depth=4").expect("known"),
            ("max_depth".into(), "4".into())
        );
    }

    #[test]
    fn clients_reach_the_configured_service() {
        let settings = resolve(None, &[], &[("GARRISON_HTTP_ADDR", "0.0.0.0:9000")]);
        assert_eq!(settings.client_url(), "http://127.0.0.1:9000");
        let settings = resolve(
            None,
            &[("http_addr", "127.0.0.2:8443"), ("tls_cert", "c.pem")],
            &[],
        );
        assert_eq!(settings.client_url(), "https://127.0.0.2:8443");
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://./x.db"), "sqlite://./x.db");
        assert_eq!(redact("s3cr3t"), "***");
    }
}
