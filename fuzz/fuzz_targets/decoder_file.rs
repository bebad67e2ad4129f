#![no_main]
//! Any text as a decoder file: loads with an error that says where, or compiles; a compiled
//! one then runs its own samples without a panic.
use garrison_decoders::{Decoder, DecoderSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Decoder::from_yaml(&text, "fuzz.yml") {
        Ok(d) => {
            let set = DecoderSet::from_decoders(vec![d]);
            let _ = set.run_samples(None);
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.yml: "), "{e}"),
    }
});
