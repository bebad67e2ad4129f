//! Audit checkpoints: each tenant's chain head (sequence number and hash) signed with a key
//! kept beside the data, not in the database, and appended to `audit-checkpoints.jsonl`.
//!
//! The hash chain alone catches an edited entry, but not the newest entries (or all of a
//! tenant's) deleted: what is left is a valid, shorter chain. A checkpoint remembers how far
//! the chain went; verification fails when an entry a checkpoint saw is gone or changed.
//! Someone with the database alone cannot forge a checkpoint (no key); someone with the whole
//! data directory could, which is what forwarding the log and its checkpoints to a syslog
//! target elsewhere (`audit_forward`) is for.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use garrison_model::{TenantId, Timestamp};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{App, AppError, Result};

pub const CHECKPOINTS_FILE: &str = "audit-checkpoints.jsonl";
pub const KEY_FILE: &str = "audit-checkpoint.key";

/// One tenant's chain head at a moment, signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub tenant: i64,
    pub seq: i64,
    pub hash: String,
    /// RFC 3339.
    pub time: String,
    /// HMAC-SHA256 of `tenant|seq|hash|time` with the key file's key, hex.
    pub mac: String,
}

/// The checkpoint file and its key.
pub struct Anchors {
    file: PathBuf,
    key: Vec<u8>,
    /// The head each tenant was last checkpointed at (so an unchanged log adds no line).
    written: Mutex<HashMap<i64, i64>>,
}

