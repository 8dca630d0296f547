//! `POST /api/stream`: a `multipart/form-data` form of files and plain
//! fields, parsed by multer over a body under a [`FormGuard`] (shared
//! with POST Object: multer reads ahead while data is ready, and buffers
//! a part's headers, and anything before the first boundary, without
//! bound; the guard stops pulling the body past the form's credit plus
//! an allowance, and the form is refused only if multer then waits for
//! bytes, see [`step`]). A part with a `filename` is a file; the others
//! are fields, answered back in `fields`.

use super::pending::Pending;
use super::{StreamResponse, body_failed};
use crate::app::AppState;
use crate::grants::GrantRequest;
use crate::lifecycle::ApiError;
use crate::pace::{MIN_BODY_RATE, PacedBody};
use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chute_core::Grant;
use chute_s3::post_object::{FormGuard, Refused};
use futures::StreamExt as _;

/// The most body bytes pulled from the socket in one poll.
const POLL_BUDGET: usize = 256 * 1024;
/// Bytes the part being read may spend on its boundary and headers
/// (parts read before are paid for at their size, [`header_bytes`]).
const PART_OVERHEAD: u64 = 8 * 1024;
/// Bytes read but not yet handed out as field data, beyond the parts'
/// allowances: multer's read-ahead (one poll budget) and a margin.
const READ_AHEAD: u64 = 2 * POLL_BUDGET as u64;

pub(super) async fn post_form(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let (boundary, grant) = match begin(&state, &parts).await {
        Ok(begun) => begun,
        Err(e) => return Err(super::refuse_unread(&parts.headers, body, e).await),
    };
    let body = Body::new(PacedBody::new(
        body,
        state.stream.settings.body_idle_timeout,
        MIN_BODY_RATE,
    ))
    .into_data_stream()
    .map(|r| r.map_err(axum::Error::into_inner));
    let (guard, body) = FormGuard::new(body, POLL_BUDGET, PART_OVERHEAD + READ_AHEAD);
    let mut multipart = multer::Multipart::new(body, boundary.clone());
    let mut pending = Pending::new(state.lifecycle.clone(), state.stream.clone());
    let mut fields = std::collections::BTreeMap::new();
    let form = Form {
        guard: &guard,
        boundary_len: boundary.len() as u64,
    };
    let read = read_form(&state, grant, &mut multipart, &mut pending, form, &mut fields).await;
    if let Err(e) = read {
        pending.undo(&e).await;
        drop(multipart);
        guard.drain().await;
        return Err(e);
    }
    let files = pending.finish().await?;
    Ok((StatusCode::CREATED, Json(StreamResponse { files, fields })).into_response())
}

/// Everything before the body: the content type, its boundary, the grant.
async fn begin(state: &AppState, parts: &Parts) -> Result<(String, Grant), ApiError> {
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "multipart/form-data" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "need_multipart",
            "POST /api/stream takes multipart/form-data; send a raw body with PUT /api/stream/{filename}",
        ));
    }
    let boundary = multer::parse_boundary(&content_type).map_err(|_| {
        ApiError::bad_request(
            "no_boundary",
            "the multipart/form-data Content-Type has no boundary",
        )
    })?;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let grant_req = GrantRequest {
        filename: String::new(),
        size: declared.unwrap_or(0),
        content_type: essence,
    };
    let grant = state.grants.resolve(parts, &grant_req).await?;
    Ok((boundary, grant))
}

