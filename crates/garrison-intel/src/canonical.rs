//! Canonical forms. The same functions canonicalise indicators (strictly, with validation) and
//! event values (leniently, without allocating in the common case), so both meet in one form.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;

/// Undoes the usual defanging: `hxxp(s)://`, `[.]`, `(.)`, `{.}`, `[dot]`, `[@]`, `[at]`, `[:]`.
/// Only the text before any path is touched, so a canonical URL never changes again.
pub(crate) fn refang(text: &str) -> Cow<'_, str> {
    let trimmed = text.trim();
    let lower_start: String = trimmed
        .chars()
        .take(6)
        .collect::<String>()
        .to_ascii_lowercase();
    let needs = trimmed.contains('[')
        || trimmed.contains("(.)")
        || trimmed.contains("{.}")
        || lower_start.starts_with("hxxp")
        || lower_start.starts_with("fxp");
    if !needs {
        return Cow::Borrowed(trimmed);
    }
    let mut s = trimmed.to_string();
    for (from, to) in [
        ("hxxps://", "https://"),
        ("hxxp://", "http://"),
        ("fxp://", "ftp://"),
    ] {
        if s.len() >= from.len()
            && s.is_char_boundary(from.len())
            && s[..from.len()].eq_ignore_ascii_case(from)
        {
            s.replace_range(..from.len(), to);
        }
    }
    // The authority as the URL parser will see it: after a valid `scheme://` (without one,
    // `http://` is put in front, so from the start), up to the first '/', '\\', '?' or '#'.
    // Refanging exactly that region is what keeps a canonical URL from changing again.
    let start = authority_start(&s).unwrap_or(0);
    let end = s[start..]
        .find(['/', '\\', '?', '#'])
        .map_or(s.len(), |i| start + i);
    let head = s[start..end]
        .replace("[.]", ".")
        .replace("(.)", ".")
        .replace("{.}", ".")
        .replace("[dot]", ".")
        .replace("[DOT]", ".")
        .replace("[@]", "@")
        .replace("[at]", "@")
        .replace("[AT]", "@")
        .replace("[:]", ":");
    s.replace_range(start..end, &head);
    Cow::Owned(s)
}

/// An IP address; `[v6]` brackets allowed; IPv4-mapped IPv6 becomes IPv4.
pub(crate) fn ip(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(t);
    t.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// An IP address as events carry it: a bare address, or `address:port` / `[v6]:port`.
pub(crate) fn event_ip(text: &str) -> Option<IpAddr> {
    if let Some(ip) = ip(text) {
        return Some(ip);
    }
    text.trim()
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|sa| sa.ip().to_canonical())
}

/// A network with its host bits cleared. A bare address is a full-length prefix.
pub(crate) fn cidr(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    if let Some(addr) = ip(t) {
        return Ok(IpNet::from(addr));
    }
    let net: IpNet = t
        .parse()
        .map_err(|_| "not a network in CIDR notation (address/prefix)".to_string())?;
    Ok(match net {
        IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
            Some(v4) if v6.prefix_len() >= 96 => {
                match ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    Ok(n) => IpNet::V4(n.trunc()),
                    Err(_) => net.trunc(),
                }
            }
            _ => net.trunc(),
        },
        IpNet::V4(_) => net.trunc(),
    })
}

/// A domain as events carry it, in canonical form: ASCII lowercased, non-ASCII through IDNA,
/// one trailing dot dropped. No validation: what is not a valid domain simply matches nothing.
pub(crate) fn domain(text: &str) -> Option<Cow<'_, str>> {
    let t = text.trim();
    let t = t.strip_suffix('.').unwrap_or(t);
    if t.is_empty() {
        return None;
    }
    if t.is_ascii() {
        if t.bytes().any(|b| b.is_ascii_uppercase()) {
            Some(Cow::Owned(t.to_ascii_lowercase()))
        } else {
            Some(Cow::Borrowed(t))
        }
    } else {
        match url::Host::parse(t) {
            Ok(url::Host::Domain(d)) => {
                let d = d.strip_suffix('.').map(str::to_string).unwrap_or(d);
                Some(Cow::Owned(d))
            }
            _ => None,
        }
    }
}

/// Checks a canonical domain: 2+ labels of `[a-z0-9_-]`, each 1 to 63 long, 253 in all, and a
/// last label that is not a number (that would be an IPv4 address).
pub(crate) fn validate_domain(d: &str) -> Result<(), String> {
    if d.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return Err(
            "needs at least two labels (a bare top-level name would match everything under it)"
                .into(),
        );
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("label {label:?} must have 1 to 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(format!("character {c:?} is not allowed in a domain name"));
        }
    }
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("the last label is a number".into());
    }
    Ok(())
}

