//! Signed S3 requests over reqwest (rustls with the ring provider): URL
//! and `Host` from the validated endpoint, SigV4 `Authorization` from
//! `chute_core::sigv4::sign_headers`, retries for requests whose body can
//! be sent again, and the one mapping from S3 error answers to
//! [`StoreError`].

use super::config::{Endpoint, S3StoreConfig, S3Tuning};
use super::xml;
use crate::{StoreError, StoreResult};
use bytes::Bytes;
use chute_core::sigv4::canonical::{canonical_uri, uri_encode};
use chute_core::sigv4::{HeaderSignRequest, UNSIGNED_PAYLOAD, sign_headers};
use chute_core::{BucketName, Credentials, ObjectKey};
use futures::StreamExt as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use rustls_platform_verifier::BuilderVerifierExt as _;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Attempts for a request whose body can be replayed.
const ATTEMPTS: u32 = 3;
/// The most of an error answer we read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A request body.
pub(crate) enum Body {
    /// No body.
    Empty,
    /// A body in memory: replayable, so the request may be retried.
    Bytes(Bytes),
    /// A body in memory in pieces, sent without joining them; replayable.
    Chunks(Vec<Bytes>),
    /// A streamed body of exactly `len` bytes on the wire, sent once;
    /// `payload` is the `x-amz-content-sha256` value.
    Stream {
        body: reqwest::Body,
        len: u64,
        payload: &'static str,
    },
}

/// One S3 request on the bucket (`key: None`) or an object.
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) key: Option<&'a ObjectKey>,
    /// Decoded query parameters.
    pub(crate) query: Vec<(String, String)>,
    /// Headers to send and sign, lowercase names.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Body,
}

impl<'a> Request<'a> {
    pub(crate) fn new(method: Method, key: Option<&'a ObjectKey>) -> Self {
        Self {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub(crate) fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_owned(), value.into()));
        self
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub(crate) fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    fn upload_id(&self) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == "uploadId")
            .map(|(_, v)| v.as_str())
    }
}

/// The HTTP client and what signing needs.
#[derive(Clone)]
pub(crate) struct S3Client {
    http: reqwest::Client,
    endpoint: Endpoint,
    region: String,
    credentials: Credentials,
    session_token: Option<String>,
    bucket: BucketName,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client")
            .field("endpoint", &self.endpoint.base_url)
            .field("bucket", &self.bucket)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

fn tls_config() -> StoreResult<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_error = |e: rustls::Error| StoreError::Config(format!("TLS setup failed: {e}"));
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_platform_verifier()
        .map_err(tls_error)?
        .with_no_client_auth())
}

impl S3Client {
    pub(crate) fn new(config: &S3StoreConfig, tuning: &S3Tuning) -> StoreResult<Self> {
        let endpoint = config.endpoint()?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .connect_timeout(tuning.connect_timeout)
            // reqwest's read timeout runs from sending the request to the
            // answer's headers, then between reads of the answer's body.
            .read_timeout(tuning.request_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| StoreError::Config(format!("HTTP client setup failed: {e}")))?;
        Ok(Self {
            http,
            endpoint,
            region: config.region.clone(),
            credentials: config.credentials.clone(),
            session_token: config.session_token.clone(),
            bucket: config.bucket.clone(),
        })
    }

    pub(crate) fn bucket(&self) -> &BucketName {
        &self.bucket
    }

    /// `x-amz-copy-source` for `key` in this bucket.
    pub(crate) fn copy_source(&self, key: &ObjectKey) -> String {
        format!("/{}/{}", self.bucket, canonical_uri(key.as_str()))
    }

    /// Sends `req`, retrying a replayable request on connection failures,
    /// 5xx and 409 answers; any non-2xx answer becomes a [`StoreError`].
    pub(crate) async fn send(&self, req: Request<'_>) -> StoreResult<Response> {
        let replayable = !matches!(req.body, Body::Stream { .. });
        let mut req = req;
        let mut attempt = 1;
        loop {
            let (body, again) = match std::mem::replace(&mut req.body, Body::Empty) {
                Body::Bytes(b) => (Body::Bytes(b.clone()), Body::Bytes(b)),
                Body::Chunks(c) => (Body::Chunks(c.clone()), Body::Chunks(c)),
                other => (other, Body::Empty),
            };
            req.body = again;
            let result = self.send_once(&req, body)?.await;
            let retry = replayable
                && attempt < ATTEMPTS
                && match &result {
                    // 409: AWS's ConditionalRequestConflict, "retry".
                    Ok(resp) => resp.status().is_server_error() || resp.status() == StatusCode::CONFLICT,
                    Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
                };
            if !retry {
                let resp = result.map_err(|e| transport_error(&req, &e))?;
                return self.check(&req, resp).await;
            }
            tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
            attempt += 1;
        }
    }

