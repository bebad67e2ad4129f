#![no_main]
use garrison_ingest::syslog::Framer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte picks the chunk size, so splits are explored too.
    let Some((&chunk, stream)) = data.split_first() else { return };
    let chunk = usize::from(chunk % 32) + 1;
    let mut framer = Framer::new(64);
    for part in stream.chunks(chunk) {
        framer.push(part);
        while let Some(frame) = framer.next_frame() {
            if let Ok(f) = frame {
                assert!(f.len() <= 64);
            }
        }
    }
    if let Some(f) = framer.finish() {
        assert!(f.len() <= 64);
    }
});
