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

/// Per entry number, the hashes signed checkpoints saw there.
pub type ExpectedEntries = std::collections::BTreeMap<i64, Vec<garrison_store::ExpectedEntry>>;

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
    /// The head each tenant was last checkpointed at (so an unchanged log adds no line, and a
    /// chain that no longer holds it is noticed).
    written: Mutex<HashMap<i64, (i64, String)>>,
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
        let mut latest: HashMap<i64, (i64, String)> = HashMap::new();
        for checkpoint in anchors.read_all()? {
            match latest.get(&checkpoint.tenant) {
                Some((seq, _)) if *seq > checkpoint.seq => {}
                _ => {
                    latest.insert(checkpoint.tenant, (checkpoint.seq, checkpoint.hash));
                }
            }
        }
        *anchors.written_map() = latest;
        Ok(anchors)
    }

    fn written_map(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (i64, String)>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hmac(&self, tenant: i64, seq: i64, hash: &str, time: &str) -> Hmac<Sha256> {
        // A key of any length is valid for HMAC; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(format!("{tenant}|{seq}|{hash}|{time}").as_bytes());
        mac
    }

    fn mac(&self, tenant: i64, seq: i64, hash: &str, time: &str) -> String {
        hex::encode(self.hmac(tenant, seq, hash, time).finalize().into_bytes())
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
        let Ok(mac) = hex::decode(&checkpoint.mac) else {
            return false;
        };
        // `verify_slice` compares in constant time.
        self.hmac(
            checkpoint.tenant,
            checkpoint.seq,
            &checkpoint.hash,
            &checkpoint.time,
        )
        .verify_slice(&mac)
        .is_ok()
    }

    /// Every genuine checkpoint, in file order. Lines that do not parse or whose signature is
    /// wrong are skipped (they cannot vouch for anything).
    fn read_all(&self) -> Result<Vec<Checkpoint>> {
        let file = match std::fs::File::open(&self.file) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(AppError::internal(format!(
                    "cannot read {}: {e}",
                    self.file.display()
                )))
            }
        };
        let mut all = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(AppError::internal)?;
            let Ok(checkpoint) = serde_json::from_str::<Checkpoint>(&line) else {
                continue;
            };
            if self.is_genuine(&checkpoint) {
                all.push(checkpoint);
            }
        }
        Ok(all)
    }

    /// What every genuine checkpoint of `tenant` says each entry it saw was, and the newest.
    pub fn expected(&self, tenant: TenantId) -> Result<(ExpectedEntries, Option<Checkpoint>)> {
        let mut expected = ExpectedEntries::new();
        let mut newest: Option<Checkpoint> = None;
        for checkpoint in self.read_all()? {
            if checkpoint.tenant != tenant.0 {
                continue;
            }
            let seen = expected.entry(checkpoint.seq).or_default();
            if !seen.iter().any(|e| e.hash == checkpoint.hash) {
                seen.push(garrison_store::ExpectedEntry {
                    hash: checkpoint.hash.clone(),
                    seen: checkpoint.time.clone(),
                });
            }
            if newest.as_ref().is_none_or(|n| n.seq <= checkpoint.seq) {
                newest = Some(checkpoint);
            }
        }
        Ok((expected, newest))
    }

    /// The newest genuine checkpoint of `tenant`.
    pub fn latest(&self, tenant: TenantId) -> Result<Option<Checkpoint>> {
        Ok(self.expected(tenant)?.1)
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
            written.insert(checkpoint.tenant, (checkpoint.seq, checkpoint.hash.clone()));
        }
        Ok(())
    }

    /// Keeps the whole details of an audit entry too big to hold them, named by their SHA-256
    /// (which the entry carries); returns the path relative to the data directory.
    pub fn store_details(&self, sha256: &str, text: &str) -> Result<String> {
        let dir = self
            .file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("audit-details");
        std::fs::create_dir_all(&dir)
            .map_err(|e| AppError::internal(format!("cannot create {}: {e}", dir.display())))?;
        let name = format!("{sha256}.json");
        let path = dir.join(&name);
        if !path.exists() {
            let tmp = dir.join(format!(".{name}.tmp"));
            let _ = std::fs::remove_file(&tmp);
            write_private(&tmp, text.as_bytes())?;
            std::fs::rename(&tmp, &path)
                .map_err(|e| AppError::internal(format!("{}: {e}", path.display())))?;
        }
        Ok(format!("audit-details/{name}"))
    }

    fn last_written(&self, tenant: TenantId) -> Option<(i64, String)> {
        self.written_map().get(&tenant.0).cloned()
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
            let head = self.store().audit_head(tenant.id).await?;
            let last = anchors.last_written(tenant.id);
            if let Some((seq, hash)) = &last {
                if head.as_ref() == Some(&(*seq, hash.clone())) {
                    continue;
                }
                // The entry the last checkpoint saw must still be there: if it is not, the log
                // was cut (and perhaps written again). Signing the new head would only bury
                // that; leave it to `audit verify` and say so loudly.
                if self.store().audit_hash_at(tenant.id, *seq).await?.as_ref() != Some(hash) {
                    metrics::counter!(crate::audit::AUDIT_ERRORS).increment(1);
                    tracing::error!(tenant = %tenant.name, checkpoint_seq = seq, "the audit log no longer holds the entry its last checkpoint saw: entries were deleted; run `garrison audit verify`");
                    continue;
                }
            }
            let Some((seq, hash)) = head else {
                continue;
            };
            fresh.push(anchors.sign(tenant.id, seq, &hash, Timestamp::now()));
        }
        let anchors = anchors.clone();
        let written = fresh.clone();
        tokio::task::spawn_blocking(move || anchors.append(&written))
            .await
            .map_err(AppError::internal)??;
        Ok(fresh)
    }

    /// Every genuine checkpoint of this tenant (what each saw at which entry) and the newest,
    /// for verification; empty without a checkpoint file.
    pub(crate) async fn checkpoints_of(
        &self,
        tenant: TenantId,
    ) -> Result<(ExpectedEntries, Option<Checkpoint>)> {
        let Some(anchors) = self.anchors.as_ref() else {
            return Ok((ExpectedEntries::new(), None));
        };
        let anchors = anchors.clone();
        tokio::task::spawn_blocking(move || anchors.expected(tenant))
            .await
            .map_err(AppError::internal)?
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
        assert_eq!(
            reopened.last_written(TenantId(2)).map(|(seq, _)| seq),
            Some(3)
        );
        let (expected, newest) = reopened.expected(TenantId(1)).expect("expected");
        assert_eq!(expected.keys().copied().collect::<Vec<_>>(), vec![5, 9]);
        assert_eq!(newest.map(|c| c.seq), Some(9));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
