//! The problem+json body (RFC 9457) of every error answer.

use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

/// The problem+json body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `urn:garrison:error:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong and where.
    pub detail: String,
    /// The stable error code (see the table in the README).
    pub code: String,
    /// Per-record errors for batch requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<serde_json::Value>,
}
