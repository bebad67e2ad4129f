//! The durable event log: the point where Garrison acknowledges data.
//!
//! Appenders hand over a payload (a batch of events, already serialised); one writer thread
//! appends every pending payload as a checksummed, compressed frame, calls `fdatasync` once for
//! all of them (group commit), and only then completes each appender's future. A completed
//! append is therefore on disk: a `kill -9` after it loses nothing.
//!
//! Positions are global byte offsets. Segment files are named by the position of their first
//! byte (`00000000000000000000.seg`), so a position names exactly one place in one file.
//! Consumers (the store indexer, later detection) read frames after a position they commit
//! themselves, atomically with what they derived from the frames: exactly-once downstream.
//!
//! **Invariant:** a frame below the published committed end has been fsynced and never changes.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

/// Frame header: magic (4) + compressed length (4) + crc32 of the compressed bytes (4).
const FRAME_MAGIC: [u8; 4] = *b"GRL1";
const HEADER_LEN: u64 = 12;
/// A frame larger than this is corruption, not data: appends are bounded far below it.
const MAX_FRAME_BYTES: u32 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("event log I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("event log is busy: {pending} appends are waiting for the disk")]
    Busy { pending: usize },
    #[error("event log is closed")]
    Closed,
    #[error("payload of {size} bytes exceeds the frame limit of {limit} bytes")]
    TooLarge { size: usize, limit: u32 },
    #[error("corrupt frame in {path} at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub dir: PathBuf,
    /// A segment is closed and a new one started once it grows past this.
    pub segment_bytes: u64,
    /// Appends waiting for the writer beyond this are refused with [`LogError::Busy`].
    pub max_pending_appends: usize,
    /// `false` only in benchmarks that want to measure everything but the disk flush.
    pub fsync: bool,
}

impl LogConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogConfig {
            dir: dir.into(),
            segment_bytes: 128 * 1024 * 1024,
            max_pending_appends: 1024,
            fsync: true,
        }
    }
}

struct AppendRequest {
    frame: Vec<u8>,
    done: oneshot::Sender<Result<u64, LogError>>,
}

/// Handle to append to the log. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    tx: mpsc::Sender<AppendRequest>,
    committed: watch::Receiver<u64>,
    max_pending: usize,
    appended_frames: AtomicU64,
}

/// Encodes a payload as a frame: compress, checksum, header. Done by the appender's task so
/// that compression runs on every core, not on the single writer thread.
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, LogError> {
    let too_large = || LogError::TooLarge {
        size: payload.len(),
        limit: MAX_FRAME_BYTES,
    };
    // One buffer: header, then the uncompressed size and the compressed block right after it
    // (the layout `compress_prepend_size` makes), so the block is never copied.
    let bound = 4 + lz4_flex::block::get_maximum_output_size(payload.len());
    let mut frame = vec![0u8; HEADER_LEN as usize + bound];
    let header = HEADER_LEN as usize;
    let uncompressed = u32::try_from(payload.len()).map_err(|_| too_large())?;
    frame[header..header + 4].copy_from_slice(&uncompressed.to_le_bytes());
    let written = lz4_flex::block::compress_into(payload, &mut frame[header + 4..])
        .map_err(|_| too_large())?;
    let body_len = 4 + written;
    frame.truncate(header + body_len);
    let len = u32::try_from(body_len)
        .ok()
        .filter(|len| *len <= MAX_FRAME_BYTES)
        .ok_or_else(too_large)?;
    let crc = crc32fast::hash(&frame[header..]);
    frame[0..4].copy_from_slice(&FRAME_MAGIC);
    frame[4..8].copy_from_slice(&len.to_le_bytes());
    frame[8..12].copy_from_slice(&crc.to_le_bytes());
    Ok(frame)
}

