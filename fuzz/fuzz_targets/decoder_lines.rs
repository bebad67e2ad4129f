#![no_main]
//! Any syslog line (any program, so every shipped decoder's recognition is reached) through
//! the shipped decoders: decoded or left alone, never a panic.
use std::sync::OnceLock;

use garrison_decoders::{decode_record, record_of_line, DecoderSet};
use libfuzzer_sys::fuzz_target;

const PROGRAMS: &[&str] = &[
    "sshd", "sudo", "su", "CRON", "filterlog", "nginx", "httpd", "audispd", "useradd",
    "squid", "sysmon", "suricata", "-",
];

fn set() -> &'static DecoderSet {
    static SET: OnceLock<DecoderSet> = OnceLock::new();
    SET.get_or_init(|| DecoderSet::builtin().expect("shipped decoders load"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let body = String::from_utf8_lossy(rest);
    let program = PROGRAMS[first as usize % PROGRAMS.len()];
    for line in [
        format!("<38>Jan 12 10:01:02 h1 {program}[1]: {body}"),
        body.to_string(),
    ] {
        let _ = decode_record(set(), &record_of_line(&line));
    }
    // As a JSON record, for the record decoders.
    if let Ok(serde_json::Value::Object(record)) = serde_json::from_slice(rest) {
        let _ = decode_record(set(), &garrison_ingest::Record::from_fields(record));
    }
});
