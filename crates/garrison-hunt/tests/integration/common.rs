use std::path::PathBuf;

/// The shared corpus, or `None` (with the reason printed) when it is absent.
pub fn corpus() -> Option<PathBuf> {
    let path = match std::env::var_os("GARRISON_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!(
            "skipped: corpus not found at {} (set GARRISON_CORPUS)",
            path.display()
        );
        None
    }
}

/// A sub-folder of the corpus, or `None` (with the reason printed).
pub fn corpus_dir(sub: &str) -> Option<PathBuf> {
    let dir = corpus()?.join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} not found", dir.display());
        None
    }
}

/// Every file under `dir` whose name ends in `.ext`, sorted.
pub fn files_with_ext(dir: &std::path::Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read corpus dir") {
            let p = entry.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext)) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
