//! The tus 1.0 request headers as typed values: each parser takes the raw
//! header text and either returns the value or a [`HeaderError`] naming
//! the header. They are total (never panic on any input) so fuzz targets
//! can call them directly; HTTP status mapping is the caller's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest as _;

/// The only protocol version this server speaks.
pub const TUS_VERSION: &str = "1.0.0";

/// The most bytes of `Upload-Metadata` accepted (tusd allows 4 KiB too).
pub const MAX_METADATA_LEN: usize = 4096;

/// The most partial uploads one final upload may join.
pub const MAX_CONCAT_PARTS: usize = 1000;

/// A header that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// `Tus-Resumable` is missing or names another version (412).
    #[error("Tus-Resumable must be {TUS_VERSION}")]
    UnsupportedVersion,
    /// A header that must be a non-negative decimal integer is not.
    #[error("{0} must be a non-negative decimal integer")]
    NotAnInteger(&'static str),
    /// `Upload-Metadata` is over [`MAX_METADATA_LEN`] bytes.
    #[error("Upload-Metadata is longer than {MAX_METADATA_LEN} bytes")]
    MetadataTooLong,
    /// `Upload-Metadata` is not `key base64,key base64,...`.
    #[error("Upload-Metadata is malformed: {0}")]
    BadMetadata(&'static str),
    /// `Upload-Checksum` is not `<algorithm> <base64 digest>`.
    #[error("Upload-Checksum must be `<algorithm> <base64 digest>` with a digest of the algorithm's length")]
    BadChecksum,
    /// `Upload-Checksum` names an algorithm this server does not support.
    #[error("Upload-Checksum algorithm is not one of md5, sha1, sha256, crc32")]
    UnsupportedChecksum,
    /// `Upload-Concat` is not `partial` or `final;<url> <url>...`.
    #[error("Upload-Concat must be `partial` or `final;<url> <url>...` (at most {MAX_CONCAT_PARTS} uploads)")]
    BadConcat,
    /// `Upload-Defer-Length` is not `1`.
    #[error("Upload-Defer-Length must be 1")]
    BadDeferLength,
}

/// Checks `Tus-Resumable`.
pub fn check_resumable(value: Option<&str>) -> Result<(), HeaderError> {
    match value {
        Some(v) if v.trim() == TUS_VERSION => Ok(()),
        _ => Err(HeaderError::UnsupportedVersion),
    }
}

/// Reads an integer header such as `Upload-Length` or `Upload-Offset`:
/// ASCII digits only (no sign, no spaces inside), at most `u64::MAX`.
pub fn parse_u64(name: &'static str, value: &str) -> Result<u64, HeaderError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::NotAnInteger(name));
    }
    v.parse().map_err(|_| HeaderError::NotAnInteger(name))
}

/// Checks `Upload-Defer-Length` (only `1` is defined).
pub fn check_defer_length(value: &str) -> Result<(), HeaderError> {
    if value.trim() == "1" {
        Ok(())
    } else {
        Err(HeaderError::BadDeferLength)
    }
}

/// One `Upload-Metadata` pair; the value is the decoded bytes, absent for
/// a key sent without a value.
pub type MetadataPair = (String, Option<Vec<u8>>);

/// Reads `Upload-Metadata`: comma-separated `key base64value` pairs (the
/// value optional), keys unique, non-empty, ASCII without spaces or commas.
pub fn parse_metadata(value: &str) -> Result<Vec<MetadataPair>, HeaderError> {
    if value.len() > MAX_METADATA_LEN {
        return Err(HeaderError::MetadataTooLong);
    }
    let mut out: Vec<MetadataPair> = Vec::new();
    if value.trim().is_empty() {
        return Ok(out);
    }
    for pair in value.split(',') {
        let pair = pair.trim();
        let (key, encoded) = match pair.split_once(' ') {
            Some((k, v)) => (k, Some(v.trim())),
            None => (pair, None),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(HeaderError::BadMetadata(
                "a key is empty or has spaces or control characters",
            ));
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err(HeaderError::BadMetadata("a key appears twice"));
        }
        let decoded = match encoded {
            None | Some("") => None,
            Some(v) => Some(
                B64.decode(v)
                    .map_err(|_| HeaderError::BadMetadata("a value is not base64"))?,
            ),
        };
        out.push((key.to_owned(), decoded));
    }
    Ok(out)
}

