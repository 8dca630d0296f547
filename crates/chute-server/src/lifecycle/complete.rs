//! Completing an upload: join the parts (re-checking their total size from
//! the store, never from the client), HEAD the object, sniff its first
//! bytes, verify the declared checksum, and answer with a receipt. An
//! object that breaks the grant is deleted and the upload rejected.

use super::claims::{UploadClaims, UploadMethod};
use super::sniff::{SNIFF_LEN, checked_type};
use super::{ApiError, Lifecycle, tmp_key, unix_after};
use crate::hooks::EventKind;
use axum::http::StatusCode;
use chute_core::token::RECEIPT_AUDIENCE;
use chute_core::{ChecksumHasher, ObjectKey, ReceiptClaims};
use chute_store::{ByteRange, CompletedPart, ObjectMeta, StoreError};
use futures::TryStreamExt as _;
use serde::Serialize;
use time::OffsetDateTime;

/// A completed upload: the receipt and what it states.
#[derive(Debug, Clone, Serialize)]
pub struct Completed {
    /// The receipt JWT to hand to the app.
    pub receipt: String,
    /// The receipt's claims, for clients without a JWT decoder.
    pub object: ReceiptClaims,
}

impl Lifecycle {
    /// Completes the upload of `claims`. Calling it again after success
    /// returns an equivalent receipt.
    pub async fn complete(&self, claims: &UploadClaims) -> Result<Completed, ApiError> {
        let key = tmp_key(claims)?;
        if claims.method == UploadMethod::Multipart {
            self.join_parts(claims, &key).await?;
        }
        let meta = match self.store().head(&key).await {
            Ok(meta) => meta,
            Err(StoreError::NoSuchKey { .. }) => {
                return Err(ApiError::conflict(
                    "not_uploaded",
                    "the object is not in the store yet: send the bytes first",
                ));
            }
            Err(e) => return Err(ApiError::store("checking the object", &e)),
        };
        match self.check(claims, &key, &meta).await {
            Ok(content_type) => self.receipt(claims, &meta, content_type),
            Err(rejection) if rejection.status == StatusCode::UNPROCESSABLE_ENTITY => {
                if let Err(e) = self.store().delete(&key).await {
                    tracing::warn!(key = %key, error = %e, "could not delete a rejected object");
                }
                self.emit(
                    EventKind::Rejected,
                    &claims.sub,
                    serde_json::json!({
                        "key": claims.key, "code": rejection.code, "reason": rejection.message,
                        "subject": claims.grant.subject,
                    }),
                );
                Err(rejection)
            }
            Err(other) => Err(other),
        }
    }

    /// Completes the multipart upload from the parts the store holds,
    /// after checking their total against the declared size and grant.
    async fn join_parts(&self, claims: &UploadClaims, key: &ObjectKey) -> Result<(), ApiError> {
        let Some(mpu) = &claims.mpu else { return Ok(()) };
        let parts = match self.store().list_parts(key, mpu).await {
            Ok(parts) => parts,
            // Completed before (a retried call) or aborted: the HEAD decides.
            Err(StoreError::NoSuchUpload { .. }) => return Ok(()),
            Err(e) => return Err(ApiError::store("listing parts", &e)),
        };
        let total: u64 = parts.iter().map(|p| p.size).sum();
        if let Err(v) = claims.grant.check_size(total) {
            self.abort_rejected(claims, key, mpu, &v.to_string()).await;
            return Err(ApiError::rejected(v.code(), v.to_string()));
        }
        let expected = claims.part_count();
        let numbers_ok = parts.len() == expected as usize
            && parts
                .iter()
                .enumerate()
                .all(|(i, p)| p.part_number as usize == i + 1);
        if total != claims.size || !numbers_ok {
            return Err(ApiError::conflict(
                "parts_incomplete",
                format!(
                    "the store holds {} of {expected} parts, {total} of {} bytes; upload the missing parts",
                    parts.len(),
                    claims.size
                ),
            ));
        }
        let sizes_ok = parts.iter().all(|p| p.size == claims.part_len(p.part_number));
        if !sizes_ok {
            return Err(ApiError::conflict(
                "part_size_mismatch",
                "a part does not have the size its URL was signed for; upload it again",
            ));
        }
        let completed: Vec<CompletedPart> = parts
            .iter()
            .map(|p| CompletedPart {
                part_number: p.part_number,
                etag: p.etag.clone(),
            })
            .collect();
        match self.store().complete_multipart(key, mpu, &completed).await {
            Ok(_) | Err(StoreError::NoSuchUpload { .. }) => Ok(()),
            Err(e @ (StoreError::InvalidPart { .. } | StoreError::PartTooSmall { .. })) => {
                Err(ApiError::conflict("parts_invalid", e.to_string()))
            }
            Err(e) => Err(ApiError::store("completing the multipart upload", &e)),
        }
    }

    async fn abort_rejected(&self, claims: &UploadClaims, key: &ObjectKey, mpu: &str, reason: &str) {
        if let Err(e) = self.store().abort_multipart(key, mpu).await {
            tracing::warn!(key = %key, error = %e, "could not abort a rejected upload");
        }
        self.emit(
            EventKind::Rejected,
            &claims.sub,
            serde_json::json!({"key": claims.key, "reason": reason, "subject": claims.grant.subject}),
        );
    }

