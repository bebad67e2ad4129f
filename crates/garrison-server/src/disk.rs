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
pub const COMPONENTS: &[&str] = &[DISK, LOG, "indexer", "detector", "triage"];
pub const DEGRADED: &str = "garrison_degraded";
pub const DISK_FREE: &str = "garrison_disk_free_bytes";

const PROBE: &str = ".write-probe";

pub async fn watch(
    dir: PathBuf,
    min_free_bytes: u64,
    health: Health,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let checked = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || check(&dir, min_free_bytes)).await
        };
        let result = match checked {
            Ok(result) => result,
            Err(e) => Err(format!("disk check did not finish: {e}")),
        };
        let writable = result.is_ok();
        health.pass(DISK, result);
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

fn check(dir: &Path, min_free_bytes: u64) -> Result<(), String> {
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
    let path = dir.join(PROBE);
    let probe = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&[0u8; 4096])?;
        file.sync_data()
    };
    let result = probe();
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| format!("cannot write to {}: {e}", dir.display()))
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
        assert!(check(dir.path(), 0).is_ok());
        let error = check(dir.path(), u64::MAX).expect_err("no disk has that much free");
        assert!(error.contains("min_free_disk_bytes"), "{error}");
        assert!(!dir.path().join(PROBE).exists());
    }
}