/// Writes metadata back in the header's form.
pub fn encode_metadata(pairs: &[MetadataPair]) -> String {
    pairs
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k} {}", B64.encode(v)),
            None => k.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The first of `keys` present in `pairs` with a UTF-8 value.
pub fn metadata_value<'a>(pairs: &'a [MetadataPair], keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|want| {
        pairs
            .iter()
            .find(|(k, _)| k == want)
            .and_then(|(_, v)| v.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
    })
}

/// The checksum algorithms of the tus checksum extension this server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TusChecksumAlgorithm {
    /// MD5 (16 bytes).
    Md5,
    /// SHA-1 (20 bytes).
    Sha1,
    /// SHA-256 (32 bytes).
    Sha256,
    /// CRC-32 ISO-HDLC, big-endian (4 bytes).
    Crc32,
}

impl TusChecksumAlgorithm {
    /// Every algorithm, as `Tus-Checksum-Algorithm` lists them.
    pub const ALL: [Self; 4] = [Self::Md5, Self::Sha1, Self::Sha256, Self::Crc32];

    /// The name in `Upload-Checksum`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Crc32 => "crc32",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Crc32 => 4,
        }
    }

    /// `Tus-Checksum-Algorithm`'s value.
    pub fn header_value() -> String {
        Self::ALL.map(Self::as_str).join(",")
    }
}

/// A parsed `Upload-Checksum`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadChecksum {
    /// The algorithm.
    pub algorithm: TusChecksumAlgorithm,
    /// The expected raw digest of the PATCH body.
    pub digest: Vec<u8>,
}

/// Reads `Upload-Checksum: <algorithm> <base64 digest>`.
pub fn parse_checksum(value: &str) -> Result<UploadChecksum, HeaderError> {
    let (name, encoded) = value.trim().split_once(' ').ok_or(HeaderError::BadChecksum)?;
    let algorithm = TusChecksumAlgorithm::ALL
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(name))
        .ok_or(HeaderError::UnsupportedChecksum)?;
    let digest = B64.decode(encoded.trim()).map_err(|_| HeaderError::BadChecksum)?;
    if digest.len() != algorithm.digest_len() {
        return Err(HeaderError::BadChecksum);
    }
    Ok(UploadChecksum { algorithm, digest })
}

/// Hashes a PATCH body as it streams.
#[derive(Clone)]
pub enum BodyHasher {
    /// MD5.
    Md5(md5::Md5),
    /// Any algorithm S3 also has.
    Other(Box<chute_core::ChecksumHasher>),
}

impl std::fmt::Debug for BodyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyHasher")
    }
}

impl BodyHasher {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: TusChecksumAlgorithm) -> Self {
        use chute_core::ChecksumAlgorithm as S3;
        match algorithm {
            TusChecksumAlgorithm::Md5 => Self::Md5(md5::Md5::new()),
            TusChecksumAlgorithm::Sha1 => Self::Other(Box::new(chute_core::ChecksumHasher::new(S3::Sha1))),
            TusChecksumAlgorithm::Sha256 => {
                Self::Other(Box::new(chute_core::ChecksumHasher::new(S3::Sha256)))
            }
            TusChecksumAlgorithm::Crc32 => Self::Other(Box::new(chute_core::ChecksumHasher::new(S3::Crc32))),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Md5(h) => h.update(data),
            Self::Other(h) => h.update(data),
        }
    }

    /// The raw digest.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Md5(h) => h.finalize().to_vec(),
            Self::Other(h) => h.finish().value,
        }
    }
}

/// A parsed `Upload-Concat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concat {
    /// This upload is a part of a later final upload.
    Partial,
    /// This upload joins the partial uploads with these ids, in order.
    Final(Vec<String>),
}

/// Reads `Upload-Concat`. A final upload's URLs may be absolute or
/// relative; only their last path segment (the upload id) counts, and it
/// must look like an id this server hands out.
pub fn parse_concat(value: &str) -> Result<Concat, HeaderError> {
    let value = value.trim();
    if value == "partial" {
        return Ok(Concat::Partial);
    }
    let urls = value.strip_prefix("final;").ok_or(HeaderError::BadConcat)?;
    let ids: Vec<String> = urls
        .split(' ')
        .filter(|u| !u.is_empty())
        .map(|u| {
            let path = u.split(['?', '#']).next().unwrap_or(u);
            let id = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            if is_upload_id(id) {
                Ok(id.to_owned())
            } else {
                Err(HeaderError::BadConcat)
            }
        })
        .collect::<Result<_, _>>()?;
    if ids.is_empty() || ids.len() > MAX_CONCAT_PARTS {
        return Err(HeaderError::BadConcat);
    }
    Ok(Concat::Final(ids))
}

