//! The S3 backend: [`S3Store`] keeps objects in one bucket of any
//! S3-compatible service (AWS S3, Garage, MinIO, R2) and implements
//! [`Store`] and [`MultipartStore`] with signed requests of its own.
//!
//! # Why not object_store
//!
//! DESIGN.md picked the `object_store` crate. Measured against the Store
//! contract it covers too little to carry its weight: no ListParts or
//! ListMultipartUploads, `/` as the only delimiter, no `start-after` with
//! a delimiter, no Content-MD5 or `x-amz-checksum-*` expectations, no
//! per-upload checksum algorithm, no `Expires`, no CopyObject with
//! replaced metadata, no UploadPartCopy, and its parts are whole
//! in-memory payloads. So every request here is built by this module,
//! signed with `chute_core::sigv4::sign_headers`, and sent with reqwest
//! (rustls with the ring provider, the HTTP stack object_store would have
//! used), XML read with quick-xml. Presigned URLs and POST policies for
//! browsers come from `chute_core` with the same [`S3StoreConfig`].
//!
//! # What it guarantees
//!
//! - Bodies stream. A put of known length above [`S3Tuning::part_size`]
//!   streams in one request with `Content-Length`; a put of unknown
//!   length is buffered up to one part and becomes a multipart upload
//!   beyond it (at most `part_concurrency + 1` parts in memory).
//! - A failed put leaves nothing visible: the body is hashed on the way
//!   and its last bytes are held back until length, Content-MD5 and
//!   checksum expectations hold, so S3 never commits a bad body; a failed
//!   multipart put is aborted. Expectations are also sent as headers, so
//!   S3 checks the bytes it received.
//! - Errors map onto [`StoreError`] as the filesystem store's do; refused
//!   credentials are [`StoreError::AccessDenied`] with S3's message.
//! - Completions are checked against ListParts first (order, ETags, part
//!   sizes), since Garage does not check ETags itself.
//! - Copies above [`S3Tuning::max_copy_object_size`] (S3: 5 GiB) go by
//!   UploadPartCopy, so such a copy gets a multipart ETag.
//! - [`Store::capabilities`]: create-only puts (`If-None-Match: *`) are
//!   probed at [`S3Store::connect`]; Garage 2.5 ignores the header, so
//!   there they are refused with [`StoreError::Unsupported`].
//!
//! # Not supported yet
//!
//! - Credentials from profiles, SSO, web identity or instance roles
//!   (only keys and a session token); expiring tokens are not refreshed.
//! - A put of unknown length larger than `part_size * 10000` (78 GiB at
//!   the default 8 MiB), and an `upload_part` of unknown length above
//!   `part_size` (S3 needs each request's length up front).
//! - Multipart puts store a COMPOSITE checksum (`<base64>-N`), not a
//!   full-object one, whatever the expected checksum was.
//! - A process killed during a multipart put leaves an incomplete upload
//!   behind (invisible, but billed): give the bucket an
//!   `AbortIncompleteMultipartUpload` lifecycle rule.
//! - A part uploaded by a process that did not create its upload, to an
//!   upload with a checksum algorithm and no part yet, is sent without a
//!   checksum: Garage's ListParts does not name the algorithm.
//! - Listings carry key, size, ETag and time, not headers or metadata.
//! - Versioning, object lock, SSE-C, storage classes, tagging.

mod body;
mod client;
mod config;
mod cors;
mod expiry_rule;
mod headers;
mod list;
mod multipart;
mod object;
mod put;
mod xml;

pub use config::{CreateOnlySupport, S3StoreConfig, S3Tuning};
pub use cors::CorsOutcome;
pub use expiry_rule::ExpiryRuleOutcome;

use self::client::{Request, S3Client};
use crate::{
    ByteRange, ByteStream, CompletedPart, CopyOptions, GetResult, ListOptions, ListResult, MultipartStore,
    MultipartUpload, ObjectMeta, PartMeta, PartOptions, PutOptions, Store, StoreCapabilities, StoreError,
    StoreResult,
};
use async_trait::async_trait;
use chute_core::{BucketName, ChecksumAlgorithm, ObjectKey};
use reqwest::Method;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One bucket of an S3-compatible service; see the module docs.
#[derive(Clone, Debug)]
pub struct S3Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: S3Client,
    tuning: S3Tuning,
    capabilities: StoreCapabilities,
    /// The checksum algorithm of uploads this process created (S3 wants
    /// it on every part; Garage's ListParts does not say it).
    upload_algorithms: Mutex<HashMap<String, Option<ChecksumAlgorithm>>>,
}

