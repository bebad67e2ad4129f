#![no_main]
use garrison_intel::{parse_csv, IndicatorSet, IndicatorValue, ImportOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = ImportOptions::new("fuzz", jiff::Timestamp::UNIX_EPOCH);
    let out = parse_csv(data, &options);
    for indicator in &out.indicators {
        // Every kept value is canonical: parsing its text again gives it back.
        let again = IndicatorValue::parse(indicator.kind(), &indicator.value.text());
        assert_eq!(again.as_ref(), Ok(&indicator.value));
    }
    // Whatever was parsed can be indexed and matched.
    let set = IndicatorSet::build(out.indicators);
    let text = String::from_utf8_lossy(data);
    let mut hits = Vec::new();
    set.match_fields(
        [("source.ip", &*text), ("dns.question.name", &*text), ("url.full", &*text)],
        &mut hits,
    );
});
