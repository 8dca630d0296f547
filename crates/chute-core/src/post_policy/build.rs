//! [`PostPolicyBuilder`]: the server's side of a browser POST upload. It
//! binds the exact key chosen by the server (never a client prefix), the
//! bucket and optional size range, content type and metadata, and signs.
//!
//! The fields and policy are byte-identical to boto3's
//! `generate_presigned_post` given the same fields and conditions in the
//! same order (checked by the integration tests), so the policy JSON is
//! written the way Python's `json.dumps` writes it.

use super::Condition;
use crate::sigv4::{ALGORITHM, Credentials, amz_date, credential_scope, hmac_sha256, signing_key};
use crate::{BucketName, ObjectKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::fmt::Write as _;
use std::time::Duration;
use time::{OffsetDateTime, UtcOffset};

/// A signed POST form: where to post and the fields to send before `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPost {
    /// The form action, `endpoint/bucket` (path style).
    pub url: String,
    /// Form fields in the order to send them.
    pub fields: Vec<(String, String)>,
}

/// Builds and signs a POST policy for one exact key.
#[derive(Debug, Clone)]
pub struct PostPolicyBuilder {
    bucket: BucketName,
    key: ObjectKey,
    expires_in: Duration,
    bound_fields: Vec<(String, String)>,
    content_length_range: Option<(u64, u64)>,
}

impl PostPolicyBuilder {
    /// A policy for exactly `key` in `bucket`, valid for one hour unless changed.
    pub fn new(bucket: BucketName, key: ObjectKey) -> Self {
        Self {
            bucket,
            key,
            expires_in: Duration::from_secs(3600),
            bound_fields: Vec::new(),
            content_length_range: None,
        }
    }

    /// How long after signing the policy expires (whole seconds are used).
    pub fn expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = expires_in;
        self
    }

    /// Requires the file size to be within `min..=max` bytes.
    pub fn content_length_range(mut self, min: u64, max: u64) -> Self {
        self.content_length_range = Some((min.min(max), max.max(min)));
        self
    }

    /// Requires `content-type` to be exactly `content_type`.
    pub fn content_type(self, content_type: &str) -> Self {
        self.bind("content-type".to_owned(), content_type)
    }

    /// Requires `success_action_status` to be exactly `status` (S3 uses 200, 201 or 204).
    pub fn success_action_status(self, status: u16) -> Self {
        self.bind("success_action_status".to_owned(), &status.to_string())
    }

    /// Requires the metadata field `x-amz-meta-<name>` to be exactly `value`.
    pub fn metadata(self, name: &str, value: &str) -> Self {
        self.bind(format!("x-amz-meta-{}", name.to_ascii_lowercase()), value)
    }

    /// Requires the file to have this checksum: binds
    /// `x-amz-checksum-algorithm` and `x-amz-checksum-<algorithm>`, which the
    /// store verifies against the bytes it receives.
    pub fn checksum(self, checksum: &crate::Checksum) -> Self {
        let header = checksum.algorithm.header_name();
        self.bind("x-amz-checksum-algorithm".to_owned(), checksum.algorithm.as_str())
            .bind(header.to_owned(), &checksum.to_header_value())
    }

    fn bind(mut self, field: String, value: &str) -> Self {
        self.bound_fields.retain(|(f, _)| *f != field);
        self.bound_fields.push((field, value.to_owned()));
        self
    }

    /// Signs the policy with SigV4 for `region`; `endpoint_url` is the
    /// service endpoint, e.g. `http://127.0.0.1:9000`.
    pub fn sign(
        self,
        creds: &Credentials,
        region: &str,
        endpoint_url: &str,
        now: OffsetDateTime,
    ) -> PresignedPost {
        let now = now.to_offset(UtcOffset::UTC);
        let expiration = now + Duration::from_secs(self.expires_in.as_secs());
        let amz_date = amz_date(now);
        let credential = format!(
            "{}/{}",
            creds.access_key,
            credential_scope(now.date(), region, "s3")
        );

        let mut conditions: Vec<Condition> = self
            .bound_fields
            .iter()
            .map(|(field, value)| Condition::Eq {
                field: field.clone(),
                value: value.clone(),
            })
            .collect();
        if let Some((min, max)) = self.content_length_range {
            conditions.push(Condition::ContentLengthRange { min, max });
        }
        let mut fields = self.bound_fields;
        fields.push(("key".to_owned(), self.key.as_str().to_owned()));
        fields.push(("x-amz-algorithm".to_owned(), ALGORITHM.to_owned()));
        fields.push(("x-amz-credential".to_owned(), credential.clone()));
        fields.push(("x-amz-date".to_owned(), amz_date.clone()));
        for (field, value) in [
            ("bucket", self.bucket.as_str()),
            ("key", self.key.as_str()),
            ("x-amz-algorithm", ALGORITHM),
            ("x-amz-credential", &credential),
            ("x-amz-date", &amz_date),
        ] {
            conditions.push(Condition::Eq {
                field: field.to_owned(),
                value: value.to_owned(),
            });
        }

        let policy = B64.encode(policy_json(expiration, &conditions));
        let key = signing_key(&creds.secret_key, now.date(), region, "s3");
        let signature = hex::encode(hmac_sha256(&key, policy.as_bytes()));
        fields.push(("policy".to_owned(), policy));
        fields.push(("x-amz-signature".to_owned(), signature));
        PresignedPost {
            url: format!("{}/{}", endpoint_url.trim_end_matches('/'), self.bucket),
            fields,
        }
    }
}

