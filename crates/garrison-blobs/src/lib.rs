//! Content-addressed files on disk, per tenant.
//!
//! Incident attachments (evidence: memory images, pcaps, screenshots, exported logs) are kept
//! as files named by the SHA-256 of their content, under `ROOT/t<tenant>/<first two hex
//! digits>/<sha256>`. The same content uploaded twice is one file; tenants never share a file,
//! so removing one tenant's data never touches another's and nothing tells a tenant what
//! another holds.
//!
//! Writes are atomic and durable: the bytes go to a temporary file under `ROOT/tmp`, which is
//! flushed to disk and then renamed into place (and the folder flushed), so a file under its
//! hash name is always whole. A crash leaves at most a temporary file, which the next
//! [`BlobStore::open`] removes. Reads check the content against its name first, so evidence
//! altered on disk is reported instead of served.
//!
//! Which incident holds which blob is the store's business (the `incident_attachments`
//! table); [`BlobStore::lock`] lets the caller make "write the file, then record it" and
//! "forget it, then delete the file if nothing else holds it" exclusive of each other.

use std::io::Read;
use std::path::{Path, PathBuf};

use garrison_model::TenantId;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// What can go wrong with a blob.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the content is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0:?} is not a SHA-256 (64 hexadecimal digits)")]
    InvalidHash(String),
    #[error("no content with SHA-256 {0}")]
    NotFound(String),
    /// The file under a hash name holds other content: it was altered on disk.
    #[error("the stored content of {expected} does not match its hash (it hashes to {actual}); it was altered on disk")]
    Corrupt { expected: String, actual: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BlobError {
    let context = context.into();
    move |source| BlobError::Io { context, source }
}

pub type Result<T> = std::result::Result<T, BlobError>;

/// A stored blob: its hash (lowercase hex) and size in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub sha256: String,
    pub size: u64,
}

/// The files under one root folder.
#[derive(Debug)]
pub struct BlobStore {
    root: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

/// Checks a hash's form and returns it in lowercase.
pub fn normalize_hash(sha256: &str) -> Result<String> {
    if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha256.to_ascii_lowercase())
    } else {
        Err(BlobError::InvalidHash(sha256.chars().take(80).collect()))
    }
}

impl BlobStore {
    /// Opens (creating) the folder, and removes temporary files a crash left behind.
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobStore> {
        let root = root.into();
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io(format!("cannot create {}", tmp.display())))?;
        let entries =
            std::fs::read_dir(&tmp).map_err(io(format!("cannot read {}", tmp.display())))?;
        for entry in entries.flatten() {
            // A leftover that cannot be removed now is tried again on the next start.
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(BlobStore {
            root,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Serializes writers and removers that keep a record of which blobs are in use.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    /// Where the content with this hash lives for this tenant.
    pub fn path(&self, tenant: TenantId, sha256: &str) -> Result<PathBuf> {
        let sha = normalize_hash(sha256)?;
        Ok(self
            .root
            .join(format!("t{}", tenant.0))
            .join(&sha[..2])
            .join(sha))
    }

    /// Starts writing new content of at most `max_bytes` bytes.
    pub async fn writer(&self, tenant: TenantId, max_bytes: u64) -> Result<BlobWriter<'_>> {
        let name: u128 = rand::thread_rng().gen();
        let tmp = self.root.join("tmp").join(format!("{name:032x}.part"));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(io(format!("cannot create {}", tmp.display())))?;
        Ok(BlobWriter {
            store: self,
            tenant,
            file: Some(file),
            tmp,
            hasher: Sha256::new(),
            size: 0,
            max_bytes,
        })
    }

    /// Whether the tenant holds content with this hash.
    pub async fn exists(&self, tenant: TenantId, sha256: &str) -> Result<bool> {
        let path = self.path(tenant, sha256)?;
        tokio::fs::try_exists(&path)
            .await
            .map_err(io(format!("cannot look at {}", path.display())))
    }

    /// Opens the content for reading after checking that it still hashes to its name.
    pub async fn open_verified(
        &self,
        tenant: TenantId,
        sha256: &str,
    ) -> Result<(tokio::fs::File, u64)> {
        let sha = normalize_hash(sha256)?;
        let path = self.path(tenant, &sha)?;
        let file = tokio::task::spawn_blocking(move || verify_file(&path, &sha))
            .await
            .map_err(|e| BlobError::Io {
                context: "hashing stopped".into(),
                source: std::io::Error::other(e),
            })??;
        let size = file
            .metadata()
            .map_err(io("cannot read the file's size"))?
            .len();
        Ok((tokio::fs::File::from_std(file), size))
    }

    /// Deletes the tenant's content with this hash (absent content is not an error).
    pub async fn remove(&self, tenant: TenantId, sha256: &str) -> Result<()> {
        let path = self.path(tenant, sha256)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => sync_parent(&path).await,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("cannot remove {}", path.display()))(e)),
        }
    }
}

