//! The success answers of POST Object: a redirect, 200, 201 with the
//! `PostResponse` XML, or 204 (S3's default).

use chute_core::BucketName;
use chute_core::post_policy::VerifiedPost;
use chute_store::ObjectMeta;
use http::{Response, StatusCode, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Builds the response S3 gives for a stored POST Object.
pub(super) fn success(
    verified: &VerifiedPost,
    bucket: &BucketName,
    meta: &ObjectMeta,
) -> Response<s3s::Body> {
    let etag = format!("\"{}\"", meta.etag);
    let location = format!("/{}/{}", bucket, encode_key(meta.key.as_str()));
    if let Some(redirect) = verified
        .success_action_redirect
        .as_deref()
        .filter(|r| is_http_url(r))
    {
        let sep = if redirect.contains('?') { '&' } else { '?' };
        let target = format!(
            "{redirect}{sep}bucket={}&key={}&etag={}",
            enc(bucket.as_str()),
            enc(meta.key.as_str()),
            enc(&etag)
        );
        return Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::ETAG, &etag)
            .header(header::LOCATION, target)
            .body(s3s::Body::empty())
            .unwrap_or_default();
    }
    match verified.success_action_status {
        Some(200) => empty(StatusCode::OK, &etag, &location),
        Some(201) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                xml_escape(&location),
                xml_escape(bucket.as_str()),
                xml_escape(meta.key.as_str()),
                xml_escape(&etag)
            );
            with_headers(StatusCode::CREATED, &etag, &location)
                .header(header::CONTENT_TYPE, "application/xml")
                .body(s3s::Body::from(xml))
                .unwrap_or_default()
        }
        _ => empty(StatusCode::NO_CONTENT, &etag, &location),
    }
}

/// Refuses a `success_action_redirect` that could not become a `Location`
/// header, before anything is stored. (A value that is not an http(s) URL
/// is ignored, as S3 does, and the status answer is used instead.)
pub(super) fn check_redirect(verified: &VerifiedPost) -> Result<(), super::PostObjectError> {
    match verified.success_action_redirect.as_deref() {
        Some(r) if is_http_url(r) && http::HeaderValue::from_str(r).is_err() => Err(
            super::PostObjectError::InvalidField(format!("success_action_redirect {r:?} is not a valid URL")),
        ),
        _ => Ok(()),
    }
}

fn with_headers(status: StatusCode, etag: &str, location: &str) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header(header::ETAG, etag)
        .header(header::LOCATION, location)
}

fn empty(status: StatusCode, etag: &str, location: &str) -> Response<s3s::Body> {
    with_headers(status, etag, location)
        .body(s3s::Body::empty())
        .unwrap_or_default()
}

fn is_http_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

fn encode_key(key: &str) -> String {
    key.split('/').map(enc).collect::<Vec<_>>().join("/")
}

fn xml_escape(s: &str) -> String {
    quick_xml::escape::partial_escape(s).into_owned()
}