/// The policy as `json.dumps` writes it: `", "` and `": "` separators,
/// exact matches as `{"field": "value"}`, expiration to the second.
fn policy_json(expiration: OffsetDateTime, conditions: &[Condition]) -> String {
    let mut out = format!(
        "{{\"expiration\": \"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z\", \"conditions\": [",
        expiration.year(),
        u8::from(expiration.month()),
        expiration.day(),
        expiration.hour(),
        expiration.minute(),
        expiration.second()
    );
    for (i, condition) in conditions.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match condition {
            Condition::Eq { field, value } => {
                let _ = write!(out, "{{{}: {}}}", py_json_str(field), py_json_str(value));
            }
            Condition::StartsWith { field, prefix } => {
                let field = format!("${field}");
                let _ = write!(
                    out,
                    "[\"starts-with\", {}, {}]",
                    py_json_str(&field),
                    py_json_str(prefix)
                );
            }
            Condition::ContentLengthRange { min, max } => {
                let _ = write!(out, "[\"content-length-range\", {min}, {max}]");
            }
        }
    }
    out.push_str("]}");
    out
}

/// A JSON string literal as Python writes it with `ensure_ascii`: anything
/// outside printable ASCII becomes `\uXXXX` (UTF-16 surrogates above the BMP).
fn py_json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_style_json_strings() {
        assert_eq!(py_json_str("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(py_json_str("é\u{7f}\n"), r#""\u00e9\u007f\n""#);
        assert_eq!(py_json_str("😀"), r#""\ud83d\ude00""#);
    }

    #[test]
    fn emits_fields_in_boto3_order() {
        let bucket = BucketName::parse("uploads").unwrap_or_else(|e| panic!("{e}"));
        let key = ObjectKey::parse("a/b.txt").unwrap_or_else(|e| panic!("{e}"));
        let creds = Credentials {
            access_key: "AK".into(),
            secret_key: "SK".into(),
        };
        let post = PostPolicyBuilder::new(bucket, key)
            .content_type("image/png")
            .metadata("Owner", "7")
            .content_length_range(1, 100)
            .sign(
                &creds,
                "us-east-1",
                "http://127.0.0.1:9000/",
                time::macros::datetime!(2024-05-01 12:00 UTC),
            );
        assert_eq!(post.url, "http://127.0.0.1:9000/uploads");
        let names: Vec<&str> = post.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "x-amz-meta-owner",
                "key",
                "x-amz-algorithm",
                "x-amz-credential",
                "x-amz-date",
                "policy",
                "x-amz-signature"
            ]
        );
    }
}
