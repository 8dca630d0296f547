//! The S3 XML documents the backend reads (errors, listings, multipart
//! and copy results) as serde structs for quick-xml, and the one it
//! writes (CompleteMultipartUpload). Unknown elements are ignored, so the
//! extra fields of AWS, Garage or MinIO do not matter.

use crate::{CompletedPart, StoreError, StoreResult};
use chute_core::{Checksum, ChecksumAlgorithm};
use quick_xml::escape::escape;
use serde::Deserialize;
use std::fmt::Write as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `<Error>`: S3's error document.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(rename = "Code", default)]
    pub(crate) code: String,
    #[serde(rename = "Message", default)]
    pub(crate) message: String,
}

/// The error document in `text`, if it is one.
pub(crate) fn parse_error(text: &str) -> Option<ErrorBody> {
    if !is_error(text) {
        return None;
    }
    quick_xml::de::from_str(text).ok()
}

/// Whether the root element is `<Error>`: CompleteMultipartUpload and the
/// copies may answer 200 and still fail.
fn is_error(text: &str) -> bool {
    let mut rest = text.trim_start();
    // Skip the declaration and comments.
    while let Some(r) = rest.strip_prefix("<?").or_else(|| rest.strip_prefix("<!--")) {
        let end = if rest.starts_with("<?") { "?>" } else { "-->" };
        rest = r.split_once(end).map_or("", |(_, after)| after).trim_start();
    }
    rest.starts_with("<Error>") || rest.starts_with("<Error ")
}

/// Parses a successful answer's document, or the `<Error>` it holds.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, ParseFailure> {
    if let Some(e) = parse_error(text) {
        return Err(ParseFailure::Error(e));
    }
    quick_xml::de::from_str(text).map_err(|e| {
        ParseFailure::Malformed(StoreError::Backend {
            status: 200,
            code: "MalformedResponse".into(),
            message: format!("cannot read the {what} answer: {e}"),
        })
    })
}

/// Why a 2xx answer's document could not be used.
pub(crate) enum ParseFailure {
    /// It was an `<Error>` document (to map like any error answer).
    Error(ErrorBody),
    /// It was not the document expected.
    Malformed(StoreError),
}

/// An RFC 3339 timestamp in a listing, or the Unix epoch if unreadable.
pub(crate) fn timestamp(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s.trim(), &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Declares a document struct with the `Checksum*` elements S3 puts
/// beside parts and results, and `checksum()` for the first readable one.
/// (`#[serde(flatten)]` would lose quick-xml's number parsing.)
macro_rules! with_checksums {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize)]
        pub(crate) struct $name {
            $($(#[$fm])* pub(crate) $field: $ty,)*
            #[serde(rename = "ChecksumCRC32")]
            crc32: Option<String>,
            #[serde(rename = "ChecksumCRC32C")]
            crc32c: Option<String>,
            #[serde(rename = "ChecksumCRC64NVME")]
            crc64nvme: Option<String>,
            #[serde(rename = "ChecksumSHA1")]
            sha1: Option<String>,
            #[serde(rename = "ChecksumSHA256")]
            sha256: Option<String>,
        }

        impl $name {
            /// The first readable checksum.
            pub(crate) fn checksum(&self) -> Option<Checksum> {
                use ChecksumAlgorithm as A;
                [
                    (A::Crc32, &self.crc32),
                    (A::Crc32c, &self.crc32c),
                    (A::Crc64Nvme, &self.crc64nvme),
                    (A::Sha1, &self.sha1),
                    (A::Sha256, &self.sha256),
                ]
                .into_iter()
                .find_map(|(a, v)| v.as_deref().and_then(|v| parse_checksum(a, v)))
            }
        }
    };
}

/// A checksum as S3 shows it: base64, `-N` appended for a composite.
pub(crate) fn parse_checksum(algorithm: ChecksumAlgorithm, value: &str) -> Option<Checksum> {
    let (b64, parts) = match value.trim().rsplit_once('-') {
        Some((b, n)) => (b, Some(n.parse::<u32>().ok()?)),
        None => (value, None),
    };
    let mut c = Checksum::from_base64(algorithm, b64).ok()?;
    c.parts = parts;
    Some(c)
}

