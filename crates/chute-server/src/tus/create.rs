//! `POST /files/`: creation (with an upload in the body, with a deferred
//! length, as a partial upload) and concatenation of partial uploads into
//! a final one. The grant is resolved here, from the request's
//! `Authorization` (or the webhook/open grant), with the file name and
//! type from `Upload-Metadata` (`filename`/`name`, `filetype`/`type`).

use super::upload::{finish, load, write_body};
use super::{BASE_PATH, Tus, TusError, header_str, http_date, reply, ticket};
use crate::app::AppState;
use crate::grants::GrantRequest;
use crate::lifecycle::ServerUpload;
use axum::body::Body;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use chute_core::Grant;
use chute_store::ByteStream;
use chute_tus::headers::{self, Concat, encode_metadata, metadata_value, parse_metadata};
use chute_tus::{ConcatRole, PartPlan, Peek, Progress, UploadInfo};
use futures::StreamExt as _;

/// The name a file gets when `Upload-Metadata` names none.
const DEFAULT_FILENAME: &str = "upload";

/// What a creation request asks for.
struct Creation {
    length: Option<u64>,
    metadata: Vec<headers::MetadataPair>,
    concat: Option<Concat>,
}

fn parse(parts: &Parts) -> Result<Creation, TusError> {
    let h = &parts.headers;
    let length = header_str(h, "upload-length")
        .map(|v| headers::parse_u64("Upload-Length", v))
        .transpose()?;
    let deferred = header_str(h, "upload-defer-length")
        .map(headers::check_defer_length)
        .transpose()?
        .is_some();
    let metadata = match h.get("upload-metadata") {
        Some(v) => parse_metadata(
            v.to_str()
                .map_err(|_| TusError::new(StatusCode::BAD_REQUEST, "Upload-Metadata must be ASCII"))?,
        )?,
        None => Vec::new(),
    };
    let concat = header_str(h, "upload-concat")
        .map(headers::parse_concat)
        .transpose()?;
    let is_final = matches!(concat, Some(Concat::Final(_)));
    match (length.is_some(), deferred, is_final) {
        (true, true, _) => Err(TusError::new(
            StatusCode::BAD_REQUEST,
            "send Upload-Length or Upload-Defer-Length, not both",
        )),
        (false, false, false) => Err(TusError::new(
            StatusCode::BAD_REQUEST,
            "send Upload-Length (or Upload-Defer-Length: 1)",
        )),
        (true, _, true) | (_, true, true) => Err(TusError::new(
            StatusCode::BAD_REQUEST,
            "a final upload's length is the sum of its parts: send no Upload-Length",
        )),
        _ => Ok(Creation {
            length,
            metadata,
            concat,
        }),
    }
}

async fn resolve_grant(
    state: &AppState,
    parts: &Parts,
    creation: &Creation,
    size: Option<u64>,
) -> Result<(Grant, String, Option<String>), TusError> {
    let filename = metadata_value(&creation.metadata, &["filename", "name"])
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(DEFAULT_FILENAME)
        .to_owned();
    let content_type = metadata_value(&creation.metadata, &["filetype", "type"]).map(str::to_owned);
    let grant_req = GrantRequest {
        filename: filename.clone(),
        size: size.unwrap_or(0),
        content_type: content_type.clone().unwrap_or_default(),
    };
    let grant = state.grants.resolve(parts, &grant_req).await?;
    Ok((grant, filename, content_type))
}

