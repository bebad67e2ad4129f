//! [`IndicatorSet`]: indicators indexed for matching normalised event fields.
//!
//! Exact values (IPs, domains, URLs, hashes, emails) sit in hash maps; a domain is also looked
//! up by each of its parent domains (`evil.com` matches `a.b.evil.com`). CIDRs, which always
//! nest or are disjoint, are cut into sorted, non-overlapping ranges, each pointing at the
//! innermost network covering it, with a parent link to the next one out: a lookup is a binary
//! search plus a walk outwards. URLs are matched exactly after canonicalisation, behind a
//! cheap prefilter on the host.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use foldhash::fast::RandomState;
use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::canonical;
use crate::{Indicator, IndicatorValue};

/// How a field's value is read and which indicators it is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// An IP address (or `address:port`): IP and CIDR indicators.
    Ip,
    /// A host or domain name: domain indicators, on the name and every parent domain.
    Domain,
    /// A URL: URL indicators exactly; its host as for [`FieldType::Domain`] or [`FieldType::Ip`].
    Url,
    /// A hex digest: hash indicators of that length.
    Hash,
    /// An email address: email indicators; its domain is not checked.
    Email,
}

/// The default table: which ECS fields are checked, as what.
///
/// | type   | fields |
/// |--------|--------|
/// | Ip     | `source.ip`, `destination.ip`, `client.ip`, `server.ip`, `host.ip`, `related.ip`, `dns.resolved_ip`, `source.nat.ip`, `destination.nat.ip`, `network.forwarded_ip` |
/// | Domain | `dns.question.name`, `url.domain`, `source.domain`, `destination.domain`, `client.domain`, `server.domain`, `related.hosts`, `tls.client.server_name` |
/// | Url    | `url.full`, `url.original`, `http.request.referrer` |
/// | Hash   | `file.hash.{md5,sha1,sha256,sha512}`, `process.hash.*`, `process.parent.hash.*`, `dll.hash.*`, `related.hash` |
/// | Email  | `user.email`, `source.user.email`, `destination.user.email`, `email.from.address`, `email.to.address`, `email.cc.address`, `email.bcc.address`, `email.sender.address`, `email.reply_to.address` |
pub const ECS_FIELDS: &[(&str, FieldType)] = &[
    ("source.ip", FieldType::Ip),
    ("destination.ip", FieldType::Ip),
    ("client.ip", FieldType::Ip),
    ("server.ip", FieldType::Ip),
    ("host.ip", FieldType::Ip),
    ("related.ip", FieldType::Ip),
    ("dns.resolved_ip", FieldType::Ip),
    ("source.nat.ip", FieldType::Ip),
    ("destination.nat.ip", FieldType::Ip),
    ("network.forwarded_ip", FieldType::Ip),
    ("dns.question.name", FieldType::Domain),
    ("url.domain", FieldType::Domain),
    ("source.domain", FieldType::Domain),
    ("destination.domain", FieldType::Domain),
    ("client.domain", FieldType::Domain),
    ("server.domain", FieldType::Domain),
    ("related.hosts", FieldType::Domain),
    ("tls.client.server_name", FieldType::Domain),
    ("url.full", FieldType::Url),
    ("url.original", FieldType::Url),
    ("http.request.referrer", FieldType::Url),
    ("file.hash.md5", FieldType::Hash),
    ("file.hash.sha1", FieldType::Hash),
    ("file.hash.sha256", FieldType::Hash),
    ("file.hash.sha512", FieldType::Hash),
    ("process.hash.md5", FieldType::Hash),
    ("process.hash.sha1", FieldType::Hash),
    ("process.hash.sha256", FieldType::Hash),
    ("process.hash.sha512", FieldType::Hash),
    ("process.parent.hash.md5", FieldType::Hash),
    ("process.parent.hash.sha1", FieldType::Hash),
    ("process.parent.hash.sha256", FieldType::Hash),
    ("process.parent.hash.sha512", FieldType::Hash),
    ("dll.hash.md5", FieldType::Hash),
    ("dll.hash.sha1", FieldType::Hash),
    ("dll.hash.sha256", FieldType::Hash),
    ("dll.hash.sha512", FieldType::Hash),
    ("related.hash", FieldType::Hash),
    ("user.email", FieldType::Email),
    ("source.user.email", FieldType::Email),
    ("destination.user.email", FieldType::Email),
    ("email.from.address", FieldType::Email),
    ("email.to.address", FieldType::Email),
    ("email.cc.address", FieldType::Email),
    ("email.bcc.address", FieldType::Email),
    ("email.sender.address", FieldType::Email),
    ("email.reply_to.address", FieldType::Email),
];

