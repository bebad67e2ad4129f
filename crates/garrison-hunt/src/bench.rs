//! Throughput measurement for `garrison bench hunt` and the criterion bench.

use crate::hunt::HuntOptions;
use crate::progress::NoProgress;
use crate::HuntError;
use garrison_sigma::RuleSet;
use std::time::{Duration, Instant};

/// What [`bench_hunt`] measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BenchReport {
    pub passes: usize,
    pub threads: usize,
    /// Events per pass.
    pub events: u64,
    /// Hits per pass.
    pub hits: u64,
    /// Rules hunted with.
    pub rules: u64,
    /// Wall-clock time of each pass.
    pub pass_times: Vec<Duration>,
    /// CPU time (user + system) of the process over all passes, when `/proc` tells it.
    pub cpu_time: Option<Duration>,
    /// Peak resident memory of the process (`VmHWM`), in bytes, when `/proc` tells it.
    pub peak_rss: Option<u64>,
}

impl BenchReport {
    /// Events per second of wall-clock time, over the fastest pass.
    pub fn events_per_second(&self) -> f64 {
        let best = self.pass_times.iter().min().copied().unwrap_or_default();
        if best.is_zero() {
            0.0
        } else {
            self.events as f64 / best.as_secs_f64()
        }
    }

    /// Events per second of CPU time (per core actually busy), over all passes.
    pub fn events_per_cpu_second(&self) -> Option<f64> {
        let cpu = self.cpu_time?;
        (!cpu.is_zero()).then(|| self.events as f64 * self.passes as f64 / cpu.as_secs_f64())
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let best = self.pass_times.iter().min().copied().unwrap_or_default();
        write!(
            f,
            "{} events x {} passes, {} rules, {} hits/pass, {} threads: best pass {:.3} s, {:.0} events/s ({:.0} per thread)",
            self.events,
            self.passes,
            self.rules,
            self.hits,
            self.threads,
            best.as_secs_f64(),
            self.events_per_second(),
            self.events_per_second() / self.threads.max(1) as f64
        )?;
        if let Some(e) = self.events_per_cpu_second() {
            write!(f, ", {e:.0} events per CPU-second")?;
        }
        if let Some(rss) = self.peak_rss {
            write!(f, ", peak RSS {:.0} MiB", rss as f64 / (1024.0 * 1024.0))?;
        }
        Ok(())
    }
}

/// CPU time (user + system) of this process, from `/proc/self/stat` (Linux).
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Peak resident set size of this process (`VmHWM` of `/proc/self/status`), in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Hunts `opts.paths` with `rules` `passes` times (at least once) and measures throughput.
pub fn bench_hunt(
    opts: &HuntOptions,
    rules: &RuleSet,
    passes: usize,
) -> Result<BenchReport, HuntError> {
    let passes = passes.max(1);
    let mut report = BenchReport {
        passes,
        ..BenchReport::default()
    };
    let pool = crate::hunt::thread_pool(opts.threads)?;
    let cpu_start = process_cpu_time();
    for _ in 0..passes {
        let start = Instant::now();
        let r = crate::hunt::hunt_in(&pool, opts, rules, &NoProgress)?;
        report.pass_times.push(start.elapsed());
        report.events = r.summary.events;
        report.hits = r.summary.hits;
        report.threads = r.summary.threads;
        report.rules = r.summary.rules_used;
    }
    report.cpu_time = match (cpu_start, process_cpu_time()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    report.peak_rss = peak_rss();
    Ok(report)
}
