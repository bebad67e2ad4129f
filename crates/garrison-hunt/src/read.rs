//! Readers: find input files and turn them into [`HuntEvent`]s, in parallel.
//!
//! Formats, recognised by content first and by name second:
//! * EVTX (`ElfFile\0` magic): chunks are parsed on all cores; a corrupt chunk or record is
//!   skipped, counted and reported as a warning, and the rest is read. A file cut short in the
//!   middle of a chunk gives the records that are whole.
//! * JSON: one object, an array of objects, a stream of concatenated objects, or JSON lines
//!   (`.json`, `.jsonl`, `.ndjson`, and `.log` files of JSON lines such as Zeek's). A bad line of a JSON-lines file is skipped and counted.
//!   A plain JSON file is read into memory whole (EVTX files are read chunk by chunk); JSON
//!   lines inside gzip streams and archive members are parsed while they are decompressed, a
//!   few chunks at a time, so memory stays bounded whatever their size.
//! * gzip (`.gz`) of any of these, zip (`.zip`, stored or deflated) and tar (`.tar`, `.tar.gz`,
//!   `.tgz`) archives of any of these; an archive member is named `archive.zip:inner/path`.

use crate::error::ReadError;
use crate::event::{flatten_value, parse_object, HuntEvent};
use crate::progress::Progress;
use rayon::prelude::*;
use serde_json::Value;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Warnings kept per file; more are counted in [`FileStats::warnings_dropped`].
pub const MAX_WARNINGS_PER_FILE: usize = 20;
/// Largest decompressed size of one gzip stream or archive member held in memory.
pub const MAX_MEMBER_BYTES: u64 = 4 << 30;
/// How deep archives may nest (a zip in a gzip in a tar ...).
const MAX_DEPTH: usize = 4;
const EVTX_HEADER_SIZE: u64 = 4096;
const EVTX_CHUNK_SIZE: usize = 65536;
/// EVTX chunks read before they are handed to the worker threads together.
const CHUNKS_PER_BATCH: usize = 32;
/// JSON events per batch handed to a worker thread.
const JSON_BATCH: usize = 1024;
/// Stop reading a chunk after this many bad records in it (it is garbage).
const MAX_BAD_RECORDS_PER_CHUNK: u64 = 1000;

/// File name endings read when walking a directory. `.log` files are read when they hold
/// JSON lines (Zeek's JSON logs are `conn.log`, `dns.log`, ...); another `.log` is reported
/// as a file of unknown format.
pub const KNOWN_EXTENSIONS: &[&str] = &[
    "evtx", "json", "jsonl", "ndjson", "log", "gz", "zip", "tar", "tgz",
];

/// An input file found by [`collect_inputs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    /// Size on disk.
    pub size: u64,
}

/// What [`collect_inputs`] found.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// The files to read, sorted by path, each once.
    pub files: Vec<InputFile>,
    /// Paths inside the walked folders that could not be listed or examined, with the reason.
    pub errors: Vec<(PathBuf, String)>,
}

impl Inputs {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Statistics of one input file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Events read (and hunted).
    pub events: u64,
    /// Records skipped as corrupt: EVTX records, JSON lines or objects that did not parse.
    pub records_skipped: u64,
    /// EVTX chunks skipped as corrupt (their records are not in `records_skipped`).
    pub chunks_skipped: u64,
    /// Archive members that could not be read at all: (name, reason).
    pub members_failed: Vec<(String, String)>,
    /// What was skipped and why, at most [`MAX_WARNINGS_PER_FILE`] of them.
    pub warnings: Vec<String>,
    /// Warnings beyond those kept.
    pub warnings_dropped: u64,
}

impl FileStats {
    fn merge(&mut self, other: FileStats) {
        self.events += other.events;
        self.records_skipped += other.records_skipped;
        self.chunks_skipped += other.chunks_skipped;
        self.members_failed.extend(other.members_failed);
        self.warnings_dropped += other.warnings_dropped;
        for w in other.warnings {
            self.push_warning(w);
        }
    }

    fn push_warning(&mut self, w: String) {
        if self.warnings.len() < MAX_WARNINGS_PER_FILE {
            self.warnings.push(w);
        } else {
            self.warnings_dropped += 1;
        }
    }
}

/// Walks `paths` (files and folders, recursively) for input files.
///
/// A file named directly is always taken (its format is recognised by content); inside folders
/// only names ending in one of [`KNOWN_EXTENSIONS`] are. A path that does not exist is an error;
/// problems below it are collected in [`Inputs::errors`].
pub fn collect_inputs(paths: &[PathBuf]) -> Result<Inputs, crate::HuntError> {
    let mut inputs = Inputs::default();
    let mut seen_dirs = std::collections::HashSet::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| crate::HuntError::Input {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk_dir(path, &mut inputs, &mut seen_dirs);
        } else {
            inputs.files.push(InputFile {
                path: path.clone(),
                size: meta.len(),
            });
        }
    }
    inputs.files.sort_by(|a, b| a.path.cmp(&b.path));
    inputs.files.dedup_by(|a, b| a.path == b.path);
    Ok(inputs)
}

