//! [`S3StoreConfig`] (where the bucket is and which key opens it), read
//! from the usual AWS environment variables by [`S3StoreConfig::from_env`],
//! and [`S3Tuning`] (buffer and part sizes). Validation into the
//! [`Endpoint`] requests are built from happens here, once.

use crate::{StoreError, StoreResult};
use chute_core::{BucketName, Credentials};
use std::fmt;
use std::time::Duration;

/// Where an S3 bucket is and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3StoreConfig {
    /// `http(s)://host[:port]`, no path: `https://s3.eu-west-1.amazonaws.com`,
    /// `http://127.0.0.1:3900` for a local Garage.
    pub endpoint: String,
    /// The signing region (Garage: its `s3_region`, often `garage`).
    pub region: String,
    /// The bucket; it must exist.
    pub bucket: BucketName,
    /// The access key pair (its `Debug` hides the secret).
    pub credentials: Credentials,
    /// A session token for temporary credentials (`x-amz-security-token`).
    pub session_token: Option<String>,
    /// `endpoint/bucket/key` (Garage, MinIO) instead of `bucket.endpoint/key` (AWS).
    pub path_style: bool,
    /// Allow a plain `http://` endpoint; off, such an endpoint is refused,
    /// since the credentials' signatures and the data would travel in clear.
    pub allow_http: bool,
}

impl fmt::Debug for S3StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3StoreConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("credentials", &self.credentials)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl S3StoreConfig {
    /// Reads the configuration for `bucket` from the environment:
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (default
    /// `https://s3.<region>.amazonaws.com`), `AWS_REGION` or
    /// `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, and `AWS_ALLOW_HTTP=true` to allow an
    /// `http://` endpoint. A custom endpoint uses path-style addressing
    /// (Garage, MinIO), AWS virtual-hosted style. Profiles, SSO and
    /// instance roles are not read.
    pub fn from_env(bucket: BucketName) -> StoreResult<Self> {
        Self::from_lookup(bucket, |name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] over any variable lookup (for tests and for
    /// settings that come from a file).
    pub fn from_lookup(bucket: BucketName, var: impl Fn(&str) -> Option<String>) -> StoreResult<Self> {
        let var = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let missing = |what: &str| {
            StoreError::Config(format!(
                "{what} is not set; the S3 store reads the usual AWS variables"
            ))
        };
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or_else(|| missing("AWS_REGION (or AWS_DEFAULT_REGION; for Garage its s3_region)"))?;
        let custom = var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL"));
        let path_style = custom.is_some();
        let endpoint = custom.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let allow_http = match var("AWS_ALLOW_HTTP").as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
            Some(v) => {
                return Err(StoreError::Config(format!(
                    "AWS_ALLOW_HTTP must be true or false, got {v:?}"
                )));
            }
        };
        let config = Self {
            endpoint,
            region,
            bucket,
            credentials: Credentials {
                access_key: var("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?,
                secret_key: var("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?,
            },
            session_token: var("AWS_SESSION_TOKEN"),
            path_style,
            allow_http,
        };
        config.endpoint()?;
        Ok(config)
    }

    /// Checks the settings (endpoint shape; plain http only when allowed)
    /// without connecting.
    pub fn validate(&self) -> StoreResult<()> {
        self.endpoint().map(|_| ())
    }

    /// Checks the settings and splits the endpoint.
    pub(crate) fn endpoint(&self) -> StoreResult<Endpoint> {
        let bad = |why: &str| StoreError::Config(format!("S3 endpoint {:?}: {why}", self.endpoint));
        let (https, rest) = if let Some(rest) = self.endpoint.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = self.endpoint.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("must start with https:// (or http:// with allow_http)"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad("expected scheme://host[:port] with no path, query or user"));
        }
        if !https && !self.allow_http {
            return Err(bad(
                "plain http is refused unless allow_http is set (AWS_ALLOW_HTTP=true); \
                 use it only for a store on this machine or a private network",
            ));
        }
        if self.region.trim().is_empty() {
            return Err(StoreError::Config(
                "the S3 region is empty: set it (AWS_REGION; for Garage its s3_region)".into(),
            ));
        }
        if self.credentials.access_key.is_empty() || self.credentials.secret_key.is_empty() {
            return Err(StoreError::Config(
                "the S3 access key or secret key is empty: set both (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
                    .into(),
            ));
        }
        let scheme = if https { "https" } else { "http" };
        // The Host header as clients send it: no default port.
        let default_port = if https { ":443" } else { ":80" };
        let authority = authority.strip_suffix(default_port).unwrap_or(authority);
        let host = if self.path_style {
            authority.to_owned()
        } else {
            format!("{}.{authority}", self.bucket)
        };
        let base_path = if self.path_style {
            format!("/{}", self.bucket)
        } else {
            String::new()
        };
        Ok(Endpoint {
            base_url: format!("{scheme}://{host}"),
            host,
            base_path,
        })
    }
}

/// A validated endpoint: what every request URL and `Host` header starts with.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `scheme://host`, the bucket in the host for virtual-hosted style.
    pub(crate) base_url: String,
    /// The `Host` header.
    pub(crate) host: String,
    /// `/bucket` for path style, empty otherwise; keys follow after a `/`.
    pub(crate) base_path: String,
}

/// Whether create-only puts are known to work, or should be probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CreateOnlySupport {
    /// `S3Store::connect` writes a probe object twice with
    /// `If-None-Match: *` (under `.chute-probe/`) and deletes it.
    #[default]
    Probe,
    /// Trust the caller: `true` for AWS S3, MinIO and R2, `false` for
    /// Garage 2.5, which ignores the header and overwrites.
    Assume(bool),
}

/// Sizes and limits of the S3 backend. The defaults suit AWS S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Tuning {
    /// A put whose length is unknown (or at most this) is buffered up to
    /// this many bytes, checked, and sent in one request; a longer body of
    /// unknown length becomes a multipart upload with parts of this size.
    /// At least 5 MiB. Default 8 MiB.
    pub part_size: usize,
    /// Parts of a multipart put in flight at once (memory: about
    /// `(part_concurrency + 1) * part_size`). Default 4.
    pub part_concurrency: usize,
    /// The largest object a single CopyObject copies (S3: 5 GiB); larger
    /// copies go part by part with UploadPartCopy.
    pub max_copy_object_size: u64,
    /// The part size for UploadPartCopy. Default 512 MiB.
    pub copy_part_size: u64,
    /// How to learn whether create-only puts work.
    pub create_only: CreateOnlySupport,
    /// The most a TCP (and TLS) connection to the store may take to open.
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// The most one request attempt may wait for the answer's headers,
    /// the request body's sending included: a store that accepts
    /// connections but never answers (a stopped process, a black-holed
    /// network) fails the attempt after this long. Replayable requests
    /// get up to three attempts. Default 120 s.
    pub request_timeout: Duration,
}

