//! The storage seam of Chute: the [`Store`] trait (objects in one bucket),
//! the [`MultipartStore`] capability trait (and its optional
//! [`AppendableUploads`]), the durable filesystem backend
//! ([`fs`]), the S3 backend ([`s3`], feature `s3`, on by default) and the
//! conformance suite every backend runs ([`conformance`]).
//!
//! A store speaks in validated [`ObjectKey`]s and streams bodies as
//! [`ByteStream`]s; it never holds a whole object in memory. Writes are
//! atomic: a put or a multipart completion either makes the whole object
//! visible or leaves the previous state untouched. HTTP, signatures and
//! S3 wire formats live in other crates, except that the S3 backend
//! speaks S3 to its peer.
//!
//! # What each backend guarantees
//!
//! | | [`fs::FsBucket`] | [`s3::S3Store`] |
//! |---|---|---|
//! | durability | fsync of data, metadata and directory before a write returns | the peer's (S3: acknowledged means stored) |
//! | memory per write | 256 KiB chunks | one part (8 MiB) held for small or unknown-length bodies, in the chunks the caller gave (no copy of chunks of 64 KiB or more); `(part_concurrency + 1)` parts for multipart puts; a known-length body streams |
//! | a failed put | nothing visible; a crash leaves a temp file `open` removes | nothing visible (the end of the body is held back until it checks out; multipart puts are aborted); a killed process may leave an incomplete multipart upload |
//! | create-only puts | atomic (`link(2)`) | atomic where the peer honours `If-None-Match: *` (probed at connect); otherwise [`StoreError::Unsupported`] (Garage 2.5) |
//! | ETags | hex MD5, `<hex>-N` for multipart | the peer's: the same for AWS, Garage, MinIO, except SSE-KMS objects; copies above 5 GiB become multipart |
//! | multipart checksums | COMPOSITE | COMPOSITE, also for multipart puts of unknown length |
//! | appendable uploads ([`AppendableUploads`]) | yes: one staging file per upload, fsynced per append, renamed into place | no (parts only) |
//! | listings | full metadata | key, size, ETag and time only |
//! | keys | case- and normalization-sensitive filesystem required | any valid [`ObjectKey`] |
//!
//! Both pass [`conformance::run_store_suite`] and
//! [`conformance::run_multipart_suite`]; the S3 backend against a real
//! Garage in this crate's tests and against the embedded endpoint in
//! chute-s3's.

pub mod conformance;
mod error;
mod expect;
pub mod fs;
#[cfg(feature = "s3")]
pub mod s3;
mod types;

pub use chute_core::{BucketName, Checksum, ChecksumAlgorithm, ObjectKey};
pub use error::{StoreError, StoreResult};
pub use types::*;

use async_trait::async_trait;

/// Objects in one bucket: the small required core every backend provides.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Streams `body` into a new object at `key`, replacing any object there
    /// once the whole body is stored and every expectation in `opts` holds.
    /// On any error nothing becomes visible and the old object stays.
    async fn put(&self, key: &ObjectKey, body: ByteStream, opts: PutOptions) -> StoreResult<ObjectMeta>;

    /// Opens the object at `key`, optionally only a byte range of it.
    async fn get(&self, key: &ObjectKey, range: Option<ByteRange>) -> StoreResult<GetResult>;

    /// The object's metadata, without its body.
    async fn head(&self, key: &ObjectKey) -> StoreResult<ObjectMeta>;

    /// Deletes the object; deleting a missing object succeeds, as in S3.
    async fn delete(&self, key: &ObjectKey) -> StoreResult<()>;

    /// Lists objects in key order, grouped by `delimiter` into common
    /// prefixes, starting after `start_after`, at most `max_keys` entries
    /// (objects plus prefixes).
    async fn list(&self, opts: &ListOptions) -> StoreResult<ListResult>;

    /// Copies `from` to `to` inside this bucket, keeping or replacing metadata.
    async fn copy(&self, from: &ObjectKey, to: &ObjectKey, opts: CopyOptions) -> StoreResult<ObjectMeta>;

    /// What this store can do beyond the required core; everything unless
    /// the backend says otherwise.
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::ALL
    }
}

