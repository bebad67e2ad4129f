#![no_main]
use garrison_intel::{parse_stix, IndicatorValue, ImportOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = ImportOptions::new("fuzz", jiff::Timestamp::UNIX_EPOCH);
    let out = parse_stix(data, &options);
    for indicator in &out.indicators {
        let again = IndicatorValue::parse(indicator.kind(), &indicator.value.text());
        assert_eq!(again.as_ref(), Ok(&indicator.value));
    }
    // The bytes as a pattern inside an indicator object.
    let pattern = String::from_utf8_lossy(data);
    let doc = serde_json::json!({"type": "indicator", "id": "indicator--f", "pattern_type": "stix", "pattern": pattern});
    let out = parse_stix(doc.to_string().as_bytes(), &options);
    assert!(out.indicators.len() + out.errors.len() + out.skipped.len() >= 1);
});
