//! Bucket operations: CreateBucket, ListBuckets, HeadBucket, DeleteBucket,
//! GetBucketLocation. Buckets are directories of the fs store; there is one
//! owner (the endpoint) and one region (the configured one).

use super::convert::timestamp;
use super::{ChuteS3, R};
use crate::error::store_error;
use s3s::dto::*;
use s3s::{S3Request, S3Response};

/// The single owner every bucket and object reports.
pub(super) fn owner() -> Owner {
    Owner {
        display_name: Some("chute".to_owned()),
        id: Some("chute".to_owned()),
    }
}

impl ChuteS3 {
    pub(super) async fn op_create_bucket(&self, req: S3Request<CreateBucketInput>) -> R<CreateBucketOutput> {
        let name = Self::bucket_name(&req.input.bucket)?;
        self.ctx.store.create_bucket(&name).await.map_err(store_error)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", name.as_str())),
        }))
    }

    pub(super) async fn op_list_buckets(&self, req: S3Request<ListBucketsInput>) -> R<ListBucketsOutput> {
        let prefix = req.input.prefix.unwrap_or_default();
        let buckets = self.ctx.store.list_buckets().await.map_err(store_error)?;
        let buckets = buckets
            .into_iter()
            .filter(|b| b.name.as_str().starts_with(&prefix))
            .map(|b| Bucket {
                name: Some(b.name.as_str().to_owned()),
                creation_date: Some(timestamp(b.created)),
                bucket_region: Some(self.ctx.config.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            prefix: (!prefix.is_empty()).then_some(prefix),
            continuation_token: None,
        }))
    }

    pub(super) async fn op_head_bucket(&self, req: S3Request<HeadBucketInput>) -> R<HeadBucketOutput> {
        let name = Self::bucket_name(&req.input.bucket)?;
        self.ctx.store.head_bucket(&name).await.map_err(store_error)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.ctx.config.region.clone()),
            ..Default::default()
        }))
    }

    pub(super) async fn op_delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> R<DeleteBucketOutput> {
        let name = Self::bucket_name(&req.input.bucket)?;
        self.ctx.store.delete_bucket(&name).await.map_err(store_error)?;
        Ok(S3Response::with_status(
            DeleteBucketOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    pub(super) async fn op_get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> R<GetBucketLocationOutput> {
        let name = Self::bucket_name(&req.input.bucket)?;
        self.ctx.store.head_bucket(&name).await.map_err(store_error)?;
        // S3 reports us-east-1 as an empty constraint.
        let region = &self.ctx.config.region;
        let location_constraint =
            (region != "us-east-1").then(|| BucketLocationConstraint::from(region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
    }
}
