//! Content-addressed blob storage on the local filesystem.
//!
//! A blob is written to `tmp/` while its BLAKE3 hash is computed, flushed to disk with
//! `fdatasync`, checked by the caller, and only then renamed to
//! `blobs/<first two hex digits>/<hash>` and that directory synced, all in one trip to the
//! blocking pool. A blob is therefore either absent or complete and durable, and a path is
//! never overwritten with different bytes: identical content lands on the same path once.
//!
//! Checking and publishing can also be two steps ([`BlobWriter::check`], then
//! [`CheckedBlob::publish`] or [`CheckedBlob::discard`]), for a request whose objects must
//! all arrive whole before any of them is kept (STOW-RS).
//!
//! Buckets can hold blobs under the same addresses ([`Bucket`], over `object_store`):
//! - the cold tier;
//! - optionally the hot tier itself, for nodes that share no volume: a published blob is
//!   then uploaded to the hot bucket (durable once the bucket acknowledges it) and its file
//!   kept in the recall cache as a warm copy.
//!
//! `recall` is the recall cache, where blobs from buckets come back to disk to be read.
//! [`BlobStore::make_local`] is the one way to read: the hot file, else the recalled file,
//! else a recall from the hot bucket or the cold one. Which blobs are cold is the index's
//! business.

mod bucket;
mod recall;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use renkei_domain::model::BlobHash;

pub use bucket::{Bucket, S3Settings};
use recall::RecallCache;

/// Where blobs go besides the data directory.
#[derive(Debug, Default)]
pub struct Tiers {
    /// The hot tier in a bucket instead of `blobs/` (several nodes, no shared volume).
    pub hot: Option<Bucket>,
    pub cold: Option<Bucket>,
    /// Bytes of disk for blobs recalled from buckets.
    pub recall_budget: u64,
}

/// The hot bucket as a publisher needs it: upload there, keep the file as a warm copy.
#[derive(Debug, Clone)]
struct HotBucket {
    bucket: Bucket,
    recall: Arc<RecallCache>,
}

/// Received bytes are gathered up to this size before one write, so that small network
/// fragments do not each cost a trip to the blocking pool, and an instance smaller than this
/// is written, synced, checked and renamed in a single trip.
const WRITE_BUFFER: usize = 1 << 20;

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

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(io::Error::other)?
}

/// The blob store rooted at a data directory, with its buckets if it has any.
#[derive(Debug)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
    /// Names temporaries apart from those of earlier runs, which may have had the same pid.
    run: u64,
    next_temp: AtomicU64,
    hot: Option<HotBucket>,
    cold: Option<Bucket>,
    recall: Arc<RecallCache>,
    /// One lock per blob being recalled, so that concurrent readers (and read-ahead) of the
    /// same cold blob download it once.
    recalling: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

impl BlobStore {
    /// Opens the store under `data_dir`, creating its directories; no buckets.
    pub fn open(data_dir: &Path) -> Result<Self, BlobError> {
        Self::open_tiered(data_dir, Tiers::default())
    }

    /// Opens the store with its buckets and a recall cache.
    pub fn open_tiered(data_dir: &Path, tiers: Tiers) -> Result<Self, BlobError> {
        let blobs = data_dir.join("blobs");
        let tmp = data_dir.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        for shard in 0..=255u8 {
            std::fs::create_dir_all(blobs.join(format!("{shard:02x}")))?;
        }
        let mut run = [0u8; 8];
        getrandom::fill(&mut run).map_err(|e| BlobError::Io(io::Error::other(e)))?;
        let recall = Arc::new(RecallCache::open(data_dir, tiers.recall_budget)?);
        let hot = tiers.hot.map(|bucket| HotBucket { bucket, recall: recall.clone() });
        let next_temp = AtomicU64::new(0);
        let recalling = Default::default();
        Ok(Self { blobs, tmp, run: u64::from_le_bytes(run), next_temp, hot, cold: tiers.cold, recall, recalling })
    }

    pub fn cold(&self) -> Option<&Bucket> {
        self.cold.as_ref()
    }

