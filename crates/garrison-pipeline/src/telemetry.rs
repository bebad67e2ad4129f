//! Every metric of the ingest path, defined once: its name, its labels, and what counts it.
//! (Other crates count received and rejected records through these functions too, so a name
//! never drifts between the HTTP, HEC and syslog doors.) All are listed in the README.

pub const EVENTS_RECEIVED: &str = "garrison_events_received_total";
pub const EVENTS_ACCEPTED: &str = "garrison_events_accepted_total";
pub const EVENTS_REJECTED: &str = "garrison_events_rejected_total";
pub const INGEST_ACK_SECONDS: &str = "garrison_ingest_ack_seconds";
pub const LOG_PENDING_APPENDS: &str = "garrison_log_pending_appends";
pub const LOG_DISK_BYTES: &str = "garrison_log_disk_bytes";
pub const EVENTS_STORED: &str = "garrison_events_stored_total";
pub const EVENTS_DEAD_LETTERED: &str = "garrison_events_dead_lettered_total";
pub const EVENTS_DUPLICATES: &str = "garrison_events_duplicates_total";
pub const EVENTS_EXPIRED: &str = "garrison_events_expired_total";
pub const INDEX_LAG_BYTES: &str = "garrison_index_lag_bytes";
pub const INDEX_LAG_SECONDS: &str = "garrison_index_lag_seconds";
pub const INDEX_ERRORS: &str = "garrison_index_errors_total";
/// Records per tenant, source and how they were read (`decoded`, `unparsed`, `plain`): the
/// parse-failure rate of a source is its `unparsed` share.
pub const SOURCE_EVENTS: &str = "garrison_source_events_total";

/// Records a door received (decoded or not), by protocol (`http`, `hec`, `syslog_udp`, ...).
pub fn events_received(protocol: &'static str, count: u64) {
    metrics::counter!(EVENTS_RECEIVED, "protocol" => protocol).increment(count);
}

/// Records refused, by protocol and reason (`invalid`, `busy`, `frame`, `error`).
pub fn events_rejected(protocol: &'static str, reason: &'static str, count: u64) {
    metrics::counter!(EVENTS_REJECTED, "protocol" => protocol, "reason" => reason).increment(count);
}

/// Records made durable (acknowledged), and how long the append took.
pub fn events_accepted(protocol: &'static str, count: u64, ack_seconds: f64) {
    metrics::histogram!(INGEST_ACK_SECONDS, "protocol" => protocol).record(ack_seconds);
    metrics::counter!(EVENTS_ACCEPTED, "protocol" => protocol).increment(count);
}

pub fn log_pending_appends(pending: usize) {
    metrics::gauge!(LOG_PENDING_APPENDS).set(pending as f64);
}

pub fn log_disk_bytes(bytes: u64) {
    metrics::gauge!(LOG_DISK_BYTES).set(bytes as f64);
}

pub fn events_stored(count: u64) {
    metrics::counter!(EVENTS_STORED).increment(count);
}

/// Records not stored because they duplicate another: within one request (`protocol`) or
/// already in the store (`store`, a resend).
pub fn events_duplicate(at: &'static str, count: u64) {
    if count > 0 {
        metrics::counter!(EVENTS_DUPLICATES, "at" => at).increment(count);
    }
}

pub fn events_dead_lettered(count: u64) {
    metrics::counter!(EVENTS_DEAD_LETTERED).increment(count);
}

pub fn events_expired(count: u64) {
    metrics::counter!(EVENTS_EXPIRED).increment(count);
}

/// How far indexing is behind: bytes of log, and seconds since the oldest unindexed receipt.
pub fn index_lag(bytes: u64, seconds: Option<f64>) {
    metrics::gauge!(INDEX_LAG_BYTES).set(bytes as f64);
    if let Some(seconds) = seconds {
        metrics::gauge!(INDEX_LAG_SECONDS).set(seconds.max(0.0));
    }
}

pub fn index_error() {
    metrics::counter!(INDEX_ERRORS).increment(1);
}
