//! Readers never panic, whatever the bytes, whatever the name.

use crate::common::{corpus_dir, files_with_ext};
use garrison_hunt::read_events;
use proptest::prelude::*;
use std::sync::OnceLock;

/// A small real EVTX file to mutate (or an empty one without the corpus).
fn seed_evtx() -> &'static [u8] {
    static SEED: OnceLock<Vec<u8>> = OnceLock::new();
    SEED.get_or_init(|| {
        corpus_dir("evtx-attack-samples")
            .and_then(|d| {
                let mut files = files_with_ext(&d, "evtx");
                files.sort_by_key(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0));
                files.first().and_then(|f| std::fs::read(f).ok())
            })
            .unwrap_or_default()
    })
}

fn read_as(name: &str, bytes: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).expect("write");
    // Errors are fine; panics are not. Counts must add up.
    if let Ok((events, stats)) = read_events(&p) {
        assert_eq!(events.len() as u64, stats.events);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, bytes).expect("gzip");
    enc.finish().expect("gzip")
}

fn zip_of(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.start_file(name, zip::write::SimpleFileOptions::default())
        .expect("zip");
    std::io::Write::write_all(&mut z, bytes).expect("zip");
    z.finish().expect("zip").into_inner()
}

const NAMES: &[&str] = &[
    "x.json",
    "x.jsonl",
    "x.ndjson",
    "x.evtx",
    "x.gz",
    "x.json.gz",
    "x.zip",
    "x.tar",
    "x.bin",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_under_any_name(bytes in proptest::collection::vec(any::<u8>(), 0..4096), name in 0..NAMES.len()) {
        read_as(NAMES[name], &bytes);
    }

    #[test]
    fn magic_prefixed_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..70_000), kind in 0..4usize) {
        let prefix: &[u8] = [&b"ElfFile\0"[..], &[0x1f, 0x8b, 8, 0][..], &b"PK\x03\x04"[..], &b"{\"a\":"[..]][kind];
        let mut data = prefix.to_vec();
        data.extend_from_slice(&bytes);
        read_as(["a.evtx", "a.gz", "a.zip", "a.jsonl"][kind], &data);
    }

    #[test]
    fn mutated_evtx(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..64), cut in any::<prop::sample::Index>()) {
        let seed = seed_evtx();
        if !seed.is_empty() {
            let mut data = seed.to_vec();
            for (at, byte) in &flips {
                let i = at.index(data.len());
                data[i] = *byte;
            }
            read_as("m.evtx", &data);
            // Also cut short, and wrapped in gzip and zip.
            let end = 4096 + cut.index(data.len() - 4096);
            read_as("c.evtx", &data[..end]);
            read_as("m.evtx.gz", &gzip(&data[..end]));
            read_as("m.zip", &zip_of("inner/m.evtx", &data));
        }
    }

    #[test]
    fn json_like_text(lines in proptest::collection::vec("[ -~]{0,80}", 0..40), wrap in 0..3usize) {
        let text = lines.iter().map(|l| format!("{{\"EventID\":{},\"X\":{l:?}}}{l}", l.len())).collect::<Vec<_>>().join("\n");
        match wrap {
            0 => read_as("t.jsonl", text.as_bytes()),
            1 => read_as("t.json.gz", &gzip(text.as_bytes())),
            _ => read_as("t.zip", &zip_of("t.json", text.as_bytes())),
        }
    }
}

/// JSON lines in archives are parsed while they are read, chunk by chunk: events, skipped
/// lines and their line numbers are the same as for the plain file, across chunk boundaries.
#[test]
fn streamed_json_lines_read_like_the_plain_file() {
    let mut text = String::from("\u{feff}\n  \n");
    for i in 0..5000 {
        if i % 1777 == 5 {
            text.push_str("{not json\r\n");
        } else {
            // Some long lines, to cross the byte limit of a chunk too.
            let pad = "p".repeat(if i % 3 == 0 { 2000 } else { 10 });
            text.push_str(&format!("{{\"EventID\":{i},\"Pad\":\"{pad}\"}}\n"));
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let read = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        let (events, stats) = read_events(&p).expect("read");
        let ids: Vec<Option<u32>> = events.iter().map(|e| e.event_id()).collect();
        let warnings: Vec<String> = stats
            .warnings
            .iter()
            .map(|w| {
                w.rsplit_once(": line ")
                    .map(|x| x.1.to_string())
                    .unwrap_or_default()
            })
            .collect();
        (ids, stats.records_skipped, warnings)
    };
    let plain = read("a.jsonl", text.as_bytes());
    assert_eq!(plain.0.len(), 4997);
    assert_eq!(plain.1, 3);
    assert_eq!(read("a.zip", &zip_of("in/a.jsonl", text.as_bytes())), plain);
    assert_eq!(read("a.jsonl.gz", &gzip(text.as_bytes())), plain);
}
