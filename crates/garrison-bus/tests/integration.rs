//! Event log behaviour: durability of what was acknowledged, repair of torn tails, rotation.

use garrison_bus::{EventLog, LogConfig, LogError};
use proptest::prelude::*;
use std::io::Write;

fn config(dir: &std::path::Path) -> LogConfig {
    let mut config = LogConfig::new(dir);
    config.segment_bytes = 4096;
    config
}

/// Incompressible bytes, so frames fill segments at a known pace.
fn noise(seed: u32) -> Vec<u8> {
    let mut state = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..300)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn read_all(log: &EventLog, from: u64) -> Vec<Vec<u8>> {
    let mut reader = log.reader(from);
    let mut out = Vec::new();
    loop {
        let entries = reader.read(log.committed_end(), 100).expect("read");
        if entries.is_empty() {
            return out;
        }
        out.extend(entries.into_iter().map(|e| e.payload));
    }
}

#[tokio::test]
async fn appended_payloads_read_back_in_order_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = EventLog::open(config(dir.path())).expect("open");
    let payloads: Vec<Vec<u8>> = (0..200u32)
        .map(|i| format!("payload {i} {}", "x".repeat((i % 97) as usize)).into_bytes())
        .collect();
    for p in &payloads {
        log.append(p).await.expect("append");
    }
    let segments = std::fs::read_dir(dir.path()).expect("dir").count();
    assert!(
        segments > 1,
        "expected rotation, found {segments} segment(s)"
    );
    assert_eq!(read_all(&log, 0), payloads);
}

#[tokio::test]
async fn reopen_keeps_acknowledged_frames_and_drops_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = LogConfig::new(dir.path());
    config.segment_bytes = 1 << 30;
    let end = {
        let log = EventLog::open(config.clone()).expect("open");
        log.append(b"first").await.expect("append");
        log.append(b"second").await.expect("append")
    };
    // A crash mid-write leaves half a frame behind.
    let segment = dir.path().join(format!("{:020}.seg", 0));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("open seg");
    file.write_all(b"GRL1\x10\x00\x00\x00garbage")
        .expect("write");
    drop(file);

    let log = EventLog::open(config).expect("reopen");
    assert_eq!(log.committed_end(), end);
    log.append(b"third").await.expect("append after repair");
    assert_eq!(
        read_all(&log, 0),
        vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
    );
}

#[tokio::test]
async fn reading_resumes_from_a_committed_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = EventLog::open(config(dir.path())).expect("open");
    let after_first = log.append(b"one").await.expect("append");
    log.append(b"two").await.expect("append");
    assert_eq!(read_all(&log, after_first), vec![b"two".to_vec()]);
}

#[tokio::test]
async fn consumed_segments_are_removed_and_the_rest_still_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = EventLog::open(config(dir.path())).expect("open");
    let mut positions = Vec::new();
    for i in 0..100u32 {
        positions.push(log.append(&noise(i)).await.expect("append"));
    }
    let middle = positions[49];
    let removed = log.remove_segments_before(middle).expect("remove");
    assert!(removed > 0);
    let rest = read_all(&log, middle);
    assert_eq!(rest.len(), 50);
    assert_eq!(rest[0], noise(50));
}

#[tokio::test]
async fn a_corrupted_committed_frame_is_reported_not_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = LogConfig::new(dir.path());
    config.segment_bytes = 1 << 30;
    let log = EventLog::open(config).expect("open");
    log.append(b"hello world").await.expect("append");
    let segment = dir.path().join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&segment).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&segment, bytes).expect("write");
    let mut reader = log.reader(0);
    match reader.read(log.committed_end(), 10) {
        Err(LogError::Corrupt { reason, .. }) => assert!(reason.contains("checksum"), "{reason}"),
        other => panic!("expected corruption error, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn any_payloads_round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 1..20)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EventLog::open(config(dir.path())).expect("open");
        runtime.block_on(async {
            for p in &payloads {
                log.append(p).await.expect("append");
            }
        });
        prop_assert_eq!(read_all(&log, 0), payloads);
    }

    #[test]
    fn reopening_after_arbitrary_trailing_bytes_never_fails(tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = LogConfig::new(dir.path());
        config.segment_bytes = 1 << 30;
        {
            let log = EventLog::open(config.clone()).expect("open");
            runtime.block_on(async { log.append(b"kept").await.expect("append") });
        }
        let segment = dir.path().join(format!("{:020}.seg", 0));
        let mut file = std::fs::OpenOptions::new().append(true).open(&segment).expect("open seg");
        file.write_all(&tail).expect("write");
        drop(file);
        let log = EventLog::open(config).expect("reopen");
        let all = read_all(&log, 0);
        prop_assert_eq!(all.first().cloned(), Some(b"kept".to_vec()));
    }
}
