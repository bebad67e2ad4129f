#![no_main]
use garrison_ingest::leef;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = leef::parse(&s);
    let _ = leef::parse(&format!("LEEF:1.0|{s}"));
    let _ = leef::parse(&format!("LEEF:2.0|{s}"));
});