/// Which event fields are checked, as what. Start from [`FieldTable::ecs`] (the
/// [`ECS_FIELDS`] table) and [`FieldTable::set`] / [`FieldTable::remove`] to override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTable {
    fields: HashMap<Box<str>, FieldType, RandomState>,
}

impl Default for FieldTable {
    fn default() -> Self {
        FieldTable::ecs()
    }
}

impl FieldTable {
    pub fn ecs() -> FieldTable {
        let mut table = FieldTable::empty();
        for (field, ty) in ECS_FIELDS {
            table.set(*field, *ty);
        }
        table
    }

    pub fn empty() -> FieldTable {
        FieldTable {
            fields: HashMap::with_hasher(RandomState::default()),
        }
    }

    pub fn set(&mut self, field: impl Into<String>, ty: FieldType) -> &mut Self {
        self.fields.insert(field.into().into_boxed_str(), ty);
        self
    }

    pub fn remove(&mut self, field: &str) -> &mut Self {
        self.fields.remove(field);
        self
    }

    pub fn get(&self, field: &str) -> Option<FieldType> {
        self.fields.get(field).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, FieldType)> {
        self.fields.iter().map(|(k, v)| (&**k, *v))
    }
}

/// An indicator that matched a field of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match<'s, 'e> {
    pub indicator: &'s Indicator,
    /// Position of the indicator in [`IndicatorSet::indicators`].
    pub index: usize,
    /// The event field, as named in the event (nested objects joined with dots).
    pub field: Cow<'e, str>,
    /// The field's value as the event carries it.
    pub value: &'e str,
}

/// A run of indicator indexes in `IndicatorSet::ids`.
#[derive(Clone, Copy, Debug)]
struct Group {
    start: usize,
    len: usize,
}

type Map32<K> = HashMap<K, Group, RandomState>;

/// Indicators indexed for matching; see the module docs. Build once, share across threads.
pub struct IndicatorSet {
    indicators: Vec<Indicator>,
    ids: Vec<usize>,
    ips: Map32<IpAddr>,
    v4: CidrTable<u32>,
    v6: CidrTable<u128>,
    domains: Map32<Box<str>>,
    urls: Map32<Box<str>>,
    /// Hosts of the URL indicators (as the URL parser writes them): most URLs in events are
    /// turned away here without being parsed.
    url_hosts: HashSet<Box<str>, RandomState>,
    hashes: Map32<Box<str>>,
    emails: Map32<Box<str>>,
    fields: FieldTable,
}

impl fmt::Debug for IndicatorSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndicatorSet")
            .field("indicators", &self.indicators.len())
            .field("ips", &self.ips.len())
            .field("v4_networks", &self.v4.nodes.len())
            .field("v6_networks", &self.v6.nodes.len())
            .field("domains", &self.domains.len())
            .field("urls", &self.urls.len())
            .field("hashes", &self.hashes.len())
            .field("emails", &self.emails.len())
            .finish()
    }
}

/// Groups `(key, index)` pairs into a map of runs over one shared `ids` vector.
fn group<K: std::hash::Hash + Eq>(pairs: Vec<(K, usize)>, ids: &mut Vec<usize>) -> Map32<K> {
    let mut lists: HashMap<K, Vec<usize>, RandomState> =
        HashMap::with_capacity_and_hasher(pairs.len(), RandomState::default());
    for (key, index) in pairs {
        lists.entry(key).or_default().push(index);
    }
    let mut map = HashMap::with_capacity_and_hasher(lists.len(), RandomState::default());
    for (key, list) in lists {
        let start = ids.len();
        ids.extend_from_slice(&list);
        map.insert(
            key,
            Group {
                start,
                len: list.len(),
            },
        );
    }
    map
}

