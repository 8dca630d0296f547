//! GetObject (ranges), HeadObject, DeleteObject and copies: CopyObject up
//! to [`super::S3Tuning::max_copy_object_size`], UploadPartCopy above it.
//! Copies pin the source with `x-amz-copy-source-if-match`, so a source
//! replaced mid-copy is copied again rather than mixed.

use super::S3Store;
use super::client::{Body, Request};
use super::headers::{checksum_algorithm_header, object_meta, write_headers};
use super::multipart::AbortGuard;
use super::xml::EtagResult;
use crate::{
    ByteRange, ByteStream, CompletedPart, CopyOptions, GetResult, MAX_PART_NUMBER, MIN_PART_SIZE, ObjectMeta,
    PutOptions, StoreError, StoreResult,
};
use chute_core::ObjectKey;
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::{Method, StatusCode};
use std::ops::Range;

/// Copies retried when the source changes between HEAD and copy.
const COPY_ATTEMPTS: usize = 3;

fn range_header(r: ByteRange) -> String {
    match r {
        ByteRange::Inclusive { first, last } => format!("bytes={first}-{last}"),
        ByteRange::From(first) => format!("bytes={first}-"),
        ByteRange::Suffix(n) => format!("bytes=-{n}"),
    }
}

/// `bytes first-last/size` of a 206 answer.
fn content_range(v: &str) -> Option<(Range<u64>, u64)> {
    let (span, size) = v.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
    Some((first..last.checked_add(1)?, size.parse().ok()?))
}

