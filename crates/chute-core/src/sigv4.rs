//! AWS Signature Version 4: the signing key, HMAC and constant-time
//! helpers, presigned URLs ([`presign_url`]) and `Authorization` header
//! signing ([`sign_headers`]).
//!
//! This module owns the cryptography and the canonical forms; it does not
//! read the clock (callers pass `now`), talk to the network, or decide who
//! may sign what. Verifying incoming header-signed requests is left to the
//! S3 service layer, which reuses [`signing_key`] and [`canonical`].

mod cache;
pub mod canonical;
mod sign;

pub use cache::SigningKeyCache;
pub use sign::{HeaderSignRequest, PresignRequest, presign_url, presign_url_cached, sign_headers};

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use std::fmt;
use subtle::ConstantTimeEq as _;
use time::{Date, OffsetDateTime, UtcOffset};

/// The algorithm name in string-to-sign, credentials and `x-amz-algorithm`.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The payload hash presigned URLs use, since the body is not known.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The longest validity AWS allows for a presigned URL: 7 days.
pub const MAX_PRESIGN_EXPIRY: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// An access key pair. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The public access key id, e.g. `AKIAIOSFODNN7EXAMPLE`.
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The requested validity is not a whole number of seconds in 1 s ..= 7 days.
    #[error("presigned URL expiry must be 1 to 604800 whole seconds, got {0:?}")]
    ExpiresOutOfRange(std::time::Duration),
    /// The endpoint is not `http://host[:port]` or `https://host[:port]`.
    #[error("invalid endpoint {0:?}: expected http(s)://host[:port] with no path")]
    InvalidEndpoint(String),
    /// The bucket name breaks S3's naming rules.
    #[error(transparent)]
    InvalidBucket(#[from] crate::BucketNameError),
    /// A header name is empty or holds characters outside the HTTP token set.
    #[error("invalid header name {0:?}")]
    InvalidHeaderName(String),
    /// A header value holds a control character (CR, LF, NUL...).
    #[error("invalid value for header {0:?}")]
    InvalidHeaderValue(String),
    /// A query parameter or header the signer sets itself (`X-Amz-*`
    /// parameters, `host` for presigning, `authorization`, `x-amz-date`,
    /// `x-amz-content-sha256`) was supplied by the caller.
    #[error("{0:?} is set by the signer and must not be supplied")]
    ReservedParameter(String),
    /// A header-signed request has no `host` header.
    #[error("the headers to sign must include host")]
    MissingHost,
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex SHA-256 of `data`, as used for payload and canonical request hashes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Compares two byte strings in time independent of where they differ.
/// Lengths are not secret: unequal lengths return `false` at once.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The SigV4 signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret_key: &str, date: Date, region: &str, service: &str) -> [u8; 32] {
    let k_secret = format!("AWS4{secret_key}");
    let k_date = hmac_sha256(k_secret.as_bytes(), yyyymmdd(date).as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// `YYYYMMDD`, the date in credential scopes.
pub fn yyyymmdd(date: Date) -> String {
    format!("{:04}{:02}{:02}", date.year(), u8::from(date.month()), date.day())
}

/// `YYYYMMDDTHHMMSSZ` in UTC, the `x-amz-date` format.
pub fn amz_date(now: OffsetDateTime) -> String {
    let utc = now.to_offset(UtcOffset::UTC);
    format!(
        "{}T{:02}{:02}{:02}Z",
        yyyymmdd(utc.date()),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

/// `<yyyymmdd>/<region>/<service>/aws4_request`.
pub fn credential_scope(date: Date, region: &str, service: &str) -> String {
    format!("{}/{region}/{service}/aws4_request", yyyymmdd(date))
}

/// `AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256 of canonical request>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn debug_redacts_secret() {
        let c = Credentials {
            access_key: "AKID".into(),
            secret_key: "topsecret".into(),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID"));
        assert!(!shown.contains("topsecret"));
    }

    #[test]
    fn signing_key_matches_aws_post_example() {
        // From "Example: Browser-Based Upload using HTTP POST (Using AWS Signature Version 4)".
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            date!(2015 - 12 - 29),
            "us-east-1",
            "s3",
        );
        let policy = crate::post_policy::tests_support::AWS_EXAMPLE_POLICY;
        assert_eq!(
            hex::encode(hmac_sha256(&key, policy.as_bytes())),
            "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
        );
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn amz_date_converts_to_utc() {
        let t = time::macros::datetime!(2013-05-24 02:00:00 +02:00);
        assert_eq!(amz_date(t), "20130524T000000Z");
    }
}