/// Reads every part: files into the store, fields into `fields`.
async fn read_form(
    state: &AppState,
    grant: Grant,
    multipart: &mut multer::Multipart<'static>,
    pending: &mut Pending,
    Form { guard, boundary_len }: Form<'_>,
    fields: &mut std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<(), ApiError> {
    let settings = &state.stream.settings;
    let mut field_count = 0usize;
    let mut parts = 0u64;
    while let Some(mut field) = step(guard, multipart.next_field()).await? {
        parts += 1;
        // The part's boundary and headers are paid for at what they
        // take (about), not at the allowance each part gets while its
        // headers are read: tiny parts cannot bank that allowance for
        // one huge header later.
        guard.credit(header_bytes(&field, boundary_len));
        let name = field.name().unwrap_or_default().to_owned();
        match field.file_name().map(str::to_owned) {
            // A browser sends a file input left empty as a part with an
            // empty filename and no bytes: no file, but it counts as a
            // field, so the number of parts stays bounded.
            Some(original) if original.is_empty() => {
                field_count += 1;
                if field_count > settings.max_fields {
                    return Err(too_many_fields(settings.max_fields));
                }
                while let Some(chunk) = step(guard, field.chunk()).await? {
                    if !chunk.is_empty() {
                        return Err(ApiError::bad_request(
                            "bad_filename",
                            format!("file field {name:?} has content but an empty filename"),
                        ));
                    }
                }
            }
            Some(original) => {
                if pending.files.len() >= settings.max_files {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_many_files",
                        format!("a form may have at most {} files", settings.max_files),
                    ));
                }
                let content_type = field.content_type().map(ToString::to_string);
                let upload = state
                    .lifecycle
                    .begin_server_upload(grant.clone(), &original, content_type.as_deref(), None)
                    .await?;
                pending.add(upload, name, original).await?;
                let index = pending.files.len() - 1;
                let mut data = futures::stream::poll_fn(|cx| {
                    guard
                        .poll(cx, |cx| field.poll_next_unpin(cx))
                        .map(|polled| match polled {
                            Ok(Some(Ok(chunk))) => {
                                guard.credit(chunk.len() as u64);
                                Some(Ok(chunk))
                            }
                            Ok(Some(Err(e))) => Some(Err(multipart_error(&e))),
                            Ok(None) => None,
                            Err(Refused) => Some(Err(headers_too_large())),
                        })
                });
                pending.write(index, None, &mut data).await?;
            }
            None => {
                field_count += 1;
                if field_count > settings.max_fields {
                    return Err(too_many_fields(settings.max_fields));
                }
                let mut value = Vec::new();
                while let Some(chunk) = step(guard, field.chunk()).await? {
                    guard.credit(chunk.len() as u64);
                    if value.len() + chunk.len() > settings.max_field_bytes {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "field_too_large",
                            format!("field {name:?} is over {} bytes", settings.max_field_bytes),
                        ));
                    }
                    value.extend_from_slice(&chunk);
                }
                let value = String::from_utf8(value).map_err(|_| {
                    ApiError::bad_request("bad_field", format!("field {name:?} is not UTF-8"))
                })?;
                add_field(fields, name, value);
            }
        }
    }
    if parts == 0 {
        return Err(ApiError::bad_request("empty_form", "the form has no parts"));
    }
    Ok(())
}

/// What [`read_form`] credits the form's guard with.
#[derive(Clone, Copy)]
struct Form<'a> {
    /// The guard over the form's body.
    guard: &'a FormGuard,
    /// The length of the form's boundary.
    boundary_len: u64,
}

/// Slack per part over [`header_bytes`]' estimate (optional spaces).
const HEADER_SLACK: u64 = 64;

/// About the bytes `field`'s delimiter and headers took in the body.
fn header_bytes(field: &multer::Field<'_>, boundary_len: u64) -> u64 {
    let headers: u64 = field
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().len() + value.len() + 4) as u64)
        .sum();
    boundary_len + 6 + headers + 2 + HEADER_SLACK
}

fn too_many_fields(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_fields",
        format!("a form may have at most {max} plain fields (empty file inputs included)"),
    )
}

/// Adds a field; a name sent again turns its value into an array.
fn add_field(
    fields: &mut std::collections::BTreeMap<String, serde_json::Value>,
    name: String,
    value: String,
) {
    use serde_json::Value;
    match fields.get_mut(&name) {
        None => {
            fields.insert(name, Value::String(value));
        }
        Some(Value::Array(values)) => values.push(Value::String(value)),
        Some(first) => {
            let first = first.take();
            fields.insert(name, Value::Array(vec![first, Value::String(value)]));
        }
    }
}

/// Runs one multer step (`next_field`, `chunk`) under the guard: a form
/// that spends too many bytes outside field data is refused.
async fn step<F, T>(guard: &FormGuard, fut: F) -> Result<T, ApiError>
where
    F: std::future::Future<Output = Result<T, multer::Error>>,
{
    let out = guard.step(fut).await.map_err(|Refused| headers_too_large())?;
    out.map_err(|e| multipart_error(&e))
}

/// The answer for a form that spends too many bytes outside field data.
fn headers_too_large() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "part_headers_too_large",
        "a part's headers (or the bytes before the first boundary) are too large",
    )
}

/// The answer for a multer error.
fn multipart_error(err: &multer::Error) -> ApiError {
    if let multer::Error::StreamReadFailed(inner) = err {
        return body_failed(inner.as_ref());
    }
    ApiError::bad_request(
        "malformed_multipart",
        format!("the form is not valid multipart/form-data: {err}"),
    )
}
