//! Conversions between s3s's wire types and the store's: request bodies to
//! [`ByteStream`]s (with aws-chunked trailer checksums checked at the end),
//! store streams back to response bodies, checksum and digest headers to
//! store expectations, and stored metadata to output fields.

use crate::error::{TrailerChecksumError, s3_err};
use bytes::Bytes;
use chute_core::{Checksum, ChecksumAlgorithm, ChecksumHasher};
use chute_store::{ByteStream, ObjectMeta};
use futures::{Stream, StreamExt as _};
use s3s::dto::{self, ETag, StreamingBlob, Timestamp, TimestampFormat};
use s3s::stream::RemainingLength;
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders};
use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A request body as the store reads it. With a trailer checksum expected,
/// the body is hashed on the way and the stream fails at its end when the
/// trailer is missing or differs, so the store commits nothing.
pub(crate) fn request_body(
    body: Option<StreamingBlob>,
    trailer: Option<(ChecksumAlgorithm, Option<TrailingHeaders>)>,
) -> ByteStream {
    let Some(body) = body else {
        return futures::stream::empty().boxed();
    };
    let stream = body.map(|r| r.map_err(io::Error::other)).boxed();
    match trailer {
        None => stream,
        Some((algorithm, trailers)) => TrailerChecked {
            inner: stream,
            hasher: Some(ChecksumHasher::new(algorithm)),
            algorithm,
            trailers,
        }
        .boxed(),
    }
}

struct TrailerChecked {
    inner: ByteStream,
    hasher: Option<ChecksumHasher>,
    algorithm: ChecksumAlgorithm,
    trailers: Option<TrailingHeaders>,
}

impl TrailerChecked {
    fn verdict(&mut self, hasher: ChecksumHasher) -> Result<(), TrailerChecksumError> {
        let alg = self.algorithm;
        let value = self
            .trailers
            .as_ref()
            .and_then(|t| {
                t.read(|h| {
                    h.get(alg.header_name())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
            })
            .flatten()
            .ok_or(TrailerChecksumError::Missing(alg))?;
        let expected =
            Checksum::from_base64(alg, &value).map_err(|_| TrailerChecksumError::Malformed(alg))?;
        if hasher.finish().value == expected.value {
            Ok(())
        } else {
            Err(TrailerChecksumError::Mismatch(alg))
        }
    }
}

impl Stream for TrailerChecked {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(h) = this.hasher.as_mut() {
                    h.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => match this.hasher.take() {
                None => Poll::Ready(None),
                Some(hasher) => match this.verdict(hasher) {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(io::Error::other(e)))),
                },
            },
            other => other,
        }
    }
}

/// A store stream as an s3s response body. s3s wants `Sync` streams; a
/// `Mutex` we only ever reach through `&mut` gives that without locking.
pub(crate) fn response_body(stream: ByteStream, len: u64) -> StreamingBlob {
    StreamingBlob::new(SyncBody {
        inner: std::sync::Mutex::new(stream),
        remaining: len,
    })
}

struct SyncBody {
    inner: std::sync::Mutex<ByteStream>,
    remaining: u64,
}

impl Stream for SyncBody {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let inner = this
            .inner
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl s3s::stream::ByteStream for SyncBody {
    fn remaining_length(&self) -> RemainingLength {
        usize::try_from(self.remaining)
            .map_or_else(|_| RemainingLength::unknown(), RemainingLength::new_exact)
    }
}

/// The checksum expectations of an upload request.
#[derive(Debug, Default)]
pub(crate) struct ChecksumRequest {
    /// A value sent in an `x-amz-checksum-*` header.
    pub expected: Option<Checksum>,
    /// An algorithm to compute (and store) without a value.
    pub algorithm: Option<ChecksumAlgorithm>,
    /// An algorithm whose value arrives as an aws-chunked trailer.
    pub trailer: Option<ChecksumAlgorithm>,
}

/// The five `x-amz-checksum-*` header values of an input.
#[derive(Debug, Default)]
pub(crate) struct ChecksumValues {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

impl ChecksumValues {
    fn pairs(&self) -> [(ChecksumAlgorithm, Option<&String>); 5] {
        [
            (ChecksumAlgorithm::Crc32, self.crc32.as_ref()),
            (ChecksumAlgorithm::Crc32c, self.crc32c.as_ref()),
            (ChecksumAlgorithm::Crc64Nvme, self.crc64nvme.as_ref()),
            (ChecksumAlgorithm::Sha1, self.sha1.as_ref()),
            (ChecksumAlgorithm::Sha256, self.sha256.as_ref()),
        ]
    }