/// `POST /files/`.
pub(super) async fn create(
    state: &AppState,
    tus: &Tus,
    parts: Parts,
    body: Body,
) -> Result<Response, TusError> {
    let creation = parse(&parts)?;
    if let Some(Concat::Final(ids)) = &creation.concat {
        return concatenate(state, tus, &parts, &creation, ids).await;
    }
    let (grant, filename, content_type) = resolve_grant(state, &parts, &creation, creation.length).await?;
    let plan = PartPlan::new(creation.length, tus.settings.part_size);
    if let Some(len) = creation.length
        && len > plan.capacity()
    {
        return Err(TusError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Upload-Length is too large",
        ));
    }
    let with_body = header_str(&parts.headers, "content-type")
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/offset+octet-stream"));
    if with_body && let Some(len) = header_str(&parts.headers, "content-length") {
        // Refused before anything is begun, so a 413 leaves no upload.
        let len = headers::parse_u64("Content-Length", len)?;
        let grant_limit = state.lifecycle.server_upload_limit(&grant);
        let limit = creation
            .length
            .unwrap_or(grant_limit)
            .min(grant_limit)
            .min(plan.capacity());
        if len > limit {
            return Err(TusError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body would take the upload past {limit} bytes"),
            ));
        }
    }
    let upload = state
        .lifecycle
        .begin_server_upload(grant, &filename, content_type.as_deref(), creation.length)
        .await?;
    let role = creation.concat.as_ref().map(|_| ConcatRole::Partial);
    let info = start(
        state,
        tus,
        &upload,
        creation.length,
        &creation.metadata,
        plan,
        role,
    )
    .await?;
    let mut headers = vec![
        ("location", format!("{BASE_PATH}{}", info.id)),
        ("upload-expires", http_date(info.expires_at)),
    ];
    if with_body {
        let guard = tus.lock(&info.id, "the upload is busy").await?;
        let written: Result<_, TusError> = async {
            let progress = Progress {
                length: creation.length,
                ..Progress::default()
            };
            let written = write_body(
                state,
                tus,
                &info,
                progress,
                &parts.headers,
                super::body_stream(body),
                guard.watch(),
            )
            .await;
            let progress = match written {
                Ok(p) => p,
                // The upload exists; the client learns its offset with HEAD.
                Err(e) => return Err(e.header("location", format!("{BASE_PATH}{}", info.id))),
            };
            let mut out = vec![("upload-offset", progress.offset(&info.plan).to_string())];
            if progress.length == Some(progress.offset(&info.plan)) {
                out.extend(finish(state, tus, &info, &progress, std::slice::from_ref(&guard)).await?);
            }
            Ok(out)
        }
        .await;
        guard.release().await;
        headers.extend(written?);
    } else if creation.length == Some(0) {
        // Nothing to send: complete now, as no PATCH will come.
        let progress = Progress {
            length: Some(0),
            ..Progress::default()
        };
        headers.push(("upload-offset", "0".into()));
        // Nobody else knows the new id yet: no lock needed.
        headers.extend(finish(state, tus, &info, &progress, &[]).await?);
    }
    Ok(reply(StatusCode::CREATED, headers))
}

