//! [`Signer`]: signs the three kinds of direct upload (POST form,
//! presigned PUT, presigned UploadPart) for the store the browser talks to:
//! the embedded S3 listener or a real S3 endpoint. Every signature names
//! the exact key the server chose and binds its size and type.

use chute_core::post_policy::PresignedPost;
use chute_core::sigv4::{Credentials, PresignRequest, SigningKeyCache, presign_url_cached};
use chute_core::{BucketName, Checksum, ObjectKey, PostPolicyBuilder};
use std::time::Duration;
use time::OffsetDateTime;

/// Where browsers send bytes, and the credentials that sign for it.
#[derive(Debug)]
pub struct Signer {
    /// The store's public endpoint, `http(s)://host[:port]`.
    pub endpoint: String,
    /// The bucket uploads go to.
    pub bucket: BucketName,
    /// The signing region.
    pub region: String,
    /// `endpoint/bucket/key` URLs (true) or `bucket.endpoint/key`.
    pub path_style: bool,
    /// The signing credentials.
    pub credentials: Credentials,
    cache: SigningKeyCache,
}

/// A presigned request: the URL and the headers the client must send with
/// exactly these values.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignedRequest {
    /// HTTP method.
    pub method: &'static str,
    /// The presigned URL.
    pub url: String,
    /// Headers to send (signed ones included).
    pub headers: std::collections::BTreeMap<String, String>,
}

