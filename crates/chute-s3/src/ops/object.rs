//! Object operations: PutObject, GetObject (ranges), HeadObject,
//! DeleteObject, DeleteObjects. Bodies stream both ways; digests and
//! checksums are expectations the store checks before anything becomes
//! visible.

use super::convert::{
    self, ChecksumValues, checksum_request, checksum_type, content_md5, etag, request_body, response_body,
    timestamp,
};
use super::{ChuteS3, R};
use crate::error::{s3_err, store_error};
use chute_store::{ByteRange, ObjectMeta, PutOptions, Store as _};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

/// Refuses a version id other than `null`: buckets are unversioned.
pub(super) fn check_version(version_id: Option<&String>) -> S3Result<()> {
    match version_id.map(String::as_str) {
        None | Some("null") => Ok(()),
        Some(_) => Err(s3_err(
            S3ErrorCode::InvalidArgument,
            "Invalid version id specified",
        )),
    }
}

fn byte_range(range: Range) -> ByteRange {
    match range {
        Range::Int {
            first,
            last: Some(last),
        } => ByteRange::Inclusive { first, last },
        Range::Int { first, last: None } => ByteRange::From(first),
        Range::Suffix { length } => ByteRange::Suffix(length),
    }
}

fn checksum_enabled(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

/// The `If-Match` / `If-None-Match` checks S3 makes on GET and HEAD.
fn check_preconditions(
    meta: &ObjectMeta,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<()> {
    let ours = etag(&meta.etag);
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == ours.value(),
    };
    if let Some(c) = if_match
        && !matches(c)
    {
        return Err(s3_err(
            S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        ));
    }
    if let Some(c) = if_none_match
        && matches(c)
    {
        let mut e = s3_err(S3ErrorCode::NotModified, "Not Modified");
        e.set_status_code(http::StatusCode::NOT_MODIFIED);
        return Err(e);
    }
    Ok(())
}

impl ChuteS3 {
    pub(super) async fn op_put_object(&self, req: S3Request<PutObjectInput>) -> R<PutObjectOutput> {
        let input = req.input;
        let key = Self::key(&input.key)?;
        let bucket = self.bucket(&input.bucket).await?;
        if input.if_match.is_some() {
            return Err(convert::not_implemented("If-Match on PutObject"));
        }
        // S3 allows only `*` here: create the object only if it is missing.
        let if_none_match = match &input.if_none_match {
            None => false,
            Some(ETagCondition::Any) => true,
            Some(ETagCondition::ETag(_)) => {
                return Err(convert::not_implemented(
                    "If-None-Match with an ETag on PutObject",
                ));
            }
        };
        let values = convert::input_checksums!(input);
        let checks = checksum_request(&values, input.checksum_algorithm.as_ref(), &req.headers)?;
        let opts = PutOptions {
            headers: convert::object_headers!(input),
            metadata: convert::metadata(input.metadata.as_ref()),
            expected_len: convert::content_length(input.content_length)?,
            expected_md5: content_md5(input.content_md5.as_deref())?,
            expected_checksum: checks.expected,
            checksum_algorithm: checks.algorithm,
            if_none_match,
        };
        let body = request_body(input.body, checks.trailer.map(|a| (a, req.trailing_headers)));
        let meta = bucket.put(&key, body, opts).await.map_err(store_error)?;
        let sums = ChecksumValues::from_checksum(meta.checksum.as_ref());
        Ok(S3Response::new(convert::with_checksums!(
            sums,
            PutObjectOutput {
                e_tag: Some(etag(&meta.etag)),
                checksum_type: checksum_type(meta.checksum.as_ref()),
                size: i64::try_from(meta.size).ok(),
            }
        )))
    }

    pub(super) async fn op_get_object(&self, req: S3Request<GetObjectInput>) -> R<GetObjectOutput> {
        let input = req.input;
        let key = Self::key(&input.key)?;
        check_version(input.version_id.as_ref())?;
        if input.part_number.is_some() {
            return Err(convert::not_implemented("partNumber"));
        }
        let bucket = self.bucket(&input.bucket).await?;
        let range = input.range.map(byte_range);
        let got = bucket.get(&key, range).await.map_err(store_error)?;
        let meta = got.meta;
        check_preconditions(&meta, input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let len = got.range.end - got.range.start;
        let content_range = range.map(|_| {
            format!(
                "bytes {}-{}/{}",
                got.range.start,
                got.range.end.saturating_sub(1),
                meta.size
            )
        });
        // Like S3, a ranged read carries no whole-object checksum.
        let with_sums = checksum_enabled(input.checksum_mode.as_ref()) && content_range.is_none();
        let sums = if with_sums {
            ChecksumValues::from_checksum(meta.checksum.as_ref())
        } else {
            ChecksumValues::default()
        };
        let h = &meta.headers;
        let output = convert::with_checksums!(
            sums,
            GetObjectOutput {
                body: Some(response_body(got.body, len)),
                content_length: i64::try_from(len).ok(),
                content_range,
                accept_ranges: Some("bytes".to_owned()),
                e_tag: Some(etag(&meta.etag)),
                last_modified: Some(timestamp(meta.last_modified)),
                content_type: h.content_type.clone(),
                cache_control: h.cache_control.clone(),
                content_disposition: h.content_disposition.clone(),
                content_encoding: h.content_encoding.clone(),
                content_language: h.content_language.clone(),
                expires: convert::expires(h.expires.as_ref()),
                metadata: convert::metadata_out(&meta.metadata),
                checksum_type: with_sums.then(|| checksum_type(meta.checksum.as_ref())).flatten(),
                parts_count: meta.parts_count.and_then(|n| i32::try_from(n).ok()),
            }
        );
        Ok(S3Response::new(output))
    }

    pub(super) async fn op_head_object(&self, req: S3Request<HeadObjectInput>) -> R<HeadObjectOutput> {
        let input = req.input;
        let key = Self::key(&input.key)?;
        check_version(input.version_id.as_ref())?;
        if input.part_number.is_some() {
            return Err(convert::not_implemented("partNumber"));
        }
        let bucket = self.bucket(&input.bucket).await?;
        let meta = bucket.head(&key).await.map_err(store_error)?;
        check_preconditions(&meta, input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let sums = if checksum_enabled(input.checksum_mode.as_ref()) {
            ChecksumValues::from_checksum(meta.checksum.as_ref())
        } else {
            ChecksumValues::default()
        };
        let h = &meta.headers;
        Ok(S3Response::new(convert::with_checksums!(
            sums,
            HeadObjectOutput {
                content_length: i64::try_from(meta.size).ok(),
                accept_ranges: Some("bytes".to_owned()),
                e_tag: Some(etag(&meta.etag)),
                last_modified: Some(timestamp(meta.last_modified)),
                content_type: h.content_type.clone(),
                cache_control: h.cache_control.clone(),
                content_disposition: h.content_disposition.clone(),
                content_encoding: h.content_encoding.clone(),
                content_language: h.content_language.clone(),
                expires: convert::expires(h.expires.as_ref()),
                metadata: convert::metadata_out(&meta.metadata),
                checksum_type: checksum_enabled(input.checksum_mode.as_ref())
                    .then(|| checksum_type(meta.checksum.as_ref()))
                    .flatten(),
                parts_count: meta.parts_count.and_then(|n| i32::try_from(n).ok()),
            }
        )))
    }

    pub(super) async fn op_delete_object(&self, req: S3Request<DeleteObjectInput>) -> R<DeleteObjectOutput> {
        let input = req.input;
        let key = Self::key(&input.key)?;
        check_version(input.version_id.as_ref())?;
        let bucket = self.bucket(&input.bucket).await?;
        bucket.delete(&key).await.map_err(store_error)?;
        Ok(S3Response::with_status(
            DeleteObjectOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(super) async fn op_delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> R<DeleteObjectsOutput> {
        let input = req.input;
        let bucket = self.bucket(&input.bucket).await?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_err(
                S3ErrorCode::MalformedXML,
                "You may delete at most 1000 objects per request.",
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            let outcome = match (Self::key(&obj.key), check_version(obj.version_id.as_ref())) {
                (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                (Ok(key), Ok(())) => bucket.delete(&key).await.map_err(store_error),
            };
            match outcome {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(obj.key),
                    version_id: obj.version_id,
                    ..Default::default()
                }),
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    message: e.message().map(str::to_owned),
                    key: Some(obj.key),
                    version_id: obj.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!deleted.is_empty()).then_some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }
}
