//! Scores that decay with age.
//!
//! The model: an indicator's score is its confidence halved every *half-life* since it was
//! first seen, and 0 once it has expired:
//!
//! ```text
//! score(now) = 0                                              if expires <= now
//!            = confidence * 0.5 ^ ((now - first_seen) / half_life)   otherwise
//! ```
//!
//! An indicator without `first_seen`, or first seen in the future, has its full confidence; a
//! kind without a half-life does not decay. The defaults follow how fast each kind goes stale:
//! addresses are reassigned within weeks, domains and URLs last a little longer, mailboxes
//! longer still, and a file's hash never changes (the file stays what it is), so hashes do not
//! decay by default.

use jiff::{SignedDuration, Timestamp};

use crate::{Indicator, IndicatorKind};

const DAY: i64 = 24 * 60 * 60;

/// Half-lives per kind of indicator; `None` means no decay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecayModel {
    /// IPs and CIDRs. Default 30 days.
    pub ip: Option<SignedDuration>,
    /// Default 60 days.
    pub domain: Option<SignedDuration>,
    /// Default 60 days.
    pub url: Option<SignedDuration>,
    /// Default 180 days.
    pub email: Option<SignedDuration>,
    /// Default none.
    pub hash: Option<SignedDuration>,
}

impl Default for DecayModel {
    fn default() -> Self {
        DecayModel {
            ip: Some(SignedDuration::from_secs(30 * DAY)),
            domain: Some(SignedDuration::from_secs(60 * DAY)),
            url: Some(SignedDuration::from_secs(60 * DAY)),
            email: Some(SignedDuration::from_secs(180 * DAY)),
            hash: None,
        }
    }
}

impl DecayModel {
    /// The same half-life for every kind (`None`: nothing decays, only expiry counts).
    pub fn uniform(half_life: Option<SignedDuration>) -> DecayModel {
        DecayModel {
            ip: half_life,
            domain: half_life,
            url: half_life,
            email: half_life,
            hash: half_life,
        }
    }

    pub fn half_life(&self, kind: IndicatorKind) -> Option<SignedDuration> {
        match kind {
            IndicatorKind::Ip | IndicatorKind::Cidr => self.ip,
            IndicatorKind::Domain => self.domain,
            IndicatorKind::Url => self.url,
            IndicatorKind::Email => self.email,
            IndicatorKind::Hash(_) => self.hash,
        }
    }

    /// The score at `now`, from 0.0 to the indicator's confidence (see the module docs).
    pub fn score(&self, indicator: &Indicator, now: Timestamp) -> f64 {
        if !indicator.is_active(now) {
            return 0.0;
        }
        let confidence = f64::from(indicator.confidence.min(100));
        let (Some(first_seen), Some(half_life)) =
            (indicator.first_seen, self.half_life(indicator.kind()))
        else {
            return confidence;
        };
        let half_life = half_life.as_secs_f64();
        let age = now.duration_since(first_seen).as_secs_f64();
        if age <= 0.0 || half_life <= 0.0 {
            return confidence;
        }
        confidence * (-age / half_life).exp2()
    }
}

/// [`DecayModel::score`] with the default half-lives.
pub fn decayed_score(indicator: &Indicator, now: Timestamp) -> f64 {
    DecayModel::default().score(indicator, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IndicatorValue;

    fn ip_seen(days_ago: i64, now: Timestamp) -> Indicator {
        let mut i = Indicator::new(
            IndicatorValue::parse(IndicatorKind::Ip, "1.2.3.4").expect("ip"),
            "t",
        );
        i.confidence = 80;
        i.first_seen = Some(now - SignedDuration::from_secs(days_ago * DAY));
        i
    }

    #[test]
    fn scores_halve_every_half_life_and_vanish_at_expiry() {
        let now = Timestamp::from_second(1_800_000_000).expect("now");
        assert!((decayed_score(&ip_seen(0, now), now) - 80.0).abs() < 1e-9);
        assert!((decayed_score(&ip_seen(30, now), now) - 40.0).abs() < 1e-9);
        assert!((decayed_score(&ip_seen(60, now), now) - 20.0).abs() < 1e-9);
        assert!((decayed_score(&ip_seen(-5, now), now) - 80.0).abs() < 1e-9);
        let mut expired = ip_seen(1, now);
        expired.expires = Some(now);
        assert_eq!(decayed_score(&expired, now), 0.0);
        let flat = DecayModel::uniform(None);
        assert!((flat.score(&ip_seen(3000, now), now) - 80.0).abs() < 1e-9);
        let mut hash = Indicator::new(
            IndicatorValue::parse(
                IndicatorKind::Hash(crate::HashAlgorithm::Md5),
                &"a".repeat(32),
            )
            .expect("md5"),
            "t",
        );
        hash.first_seen = Some(now - SignedDuration::from_secs(3000 * DAY));
        assert!((decayed_score(&hash, now) - 50.0).abs() < 1e-9);
    }
}
