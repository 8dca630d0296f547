//! Uploads whose bytes pass through the server (streamed forms, raw
//! bodies, tus): the same grant checks, temporary key, `max_files` count,
//! completion checks, receipt and hooks as a direct upload, without an
//! upload token or presigned URLs.
//!
//! A path that streams bytes calls [`Lifecycle::begin_server_upload`]
//! before it reads the body (grant, name, declared type and, when known,
//! size), writes the object at [`ServerUpload::key`] however it likes,
//! then calls [`Lifecycle::finish_server_upload`], which runs the checks of
//! [`Lifecycle::complete`] on the stored object and answers with a
//! receipt. When the write fails, [`Lifecycle::release_server_upload`]
//! gives the grant its use back; the path removes what it wrote.

use super::claims::{UploadClaims, UploadMethod};
use super::create::{new_upload_id, normalize_type};
use super::{ApiError, Completed, Lifecycle, TMP_PREFIX, unix_after};
use crate::hooks::EventKind;
use axum::http::StatusCode;
use chute_core::token::UPLOAD_AUDIENCE;
use chute_core::{Checksum, Grant, ObjectKey, sanitize_filename};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// An upload streamed through the server, begun under a grant. It
/// serialises, so a resumable path (tus) can keep it in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerUpload {
    /// The upload id (also the receipt's `jti`).
    pub id: String,
    /// The temporary key the bytes go to, `tmp/<id>/<filename>`.
    pub key: ObjectKey,
    /// The sanitised original file name.
    pub filename: String,
    /// The declared media type (normalised; `application/octet-stream`
    /// when none was given).
    pub content_type: String,
    /// The declared size, when the client stated one up front.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The grant the upload runs under.
    pub grant: Grant,
    /// When the upload must be finished (Unix seconds): the server's
    /// `upload_ttl`, capped by the grant's.
    pub expires_at: i64,
    /// The grant's `max_files` slot this upload holds, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<ObjectKey>,
}

impl Lifecycle {
    /// Begins an upload of `filename` (declared `content_type`, and `size`
    /// when known) under `grant`: checks name, type and size against the
    /// grant and the server's limits, counts it against `max_files`, picks
    /// the temporary key and emits `upload.created`. Nothing is written
    /// but the `max_files` marker.
    pub async fn begin_server_upload(
        &self,
        grant: Grant,
        filename: &str,
        content_type: Option<&str>,
        size: Option<u64>,
    ) -> Result<ServerUpload, ApiError> {
        let now = OffsetDateTime::now_utc();
        if filename.is_empty() || filename.len() > 1024 {
            return Err(ApiError::bad_request(
                "bad_filename",
                "filename must be 1 to 1024 bytes",
            ));
        }
        let content_type = match content_type.map(str::trim) {
            None | Some("") => "application/octet-stream".to_owned(),
            Some(t) => normalize_type(t)?,
        };
        let filename = sanitize_filename(filename);
        grant.check_live(now.unix_timestamp())?;
        if let Some(size) = size {
            self.check_server_size(&grant, size)?;
        }
        grant.check_filename(&filename)?;
        grant.check_type(&content_type)?;
        let id = new_upload_id();
        let key = ObjectKey::parse(&format!("{TMP_PREFIX}{id}/{filename}"))
            .map_err(|e| ApiError::bad_request("bad_filename", e.to_string()))?;
        let slot = self.claim_file_slot(&grant).await?;
        let ttl = self.upload_ttl(&grant);
        let upload = ServerUpload {
            id,
            key,
            filename,
            content_type,
            size,
            grant,
            expires_at: unix_after(now, ttl),
            slot,
        };
        self.emit(
            EventKind::Created,
            &upload.id,
            serde_json::json!({
                "bucket": self.signer().bucket.to_string(), "key": upload.key.as_str(),
                "size": size, "type": upload.content_type, "filename": upload.filename,
                "method": "server", "subject": upload.grant.subject,
            }),
        );
        Ok(upload)
    }

