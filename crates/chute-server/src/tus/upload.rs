//! `HEAD`, `PATCH` and `DELETE /files/{id}`, and completion: once the
//! offset reaches the length the parts are joined into the object, the
//! lifecycle checks it and issues the receipt (`Chute-Receipt`), and the
//! upload is marked done. A rejected object (422) leaves nothing behind.

use super::{RECEIPT_HEADER, Tus, TusError, expired, header_str, held, http_date, reply, ticket};
use crate::app::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use chute_tus::headers::{self, parse_checksum};
use chute_tus::{
    Append, ConcatRole, LeaseWatch, Peek, Progress, Status, UploadGuard, UploadInfo, WriteError,
};
use futures::Stream;

/// The info of upload `id`, expired or not: 404 when there is none.
async fn read_info(tus: &Tus, id: &str) -> Result<UploadInfo, TusError> {
    tus.store
        .info(id)
        .await
        .map_err(|e| TusError::store("reading the upload", &e))?
        .ok_or_else(|| TusError::new(StatusCode::NOT_FOUND, "no such upload"))
}

/// The info of upload `id`: 404 when there is none, 410 once expired.
pub(super) async fn load(tus: &Tus, id: &str) -> Result<UploadInfo, TusError> {
    let info = read_info(tus, id).await?;
    if expired(&info) {
        return Err(TusError::new(StatusCode::GONE, "the upload has expired"));
    }
    Ok(info)
}

/// Where an upload stands, without reading its tail (no lock needed).
async fn peek(tus: &Tus, info: &UploadInfo) -> Result<Peek, TusError> {
    tus.store
        .peek(info)
        .await
        .map_err(|e| TusError::store("reading the upload's progress", &e))
}

async fn status(tus: &Tus, info: &UploadInfo) -> Result<Status, TusError> {
    tus.store
        .status(info)
        .await
        .map_err(|e| TusError::store("reading the upload's progress", &e))
}

