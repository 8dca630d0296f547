//! Signing outgoing requests: presigned URLs (query authentication, as
//! `generate_presigned_url` makes them) and `Authorization` headers.
//!
//! Output matches botocore byte for byte (the integration tests check it):
//! the caller's query parameters first in their order, then the
//! `X-Amz-*` parameters, `X-Amz-Signature` last. No checksum parameter is
//! ever added: an empty-body checksum would make every upload fail.

use super::canonical::{canonical_headers, canonical_query, canonical_request, canonical_uri, uri_encode};
use super::{
    ALGORITHM, Credentials, MAX_PRESIGN_EXPIRY, SignError, SigningKeyCache, UNSIGNED_PAYLOAD, amz_date,
    credential_scope, hmac_sha256, signing_key, string_to_sign,
};
use crate::{BucketName, ObjectKey};
use time::{OffsetDateTime, UtcOffset};

/// What to presign: one S3 operation on one object.
#[derive(Debug, Clone)]
pub struct PresignRequest<'a> {
    /// HTTP method, e.g. `GET`, `PUT`.
    pub method: &'a str,
    /// Service endpoint, `http(s)://host[:port]`, e.g. `http://127.0.0.1:9000`.
    pub endpoint: &'a str,
    /// Bucket name; validated here.
    pub bucket: &'a str,
    /// Object key.
    pub key: &'a ObjectKey,
    /// `true` for `endpoint/bucket/key`, `false` for `bucket.endpoint/key`.
    pub path_style: bool,
    /// Signing region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Validity, 1 s ..= 7 days in whole seconds.
    pub expires_in: std::time::Duration,
    /// Signing time.
    pub now: OffsetDateTime,
    /// Extra query parameters (decoded), e.g. `partNumber`, `uploadId`.
    pub query: Vec<(String, String)>,
    /// Extra headers the client must send with these exact values (signed);
    /// `host` is always signed and must not be given here.
    pub headers: Vec<(String, String)>,
}

/// Presigns `req` with `creds`, returning the full URL.
pub fn presign_url(req: &PresignRequest<'_>, creds: &Credentials) -> Result<String, SignError> {
    let date = req.now.to_offset(UtcOffset::UTC).date();
    presign_with_key(
        req,
        creds,
        &signing_key(&creds.secret_key, date, req.region, "s3"),
    )
}

/// [`presign_url`] with the signing key taken from `cache`.
pub fn presign_url_cached(
    req: &PresignRequest<'_>,
    creds: &Credentials,
    cache: &SigningKeyCache,
) -> Result<String, SignError> {
    let date = req.now.to_offset(UtcOffset::UTC).date();
    let key = cache.get(&creds.access_key, &creds.secret_key, date, req.region, "s3");
    presign_with_key(req, creds, &key)
}