impl IndicatorSet {
    /// Indexes `indicators` with the default [`FieldTable`]. Expired indicators are indexed
    /// too: filter with [`Indicator::is_active`] first, or score hits with
    /// [`crate::decayed_score`] (0 once expired).
    pub fn build(indicators: Vec<Indicator>) -> IndicatorSet {
        IndicatorSet::build_with(indicators, FieldTable::ecs())
    }

    /// [`IndicatorSet::build`] with another field table.
    pub fn build_with(indicators: Vec<Indicator>, fields: FieldTable) -> IndicatorSet {
        let mut ips = Vec::new();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut domains = Vec::new();
        let mut urls = Vec::new();
        let mut url_hosts = HashSet::with_hasher(RandomState::default());
        let mut hashes = Vec::new();
        let mut emails = Vec::new();
        for (i, indicator) in indicators.iter().enumerate() {
            match &indicator.value {
                IndicatorValue::Ip(ip) => ips.push((*ip, i)),
                IndicatorValue::Cidr(IpNet::V4(net)) => {
                    v4.push((u32::from(net.network()), u32::from(net.broadcast()), i))
                }
                IndicatorValue::Cidr(IpNet::V6(net)) => {
                    v6.push((u128::from(net.network()), u128::from(net.broadcast()), i))
                }
                IndicatorValue::Domain(d) => domains.push((d.clone().into_boxed_str(), i)),
                IndicatorValue::Url(u) => {
                    if let Some(host) =
                        canonical::url(u).and_then(|u| u.host_str().map(str::to_string))
                    {
                        url_hosts.insert(host.to_ascii_lowercase().into_boxed_str());
                    }
                    urls.push((u.clone().into_boxed_str(), i))
                }
                IndicatorValue::Hash(_, h) => hashes.push((h.clone().into_boxed_str(), i)),
                IndicatorValue::Email(e) => emails.push((e.clone().into_boxed_str(), i)),
            }
        }
        let mut ids = Vec::with_capacity(indicators.len());
        IndicatorSet {
            ips: group(ips, &mut ids),
            v4: CidrTable::build(v4, &mut ids),
            v6: CidrTable::build(v6, &mut ids),
            domains: group(domains, &mut ids),
            urls: group(urls, &mut ids),
            url_hosts,
            hashes: group(hashes, &mut ids),
            emails: group(emails, &mut ids),
            fields,
            ids,
            indicators,
        }
    }

    pub fn indicators(&self) -> &[Indicator] {
        &self.indicators
    }

    pub fn len(&self) -> usize {
        self.indicators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indicators.is_empty()
    }

    pub fn field_table(&self) -> &FieldTable {
        &self.fields
    }

    fn emit(&self, group: Group, f: &mut impl FnMut(usize)) {
        if let Some(ids) = self.ids.get(group.start..group.start + group.len) {
            ids.iter().for_each(|&i| f(i));
        }
    }

    fn lookup_ip(&self, ip: IpAddr, f: &mut impl FnMut(usize)) {
        if let Some(g) = self.ips.get(&ip) {
            self.emit(*g, f);
        }
        match ip {
            IpAddr::V4(v4) => self.v4.lookup(u32::from(v4), |g| self.emit(g, f)),
            IpAddr::V6(v6) => self.v6.lookup(u128::from(v6), |g| self.emit(g, f)),
        }
    }

    fn lookup_domain(&self, d: &str, f: &mut impl FnMut(usize)) {
        if self.domains.is_empty() {
            return;
        }
        let mut rest = d;
        loop {
            if let Some(g) = self.domains.get(rest) {
                self.emit(*g, f);
            }
            match rest.find('.') {
                // Domain indicators have two labels or more: a single label cannot match.
                Some(i) if rest[i + 1..].contains('.') => rest = &rest[i + 1..],
                _ => break,
            }
        }
    }

