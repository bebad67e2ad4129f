//! One service per data directory. Two processes appending to one event log would truncate
//! each other's acknowledged frames as a torn tail at the next start, so `serve` takes an
//! exclusive lock on `garrison.lock` first and a second instance stops at once, naming the
//! holder. The lock is the operating system's (`flock`): it ends with the process, even after
//! `kill -9`, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;

use crate::ServerError;

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "garrison.lock";

/// Held for the life of the service.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

impl InstanceLock {
    /// Takes the data directory for this process, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<InstanceLock, ServerError> {
        let path = data_dir.join(LOCK_FILE);
        let cannot =
            |e: std::io::Error| ServerError::Config(format!("cannot lock {}: {e}", path.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(cannot)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(cannot)?;
                writeln!(file, "{}", std::process::id()).map_err(cannot)?;
                file.sync_all().map_err(cannot)?;
                Ok(InstanceLock { _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                Err(ServerError::Config(format!(
                    "the data directory {} is in use by another Garrison service (pid {}); stop it, or give this one another --data-dir",
                    data_dir.display(),
                    if holder.is_empty() { "unknown" } else { holder }
                )))
            }
            Err(TryLockError::Error(e)) => Err(cannot(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = InstanceLock::acquire(dir.path()).expect("first");
        let err = InstanceLock::acquire(dir.path()).expect_err("second");
        let text = err.to_string();
        assert!(
            text.contains("in use by another Garrison service"),
            "{text}"
        );
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        InstanceLock::acquire(dir.path()).expect("free again");
    }
}