/// `<ListBucketResult>` of ListObjectsV2.
#[derive(Debug, Deserialize)]
pub(crate) struct ListBucketResult {
    #[serde(rename = "IsTruncated", default)]
    pub(crate) is_truncated: bool,
    #[serde(rename = "Contents", default)]
    pub(crate) contents: Vec<ListEntry>,
    #[serde(rename = "CommonPrefixes", default)]
    pub(crate) common_prefixes: Vec<CommonPrefix>,
    #[serde(rename = "NextContinuationToken")]
    pub(crate) next_continuation_token: Option<String>,
}

/// One `<Contents>`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListEntry {
    #[serde(rename = "Key")]
    pub(crate) key: String,
    #[serde(rename = "LastModified", default)]
    pub(crate) last_modified: String,
    #[serde(rename = "ETag", default)]
    pub(crate) etag: String,
    #[serde(rename = "Size", default)]
    pub(crate) size: u64,
}

/// One `<CommonPrefixes>`.
#[derive(Debug, Deserialize)]
pub(crate) struct CommonPrefix {
    #[serde(rename = "Prefix")]
    pub(crate) prefix: String,
}

/// `<InitiateMultipartUploadResult>`.
#[derive(Debug, Deserialize)]
pub(crate) struct InitiateResult {
    #[serde(rename = "UploadId")]
    pub(crate) upload_id: String,
}

/// `<ListPartsResult>`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListPartsResult {
    #[serde(rename = "IsTruncated", default)]
    pub(crate) is_truncated: bool,
    #[serde(rename = "NextPartNumberMarker")]
    pub(crate) next_part_number_marker: Option<String>,
    #[serde(rename = "ChecksumAlgorithm")]
    pub(crate) checksum_algorithm: Option<String>,
    #[serde(rename = "Part", default)]
    pub(crate) parts: Vec<XmlPart>,
}

with_checksums! {
    /// One `<Part>` of a ListParts answer.
    XmlPart {
        #[serde(rename = "PartNumber")]
        part_number: u32,
        #[serde(rename = "LastModified", default)]
        last_modified: String,
        #[serde(rename = "ETag", default)]
        etag: String,
        #[serde(rename = "Size", default)]
        size: u64,
    }
}

/// `<ListMultipartUploadsResult>`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListUploadsResult {
    #[serde(rename = "IsTruncated", default)]
    pub(crate) is_truncated: bool,
    #[serde(rename = "NextKeyMarker")]
    pub(crate) next_key_marker: Option<String>,
    #[serde(rename = "NextUploadIdMarker")]
    pub(crate) next_upload_id_marker: Option<String>,
    #[serde(rename = "Upload", default)]
    pub(crate) uploads: Vec<XmlUpload>,
}

/// One `<Upload>`.
#[derive(Debug, Deserialize)]
pub(crate) struct XmlUpload {
    #[serde(rename = "Key")]
    pub(crate) key: String,
    #[serde(rename = "UploadId")]
    pub(crate) upload_id: String,
    #[serde(rename = "Initiated", default)]
    pub(crate) initiated: String,
}

with_checksums! {
    /// `<CompleteMultipartUploadResult>`, `<CopyObjectResult>` and
    /// `<CopyPartResult>`: an ETag, perhaps a checksum.
    EtagResult {
        #[serde(rename = "ETag")]
        etag: String,
    }
}

/// The `<CompleteMultipartUpload>` request body, with each part's
/// checksum when the upload has an algorithm.
pub(crate) fn complete_body(parts: &[(CompletedPart, Option<Checksum>)]) -> String {
    let mut out = String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (p, sum) in parts {
        let etag = super::client::unquote(&p.etag);
        let _ = write!(
            out,
            "<Part><PartNumber>{}</PartNumber><ETag>&quot;{}&quot;</ETag>",
            p.part_number,
            escape(&etag)
        );
        if let Some(c) = sum {
            let tag = checksum_tag(c.algorithm);
            let _ = write!(out, "<{tag}>{}</{tag}>", c.to_header_value());
        }
        out.push_str("</Part>");
    }
    out.push_str("</CompleteMultipartUpload>");
    out
}

