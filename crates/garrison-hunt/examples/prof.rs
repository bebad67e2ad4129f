//! Profiling helper: rule load time, automata memory, index stats.
#![allow(clippy::print_stdout)]
use std::time::Instant;
fn main() {
    let dirs: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    let t = Instant::now();
    let r = garrison_hunt::load_rules(&dirs, &Default::default()).unwrap();
    println!(
        "load {:.3}s rules {} rejected {}",
        t.elapsed().as_secs_f64(),
        r.set.len(),
        r.rejected.len()
    );
    println!(
        "automata {} KiB, rss {:?} MiB",
        r.set.automata_memory() / 1024,
        garrison_hunt::peak_rss().map(|x| x >> 20)
    );
    let st = r.set.index_stats();
    println!("buckets {}", st.len());
    for s in st.iter().take(8) {
        println!("{s:?}");
    }
}
