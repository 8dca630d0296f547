//! The multipart family: CreateMultipartUpload, UploadPart, UploadPartCopy
//! (with `x-amz-copy-source-range`), ListParts (paginated),
//! CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads.
//! Part bodies stream into the store like PutObject bodies.

use super::convert::{self, ChecksumValues, checksum_request, content_md5, etag, request_body, timestamp};
use super::{ChuteS3, R};
use crate::error::{s3_err, store_error};
use chute_store::{
    ByteRange, ChecksumAlgorithm as ChecksumAlgo, CompletedPart as StoreCompletedPart, MultipartStore as _,
    PartOptions, PutOptions, Store as _,
};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=chute_store::MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            s3_err(
                S3ErrorCode::InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })
}

/// Parses `x-amz-copy-source-range: bytes=first-last`.
fn copy_range(raw: &str) -> S3Result<ByteRange> {
    let invalid = || {
        s3_err(
            S3ErrorCode::InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
        )
    };
    let (first, last) = raw
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if first > last {
        return Err(invalid());
    }
    Ok(ByteRange::Inclusive { first, last })
}

/// Checks the `x-amz-checksum-type` of CreateMultipartUpload. Only
/// COMPOSITE multipart checksums exist here: the store keeps no checksum
/// type with an upload and stamps every completed object with the
/// composite checksum, so a FULL_OBJECT upload would complete with the
/// wrong type (and SDKs asking for a full-object CRC fail validation).
/// Refusing up front is the honest answer. CRC64NVME is FULL_OBJECT-only
/// in S3 (and its default type), so it is refused as well.
fn create_checksum_type(ty: Option<&ChecksumType>, algorithm: Option<ChecksumAlgo>) -> S3Result<()> {
    match ty.map(ChecksumType::as_str).filter(|t| !t.is_empty()) {
        Some(t) if t.eq_ignore_ascii_case(ChecksumType::FULL_OBJECT) => Err(s3_err(
            S3ErrorCode::InvalidRequest,
            "FULL_OBJECT checksums are not supported; use COMPOSITE",
        )),
        Some(t) if !t.eq_ignore_ascii_case(ChecksumType::COMPOSITE) => Err(s3_err(
            S3ErrorCode::InvalidRequest,
            "Value for x-amz-checksum-type header is invalid.",
        )),
        _ if algorithm == Some(ChecksumAlgo::Crc64Nvme) => Err(s3_err(
            S3ErrorCode::InvalidRequest,
            "CRC64NVME multipart checksums are FULL_OBJECT only, and FULL_OBJECT checksums are not supported; use COMPOSITE with CRC32, CRC32C, SHA1 or SHA256",
        )),
        _ => Ok(()),
    }
}

/// Checks the `x-amz-checksum-type` of CompleteMultipartUpload: every
/// upload here is COMPOSITE (see [`create_checksum_type`]), and S3 refuses
/// a completion naming another type than the upload's.
fn complete_checksum_type(ty: Option<&ChecksumType>) -> S3Result<()> {
    match ty.map(ChecksumType::as_str).filter(|t| !t.is_empty()) {
        Some(t) if !t.eq_ignore_ascii_case(ChecksumType::COMPOSITE) => Err(s3_err(
            S3ErrorCode::InvalidRequest,
            format!(
                "The upload was created with the COMPOSITE checksum type; the complete request must use the same type, not {t}. FULL_OBJECT checksums are not supported."
            ),
        )),
        _ => Ok(()),
    }
}