    /// The checks of a stored object; `Err` with 422 means "reject it".
    pub(super) async fn check(
        &self,
        claims: &UploadClaims,
        key: &ObjectKey,
        meta: &ObjectMeta,
    ) -> Result<String, ApiError> {
        if let Err(v) = claims.grant.check_size(meta.size) {
            return Err(ApiError::rejected(v.code(), v.to_string()));
        }
        if meta.size != claims.size {
            return Err(ApiError::rejected(
                "size_mismatch",
                format!(
                    "the object is {} bytes; the upload declared {}",
                    meta.size, claims.size
                ),
            ));
        }
        let head = self.read_head(key, meta).await?;
        let content_type = checked_type(&head, &claims.content_type, &claims.grant)?;
        if let Some(expected) = &claims.checksum {
            let matches = match &meta.checksum {
                Some(stored) if stored.algorithm == expected.algorithm && stored.parts.is_none() => {
                    stored.value == expected.value
                }
                _ => self.hash_object(key, meta, expected.algorithm).await? == expected.value,
            };
            if !matches {
                return Err(ApiError::rejected(
                    "checksum_mismatch",
                    format!(
                        "the object's {} checksum does not match the declared one",
                        expected.algorithm.as_str()
                    ),
                ));
            }
        }
        Ok(content_type)
    }

    async fn read_head(&self, key: &ObjectKey, meta: &ObjectMeta) -> Result<Vec<u8>, ApiError> {
        let size = meta.size;
        if size == 0 {
            return Ok(Vec::new());
        }
        let range = ByteRange::Inclusive {
            first: 0,
            last: SNIFF_LEN.min(size) - 1,
        };
        let got = self
            .store()
            .get(key, Some(range))
            .await
            .map_err(|e| ApiError::store("reading the object's first bytes", &e))?;
        same_object(meta, &got.meta)?;
        let mut head = Vec::with_capacity(SNIFF_LEN as usize);
        let mut body = got.body;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| ApiError::store("reading", &StoreError::Io(e)))?
        {
            head.extend_from_slice(&chunk);
            if head.len() as u64 >= SNIFF_LEN {
                head.truncate(SNIFF_LEN as usize);
                break;
            }
        }
        Ok(head)
    }

    /// Streams the whole object through a hasher (bounded memory); used
    /// when the store cannot state the whole-object checksum itself, as
    /// after a multipart upload.
    async fn hash_object(
        &self,
        key: &ObjectKey,
        meta: &ObjectMeta,
        algorithm: chute_core::ChecksumAlgorithm,
    ) -> Result<Vec<u8>, ApiError> {
        let _turn = self.full_read_permit().await;
        let got = self
            .store()
            .get(key, None)
            .await
            .map_err(|e| ApiError::store("reading the object", &e))?;
        same_object(meta, &got.meta)?;
        let mut hasher = ChecksumHasher::new(algorithm);
        let mut body = got.body;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| ApiError::store("reading", &StoreError::Io(e)))?
        {
            hasher.update(&chunk);
        }
        Ok(hasher.finish().value)
    }

    fn receipt(
        &self,
        claims: &UploadClaims,
        meta: &ObjectMeta,
        content_type: String,
    ) -> Result<Completed, ApiError> {
        let done = self.sign_receipt(claims, meta, content_type)?;
        self.emit_completed(&done);
        Ok(done)
    }

    /// Signs the receipt of a checked object, announcing nothing.
    pub(super) fn sign_receipt(
        &self,
        claims: &UploadClaims,
        meta: &ObjectMeta,
        content_type: String,
    ) -> Result<Completed, ApiError> {
        let now = OffsetDateTime::now_utc();
        let derivatives = self
            .derivatives()
            .receipt_keys(&claims.sub, &claims.grant, &content_type);
        let receipt = ReceiptClaims {
            aud: RECEIPT_AUDIENCE.into(),
            exp: unix_after(now, self.settings().receipt_ttl),
            iat: now.unix_timestamp(),
            jti: claims.sub.clone(),
            sub: claims.grant.subject.clone(),
            bucket: self.signer().bucket.to_string(),
            key: claims.key.clone(),
            size: meta.size,
            etag: meta.etag.trim_matches('"').to_owned(),
            checksum: claims.checksum.as_ref().map(|c| {
                format!(
                    "{}:{}",
                    c.algorithm.as_str().to_ascii_lowercase(),
                    c.to_header_value()
                )
            }),
            content_type,
            declared_type: claims.content_type.clone(),
            filename: claims.filename.clone(),
            grant: claims.grant.clone(),
            derivatives,
        };
        let token = self
            .tokens()
            .sign(&receipt)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
        Ok(Completed {
            receipt: token,
            object: receipt,
        })
    }

    /// Emits `upload.completed` for a signed receipt and starts its
    /// derivatives (unless they wait for promotion).
    pub(super) fn emit_completed(&self, done: &Completed) {
        let receipt = &done.object;
        self.derivatives().completed(receipt);
        self.emit(
            EventKind::Completed,
            &receipt.jti,
            serde_json::json!({
                "bucket": receipt.bucket, "key": receipt.key, "size": receipt.size, "etag": receipt.etag,
                "type": receipt.content_type, "filename": receipt.filename, "subject": receipt.sub,
                "metadata": receipt.grant.metadata,
            }),
        );
    }
}

/// Refuses when the object read is not the one HEAD described: the client
/// still holds a valid URL and may have replaced the bytes in between.
fn same_object(headed: &ObjectMeta, read: &ObjectMeta) -> Result<(), ApiError> {
    if headed.etag == read.etag && headed.size == read.size {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "object_changed",
            "the object changed while it was being checked; complete again",
        ))
    }
}