fn has_known_extension(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    KNOWN_EXTENSIONS
        .iter()
        .any(|ext| lower.rsplit_once('.').is_some_and(|(_, e)| e == *ext))
}

fn is_log_name(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".log")
}

/// Whether `head` starts like JSON (after a byte-order mark and blanks).
fn starts_like_json(head: &[u8]) -> bool {
    let body = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{') | Some(b'[')
    )
}

/// A `.log` found in a folder is read only when it holds JSON (Zeek's logs); a text log
/// (an IIS or syslog file) is left alone, as files of other names are.
fn file_holds_json(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 512];
    match std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => starts_like_json(&head[..n]),
        // Unreadable: listed, so the read reports why.
        Err(_) => true,
    }
}

fn walk_dir(dir: &Path, inputs: &mut Inputs, seen: &mut std::collections::HashSet<PathBuf>) {
    // Symbolic links are followed; each real folder is walked once, so a loop ends.
    match std::fs::canonicalize(dir) {
        Ok(real) => {
            if !seen.insert(real) {
                return;
            }
        }
        Err(e) => {
            inputs.errors.push((dir.to_path_buf(), e.to_string()));
            return;
        }
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            inputs.errors.push((dir.to_path_buf(), e.to_string()));
            return;
        }
    };
    let mut children: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => children.push(entry.path()),
            Err(e) => inputs.errors.push((dir.to_path_buf(), e.to_string())),
        }
    }
    children.sort();
    for child in children {
        match std::fs::metadata(&child) {
            Ok(m) if m.is_dir() => walk_dir(&child, inputs, seen),
            Ok(m) if m.is_file() => {
                let name = child
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                if has_known_extension(&name) && (!is_log_name(&name) || file_holds_json(&child)) {
                    inputs.files.push(InputFile {
                        path: child,
                        size: m.len(),
                    });
                }
            }
            Ok(_) => {}
            Err(e) => inputs.errors.push((child, e.to_string())),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Evtx,
    Gzip,
    Zip,
    Tar,
    Json,
}

fn sniff(head: &[u8], name: &str) -> Option<Format> {
    if head.starts_with(b"ElfFile\0") {
        return Some(Format::Evtx);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some(Format::Gzip);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Some(Format::Zip);
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Some(Format::Tar);
    }
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "evtx" => Some(Format::Evtx),
        "gz" | "tgz" => Some(Format::Gzip),
        "zip" => Some(Format::Zip),
        "tar" => Some(Format::Tar),
        "json" | "jsonl" | "ndjson" => Some(Format::Json),
        _ => {
            // Unknown name: JSON if it starts like JSON.
            let body = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
            match body.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') | Some(b'[') => Some(Format::Json),
                _ => None,
            }
        }
    }
}

/// Everything a read needs: where batches go and what to report.
struct Ctx<'a, T, F> {
    sink: &'a F,
    progress: &'a dyn Progress,
    _out: std::marker::PhantomData<fn() -> T>,
}

/// One unit of work's result: the sink's output and the statistics of the events it saw.
struct Part<T> {
    out: Option<T>,
    stats: FileStats,
}

impl<T: Send, F: Fn(Vec<HuntEvent>) -> T + Sync> Ctx<'_, T, F> {
    fn warn(&self, stats: &mut FileStats, message: String) {
        self.progress.warning(&message);
        stats.push_warning(message);
    }

    fn emit(&self, events: Vec<HuntEvent>, stats: &mut FileStats) -> Option<T> {
        if events.is_empty() {
            return None;
        }
        stats.events += events.len() as u64;
        self.progress.advanced(0, events.len() as u64);
        Some((self.sink)(events))
    }
}

/// Reads one input file, handing its events to `sink` in batches (from worker threads, in
/// parallel); returns the sink's outputs and the file's statistics.
///
/// Must be called inside the rayon pool that should do the work (see [`crate::hunt`]), or it
/// runs on rayon's global pool.
pub fn read_file<T, F>(
    path: &Path,
    sink: &F,
    progress: &dyn Progress,
) -> Result<(Vec<T>, FileStats), ReadError>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    let ctx = Ctx {
        sink,
        progress,
        _out: std::marker::PhantomData,
    };
    let name = path.display().to_string();
    let mut file = File::open(path).map_err(|e| ReadError::io(&name, e))?;
    let size = file.metadata().map_err(|e| ReadError::io(&name, e))?.len();
    let mut head = Vec::with_capacity(512);
    (&mut file)
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| ReadError::io(&name, e))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| ReadError::io(&name, e))?;
    let format = sniff(&head, &name).ok_or(ReadError::UnknownFormat { path: name.clone() })?;
    let mut outs = Vec::new();
    let mut stats = FileStats::default();
    let file_name: Arc<str> = Arc::from(name.as_str());
    match format {
        Format::Evtx => {
            read_evtx(&ctx, &file_name, file, size, true, &mut outs, &mut stats)?;
            return Ok((outs, stats));
        }
        Format::Zip => read_zip(&ctx, &name, file, 0, &mut outs, &mut stats)?,
        Format::Tar => read_tar(&ctx, &name, file, 0, &mut outs, &mut stats)?,
        Format::Gzip => read_gzip_stream(&ctx, &name, file, &mut outs, &mut stats)?,
        Format::Json => {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            file.read_to_end(&mut bytes)
                .map_err(|e| ReadError::io(&name, e))?;
            read_json(&ctx, &file_name, &bytes, &mut outs, &mut stats)?;
        }
    }
    progress.advanced(size, 0);
    Ok((outs, stats))
}