pub(crate) fn domain_indicator(text: &str) -> Result<String, String> {
    let t = text.trim();
    // A wildcard names the domain and everything under it: that is what a domain matches.
    let t = t.strip_prefix("*.").unwrap_or(t);
    if ip(t).is_some() {
        return Err("is an IP address, not a domain".into());
    }
    let d = domain(t).ok_or_else(|| "not a domain name".to_string())?;
    validate_domain(&d)?;
    Ok(d.into_owned())
}

/// Where the authority starts when `s` begins with `scheme://` (a WHATWG scheme: a letter,
/// then letters, digits, `+-.`; the slashes may be backslashes, as browsers read them).
fn authority_start(s: &str) -> Option<usize> {
    let colon = s.find(':')?;
    let scheme = &s.as_bytes()[..colon];
    let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let slashes = s.as_bytes().get(colon + 1..colon + 3)?;
    (valid && slashes.iter().all(|b| matches!(b, b'/' | b'\\'))).then_some(colon + 3)
}

fn has_scheme(s: &str) -> bool {
    authority_start(s).is_some()
}

/// A URL in canonical form, or `None` when it has no host. `http://` is assumed without a
/// scheme.
pub(crate) fn url(text: &str) -> Option<url::Url> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('/') {
        return None;
    }
    let parsed = if has_scheme(t) {
        url::Url::parse(t)
    } else {
        url::Url::parse(&format!("http://{t}"))
    };
    let mut u = parsed.ok()?;
    u.host()?;
    u.set_fragment(None);
    Some(u)
}

pub(crate) fn url_indicator(text: &str) -> Result<String, String> {
    let u = url(text).ok_or_else(|| "not a URL with a host".to_string())?;
    match u.host() {
        Some(url::Host::Domain(d)) => {
            validate_domain(d.strip_suffix('.').unwrap_or(d)).map_err(|e| format!("host: {e}"))?
        }
        Some(_) => {}
        None => return Err("has no host".into()),
    }
    Ok(u.into())
}

/// The host of a URL as events carry it, lowercase, without a trailing dot (for domain and IP
/// matching). Plain URLs are cut by hand; anything unusual (percent signs, non-ASCII,
/// backslashes, numeric hosts WHATWG would rewrite) goes through the full parser.
pub(crate) fn url_host(text: &str) -> Option<Cow<'_, str>> {
    match fast_url_host(text) {
        FastHost::Host(h) => domain(h),
        FastHost::None => None,
        FastHost::Complex => {
            let u = url(text)?;
            match u.host()? {
                url::Host::Domain(d) => domain(d).map(|d| Cow::Owned(d.into_owned())),
                url::Host::Ipv4(ip) => Some(Cow::Owned(ip.to_string())),
                url::Host::Ipv6(ip) => Some(Cow::Owned(ip.to_string())),
            }
        }
    }
}

pub(crate) enum FastHost<'a> {
    /// The host exactly as the WHATWG parser would give it, modulo ASCII case.
    Host(&'a str),
    /// No host at all (a path).
    None,
    /// Needs the full parser.
    Complex,
}

pub(crate) fn fast_url_host(text: &str) -> FastHost<'_> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('/') {
        return FastHost::None;
    }
    let rest = match authority_start(t) {
        Some(i) => {
            let scheme = &t[..i - 3];
            if !["http", "https", "ftp", "ws", "wss"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(scheme))
                || &t[i - 2..i] != "//"
            {
                return FastHost::Complex;
            }
            &t[i..]
        }
        None => t,
    };
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    if rest[end..].starts_with('\\') {
        return FastHost::Complex;
    }
    let authority = &rest[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return FastHost::Complex,
        None => host_port,
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return FastHost::Complex;
    }
    // WHATWG reads a host whose last label is a number as IPv4 (`0x7f.1`, `2130706433`).
    let last = host
        .strip_suffix('.')
        .unwrap_or(host)
        .rsplit('.')
        .next()
        .unwrap_or("");
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || last.len() >= 2 && last[..2].eq_ignore_ascii_case("0x");
    if numeric {
        // Dotted quads are common and exact; anything else numeric is rewritten by WHATWG.
        return match host.parse::<std::net::Ipv4Addr>() {
            Ok(_) => FastHost::Host(host),
            Err(_) => FastHost::Complex,
        };
    }
    if host.contains("xn--") || host.contains("XN--") {
        return FastHost::Complex;
    }
    FastHost::Host(host)
}

