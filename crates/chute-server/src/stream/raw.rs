//! `PUT /api/stream/{filename}`: the request body is the file (the
//! ajax-uploader style). Name from the path, type from `Content-Type`,
//! size from `Content-Length` when present (checked before the body is
//! read), otherwise counted while it streams.

use super::pending::Pending;
use super::{StreamResponse, body_failed, drain, refuse_unread};
use crate::app::AppState;
use crate::grants::GrantRequest;
use crate::lifecycle::ApiError;
use crate::pace::{MIN_BODY_RATE, PacedBody};
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;

pub(super) async fn put_raw(
    State(state): State<AppState>,
    filename: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let filename = match filename {
        Ok(Path(name)) => name,
        Err(e) => {
            let err = ApiError::bad_request(
                "bad_filename",
                format!("the file name in the path is not UTF-8 text: {}", e.body_text()),
            );
            return Err(refuse_unread(&parts.headers, body, err).await);
        }
    };
    let (mut pending, declared) = match begin(&state, &parts, &filename).await {
        Ok(begun) => begun,
        Err(e) => return Err(refuse_unread(&parts.headers, body, e).await),
    };
    let timeout = state.stream.settings.body_idle_timeout;
    let mut body = Body::new(PacedBody::new(body, timeout, MIN_BODY_RATE))
        .into_data_stream()
        .map(|r| r.map_err(|e| body_failed(&e)));
    let written = pending.write(0, declared, &mut body).await;
    if let Err(e) = written {
        pending.undo(&e).await;
        drain(&mut body).await;
        return Err(e);
    }
    let files = pending.finish().await?;
    let response = StreamResponse {
        files,
        ..StreamResponse::default()
    };
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

/// Everything before the body: headers, grant, the lifecycle's upload.
/// Refused here, before a byte of the body is read: hyper sends no
/// `100 Continue`, so a client that asked for one sends nothing.
async fn begin(state: &AppState, parts: &Parts, filename: &str) -> Result<(Pending, Option<u64>), ApiError> {
    let content_type = match parts.headers.get(header::CONTENT_TYPE) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("bad_type", "Content-Type is not ASCII"))?
                .to_owned(),
        ),
    };
    let declared = match parts.headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("bad_length", "Content-Length is not a number"))?,
        ),
    };
    let grant_req = GrantRequest {
        filename: filename.to_owned(),
        size: declared.unwrap_or(0),
        content_type: content_type.clone().unwrap_or_default(),
    };
    let grant = state.grants.resolve(parts, &grant_req).await?;
    let lifecycle = state.lifecycle.clone();
    let upload = lifecycle
        .begin_server_upload(grant, filename, content_type.as_deref(), declared)
        .await?;
    let mut pending = Pending::new(lifecycle, state.stream.clone());
    pending.add(upload, "file".into(), filename.to_owned()).await?;
    Ok((pending, declared))
}
