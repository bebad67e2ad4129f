//! Loading Sigma rules from files and folders, and the glue to the engine.

use crate::event::HuntEvent;
use crate::fields::FieldRef;
use garrison_sigma::{Event, FieldValue, LoadOptions, RuleError, RuleSet, RuleSource};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Rules loaded by [`load_rules`].
pub struct LoadedRules {
    pub set: RuleSet,
    /// Rule files read.
    pub files: usize,
    /// Rules (or whole files) that could not be loaded: file, line where known, rule, reason.
    pub rejected: Vec<RuleError>,
}

impl LoadedRules {
    /// [`crate::hunt`] with these rules, the summary's `rules_rejected` filled in.
    pub fn hunt(
        &self,
        opts: &crate::HuntOptions,
        progress: &dyn crate::Progress,
    ) -> Result<crate::HuntReport, crate::HuntError> {
        let mut report = crate::hunt(opts, &self.set, progress)?;
        report.summary.rules_rejected = self.rejected.len() as u64;
        Ok(report)
    }
}

impl std::fmt::Debug for LoadedRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedRules")
            .field("rules", &self.set.len())
            .field("files", &self.files)
            .field("rejected", &self.rejected)
            .finish()
    }
}

fn is_rule_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
}

fn walk_rules(dir: &Path, files: &mut Vec<PathBuf>, rejected: &mut Vec<RuleError>) {
    let reject = |rejected: &mut Vec<RuleError>, p: &Path, e: std::io::Error| {
        rejected.push(RuleError {
            path: p.display().to_string(),
            line: None,
            rule: None,
            reason: format!("cannot read: {e}"),
        })
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return reject(rejected, dir, e),
    };
    for entry in entries {
        let p = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                reject(rejected, dir, e);
                continue;
            }
        };
        match std::fs::metadata(&p) {
            // Rule trees have no symlink loops in practice; depth is bounded by the OS anyway.
            Ok(m) if m.is_dir() => walk_rules(&p, files, rejected),
            Ok(m) if m.is_file() && is_rule_file(&p) => files.push(p),
            Ok(_) => {}
            Err(e) => reject(rejected, &p, e),
        }
    }
}

/// Loads every `.yml`/`.yaml` file under `paths` (files or folders, recursively) with
/// garrison-sigma. Never fails for a bad rule: unreadable files and rules that do not compile
/// are in [`LoadedRules::rejected`]. A path that does not exist is an error.
///
/// This is also what `garrison rules check DIR` reports.
pub fn load_rules(paths: &[PathBuf], opts: &LoadOptions) -> Result<LoadedRules, crate::HuntError> {
    let mut files = Vec::new();
    let mut rejected = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| crate::HuntError::RulePath {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk_rules(path, &mut files, &mut rejected);
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    let mut sources = Vec::with_capacity(files.len());
    for p in &files {
        match std::fs::read(p) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => sources.push(RuleSource::new(p.display().to_string(), text)),
                Err(_) => rejected.push(RuleError {
                    path: p.display().to_string(),
                    line: None,
                    rule: None,
                    reason: "not UTF-8 text".to_string(),
                }),
            },
            Err(e) => rejected.push(RuleError {
                path: p.display().to_string(),
                line: None,
                rule: None,
                reason: format!("cannot read: {e}"),
            }),
        }
    }
    let (set, errors) = garrison_sigma::load_rules(sources, opts);
    rejected.extend(errors);
    Ok(LoadedRules {
        set,
        files: files.len(),
        rejected,
    })
}

fn to_field_value(v: FieldRef<'_>) -> FieldValue<'_> {
    match v {
        FieldRef::Null => FieldValue::Null,
        FieldRef::Bool(b) => FieldValue::Bool(b),
        FieldRef::Int(i) => FieldValue::Int(i),
        FieldRef::UInt(u) => FieldValue::UInt(u),
        FieldRef::Float(f) => FieldValue::Float(f),
        FieldRef::Str(s) => FieldValue::Str(Cow::Borrowed(s)),
        FieldRef::List(l) => FieldValue::List(l.iter().map(to_field_value).collect()),
    }
}

impl Event for HuntEvent {
    fn get(&self, field: &str) -> Option<FieldValue<'_>> {
        HuntEvent::get(self, field).map(to_field_value)
    }

    fn visit_strings(&self, visit: &mut dyn FnMut(&str) -> bool) {
        self.fields.visit_strings(visit)
    }

    fn string_buffer(&self) -> Option<&str> {
        Some(self.fields.text_buffer())
    }
}
