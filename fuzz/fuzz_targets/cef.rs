#![no_main]
use garrison_ingest::cef;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = cef::parse(&s);
    let _ = cef::parse(&format!("CEF:0|{s}"));
    // Escaping then parsing gives the value back.
    let v: String = s.chars().filter(|c| *c != '\0').collect();
    let v = v.trim_end_matches(' ');
    if !v.is_empty() {
        let msg = format!("CEF:0|v|p|1|s|n|5|k={}", cef::escape_value(v));
        let m = cef::parse(&msg).expect("escaped message parses");
        assert_eq!(m["extensions"]["k"].as_str(), Some(v), "{msg}");
    }
});