impl ChuteS3 {
    pub(super) async fn op_create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> R<CreateMultipartUploadOutput> {
        let input = req.input;
        let key = Self::key(&input.key)?;
        let bucket = self.bucket(&input.bucket).await?;
        let algorithm = input
            .checksum_algorithm
            .as_ref()
            .map(|a| convert::parse_algorithm(a.as_str()))
            .transpose()?;
        create_checksum_type(input.checksum_type.as_ref(), algorithm)?;
        let opts = PutOptions {
            headers: convert::object_headers!(input),
            metadata: convert::metadata(input.metadata.as_ref()),
            checksum_algorithm: algorithm,
            ..Default::default()
        };
        let upload = bucket.create_multipart(&key, opts).await.map_err(store_error)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload.upload_id),
            checksum_algorithm: input.checksum_algorithm,
            checksum_type: algorithm.map(|_| ChecksumType::from_static(ChecksumType::COMPOSITE)),
            ..Default::default()
        }))
    }

    pub(super) async fn op_upload_part(&self, req: S3Request<UploadPartInput>) -> R<UploadPartOutput> {
        let input = req.input;
        let key = Self::key(&input.key)?;
        let number = part_number(input.part_number)?;
        let bucket = self.bucket(&input.bucket).await?;
        let values = convert::input_checksums!(input);
        let checks = checksum_request(&values, input.checksum_algorithm.as_ref(), &req.headers)?;
        let opts = PartOptions {
            expected_len: convert::content_length(input.content_length)?,
            expected_md5: content_md5(input.content_md5.as_deref())?,
            expected_checksum: checks.expected,
        };
        let body = request_body(input.body, checks.trailer.map(|a| (a, req.trailing_headers)));
        let part = bucket
            .upload_part(&key, &input.upload_id, number, body, opts)
            .await
            .map_err(store_error)?;
        let sums = ChecksumValues::from_checksum(part.checksum.as_ref());
        Ok(S3Response::new(convert::with_checksums!(
            sums,
            UploadPartOutput {
                e_tag: Some(etag(&part.etag)),
            }
        )))
    }

    pub(super) async fn op_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> R<UploadPartCopyOutput> {
        let input = req.input;
        let key = Self::key(&input.key)?;
        let number = part_number(input.part_number)?;
        let bucket = self.bucket(&input.bucket).await?;
        let src = self.copy_source(&input.copy_source).await?;
        let range = input.copy_source_range.as_deref().map(copy_range).transpose()?;
        let got = src.bucket.get(&src.key, range).await.map_err(store_error)?;
        let len = got.range.end - got.range.start;
        let opts = PartOptions {
            expected_len: Some(len),
            ..Default::default()
        };
        let part = bucket
            .upload_part(&key, &input.upload_id, number, got.body, opts)
            .await
            .map_err(store_error)?;
        let sums = ChecksumValues::from_checksum(part.checksum.as_ref());
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(convert::with_checksums!(
                sums,
                CopyPartResult {
                    e_tag: Some(etag(&part.etag)),
                    last_modified: Some(timestamp(part.last_modified)),
                }
            )),
            ..Default::default()
        }))
    }

    pub(super) async fn op_list_parts(&self, req: S3Request<ListPartsInput>) -> R<ListPartsOutput> {
        let input = req.input;
        let key = Self::key(&input.key)?;
        let bucket = self.bucket(&input.bucket).await?;
        let max_parts = convert::limit(input.max_parts, "max-parts")?;
        let marker = u32::try_from(input.part_number_marker.unwrap_or(0)).unwrap_or(0);
        let all = bucket
            .list_parts(&key, &input.upload_id)
            .await
            .map_err(store_error)?;
        let mut rest = all.into_iter().filter(|p| p.part_number > marker).peekable();
        let page: Vec<_> = rest.by_ref().take(max_parts).collect();
        let truncated = rest.peek().is_some();
        let next_marker = page.last().map(|p| p.part_number);
        let parts = page
            .into_iter()
            .map(|p| {
                let sums = ChecksumValues::from_checksum(p.checksum.as_ref());
                convert::with_checksums!(
                    sums,
                    Part {
                        part_number: i32::try_from(p.part_number).ok(),
                        size: i64::try_from(p.size).ok(),
                        e_tag: Some(etag(&p.etag)),
                        last_modified: Some(timestamp(p.last_modified)),
                    }
                )
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next_marker.and_then(|n| i32::try_from(n).ok()),
            max_parts: input.max_parts.or(Some(1000)),
            is_truncated: Some(truncated),
            parts: Some(parts),
            owner: Some(super::bucket::owner()),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    pub(super) async fn op_complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> R<CompleteMultipartUploadOutput> {
        let input = req.input;
        let key = Self::key(&input.key)?;
        let bucket = self.bucket(&input.bucket).await?;
        complete_checksum_type(input.checksum_type.as_ref())?;
        let parts = input
            .multipart_upload
            .and_then(|m| m.parts)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                s3_err(
                    S3ErrorCode::MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema",
                )
            })?;
        let parts = parts
            .into_iter()
            .map(|p| {
                let number = part_number(p.part_number.unwrap_or(0))?;
                let etag = p
                    .e_tag
                    .map(|e| e.value().to_owned())
                    .ok_or_else(|| s3_err(S3ErrorCode::InvalidPart, format!("Part {number} has no ETag")))?;
                Ok(StoreCompletedPart {
                    part_number: number,
                    etag,
                })
            })
            .collect::<S3Result<Vec<_>>>()?;
        let meta = bucket
            .complete_multipart(&key, &input.upload_id, &parts)
            .await
            .map_err(store_error)?;
        let sums = ChecksumValues::from_checksum(meta.checksum.as_ref());
        Ok(S3Response::new(convert::with_checksums!(
            sums,
            CompleteMultipartUploadOutput {
                location: Some(format!("/{}/{}", input.bucket, input.key)),
                bucket: Some(input.bucket),
                key: Some(input.key),
                e_tag: Some(etag(&meta.etag)),
                checksum_type: convert::checksum_type(meta.checksum.as_ref()),
            }
        )))
    }

    pub(super) async fn op_abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> R<AbortMultipartUploadOutput> {
        let input = req.input;
        let key = Self::key(&input.key)?;
        let bucket = self.bucket(&input.bucket).await?;
        bucket
            .abort_multipart(&key, &input.upload_id)
            .await
            .map_err(store_error)?;
        Ok(S3Response::with_status(
            AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(super) async fn op_list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> R<ListMultipartUploadsOutput> {
        let input = req.input;
        let bucket = self.bucket(&input.bucket).await?;
        let url = convert::wants_url(input.encoding_type.as_ref())?;
        let enc = |s: &str| if url { convert::url_encode(s) } else { s.to_owned() };
        let max = convert::limit(input.max_uploads, "max-uploads")?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let uploads = bucket
            .list_multipart_uploads(&prefix)
            .await
            .map_err(store_error)?;
        // Markers apply by position in the store's order (key, then
        // initiation time), never by comparing upload ids: ids are random,
        // so an id comparison skips or repeats uploads of one key. S3:
        // key-marker alone resumes after every upload of that key;
        // with upload-id-marker, after that upload of the key. A marker id
        // no longer there (completed or aborted since) skips none of the
        // key's uploads: a paginator then repeats some, but misses none.
        let marker_found = !id_marker.is_empty()
            && uploads
                .iter()
                .any(|u| u.key.as_str() == key_marker && u.upload_id == id_marker);
        // Whether uploads of the key-marker's key are still being skipped.
        let mut skipping = id_marker.is_empty() || marker_found;
        let mut out = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut truncated = false;
        // The last entry returned: a key with its upload id, or a common
        // prefix (no id), which the next page resumes after as a whole.
        let mut last: Option<(String, Option<String>)> = None;
        for u in uploads {
            let k = u.key.as_str();
            if !key_marker.is_empty() {
                match k.cmp(key_marker.as_str()) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Equal if skipping => {
                        skipping = u.upload_id != id_marker;
                        continue;
                    }
                    _ => {}
                }
            }
            let group = delimiter.as_ref().and_then(|d| {
                k[prefix.len()..]
                    .find(d.as_str())
                    .map(|i| k[..prefix.len() + i + d.len()].to_owned())
            });
            // A prefix already returned, on this page or (as the marker)
            // on the one before.
            if let Some(g) = &group
                && (prefixes.last() == Some(g) || *g == key_marker)
            {
                continue;
            }
            if out.len() + prefixes.len() >= max {
                truncated = true;
                break;
            }
            last = Some(match &group {
                Some(g) => (g.clone(), None),
                None => (k.to_owned(), Some(u.upload_id.clone())),
            });
            match group {
                Some(g) => prefixes.push(g),
                None => out.push(MultipartUpload {
                    key: Some(enc(k)),
                    upload_id: Some(u.upload_id),
                    initiated: Some(timestamp(u.initiated)),
                    owner: Some(super::bucket::owner()),
                    initiator: Some(Initiator {
                        display_name: Some("chute".to_owned()),
                        id: Some("chute".to_owned()),
                    }),
                    storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                    ..Default::default()
                }),
            }
        }
        let (next_key, next_id) = match (truncated, last) {
            (true, Some((k, id))) => (Some(enc(&k)), id),
            _ => (None, None),
        };
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: Some(enc(&prefix)),
            delimiter: delimiter.as_deref().map(enc),
            key_marker: Some(enc(&key_marker)),
            upload_id_marker: Some(id_marker),
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            max_uploads: input.max_uploads.or(Some(1000)),
            is_truncated: Some(truncated),
            uploads: Some(out),
            common_prefixes: Some(
                prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(&p)),
                    })
                    .collect(),
            ),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}