fn presign_with_key(
    req: &PresignRequest<'_>,
    creds: &Credentials,
    key: &[u8; 32],
) -> Result<String, SignError> {
    let secs = req.expires_in.as_secs();
    if req.expires_in.subsec_nanos() != 0 || secs == 0 || req.expires_in > MAX_PRESIGN_EXPIRY {
        return Err(SignError::ExpiresOutOfRange(req.expires_in));
    }
    let bucket = BucketName::parse(req.bucket)?;
    let (scheme, authority) = split_endpoint(req.endpoint)?;
    let (host, path) = if req.path_style {
        (authority.to_owned(), format!("/{bucket}/{}", req.key.as_str()))
    } else {
        (format!("{bucket}.{authority}"), format!("/{}", req.key.as_str()))
    };
    for (name, _) in &req.query {
        if name.to_ascii_lowercase().starts_with("x-amz-") {
            return Err(SignError::ReservedParameter(name.clone()));
        }
    }
    let mut headers = vec![("host".to_owned(), host_header(scheme, &host))];
    for (name, value) in &req.headers {
        if name.trim().eq_ignore_ascii_case("host") {
            return Err(SignError::ReservedParameter(name.clone()));
        }
        headers.push((name.clone(), value.clone()));
    }
    let (canonical_hdrs, signed_headers) = canonical_headers(&headers)?;

    let amz_date = amz_date(req.now);
    let scope = credential_scope(req.now.to_offset(UtcOffset::UTC).date(), req.region, "s3");
    let mut query = req.query.clone();
    query.extend([
        ("X-Amz-Algorithm".to_owned(), ALGORITHM.to_owned()),
        (
            "X-Amz-Credential".to_owned(),
            format!("{}/{scope}", creds.access_key),
        ),
        ("X-Amz-Date".to_owned(), amz_date.clone()),
        ("X-Amz-Expires".to_owned(), secs.to_string()),
        ("X-Amz-SignedHeaders".to_owned(), signed_headers.clone()),
    ]);
    let uri = canonical_uri(&path);
    let request = canonical_request(
        req.method,
        &uri,
        &canonical_query(&query),
        &canonical_hdrs,
        &signed_headers,
        UNSIGNED_PAYLOAD,
    );
    let signature = hex::encode(hmac_sha256(
        key,
        string_to_sign(&amz_date, &scope, &request).as_bytes(),
    ));
    query.push(("X-Amz-Signature".to_owned(), signature));
    let query_string = query
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    Ok(format!("{scheme}://{host}{uri}?{query_string}"))
}

/// An outgoing request to sign with an `Authorization` header.
#[derive(Debug, Clone)]
pub struct HeaderSignRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Decoded path, e.g. `/bucket/my key.txt`; each segment is encoded here.
    pub path: &'a str,
    /// Decoded query parameters.
    pub query: &'a [(String, String)],
    /// Headers to sign; must include `host`. Must not include `authorization`,
    /// `x-amz-date` or `x-amz-content-sha256`, which are added.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    pub payload_sha256: &'a str,
    /// Signing region.
    pub region: &'a str,
    /// Signing service, `s3` for S3.
    pub service: &'a str,
    /// Signing time.
    pub now: OffsetDateTime,
}

/// Signs `req`, returning the headers to add: `authorization`, `x-amz-date`
/// and `x-amz-content-sha256`.
pub fn sign_headers(
    req: &HeaderSignRequest<'_>,
    creds: &Credentials,
) -> Result<Vec<(String, String)>, SignError> {
    let mut headers = Vec::with_capacity(req.headers.len() + 2);
    let mut has_host = false;
    for (name, value) in req.headers {
        let lower = name.trim().to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "authorization" | "x-amz-date" | "x-amz-content-sha256"
        ) {
            return Err(SignError::ReservedParameter(name.clone()));
        }
        has_host |= lower == "host";
        headers.push((name.clone(), value.clone()));
    }
    if !has_host {
        return Err(SignError::MissingHost);
    }
    let amz_date = amz_date(req.now);
    headers.push(("x-amz-date".to_owned(), amz_date.clone()));
    headers.push(("x-amz-content-sha256".to_owned(), req.payload_sha256.to_owned()));
    let (canonical_hdrs, signed_headers) = canonical_headers(&headers)?;
    let request = canonical_request(
        req.method,
        &canonical_uri(req.path),
        &canonical_query(req.query),
        &canonical_hdrs,
        &signed_headers,
        req.payload_sha256,
    );
    let date = req.now.to_offset(UtcOffset::UTC).date();
    let scope = credential_scope(date, req.region, req.service);
    let key = signing_key(&creds.secret_key, date, req.region, req.service);
    let signature = hex::encode(hmac_sha256(
        &key,
        string_to_sign(&amz_date, &scope, &request).as_bytes(),
    ));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope},SignedHeaders={signed_headers},Signature={signature}",
        creds.access_key
    );
    Ok(vec![
        ("authorization".to_owned(), authorization),
        ("x-amz-date".to_owned(), amz_date),
        ("x-amz-content-sha256".to_owned(), req.payload_sha256.to_owned()),
    ])
}

