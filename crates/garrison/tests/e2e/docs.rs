//! The README stays true to the code: every metric the code defines is listed there, and each
//! is defined once (a constant in the crate that counts it), never named inline.

use std::collections::BTreeSet;
use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every metric name the code defines (`const NAME: &str = "garrison_...";`, one definition
/// per metric, in the crate that counts it), and every place that names a metric inline in a
/// `counter!`/`gauge!`/`histogram!` call instead (which must be none).
fn metric_names(root: &Path) -> (BTreeSet<String>, Vec<String>) {
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates"))
        .expect("crates")
        .flatten()
    {
        let src = krate.path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    let mut names = BTreeSet::new();
    let mut inline = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("pub const ") && line.contains(": &str = \"garrison_") {
                if let Some(name) = line.split('"').nth(1) {
                    names.insert(name.to_string());
                }
            }
            for macro_name in ["counter!(\"", "gauge!(\"", "histogram!(\""] {
                if line.contains(macro_name) {
                    inline.push(format!("{}: {line}", file.display()));
                }
            }
        }
    }
    (names, inline)
}

#[test]
fn every_metric_is_defined_once_and_listed_in_the_readme() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let (names, inline) = metric_names(&root);
    assert!(
        inline.is_empty(),
        "metrics named inline instead of by their constant: {inline:#?}"
    );
    assert!(names.len() >= 20, "found only {names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !readme.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics missing from README.md: {missing:?}"
    );
}
