//! SigV4 canonical forms: URI encoding, the canonical query string, the
//! canonical headers and signed-headers list, and the canonical request.
//!
//! S3 encodes each path segment once (no double encoding, unlike other
//! AWS services) and keeps only RFC 3986's unreserved characters.

use super::SignError;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved set (`A-Z a-z 0-9 - _ . ~`) is encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes `s` keeping only unreserved characters (`/` is encoded too).
pub fn uri_encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Encodes each `/`-separated segment of a decoded path, keeping the `/`s.
/// An empty path becomes `/`.
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    path.split('/').map(uri_encode).collect::<Vec<_>>().join("/")
}

/// The canonical query string: names and values encoded, sorted by encoded
/// name then encoded value, joined with `&`.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Canonical headers (`name:value\n` each, lowercased, trimmed, inner runs
/// of spaces folded, sorted, repeated names joined with `,`) and the
/// `;`-separated signed-headers list.
pub fn canonical_headers(headers: &[(String, String)]) -> Result<(String, String), SignError> {
    let mut normalised: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(SignError::InvalidHeaderName(name));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(SignError::InvalidHeaderValue(name));
        }
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match normalised.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => normalised.push((name, value)),
        }
    }
    normalised.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical = normalised
        .iter()
        .map(|(n, v)| format!("{n}:{v}\n"))
        .collect::<String>();
    let signed = normalised
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    Ok((canonical, signed))
}

/// The canonical request: method, URI, query, headers, signed headers, payload hash.
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
    )
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn encodes_segments_once() {
        assert_eq!(canonical_uri("/a b/é+x~(1).txt"), "/a%20b/%C3%A9%2Bx~%281%29.txt");
        assert_eq!(canonical_uri("/a%20b"), "/a%2520b");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
    }

    #[test]
    fn query_sorted_by_encoded_name_then_value() {
        let q = pairs(&[("b", "2"), ("a", "z"), ("a", "y"), ("A", "x"), ("k", "a/b=c")]);
        assert_eq!(canonical_query(&q), "A=x&a=y&a=z&b=2&k=a%2Fb%3Dc");
        assert_eq!(canonical_query(&pairs(&[("uploads", "")])), "uploads=");
    }

    #[test]
    fn headers_lowercased_trimmed_folded_sorted() {
        let h = pairs(&[
            ("X-Amz-Date", " 20130524T000000Z "),
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("X-Amz-Meta-A", "a   b\t c"),
            ("x-amz-meta-a", "d"),
        ]);
        let (canonical, signed) = canonical_headers(&h).unwrap_or_default();
        assert_eq!(
            canonical,
            "host:examplebucket.s3.amazonaws.com\nx-amz-date:20130524T000000Z\nx-amz-meta-a:a b c,d\n"
        );
        assert_eq!(signed, "host;x-amz-date;x-amz-meta-a");
    }

    #[test]
    fn rejects_bad_header_names_and_values() {
        assert!(canonical_headers(&pairs(&[("bad name", "x")])).is_err());
        assert!(canonical_headers(&pairs(&[("x", "a\r\nb: c")])).is_err());
    }
}