    /// Whether any blob may have to be recalled from a bucket.
    pub fn has_buckets(&self) -> bool {
        self.hot.is_some() || self.cold.is_some()
    }

    fn temporary(&self, suffix: &str) -> PathBuf {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{:016x}-{n}{suffix}", self.run))
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

    /// The shard directory of a blob: content addresses spread over 256 of them.
    pub fn shard_dir(&self, hash: &BlobHash) -> PathBuf {
        self.blobs.join(hash.0.get(..2).unwrap_or("00"))
    }

    /// Where the hot copy of the blob with this hash lives.
    pub fn path(&self, hash: &BlobHash) -> PathBuf {
        self.shard_dir(hash).join(&hash.0)
    }

    /// Makes sure the blob is on local disk, recalling it from the hot bucket or the cold
    /// tier if needed, and returns its path.
    pub async fn make_local(&self, hash: &BlobHash) -> Result<PathBuf, BlobError> {
        let hot = self.path(hash);
        if tokio::fs::try_exists(&hot).await.unwrap_or(false) {
            return Ok(hot);
        }
        let recalled = self.recall.path(hash);
        let is_recalled =
            || async { self.recall.touch(hash) && tokio::fs::try_exists(&recalled).await.unwrap_or(false) };
        if is_recalled().await {
            return Ok(recalled);
        }
        if !self.has_buckets() {
            return Err(BlobError::NotFound(hash.0.clone()));
        }
        let lock = {
            let mut recalling = self.recalling.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            recalling.entry(hash.0.clone()).or_default().clone()
        };
        let _recalling = lock.lock().await;
        // Whoever held the lock before may have recalled it meanwhile.
        if is_recalled().await {
            return Ok(recalled);
        }
        let downloaded = self.download(hash, &recalled).await;
        self.recalling.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&hash.0);
        let size = downloaded?;
        self.recall.add(hash, size);
        tracing::debug!(size, "recalled a blob from a bucket");
        Ok(recalled)
    }

    /// Downloads a blob into the recall cache: from the hot bucket if it has it, else from
    /// the cold tier.
    async fn download(&self, hash: &BlobHash, recalled: &Path) -> Result<u64, BlobError> {
        if let Some(hot) = &self.hot {
            match hot.bucket.download(hash, self.temporary("-recall"), recalled.to_path_buf()).await {
                Err(BlobError::NotFound(_)) if self.cold.is_some() => {}
                other => return other,
            }
        }
        let cold = self.cold.as_ref().ok_or_else(|| BlobError::NotFound(hash.0.clone()))?;
        cold.download(hash, self.temporary("-recall"), recalled.to_path_buf()).await
    }

    /// Whether the hot tier holds the blob.
    pub async fn is_hot(&self, hash: &BlobHash) -> Result<bool, BlobError> {
        match &self.hot {
            Some(hot) => hot.bucket.holds(hash).await,
            None => Ok(tokio::fs::try_exists(self.path(hash)).await.unwrap_or(false)),
        }
    }

    /// Copies the hot copy to the cold tier and reads it back: `Ok` only once the cold tier
    /// holds exactly these bytes.
    pub async fn copy_to_cold(&self, hash: &BlobHash) -> Result<(), BlobError> {
        let cold = self.cold.as_ref().ok_or_else(|| BlobError::Io(io::Error::other("no cold tier configured")))?;
        let source = self.make_local(hash).await?;
        cold.upload(hash, &source).await?;
        if !cold.verify(hash).await? {
            return Err(BlobError::Io(io::Error::other("the cold copy does not match its hash")));
        }
        Ok(())
    }

    /// Frees the hot copy of a blob (absent is fine): the file, and its directory synced; or
    /// the object in the hot bucket.
    pub async fn remove_hot(&self, hash: &BlobHash) -> Result<(), BlobError> {
        if let Some(hot) = &self.hot {
            return hot.bucket.delete(hash).await;
        }
        let (path, shard) = (self.path(hash), self.shard_dir(hash));
        Ok(blocking(move || {
            match std::fs::remove_file(&path) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
            std::fs::File::open(&shard)?.sync_all()
        })
        .await?)
    }