    /// Calls `f` with the index of every indicator that `value`, read as `ty`, matches.
    pub fn lookup(&self, ty: FieldType, value: &str, mut f: impl FnMut(usize)) {
        let f = &mut f;
        match ty {
            FieldType::Ip => {
                if let Some(ip) = canonical::event_ip(value) {
                    self.lookup_ip(ip, f);
                }
            }
            FieldType::Domain => {
                if let Some(d) = canonical::domain(value) {
                    if let Some(ip) = canonical::ip(&d) {
                        self.lookup_ip(ip, f);
                    } else {
                        self.lookup_domain(&d, f);
                    }
                }
            }
            FieldType::Url => self.lookup_url(value, f),
            FieldType::Hash => {
                if self.hashes.is_empty() {
                    return;
                }
                if let Some((_, h)) = canonical::hash(value) {
                    if let Some(g) = self.hashes.get(&*h) {
                        self.emit(*g, f);
                    }
                }
            }
            FieldType::Email => {
                if self.emails.is_empty() {
                    return;
                }
                if let Some(e) = canonical::email(value) {
                    if let Some(g) = self.emails.get(&*e) {
                        self.emit(*g, f);
                    }
                }
            }
        }
    }

    fn lookup_url(&self, value: &str, f: &mut impl FnMut(usize)) {
        if !self.urls.is_empty() {
            let candidate = match canonical::fast_url_host(value) {
                canonical::FastHost::Host(h) => {
                    if h.bytes().any(|b| b.is_ascii_uppercase()) {
                        self.url_hosts.contains(h.to_ascii_lowercase().as_str())
                    } else {
                        self.url_hosts.contains(h)
                    }
                }
                canonical::FastHost::None => false,
                canonical::FastHost::Complex => true,
            };
            if candidate {
                if let Some(u) = canonical::url(value) {
                    if let Some(g) = self.urls.get(u.as_str()) {
                        self.emit(*g, f);
                    }
                }
            }
        }
        let no_hosts = self.domains.is_empty()
            && self.ips.is_empty()
            && self.v4.nodes.is_empty()
            && self.v6.nodes.is_empty();
        if no_hosts {
            return;
        }
        if let Some(host) = canonical::url_host(value) {
            match canonical::ip(&host) {
                Some(ip) => self.lookup_ip(ip, f),
                None => self.lookup_domain(&host, f),
            }
        }
    }

    /// Matches one field by name (ignored when the [`FieldTable`] does not list it).
    pub fn match_field<'s, 'e>(
        &'s self,
        field: impl Into<Cow<'e, str>>,
        value: &'e str,
        out: &mut Vec<Match<'s, 'e>>,
    ) {
        let field = field.into();
        let Some(ty) = self.fields.get(&field) else {
            return;
        };
        self.lookup(ty, value, |index| {
            out.push(Match {
                indicator: &self.indicators[index],
                index,
                field: field.clone(),
                value,
            })
        });
    }

    /// Matches `(field name, value)` pairs, e.g. an event's normalised fields.
    pub fn match_fields<'s, 'e>(
        &'s self,
        fields: impl IntoIterator<Item = (&'e str, &'e str)>,
        out: &mut Vec<Match<'s, 'e>>,
    ) {
        for (field, value) in fields {
            self.match_field(field, value, out);
        }
    }

    /// Matches a JSON object of fields: flat dotted keys (`"source.ip"`, as normalised events
    /// have them), nested objects (`{"source": {"ip": ..}}`) or both; arrays of strings are
    /// matched element by element. Non-string leaves are skipped.
    pub fn match_json<'s, 'e>(
        &'s self,
        object: &'e Map<String, Value>,
        out: &mut Vec<Match<'s, 'e>>,
    ) {
        let mut path = String::new();
        self.walk(object, &mut path, 0, out);
    }

