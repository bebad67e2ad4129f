//! Syslog over UDP, TCP and TLS (RFC 5424 / 3164 payloads, CEF and LEEF inside).
//!
//! TCP and TLS: frames are batched and appended when the socket goes quiet or a batch is full;
//! while the log refuses (busy), the connection is not read, so the sender feels backpressure.
//! UDP cannot push back: what the service cannot take is dropped and counted.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use garrison_ingest::syslog::{is_http_request_line, parse, Framer};
use garrison_model::TenantId;
use garrison_model::Timestamp;
use garrison_pipeline::{PipelineError, SourceContext, SyslogRouter, SyslogRule};
use garrison_store::EventRow;
use garrison_store::{SourceRepo, TenantRepo};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{watch, Semaphore};

use crate::{AppState, ServerError};

const MAX_BATCH: usize = 1000;
/// How long a partial batch may wait for more lines before it is appended.
const QUIET_FLUSH: Duration = Duration::from_millis(10);

/// How often a listener reloads its tenant's sources (routes, logsources, mappings): a
/// `garrison source set` applies to running listeners within this time.
const ROUTES_REFRESH: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct SyslogContext {
    state: AppState,
    tenant: TenantId,
    default_source: Arc<str>,
    router: Arc<RwLock<SyslogRouter>>,
}

impl SyslogContext {
    pub async fn new(state: AppState, tenant: &str, source: &str) -> Result<Self, ServerError> {
        let tenant = state.store().ensure_tenant(tenant).await?;
        let router = load_router(&state, tenant.id, source).await?;
        Ok(SyslogContext {
            state,
            tenant: tenant.id,
            default_source: Arc::from(source),
            router: Arc::new(RwLock::new(router)),
        })
    }

    /// Reloads the sources until shutdown, so source changes apply to running listeners.
    pub fn spawn_refresh(
        &self,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let context = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(ROUTES_REFRESH) => {}
                    _ = shutdown.changed() => return,
                }
                match load_router(&context.state, context.tenant, &context.default_source).await {
                    Ok(router) => {
                        if let Ok(mut current) = context.router.write() {
                            *current = router;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "syslog sources could not be reloaded; the previous ones stay")
                    }
                }
            }
        })
    }

    fn row(&self, frame: &[u8], peer: Option<IpAddr>) -> Option<EventRow> {
        let received = Timestamp::now();
        match parse(frame, received, self.state.limits()) {
            Ok(record) => {
                let router = self.router.read().ok()?;
                let source = router.route(peer, &record.fields);
                Some(source.row(record, received))
            }
            Err(e) => {
                tracing::debug!(error = %e, "syslog message rejected");
                garrison_pipeline::telemetry::events_rejected("syslog", "invalid", 1);
                None
            }
        }
    }
}

/// The listener's sources: every source of the tenant with a syslog match, and the default.
async fn load_router(
    state: &AppState,
    tenant: TenantId,
    default_source: &str,
) -> Result<SyslogRouter, ServerError> {
    let sources = state.store().list_sources(tenant).await?;
    let decoders = state.decoders();
    let mut default =
        SourceContext::unconfigured(tenant, default_source).decoding(decoders.clone());
    let mut routes = Vec::new();
    for source in &sources {
        if source.name == default_source {
            default = SourceContext::from_source(source).decoding(decoders.clone());
        }
        if let Some(m) = &source.syslog {
            match SyslogRule::compile(m) {
                Ok(rule) => routes.push((
                    rule,
                    SourceContext::from_source(source).decoding(decoders.clone()),
                )),
                Err(e) => {
                    tracing::warn!(source = %source.name, error = %e, "syslog route ignored")
                }
            }
        }
    }
    Ok(SyslogRouter::new(default, routes))
}

async fn bind_tcp(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let bound = tcp
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    Ok((tcp, bound))
}

pub async fn spawn_plain(
    context: SyslogContext,
    addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<SocketAddr, ServerError> {
    let (tcp, bound) = bind_tcp(addr).await?;
    // UDP on the same port as TCP, as syslog senders expect.
    let udp = UdpSocket::bind(bound)
        .await
        .map_err(|source| ServerError::Bind {
            addr: bound,
            source,
        })?;
    tasks.push(tokio::spawn(run_udp(
        context.clone(),
        udp,
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(run_tcp(context, tcp, None, shutdown)));
    Ok(bound)
}

pub async fn spawn_tls(
    context: SyslogContext,
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    shutdown: watch::Receiver<bool>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<SocketAddr, ServerError> {
    let (tcp, bound) = bind_tcp(addr).await?;
    tasks.push(tokio::spawn(run_tcp(context, tcp, Some(tls), shutdown)));
    Ok(bound)
}

async fn run_udp(context: SyslogContext, socket: UdpSocket, mut shutdown: watch::Receiver<bool>) {
    let socket = Arc::new(socket);
    // Appends in flight at once; beyond that, receiving waits (and the kernel buffer fills).
    let in_flight = Arc::new(Semaphore::new(8));
    let mut buffer = vec![0u8; 65536];
    let mut batch: Vec<EventRow> = Vec::new();
    loop {
        let received = if batch.is_empty() {
            tokio::select! {
                r = socket.recv_from(&mut buffer) => Some(r),
                _ = shutdown.changed() => return,
            }
        } else {
            tokio::select! {
                r = socket.recv_from(&mut buffer) => Some(r),
                _ = tokio::time::sleep(QUIET_FLUSH) => None,
                _ = shutdown.changed() => None,
            }
        };
        match received {
            Some(Ok((len, peer))) => {
                garrison_pipeline::telemetry::events_received("syslog_udp", 1);
                if let Some(event) = buffer
                    .get(..len)
                    .and_then(|frame| context.row(frame, Some(peer.ip())))
                {
                    batch.push(event);
                }
                if batch.len() < MAX_BATCH {
                    continue;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "syslog UDP receive failed");
                continue;
            }
            None => {}
        }
        if batch.is_empty() {
            continue;
        }
        let events = std::mem::take(&mut batch);
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let ingestor = context.state.ingestor().clone();
        tokio::spawn(async move {
            if let Err(e) = ingestor.accept(&events, "syslog_udp").await {
                crate::telemetry::syslog_udp_dropped(events.len() as u64);
                tracing::warn!(error = %e, dropped = events.len(), "syslog UDP batch dropped");
            }
            drop(permit);
        });
        if *shutdown.borrow() {
            return;
        }
    }
}

async fn run_tcp(
    context: SyslogContext,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let protocol: &'static str = if acceptor.is_some() {
        "syslog_tls"
    } else {
        "syslog_tcp"
    };
    let gate = context.state.gate().clone();
    loop {
        let crate::listen::Accepted {
            io: stream,
            peer,
            admission,
        } = tokio::select! {
            accepted = crate::listen::accept_tcp(&listener, &gate, false) => accepted,
            _ = shutdown.changed() => return,
        };
        let context = context.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let result = match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            read_connection(&context, tls, peer, protocol, shutdown).await
                        }
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(std::io::Error::other("TLS handshake timed out")),
                    }
                }
                None => read_connection(&context, stream, peer, protocol, shutdown).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "syslog connection ended with an error");
            }
            drop(admission);
        });
    }
}

