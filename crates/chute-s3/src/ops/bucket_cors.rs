//! GetBucketCors, PutBucketCors, DeleteBucketCors: translate between the
//! S3 XML document and [`crate::cors::CorsConfig`], stored as JSON.

use super::{ChuteS3, R};
use crate::cors::{CorsConfig, CorsRule, load_cors, save_cors};
use crate::error::{s3_err, store_error};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response};

fn to_rule(r: CORSRule) -> CorsRule {
    CorsRule {
        allowed_origins: r.allowed_origins,
        allowed_methods: r.allowed_methods,
        allowed_headers: r.allowed_headers.unwrap_or_default(),
        expose_headers: r.expose_headers.unwrap_or_default(),
        max_age_seconds: r.max_age_seconds,
        id: r.id,
    }
}

fn from_rule(r: CorsRule) -> CORSRule {
    CORSRule {
        allowed_origins: r.allowed_origins,
        allowed_methods: r.allowed_methods,
        allowed_headers: (!r.allowed_headers.is_empty()).then_some(r.allowed_headers),
        expose_headers: (!r.expose_headers.is_empty()).then_some(r.expose_headers),
        max_age_seconds: r.max_age_seconds,
        id: r.id,
    }
}

impl ChuteS3 {
    pub(super) async fn op_get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> R<GetBucketCorsOutput> {
        let name = Self::bucket_name(&req.input.bucket)?;
        self.ctx.store.head_bucket(&name).await.map_err(store_error)?;
        let config = load_cors(&self.ctx.store, &name)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                s3_err(
                    S3ErrorCode::NoSuchCORSConfiguration,
                    "The CORS configuration does not exist",
                )
            })?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(config.rules.into_iter().map(from_rule).collect()),
        }))
    }

    pub(super) async fn op_put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> R<PutBucketCorsOutput> {
        let name = Self::bucket_name(&req.input.bucket)?;
        self.ctx.store.head_bucket(&name).await.map_err(store_error)?;
        let config = CorsConfig {
            rules: req
                .input
                .cors_configuration
                .cors_rules
                .into_iter()
                .map(to_rule)
                .collect(),
        };
        config
            .validate()
            .map_err(|m| s3_err(S3ErrorCode::InvalidRequest, m))?;
        save_cors(&self.ctx.store, &name, Some(&config))
            .await
            .map_err(store_error)?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    pub(super) async fn op_delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> R<DeleteBucketCorsOutput> {
        let name = Self::bucket_name(&req.input.bucket)?;
        self.ctx.store.head_bucket(&name).await.map_err(store_error)?;
        save_cors(&self.ctx.store, &name, None)
            .await
            .map_err(store_error)?;
        Ok(S3Response::with_status(
            DeleteBucketCorsOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }
}
