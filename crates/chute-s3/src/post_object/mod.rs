//! Browser form uploads: S3's POST Object, streamed.
//!
//! A browser posts `multipart/form-data` to `/<bucket>`: policy fields
//! first, the `file` part last. We read the fields (bounded), verify the
//! policy and its signature with [`chute_core::post_policy`] the moment the
//! file part starts, then stream the file into the store while enforcing
//! `content-length-range`, so a refused upload stores nothing and memory
//! stays bounded whatever the file size. s3s 0.14.1's own POST handling
//! buffers the body, applies a clock-skew rule and lacks `${filename}`,
//! hence this route. Fields after the file part are ignored, as in S3.

mod error;
mod form;
mod guard;
mod limits;
mod response;

pub use error::PostObjectError;
pub use form::{FIELD_OVERHEAD, FORM_OVERHEAD, FilePart, FormLimits, FormReader, POLL_BUDGET};
pub use guard::{DRAIN_LIMIT, DRAIN_TIME, FormGuard, GuardedBody, Refused, drain};
pub use limits::{ByteBudget, LimitedField, SizeLimitBreach};

use crate::S3Context;
use bytes::Bytes;
use chute_core::post_policy::{PostForm, VerifiedPost, verify_post_form};
use chute_core::{BucketName, Checksum, ObjectKey};
use chute_store::fs::FsBucket;
use chute_store::{ObjectHeaders, PutOptions, Store, StoreError};
use futures::StreamExt;
use http::{HeaderMap, Method, Request, Response, Uri, header};
use http_body_util::BodyExt;
use time::OffsetDateTime;

/// S3's own upper bound on one POST Object file.
pub const S3_MAX_POST_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// Whether a request is a browser POST Object: `POST /<bucket>` (path
/// style, no key) with a `multipart/form-data` body. A query string does
/// not change that: s3s would parse such a form as POST Object too, and
/// buffer its file before checking access.
pub fn is_post_object(method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    if method != Method::POST {
        return false;
    }
    let path = uri.path().trim_start_matches('/').trim_end_matches('/');
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    !path.is_empty() && !path.contains('/') && is_multipart
}

/// Handles one POST Object request, answering S3's success shapes or its
/// XML errors tagged with `request_id`.
pub async fn handle_post_object<B>(ctx: S3Context, req: Request<B>, request_id: &str) -> Response<s3s::Body>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bucket_path = req.uri().path().trim_matches('/').to_owned();
    match post_object(&ctx, &bucket_path, req).await {
        Ok(resp) => resp,
        Err(err) => {
            if err.is_server_fault() {
                tracing::error!(bucket = %bucket_path, %request_id, error = %err, "POST Object failed");
            } else {
                tracing::debug!(bucket = %bucket_path, %request_id, error = %err, "POST Object refused");
            }
            err.into_response(&format!("/{bucket_path}"), request_id)
        }
    }
}

async fn post_object<B>(
    ctx: &S3Context,
    bucket_path: &str,
    req: Request<B>,
) -> Result<Response<s3s::Body>, PostObjectError>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bucket_name =
        BucketName::parse(bucket_path).map_err(|e| PostObjectError::InvalidBucketName(e.to_string()))?;
    let bucket = ctx.store.bucket(&bucket_name).await?;
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or(PostObjectError::Malformed(
            "the Content-Type has no multipart boundary".into(),
        ))?;
    let max_file = ctx.config.max_post_object_size.min(S3_MAX_POST_SIZE);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let fields_cap = ctx.config.max_post_form_fields_bytes as u64;
    if declared.is_some_and(|len| {
        len > max_file
            .saturating_add(fields_cap)
            .saturating_add(FORM_OVERHEAD as u64)
    }) {
        return Err(PostObjectError::TooLarge { max: max_file });
    }

    let body = req.into_body().into_data_stream();
    let limits = FormLimits::new(ctx.config.max_post_form_fields_bytes);
    let mut reader = FormReader::new(body, boundary, limits);
    let result = store_form(ctx, &bucket, &bucket_name, max_file, &mut reader).await;
    if result.is_err() {
        // Read (and drop) a bounded remainder so a client still sending
        // can read the error instead of a connection reset.
        reader.drain().await;
    }
    result
}

