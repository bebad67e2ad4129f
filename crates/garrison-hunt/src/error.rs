//! Errors of the hunt library.

use std::path::PathBuf;

/// Why one input file (or one member of an archive) could not be read at all.
///
/// A file that is read in part (some EVTX chunks or JSON lines are bad) is not an error: its
/// good events are hunted and the bad records are counted in [`crate::FileStats`].
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an EVTX file: {reason}")]
    Evtx { path: String, reason: String },
    #[error("{path}: not valid JSON: {reason}")]
    Json { path: String, reason: String },
    #[error("{path}: bad archive: {reason}")]
    Archive { path: String, reason: String },
    #[error(
        "{path}: unrecognised format (expected .evtx, .json, .jsonl, .ndjson, .gz, .zip, .tar)"
    )]
    UnknownFormat { path: String },
}

impl ReadError {
    pub(crate) fn io(path: &str, source: std::io::Error) -> Self {
        ReadError::Io {
            path: path.to_string(),
            source,
        }
    }
}

/// Errors of [`crate::hunt`] and [`crate::load_rules`] that stop the whole run.
///
/// Problems with single files or rules are not errors: they are reported in
/// [`crate::Summary::files_failed`] and [`crate::LoadedRules::rejected`].
#[derive(Debug, thiserror::Error)]
pub enum HuntError {
    #[error("input path {path} does not exist or cannot be read: {source}")]
    Input {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rule path {path} does not exist or cannot be read: {source}")]
    RulePath {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start worker threads: {0}")]
    Threads(String),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    #[error("writing CSV output: {0}")]
    Csv(#[from] csv::Error),
}
