//! Limits every listener keeps, so no client (or crowd of clients) can take the service's
//! file descriptors or memory: a maximum of open connections over all listeners and per client
//! address, a deadline for an HTTP request's head (which also closes idle keep-alive
//! connections), a longest pause while a body is read, an idle limit on syslog streams, and
//! an open-file limit raised at start with a reserve kept for the database and the log.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

pub const CONNECTIONS_OPEN: &str = "garrison_connections_open";
pub const CONNECTIONS_REFUSED: &str = "garrison_connections_refused_total";

/// File descriptors kept free for the database, the event log, attachments and `/healthz`
/// when the connection limit is fitted to the open-file limit.
pub const FD_RESERVE: usize = 512;

#[derive(Clone, Copy, Debug)]
pub struct ListenLimits {
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for ListenLimits {
    fn default() -> Self {
        ListenLimits {
            max_connections: 8192,
            max_connections_per_address: 512,
            header_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Raises this process's soft open-file limit to its hard limit and returns the soft limit
/// in force afterwards (`None` if it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let wanted = limit.maximum;
        limit.current = wanted;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The service holds its maximum of connections.
    Full,
    /// This client address holds its maximum.
    PerAddress,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Full => "max_connections",
            Refusal::PerAddress => "max_connections_per_address",
        }
    }
}

/// Counts open connections over every listener, in total and per client address.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

struct GateInner {
    max_total: usize,
    max_per_address: usize,
    total: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees its place.
pub struct Admission {
    gate: Arc<GateInner>,
    ip: IpAddr,
}

impl Gate {
    pub fn new(max_total: usize, max_per_address: usize) -> Gate {
        Gate {
            inner: Arc::new(GateInner {
                max_total: max_total.max(1),
                max_per_address: max_per_address.max(1),
                total: AtomicUsize::new(0),
                per_address: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn max_total(&self) -> usize {
        self.inner.max_total
    }

    pub fn open(&self) -> usize {
        self.inner.total.load(Ordering::Relaxed)
    }

    pub fn admit(&self, ip: IpAddr) -> Result<Admission, Refusal> {
        let inner = &self.inner;
        let mut per_address = inner.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let refusal = if inner.total.load(Ordering::Relaxed) >= inner.max_total {
            Some(Refusal::Full)
        } else if per_address.get(&ip).copied().unwrap_or(0) >= inner.max_per_address {
            Some(Refusal::PerAddress)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            metrics::counter!(CONNECTIONS_REFUSED, "reason" => refusal.label()).increment(1);
            return Err(refusal);
        }
        *per_address.entry(ip).or_insert(0) += 1;
        let open = inner.total.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(CONNECTIONS_OPEN).set(open as f64);
        Ok(Admission {
            gate: self.inner.clone(),
            ip,
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut per_address = self
            .gate
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_address.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&self.ip);
            }
        }
        let open = self.gate.total.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!(CONNECTIONS_OPEN).set(open as f64);
    }
}

/// The connection limit in force: the configured one, lowered to fit the open-file limit
/// less [`FD_RESERVE`].
pub fn fitted_max_connections(configured: usize, open_file_limit: Option<u64>) -> usize {
    match open_file_limit {
        Some(limit) => {
            let room = (limit as usize).saturating_sub(FD_RESERVE).max(16);
            configured.min(room)
        }
        None => configured,
    }
}

/// What a refused HTTP connection is told before it is closed.
static REFUSED_ANSWER: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let body = r#"{"type":"urn:garrison:error:busy","title":"Service Unavailable","status":503,"code":"busy","detail":"too many open connections; retry after the Retry-After seconds"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// A connection accepted by a listener, with its place in the gate.
pub struct Accepted<IO> {
    pub io: IO,
    pub peer: SocketAddr,
    pub admission: Admission,
}

/// Accepts TCP connections through the gate. A refused HTTP connection gets a 503 written
/// without waiting (when the socket takes it) and is closed.
pub async fn accept_tcp(
    listener: &TcpListener,
    gate: &Gate,
    answer_refusals: bool,
) -> Accepted<tokio::net::TcpStream> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors or another transient failure: back off instead of
                // spinning on the error.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match gate.admit(peer.ip()) {
            Ok(admission) => {
                let _ = stream.set_nodelay(true);
                return Accepted {
                    io: stream,
                    peer,
                    admission,
                };
            }
            Err(refusal) => {
                tracing::debug!(%peer, ?refusal, "connection refused");
                if answer_refusals {
                    let _ = stream.try_write(&REFUSED_ANSWER);
                }
            }
        }
    }
}

/// Serves HTTP/1.1 on connections from `next` until `shutdown`, each under the limits: a
/// request head within `header_timeout`, no body pause longer than `body_timeout`. In-flight
/// requests finish after `shutdown`; the caller bounds how long it waits.
pub async fn serve_http<IO, F, Fut>(
    router: axum::Router,
    limits: ListenLimits,
    mut next: F,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Accepted<IO>>>,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = next() => match accepted {
                Some(accepted) => accepted,
                None => break,
            },
            _ = shutdown.changed() => break,
        };
        let Accepted {
            io,
            peer,
            admission,
        } = accepted;
        let router = router.clone();
        let body_timeout = limits.body_timeout;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let request = request.map(|body: hyper::body::Incoming| {
                axum::body::Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, body))
            });
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await;
                Ok::<_, Infallible>(match response {
                    Ok(response) => response,
                    Err(never) => match never {},
                })
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(admission);
        });
    }
    graceful.shutdown().await;
}

/// [`serve_http`] on plain TCP connections accepted from `listener` through `gate`.
pub async fn serve_plain_http(
    router: axum::Router,
    limits: ListenLimits,
    listener: TcpListener,
    gate: Gate,
    shutdown: watch::Receiver<bool>,
) {
    let listener = std::sync::Arc::new(listener);
    serve_http(
        router,
        limits,
        move || {
            let (listener, gate) = (listener.clone(), gate.clone());
            async move { Some(accept_tcp(&listener, &gate, true).await) }
        },
        shutdown,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_counts_per_address_and_in_total_and_frees_on_drop() {
        let gate = Gate::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = gate.admit(a).expect("first");
        let _second = gate.admit(a).expect("second");
        assert_eq!(gate.admit(a).err(), Some(Refusal::PerAddress));
        let _third = gate.admit(b).expect("other address");
        assert_eq!(gate.admit(b).err(), Some(Refusal::Full));
        drop(first);
        assert_eq!(gate.open(), 2);
        assert!(gate.admit(a).is_ok());
    }

    #[test]
    fn the_connection_limit_leaves_a_reserve_of_file_descriptors() {
        assert_eq!(fitted_max_connections(8192, Some(1024)), 1024 - FD_RESERVE);
        assert_eq!(fitted_max_connections(100, Some(100_000)), 100);
        assert_eq!(fitted_max_connections(100, None), 100);
    }

    #[test]
    fn the_refusal_answer_is_a_whole_http_response() {
        let text = std::str::from_utf8(&REFUSED_ANSWER).expect("utf8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.parse().ok())
            .expect("length");
        assert_eq!(body.len(), length);
        serde_json::from_str::<serde_json::Value>(body).expect("json body");
    }
}
