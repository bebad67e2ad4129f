//! The disk watch: every second, the data directory's free space against its watermark and a
//! small write-and-fsync probe. Below the watermark, or when the probe fails (a full disk, an
//! I/O error, a read-only remount), the `disk` component is degraded and ingest refuses new
//! data with 503, so the log and the database keep room to finish what was acknowledged. When
//! both pass again, the component (and a failed log append) recover by themselves.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use garrison_model::health::Health;
use garrison_pipeline::{DISK, LOG};
use tokio::sync::watch;

/// Every component the service reports, for the `garrison_degraded` gauge.
pub const COMPONENTS: &[&str] = &[
    DISK,
    LOG,
    garrison_pipeline::INDEXER,
    garrison_detect::DETECTOR,
    garrison_triage::HEALTH,
];
pub const DEGRADED: &str = "garrison_degraded";
pub const DISK_FREE: &str = "garrison_disk_free_bytes";

const PROBE: &str = ".write-probe";

pub async fn watch(
    dir: PathBuf,
    min_free_bytes: u64,
    ingestor: garrison_pipeline::Ingestor,
    health: Health,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // What waiting log data will take once indexed must stay free too.
        let backlog = ingestor.retained_bytes();
        let reserve = min_free_bytes.saturating_add(
            backlog.saturating_mul(garrison_pipeline::DISK_BYTES_PER_LOG_BYTE as u64),
        );
        let checked = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || check(&dir, min_free_bytes, reserve)).await
        };
        let result = match checked {
            Ok(result) => result,
            Err(e) => Err(format!("disk check did not finish: {e}")),
        };
        let writable = result.is_ok();
        ingestor.set_disk_budget(match &result {
            Ok(budget) => i64::try_from(*budget).unwrap_or(i64::MAX),
            Err(_) => 0,
        });
        health.pass(DISK, result.map(|_| ()));
        if writable {
            // The probe just wrote and synced in the data directory: appends can be tried again.
            health.pass::<String>(LOG, Ok(()));
        }
        for component in COMPONENTS {
            let value = if health.is_degraded(component) {
                1.0
            } else {
                0.0
            };
            metrics::gauge!(DEGRADED, "component" => *component).set(value);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Free bytes available to this process on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Checks the file system of `dir`: at least `reserve` bytes free (the watermark plus room to
/// index the backlog) and writable. Returns the bytes that may be appended until the next check.
fn check(dir: &Path, min_free_bytes: u64, reserve: u64) -> Result<u64, String> {
    let free =
        free_bytes(dir).map_err(|e| format!("cannot read free space of {}: {e}", dir.display()))?;
    metrics::gauge!(DISK_FREE).set(free as f64);
    if free < min_free_bytes {
        return Err(format!(
            "{} free on {} is below the min_free_disk_bytes watermark of {}",
            mib(free),
            dir.display(),
            mib(min_free_bytes)
        ));
    }
    if free < reserve {
        return Err(format!(
            "{} free on {} is less than the min_free_disk_bytes watermark of {} plus {} to index what is waiting",
            mib(free),
            dir.display(),
            mib(min_free_bytes),
            mib(reserve - min_free_bytes)
        ));
    }
    let path = dir.join(PROBE);
    let probe = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&[0u8; 4096])?;
        file.sync_data()
    };
    let result = probe();
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| format!("cannot write to {}: {e}", dir.display()))?;
    Ok(free - reserve)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watermark_above_the_free_space_fails_the_check_and_names_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let budget = check(dir.path(), 0, 0).expect("room");
        assert!(budget > 0);
        let error = check(dir.path(), u64::MAX, u64::MAX).expect_err("no disk has that much free");
        assert!(error.contains("min_free_disk_bytes"), "{error}");
        let error = check(dir.path(), 0, u64::MAX).expect_err("no room to index that much");
        assert!(error.contains("to index what is waiting"), "{error}");
        assert!(!dir.path().join(PROBE).exists());
    }
}
