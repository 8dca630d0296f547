//! Authentication for s3s: looks up the secret of the access key a request
//! was signed with among the endpoint's configured key pairs. s3s itself
//! verifies the signature (header SigV4/SigV2, presigned URLs, aws-chunked)
//! and, with an authenticator set, denies anonymous requests (`AccessDenied`).
//! CORS preflights never reach s3s (see [`crate::service`]).

use crate::EmbeddedS3Config;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use std::sync::Arc;

/// Answers s3s's secret-key lookups from [`EmbeddedS3Config::credentials`].
#[derive(Debug, Clone)]
pub struct ConfigAuth {
    config: Arc<EmbeddedS3Config>,
}

impl ConfigAuth {
    /// An authenticator over the configured key pairs.
    pub fn new(config: Arc<EmbeddedS3Config>) -> Self {
        Self { config }
    }
}

#[async_trait::async_trait]
impl S3Auth for ConfigAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        // Access keys are identifiers, not secrets: a plain lookup is fine;
        // s3s compares the signatures.
        match self.config.secret_for(access_key) {
            Some(secret) => Ok(SecretKey::from(secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}

/// The longest validity a presigned URL may claim, as S3 enforces it.
pub const MAX_PRESIGNED_EXPIRY_SECONDS: u64 = 604_800;

/// Checks `X-Amz-Expires` of a presigned request, which s3s 0.14.1 does
/// not bound: S3 refuses more than a week, or a value that is not a
/// positive number, with `AuthorizationQueryParametersError`. Returns the
/// message to answer with, or `None` when the query is acceptable.
pub fn presigned_expiry_problem(query: Option<&str>) -> Option<&'static str> {
    // Decoded as s3s decodes it, so `X-Amz-Expire%73` cannot slip past.
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let raw = query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| decode(name).eq_ignore_ascii_case("X-Amz-Expires"))
        .map(|(_, value)| decode(value))?;
    match raw.parse::<u64>() {
        Ok(secs) if (1..=MAX_PRESIGNED_EXPIRY_SECONDS).contains(&secs) => None,
        Ok(0) => Some("X-Amz-Expires must be non-negative"),
        Ok(_) => Some("X-Amz-Expires must be less than a week (in seconds) that is 604800"),
        Err(_) => Some("X-Amz-Expires should be a number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_expiry_is_bounded_by_a_week() {
        assert_eq!(presigned_expiry_problem(None), None);
        assert_eq!(presigned_expiry_problem(Some("uploads")), None);
        assert_eq!(presigned_expiry_problem(Some("X-Amz-Expires=604800&a=b")), None);
        assert!(presigned_expiry_problem(Some("a=b&X-Amz-Expires=604801")).is_some());
        assert!(presigned_expiry_problem(Some("X-Amz-Expires=0")).is_some());
        assert!(presigned_expiry_problem(Some("x-amz-expires=soon")).is_some());
        // s3s decodes names and values, so the check must too.
        assert!(presigned_expiry_problem(Some("X-Amz-Expire%73=31536000")).is_some());
        assert!(presigned_expiry_problem(Some("X-Amz-Expires=%36%30%34%38%30%31")).is_some());
    }
}
