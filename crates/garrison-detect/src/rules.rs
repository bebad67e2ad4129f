//! Rule files to import: read from a folder, a zip archive or uploaded texts, checked by
//! compiling them, and named by the Sigma id of their first rule.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use garrison_sigma::{load_rules, LoadOptions, RuleError, RuleKind, RuleSource};
use garrison_store::NewRule;

use crate::DetectError;

/// Largest rule file taken from an archive (SigmaHQ's largest is under 100 KiB).
pub const MAX_RULE_FILE_BYTES: u64 = 1024 * 1024;
/// Most files taken from one archive.
pub const MAX_ARCHIVE_FILES: usize = 50_000;

/// Rules ready to import, and the files that cannot be.
#[derive(Debug, Default)]
pub struct ParsedRules {
    pub rules: Vec<NewRule>,
    pub rejected: Vec<RuleError>,
    /// Rules kept that use placeholders the tenant has not defined yet, with those names:
    /// they load live once the values exist (`garrison placeholder set`).
    pub waiting: Vec<(String, Vec<String>)>,
}

/// The `%name%` placeholders a rule text uses with the `expand` modifier.
pub fn expanded_placeholders(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    if !text.contains("|expand") {
        return names;
    }
    for line in text
        .lines()
        .filter(|l| l.contains("expand") || l.trim_start().starts_with('-'))
    {
        let mut rest = line;
        while let Some(start) = rest.find('%') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else { break };
            let name = &after[..end];
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                if !names.iter().any(|n: &String| n.eq_ignore_ascii_case(name)) {
                    names.push(name.to_string());
                }
                rest = &after[end + 1..];
            } else {
                rest = after;
            }
        }
    }
    names
}

fn is_rule_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yml") || lower.ends_with(".yaml")
}

/// Compiles the files together (so correlations may name rules of other files) and keeps
/// each file that gave at least one rule and no error, named by its first rule's id (or name;
/// else its file name). A later file with an id already taken is rejected.
///
/// Rules are compiled with the tenant's `placeholders`; a placeholder they use that has no
/// values yet does not refuse the file: it is kept and listed in [`ParsedRules::waiting`].
pub fn parse_rule_files(
    sources: Vec<RuleSource>,
    placeholders: &HashMap<String, Vec<String>>,
) -> ParsedRules {
    let mut options = LoadOptions {
        placeholders: placeholders.clone(),
        ..LoadOptions::default()
    };
    let mut waiting: HashMap<String, Vec<String>> = HashMap::new();
    for source in &sources {
        let missing: Vec<String> = expanded_placeholders(&source.text)
            .into_iter()
            .filter(|name| !placeholders.keys().any(|k| k.eq_ignore_ascii_case(name)))
            .collect();
        for name in &missing {
            // Compiles for checking only; the stored rule waits for real values.
            options
                .placeholders
                .entry(name.clone())
                .or_insert_with(|| vec!["\u{1}garrison-undefined-placeholder".into()]);
        }
        if !missing.is_empty() {
            waiting.insert(source.path.clone(), missing);
        }
    }
    let (set, errors) = load_rules(sources.iter().cloned(), &options);
    let mut out = ParsedRules::default();
    let mut failed: HashMap<&str, ()> = HashMap::new();
    for error in &errors {
        failed.insert(error.path.as_str(), ());
    }
    out.rejected.extend(errors.iter().cloned());
    // The first detection or correlation rule of each file.
    let mut first: HashMap<&str, &garrison_sigma::RuleMeta> = HashMap::new();
    for meta in set.rules() {
        let entry = first.entry(meta.path.as_str()).or_insert(meta);
        if meta.line < entry.line || (meta.line == entry.line && meta.kind == RuleKind::Detection) {
            *entry = meta;
        }
    }
    let mut taken: HashMap<String, String> = HashMap::new();
    for source in sources {
        if failed.contains_key(source.path.as_str()) {
            continue;
        }
        // What the file is kept as: its first detection or correlation rule, else (a file of
        // filters alone, Sigma tuning) its first filter, which applies to the rules it names
        // whenever both are enabled and raises nothing itself (its level only sorts lists).
        let (id, line, title, level) = match first.get(source.path.as_str()) {
            Some(meta) => (
                meta.id.clone().or_else(|| meta.name.clone()),
                meta.line,
                meta.title.clone(),
                meta.level,
            ),
            None => match set.filters().iter().find(|f| f.path == source.path) {
                Some(filter) => (
                    filter.id.clone(),
                    filter.line,
                    filter.title.clone(),
                    Some(garrison_sigma::Level::Informational),
                ),
                None => {
                    out.rejected.push(RuleError {
                        path: source.path.clone(),
                        line: None,
                        rule: None,
                        reason: "no detection or correlation rule in this file".into(),
                    });
                    continue;
                }
            },
        };
        let rule_id = id.unwrap_or_else(|| {
            Path::new(&source.path)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| source.path.clone())
        });
        if let Some(other) = taken.get(&rule_id) {
            out.rejected.push(RuleError {
                path: source.path.clone(),
                line: Some(line).filter(|l| *l > 0),
                rule: Some(rule_id.clone()),
                reason: format!("rule id already used by {other}"),
            });
            continue;
        }
        taken.insert(rule_id.clone(), source.path.clone());
        if let Some(names) = waiting.remove(&source.path) {
            out.waiting.push((rule_id.clone(), names));
        }
        out.rules.push(NewRule {
            rule_id,
            title,
            level,
            yaml: source.text,
            origin: source.path,
        });
    }
    out
}

