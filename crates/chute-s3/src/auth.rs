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