/// Reads all events of one file into memory (for tests and small tools; [`read_file`] streams).
pub fn read_events(path: &Path) -> Result<(Vec<HuntEvent>, FileStats), ReadError> {
    let (batches, stats) = read_file(path, &|events| events, &crate::NoProgress)?;
    Ok((batches.into_iter().flatten().collect(), stats))
}

/// Reads data held in memory as if it were a file named `name` (format by content, then by
/// name), handing its events to `sink` like [`read_file`]. For standard input, fuzzing, tests.
pub fn read_buffer<T, F>(
    name: &str,
    bytes: Vec<u8>,
    sink: &F,
    progress: &dyn Progress,
) -> Result<(Vec<T>, FileStats), ReadError>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    let ctx = Ctx {
        sink,
        progress,
        _out: std::marker::PhantomData,
    };
    let head = &bytes[..bytes.len().min(512)];
    if sniff(head, name).is_none() {
        return Err(ReadError::UnknownFormat {
            path: name.to_string(),
        });
    }
    let mut outs = Vec::new();
    let mut stats = FileStats::default();
    read_bytes(&ctx, name, bytes, 0, &mut outs, &mut stats)?;
    Ok((outs, stats))
}

/// [`read_buffer`] collecting every event.
pub fn read_buffer_events(
    name: &str,
    bytes: Vec<u8>,
) -> Result<(Vec<HuntEvent>, FileStats), ReadError> {
    let (batches, stats) = read_buffer(name, bytes, &|events| events, &crate::NoProgress)?;
    Ok((batches.into_iter().flatten().collect(), stats))
}

/// Decompresses a gzip stream. A stream cut short gives what it held, with a warning.
fn gunzip<T, F>(
    ctx: &Ctx<'_, T, F>,
    name: &str,
    reader: impl Read,
    stats: &mut FileStats,
) -> Result<Vec<u8>, ReadError>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    let mut out = Vec::new();
    let result = flate2::read::MultiGzDecoder::new(reader)
        .take(MAX_MEMBER_BYTES + 1)
        .read_to_end(&mut out);
    if let Err(e) = result {
        if out.is_empty() {
            return Err(ReadError::Archive {
                path: name.to_string(),
                reason: format!("gzip: {e}"),
            });
        }
        ctx.warn(
            stats,
            format!(
                "{name}: gzip stream damaged or cut short ({e}); reading the {} bytes before",
                out.len()
            ),
        );
    }
    if out.len() as u64 > MAX_MEMBER_BYTES {
        return Err(ReadError::Archive {
            path: name.to_string(),
            reason: format!("decompresses to more than {MAX_MEMBER_BYTES} bytes"),
        });
    }
    Ok(out)
}

/// Reads a decompressed stream or archive member.
fn read_bytes<T, F>(
    ctx: &Ctx<'_, T, F>,
    name: &str,
    bytes: Vec<u8>,
    depth: usize,
    outs: &mut Vec<T>,
    stats: &mut FileStats,
) -> Result<(), ReadError>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    if depth > MAX_DEPTH {
        return Err(ReadError::Archive {
            path: name.to_string(),
            reason: "archives nested too deep".to_string(),
        });
    }
    let head = &bytes[..bytes.len().min(512)];
    // A gzip member's own name is its archive's name without `.gz`.
    let inner_name = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".GZ"))
        .unwrap_or(name);
    let format = sniff(head, inner_name).unwrap_or(Format::Json);
    match format {
        Format::Evtx => {
            let len = bytes.len() as u64;
            let file: Arc<str> = Arc::from(name);
            read_evtx(
                ctx,
                &file,
                std::io::Cursor::new(bytes),
                len,
                false,
                outs,
                stats,
            )
        }
        Format::Gzip => {
            let inner = gunzip(ctx, name, bytes.as_slice(), stats)?;
            read_bytes(ctx, name, inner, depth + 1, outs, stats)
        }
        Format::Zip => read_zip(ctx, name, std::io::Cursor::new(bytes), depth, outs, stats),
        Format::Tar => read_tar(ctx, name, bytes.as_slice(), depth, outs, stats),
        Format::Json => {
            let file: Arc<str> = Arc::from(name);
            read_json(ctx, &file, &bytes, outs, stats)
        }
    }
}