fn checksum_tag(a: ChecksumAlgorithm) -> &'static str {
    match a {
        ChecksumAlgorithm::Crc32 => "ChecksumCRC32",
        ChecksumAlgorithm::Crc32c => "ChecksumCRC32C",
        ChecksumAlgorithm::Crc64Nvme => "ChecksumCRC64NVME",
        ChecksumAlgorithm::Sha1 => "ChecksumSHA1",
        ChecksumAlgorithm::Sha256 => "ChecksumSHA256",
    }
}

/// Maps a [`ParseFailure`] with the client's error mapping.
pub(crate) fn parsed<T>(
    result: Result<T, ParseFailure>,
    map: impl FnOnce(ErrorBody) -> StoreError,
) -> StoreResult<T> {
    match result {
        Ok(t) => Ok(t),
        Err(ParseFailure::Error(e)) => Err(map(e)),
        Err(ParseFailure::Malformed(e)) => Err(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_recognised_even_after_a_200() {
        let doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>\
                   <Message>We encountered an internal error &amp; more</Message></Error>";
        let e = parse_error(doc).unwrap();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("InternalError", "We encountered an internal error & more")
        );
        assert!(parse::<EtagResult>(doc, "complete").is_err());
        assert!(parse_error("<CompleteMultipartUploadResult/>").is_none());
    }

    #[test]
    fn a_garage_list_parts_answer_is_read() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?><ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>mp3</Key><UploadId>e2</UploadId><MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated><Part><ETag>&quot;f0b1&quot;</ETag><LastModified>2026-11-21T12:44:12.658Z</LastModified><PartNumber>1</PartNumber><Size>100</Size><ChecksumSHA256>q9OxcqzDwx4H5zWZ/uNoQ/Dj98Gr4CPjIl+aRhYaKNQ=</ChecksumSHA256></Part><Initiator><ID>x</ID></Initiator></ListPartsResult>"#;
        let r: ListPartsResult = parse(doc, "ListParts").ok().unwrap();
        assert_eq!(r.parts.len(), 1);
        assert_eq!(r.parts[0].etag, "\"f0b1\"");
        assert_eq!(r.parts[0].size, 100);
        let sum = r.parts[0].checksum().unwrap();
        assert_eq!(sum.algorithm, ChecksumAlgorithm::Sha256);
        assert_eq!(timestamp(&r.parts[0].last_modified).year(), 2026);
    }

    #[test]
    fn listings_keep_contents_and_prefixes() {
        let doc = r#"<ListBucketResult><Name>b</Name><IsTruncated>true</IsTruncated><Contents><Key>a&amp;b</Key><LastModified>2026-11-21T12:43:04.311Z</LastModified><ETag>"e"</ETag><Size>5</Size></Contents><Contents><Key>c</Key><Size>0</Size></Contents><CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes><NextContinuationToken>tok</NextContinuationToken></ListBucketResult>"#;
        let r: ListBucketResult = parse(doc, "list").ok().unwrap();
        assert!(r.is_truncated);
        let keys: Vec<&str> = r.contents.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["a&b", "c"]);
        assert_eq!(r.common_prefixes[0].prefix, "d/");
        assert_eq!(r.next_continuation_token.as_deref(), Some("tok"));
    }

    #[test]
    fn composite_checksums_keep_their_part_count() {
        let c = parse_checksum(
            ChecksumAlgorithm::Sha256,
            "kA0pXrHAj8Z0tYJOFyfMJy0jggFvsywmJ6/UqQ7d9GQ=-3",
        )
        .unwrap();
        assert_eq!(c.parts, Some(3));
        assert_eq!(
            c.to_header_value(),
            "kA0pXrHAj8Z0tYJOFyfMJy0jggFvsywmJ6/UqQ7d9GQ=-3"
        );
        assert!(parse_checksum(ChecksumAlgorithm::Crc32, "not base64").is_none());
    }

    #[test]
    fn completion_bodies_escape_etags() {
        let body = complete_body(&[(
            CompletedPart {
                part_number: 1,
                etag: "\"a<b\"".into(),
            },
            None,
        )]);
        assert!(
            body.contains("<PartNumber>1</PartNumber><ETag>&quot;a&lt;b&quot;</ETag>"),
            "{body}"
        );
    }
}