    fn walk<'s, 'e>(
        &'s self,
        object: &'e Map<String, Value>,
        path: &mut String,
        depth: usize,
        out: &mut Vec<Match<'s, 'e>>,
    ) {
        if depth > 16 {
            return;
        }
        for (key, value) in object {
            let name: Cow<'e, str> = if path.is_empty() {
                Cow::Borrowed(key.as_str())
            } else {
                Cow::Owned(format!("{path}.{key}"))
            };
            match value {
                Value::String(s) => self.match_field(name, s, out),
                Value::Array(items) => {
                    if self.fields.get(&name).is_some() {
                        for item in items {
                            if let Value::String(s) = item {
                                self.match_field(name.clone(), s, out);
                            }
                        }
                    }
                }
                Value::Object(inner) => {
                    let saved = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    self.walk(inner, path, depth + 1, out);
                    path.truncate(saved);
                }
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
    }
}

const NONE: usize = usize::MAX;

/// Address types for [`CidrTable`].
trait Key: Copy + Ord {
    /// `self + 1`, or `None` at the top of the address space.
    fn succ(self) -> Option<Self>;
}

impl Key for u32 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Key for u128 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
}

struct CidrNode {
    parent: usize,
    group: Group,
}

/// Networks (which nest or are disjoint) as sorted elementary ranges: `starts[i]..starts[i+1]`
/// is covered innermost by `innermost[i]` (or nothing), whose `parent` chain lists the rest.
struct CidrTable<K> {
    starts: Vec<K>,
    innermost: Vec<usize>,
    nodes: Vec<CidrNode>,
}

impl<K: Key> CidrTable<K> {
    fn build(mut entries: Vec<(K, K, usize)>, ids: &mut Vec<usize>) -> CidrTable<K> {
        // Outer networks first among those starting together.
        entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        let mut nodes: Vec<CidrNode> = Vec::new();
        let mut bounds: Vec<(K, K)> = Vec::new();
        let mut starts: Vec<K> = Vec::new();
        let mut innermost: Vec<usize> = Vec::new();
        let push_segment = |starts: &mut Vec<K>, innermost: &mut Vec<usize>, at: K, node: usize| {
            if starts.last() == Some(&at) {
                if let Some(last) = innermost.last_mut() {
                    *last = node;
                }
            } else {
                starts.push(at);
                innermost.push(node);
            }
        };
        let mut stack: Vec<usize> = Vec::new();
        let mut i = 0;
        while i < entries.len() {
            let (start, end, _) = entries[i];
            let first = ids.len();
            while i < entries.len() && entries[i].0 == start && entries[i].1 == end {
                ids.push(entries[i].2);
                i += 1;
            }
            // Close every network that ends before this one starts.
            while let Some(&top) = stack.last() {
                let (_, top_end) = bounds[top];
                if top_end >= start {
                    break;
                }
                stack.pop();
                if let Some(after) = top_end.succ() {
                    let outer = stack.last().copied().unwrap_or(NONE);
                    push_segment(&mut starts, &mut innermost, after, outer);
                }
            }
            let parent = stack.last().copied().unwrap_or(NONE);
            let node = nodes.len();
            nodes.push(CidrNode {
                parent,
                group: Group {
                    start: first,
                    len: ids.len() - first,
                },
            });
            bounds.push((start, end));
            push_segment(&mut starts, &mut innermost, start, node);
            stack.push(node);
        }
        while let Some(top) = stack.pop() {
            let (_, top_end) = bounds[top];
            if let Some(after) = top_end.succ() {
                let outer = stack.last().copied().unwrap_or(NONE);
                push_segment(&mut starts, &mut innermost, after, outer);
            }
        }
        CidrTable {
            starts,
            innermost,
            nodes,
        }
    }

    fn lookup(&self, key: K, mut f: impl FnMut(Group)) {
        let i = self.starts.partition_point(|s| *s <= key);
        if i == 0 {
            return;
        }
        let mut node = self.innermost.get(i - 1).copied().unwrap_or(NONE);
        while let Some(n) = self.nodes.get(node) {
            f(n.group);
            node = n.parent;
        }
    }
}