    /// The fields of a stored checksum (none for `None`).
    pub(crate) fn from_checksum(c: Option<&Checksum>) -> Self {
        let mut out = Self::default();
        if let Some(c) = c {
            let v = Some(c.to_header_value());
            match c.algorithm {
                ChecksumAlgorithm::Crc32 => out.crc32 = v,
                ChecksumAlgorithm::Crc32c => out.crc32c = v,
                ChecksumAlgorithm::Crc64Nvme => out.crc64nvme = v,
                ChecksumAlgorithm::Sha1 => out.sha1 = v,
                ChecksumAlgorithm::Sha256 => out.sha256 = v,
            }
        }
        out
    }
}

/// The `x-amz-checksum-type` of a stored checksum.
pub(crate) fn checksum_type(c: Option<&Checksum>) -> Option<dto::ChecksumType> {
    c.map(|c| {
        dto::ChecksumType::from_static(if c.parts.is_some() {
            dto::ChecksumType::COMPOSITE
        } else {
            dto::ChecksumType::FULL_OBJECT
        })
    })
}

/// Parses an algorithm name from a header.
pub(crate) fn parse_algorithm(name: &str) -> S3Result<ChecksumAlgorithm> {
    ChecksumAlgorithm::parse(name).ok_or_else(|| {
        s3_err(
            S3ErrorCode::InvalidRequest,
            format!("Checksum algorithm {name} is not supported."),
        )
    })
}

/// Reads the checksum headers of an upload: at most one value header, an
/// optional `x-amz-sdk-checksum-algorithm`/`x-amz-checksum-algorithm`, and
/// a checksum named in `x-amz-trailer`.
pub(crate) fn checksum_request(
    values: &ChecksumValues,
    sdk_algorithm: Option<&dto::ChecksumAlgorithm>,
    headers: &http::HeaderMap,
) -> S3Result<ChecksumRequest> {
    let mut req = ChecksumRequest::default();
    for (alg, value) in values.pairs() {
        let Some(value) = value else { continue };
        if req.expected.is_some() {
            return Err(s3_err(
                S3ErrorCode::InvalidRequest,
                "Expecting a single x-amz-checksum- header",
            ));
        }
        let checksum = Checksum::from_base64(alg, value).map_err(|_| {
            s3_err(
                S3ErrorCode::InvalidRequest,
                format!("Value for {} header is invalid.", alg.header_name()),
            )
        })?;
        req.expected = Some(checksum);
    }
    // s3s fills the input's algorithm from `x-amz-checksum-algorithm` (or
    // the trailer); SDKs send `x-amz-sdk-checksum-algorithm`, read it too.
    let sdk_header = headers
        .get("x-amz-sdk-checksum-algorithm")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    let named = sdk_algorithm
        .map(|a| a.as_str())
        .filter(|a| !a.is_empty())
        .or(sdk_header);
    if let Some(name) = named {
        let alg = parse_algorithm(name)?;
        match &req.expected {
            Some(c) if c.algorithm != alg => {
                return Err(s3_err(
                    S3ErrorCode::InvalidRequest,
                    format!(
                        "Value for x-amz-sdk-checksum-algorithm header is invalid: {name} does not match the x-amz-checksum header sent."
                    ),
                ));
            }
            Some(_) => {}
            None => req.algorithm = Some(alg),
        }
    }
    if let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        for name in trailer.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some(alg) = ChecksumAlgorithm::ALL
                .into_iter()
                .find(|a| a.header_name().eq_ignore_ascii_case(name))
            else {
                continue;
            };
            if req.expected.is_some() || req.trailer.is_some() {
                return Err(s3_err(
                    S3ErrorCode::InvalidRequest,
                    "Expecting a single x-amz-checksum- header",
                ));
            }
            req.trailer = Some(alg);
            req.algorithm = Some(alg);
        }
    }
    Ok(req)
}

