//! The upload lifecycle, independent of HTTP routes: create an upload
//! under a grant, sign its URLs, list its parts, complete and check it,
//! issue a receipt, promote it, abort it. The native API (`/api`) and the
//! Uppy Companion routes (`/s3/`) are thin adapters over [`Lifecycle`].
//!
//! Nothing here keeps state in memory: an upload's state is its signed
//! upload token ([`claims::UploadClaims`]) plus what the store holds, so
//! any instance serves any call. The one counter, a grant's `max_files`,
//! is kept in the store as create-only marker objects under `.chute/`.

pub mod claims;
mod complete;
mod create;
mod error;
mod promote;
mod server_side;
pub mod signer;
pub(crate) mod sniff;

pub use claims::{UploadClaims, UploadMethod};
pub use complete::Completed;
pub(crate) use create::rfc3339;
pub use create::{ChecksumSpec, CreateRequest, Created, MultipartInfo, OrderedFields, PartUrl, PostForm};
pub use error::ApiError;
pub use promote::{PromoteRequest, Promoted};
pub use server_side::ServerUpload;
pub use signer::{SignedRequest, Signer};

use crate::derivatives::Derivatives;
use crate::hooks::{Event, EventKind, Hooks};
use chute_core::token::{RECEIPT_AUDIENCE, UPLOAD_AUDIENCE};
use chute_core::{Keyring, ObjectKey, ReceiptClaims};
use chute_store::{MultipartStore, PartMeta, StoreError};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The key prefix of objects not yet promoted.
pub const TMP_PREFIX: &str = "tmp/";
/// The key prefix of Chute's own bookkeeping objects.
pub const STATE_PREFIX: &str = ".chute/";

/// Tunables of the lifecycle.
#[derive(Debug, Clone)]
pub struct LifecycleSettings {
    /// How long an upload may stay unfinished (upload tokens expire then).
    pub upload_ttl: Duration,
    /// How long a receipt stays valid (promote before then).
    pub receipt_ttl: Duration,
    /// How long presigned URLs and POST forms stay valid.
    pub presign_ttl: Duration,
    /// Files above this many bytes use multipart unless the client asks.
    pub multipart_threshold: u64,
    /// The largest file any grant may allow (5 TiB, S3's limit).
    pub max_object_size: u64,
    /// Part URLs signed per batch.
    pub part_batch: u32,
    /// The promotion template when neither grant nor request names one.
    pub default_template: String,
    /// How image derivatives are made.
    pub images: crate::derivatives::ImageSettings,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            upload_ttl: Duration::from_secs(24 * 3600),
            receipt_ttl: Duration::from_secs(24 * 3600),
            presign_ttl: Duration::from_secs(3600),
            multipart_threshold: 16 * 1024 * 1024,
            max_object_size: 5 * 1024 * 1024 * 1024 * 1024,
            part_batch: 100,
            default_template: "uploads/{uuid}{ext}".into(),
            images: crate::derivatives::ImageSettings::default(),
        }
    }
}

/// The upload lifecycle over one bucket of a store.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn MultipartStore>,
    signer: Signer,
    tokens: Keyring,
    settings: LifecycleSettings,
    hooks: Hooks,
    derivatives: Derivatives,
    /// Whole-object reads for checksum verification run at most this many
    /// at a time: each may stream gigabytes, and a client may call
    /// `complete` again and again.
    full_reads: tokio::sync::Semaphore,
}

/// Whole-object checksum verifications one instance runs at once.
pub const MAX_CONCURRENT_FULL_READS: usize = 4;

