//! Content-addressed blob storage on the local filesystem.
//!
//! A blob is written to `tmp/` while its BLAKE3 hash is computed, flushed to disk with
//! `fdatasync`, and only then renamed to `blobs/<first two hex digits>/<hash>` and its
//! directory synced. A blob is therefore either absent or complete and durable, and a path
//! is never overwritten with different bytes: identical content lands on the same path once.
//!
//! The object-store tiers (S3 cold tier, lifecycle) build on this layout later.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use renkei_domain::model::BlobHash;
use tokio::io::AsyncWriteExt;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("storage is full")]
    Full,
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("blob storage failed")]
    Io(#[source] io::Error),
}

impl From<io::Error> for BlobError {
    fn from(error: io::Error) -> Self {
        // ENOSPC and EDQUOT: the disk or the quota is full.
        match error.raw_os_error() {
            Some(28) | Some(122) => BlobError::Full,
            _ if error.kind() == io::ErrorKind::NotFound => BlobError::NotFound(String::new()),
            _ => BlobError::Io(error),
        }
    }
}

/// The blob store rooted at a data directory.
#[derive(Debug)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
    next_temp: AtomicU64,
}

impl BlobStore {
    /// Opens the store under `data_dir`, creating its directories and removing temporary files
    /// left by an earlier process (they were never acknowledged).
    pub fn open(data_dir: &Path) -> Result<Self, BlobError> {
        let blobs = data_dir.join("blobs");
        let tmp = data_dir.join("tmp");
        std::fs::create_dir_all(&blobs)?;
        std::fs::create_dir_all(&tmp)?;
        Ok(Self { blobs, tmp, next_temp: AtomicU64::new(0) })
    }

    /// Removes temporary files older than `age`: partial uploads of processes that died.
    /// Temporary files of live writers are younger than any sane `age`.
    pub fn clean_stale_temporaries(&self, age: std::time::Duration) -> Result<usize, BlobError> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.tmp)? {
            let entry = entry?;
            let modified = entry.metadata()?.modified()?;
            if modified.elapsed().is_ok_and(|elapsed| elapsed > age) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Where the blob with this hash lives.
    pub fn path(&self, hash: &BlobHash) -> PathBuf {
        let prefix = hash.0.get(..2).unwrap_or("00");
        self.blobs.join(prefix).join(&hash.0)
    }

    /// Starts writing a new blob.
    pub async fn create(&self) -> Result<BlobWriter, BlobError> {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp.join(format!("{}-{n}", std::process::id()));
        let file = tokio::fs::File::create(&path).await?;
        Ok(BlobWriter { file, path, hasher: blake3::Hasher::new(), size: 0 })
    }

    /// Makes a finished blob permanent under its content address and syncs its directory.
    /// If identical content is already stored, the new copy is dropped.
    pub async fn commit(&self, pending: PendingBlob) -> Result<BlobHash, BlobError> {
        let target = self.path(&pending.hash);
        let dir = target.parent().map(Path::to_path_buf).unwrap_or_else(|| self.blobs.clone());
        let result = tokio::task::spawn_blocking(move || -> io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            if target.exists() {
                std::fs::remove_file(&pending.path)?;
                return Ok(());
            }
            std::fs::rename(&pending.path, &target)?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(|e| BlobError::Io(io::Error::other(e)))?;
        result?;
        Ok(pending.hash)
    }

    /// Opens a stored blob for reading.
    pub async fn open_blob(&self, hash: &BlobHash) -> Result<tokio::fs::File, BlobError> {
        tokio::fs::File::open(self.path(hash)).await.map_err(|e| match BlobError::from(e) {
            BlobError::NotFound(_) => BlobError::NotFound(hash.0.clone()),
            other => other,
        })
    }
}

/// A blob being written. Dropping it without [`finish`](Self::finish) leaves a temporary
/// file that [`PendingBlob::discard`] or the next start removes.
pub struct BlobWriter {
    file: tokio::fs::File,
    path: PathBuf,
    hasher: blake3::Hasher,
    size: u64,
}

impl BlobWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk).await?;
        Ok(())
    }

    /// Flushes the bytes to disk (`fdatasync`) and fixes the content hash.
    pub async fn finish(mut self) -> Result<PendingBlob, BlobError> {
        self.file.flush().await?;
        self.file.sync_data().await?;
        Ok(PendingBlob { path: self.path, hash: BlobHash(self.hasher.finalize().to_hex().to_string()), size: self.size })
    }

    /// Abandons the blob and removes its temporary file.
    pub async fn abort(self) {
        drop(self.file);
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

/// A blob whose bytes are durable in `tmp/` but not yet under its content address.
#[derive(Debug)]
pub struct PendingBlob {
    path: PathBuf,
    pub hash: BlobHash,
    pub size: u64,
}

impl PendingBlob {
    /// The temporary file, for validation before commit.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn discard(self) {
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn identical_content_is_stored_once_under_its_hash() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = BlobStore::open(dir.path()).expect("open");
        let mut hashes = Vec::new();
        for _ in 0..2 {
            let mut writer = store.create().await.expect("create");
            writer.write(b"hello ").await.expect("write");
            writer.write(b"world").await.expect("write");
            let pending = writer.finish().await.expect("finish");
            assert_eq!(pending.size, 11);
            hashes.push(store.commit(pending).await.expect("commit"));
        }
        assert_eq!(hashes[0], hashes[1]);
        assert_eq!(hashes[0].0, blake3::hash(b"hello world").to_hex().to_string());
        assert_eq!(std::fs::read(store.path(&hashes[0])).expect("read"), b"hello world");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0);
    }

    #[tokio::test]
    async fn aborted_and_stale_writes_leave_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = BlobStore::open(dir.path()).expect("open");
        let mut writer = store.create().await.expect("create");
        writer.write(b"partial").await.expect("write");
        writer.abort().await;
        let _left = store.create().await.expect("create");
        assert_eq!(store.clean_stale_temporaries(std::time::Duration::ZERO).expect("clean"), 1);
        assert!(matches!(store.open_blob(&BlobHash("ab".repeat(32))).await, Err(BlobError::NotFound(_))));
    }
}
