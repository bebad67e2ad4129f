#![no_main]
use garrison_ingest::hec::{self, RawParams};
use garrison_ingest::{Limits, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First line (up to 64 bytes) is the `time` query parameter.
    let (time, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) if i <= 64 => (Some(String::from_utf8_lossy(&data[..i]).into_owned()), &data[i + 1..]),
        _ => (None, data),
    };
    let params = RawParams { host: Some("h".into()), time, ..RawParams::default() };
    let limits = Limits { max_line_bytes: 4096, ..Limits::default() };
    if let Ok(d) = hec::decode_raw_at(body, &params, &limits, Timestamp::UNIX_EPOCH) {
        assert_eq!(d.total, d.records.len() + d.errors.len() + d.errors_omitted);
    }
});