/// Reads the fields, verifies the policy, and streams the file into the store.
async fn store_form(
    ctx: &S3Context,
    bucket: &FsBucket,
    bucket_name: &BucketName,
    max_file: u64,
    reader: &mut FormReader,
) -> Result<Response<s3s::Body>, PostObjectError> {
    let (fields, file) = reader.read_fields().await?;
    let form = PostForm {
        fields,
        filename: file.file_name().map(str::to_owned),
    };
    let verified = verify_post_form(
        &form,
        bucket_name.as_str(),
        &|access_key| ctx.config.secret_for(access_key),
        OffsetDateTime::now_utc(),
    )?;
    let key = ObjectKey::parse(&verified.key).map_err(|e| PostObjectError::InvalidKey(e.to_string()))?;
    let (min, max) = match verified.content_length_range {
        Some((min, max)) => (min, max.min(max_file)),
        None => (0, max_file),
    };
    let opts = put_options(&verified)?;
    response::check_redirect(&verified)?;
    let body = file.limited(min, max).boxed();
    let meta = match bucket.put(&key, body, opts).await {
        Ok(meta) => meta,
        Err(StoreError::Body(io)) => return Err(body_error(io, min, max)),
        Err(other) => return Err(other.into()),
    };
    Ok(response::success(&verified, bucket_name, &meta))
}

/// Maps the reason a streamed file stopped to the S3 error.
fn body_error(io: std::io::Error, min: u64, max: u64) -> PostObjectError {
    match io.get_ref().and_then(|e| e.downcast_ref::<SizeLimitBreach>()) {
        Some(SizeLimitBreach::TooLarge) => PostObjectError::TooLarge { max },
        Some(SizeLimitBreach::TooSmall) => PostObjectError::TooSmall { min },
        None if crate::error::is_body_timeout(&io) => PostObjectError::RequestTimeout,
        None => PostObjectError::Malformed(format!("the request body could not be read: {io}")),
    }
}

fn put_options(verified: &VerifiedPost) -> Result<PutOptions, PostObjectError> {
    let mut headers = ObjectHeaders {
        content_type: Some(
            verified
                .content_type
                .clone()
                .unwrap_or_else(|| "binary/octet-stream".into()),
        ),
        ..ObjectHeaders::default()
    };
    for (name, value) in &verified.headers {
        let slot = match name.to_ascii_lowercase().as_str() {
            "cache-control" => &mut headers.cache_control,
            "content-disposition" => &mut headers.content_disposition,
            "content-encoding" => &mut headers.content_encoding,
            "content-language" => &mut headers.content_language,
            "expires" => &mut headers.expires,
            _ => continue,
        };
        *slot = Some(value.clone());
    }
    let metadata: Vec<(String, String)> = verified.metadata.to_vec();
    let header_values = [
        &headers.content_type,
        &headers.cache_control,
        &headers.content_disposition,
        &headers.content_encoding,
        &headers.content_language,
        &headers.expires,
    ];
    for value in header_values
        .into_iter()
        .flatten()
        .chain(metadata.iter().map(|(_, v)| v))
    {
        // Stored values come back as response headers on GET and HEAD.
        if http::HeaderValue::from_str(value).is_err() {
            return Err(PostObjectError::InvalidField(format!(
                "{value:?} cannot be sent back as an HTTP header"
            )));
        }
    }
    let expected_checksum = match &verified.checksum {
        Some((algorithm, value)) => Some(
            Checksum::from_base64(*algorithm, value)
                .map_err(|e| PostObjectError::InvalidChecksum(e.to_string()))?,
        ),
        None => None,
    };
    Ok(PutOptions {
        headers,
        metadata: metadata.into_iter().collect(),
        expected_checksum,
        ..PutOptions::default()
    })
}
