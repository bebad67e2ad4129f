//! Wire types of the `triage` routes: shared by the server and the client.

use serde::{Deserialize, Serialize};

use garrison_cases::{CsvError, EntityKey, GroupingRule, Workflow};
use garrison_model::Timestamp;
use garrison_store::StoredGroupingRule;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSuppression {
    /// Defaults to a new `sup-…` id.
    #[serde(default)]
    pub id: Option<String>,
    /// Only alerts of this rule.
    #[serde(default)]
    pub rule_id: Option<String>,
    /// Dotted field name → value (`*` matches any run of characters); all must match.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    pub reason: String,
    /// RFC 3339; none: until expired by hand.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub expires: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SuppressionParams {
    /// Only those in force now (true), or all (false, the default).
    pub active: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupingRuleBody {
    /// `host`, `user`, `indicator`, `rule`, or `{"field": "dotted.name"}`.
    pub keys: Vec<EntityKey>,
    pub window_secs: u64,
    /// Only alerts of these rules; empty: all.
    #[serde(default)]
    pub rule_ids: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A grouping rule as stored. (Not `StoredGroupingRule` itself: its schema would combine
/// `GroupingRule`'s closed object, `deny_unknown_fields`, with more properties.)
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupingRuleView {
    pub name: String,
    pub keys: Vec<EntityKey>,
    /// Tumbling windows of this length, aligned to the epoch, so every node agrees.
    pub window_secs: u64,
    /// Rules this grouping applies to; empty: all.
    pub rule_ids: Vec<String>,
    pub enabled: bool,
    #[schema(value_type = String)]
    pub updated: Timestamp,
}

impl From<StoredGroupingRule> for GroupingRuleView {
    fn from(stored: StoredGroupingRule) -> Self {
        // No `..`: a new field of either type must be added here too.
        let StoredGroupingRule {
            rule:
                GroupingRule {
                    name,
                    keys,
                    window_secs,
                    rule_ids,
                },
            enabled,
            updated,
        } = stored;
        GroupingRuleView {
            name,
            keys,
            window_secs,
            rule_ids,
            enabled,
            updated,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssetImportResult {
    pub imported: u64,
    /// Lines not imported, with the reason.
    pub errors: Vec<CsvError>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkflowView {
    pub version: u32,
    pub workflow: Workflow,
    pub created_by: String,
}

/// What applying a suppression to the open alerts did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SuppressionApplied {
    pub suppression_id: String,
    /// Open (`new`) alerts looked at.
    pub examined: u64,
    /// Of those, how many it covered and so are now suppressed.
    pub suppressed: u64,
}