    /// Starts writing a new blob. Its temporary file is created on the first write to disk.
    pub fn create(&self) -> BlobWriter {
        let path = self.temporary("");
        BlobWriter {
            file: None,
            path,
            blobs: self.blobs.clone(),
            hot: self.hot.clone(),
            hasher: blake3::Hasher::new(),
            size: 0,
            buffer: Vec::new(),
        }
    }

    /// A nameless scratch file beside the temporaries (on the data disk, not in memory or
    /// `/tmp`): created, unlinked at once, so it vanishes with its handle. Blocking.
    pub fn scratch_file(&self) -> Result<std::fs::File, BlobError> {
        let path = self.temporary("-scratch");
        let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(file)
    }

    /// Opens a stored blob for reading, recalling it if it is cold.
    pub async fn open_blob(&self, hash: &BlobHash) -> Result<tokio::fs::File, BlobError> {
        let path = self.make_local(hash).await?;
        tokio::fs::File::open(path).await.map_err(|e| match BlobError::from(e) {
            BlobError::NotFound(_) => BlobError::NotFound(hash.0.clone()),
            other => other,
        })
    }
}

/// A blob durable under its content address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub hash: BlobHash,
    pub size: u64,
}

/// A blob that is durable and checked, but still in its temporary file: invisible until
/// [`publish`](Self::publish)ed. One dropped unpublished (its request gone) is removed.
#[derive(Debug)]
pub struct CheckedBlob {
    /// `None` once published or discarded.
    temporary: Option<PathBuf>,
    shard: PathBuf,
    target: PathBuf,
    stored: StoredBlob,
    /// Where it is published instead of `target`, if the hot tier is a bucket.
    hot: Option<HotBucket>,
}

impl CheckedBlob {
    pub fn stored(&self) -> &StoredBlob {
        &self.stored
    }

    /// Moves the blob to its content address and syncs that directory. If identical content
    /// is already there, the directory is synced all the same: whoever renamed it there may
    /// not have synced it yet.
    /// With a hot bucket, the blob is uploaded there instead, and its file moves into the
    /// recall cache as a warm copy.
    pub async fn publish(mut self) -> Result<StoredBlob, BlobError> {
        let Some(hot) = self.hot.clone() else { return Ok(blocking(move || self.publish_now()).await?) };
        let Some(temporary) = self.temporary.clone() else { return Ok(self.stored.clone()) };
        hot.bucket.upload(&self.stored.hash, &temporary).await?;
        let warm = hot.recall.path(&self.stored.hash);
        self.temporary = None;
        match tokio::fs::rename(&temporary, &warm).await {
            Ok(()) => hot.recall.add(&self.stored.hash, self.stored.size),
            Err(_) => {
                let _ = tokio::fs::remove_file(&temporary).await;
            }
        }
        Ok(self.stored.clone())
    }

    fn publish_now(mut self) -> io::Result<StoredBlob> {
        let Some(temporary) = self.temporary.take() else { return Ok(self.stored.clone()) };
        if self.target.exists() {
            std::fs::remove_file(&temporary)?;
        } else {
            std::fs::rename(&temporary, &self.target)?;
        }
        std::fs::File::open(&self.shard)?.sync_all()?;
        Ok(self.stored.clone())
    }

    /// Removes the blob: nothing of it is kept.
    pub async fn discard(mut self) {
        if let Some(temporary) = self.temporary.take() {
            let _ = tokio::fs::remove_file(temporary).await;
        }
    }
}

impl Drop for CheckedBlob {
    fn drop(&mut self) {
        if let Some(temporary) = self.temporary.take() {
            let _ = std::fs::remove_file(temporary);
        }
    }
}

/// The last bytes of a blob, not yet written, synced or checked.
struct Unchecked {
    file: Option<std::fs::File>,
    path: PathBuf,
    buffer: Vec<u8>,
}

