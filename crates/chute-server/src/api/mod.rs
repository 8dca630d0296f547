//! The native upload API under `/api` (DESIGN.md §7): JSON in, JSON out,
//! errors as `{"error": {"code", "message"}}`.
//!
//! `POST /api/uploads` takes a grant (bearer JWT, webhook, callback or the
//! development open grant) and answers with an upload token; every later
//! call on `/api/uploads/{id}` carries that token as
//! `Authorization: Bearer`.

mod derivatives;

pub use derivatives::{DerivativeStatus, DerivativesStatus};

use crate::app::AppState;
use crate::grants::{GrantRequest, bearer};
use crate::lifecycle::{ApiError, CreateRequest, Created, PromoteRequest, UploadClaims, UploadMethod};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// The largest JSON body the API reads.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// The `/api` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/uploads", post(create))
        .route("/api/uploads/{id}", get(status).delete(abort))
        .route("/api/uploads/{id}/parts", post(parts))
        .route("/api/uploads/{id}/complete", post(complete))
        .route("/api/receipts/verify", post(verify_receipt))
        .route("/api/objects/promote", post(promote))
        .route(
            "/api/objects/{receipt}/derivatives",
            get(derivatives::derivatives),
        )
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
}

/// A JSON body whose rejections use the API's error shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(e) => Err(json_rejection(&e)),
        }
    }
}

fn json_rejection(e: &JsonRejection) -> ApiError {
    let status = e.status();
    let code = match e {
        JsonRejection::MissingJsonContentType(_) => "need_json",
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        _ => "bad_json",
    };
    ApiError::new(status, code, e.body_text())
}

/// The verified upload token of a request.
pub struct UploadToken(pub UploadClaims);

impl FromRequestParts<AppState> for UploadToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?.ok_or_else(|| {
            ApiError::unauthorized("send the upload token from POST /api/uploads as `Authorization: Bearer`")
        })?;
        let id = parts.uri.path().split('/').nth(3).map(str::to_owned);
        Ok(Self(state.lifecycle.verify_upload(token, id.as_deref())?))
    }
}

async fn create(
    State(state): State<AppState>,
    parts: Parts,
    ApiJson(create): ApiJson<CreateRequest>,
) -> Result<Response, ApiError> {
    let created = create_upload(&state, &parts, create).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Resolves the grant for `req` and creates the upload under it: how both
/// `POST /api/uploads` and the Companion routes start an upload.
pub(crate) async fn create_upload(
    state: &AppState,
    parts: &Parts,
    req: CreateRequest,
) -> Result<Created, ApiError> {
    let grant_req = GrantRequest {
        filename: req.filename.clone(),
        size: req.size,
        content_type: req.content_type.clone().unwrap_or_default(),
    };
    let grant = state.grants.resolve(parts, &grant_req).await?;
    state.lifecycle.create(grant, req).await
}

async fn status(
    State(state): State<AppState>,
    UploadToken(claims): UploadToken,
) -> Result<Response, ApiError> {
    let parts = if claims.method == UploadMethod::Multipart {
        match state.lifecycle.stored_parts(&claims).await {
            Ok(parts) => Some(parts),
            Err(e) if e.status == StatusCode::NOT_FOUND => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let uploaded = match &parts {
        Some(_) => false,
        None => state.lifecycle.object_exists(&claims).await?,
    };
    let state_name = match (&parts, uploaded) {
        (Some(_), _) => "uploading",
        (None, true) => "uploaded",
        (None, false) if claims.method == UploadMethod::Multipart => "gone",
        (None, false) => "pending",
    };
    let parts_json: Vec<serde_json::Value> = parts
        .unwrap_or_default()
        .iter()
        .map(|p| serde_json::json!({"number": p.part_number, "size": p.size, "etag": p.etag.trim_matches('"')}))
        .collect();
    Ok(Json(serde_json::json!({
        "id": claims.sub,
        "key": claims.key,
        "method": claims.method,
        "state": state_name,
        "size": claims.size,
        "type": claims.content_type,
        "filename": claims.filename,
        "part_size": claims.part_size,
        "part_count": (claims.method == UploadMethod::Multipart).then(|| claims.part_count()),
        "parts": parts_json,
        "expires_at": crate::lifecycle::rfc3339(claims.exp),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartsRequest {
    parts: Vec<u32>,
    #[serde(default)]
    checksums: BTreeMap<u32, String>,
}

async fn parts(
    State(state): State<AppState>,
    UploadToken(claims): UploadToken,
    ApiJson(req): ApiJson<PartsRequest>,
) -> Result<Response, ApiError> {
    let urls = state
        .lifecycle
        .part_urls_with_checksums(&claims, &req.parts, &req.checksums)?;
    Ok(Json(serde_json::json!({ "parts": urls })).into_response())
}

async fn complete(
    State(state): State<AppState>,
    UploadToken(claims): UploadToken,
) -> Result<Response, ApiError> {
    let done = state.lifecycle.complete(&claims).await?;
    Ok(Json(done).into_response())
}

async fn abort(
    State(state): State<AppState>,
    UploadToken(claims): UploadToken,
) -> Result<Response, ApiError> {
    state.lifecycle.abort(&claims).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    receipt: String,
}

async fn verify_receipt(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    let claims = state.lifecycle.verify_receipt(&req.receipt)?;
    Ok(Json(serde_json::json!({"valid": true, "receipt": claims})).into_response())
}

async fn promote(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PromoteRequest>,
) -> Result<Response, ApiError> {
    let done = state.lifecycle.promote(&req).await?;
    Ok(Json(done).into_response())
}