/// Opens `path` and hashes it; the file is returned positioned at its start.
fn verify_file(path: &Path, sha: &str) -> Result<std::fs::File> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BlobError::NotFound(sha.to_string()))
        }
        Err(e) => return Err(io(format!("cannot open {}", path.display()))(e)),
    };
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(io(format!("cannot read {}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    let actual = hex::encode(hasher.finalize());
    if actual != sha {
        return Err(BlobError::Corrupt {
            expected: sha.to_string(),
            actual,
        });
    }
    // A fresh handle starts at the beginning.
    std::fs::File::open(path).map_err(io(format!("cannot open {}", path.display())))
}

/// Flushes the folder holding `path`, so a rename or removal in it survives a crash.
async fn sync_parent(path: &Path) -> Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    let parent = parent.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&parent)
            .and_then(|dir| dir.sync_all())
            .map_err(io(format!("cannot flush folder {}", parent.display())))
    })
    .await
    .map_err(|e| BlobError::Io {
        context: "flushing stopped".into(),
        source: std::io::Error::other(e),
    })?
}

/// New content being written; [`BlobWriter::finish`] stores it, dropping it discards it.
pub struct BlobWriter<'a> {
    store: &'a BlobStore,
    tenant: TenantId,
    /// `None` once finished.
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    hasher: Sha256,
    size: u64,
    max_bytes: u64,
}

