//! `garrison hunt`, `garrison rules check` and `garrison bench hunt`: Sigma over files.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use garrison_hunt::garrison_sigma::LoadOptions;
use garrison_hunt::{
    load_rules, write_hits, write_summary, FileStats, HitFilter, HuntOptions, Level, OutputFormat,
    Progress, ReadError,
};
use indicatif::{ProgressBar, ProgressStyle};

/// `product=zeek,service=conn` → a logsource (keys product, category, service).
fn parse_logsource(text: &str) -> Result<garrison_hunt::garrison_sigma::LogSource, String> {
    let mut ls = garrison_hunt::garrison_sigma::LogSource::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .or_else(|| part.split_once(':'))
            .ok_or_else(|| format!("{part:?} is not KEY=VALUE"))?;
        let value = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match key.trim() {
            "product" => ls.product = value,
            "category" => ls.category = value,
            "service" => ls.service = value,
            other => {
                return Err(format!(
                    "unknown logsource key {other:?} (product, category or service)"
                ))
            }
        }
    }
    if ls == garrison_hunt::garrison_sigma::LogSource::default() {
        return Err("a logsource needs at least one of product, category, service".into());
    }
    Ok(ls)
}

/// Exit code when `--fail-on` finds a hit at or above its level (1 is an error, 2 a usage error).
pub const FAIL_ON_EXIT_CODE: i32 = 3;

#[derive(Debug, clap::Args)]
pub struct HuntArgs {
    /// Files or folders to hunt in: .evtx, .json, .jsonl, .ndjson, and .gz/.zip/.tar of them.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Sigma rule files or folders (searched recursively for .yml/.yaml). Repeatable.
    #[arg(long = "rules", short = 'r', required = true, value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Only report rules of this level or higher (informational, low, medium, high, critical).
    #[arg(long, value_name = "LEVEL")]
    min_level: Option<Level>,
    /// Only rules with this tag (e.g. attack.t1059, attack.execution, execution). Repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only these rule ids. Repeatable.
    #[arg(long = "rule-id", value_name = "ID")]
    rule_ids: Vec<String>,
    /// Output format: table (for a terminal), jsonl or csv.
    #[arg(long, default_value = "table", value_name = "FORMAT")]
    format: OutputFormat,
    /// Write hits to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Exit with code 3 when any hit is at this level or higher (for CI pipelines).
    #[arg(long, value_name = "LEVEL")]
    fail_on: Option<Level>,
    /// Values for Sigma placeholders (%name%): NAME=VALUE, repeatable.
    #[arg(long = "placeholder", value_name = "NAME=VALUE")]
    placeholders: Vec<String>,
    /// The logsource of every input, as `product=zeek,service=conn` (keys: product, category,
    /// service). Without it each event's own decides: Windows event log records are
    /// `product=windows`, Zeek records `product=zeek` with their log as service, anything else
    /// gets only rules that name no logsource.
    #[arg(long, value_name = "KEY=VALUE,...", value_parser = parse_logsource)]
    logsource: Option<garrison_hunt::garrison_sigma::LogSource>,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Validate Sigma rules: prints every rejected rule with its file, line and reason.
    Check {
        #[arg(required = true, value_name = "DIR")]
        paths: Vec<PathBuf>,
        /// Values for Sigma placeholders (%name%): NAME=VALUE, repeatable.
        #[arg(long = "placeholder", value_name = "NAME=VALUE")]
        placeholders: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct HuntBench {
    /// Event files or folders (default: the EVTX attack samples of the corpus).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Rule folders (default: the corpus's SigmaHQ rules/windows, 2,407 rules).
    #[arg(long = "rules", value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Passes over the data (more passes, steadier figures).
    #[arg(long, default_value_t = 10)]
    passes: usize,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn load_options(placeholders: &[String]) -> Result<LoadOptions> {
    let mut options = LoadOptions::default();
    let mut values: HashMap<String, Vec<String>> = HashMap::new();
    for item in placeholders {
        let (name, value) = item
            .split_once('=')
            .with_context(|| format!("--placeholder {item:?}: expected NAME=VALUE"))?;
        values
            .entry(name.trim_matches('%').to_string())
            .or_default()
            .push(value.to_string());
    }
    options.placeholders = values;
    Ok(options)
}

fn print_rejected(rejected: &[garrison_hunt::garrison_sigma::RuleError]) {
    for error in rejected {
        eprintln!("{error}");
    }
}

/// Drives an indicatif bar from the library's callbacks (the library never prints).
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new(quiet: bool) -> Bar {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bar { bar }
    }
}

impl Progress for Bar {
    fn started(&self, files: usize, bytes: u64) {
        self.bar.set_length(bytes);
        self.bar.set_message(format!("{files} files"));
    }
    fn advanced(&self, bytes: u64, _events: u64) {
        self.bar.inc(bytes);
    }
    fn file_finished(&self, path: &Path, result: Result<&FileStats, &ReadError>) {
        if let Err(e) = result {
            self.bar
                .suspend(|| tracing::warn!(file = %path.display(), error = %e, "file skipped"));
        }
    }
    fn warning(&self, message: &str) {
        self.bar.suspend(|| tracing::warn!("{message}"));
    }
}

pub fn hunt(args: HuntArgs) -> Result<i32> {
    let options = load_options(&args.placeholders)?;
    let started = Instant::now();
    let purge = crate::PromptPurge::new();
    let rules = load_rules(&args.rules, &options)?;
    drop(purge);
    print_rejected(&rules.rejected);
    tracing::info!(
        loaded = rules.set.len(),
        rejected = rules.rejected.len(),
        seconds = started.elapsed().as_secs_f64(),
        "rules compiled"
    );
    if rules.set.is_empty() {
        bail!("no rule could be loaded from {:?}", args.rules);
    }
    for want in &args.tags {
        let selects = rules.set.rules().iter().any(|m| {
            m.tags
                .iter()
                .any(|tag| garrison_hunt::tag_matches(want, tag))
        });
        if !selects {
            eprintln!("warning: --tag {want} matches no loaded rule (tags look like attack.credential-access or attack.t1003)");
        }
    }
    let opts = HuntOptions {
        paths: args.paths,
        filter: HitFilter {
            min_level: args.min_level,
            tags: args.tags,
            rule_ids: args.rule_ids,
        },
        threads: args.threads,
        logsource: args.logsource,
    };
    let bar = Bar::new(args.quiet);
    let report = rules.hunt(&opts, &bar)?;
    bar.bar.finish_and_clear();
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            write_hits(args.format, &report.hits, &mut out)?;
            out.flush()?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            write_hits(args.format, &report.hits, &mut out)?;
            out.flush()?;
        }
    }
    write_summary(&report.summary, &mut std::io::stderr())?;
    if report.summary.rules_used == 0 {
        bail!("no rule passes the --min-level, --tag and --rule filters (tags look like attack.credential-access or attack.t1003; the summary above lists what was loaded)");
    }
    if report.summary.files_read == 0 && !report.summary.files_failed.is_empty() {
        bail!(
            "none of the {} inputs could be read (the summary above says why)",
            report.summary.files_failed.len()
        );
    }
    match args.fail_on {
        Some(level) if report.fails_on(level) => Ok(FAIL_ON_EXIT_CODE),
        _ => Ok(0),
    }
}