/// Every `.yml`/`.yaml` file under `dir` (recursively), or the file itself.
pub fn sources_from_path(path: &Path) -> Result<(Vec<RuleSource>, Vec<RuleError>), DetectError> {
    let io = |e: std::io::Error| DetectError::Read(format!("{}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
    {
        let bytes = std::fs::read(path).map_err(io)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return sources_from_zip(&name, &bytes);
    }
    if meta.is_file() {
        let text = std::fs::read_to_string(path).map_err(io)?;
        return Ok((
            vec![RuleSource::new(path.display().to_string(), text)],
            Vec::new(),
        ));
    }
    let mut files = Vec::new();
    let mut rejected = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                rejected.push(read_error(&dir.display().to_string(), e));
                continue;
            }
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_rule_name(&p.to_string_lossy()) {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut sources = Vec::with_capacity(files.len());
    for p in files {
        match std::fs::read_to_string(&p) {
            Ok(text) => sources.push(RuleSource::new(p.display().to_string(), text)),
            Err(e) => rejected.push(read_error(&p.display().to_string(), e)),
        }
    }
    Ok((sources, rejected))
}

fn read_error(path: &str, e: impl std::fmt::Display) -> RuleError {
    RuleError {
        path: path.to_string(),
        line: None,
        rule: None,
        reason: format!("cannot read: {e}"),
    }
}

/// The rule files in a zip archive; origins are `NAME.zip:member/path.yml`.
pub fn sources_from_zip(
    name: &str,
    bytes: &[u8],
) -> Result<(Vec<RuleSource>, Vec<RuleError>), DetectError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| DetectError::Read(format!("{name}: not a zip archive: {e}")))?;
    let mut sources = Vec::new();
    let mut rejected = Vec::new();
    for i in 0..archive.len().min(MAX_ARCHIVE_FILES) {
        let mut entry = match archive.by_index(i) {
            Ok(entry) => entry,
            Err(e) => {
                rejected.push(read_error(&format!("{name}:#{i}"), e));
                continue;
            }
        };
        let member = match entry.name() {
            Ok(name) => name.into_owned(),
            Err(e) => {
                rejected.push(read_error(&format!("{name}:#{i}"), e));
                continue;
            }
        };
        if !entry.is_file() || !is_rule_name(&member) {
            continue;
        }
        let origin = format!("{name}:{member}");
        if entry.size() > MAX_RULE_FILE_BYTES {
            rejected.push(read_error(&origin, "larger than 1 MiB"));
            continue;
        }
        let mut text = String::new();
        match (&mut entry)
            .take(MAX_RULE_FILE_BYTES + 1)
            .read_to_string(&mut text)
        {
            Ok(_) => sources.push(RuleSource::new(origin, text)),
            Err(e) => rejected.push(read_error(&origin, e)),
        }
    }
    sources.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((sources, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHOAMI: &str = "title: Whoami\nid: 11111111-0000-4000-8000-000000000001\nlevel: high\nlogsource: { product: windows, category: process_creation }\ndetection: { selection: { Image|endswith: '\\whoami.exe' }, condition: selection }\n";

    #[test]
    fn files_are_named_by_their_first_rule_and_bad_ones_are_reported() {
        let parsed = parse_rule_files(
            vec![
                RuleSource::new("a/whoami.yml", WHOAMI),
                RuleSource::new("b/broken.yml", "title: x\ndetection: {condition: nope}\n"),
                RuleSource::new("c/again.yml", WHOAMI),
            ],
            &Default::default(),
        );
        assert_eq!(parsed.rules.len(), 1);
        let rule = &parsed.rules[0];
        assert_eq!(rule.rule_id, "11111111-0000-4000-8000-000000000001");
        assert_eq!(rule.level, Some(garrison_model::Level::High));
        assert_eq!(rule.origin, "a/whoami.yml");
        assert_eq!(parsed.rejected.len(), 2, "{:?}", parsed.rejected);
        assert!(parsed.rejected.iter().any(|e| e.path == "c/again.yml"));
    }

    #[test]
    fn zip_archives_are_read_with_their_member_names() {
        use std::io::Write;
        let mut buffer = std::io::Cursor::new(Vec::new());
        {
            let mut writer = zip::ZipWriter::new(&mut buffer);
            let options = zip::write::SimpleFileOptions::default();
            writer
                .start_file("rules/whoami.yml", options)
                .expect("file");
            writer.write_all(WHOAMI.as_bytes()).expect("write");
            writer.start_file("README.md", options).expect("file");
            writer.write_all(b"not a rule").expect("write");
            writer.finish().expect("finish");
        }
        let (sources, rejected) = sources_from_zip("sigma.zip", buffer.get_ref()).expect("zip");
        assert!(rejected.is_empty());
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].path, "sigma.zip:rules/whoami.yml");
        assert!(sources_from_zip("bad.zip", b"nope").is_err());
    }
}
