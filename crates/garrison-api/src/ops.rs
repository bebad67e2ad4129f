//! Wire types of the `ops` routes: shared by the server and the client.

use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub database: bool,
    /// Bytes of event log waiting to be indexed.
    pub index_backlog_bytes: u64,
    /// False while new data would be refused (503).
    pub accepting: bool,
    /// Event log position acknowledged so far.
    pub log_committed: u64,
    /// Event log position indexed into the store so far.
    pub log_indexed: u64,
    /// Event log position the live detector has evaluated and committed so far.
    pub log_detected: u64,
    /// Sequence number of the newest alert (0: none yet).
    pub alerts_created: i64,
    /// Sequence number up to which automatic triage has handled alerts; equal to
    /// `alerts_created` once every alert is grouped into an incident or suppressed.
    pub alerts_triaged: i64,
    /// Components a storage fault has degraded (`disk`: below the free-space watermark or not
    /// writable; `log`: appends failing; `indexer`, `detector`, `triage`: their passes
    /// failing). Each recovers by itself when the fault clears; the service is not ready
    /// while any is listed.
    pub degraded: Vec<DegradedComponent>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DegradedComponent {
    pub component: String,
    pub reason: String,
    /// RFC 3339: when the fault began.
    pub since: String,
}
