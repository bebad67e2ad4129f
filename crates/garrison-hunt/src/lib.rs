//! Hunting with Sigma rules over log files: the library behind `garrison hunt`.
//!
//! * [`load_rules`] loads Sigma rules from files and folders with `garrison-sigma` (also what
//!   `garrison rules check` reports: [`LoadedRules::rejected`]);
//! * [`collect_inputs`] and [`read_file`] find and read `.evtx`, JSON (`.json`, `.jsonl`,
//!   `.ndjson`), and `.gz`, `.zip`, `.tar` archives of them into flat [`HuntEvent`]s (see
//!   [`event`] for the layout), parsing on all cores;
//! * [`hunt`] matches every event against the rules (correlation rules too) and returns the
//!   [`Hit`]s as a timeline with a [`Summary`];
//! * [`write_hits`] renders hits as a table, JSON lines or CSV; [`write_summary`] the summary;
//!   [`bench_hunt`] measures throughput.
//!
//! The library never prints: everything it has to say goes into the values it returns, the
//! [`std::io::Write`] it is handed, or the [`Progress`] callbacks.
//!
//! ```
//! use garrison_hunt::{load_rules, write_hits, HitFilter, HuntOptions, Level, NoProgress, OutputFormat};
//! # let dir = tempfile::tempdir().unwrap();
//! # std::fs::write(dir.path().join("whoami.yml"), "title: Whoami\nid: 5d6b2c5e-0000-4000-8000-000000000000\nlevel: high\n\
//! #   logsource: { product: windows, category: process_creation }\n\
//! #   detection: { selection: { Image|endswith: '\\whoami.exe' }, condition: selection }\n").unwrap();
//! # std::fs::write(dir.path().join("events.jsonl"), r#"{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Image":"C:\\Windows\\whoami.exe"}"#).unwrap();
//! # let (rule_dir, log_dir) = (dir.path().to_path_buf(), dir.path().join("events.jsonl"));
//! let rules = load_rules(&[rule_dir], &Default::default())?;
//! let opts = HuntOptions {
//!     paths: vec![log_dir],
//!     filter: HitFilter { min_level: Some(Level::Medium), ..Default::default() },
//!     threads: 0,
//!     logsource: None,
//! };
//! let report = rules.hunt(&opts, &NoProgress)?;
//! assert_eq!(report.hits.len(), 1);
//! let mut out = Vec::new();
//! write_hits(OutputFormat::Jsonl, &report.hits, &mut out)?;
//! assert!(report.fails_on(Level::High));
//! # Ok::<(), garrison_hunt::HuntError>(())
//! ```
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod error;
pub mod event;
mod fields;
mod hit;
mod hunt;
mod output;
mod progress;
mod read;
mod rules;
mod scope;
mod summary;
mod taxonomy;

pub use bench::{bench_hunt, peak_rss, process_cpu_time, BenchReport};
pub use error::{HuntError, ReadError};
pub use event::{EventMeta, HuntEvent};
pub use fields::{FieldRef, Fields, ListRef};
/// The Sigma engine this crate hunts with.
pub use garrison_sigma;
pub use hit::{tactic_of_tag, tag_matches, Hit, HitFilter, Level, UnknownLevel, TACTICS};
pub use hunt::{hunt, rule_enabled, rule_level, HuntOptions, HuntReport};
pub use output::{
    format_time, hit_to_json, matched_object, truncate, write_csv, write_hits, write_jsonl,
    write_table, OutputFormat, CSV_HEADER,
};
pub use progress::{NoProgress, Progress};
pub use read::{
    collect_inputs, read_buffer, read_buffer_events, read_events, read_file, FileStats, InputFile,
    Inputs, KNOWN_EXTENSIONS, MAX_MEMBER_BYTES, MAX_WARNINGS_PER_FILE,
};
pub use rules::{load_rules, LoadedRules};
pub use scope::{inferred_logsource, ScopeCache, Scoping};
pub use summary::{write_summary, Summary};
pub use taxonomy::add_taxonomy_names;
