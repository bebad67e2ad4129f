//! Garrison's service: the HTTP API, Splunk HEC, syslog listeners, and the background tasks
//! that follow the event log.
//!
//! **Invariant:** only this crate knows HTTP and sockets. Authorization happens here; tenant
//! scoping is enforced again by the store's signatures.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod audit_forward;
pub mod auth;
mod disk;
pub mod error;
pub mod instance;
pub mod listen;
mod openapi;
mod priority;
mod routes;
mod syslog;
pub mod telemetry;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use garrison_bus::{EventLog, LogConfig};
use garrison_ingest::Limits;
use garrison_model::{Role, TenantId};
use garrison_pipeline::{Indexer, Ingestor, SourceContext};
use garrison_store::{NewToken, SourceRepo, SqlStore, TenantRepo, TokenKind, TokenRepo, UserRepo};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

pub use garrison_soar::TriggerConfig;
pub use openapi::{openapi_document, openapi_json};

/// The name of the tenant created on first start; its admins also manage other tenants.
pub const DEFAULT_TENANT: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("store: {0}")]
    Store(#[from] garrison_store::StoreError),
    #[error("event log: {0}")]
    Log(#[from] garrison_bus::LogError),
    #[error("pipeline: {0}")]
    Pipeline(#[from] garrison_pipeline::PipelineError),
    #[error("detection: {0}")]
    Detect(#[from] garrison_detect::DetectError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Everything `garrison serve` needs, after file, environment and flags were merged.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// `None`: SQLite in the data directory.
    pub database_url: Option<String>,
    pub http_addr: SocketAddr,
    /// `/metrics` without a token, on its own address (keep it on loopback or a management
    /// network); `None`: only on `http_addr`, with a token.
    pub metrics_addr: Option<SocketAddr>,
    /// UDP and TCP syslog; `None` disables it.
    pub syslog_addr: Option<SocketAddr>,
    /// Syslog over TLS (RFC 5425); needs the certificate and key.
    pub syslog_tls_addr: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The tenant and source that syslog events are attributed to.
    pub syslog_tenant: String,
    pub syslog_source: String,
    pub limits: Limits,
    /// New data is refused (503) while more than this many bytes of log wait to be indexed.
    pub max_index_backlog_bytes: u64,
    pub retention_interval: Duration,
    /// `false` only for benchmarks that isolate the cost of everything but the disk flush.
    pub fsync: bool,
    /// Base URL of the firewall connector for `firewall.*` playbook actions.
    pub firewall_url: Option<String>,
    /// How often active playbook leases are re-checked on their targets (drift).
    pub reconcile_interval: Duration,
    /// Live detection: alert folding window, entity fields, batch size.
    pub detection: garrison_detect::DetectConfig,
    /// Playbook triggers: how often new alerts and timeline entries are looked for, and how
    /// often SLA breaches are checked.
    pub triggers: TriggerConfig,
    /// Largest incident attachment accepted, in bytes.
    pub max_attachment_bytes: u64,
    /// Ingest refuses new data (503) while the data directory's file system has less free
    /// space than this, so what was acknowledged can still be indexed.
    pub min_free_disk_bytes: u64,
    /// Connection limits and timeouts of every listener.
    pub listen: listen::ListenLimits,
    /// How often each tenant's audit chain head is signed into the checkpoint file.
    pub audit_checkpoint_interval: Duration,
    /// How often sources are checked for silence past their `silent_after_secs`.
    pub silent_check_interval: Duration,
    /// Where each new audit entry and checkpoint is sent as CEF over syslog, if anywhere.
    pub audit_forward: Option<audit_forward::ForwardTarget>,
    /// The first lockout after repeated failed sign-ins (doubling up to 15 minutes).
    pub sign_in_lockout: Duration,
    /// Folders of the operator's own decoders, read after the shipped ones (a file with a
    /// shipped decoder's name replaces it). `<data dir>/decoders` is always read when present.
    pub decoders_dirs: Vec<PathBuf>,
}

impl ServerConfig {
    /// The folders of the operator's decoders, in the order they are read (after the shipped
    /// ones): `DATA_DIR/decoders` when present, then `decoders_dirs`.
    pub fn decoder_dirs(&self) -> Vec<PathBuf> {
        let own = self.data_dir.join("decoders");
        let mut dirs = Vec::new();
        if own.is_dir() {
            dirs.push(own);
        }
        dirs.extend(self.decoders_dirs.iter().cloned());
        dirs
    }

    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            database_url: None,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_addr: None,
            syslog_addr: Some(SocketAddr::from(([127, 0, 0, 1], 5514))),
            syslog_tls_addr: None,
            tls_cert: None,
            tls_key: None,
            syslog_tenant: DEFAULT_TENANT.to_string(),
            syslog_source: "syslog".to_string(),
            limits: Limits::default(),
            max_index_backlog_bytes: 2 * 1024 * 1024 * 1024,
            retention_interval: Duration::from_secs(3600),
            fsync: true,
            firewall_url: None,
            reconcile_interval: Duration::from_secs(300),
            detection: garrison_detect::DetectConfig::default(),
            triggers: TriggerConfig::default(),
            max_attachment_bytes: 1024 * 1024 * 1024,
            min_free_disk_bytes: 256 * 1024 * 1024,
            listen: listen::ListenLimits::default(),
            audit_checkpoint_interval: Duration::from_secs(60),
            silent_check_interval: Duration::from_secs(60),
            audit_forward: None,
            sign_in_lockout: garrison_app::sign_in::FIRST_LOCKOUT,
            decoders_dirs: Vec::new(),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("garrison.db").display()))
    }
}