fn read_member<T, F>(
    ctx: &Ctx<'_, T, F>,
    member: String,
    reader: impl Read,
    depth: usize,
    outs: &mut Vec<T>,
    stats: &mut FileStats,
) where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    let mut member_stats = FileStats::default();
    let mut reader = reader;
    let result = read_stream(
        ctx,
        &member,
        &mut reader,
        depth + 1,
        outs,
        &mut member_stats,
    )
    .map_err(StreamError::reason);
    stats.merge(member_stats);
    if let Err(reason) = result {
        ctx.warn(stats, format!("{member}: skipped: {reason}"));
        stats.members_failed.push((member, reason));
    }
}

fn read_zip<T, F, R>(
    ctx: &Ctx<'_, T, F>,
    name: &str,
    reader: R,
    depth: usize,
    outs: &mut Vec<T>,
    stats: &mut FileStats,
) -> Result<(), ReadError>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
    R: Read + Seek,
{
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| ReadError::Archive {
        path: name.to_string(),
        reason: e.to_string(),
    })?;
    for i in 0..archive.len() {
        let member = match archive.by_index(i) {
            Ok(m) => m,
            Err(e) => {
                let member = format!("{name}:#{i}");
                ctx.warn(stats, format!("{member}: skipped: {e}"));
                stats.members_failed.push((member, e.to_string()));
                continue;
            }
        };
        let inner = match member.name() {
            Ok(n) => n.into_owned(),
            Err(e) => {
                let member = format!("{name}:#{i}");
                ctx.warn(stats, format!("{member}: skipped: {e}"));
                stats.members_failed.push((member, e.to_string()));
                continue;
            }
        };
        if !member.is_file() || !has_known_extension(&inner) {
            continue;
        }
        let member_name = format!("{name}:{inner}");
        read_member(ctx, member_name, member, depth, outs, stats);
    }
    Ok(())
}

fn read_tar<T, F, R>(
    ctx: &Ctx<'_, T, F>,
    name: &str,
    reader: R,
    depth: usize,
    outs: &mut Vec<T>,
    stats: &mut FileStats,
) -> Result<(), ReadError>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
    R: Read,
{
    let bad = |e: std::io::Error| ReadError::Archive {
        path: name.to_string(),
        reason: format!("tar: {e}"),
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(bad)?;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                // A broken tar stream cannot be resynchronised.
                ctx.warn(stats, format!("{name}: tar stream ends early: {e}"));
                stats.members_failed.push((name.to_string(), e.to_string()));
                break;
            }
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let inner = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !has_known_extension(&inner) {
            continue;
        }
        read_member(ctx, format!("{name}:{inner}"), entry, depth, outs, stats);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// EVTX
// ---------------------------------------------------------------------------------------------

/// Compact JSON; checksums are not required (a chunk with a bad CRC is read for what it
/// holds). Chunks are parallelised here, not by the evtx crate (built without its
/// `multithreading` feature), so no thread count is set.
fn evtx_settings() -> Arc<evtx::ParserSettings> {
    Arc::new(
        evtx::ParserSettings::new()
            .indent(false)
            .validate_checksums(false),
    )
}

/// One EVTX chunk to parse: its number in the file, its bytes (padded with zeros to a whole
/// chunk if the file ends inside it) and, then, how many bytes are real.
struct ChunkJob {
    number: u64,
    data: Vec<u8>,
    valid: Option<usize>,
}

/// Reads an EVTX file chunk by chunk (chunks are parsed in parallel). `on_disk`: report bytes
/// as progress.
///
/// Chunks are read in file order (hits are sorted by time afterwards); all-zero chunks (unused
/// space) are skipped without reading past their header. A file cut short inside a chunk gives
/// the records of that chunk that are whole.
fn read_evtx<T, F, R>(
    ctx: &Ctx<'_, T, F>,
    file: &Arc<str>,
    mut reader: R,
    len: u64,
    on_disk: bool,
    outs: &mut Vec<T>,
    stats: &mut FileStats,
) -> Result<(), ReadError>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
    R: Read + Seek,
{
    let mut magic = [0u8; 8];
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| ReadError::io(file, e))?;
    reader.read_exact(&mut magic).map_err(|e| ReadError::Evtx {
        path: file.to_string(),
        reason: format!("cannot read the file header: {e}"),
    })?;
    if &magic != b"ElfFile\0" {
        return Err(ReadError::Evtx {
            path: file.to_string(),
            reason: "no ElfFile signature".to_string(),
        });
    }
    let settings = evtx_settings();
    let mut reported = 0u64;
    let mut batch: Vec<ChunkJob> = Vec::with_capacity(CHUNKS_PER_BATCH);
    let mut run_batch =
        |batch: &mut Vec<ChunkJob>, upto: u64, outs: &mut Vec<T>, stats: &mut FileStats| {
            let parts: Vec<Part<T>> = batch
                .par_drain(..)
                .map(|job| evtx_chunk(ctx, file, job, &settings))
                .collect();
            for part in parts {
                outs.extend(part.out);
                stats.merge(part.stats);
            }
            if on_disk && upto > reported {
                ctx.progress.advanced(upto - reported, 0);
                reported = upto;
            }
        };
    let chunk_size = EVTX_CHUNK_SIZE as u64;
    let chunks = len.saturating_sub(EVTX_HEADER_SIZE).div_ceil(chunk_size);
    for number in 0..chunks {
        let offset = EVTX_HEADER_SIZE + number * chunk_size;
        let avail = (len - offset).min(chunk_size) as usize;
        if avail < EVTX_CHUNK_SIZE {
            let msg = format!("{file}: file ends {avail} bytes into chunk {number} (truncated)");
            ctx.warn(stats, msg);
        }
        if avail < 512 {
            break;
        }
        let mut data = vec![0u8; EVTX_CHUNK_SIZE];
        let header = reader
            .seek(SeekFrom::Start(offset))
            .and_then(|_| reader.read_exact(&mut data[..512]));
        if header.is_ok() && data[..512].iter().all(|b| *b == 0) {
            // Unused space.
            continue;
        }
        if let Err(e) = header.and_then(|()| reader.read_exact(&mut data[512..avail])) {
            // Keep what was read so far (the file may have shrunk under us).
            stats.chunks_skipped += 1;
            ctx.warn(
                stats,
                format!("{file}: cannot read chunk {number}, stopping: {e}"),
            );
            break;
        }
        batch.push(ChunkJob {
            number,
            data,
            valid: (avail < EVTX_CHUNK_SIZE).then_some(avail),
        });
        if batch.len() == CHUNKS_PER_BATCH {
            run_batch(&mut batch, offset + avail as u64, outs, stats);
        }
    }
    run_batch(&mut batch, len, outs, stats);
    Ok(())
}