/// Whether `id` has the shape of an upload id (1 to 64 of `[A-Za-z0-9_-]`),
/// so it is safe inside a store key.
pub fn is_upload_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn versions() {
        assert!(check_resumable(Some("1.0.0")).is_ok());
        assert_eq!(check_resumable(None), Err(HeaderError::UnsupportedVersion));
        assert_eq!(
            check_resumable(Some("0.2.2")),
            Err(HeaderError::UnsupportedVersion)
        );
    }

    #[test]
    fn integers() {
        assert_eq!(parse_u64("Upload-Offset", "0"), Ok(0));
        assert_eq!(parse_u64("Upload-Offset", " 42 "), Ok(42));
        assert_eq!(parse_u64("Upload-Length", "18446744073709551615"), Ok(u64::MAX));
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "1e3",
            "18446744073709551616",
            "0x10",
            "1 2",
        ] {
            assert!(parse_u64("Upload-Length", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_round_trips() {
        let m = parse_metadata(
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential,filetype dGV4dC9wbGFpbg==",
        )
        .unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            metadata_value(&m, &["name", "filename"]),
            Some("world_domination_plan.pdf")
        );
        assert_eq!(m[1], ("is_confidential".into(), None));
        assert_eq!(parse_metadata(&encode_metadata(&m)).unwrap(), m);
        assert_eq!(parse_metadata("").unwrap(), vec![]);
    }

    #[test]
    fn bad_metadata() {
        for bad in ["a !!!", "a YQ==,a YQ==", ",", "a\tb YQ=="] {
            assert!(parse_metadata(bad).is_err(), "{bad}");
        }
        let huge = format!("filename {}", "QUFB".repeat(2000));
        assert_eq!(parse_metadata(&huge), Err(HeaderError::MetadataTooLong));
    }

    #[test]
    fn checksums() {
        let c = parse_checksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=").unwrap();
        assert_eq!(c.algorithm, TusChecksumAlgorithm::Sha1);
        let mut h = BodyHasher::new(c.algorithm);
        h.update(b"hello world");
        assert_eq!(h.finish(), c.digest);
        let md5 = parse_checksum("md5 XrY7u+Ae7tCTyyK7j1rNww==").unwrap();
        let mut h = BodyHasher::new(md5.algorithm);
        h.update(b"hello world");
        assert_eq!(h.finish(), md5.digest);
        assert_eq!(
            parse_checksum("whirlpool AAAA"),
            Err(HeaderError::UnsupportedChecksum)
        );
        assert_eq!(parse_checksum("sha1 AAAA"), Err(HeaderError::BadChecksum));
        assert_eq!(parse_checksum("sha1"), Err(HeaderError::BadChecksum));
        assert_eq!(TusChecksumAlgorithm::header_value(), "md5,sha1,sha256,crc32");
    }

    #[test]
    fn concat() {
        assert_eq!(parse_concat("partial"), Ok(Concat::Partial));
        assert_eq!(
            parse_concat("final;/files/a1 http://x:1/files/b2?q https://y/files/c_3/"),
            Ok(Concat::Final(vec!["a1".into(), "b2".into(), "c_3".into()]))
        );
        for bad in [
            "final;",
            "final",
            "final;/files/../x/..",
            "final;/files/a%2F",
            "full",
        ] {
            assert!(parse_concat(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsers_are_total(s in ".{0,300}") {
            let _ = parse_u64("Upload-Length", &s);
            let _ = parse_metadata(&s);
            let _ = parse_checksum(&s);
            let _ = parse_concat(&s);
            let _ = check_defer_length(&s);
            let _ = check_resumable(Some(&s));
        }

        #[test]
        fn metadata_encodes_and_parses_back(
            pairs in proptest::collection::btree_map("[a-zA-Z0-9_.-]{1,12}", proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40)), 0..6)
        ) {
            let pairs: Vec<MetadataPair> = pairs.into_iter().collect();
            prop_assert_eq!(parse_metadata(&encode_metadata(&pairs)).unwrap(), pairs);
        }

        #[test]
        fn concat_ids_are_safe(s in ".{0,200}") {
            if let Ok(Concat::Final(ids)) = parse_concat(&s) {
                prop_assert!(ids.iter().all(|id| is_upload_id(id)));
            }
        }
    }
}
