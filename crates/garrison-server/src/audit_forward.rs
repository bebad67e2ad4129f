//! The audit task: signs every tenant's chain head into the checkpoint file every
//! `audit_checkpoint_interval`, and, with `audit_forward` set, sends each new audit entry and
//! each checkpoint as CEF over syslog (RFC 5424; octet-counted on TCP) to a collector outside
//! Garrison. What was sent is remembered per tenant (`audit.forward.<tenant>` cursors), so a
//! restart resends nothing already sent and skips nothing (at least once across a crash).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use garrison_app::audit_export::{cef_checkpoint, cef_entry};
use garrison_store::{AuditQuery, AuditRepo, SqlStore, TenantRepo};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

/// Where forwarded audit lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardTarget {
    Udp(SocketAddr),
    Tcp(SocketAddr),
}

impl std::str::FromStr for ForwardTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?}: expected udp://HOST:PORT or tcp://HOST:PORT"))?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(rest)
            .map_err(|e| format!("{text:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("{text:?}: the host has no address"))?;
        match scheme {
            "udp" => Ok(ForwardTarget::Udp(addr)),
            "tcp" => Ok(ForwardTarget::Tcp(addr)),
            other => Err(format!("{text:?}: unknown scheme {other:?} (udp or tcp)")),
        }
    }
}

/// Most entries read and sent per tenant and pass.
const BATCH: usize = 1000;
/// How often new entries are looked for when forwarding.
const FORWARD_EVERY: Duration = Duration::from_secs(2);

fn cursor_name(tenant: garrison_model::TenantId) -> String {
    format!("audit.forward.{}", tenant.0)
}

/// One RFC 5424 line: facility security/authorization (10), severity notice (5).
fn syslog_line(host: &str, message: &str) -> String {
    format!(
        "<85>1 {} {host} garrison - audit - {message}",
        jiff::Timestamp::now()
    )
}

struct Sender {
    target: ForwardTarget,
    tcp: Option<tokio::net::TcpStream>,
    udp: Option<tokio::net::UdpSocket>,
    host: String,
}

impl Sender {
    async fn send(&mut self, messages: &[String]) -> std::io::Result<()> {
        match self.target {
            ForwardTarget::Udp(addr) => {
                if self.udp.is_none() {
                    let bind = if addr.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    self.udp = Some(tokio::net::UdpSocket::bind(bind).await?);
                }
                let socket = self.udp.as_ref().ok_or(std::io::ErrorKind::NotConnected)?;
                for message in messages {
                    socket
                        .send_to(syslog_line(&self.host, message).as_bytes(), addr)
                        .await?;
                }
            }
            ForwardTarget::Tcp(addr) => {
                if self.tcp.is_none() {
                    let stream = tokio::time::timeout(
                        Duration::from_secs(10),
                        tokio::net::TcpStream::connect(addr),
                    )
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                    self.tcp = Some(stream);
                }
                let mut framed = String::new();
                for message in messages {
                    let line = syslog_line(&self.host, message);
                    framed.push_str(&format!("{} {line}", line.len()));
                }
                let stream = self.tcp.as_mut().ok_or(std::io::ErrorKind::NotConnected)?;
                if let Err(e) = stream.write_all(framed.as_bytes()).await {
                    // Reconnect next time; the cursor did not move, so nothing is lost.
                    self.tcp = None;
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

pub async fn run(
    app: garrison_app::App,
    store: Arc<SqlStore>,
    checkpoint_every: Duration,
    target: Option<ForwardTarget>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sender = target.map(|target| Sender {
        target,
        tcp: None,
        udp: None,
        host: hostname(),
    });
    let mut last_checkpoint: Option<Instant> = None;
    let tick = match target {
        Some(_) => FORWARD_EVERY.min(checkpoint_every),
        None => checkpoint_every,
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => return,
        }
        if let Some(sender) = sender.as_mut() {
            if let Err(e) = forward_entries(&store, sender).await {
                tracing::warn!(error = %e, "audit forwarding failed; retrying");
            }
        }
        if last_checkpoint.is_none_or(|at| at.elapsed() >= checkpoint_every) {
            last_checkpoint = Some(Instant::now());
            match app.checkpoint_audit().await {
                Ok(checkpoints) if !checkpoints.is_empty() => {
                    tracing::debug!(tenants = checkpoints.len(), "audit checkpoints written");
                    if let Some(sender) = sender.as_mut() {
                        let mut lines = Vec::new();
                        for checkpoint in &checkpoints {
                            let tenant = garrison_model::TenantId(checkpoint.tenant);
                            let name = tenant_name(&store, tenant).await;
                            lines.push(cef_checkpoint(&name, checkpoint));
                        }
                        if let Err(e) = sender.send(&lines).await {
                            tracing::warn!(error = %e, "audit checkpoints not forwarded");
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "audit checkpoint failed; retrying"),
            }
        }
    }
}

async fn tenant_name(store: &SqlStore, tenant: garrison_model::TenantId) -> String {
    match store.tenant(tenant).await {
        Ok(t) => t.name,
        Err(_) => tenant.0.to_string(),
    }
}

async fn forward_entries(store: &SqlStore, sender: &mut Sender) -> Result<(), String> {
    for tenant in store.list_tenants().await.map_err(|e| e.to_string())? {
        let cursor = cursor_name(tenant.id);
        loop {
            let after = store
                .consumer_cursor(&cursor)
                .await
                .map_err(|e| e.to_string())?;
            let page = store
                .list_audit(
                    tenant.id,
                    &AuditQuery {
                        after,
                        action: None,
                        limit: BATCH,
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = page.entries.last().map(|e| e.seq) else {
                break;
            };
            let lines: Vec<String> = page
                .entries
                .iter()
                .map(|entry| cef_entry(&tenant.name, entry))
                .collect();
            sender.send(&lines).await.map_err(|e| e.to_string())?;
            store
                .set_consumer_cursor(&cursor, last)
                .await
                .map_err(|e| e.to_string())?;
            if page.next_after.is_none() {
                break;
            }
        }
    }
    Ok(())
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_their_scheme_and_refuse_others() {
        assert_eq!(
            "udp://127.0.0.1:514".parse::<ForwardTarget>(),
            Ok(ForwardTarget::Udp(SocketAddr::from(([127, 0, 0, 1], 514))))
        );
        assert!(matches!(
            "tcp://127.0.0.1:6514".parse::<ForwardTarget>(),
            Ok(ForwardTarget::Tcp(_))
        ));
        assert!("http://127.0.0.1:1".parse::<ForwardTarget>().is_err());
        assert!("127.0.0.1:514".parse::<ForwardTarget>().is_err());
    }
}
