//! "Similar past incidents": which earlier incidents share observables, rules or hosts with
//! this one, and how they were resolved.

use std::collections::BTreeSet;

use garrison_model::Timestamp;
use serde::{Deserialize, Serialize};

use crate::observables::ObservableKind;
use crate::Classification;

/// What similarity looks at of an incident.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentProfile {
    pub incident_id: String,
    pub title: String,
    pub observables: BTreeSet<(ObservableKind, String)>,
    pub rule_ids: BTreeSet<String>,
    pub hosts: BTreeSet<String>,
    pub classification: Option<Classification>,
    pub closed: Option<Timestamp>,
}

/// How alike two incidents are: `score` in 0..=1, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Similarity {
    pub score: f64,
    /// Shared observables over all observables of the two.
    pub jaccard: f64,
    /// The observables both have, each `[kind, value]`.
    #[cfg_attr(feature = "openapi", schema(schema_with = shared_observables_schema))]
    pub shared_observables: Vec<(ObservableKind, String)>,
    pub same_rule: bool,
    pub same_host: bool,
}

/// `[kind, value]` pairs, as serde writes the tuples.
#[cfg(feature = "openapi")]
fn shared_observables_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let pair = ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String))
        .min_items(Some(2))
        .max_items(Some(2))
        .description(Some(
            "`[kind, value]`: the observable's kind (`ip`, `domain`, `url`, `email`, `md5`, \
             `sha1`, `sha256`, `user`, `host`) and its value",
        ));
    ArrayBuilder::new()
        .items(pair)
        .description(Some("The observables both have, each `[kind, value]`."))
        .build()
}

/// Weights: observables say most; a shared rule or host alone is a weak hint.
const W_OBSERVABLES: f64 = 0.6;
const W_RULE: f64 = 0.25;
const W_HOST: f64 = 0.15;

/// Jaccard over observables (weight 0.6), plus 0.25 for a shared rule and 0.15 for a shared
/// host. Symmetric; 1 for two incidents with the same non-empty observables, rules and hosts.
pub fn similarity(a: &IncidentProfile, b: &IncidentProfile) -> Similarity {
    let shared: Vec<(ObservableKind, String)> = a
        .observables
        .intersection(&b.observables)
        .cloned()
        .collect();
    let union = a.observables.union(&b.observables).count();
    let jaccard = if union == 0 {
        0.0
    } else {
        shared.len() as f64 / union as f64
    };
    let same_rule = !a.rule_ids.is_disjoint(&b.rule_ids);
    let same_host = !a.hosts.is_disjoint(&b.hosts);
    let score = W_OBSERVABLES * jaccard
        + if same_rule { W_RULE } else { 0.0 }
        + if same_host { W_HOST } else { 0.0 };
    Similarity {
        score: score.clamp(0.0, 1.0),
        jaccard,
        shared_observables: shared,
        same_rule,
        same_host,
    }
}

/// A past incident like the one asked about, with how it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimilarIncident {
    pub incident_id: String,
    pub title: String,
    pub classification: Option<Classification>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub closed: Option<Timestamp>,
    pub similarity: Similarity,
}

/// The `limit` candidates most like `target` with a score of at least `min_score`, best first
/// (ties: most recently closed first, then by id); `target` itself is left out.
pub fn similar_incidents(
    target: &IncidentProfile,
    candidates: &[IncidentProfile],
    min_score: f64,
    limit: usize,
) -> Vec<SimilarIncident> {
    let mut out: Vec<SimilarIncident> = candidates
        .iter()
        .filter(|c| c.incident_id != target.incident_id)
        .map(|c| SimilarIncident {
            incident_id: c.incident_id.clone(),
            title: c.title.clone(),
            classification: c.classification,
            closed: c.closed,
            similarity: similarity(target, c),
        })
        .filter(|s| s.similarity.score > 0.0 && s.similarity.score >= min_score)
        .collect();
    out.sort_by(|a, b| {
        b.similarity
            .score
            .total_cmp(&a.similarity.score)
            .then_with(|| b.closed.cmp(&a.closed))
            .then_with(|| a.incident_id.cmp(&b.incident_id))
    });
    out.truncate(limit);
    out
}
