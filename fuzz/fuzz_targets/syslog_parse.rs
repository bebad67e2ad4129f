#![no_main]
use garrison_ingest::normalize::{FieldMapping, Normalizer};
use garrison_ingest::{syslog, Limits, Timestamp};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static NORMALIZER: OnceLock<Normalizer> = OnceLock::new();
    let normalizer = NORMALIZER.get_or_init(|| Normalizer::new(&FieldMapping::builtin()));
    let received = Timestamp::from_second(1_710_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
    if let Ok(r) = syslog::parse(data, received, &Limits::default()) {
        assert!(r.raw.is_some());
        assert!(r.fields.get("message").is_some());
        let _ = normalizer.normalize(&r.fields);
    }
});
