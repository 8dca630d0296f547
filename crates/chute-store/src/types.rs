//! The values that cross the [`crate::Store`] seam.

use bytes::Bytes;
use chute_core::{Checksum, ChecksumAlgorithm, ObjectKey};
use futures::stream::BoxStream;
use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use time::OffsetDateTime;

/// A body streamed in chunks. An `Err` item aborts the write that consumes it.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// Standard headers stored with an object and returned on GET/HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectHeaders {
    /// `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Cache-Control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// `Content-Disposition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `Content-Encoding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `Expires`, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// How to write an object (or, for multipart, the object it will become).
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Headers stored with the object.
    pub headers: ObjectHeaders,
    /// User metadata (`x-amz-meta-*` without the prefix, names lowercase).
    pub metadata: BTreeMap<String, String>,
    /// The declared body length; a body of any other length is refused.
    pub expected_len: Option<u64>,
    /// The `Content-MD5` the body must have.
    pub expected_md5: Option<[u8; 16]>,
    /// An `x-amz-checksum-*` value the body must have; also stored.
    pub expected_checksum: Option<Checksum>,
    /// An algorithm to compute and store even without an expected value.
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    /// Create only (S3 `If-None-Match: *`): fail with
    /// [`StoreError::PreconditionFailed`](crate::StoreError::PreconditionFailed)
    /// if an object already exists at the key; atomic against concurrent
    /// writers, so of two create-only puts to one key exactly one wins.
    /// Honoured by [`Store::put`](crate::Store::put); ignored by
    /// `create_multipart` and by [`CopyOptions::ReplaceMetadata`].
    pub if_none_match: bool,
}

/// What a store can do beyond the required core: the parts of the
/// contract a backend may lack because its peer does (Garage ignores
/// `If-None-Match` on PutObject). The conformance suite narrows its
/// clauses on these flags; callers check them before relying on a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCapabilities {
    /// Create-only puts ([`PutOptions::if_none_match`]) are atomic. When
    /// false, such a put fails with
    /// [`StoreError::Unsupported`](crate::StoreError::Unsupported) and
    /// writes nothing: never a silent overwrite.
    pub create_only: bool,
}

impl StoreCapabilities {
    /// Everything the contract describes.
    pub const ALL: Self = Self { create_only: true };
}

impl Default for StoreCapabilities {
    fn default() -> Self {
        Self::ALL
    }
}

/// Expectations for one multipart part.
#[derive(Debug, Clone, Default)]
pub struct PartOptions {
    /// The declared part length.
    pub expected_len: Option<u64>,
    /// The `Content-MD5` the part must have.
    pub expected_md5: Option<[u8; 16]>,
    /// An `x-amz-checksum-*` value the part must have; also stored.
    pub expected_checksum: Option<Checksum>,
}

/// What a copy does with the metadata.
// Built once per copy request; boxing would only cost callers a `Box::new`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Default)]
pub enum CopyOptions {
    /// Keep the source's headers and metadata (S3 `COPY`).
    #[default]
    KeepMetadata,
    /// Replace them (S3 `REPLACE`); expectations in the options are ignored.
    ReplaceMetadata(PutOptions),
}

/// An object's metadata.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectMeta {
    /// The key.
    pub key: ObjectKey,
    /// The size in bytes.
    pub size: u64,
    /// The ETag without quotes: hex MD5, or `<hex>-<parts>` for multipart.
    pub etag: String,
    /// When the object was written.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified: OffsetDateTime,
    /// Standard headers.
    #[serde(default)]
    pub headers: ObjectHeaders,
    /// User metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The stored checksum, if one was asked for or given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
    /// For multipart objects, the part count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts_count: Option<u32>,
}

/// A byte range as HTTP `Range` states it, not yet checked against a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last`, both inclusive.
    Inclusive {
        /// First byte.
        first: u64,
        /// Last byte, inclusive; clamped to the object end.
        last: u64,
    },
    /// `bytes=first-`.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The half-open byte range this selects in an object of `size` bytes,
    /// or `None` when it is not satisfiable (HTTP 416 / S3 `InvalidRange`).
    pub fn resolve(self, size: u64) -> Option<Range<u64>> {
        match self {
            Self::Inclusive { first, last } if first <= last && first < size => {
                Some(first..last.saturating_add(1).min(size))
            }
            Self::From(first) if first < size => Some(first..size),
            Self::Suffix(n) if n > 0 && size > 0 => Some(size.saturating_sub(n)..size),
            _ => None,
        }
    }
}

/// An opened object.
pub struct GetResult {
    /// The object's metadata.
    pub meta: ObjectMeta,
    /// The bytes `body` yields, within `0..meta.size`.
    pub range: Range<u64>,
    /// The body.
    pub body: ByteStream,
}

impl std::fmt::Debug for GetResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetResult")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish()
    }
}

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys starting with this.
    pub prefix: String,
    /// Group keys sharing `prefix + anything + delimiter` into one common prefix.
    pub delimiter: Option<String>,
    /// Only entries (keys or common prefixes) greater than this.
    pub start_after: Option<String>,
    /// The most entries to return (objects plus common prefixes); 0 means 1000.
    pub max_keys: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    /// Objects, in key order.
    pub objects: Vec<ObjectMeta>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// When more entries follow: the last entry returned, to pass as
    /// `start_after` for the next page.
    pub next_start_after: Option<String>,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MultipartUpload {
    /// The key it will complete to.
    pub key: ObjectKey,
    /// Its id.
    pub upload_id: String,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub initiated: OffsetDateTime,
}

/// A stored part.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartMeta {
    /// Its number, 1..=10000.
    pub part_number: u32,
    /// Its size.
    pub size: u64,
    /// Its ETag, unquoted hex MD5.
    pub etag: String,
    /// When it was stored.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified: OffsetDateTime,
    /// Its checksum, when one was given or the upload has an algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
}

/// A part named in a completion request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// Its number.
    pub part_number: u32,
    /// The ETag the client got for it (quotes allowed).
    pub etag: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_http() {
        assert_eq!(
            ByteRange::Inclusive { first: 0, last: 9 }.resolve(100),
            Some(0..10)
        );
        assert_eq!(
            ByteRange::Inclusive { first: 90, last: 200 }.resolve(100),
            Some(90..100)
        );
        assert_eq!(
            ByteRange::Inclusive {
                first: 100,
                last: 200
            }
            .resolve(100),
            None
        );
        assert_eq!(ByteRange::From(10).resolve(100), Some(10..100));
        assert_eq!(ByteRange::Suffix(10).resolve(100), Some(90..100));
        assert_eq!(ByteRange::Suffix(200).resolve(100), Some(0..100));
        assert_eq!(ByteRange::Suffix(0).resolve(100), None);
        assert_eq!(ByteRange::From(0).resolve(0), None);
    }
}
