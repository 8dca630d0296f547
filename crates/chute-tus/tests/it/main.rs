//! Integration tests of `chute-tus` over the durable filesystem store
//! and, for the store lease, a real Garage too.
#![allow(clippy::unwrap_used)]

/// Appending PATCH bodies: parts, tails, interruptions, checksums, limits.
mod append;
/// A real single-node Garage (shared with chute-store's tests).
#[path = "../../../chute-store/tests/it/garage.rs"]
mod garage;
/// The store lease: one holder across instances, expiry, renewal, loss.
mod lease;
/// Offsets from metadata alone.
mod peek;

use chute_core::{BucketName, ObjectKey};
use chute_store::MultipartStore;
use chute_tus::{PartPlan, TusStore, UploadInfo};
use std::sync::Arc;

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
