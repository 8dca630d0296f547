//! Receipts: Chute's signed statement that one object is stored and was
//! checked. The browser hands the receipt to the app instead of a bare key;
//! the app verifies it (any JWT library, audience
//! [`crate::token::RECEIPT_AUDIENCE`]) and may ask Chute to promote the
//! object to its final key.

use crate::grant::Grant;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The claims of a receipt JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptClaims {
    /// Always [`crate::token::RECEIPT_AUDIENCE`].
    pub aud: String,
    /// Expiry (Unix seconds): promote before then.
    pub exp: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// The upload id (also `jti`: one receipt per upload).
    pub jti: String,
    /// The grant's subject, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The bucket holding the object.
    pub bucket: String,
    /// The object's key (under `tmp/` until promoted).
    pub key: String,
    /// Size in bytes, as the store reported it.
    pub size: u64,
    /// The store's ETag, without quotes.
    pub etag: String,
    /// The verified checksum as `algorithm:base64` (for example
    /// `sha256:...`), when the client supplied one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// The media type detected from the object's first bytes, or the
    /// declared type when the format has no magic number (plain text).
    #[serde(rename = "type")]
    pub content_type: String,
    /// The type the client declared.
    pub declared_type: String,
    /// The original file name, sanitised.
    pub filename: String,
    /// The grant the upload ran under (limits, promotion targets,
    /// metadata), so promotion needs no other state.
    pub grant: Grant,
    /// The image derivatives this upload gets: name -> key (see
    /// [`crate::derivative::derivative_key`]). Present when the grant names
    /// derivatives, whether or not they are made yet; their status is at
    /// `GET /api/objects/{receipt}/derivatives`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub derivatives: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{Keyring, RECEIPT_AUDIENCE, TokenKey};
    use time::macros::datetime;

    #[test]
    fn receipts_round_trip_through_a_keyring() {
        let ring = Keyring::new(TokenKey::new("r1", vec![9; 32]).unwrap(), vec![]);
        let now = datetime!(2026-11-21 12:00 UTC);
        let claims = ReceiptClaims {
            aud: RECEIPT_AUDIENCE.into(),
            exp: now.unix_timestamp() + 3600,
            iat: now.unix_timestamp(),
            jti: "u1".into(),
            sub: Some("user-1".into()),
            bucket: "uploads".into(),
            key: "tmp/u1/a.png".into(),
            size: 3,
            etag: "abc".into(),
            checksum: None,
            content_type: "image/png".into(),
            declared_type: "image/png".into(),
            filename: "a.png".into(),
            grant: Grant::default(),
            derivatives: BTreeMap::from([("thumb".into(), "derivatives/u1/thumb.jpg".into())]),
        };
        let token = ring.sign(&claims).unwrap();
        let back: ReceiptClaims = ring.verify(&token, RECEIPT_AUDIENCE, now).unwrap();
        assert_eq!(back, claims);
        assert!(ring.verify::<ReceiptClaims>(&token, "chute", now).is_err());
    }
}