/// Writes the tus state of a begun server upload; on failure gives the
/// grant its use back.
async fn start(
    state: &AppState,
    tus: &Tus,
    upload: &ServerUpload,
    length: Option<u64>,
    metadata: &[headers::MetadataPair],
    plan: PartPlan,
    concat: Option<ConcatRole>,
) -> Result<UploadInfo, TusError> {
    let ticket = serde_json::to_value(upload)
        .map_err(|e| TusError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let info = UploadInfo {
        id: upload.id.clone(),
        key: upload.key.clone(),
        content_type: upload.content_type.clone(),
        length,
        metadata: encode_metadata(metadata),
        multipart: String::new(),
        plan,
        concat,
        expires_at: upload.expires_at,
        ticket,
    };
    match tus.store.create(info).await {
        Ok(info) => Ok(info),
        Err(e) => {
            state.lifecycle.release_server_upload(upload).await;
            Err(TusError::store("starting the upload", &e))
        }
    }
}

/// `POST /files/` with `Upload-Concat: final;...`: checks every partial
/// upload is complete and was made under the same grant subject, streams
/// them in order into the final upload's parts, and completes it with a
/// receipt. The partial uploads are removed afterwards.
async fn concatenate(
    state: &AppState,
    tus: &Tus,
    parts: &Parts,
    creation: &Creation,
    ids: &[String],
) -> Result<Response, TusError> {
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    if unique.len() != ids.len() {
        return Err(TusError::new(
            StatusCode::BAD_REQUEST,
            "a partial upload is named twice",
        ));
    }
    // Locked in one global order (sorted ids), so two finals naming the
    // same partials in different orders cannot wait on each other.
    let mut guards = Vec::with_capacity(ids.len());
    for id in &unique {
        guards.push(tus.lock(id, &format!("partial upload {id} is busy")).await?);
    }
    let out: Result<Response, TusError> = async {
        let mut partials = Vec::with_capacity(ids.len());
        let mut total: u64 = 0;
        for id in ids {
            let info = load(tus, id).await.map_err(|e| match e.status {
                StatusCode::NOT_FOUND => TusError::new(StatusCode::NOT_FOUND, format!("no partial upload {id}")),
                _ => e,
            })?;
            if info.concat != Some(ConcatRole::Partial) {
                return Err(TusError::new(
                    StatusCode::BAD_REQUEST,
                    format!("upload {id} is not a partial upload"),
                ));
            }
            let size = match tus.store.peek(&info).await {
                Ok(Peek::Done(done)) => done.get("size").and_then(serde_json::Value::as_u64).unwrap_or(0),
                Ok(Peek::Open(_)) => {
                    return Err(TusError::new(
                        StatusCode::BAD_REQUEST,
                        format!("partial upload {id} is not complete"),
                    ));
                }
                Err(e) => return Err(TusError::store("reading a partial upload", &e)),
            };
            total = total.saturating_add(size);
            partials.push((ticket(&info)?, info));
        }
        let (grant, filename, content_type) = resolve_grant(state, parts, creation, Some(total)).await?;
        if partials.iter().any(|(upload, _)| {
            upload.grant.subject != grant.subject || grant.subject.is_none() && upload.grant.id != grant.id
        }) {
            return Err(TusError::new(
                StatusCode::FORBIDDEN,
                "every partial upload must belong to the grant's subject",
            ));
        }
        let plan = PartPlan::new(Some(total), tus.settings.part_size);
        // The final upload claims no `max_files` use of its own (N partial
        // uploads need a grant for N files, not N + 1) and the partial ones
        // keep theirs until it is complete: a join that fails leaves them
        // counted, and retrying it releases nothing twice.
        let mut unslotted = grant.clone();
        unslotted.max_files = None;
        let mut upload = state
            .lifecycle
            .begin_server_upload(unslotted, &filename, content_type.as_deref(), Some(total))
            .await?;
        upload.grant = grant;
        upload.slot = None;
        let role = ConcatRole::Final(ids.to_vec());
        let info = start(
            state,
            tus,
            &upload,
            Some(total),
            &creation.metadata,
            plan,
            Some(role),
        )
        .await?;
        let store = tus.store.store().clone();
        let keys: Vec<_> = partials.iter().map(|(_, p)| p.key.clone()).collect();
        let body = chain_objects(store, keys);
        let progress = Progress {
            length: Some(total),
            ..Progress::default()
        };
        let appended = tus
            .store
            .append(
                &info,
                progress,
                body,
                chute_tus::Append {
                    limit: total,
                    checksum: None,
                    parts_in_flight: tus.settings.parts_in_flight,
                    // The final upload is new: nobody else writes it.
                    lease: None,
                },
            )
            .await;
        let progress = match appended {
            Ok(p) if p.offset(&info.plan) == total => p,
            other => {
                if let Err(e) = &other {
                    tracing::warn!(upload = %info.id, error = %e, "concatenation failed");
                }
                if let Err(e) = tus.store.remove(&info, false).await {
                    tracing::warn!(upload = %info.id, error = %e, "could not remove a failed final upload");
                }
                state.lifecycle.release_server_upload(&upload).await;
                return Err(TusError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the partial uploads could not be joined; try again",
                ));
            }
        };
        let mut headers = vec![
            ("location", format!("{BASE_PATH}{}", info.id)),
            ("upload-expires", http_date(info.expires_at)),
            ("upload-offset", total.to_string()),
        ];
        headers.extend(finish(state, tus, &info, &progress, &guards).await?);
        // Complete: the first partial upload's use becomes the final one's,
        // the others' are given back.
        let mut info = info;
        upload.slot = partials.first().and_then(|(p, _)| p.slot.clone());
        match serde_json::to_value(&upload) {
            Ok(ticket) => {
                info.ticket = ticket;
                if let Err(e) = tus.store.rewrite_info(&info).await {
                    tracing::warn!(upload = %info.id, error = %e, "could not record the final upload's max_files use");
                }
            }
            Err(e) => {
                tracing::warn!(upload = %info.id, error = %e, "could not record the final upload's max_files use")
            }
        }
        // The partial uploads go only while this request still holds
        // them; otherwise the reaper removes them once they expire.
        if let Err(e) = super::held(&guards) {
            tracing::warn!(upload = %info.id, error = %e.message, "kept the joined partial uploads");
        } else {
            for (i, (partial, pinfo)) in partials.iter().enumerate() {
                if let Err(e) = tus.store.remove(pinfo, false).await {
                    tracing::warn!(upload = %pinfo.id, error = %e, "could not remove a joined partial upload");
                }
                if i > 0 {
                    state.lifecycle.release_server_upload(partial).await;
                }
            }
        }
        Ok(reply(StatusCode::CREATED, headers))
    }
    .await;
    for guard in guards {
        guard.release().await;
    }
    out
}

/// The objects at `keys`, one after another, as one body.
fn chain_objects(
    store: std::sync::Arc<dyn chute_store::MultipartStore>,
    keys: Vec<chute_core::ObjectKey>,
) -> ByteStream {
    let state = (store, keys.into_iter(), None::<ByteStream>);
    futures::stream::unfold(state, |(store, mut keys, mut current)| async move {
        loop {
            if let Some(body) = current.as_mut()
                && let Some(item) = body.next().await
            {
                return Some((item, (store, keys, current)));
            }
            let key = keys.next()?;
            match store.get(&key, None).await {
                Ok(got) => current = Some(got.body),
                Err(e) => {
                    return Some((
                        Err(std::io::Error::other(e.to_string())),
                        (store, Vec::new().into_iter(), None),
                    ));
                }
            }
        }
    })
    .boxed()
}
