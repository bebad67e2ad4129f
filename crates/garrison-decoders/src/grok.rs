//! Grok patterns (`%{IPORHOST:client} %{NUMBER:bytes:int}`) turned into one regular
//! expression, over a library of the common Logstash patterns. Captures get generated group
//! names (`g0`, `g1`, ...) so field names may hold dots.

use crate::spec::Conversion;

/// The pattern library: name → regular expression (which may use other `%{..}`).
const LIBRARY: &[(&str, &str)] = &[
    ("USERNAME", r"[a-zA-Z0-9._-]+"),
    ("USER", r"%{USERNAME}"),
    ("INT", r"(?:[+-]?(?:[0-9]+))"),
    ("BASE10NUM", r"(?:[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+))"),
    ("NUMBER", r"(?:%{BASE10NUM})"),
    ("BASE16NUM", r"(?:0[xX]?[0-9a-fA-F]+)"),
    ("POSINT", r"\b(?:[1-9][0-9]*)\b"),
    ("NONNEGINT", r"\b(?:[0-9]+)\b"),
    ("WORD", r"\b\w+\b"),
    ("NOTSPACE", r"\S+"),
    ("SPACE", r"\s*"),
    ("DATA", r".*?"),
    ("GREEDYDATA", r".*"),
    ("QUOTEDSTRING", r#""(?:[^"\\]|\\.)*""#),
    ("QS", r"%{QUOTEDSTRING}"),
    (
        "UUID",
        r"[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}",
    ),
    (
        "MAC",
        r"(?:(?:[A-Fa-f0-9]{2}[:-]){5}[A-Fa-f0-9]{2}|(?:[A-Fa-f0-9]{4}\.){2}[A-Fa-f0-9]{4})",
    ),
    (
        "IPV4",
        r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])",
    ),
    (
        "IPV6",
        r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?(?:%[0-9A-Za-z]+)?",
    ),
    ("IP", r"(?:%{IPV4}|%{IPV6})"),
    (
        "HOSTNAME",
        r"\b(?:[0-9A-Za-z][0-9A-Za-z-_]{0,62})(?:\.(?:[0-9A-Za-z][0-9A-Za-z-_]{0,62}))*\.?",
    ),
    ("IPORHOST", r"(?:%{IP}|%{HOSTNAME})"),
    ("HOSTPORT", r"%{IPORHOST}:%{POSINT}"),
    ("UNIXPATH", r"(?:/[^\s]*)+"),
    ("PATH", r"%{UNIXPATH}"),
    ("URIPROTO", r"[A-Za-z][A-Za-z0-9+\-.]*"),
    ("URIPATH", r"(?:/[A-Za-z0-9$.+!*'(){},~:;=@#%&_\-]*)+"),
    ("URIPARAM", r"\?[A-Za-z0-9$.+!*'|(){},~@#%&/=:;_?\-\[\]<>]*"),
    ("URIPATHPARAM", r"%{URIPATH}(?:%{URIPARAM})?"),
    ("URI", r"%{URIPROTO}://\S+"),
    (
        "MONTH",
        r"\b(?:[Jj]an(?:uary)?|[Ff]eb(?:ruary)?|[Mm]ar(?:ch)?|[Aa]pr(?:il)?|[Mm]ay|[Jj]un(?:e)?|[Jj]ul(?:y)?|[Aa]ug(?:ust)?|[Ss]ep(?:tember)?|[Oo]ct(?:ober)?|[Nn]ov(?:ember)?|[Dd]ec(?:ember)?)\b",
    ),
    ("MONTHNUM", r"(?:0?[1-9]|1[0-2])"),
    ("MONTHDAY", r"(?:0[1-9]|[12][0-9]|3[01]|[1-9])"),
    (
        "DAY",
        r"(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)",
    ),
    ("YEAR", r"(?:\d\d){1,2}"),
    ("HOUR", r"(?:2[0123]|[01]?[0-9])"),
    ("MINUTE", r"(?:[0-5][0-9])"),
    ("SECOND", r"(?:(?:[0-5]?[0-9]|60)(?:[:.,][0-9]+)?)"),
    ("TIME", r"%{HOUR}:%{MINUTE}(?::%{SECOND})"),
    ("ISO8601_TIMEZONE", r"(?:Z|[+-]%{HOUR}(?::?%{MINUTE}))"),
    (
        "TIMESTAMP_ISO8601",
        r"%{YEAR}-%{MONTHNUM}-%{MONTHDAY}[T ]%{HOUR}:?%{MINUTE}(?::?%{SECOND})?%{ISO8601_TIMEZONE}?",
    ),
    ("HTTPDATE", r"%{MONTHDAY}/%{MONTH}/%{YEAR}:%{TIME} %{INT}"),
    ("SYSLOGTIMESTAMP", r"%{MONTH} +%{MONTHDAY} %{TIME}"),
    (
        "LOGLEVEL",
        r"(?:[Aa]lert|ALERT|[Tt]race|TRACE|[Dd]ebug|DEBUG|[Nn]otice|NOTICE|[Ii]nfo|INFO|[Ww]arn?(?:ing)?|WARN?(?:ING)?|[Ee]rr?(?:or)?|ERR?(?:OR)?|[Cc]rit?(?:ical)?|CRIT?(?:ICAL)?|[Ff]atal|FATAL|[Ss]evere|SEVERE|EMERG(?:ENCY)?|[Ee]merg(?:ency)?)",
    ),
    (
        "EMAILADDRESS",
        r"[a-zA-Z0-9!#$%&'*+\-/=?^_`{|}~.]+@%{HOSTNAME}",
    ),
    ("HTTPDUSER", r"(?:%{EMAILADDRESS}|%{USER})"),
    (
        "COMMONAPACHELOG",
        r#"%{IPORHOST:clientip} %{HTTPDUSER:ident} %{USER:auth} \[%{HTTPDATE:timestamp}\] "(?:%{WORD:verb} %{NOTSPACE:request}(?: HTTP/%{NUMBER:httpversion})?|%{DATA:rawrequest})" %{NUMBER:response} (?:%{NUMBER:bytes}|-)"#,
    ),
    (
        "COMBINEDAPACHELOG",
        r#"%{COMMONAPACHELOG} "%{DATA:referrer}" "%{DATA:agent}""#,
    ),
];

