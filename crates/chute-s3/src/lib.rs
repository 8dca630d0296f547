//! Chute's embedded S3-compatible endpoint over the filesystem store.
//!
//! The S3 REST protocol (routing, SigV4 header, presigned and aws-chunked
//! verification, XML) comes from `s3s`; [`ops`] implements its `S3` trait
//! over [`chute_store::fs::FsStore`]. Browser form uploads (POST Object)
//! take Chute's own streaming route in [`post_object`], because s3s 0.14.1
//! buffers POST bodies, applies a clock-skew rule to POST and lacks
//! `${filename}`. [`service`] joins the two behind one tower service with
//! per-bucket CORS. Configuration and listeners belong to `chute-server`.

pub mod auth;
pub mod cors;
pub mod error;
pub mod ops;
pub mod post_object;
pub mod service;

use chute_core::sigv4::Credentials;
use chute_store::fs::FsStore;
use std::sync::Arc;
use std::time::Duration;

pub use service::EmbeddedS3;

/// Settings of the embedded endpoint, already validated by the server.
#[derive(Debug, Clone)]
pub struct EmbeddedS3Config {
    /// The region clients sign for (`us-east-1` unless configured).
    pub region: String,
    /// Every access/secret key pair allowed to sign requests.
    pub credentials: Vec<Credentials>,
    /// The largest single POST Object file in bytes, whatever the policy
    /// allows (S3's own limit is 5 GiB).
    pub max_post_object_size: u64,
    /// The most bytes all non-file fields of one POST form may take.
    pub max_post_form_fields_bytes: usize,
    /// How long a request body may send nothing before the request fails
    /// with `RequestTimeout` (the upload is aborted, nothing is stored).
    pub body_idle_timeout: Duration,
}

impl EmbeddedS3Config {
    /// The secret key for `access_key`, if it is known.
    pub fn secret_for(&self, access_key: &str) -> Option<String> {
        self.credentials
            .iter()
            .find(|c| c.access_key == access_key)
            .map(|c| c.secret_key.clone())
    }
}

/// What every request handler of the endpoint shares.
#[derive(Debug, Clone)]
pub struct S3Context {
    /// The filesystem store holding every bucket.
    pub store: FsStore,
    /// The endpoint's settings.
    pub config: Arc<EmbeddedS3Config>,
}
