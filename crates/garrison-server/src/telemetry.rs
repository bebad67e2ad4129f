//! The metrics the service itself counts, defined once (records received and rejected at the
//! doors go through `garrison_pipeline::telemetry`). All are listed in the README.

pub const TOKEN_USES: &str = "garrison_token_uses_total";
pub const SYSLOG_UDP_DROPPED: &str = "garrison_syslog_udp_dropped_total";

/// An authenticated request, by token kind.
pub fn token_used(kind: &'static str) {
    metrics::counter!(TOKEN_USES, "kind" => kind).increment(1);
}

/// UDP datagrams dropped because the write path was saturated.
pub fn syslog_udp_dropped(count: u64) {
    metrics::counter!(SYSLOG_UDP_DROPPED).increment(count);
}