/// Decodes `Content-MD5`; malformed values are `InvalidDigest`.
pub(crate) fn content_md5(value: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    use base64::Engine as _;
    let Some(value) = value else { return Ok(None) };
    let invalid = || {
        s3_err(
            S3ErrorCode::InvalidDigest,
            "The Content-MD5 you specified was invalid.",
        )
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| invalid())?;
    raw.try_into().map(Some).map_err(|_| invalid())
}

/// A declared body length as the store wants it.
pub(crate) fn content_length(len: Option<i64>) -> S3Result<Option<u64>> {
    let Some(len) = len else { return Ok(None) };
    let len = u64::try_from(len).map_err(|_| {
        s3_err(
            S3ErrorCode::InvalidArgument,
            "Content-Length must not be negative",
        )
    })?;
    // Refused before a byte of the body is read: S3's single-request limit.
    if len > MAX_SINGLE_UPLOAD {
        return Err(s3_err(
            S3ErrorCode::EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size of 5 GiB per request; use multipart upload.",
        ));
    }
    Ok(Some(len))
}

/// The largest body S3 accepts in one PutObject or UploadPart: 5 GiB.
pub(crate) const MAX_SINGLE_UPLOAD: u64 = 5 * 1024 * 1024 * 1024;

/// A quoted S3 ETag from a stored, unquoted one.
pub(crate) fn etag(stored: &str) -> ETag {
    ETag::Strong(stored.trim_matches('"').to_owned())
}

/// A timestamp for the wire.
pub(crate) fn timestamp(t: time::OffsetDateTime) -> Timestamp {
    Timestamp::from(t)
}

/// An `Expires` value as sent, parsed for s3s when it is an HTTP date.
pub(crate) fn expires(raw: Option<&String>) -> Option<Timestamp> {
    raw.and_then(|r| Timestamp::parse(TimestampFormat::HttpDate, r).ok())
}

/// An `Expires` timestamp as the store keeps it.
pub(crate) fn expires_string(ts: Option<&Timestamp>) -> Option<String> {
    let ts = ts?;
    let mut buf = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

// s3s's PutObject, CreateMultipartUpload and CopyObject inputs, and its
// many outputs, share field names but no type: these macros are the one
// place those field lists are written.

/// The standard headers of a write request (`input` has s3s's
/// `content_type`, `cache_control`, ..., `expires` fields), as the store
/// keeps them.
macro_rules! object_headers {
    ($input:expr) => {
        chute_store::ObjectHeaders {
            content_type: $input.content_type.clone(),
            cache_control: $input.cache_control.clone(),
            content_disposition: $input.content_disposition.clone(),
            content_encoding: $input.content_encoding.clone(),
            content_language: $input.content_language.clone(),
            expires: $crate::ops::convert::expires_string($input.expires.as_ref()),
        }
    };
}
pub(crate) use object_headers;

/// The five `checksum_*` fields of an s3s input, moved out of it.
macro_rules! input_checksums {
    ($input:expr) => {
        $crate::ops::convert::ChecksumValues {
            crc32: $input.checksum_crc32,
            crc32c: $input.checksum_crc32c,
            crc64nvme: $input.checksum_crc64nvme,
            sha1: $input.checksum_sha1,
            sha256: $input.checksum_sha256,
        }
    };
}
pub(crate) use input_checksums;

/// Builds the s3s output or result struct `$ty` with the given fields,
/// its five `checksum_*` fields from `$sums` (a [`ChecksumValues`]), and
/// defaults for the rest.
macro_rules! with_checksums {
    ($sums:expr, $ty:ident { $($field:ident $(: $value:expr)?),* $(,)? }) => {{
        let sums: $crate::ops::convert::ChecksumValues = $sums;
        #[allow(clippy::needless_update)]
        let built = $ty {
            $($field $(: $value)?,)*
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            ..Default::default()
        };
        built
    }};
}
pub(crate) use with_checksums;

/// User metadata with lowercase names, as the store keeps it.
pub(crate) fn metadata(m: Option<&dto::Metadata>) -> BTreeMap<String, String> {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    })
    .unwrap_or_default()
}