/// Parses one chunk and hands its events to the sink.
fn evtx_chunk<T, F>(
    ctx: &Ctx<'_, T, F>,
    file: &Arc<str>,
    job: ChunkJob,
    settings: &Arc<evtx::ParserSettings>,
) -> Part<T>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    let mut stats = FileStats::default();
    let number = job.number;
    // Hostile input must not take the hunt down: a panic in the EVTX parser loses this chunk.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        parse_chunk(ctx, file, job, settings, &mut stats)
    }));
    let events = match parsed {
        Ok(events) => events,
        Err(_) => {
            stats.chunks_skipped += 1;
            let msg = format!("{file}: chunk {number}: the EVTX parser failed on it, skipped");
            ctx.warn(&mut stats, msg);
            Vec::new()
        }
    };
    let out = ctx.emit(events, &mut stats);
    Part { out, stats }
}

fn parse_chunk<T, F>(
    ctx: &Ctx<'_, T, F>,
    file: &Arc<str>,
    job: ChunkJob,
    settings: &Arc<evtx::ParserSettings>,
    stats: &mut FileStats,
) -> Vec<HuntEvent>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    let number = job.number;
    let valid_len = job.valid;
    let where_ = || format!("{file}: chunk {number}");
    let mut chunk_data = match evtx::EvtxChunkData::new(job.data, false) {
        Ok(c) => c,
        Err(e) => {
            stats.chunks_skipped += 1;
            ctx.warn(stats, format!("{}: corrupt chunk skipped: {e}", where_()));
            return Vec::new();
        }
    };
    chunk_data.number = Some(number);
    let mut chunk = match chunk_data.parse(Arc::clone(settings)) {
        Ok(c) => c,
        Err(e) => {
            stats.chunks_skipped += 1;
            ctx.warn(stats, format!("{}: corrupt chunk skipped: {e}", where_()));
            return Vec::new();
        }
    };
    let mut events = Vec::with_capacity(256);
    let mut bad = 0u64;
    for record in chunk.iter() {
        // In a truncated chunk, a record that runs past the end of the data is cut.
        if let (Some(valid), Ok(r)) = (valid_len, &record) {
            let end = r.binxml_offset + u64::from(r.binxml_size) + 4;
            if end > valid as u64 {
                bad += 1;
                let id = r.event_record_id;
                ctx.warn(
                    stats,
                    format!("{}: record {id} cut off by truncation", where_()),
                );
                continue;
            }
        }
        let result = record.and_then(|r| r.into_json_bytes());
        match result {
            Ok(r) => match parse_object(&r.data) {
                Ok(Some(fields)) => events.push(HuntEvent {
                    fields,
                    file: Arc::clone(file),
                    record_id: Some(r.event_record_id),
                    header_time: Some(r.timestamp),
                }),
                Ok(None) => {
                    bad += 1;
                    ctx.warn(
                        stats,
                        format!(
                            "{}: record {} is not an object",
                            where_(),
                            r.event_record_id
                        ),
                    );
                }
                Err(e) => {
                    bad += 1;
                    ctx.warn(
                        stats,
                        format!("{}: record {}: {e}", where_(), r.event_record_id),
                    );
                }
            },
            Err(e) => {
                bad += 1;
                ctx.warn(stats, format!("{}: corrupt record skipped: {e}", where_()));
            }
        }
        if bad >= MAX_BAD_RECORDS_PER_CHUNK {
            ctx.warn(
                stats,
                format!("{}: too many bad records, rest of chunk skipped", where_()),
            );
            break;
        }
    }
    stats.records_skipped += bad;
    events
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