fn content_length(resp: &reqwest::Response) -> u64 {
    resp.headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The bytes `range` of a body that starts at byte 0 (a peer that ignored `Range`).
fn slice(body: ByteStream, range: Range<u64>) -> ByteStream {
    let mut pos = 0u64;
    body.try_filter_map(move |chunk| {
        let (start, end) = (pos, pos + chunk.len() as u64);
        pos = end;
        let from = range.start.clamp(start, end) - start;
        let to = range.end.clamp(start, end) - start;
        let part = (from < to).then(|| chunk.slice(from as usize..to as usize));
        futures::future::ready(Ok(part))
    })
    .boxed()
}

impl S3Store {
    pub(super) async fn get_object(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> StoreResult<GetResult> {
        if let Some(ByteRange::Inclusive { first, last }) = range
            && first > last
        {
            // Not a valid Range header: S3 would ignore it and send everything.
            let size = self.head_object(key).await?.size;
            return Err(StoreError::InvalidRange { size });
        }
        let mut req = Request::new(Method::GET, Some(key));
        req = match range {
            Some(r) => req.header("range", range_header(r)),
            // Like S3, a ranged read carries no whole-object checksum.
            None => req.header("x-amz-checksum-mode", "ENABLED"),
        };
        let resp = match self.client().send(req).await {
            Err(StoreError::InvalidRange { size: u64::MAX }) => {
                let size = self.head_object(key).await?.size;
                return Err(StoreError::InvalidRange { size });
            }
            other => other?,
        };
        let partial = resp.status() == StatusCode::PARTIAL_CONTENT;
        let announced = resp
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(content_range);
        let (served, size) = match announced {
            Some((r, size)) if partial => (r, size),
            _ => {
                let size = content_length(&resp);
                (0..size, size)
            }
        };
        let meta = object_meta(key, resp.headers(), size);
        let owned = key.clone();
        let mut body: ByteStream = resp
            .bytes_stream()
            .map_err(move |e| super::client::broken_answer(&Method::GET, Some(&owned), &e))
            .boxed();
        let range = match range {
            Some(r) if !partial => {
                let wanted = r.resolve(size).ok_or(StoreError::InvalidRange { size })?;
                body = slice(body, wanted.clone());
                wanted
            }
            _ => served,
        };
        Ok(GetResult { meta, range, body })
    }

    pub(super) async fn head_object(&self, key: &ObjectKey) -> StoreResult<ObjectMeta> {
        let req = Request::new(Method::HEAD, Some(key)).header("x-amz-checksum-mode", "ENABLED");
        let resp = self.client().send(req).await?;
        Ok(object_meta(key, resp.headers(), content_length(&resp)))
    }

    pub(super) async fn delete_object(&self, key: &ObjectKey) -> StoreResult<()> {
        match self.client().send(Request::new(Method::DELETE, Some(key))).await {
            Ok(_) | Err(StoreError::NoSuchKey { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn copy_object(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
        opts: CopyOptions,
    ) -> StoreResult<ObjectMeta> {
        let mut attempt = 1;
        loop {
            let src = self.head_object(from).await?;
            if from == to && matches!(opts, CopyOptions::KeepMetadata) {
                return Ok(src); // S3 refuses a copy that changes nothing.
            }
            let copied = if src.size > self.inner.tuning.max_copy_object_size {
                self.copy_in_parts(from, to, &src, &opts).await
            } else {
                self.copy_whole(from, to, &src, &opts).await
            };
            match copied {
                Err(StoreError::PreconditionFailed { .. }) if attempt < COPY_ATTEMPTS => attempt += 1,
                Err(StoreError::PreconditionFailed { .. }) => {
                    return Err(StoreError::Backend {
                        status: 412,
                        code: "PreconditionFailed".into(),
                        message: format!("{from} kept changing while it was copied"),
                    });
                }
                other => {
                    other?;
                    return self.head_object(to).await;
                }
            }
        }
    }

    fn copy_request<'a>(&self, to: &'a ObjectKey, from: &ObjectKey, src: &ObjectMeta) -> Request<'a> {
        Request::new(Method::PUT, Some(to))
            .header("x-amz-copy-source", self.client().copy_source(from))
            .header("x-amz-copy-source-if-match", format!("\"{}\"", src.etag))
    }

    async fn copy_whole(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
        src: &ObjectMeta,
        opts: &CopyOptions,
    ) -> StoreResult<()> {
        let mut req = self.copy_request(to, from, src);
        match opts {
            CopyOptions::KeepMetadata => req = req.header("x-amz-metadata-directive", "COPY"),
            CopyOptions::ReplaceMetadata(o) => {
                req.headers
                    .push(("x-amz-metadata-directive".into(), "REPLACE".into()));
                req.headers.extend(write_headers(&o.headers, &o.metadata));
                req.headers
                    .extend(o.checksum_algorithm.map(checksum_algorithm_header));
            }
        }
        self.copy_answer(self.client().send(req).await?, to, "CopyObject")
            .await
            .map(drop)
    }

    /// Reads a copy's answer, which may be an error despite its 200.
    async fn copy_answer(
        &self,
        resp: reqwest::Response,
        to: &ObjectKey,
        what: &str,
    ) -> StoreResult<EtagResult> {
        let ctx = Request::new(Method::PUT, Some(to));
        self.client().read_xml(resp, &ctx, what).await
    }

    /// A copy too large for CopyObject: UploadPartCopy in parts of about
    /// `copy_part_size`, every one at least 5 MiB (Garage refuses smaller
    /// copy parts, even the last).
    async fn copy_in_parts(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
        src: &ObjectMeta,
        opts: &CopyOptions,
    ) -> StoreResult<()> {
        let tuning = &self.inner.tuning;
        let upload_opts = match opts {
            CopyOptions::KeepMetadata => PutOptions {
                headers: src.headers.clone(),
                metadata: src.metadata.clone(),
                checksum_algorithm: src.checksum.as_ref().map(|c| c.algorithm),
                ..PutOptions::default()
            },
            CopyOptions::ReplaceMetadata(o) => PutOptions {
                headers: o.headers.clone(),
                metadata: o.metadata.clone(),
                checksum_algorithm: o.checksum_algorithm,
                ..PutOptions::default()
            },
        };
        let size = src.size;
        let count = size
            .div_ceil(tuning.copy_part_size)
            .min(size / MIN_PART_SIZE)
            .clamp(1, u64::from(MAX_PART_NUMBER));
        let part_len = size.div_ceil(count);
        let upload_id = self.initiate_upload(to, &upload_opts).await?;
        let guard = AbortGuard::new(self.client().clone(), to.clone(), upload_id.clone());
        let id = upload_id.as_str();
        let copies = (0..count).map(|i| {
            let first = i * part_len;
            let last = (first + part_len).min(size) - 1;
            let number = u32::try_from(i + 1).unwrap_or(MAX_PART_NUMBER);
            async move {
                let req = self
                    .copy_request(to, from, src)
                    .query("partNumber", number.to_string())
                    .query("uploadId", id)
                    .header("x-amz-copy-source-range", format!("bytes={first}-{last}"))
                    .body(Body::Empty);
                let result = self
                    .copy_answer(self.client().send(req).await?, to, "UploadPartCopy")
                    .await?;
                let part = CompletedPart {
                    part_number: number,
                    etag: result.etag.clone(),
                };
                Ok::<super::multipart::SentPart, StoreError>((part, result.checksum()))
            }
        });
        let parts: StoreResult<Vec<_>> = futures::stream::iter(copies)
            .buffered(tuning.part_concurrency)
            .try_collect()
            .await;
        let parts = match parts {
            Ok(p) => p,
            Err(e) => return Err(guard.abort(e).await),
        };
        match self.finish_upload(to, id, &parts, false).await {
            Ok(_) => {
                guard.disarm();
                Ok(())
            }
            Err(e) => Err(guard.abort(e).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(content_range("bytes 0-5/100"), Some((0..6, 100)));
        assert_eq!(content_range("bytes */100"), None);
        assert_eq!(range_header(ByteRange::Suffix(3)), "bytes=-3");
    }
}
