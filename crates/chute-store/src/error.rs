//! [`StoreError`]: every way a store operation fails. The S3 endpoint and
//! the server map these to wire errors in one place each.

use chute_core::ChecksumAlgorithm;
use std::io;

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No object at that key (S3 `NoSuchKey`).
    #[error("no object at key {key:?}")]
    NoSuchKey {
        /// The missing key.
        key: String,
    },
    /// The bucket does not exist (S3 `NoSuchBucket`).
    #[error("bucket {bucket:?} does not exist")]
    NoSuchBucket {
        /// The missing bucket.
        bucket: String,
    },
    /// The bucket exists already (S3 `BucketAlreadyOwnedByYou`).
    #[error("bucket {bucket:?} already exists")]
    BucketExists {
        /// The bucket.
        bucket: String,
    },
    /// The bucket still holds objects or uploads (S3 `BucketNotEmpty`).
    #[error("bucket {bucket:?} is not empty")]
    BucketNotEmpty {
        /// The bucket.
        bucket: String,
    },
    /// No multipart upload with that id for that key (S3 `NoSuchUpload`).
    #[error("no multipart upload {upload_id:?}")]
    NoSuchUpload {
        /// The unknown upload id.
        upload_id: String,
    },
    /// The range lies outside the object (S3 `InvalidRange`).
    #[error("range not satisfiable for an object of {size} bytes")]
    InvalidRange {
        /// The object size.
        size: u64,
    },
    /// A part named in a completion is missing or its ETag differs (S3 `InvalidPart`).
    #[error("part {part_number} is missing or its ETag does not match")]
    InvalidPart {
        /// The offending part number.
        part_number: u32,
    },
    /// Part numbers in a completion are not strictly ascending (S3 `InvalidPartOrder`).
    #[error("parts must be listed in strictly ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than 5 MiB, or a completion
    /// lists no parts (S3 `EntityTooSmall` / `MalformedXML`).
    #[error("part {part_number} is {size} bytes; every part but the last must be at least 5 MiB")]
    PartTooSmall {
        /// The offending part number.
        part_number: u32,
        /// Its size.
        size: u64,
    },
    /// A part number outside 1..=10000 (S3 `InvalidArgument`).
    #[error("part number {0} is outside 1..=10000")]
    InvalidPartNumber(u32),
    /// The body's MD5 differs from `Content-MD5` (S3 `BadDigest`).
    #[error("the Content-MD5 you specified did not match what we received")]
    BadDigest,
    /// The body's checksum differs from the expected one (S3 `BadDigest`
    /// with an `x-amz-checksum-*` message).
    #[error("the {algorithm} checksum you specified did not match what we received")]
    ChecksumMismatch {
        /// The algorithm whose value differed.
        algorithm: ChecksumAlgorithm,
    },
    /// The body ended before, or ran past, the declared length (S3 `IncompleteBody`).
    #[error("body length {received} does not match the declared {expected}")]
    LengthMismatch {
        /// The declared length.
        expected: u64,
        /// What arrived.
        received: u64,
    },
    /// A create-only put ([`crate::PutOptions::if_none_match`]) found an
    /// object at the key (S3 `PreconditionFailed`, HTTP 412); nothing was
    /// written.
    #[error("an object already exists at key {key:?}")]
    PreconditionFailed {
        /// The key that is taken.
        key: String,
    },
    /// The key cannot be stored by this backend (a segment too long for
    /// the filesystem; S3 `KeyTooLongError`).
    #[error("key cannot be stored: {reason}")]
    UnstorableKey {
        /// Why.
        reason: String,
    },
    /// The backend cannot do what the options ask, because its peer lacks
    /// the feature (see [`crate::StoreCapabilities`]); nothing was written.
    #[error("this storage backend cannot {0}")]
    Unsupported(String),
    /// The remote storage refused this server's credentials or their
    /// permissions (S3 `AccessDenied`, `InvalidAccessKeyId`,
    /// `SignatureDoesNotMatch`, ...): a configuration problem of the
    /// server, never the client's.
    #[error(
        "the storage backend refused access ({code}): {message}; check the access key, secret key \
         and region, and that the key may read and write the bucket"
    )]
    AccessDenied {
        /// The S3 error code, or the HTTP status when the answer had no body.
        code: String,
        /// The backend's message.
        message: String,
    },
    /// The remote storage answered with an error no other variant describes.
    #[error("the storage backend answered {status} {code}: {message}")]
    Backend {
        /// The HTTP status.
        status: u16,
        /// The S3 error code (empty when the answer had no body).
        code: String,
        /// The backend's message.
        message: String,
    },
    /// The store's configuration is unusable (a bad endpoint, a missing
    /// setting); the message names the setting.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// Reading the request body failed: the client went away or a limit
    /// wrapper stopped it. The source says which; nothing was stored.
    #[error("reading the upload body failed: {0}")]
    Body(#[source] io::Error),
    /// The backend's own storage failed (disk, network to S3).
    #[error("storage failed: {0}")]
    Io(#[from] io::Error),
    /// The stored data is not what the store wrote (a damaged metadata file).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the error means "not found" of any kind.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::NoSuchKey { .. } | Self::NoSuchBucket { .. } | Self::NoSuchUpload { .. }
        )
    }
}
