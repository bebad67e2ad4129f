//! Every metric of live detection, defined once. All are listed in the README.

use garrison_model::TenantId;

pub const DETECTION_RULES: &str = "garrison_detection_rules";
pub const DETECTION_INDICATORS: &str = "garrison_detection_indicators";
pub const DETECTION_ERRORS: &str = "garrison_detection_errors_total";
pub const DETECTION_LAG_SECONDS: &str = "garrison_detection_lag_seconds";
pub const DETECTION_LAG_BYTES: &str = "garrison_detection_lag_bytes";
pub const DETECTION_EVENTS: &str = "garrison_detection_events_total";
pub const DETECTION_UNREADABLE: &str = "garrison_detection_unreadable_events_total";
pub const ALERT_HITS: &str = "garrison_alert_hits_total";
pub const ALERTS_CREATED: &str = "garrison_alerts_created_total";

/// Enabled rules loaded for a tenant.
pub fn rules_loaded(tenant: TenantId, count: usize) {
    metrics::gauge!(DETECTION_RULES, "tenant" => tenant.0.to_string()).set(count as f64);
}

/// Active indicators loaded for a tenant.
pub fn indicators_loaded(tenant: TenantId, count: usize) {
    metrics::gauge!(DETECTION_INDICATORS, "tenant" => tenant.0.to_string()).set(count as f64);
}

/// A batch or a refresh that failed (it is retried).
pub fn detection_error() {
    metrics::counter!(DETECTION_ERRORS).increment(1);
}

/// A committed batch: receive-to-commit lag per event (µs since the epoch), events evaluated,
/// new hits, new alerts, events that could not be read, and how far the log is still ahead.
pub fn batch_committed(
    now_micros: i64,
    received_micros: &[i64],
    events: u64,
    hits: u64,
    alerts: u64,
    unreadable: u64,
    bytes_behind: u64,
) {
    let lag = metrics::histogram!(DETECTION_LAG_SECONDS);
    for received in received_micros {
        lag.record((now_micros - received).max(0) as f64 / 1e6);
    }
    metrics::counter!(DETECTION_EVENTS).increment(events);
    metrics::counter!(ALERT_HITS).increment(hits);
    metrics::counter!(ALERTS_CREATED).increment(alerts);
    if unreadable > 0 {
        metrics::counter!(DETECTION_UNREADABLE).increment(unreadable);
    }
    lag_bytes(bytes_behind);
}

/// How far detection is behind the log.
pub fn lag_bytes(bytes: u64) {
    metrics::gauge!(DETECTION_LAG_BYTES).set(bytes as f64);
}