impl Unchecked {
    /// Writes and syncs the rest, then lets `accept` read the whole blob from the start.
    /// Whatever is refused or fails is removed. Blocking.
    fn check<T, E>(self, accept: impl FnOnce(&mut std::fs::File) -> Result<T, E>) -> io::Result<Result<T, E>> {
        let Unchecked { file, path, buffer } = self;
        let checked = (|| {
            let mut file = open_temporary(file, &path)?;
            file.write_all(&buffer)?;
            file.sync_data()?;
            io::Seek::rewind(&mut file)?;
            Ok(accept(&mut file))
        })();
        match checked {
            Ok(Ok(accepted)) => Ok(Ok(accepted)),
            Ok(Err(refused)) => {
                std::fs::remove_file(&path)?;
                Ok(Err(refused))
            }
            Err(error) => {
                let _ = std::fs::remove_file(&path);
                Err(error)
            }
        }
    }
}

/// A blob being written. Call [`finish`](Self::finish) or [`abort`](Self::abort); a writer
/// merely dropped leaves a temporary file for the next start to remove.
pub struct BlobWriter {
    /// Created on the first write to disk; `None` again while a write is in flight.
    file: Option<std::fs::File>,
    path: PathBuf,
    blobs: PathBuf,
    hot: Option<HotBucket>,
    hasher: blake3::Hasher,
    size: u64,
    buffer: Vec<u8>,
}

fn open_temporary(file: Option<std::fs::File>, path: &Path) -> io::Result<std::fs::File> {
    match file {
        Some(file) => Ok(file),
        None => std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(path),
    }
}