impl Anchors {
    /// Opens (creating when missing) the key and the checkpoint file in `dir`. Both are the
    /// owner's alone.
    pub fn open(dir: &Path) -> Result<Anchors> {
        let key_path = dir.join(KEY_FILE);
        let key = match std::fs::read_to_string(&key_path) {
            Ok(text) => hex::decode(text.trim()).map_err(|e| {
                AppError::internal(format!("{} is damaged: {e}", key_path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                write_private(&key_path, hex::encode(key).as_bytes())?;
                key.to_vec()
            }
            Err(e) => {
                return Err(AppError::internal(format!(
                    "cannot read {}: {e}",
                    key_path.display()
                )))
            }
        };
        let anchors = Anchors {
            file: dir.join(CHECKPOINTS_FILE),
            key,
            written: Mutex::new(HashMap::new()),
        };
        let latest = anchors.read_latest()?;
        *anchors.written_map() = latest
            .into_iter()
            .map(|(tenant, checkpoint)| (tenant, checkpoint.seq))
            .collect();
        Ok(anchors)
    }

    fn written_map(&self) -> std::sync::MutexGuard<'_, HashMap<i64, i64>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mac(&self, tenant: i64, seq: i64, hash: &str, time: &str) -> String {
        // A key of any length is valid for HMAC; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(format!("{tenant}|{seq}|{hash}|{time}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn sign(&self, tenant: TenantId, seq: i64, hash: &str, time: Timestamp) -> Checkpoint {
        let time = time.to_string();
        Checkpoint {
            tenant: tenant.0,
            seq,
            mac: self.mac(tenant.0, seq, hash, &time),
            hash: hash.to_string(),
            time,
        }
    }

    pub fn is_genuine(&self, checkpoint: &Checkpoint) -> bool {
        let expected = self.mac(
            checkpoint.tenant,
            checkpoint.seq,
            &checkpoint.hash,
            &checkpoint.time,
        );
        // Both are hex of the same length; compare without an early exit.
        expected.len() == checkpoint.mac.len()
            && expected
                .bytes()
                .zip(checkpoint.mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// The newest genuine checkpoint of each tenant. Lines that do not parse or whose
    /// signature is wrong are skipped (they cannot vouch for anything).
    fn read_latest(&self) -> Result<HashMap<i64, Checkpoint>> {
        let file = match std::fs::File::open(&self.file) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => {
                return Err(AppError::internal(format!(
                    "cannot read {}: {e}",
                    self.file.display()
                )))
            }
        };
        let mut latest: HashMap<i64, Checkpoint> = HashMap::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(AppError::internal)?;
            let Ok(checkpoint) = serde_json::from_str::<Checkpoint>(&line) else {
                continue;
            };
            if !self.is_genuine(&checkpoint) {
                continue;
            }
            match latest.get(&checkpoint.tenant) {
                Some(known) if known.seq > checkpoint.seq => {}
                _ => {
                    latest.insert(checkpoint.tenant, checkpoint);
                }
            }
        }
        Ok(latest)
    }

    /// The newest genuine checkpoint of `tenant`.
    pub fn latest(&self, tenant: TenantId) -> Result<Option<Checkpoint>> {
        Ok(self.read_latest()?.remove(&tenant.0))
    }

    /// Appends checkpoints and flushes them to disk.
    pub fn append(&self, checkpoints: &[Checkpoint]) -> Result<()> {
        if checkpoints.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for checkpoint in checkpoints {
            text.push_str(&serde_json::to_string(checkpoint).map_err(AppError::internal)?);
            text.push('\n');
        }
        let mut file = open_private_append(&self.file)?;
        file.write_all(text.as_bytes())
            .and_then(|_| file.sync_data())
            .map_err(|e| AppError::internal(format!("{}: {e}", self.file.display())))?;
        let mut written = self.written_map();
        for checkpoint in checkpoints {
            written.insert(checkpoint.tenant, checkpoint.seq);
        }
        Ok(())
    }

    fn last_written(&self, tenant: TenantId) -> Option<i64> {
        self.written_map().get(&tenant.0).copied()
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AppError::internal(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| AppError::internal(format!("{}: {e}", path.display())))
}

fn open_private_append(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AppError::internal(format!("cannot open {}: {e}", path.display())))
}

impl App {
    /// Signs and records the chain head of every tenant whose log grew since its last
    /// checkpoint; returns the new checkpoints (for forwarding). A system task, every
    /// `audit_checkpoint_interval`, and `garrison audit checkpoint`.
    pub async fn checkpoint_audit(&self) -> Result<Vec<Checkpoint>> {
        let anchors = self.anchors()?;
        let mut fresh = Vec::new();
        for tenant in garrison_store::TenantRepo::list_tenants(self.store()).await? {
            let Some((seq, hash)) = self.store().audit_head(tenant.id).await? else {
                continue;
            };
            if anchors.last_written(tenant.id) == Some(seq) {
                continue;
            }
            fresh.push(anchors.sign(tenant.id, seq, &hash, Timestamp::now()));
        }
        let anchors = anchors.clone();
        let written = fresh.clone();
        tokio::task::spawn_blocking(move || anchors.append(&written))
            .await
            .map_err(AppError::internal)??;
        Ok(fresh)
    }

    /// What the newest checkpoint of this tenant says of the chain as it is now: `None` when
    /// there is no checkpoint (or no checkpoint file configured), else the checkpoint and,
    /// if the chain no longer holds what it saw, why.
    pub(crate) async fn check_against_checkpoint(
        &self,
        tenant: TenantId,
    ) -> Result<Option<(Checkpoint, Option<String>)>> {
        let Some(anchors) = self.anchors.as_ref() else {
            return Ok(None);
        };
        let anchors = anchors.clone();
        let latest = tokio::task::spawn_blocking(move || anchors.latest(tenant))
            .await
            .map_err(AppError::internal)??;
        let Some(checkpoint) = latest else {
            return Ok(None);
        };
        let problem = match self.store().audit_hash_at(tenant, checkpoint.seq).await? {
            None => {
                let head = self.store().audit_head(tenant).await?;
                Some(format!(
                    "entries were deleted: the checkpoint of {} saw entry {}, the log now ends at {}",
                    checkpoint.time,
                    checkpoint.seq,
                    head.map(|(seq, _)| format!("entry {seq}"))
                        .unwrap_or_else(|| "no entry at all".to_string())
                ))
            }
            Some(hash) if hash != checkpoint.hash => Some(format!(
                "entry {} is not the one the checkpoint of {} saw (hash {}, checkpoint {})",
                checkpoint.seq, checkpoint.time, hash, checkpoint.hash
            )),
            Some(_) => None,
        };
        Ok(Some((checkpoint, problem)))
    }

    fn anchors(&self) -> Result<&std::sync::Arc<Anchors>> {
        self.anchors
            .as_ref()
            .ok_or_else(|| AppError::internal("no audit checkpoint file is configured"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_only_with_its_key_and_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let anchors = Anchors::open(dir.path()).expect("open");
        let checkpoint = anchors.sign(TenantId(3), 42, "ab", Timestamp::UNIX_EPOCH);
        assert!(anchors.is_genuine(&checkpoint));
        let mut moved = checkpoint.clone();
        moved.seq = 41;
        assert!(!anchors.is_genuine(&moved));
        let other = tempfile::tempdir().expect("tempdir");
        assert!(!Anchors::open(other.path())
            .expect("open")
            .is_genuine(&checkpoint));
    }

    #[test]
    fn the_newest_genuine_checkpoint_wins_and_forged_lines_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let anchors = Anchors::open(dir.path()).expect("open");
        anchors
            .append(&[
                anchors.sign(TenantId(1), 5, "h5", Timestamp::UNIX_EPOCH),
                anchors.sign(TenantId(1), 9, "h9", Timestamp::UNIX_EPOCH),
                anchors.sign(TenantId(2), 3, "x3", Timestamp::UNIX_EPOCH),
            ])
            .expect("append");
        let mut forged = anchors.sign(TenantId(1), 2, "h2", Timestamp::UNIX_EPOCH);
        forged.seq = 100;
        anchors.append(&[forged]).expect("append");
        let reopened = Anchors::open(dir.path()).expect("reopen");
        assert_eq!(
            reopened.latest(TenantId(1)).expect("read").map(|c| c.seq),
            Some(9)
        );
        assert_eq!(reopened.last_written(TenantId(2)), Some(3));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