/// Splits `http(s)://authority[/]` into scheme and authority.
fn split_endpoint(endpoint: &str) -> Result<(&'static str, &str), SignError> {
    let invalid = || SignError::InvalidEndpoint(endpoint.to_owned());
    let (scheme, rest) = if let Some(rest) = endpoint.strip_prefix("https://") {
        ("https", rest)
    } else if let Some(rest) = endpoint.strip_prefix("http://") {
        ("http", rest)
    } else {
        return Err(invalid());
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(invalid());
    }
    Ok((scheme, authority))
}

/// The `host` header value: the authority without a default port, as botocore sends it.
fn host_header(scheme: &str, authority: &str) -> String {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn example_creds() -> Credentials {
        Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    #[test]
    fn aws_presigned_url_example() {
        // "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)".
        let key = ObjectKey::parse("test.txt").unwrap_or_else(|e| panic!("{e}"));
        let req = PresignRequest {
            method: "GET",
            endpoint: "https://s3.amazonaws.com",
            bucket: "examplebucket",
            key: &key,
            path_style: false,
            region: "us-east-1",
            expires_in: std::time::Duration::from_secs(86400),
            now: datetime!(2013-05-24 00:00:00 UTC),
            query: vec![],
            headers: vec![],
        };
        let url = presign_url(&req, &example_creds()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            url,
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
        let cache = SigningKeyCache::default();
        assert_eq!(presign_url_cached(&req, &example_creds(), &cache), Ok(url));
    }

    #[test]
    fn presign_rejects_bad_expiry_endpoint_and_reserved_names() {
        let key = ObjectKey::parse("a").unwrap_or_else(|e| panic!("{e}"));
        let base = PresignRequest {
            method: "GET",
            endpoint: "http://127.0.0.1:9000",
            bucket: "bucket",
            key: &key,
            path_style: true,
            region: "us-east-1",
            expires_in: std::time::Duration::from_secs(60),
            now: datetime!(2013-05-24 00:00:00 UTC),
            query: vec![],
            headers: vec![],
        };
        let c = example_creds();
        assert!(presign_url(&base, &c).is_ok());
        for secs in [0, 7 * 24 * 3600 + 1] {
            let r = PresignRequest {
                expires_in: std::time::Duration::from_secs(secs),
                ..base.clone()
            };
            assert!(matches!(
                presign_url(&r, &c),
                Err(SignError::ExpiresOutOfRange(_))
            ));
        }
        let r = PresignRequest {
            endpoint: "ftp://x",
            ..base.clone()
        };
        assert!(matches!(presign_url(&r, &c), Err(SignError::InvalidEndpoint(_))));
        let r = PresignRequest {
            query: vec![("X-Amz-Signature".into(), "x".into())],
            ..base.clone()
        };
        assert!(matches!(
            presign_url(&r, &c),
            Err(SignError::ReservedParameter(_))
        ));
        let r = PresignRequest {
            bucket: "Bad_Bucket",
            ..base
        };
        assert!(matches!(presign_url(&r, &c), Err(SignError::InvalidBucket(_))));
    }

    #[test]
    fn aws_get_object_header_example() {
        // "Signature Calculations for the Authorization Header": GET Object.
        let headers = vec![
            ("Host".to_owned(), "examplebucket.s3.amazonaws.com".to_owned()),
            ("Range".to_owned(), "bytes=0-9".to_owned()),
        ];
        let req = HeaderSignRequest {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &headers,
            payload_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            region: "us-east-1",
            service: "s3",
            now: datetime!(2013-05-24 00:00:00 UTC),
        };
        let added = sign_headers(&req, &example_creds()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            added[0].1,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(added[1], ("x-amz-date".to_owned(), "20130524T000000Z".to_owned()));
    }

    #[test]
    fn sign_headers_requires_host() {
        let req = HeaderSignRequest {
            method: "GET",
            path: "/",
            query: &[],
            headers: &[],
            payload_sha256: UNSIGNED_PAYLOAD,
            region: "us-east-1",
            service: "s3",
            now: datetime!(2013-05-24 00:00:00 UTC),
        };
        assert_eq!(sign_headers(&req, &example_creds()), Err(SignError::MissingHost));
    }
}
