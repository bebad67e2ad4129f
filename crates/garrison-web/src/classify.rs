//! What a request attempts: attack classes found in its decoded target, agent and referrer.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::Serialize;

use crate::parse::Request;

/// An attack class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    SqlInjection,
    Xss,
    PathTraversal,
    CommandInjection,
    Ssrf,
    Log4Shell,
    KnownExploit,
    SensitiveFile,
    Webshell,
    Scanner,
}

impl Class {
    pub const ALL: [Class; 10] = [
        Class::SqlInjection,
        Class::Xss,
        Class::PathTraversal,
        Class::CommandInjection,
        Class::Ssrf,
        Class::Log4Shell,
        Class::KnownExploit,
        Class::SensitiveFile,
        Class::Webshell,
        Class::Scanner,
    ];

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    pub fn label(self) -> &'static str {
        match self {
            Class::SqlInjection => "SQL injection",
            Class::Xss => "cross-site scripting",
            Class::PathTraversal => "path traversal / file inclusion",
            Class::CommandInjection => "command injection",
            Class::Ssrf => "server-side request forgery",
            Class::Log4Shell => "Log4Shell (JNDI lookup)",
            Class::KnownExploit => "known exploit path",
            Class::SensitiveFile => "sensitive file probe",
            Class::Webshell => "webshell",
            Class::Scanner => "scanner or attack tool",
        }
    }

    /// What to do about it, for the report.
    pub fn advice(self) -> &'static str {
        match self {
            Class::SqlInjection => "Use parameterised queries on the affected URLs; check the database logs for the attack times; put a WAF rule in front meanwhile.",
            Class::Xss => "Encode output and set a Content-Security-Policy on the affected pages; check whether stored content now holds the payload.",
            Class::PathTraversal => "Normalise and confine file paths server-side; on a 2xx answer assume the file was read and rotate any secret it holds.",
            Class::CommandInjection => "Never pass request data to a shell; on a 2xx answer treat the host as compromised: isolate it and look for new processes and files.",
            Class::Ssrf => "Allow-list outbound destinations of the application; block the metadata address (169.254.169.254) and rotate cloud credentials if it answered.",
            Class::Log4Shell => "Upgrade log4j to 2.17.1 or later everywhere; look for outbound LDAP/RMI/DNS from the server around the attack times.",
            Class::KnownExploit => "Patch the product named by the CVE; on a 2xx answer treat the host as compromised.",
            Class::SensitiveFile => "Remove the exposed files (.env, .git, backups) from the web root and rotate any secret they held if the answer was 2xx.",
            Class::Webshell => "Take the script off the server after preserving it, find how it was written (upload, exploit), and hunt for other new scripts.",
            Class::Scanner => "Block the scanning addresses at the edge; scanners precede targeted attacks.",
        }
    }
}

/// A set of classes, with the CVE of a known-exploit match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Classes {
    bits: u16,
    pub cve: Option<&'static str>,
}

impl Classes {
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }
    pub fn contains(&self, c: Class) -> bool {
        self.bits & c.bit() != 0
    }
    pub fn insert(&mut self, c: Class) {
        self.bits |= c.bit();
    }
    pub fn iter(self) -> impl Iterator<Item = Class> {
        Class::ALL.into_iter().filter(move |c| self.contains(*c))
    }
    /// Only a scanner agent, no payload.
    pub fn only_scanner(&self) -> bool {
        self.bits == Class::Scanner.bit()
    }
}

