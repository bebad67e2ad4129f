#![no_main]
//! garrison-hunt's readers on arbitrary bytes: as a whole file (format by content, `.evtx` by
//! name), and as the chunks of an EVTX file behind a valid file signature.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((events, stats)) = garrison_hunt::read_buffer_events("fuzz.evtx", data.to_vec()) {
        assert_eq!(events.len() as u64, stats.events);
    }
    let mut file = vec![0u8; 4096];
    file[..8].copy_from_slice(b"ElfFile\0");
    file.extend_from_slice(data);
    if let Ok((events, stats)) = garrison_hunt::read_buffer_events("fuzz.evtx", file) {
        assert_eq!(events.len() as u64, stats.events);
        for e in &events {
            let _ = e.meta();
        }
    }
});