impl EventLog {
    /// Opens (or creates) the log in `config.dir`, repairs a torn tail left by a crash (frames
    /// that were never acknowledged), and starts the writer thread.
    pub fn open(config: LogConfig) -> Result<EventLog, LogError> {
        fs::create_dir_all(&config.dir).map_err(io_err(&config.dir))?;
        let segments = list_segments(&config.dir)?;
        let (base, file, end) = match segments.last() {
            Some(&base) => {
                let path = segment_path(&config.dir, base);
                let valid_len = scan_valid_prefix(&path)?;
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                let actual_len = file.metadata().map_err(io_err(&path))?.len();
                if actual_len != valid_len {
                    tracing::warn!(
                        segment = %path.display(),
                        valid_len,
                        actual_len,
                        "truncating a torn tail of the event log (never acknowledged)"
                    );
                    file.set_len(valid_len).map_err(io_err(&path))?;
                    file.sync_all().map_err(io_err(&path))?;
                }
                (base, file, base + valid_len)
            }
            None => {
                let path = segment_path(&config.dir, 0);
                let file = create_segment(&config.dir, &path)?;
                (0, file, 0)
            }
        };
        let (tx, rx) = mpsc::channel(config.max_pending_appends.max(1));
        let (committed_tx, committed_rx) = watch::channel(end);
        let writer = Writer {
            dir: config.dir.clone(),
            segment_bytes: config.segment_bytes,
            fsync: config.fsync,
            base,
            file,
            end,
            committed: committed_tx,
        };
        std::thread::Builder::new()
            .name("garrison-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err(&config.dir))?;
        Ok(EventLog {
            inner: Arc::new(Inner {
                dir: config.dir,
                tx,
                committed: committed_rx,
                max_pending: config.max_pending_appends,
                appended_frames: AtomicU64::new(0),
            }),
        })
    }

    /// Appends one payload; resolves once it is durable, with the log position after it.
    /// Refuses at once with [`LogError::Busy`] when the writer is saturated (backpressure).
    pub async fn append(&self, payload: &[u8]) -> Result<u64, LogError> {
        let frame = encode_frame(payload)?;
        let (done, wait) = oneshot::channel();
        match self.inner.tx.try_send(AppendRequest { frame, done }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(LogError::Busy {
                    pending: self.inner.max_pending,
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(LogError::Closed),
        }
        let position = wait.await.map_err(|_| LogError::Closed)??;
        self.inner.appended_frames.fetch_add(1, Ordering::Relaxed);
        Ok(position)
    }

    /// Appends waiting for the writer right now (a queue-depth gauge).
    pub fn pending_appends(&self) -> usize {
        self.inner
            .max_pending
            .saturating_sub(self.inner.tx.capacity())
    }

    /// Most appends that may wait for the writer before new ones are refused.
    pub fn max_pending_appends(&self) -> usize {
        self.inner.max_pending
    }

    /// The position up to which the log is durable.
    pub fn committed_end(&self) -> u64 {
        *self.inner.committed.borrow()
    }

    /// A receiver that changes whenever more of the log becomes durable.
    pub fn watch_committed(&self) -> watch::Receiver<u64> {
        self.inner.committed.clone()
    }

    pub fn reader(&self, from: u64) -> LogReader {
        LogReader::new(&self.inner.dir, from)
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Deletes whole segments that lie entirely before `position` (every consumer is past them).
    /// Returns the number of segments removed.
    pub fn remove_segments_before(&self, position: u64) -> Result<usize, LogError> {
        let segments = list_segments(&self.inner.dir)?;
        let mut removed = 0;
        for pair in segments.windows(2) {
            let (base, next_base) = (pair[0], pair[1]);
            if next_base <= position {
                let path = segment_path(&self.inner.dir, base);
                fs::remove_file(&path).map_err(io_err(&path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The first position still on disk (earlier segments were removed), or the committed end
    /// when no segment is left. A consumer that fell behind it can only resume from here.
    pub fn oldest_position(&self) -> u64 {
        list_segments(&self.inner.dir)
            .ok()
            .and_then(|segments| segments.first().copied())
            .unwrap_or_else(|| self.committed_end())
    }

    /// Bytes on disk in all segments.
    pub fn disk_bytes(&self) -> u64 {
        list_segments(&self.inner.dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|base| fs::metadata(segment_path(&self.inner.dir, *base)).ok())
            .map(|m| m.len())
            .sum()
    }
}

struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    fsync: bool,
    base: u64,
    file: File,
    end: u64,
    committed: watch::Sender<u64>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<AppendRequest>) {
        let mut batch = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut bytes = first.frame.len();
            batch.push(first);
            // Group commit: take everything that queued while the last flush ran.
            while bytes < 64 * 1024 * 1024 {
                match rx.try_recv() {
                    Ok(request) => {
                        bytes += request.frame.len();
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            let result = self.write_all(&batch);
            for request in batch.drain(..) {
                let answer = match &result {
                    Ok(end) => Ok(*end),
                    Err(e) => Err(LogError::Io {
                        path: self.dir.clone(),
                        source: io::Error::other(e.to_string()),
                    }),
                };
                // The appender may have gone away (client disconnected): the data is durable.
                let _ = request.done.send(answer);
            }
        }
    }

    fn write_all(&mut self, batch: &[AppendRequest]) -> Result<u64, LogError> {
        let path = segment_path(&self.dir, self.base);
        let before = self.end;
        let result = (|| -> io::Result<()> {
            self.file.seek(SeekFrom::Start(self.end - self.base))?;
            for request in batch {
                self.file.write_all(&request.frame)?;
            }
            if self.fsync {
                self.file.sync_data()?;
            }
            Ok(())
        })();
        if let Err(source) = result {
            // Leave the file as it was before this group so later appends stay aligned.
            let _ = self.file.set_len(before - self.base);
            return Err(LogError::Io { path, source });
        }
        let written: usize = batch.iter().map(|r| r.frame.len()).sum();
        self.end += written as u64;
        self.committed.send_replace(self.end);
        if self.end - self.base >= self.segment_bytes {
            self.rotate()?;
        }
        Ok(self.end)
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        let path = segment_path(&self.dir, self.end);
        self.file = create_segment(&self.dir, &path)?;
        self.base = self.end;
        Ok(())
    }
}

fn create_segment(dir: &Path, path: &Path) -> Result<File, LogError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err(path))?;
    // Make the new directory entry durable too, or a crash could lose the whole segment.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(file)
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".seg") {
            if let Ok(base) = stem.parse::<u64>() {
                bases.push(base);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Length of the longest prefix of whole, checksum-valid frames.
fn scan_valid_prefix(path: &Path) -> Result<u64, LogError> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut valid = 0u64;
    loop {
        match read_frame(&mut reader) {
            Ok(Some(frame)) => valid += HEADER_LEN + frame.len() as u64,
            Ok(None) | Err(_) => return Ok(valid),
        }
    }
}

/// Reads one frame's compressed bytes; `Ok(None)` at a clean end of file.
fn read_frame(reader: &mut impl Read) -> Result<Option<Vec<u8>>, String> {
    let mut header = [0u8; HEADER_LEN as usize];
    let mut filled = 0;
    while filled < header.len() {
        match reader.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err("truncated frame header".into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    if header[0..4] != FRAME_MAGIC {
        return Err("bad frame magic".into());
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if len > MAX_FRAME_BYTES {
        return Err(format!("frame length {len} exceeds the limit"));
    }
    let mut body = vec![0u8; len as usize];
    reader
        .read_exact(&mut body)
        .map_err(|_| "truncated frame body".to_string())?;
    if crc32fast::hash(&body) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(Some(body))
}

/// One payload read back, with the position just after its frame (what a consumer commits).
#[derive(Debug)]
pub struct LogEntry {
    pub position_after: u64,
    pub payload: Vec<u8>,
}

/// Sequential reader from a position. Reads only what the writer has committed.
pub struct LogReader {
    dir: PathBuf,
    position: u64,
    open: Option<(u64, BufReader<File>)>,
}

impl LogReader {
    fn new(dir: &Path, position: u64) -> LogReader {
        LogReader {
            dir: dir.to_path_buf(),
            position,
            open: None,
        }
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    /// Reads whole entries from the current position up to `committed_end`, at most
    /// `max_entries` of them.
    pub fn read(
        &mut self,
        committed_end: u64,
        max_entries: usize,
    ) -> Result<Vec<LogEntry>, LogError> {
        let mut entries = Vec::new();
        while self.position < committed_end && entries.len() < max_entries {
            self.ensure_open()?;
            let Some((base, reader)) = self.open.as_mut() else {
                break;
            };
            let path = segment_path(&self.dir, *base);
            match read_frame(reader) {
                Ok(Some(compressed)) => {
                    let offset = self.position;
                    self.position += HEADER_LEN + compressed.len() as u64;
                    let payload =
                        lz4_flex::decompress_size_prepended(&compressed).map_err(|e| {
                            LogError::Corrupt {
                                path: path.clone(),
                                offset: offset - *base,
                                reason: e.to_string(),
                            }
                        })?;
                    entries.push(LogEntry {
                        position_after: self.position,
                        payload,
                    });
                }
                Ok(None) => {
                    // End of this segment: the next one starts exactly here.
                    self.open = None;
                    let next = segment_path(&self.dir, self.position);
                    if !next.exists() {
                        break;
                    }
                }
                Err(reason) => {
                    return Err(LogError::Corrupt {
                        path,
                        offset: self.position - *base,
                        reason,
                    })
                }
            }
        }
        Ok(entries)
    }

    fn ensure_open(&mut self) -> Result<(), LogError> {
        if self.open.is_some() {
            return Ok(());
        }
        let segments = list_segments(&self.dir)?;
        let Some(&base) = segments.iter().rev().find(|b| **b <= self.position) else {
            return Err(LogError::Corrupt {
                path: self.dir.clone(),
                offset: self.position,
                reason: "no segment holds this position (removed too early?)".into(),
            });
        };
        let path = segment_path(&self.dir, base);
        let mut file = File::open(&path).map_err(io_err(&path))?;
        file.seek(SeekFrom::Start(self.position - base))
            .map_err(io_err(&path))?;
        self.open = Some((base, BufReader::with_capacity(1 << 20, file)));
        Ok(())
    }
}
