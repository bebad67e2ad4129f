#![no_main]
//! Any bytes as an access log (combined, IIS with its #Fields line, JSON): read, classified,
//! analysed and rendered in every format without a panic; the HTML never carries markup from
//! the log.
use garrison_web::{analyze, report, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let inputs = vec![("fuzz.log".to_string(), text)];
    let options = Options {
        threads: 2,
        ..Options::default()
    };
    let r = analyze(&inputs, &options, &|_| {}, &|_| None);
    let _ = report::table(&r);
    let _ = report::jsonl(&r);
    let html = report::html(&r);
    assert!(!html.contains("<script"), "markup from the log reached the page");
});
