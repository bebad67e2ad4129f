#![no_main]
//! Each extractor kind (key=value, CSV, regex, grok, JSON, pairs, and a `then` step) on any
//! text: a decoder made of that one kind recognises everything, so the input always reaches
//! the extractor.
use std::sync::OnceLock;

use garrison_decoders::{decode_record, Decoder, DecoderSet};
use libfuzzer_sys::fuzz_target;

const KINDS: &[&str] = &[
    "  - kv: {separator: ' ', quotes: \"\\\"'\"}",
    "  - kv: {separator: ';', assign: ':', key_prefix: 'x.'}",
    "  - csv: {separator: ',', columns: [a, b, '-', d], allow_short: false}",
    "  - csv: {separator: ' ', quote: '', columns: [a, b]}",
    "  - regex: '^(?P<a>\\S+) (?P<b>\\d+)'",
    "  - grok: '%{COMBINEDAPACHELOG}'",
    "  - grok: '%{IPORHOST:h} %{HTTPDATE:t} %{NUMBER:n:int} %{QS:q}'",
    "  - json: {from_brace: true}",
    "  - pairs: '<Data Name=\"(?P<key>[^\"]+)\">(?P<value>[^<]*)</Data>'",
    "  - regex: '^(?P<head>\\w+): (?P<rest>.*)$'\n    then:\n      - kv: {}\n        on: rest",
];

fn sets() -> &'static Vec<DecoderSet> {
    static SETS: OnceLock<Vec<DecoderSet>> = OnceLock::new();
    SETS.get_or_init(|| {
        KINDS
            .iter()
            .map(|kind| {
                let yaml = format!(
                    "name: k\ntitle: k\norigin: fuzz\nmatch: {{pattern: ''}}\nparse:\n{kind}\nfields: {{source.ip: a}}\nconvert: {{b: int}}\ntime: {{field: t, format: '%d/%b/%Y:%H:%M:%S %z'}}\n"
                );
                let d = Decoder::from_yaml(&yaml, "fuzz").expect("kind decoder compiles");
                DecoderSet::from_decoders(vec![d])
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let set = &sets()[first as usize % KINDS.len()];
    let mut record = serde_json::Map::new();
    record.insert(
        "message".into(),
        serde_json::Value::String(String::from_utf8_lossy(rest).into_owned()),
    );
    let _ = decode_record(set, &garrison_ingest::Record::from_fields(record));
});
