//! Uppy Companion's S3 signing endpoints under `/s3/` (DESIGN.md §4), with
//! Companion's JSON shapes, so `@uppy/aws-s3` pointed at Chute uploads
//! straight to the store unchanged. Each route is a thin adapter over
//! [`Lifecycle`]; refusals use the API's `{"error": {"code", "message"}}`.
//!
//! What Chute adds to Companion's protocol:
//! - every call needs a grant (`Authorization: Bearer <grant>`, the
//!   webhook, the callback or the development open grant), and later calls
//!   must come under a grant for the same subject as the first;
//! - the `uploadId` Uppy carries is Chute's signed upload token, binding
//!   the key, the store's multipart upload id, the size and the grant. A
//!   `key` other than the token's, or a token that does not verify, gets
//!   403; nothing is kept in memory, so any instance serves any call;
//! - sizes are signed: Uppy sends no file size, so it comes as the `size`
//!   metadata field. POST forms and part URLs then bind exact lengths, and
//!   Uppy's default part size, max(5 MiB, ceil(size / 10,000)), is the
//!   lifecycle's;
//! - completion joins the parts the store holds (the client's list is only
//!   checked for shape) and returns a receipt next to `location`.
//!
//! Other metadata is not stored: Chute never signs fields the client chose.

use crate::api::ApiJson;
use crate::app::AppState;
use crate::grants::GrantRequest;
use crate::lifecycle::{ApiError, CreateRequest, Created, Lifecycle, UploadClaims, UploadMethod};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

/// The largest JSON body read: a completion naming 10,000 parts fits.
pub const MAX_COMPANION_BODY: usize = 1024 * 1024;

/// What to tell a client that sent no size.
const SIZE_HELP: &str = "send the file size as the `size` metadata field (Uppy does not send it): \
     uppy.on('file-added', (f) => uppy.setFileMeta(f.id, { size: f.size }))";

/// The `/s3/` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/s3/params", get(params))
        .route("/s3/multipart", post(create_multipart))
        .route("/s3/multipart/{upload_id}", get(list_parts).delete(abort))
        .route("/s3/multipart/{upload_id}/batch", get(sign_batch))
        .route("/s3/multipart/{upload_id}/complete", post(complete))
        .route("/s3/multipart/{upload_id}/{part_number}", get(sign_part))
        .layer(DefaultBodyLimit::max(MAX_COMPANION_BODY))
}