/// Patterns on the decoded, lower-cased target (with a trailing space so `;id ` also finds
/// `;id` at the end).
const TARGET: &[(&str, Class, Option<&str>)] = &[
    ("union select", Class::SqlInjection, None),
    ("union all select", Class::SqlInjection, None),
    ("' or '1'='1", Class::SqlInjection, None),
    ("' or 1=1", Class::SqlInjection, None),
    ("\" or 1=1", Class::SqlInjection, None),
    (" or 1=1--", Class::SqlInjection, None),
    ("' and 1=1", Class::SqlInjection, None),
    ("sleep(", Class::SqlInjection, None),
    ("benchmark(", Class::SqlInjection, None),
    ("waitfor delay", Class::SqlInjection, None),
    ("information_schema", Class::SqlInjection, None),
    ("xp_cmdshell", Class::SqlInjection, None),
    ("extractvalue(", Class::SqlInjection, None),
    ("updatexml(", Class::SqlInjection, None),
    ("load_file(", Class::SqlInjection, None),
    ("into outfile", Class::SqlInjection, None),
    ("pg_sleep", Class::SqlInjection, None),
    ("'--", Class::SqlInjection, None),
    ("<script", Class::Xss, None),
    ("javascript:", Class::Xss, None),
    ("onerror=", Class::Xss, None),
    ("onload=", Class::Xss, None),
    ("<svg", Class::Xss, None),
    ("<img src", Class::Xss, None),
    ("document.cookie", Class::Xss, None),
    ("alert(", Class::Xss, None),
    ("../", Class::PathTraversal, None),
    ("..\\", Class::PathTraversal, None),
    ("/etc/passwd", Class::PathTraversal, None),
    ("/etc/shadow", Class::PathTraversal, None),
    ("win.ini", Class::PathTraversal, None),
    ("boot.ini", Class::PathTraversal, None),
    ("php://filter", Class::PathTraversal, None),
    ("php://input", Class::PathTraversal, None),
    ("file:///", Class::PathTraversal, None),
    ("/proc/self/environ", Class::PathTraversal, None),
    (";id ", Class::CommandInjection, None),
    (";id;", Class::CommandInjection, None),
    ("|id ", Class::CommandInjection, None),
    ("`id`", Class::CommandInjection, None),
    ("$(id)", Class::CommandInjection, None),
    (";uname", Class::CommandInjection, None),
    ("|uname", Class::CommandInjection, None),
    (";cat ", Class::CommandInjection, None),
    ("|cat ", Class::CommandInjection, None),
    ("${ifs}", Class::CommandInjection, None),
    ("/bin/sh", Class::CommandInjection, None),
    ("/bin/bash", Class::CommandInjection, None),
    ("cmd.exe", Class::CommandInjection, None),
    ("powershell", Class::CommandInjection, None),
    ("wget http", Class::CommandInjection, None),
    ("curl http", Class::CommandInjection, None),
    (";wget ", Class::CommandInjection, None),
    ("|wget ", Class::CommandInjection, None),
    ("nc -e", Class::CommandInjection, None),
    ("=http://169.254.169.254", Class::Ssrf, None),
    ("=http://metadata.google.internal", Class::Ssrf, None),
    ("=http://127.0.0.1", Class::Ssrf, None),
    ("=http://localhost", Class::Ssrf, None),
    ("=gopher://", Class::Ssrf, None),
    ("=dict://", Class::Ssrf, None),
    ("=file://", Class::Ssrf, None),
    ("${jndi:", Class::Log4Shell, None),
    (
        "/cgi-bin/.%2e/",
        Class::KnownExploit,
        Some("CVE-2021-41773"),
    ),
    (
        "/cgi-bin/../../",
        Class::KnownExploit,
        Some("CVE-2021-41773"),
    ),
    (
        "/phpunit/src/util/php/eval-stdin.php",
        Class::KnownExploit,
        Some("CVE-2017-9841"),
    ),
    (
        "/owa/auth/x.js",
        Class::KnownExploit,
        Some("CVE-2021-26855"),
    ),
    (
        "/autodiscover/autodiscover.json?@",
        Class::KnownExploit,
        Some("CVE-2021-34473"),
    ),
    (
        "/mgmt/tm/util/bash",
        Class::KnownExploit,
        Some("CVE-2022-1388"),
    ),
    ("/vpns/", Class::KnownExploit, Some("CVE-2019-19781")),
    (
        "/remote/fgt_lang?lang=",
        Class::KnownExploit,
        Some("CVE-2018-13379"),
    ),
    (
        "/console/css/%2e%2e%2fconsole.portal",
        Class::KnownExploit,
        Some("CVE-2020-14882"),
    ),
    (
        "/console/images/%252e%252e%252fconsole.portal",
        Class::KnownExploit,
        Some("CVE-2020-14882"),
    ),
    (
        "/boaform/admin/formlogin",
        Class::KnownExploit,
        Some("Boa router login (Mozi)"),
    ),
    ("/hnap1", Class::KnownExploit, Some("CVE-2015-2051")),
    (
        "/shell?cd+/tmp",
        Class::KnownExploit,
        Some("MVPower DVR shell"),
    ),
    (
        "/solr/admin/cores?action=",
        Class::KnownExploit,
        Some("CVE-2019-17558"),
    ),
    (
        "/actuator/gateway/routes",
        Class::KnownExploit,
        Some("CVE-2022-22947"),
    ),
    (
        "class.module.classloader",
        Class::KnownExploit,
        Some("CVE-2022-22965"),
    ),
    (
        "/wp-content/plugins/wp-file-manager/lib/php/connector.minimal.php",
        Class::KnownExploit,
        Some("CVE-2020-25213"),
    ),
    (
        "/api/v1/totp/user-backup-code/../../",
        Class::KnownExploit,
        Some("CVE-2022-24112"),
    ),
    ("/.env", Class::SensitiveFile, None),
    ("/.git/", Class::SensitiveFile, None),
    ("/.svn/", Class::SensitiveFile, None),
    ("/.aws/credentials", Class::SensitiveFile, None),
    ("/wp-config.php.", Class::SensitiveFile, None),
    ("/backup.sql", Class::SensitiveFile, None),
    ("/.ds_store", Class::SensitiveFile, None),
    ("/actuator/env", Class::SensitiveFile, None),
    ("/server-status", Class::SensitiveFile, None),
    ("/phpinfo.php", Class::SensitiveFile, None),
    ("?cmd=", Class::Webshell, None),
    ("&cmd=", Class::Webshell, None),
    ("?exec=", Class::Webshell, None),
    ("?command=", Class::Webshell, None),
    ("/c99.php", Class::Webshell, None),
    ("/r57.php", Class::Webshell, None),
    ("/wso.php", Class::Webshell, None),
    ("/b374k", Class::Webshell, None),
    ("/shell.php", Class::Webshell, None),
    ("/cmd.php", Class::Webshell, None),
    ("/cmd.aspx", Class::Webshell, None),
    ("/cmd.jsp", Class::Webshell, None),
];

