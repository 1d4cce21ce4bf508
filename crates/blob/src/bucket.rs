//! A tier in an S3-compatible bucket (any `object_store` backend): the cold tier, or the hot
//! tier of nodes that share no volume. Blobs keep the same content addresses as on disk
//! (`blobs/<first two hex digits>/<hash>`).
//!
//! Nothing here trusts the bucket: [`Bucket::verify`] reads a blob back and recomputes its
//! BLAKE3 hash before the hot copy may go, and [`Bucket::download`] hashes what it receives
//! before the recalled file takes its name.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};
use renkei_domain::model::BlobHash;
use tokio::io::AsyncReadExt;

use crate::{BlobError, blocking};

/// Uploads go in parts of this size, so a large object never sits whole in memory.
const PART: usize = 8 << 20;

/// Where a bucket is and how to sign in to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `https://s3.ap-northeast-1.amazonaws.com`, or any S3-compatible endpoint.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// A bucket that holds blobs.
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
}

/// Maps an object-store failure: a missing object is `NotFound`, anything else is I/O.
fn map_error(error: object_store::Error) -> BlobError {
    match error {
        object_store::Error::NotFound { path, .. } => BlobError::NotFound(path),
        other => BlobError::Io(std::io::Error::other(other)),
    }
}

impl Bucket {
    /// An S3-compatible bucket, addressed path-style (as MinIO, Ceph and Garage expect). A
    /// request that keeps failing gives up within a minute, so that an outage is noticed.
    pub fn s3(settings: &S3Settings) -> Result<Self, BlobError> {
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: 4,
            retry_timeout: Duration::from_secs(60),
        };
        let client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(300))
            .with_allow_http(settings.endpoint.starts_with("http://"));
        let store = AmazonS3Builder::new()
            .with_endpoint(&settings.endpoint)
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key)
            .with_virtual_hosted_style_request(false)
            .with_retry(retry)
            .with_client_options(client)
            .build()
            .map_err(map_error)?;
        Ok(Self { store: Arc::new(store) })
    }

    fn key(hash: &BlobHash) -> ObjectPath {
        ObjectPath::from(format!("blobs/{}/{}", hash.0.get(..2).unwrap_or("00"), hash.0))
    }

    /// Copies the file at `path` (the hot copy of `hash`) to the bucket: in one request up
    /// to [`PART`] bytes, part by part beyond.
    pub async fn upload(&self, hash: &BlobHash, path: &Path) -> Result<(), BlobError> {
        let mut file = tokio::fs::File::open(path).await?;
        if file.metadata().await?.len() <= PART as u64 {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).await?;
            return self.put(hash, bytes).await;
        }
        let upload = self.store.put_multipart(&Self::key(hash)).await.map_err(map_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = match file.read(&mut buffer).await {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) => {
                    let _ = writer.abort().await;
                    return Err(error.into());
                }
            };
            if let Err(error) = writer.wait_for_capacity(2).await {
                return Err(map_error(error));
            }
            writer.write(&buffer[..read]);
        }
        writer.finish().await.map_err(map_error)?;
        Ok(())
    }

    /// Copies bytes in memory to the bucket (a blob smaller than a part).
    pub async fn put(&self, hash: &BlobHash, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.store.put(&Self::key(hash), bytes.into()).await.map_err(map_error)?;
        Ok(())
    }

    /// Whether the bucket holds the blob.
    pub async fn holds(&self, hash: &BlobHash) -> Result<bool, BlobError> {
        match self.store.head(&Self::key(hash)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(map_error(error)),
        }
    }

    /// Whether the bucket holds exactly the bytes of `hash`: read back and hashed.
    pub async fn verify(&self, hash: &BlobHash) -> Result<bool, BlobError> {
        let mut stream = self.store.get(&Self::key(hash)).await.map_err(map_error)?.into_stream();
        let mut hasher = blake3::Hasher::new();
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(map_error)?);
        }
        Ok(hasher.finalize().to_hex().as_str() == hash.0)
    }

    /// Streams the blob into a new file at `temporary`, checks its hash, syncs it and renames
    /// it to `destination`. The whole object never sits in memory.
    pub async fn download(&self, hash: &BlobHash, temporary: PathBuf, destination: PathBuf) -> Result<u64, BlobError> {
        let mut stream = self.store.get(&Self::key(hash)).await.map_err(map_error)?.into_stream();
        let file = std::fs::File::create(&temporary)?;
        let mut writer = Some(std::io::BufWriter::with_capacity(1 << 20, file));
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let outcome: Result<(), BlobError> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(map_error)?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                let mut out = writer.take().ok_or_else(|| BlobError::Io(std::io::Error::other("writer gone")))?;
                writer = Some(blocking(move || out.write_all(&chunk).map(|()| out)).await?);
            }
            Ok(())
        }
        .await;
        let cleanup = temporary.clone();
        if let Err(error) = outcome {
            let _ = std::fs::remove_file(&cleanup);
            return Err(error);
        }
        if hasher.finalize().to_hex().as_str() != hash.0 {
            let _ = std::fs::remove_file(&cleanup);
            return Err(BlobError::Io(std::io::Error::other("the cold copy does not match its hash")));
        }
        let out = writer.ok_or_else(|| BlobError::Io(std::io::Error::other("writer gone")))?;
        blocking(move || {
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_data()?;
            std::fs::rename(&temporary, &destination)
        })
        .await
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&cleanup);
        })?;
        Ok(size)
    }

    /// Removes a blob from the bucket (absent is fine).
    pub async fn delete(&self, hash: &BlobHash) -> Result<(), BlobError> {
        match self.store.delete(&Self::key(hash)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(map_error(error)),
        }
    }
}