pub fn rules(command: RulesCommand) -> Result<i32> {
    let RulesCommand::Check {
        paths,
        placeholders,
    } = command;
    let options = load_options(&placeholders)?;
    let rules = load_rules(&paths, &options)?;
    print_rejected(&rules.rejected);
    println!(
        "{} rule files: {} rules compiled, {} rejected",
        rules.files,
        rules.set.len(),
        rules.rejected.len()
    );
    Ok(if rules.rejected.is_empty() { 0 } else { 1 })
}

pub fn bench(args: HuntBench) -> Result<()> {
    let paths = if args.paths.is_empty() {
        vec![crate::bench::corpus_root().join("evtx-attack-samples")]
    } else {
        args.paths
    };
    let rule_dirs = if args.rules.is_empty() {
        vec![crate::bench::corpus_root().join("sigma/rules/windows")]
    } else {
        args.rules
    };
    for path in paths.iter().chain(&rule_dirs) {
        if !path.exists() {
            bail!(
                "{} not found (set GARRISON_CORPUS or pass paths)",
                path.display()
            );
        }
    }
    let started = Instant::now();
    let purge = crate::PromptPurge::new();
    let rules = load_rules(&rule_dirs, &LoadOptions::default())?;
    drop(purge);
    let compile = started.elapsed();
    eprintln!(
        "rules: {} compiled, {} rejected in {:.3} s",
        rules.set.len(),
        rules.rejected.len(),
        compile.as_secs_f64()
    );
    let opts = HuntOptions {
        paths,
        filter: HitFilter::default(),
        threads: args.threads,
        logsource: None,
    };
    let report = garrison_hunt::bench_hunt(&opts, &rules.set, args.passes.max(1))?;
    println!("{report}");
    println!("rule compile:      {:.3} s", compile.as_secs_f64());
    Ok(())
}