impl Default for S3Tuning {
    fn default() -> Self {
        Self {
            part_size: 8 << 20,
            part_concurrency: 4,
            max_copy_object_size: 5 << 30,
            copy_part_size: 512 << 20,
            create_only: CreateOnlySupport::Probe,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
        }
    }
}

impl S3Tuning {
    pub(crate) fn check(&self) -> StoreResult<()> {
        let min = crate::MIN_PART_SIZE;
        if (self.part_size as u64) < min || self.copy_part_size < min || self.max_copy_object_size < min {
            return Err(StoreError::Config(format!(
                "S3 part sizes and the copy limit must be at least {min} bytes (S3's minimum part size)"
            )));
        }
        if self.part_concurrency == 0 {
            return Err(StoreError::Config("part_concurrency must be at least 1".into()));
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err(StoreError::Config(
                "the S3 connect and request timeouts must be above zero".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |name| map.get(name).cloned()
    }

    fn bucket() -> BucketName {
        BucketName::parse("uploads").unwrap()
    }

    #[test]
    fn aws_defaults_to_virtual_hosted_https() {
        let c = S3StoreConfig::from_lookup(
            bucket(),
            lookup(&[
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_ACCESS_KEY_ID", "AKIA"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
            ]),
        )
        .unwrap();
        assert_eq!(c.endpoint, "https://s3.eu-west-1.amazonaws.com");
        assert!(!c.path_style && !c.allow_http && c.session_token.is_none());
        let e = c.endpoint().unwrap();
        assert_eq!(e.host, "uploads.s3.eu-west-1.amazonaws.com");
        assert_eq!(e.base_path, "");
    }

    #[test]
    fn a_custom_endpoint_is_path_style_and_http_needs_consent() {
        let vars = [
            ("AWS_REGION", "garage"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:3900"),
            ("AWS_ACCESS_KEY_ID", "GK1"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "FQoGZXIvYXdzE"),
        ];
        let err = S3StoreConfig::from_lookup(bucket(), lookup(&vars)).unwrap_err();
        assert!(err.to_string().contains("AWS_ALLOW_HTTP"), "{err}");
        let mut with_http = vars.to_vec();
        with_http.push(("AWS_ALLOW_HTTP", "true"));
        let c = S3StoreConfig::from_lookup(bucket(), lookup(&with_http)).unwrap();
        assert!(c.path_style && c.allow_http);
        let e = c.endpoint().unwrap();
        assert_eq!(
            (e.base_url.as_str(), e.base_path.as_str()),
            ("http://127.0.0.1:3900", "/uploads")
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("FQoGZXIvYXdzE") && !shown.contains("\"s\""),
            "{shown}"
        );
    }

    #[test]
    fn missing_settings_are_named() {
        let err = S3StoreConfig::from_lookup(bucket(), lookup(&[("AWS_REGION", "x")])).unwrap_err();
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
        let err = S3StoreConfig::from_lookup(bucket(), lookup(&[])).unwrap_err();
        assert!(err.to_string().contains("AWS_REGION"), "{err}");
    }

    #[test]
    fn bad_endpoints_are_refused() {
        let mut c = S3StoreConfig::from_lookup(
            bucket(),
            lookup(&[
                ("AWS_REGION", "r"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
            ]),
        )
        .unwrap();
        for bad in ["ftp://x", "https://", "https://host/path", "https://u@host"] {
            c.endpoint = bad.into();
            assert!(matches!(c.endpoint(), Err(StoreError::Config(_))), "{bad}");
        }
        c.endpoint = "https://host:443/".into();
        assert_eq!(c.endpoint().unwrap().host, "uploads.host");
    }
}
