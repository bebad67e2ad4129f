//! Readers over the real corpus: every EVTX sample, the OTRF JSON archives, damaged copies.

use crate::common::{corpus_dir, files_with_ext};
use garrison_hunt::{read_events, read_file, NoProgress};

/// The EVTX-ATTACK-SAMPLES README counts 8,255 events; all 277 files are present here (the one
/// large file the corpus README says is absent is not among the 277).
const EXPECTED_EVTX_EVENTS: u64 = 8_255;

#[test]
fn every_evtx_sample_is_read_whole() {
    let Some(dir) = corpus_dir("evtx-attack-samples") else {
        return;
    };
    let files = files_with_ext(&dir, "evtx");
    assert_eq!(files.len(), 277, "EVTX files in the corpus");
    let (mut events, mut skipped, mut chunks_skipped) = (0, 0, 0);
    for f in &files {
        let (batches, stats) = read_file(
            f,
            &|evs: Vec<garrison_hunt::HuntEvent>| {
                // Every event has the System fields a hit reports.
                for e in &evs {
                    assert!(e.record_id.is_some() && e.header_time.is_some());
                    assert!(e.fields.get("EventID").is_some(), "{}: no EventID", e.file);
                    // ETW traces have a null Channel, but the key is there.
                    assert!(e.fields.get("Channel").is_some(), "{}: no Channel", e.file);
                    assert!(e.computer().is_some(), "{}: no Computer", e.file);
                }
                evs.len() as u64
            },
            &NoProgress,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(batches.iter().sum::<u64>(), stats.events);
        events += stats.events;
        skipped += stats.records_skipped;
        chunks_skipped += stats.chunks_skipped;
    }
    assert_eq!(events, EXPECTED_EVTX_EVENTS);
    assert_eq!((skipped, chunks_skipped), (0, 0));
}

#[test]
fn whole_evtx_folder_through_collect_inputs() {
    let Some(dir) = corpus_dir("evtx-attack-samples") else {
        return;
    };
    let inputs = garrison_hunt::collect_inputs(&[dir]).expect("walk");
    // The folder also holds metadata (.csv/.md/.ps1...) that the walk leaves out.
    assert_eq!(inputs.files.len(), 277);
    assert!(inputs.errors.is_empty());
}

#[test]
fn otrf_archives_are_read() {
    let Some(dir) = corpus_dir("otrf-atomic-windows") else {
        return;
    };
    let inputs = garrison_hunt::collect_inputs(&[dir]).expect("walk");
    assert!(inputs.files.len() >= 50, "{} archives", inputs.files.len());
    let (mut total, mut with_events) = (0, 0);
    for f in &inputs.files {
        let (events, stats) =
            read_events(&f.path).unwrap_or_else(|e| panic!("{}: {e}", f.path.display()));
        if events.is_empty() {
            // Some archives hold only a packet capture.
            assert!(stats.members_failed.is_empty());
            continue;
        }
        with_events += 1;
        assert!(
            stats.members_failed.is_empty(),
            "{:?}",
            stats.members_failed
        );
        assert!(
            stats.records_skipped * 100 <= stats.events.max(1),
            "{}: {} of {} lines bad",
            f.path.display(),
            stats.records_skipped,
            stats.events
        );
        // Archive members are named `archive:member`.
        assert!(events[0].file.contains(':'), "{}", events[0].file);
        let with_channel = events.iter().filter(|e| e.channel().is_some()).count();
        assert!(
            with_channel * 2 >= events.len(),
            "{}: few channels",
            f.path.display()
        );
        total += events.len();
    }
    assert!(total > 100_000, "{total} events");
    // 37 zips and 4 tar.gz hold JSON; the other 13 zips hold only packet captures. The 4
    // tar.gz files are cut short in the corpus: what they hold is read.
    assert_eq!(with_events, 41, "archives with events");
}

/// The sample with the most events, to have several full chunks to damage.
fn multi_chunk_sample() -> Option<Vec<u8>> {
    let dir = corpus_dir("evtx-attack-samples")?;
    let best = files_with_ext(&dir, "evtx")
        .into_iter()
        .max_by_key(|f| read_events(f).map(|(_, s)| s.events).unwrap_or(0))?;
    let bytes = std::fs::read(&best).ok()?;
    assert!(bytes.len() > 4096 + 3 * 65536, "{}", best.display());
    Some(bytes)
}

fn count_whole(bytes: &[u8]) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("whole.evtx");
    std::fs::write(&p, bytes).expect("write");
    read_events(&p).expect("read").1.events
}

#[test]
fn truncated_evtx_yields_its_whole_records() {
    let Some(bytes) = multi_chunk_sample() else {
        return;
    };
    let all = count_whole(&bytes);
    let dir = tempfile::tempdir().expect("tempdir");
    // Cut the file 30,000 bytes into its third chunk.
    let cut = 4096 + 2 * 65536 + 30_000;
    let p = dir.path().join("truncated.evtx");
    std::fs::write(&p, &bytes[..cut]).expect("write");
    let (events, stats) = read_events(&p).expect("a truncated file is still read");
    let two_chunks = {
        let p2 = dir.path().join("two.evtx");
        std::fs::write(&p2, &bytes[..4096 + 2 * 65536]).expect("write");
        read_events(&p2).expect("read").1.events
    };
    assert!(
        stats.events > two_chunks && stats.events < all,
        "two chunks {two_chunks}, truncated {}, whole {all}",
        stats.events
    );
    assert_eq!(events.len() as u64, stats.events);
    assert!(
        stats.records_skipped >= 1,
        "the cut record is reported: {stats:?}"
    );
    assert!(
        stats.warnings.iter().any(|w| w.contains("truncated")),
        "{stats:?}"
    );
    // Record ids stay unique and whole records are intact.
    let mut ids: Vec<u64> = events.iter().filter_map(|e| e.record_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len());
}

