#![no_main]
use garrison_ingest::{decode_json, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_line_bytes: 4096, max_fields: 64, max_depth: 8, ..Limits::default() };
    if let Ok(d) = decode_json(data, &limits) {
        assert_eq!(d.total, d.records.len() + d.errors.len() + d.errors_omitted);
        for w in d.errors.windows(2) {
            assert!(w[0].index < w[1].index);
        }
    }
    // Also through the decompressor (gzip magic, deflate by header).
    if let Ok(body) = garrison_ingest::decompress_body(data, Some("deflate"), &limits) {
        let _ = decode_json(&body, &limits);
    }
    let _ = garrison_ingest::decompress_body(data, None, &limits);
});