/// Opens the store the configuration names (creating the data directory for SQLite).
pub async fn open_store(config: &ServerConfig) -> Result<SqlStore, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ServerError::Config(format!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        ))
    })?;
    Ok(SqlStore::connect(&config.database_url()).await?)
}

/// What first start created: shown once by the binary, never stored in clear.
#[derive(Debug)]
pub struct Bootstrap {
    pub tenant: String,
    pub username: String,
    pub password: String,
    pub api_token: String,
}

/// Creates the default tenant and, if it has no users yet, an admin with a random password
/// and an admin API token. Returns the credentials only when it created them.
pub async fn bootstrap(store: &SqlStore) -> Result<Option<Bootstrap>, ServerError> {
    let tenant = store.ensure_tenant(DEFAULT_TENANT).await?;
    if store.count_users(tenant.id).await? > 0 {
        return Ok(None);
    }
    let password = random_password();
    let user = store
        .create_user(tenant.id, "admin", &password, &[Role::Admin])
        .await?;
    let (_, secret) = store
        .create_token(NewToken {
            tenant_id: tenant.id,
            kind: TokenKind::Api,
            name: "bootstrap admin token".into(),
            roles: vec![Role::Admin],
            source: None,
            user_id: Some(user.id),
            expires: None,
        })
        .await?;
    Ok(Some(Bootstrap {
        tenant: tenant.name,
        username: user.username,
        password,
        api_token: secret.expose().to_string(),
    }))
}

/// A 24-character random password without look-alike characters (for generated accounts).
pub fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..24)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Shared by every handler and listener.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    store: Arc<SqlStore>,
    /// The application layer: every state change goes through it.
    app: garrison_app::App,
    ingestor: Ingestor,
    limits: Limits,
    metrics: PrometheusHandle,
    provider_tenant: TenantId,
    /// Source contexts by (tenant, source name), refreshed every few seconds so a changed
    /// source mapping takes effect without a restart.
    sources: std::sync::Mutex<HashMap<(TenantId, String), (Instant, SourceContext)>>,
    hec_acks: HecAcks,
    /// The playbook engine (also inside `app`); its background tasks start from here.
    soar: garrison_soar::Soar,
    /// The log position the live detector has committed.
    detected: watch::Receiver<u64>,
    /// When each token's use was last audited (token uses are audited once an hour).
    token_uses: std::sync::Mutex<HashMap<i64, Instant>>,
    /// Components degraded by a storage fault, for `/readyz` and the `garrison_degraded` gauge.
    health: garrison_model::health::Health,
    /// Open connections over every listener, and the limits they are held to.
    gate: listen::Gate,
    listen: listen::ListenLimits,
    /// The shipped decoders and the operator's, given to every source context.
    decoders: Arc<garrison_decoders::DecoderSet>,
}