/// S3-style multipart uploads: parts stored separately, then joined
/// atomically into one object on completion.
#[async_trait]
pub trait MultipartStore: Store {
    /// Starts a multipart upload for `key`; `opts` are the future object's
    /// content type, metadata and checksum algorithm (expectations are ignored).
    async fn create_multipart(&self, key: &ObjectKey, opts: PutOptions) -> StoreResult<MultipartUpload>;

    /// Stores part `part_number` (1..=10000) of the upload, replacing an
    /// earlier part with the same number.
    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        opts: PartOptions,
    ) -> StoreResult<PartMeta>;

    /// The parts stored so far, by ascending part number.
    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<Vec<PartMeta>>;

    /// Joins the named parts, in the order given (strictly ascending part
    /// numbers, ETags matching), into the object at `key`, and ends the
    /// upload. Every part but the last must be at least
    /// [`MIN_PART_SIZE`] bytes.
    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> StoreResult<ObjectMeta>;

    /// Ends the upload and deletes its parts.
    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> StoreResult<()>;

    /// The uploads in progress whose key starts with `prefix`, by key then
    /// initiation time.
    async fn list_multipart_uploads(&self, prefix: &str) -> StoreResult<Vec<MultipartUpload>>;

    /// The appendable-uploads capability, if this backend has it (the fs
    /// store does; S3 does not, and a wrapper that does not forward it
    /// hides it, which is always safe: callers then use parts).
    fn appendable(&self) -> Option<&dyn AppendableUploads> {
        None
    }
}

/// Appendable uploads, an optional capability of a [`MultipartStore`]
/// ([`MultipartStore::appendable`]): the bytes of a multipart upload
/// (opened with [`MultipartStore::create_multipart`], dropped with
/// [`MultipartStore::abort_multipart`], listed by
/// [`MultipartStore::list_multipart_uploads`] like any other) go into
/// one staging file in order, with no per-part hash, and completion
/// renames that file into place. Such an upload uses appends or parts,
/// never both.
///
/// Crash safety is the caller's bookkeeping plus two rules: an append
/// returns only once its bytes are durable, and bytes past the `offset`
/// an append or completion is given are discarded (a crash or a failed
/// append may leave some; they were never acknowledged). So the caller
/// records the length an append returned as its commit point and passes
/// it to the next call. Nothing is visible at the key until
/// [`AppendableUploads::complete_append`], which is atomic like a put.
#[async_trait]
pub trait AppendableUploads: Send + Sync {
    /// Writes `body` at `offset` of upload `upload_id` (for `key`),
    /// discarding any bytes stored past `offset` first, and makes them
    /// durable; returns the new length (`offset` plus the body's). Fails
    /// with [`StoreError::NoSuchUpload`] if the upload is gone, with
    /// [`StoreError::Corrupt`] if fewer than `offset` bytes are stored,
    /// and with the body's error if it breaks off (bytes past `offset`
    /// may then be stored but are not acknowledged).
    async fn append(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        offset: u64,
        body: ByteStream,
    ) -> StoreResult<u64>;

    /// Makes the first `size` appended bytes the object at `key`
    /// (replacing any object there), with the headers and metadata the
    /// upload was created with, and ends the upload. Its ETag is opaque
    /// (`<hex>-1`, not an MD5 of the data, as S3 gives multipart objects)
    /// and it has no stored checksum. Fails with
    /// [`StoreError::NoSuchUpload`] once the upload is gone, which is
    /// also what a retry after a completion that was cut short sees.
    async fn complete_append(&self, key: &ObjectKey, upload_id: &str, size: u64) -> StoreResult<ObjectMeta>;
}

/// The smallest size S3 allows for a part that is not the last one.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// The largest part number S3 allows.
pub const MAX_PART_NUMBER: u32 = 10_000;
