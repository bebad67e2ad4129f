#![no_main]
use garrison_ingest::{time, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = time::parse_str(&s);
    let _ = time::parse_value(&serde_json::Value::String(s.to_string()));
    let _ = time::parse_text_prefix(data, Timestamp::UNIX_EPOCH);
    let _ = time::parse_bsd_prefix(data, Timestamp::MAX);
    let _ = time::parse_bsd_prefix(data, Timestamp::MIN);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = time::parse_value(&v);
        if let Some(m) = v.as_object() {
            let _ = time::find_in_record(m);
        }
    }
    if data.len() >= 8 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[..8]);
        let _ = time::parse_value(&serde_json::Value::from(f64::from_le_bytes(b)));
        let _ = time::parse_value(&serde_json::Value::from(u64::from_le_bytes(b)));
        let _ = time::parse_value(&serde_json::Value::from(i64::from_le_bytes(b)));
    }
});