fn read_json<T, F>(
    ctx: &Ctx<'_, T, F>,
    file: &Arc<str>,
    bytes: &[u8],
    outs: &mut Vec<T>,
    stats: &mut FileStats,
) -> Result<(), ReadError>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    let body = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let Some(start) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Ok(());
    };
    let body = &body[start..];
    let first_line = split_lines(body).next().unwrap_or(body);
    let is_lines =
        body[0] == b'{' && serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_ok();
    if is_lines {
        read_json_lines(ctx, file, body, outs, stats);
        return Ok(());
    }
    if body[0] != b'{' && body[0] != b'[' {
        return Err(ReadError::Json {
            path: file.to_string(),
            reason: "does not start with '{' or '['".to_string(),
        });
    }
    // One document, an array, or concatenated (pretty-printed) documents.
    let mut events = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    let mut parsed_any = false;
    loop {
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                parsed_any = true;
                let items = match value {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for item in items {
                    match flatten_value(&item) {
                        Some(fields) => events.push(HuntEvent::new(fields, Arc::clone(file))),
                        None => {
                            stats.records_skipped += 1;
                            ctx.warn(
                                stats,
                                format!("{file}: skipped a JSON value that is not an object"),
                            );
                        }
                    }
                }
            }
            Some(Err(e)) => {
                if !parsed_any && body.contains(&b'\n') && body[0] == b'{' {
                    // A JSON-lines file whose first line is bad: read it line by line.
                    read_json_lines(ctx, file, body, outs, stats);
                    return Ok(());
                }
                if !parsed_any {
                    return Err(ReadError::Json {
                        path: file.to_string(),
                        reason: e.to_string(),
                    });
                }
                stats.records_skipped += 1;
                ctx.warn(
                    stats,
                    format!("{file}: JSON ends in error, rest skipped: {e}"),
                );
                break;
            }
        }
    }
    let mut batches: Vec<Vec<HuntEvent>> = Vec::new();
    while !events.is_empty() {
        let rest = events.split_off(events.len().min(JSON_BATCH));
        batches.push(std::mem::replace(&mut events, rest));
    }
    let parts: Vec<Part<T>> = batches
        .into_par_iter()
        .map(|batch| {
            let mut stats = FileStats::default();
            let out = ctx.emit(batch, &mut stats);
            Part { out, stats }
        })
        .collect();
    for part in parts {
        outs.extend(part.out);
        stats.merge(part.stats);
    }
    Ok(())
}

fn read_json_lines<T, F>(
    ctx: &Ctx<'_, T, F>,
    file: &Arc<str>,
    body: &[u8],
    outs: &mut Vec<T>,
    stats: &mut FileStats,
) where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    // Batches of lines: (first line number, lines).
    let mut batches: Vec<(usize, Vec<&[u8]>)> = Vec::new();
    let mut current: Vec<&[u8]> = Vec::with_capacity(JSON_BATCH);
    let mut first = 1;
    for (i, line) in split_lines(body).enumerate() {
        current.push(line);
        if current.len() == JSON_BATCH {
            batches.push((first, std::mem::take(&mut current)));
            first = i + 2;
        }
    }
    if !current.is_empty() {
        batches.push((first, current));
    }
    let parts: Vec<Part<T>> = batches
        .into_par_iter()
        .map(|(first, lines)| parse_lines(ctx, file, first, lines.into_iter()))
        .collect();
    for part in parts {
        outs.extend(part.out);
        stats.merge(part.stats);
    }
}

/// Parses a batch of JSON lines (the first numbered `first`) and hands their events to the sink.
fn parse_lines<'l, T, F>(
    ctx: &Ctx<'_, T, F>,
    file: &Arc<str>,
    first: usize,
    lines: impl Iterator<Item = &'l [u8]>,
) -> Part<T>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    let mut stats = FileStats::default();
    let mut events = Vec::with_capacity(lines.size_hint().0);
    for (i, line) in lines.enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match parse_object(line) {
            Ok(Some(fields)) => events.push(HuntEvent::new(fields, Arc::clone(file))),
            Ok(None) => match serde_json::from_slice::<Value>(line) {
                Ok(Value::Array(items)) => {
                    for item in items {
                        match flatten_value(&item) {
                            Some(fields) => events.push(HuntEvent::new(fields, Arc::clone(file))),
                            None => stats.records_skipped += 1,
                        }
                    }
                }
                _ => {
                    stats.records_skipped += 1;
                    let msg = format!("{file}: line {}: not a JSON object", first + i);
                    ctx.warn(&mut stats, msg);
                }
            },
            Err(e) => {
                stats.records_skipped += 1;
                ctx.warn(&mut stats, format!("{file}: line {}: {e}", first + i));
            }
        }
    }
    let out = ctx.emit(events, &mut stats);
    Part { out, stats }
}

