//! Sigma taxonomy names: the field names SigmaHQ rules use for a logsource, given to events
//! whose own names differ (as pySigma processing pipelines map them, here in reverse: the
//! event gains the rule's names instead of the rule being rewritten).
//!
//! Each name is taken from the first candidate the event has: the ECS name of Garrison's
//! normalised view (live detection adds that view's names first), else common vendor names.
//! A name the event already has is never replaced.

use crate::fields::Fields;
use garrison_sigma::LogSource;

/// (Sigma name, candidates in order).
type Table = &'static [(&'static str, &'static [&'static str])];

/// `category: firewall` and network connection logs (SigmaHQ firewall/netflow rules).
const FIREWALL: Table = &[
    ("src_ip", &["source.ip", "srcip", "src"]),
    ("dst_ip", &["destination.ip", "dstip", "dst"]),
    ("src_port", &["source.port", "srcport", "spt", "sport"]),
    ("dst_port", &["destination.port", "dstport", "dpt", "dport"]),
    ("action", &["event.action", "act"]),
    ("protocol", &["network.transport", "proto"]),
];

/// `category: proxy` (W3C extended log names).
const PROXY: Table = &[
    ("c-uri", &["url.original", "url.full", "request"]),
    ("cs-uri", &["url.original", "url.full"]),
    ("c-uri-stem", &["url.path"]),
    ("cs-uri-stem", &["url.path"]),
    ("c-uri-query", &["url.query"]),
    ("c-uri-extension", &["url.extension"]),
    ("cs-host", &["url.domain", "destination.domain"]),
    ("cs-method", &["http.request.method", "requestMethod"]),
    (
        "c-useragent",
        &["user_agent.original", "requestClientApplication"],
    ),
    ("cs-referrer", &["http.request.referrer"]),
    ("sc-status", &["http.response.status_code"]),
    ("cs-bytes", &["http.request.bytes"]),
    ("sc-bytes", &["http.response.bytes"]),
    ("src_ip", &["source.ip"]),
    ("dst_ip", &["destination.ip"]),
];

/// `category: webserver` (W3C / IIS names).
const WEBSERVER: Table = &[
    ("c-ip", &["source.ip"]),
    ("s-ip", &["destination.ip"]),
    ("s-port", &["destination.port"]),
    ("cs-method", &["http.request.method"]),
    ("cs-uri-stem", &["url.path"]),
    ("cs-uri-query", &["url.query"]),
    ("cs-host", &["url.domain"]),
    ("sc-status", &["http.response.status_code"]),
    ("cs-user-agent", &["user_agent.original"]),
    ("cs-referer", &["http.request.referrer"]),
    ("cs-username", &["user.name"]),
];

/// `category: dns`.
const DNS: Table = &[
    ("query", &["dns.question.name", "QueryName"]),
    ("record_type", &["dns.question.type", "qtype_name"]),
    ("answer", &["dns.answers.data", "answers"]),
    ("src_ip", &["source.ip"]),
    ("dst_ip", &["destination.ip"]),
];

/// `product: zeek`: connection ids as Zeek's JSON writes them (`id.orig_h`), from the
/// underscore form some exporters use (`id_orig_h`) or ECS.
const ZEEK: Table = &[
    ("id.orig_h", &["id_orig_h", "source.ip"]),
    ("id.orig_p", &["id_orig_p", "source.port"]),
    ("id.resp_h", &["id_resp_h", "destination.ip"]),
    ("id.resp_p", &["id_resp_p", "destination.port"]),
];

fn tables(stream: &LogSource) -> Vec<Table> {
    let is =
        |v: &Option<String>, want: &str| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(want));
    let mut out = Vec::new();
    if is(&stream.product, "zeek") {
        out.push(ZEEK);
        if is(&stream.service, "dns") {
            out.push(DNS);
        }
    }
    if is(&stream.category, "firewall") || is(&stream.service, "netflow") {
        out.push(FIREWALL);
    }
    if is(&stream.category, "proxy") {
        out.push(PROXY);
    }
    if is(&stream.category, "webserver") {
        out.push(WEBSERVER);
    }
    if is(&stream.category, "dns") {
        out.push(DNS);
    }
    out
}

/// Gives `fields` the Sigma taxonomy names of `stream`'s logsource it lacks (see the module
/// docs). Returns how many names were added.
pub fn add_taxonomy_names(stream: &LogSource, fields: &mut Fields) -> usize {
    let mut added = 0;
    for table in tables(stream) {
        for (name, candidates) in table {
            if fields.contains_key(name) {
                continue;
            }
            let value = candidates
                .iter()
                .find_map(|c| fields.get(c).map(|v| v.to_json()));
            if let Some(value) = value {
                added += usize::from(fields.add_missing(name, &value));
            }
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(product: Option<&str>, category: Option<&str>, service: Option<&str>) -> LogSource {
        LogSource {
            product: product.map(Into::into),
            category: category.map(Into::into),
            service: service.map(Into::into),
            definition: None,
        }
    }

    #[test]
    fn firewall_streams_gain_sigma_names_and_keep_their_own() {
        let mut f = Fields::from_map(
            serde_json::json!({"destination.port": 4444, "source.ip": "10.0.0.1", "src_ip": "own"})
                .as_object()
                .unwrap(),
        );
        assert_eq!(
            add_taxonomy_names(&ls(None, Some("firewall"), None), &mut f),
            1
        );
        assert_eq!(f.get("dst_port").and_then(|v| v.as_u64()), Some(4444));
        assert_eq!(
            f.get("src_ip").and_then(|v| v.to_text()).as_deref(),
            Some("own")
        );
    }

    #[test]
    fn other_streams_gain_nothing() {
        let mut f = Fields::from_map(
            serde_json::json!({"destination.port": 4444})
                .as_object()
                .unwrap(),
        );
        assert_eq!(
            add_taxonomy_names(&ls(Some("windows"), None, None), &mut f),
            0
        );
        assert!(f.get("dst_port").is_none());
    }

    #[test]
    fn zeek_underscore_ids_become_dotted() {
        let mut f = Fields::from_map(
            serde_json::json!({"id_orig_h": "10.0.1.6", "query": "x"})
                .as_object()
                .unwrap(),
        );
        add_taxonomy_names(&ls(Some("zeek"), None, Some("dns")), &mut f);
        assert_eq!(
            f.get("id.orig_h").and_then(|v| v.to_text()).as_deref(),
            Some("10.0.1.6")
        );
    }
}