/// The headers describing an upload, for HEAD and the end of a PATCH.
fn describe(info: &UploadInfo, status: &Peek) -> Vec<(&'static str, String)> {
    let mut h = vec![("upload-expires", http_date(info.expires_at))];
    if !info.metadata.is_empty() {
        h.push(("upload-metadata", info.metadata.clone()));
    }
    match &info.concat {
        Some(ConcatRole::Partial) => h.push(("upload-concat", "partial".into())),
        Some(ConcatRole::Final(ids)) => h.push((
            "upload-concat",
            format!(
                "final;{}",
                ids.iter()
                    .map(|id| format!("{}{id}", super::BASE_PATH))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        )),
        None => {}
    }
    match status {
        Peek::Open(p) => {
            // tus: no offset for a final upload that is not complete.
            if !matches!(info.concat, Some(ConcatRole::Final(_))) {
                h.push(("upload-offset", p.offset(&info.plan).to_string()));
            }
            match p.length {
                Some(len) => h.push(("upload-length", len.to_string())),
                None => h.push(("upload-defer-length", "1".into())),
            }
        }
        Peek::Done(done) => {
            let size = done.get("size").and_then(serde_json::Value::as_u64).unwrap_or(0);
            h.push(("upload-offset", size.to_string()));
            h.push(("upload-length", size.to_string()));
            if let Some(r) = done.get("receipt").and_then(serde_json::Value::as_str) {
                h.push((RECEIPT_HEADER, r.to_owned()));
            }
        }
    }
    h
}

/// `HEAD /files/{id}` (also GET, with no body: tus has no download).
pub(super) async fn head(state: &AppState, tus: &Tus, id: &str, _get: bool) -> Result<Response, TusError> {
    let info = load(tus, id).await?;
    let mut status = peek(tus, &info).await?;
    if let Peek::Open(p) = &status
        && p.length == Some(p.offset(&info.plan))
    {
        // All bytes are in but completion failed (a store error or a
        // crash after the last PATCH): finish now, so a client that only
        // checks the offset still gets its receipt.
        let guard = tus.lock(id, "the upload is busy; retry").await?;
        let finished = finish_stalled(state, tus, &info, &guard).await;
        guard.release().await;
        status = finished?;
    }
    Ok(reply(StatusCode::OK, describe(&info, &status)))
}

/// Completes an upload whose bytes are all in (under its lock).
async fn finish_stalled(
    state: &AppState,
    tus: &Tus,
    info: &UploadInfo,
    guard: &UploadGuard,
) -> Result<Peek, TusError> {
    Ok(match self::status(tus, info).await? {
        Status::Open(p) if p.length == Some(p.offset(&info.plan)) => {
            let headers = finish(state, tus, info, &p, std::slice::from_ref(guard)).await?;
            let receipt = headers
                .into_iter()
                .find(|(n, _)| *n == RECEIPT_HEADER)
                .map(|(_, v)| v);
            let size = p.offset(&info.plan);
            Peek::Done(serde_json::json!({"size": size, "receipt": receipt}))
        }
        Status::Done(done) => Peek::Done(done),
        Status::Open(_) => peek(tus, info).await?,
    })
}

/// `PATCH /files/{id}`.
pub(super) async fn patch(
    state: &AppState,
    tus: &Tus,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, TusError> {
    let content_type = header_str(headers, "content-type").unwrap_or("");
    if !content_type
        .trim()
        .eq_ignore_ascii_case("application/offset+octet-stream")
    {
        return Err(TusError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "PATCH needs Content-Type: application/offset+octet-stream",
        ));
    }
    let offset = headers::parse_u64(
        "Upload-Offset",
        header_str(headers, "upload-offset")
            .ok_or_else(|| TusError::new(StatusCode::BAD_REQUEST, "send Upload-Offset"))?,
    )?;
    let guard = tus
        .lock(id, "another request is writing this upload; retry")
        .await?;
    let out = patch_locked(state, tus, id, offset, headers, body, &guard).await;
    guard.release().await;
    out
}

/// `PATCH /files/{id}` once its lock is held.
async fn patch_locked(
    state: &AppState,
    tus: &Tus,
    id: &str,
    offset: u64,
    headers: &HeaderMap,
    body: Body,
    guard: &UploadGuard,
) -> Result<Response, TusError> {
    let info = load(tus, id).await?;
    if matches!(info.concat, Some(ConcatRole::Final(_))) {
        return Err(TusError::new(
            StatusCode::FORBIDDEN,
            "a final upload takes no PATCH",
        ));
    }
    let mut progress = match status(tus, &info).await? {
        Status::Open(p) => p,
        Status::Done(done) => {
            let d = describe(&info, &Peek::Done(done));
            let size = d
                .iter()
                .find(|(n, _)| *n == "upload-offset")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            if offset.to_string() == size && body_is_empty(headers) {
                return Ok(reply(StatusCode::NO_CONTENT, d));
            }
            return Err(
                TusError::new(StatusCode::CONFLICT, "the upload is complete").header("upload-offset", size)
            );
        }
    };
    let current = progress.offset(&info.plan);
    if offset != current {
        return Err(TusError::new(
            StatusCode::CONFLICT,
            format!("Upload-Offset is {offset} but the upload is at {current}"),
        )
        .header("upload-offset", current.to_string()));
    }
    if let Some(declared) = header_str(headers, "upload-length") {
        let declared = headers::parse_u64("Upload-Length", declared)?;
        match progress.length {
            Some(len) if len != declared => {
                return Err(TusError::new(
                    StatusCode::BAD_REQUEST,
                    "Upload-Length cannot change",
                ));
            }
            Some(_) => {}
            None => {
                if declared < current {
                    return Err(TusError::new(
                        StatusCode::BAD_REQUEST,
                        "Upload-Length is below the offset",
                    ));
                }
                let upload = ticket(&info)?;
                state.lifecycle.check_server_size(&upload.grant, declared)?;
                if declared > info.plan.capacity() {
                    return Err(TusError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Upload-Length is too large",
                    ));
                }
                held(std::slice::from_ref(guard))?;
                tus.store
                    .set_length(&info, declared)
                    .await
                    .map_err(|e| TusError::store("recording the length", &e))?;
                progress.length = Some(declared);
            }
        }
    }
    let progress = write_body(
        state,
        tus,
        &info,
        progress,
        headers,
        super::body_stream(body),
        guard.watch(),
    )
    .await?;
    let offset = progress.offset(&info.plan);
    let mut out = vec![
        ("upload-offset", offset.to_string()),
        ("upload-expires", http_date(info.expires_at)),
    ];
    if progress.length == Some(offset) {
        out.extend(finish(state, tus, &info, &progress, std::slice::from_ref(guard)).await?);
    }
    Ok(reply(StatusCode::NO_CONTENT, out))
}

fn body_is_empty(headers: &HeaderMap) -> bool {
    header_str(headers, "content-length").is_none_or(|l| l.trim() == "0")
}

