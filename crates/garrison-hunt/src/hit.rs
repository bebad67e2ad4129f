//! Hits (a rule matched an event), levels and filters.

use jiff::Timestamp;
use std::cmp::Ordering;

/// The engine's level type, so a level means the same everywhere.
pub use garrison_sigma::{Level, UnknownLevel};

/// One rule matching one event (or, for a correlation rule, a group of events: then the
/// provenance fields describe the event that completed it).
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The rule's `id` (else its `name`, else empty).
    pub rule_id: String,
    pub rule_title: String,
    pub level: Level,
    pub tags: Vec<String>,
    /// The event's time, when it has one.
    pub timestamp: Option<Timestamp>,
    /// The file the event came from (`archive.zip:inner/path` for an archive member).
    pub file: String,
    pub record_id: Option<u64>,
    pub computer: Option<String>,
    pub channel: Option<String>,
    pub event_id: Option<u32>,
    pub provider: Option<String>,
    /// The event's fields and values that made the rule match (field empty for keywords).
    pub matched: Vec<(String, String)>,
}

impl Hit {
    /// Timeline order: by time (events without one last), then file, record id and rule.
    pub fn timeline_cmp(&self, other: &Hit) -> Ordering {
        let time = match (self.timestamp, other.timestamp) {
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        time.then_with(|| self.file.cmp(&other.file))
            .then_with(|| self.record_id.cmp(&other.record_id))
            .then_with(|| self.rule_title.cmp(&other.rule_title))
            .then_with(|| self.rule_id.cmp(&other.rule_id))
    }

    /// The ATT&CK tactics among the tags (`attack.execution` → `execution`).
    pub fn tactics(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tags.iter().filter_map(|t| tactic_of_tag(t))
    }
}

/// ATT&CK enterprise tactics as Sigma tags name them (`attack.<tactic>`).
pub const TACTICS: &[&str] = &[
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "stealth",
    "defense-impairment",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
];

/// `attack.defense-evasion` → `defense-evasion` (also accepts `_` for `-`); `None` for
/// technique tags (`attack.t1059`), groups, software and other namespaces.
pub fn tactic_of_tag(tag: &str) -> Option<&'static str> {
    let rest = tag.get(..7).filter(|p| p.eq_ignore_ascii_case("attack."))?;
    let name = tag[rest.len()..].to_ascii_lowercase().replace('_', "-");
    TACTICS.iter().copied().find(|t| *t == name)
}

/// Which rules may produce hits: `--min-level`, `--tag`, `--rule`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HitFilter {
    /// Only rules at this level or above (a rule without a level counts as informational).
    pub min_level: Option<Level>,
    /// Only rules with one of these tags (case-insensitive; `attack.t1059` also takes
    /// `attack.t1059.001`; a tag given without namespace, such as `execution` or `t1059`, is taken
    /// as `attack.<tag>`). Empty: any.
    pub tags: Vec<String>,
    /// Only rules with one of these ids (or names). Empty: any.
    pub rule_ids: Vec<String>,
}

impl HitFilter {
    /// Whether a rule with this id/name, level and tags passes the filter.
    pub fn accepts(&self, ids: &[&str], level: Level, tags: &[String]) -> bool {
        if self.min_level.is_some_and(|min| level < min) {
            return false;
        }
        if !self.rule_ids.is_empty()
            && !self
                .rule_ids
                .iter()
                .any(|want| ids.iter().any(|id| id.eq_ignore_ascii_case(want)))
        {
            return false;
        }
        if !self.tags.is_empty()
            && !self
                .tags
                .iter()
                .any(|want| tags.iter().any(|tag| tag_matches(want, tag)))
        {
            return false;
        }
        true
    }
}

/// Whether the `--tag` value `want` selects a rule tagged `tag`: equal or a parent
/// (`attack.t1003` selects `attack.t1003.001`), `attack.` optional, `_` and `-` alike.
pub fn tag_matches(want: &str, tag: &str) -> bool {
    // Sigma writes tactics with hyphens (`attack.credential-access`); people type either.
    let want = want.trim().to_ascii_lowercase().replace('_', "-");
    let tag = tag.to_ascii_lowercase().replace('_', "-");
    let hit =
        |w: &str| tag == w || (tag.starts_with(w) && tag.as_bytes().get(w.len()) == Some(&b'.'));
    hit(&want) || (!want.contains('.') && hit(&format!("attack.{want}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_and_parse() {
        assert!(Level::Informational < Level::Low && Level::High < Level::Critical);
        for l in Level::ALL {
            assert_eq!(l.as_str().parse::<Level>(), Ok(l));
            assert_eq!(l.short().parse::<Level>(), Ok(l));
        }
        assert!("severe".parse::<Level>().is_err());
    }

    #[test]
    fn a_tactic_matches_with_underscores_or_hyphens_and_with_or_without_its_prefix() {
        for want in [
            "credential_access",
            "credential-access",
            "attack.credential_access",
            "Credential-Access",
        ] {
            assert!(tag_matches(want, "attack.credential-access"), "{want}");
        }
        assert!(tag_matches("t1003", "attack.t1003.001"));
        assert!(!tag_matches("credential", "attack.credential-access"));
    }

    #[test]
    fn tactics_from_tags() {
        assert_eq!(tactic_of_tag("attack.execution"), Some("execution"));
        assert_eq!(
            tactic_of_tag("attack.Defense_Evasion"),
            Some("defense-evasion")
        );
        assert_eq!(tactic_of_tag("attack.t1059.001"), None);
        assert_eq!(tactic_of_tag("cve.2021-1"), None);
        assert_eq!(tactic_of_tag("attack"), None);
    }

    #[test]
    fn filters() {
        let tags = vec![
            "attack.execution".to_string(),
            "attack.t1059.001".to_string(),
        ];
        let f = HitFilter {
            min_level: Some(Level::Medium),
            ..Default::default()
        };
        assert!(f.accepts(&["x"], Level::High, &tags));
        assert!(!f.accepts(&["x"], Level::Low, &tags));
        for want in ["attack.t1059", "T1059", "execution", "attack.t1059.001"] {
            let f = HitFilter {
                tags: vec![want.to_string()],
                ..Default::default()
            };
            assert!(f.accepts(&["x"], Level::Low, &tags), "{want}");
        }
        let f = HitFilter {
            tags: vec!["attack.t105".to_string()],
            ..Default::default()
        };
        assert!(!f.accepts(&["x"], Level::Low, &tags));
        let f = HitFilter {
            rule_ids: vec!["ABC".to_string()],
            ..Default::default()
        };
        assert!(f.accepts(&["abc"], Level::Low, &tags));
        assert!(!f.accepts(&["abd"], Level::Low, &tags));
    }
}