/// Stored user metadata for the wire.
pub(crate) fn metadata_out(m: &BTreeMap<String, String>) -> Option<dto::Metadata> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// An object entry of a listing.
pub(crate) fn list_object(meta: &ObjectMeta, key: String) -> dto::Object {
    dto::Object {
        key: Some(key),
        size: i64::try_from(meta.size).ok(),
        e_tag: Some(etag(&meta.etag)),
        last_modified: Some(timestamp(meta.last_modified)),
        storage_class: Some(dto::ObjectStorageClass::from_static(
            dto::ObjectStorageClass::STANDARD,
        )),
        checksum_algorithm: meta
            .checksum
            .as_ref()
            .map(|c| vec![dto::ChecksumAlgorithm::from(c.algorithm.as_str().to_owned())]),
        checksum_type: checksum_type(meta.checksum.as_ref()),
        ..Default::default()
    }
}

/// Percent-encodes listing strings for `encoding-type=url`, as S3 does
/// (unreserved characters and `/` stay).
pub(crate) fn url_encode(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SET: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(s, SET).to_string()
}

/// Whether the request asked for URL-encoded keys.
pub(crate) fn wants_url(encoding: Option<&dto::EncodingType>) -> S3Result<bool> {
    match encoding {
        None => Ok(false),
        Some(e) if e.as_str().eq_ignore_ascii_case(dto::EncodingType::URL) => Ok(true),
        Some(e) => Err(s3_err(
            S3ErrorCode::InvalidArgument,
            format!("Invalid Encoding Method specified in Request: {}", e.as_str()),
        )),
    }
}

/// A `max-keys`-style limit: default 1000, capped at 1000, negative refused.
pub(crate) fn limit(value: Option<i32>, name: &str) -> S3Result<usize> {
    match value {
        None => Ok(1000),
        Some(v) if v < 0 => Err(s3_err(
            S3ErrorCode::InvalidArgument,
            format!("Argument {name} must be an integer between 0 and 2147483647"),
        )),
        Some(v) => Ok(usize::try_from(v).unwrap_or(1000).min(1000)),
    }
}

/// `NotImplemented` for a header or argument this endpoint does not support.
pub(crate) fn not_implemented(what: &str) -> S3Error {
    s3_err(
        S3ErrorCode::NotImplemented,
        format!("A header or argument you provided implies functionality that is not implemented: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_header_is_checked() {
        assert!(content_md5(Some("1B2M2Y8AsgTpgAmY7PhCfg==")).is_ok_and(|v| v.is_some()));
        assert!(content_md5(Some("not base64!")).is_err());
        assert!(content_md5(Some("AAAA")).is_err());
    }

    #[test]
    fn url_encoding_keeps_slashes() {
        assert_eq!(url_encode("a b/c+d"), "a%20b/c%2Bd");
    }

    #[test]
    fn single_checksum_header() {
        let values = ChecksumValues {
            crc32: Some("AAAAAA==".into()),
            sha1: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
            ..Default::default()
        };
        assert!(checksum_request(&values, None, &http::HeaderMap::new()).is_err());
        let bad = ChecksumValues {
            crc32: Some("zz".into()),
            ..Default::default()
        };
        assert!(checksum_request(&bad, None, &http::HeaderMap::new()).is_err());
    }
}