/// `GET /s3/params?filename=&type=&metadata[size]=`: a POST form.
async fn params(State(state): State<AppState>, parts: Parts) -> Result<Response, CompanionError> {
    let query = query_pairs(&parts)?;
    let filename = required(&query, "filename")?.to_owned();
    let content_type = first(&query, "type").map(str::to_owned);
    let size = match first(&query, "metadata[size]") {
        Some(s) => parse_size(s)?,
        None => return Err(ApiError::bad_request("size_required", SIZE_HELP).into()),
    };
    let created = create(&state, &parts, filename, content_type, size, UploadMethod::Post).await?;
    let expires = created
        .claims
        .as_ref()
        .map_or(0, |c| presign_seconds(&state.lifecycle, c));
    let Some(post) = created.post else {
        return Err(internal("the lifecycle answered a POST upload without a form").into());
    };
    Ok(Json(json!({
        "method": "POST",
        "url": post.url,
        "fields": post.fields,
        "headers": {},
        "expires": expires,
        // Uppy ignores these; a client wanting a receipt for a POST upload
        // calls POST /api/uploads/{id}/complete with the token.
        "id": created.id,
        "token": created.token,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    filename: String,
    #[serde(default, rename = "type")]
    content_type: Option<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
}

/// `POST /s3/multipart` `{filename, type, metadata}`: `{key, uploadId, bucket}`.
async fn create_multipart(
    State(state): State<AppState>,
    parts: Parts,
    body: Result<ApiJson<CreateBody>, ApiError>,
) -> Result<Response, CompanionError> {
    let ApiJson(body) = body?;
    let size = match body.metadata.get("size") {
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| ApiError::bad_request("bad_size", "size must be a whole number of bytes"))?,
        Some(Value::String(s)) => parse_size(s)?,
        Some(_) => return Err(ApiError::bad_request("bad_size", "size must be a number").into()),
        None => return Err(ApiError::bad_request("size_required", SIZE_HELP).into()),
    };
    let created = create(
        &state,
        &parts,
        body.filename,
        body.content_type,
        size,
        UploadMethod::Multipart,
    )
    .await?;
    Ok(Json(json!({
        "key": created.key,
        "uploadId": created.token,
        "bucket": created.bucket,
    }))
    .into_response())
}

/// `GET /s3/multipart/{uploadId}?key=`: the parts stored so far.
async fn list_parts(
    State(state): State<AppState>,
    NamedUpload(claims): NamedUpload,
) -> Result<Response, CompanionError> {
    let stored = state.lifecycle.stored_parts(&claims).await?;
    let listed: Vec<Value> = stored
        .iter()
        .map(|p| {
            json!({
                "PartNumber": p.part_number,
                "Size": p.size,
                "ETag": format!("\"{}\"", p.etag.trim_matches('"')),
                "LastModified": crate::lifecycle::rfc3339(p.last_modified.unix_timestamp()),
            })
        })
        .collect();
    Ok(Json(listed).into_response())
}

/// `GET /s3/multipart/{uploadId}/batch?key=&partNumbers=1,2`: part URLs
/// by part number.
async fn sign_batch(
    State(state): State<AppState>,
    NamedUpload(claims): NamedUpload,
    parts: Parts,
) -> Result<Response, CompanionError> {
    let query = query_pairs(&parts)?;
    let numbers = parse_part_numbers(required(&query, "partNumbers")?)?;
    let urls = state.lifecycle.part_urls(&claims, &numbers)?;
    let presigned: Map<String, Value> = urls
        .into_iter()
        .map(|u| (u.number.to_string(), Value::String(u.url)))
        .collect();
    Ok(Json(json!({ "presignedUrls": presigned })).into_response())
}

/// `GET /s3/multipart/{uploadId}/{partNumber}?key=`: `{url, expires}`.
async fn sign_part(
    State(state): State<AppState>,
    NamedUpload(claims): NamedUpload,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, CompanionError> {
    let (_, number) = path(params)?;
    let numbers = parse_part_numbers(&number)?;
    let url = state
        .lifecycle
        .part_urls(&claims, &numbers)?
        .into_iter()
        .next()
        .ok_or_else(|| internal("no part URL was signed"))?;
    let expires = presign_seconds(&state.lifecycle, &claims);
    Ok(Json(json!({ "url": url.url, "expires": expires })).into_response())
}

#[derive(Debug, Deserialize)]
struct CompleteBody {
    parts: Vec<ClientPart>,
}

/// A part as Uppy names it; checked for shape, never trusted.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // read only to refuse malformed bodies, as Companion does
struct ClientPart {
    #[serde(rename = "PartNumber")]
    part_number: u32,
    #[serde(rename = "ETag")]
    etag: String,
}

/// `POST /s3/multipart/{uploadId}/complete?key=`: joins the stored parts,
/// checks the object, and answers `{location, key, bucket, receipt}`.
async fn complete(
    State(state): State<AppState>,
    parts: Parts,
    upload_id: Result<Path<String>, PathRejection>,
    body: Result<ApiJson<CompleteBody>, ApiError>,
) -> Result<Response, CompanionError> {
    let ApiJson(body) = body?;
    if body.parts.len() > 10_000 {
        return Err(ApiError::bad_request("bad_parts", "an upload has at most 10000 parts").into());
    }
    let claims = upload(&state, &parts, &path(upload_id)?).await?;
    let done = state.lifecycle.complete(&claims).await?;
    Ok(Json(json!({
        "location": state.lifecycle.signer().object_url(&claims.key),
        "key": claims.key,
        "bucket": done.object.bucket,
        "receipt": done.receipt,
    }))
    .into_response())
}

/// `DELETE /s3/multipart/{uploadId}?key=`: aborts, answers `{}`.
async fn abort(
    State(state): State<AppState>,
    NamedUpload(claims): NamedUpload,
) -> Result<Response, CompanionError> {
    state.lifecycle.abort(&claims).await?;
    Ok(Json(json!({})).into_response())
}

/// An [`ApiError`] as the `/s3/` routes send it: the API's shape plus a
/// top-level `message`, which Uppy's Companion client shows its user.
#[derive(Debug)]
struct CompanionError(ApiError);

impl From<ApiError> for CompanionError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for CompanionError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {"code": self.0.code, "message": self.0.message},
            "message": self.0.message,
        });
        // Keep the status and headers (WWW-Authenticate, Retry-After).
        let (parts, _) = self.0.into_response().into_parts();
        Response::from_parts(parts, Body::from(body.to_string()))
    }
}

/// Creates an upload as `POST /api/uploads` does.
async fn create(
    state: &AppState,
    parts: &Parts,
    filename: String,
    content_type: Option<String>,
    size: u64,
    method: UploadMethod,
) -> Result<Created, ApiError> {
    let req = CreateRequest {
        filename,
        size,
        content_type,
        method: Some(method),
        part_size: None,
        checksum: None,
        part_checksum_algorithm: None,
    };
    crate::api::create_upload(state, parts, req).await
}

/// The multipart upload the `{upload_id}` of the path names, checked by
/// [`upload`]. (`complete` calls [`upload`] itself, after reading its body.)
struct NamedUpload(UploadClaims);