    /// Builds and signs one attempt; a header that cannot be signed or
    /// sent is an error before anything goes out.
    fn send_once(
        &self,
        req: &Request<'_>,
        body: Body,
    ) -> StoreResult<impl Future<Output = reqwest::Result<Response>> + use<>> {
        let path = match req.key {
            Some(k) => format!("{}/{}", self.endpoint.base_path, k.as_str()),
            None => format!("{}/", self.endpoint.base_path),
        };
        let mut url = format!("{}{}", self.endpoint.base_url, canonical_uri(&path));
        if !req.query.is_empty() {
            let q: Vec<String> = req
                .query
                .iter()
                .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
                .collect();
            url = format!("{url}?{}", q.join("&"));
        }
        let mut headers = vec![("host".to_owned(), self.endpoint.host.clone())];
        headers.extend(req.headers.iter().cloned());
        if let Some(token) = &self.session_token {
            headers.push(("x-amz-security-token".into(), token.clone()));
        }
        let (payload, body) = match body {
            Body::Empty => (UNSIGNED_PAYLOAD, reqwest::Body::from(Bytes::new())),
            Body::Bytes(b) => (UNSIGNED_PAYLOAD, reqwest::Body::from(b)),
            Body::Chunks(pieces) => {
                let len: usize = pieces.iter().map(Bytes::len).sum();
                headers.push(("content-length".into(), len.to_string()));
                let stream = futures::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
                (UNSIGNED_PAYLOAD, reqwest::Body::wrap_stream(stream))
            }
            Body::Stream { body, len, payload } => {
                headers.push(("content-length".into(), len.to_string()));
                (payload, body)
            }
        };
        let signed = sign_headers(
            &HeaderSignRequest {
                method: req.method.as_str(),
                path: &path,
                query: &req.query,
                headers: &headers,
                payload_sha256: payload,
                region: &self.region,
                service: "s3",
                now: OffsetDateTime::now_utc(),
            },
            &self.credentials,
        );
        let signed = signed.map_err(|e| invalid_request(req, &e.to_string()))?;
        let mut map = HeaderMap::new();
        // `host` is set by reqwest from the URL, to the same value.
        for (name, value) in headers.iter().skip(1).chain(&signed) {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid_request(req, &format!("invalid header name {name:?}")))?;
            let v = HeaderValue::from_bytes(value.as_bytes())
                .map_err(|_| invalid_request(req, &format!("invalid value for header {name:?}")))?;
            map.append(n, v);
        }
        Ok(self
            .http
            .request(req.method.clone(), url)
            .headers(map)
            .body(body)
            .send())
    }

    /// Passes a 2xx answer through; maps any other to a [`StoreError`].
    async fn check(&self, req: &Request<'_>, resp: Response) -> StoreResult<Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let content_range = resp
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = read_limited(resp).await;
        let parsed = xml::parse_error(&text);
        Err(self.map_error(req, status, parsed, content_range.as_deref()))
    }

    /// Reads the XML answer of `what`; an S3 error inside a 200 answer
    /// maps as one to `ctx` would.
    pub(crate) async fn read_xml<T: serde::de::DeserializeOwned>(
        &self,
        resp: Response,
        ctx: &Request<'_>,
        what: &str,
    ) -> StoreResult<T> {
        let text = resp
            .text()
            .await
            .map_err(|e| StoreError::Io(broken_answer(&ctx.method, ctx.key, &e)))?;
        xml::parsed(xml::parse(&text, what), |e| {
            self.map_error(ctx, StatusCode::OK, Some(e), None)
        })
    }

    /// The one mapping from an S3 error answer to a [`StoreError`].
    pub(crate) fn map_error(
        &self,
        req: &Request<'_>,
        status: StatusCode,
        error: Option<xml::ErrorBody>,
        content_range: Option<&str>,
    ) -> StoreError {
        let key = || req.key.map(ToString::to_string).unwrap_or_default();
        let upload_id = || req.upload_id().unwrap_or_default().to_owned();
        let (code, message) = match error {
            Some(e) => (e.code, e.message),
            None => (String::new(), String::new()),
        };
        let code = if code.is_empty() {
            // HEAD answers carry no body: go by the status.
            match status.as_u16() {
                404 if req.upload_id().is_some() => "NoSuchUpload".to_owned(),
                404 if req.key.is_some() => "NoSuchKey".to_owned(),
                404 => "NoSuchBucket".to_owned(),
                412 => "PreconditionFailed".to_owned(),
                416 => "InvalidRange".to_owned(),
                403 => "AccessDenied".to_owned(),
                _ => String::new(),
            }
        } else {
            code
        };
        match code.as_str() {
            "NoSuchKey" => StoreError::NoSuchKey { key: key() },
            "NoSuchBucket" => StoreError::NoSuchBucket {
                bucket: self.bucket.to_string(),
            },
            "NoSuchUpload" => StoreError::NoSuchUpload {
                upload_id: upload_id(),
            },
            "PreconditionFailed" => StoreError::PreconditionFailed { key: key() },
            // `bytes */<size>`; without it the caller asks HEAD.
            "InvalidRange" => StoreError::InvalidRange {
                size: content_range
                    .and_then(|r| r.strip_prefix("bytes */"))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(u64::MAX),
            },
            "InvalidPartOrder" => StoreError::InvalidPartOrder,
            "BadDigest" | "InvalidDigest" | "XAmzContentChecksumMismatch" => StoreError::BadDigest,
            "IncompleteBody" => StoreError::LengthMismatch {
                expected: 0,
                received: 0,
            },
            "KeyTooLongError" => StoreError::UnstorableKey { reason: message },
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AuthorizationHeaderMalformed"
            | "ExpiredToken"
            | "InvalidToken"
            | "TokenRefreshRequired"
            | "AccountProblem"
            | "AllAccessDisabled"
            | "InvalidSecurity" => StoreError::AccessDenied {
                message: if message.is_empty() {
                    format!("{} {} answered {status}", req.method, key())
                } else {
                    message
                },
                code,
            },
            _ => StoreError::Backend {
                status: status.as_u16(),
                code,
                message,
            },
        }
    }
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of an answer as text.
async fn read_limited(resp: Response) -> String {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = MAX_ERROR_BODY.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request that got no answer: the message names the request and the
/// whole cause chain (DNS, refused connection, TLS, timeout).
fn transport_error(req: &Request<'_>, e: &reqwest::Error) -> StoreError {
    let kind = if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else if e.is_connect() {
        io::ErrorKind::ConnectionRefused
    } else {
        io::ErrorKind::Other
    };
    StoreError::Io(io::Error::new(
        kind,
        format!(
            "S3 {} on {} failed: {}",
            req.method,
            target(req.key),
            cause_chain(e)
        ),
    ))
}

/// An answer whose body broke off after its headers (the connection
/// closed or timed out, the node could not serve the bytes): names the
/// request and the whole cause chain.
pub(crate) fn broken_answer(method: &Method, key: Option<&ObjectKey>, e: &reqwest::Error) -> io::Error {
    let kind = if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else {
        io::ErrorKind::UnexpectedEof
    };
    io::Error::new(
        kind,
        format!(
            "S3 {method} on {}: the answer broke off: {}",
            target(key),
            cause_chain(e)
        ),
    )
}

/// What a request is on, for messages.
fn target(key: Option<&ObjectKey>) -> String {
    key.map_or_else(|| "the bucket".to_owned(), |k| format!("key {k:?}"))
}

/// `e` and each of its sources, joined with ": ".
fn cause_chain(e: &reqwest::Error) -> String {
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}

/// A request that cannot be sent as asked (a header value S3 cannot carry).
fn invalid_request(req: &Request<'_>, why: &str) -> StoreError {
    StoreError::Io(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("S3 {} cannot be sent: {why}", req.method),
    ))
}

/// An ETag as the contract wants it: without quotes.
pub(crate) fn unquote(etag: &str) -> String {
    let t = etag.trim();
    t.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(t)
        .to_owned()
}