async fn read_connection<S: AsyncRead + Unpin>(
    context: &SyslogContext,
    mut stream: S,
    peer: SocketAddr,
    protocol: &'static str,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let peer = Some(peer.ip());
    let mut framer = Framer::new(context.state.limits().max_line_bytes);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut batch: Vec<EventRow> = Vec::new();
    let mut failure = None;
    let mut first_frame = true;
    let idle = context.state.listen_limits().idle_timeout;
    loop {
        let read = if batch.is_empty() {
            tokio::select! {
                r = stream.read(&mut buffer) => Some(r),
                _ = shutdown.changed() => return Ok(()),
                _ = tokio::time::sleep(idle) => {
                    tracing::debug!(protocol, "idle syslog connection closed");
                    return Ok(());
                }
            }
        } else {
            tokio::select! {
                r = stream.read(&mut buffer) => Some(r),
                _ = tokio::time::sleep(QUIET_FLUSH) => None,
            }
        };
        // A read error ends the stream like EOF does, but only after what was already received
        // is stored: a peer that vanishes without a clean close must not cost earlier lines.
        let read = match read {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                failure = Some(e);
                Some(0)
            }
            None => None,
        };
        let at_eof = read == Some(0);
        if let Some(n) = read.filter(|n| *n > 0) {
            framer.push(buffer.get(..n).unwrap_or_default());
        }
        while let Some(frame) = framer.next_frame() {
            if std::mem::take(&mut first_frame) && frame.as_deref().is_ok_and(is_http_request_line)
            {
                // An HTTP client on the syslog port: its headers (tokens included) must not
                // become events. Nothing of this connection is stored.
                tracing::warn!(protocol, "an HTTP request reached the syslog listener; connection closed, nothing stored");
                garrison_pipeline::telemetry::events_rejected(protocol, "http", 1);
                return Ok(());
            }
            match frame {
                Ok(frame) => push_frame(context, &frame, peer, protocol, &mut batch),
                Err(e) => {
                    tracing::debug!(error = %e, "syslog frame rejected");
                    garrison_pipeline::telemetry::events_rejected(protocol, "frame", 1);
                }
            }
            if batch.len() >= MAX_BATCH {
                flush(context, &mut batch, protocol).await;
            }
        }
        if at_eof {
            if let Some(tail) = framer.finish() {
                push_frame(context, &tail, peer, protocol, &mut batch);
            }
        }
        // Quiet socket, full batch or end of stream: make what we have durable.
        if read.is_none() || at_eof || batch.len() >= MAX_BATCH {
            flush(context, &mut batch, protocol).await;
        }
        if at_eof {
            return failure.map_or(Ok(()), Err);
        }
    }
}

fn push_frame(
    context: &SyslogContext,
    frame: &[u8],
    peer: Option<IpAddr>,
    protocol: &'static str,
    batch: &mut Vec<EventRow>,
) {
    garrison_pipeline::telemetry::events_received(protocol, 1);
    if let Some(event) = context.row(frame, peer) {
        batch.push(event);
    }
}

/// Appends the batch, waiting (and so not reading the socket) while the service is busy.
async fn flush(context: &SyslogContext, batch: &mut Vec<EventRow>, protocol: &'static str) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(20);
    loop {
        match context
            .state
            .ingestor()
            .accept_or_hold(batch, protocol)
            .await
        {
            Ok(_) => {
                batch.clear();
                return;
            }
            // Saturated, or the disk is full: hold the batch (the sender waits on TCP).
            Err(PipelineError::Busy { .. } | PipelineError::Unavailable { .. }) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                tracing::error!(error = %e, lost = batch.len(), "syslog batch could not be stored");
                garrison_pipeline::telemetry::events_rejected(
                    protocol,
                    "error",
                    batch.len() as u64,
                );
                batch.clear();
                return;
            }
        }
    }
}
