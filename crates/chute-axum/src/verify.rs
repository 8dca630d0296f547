//! Receipt verification for apps: [`ReceiptVerifier`] checks a receipt's
//! signature, key id, audience and expiry with chute-core's keyring (the
//! same code Chute signs with), then the app's own [`Constraints`]
//! (types, size, extensions, the grant's prefix, the session user). The
//! result is a [`VerifiedReceipt`]; the extractors in [`crate::extract`]
//! are thin wrappers over it.

use crate::rejection::{ReceiptRejection, RejectionFormat};
use axum::http::StatusCode;
use chute_core::token::RECEIPT_AUDIENCE;
use chute_core::{Grant, GrantViolation, Keyring, ReceiptClaims};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The form or JSON field receipts are read from unless configured.
pub const DEFAULT_FIELD: &str = "receipt";

/// Verifies receipts; the app's state hands it to the extractors through
/// `FromRef`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReceiptVerifier {
    keyring: Keyring,
    field: String,
    constraints: Constraints,
    format: RejectionFormat,
}

impl ReceiptVerifier {
    /// A verifier accepting receipts signed by `keyring` (Chute's grant
    /// secret; retired keys are accepted by key id).
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            field: DEFAULT_FIELD.to_owned(),
            constraints: Constraints::default(),
            format: RejectionFormat::Json,
        }
    }

    /// Reads receipts from `field` instead of [`DEFAULT_FIELD`] (policies
    /// naming their own field win).
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }

    /// Constraints every receipt must meet, on top of each route's.
    pub fn require(mut self, constraints: Constraints) -> Self {
        self.constraints = constraints;
        self
    }

    /// How rejections render (JSON by default).
    pub fn rejection_format(mut self, format: RejectionFormat) -> Self {
        self.format = format;
        self
    }

    /// The configured field name.
    pub fn field_name(&self) -> &str {
        &self.field
    }

    /// The configured rejection format.
    pub fn format(&self) -> RejectionFormat {
        self.format
    }

    /// Verifies `token` (found in `field`, for messages) now, then the
    /// verifier's constraints and `extra`.
    pub fn verify(
        &self,
        field: &str,
        token: &str,
        extra: &Constraints,
    ) -> Result<VerifiedReceipt, ReceiptRejection> {
        self.verify_at(field, token, extra, OffsetDateTime::now_utc())
    }

    /// [`Self::verify`] at `now` (tests freeze the clock).
    pub fn verify_at(
        &self,
        field: &str,
        token: &str,
        extra: &Constraints,
        now: OffsetDateTime,
    ) -> Result<VerifiedReceipt, ReceiptRejection> {
        let claims: ReceiptClaims = self
            .keyring
            .verify(token.trim(), RECEIPT_AUDIENCE, now)
            .map_err(|e| ReceiptRejection::token(field, &e).with_format(self.format))?;
        let receipt = VerifiedReceipt {
            token: token.trim().to_owned(),
            claims,
        };
        self.constraints
            .check(&receipt)
            .and_then(|()| extra.check(&receipt))
            .map_err(|r| r.with_format(self.format))?;
        Ok(receipt)
    }
}

/// A receipt whose signature, audience and expiry were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// The receipt as received (for promotion).
    pub token: String,
    /// Its claims.
    pub claims: ReceiptClaims,
}

impl VerifiedReceipt {
    /// The upload id.
    pub fn upload_id(&self) -> &str {
        &self.claims.jti
    }

    /// The temporary key (under `tmp/` until promoted).
    pub fn key(&self) -> &str {
        &self.claims.key
    }

    /// Size in bytes, as the store reported it.
    pub fn size(&self) -> u64 {
        self.claims.size
    }

    /// The media type detected from the object's bytes.
    pub fn content_type(&self) -> &str {
        &self.claims.content_type
    }

    /// The original file name, sanitised.
    pub fn filename(&self) -> &str {
        &self.claims.filename
    }

    /// The grant's subject, when it had one.
    pub fn subject(&self) -> Option<&str> {
        self.claims.sub.as_deref()
    }

    /// The image derivatives the upload gets: name -> key (made on
    /// completion or promotion, as the grant said; see
    /// `Chute::derivative`).
    pub fn derivatives(&self) -> &BTreeMap<String, String> {
        &self.claims.derivatives
    }

    /// The grant the upload ran under.
    pub fn grant(&self) -> &Grant {
        &self.claims.grant
    }
}

/// What a route demands of a receipt beyond a valid signature. Empty
/// constraints accept every valid receipt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constraints {
    limits: Grant,
    prefix: Option<String>,
    subject: Option<String>,
    metadata: BTreeMap<String, String>,
}