const SOURCE_CACHE_TTL: Duration = Duration::from_secs(5);

/// HEC indexer acknowledgement ids, per tenant and channel. An id is issued only after the
/// events are durable, so every issued id is acknowledged; ids survive as long as the process
/// (a restarted service answers `false` for older ids, and the forwarder resends: at least
/// once, stored once where events carry ids).
#[derive(Default)]
pub struct HecAcks {
    channels: std::sync::Mutex<HashMap<(TenantId, String), u64>>,
}

impl HecAcks {
    /// Most channels remembered; beyond this the oldest state is dropped (forwarders resend).
    const MAX_CHANNELS: usize = 100_000;

    pub fn issue(&self, tenant: TenantId, channel: &str) -> u64 {
        let Ok(mut channels) = self.channels.lock() else {
            return 0;
        };
        if channels.len() >= Self::MAX_CHANNELS
            && !channels.contains_key(&(tenant, channel.to_string()))
        {
            channels.clear();
        }
        let next = channels.entry((tenant, channel.to_string())).or_insert(0);
        let id = *next;
        *next += 1;
        id
    }

    pub fn is_acked(&self, tenant: TenantId, channel: &str, id: u64) -> bool {
        self.channels
            .lock()
            .ok()
            .and_then(|c| c.get(&(tenant, channel.to_string())).copied())
            .is_some_and(|next| id < next)
    }
}

impl AppState {
    pub fn store(&self) -> &SqlStore {
        &self.inner.store
    }
    /// The application layer (doors call operations, operations call the store).
    pub fn app(&self) -> &garrison_app::App {
        &self.inner.app
    }
    pub fn ingestor(&self) -> &Ingestor {
        &self.inner.ingestor
    }
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }
    pub fn decoders(&self) -> Arc<garrison_decoders::DecoderSet> {
        self.inner.decoders.clone()
    }
    /// How events of `source` in `tenant` are attributed and normalised.
    pub async fn source_context(
        &self,
        tenant: TenantId,
        source: &str,
    ) -> Result<SourceContext, error::ApiError> {
        let key = (tenant, source.to_string());
        if let Ok(cache) = self.inner.sources.lock() {
            if let Some((at, context)) = cache.get(&key) {
                if at.elapsed() < SOURCE_CACHE_TTL {
                    return Ok(context.clone());
                }
            }
        }
        let context = match self.store().source(tenant, source).await? {
            Some(stored) => SourceContext::from_source(&stored),
            None => SourceContext::unconfigured(tenant, source),
        }
        .decoding(self.decoders());
        if let Ok(mut cache) = self.inner.sources.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), context.clone()));
        }
        Ok(context)
    }

    /// True while new data would be refused.
    pub fn is_saturated(&self) -> bool {
        self.ingestor().is_saturated()
    }

    pub fn gate(&self) -> &listen::Gate {
        &self.inner.gate
    }

    pub fn listen_limits(&self) -> listen::ListenLimits {
        self.inner.listen
    }

    /// Components degraded by a storage fault (empty when all is well).
    pub fn degraded(&self) -> Vec<garrison_model::health::Degraded> {
        self.inner.health.degraded()
    }

    /// True when this token's use has not been audited in the last hour (and notes it now).
    pub fn first_use_this_hour(&self, token_id: i64) -> bool {
        const EVERY: Duration = Duration::from_secs(3600);
        let Ok(mut uses) = self.inner.token_uses.lock() else {
            return false;
        };
        let now = Instant::now();
        if uses.len() > 100_000 {
            uses.retain(|_, at| now.duration_since(*at) < EVERY);
        }
        match uses.get(&token_id) {
            Some(at) if now.duration_since(*at) < EVERY => false,
            _ => {
                uses.insert(token_id, now);
                true
            }
        }
    }

    pub fn hec_acks(&self) -> &HecAcks {
        &self.inner.hec_acks
    }

    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }

    /// The tenant whose admins manage all tenants (the managed provider itself).
    pub fn provider_tenant(&self) -> TenantId {
        self.inner.provider_tenant
    }

    /// The playbook engine (SOAR).
    pub fn soar(&self) -> &garrison_soar::Soar {
        &self.inner.soar
    }

    /// The log position the live detector has committed.
    pub fn detected_position(&self) -> u64 {
        *self.inner.detected.borrow()
    }
}

