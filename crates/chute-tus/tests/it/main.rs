//! Integration tests of `chute-tus` over the durable filesystem store
//! and, for the store lease, a real Garage too.
#![allow(clippy::unwrap_used)]

/// Appending PATCH bodies: parts, tails, interruptions, checksums, limits.
mod append;
/// A real single-node Garage (shared with chute-store's tests).
#[path = "../../../chute-store/tests/it/garage.rs"]
mod garage;
/// Uploads stored in place over the fs store's appendable uploads.
mod in_place;
/// The store lease: one holder across instances, expiry, renewal, loss.
mod lease;
/// Offsets from metadata alone.
mod peek;

use async_trait::async_trait;
use chute_core::{BucketName, ObjectKey};
use chute_store::*;
use chute_tus::{PartPlan, TusStore, UploadInfo};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The fs store in a temp dir without its appendable uploads: tus stores
/// uploads in parts over it, as over S3.
pub async fn parts_store(dir: &std::path::Path) -> Arc<dyn MultipartStore> {
    Arc::new(Counting {
        inner: fs_store(dir).await,
        tail_gets: AtomicUsize::new(0),
        append: false,
    })
}

/// A store that counts reads of tus tails and offers appendable uploads
/// only with `append`.
#[derive(Debug)]
pub struct Counting {
    /// The store wrapped.
    pub inner: Arc<dyn MultipartStore>,
    /// GETs of tus tails so far.
    pub tail_gets: AtomicUsize,
    /// Whether `appendable` forwards the inner store's.
    pub append: bool,
}

#[async_trait]
impl Store for Counting {
    async fn put(&self, key: &ObjectKey, body: ByteStream, opts: PutOptions) -> StoreResult<ObjectMeta> {
        self.inner.put(key, body, opts).await
    }
    async fn get(&self, key: &ObjectKey, range: Option<ByteRange>) -> StoreResult<GetResult> {
        if key.as_str().ends_with("/tail") {
            self.tail_gets.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get(key, range).await
    }
    async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &ObjectKey) -> StoreResult<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, opts: &ListOptions) -> StoreResult<ListResult> {
        self.inner.list(opts).await
    }
    async fn copy(&self, from: &ObjectKey, to: &ObjectKey, opts: CopyOptions) -> StoreResult<ObjectMeta> {
        self.inner.copy(from, to, opts).await
    }
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }
}

#[async_trait]
impl MultipartStore for Counting {
    async fn create_multipart(&self, key: &ObjectKey, opts: PutOptions) -> StoreResult<MultipartUpload> {
        self.inner.create_multipart(key, opts).await
    }
    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        opts: PartOptions,
    ) -> StoreResult<PartMeta> {
        self.inner
            .upload_part(key, upload_id, part_number, body, opts)
            .await
    }
    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<Vec<PartMeta>> {
        self.inner.list_parts(key, upload_id).await
    }
    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<ObjectMeta> {
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<()> {
        self.inner.abort_multipart(key, upload_id).await
    }
    async fn list_multipart_uploads(&self, prefix: &str) -> StoreResult<Vec<MultipartUpload>> {
        self.inner.list_multipart_uploads(prefix).await
    }
    fn appendable(&self) -> Option<&dyn AppendableUploads> {
        if self.append {
            self.inner.appendable()
        } else {
            None
        }
    }
}

/// A store in a temp dir with one bucket.
pub async fn fs_store(dir: &std::path::Path) -> Arc<dyn MultipartStore> {
    let store = chute_store::fs::FsStore::open(dir).await.unwrap();
    let name = BucketName::parse("uploads").unwrap();
    store.create_bucket(&name).await.unwrap();
    Arc::new(store.bucket(&name).await.unwrap())
}

/// A fresh upload of `length` bytes (`None`: deferred) with 5 MiB parts.
pub async fn new_upload(tus: &TusStore, id: &str, length: Option<u64>) -> UploadInfo {
    tus.create(UploadInfo {
        id: id.into(),
        key: ObjectKey::parse(&format!("tmp/{id}/file.bin")).unwrap(),
        content_type: "application/octet-stream".into(),
        length,
        metadata: String::new(),
        multipart: String::new(),
        plan: PartPlan::new(length, 0),
        concat: None,
        expires_at: i64::MAX,
        ticket: serde_json::json!({}),
    })
    .await
    .unwrap()
}
