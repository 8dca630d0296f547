//! Object headers both ways: the standard headers, user metadata
//! (`x-amz-meta-*`) and checksums a write sends, and the [`ObjectMeta`]
//! a GET or HEAD answer describes.
//!
//! S3 metadata values must be ASCII. Like AWS (which decodes and
//! re-encodes them), values that are not plain ASCII travel as RFC 2047
//! encoded words (`=?UTF-8?B?...?=`) and are decoded on the way back; a
//! value that itself starts with `=?` is encoded too, so every value
//! round-trips.

use super::xml::parse_checksum;
use crate::{ObjectHeaders, ObjectMeta};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chute_core::{Checksum, ChecksumAlgorithm, ObjectKey};
use reqwest::header::HeaderMap;
use std::collections::BTreeMap;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

const META_PREFIX: &str = "x-amz-meta-";

/// The headers that store `h` and `metadata` with an object.
pub(crate) fn write_headers(h: &ObjectHeaders, metadata: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let standard = [
        ("content-type", &h.content_type),
        ("cache-control", &h.cache_control),
        ("content-disposition", &h.content_disposition),
        ("content-encoding", &h.content_encoding),
        ("content-language", &h.content_language),
        ("expires", &h.expires),
    ];
    let mut out: Vec<(String, String)> = standard
        .into_iter()
        .filter_map(|(name, v)| v.as_ref().map(|v| (name.to_owned(), v.clone())))
        .collect();
    for (name, value) in metadata {
        out.push((
            format!("{META_PREFIX}{}", name.to_ascii_lowercase()),
            encode_value(value),
        ));
    }
    out
}

/// The Content-MD5 header for digest `md5`.
pub(crate) fn md5_header(md5: &[u8; 16]) -> (String, String) {
    ("content-md5".to_owned(), B64.encode(md5))
}

/// The unquoted ETag a write's answer carries, if any.
pub(crate) fn etag_of(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(super::client::unquote)
}

/// The time an answer's Date header gives, if it parses.
pub(crate) fn date_of(resp: &reqwest::Response) -> Option<OffsetDateTime> {
    resp.headers()
        .get("date")
        .and_then(|v| v.to_str().ok())
        .and_then(http_date)
}

/// The header that asks S3 to keep checksums of `algorithm` for an
/// upload or copy.
pub(crate) fn checksum_algorithm_header(algorithm: ChecksumAlgorithm) -> (String, String) {
    (
        "x-amz-checksum-algorithm".to_owned(),
        algorithm.as_str().to_owned(),
    )
}

/// The header carrying checksum `c`.
pub(crate) fn checksum_header(c: &Checksum) -> (String, String) {
    (c.algorithm.header_name().to_owned(), c.to_header_value())
}

fn needs_encoding(v: &str) -> bool {
    v.starts_with("=?") || v != v.trim() || v.chars().any(|c| !c.is_ascii() || c.is_ascii_control())
}

/// A metadata value as it travels: itself, or one RFC 2047 encoded word.
pub(crate) fn encode_value(v: &str) -> String {
    if needs_encoding(v) {
        format!("=?UTF-8?B?{}?=", B64.encode(v))
    } else {
        v.to_owned()
    }
}

/// A metadata value as the caller wrote it: encoded words (B or Q, UTF-8
/// or ASCII, several separated by whitespace) are decoded; anything else
/// is taken as it is.
pub(crate) fn decode_value(raw: &str) -> String {
    let words: Option<Vec<String>> = raw.split_whitespace().map(decode_word).collect();
    match words {
        Some(w) if !w.is_empty() => w.concat(),
        _ => raw.to_owned(),
    }
}

fn decode_word(word: &str) -> Option<String> {
    let inner = word.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut parts = inner.splitn(3, '?');
    let (charset, encoding, text) = (parts.next()?, parts.next()?, parts.next()?);
    if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("us-ascii") {
        return None;
    }
    let bytes = if encoding.eq_ignore_ascii_case("b") {
        B64.decode(text).ok()?
    } else if encoding.eq_ignore_ascii_case("q") {
        decode_q(text)?
    } else {
        return None;
    };
    String::from_utf8(bytes).ok()
}