/// Appends a request body (the caller holds the lock, whose store lease
/// is `lease`, and checked the offset): refuses up front what
/// `Content-Length` says would pass the length or the grant, then streams.
pub(super) async fn write_body<S, E>(
    state: &AppState,
    tus: &Tus,
    info: &UploadInfo,
    progress: Progress,
    headers: &HeaderMap,
    body: S,
    lease: Option<LeaseWatch>,
) -> Result<Progress, TusError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    let upload = ticket(info)?;
    let grant_limit = state.lifecycle.server_upload_limit(&upload.grant);
    let limit = progress
        .length
        .unwrap_or(grant_limit)
        .min(grant_limit)
        .min(info.plan.capacity());
    let offset = progress.offset(&info.plan);
    if let Some(len) = header_str(headers, "content-length") {
        let len = headers::parse_u64("Content-Length", len)?;
        if offset.saturating_add(len) > limit {
            return Err(TusError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body would take the upload past {limit} bytes"),
            ));
        }
    }
    let checksum = header_str(headers, "upload-checksum")
        .map(parse_checksum)
        .transpose()?;
    match tus
        .store
        .append(
            info,
            progress,
            body,
            Append {
                limit,
                checksum,
                parts_in_flight: tus.settings.parts_in_flight,
                lease,
            },
        )
        .await
    {
        Ok(p) => Ok(p),
        Err(WriteError::ChecksumMismatch) => Err(TusError::new(
            StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
            "checksum mismatch: the body does not match Upload-Checksum; nothing of it was kept",
        )),
        Err(WriteError::TooLong { limit }) => Err(TusError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body would take the upload past {limit} bytes"),
        )),
        Err(WriteError::Interrupted(why)) => {
            tracing::info!(upload = %info.id, reason = %why, "a tus PATCH body broke off; kept what arrived");
            Err(TusError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body broke off: {why}"),
            ))
        }
        Err(WriteError::Store(e)) => Err(TusError::store("storing the body", &e)),
        Err(WriteError::LeaseLost(e)) => Err(super::lease_lost(e)),
    }
}

/// Completes an upload whose offset reached its length: joins the parts,
/// runs the lifecycle's checks and issues the receipt (none for a partial
/// upload), then marks it done. Returns the headers to add. `guards` are
/// the locks the caller holds, checked before each step that commits.
pub(super) async fn finish(
    state: &AppState,
    tus: &Tus,
    info: &UploadInfo,
    progress: &Progress,
    guards: &[UploadGuard],
) -> Result<Vec<(&'static str, String)>, TusError> {
    // The upload may have expired (and the reaper removed its state)
    // while the body arrived: no receipt then.
    load(tus, &info.id).await?;
    held(guards)?;
    let upload = ticket(info)?;
    let size = tus
        .store
        .assemble(info, progress)
        .await
        .map_err(|e| TusError::store("joining the parts", &e))?;
    let done = if info.concat == Some(ConcatRole::Partial) {
        serde_json::json!({"size": size})
    } else {
        match state.lifecycle.finish_server_upload(&upload, size, None).await {
            Ok(completed) => serde_json::json!({"size": size, "receipt": completed.receipt}),
            Err(e) => {
                if e.status == StatusCode::UNPROCESSABLE_ENTITY {
                    // The lifecycle deleted the object; drop the state too.
                    if let Err(err) = tus.store.remove(info, false).await {
                        tracing::warn!(upload = %info.id, error = %err, "could not remove a rejected upload");
                    }
                    state.lifecycle.release_server_upload(&upload).await;
                }
                return Err(e.into());
            }
        }
    };
    held(guards)?;
    tus.store
        .mark_done(info, &done)
        .await
        .map_err(|e| TusError::store("recording the completion", &e))?;
    let mut out = Vec::new();
    if let Some(r) = done.get("receipt").and_then(serde_json::Value::as_str) {
        out.push((RECEIPT_HEADER, r.to_owned()));
    }
    Ok(out)
}

/// `DELETE /files/{id}` (termination): removes parts, object and state;
/// of a completed upload only the state.
pub(super) async fn delete(state: &AppState, tus: &Tus, id: &str) -> Result<Response, TusError> {
    let guard = tus
        .lock(id, "another request is writing this upload; retry")
        .await?;
    let out = delete_locked(state, tus, id, &guard).await;
    guard.release().await;
    out
}

async fn delete_locked(
    state: &AppState,
    tus: &Tus,
    id: &str,
    guard: &UploadGuard,
) -> Result<Response, TusError> {
    let info = read_info(tus, id).await?;
    let upload = ticket(&info)?;
    // A completed upload's receipt names its object and its use of the
    // grant is spent: only the tus state goes. (A partial upload has no
    // receipt: it goes entirely.)
    let keep = info.concat != Some(ConcatRole::Partial) && matches!(peek(tus, &info).await?, Peek::Done(_));
    held(std::slice::from_ref(guard))?;
    tus.store
        .remove(&info, keep)
        .await
        .map_err(|e| TusError::store("removing the upload", &e))?;
    if !keep {
        state.lifecycle.release_server_upload(&upload).await;
    }
    Ok(reply(StatusCode::NO_CONTENT, Vec::new()))
}
