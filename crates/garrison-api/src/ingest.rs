//! Wire types of the `ingest` routes: shared by the server and the client.

use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

/// The answer to an ingest request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IngestResponse {
    /// Records stored durably (they survive a crash from now on).
    pub accepted: usize,
    /// Records refused; `errors` says which and why.
    pub rejected: usize,
    /// Records dropped because an earlier record of the same request is the same event (the
    /// same bytes, or the same value in the source's `id_field`). A resend of records already
    /// stored is acknowledged again and stored once (`garrison_events_duplicates_total`).
    #[serde(default)]
    pub duplicates: usize,
    pub errors: Vec<RecordErrorView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordErrorView {
    /// 0-based position of the record in the batch.
    pub index: usize,
    /// 1-based line, for NDJSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IngestParams {
    /// The source the events belong to, for API tokens (default `api`). An ingest token sends
    /// for its own source only: naming another is refused (403).
    pub source: Option<String>,
}

/// HEC's answer body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HecAnswer {
    pub text: String,
    pub code: u32,
    #[serde(
        rename = "invalid-event-number",
        skip_serializing_if = "Option::is_none"
    )]
    pub invalid_event_number: Option<usize>,
    /// Indexer acknowledgement id, when the request named a channel.
    #[serde(rename = "ackId", skip_serializing_if = "Option::is_none")]
    pub ack_id: Option<u64>,
}

/// Query parameters of the HEC routes. Other parameters are ignored, as Splunk does.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters; read by `query_param` (HEC ignores unknown ones)
pub struct HecParams {
    /// The request channel (a GUID), instead of the `X-Splunk-Request-Channel` header; with it
    /// the answer carries an `ackId` for `/services/collector/ack`.
    channel: Option<String>,
    /// Raw endpoint: the events' host.
    host: Option<String>,
    /// Raw endpoint: the events' source (kept as a field; the token decides the Garrison source).
    source: Option<String>,
    /// Raw endpoint: the events' sourcetype.
    sourcetype: Option<String>,
    /// Raw endpoint: the events' index.
    index: Option<String>,
    /// Raw endpoint: the events' time (epoch seconds or a timestamp); refused when unreadable.
    time: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HecAckRequest {
    pub acks: Vec<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HecAckAnswer {
    /// Ack id → whether its events are durable.
    pub acks: std::collections::BTreeMap<String, bool>,
}