/// Lowercase hex of a known digest length.
pub(crate) fn hash(text: &str) -> Option<(crate::HashAlgorithm, Cow<'_, str>)> {
    let t = text.trim();
    let alg = crate::HashAlgorithm::from_hex_len(t.len())?;
    if !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if t.bytes().any(|b| b.is_ascii_uppercase()) {
        Some((alg, Cow::Owned(t.to_ascii_lowercase())))
    } else {
        Some((alg, Cow::Borrowed(t)))
    }
}

/// An email address as events carry it: `mailto:` and `<...>` dropped, lowercase, the domain
/// canonical. `None` when there is no `local@domain`.
pub(crate) fn email(text: &str) -> Option<Cow<'_, str>> {
    let mut t = text.trim();
    if t.len() >= 7 && t.is_char_boundary(7) && t[..7].eq_ignore_ascii_case("mailto:") {
        t = &t[7..];
    }
    if let Some(inner) = t.rfind('<').and_then(|i| t[i + 1..].strip_suffix('>')) {
        t = inner.trim();
    }
    let (local, dom) = t.rsplit_once('@')?;
    if local.is_empty() || dom.is_empty() {
        return None;
    }
    let dom_canon = domain(dom)?;
    let local_lower = !local.bytes().any(|b| b.is_ascii_uppercase()) && local.is_ascii();
    if local_lower && matches!(dom_canon, Cow::Borrowed(d) if d.len() == dom.len()) {
        return Some(Cow::Borrowed(t));
    }
    Some(Cow::Owned(format!(
        "{}@{}",
        local.to_lowercase(),
        dom_canon
    )))
}

pub(crate) fn email_indicator(text: &str) -> Result<String, String> {
    let e = email(text).ok_or_else(|| "not an address of the form local@domain".to_string())?;
    let (local, dom) = e
        .rsplit_once('@')
        .ok_or_else(|| "not an address of the form local@domain".to_string())?;
    if local.len() > 64 {
        return Err("the local part is longer than 64 characters".into());
    }
    if local.chars().any(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, '@' | '<' | '>' | ',' | ';' | '"')
    }) {
        return Err("the local part has a character not allowed in an address".into());
    }
    validate_domain(dom).map_err(|e| format!("domain: {e}"))?;
    Ok(e.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_cut_like_the_whatwg_parser_would() {
        for (input, host) in [
            ("http://Evil.COM/x", Some("evil.com")),
            ("https://user:pw@evil.com:8443/a?b#c", Some("evil.com")),
            ("evil.com/path", Some("evil.com")),
            ("http://evil.com.", Some("evil.com")),
            ("/just/a/path", None),
            ("http://1.2.3.4/x", Some("1.2.3.4")),
            ("http://0x7f.1/", Some("127.0.0.1")),
            ("http://2130706433/", Some("127.0.0.1")),
            ("http://[::1]:80/", Some("::1")),
            ("http://EXAMPLE%2ecom/", Some("example.com")),
            ("http://bücher.de/", Some("xn--bcher-kva.de")),
            ("http:\\\\evil.com\\x", Some("evil.com")),
        ] {
            assert_eq!(url_host(input).as_deref(), host, "{input}");
        }
    }

    #[test]
    fn refanging_is_idempotent_when_the_scheme_is_not_one() {
        // Found by fuzzing (intel_csv): "://" after an invalid scheme used to be taken as
        // the scheme's end, so a defanged user part survived the first pass and not the second.
        let text = "10.01(.)0\u{e}0@0://.0/8=";
        let once = url_indicator(&refang(text)).expect("a URL");
        let twice = url_indicator(&refang(&once)).expect("a URL");
        assert_eq!(once, twice);
        assert_eq!(refang("evil(.)com?q=a(.)b/x"), "evil.com?q=a(.)b/x");
    }

    #[test]
    fn refanging_touches_only_the_authority() {
        assert_eq!(refang("hxxps://evil[.]com/a[.]b"), "https://evil.com/a[.]b");
        assert_eq!(refang("bad(.)example[.]org"), "bad.example.org");
        assert_eq!(refang("ops[@]evil[.]com"), "ops@evil.com");
        assert_eq!(refang("  plain.com "), "plain.com");
    }
}