#[test]
fn corrupted_evtx_skips_bad_chunks_and_records() {
    let Some(bytes) = multi_chunk_sample() else {
        return;
    };
    let all = count_whole(&bytes);
    let dir = tempfile::tempdir().expect("tempdir");

    // A chunk whose header magic is destroyed is skipped; the other chunks are read.
    let mut bad_magic = bytes.clone();
    bad_magic[4096 + 65536..4096 + 65536 + 8].copy_from_slice(b"garbage!");
    let p = dir.path().join("bad_magic.evtx");
    std::fs::write(&p, &bad_magic).expect("write");
    let (_, stats) = read_events(&p).expect("read");
    assert_eq!(stats.chunks_skipped, 1, "{stats:?}");
    assert!(stats.events > 0 && stats.events < all);
    assert!(
        stats.warnings.iter().any(|w| w.contains("corrupt chunk")),
        "{stats:?}"
    );

    // Garbage in the middle of a chunk's records: records there are lost, the rest are read.
    let mut garbage = bytes.clone();
    let start = 4096 + 65536 + 8192;
    for (i, b) in garbage[start..start + 4096].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    let p = dir.path().join("garbage.evtx");
    std::fs::write(&p, &garbage).expect("write");
    let (events, stats) = read_events(&p).expect("read");
    assert!(
        stats.events > 0 && stats.events < all,
        "{} of {all}",
        stats.events
    );
    assert!(
        stats.records_skipped + stats.chunks_skipped > 0,
        "the damage is reported: {stats:?}"
    );
    assert_eq!(events.len() as u64, stats.events);
}

#[test]
fn evtx_in_gzip_zip_and_tar_is_read() {
    let Some(dir) = corpus_dir("evtx-attack-samples") else {
        return;
    };
    let files = files_with_ext(&dir, "evtx");
    let sample = &files[files.len() / 2];
    let bytes = std::fs::read(sample).expect("read sample");
    let expected = count_whole(&bytes);
    let tmp = tempfile::tempdir().expect("tempdir");

    let gz = tmp.path().join("sample.evtx.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &bytes).expect("gzip");
    std::fs::write(&gz, enc.finish().expect("gzip")).expect("write");
    let (events, _) = read_events(&gz).expect("gz");
    assert_eq!(events.len() as u64, expected);
    assert_eq!(&*events[0].file, gz.display().to_string());

    let zip_path = tmp.path().join("logs.zip");
    {
        let f = std::fs::File::create(&zip_path).expect("create");
        let mut z = zip::ZipWriter::new(f);
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("inner/a.evtx", o).expect("zip");
        std::io::Write::write_all(&mut z, &bytes).expect("zip");
        z.start_file("inner/readme.txt", o).expect("zip");
        std::io::Write::write_all(&mut z, b"not a log").expect("zip");
        z.start_file("b.jsonl", o).expect("zip");
        std::io::Write::write_all(&mut z, b"{\"EventID\":1}\n{\"EventID\":2}\nnot json\n")
            .expect("zip");
        z.finish().expect("zip");
    }
    let (events, stats) = read_events(&zip_path).expect("zip");
    assert_eq!(events.len() as u64, expected + 2);
    assert_eq!(stats.records_skipped, 1);
    let inner = format!("{}:inner/a.evtx", zip_path.display());
    assert!(events.iter().any(|e| *e.file == inner), "member naming");

    let tar_path = tmp.path().join("logs.tar");
    {
        let f = std::fs::File::create(&tar_path).expect("create");
        let mut t = tar::Builder::new(f);
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, "x/sample.evtx", bytes.as_slice())
            .expect("tar");
        t.finish().expect("tar");
    }
    let (events, _) = read_events(&tar_path).expect("tar");
    assert_eq!(events.len() as u64, expected);
}

#[test]
fn json_shapes() {
    use garrison_hunt::read_buffer_events;
    let read = |name: &str, text: &str| read_buffer_events(name, text.as_bytes().to_vec());
    // One object, an array, concatenated pretty objects, JSON lines, a BOM, CRLF.
    assert_eq!(read("a.json", "{\"a\":1}").expect("one").1.events, 1);
    assert_eq!(
        read("a.json", " [{\"a\":1},{\"a\":2}, 3]")
            .expect("array")
            .1
            .events,
        2
    );
    let (_, s) = read("a.json", "{\n \"a\": 1\n}\n{\n \"a\": 2\n}\n").expect("concatenated");
    assert_eq!(s.events, 2);
    let (_, s) = read("a.jsonl", "\u{feff}{\"a\":1}\r\n\r\n{\"a\":2}\r\n").expect("lines");
    assert_eq!((s.events, s.records_skipped), (2, 0));
    // A bad first line does not lose the rest.
    let (_, s) = read("a.jsonl", "{\"a\":\n{\"a\":2}\n[1]\n").expect("bad first line");
    assert_eq!((s.events, s.records_skipped), (1, 2));
    assert_eq!(read("a.json", "").expect("empty").1.events, 0);
    assert!(read("a.json", "hello").is_err());
    assert!(read("a.bin", "hello").is_err());
}