/// One Prometheus recorder per process, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            // Detection lag is judged against seconds (p99 < 2 s): finer buckets there.
            let lag_buckets = [
                0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("garrison_detection_lag_seconds".into()),
                    &lag_buckets,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours just stays local.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Serves `GET /metrics` without a token on its own address, per-tenant series left out.
/// Every `interval`: raises `garrison-source-silent` for sources silent past their limit
/// (see [`garrison_app::App::check_silent_sources`]).
async fn watch_silent_sources(
    app: garrison_app::App,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        match app
            .check_silent_sources(garrison_model::Timestamp::now())
            .await
        {
            Ok(0) => {}
            Ok(silent) => tracing::info!(silent, "sources silent past their limit"),
            Err(e) => tracing::warn!(error = %e, "silent-source check failed"),
        }
    }
}

async fn spawn_metrics_listener(
    state: AppState,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<SocketAddr, ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let limits = state.listen_limits();
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State(state): axum::extract::State<AppState>| async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        routes::ops::without_tenant_series(&routes::ops::render_metrics(&state)),
                    )
                },
            ),
        )
        .with_state(state);
    // Its own small gate: scrapers are few, and a flood here must not starve the API.
    let gate = listen::Gate::new(64, 16);
    tasks.push(tokio::spawn(listen::serve_plain_http(
        router, limits, listener, gate, shutdown,
    )));
    Ok(bound)
}

/// A started service: its bound addresses and a way to stop it.
pub struct RunningServer {
    pub http_addr: SocketAddr,
    /// Where `/metrics` is served without a token, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    pub https: bool,
    pub syslog_addr: Option<SocketAddr>,
    pub syslog_tls_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Released when the service is dropped (or the process ends).
    _instance: instance::InstanceLock,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, stops background tasks; whatever has
    /// not stopped after 30 s is aborted, so a stop always ends.
    pub async fn shutdown(self) {
        self.shutdown_within(SHUTDOWN_LIMIT).await
    }

    /// [`RunningServer::shutdown`] with another bound.
    pub async fn shutdown_within(self, limit: std::time::Duration) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + limit;
        let mut aborted = 0usize;
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                aborted += 1;
            }
        }
        if aborted > 0 {
            tracing::warn!(aborted, limit = ?limit, "components did not stop in time; stopped them");
        }
    }
}

/// How long a stop waits for components to finish before aborting them.
pub const SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Starts everything: store, event log, indexer, retention, HTTP(S), syslog.
/// The decoders the service reads with. A file that does not load is logged and left out
/// (the others still load): `garrison decoders list` shows the same errors.
fn load_decoders(config: &ServerConfig) -> Arc<garrison_decoders::DecoderSet> {
    let dirs = config.decoder_dirs();
    let refs: Vec<&std::path::Path> = dirs.iter().map(PathBuf::as_path).collect();
    let (set, errors) = garrison_decoders::DecoderSet::load(&refs);
    for e in &errors {
        tracing::error!(file = %e.path, error = %e.message, "decoder not loaded");
    }
    tracing::info!(decoders = set.decoders().len(), "decoders loaded");
    Arc::new(set)
}

