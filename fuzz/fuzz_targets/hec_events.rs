#![no_main]
use garrison_ingest::{hec, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_line_bytes: 4096, max_fields: 64, max_depth: 8, ..Limits::default() };
    if let Ok(d) = hec::decode_events(data, &limits) {
        assert_eq!(d.total, d.records.len() + d.errors.len() + d.errors_omitted);
        for e in &d.errors {
            assert!(matches!(e.code, 6 | 12 | 13 | 15));
        }
    }
});
