//! [`ChuteS3`]: the s3s `S3` trait over the filesystem store, one file per
//! operation family. Every bucket name and object key from a request is
//! parsed into [`BucketName`]/[`ObjectKey`] here at the boundary; store
//! failures become S3 errors only through [`crate::error`]. Operations not
//! listed keep s3s's default `NotImplemented`.

mod bucket;
mod bucket_cors;
mod convert;
mod copy;
mod list;
mod multipart;
mod object;

use crate::S3Context;
use crate::error::{bucket_name_error, key_error, store_error};
use chute_core::{BucketName, ObjectKey};
use chute_store::fs::FsBucket;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

/// The S3 operations of the embedded store.
#[derive(Debug, Clone)]
pub struct ChuteS3 {
    ctx: S3Context,
}

impl ChuteS3 {
    /// The operations over `ctx`'s store.
    pub fn new(ctx: S3Context) -> Self {
        Self { ctx }
    }

    /// A bucket name from a request.
    fn bucket_name(raw: &str) -> S3Result<BucketName> {
        BucketName::parse(raw).map_err(|e| bucket_name_error(&e))
    }

    /// An object key from a request.
    fn key(raw: &str) -> S3Result<ObjectKey> {
        ObjectKey::parse(raw).map_err(|e| key_error(&e))
    }

    /// The named bucket's object store (`NoSuchBucket` if missing).
    async fn bucket(&self, raw: &str) -> S3Result<FsBucket> {
        let name = Self::bucket_name(raw)?;
        self.ctx.store.bucket(&name).await.map_err(store_error)
    }
}

type R<T> = S3Result<S3Response<T>>;

#[async_trait::async_trait]
impl S3 for ChuteS3 {
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> R<CreateBucketOutput> {
        self.op_create_bucket(req).await
    }

    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> R<ListBucketsOutput> {
        self.op_list_buckets(req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> R<HeadBucketOutput> {
        self.op_head_bucket(req).await
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> R<DeleteBucketOutput> {
        self.op_delete_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> R<GetBucketLocationOutput> {
        self.op_get_bucket_location(req).await
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> R<PutObjectOutput> {
        self.op_put_object(req).await
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> R<GetObjectOutput> {
        self.op_get_object(req).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> R<HeadObjectOutput> {
        self.op_head_object(req).await
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> R<DeleteObjectOutput> {
        self.op_delete_object(req).await
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> R<DeleteObjectsOutput> {
        self.op_delete_objects(req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> R<ListObjectsV2Output> {
        self.op_list_objects_v2(req).await
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> R<ListObjectsOutput> {
        self.op_list_objects(req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> R<ListObjectVersionsOutput> {
        self.op_list_object_versions(req).await
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> R<CopyObjectOutput> {
        self.op_copy_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> R<CreateMultipartUploadOutput> {
        self.op_create_multipart_upload(req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> R<UploadPartOutput> {
        self.op_upload_part(req).await
    }

    async fn upload_part_copy(&self, req: S3Request<UploadPartCopyInput>) -> R<UploadPartCopyOutput> {
        self.op_upload_part_copy(req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> R<ListPartsOutput> {
        self.op_list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> R<CompleteMultipartUploadOutput> {
        self.op_complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> R<AbortMultipartUploadOutput> {
        self.op_abort_multipart_upload(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> R<ListMultipartUploadsOutput> {
        self.op_list_multipart_uploads(req).await
    }

    async fn get_bucket_cors(&self, req: S3Request<GetBucketCorsInput>) -> R<GetBucketCorsOutput> {
        self.op_get_bucket_cors(req).await
    }

    async fn put_bucket_cors(&self, req: S3Request<PutBucketCorsInput>) -> R<PutBucketCorsOutput> {
        self.op_put_bucket_cors(req).await
    }

    async fn delete_bucket_cors(&self, req: S3Request<DeleteBucketCorsInput>) -> R<DeleteBucketCorsOutput> {
        self.op_delete_bucket_cors(req).await
    }
}
