#![no_main]
use garrison_intel::{parse_misp, IndicatorValue, ImportOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut options = ImportOptions::new("fuzz", jiff::Timestamp::UNIX_EPOCH);
    options.misp_include_non_ids = true;
    let out = parse_misp(data, &options);
    for indicator in &out.indicators {
        let again = IndicatorValue::parse(indicator.kind(), &indicator.value.text());
        assert_eq!(again.as_ref(), Ok(&indicator.value));
    }
    // The bytes as an attribute value of every type the parser maps.
    let value = String::from_utf8_lossy(data);
    for kind in ["ip-dst", "ip-src|port", "domain|ip", "url", "filename|sha256", "email-src", "hostname"] {
        let doc = serde_json::json!({"Event": {"Attribute": [{"type": kind, "value": value, "to_ids": true}]}});
        let _ = parse_misp(doc.to_string().as_bytes(), &options);
    }
});