impl Constraints {
    /// No constraints.
    pub fn new() -> Self {
        Self::default()
    }

    /// The detected type must match one of `patterns` (`image/*` works).
    pub fn types<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patterns: I) -> Self {
        self.limits.types = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// At most `bytes`.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.limits.max_size = Some(bytes);
        self
    }

    /// The file name must end in one of `extensions` (`pdf` or `.pdf`).
    pub fn extensions<I: IntoIterator<Item = S>, S: Into<String>>(mut self, extensions: I) -> Self {
        self.limits.extensions = extensions.into_iter().map(Into::into).collect();
        self
    }

    /// The upload's grant must confine promotion below `prefix` (its
    /// `prefix`, or its `template`'s fixed start, lies under it).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The grant's subject must be `subject` (the session user).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The grant's metadata must hold `key` = `value`.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Checks `receipt`; the first broken constraint is the rejection.
    pub fn check(&self, receipt: &VerifiedReceipt) -> Result<(), ReceiptRejection> {
        let c = &receipt.claims;
        self.limits
            .check_type(&c.content_type)
            .and_then(|()| self.limits.check_filename(&c.filename))
            .and_then(|()| self.limits.check_size(c.size))
            .map_err(|v| ReceiptRejection::violation(&v))?;
        if let Some(want) = &self.subject
            && c.sub.as_deref() != Some(want.as_str())
        {
            return Err(ReceiptRejection::new(
                StatusCode::FORBIDDEN,
                "wrong_subject",
                "this receipt was issued to another user",
            ));
        }
        if let Some(prefix) = &self.prefix
            && !grant_is_under(&c.grant, prefix)
        {
            return Err(ReceiptRejection::violation(&GrantViolation::KeyNotAllowed(
                c.grant
                    .prefix
                    .clone()
                    .or_else(|| c.grant.template.clone())
                    .unwrap_or_default(),
            )));
        }
        for (key, want) in &self.metadata {
            if c.grant.metadata.get(key) != Some(want) {
                return Err(ReceiptRejection::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "metadata_mismatch",
                    format!("the receipt's grant does not carry {key}={want:?}"),
                ));
            }
        }
        Ok(())
    }
}

/// Whether every key `grant` lets an upload be promoted to lies under
/// `prefix` (whole segments: `docs/42` is not under `docs/4`).
fn grant_is_under(grant: &Grant, prefix: &str) -> bool {
    // The fixed directory every key starts with: the prefix (Chute keeps
    // promotions below it, whole segments), or a template's part up to the
    // last `/` before its first placeholder (`docs/42{uuid}` makes
    // `docs/42e3f...`, beside `docs/42/`), or a fixed template itself.
    let dir = match (&grant.prefix, &grant.template) {
        (Some(p), _) => format!("{}/", p.trim_end_matches('/')),
        (None, Some(t)) => match t.find('{') {
            Some(at) => t[..at]
                .rfind('/')
                .map_or(String::new(), |slash| t[..=slash].to_owned()),
            None => t.clone(),
        },
        (None, None) => return false,
    };
    dir.starts_with(&format!("{}/", prefix.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(prefix: Option<&str>, template: Option<&str>) -> Grant {
        Grant {
            prefix: prefix.map(Into::into),
            template: template.map(Into::into),
            ..Grant::default()
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(grant_is_under(&grant(Some("docs/42"), None), "docs/42"));
        assert!(grant_is_under(&grant(Some("docs/42/a"), None), "docs/42/"));
        assert!(!grant_is_under(&grant(Some("docs/420"), None), "docs/42"));
        assert!(grant_is_under(
            &grant(None, Some("docs/42/{uuid}{ext}")),
            "docs/42"
        ));
        assert!(!grant_is_under(
            &grant(None, Some("docs/{user}/{uuid}")),
            "docs/42"
        ));
        assert!(!grant_is_under(&grant(None, None), "docs"));
        // A placeholder right after the prefix makes keys beside it:
        // docs/42{uuid} expands to docs/42e3f..., not below docs/42/.
        assert!(!grant_is_under(
            &grant(None, Some("docs/42{uuid}{ext}")),
            "docs/42"
        ));
        assert!(!grant_is_under(&grant(None, Some("docs/4{user}/a")), "docs/42"));
        // A template without placeholders is one key.
        assert!(grant_is_under(&grant(None, Some("docs/42/cv.pdf")), "docs/42"));
        assert!(!grant_is_under(&grant(None, Some("docs/42")), "docs/42"));
    }
}