/// Patterns on the lower-cased user agent.
const AGENT: &[&str] = &[
    "sqlmap",
    "nikto",
    "nmap",
    "masscan",
    "zgrab",
    "wpscan",
    "acunetix",
    "nessus",
    "openvas",
    "dirbuster",
    "gobuster",
    "ffuf",
    "nuclei",
    "burp",
    "owasp zap",
    "w3af",
    "hydra",
    "wfuzz",
    "feroxbuster",
    "netsparker",
    "appscan",
    "havij",
    "commix",
    "jaeles",
    "xray/",
    "fuzz faster",
];

fn target_matcher() -> &'static AhoCorasick {
    static M: OnceLock<AhoCorasick> = OnceLock::new();
    M.get_or_init(|| {
        AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(TARGET.iter().map(|(p, _, _)| *p))
            .expect("static patterns build")
    })
}

fn agent_matcher() -> &'static AhoCorasick {
    static M: OnceLock<AhoCorasick> = OnceLock::new();
    M.get_or_init(|| {
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build(AGENT)
            .expect("static patterns build")
    })
}

/// Percent-decodes twice (attackers double-encode) and turns `+` into spaces, lower-cased.
pub fn decoded(target: &str) -> String {
    let mut s = target.to_string();
    for _ in 0..2 {
        if !s.contains('%') {
            break;
        }
        s = percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned();
    }
    if s.contains('+') {
        s = s.replace('+', " ");
    }
    // The patterns are ASCII: lower-casing ASCII in place is enough, and allocates nothing.
    s.make_ascii_lowercase();
    s.push(' ');
    s
}

/// The classes of one request.
pub fn classify(r: &Request) -> Classes {
    let mut out = Classes::default();
    let raw_lower;
    let target = decoded(&r.target);
    for m in target_matcher().find_overlapping_iter(&target) {
        let (_, class, cve) = TARGET[m.pattern().as_usize()];
        out.insert(class);
        if cve.is_some() && out.cve.is_none() {
            out.cve = cve;
        }
    }
    // Encoded forms of the CVE paths are matched before decoding too.
    if out.cve.is_none() && r.target.contains('%') {
        raw_lower = r.target.to_lowercase();
        for m in target_matcher().find_iter(&raw_lower) {
            let (_, class, cve) = TARGET[m.pattern().as_usize()];
            if class == Class::KnownExploit {
                out.insert(class);
                out.cve = cve;
                break;
            }
        }
    }
    if !r.user_agent.is_empty() && agent_matcher().is_match(&r.user_agent) {
        out.insert(Class::Scanner);
    }
    for header in [&r.user_agent, &r.referrer] {
        if header.contains("${") && header.to_ascii_lowercase().contains("${jndi:") {
            out.insert(Class::Log4Shell);
        }
    }
    out
}

/// A script the server runs (where a webshell would live).
pub fn is_script(path: &str) -> bool {
    const EXTENSIONS: [&str; 9] = [
        ".php", ".jsp", ".jspx", ".asp", ".aspx", ".ashx", ".cfm", ".cgi", ".pl",
    ];
    let b = path.as_bytes();
    EXTENSIONS.iter().any(|ext| {
        b.len() >= ext.len() && b[b.len() - ext.len()..].eq_ignore_ascii_case(ext.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(target: &str, agent: &str) -> Vec<Class> {
        let r = Request {
            target: target.into(),
            user_agent: agent.into(),
            ..Request::default()
        };
        classify(&r).iter().collect()
    }

    #[test]
    fn finds_classes_through_encoding() {
        assert_eq!(
            classes("/item.php?id=1%27%20UNION%20SELECT%201,2--", ""),
            [Class::SqlInjection]
        );
        assert_eq!(classes("/p?q=%253Cscript%253Ealert(1)", ""), [Class::Xss]);
        assert_eq!(
            classes("/dl?f=../../../../etc/passwd", ""),
            [Class::PathTraversal]
        );
        assert_eq!(
            classes("/ping?host=1.1.1.1;id", ""),
            [Class::CommandInjection]
        );
        assert_eq!(classes("/", "${jndi:ldap://x/a}"), [Class::Log4Shell]);
        assert_eq!(classes("/", "sqlmap/1.7.2#stable"), [Class::Scanner]);
        assert!(classes("/cgi-bin/.%2e/.%2e/bin/sh", "").contains(&Class::KnownExploit));
        assert!(classes("/index.html", "Mozilla/5.0").is_empty());
        assert!(classes("/search?q=rock+and+roll&page=2", "Mozilla/5.0").is_empty());
    }
}