/// A grok pattern compiled to a regular expression, with the field each group fills.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub regex: String,
    /// Group `g{i}` fills `fields[i].0`, converted by `fields[i].1` when given.
    pub fields: Vec<(String, Option<Conversion>)>,
}

/// Expands a grok pattern. The error says which `%{..}` is wrong.
pub(crate) fn compile(pattern: &str) -> Result<Compiled, String> {
    let mut out = Compiled {
        regex: String::new(),
        fields: Vec::new(),
    };
    expand(pattern, &mut out, 0)?;
    Ok(out)
}

fn expand(pattern: &str, out: &mut Compiled, depth: usize) -> Result<(), String> {
    if depth > 16 {
        return Err("grok patterns refer to each other more than 16 deep".into());
    }
    let mut rest = pattern;
    while let Some(start) = rest.find("%{") {
        out.regex.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("grok: `%{{` without `}}` in {:?}", &rest[start..]))?;
        let inner = &after[..end];
        let mut parts = inner.splitn(3, ':');
        let name = parts.next().unwrap_or_default();
        let field = parts.next().filter(|f| !f.is_empty());
        let conversion = match parts.next() {
            None => None,
            Some("int") => Some(Conversion::Int),
            Some("float") => Some(Conversion::Float),
            Some(other) => {
                return Err(format!(
                    "grok %{{{inner}}}: unknown type {other:?} (int or float)"
                ))
            }
        };
        let body = LIBRARY
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, body)| *body)
            .ok_or_else(|| format!("grok: unknown pattern %{{{name}}}"))?;
        match field {
            Some(field) => {
                out.regex.push_str(&format!("(?P<g{}>", out.fields.len()));
                out.fields.push((field.to_string(), conversion));
            }
            None => out.regex.push_str("(?:"),
        }
        expand(body, out, depth + 1)?;
        out.regex.push(')');
        rest = &after[end + 1..];
    }
    out.regex.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_log_compiles_and_names_its_captures() {
        let c = compile("%{COMBINEDAPACHELOG}").expect("compiles");
        let names: Vec<&str> = c.fields.iter().map(|(f, _)| f.as_str()).collect();
        assert!(
            names.contains(&"clientip") && names.contains(&"agent"),
            "{names:?}"
        );
        assert!(regex::Regex::new(&c.regex).is_ok());
    }

    #[test]
    fn unknown_pattern_and_type_are_errors() {
        assert!(compile("%{NOPE:x}").unwrap_err().contains("NOPE"));
        assert!(compile("%{INT:x:long}").unwrap_err().contains("long"));
        assert!(compile("%{INT").unwrap_err().contains("without"));
    }
}
