//! Syslog routing: which source a syslog message belongs to, by its sender and its content.
//!
//! A syslog listener is one socket for many senders (firewalls, Linux hosts, appliances). Each
//! source may claim messages with a [`SyslogMatch`]; [`SyslogRouter::route`] gives a message
//! to the most specific source whose conditions all hold, else to the listener's default
//! source, so a FortiGate's CEF and a host's sshd lines get their own logsource and mapping.

use std::net::IpAddr;
use std::sync::Arc;

use garrison_ingest::normalize::resolve;
use garrison_store::SyslogMatch;
use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::SourceContext;

/// A [`SyslogMatch`], checked and ready to test messages.
#[derive(Clone, Debug)]
pub struct SyslogRule {
    from: Vec<IpNet>,
    hostname: Vec<Vec<u8>>,
    app: Vec<String>,
    vendor: Vec<String>,
    product: Vec<String>,
    conditions: usize,
}

fn lowered(values: &[String], what: &str) -> Result<Vec<String>, String> {
    values
        .iter()
        .map(|v| {
            let v = v.trim();
            if v.is_empty() {
                Err(format!("syslog {what}: an entry is empty"))
            } else {
                Ok(v.to_lowercase())
            }
        })
        .collect()
}

impl SyslogRule {
    /// Checks a match: addresses and networks must parse, no entry may be empty, and at
    /// least one condition must be set. The error says which entry is wrong.
    pub fn compile(m: &SyslogMatch) -> Result<SyslogRule, String> {
        if m.is_empty() {
            return Err("syslog: give at least one of from, hostname, app, vendor, product".into());
        }
        let from = m
            .from
            .iter()
            .map(|f| {
                let f = f.trim();
                f.parse::<IpNet>()
                    .or_else(|_| f.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("syslog from {f:?}: not an address or network like 10.0.0.0/24")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SyslogRule {
            from,
            hostname: lowered(&m.hostname, "hostname")?
                .into_iter()
                .map(String::into_bytes)
                .collect(),
            app: lowered(&m.app, "app")?,
            vendor: lowered(&m.vendor, "vendor")?,
            product: lowered(&m.product, "product")?,
            conditions: m.conditions(),
        })
    }

    /// Whether a message from `peer` with these parsed fields satisfies every condition.
    pub fn matches(&self, peer: Option<IpAddr>, fields: &Map<String, Value>) -> bool {
        let text = |paths: &[&str]| {
            paths
                .iter()
                .find_map(|p| resolve(fields, p).and_then(Value::as_str))
                .map(str::to_lowercase)
        };
        let any = |list: &[String], value: Option<String>| {
            list.is_empty() || value.is_some_and(|v| list.contains(&v))
        };
        let peer = peer.map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        });
        (self.from.is_empty() || peer.is_some_and(|ip| self.from.iter().any(|n| n.contains(&ip))))
            && (self.hostname.is_empty()
                || text(&["host.hostname"])
                    .is_some_and(|h| self.hostname.iter().any(|g| glob(g, h.as_bytes()))))
            && any(&self.app, text(&["log.syslog.appname"]))
            && any(
                &self.vendor,
                text(&["cef.device_vendor", "leef.device_vendor"]),
            )
            && any(
                &self.product,
                text(&["cef.device_product", "leef.device_product"]),
            )
    }
}

/// `*` (any run) and `?` (one byte) wildcard match, iterative (no recursion blow-up).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == b'?' || *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// The sources of one syslog listener: routed ones, most specific first, and the default.
#[derive(Clone)]
pub struct SyslogRouter {
    default: SourceContext,
    routes: Arc<Vec<(SyslogRule, SourceContext)>>,
}

impl SyslogRouter {
    /// A router over `routes` (rule, source); ties in specificity go by source name.
    pub fn new(default: SourceContext, mut routes: Vec<(SyslogRule, SourceContext)>) -> Self {
        routes.sort_by(|a, b| {
            b.0.conditions
                .cmp(&a.0.conditions)
                .then_with(|| a.1.source.cmp(&b.1.source))
        });
        SyslogRouter {
            default,
            routes: Arc::new(routes),
        }
    }

    /// The source a message from `peer` with these parsed fields belongs to.
    pub fn route(&self, peer: Option<IpAddr>, fields: &Map<String, Value>) -> &SourceContext {
        self.routes
            .iter()
            .find(|(rule, _)| rule.matches(peer, fields))
            .map_or(&self.default, |(_, source)| source)
    }

    /// The default source (messages no route claims).
    pub fn default_source(&self) -> &SourceContext {
        &self.default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(m: SyslogMatch) -> SyslogRule {
        SyslogRule::compile(&m).expect("valid")
    }

    #[test]
    fn globs() {
        assert!(glob(b"fw-*", b"fw-paris-1"));
        assert!(glob(b"*", b""));
        assert!(glob(b"w?b*1", b"web-01"));
        assert!(!glob(b"fw-*", b"web1"));
        assert!(!glob(b"a*b", b"a-b-c"));
    }

    #[test]
    fn every_condition_must_hold() {
        let fields: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "host": {"hostname": "FW-Paris"},
            "log": {"syslog": {"appname": "sshd"}},
            "cef": {"device_vendor": "Fortinet", "device_product": "FortiGate"}
        }))
        .expect("map");
        let peer = Some("10.0.0.7".parse().expect("ip"));
        let fortinet = rule(SyslogMatch {
            from: vec!["10.0.0.0/24".into()],
            vendor: vec!["fortinet".into()],
            ..SyslogMatch::default()
        });
        assert!(fortinet.matches(peer, &fields));
        assert!(!fortinet.matches(Some("10.0.1.7".parse().expect("ip")), &fields));
        assert!(!fortinet.matches(None, &fields));
        let host = rule(SyslogMatch {
            hostname: vec!["fw-*".into()],
            app: vec!["SSHD".into()],
            ..SyslogMatch::default()
        });
        assert!(host.matches(None, &fields));
        // An IPv4 sender seen on a dual-stack socket.
        assert!(fortinet.matches(Some("::ffff:10.0.0.7".parse().expect("ip")), &fields));
    }

    #[test]
    fn bad_matches_say_what_is_wrong() {
        let err = SyslogRule::compile(&SyslogMatch {
            from: vec!["10.0.0.0/33".into()],
            ..SyslogMatch::default()
        })
        .expect_err("bad network");
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(SyslogRule::compile(&SyslogMatch::default()).is_err());
        assert!(SyslogRule::compile(&SyslogMatch {
            app: vec![" ".into()],
            ..SyslogMatch::default()
        })
        .is_err());
    }
}