pub async fn start(config: ServerConfig, store: SqlStore) -> Result<RunningServer, ServerError> {
    // Before the log is opened: a second service on this directory must not touch it.
    let instance = instance::InstanceLock::acquire(&config.data_dir)?;
    let metrics = metrics_handle();
    let store = Arc::new(store);
    let provider = store.ensure_tenant(DEFAULT_TENANT).await?;

    let mut log_config = LogConfig::new(config.data_dir.join("log"));
    log_config.fsync = config.fsync;
    let log = EventLog::open(log_config)?;
    let health = garrison_model::health::Health::default();
    // Idle sockets must not be able to take the descriptors the database and the log need.
    let open_files = listen::raise_open_file_limit();
    let max_connections = listen::fitted_max_connections(config.listen.max_connections, open_files);
    if max_connections < config.listen.max_connections {
        tracing::warn!(
            configured = config.listen.max_connections,
            max_connections,
            open_files,
            "max_connections lowered to fit the open-file limit"
        );
    }
    let gate = listen::Gate::new(max_connections, config.listen.max_connections_per_address);
    let (mut indexer, indexed) = Indexer::new(store.clone(), log.clone()).await?;
    indexer.dead_letter = Some(config.data_dir.join("dead-letter.jsonl"));
    indexer.health = health.clone();
    // Live detection follows the same log; the indexer keeps what it has not read yet.
    let (mut detector, detected) =
        garrison_detect::Detector::new(store.clone(), log.clone(), config.detection.clone())
            .await?;
    detector.health = health.clone();
    indexer.retain_for.push(detected.clone());
    let ingestor = Ingestor::new(log.clone(), indexed, config.max_index_backlog_bytes)
        .bounded_by(detected.clone())
        .with_health(health.clone());

    let attachments_dir = config.data_dir.join("attachments");
    let blobs = garrison_blobs::BlobStore::open(&attachments_dir).map_err(|e| {
        ServerError::Config(format!(
            "cannot open the attachment folder {}: {e}",
            attachments_dir.display()
        ))
    })?;
    let soar = garrison_soar::Soar::new(
        store.clone(),
        garrison_soar::SoarConfig {
            firewall_url: config.firewall_url.clone(),
            reconcile_interval: config.reconcile_interval,
            ..Default::default()
        },
    );
    let app = garrison_app::App::new(store.clone(), provider.id)
        .with_soar(soar.clone())
        .with_blobs(Arc::new(blobs), config.max_attachment_bytes)
        .with_anchors(&config.data_dir)
        .map_err(|e| ServerError::Config(format!("audit checkpoints: {e}")))?
        .with_sign_in_lockout(config.sign_in_lockout);
    let state = AppState {
        inner: Arc::new(StateInner {
            store: store.clone(),
            app,
            ingestor,
            limits: config.limits,
            metrics,
            provider_tenant: provider.id,
            sources: std::sync::Mutex::new(HashMap::new()),
            hec_acks: HecAcks::default(),
            soar,
            detected,
            token_uses: std::sync::Mutex::new(HashMap::new()),
            health: health.clone(),
            gate: gate.clone(),
            listen: config.listen,
            decoders: load_decoders(&config),
        }),
    };

    // Before the detector runs: on first start, triggers begin at the alerts existing now.
    garrison_soar::triggers::init_cursors(&store).await?;
    // Automatic triage (alerts into incidents) likewise begins at the present on first start.
    garrison_triage::init_cursor(&store).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(disk::watch(
            config.data_dir.clone(),
            config.min_free_disk_bytes,
            state.ingestor().clone(),
            health.clone(),
            shutdown_rx.clone(),
        )),
        tokio::spawn(audit_forward::run(
            state.app().clone(),
            store.clone(),
            config.audit_checkpoint_interval,
            config.audit_forward,
            shutdown_rx.clone(),
        )),
        tokio::spawn(indexer.run(shutdown_rx.clone())),
        tokio::spawn(detector.run(shutdown_rx.clone())),
        tokio::spawn(watch_silent_sources(
            state.app().clone(),
            config.silent_check_interval,
            shutdown_rx.clone(),
        )),
    ];
    // Playbooks: resume what a killed process left, fire due timers, start schedules.
    tasks.extend(state.soar().spawn_background(shutdown_rx.clone()));
    // Playbook triggers: new alerts, incident state changes, SLA breaches (cursor-committed).
    tasks.extend(garrison_soar::triggers::spawn(
        store.clone(),
        state.soar().clone(),
        config.triggers,
        shutdown_rx.clone(),
    ));
    // Triage: suppress, score and group new alerts into incidents (cursor-committed).
    tasks.push(garrison_triage::spawn(
        store.clone(),
        config.triggers.poll_interval,
        health.clone(),
        shutdown_rx.clone(),
    ));
    tasks.push(tokio::spawn(garrison_pipeline::run_retention(
        store.clone(),
        config.retention_interval,
        shutdown_rx.clone(),
    )));
    {
        let handle = state.inner.metrics.clone();
        let mut shutdown = shutdown_rx.clone();
        let sqlite = store.dialect() == garrison_store::Dialect::Sqlite;
        tasks.push(tokio::spawn(async move {
            loop {
                handle.run_upkeep();
                if sqlite {
                    priority::deprioritize_store_threads();
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }));
    }

    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        (None, None) => None,
        _ => {
            return Err(ServerError::Config(
                "TLS needs both a certificate and a key".into(),
            ))
        }
    };

    let router = routes::router(state.clone(), tls.is_some());
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.http_addr,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.http_addr,
        source,
    })?;
    let https = tls.is_some();
    {
        let shutdown = shutdown_rx.clone();
        let limits = config.listen;
        tasks.push(match tls.clone() {
            Some(tls_config) => {
                let ready = Arc::new(tokio::sync::Mutex::new(tls::accept_tls(
                    listener,
                    tls_config,
                    gate.clone(),
                )));
                tokio::spawn(listen::serve_http(
                    router,
                    limits,
                    move || {
                        let ready = ready.clone();
                        async move { ready.lock().await.recv().await }
                    },
                    shutdown,
                ))
            }
            None => tokio::spawn(listen::serve_plain_http(
                router,
                limits,
                listener,
                gate.clone(),
                shutdown,
            )),
        });
    }

    let metrics_addr = match config.metrics_addr {
        Some(addr) => Some(
            spawn_metrics_listener(state.clone(), addr, shutdown_rx.clone(), &mut tasks).await?,
        ),
        None => None,
    };

    let syslog_context =
        syslog::SyslogContext::new(state.clone(), &config.syslog_tenant, &config.syslog_source)
            .await?;
    if config.syslog_addr.is_some() || config.syslog_tls_addr.is_some() {
        tasks.push(syslog_context.spawn_refresh(shutdown_rx.clone()));
    }
    let syslog_addr = match config.syslog_addr {
        Some(addr) => Some(
            syslog::spawn_plain(
                syslog_context.clone(),
                addr,
                shutdown_rx.clone(),
                &mut tasks,
            )
            .await?,
        ),
        None => None,
    };
    let syslog_tls_addr = match (config.syslog_tls_addr, tls) {
        (Some(addr), Some(tls_config)) => Some(
            syslog::spawn_tls(
                syslog_context,
                addr,
                tls_config,
                shutdown_rx.clone(),
                &mut tasks,
            )
            .await?,
        ),
        (Some(_), None) => {
            return Err(ServerError::Config(
                "syslog over TLS needs --tls-cert and --tls-key".into(),
            ))
        }
        (None, _) => None,
    };

    Ok(RunningServer {
        _instance: instance,
        http_addr,
        metrics_addr,
        https,
        syslog_addr,
        syslog_tls_addr,
        shutdown: shutdown_tx,
        tasks,
    })
}