impl FromRequestParts<AppState> for NamedUpload {
    type Rejection = CompanionError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, CompanionError> {
        let params = Path::<Vec<(String, String)>>::from_request_parts(parts, state).await;
        let upload_id = path(params)?
            .into_iter()
            .find_map(|(name, value)| (name == "upload_id").then_some(value))
            .unwrap_or_default();
        Ok(Self(upload(state, parts, &upload_id).await?))
    }
}

/// The multipart upload a later call names: the grant is resolved first
/// (401 without one), then the `uploadId` must verify as an upload token
/// of this server, name the `key` given, and belong to the grant's subject
/// (403 otherwise).
async fn upload(state: &AppState, parts: &Parts, upload_id: &str) -> Result<UploadClaims, ApiError> {
    let query = query_pairs(parts)?;
    let key = required(&query, "key")?;
    let verified = state.lifecycle.verify_upload(upload_id, None);
    let grant_req = match &verified {
        Ok(c) => GrantRequest {
            filename: c.filename.clone(),
            size: c.size,
            content_type: c.content_type.clone(),
        },
        Err(_) => GrantRequest {
            filename: String::new(),
            size: 0,
            content_type: String::new(),
        },
    };
    let grant = state.grants.resolve(parts, &grant_req).await?;
    let claims = verified.map_err(|e| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            e.code,
            format!("uploadId is not an upload this server started: {}", e.message),
        )
    })?;
    if claims.key != key {
        return Err(ApiError::forbidden(
            "key_mismatch",
            "key is not the key of this upload",
        ));
    }
    if claims.grant.subject != grant.subject {
        return Err(ApiError::forbidden(
            "grant_mismatch",
            "this upload was started under a grant for another subject",
        ));
    }
    if claims.method != UploadMethod::Multipart {
        return Err(ApiError::bad_request(
            "not_multipart",
            "this upload is not a multipart upload",
        ));
    }
    Ok(claims)
}

/// Seconds the next presigned URL of `claims` stays valid.
fn presign_seconds(lifecycle: &Lifecycle, claims: &UploadClaims) -> u64 {
    let remaining = claims.exp - OffsetDateTime::now_utc().unix_timestamp();
    lifecycle
        .settings()
        .presign_ttl
        .as_secs()
        .min(u64::try_from(remaining).unwrap_or(0))
}

/// Comma-separated part numbers, each 1 to 10,000.
fn parse_part_numbers(s: &str) -> Result<Vec<u32>, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "bad_parts",
            format!("part numbers must be comma-separated numbers from 1 to 10000, not {s:?}"),
        )
    };
    s.split(',')
        .map(|n| {
            if n.is_empty() || n.len() > 5 || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            match n.parse::<u32>() {
                Ok(v) if (1..=10_000).contains(&v) => Ok(v),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// A byte count given as decimal digits.
fn parse_size(s: &str) -> Result<u64, ApiError> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            "bad_size",
            "size must be a whole number of bytes",
        ));
    }
    s.parse()
        .map_err(|_| ApiError::bad_request("bad_size", "size is too large"))
}

/// The request's query as decoded pairs, in order.
fn query_pairs(parts: &Parts) -> Result<Vec<(String, String)>, ApiError> {
    Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|Query(pairs)| pairs)
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn required<'a>(pairs: &'a [(String, String)], name: &'static str) -> Result<&'a str, ApiError> {
    match first(pairs, name) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{}_required", name.to_ascii_lowercase()),
            format!("the `{name}` query parameter is required"),
        )),
    }
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::bad_request("bad_path", e.body_text()))
}

fn internal(message: &str) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Signer;
    use chute_core::{BucketName, Credentials};

    #[test]
    fn part_numbers() {
        assert_eq!(parse_part_numbers("1,2,10000").unwrap(), vec![1, 2, 10_000]);
        for bad in [
            "",
            "0",
            "10001",
            "1,",
            ",1",
            "1,,2",
            "x",
            "1;2",
            " 1",
            "-1",
            "1.0",
            "99999999999",
        ] {
            assert!(parse_part_numbers(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("104857600").unwrap(), 100 << 20);
        for bad in ["", "-1", "1e6", "0x10", "99999999999999999999", "12 "] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn object_urls() {
        let creds = Credentials {
            access_key: "a".into(),
            secret_key: "s".into(),
        };
        let bucket = BucketName::parse("uploads").unwrap();
        let path = Signer::new(
            "http://127.0.0.1:9000".into(),
            bucket.clone(),
            "us-east-1".into(),
            true,
            creds.clone(),
        );
        assert_eq!(
            path.object_url("tmp/abc/a b+c.png"),
            "http://127.0.0.1:9000/uploads/tmp/abc/a%20b%2Bc.png"
        );
        let host = Signer::new(
            "https://s3.example.com".into(),
            bucket,
            "us-east-1".into(),
            false,
            creds,
        );
        assert_eq!(
            host.object_url("tmp/x/y.png"),
            "https://uploads.s3.example.com/tmp/x/y.png"
        );
    }
}