/// Bytes of JSON lines parsed together by one worker (whole lines: a longer line is one chunk).
const STREAM_CHUNK_BYTES: usize = 1 << 18;

/// Whether `head` (the start of a stream) holds its first non-blank line whole, or the stream
/// ended.
fn has_first_line(head: &[u8]) -> bool {
    let body = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    match body.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(start) => body[start..].contains(&b'\n'),
        None => false,
    }
}

/// Reads a decompressed stream or archive member. JSON lines are parsed while they are read,
/// a few chunks at a time on all cores (memory stays bounded whatever the member's size);
/// anything else is read whole and handed to [`read_bytes`].
fn read_stream<T, F>(
    ctx: &Ctx<'_, T, F>,
    name: &str,
    reader: &mut dyn Read,
    depth: usize,
    outs: &mut Vec<T>,
    stats: &mut FileStats,
) -> Result<(), StreamError>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    use std::io::BufRead;
    if depth > MAX_DEPTH {
        return Err(StreamError::Read(ReadError::Archive {
            path: name.to_string(),
            reason: "archives nested too deep".to_string(),
        }));
    }
    let mut reader = std::io::BufReader::with_capacity(1 << 16, reader.take(MAX_MEMBER_BYTES + 1));
    // The head: enough to recognise the format, and the first line whole.
    let mut head = Vec::new();
    let mut error = None;
    loop {
        match reader.read_until(b'\n', &mut head) {
            Ok(0) => break,
            Ok(_) if head.len() >= 512 && has_first_line(&head) => break,
            Ok(_) => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let inner_name = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".GZ"))
        .unwrap_or(name);
    let sniffed = sniff(&head[..head.len().min(512)], inner_name);
    if sniffed.is_none() && is_log_name(inner_name) && error.is_none() {
        // A text `.log` member (not JSON): not an event file, left alone.
        return Ok(());
    }
    let format = sniffed.unwrap_or(Format::Json);
    if error.is_none() && format == Format::Json && depth <= MAX_DEPTH {
        let body = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&head);
        let start = body.iter().position(|b| !b.is_ascii_whitespace());
        if let Some(start) = start {
            let body = &body[start..];
            let first_line = split_lines(body).next().unwrap_or(body);
            if body[0] == b'{'
                && serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_ok()
            {
                let skip = head.len() - body.len();
                head.drain(..skip);
                stream_json_lines(ctx, name, head, reader, outs, stats);
                return Ok(());
            }
        }
    }
    if error.is_none() && format == Format::Tar {
        let chained = std::io::Cursor::new(head).chain(reader);
        return read_tar(ctx, name, chained, depth, outs, stats).map_err(StreamError::Read);
    }
    let mut bytes = head;
    let read = match error {
        Some(e) => Err(e),
        None => reader.read_to_end(&mut bytes).map(|_| ()),
    };
    match read {
        // A member cut short (or failing its checksum) gives what it held, with a warning.
        Err(e) if !bytes.is_empty() => {
            let msg = format!(
                "{name}: damaged or cut short ({e}); reading the {} bytes before",
                bytes.len()
            );
            ctx.warn(stats, msg);
        }
        Err(e) => return Err(StreamError::Io(e)),
        Ok(()) if bytes.len() as u64 > MAX_MEMBER_BYTES => return Err(StreamError::TooLarge),
        Ok(()) => {}
    }
    read_bytes(ctx, name, bytes, depth, outs, stats).map_err(StreamError::Read)
}

/// Why [`read_stream`] could not read a stream at all.
enum StreamError {
    Io(std::io::Error),
    /// Larger than [`MAX_MEMBER_BYTES`].
    TooLarge,
    Read(ReadError),
}

impl StreamError {
    /// The reason reported for an archive member.
    fn reason(self) -> String {
        match self {
            StreamError::Io(e) => e.to_string(),
            StreamError::TooLarge => format!("larger than {MAX_MEMBER_BYTES} bytes"),
            StreamError::Read(e) => e.to_string(),
        }
    }
}

/// A reader that ends (cleanly) at its inner reader's first error, keeping the error: a
/// damaged or cut-short gzip stream then reads as the data before the damage.
struct SoftEnd<R> {
    inner: R,
    read: u64,
    error: Option<std::io::Error>,
}

impl<R: Read> Read for SoftEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.error.is_some() {
            return Ok(0);
        }
        match self.inner.read(buf) {
            Ok(n) => {
                self.read += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.error = Some(e);
                Ok(0)
            }
        }
    }
}