    /// The most bytes `grant` lets one file have on this server: the
    /// smaller of the grant's `max_size` and the server's largest object.
    /// A streaming path stops reading once a file passes it.
    pub fn server_upload_limit(&self, grant: &Grant) -> u64 {
        let server = self.settings().max_object_size;
        grant.max_size.map_or(server, |g| g.min(server))
    }

    /// Checks a size (declared or counted so far) against the grant and
    /// the server's largest object: `413 too_large` above either, the
    /// grant's violation below `min_size`.
    pub fn check_server_size(&self, grant: &Grant, size: u64) -> Result<(), ApiError> {
        if size > self.server_upload_limit(grant) {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "{size} bytes is above the {} bytes this upload may have",
                    self.server_upload_limit(grant)
                ),
            ));
        }
        grant.check_size(size).map_err(ApiError::from)
    }

    /// Gives the grant back the `max_files` use of an upload that stored
    /// nothing. Best effort: a failure is logged.
    pub async fn release_server_upload(&self, upload: &ServerUpload) {
        self.release_server_slot(upload.slot.as_ref()).await;
    }

    /// [`Lifecycle::release_server_upload`] by the slot alone
    /// ([`ServerUpload::slot`]), for a path that kept only that.
    pub async fn release_server_slot(&self, slot: Option<&ObjectKey>) {
        if let Some(slot) = slot
            && let Err(e) = self.store().delete(slot).await
        {
            tracing::warn!(key = %slot, error = %e, "could not release a max_files slot");
        }
    }

    /// Finishes an upload whose `size` bytes are stored at
    /// [`ServerUpload::key`]: the checks of [`Lifecycle::complete`] (size,
    /// type by magic bytes, the grant, `checksum` when given). A passing
    /// object gets a receipt and `upload.completed`; a failing one is
    /// deleted, emits `upload.rejected` and answers 422.
    pub async fn finish_server_upload(
        &self,
        upload: &ServerUpload,
        size: u64,
        checksum: Option<Checksum>,
    ) -> Result<Completed, ApiError> {
        self.complete(&server_claims(upload, size, checksum)).await
    }

    /// The first half of [`Lifecycle::finish_server_upload`], for a path
    /// that finishes several files as one (a streamed form): runs the
    /// checks and signs the receipt, but emits nothing and deletes
    /// nothing, whatever the outcome. The path announces the receipt
    /// with [`Lifecycle::announce_server_upload`] once the upload is
    /// final, or undoes it (deleting the object, emitting
    /// `upload.rejected` once) when the check fails or another file of
    /// the request does.
    pub async fn check_server_upload(
        &self,
        upload: &ServerUpload,
        size: u64,
        checksum: Option<Checksum>,
    ) -> Result<Completed, ApiError> {
        let claims = server_claims(upload, size, checksum);
        let key = super::tmp_key(&claims)?;
        let meta = match self.store().head(&key).await {
            Ok(meta) => meta,
            Err(chute_store::StoreError::NoSuchKey { .. }) => {
                return Err(ApiError::conflict(
                    "not_uploaded",
                    "the object is not in the store yet: send the bytes first",
                ));
            }
            Err(e) => return Err(ApiError::store("checking the object", &e)),
        };
        let content_type = self.check(&claims, &key, &meta).await?;
        self.sign_receipt(&claims, &meta, content_type)
    }

    /// Emits `upload.completed` for a receipt from
    /// [`Lifecycle::check_server_upload`], once the upload is final.
    pub fn announce_server_upload(&self, done: &Completed) {
        self.emit_completed(done);
    }
}

/// The upload claims [`Lifecycle::complete`] checks a server upload by.
fn server_claims(upload: &ServerUpload, size: u64, checksum: Option<Checksum>) -> UploadClaims {
    let now = OffsetDateTime::now_utc();
    UploadClaims {
        aud: UPLOAD_AUDIENCE.into(),
        exp: upload.expires_at,
        iat: now.unix_timestamp(),
        sub: upload.id.clone(),
        key: upload.key.as_str().to_owned(),
        method: UploadMethod::Put,
        size,
        content_type: upload.content_type.clone(),
        filename: upload.filename.clone(),
        mpu: None,
        part_size: None,
        part_checksum: None,
        checksum,
        grant: upload.grant.clone(),
    }
}