/// Where the create-only probe writes.
const PROBE_PREFIX: &str = ".chute-probe/";

impl S3Store {
    /// [`Self::connect_with`] with the default [`S3Tuning`].
    pub async fn connect(config: S3StoreConfig) -> StoreResult<Self> {
        Self::connect_with(config, S3Tuning::default()).await
    }

    /// Checks the configuration, lists the bucket once (so wrong
    /// credentials, region or bucket fail here with S3's own message),
    /// and, unless `tuning` says, probes create-only puts with one small
    /// object under `.chute-probe/` that it deletes again.
    pub async fn connect_with(config: S3StoreConfig, tuning: S3Tuning) -> StoreResult<Self> {
        tuning.check()?;
        let client = S3Client::new(&config, &tuning)?;
        let check = Request::new(Method::GET, None)
            .query("list-type", "2")
            .query("max-keys", "1")
            .query("prefix", PROBE_PREFIX);
        client.send(check).await?;
        let mut store = Self {
            inner: Arc::new(Inner {
                client,
                tuning,
                capabilities: StoreCapabilities::ALL,
                upload_algorithms: Mutex::new(HashMap::new()),
            }),
        };
        let create_only = match store.inner.tuning.create_only {
            CreateOnlySupport::Assume(b) => b,
            CreateOnlySupport::Probe => store.probe_create_only().await?,
        };
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            inner.capabilities.create_only = create_only;
        }
        Ok(store)
    }

    /// Writes a probe object twice with `If-None-Match: *`: a peer that
    /// honours it refuses the second write.
    async fn probe_create_only(&self) -> StoreResult<bool> {
        let key = ObjectKey::parse(&format!("{PROBE_PREFIX}{}", uuid::Uuid::new_v4().simple()))
            .map_err(|e| StoreError::Corrupt(format!("probe key: {e}")))?;
        let put = || {
            Request::new(Method::PUT, Some(&key))
                .header("if-none-match", "*")
                .body(client::Body::Bytes(bytes::Bytes::from_static(b"probe")))
        };
        match self.inner.client.send(put()).await {
            Ok(_) => {}
            // A peer that refuses the header outright cannot do it either.
            Err(StoreError::Backend {
                status: 400 | 501, ..
            }) => return Ok(false),
            Err(e) => return Err(e),
        }
        let second = self.inner.client.send(put()).await;
        let _ = self
            .inner
            .client
            .send(Request::new(Method::DELETE, Some(&key)))
            .await;
        match second {
            Ok(_) => Ok(false),
            Err(StoreError::PreconditionFailed { .. }) => Ok(true),
            Err(StoreError::Backend {
                status: 400 | 501, ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &BucketName {
        self.inner.client.bucket()
    }

    /// The sizes and limits in use.
    pub fn tuning(&self) -> &S3Tuning {
        &self.inner.tuning
    }

    fn client(&self) -> &S3Client {
        &self.inner.client
    }
}

#[async_trait]
impl Store for S3Store {
    async fn put(&self, key: &ObjectKey, body: ByteStream, opts: PutOptions) -> StoreResult<ObjectMeta> {
        self.put_object(key, body, opts).await
    }

    async fn get(&self, key: &ObjectKey, range: Option<ByteRange>) -> StoreResult<GetResult> {
        self.get_object(key, range).await
    }

    async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectMeta> {
        self.head_object(key).await
    }

    async fn delete(&self, key: &ObjectKey) -> StoreResult<()> {
        self.delete_object(key).await
    }

    async fn list(&self, opts: &ListOptions) -> StoreResult<ListResult> {
        self.list_objects(opts).await
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey, opts: CopyOptions) -> StoreResult<ObjectMeta> {
        self.copy_object(from, to, opts).await
    }

    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities
    }
}

#[async_trait]
impl MultipartStore for S3Store {
    async fn create_multipart(&self, key: &ObjectKey, opts: PutOptions) -> StoreResult<MultipartUpload> {
        self.create_upload(key, &opts).await
    }

    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        opts: PartOptions,
    ) -> StoreResult<PartMeta> {
        self.put_part(key, upload_id, part_number, body, opts).await
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<Vec<PartMeta>> {
        Ok(self.all_parts(key, upload_id).await?.0)
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<ObjectMeta> {
        self.complete_upload(key, upload_id, parts).await
    }

    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<()> {
        self.abort_upload(key, upload_id).await
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> StoreResult<Vec<MultipartUpload>> {
        self.list_uploads(prefix).await
    }
}