impl Lifecycle {
    /// A lifecycle storing through `store`, signing browser requests with
    /// `signer`, and signing upload tokens and receipts with `tokens`.
    pub fn new(
        store: Arc<dyn MultipartStore>,
        signer: Signer,
        tokens: Keyring,
        settings: LifecycleSettings,
        hooks: Hooks,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                derivatives: Derivatives::new(Arc::clone(&store), settings.images.clone()),
                store,
                signer,
                tokens,
                settings,
                hooks,
                full_reads: tokio::sync::Semaphore::new(MAX_CONCURRENT_FULL_READS),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn MultipartStore> {
        &self.inner.store
    }

    /// The image derivative service.
    pub fn derivatives(&self) -> &Derivatives {
        &self.inner.derivatives
    }

    /// The signer for browser requests.
    pub fn signer(&self) -> &Signer {
        &self.inner.signer
    }

    /// The settings.
    pub fn settings(&self) -> &LifecycleSettings {
        &self.inner.settings
    }

    /// The hooks events go to.
    pub fn hooks(&self) -> &Hooks {
        &self.inner.hooks
    }

    /// The keyring of upload tokens and receipts.
    pub fn tokens(&self) -> &Keyring {
        &self.inner.tokens
    }

    /// Verifies an upload token and checks it belongs to upload `id`
    /// (when given).
    pub fn verify_upload(&self, token: &str, id: Option<&str>) -> Result<UploadClaims, ApiError> {
        let claims: UploadClaims = self
            .inner
            .tokens
            .verify(token, UPLOAD_AUDIENCE, OffsetDateTime::now_utc())
            .map_err(|e| ApiError::token("upload token", &e))?;
        if let Some(id) = id
            && id != claims.sub
        {
            return Err(ApiError::forbidden(
                "upload_mismatch",
                "the upload token belongs to another upload",
            ));
        }
        Ok(claims)
    }

    /// Verifies a receipt.
    pub fn verify_receipt(&self, receipt: &str) -> Result<ReceiptClaims, ApiError> {
        self.inner
            .tokens
            .verify(receipt, RECEIPT_AUDIENCE, OffsetDateTime::now_utc())
            .map_err(|e| ApiError::token("receipt", &e))
    }

    /// Presigns part URLs of a multipart upload.
    pub fn part_urls(&self, claims: &UploadClaims, numbers: &[u32]) -> Result<Vec<PartUrl>, ApiError> {
        create::part_urls(self, claims, numbers, &Default::default())
    }

    /// Presigns part URLs binding the given per-part checksums.
    pub fn part_urls_with_checksums(
        &self,
        claims: &UploadClaims,
        numbers: &[u32],
        checksums: &std::collections::BTreeMap<u32, String>,
    ) -> Result<Vec<PartUrl>, ApiError> {
        create::part_urls(self, claims, numbers, checksums)
    }

    /// The parts stored so far (empty for POST/PUT uploads).
    pub async fn stored_parts(&self, claims: &UploadClaims) -> Result<Vec<PartMeta>, ApiError> {
        let Some(mpu) = &claims.mpu else {
            return Ok(Vec::new());
        };
        let key = tmp_key(claims)?;
        match self.inner.store.list_parts(&key, mpu).await {
            Ok(parts) => Ok(parts),
            Err(StoreError::NoSuchUpload { .. }) => Err(ApiError::not_found(
                "no_such_upload",
                "the multipart upload is gone (completed, aborted or expired)",
            )),
            Err(e) => Err(ApiError::store("listing parts", &e)),
        }
    }

    /// Whether the object of an upload exists (completed or posted).
    pub async fn object_exists(&self, claims: &UploadClaims) -> Result<bool, ApiError> {
        let key = tmp_key(claims)?;
        match self.inner.store.head(&key).await {
            Ok(_) => Ok(true),
            Err(StoreError::NoSuchKey { .. }) => Ok(false),
            Err(e) => Err(ApiError::store("checking the object", &e)),
        }
    }

    /// Aborts an upload: ends the multipart upload and deletes the object.
    pub async fn abort(&self, claims: &UploadClaims) -> Result<(), ApiError> {
        let key = tmp_key(claims)?;
        if let Some(mpu) = &claims.mpu {
            match self.inner.store.abort_multipart(&key, mpu).await {
                Ok(()) | Err(StoreError::NoSuchUpload { .. }) => {}
                Err(e) => return Err(ApiError::store("aborting the upload", &e)),
            }
        }
        self.inner
            .store
            .delete(&key)
            .await
            .map_err(|e| ApiError::store("deleting the object", &e))
    }

    /// How long an upload under `grant` may stay unfinished: the server's
    /// `upload_ttl`, capped by the grant's own (at least 60 s).
    pub(crate) fn upload_ttl(&self, grant: &chute_core::Grant) -> Duration {
        match grant.upload_ttl {
            Some(secs) => self.settings().upload_ttl.min(Duration::from_secs(secs.max(60))),
            None => self.settings().upload_ttl,
        }
    }

    /// Waits for a turn to read a whole object.
    pub(crate) async fn full_read_permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.inner.full_reads.acquire().await.ok()
    }

    pub(crate) fn emit(&self, kind: EventKind, upload_id: &str, data: serde_json::Value) {
        self.inner.hooks.emit(Event::new(kind, Some(upload_id), data));
    }
}

/// The temporary key of an upload, from its (signed) claims.
pub(crate) fn tmp_key(claims: &UploadClaims) -> Result<ObjectKey, ApiError> {
    ObjectKey::parse(&claims.key)
        .map_err(|e| ApiError::bad_request("bad_key", format!("upload token names a bad key: {e}")))
}

/// Seconds since the epoch of `now + d`.
pub(crate) fn unix_after(now: OffsetDateTime, d: Duration) -> i64 {
    now.unix_timestamp()
        .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2))
}
