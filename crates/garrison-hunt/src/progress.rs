//! Progress callbacks, so a front end can draw a progress bar without the library printing.

use crate::{FileStats, ReadError};
use std::path::Path;

/// Receives progress reports while files are read and hunted.
///
/// Called from worker threads, in no particular order between files. Every method has an
/// empty default, so an implementation only overrides what it shows.
pub trait Progress: Sync {
    /// Once, after the inputs are found: how many files and bytes (on disk) will be read.
    fn started(&self, _files: usize, _bytes: u64) {}
    /// A file is about to be read; `bytes` is its size on disk.
    fn file_started(&self, _path: &Path, _bytes: u64) {}
    /// Some of a file was read and hunted: `bytes` on disk (summing to the file's size by the time
    /// it is finished) and `events` read from it.
    fn advanced(&self, _bytes: u64, _events: u64) {}
    /// A file is done: its statistics, or why it could not be read at all.
    fn file_finished(&self, _path: &Path, _result: Result<&FileStats, &ReadError>) {}
    /// Something was skipped (a corrupt record, a bad JSON line, an unreadable archive member).
    fn warning(&self, _message: &str) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