/// Reads a gzip file as a stream (its content is never held whole unless it is neither JSON
/// lines nor a tar archive). A stream cut short gives what it held, with a warning.
fn read_gzip_stream<T, F>(
    ctx: &Ctx<'_, T, F>,
    name: &str,
    reader: impl Read,
    outs: &mut Vec<T>,
    stats: &mut FileStats,
) -> Result<(), ReadError>
where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    let mut gz = SoftEnd {
        inner: flate2::read::MultiGzDecoder::new(reader),
        read: 0,
        error: None,
    };
    let mut inner_stats = FileStats::default();
    let result = read_stream(ctx, name, &mut gz, 1, outs, &mut inner_stats);
    if let Some(e) = gz.error.take() {
        if gz.read == 0 {
            return Err(ReadError::Archive {
                path: name.to_string(),
                reason: format!("gzip: {e}"),
            });
        }
        ctx.warn(
            stats,
            format!(
                "{name}: gzip stream damaged or cut short ({e}); reading the {} bytes before",
                gz.read
            ),
        );
    }
    stats.merge(inner_stats);
    match result {
        Ok(()) => Ok(()),
        Err(StreamError::Io(e)) => Err(ReadError::io(name, e)),
        Err(StreamError::TooLarge) => Err(ReadError::Archive {
            path: name.to_string(),
            reason: format!("decompresses to more than {MAX_MEMBER_BYTES} bytes"),
        }),
        Err(StreamError::Read(e)) => Err(e),
    }
}

/// The lines of `data` as `split` on `\n` gives them (the last one after the final newline,
/// empty if it ends with one), found with SIMD instead of byte by byte.
fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', data);
    let mut finished = false;
    std::iter::from_fn(move || {
        if finished {
            return None;
        }
        match ends.next() {
            Some(end) => {
                let line = &data[start..end];
                start = end + 1;
                Some(line)
            }
            None => {
                finished = true;
                Some(&data[start..])
            }
        }
    })
}

/// Parses JSON lines as they are read from `reader` (after `head`, its first bytes): rounds
/// of up to two chunks per worker thread, each chunk about [`STREAM_CHUNK_BYTES`] bytes of whole
/// lines, parsed in parallel.
fn stream_json_lines<T, F>(
    ctx: &Ctx<'_, T, F>,
    name: &str,
    head: Vec<u8>,
    mut reader: impl std::io::BufRead,
    outs: &mut Vec<T>,
    stats: &mut FileStats,
) where
    T: Send,
    F: Fn(Vec<HuntEvent>) -> T + Sync,
{
    let file: Arc<str> = Arc::from(name);
    let per_round = rayon::current_num_threads().max(1) * 2;
    let mut carry = Some(head);
    let mut next_line = 1;
    let mut total: u64 = 0;
    let mut done = false;
    while !done {
        let mut chunks: Vec<(usize, Vec<u8>)> = Vec::with_capacity(per_round);
        while chunks.len() < per_round && !done {
            let mut data = carry
                .take()
                .unwrap_or_else(|| Vec::with_capacity(STREAM_CHUNK_BYTES + (64 << 10)));
            // Blocks, not lines: fill the chunk, then carry what follows its last newline.
            while data.len() < STREAM_CHUNK_BYTES {
                let block = match reader.fill_buf() {
                    Ok(block) => block,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let msg = format!(
                            "{name}: damaged or cut short ({e}); reading the {total} bytes before"
                        );
                        ctx.warn(stats, msg);
                        done = true;
                        break;
                    }
                };
                if block.is_empty() {
                    done = true;
                    break;
                }
                let take = block.len().min(STREAM_CHUNK_BYTES - data.len());
                data.extend_from_slice(&block[..take]);
                reader.consume(take);
                total += take as u64;
            }
            if !done {
                match memchr::memrchr(b'\n', &data) {
                    Some(end) => {
                        let mut rest = Vec::with_capacity(STREAM_CHUNK_BYTES + (64 << 10));
                        rest.extend_from_slice(&data[end + 1..]);
                        data.truncate(end + 1);
                        carry = Some(rest);
                    }
                    // One line longer than a chunk: read the rest of it.
                    None => match reader.read_until(b'\n', &mut data) {
                        Ok(n) => {
                            total += n as u64;
                            done = n == 0;
                        }
                        Err(e) => {
                            let msg = format!(
                                "{name}: damaged or cut short ({e}); reading the {total} bytes before"
                            );
                            ctx.warn(stats, msg);
                            done = true;
                        }
                    },
                }
            }
            if total > MAX_MEMBER_BYTES {
                ctx.warn(
                    stats,
                    format!("{name}: larger than {MAX_MEMBER_BYTES} bytes; the rest is skipped"),
                );
                done = true;
            }
            let first = next_line;
            next_line += memchr::memchr_iter(b'\n', &data).count();
            chunks.push((first, data));
        }
        let parts: Vec<Part<T>> = chunks
            .par_iter()
            .map(|(first, data)| parse_lines(ctx, &file, *first, split_lines(data)))
            .collect();
        for part in parts {
            outs.extend(part.out);
            stats.merge(part.stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn split_lines_is_split_on_newlines(data in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'a'), Just(b'\r'), any::<u8>()], 0..300)) {
            let ours: Vec<&[u8]> = super::split_lines(&data).collect();
            let std: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
            prop_assert_eq!(ours, std);
        }
    }
}
