//! The shared vocabulary of alerts: one level scale (Sigma's) and one alert status, used by
//! the rule engine, the store, triage, the API and the CLI instead of strings.

use std::fmt;

/// An alert's or a rule's level, Sigma's scale: informational < low < medium < high < critical.
/// Read in any case, `info`, `med` and `crit` too; written lowercase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Informational,
        Level::Low,
        Level::Medium,
        Level::High,
        Level::Critical,
    ];

    /// Reads a level as rules and users write it (`info`, `med` and `crit` too).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "informational" | "info" => Level::Informational,
            "low" => Level::Low,
            "medium" | "med" => Level::Medium,
            "high" => Level::High,
            "critical" | "crit" => Level::Critical,
            _ => return None,
        })
    }

    /// Like [`Level::parse`], but anything else counts as medium, so an odd value is neither
    /// hidden nor promoted (stored rows written before levels were checked).
    pub fn parse_lenient(s: &str) -> Level {
        Level::parse(s).unwrap_or(Level::Medium)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    /// Short form for narrow table columns.
    pub fn short(self) -> &'static str {
        match self {
            Level::Informational => "info",
            Level::Low => "low",
            Level::Medium => "med",
            Level::High => "high",
            Level::Critical => "crit",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level {0:?}: expected informational, low, medium, high or critical")]
pub struct UnknownLevel(pub String);

impl std::str::FromStr for Level {
    type Err = UnknownLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::parse(s).ok_or_else(|| UnknownLevel(s.to_string()))
    }
}

impl<'de> serde::Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where an alert stands in triage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Not yet triaged, or triaged into an incident (see the alert's `incident_id`).
    New,
    /// An active suppression matched it: counted, not raised.
    Suppressed,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::New => "new",
            AlertStatus::Suppressed => "suppressed",
        }
    }

    /// The stored text; an unknown value reads as `new`, so the alert is still triaged.
    pub fn parse_lenient(s: &str) -> AlertStatus {
        match s {
            "suppressed" => AlertStatus::Suppressed,
            _ => AlertStatus::New,
        }
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_and_order() {
        for level in Level::ALL {
            assert_eq!(level.as_str().parse::<Level>(), Ok(level));
            assert_eq!(Level::parse(level.short()), Some(level));
            let json = serde_json::to_string(&level).expect("serialize");
            assert_eq!(json, format!("\"{}\"", level.as_str()));
        }
        assert!(Level::Informational < Level::Critical);
        assert_eq!(Level::parse("severe"), None);
        assert_eq!(Level::parse_lenient("severe"), Level::Medium);
        let read: Level = serde_json::from_str("\"Crit\"").expect("alias");
        assert_eq!(read, Level::Critical);
        assert!(serde_json::from_str::<Level>("\"severe\"").is_err());
    }

    #[test]
    fn alert_status_reads_what_it_writes() {
        for status in [AlertStatus::New, AlertStatus::Suppressed] {
            assert_eq!(AlertStatus::parse_lenient(status.as_str()), status);
        }
    }
}
