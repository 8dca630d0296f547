//! Promotion: copy a receipt's object from `tmp/` to its final key by
//! server-side copy, then delete the temporary object. The final key is a
//! pure function of the receipt and the template, so promoting twice
//! lands on the same key, and never overwrites a different object.

use super::sniff::extension_for;
use super::{ApiError, Lifecycle};
use crate::hooks::EventKind;
use chute_core::grant::extension;
use chute_core::{ObjectKey, ReceiptClaims, TemplateVars};
use chute_store::{CopyOptions, ObjectHeaders, PutOptions, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// The metadata entry naming the upload a promoted object came from.
pub const UPLOAD_META: &str = "chute-upload";

/// A request to promote.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// The receipt from completion.
    pub receipt: String,
    /// A key template (for example `avatars/{user}/{uuid}{ext}`); must be
    /// the grant's template when the grant names one. Defaults to the
    /// grant's template, then the server's `promote_template`.
    #[serde(default)]
    pub template: Option<String>,
}

/// Where the object now lives.
#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    /// The bucket.
    pub bucket: String,
    /// The final key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The ETag (without quotes).
    pub etag: String,
    /// The verified media type.
    #[serde(rename = "type")]
    pub content_type: String,
    /// The upload id.
    pub upload_id: String,
}

impl Lifecycle {
    /// Promotes the receipt's object; idempotent.
    pub async fn promote(&self, req: &PromoteRequest) -> Result<Promoted, ApiError> {
        let receipt = self.verify_receipt(&req.receipt)?;
        let target = self.promotion_target(&receipt, req.template.as_deref())?;
        let source = ObjectKey::parse(&receipt.key)
            .map_err(|e| ApiError::bad_request("bad_key", format!("receipt names a bad key: {e}")))?;
        let done = Promoted {
            bucket: receipt.bucket.clone(),
            key: target.as_str().to_owned(),
            size: receipt.size,
            etag: receipt.etag.clone(),
            content_type: receipt.content_type.clone(),
            upload_id: receipt.jti.clone(),
        };
        match self.store().head(&target).await {
            Ok(existing)
                if existing
                    .metadata
                    .get(UPLOAD_META)
                    .is_some_and(|id| *id == receipt.jti) =>
            {
                // Promoted before; finish the clean-up a crash may have cut short.
                self.delete_source(&source).await;
                return Ok(done);
            }
            Ok(_) => {
                return Err(ApiError::conflict(
                    "key_taken",
                    format!("another object already lives at {target}"),
                ));
            }
            Err(StoreError::NoSuchKey { .. }) => {}
            Err(e) => return Err(ApiError::store("checking the target key", &e)),
        }
        // The copy carries the verified type (not the one the browser
        // sent) and the upload id, which makes a retried promotion
        // recognise its own object even when the copy changed the ETag.
        let opts = PutOptions {
            headers: ObjectHeaders {
                content_type: Some(receipt.content_type.clone()),
                ..ObjectHeaders::default()
            },
            metadata: BTreeMap::from([(UPLOAD_META.to_owned(), receipt.jti.clone())]),
            ..PutOptions::default()
        };
        let copied = match self
            .store()
            .copy(&source, &target, CopyOptions::ReplaceMetadata(opts))
            .await
        {
            Ok(meta) => meta,
            Err(StoreError::NoSuchKey { .. }) => {
                return Err(ApiError::new(
                    axum::http::StatusCode::GONE,
                    "object_gone",
                    "the uploaded object is gone (expired, deleted or rejected)",
                ));
            }
            Err(e) => return Err(ApiError::store("copying to the final key", &e)),
        };
        // A POST form or PUT URL stays valid after completion, so the bytes
        // may have been replaced since the receipt; a single-part object's
        // ETag is the MD5 of its bytes and survives the copy. (Multipart
        // objects cannot be rewritten: their part URLs died with the upload.)
        let single_part = !receipt.etag.contains('-');
        if copied.size != receipt.size || (single_part && copied.etag.trim_matches('"') != receipt.etag) {
            // The temporary object changed since the receipt: undo.
            let _ = self.store().delete(&target).await;
            return Err(ApiError::conflict(
                "object_changed",
                "the object changed after its receipt was issued",
            ));
        }
        self.derivatives().promoted(&receipt, &target).await;
        self.delete_source(&source).await;
        self.emit(
            EventKind::Promoted,
            &receipt.jti,
            serde_json::json!({
                "bucket": done.bucket, "key": done.key, "from": receipt.key, "size": done.size,
                "type": done.content_type, "subject": receipt.sub, "metadata": receipt.grant.metadata,
            }),
        );
        Ok(Promoted {
            etag: copied.etag.trim_matches('"').to_owned(),
            ..done
        })
    }

    /// The final key for `receipt` with an optional requested template.
    pub fn promotion_target(
        &self,
        receipt: &ReceiptClaims,
        template: Option<&str>,
    ) -> Result<ObjectKey, ApiError> {
        let uuid = derived_uuid(&receipt.jti);
        let ext = extension_for(&receipt.content_type, extension(&receipt.filename));
        let date = time::OffsetDateTime::from_unix_timestamp(receipt.iat)
            .map(|t| format!("{:04}/{:02}/{:02}", t.year(), u8::from(t.month()), t.day()))
            .unwrap_or_else(|_| "1970/01/01".into());
        let vars = TemplateVars {
            upload_id: &receipt.jti,
            uuid: &uuid,
            filename: &receipt.filename,
            ext: ext.as_deref(),
            subject: receipt.sub.as_deref(),
            date: &date,
        };
        let key = receipt
            .grant
            .promotion_key(template, &self.settings().default_template, &vars)?;
        let reserved = [
            super::TMP_PREFIX,
            super::STATE_PREFIX,
            chute_core::derivative::DERIVATIVES_PREFIX,
        ];
        if reserved.iter().any(|p| key.as_str().starts_with(p)) {
            return Err(ApiError::forbidden(
                "key_not_allowed",
                format!(
                    "{key} is inside Chute's own prefixes (tmp/, .chute/, derivatives/); promote to a key outside them"
                ),
            ));
        }
        Ok(key)
    }

    async fn delete_source(&self, source: &ObjectKey) {
        if let Err(e) = self.store().delete(source).await {
            tracing::warn!(key = %source, error = %e, "promoted, but the temporary object could not be deleted; the reaper will");
        }
    }
}

/// A UUID derived from the upload id: stable, so a retried promotion lands
/// on the same key.
fn derived_uuid(upload_id: &str) -> String {
    let digest = Sha256::digest(upload_id.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}
