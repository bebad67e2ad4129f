//! The audit log in the forms a SIEM outside Garrison reads: JSON lines (the stored entry,
//! hash and all) and ArcSight CEF, one line per entry, for files and syslog targets.

use garrison_store::AuditEntry;

use crate::anchor::Checkpoint;

const VENDOR: &str = "Garrison";
const PRODUCT: &str = "Garrison";

/// One audit entry as a JSON line: the stored fields, `details` as the JSON object it is,
/// byte for byte as stored (what the hash covers, so a SIEM can re-check the chain).
pub fn json_entry(entry: &AuditEntry) -> String {
    #[derive(serde::Serialize)]
    struct Exported<'a> {
        tenant_id: i64,
        seq: i64,
        time: String,
        actor: &'a str,
        action: &'a str,
        target: &'a str,
        details: &'a serde_json::value::RawValue,
        prev_hash: &'a str,
        hash: &'a str,
    }
    let as_string;
    let details: &serde_json::value::RawValue =
        match serde_json::from_str::<&serde_json::value::RawValue>(&entry.details) {
            Ok(raw) => raw,
            Err(_) => {
                // Not JSON (never written so): carried as a string rather than dropped.
                as_string = serde_json::value::to_raw_value(&entry.details)
                    .unwrap_or_else(|_| unreachable!("a string always serialises"));
                &as_string
            }
        };
    serde_json::to_string(&Exported {
        tenant_id: entry.tenant_id.0,
        seq: entry.seq,
        time: entry.time.to_string(),
        actor: &entry.actor,
        action: &entry.action,
        target: &entry.target,
        details,
        prev_hash: &entry.prev_hash,
        hash: &entry.hash,
    })
    .unwrap_or_else(|_| unreachable!("plain fields always serialise"))
}

/// CEF header fields escape `\` and `|`.
fn header(text: &str) -> String {
    text.replace('\\', "\\\\").replace('|', "\\|")
}

/// CEF extension values escape `\`, `=` and line breaks.
fn value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\r', "\\r")
        .replace('\n', "\\n")
}

/// One audit entry as a CEF line (no trailing newline). Severity 3 for changes, 5 for
/// refusals and lockouts.
pub fn cef_entry(tenant_name: &str, entry: &AuditEntry) -> String {
    let severity = if entry.action.contains("denied")
        || entry.action.contains("locked")
        || entry.action.contains("fail")
    {
        5
    } else {
        3
    };
    format!(
        "CEF:0|{VENDOR}|{PRODUCT}|{version}|{action}|{action}|{severity}|rt={rt} suser={actor} act={act} cs1Label=tenant cs1={tenant} cs2Label=target cs2={target} cn1Label=seq cn1={seq} cs3Label=hash cs3={hash} cs4Label=prevHash cs4={prev} msg={details}",
        version = header(env!("CARGO_PKG_VERSION")),
        action = header(&entry.action),
        rt = entry.time.as_millisecond(),
        actor = value(&entry.actor),
        act = value(&entry.action),
        tenant = value(tenant_name),
        target = value(&entry.target),
        seq = entry.seq,
        hash = value(&entry.hash),
        prev = value(&entry.prev_hash),
        details = value(&entry.details),
    )
}

/// A checkpoint as a CEF line: a copy of the chain head kept wherever the syslog target keeps
/// it, beyond the reach of whoever holds the data directory.
pub fn cef_checkpoint(tenant_name: &str, checkpoint: &Checkpoint) -> String {
    format!(
        "CEF:0|{VENDOR}|{PRODUCT}|{version}|audit.checkpoint|audit.checkpoint|1|cs1Label=tenant cs1={tenant} cn1Label=seq cn1={seq} cs3Label=hash cs3={hash} cs5Label=time cs5={time} cs6Label=mac cs6={mac}",
        version = header(env!("CARGO_PKG_VERSION")),
        tenant = value(tenant_name),
        seq = checkpoint.seq,
        hash = value(&checkpoint.hash),
        time = value(&checkpoint.time),
        mac = value(&checkpoint.mac),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use garrison_model::{TenantId, Timestamp};

    fn entry(details: &str, actor: &str) -> AuditEntry {
        AuditEntry {
            tenant_id: TenantId(1),
            seq: 7,
            time: Timestamp::UNIX_EPOCH,
            actor: actor.into(),
            action: "rule.enable".into(),
            target: "r1".into(),
            details: details.into(),
            prev_hash: "p".into(),
            hash: "h".into(),
        }
    }

    #[test]
    fn json_lines_carry_details_as_the_object_stored_byte_for_byte() {
        let line = json_entry(&entry("{\"b\": 1,\"a\":[2]}", "user:ana"));
        assert!(line.contains("\"details\":{\"b\": 1,\"a\":[2]}"), "{line}");
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(parsed["details"]["a"][0], 2);
        assert_eq!(parsed["hash"], "h");
    }

    #[test]
    fn cef_escapes_what_would_split_a_field_or_a_line() {
        let line = cef_entry("acme", &entry("{\"a\":\"x=y\\nz\"}", "user:a|b"));
        assert!(line.starts_with("CEF:0|Garrison|Garrison|"), "{line}");
        assert!(!line.contains('\n'));
        assert!(line.contains("msg={\"a\":\"x\\=y\\\\nz\"}"), "{line}");
        assert!(line.contains("suser=user:a|b"), "{line}");
        assert!(line.contains("cn1=7"));
        // Exactly seven unescaped pipes: the header's fields.
        let header = line.split("rt=").next().expect("header");
        assert_eq!(header.matches('|').count(), 7, "{header}");
    }
}
