#![no_main]
//! Arbitrary bytes as a playbook file: validation never panics, every error has a place, and a
//! playbook that validates can be dry-run (with its declared defaults as inputs) without a panic.
use garrison_playbook::{dry_run, validate, ActionRegistry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let registry = ActionRegistry::with_core();
    let (playbook, errors) = validate(&text, &registry);
    for e in &errors {
        assert!(!e.to_string().is_empty());
    }
    if let (Some(playbook), true) = (playbook, errors.is_empty()) {
        let _ = dry_run(
            &playbook,
            &serde_json::json!({}),
            serde_json::Value::Null,
            jiff::Timestamp::UNIX_EPOCH,
        );
    }
});
