//! CopyObject within a bucket (the store's own copy) or across buckets
//! (streamed from one bucket into the other), with the COPY/REPLACE
//! metadata directive; plus the copy-source parsing UploadPartCopy shares.

use super::convert::{self, ChecksumValues, checksum_type, etag, timestamp};
use super::object::check_version;
use super::{ChuteS3, R};
use crate::error::{s3_err, store_error};
use chute_core::ObjectKey;
use chute_store::fs::FsBucket;
use chute_store::{CopyOptions, ObjectMeta, PutOptions, Store as _};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

/// The source of a copy: its bucket and key, already URL-decoded by s3s.
pub(super) struct Source {
    pub bucket: FsBucket,
    pub bucket_name: String,
    pub key: ObjectKey,
}

impl ChuteS3 {
    pub(super) async fn copy_source(&self, source: &CopySource) -> S3Result<Source> {
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = source
        else {
            return Err(convert::not_implemented("access point copy sources"));
        };
        check_version(version_id.as_deref().map(str::to_owned).as_ref())?;
        let key = Self::key(key)?;
        let fs_bucket = self.bucket(bucket).await?;
        Ok(Source {
            bucket: fs_bucket,
            bucket_name: bucket.to_string(),
            key,
        })
    }

    pub(super) async fn op_copy_object(&self, req: S3Request<CopyObjectInput>) -> R<CopyObjectOutput> {
        let input = req.input;
        let key = Self::key(&input.key)?;
        let dest = self.bucket(&input.bucket).await?;
        let src = self.copy_source(&input.copy_source).await?;
        let replace = match input.metadata_directive.as_ref().map(MetadataDirective::as_str) {
            None | Some(MetadataDirective::COPY) => false,
            Some(MetadataDirective::REPLACE) => true,
            Some(other) => {
                return Err(s3_err(
                    S3ErrorCode::InvalidArgument,
                    format!("Unknown metadata directive: {other}"),
                ));
            }
        };
        let checksum_algorithm = input
            .checksum_algorithm
            .as_ref()
            .map(|a| convert::parse_algorithm(a.as_str()))
            .transpose()?;
        let same_bucket = src.bucket_name == input.bucket;
        if same_bucket && src.key == key && !replace {
            return Err(s3_err(
                S3ErrorCode::InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
            ));
        }
        let replacement = replace.then(|| PutOptions {
            headers: convert::object_headers!(input),
            metadata: convert::metadata(input.metadata.as_ref()),
            checksum_algorithm,
            ..Default::default()
        });
        let meta = if same_bucket {
            let opts = replacement.map_or(CopyOptions::KeepMetadata, CopyOptions::ReplaceMetadata);
            src.bucket.copy(&src.key, &key, opts).await.map_err(store_error)?
        } else {
            copy_across(&src, &dest, &key, replacement).await?
        };
        let sums = ChecksumValues::from_checksum(meta.checksum.as_ref());
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(convert::with_checksums!(
                sums,
                CopyObjectResult {
                    e_tag: Some(etag(&meta.etag)),
                    last_modified: Some(timestamp(meta.last_modified)),
                    checksum_type: checksum_type(meta.checksum.as_ref()),
                }
            )),
            ..Default::default()
        }))
    }
}

/// Streams the source object into another bucket, keeping its headers,
/// metadata and checksum algorithm unless `replacement` is given.
async fn copy_across(
    src: &Source,
    dest: &FsBucket,
    key: &ObjectKey,
    replacement: Option<PutOptions>,
) -> S3Result<ObjectMeta> {
    let got = src.bucket.get(&src.key, None).await.map_err(store_error)?;
    let opts = replacement.unwrap_or_else(|| PutOptions {
        headers: got.meta.headers.clone(),
        metadata: got.meta.metadata.clone(),
        checksum_algorithm: got.meta.checksum.as_ref().map(|c| c.algorithm),
        ..Default::default()
    });
    let opts = PutOptions {
        expected_len: Some(got.meta.size),
        ..opts
    };
    dest.put(key, got.body, opts).await.map_err(store_error)
}