impl BlobWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.buffer.extend_from_slice(chunk);
        if self.buffer.len() >= WRITE_BUFFER {
            let file = self.file.take();
            let path = self.path.clone();
            let mut buffer = std::mem::take(&mut self.buffer);
            let (file, buffer) = blocking(move || {
                let mut file = open_temporary(file, &path)?;
                file.write_all(&buffer)?;
                buffer.clear();
                Ok((file, buffer))
            })
            .await?;
            self.file = Some(file);
            self.buffer = buffer;
        }
        Ok(())
    }

    /// Finishes the blob in one trip to the blocking pool: writes what is buffered, flushes
    /// it to disk (`fdatasync`), lets `accept` read it back from the start, and only if
    /// `accept` agrees moves it to its content address and syncs that directory (or drops it
    /// if identical content is already there). A refused blob leaves nothing behind. With a
    /// hot bucket, the accepted blob is uploaded there instead (see [`CheckedBlob::publish`]).
    pub async fn finish<T, E>(
        self,
        accept: impl FnOnce(&mut std::fs::File) -> Result<T, E> + Send + 'static,
    ) -> Result<Result<(StoredBlob, T), E>, BlobError>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        if self.hot.is_some() {
            return match self.check(accept).await? {
                Ok((blob, accepted)) => Ok(Ok((blob.publish().await?, accepted))),
                Err(refused) => Ok(Err(refused)),
            };
        }
        let (blob, unchecked) = self.split();
        let finished = blocking(move || match unchecked.check(accept)? {
            Ok(accepted) => Ok(Ok((blob.publish_now()?, accepted))),
            Err(refused) => Ok(Err(refused)),
        });
        Ok(finished.await?)
    }

    /// Like [`finish`](Self::finish), but leaves an accepted blob durable in its temporary
    /// file, to be published or discarded later.
    pub async fn check<T, E>(
        self,
        accept: impl FnOnce(&mut std::fs::File) -> Result<T, E> + Send + 'static,
    ) -> Result<Result<(CheckedBlob, T), E>, BlobError>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let (blob, unchecked) = self.split();
        let checked = blocking(move || unchecked.check(accept)).await?;
        Ok(checked.map(|accepted| (blob, accepted)))
    }

    /// The blob as it will be once checked, and what remains to write and check.
    fn split(self) -> (CheckedBlob, Unchecked) {
        let BlobWriter { file, path, blobs, hot, hasher, size, buffer } = self;
        let hash = BlobHash(hasher.finalize().to_hex().to_string());
        let shard = blobs.join(hash.0.get(..2).unwrap_or("00"));
        let target = shard.join(&hash.0);
        let stored = StoredBlob { hash, size };
        let blob = CheckedBlob { temporary: Some(path.clone()), shard, target, stored, hot };
        (blob, Unchecked { file, path, buffer })
    }

    /// Abandons the blob and removes its temporary file, if it has one.
    pub async fn abort(self) {
        if let Some(file) = self.file {
            drop(file);
            let _ = tokio::fs::remove_file(&self.path).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn put(store: &BlobStore, parts: &[&[u8]]) -> StoredBlob {
        let mut writer = store.create();
        for part in parts {
            writer.write(part).await.expect("write");
        }
        let (stored, ()) = writer.finish(|_| Ok::<_, ()>(())).await.expect("io").expect("accepted");
        stored
    }

    fn temporaries(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("tmp")).expect("tmp").count()
    }

    #[tokio::test]
    async fn identical_content_is_stored_once_under_its_hash() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = BlobStore::open(dir.path()).expect("open");
        let first = put(&store, &[b"hello ", b"world"]).await;
        let second = put(&store, &[b"hello world"]).await;
        assert_eq!(first, second);
        assert_eq!(first.size, 11);
        assert_eq!(first.hash.0, blake3::hash(b"hello world").to_hex().to_string());
        assert_eq!(std::fs::read(store.path(&first.hash)).expect("read"), b"hello world");
        assert_eq!(temporaries(dir.path()), 0);
    }

    #[tokio::test]
    async fn large_blobs_spill_to_disk_and_are_read_back_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = BlobStore::open(dir.path()).expect("open");
        let chunk = vec![7u8; 700 * 1024];
        let mut writer = store.create();
        for _ in 0..3 {
            writer.write(&chunk).await.expect("write");
        }
        let finished = writer.finish(|file| {
            let mut all = Vec::new();
            io::Read::read_to_end(file, &mut all).map(|_| all.len())
        });
        let (stored, seen) = finished.await.expect("io").expect("readable");
        assert_eq!((stored.size, seen), (3 * 700 * 1024, 3 * 700 * 1024));
    }

    #[tokio::test]
    async fn refused_aborted_and_stale_writes_leave_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = BlobStore::open(dir.path()).expect("open");
        let mut refused = store.create();
        refused.write(b"garbage").await.expect("write");
        assert_eq!(refused.finish(|_| Err::<(), _>("no")).await.expect("io"), Err("no"));
        let mut aborted = store.create();
        aborted.write(&vec![1u8; WRITE_BUFFER]).await.expect("spills to disk");
        aborted.abort().await;
        assert_eq!(temporaries(dir.path()), 0);
        let mut stale = store.create();
        stale.write(&vec![1u8; WRITE_BUFFER]).await.expect("spills to disk");
        assert_eq!(store.clean_stale_temporaries(std::time::Duration::ZERO).expect("clean"), 1);
        assert!(matches!(store.open_blob(&BlobHash("ab".repeat(32))).await, Err(BlobError::NotFound(_))));
    }

    #[tokio::test]
    async fn checked_blobs_stay_invisible_until_published() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = BlobStore::open(dir.path()).expect("open");
        let check = |bytes: &'static [u8]| {
            let mut writer = store.create();
            async move {
                writer.write(bytes).await.expect("write");
                writer.check(|_| Ok::<_, ()>(())).await.expect("io").expect("accepted").0
            }
        };
        let discarded = check(b"dropped with its request").await;
        assert!(store.open_blob(&discarded.stored().hash).await.is_err(), "not under its address yet");
        assert_eq!(temporaries(dir.path()), 1, "but durable in its temporary file");
        discarded.discard().await;
        assert_eq!(temporaries(dir.path()), 0);
        let published = check(b"kept").await.publish().await.expect("publish");
        assert!(store.open_blob(&published.hash).await.is_ok());
        assert_eq!(temporaries(dir.path()), 0);
    }
}