fn decode_q(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    Some(out)
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// An HTTP date (`Sat, 21 Nov 2026 12:44:12 GMT`).
pub(crate) fn http_date(s: &str) -> Option<OffsetDateTime> {
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    PrimitiveDateTime::parse(s.trim(), format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// The stored checksum an answer reports, if any.
pub(crate) fn response_checksum(headers: &HeaderMap) -> Option<Checksum> {
    ChecksumAlgorithm::ALL
        .into_iter()
        .find_map(|a| text(headers, a.header_name()).and_then(|v| parse_checksum(a, &v)))
}

/// The part count of a multipart object, from its ETag (`<hex>-N`).
pub(crate) fn parts_count(etag: &str) -> Option<u32> {
    etag.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

/// The metadata a GET or HEAD answer describes, for an object of `size` bytes.
pub(crate) fn object_meta(key: &ObjectKey, headers: &HeaderMap, size: u64) -> ObjectMeta {
    let etag = text(headers, "etag")
        .map(|e| super::client::unquote(&e))
        .unwrap_or_default();
    let metadata = headers
        .iter()
        .filter_map(|(name, value)| {
            let name = name.as_str().strip_prefix(META_PREFIX)?;
            Some((
                name.to_owned(),
                decode_value(&String::from_utf8_lossy(value.as_bytes())),
            ))
        })
        .collect();
    ObjectMeta {
        key: key.clone(),
        size,
        parts_count: text(headers, "x-amz-mp-parts-count")
            .and_then(|n| n.trim().parse().ok())
            .or_else(|| parts_count(&etag)),
        etag,
        last_modified: text(headers, "last-modified")
            .and_then(|d| http_date(&d))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        headers: ObjectHeaders {
            content_type: text(headers, "content-type"),
            cache_control: text(headers, "cache-control"),
            content_disposition: text(headers, "content-disposition"),
            content_encoding: text(headers, "content-encoding"),
            content_language: text(headers, "content-language"),
            expires: text(headers, "expires"),
        },
        metadata,
        checksum: response_checksum(headers),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn metadata_values_round_trip() {
        for v in [
            "plain",
            "ünïcode ok",
            " padded ",
            "=?UTF-8?B?eA==?=",
            "",
            "tab\there",
        ] {
            let sent = encode_value(v);
            assert!(sent.is_ascii() && !sent.contains('\t'), "{sent:?}");
            assert_eq!(decode_value(&sent), v, "{sent:?}");
        }
        assert_eq!(encode_value("plain"), "plain");
    }

    #[test]
    fn encoded_words_as_aws_returns_them_are_decoded() {
        // AWS splits long values into several words; Q encoding too.
        assert_eq!(decode_value("=?UTF-8?B?w7xu?= =?UTF-8?B?w69jb2Rl?="), "ünïcode");
        assert_eq!(decode_value("=?utf-8?Q?caf=C3=A9_au_lait?="), "café au lait");
        assert_eq!(decode_value("=?ISO-8859-1?Q?x?="), "=?ISO-8859-1?Q?x?=");
        assert_eq!(decode_value("a =?UTF-8?B?eA==?="), "a =?UTF-8?B?eA==?=");
    }

    #[test]
    fn http_dates_parse() {
        let d = http_date("Sat, 21 Nov 2026 12:44:12 GMT").unwrap();
        assert_eq!((d.year(), d.hour(), d.second()), (2026, 12, 12));
        assert!(http_date("yesterday").is_none());
    }

    #[test]
    fn answers_become_object_meta() {
        let mut h = HeaderMap::new();
        h.insert("etag", "\"abc-3\"".parse().unwrap());
        h.insert("content-type", "video/mp4".parse().unwrap());
        h.insert("x-amz-meta-note", "=?UTF-8?B?w7w=?=".parse().unwrap());
        h.insert("x-amz-checksum-crc32", "VMfIcQ==".parse().unwrap());
        let key = ObjectKey::parse("k").unwrap();
        let m = object_meta(&key, &h, 7);
        assert_eq!((m.etag.as_str(), m.parts_count, m.size), ("abc-3", Some(3), 7));
        assert_eq!(m.metadata.get("note").map(String::as_str), Some("ü"));
        assert_eq!(m.headers.content_type.as_deref(), Some("video/mp4"));
        assert_eq!(m.checksum.unwrap().algorithm, ChecksumAlgorithm::Crc32);
    }
}