impl BlobWriter<'_> {
    /// Appends a chunk; refuses content beyond the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let len = chunk.len() as u64;
        if self.size.saturating_add(len) > self.max_bytes {
            return Err(BlobError::TooLarge {
                limit: self.max_bytes,
            });
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io("writing a finished blob")(std::io::Error::other(
                "already finished",
            )));
        };
        self.hasher.update(chunk);
        file.write_all(chunk)
            .await
            .map_err(io(format!("cannot write {}", self.tmp.display())))?;
        self.size += len;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes the content to disk and moves it under its hash name. Content already stored
    /// is replaced by the fresh copy (the same bytes), which also repairs a damaged file.
    pub async fn finish(mut self) -> Result<Blob> {
        let Some(mut file) = self.file.take() else {
            return Err(io("finishing a finished blob")(std::io::Error::other(
                "already finished",
            )));
        };
        let tmp = self.tmp.clone();
        file.flush()
            .await
            .map_err(io(format!("cannot write {}", tmp.display())))?;
        file.sync_all()
            .await
            .map_err(io(format!("cannot flush {}", tmp.display())))?;
        drop(file);
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let path = self.store.path(self.tenant, &sha256)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io(format!("cannot create {}", parent.display())))?;
        }
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(io(format!("cannot move content to {}", path.display())))?;
        // Renamed: nothing is left for Drop to clean up.
        self.tmp = PathBuf::new();
        sync_parent(&path).await?;
        Ok(Blob {
            sha256,
            size: self.size,
        })
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            // Abandoned (too large, the client went away): the partial file goes.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    async fn put(store: &BlobStore, tenant: TenantId, chunks: &[&[u8]]) -> Result<Blob> {
        let mut writer = store.writer(tenant, 1 << 20).await?;
        for chunk in chunks {
            writer.write(chunk).await?;
        }
        writer.finish().await
    }

    async fn read_all(store: &BlobStore, tenant: TenantId, sha256: &str) -> Result<Vec<u8>> {
        use tokio::io::AsyncReadExt;
        let (mut file, size) = store.open_verified(tenant, sha256).await?;
        let mut out = Vec::new();
        file.read_to_end(&mut out).await.map_err(io("read"))?;
        assert_eq!(out.len() as u64, size);
        Ok(out)
    }

    fn tmp_files(store: &BlobStore) -> usize {
        std::fs::read_dir(store.root().join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn content_is_stored_once_by_hash_per_tenant_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let (a, b) = (TenantId(1), TenantId(2));
        let blob = put(&store, a, &[b"hello ", b"world"]).await.unwrap();
        assert_eq!(blob.sha256, sha(b"hello world"));
        assert_eq!(blob.size, 11);
        let again = put(&store, a, &[b"hello world"]).await.unwrap();
        assert_eq!(again, blob);
        assert_eq!(
            read_all(&store, a, &blob.sha256).await.unwrap(),
            b"hello world"
        );
        // Upper-case hashes name the same content.
        let upper = blob.sha256.to_ascii_uppercase();
        assert!(store.exists(a, &upper).await.unwrap());
        // Another tenant does not see it.
        assert!(!store.exists(b, &blob.sha256).await.unwrap());
        assert!(matches!(
            read_all(&store, b, &blob.sha256).await,
            Err(BlobError::NotFound(_))
        ));
        assert_eq!(tmp_files(&store), 0);
        store.remove(a, &blob.sha256).await.unwrap();
        assert!(!store.exists(a, &blob.sha256).await.unwrap());
        // Removing what is gone is fine.
        store.remove(a, &blob.sha256).await.unwrap();
    }

    #[tokio::test]
    async fn too_large_content_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut writer = store.writer(TenantId(1), 10).await.unwrap();
        writer.write(b"0123456789").await.unwrap();
        let error = writer.write(b"x").await.unwrap_err();
        assert!(
            matches!(error, BlobError::TooLarge { limit: 10 }),
            "{error}"
        );
        drop(writer);
        assert_eq!(tmp_files(&store), 0);
    }

    #[tokio::test]
    async fn altered_content_is_reported_not_served_and_a_new_upload_repairs_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let tenant = TenantId(7);
        let blob = put(&store, tenant, &[b"evidence"]).await.unwrap();
        std::fs::write(store.path(tenant, &blob.sha256).unwrap(), b"tampered").unwrap();
        let error = read_all(&store, tenant, &blob.sha256).await.unwrap_err();
        match &error {
            BlobError::Corrupt { expected, actual } => {
                assert_eq!(expected, &blob.sha256);
                assert_eq!(actual, &sha(b"tampered"));
            }
            other => panic!("expected corrupt, got {other}"),
        }
        put(&store, tenant, &[b"evidence"]).await.unwrap();
        assert_eq!(
            read_all(&store, tenant, &blob.sha256).await.unwrap(),
            b"evidence"
        );
    }

    #[tokio::test]
    async fn bad_hashes_are_errors_and_leftovers_are_cleaned_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        for bad in [
            "",
            "abc",
            &"g".repeat(64),
            "../../etc/passwd",
            &"a".repeat(65),
        ] {
            assert!(matches!(
                store.path(TenantId(1), bad),
                Err(BlobError::InvalidHash(_))
            ));
        }
        // A crash mid-write leaves a temporary file; the next open removes it.
        let writer = store.writer(TenantId(1), 100).await.unwrap();
        std::mem::forget(writer);
        assert_eq!(tmp_files(&store), 1);
        let store = BlobStore::open(dir.path()).unwrap();
        assert_eq!(tmp_files(&store), 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// Any content in any chunking is stored under its hash and read back unchanged.
        #[test]
        fn any_chunking_round_trips(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..8)
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let store = BlobStore::open(dir.path()).unwrap();
                let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
                let whole: Vec<u8> = chunks.concat();
                let blob = put(&store, TenantId(3), &refs).await.unwrap();
                assert_eq!(blob.sha256, sha(&whole));
                assert_eq!(blob.size, whole.len() as u64);
                assert_eq!(read_all(&store, TenantId(3), &blob.sha256).await.unwrap(), whole);
            });
        }
    }
}