impl Signer {
    /// A signer for `bucket` at `endpoint`.
    pub fn new(
        endpoint: String,
        bucket: BucketName,
        region: String,
        path_style: bool,
        credentials: Credentials,
    ) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            bucket,
            region,
            path_style,
            credentials,
            cache: SigningKeyCache::default(),
        }
    }

    /// A POST form for exactly `key`, exactly `size` bytes and `content_type`.
    pub fn post_form(
        &self,
        key: &ObjectKey,
        size: u64,
        content_type: &str,
        checksum: Option<&Checksum>,
        expires_in: Duration,
        now: OffsetDateTime,
    ) -> PresignedPost {
        let mut builder = PostPolicyBuilder::new(self.bucket.clone(), key.clone())
            .expires_in(expires_in)
            .content_length_range(size, size)
            .content_type(content_type);
        if let Some(c) = checksum {
            builder = builder.checksum(c);
        }
        let mut post = builder.sign(&self.credentials, &self.region, &self.endpoint, now);
        if !self.path_style {
            post.url = self.virtual_host_url();
        }
        post
    }

    /// A presigned PUT for exactly `key`, binding length, type and checksum.
    pub fn put(
        &self,
        key: &ObjectKey,
        size: u64,
        content_type: &str,
        checksum: Option<&Checksum>,
        expires_in: Duration,
        now: OffsetDateTime,
    ) -> Result<SignedRequest, chute_core::SignError> {
        let mut headers = vec![
            ("content-length".to_owned(), size.to_string()),
            ("content-type".to_owned(), content_type.to_owned()),
        ];
        if let Some(c) = checksum {
            headers.push((c.algorithm.header_name().to_owned(), c.to_header_value()));
        }
        self.presign("PUT", key, Vec::new(), headers, expires_in, now)
    }

    /// A presigned UploadPart for part `number` of `upload_id`, binding the
    /// part's exact length and, when given, its checksum.
    #[allow(clippy::too_many_arguments)]
    pub fn part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        number: u32,
        size: u64,
        checksum: Option<&Checksum>,
        expires_in: Duration,
        now: OffsetDateTime,
    ) -> Result<SignedRequest, chute_core::SignError> {
        let query = vec![
            ("partNumber".to_owned(), number.to_string()),
            ("uploadId".to_owned(), upload_id.to_owned()),
        ];
        let mut headers = vec![("content-length".to_owned(), size.to_string())];
        if let Some(c) = checksum {
            headers.push((c.algorithm.header_name().to_owned(), c.to_header_value()));
        }
        self.presign("PUT", key, query, headers, expires_in, now)
    }

    /// A presigned GET of `key` (links to stored objects).
    pub fn get(
        &self,
        key: &ObjectKey,
        expires_in: Duration,
        now: OffsetDateTime,
    ) -> Result<SignedRequest, chute_core::SignError> {
        self.presign("GET", key, Vec::new(), Vec::new(), expires_in, now)
    }

    fn presign(
        &self,
        method: &'static str,
        key: &ObjectKey,
        query: Vec<(String, String)>,
        headers: Vec<(String, String)>,
        expires_in: Duration,
        now: OffsetDateTime,
    ) -> Result<SignedRequest, chute_core::SignError> {
        let url = presign_url_cached(
            &PresignRequest {
                method,
                endpoint: &self.endpoint,
                bucket: self.bucket.as_str(),
                key,
                path_style: self.path_style,
                region: &self.region,
                expires_in,
                now,
                query,
                headers: headers.clone(),
            },
            &self.credentials,
            &self.cache,
        )?;
        // The browser sets Content-Length itself; listing it tells
        // non-browser clients what the signature expects.
        Ok(SignedRequest {
            method,
            url,
            headers: headers.into_iter().collect(),
        })
    }

    /// The object's unsigned URL, as S3 states a completed upload's
    /// `Location`.
    pub(crate) fn object_url(&self, key: &str) -> String {
        let path = chute_core::sigv4::canonical::canonical_uri(key);
        if !self.path_style && self.endpoint.contains("://") {
            format!("{}/{path}", self.virtual_host_url())
        } else {
            format!("{}/{}/{path}", self.endpoint, self.bucket)
        }
    }

    fn virtual_host_url(&self) -> String {
        match self.endpoint.split_once("://") {
            Some((scheme, authority)) => format!("{scheme}://{}.{authority}", self.bucket),
            None => self.endpoint.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn signer() -> Signer {
        Signer::new(
            "http://127.0.0.1:9000/".into(),
            BucketName::parse("uploads").unwrap(),
            "us-east-1".into(),
            true,
            Credentials {
                access_key: "AKIDEXAMPLE".into(),
                secret_key: "secret-secret-secret".into(),
            },
        )
    }

    const NOW: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

    #[test]
    fn urls_carry_no_checksum_unless_the_client_gave_one() {
        // AWS SDKs put the empty body's CRC32 into presigned URLs by
        // default, which strict stores then hold the real body against.
        let s = signer();
        let key = ObjectKey::parse("tmp/x/a.bin").unwrap();
        let ttl = Duration::from_secs(60);
        let put = s
            .put(&key, 10, "application/octet-stream", None, ttl, NOW)
            .unwrap();
        let part = s.part(&key, "up1", 2, 10, None, ttl, NOW).unwrap();
        for url in [&put.url, &part.url] {
            assert!(!url.to_ascii_lowercase().contains("checksum"), "{url}");
        }
        assert!(part.url.starts_with("http://127.0.0.1:9000/uploads/tmp/x/a.bin?"));
        assert!(part.url.contains("partNumber=2") && part.url.contains("uploadId=up1"));
        assert_eq!(put.headers.get("content-length").map(String::as_str), Some("10"));
        let post = s.post_form(&key, 10, "text/plain", None, ttl, NOW);
        assert!(post.fields.iter().all(|(n, _)| !n.contains("checksum")));
    }

    #[test]
    fn a_given_checksum_is_signed() {
        let s = signer();
        let key = ObjectKey::parse("tmp/x/a.bin").unwrap();
        // SHA-256 of the empty body: legitimate when the client declares it.
        let empty = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        let c = Checksum::from_base64(chute_core::ChecksumAlgorithm::Sha256, empty).unwrap();
        let put = s
            .put(&key, 0, "text/plain", Some(&c), Duration::from_secs(60), NOW)
            .unwrap();
        assert!(put.url.contains("x-amz-checksum-sha256"), "{}", put.url);
        assert_eq!(
            put.headers.get("x-amz-checksum-sha256"),
            Some(&c.to_header_value())
        );
        let post = s.post_form(&key, 0, "text/plain", Some(&c), Duration::from_secs(60), NOW);
        assert!(
            post.fields
                .iter()
                .any(|(n, v)| n == "x-amz-checksum-sha256" && *v == c.to_header_value())
        );
    }
}
